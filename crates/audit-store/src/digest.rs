//! Signed digests (CloudTrail-style anchoring): an Ed25519 [`DigestSigner`], a JSON Lines
//! [`DigestStore`] on the file system, and the job step that writes one digest.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use audit::{BoxError, Digest, DigestSigner, DigestStore, DigestStoreError, Hash32, SignedDigest};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey};
use persistence::Database;
use time::OffsetDateTime;

use crate::log::all_chain_heads;

// ---------------------------------------------------------------------------------------
// Signer

/// Why the digest signing key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum SignerKeyError {
    /// The configured or stored key is not a valid Ed25519 private key in PKCS#8 PEM.
    #[error("digest signing key is not a valid Ed25519 PKCS#8 PEM private key")]
    Invalid,
    /// The key file could not be read or written.
    #[error("digest signing key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Where a digest key came from (reported at start-up, never the key itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// Read from the key file.
    Stored,
    /// Generated now and written to the key file.
    Generated,
}

/// [`DigestSigner`] with an Ed25519 key kept outside the database (a PKCS#8 PEM file,
/// readable by the owner only).
///
/// The key id is `ed25519:<public key as 64 hex characters>`, so a digest names the key
/// that can verify it. Verification uses `verify_strict` (no malleable signatures).
pub struct Ed25519DigestSigner {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for Ed25519DigestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519DigestSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Ed25519DigestSigner {
    fn from_key(key: SigningKey) -> Self {
        let key_id = format!("ed25519:{}", hex::encode(key.verifying_key().as_bytes()));
        Self { key, key_id }
    }

    /// A fresh key from the operating system's random source.
    ///
    /// # Errors
    /// [`SignerKeyError::Invalid`] if the generated key has an unexpected size (cannot
    /// happen with an Ed25519 key pair).
    pub fn generate() -> Result<Self, SignerKeyError> {
        // biscuit-auth's key generation draws from `OsRng`, the CSPRNG already in the
        // dependency graph; the secret goes straight into an ed25519-dalek key.
        let pair = biscuit_auth::KeyPair::new_with_algorithm(biscuit_auth::Algorithm::Ed25519);
        let private = pair.private().to_bytes();
        SigningKey::try_from(private.as_slice())
            .map(Self::from_key)
            .map_err(|_| SignerKeyError::Invalid)
    }

    /// Parses a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    ///
    /// # Errors
    /// [`SignerKeyError::Invalid`] if it is not an Ed25519 key in that form.
    pub fn from_pem(pem: &str) -> Result<Self, SignerKeyError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_key)
            .map_err(|_| SignerKeyError::Invalid)
    }

    /// Reads the key stored at `path`, or generates one and stores it there: the file is
    /// created atomically with owner-only permissions (`0600`; its directory `0700` if
    /// created), so concurrent starts agree on one key.
    ///
    /// # Errors
    /// [`SignerKeyError`] if the file cannot be read or written or holds no valid key.
    pub fn load_or_create(path: &Path) -> Result<(Self, KeySource), SignerKeyError> {
        let io = |source| SignerKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match fs::read_to_string(path) {
            Ok(pem) => {
                warn_if_exposed(path);
                return Self::from_pem(&pem).map(|k| (k, KeySource::Stored));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let signer = Self::generate()?;
        let pem = signer
            .key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|_| SignerKeyError::Invalid)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(io)?;
        }
        // Write a private temporary file, then link it into place: the key file either
        // does not exist or is complete, and a concurrent creator wins cleanly.
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let written = write_private_file(&tmp, pem.as_bytes());
        let linked = written.and_then(|()| fs::hard_link(&tmp, path));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(path);
                Ok((signer, KeySource::Generated))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let pem = fs::read_to_string(path).map_err(io)?;
                Self::from_pem(&pem).map(|k| (k, KeySource::Stored))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The public key, hex-encoded (safe to log and publish).
    #[must_use]
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }
}

impl DigestSigner for Ed25519DigestSigner {
    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        self.key.sign(bytes).to_bytes().to_vec()
    }

    fn verify(&self, bytes: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature)
            .is_ok_and(|sig| self.key.verifying_key().verify_strict(bytes, &sig).is_ok())
    }

    fn key_id(&self) -> String {
        self.key_id.clone()
    }
}

fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes a new directory entry durable (no-op where directories cannot be opened).
fn sync_dir(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = File::open(dir)
    {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn warn_if_exposed(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "digest signing key file is readable by group or others; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

// ---------------------------------------------------------------------------------------
// Store

/// Why the digest file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum DigestFileError {
    /// The file does not end with a newline: the last append was interrupted. Nothing
    /// is appended until an operator inspects and repairs the file (the torn tail was
    /// never acknowledged, so it can be cut off).
    #[error("digest file {0} ends with an incomplete line")]
    TornTail(String),
    /// A line is not a signed digest.
    #[error("digest file {path}, line {line}: {source}")]
    BadLine {
        /// The file.
        path: String,
        /// 1-based line number (0 for the last line when read backwards).
        line: u64,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// I/O failed.
    #[error("digest file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// [`DigestStore`] as an append-only JSON Lines file, one [`SignedDigest`] per line:
/// `<dir>/all.jsonl` (a digest records the heads of all chains).
///
/// Appends take an exclusive file lock (so several processes may share the directory),
/// check that the digest links to the last line, write the whole line with one write
/// and `fsync` it before returning. The file is created owner-only (`0600`).
///
/// Keep the directory outside the database (and ideally ship it to write-once storage):
/// the digests are what a database-level attacker cannot rewrite.
#[derive(Debug, Clone)]
pub struct FileDigestStore {
    path: Arc<PathBuf>,
}

impl FileDigestStore {
    /// Name of the digest file inside the store's directory.
    pub const FILE_NAME: &'static str = "all.jsonl";
    /// Name of the store's directory inside the data directory.
    pub const DIR_NAME: &'static str = "audit-digests";

    /// A store in `dir` (created with `0700` if missing).
    ///
    /// # Errors
    /// If the directory cannot be created.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref();
        create_private_dir(dir)?;
        Ok(Self {
            path: Arc::new(dir.join(Self::FILE_NAME)),
        })
    }

    /// The store in `DATA_DIR/audit-digests`.
    ///
    /// # Errors
    /// If the directory cannot be created.
    pub fn in_data_dir(data_dir: impl AsRef<Path>) -> io::Result<Self> {
        Self::open(data_dir.as_ref().join(Self::DIR_NAME))
    }

    /// The digest file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, DigestStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> Result<T, DigestStoreError> + Send + 'static,
    {
        let path = Arc::clone(&self.path);
        tokio::task::spawn_blocking(move || f(&path))
            .await
            .map_err(|e| DigestStoreError::Storage(Box::new(e)))?
    }
}

fn io_err(path: &Path, source: io::Error) -> DigestStoreError {
    let err: BoxError = Box::new(DigestFileError::Io {
        path: path.display().to_string(),
        source,
    });
    DigestStoreError::Storage(err)
}

fn file_err(err: DigestFileError) -> DigestStoreError {
    DigestStoreError::Storage(Box::new(err))
}

/// Reads the last line of the file (which must end with `\n`); `None` if empty.
fn read_last(file: &mut File, path: &Path) -> Result<Option<SignedDigest>, DigestStoreError> {
    const CHUNK: u64 = 8 * 1024;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))
        .and_then(|_| file.read_exact(&mut last))
        .map_err(|e| io_err(path, e))?;
    if last[0] != b'\n' {
        return Err(file_err(DigestFileError::TornTail(
            path.display().to_string(),
        )));
    }
    // Walk backwards from the final newline to the previous one.
    let end = len - 1;
    let mut start = end;
    let mut tail: Vec<u8> = Vec::new();
    while start > 0 {
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; usize::try_from(start - from).unwrap_or(0)];
        file.seek(SeekFrom::Start(from))
            .and_then(|_| file.read_exact(&mut chunk))
            .map_err(|e| io_err(path, e))?;
        if let Some(nl) = chunk.iter().rposition(|&b| b == b'\n') {
            chunk.drain(..=nl);
            chunk.extend_from_slice(&tail);
            tail = chunk;
            start = 0;
        } else {
            chunk.extend_from_slice(&tail);
            tail = chunk;
            start = from;
        }
    }
    serde_json::from_slice(&tail).map(Some).map_err(|source| {
        file_err(DigestFileError::BadLine {
            path: path.display().to_string(),
            line: 0,
            source,
        })
    })
}

