//! Personal data in audit events, sealed per data subject so that it can be erased
//! without breaking the hash chain ("crypto-shredding").
//!
//! # What is personal
//! * `old_value` / `new_value` of an event **about a person** — its entity is a user or
//!   member (`entity_type` `user` / `member`, the user id as `entity_id`) or an invitation
//!   (`invitation`, whose invitee may have no account yet): the snapshots hold names,
//!   e-mail addresses, phones, children. Their data subject is that person
//!   ([`subject_of_entity`]).
//! * `ip` / `user_agent`: the acting user's (an [`Actor::User`]); for an API key or the
//!   system they follow the event's subject, if it has one (a failed sign-in), else
//!   they stay in the clear (an integration's server address is not a person's).
//!
//! Identifiers (`actor`, `entity_id`, `org_id`) stay in the clear: they are random UUIDs
//! that point at rows erasure deletes, needed to filter and count the log, and they
//! identify nobody once the account is gone. `request_id`, actions and times are not
//! personal.
//!
//! # Sealed parts
//! The adapter encrypts each subject's fields of an event together, under that
//! subject's key for the event's chain, into a [`SealedPart`] (subject, field names,
//! ciphertext). The stored row keeps the part and leaves those fields empty. The event
//! hash commits to the **ciphertext** (canonical encoding v2, see [`crate::canonical`]),
//! never to the plaintext, so:
//! * verification needs no key: live and archived chains verify before and after any
//!   erasure;
//! * erasing a subject is deleting its key: every part sealed under it, in the database
//!   and in archive files alike, becomes unreadable, and nothing derived from the
//!   plaintext without the key (which would let someone confirm a guess) is kept.
//!
//! An *opened* event (plaintext restored by [`AuditEvent::open_part`], or the fields
//! marked [`ERASED`] by [`AuditEvent::erase_part`]) hashes exactly as the stored one: the
//! encoding skips every sealed field.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::{Actor, AuditEvent, NewAuditEvent};
use crate::scope::{ChainId, ParseError, parse_canonical_uuid};

/// What an erased personal field reads as.
pub const ERASED: &str = "[erased]";

/// A person whose data an audit event holds: the unit of erasure.
///
/// Its string form (`user:<uuid>`, `invitation:<uuid>`) is how keys are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DataSubject {
    /// A user account (as a member of any org, or on the platform).
    User(Uuid),
    /// The invitee of an invitation (who may not have an account).
    Invitation(Uuid),
}

impl DataSubject {
    /// `"user"` or `"invitation"`.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Invitation(_) => "invitation",
        }
    }

    /// The user or invitation id.
    #[must_use]
    pub const fn id(&self) -> Uuid {
        match *self {
            Self::User(id) | Self::Invitation(id) => id,
        }
    }
}

impl fmt::Display for DataSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

impl FromStr for DataSubject {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseError::new("data subject", s);
        let (kind, id) = s.split_once(':').ok_or_else(bad)?;
        let id = parse_canonical_uuid(id).ok_or_else(bad)?;
        match kind {
            "user" => Ok(Self::User(id)),
            "invitation" => Ok(Self::Invitation(id)),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for DataSubject {
    type Error = ParseError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<DataSubject> for String {
    fn from(subject: DataSubject) -> Self {
        subject.to_string()
    }
}

/// The data subject an event's values are about, from its entity: `user` and `member`
/// entities (id = the user id) are users, `invitation` entities their invitee; anything
/// else is about no one.
#[must_use]
pub fn subject_of_entity(entity_type: &str, entity_id: &str) -> Option<DataSubject> {
    let id = parse_canonical_uuid(entity_id)?;
    match entity_type {
        "user" | "member" => Some(DataSubject::User(id)),
        "invitation" => Some(DataSubject::Invitation(id)),
        _ => None,
    }
}

/// A field of an event that may hold personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonalField {
    /// `old_value`.
    OldValue,
    /// `new_value`.
    NewValue,
    /// `ip`.
    Ip,
    /// `user_agent`.
    UserAgent,
}

impl PersonalField {
    /// Every personal field, in encoding order.
    pub const ALL: [Self; 4] = [Self::OldValue, Self::NewValue, Self::Ip, Self::UserAgent];

    /// The field's name (`old_value`, `new_value`, `ip`, `user_agent`).
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::OldValue => "old_value",
            Self::NewValue => "new_value",
            Self::Ip => "ip",
            Self::UserAgent => "user_agent",
        }
    }

