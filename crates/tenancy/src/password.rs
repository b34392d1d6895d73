use std::fmt;

/// A password that meets the policy: 12 to 128 characters, not only white space.
///
/// Never printed: `Debug` and `Display` are redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// Why a password is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than 12 characters.
    #[error("password must have at least 12 characters")]
    TooShort,
    /// More than 128 characters.
    #[error("password must have at most 128 characters")]
    TooLong,
    /// Only white space.
    #[error("password must not be only white space")]
    Blank,
}

impl Password {
    /// Minimum length in characters.
    pub const MIN_CHARS: usize = 12;
    /// Maximum length in characters.
    pub const MAX_CHARS: usize = 128;

    /// Checks a candidate password against the policy.
    pub fn parse(raw: String) -> Result<Self, PasswordError> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(PasswordError::TooShort);
        }
        if n > Self::MAX_CHARS {
            return Err(PasswordError::TooLong);
        }
        if raw.trim().is_empty() {
            return Err(PasswordError::Blank);
        }
        Ok(Self(raw))
    }

    /// The secret itself, for hashing.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert_eq!(
            Password::parse("short".into()),
            Err(PasswordError::TooShort)
        );
        assert_eq!(Password::parse(" ".repeat(12)), Err(PasswordError::Blank));
        assert_eq!(
            Password::parse("x".repeat(129)),
            Err(PasswordError::TooLong)
        );
        let ok = Password::parse("correct horse battery".into()).expect("valid");
        assert_eq!(format!("{ok:?}"), "Password(***)");
    }
}
