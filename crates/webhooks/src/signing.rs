//! Standard Webhooks 1.0 signing (<https://www.standardwebhooks.com/>).
//!
//! A message is sent with three headers: `webhook-id` (the message id, the same on every
//! attempt, so receivers can de-duplicate), `webhook-timestamp` (unix seconds of the
//! attempt) and `webhook-signature`: `v1,<base64 of HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`,
//! several space-separated while a rotated secret is still valid. Secrets are
//! `whsec_<base64 of 24–32 random bytes>`; the HMAC key is the decoded bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of every secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest random bytes in a secret.
pub const SECRET_MIN_BYTES: usize = 24;
/// Most random bytes in a secret.
pub const SECRET_MAX_BYTES: usize = 32;
/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: time::Duration = time::Duration::hours(24);

/// An endpoint's signing secret. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a secret was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not `whsec_` followed by base64.
    #[error("a secret is `whsec_` followed by base64")]
    Malformed,
    /// Fewer than 24 or more than 32 bytes.
    #[error("a secret has 24 to 32 bytes")]
    Length,
}

impl Secret {
    /// A secret of these random bytes (24–32 of them).
    ///
    /// # Errors
    /// [`SecretError::Length`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        if (SECRET_MIN_BYTES..=SECRET_MAX_BYTES).contains(&bytes.len()) {
            Ok(Self(bytes.to_vec()))
        } else {
            Err(SecretError::Length)
        }
    }

    /// Parses `whsec_<base64>`.
    ///
    /// # Errors
    /// [`SecretError`].
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let b64 = s
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::Malformed)?;
        let bytes = STANDARD.decode(b64).map_err(|_| SecretError::Malformed)?;
        Self::from_bytes(&bytes)
    }

    /// The secret as shown once to its owner: `whsec_<base64>`.
    #[must_use]
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The raw key bytes (to seal them at rest).
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// `v1,<base64 signature>` of one message.
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// Whether one of the space-separated `v1,` signatures of `header` is this secret's
    /// for the message (constant-time comparison).
    #[must_use]
    pub fn verifies(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header.split(' ').any(|sig| {
            sig.strip_prefix("v1,")
                .and_then(|b64| STANDARD.decode(b64).ok())
                .is_some_and(|tag| self.mac(id, timestamp, body).verify_slice(&tag).is_ok())
        })
    }
}

/// The secrets an endpoint signs with: its current one and, for a while after a
/// rotation, the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeys {
    /// The current secret.
    pub current: Secret,
    /// The previous secret and until when it still signs.
    pub previous: Option<(Secret, OffsetDateTime)>,
}

impl SigningKeys {
    /// The secrets that sign at `now`: the current one first.
    #[must_use]
    pub fn active(&self, now: OffsetDateTime) -> Vec<&Secret> {
        let mut out = vec![&self.current];
        if let Some((previous, until)) = &self.previous
            && *until > now
        {
            out.push(previous);
        }
        out
    }

    /// The three headers of one attempt of message `id` at `now`.
    #[must_use]
    pub fn headers(&self, id: &str, now: OffsetDateTime, body: &[u8]) -> SignedHeaders {
        let timestamp = now.unix_timestamp();
        let signature = self
            .active(now)
            .iter()
            .map(|s| s.sign(id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ");
        SignedHeaders {
            id: id.to_owned(),
            timestamp,
            signature,
        }
    }
}

/// `webhook-id`, `webhook-timestamp` and `webhook-signature` of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp` (unix seconds).
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
}

impl SignedHeaders {
    /// The headers as (name, value) pairs.
    #[must_use]
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            ("webhook-id", self.id.clone()),
            ("webhook-timestamp", self.timestamp.to_string()),
            ("webhook-signature", self.signature.clone()),
        ]
    }
}

/// The `webhook-id` of a delivery: `msg_` and its id (stable across attempts and manual
/// redeliveries).
#[must_use]
pub fn message_id(delivery: uuid::Uuid) -> String {
    format!("msg_{}", delivery.simple())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks reference libraries' tests.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1_614_265_330;
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign(id, ts, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(secret.verifies(
            id,
            ts,
            body,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
        assert!(!secret.verifies(
            id,
            ts + 1,
            body,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
    }

    #[test]
    fn secrets_round_trip_and_have_bounded_length() {
        let s = Secret::from_bytes(&[7; 32]).expect("32 bytes");
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(Secret::parse(&s.expose()).expect("parse"), s);
        assert_eq!(Secret::from_bytes(&[1; 23]), Err(SecretError::Length));
        assert_eq!(Secret::from_bytes(&[1; 33]), Err(SecretError::Length));
        assert_eq!(Secret::parse("sk_abc"), Err(SecretError::Malformed));
        assert_eq!(Secret::parse("whsec_!!"), Err(SecretError::Malformed));
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn during_rotation_both_secrets_sign_then_only_the_new_one() {
        let old = Secret::from_bytes(&[1; 24]).expect("old");
        let new = Secret::from_bytes(&[2; 24]).expect("new");
        let rotated = datetime!(2026-12-06 12:00 UTC);
        let keys = SigningKeys {
            current: new.clone(),
            previous: Some((old.clone(), rotated + ROTATION_OVERLAP)),
        };
        let during = keys.headers("msg_1", rotated + time::Duration::hours(1), b"{}");
        let parts: Vec<&str> = during.signature.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(new.verifies("msg_1", during.timestamp, b"{}", parts[0]));
        assert!(old.verifies("msg_1", during.timestamp, b"{}", parts[1]));
        assert!(!new.verifies("msg_1", during.timestamp, b"{}", parts[1]));
        let after = keys.headers("msg_1", rotated + time::Duration::hours(25), b"{}");
        assert_eq!(after.signature.split(' ').count(), 1);
        assert!(!old.verifies("msg_1", after.timestamp, b"{}", &after.signature));
        assert!(new.verifies("msg_1", after.timestamp, b"{}", &after.signature));
    }

    #[test]
    fn message_ids_are_stable_per_delivery() {
        let d = uuid::Uuid::now_v7();
        assert_eq!(message_id(d), message_id(d));
        assert!(message_id(d).starts_with("msg_"));
    }
}
