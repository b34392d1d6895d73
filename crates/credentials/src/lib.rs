//! Credentials adapter: the server's Biscuit signing key (and the session tokens and
//! attenuated API keys built on it) and argon2id password hashing.

mod password;
mod signing_key;

pub use password::Argon2Hasher;
pub use signing_key::{KeyError, KeySource, SigningKey};
