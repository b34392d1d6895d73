//! Confirmation tokens for destructive bulk operations: an HMAC-SHA-256 tag over what
//! is about to happen and until when, under a key derived from the server's signing key
//! (so every instance sharing that key accepts them; no state is stored).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::SigningKey;

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks confirmation tokens (`<expiry unix seconds>.<hex tag>`).
#[derive(Clone)]
pub struct ConfirmationKey {
    key: [u8; 32],
}

impl std::fmt::Debug for ConfirmationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfirmationKey(***)")
    }
}

impl ConfirmationKey {
    /// The key derived from the server's signing key (SHA-256 over a purpose label and
    /// the private key bytes).
    #[must_use]
    pub fn derive(signing: &SigningKey) -> Self {
        let private = signing.key_pair().private().to_bytes();
        let mut h = Sha256::new();
        h.update(b"ptoc confirmation tokens v1\0");
        h.update(private.as_slice());
        Self {
            key: h.finalize().into(),
        }
    }

    fn mac(&self, subject: &str, expires: i64) -> HmacSha256 {
        // A key of any length is valid for HMAC.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&expires.to_be_bytes());
        mac.update(subject.as_bytes());
        mac
    }

    /// A token confirming `subject` (a canonical description of the operation) until
    /// `expires` (unix seconds).
    #[must_use]
    pub fn issue(&self, subject: &str, expires: i64) -> String {
        let tag = self.mac(subject, expires).finalize().into_bytes();
        format!("{expires}.{}", hex::encode(tag))
    }

    /// Whether `token` confirms exactly `subject` and has not expired at `now` (unix
    /// seconds). The tag is compared in constant time.
    #[must_use]
    pub fn verify(&self, token: &str, subject: &str, now: i64) -> bool {
        let Some((expires, tag)) = token.split_once('.') else {
            return false;
        };
        let (Ok(expires), Ok(tag)) = (expires.parse::<i64>(), hex::decode(tag)) else {
            return false;
        };
        expires >= now && self.mac(subject, expires).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_confirm_exactly_their_subject_until_they_expire() {
        let key = ConfirmationKey::derive(&SigningKey::generate());
        let t = key.issue("remove|org|a,b", 1_000);
        assert!(key.verify(&t, "remove|org|a,b", 999));
        assert!(key.verify(&t, "remove|org|a,b", 1_000));
        assert!(!key.verify(&t, "remove|org|a,b", 1_001), "expired");
        assert!(!key.verify(&t, "remove|org|a,b,c", 999), "another subject");
        let forged = t.replacen("1000.", "2000.", 1);
        assert!(
            !key.verify(&forged, "remove|org|a,b", 999),
            "expiry is signed"
        );
        let other = ConfirmationKey::derive(&SigningKey::generate());
        assert!(
            !other.verify(&t, "remove|org|a,b", 999),
            "another server key"
        );
        for bad in ["", ".", "x.y", "1000.zz", "1000"] {
            assert!(!key.verify(bad, "remove|org|a,b", 0), "{bad:?}");
        }
    }
}