    fn value_of(self, body: &NewAuditEvent) -> Option<Value> {
        match self {
            Self::OldValue => body.old_value.clone(),
            Self::NewValue => body.new_value.clone(),
            Self::Ip => body.ip.clone().map(Value::String),
            Self::UserAgent => body.user_agent.clone().map(Value::String),
        }
    }

    fn is_present(self, body: &NewAuditEvent) -> bool {
        match self {
            Self::OldValue => body.old_value.is_some(),
            Self::NewValue => body.new_value.is_some(),
            Self::Ip => body.ip.is_some(),
            Self::UserAgent => body.user_agent.is_some(),
        }
    }

    /// Whether the field has a value in `body`.
    fn is_set(self, body: &NewAuditEvent) -> bool {
        match self {
            Self::OldValue => body.old_value.is_some(),
            Self::NewValue => body.new_value.is_some(),
            Self::Ip => body.ip.is_some(),
            Self::UserAgent => body.user_agent.is_some(),
        }
    }

    /// Sets the field from its plaintext JSON form (a string for `ip` / `user_agent`).
    fn set(self, body: &mut NewAuditEvent, value: Option<Value>) -> Result<(), OpenPartError> {
        let text = |value: Option<Value>| match value {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(OpenPartError::Malformed(format!(
                "{} is not a string",
                self.as_str()
            ))),
        };
        match self {
            Self::OldValue => body.old_value = value,
            Self::NewValue => body.new_value = value,
            Self::Ip => body.ip = text(value)?,
            Self::UserAgent => body.user_agent = text(value)?,
        }
        Ok(())
    }
}

/// A subject's personal fields of one event, encrypted under the subject's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedPart {
    /// Whose key sealed it.
    pub subject: DataSubject,
    /// Which of the subject's keys (a subject erased and seen again gets a new key: the
    /// parts sealed under the erased one stay unreadable).
    pub key_id: Uuid,
    /// The fields it holds, in [`PersonalField::ALL`] order, none twice.
    pub fields: Vec<PersonalField>,
    /// The adapter's ciphertext (nonce, encrypted [`NewAuditEvent::personal_plaintext`]
    /// and tag), serialised as lowercase hex.
    #[serde(with = "hex_bytes")]
    pub ciphertext: Vec<u8>,
}

impl SealedPart {
    /// What the encryption authenticates besides the plaintext (AEAD associated data):
    /// the event id, its chain, the subject, the key id and the field names, so a part
    /// cannot be moved to another event, chain or subject undetected.
    #[must_use]
    pub fn associated_data(
        event_id: Uuid,
        chain: ChainId,
        subject: DataSubject,
        key_id: Uuid,
        fields: &[PersonalField],
    ) -> Vec<u8> {
        let names: Vec<&str> = fields.iter().map(PersonalField::as_str).collect();
        format!(
            "ptoc.audit.sealed.v1|{event_id}|{chain}|{subject}|{key_id}|{}",
            names.join(",")
        )
        .into_bytes()
    }
}

/// Which of an event's personal fields are sealed under whose key: one entry per
/// subject, fields in [`PersonalField::ALL`] order, only fields that are present. Empty
/// when the event holds nothing personal (it is then stored in the clear, encoding v1).
#[must_use]
pub fn personal_plan(body: &NewAuditEvent) -> Vec<(DataSubject, Vec<PersonalField>)> {
    let about = subject_of_entity(&body.entity_type, &body.entity_id);
    let by = match body.actor {
        Actor::User(id) => Some(DataSubject::User(id)),
        Actor::ApiKey(_) | Actor::System => about,
    };
    let mut plan: Vec<(DataSubject, Vec<PersonalField>)> = Vec::new();
    for field in PersonalField::ALL {
        if !field.is_present(body) {
            continue;
        }
        let subject = match field {
            PersonalField::OldValue | PersonalField::NewValue => about,
            PersonalField::Ip | PersonalField::UserAgent => by,
        };
        let Some(subject) = subject else { continue };
        match plan.iter_mut().find(|(s, _)| *s == subject) {
            Some((_, fields)) => fields.push(field),
            None => plan.push((subject, vec![field])),
        }
    }
    plan
}

