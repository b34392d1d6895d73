use serde::{Deserialize, Serialize};
use std::fmt;

/// A district's or school's short code, normalized: upper-case ASCII letters, digits and
/// `-`, 2 to 32 characters, starting with a letter or digit (e.g. `SPRINGFIELD-USD`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DistrictCode(String);

/// Why a string is not an acceptable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DistrictCodeError {
    /// Fewer than 2 characters after trimming.
    #[error("code must have at least 2 characters")]
    TooShort,
    /// More than 32 characters.
    #[error("code must have at most 32 characters")]
    TooLong,
    /// Contains a character other than letters, digits, spaces and '-'.
    #[error("code may contain only letters, digits and '-'")]
    InvalidCharacter,
}

impl DistrictCode {
    /// Parses and normalizes a code: trimmed, upper-cased, inner spaces become `-`.
    ///
    /// ```
    /// let c = districts::DistrictCode::parse(" springfield usd ").unwrap();
    /// assert_eq!(c.as_str(), "SPRINGFIELD-USD");
    /// ```
    pub fn parse(raw: &str) -> Result<Self, DistrictCodeError> {
        let s = raw.trim();
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                ' ' | '-' => {
                    if !out.ends_with('-') {
                        out.push('-');
                    }
                }
                c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_uppercase()),
                _ => return Err(DistrictCodeError::InvalidCharacter),
            }
        }
        let out = out.trim_matches('-').to_owned();
        match out.len() {
            0..2 => Err(DistrictCodeError::TooShort),
            2..=32 => Ok(Self(out)),
            _ => Err(DistrictCodeError::TooLong),
        }
    }

    /// The normalized code.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DistrictCode {
    type Error = DistrictCodeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DistrictCode> for String {
    fn from(value: DistrictCode) -> Self {
        value.0
    }
}

impl fmt::Display for DistrictCode {
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
            DistrictCode::parse("a  b--c").map(|c| c.0),
            Ok("A-B-C".into())
        );
        assert_eq!(DistrictCode::parse("-x1-").map(|c| c.0), Ok("X1".into()));
    }

    #[test]
    fn rejects() {
        assert_eq!(DistrictCode::parse(" - "), Err(DistrictCodeError::TooShort));
        assert_eq!(
            DistrictCode::parse("a/b"),
            Err(DistrictCodeError::InvalidCharacter)
        );
        assert_eq!(
            DistrictCode::parse(&"a".repeat(40)),
            Err(DistrictCodeError::TooLong)
        );
    }
}
