//! Property tests ("fuzz targets" run in CI) for every parser we own that sees client
//! input: the JSON body decoder, the structural JSON limits, the member-list cursor,
//! the search text and signup codes. Each must never panic on any input, and what it
//! accepts must behave (round trips, stated bounds, 4xx never 5xx). The member-list
//! query string is exercised through the real `Query` extractor by the API test
//! `hardening::…member_list_query_strings_never_fail_the_server`.

use proptest::prelude::*;
use tenancy::SignupCode;
use tenancy::directory::{MemberCursor, MemberSort, SortKey};
use tenancy::search::{SearchQuery, SearchQueryError};

use super::extract::decode_body;
use super::json_limits::{JsonLimits, check};

#[derive(Debug, serde::Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "fields exist to be deserialized")]
struct Body {
    #[garde(length(chars, min = 1, max = 50))]
    name: String,
    #[garde(range(max = 10))]
    count: Option<u8>,
    #[garde(skip)]
    tags: Option<Vec<String>>,
    #[garde(skip)]
    nested: Option<Box<Body>>,
}

/// Arbitrary JSON values, nested up to 48 levels (beyond the depth limit).
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(48, 256, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("name".to_owned()),
                    Just("count".to_owned()),
                    Just("tags".to_owned()),
                    Just("nested".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn sort() -> impl Strategy<Value = MemberSort> {
    prop_oneof![
        Just(MemberSort::Name),
        Just(MemberSort::Email),
        Just(MemberSort::Joined),
        Just(MemberSort::LastActive),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes: a value or a 422, never a panic or a 5xx.
    #[test]
    fn json_bodies_of_any_bytes_are_decoded_or_refused_with_422(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = decode_body::<Body>(&bytes) {
            prop_assert_eq!(e.code.status().as_u16(), 422);
        }
    }

    /// Any JSON document: accepted values passed validation; the rest is a 422 naming
    /// a field error, and documents deeper than the limit are refused as such.
    #[test]
    fn json_bodies_of_any_shape_are_decoded_or_refused_with_422(value in json_value()) {
        let text = serde_json::to_vec(&value).unwrap_or_default();
        match decode_body::<Body>(&text) {
            Ok(body) => prop_assert!(!body.name.is_empty() && body.name.chars().count() <= 50),
            Err(e) => {
                prop_assert_eq!(e.code.status().as_u16(), 422);
                let details = e.details.unwrap_or_default();
                prop_assert!(details["fields"].as_array().is_some_and(|f| !f.is_empty()));
            }
        }
    }

    /// The limits scanner agrees with a tree walk of the parsed document.
    #[test]
    fn json_limits_measure_what_serde_parses(value in json_value()) {
        fn depth(v: &serde_json::Value) -> usize {
            match v {
                serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        fn control(v: &serde_json::Value) -> bool {
            let bad = |s: &str| tenancy::text::first_forbidden(s).is_some();
            match v {
                serde_json::Value::String(s) => bad(s),
                serde_json::Value::Array(a) => a.iter().any(control),
                serde_json::Value::Object(o) => o.iter().any(|(k, v)| bad(k) || control(v)),
                _ => false,
            }
        }
        let text = serde_json::to_vec(&value).unwrap_or_default();
        let limits = JsonLimits { max_depth: 8, max_string_bytes: 1 << 20, max_array_items: 1 << 20 };
        let result = check(&text, limits);
        if depth(&value) > 8 {
            prop_assert!(result.is_err());
        } else {
            prop_assert_eq!(result.is_ok(), !control(&value), "{:?}", result);
        }
    }

    /// Cursor decoding never panics on any text.
    #[test]
    fn cursors_of_any_text_decode_or_are_refused(text in ".{0,300}", sort in sort(), desc in any::<bool>()) {
        let _ = MemberCursor::decode(&text, sort, desc);
    }

    /// Nor on any hex-encoded bytes (past the hex layer, into the fields).
    #[test]
    fn cursors_of_any_bytes_decode_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..200), sort in sort(), desc in any::<bool>()) {
        let _ = MemberCursor::decode(&hex(&bytes), sort, desc);
    }

    /// A decoded cursor re-encodes to itself, and only fits its own sort and order.
    #[test]
    fn cursors_round_trip_and_bind_their_order(
        sort in sort(),
        desc in any::<bool>(),
        user in any::<u128>(),
        key in "[^|\u{1f}]{0,40}",
        last in "[a-z ]{0,20}",
        secs in 0i64..4_000_000_000,
    ) {
        let key = match sort {
            MemberSort::Name => format!("{last}\u{1f}{key}"),
            MemberSort::Email => key,
            MemberSort::Joined | MemberSort::LastActive => {
                let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
            }
        };
        let raw = format!("{}|{}|{}|{}", sort.as_str(), if desc { "d" } else { "a" }, uuid::Uuid::from_u128(user), key);
        let cursor = MemberCursor::decode(&hex(raw.as_bytes()), sort, desc);
        prop_assert!(cursor.is_ok(), "{raw:?}");
        let cursor = cursor.unwrap_or_else(|_| unreachable!());
        if sort == MemberSort::Email {
            prop_assert!(matches!(cursor.key, SortKey::Email(_)));
        }
        prop_assert_eq!(MemberCursor::decode(&cursor.encode(), sort, desc), Ok(cursor.clone()));
        prop_assert!(MemberCursor::decode(&cursor.encode(), sort, !desc).is_err());
    }

    /// Search text: accepted queries respect the stated bounds; parsing is stable.
    #[test]
    fn search_text_parses_within_its_bounds(text in ".{0,120}") {
        match SearchQuery::parse(&text) {
            Ok(q) => {
                prop_assert!(!q.words().is_empty() && q.words().len() <= SearchQuery::MAX_WORDS);
                prop_assert!(q.words().iter().all(|w| !w.is_empty() && !w.contains(' ')));
                prop_assert_eq!(SearchQuery::parse(&q.words().join(" ")), Ok(q.clone()));
            }
            Err(SearchQueryError::TooLong) => {
                prop_assert!(text.chars().count() > SearchQuery::MAX_CHARS);
            }
            Err(_) => prop_assert!(text.chars().count() <= SearchQuery::MAX_CHARS),
        }
    }

    /// Signup codes: a parsed code is in normal form (parsing it again is the identity).
    #[test]
    fn signup_codes_parse_to_a_normal_form(text in ".{0,40}") {
        if let Ok(code) = SignupCode::parse(&text) {
            prop_assert_eq!(SignupCode::parse(code.as_str()), Ok(code.clone()));
        }
    }

    /// Signup-code-like input (letters, digits, separators, case) exercises the accepting paths.
    #[test]
    fn signup_code_like_input_parses_to_a_normal_form(text in "[ a-zA-Z0-9_-]{0,24}") {
        if let Ok(code) = SignupCode::parse(&text) {
            prop_assert_eq!(SignupCode::parse(code.as_str()), Ok(code.clone()));
        }
    }
}
