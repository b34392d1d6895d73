//! Deserialization failures rewritten for people: serde's messages name Rust types
//! (`u64`, `struct OrgBody`, "untagged enum RoleChoiceDto") and its own machinery
//! ("unknown variant"). Every JSON body and query string failure passes through
//! [`for_people`] once, so a client sees one plain sentence per failed rule.

/// A failed rule: a stable machine code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plain {
    /// Stable code for the field error (`unknown_field`, `required`, `invalid_value`, …).
    pub code: &'static str,
    /// The sentence.
    pub message: String,
}

/// Rewrites one serde error message (without its " at line N column M" suffix).
#[must_use]
pub fn for_people(serde_message: &str) -> Plain {
    let msg = serde_message
        .split(" at line ")
        .next()
        .unwrap_or(serde_message);
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let (got, expected) = split_expected(rest);
        return Plain {
            code: "invalid_value",
            message: format!(
                "{} is not an accepted value; use {}",
                got,
                choices(expected)
            ),
        };
    }
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let (got, expected) = split_expected(rest);
        let message = if expected.is_empty() || rest.contains("there are no fields") {
            format!("{got} is not a field of this request")
        } else {
            format!(
                "{got} is not a field of this request; the fields are {}",
                choices(expected)
            )
        };
        return Plain {
            code: "unknown_field",
            message,
        };
    }
    if let Some(name) = msg.strip_prefix("missing field ") {
        return Plain {
            code: "required",
            message: format!("{} is required", quoted(name)),
        };
    }
    if let Some(name) = msg.strip_prefix("duplicate field ") {
        return Plain {
            code: "duplicate_field",
            message: format!("{} is given more than once", quoted(name)),
        };
    }
    if msg.starts_with("data did not match any variant") {
        return Plain {
            code: "invalid_value",
            message: "this value has none of the accepted forms (see the field's schema in the API documentation)".to_owned(),
        };
    }
    for (prefix, code) in [
        ("invalid type: ", "invalid_type"),
        ("invalid value: ", "invalid_value"),
    ] {
        if let Some(rest) = msg.strip_prefix(prefix)
            && let Some((got, expected)) = rest.split_once(", expected ")
        {
            return Plain {
                code,
                message: format!(
                    "must be {} (got {})",
                    expected_words(expected),
                    got_words(got)
                ),
            };
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid length ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        // serde accepts a struct written as a list; for people that is a list where an
        // object belongs.
        if expected.starts_with("struct ") {
            return Plain {
                code: "invalid_type",
                message: "must be an object (got a list)".to_owned(),
            };
        }
        return Plain {
            code: "invalid_length",
            message: format!("must be {} (got {got} items)", expected_words(expected)),
        };
    }
    if msg.contains("invalid digit") || msg == "cannot parse integer from empty string" {
        return Plain {
            code: "invalid_type",
            message: "must be a whole number".to_owned(),
        };
    }
    if msg.contains("number too large") || msg.contains("number too small") {
        return Plain {
            code: "invalid_value",
            message: "the number is out of range".to_owned(),
        };
    }
    if msg.starts_with("invalid float literal") {
        return Plain {
            code: "invalid_type",
            message: "must be a number".to_owned(),
        };
    }
    if msg.starts_with("provided string was not `true` or `false`") {
        return Plain {
            code: "invalid_type",
            message: "must be true or false".to_owned(),
        };
    }
    if msg.starts_with("UUID parsing failed") || msg.starts_with("invalid character") {
        return Plain {
            code: "invalid_value",
            message: "must be a UUID such as 0191c5a2-7b3e-7000-8000-000000000000".to_owned(),
        };
    }
    // Messages our own types raise (`time`'s RFC 3339 parser, domain parsers) are written
    // for people already; keep them, minus any Rust type name.
    Plain {
        code: "invalid_value",
        message: scrub(msg),
    }
}

