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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonLimitError {
    /// Objects/arrays nested deeper than `max_depth`.
    TooDeep(usize),
    /// A string longer than `max_string_bytes`.
    StringTooLong(usize),
    /// An array with more than `max_array_items` items.
    TooManyItems(usize),
}

impl JsonLimitError {
    /// The field-error code clients see.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::TooDeep(_) => "too_deep",
            Self::StringTooLong(_) => "too_long",
            Self::TooManyItems(_) => "too_many_items",
        }
    }

    /// A sentence for the client.
    #[must_use]
    pub fn message(self) -> String {
        match self {
            Self::TooDeep(n) => format!("the body nests objects and arrays deeper than {n}"),
            Self::StringTooLong(n) => format!("the body holds a string longer than {n} bytes"),
            Self::TooManyItems(n) => format!("the body holds an array of more than {n} items"),
        }
    }
}

/// Checks `body` against `limits`. Lenient about syntax (serde reports that); only the
/// structure is measured.
///
/// # Errors
/// The first limit broken.
pub fn check(body: &[u8], limits: JsonLimits) -> Result<(), JsonLimitError> {
    // Per open container: `Some(commas seen)` for arrays, `None` for objects.
    let mut stack: Vec<Option<usize>> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut string_len = 0usize;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                continue;
            }
            string_len += 1;
            if string_len > limits.max_string_bytes {
                return Err(JsonLimitError::StringTooLong(limits.max_string_bytes));
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_len = 0;
            }
            b'{' | b'[' => {
                if stack.len() >= limits.max_depth {
                    return Err(JsonLimitError::TooDeep(limits.max_depth));
                }
                stack.push((b == b'[').then_some(0));
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(Some(commas)) = stack.last_mut() {
                    *commas += 1;
                    // n commas separate n + 1 items.
                    if *commas >= limits.max_array_items {
                        return Err(JsonLimitError::TooManyItems(limits.max_array_items));
                    }
                }
            }
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
    fn deep_nesting_is_refused_before_serde_would_recurse() {
        let deep = "[".repeat(10_000);
        assert_eq!(
            check(deep.as_bytes(), JsonLimits::DEFAULT),
            Err(JsonLimitError::TooDeep(32))
        );
    }
}
