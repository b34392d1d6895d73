//! One-time tokens sent by e-mail: invitation links, address verification, password
//! reset. A token is 244 random bits (two UUID v4, from the operating system's CSPRNG)
//! written as 64 hex digits; only its SHA-256 digest is stored, so a copy of the
//! database opens nothing. Lookups go by digest (an index, not a comparison of secrets).

use std::fmt;

use sha2::{Digest, Sha256};
use time::Duration;

/// How long an address-verification link works.
pub const VERIFY_EMAIL_TTL: Duration = Duration::days(2);

/// How long a password-reset link works.
pub const PASSWORD_RESET_TTL: Duration = Duration::hours(1);

/// A one-time token as sent to its owner. Never logged: its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeToken(String);

impl OneTimeToken {
    /// A fresh random token.
    #[must_use]
    pub fn generate() -> Self {
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        Self(format!("{}{}", a.simple(), b.simple()))
    }

    /// A token as a client sent it back; `None` unless it has a token's shape (64
    /// lower-case hex digits), so nothing else is ever looked up.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(s.to_owned()))
    }

    /// The token itself, for the link in its e-mail only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its digest: what is stored and looked up.
    #[must_use]
    pub fn digest(&self) -> String {
        hex_digest(&Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for OneTimeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeToken(***)")
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What an account token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Proves the address it was sent to.
    VerifyEmail,
    /// Sets a new password.
    PasswordReset,
    /// Proves a new address of an e-mail change (the row's address), which then
    /// becomes the account's.
    ChangeEmail,
}

impl TokenPurpose {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
            Self::ChangeEmail => "change_email",
        }
    }
}

/// Why a token opens nothing. The three are told apart so a person knows what to do
/// (ask for a new link); none tells whether an account exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    /// No such token (mistyped, or replaced by a newer one).
    #[error("the link is not valid")]
    Unknown,
    /// It expired.
    #[error("the link has expired")]
    Expired,
    /// It was used already.
    #[error("the link was used already")]
    Used,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_only_their_shape_parses() {
        let a = OneTimeToken::generate();
        let b = OneTimeToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
        assert_eq!(OneTimeToken::parse(a.expose()), Some(a.clone()));
        assert_eq!(OneTimeToken::parse(&a.expose().to_uppercase()), None);
        assert_eq!(OneTimeToken::parse("' OR 1=1 --"), None);
        assert_eq!(a.digest().len(), 64);
        assert_ne!(a.digest(), a.expose());
        assert_eq!(format!("{a:?}"), "OneTimeToken(***)");
    }

    #[test]
    fn the_digest_is_sha256_of_the_token_text() {
        let t = OneTimeToken("0".repeat(64));
        assert_eq!(
            t.digest(),
            "60e05bd1b195af2f94112fa7197a5c88289058840ce7c6df9693756bc6250f55"
        );
    }
}