/// Why a sealed part's plaintext could not be put back into its event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenPartError {
    /// There is no part at this index.
    #[error("the event has no sealed part {0}")]
    NoSuchPart(usize),
    /// The plaintext is not the JSON object of the part's fields.
    #[error("sealed part plaintext is malformed: {0}")]
    Malformed(String),
}

impl NewAuditEvent {
    /// The plaintext a sealed part encrypts: the JSON object of `fields` (all
    /// present, as [`personal_plan`] lists them; an absent one would read back as the
    /// JSON value `null`).
    #[must_use]
    pub fn personal_plaintext(&self, fields: &[PersonalField]) -> Vec<u8> {
        let object: Map<String, Value> = fields
            .iter()
            .map(|f| {
                (
                    f.as_str().to_owned(),
                    f.value_of(self).unwrap_or(Value::Null),
                )
            })
            .collect();
        // serde_json's own text (not the canonical form): the plaintext is never hashed,
        // and this keeps `3.0` a float when read back.
        serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
    }
}

impl AuditEvent {
    /// Whether `field` is held by one of the sealed parts (its body value is then
    /// plaintext put back by [`AuditEvent::open_part`], [`ERASED`], or absent, and the
    /// hash does not cover it).
    #[must_use]
    pub fn is_sealed(&self, field: PersonalField) -> bool {
        self.sealed.iter().any(|p| p.fields.contains(&field))
    }

    /// Puts the decrypted plaintext of sealed part `index` back into the body.
    ///
    /// # Errors
    /// No such part, or a plaintext that is not the object of the part's fields.
    pub fn open_part(&mut self, index: usize, plaintext: &[u8]) -> Result<(), OpenPartError> {
        let fields = self
            .sealed
            .get(index)
            .ok_or(OpenPartError::NoSuchPart(index))?
            .fields
            .clone();
        let mut object = match serde_json::from_slice::<Value>(plaintext) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err(OpenPartError::Malformed("not an object".to_owned())),
            Err(e) => return Err(OpenPartError::Malformed(e.to_string())),
        };
        for field in fields {
            let value = object
                .remove(field.as_str())
                .ok_or_else(|| OpenPartError::Malformed(format!("{} missing", field.as_str())))?;
            // A sealed field is always present (`null` is the JSON value `null`).
            field.set(&mut self.body, Some(value))?;
        }
        Ok(())
    }

    /// Marks the fields of sealed part `index` as [`ERASED`] (its key is gone).
    ///
    /// # Errors
    /// No such part.
    pub fn erase_part(&mut self, index: usize) -> Result<(), OpenPartError> {
        let fields = self
            .sealed
            .get(index)
            .ok_or(OpenPartError::NoSuchPart(index))?
            .fields
            .clone();
        for field in fields {
            field.set(&mut self.body, Some(Value::String(ERASED.to_owned())))?;
        }
        Ok(())
    }

    /// Whether a sealed field also has a value in the body: never so in the form in
    /// which the event is stored ([`AuditEvent::closed`]), so a stored row that has one was
    /// edited outside the adapter.
    #[must_use]
    pub fn stores_a_sealed_field(&self) -> bool {
        PersonalField::ALL
            .into_iter()
            .any(|field| self.is_sealed(field) && field.is_set(&self.body))
    }

    /// Empties every sealed field of the body: the form in which the event is stored
    /// and archived (its hash is unchanged).
    #[must_use]
    pub fn closed(mut self) -> Self {
        for field in PersonalField::ALL {
            if self.is_sealed(field) {
                // Setting `None` never fails.
                let _ = field.set(&mut self.body, None);
            }
        }
        self
    }
}

/// Where an erasure applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "chain", rename_all = "snake_case")]
pub enum ErasureScope {
    /// Every chain (an account deleted by its owner).
    Everywhere,
    /// One chain (an org admin erasing a member of that org).
    Chain(ChainId),
}

