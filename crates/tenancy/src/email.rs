use serde::{Deserialize, Serialize};
use std::fmt;

/// A syntactically valid e-mail address, normalized for case-insensitive identity.
///
/// The whole address is lower-cased: two addresses that differ only in case are the same
/// account (the spec's "unique case-insensitive email").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// Why a string is not an acceptable e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Empty after trimming.
    #[error("email is empty")]
    Empty,
    /// Longer than the 254 characters RFC 5321 allows.
    #[error("email is longer than 254 characters")]
    TooLong,
    /// Not of the form `local@domain.tld`.
    #[error("email must look like name@example.org")]
    Malformed,
}

impl Email {
    /// Parses and normalizes an address (trimmed, lower-cased).
    ///
    /// ```
    /// let e = tenancy::Email::parse("  Jane.Doe@Example.ORG ").unwrap();
    /// assert_eq!(e.as_str(), "jane.doe@example.org");
    /// assert!(tenancy::Email::parse("not-an-email").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = s.split_once('@').ok_or(EmailError::Malformed)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local
                .chars()
                .any(|c| c.is_whitespace() || c == '@' || c.is_control());
        if !(domain_ok && local_ok) {
            return Err(EmailError::Malformed);
        }
        Ok(Self(s.to_lowercase()))
    }

    /// The normalized address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_whitespace() {
        assert_eq!(
            Email::parse(" A@B.Co ").map(|e| e.0),
            Ok("a@b.co".to_owned())
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a@.b", "a@b..co", "a b@c.de", "a@b_c.de",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(Email::parse(&"a".repeat(260)), Err(EmailError::TooLong));
    }
}
