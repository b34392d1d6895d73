//! SHA-256 hashes of events and digests.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Why a string is not a valid [`Hash32`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseHashError {
    /// Not exactly 64 hexadecimal characters.
    #[error("hash must be 64 hex characters, got {0}")]
    InvalidLength(usize),
    /// A character that is not a hexadecimal digit.
    #[error("hash contains a non-hex character")]
    InvalidHex,
}

/// A 32-byte SHA-256 hash. Displayed and serialised as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The `prev_hash` of the first event of every chain (and the `previous_digest_hash`
    /// of the first digest): 32 zero bytes.
    pub const GENESIS: Self = Self([0; 32]);

    /// SHA-256 of `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether this is [`Hash32::GENESIS`].
    #[must_use]
    pub fn is_genesis(&self) -> bool {
        *self == Self::GENESIS
    }

    /// Lowercase hex form.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({self})")
    }
}

impl FromStr for Hash32 {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(ParseHashError::InvalidLength(s.len()));
        }
        let mut bytes = [0; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| ParseHashError::InvalidHex)?;
        Ok(Self(bytes))
    }
}

impl TryFrom<String> for Hash32 {
    type Error = ParseHashError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Hash32> for String {
    fn from(hash: Hash32) -> Self {
        hash.to_hex()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            Hash32::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_and_serde_round_trip() {
        let hash = Hash32::of(b"audit");
        assert_eq!(hash.to_string().parse::<Hash32>(), Ok(hash));
        let json = serde_json::to_string(&hash).expect("serialize");
        assert_eq!(json, format!("\"{hash}\""));
        assert_eq!(serde_json::from_str::<Hash32>(&json).expect("parse"), hash);
        assert!(Hash32::GENESIS.is_genesis());
        assert_eq!(Hash32::GENESIS.to_string(), "0".repeat(64));
    }

    #[test]
    fn rejects_bad_hex() {
        assert_eq!(
            "ab".parse::<Hash32>(),
            Err(ParseHashError::InvalidLength(2))
        );
        assert_eq!(
            "zz".repeat(32).parse::<Hash32>(),
            Err(ParseHashError::InvalidHex)
        );
    }
}
