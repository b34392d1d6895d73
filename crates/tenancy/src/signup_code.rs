use serde::{Deserialize, Serialize};
use std::fmt;

/// An organization's signup code, normalized: upper-case ASCII letters and digits,
/// 4 to 32 characters. Separators people type (spaces, `-`, `_`) are dropped, so
/// `sunset-2024` and `SUNSET2024` are the same code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SignupCode(String);

/// Why a string is not an acceptable signup code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignupCodeError {
    /// Fewer than 4 significant characters.
    #[error("signup code must have at least 4 letters or digits")]
    TooShort,
    /// More than 32 significant characters.
    #[error("signup code must have at most 32 letters or digits")]
    TooLong,
    /// Contains something other than letters, digits and separators.
    #[error("signup code may contain only letters, digits, spaces, '-' and '_'")]
    InvalidCharacter,
}

impl SignupCode {
    /// Parses and normalizes a signup code.
    ///
    /// ```
    /// let c = tenancy::SignupCode::parse(" sunset-2024 ").unwrap();
    /// assert_eq!(c.as_str(), "SUNSET2024");
    /// ```
    pub fn parse(raw: &str) -> Result<Self, SignupCodeError> {
        let mut out = String::with_capacity(raw.len());
        for c in raw.chars() {
            match c {
                ' ' | '-' | '_' | '\t' => {}
                c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_uppercase()),
                _ => return Err(SignupCodeError::InvalidCharacter),
            }
        }
        match out.len() {
            0..4 => Err(SignupCodeError::TooShort),
            4..=32 => Ok(Self(out)),
            _ => Err(SignupCodeError::TooLong),
        }
    }

    /// A code made from random bytes: 10 characters from an alphabet without look-alikes
    /// (no 0/O, 1/I). Infallible: every such string is a valid code.
    #[must_use]
    pub fn from_random(bytes: [u8; 10]) -> Self {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        Self(
            bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(*b) % 32]))
                .collect(),
        )
    }

    /// The normalized code.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SignupCode {
    type Error = SignupCodeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SignupCode> for String {
    fn from(value: SignupCode) -> Self {
        value.0
    }
}

impl fmt::Display for SignupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(
            SignupCode::parse("ab_c-1 2").map(|c| c.0),
            Ok("ABC12".into())
        );
    }

    #[test]
    fn random_codes_are_valid() {
        let c = SignupCode::from_random([0, 1, 2, 3, 4, 5, 6, 7, 8, 255]);
        assert_eq!(SignupCode::parse(c.as_str()), Ok(c.clone()));
        assert_eq!(c.as_str().len(), 10);
    }

    #[test]
    fn rejects() {
        assert_eq!(SignupCode::parse("ab"), Err(SignupCodeError::TooShort));
        assert_eq!(
            SignupCode::parse(&"A".repeat(33)),
            Err(SignupCodeError::TooLong)
        );
        assert_eq!(
            SignupCode::parse("ABC!D"),
            Err(SignupCodeError::InvalidCharacter)
        );
        assert_eq!(
            SignupCode::parse("ÄBCD"),
            Err(SignupCodeError::InvalidCharacter)
        );
    }
}