fn open_for_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl DigestStore for FileDigestStore {
    async fn latest(&self) -> Result<Option<SignedDigest>, DigestStoreError> {
        self.blocking(|path| {
            let mut file = match File::open(path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err(path, e)),
            };
            file.lock_shared().map_err(|e| io_err(path, e))?;
            read_last(&mut file, path)
        })
        .await
    }

    async fn append(&self, digest: SignedDigest) -> Result<(), DigestStoreError> {
        self.blocking(move |path| {
            let mut line =
                serde_json::to_vec(&digest).map_err(|e| DigestStoreError::Storage(Box::new(e)))?;
            line.push(b'\n');
            let mut file = open_for_append(path).map_err(|e| io_err(path, e))?;
            file.lock().map_err(|e| io_err(path, e))?;
            let latest = read_last(&mut file, path)?;
            let expected = latest.as_ref().map_or(Hash32::GENESIS, |l| l.digest.hash());
            if digest.digest.previous_digest_hash != expected {
                return Err(DigestStoreError::Conflict);
            }
            let was_empty = latest.is_none();
            // `append` mode: the single write lands at the end of the file.
            file.write_all(&line).map_err(|e| io_err(path, e))?;
            file.sync_data().map_err(|e| io_err(path, e))?;
            if was_empty {
                sync_dir(path);
            }
            Ok(())
        })
        .await
    }

    async fn list(
        &self,
        from: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<SignedDigest>, DigestStoreError> {
        self.blocking(move |path| {
            let file = match File::open(path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io_err(path, e)),
            };
            file.lock_shared().map_err(|e| io_err(path, e))?;
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let mut out = Vec::new();
            let mut reader = BufReader::new(file);
            let mut line = Vec::new();
            let mut number = 0_u64;
            while out.len() < limit {
                line.clear();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| io_err(path, e))?;
                if n == 0 {
                    break;
                }
                number += 1;
                if line.last() != Some(&b'\n') {
                    return Err(file_err(DigestFileError::TornTail(
                        path.display().to_string(),
                    )));
                }
                let digest: SignedDigest = serde_json::from_slice(&line).map_err(|source| {
                    file_err(DigestFileError::BadLine {
                        path: path.display().to_string(),
                        line: number,
                        source,
                    })
                })?;
                if from.is_none_or(|from| digest.digest.created_at >= from) {
                    out.push(digest);
                }
            }
            Ok(out)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Job step

/// Why a digest could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteDigestError {
    /// Reading the chain heads failed.
    #[error("reading audit chain heads failed")]
    Heads(#[source] BoxError),
    /// Reading or appending to the digest store failed (or another digest was appended
    /// concurrently: [`DigestStoreError::Conflict`]).
    #[error(transparent)]
    Store(#[from] DigestStoreError),
}

/// Records the current head of every chain (from `audit_chain_heads` on the primary, in
/// one read) in a new digest linked to the store's latest, signs it and appends it.
///
/// The digest's time is `now`, or the latest digest's time if that is later (clock
/// skew), so the series stays ordered. Run it periodically (e.g. hourly).
///
/// # Errors
/// [`WriteDigestError`]; on [`DigestStoreError::Conflict`] simply run it again.
pub async fn write_digest(
    db: &Database,
    store: &impl DigestStore,
    signer: &(impl DigestSigner + ?Sized),
    now: OffsetDateTime,
) -> Result<SignedDigest, WriteDigestError> {
    let heads = all_chain_heads(db.primary())
        .await
        .map_err(WriteDigestError::Heads)?;
    let latest = store.latest().await?;
    let created_at = latest
        .as_ref()
        .map_or(now, |l| now.max(l.digest.created_at));
    let signed = Digest::new(created_at, heads, latest.as_ref().map(|l| &l.digest)).sign(signer);
    store.append(signed.clone()).await?;
    tracing::info!(
        digest = %signed.digest.hash(),
        chains = signed.digest.heads.len(),
        "audit digest written"
    );
    Ok(signed)
}
