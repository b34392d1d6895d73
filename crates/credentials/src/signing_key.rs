use std::fs;
use std::io::Write;
use std::path::Path;

use biscuit_auth::KeyPair;

/// Why the signing key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The configured or stored key is not a valid Ed25519 private key in PEM.
    #[error("signing key is not a valid Ed25519 PEM private key")]
    Invalid,
    /// The key file could not be read or written.
    #[error("signing key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Where the key came from (reported at start-up, never the key itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// Given in configuration.
    Configured,
    /// Read from the data directory.
    Stored,
    /// Generated on this start and stored in the data directory.
    Generated,
}

/// The server's token-signing key pair (Ed25519).
pub struct SigningKey {
    pair: KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public_hex())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PEM-encoded private key (e.g. from the `SIGNING_KEY` setting).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        KeyPair::from_private_key_pem(pem)
            .map(|pair| Self { pair })
            .map_err(|_| KeyError::Invalid)
    }

    /// A fresh random Ed25519 key that is not stored anywhere (tests, throw-away setups).
    #[must_use]
    pub fn generate() -> Self {
        Self {
            pair: KeyPair::new(),
        }
    }

    /// Reads the key stored at `path`, or generates one and stores it there with
    /// owner-only permissions (the development default of the embedded setup).
    pub fn load_or_create(path: &Path) -> Result<(Self, KeySource), KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match fs::read_to_string(path) {
            Ok(pem) => return Self::from_pem(&pem).map(|k| (k, KeySource::Stored)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let pair = KeyPair::new();
        let pem = pair.to_private_key_pem().map_err(|_| KeyError::Invalid)?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(pem.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok((Self { pair }, KeySource::Generated))
    }

    /// The public key, hex-encoded (safe to log and publish).
    #[must_use]
    pub fn public_hex(&self) -> String {
        self.pair.public().to_bytes_hex()
    }

    /// The key pair, for building and verifying tokens.
    #[must_use]
    pub fn key_pair(&self) -> &KeyPair {
        &self.pair
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reloads_the_same_key() {
        let dir = std::env::temp_dir().join(format!("ptoc-key-{}", std::process::id()));
        let path = dir.join("signing_key.pem");
        let _ = fs::remove_file(&path);
        let (a, src_a) = SigningKey::load_or_create(&path).expect("create");
        let (b, src_b) = SigningKey::load_or_create(&path).expect("reload");
        assert_eq!(src_a, KeySource::Generated);
        assert_eq!(src_b, KeySource::Stored);
        assert_eq!(a.public_hex(), b.public_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            SigningKey::from_pem("nope"),
            Err(KeyError::Invalid)
        ));
    }
}