/// `"`x`, expected one of `a`, `b`"` → (`"x"`, "one of `a`, `b`").
fn split_expected(rest: &str) -> (String, &str) {
    let (got, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let got = got.split(", there are no").next().unwrap_or(got);
    (quoted(got), expected)
}

/// serde's list of names (`one of `a`, `b``, `` `a` or `b` ``, `` `a` ``) as `"a", "b"`.
fn choices(expected: &str) -> String {
    let names: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|n| format!("\"{n}\""))
        .collect();
    match names.as_slice() {
        [] => "a documented value".to_owned(),
        [one] => one.clone(),
        many => format!("one of {}", many.join(", ")),
    }
}

/// `` `name` `` → `"name"`.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.trim().trim_matches('`'))
}

/// serde's "expected" (`u64`, `a sequence`, `struct OrgBody`, …) in plain words.
fn expected_words(expected: &str) -> String {
    let e = expected.trim();
    let plain = match e {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a string" | "a borrowed string" | "a character" | "char" | "a UUID string" => {
            if e == "a UUID string" {
                "a UUID"
            } else {
                "text"
            }
        }
        "a boolean" | "bool" => "true or false",
        "a sequence" | "a tuple" => "a list",
        "a map" => "an object",
        "unit" | "unit value" => "null",
        _ if e.starts_with("struct ") || e.starts_with("struct variant") => "an object",
        _ if e.starts_with("tuple struct ") || e.starts_with("newtype struct ") => "a value",
        _ if e.starts_with("enum ") || e.starts_with("variant identifier") => {
            "one of the documented values"
        }
        _ if e.starts_with("field identifier") => "a known field",
        _ if e.starts_with("an integer between") || e.starts_with("a value between") => e,
        _ => return scrub(e),
    };
    plain.to_owned()
}

/// serde's "unexpected" (`string "x"`, `integer `5``, `map`) in plain words.
fn got_words(got: &str) -> String {
    let g = got.trim();
    if let Some(s) = g.strip_prefix("string ") {
        return format!("the text {s}");
    }
    for (prefix, word) in [
        ("integer ", "the number "),
        ("floating point ", "the number "),
        ("boolean ", ""),
        ("char ", "the character "),
    ] {
        if let Some(v) = g.strip_prefix(prefix) {
            return format!("{word}{}", v.trim_matches('`'));
        }
    }
    match g {
        "map" => "an object".to_owned(),
        "sequence" => "a list".to_owned(),
        "unit value" | "null" => "null".to_owned(),
        "unit variant" | "newtype variant" | "tuple variant" | "struct variant" => {
            "a value of another form".to_owned()
        }
        other => scrub(other),
    }
}

