//! Account secrets other than passwords: opaque random tokens (refresh tokens, sign-in
//! challenges), recovery codes, and TOTP (RFC 6238) secrets sealed at rest.
//!
//! Tokens and codes carry at least 128 random bits, are stored only as their SHA-256
//! ([`digest_hex`]) and looked up by it: the secret itself is never stored, logged or
//! compared byte by byte. TOTP secrets must be recoverable to check codes, so they are
//! encrypted (XChaCha20-Poly1305, the user id as associated data) under a key derived
//! from the server's signing key ([`TotpKey`]).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::SigningKey;

/// Why a secret could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The operating system's random source failed.
    #[error("the random source failed: {0}")]
    Random(String),
    /// A sealed secret does not open under this key (tampered, another user's, or
    /// another server key).
    #[error("a sealed secret does not open")]
    Unsealable,
    /// The TOTP parameters were refused.
    #[error("TOTP: {0}")]
    Totp(String),
}

fn random<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(buf)
}

/// A fresh opaque token: `<prefix>_` and 256 random bits in hex.
///
/// # Errors
/// The random source failed.
pub fn random_token(prefix: &str) -> Result<String, SecretError> {
    Ok(format!("{prefix}_{}", hex::encode(random::<32>()?)))
}

/// The SHA-256 of a token or code, in hex: the only form in which one is stored.
#[must_use]
pub fn digest_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Crockford's base-32 alphabet (no I, L, O, U), lower case.
const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// How many recovery codes an enrolment gets.
pub const RECOVERY_CODES: usize = 10;

/// A fresh recovery code: 130 random bits as 26 Crockford base-32 characters in groups
/// (`xxxxx-xxxxx-xxxxx-xxxxx-xxxxxx`).
///
/// # Errors
/// The random source failed.
pub fn recovery_code() -> Result<String, SecretError> {
    let bytes = random::<26>()?;
    let mut out = String::with_capacity(30);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 5 == 0 && i < 25 {
            out.push('-');
        }
        out.push(char::from(CROCKFORD[usize::from(b & 31)]));
    }
    Ok(out)
}

/// A recovery code as typed, in the form that is hashed: lower case, without spaces or
/// dashes, the Crockford look-alikes mapped (`i`/`l` → `1`, `o` → `0`).
#[must_use]
pub fn normalize_recovery_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'i' | 'l' => '1',
            'o' => '0',
            c => c,
        })
        .collect()
}

/// A new TOTP secret (160 random bits, as RFC 4226 recommends).
///
/// # Errors
/// The random source failed.
pub fn totp_secret() -> Result<Vec<u8>, SecretError> {
    Ok(random::<20>()?.to_vec())
}

/// The TOTP of `secret` for `account` (SHA-1, 6 digits, 30 s steps, one step of skew:
/// what every authenticator app understands).
fn totp(secret: &[u8], account: &str, issuer: &str) -> Result<totp_rs::Totp, SecretError> {
    totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::new(secret.to_vec().into_boxed_slice()))
        .with_account_name(account.replace(':', " "))
        .with_issuer(Some(issuer.replace(':', " ")))
        .build()
        .map_err(|e| SecretError::Totp(e.to_string()))
}

/// The base-32 form of `secret` (for typing it into an app) and its `otpauth://` URI
/// (for a QR code).
///
/// # Errors
/// The TOTP parameters were refused.
pub fn totp_provisioning(
    secret: &[u8],
    account: &str,
    issuer: &str,
) -> Result<(String, String), SecretError> {
    let t = totp(secret, account, issuer)?;
    let uri = t.to_url().map_err(|e| SecretError::Totp(e.to_string()))?;
    Ok((t.secret().to_base32(), uri))
}

/// The time step (`unix seconds / 30`) whose code `code` is, within one step of `now`
/// (unix seconds); `None` for a wrong code. The caller refuses a step already used.
#[must_use]
pub fn totp_matching_step(secret: &[u8], code: &str, now: u64) -> Option<u64> {
    let t = totp(secret, "x", "x").ok()?;
    t.check(code.trim(), now)
}

/// The code of `secret` at `time` (unix seconds): what an authenticator app shows.
/// For tests and tools.
#[must_use]
pub fn totp_code(secret: &[u8], time: u64) -> Option<String> {
    totp(secret, "x", "x")
        .ok()
        .map(|t| t.generate(time).to_string())
}

/// The code an authenticator app configured with the base-32 `secret` shows at `time`
/// (unix seconds). For tests and tools.
#[must_use]
pub fn totp_code_base32(secret: &str, time: u64) -> Option<String> {
    let bytes = totp_rs::Secret::try_from_base32(secret).ok()?;
    totp_code(bytes.as_bytes(), time)
}