/// What an erasure did: the receipt's audit part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectErasure {
    /// Whose data.
    pub subject: DataSubject,
    /// The chains whose key for the subject was deleted (sorted): every personal field
    /// of the subject in those chains, live or archived, is now unreadable.
    pub chains: Vec<ChainId>,
}

/// Why an erasure failed (nothing was erased: the caller rolls back).
#[derive(Debug, thiserror::Error)]
pub enum EraseSubjectError {
    /// The store failed.
    #[error("audit key store failed")]
    Storage(#[source] crate::BoxError),
}

mod hex_bytes {
    use serde::de::Visitor;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_str(HexText)
    }

    /// Decodes the text where the deserializer holds it (no copy of it first), into a
    /// buffer of the right size at once (`hex::decode` grows one as it goes).
    struct HexText;

    impl Visitor<'_> for HexText {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a hex string")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
            let mut bytes = vec![0; text.len() / 2];
            hex::decode_to_slice(text.as_bytes(), &mut bytes).map_err(E::custom)?;
            Ok(bytes)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::action::Action;
    use crate::chain::{ChainBuilder, seal_with_parts};
    use crate::event::ChangeType;
    use crate::scope::TenantScope;
    use crate::testkit::ORG;
    use crate::verify::verify_chain;
    use serde_json::json;