/// Drops words that only mean something to a Rust programmer.
fn scrub(text: &str) -> String {
    let mut out = Vec::new();
    let mut skip_next = false;
    for word in text.split(' ') {
        if skip_next {
            skip_next = false;
            continue;
        }
        if matches!(word, "struct" | "enum" | "untagged" | "variant" | "newtype") {
            skip_next = word != "variant";
            continue;
        }
        out.push(word);
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words of serde's and Rust's vocabulary that a person should never read.
    const RUST_WORDS: [&str; 9] = [
        "variant", "untagged", "struct", "enum ", "u64", "i64", "u32", "sequence", "`",
    ];

    fn assert_plain(p: &Plain) {
        for w in RUST_WORDS {
            assert!(
                !p.message.contains(w),
                "message {:?} contains {w:?}",
                p.message
            );
        }
    }

    #[test]
    fn serde_messages_become_sentences() {
        let cases = [
            (
                "unknown variant `last_name`, expected one of `email`, `first_name`",
                "invalid_value",
                "\"last_name\" is not an accepted value; use one of \"email\", \"first_name\"",
            ),
            (
                "unknown field `nmae`, expected `name` or `rank`",
                "unknown_field",
                "\"nmae\" is not a field of this request; the fields are one of \"name\", \"rank\"",
            ),
            (
                "unknown field `x`, there are no fields",
                "unknown_field",
                "\"x\" is not a field of this request",
            ),
            ("missing field `email`", "required", "\"email\" is required"),
            (
                "data did not match any variant of untagged enum RoleChoiceDto",
                "invalid_value",
                "this value has none of the accepted forms (see the field's schema in the API documentation)",
            ),
            (
                "invalid type: string \"abc\", expected u64 at line 1 column 9",
                "invalid_type",
                "must be a whole number, 0 or more (got the text \"abc\")",
            ),
            (
                "invalid type: map, expected a string",
                "invalid_type",
                "must be text (got an object)",
            ),
            (
                "invalid type: integer `5`, expected struct OrgBody",
                "invalid_type",
                "must be an object (got the number 5)",
            ),
            (
                "invalid value: integer `300`, expected u8",
                "invalid_value",
                "must be a whole number, 0 or more (got the number 300)",
            ),
            (
                "invalid type: boolean `true`, expected a sequence",
                "invalid_type",
                "must be a list (got true)",
            ),
            (
                "invalid length 0, expected struct RegisterBody with 4 elements",
                "invalid_type",
                "must be an object (got a list)",
            ),
            (
                "invalid digit found in string",
                "invalid_type",
                "must be a whole number",
            ),
        ];
        for (input, code, message) in cases {
            let p = for_people(input);
            assert_eq!(p.code, code, "{input}");
            assert_eq!(p.message, message, "{input}");
            assert_plain(&p);
        }
    }

    #[test]
    fn unknown_messages_lose_rust_words_and_keep_the_rest() {
        let p = for_people("premature end of input");
        assert_eq!(p.message, "premature end of input");
        let p = for_people("something about enum Foo here");
        assert_eq!(p.message, "something about here");
        assert_plain(&p);
    }

    #[test]
    fn every_message_of_real_deserializers_is_plain() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code, reason = "fields exist to be deserialized")]
        struct Body {
            n: u64,
            kind: Kind,
            role: Role,
            tags: Vec<String>,
            id: uuid::Uuid,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[allow(dead_code, reason = "variants exist to be deserialized")]
        enum Kind {
            Csv,
            Xlsx,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(untagged)]
        #[allow(dead_code, reason = "variants exist to be deserialized")]
        enum Role {
            Name(Kind),
            Custom { custom_role_id: u64 },
        }
        let valid = r#"{"n":1,"kind":"csv","role":"csv","tags":[],"id":"0191c5a2-7b3e-7000-8000-000000000000"}"#;
        assert!(serde_json::from_str::<Body>(valid).is_ok());
        for bad in [
            r#"{"n":"x","kind":"csv","role":"csv","tags":[],"id":"0191c5a2-7b3e-7000-8000-000000000000"}"#,
            r#"{"n":-1,"kind":"csv","role":"csv","tags":[],"id":"0191c5a2-7b3e-7000-8000-000000000000"}"#,
            r#"{"n":1,"kind":"pdf","role":"csv","tags":[],"id":"0191c5a2-7b3e-7000-8000-000000000000"}"#,
            r#"{"n":1,"kind":"csv","role":{"x":1},"tags":[],"id":"0191c5a2-7b3e-7000-8000-000000000000"}"#,
            r#"{"n":1,"kind":"csv","role":"csv","tags":{},"id":"0191c5a2-7b3e-7000-8000-000000000000"}"#,
            r#"{"n":1,"kind":"csv","role":"csv","tags":[],"id":"nope"}"#,
            r#"{"n":1,"kind":"csv","role":"csv","tags":[],"id":"0191c5a2-7b3e-7000-8000-000000000000","zz":1}"#,
            r#"{"kind":"csv","role":"csv","tags":[],"id":"0191c5a2-7b3e-7000-8000-000000000000"}"#,
            r#"[1]"#,
        ] {
            let err = serde_json::from_str::<Body>(bad).expect_err(bad);
            let p = for_people(&err.to_string());
            assert_plain(&p);
            assert!(!p.message.is_empty(), "{bad}");
        }
    }
}
