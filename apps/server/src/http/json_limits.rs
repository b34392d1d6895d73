//! Structural limits on JSON bodies, checked in one pass over the bytes before serde
//! sees them: nesting depth, string length and array length. A body over a limit is a
//! 422 naming the limit, never a deep recursion or a large allocation.

/// The limits a JSON body must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting of objects and arrays.
    pub max_depth: usize,
    /// Longest string (key or value), in bytes as sent (escapes count as written).
    pub max_string_bytes: usize,
    /// Most items in one array.
    pub max_array_items: usize,
}

impl JsonLimits {
    /// The limits of every JSON body: depth 32, strings of 16 KiB, arrays of 1,000.
    pub const DEFAULT: Self = Self {
        max_depth: 32,
        max_string_bytes: 16 * 1024,
        max_array_items: 1_000,
    };
}

/// Which limit a body broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonLimitError {
    /// Objects/arrays nested deeper than `max_depth`.
    TooDeep(usize),
    /// A string longer than `max_string_bytes`.
    StringTooLong(usize),
    /// An array with more than `max_array_items` items.
    TooManyItems(usize),
    /// A string holds a control character ([`tenancy::text::is_forbidden`]), raw or
    /// escaped (`\u0000`), at `path` (`changes[0].key`, as serde names fields).
    ControlCharacter {
        /// Where, as a field path (empty: a top-level string).
        path: String,
        /// The character.
        found: char,
    },
}

impl JsonLimitError {
    /// The field-error code clients see.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooDeep(_) => "too_deep",
            Self::StringTooLong(_) => "too_long",
            Self::TooManyItems(_) => "too_many_items",
            Self::ControlCharacter { .. } => "control_character",
        }
    }

    /// The field the error is about (empty: the body as a whole).
    #[must_use]
    pub fn field(&self) -> String {
        match self {
            Self::ControlCharacter { path, .. } => path.clone(),
            _ => String::new(),
        }
    }

    /// A sentence for the client.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Self::TooDeep(n) => format!("the body nests objects and arrays deeper than {n}"),
            Self::StringTooLong(n) => format!("the body holds a string longer than {n} bytes"),
            Self::TooManyItems(n) => format!("the body holds an array of more than {n} items"),
            Self::ControlCharacter { found, .. } => tenancy::text::forbidden_message(*found),
        }
    }
}

/// An open container while scanning.
enum Frame {
    /// An object: the last key seen (raw, capped) and whether a key comes next.
    Object { key: Vec<u8>, expecting_key: bool },
    /// An array: the index of the current item.
    Array { index: usize },
}

/// The longest key kept for error paths.
const MAX_PATH_KEY: usize = 128;

fn path_of(stack: &[Frame]) -> String {
    let mut out = String::new();
    for frame in stack {
        match frame {
            Frame::Object { key, .. } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&String::from_utf8_lossy(key));
            }
            Frame::Array { index } => {
                out.push_str(&format!("[{index}]"));
            }
        }
    }
    out
}

/// Where the scanner is inside a string.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Plain characters.
    None,
    /// Just after a backslash.
    Backslash,
    /// Inside `\uXXXX`: the value so far and the digits read.
    Unicode(u32, u8),
}

