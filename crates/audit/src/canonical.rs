//! The canonical, versioned byte encoding that event hashes and digest signatures cover.
//!
//! # Primitives
//! * `str(s)` / `bytes(b)`: length as 8-byte big-endian unsigned integer, then the bytes
//!   (UTF-8 for strings);
//! * `u64(n)` / `i64(n)`: 8 bytes, big-endian (two's complement for `i64`);
//! * `fixed(b)`: the bytes as they are (only for fixed-size fields: hashes, UUIDs);
//! * `opt(x)`: one byte `0x00` when absent, or `0x01` followed by `x`.
//!
//! Every field is self-delimiting, so two different events can never encode to the same
//! bytes.
//!
//! # Event encoding, version 1 ([`EVENT_ENCODING_V1`])
//! | # | field | encoding |
//! |---|---|---|
//! | 1 | version tag `ptoc.audit.event.v1` | `str` |
//! | 2 | chain id (`org:<uuid>`, `district:<uuid>`, `platform`) | `str` |
//! | 3 | seq | `u64` |
//! | 4 | prev_hash | `fixed(32)` |
//! | 5 | id | `fixed(16)` |
//! | 6 | scope.org_id | `opt(fixed(16))` |
//! | 7 | scope.district_id | `opt(fixed(16))` |
//! | 8 | actor (`user:<uuid>`, `api_key:<uuid>`, `system`) | `str` |
//! | 9 | category (`audit`, `activity`) | `str` |
//! | 10 | action | `str` |
//! | 11 | entity_type | `str` |
//! | 12 | entity_id | `str` |
//! | 13 | change_type (`CREATE` … `NONE`) | `str` |
//! | 14 | old_value | `opt(str(canonical JSON))` |
//! | 15 | new_value | `opt(str(canonical JSON))` |
//! | 16 | ip | `opt(str)` |
//! | 17 | user_agent | `opt(str)` |
//! | 18 | request_id | `opt(str)` |
//! | 19 | occurred_at, whole µs since the Unix epoch | `i64` |
//!
//! Only `hash` itself is left out. The event hash is `SHA-256` of these bytes.
//!
//! # Event encoding, version 2 ([`EVENT_ENCODING_V2`]): personal fields sealed
//! An event with sealed parts (see [`crate::personal`]) is encoded as version 1 with
//! the tag `ptoc.audit.event.v2`, except that
//! * fields 14–17 (`old_value`, `new_value`, `ip`, `user_agent`) that a part holds are
//!   encoded as absent (`0x00`), whatever the body carries (plaintext when opened,
//!   `[erased]` after erasure, nothing as stored);
//! * after field 19 come the parts: `u64(count)`, then for each part `str(subject)`
//!   (`user:<uuid>`, `invitation:<uuid>`), `fixed(16)` key id, `u64(field count)`,
//!   `str(field name)` for each field, and `bytes(ciphertext)`.
//!
//! So the hash commits to the ciphertext, never to the plaintext: it verifies without
//! any key, before and after a subject's key is erased. An event without parts is
//! encoded as version 1, exactly as before parts existed.
//!
//! # Canonical JSON ([`canonical_json`])
//! No whitespace; object keys sorted by their UTF-8 bytes (recursively); strings escape
//! only `"`, `\` and control characters (`\b \f \n \r \t`, else `\u00xx` lowercase);
//! integers in plain decimal; floats with an integral value below 2^53 in magnitude as
//! integers (so `100.0` and `100` agree, as they do after a JSONB round trip); other
//! floats in Rust's shortest round-trip decimal form.
//!
//! # Versioning
//! The version tag is the first field, so bytes of different versions never collide. A
//! future version gets a new tag; events keep the version they were sealed with.

use std::fmt::Write as _;

use serde_json::{Number, Value};
use uuid::Uuid;

use crate::event::{AuditEvent, NewAuditEvent, unix_micros};
use crate::hash::Hash32;
use crate::personal::{PersonalField, SealedPart};

/// Version tag of the event encoding (first field of [`canonical_bytes`]).
pub const EVENT_ENCODING_V1: &str = "ptoc.audit.event.v1";

/// Version tag of the encoding of events with sealed personal fields.
pub const EVENT_ENCODING_V2: &str = "ptoc.audit.event.v2";

/// The canonical bytes of a stored event: every field except `hash` (see the module
/// documentation for the exact layout).
#[must_use]
pub fn canonical_bytes(event: &AuditEvent) -> Vec<u8> {
    encode_event(event.seq, &event.prev_hash, &event.body, &event.sealed)
}