    const MEMBER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0101);
    const ADMIN: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0202);
    const KEY: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0303);

    pub(crate) fn member_event(actor: Actor, member: Uuid) -> NewAuditEvent {
        NewAuditEvent::audit(
            TenantScope::org(ORG),
            actor,
            Action::from_static("member.update"),
            "member",
            member.to_string(),
            ChangeType::Update,
        )
        .with_old_value(json!({"phone": "+1 555 0100", "grade": 3.0}))
        .with_new_value(json!({"phone": "+1 555 0199"}))
        .with_ip("198.51.100.7")
        .with_user_agent("agent")
        .with_request_id("req-1")
    }

    /// A stand-in for the adapter's AEAD: the plaintext with every byte flipped.
    pub(crate) fn fake_seal(new: &NewAuditEvent) -> Vec<SealedPart> {
        personal_plan(new)
            .into_iter()
            .map(|(subject, fields)| SealedPart {
                subject,
                key_id: KEY,
                ciphertext: new.personal_plaintext(&fields).iter().map(|b| !b).collect(),
                fields,
            })
            .collect()
    }

    pub(crate) fn fake_open(event: &mut AuditEvent) {
        for i in 0..event.sealed.len() {
            let plaintext: Vec<u8> = event.sealed[i].ciphertext.iter().map(|b| !b).collect();
            event.open_part(i, &plaintext).expect("opens");
        }
    }

    #[test]
    fn subjects_round_trip_and_derive_from_entities() {
        for subject in [DataSubject::User(MEMBER), DataSubject::Invitation(ADMIN)] {
            assert_eq!(subject.to_string().parse::<DataSubject>(), Ok(subject));
            let json = serde_json::to_value(subject).expect("serialize");
            assert_eq!(json, json!(subject.to_string()));
            assert_eq!(
                serde_json::from_value::<DataSubject>(json).expect("parse"),
                subject
            );
        }
        assert_eq!(
            DataSubject::User(MEMBER).to_string(),
            format!("user:{MEMBER}")
        );
        for bad in ["user", "org:00000000-0000-0000-0000-000000000001", "user:x"] {
            assert!(bad.parse::<DataSubject>().is_err(), "{bad}");
        }
        let id = MEMBER.to_string();
        assert_eq!(
            subject_of_entity("member", &id),
            Some(DataSubject::User(MEMBER))
        );
        assert_eq!(
            subject_of_entity("user", &id),
            Some(DataSubject::User(MEMBER))
        );
        assert_eq!(
            subject_of_entity("invitation", &id),
            Some(DataSubject::Invitation(MEMBER))
        );
        assert_eq!(subject_of_entity("permission_setting", &id), None);
        assert_eq!(subject_of_entity("member", "budget.approve"), None);
    }

    #[test]
    fn plan_seals_values_under_the_subject_and_request_fields_under_the_actor() {
        use PersonalField::{Ip, NewValue, OldValue, UserAgent};
        // A member editing themselves: one part.
        let own = member_event(Actor::User(MEMBER), MEMBER);
        assert_eq!(
            personal_plan(&own),
            vec![(
                DataSubject::User(MEMBER),
                vec![OldValue, NewValue, Ip, UserAgent]
            )]
        );
        // An admin editing a member: the values are the member's, the IP the admin's.
        let admin = member_event(Actor::User(ADMIN), MEMBER);
        assert_eq!(
            personal_plan(&admin),
            vec![
                (DataSubject::User(MEMBER), vec![OldValue, NewValue]),
                (DataSubject::User(ADMIN), vec![Ip, UserAgent]),
            ]
        );
        // The system about a user (a failed sign-in): the request is about them.
        let mut system = member_event(Actor::System, MEMBER);
        system.old_value = None;
        assert_eq!(
            personal_plan(&system),
            vec![(DataSubject::User(MEMBER), vec![NewValue, Ip, UserAgent])]
        );
        // An API key changing a setting: nothing personal.
        let mut setting = member_event(Actor::ApiKey(ADMIN), MEMBER);
        setting.entity_type = "permission_setting".into();
        assert!(personal_plan(&setting).is_empty());
    }

    #[test]
    fn the_hash_covers_ciphertext_not_plaintext() {
        let new = member_event(Actor::User(ADMIN), MEMBER);
        let parts = fake_seal(&new);
        let opened = seal_with_parts(new.clone(), parts.clone(), None).expect("seal");
        assert_eq!(opened.compute_hash(), opened.hash);
        assert!(
            crate::canonical_bytes(&opened).starts_with(b"\0\0\0\0\0\0\0\x13ptoc.audit.event.v2")
        );
        // As stored (closed), opened again, or erased: one hash.
        let closed = opened.clone().closed();
        assert_eq!(closed.body.new_value, None);
        assert_eq!(closed.body.ip, None);
        assert_eq!(closed.body.request_id.as_deref(), Some("req-1"));
        assert_eq!(closed.compute_hash(), opened.hash);
        let mut reopened = closed.clone();
        fake_open(&mut reopened);
        assert_eq!(reopened, opened);
        let mut erased = opened.clone();
        erased.erase_part(0).expect("erase");
        assert_eq!(erased.body.new_value, Some(json!(ERASED)));
        assert_eq!(
            erased.body.ip.as_deref(),
            Some("198.51.100.7"),
            "the admin's"
        );
        assert_eq!(erased.compute_hash(), opened.hash);
        // Another ciphertext, key, subject, or no parts at all: another hash.
        type Mutation = fn(&mut AuditEvent);
        let mutations: [Mutation; 5] = [
            |e| e.sealed[0].ciphertext[0] ^= 1,
            |e| e.sealed[0].key_id = Uuid::from_u128(9),
            |e| e.sealed[1].subject = DataSubject::Invitation(ADMIN),
            |e| e.sealed.swap(0, 1),
            |e| e.sealed.clear(),
        ];
        for (i, mutate) in mutations.iter().enumerate() {
            let mut e = opened.clone();
            mutate(&mut e);
            assert_ne!(e.compute_hash(), opened.hash, "mutation {i}");
        }
        // A field sealed twice, or a part without fields, is refused.
        let mut twice = parts.clone();
        twice[1].fields.push(PersonalField::NewValue);
        assert_eq!(
            seal_with_parts(new.clone(), twice, None),
            Err(crate::SealError::InvalidParts)
        );
        let mut empty = parts;
        empty[1].fields.clear();
        assert!(seal_with_parts(new, empty, None).is_err());
    }

    #[test]
    fn events_without_personal_fields_keep_encoding_v1() {
        let mut new = member_event(Actor::ApiKey(ADMIN), MEMBER);
        new.entity_type = "permission_setting".into();
        let event = seal_with_parts(new.clone(), fake_seal(&new), None).expect("seal");
        assert!(event.sealed.is_empty());
        assert_eq!(event, crate::seal(new, None).expect("seal"));
        assert!(
            crate::canonical_bytes(&event).starts_with(b"\0\0\0\0\0\0\0\x13ptoc.audit.event.v1")
        );
    }

    #[test]
    fn plaintext_round_trips_null_and_numbers() {
        let mut new = member_event(Actor::User(MEMBER), MEMBER);
        new.old_value = Some(Value::Null);
        let event = seal_with_parts(new.clone(), fake_seal(&new), None).expect("seal");
        let mut reopened = event.clone().closed();
        fake_open(&mut reopened);
        assert_eq!(reopened.body, new);
        assert_eq!(
            event.clone().closed().open_part(0, b"{\"ip\":1}"),
            Err(OpenPartError::Malformed("old_value missing".into()))
        );
        assert_eq!(
            event.clone().closed().open_part(3, b"{}"),
            Err(OpenPartError::NoSuchPart(3))
        );
    }

    #[test]
    fn only_a_closed_event_stores_no_sealed_field() {
        let new = member_event(Actor::User(ADMIN), MEMBER);
        let event = seal_with_parts(new.clone(), fake_seal(&new), None).expect("seal");
        assert!(event.stores_a_sealed_field());
        let closed = event.clone().closed();
        assert!(!closed.stores_a_sealed_field());
        // A JSON `null` is a stored value (what the closed form holds is no value).
        let mut edited = closed.clone();
        edited.body.old_value = Some(Value::Null);
        assert!(edited.stores_a_sealed_field());
        // A field no part seals may hold a value.
        let mut unsealed = closed;
        unsealed
            .sealed
            .retain(|p| !p.fields.contains(&PersonalField::Ip));
        unsealed.body.ip = Some("192.0.2.1".into());
        assert!(!unsealed.stores_a_sealed_field());
    }

    #[test]
    fn ciphertexts_read_from_text_and_from_json_trees_alike() {
        let new = member_event(Actor::User(ADMIN), MEMBER);
        let parts = fake_seal(&new);
        let text = serde_json::to_string(&parts).expect("json");
        assert!(text.contains(&hex::encode(&parts[0].ciphertext)));
        let from_text: Vec<SealedPart> = serde_json::from_str(&text).expect("from text");
        let tree: Value = serde_json::from_str(&text).expect("tree");
        let from_tree: Vec<SealedPart> = serde_json::from_value(tree).expect("from tree");
        assert_eq!(from_text, parts);
        assert_eq!(from_tree, parts);
        // Upper case is read as before; odd lengths and non-hex are refused.
        let upper = text.replace(
            &hex::encode(&parts[0].ciphertext),
            &hex::encode_upper(&parts[0].ciphertext),
        );
        assert_eq!(
            serde_json::from_str::<Vec<SealedPart>>(&upper).expect("upper"),
            parts
        );
        let part = |hex: &str| {
            let mut v = serde_json::to_value(&parts[0]).expect("value");
            v["ciphertext"] = Value::String(hex.into());
            serde_json::from_str::<SealedPart>(&v.to_string())
        };
        assert_eq!(part("0aff").expect("even").ciphertext, vec![0x0a, 0xff]);
        assert!(part("0af").is_err());
        assert!(part("0g").is_err());
    }

    #[test]
    fn a_chain_with_sealed_parts_verifies_before_and_after_erasure() {
        let mut builder = ChainBuilder::new(ChainId::Org(ORG));
        let mut events: Vec<AuditEvent> = [
            member_event(Actor::User(ADMIN), MEMBER),
            member_event(Actor::User(MEMBER), MEMBER),
            member_event(Actor::User(ADMIN), ADMIN),
        ]
        .into_iter()
        .map(|new| {
            let parts = fake_seal(&new);
            builder.seal_with_parts(new, parts).expect("seal")
        })
        .collect();
        assert!(verify_chain(&events, ChainId::Org(ORG)).is_intact());
        for event in &mut events {
            for i in 0..event.sealed.len() {
                if event.sealed[i].subject == DataSubject::User(MEMBER) {
                    event.erase_part(i).expect("erase");
                }
            }
        }
        assert_eq!(events[1].body.user_agent.as_deref(), Some(ERASED));
        assert!(verify_chain(&events, ChainId::Org(ORG)).is_intact());
    }
}