/// Checks `body` against `limits`, and that no string holds a control character.
/// Lenient about syntax (serde reports that); only the structure and the characters
/// of strings are looked at.
///
/// # Errors
/// The first limit broken.
pub fn check(body: &[u8], limits: JsonLimits) -> Result<(), JsonLimitError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut in_string = false;
    let mut is_key = false;
    let mut escape = Escape::None;
    let mut string_len = 0usize;
    let mut prev = 0u8;
    let control = |stack: &[Frame], found: char| JsonLimitError::ControlCharacter {
        path: path_of(stack),
        found,
    };
    for &b in body {
        if in_string {
            match escape {
                Escape::Backslash => {
                    escape = Escape::None;
                    match b {
                        b'u' => escape = Escape::Unicode(0, 0),
                        // The short escapes of control characters (`\t`, `\n`, `\r` are text).
                        b'b' => return Err(control(&stack, '\u{8}')),
                        b'f' => return Err(control(&stack, '\u{c}')),
                        _ => {}
                    }
                }
                Escape::Unicode(value, digits) => {
                    let digit = char::from(b).to_digit(16).unwrap_or(0);
                    let value = value * 16 + digit;
                    if digits == 3 {
                        escape = Escape::None;
                        if let Some(c) = char::from_u32(value)
                            && tenancy::text::is_forbidden(c)
                        {
                            return Err(control(&stack, c));
                        }
                    } else {
                        escape = Escape::Unicode(value, digits + 1);
                    }
                }
                Escape::None => {
                    if b == b'\\' {
                        escape = Escape::Backslash;
                    } else if b == b'"' {
                        in_string = false;
                        continue;
                    } else if b < 0x20 || b == 0x7f {
                        return Err(control(&stack, char::from(b)));
                    } else if prev == 0xc2 && (0x80..=0x9f).contains(&b) {
                        // U+0080..U+009F (C1) in UTF-8.
                        return Err(control(&stack, char::from(b)));
                    }
                }
            }
            prev = b;
            string_len += 1;
            if string_len > limits.max_string_bytes {
                return Err(JsonLimitError::StringTooLong(limits.max_string_bytes));
            }
            if is_key
                && let Some(Frame::Object { key, .. }) = stack.last_mut()
                && key.len() < MAX_PATH_KEY
            {
                key.push(b);
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_len = 0;
                prev = 0;
                is_key = false;
                if let Some(Frame::Object { key, expecting_key }) = stack.last_mut()
                    && *expecting_key
                {
                    key.clear();
                    is_key = true;
                }
            }
            b':' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = false;
                }
            }
            b'{' | b'[' => {
                if stack.len() >= limits.max_depth {
                    return Err(JsonLimitError::TooDeep(limits.max_depth));
                }
                stack.push(if b == b'[' {
                    Frame::Array { index: 0 }
                } else {
                    Frame::Object {
                        key: Vec::new(),
                        expecting_key: true,
                    }
                });
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => {
                    *index += 1;
                    // n commas separate n + 1 items.
                    if *index >= limits.max_array_items {
                        return Err(JsonLimitError::TooManyItems(limits.max_array_items));
                    }
                }
                Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                None => {}
            },
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: JsonLimits = JsonLimits {
        max_depth: 3,
        max_string_bytes: 5,
        max_array_items: 3,
    };

    #[test]
    fn measures_depth_strings_and_arrays() {
        assert_eq!(check(br#"{"a":[[1]]}"#, SMALL), Ok(()));
        assert_eq!(
            check(br#"{"a":[[[1]]]}"#, SMALL),
            Err(JsonLimitError::TooDeep(3))
        );
        assert_eq!(check(br#"{"abcde":"12345"}"#, SMALL), Ok(()));
        assert_eq!(
            check(br#"{"a":"123456"}"#, SMALL),
            Err(JsonLimitError::StringTooLong(5))
        );
        assert_eq!(check(b"[1,2,3]", SMALL), Ok(()));
        assert_eq!(
            check(b"[1,2,3,4]", SMALL),
            Err(JsonLimitError::TooManyItems(3))
        );
        // Commas between object members and inside strings are not array items.
        assert_eq!(check(br#"{"a":1,"b":2,"c":3,"d":4}"#, SMALL), Ok(()));
        assert_eq!(
            check(br#"["a,b,c,d"]"#, SMALL),
            Err(JsonLimitError::StringTooLong(5))
        );
        assert_eq!(check(br#"["a,b"]"#, SMALL), Ok(()));
        // Brackets and escaped quotes inside strings do not count.
        assert_eq!(check(br#"["[[\"{"]"#, SMALL), Ok(()));
    }

    #[test]
    fn control_characters_are_refused_raw_or_escaped_with_their_field() {
        let err = |body: &[u8]| check(body, JsonLimits::DEFAULT).expect_err("refused");
        let e = err(br#"{"name":"a\u0000b"}"#);
        assert_eq!(e.code(), "control_character");
        assert_eq!(e.field(), "name");
        assert_eq!(
            e.message(),
            "control characters are not allowed (found U+0000)"
        );
        let e = err(br#"{"changes":[{"key":"x"},{"key":"\u001B"}]}"#);
        assert_eq!(e.field(), "changes[1].key");
        let e = err(b"{\"a\":{\"b\":\"x\x7fy\"}}");
        assert_eq!(e.field(), "a.b");
        let e = err("{\"c\":\"x\u{85}\"}".as_bytes());
        assert_eq!(e.field(), "c");
        let e = err(b"{\"raw\":\"a\x00\"}");
        assert_eq!(e.field(), "raw");
        // In a key, too, and as a short escape.
        assert_eq!(err(br#"{"k\u0000":1}"#).code(), "control_character");
        assert_eq!(err(br#"{"a":"x\by"}"#).field(), "a");
        assert_eq!(err(br#"{"a":"x\fy"}"#).field(), "a");
        // Tab and line breaks, other escapes, and the escaped backslash before `u` pass.
        for ok in [
            br#"{"a":"x\ty\nz\r\"q\\u0000"}"#.as_slice(),
            br#"{"a":"\u00e9\u674e\ud83d\ude00","b":["\t"]}"#,
            "{\"a\":\"é 李 \u{a0}\"}".as_bytes(),
        ] {
            assert_eq!(
                check(ok, JsonLimits::DEFAULT),
                Ok(()),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_serde_would_recurse() {
        let deep = "[".repeat(10_000);
        assert_eq!(
            check(deep.as_bytes(), JsonLimits::DEFAULT),
            Err(JsonLimitError::TooDeep(32))
        );
    }
}