/// Encodes an event body at a chain position (used to seal before the hash exists):
/// version 1 without parts, version 2 with.
pub(crate) fn encode_event(
    seq: u64,
    prev_hash: &Hash32,
    body: &NewAuditEvent,
    parts: &[SealedPart],
) -> Vec<u8> {
    let sealed = |field: PersonalField| parts.iter().any(|p| p.fields.contains(&field));
    let mut e = Encoder::new(if parts.is_empty() {
        EVENT_ENCODING_V1
    } else {
        EVENT_ENCODING_V2
    });
    e.str(&body.chain().to_string());
    e.u64(seq);
    e.fixed(prev_hash.as_bytes());
    e.fixed(body.id.as_bytes());
    e.opt_uuid(body.scope.org_id);
    e.opt_uuid(body.scope.district_id);
    e.str(&body.actor.to_string());
    e.str(body.category.as_str());
    e.str(body.action.as_str());
    e.str(&body.entity_type);
    e.str(&body.entity_id);
    e.str(body.change_type.as_str());
    e.opt_json(
        body.old_value
            .as_ref()
            .filter(|_| !sealed(PersonalField::OldValue)),
    );
    e.opt_json(
        body.new_value
            .as_ref()
            .filter(|_| !sealed(PersonalField::NewValue)),
    );
    e.opt_str(body.ip.as_deref().filter(|_| !sealed(PersonalField::Ip)));
    e.opt_str(
        body.user_agent
            .as_deref()
            .filter(|_| !sealed(PersonalField::UserAgent)),
    );
    e.opt_str(body.request_id.as_deref());
    e.i64(unix_micros(body.occurred_at));
    if !parts.is_empty() {
        e.u64(parts.len() as u64);
        for part in parts {
            e.str(&part.subject.to_string());
            e.fixed(part.key_id.as_bytes());
            e.u64(part.fields.len() as u64);
            for field in &part.fields {
                e.str(field.as_str());
            }
            e.bytes(&part.ciphertext);
        }
    }
    e.finish()
}

