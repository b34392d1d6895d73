//! Credentials adapter: the server's Biscuit signing key, the bearer tokens built on it and
//! argon2id password hashing.
//!
//! - [`SigningKey`]: the server's Ed25519 key pair (configured, stored, or generated on the
//!   first run of the embedded default).
//! - [`TokenIssuer`]: issues session tokens ([`TokenIssuer::issue_session`]) and API keys
//!   ([`TokenIssuer::issue_api_key`], Biscuit tokens attenuated to one org and an expiry),
//!   and verifies them ([`TokenIssuer::verify_for_org`]) into a [`VerifiedToken`] naming the
//!   [`Principal`] and the revocation ids to check. The [`tokens`] module docs describe the
//!   token layout, the attenuation and the trust rules.
//! - [`hash_token`]: the SHA-256 of a token, the only form in which a token may be a cache
//!   key; tokens themselves are never logged nor put in errors.
//! - [`Argon2Hasher`]: argon2id password hashing on the blocking pool.
//! - [`secrets`]: refresh tokens, sign-in challenges and recovery codes (random, stored
//!   as SHA-256), TOTP codes and secrets sealed at rest ([`TotpKey`]).

mod confirmation;
mod password;
pub mod secrets;
mod signing_key;
pub mod tokens;

pub use confirmation::ConfirmationKey;
pub use password::Argon2Hasher;
pub use secrets::{SecretError, TotpKey};
pub use signing_key::{KeyError, KeySource, SigningKey};
pub use tokens::{
    DEFAULT_MAX_TIME, IssuedToken, MAX_TOKEN_LEN, Principal, TokenError, TokenIssuer,
    VerifiedToken, VerifyLimits, hash_token,
};