/// Encrypts TOTP secrets at rest: XChaCha20-Poly1305 under a key derived from the
/// server's signing key (every instance sharing the key can open them), a random nonce
/// per secret, the owner's id as associated data (a row copied to another user does
/// not open).
#[derive(Clone)]
pub struct TotpKey {
    key: [u8; 32],
}

impl std::fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpKey(***)")
    }
}

impl TotpKey {
    /// The key derived from the server's signing key (SHA-256 over a purpose label and
    /// the private key bytes, as [`crate::ConfirmationKey`] with another label).
    #[must_use]
    pub fn derive(signing: &SigningKey) -> Self {
        Self::derive_for(signing, "ptoc totp secrets v1")
    }

    /// A key for another kind of secret sealed at rest (e.g. webhook signing secrets):
    /// the same construction under another purpose label, so the kinds never open
    /// each other.
    #[must_use]
    pub fn derive_for(signing: &SigningKey, purpose: &str) -> Self {
        let private = signing.key_pair().private().to_bytes();
        let mut h = Sha256::new();
        h.update(purpose.as_bytes());
        h.update(b"\0");
        h.update(private.as_slice());
        Self {
            key: h.finalize().into(),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.key.into())
    }

    /// `secret` sealed for `owner`: hex of nonce ‖ ciphertext ‖ tag.
    ///
    /// # Errors
    /// The random source failed.
    pub fn seal(&self, owner: &[u8], secret: &[u8]) -> Result<String, SecretError> {
        let nonce_bytes = random::<24>()?;
        let nonce = XNonce::from(nonce_bytes);
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: secret,
                    aad: owner,
                },
            )
            .map_err(|_| SecretError::Unsealable)?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        Ok(hex::encode(out))
    }

    /// Opens what [`seal`](Self::seal) made for `owner`.
    ///
    /// # Errors
    /// [`SecretError::Unsealable`] when it was tampered with, sealed for someone else
    /// or under another key.
    pub fn open(&self, owner: &[u8], sealed: &str) -> Result<Vec<u8>, SecretError> {
        let bytes = hex::decode(sealed).map_err(|_| SecretError::Unsealable)?;
        if bytes.len() < 24 + 16 {
            return Err(SecretError::Unsealable);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| SecretError::Unsealable)?;
        self.cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner,
                },
            )
            .map_err(|_| SecretError::Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_codes_are_random_and_stored_as_digests() {
        let a = random_token("rt").expect("random");
        let b = random_token("rt").expect("random");
        assert_ne!(a, b);
        assert!(a.starts_with("rt_") && a.len() == 3 + 64);
        assert_eq!(digest_hex(&a).len(), 64);
        assert_ne!(digest_hex(&a), digest_hex(&b));
        let code = recovery_code().expect("random");
        assert_eq!(code.len(), 26 + 4, "{code}");
        let typed = code.to_uppercase().replace('-', " ");
        assert_eq!(normalize_recovery_code(&typed), code.replace('-', ""));
    }

    #[test]
    fn totp_matches_rfc_6238_and_names_the_step() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890" (8-digit vectors;
        // the 6-digit code is their last six digits).
        let secret = b"12345678901234567890";
        assert_eq!(totp_code(secret, 59).as_deref(), Some("287082"));
        assert_eq!(totp_code(secret, 1_111_111_109).as_deref(), Some("081804"));
        assert_eq!(totp_matching_step(secret, "287082", 59), Some(1));
        // One step of skew either way, no more.
        assert_eq!(totp_matching_step(secret, "287082", 89), Some(1));
        assert_eq!(totp_matching_step(secret, "287082", 150), None);
        assert_eq!(totp_matching_step(secret, "000000", 59), None);
        let (base32, uri) = totp_provisioning(secret, "jane@example.org", "PTO").expect("uri");
        assert!(
            uri.starts_with("otpauth://totp/PTO:jane%40example.org?secret="),
            "{uri}"
        );
        assert!(uri.contains(&base32));
    }

    #[test]
    fn sealed_secrets_open_only_for_their_owner_and_key() {
        let key = TotpKey::derive(&SigningKey::generate());
        let sealed = key.seal(b"user-a", b"secret bytes").expect("seal");
        assert_eq!(key.open(b"user-a", &sealed).expect("open"), b"secret bytes");
        assert!(key.open(b"user-b", &sealed).is_err(), "another owner");
        let other = TotpKey::derive(&SigningKey::generate());
        assert!(other.open(b"user-a", &sealed).is_err(), "another key");
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).expect("hex");
        assert!(key.open(b"user-a", &tampered).is_err(), "tampered");
        assert!(key.open(b"user-a", "zz").is_err());
    }
}