/// Writer of the primitives described in the module documentation.
pub(crate) struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// Starts an encoding with its version tag.
    pub(crate) fn new(version_tag: &str) -> Self {
        let mut encoder = Self {
            buf: Vec::with_capacity(256),
        };
        encoder.str(version_tag);
        encoder
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub(crate) fn fixed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn u64(&mut self, n: u64) {
        self.buf.extend_from_slice(&n.to_be_bytes());
    }

    pub(crate) fn i64(&mut self, n: i64) {
        self.buf.extend_from_slice(&n.to_be_bytes());
    }

    /// Writes the presence byte of an optional field and returns the value.
    fn opt<T>(&mut self, value: Option<T>) -> Option<T> {
        self.buf.push(u8::from(value.is_some()));
        value
    }

    fn opt_uuid(&mut self, id: Option<Uuid>) {
        if let Some(id) = self.opt(id) {
            self.fixed(id.as_bytes());
        }
    }

    fn opt_str(&mut self, s: Option<&str>) {
        if let Some(s) = self.opt(s) {
            self.str(s);
        }
    }

    fn opt_json(&mut self, value: Option<&Value>) {
        if let Some(value) = self.opt(value) {
            self.str(&canonical_json(value));
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Canonical JSON text of `value` (see the module documentation): equal JSON documents
/// give equal text whatever their key order or formatting.
#[must_use]
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// 2^53: floats below this magnitude with no fraction are exact integers.
const MAX_SAFE_FLOAT_INT: f64 = 9_007_199_254_740_992.0;

fn write_number(out: &mut String, n: &Number) {
    // `write!` into a `String` cannot fail.
    let _ = if let Some(u) = n.as_u64() {
        write!(out, "{u}")
    } else if let Some(i) = n.as_i64() {
        write!(out, "{i}")
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.is_finite() && f.fract() == 0.0 && f.abs() < MAX_SAFE_FLOAT_INT {
            #[allow(clippy::cast_possible_truncation)] // integral and below 2^53
            let i = f as i64;
            write!(out, "{i}")
        } else {
            write!(out, "{f}")
        }
    };
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Action;
    use crate::event::{Actor, Category, ChangeType};
    use crate::scope::TenantScope;
    use crate::testkit::{ORG, chain_of};
    use serde_json::json;
    use time::Duration;

    fn sample() -> AuditEvent {
        chain_of(ORG, 3).remove(2)
    }

    #[test]
    fn same_event_same_hash() {
        let a = sample();
        let b = sample();
        assert_eq!(canonical_bytes(&a), canonical_bytes(&b));
        assert_eq!(a.compute_hash(), a.hash);
        assert_eq!(a.compute_hash(), b.compute_hash());
        assert!(canonical_bytes(&a).starts_with(b"\0\0\0\0\0\0\0\x13ptoc.audit.event.v1"));
    }

    #[test]
    fn json_key_order_and_formatting_do_not_change_the_hash() {
        let mut a = sample();
        let mut b = sample();
        a.body.new_value = Some(
            serde_json::from_str(
                r#"{"enabled": true, "min_role": "admin", "meta": {"b": 1, "a": [1.0, 2]}}"#,
            )
            .expect("json"),
        );
        b.body.new_value = Some(
            serde_json::from_str(r#"{"meta":{"a":[1,2],"b":1},"min_role":"admin","enabled":true}"#)
                .expect("json"),
        );
        assert_eq!(a.compute_hash(), b.compute_hash());
    }

    #[test]
    fn hash_survives_a_serde_round_trip() {
        let event = sample();
        let json = serde_json::to_string(&event).expect("serialize");
        let back: AuditEvent = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, event);
        assert_eq!(back.compute_hash(), event.hash);
    }

    #[test]
    fn sub_microsecond_and_offset_do_not_change_the_hash() {
        let a = sample();
        let mut b = sample();
        b.body.occurred_at = (a.body.occurred_at + Duration::nanoseconds(999))
            .to_offset(time::macros::offset!(+05:30));
        assert_eq!(a.compute_hash(), b.compute_hash());
    }

    #[test]
    fn every_field_change_changes_the_hash() {
        type Mutation = (&'static str, fn(&mut AuditEvent));
        let mutations: &[Mutation] = &[
            ("seq", |e| e.seq += 1),
            ("prev_hash", |e| e.prev_hash = Hash32::of(b"other")),
            ("id", |e| e.body.id = Uuid::now_v7()),
            ("org_id", |e| e.body.scope.org_id = Some(Uuid::from_u128(1))),
            ("org_id none", |e| e.body.scope.org_id = None),
            ("district_id", |e| e.body.scope.district_id = None),
            ("scope", |e| e.body.scope = TenantScope::PLATFORM),
            ("actor", |e| e.body.actor = Actor::System),
            ("actor kind", |e| {
                e.body.actor = Actor::ApiKey(e.body.actor.id().unwrap_or_default());
            }),
            ("category", |e| e.body.category = Category::Activity),
            ("action", |e| {
                e.body.action = Action::from_static("permission.delete")
            }),
            ("entity_type", |e| e.body.entity_type.push('x')),
            ("entity_id", |e| e.body.entity_id.push('x')),
            ("change_type", |e| e.body.change_type = ChangeType::Delete),
            ("old_value", |e| e.body.old_value = None),
            ("old_value content", |e| {
                e.body.old_value = Some(json!({"min_role": "admin"}))
            }),
            ("new_value", |e| e.body.new_value = Some(json!(null))),
            ("new_value number", |e| e.body.new_value = Some(json!(1.5))),
            ("ip", |e| e.body.ip = None),
            ("ip content", |e| e.body.ip = Some("192.0.2.8".into())),
            ("user_agent", |e| e.body.user_agent = Some(String::new())),
            ("request_id", |e| e.body.request_id = None),
            ("occurred_at", |e| {
                e.body.occurred_at += Duration::microseconds(1)
            }),
        ];
        let base = sample();
        let mut seen = std::collections::HashSet::from([base.compute_hash()]);
        for (name, mutate) in mutations {
            let mut event = sample();
            mutate(&mut event);
            assert!(
                seen.insert(event.compute_hash()),
                "changing {name} kept a known hash"
            );
        }
    }

    #[test]
    fn absent_and_empty_optional_values_differ() {
        let mut a = sample();
        let mut b = sample();
        a.body.ip = None;
        b.body.ip = Some(String::new());
        assert_ne!(a.compute_hash(), b.compute_hash());
        // A string field's bytes can't leak into the next field.
        let (mut c, mut d) = (sample(), sample());
        c.body.entity_type = "ab".into();
        c.body.entity_id = "c".into();
        d.body.entity_type = "a".into();
        d.body.entity_id = "bc".into();
        assert_ne!(c.compute_hash(), d.compute_hash());
    }

    #[test]
    fn canonical_json_sorts_keys_recursively_and_strips_whitespace() {
        let a: Value =
            serde_json::from_str(r#"{ "b": 1, "a": { "z": [1, {"y": 2, "x": 3}], "c": null } }"#)
                .expect("json");
        let b: Value =
            serde_json::from_str(r#"{"a":{"c":null,"z":[1,{"x":3,"y":2}]},"b":1}"#).expect("json");
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"z":[1,{"x":3,"y":2}]},"b":1}"#
        );
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }

    #[test]
    fn canonical_json_numbers_and_strings() {
        assert_eq!(canonical_json(&json!(100.0)), "100");
        assert_eq!(canonical_json(&json!(-0.0)), "0");
        assert_eq!(canonical_json(&json!(-7)), "-7");
        assert_eq!(canonical_json(&json!(u64::MAX)), u64::MAX.to_string());
        assert_eq!(canonical_json(&json!(0.5)), "0.5");
        assert_eq!(canonical_json(&json!(true)), "true");
        assert_eq!(
            canonical_json(&json!("q\"\\\n\u{1}é")),
            "\"q\\\"\\\\\\n\\u0001é\""
        );
        // Agrees with serde_json's own escaping.
        let s = json!("tab\there \u{7f} \u{1f} / <>");
        assert_eq!(canonical_json(&s), s.to_string());
    }

    #[test]
    fn encoder_is_length_prefixed() {
        let mut e = Encoder::new("t");
        e.str("ab");
        e.opt_str(None);
        e.opt_str(Some(""));
        let bytes = e.finish();
        let expected: Vec<u8> = [
            &[0, 0, 0, 0, 0, 0, 0, 1][..],
            b"t",
            &[0, 0, 0, 0, 0, 0, 0, 2],
            b"ab",
            &[0],
            &[1, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }
}
