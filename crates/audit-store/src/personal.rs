//! Sealing personal fields per data subject, opening them for readers, and erasing a
//! subject by deleting its keys ("crypto-shredding"; see [`audit::personal`]).
//!
//! # Keys
//! `audit_subject_keys` holds one random 256-bit key per `(chain_id, subject)`, created
//! in the appending transaction by the first event that seals a field of that subject in
//! that chain (under the chain's head lock, so two appenders never race for it). Keys
//! are per chain, not per person: an org admin erasing a member erases the member's
//! fields in that org's chain only ([`ErasureScope::Chain`]); deleting an account erases
//! them everywhere ([`ErasureScope::Everywhere`]).
//!
//! # Encryption
//! XChaCha20-Poly1305 (the AEAD `credentials` already uses for TOTP secrets), a random
//! 192-bit nonce per part, the associated data binding the part to its event id, chain,
//! subject and field names ([`SealedPart::associated_data`]). The stored ciphertext is
//! `nonce ‖ ciphertext ‖ tag`. The event hash covers that ciphertext, so verification
//! never needs a key.
//!
//! # Erasure
//! [`erase_subject_in`] deletes the keys inside the caller's transaction (the erasure's
//! other deletions and its own audit event commit with it). Nothing else holds a key or
//! a plaintext: keys are read per query and never cached. After the commit, on SQLite,
//! call [`reclaim_erased_space`]: connections run with `secure_delete = ON` (the
//! deleted key's bytes are zeroed in the database pages), and the checkpoint truncates
//! the write-ahead log, where older copies of those pages would otherwise linger.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use audit::{
    AuditEvent, ChainId, DataSubject, EraseSubjectError, ErasureScope, NewAuditEvent, SealedPart,
    SubjectErasure, personal_plan,
};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use persistence::{Database, StorageError};
use sea_orm::sea_query::{Cond, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, DeriveIden, Statement, Value};
use time::OffsetDateTime;

use crate::schema::{CorruptRow, RowLocation, time_expr};

/// `audit_subject_keys`.
#[derive(DeriveIden, Clone, Copy)]
enum AuditSubjectKeys {
    Table,
    ChainId,
    Subject,
    KeyId,
    OrgId,
    DistrictId,
    Key,
    CreatedAt,
}

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Subjects per `IN (…)` list.
const LOOKUP_CHUNK: usize = 500;

/// A subject's key for one chain, and its id.
#[derive(Clone)]
struct SubjectKey {
    id: uuid::Uuid,
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(..)")
    }
}

/// The keys loaded for one unit of work.
#[derive(Debug, Default)]
pub(crate) struct KeyRing {
    keys: HashMap<(ChainId, DataSubject), SubjectKey>,
}

/// Why a key could not be made or a part could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealPartError {
    /// The operating system's random source failed.
    #[error("no randomness for an audit key or nonce: {0}")]
    Random(String),
    /// The AEAD refused (cannot happen with valid lengths).
    #[error("sealing an audit event's personal fields failed")]
    Encrypt,
    /// A key was missing right after it was created (the table was edited concurrently).
    #[error("no audit key for {subject} in chain {chain}")]
    MissingKey {
        /// The chain.
        chain: ChainId,
        /// The subject.
        subject: DataSubject,
    },
}

fn random<const N: usize>() -> Result<[u8; N], SealPartError> {
    let mut buf = [0; N];
    getrandom::fill(&mut buf).map_err(|e| SealPartError::Random(e.to_string()))?;
    Ok(buf)
}

/// `(org_id, district_id)` of a key row: whose chain it is (row-level security).
fn tenant_of(chain: ChainId) -> (Option<uuid::Uuid>, Option<uuid::Uuid>) {
    match chain {
        ChainId::Org(org) => (Some(org), None),
        ChainId::District(district) => (None, Some(district)),
        ChainId::Platform => (None, None),
    }
}

impl KeyRing {
    /// Loads the keys of `pairs` that exist.
    pub(crate) async fn load<C: ConnectionTrait>(
        conn: &C,
        pairs: &BTreeSet<(ChainId, DataSubject)>,
    ) -> Result<Self, DbErr> {
        let mut by_chain: BTreeMap<ChainId, Vec<DataSubject>> = BTreeMap::new();
        for (chain, subject) in pairs {
            by_chain.entry(*chain).or_default().push(*subject);
        }
        let mut ring = Self::default();
        for (chain, subjects) in by_chain {
            for chunk in subjects.chunks(LOOKUP_CHUNK) {
                let query = Query::select()
                    .columns([
                        AuditSubjectKeys::Subject,
                        AuditSubjectKeys::KeyId,
                        AuditSubjectKeys::Key,
                    ])
                    .from(AuditSubjectKeys::Table)
                    .and_where(Expr::col(AuditSubjectKeys::ChainId).eq(chain.to_string()))
                    .and_where(
                        Expr::col(AuditSubjectKeys::Subject)
                            .is_in(chunk.iter().map(ToString::to_string)),
                    )
                    .to_owned();
                for row in conn.query_all(&query).await? {
                    let subject: String = row.try_get("", "subject")?;
                    let key: Vec<u8> = row.try_get("", "key")?;
                    let id: uuid::Uuid = row.try_get("", "key_id")?;
                    let (Ok(subject), Ok(key)) = (
                        subject.parse::<DataSubject>(),
                        <[u8; KEY_LEN]>::try_from(key),
                    ) else {
                        return Err(DbErr::Custom(format!(
                            "audit_subject_keys row of chain {chain} is malformed"
                        )));
                    };
                    ring.keys.insert((chain, subject), SubjectKey { id, key });
                }
            }
        }
        Ok(ring)
    }

    /// Loads the keys of `pairs`, creating those that don't exist yet (inside the
    /// caller's transaction, under the chains' head locks).
    pub(crate) async fn ensure<C: ConnectionTrait>(
        conn: &C,
        pairs: &BTreeSet<(ChainId, DataSubject)>,
        now: OffsetDateTime,
    ) -> Result<Self, EnsureKeysError> {
        let mut ring = Self::load(conn, pairs).await?;
        let missing: Vec<_> = pairs
            .iter()
            .filter(|pair| !ring.keys.contains_key(pair))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(ring);
        }
        let backend = conn.get_database_backend();
        for chunk in missing.chunks(LOOKUP_CHUNK) {
            let mut insert = Query::insert();
            insert.into_table(AuditSubjectKeys::Table).columns([
                AuditSubjectKeys::ChainId,
                AuditSubjectKeys::Subject,
                AuditSubjectKeys::KeyId,
                AuditSubjectKeys::OrgId,
                AuditSubjectKeys::DistrictId,
                AuditSubjectKeys::Key,
                AuditSubjectKeys::CreatedAt,
            ]);
            for (chain, subject) in chunk {
                let (org, district) = tenant_of(*chain);
                insert
                    .values([
                        Expr::val(chain.to_string()),
                        Expr::val(subject.to_string()),
                        Expr::val(Value::Uuid(Some(uuid::Uuid::from_bytes(random()?)))),
                        Expr::val(Value::Uuid(org)),
                        Expr::val(Value::Uuid(district)),
                        Expr::val(Value::Bytes(Some(random::<KEY_LEN>()?.to_vec()))),
                        time_expr(backend, now),
                    ])
                    .map_err(|e| DbErr::Custom(e.to_string()))?;
            }
            insert.on_conflict(
                OnConflict::columns([AuditSubjectKeys::ChainId, AuditSubjectKeys::Subject])
                    .do_nothing()
                    .to_owned(),
            );
            conn.execute(&insert).await?;
        }
        let created = Self::load(conn, &missing.into_iter().collect()).await?;
        ring.keys.extend(created.keys);
        Ok(ring)
    }

    /// The subject's current key id and cipher in `chain`.
    fn cipher(
        &self,
        chain: ChainId,
        subject: DataSubject,
    ) -> Option<(uuid::Uuid, XChaCha20Poly1305)> {
        self.keys
            .get(&(chain, subject))
            .map(|k| (k.id, XChaCha20Poly1305::new(&k.key.into())))
    }

    /// Seals `new`'s personal fields ([`personal_plan`]) under the ring's keys.
    pub(crate) fn seal(&self, new: &NewAuditEvent) -> Result<Vec<SealedPart>, SealPartError> {
        let chain = new.chain();
        personal_plan(new)
            .into_iter()
            .map(|(subject, fields)| {
                let (key_id, cipher) = self
                    .cipher(chain, subject)
                    .ok_or(SealPartError::MissingKey { chain, subject })?;
                let nonce = random::<NONCE_LEN>()?;
                let aad = SealedPart::associated_data(new.id, chain, subject, key_id, &fields);
                let plaintext = new.personal_plaintext(&fields);
                let sealed = cipher
                    .encrypt(
                        &XNonce::from(nonce),
                        Payload {
                            msg: &plaintext,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| SealPartError::Encrypt)?;
                Ok(SealedPart {
                    subject,
                    key_id,
                    fields,
                    ciphertext: [nonce.as_slice(), &sealed].concat(),
                })
            })
            .collect()
    }

    /// Opens every sealed part of `event`: the plaintext goes back into the body, or
    /// [`audit::ERASED`] when the subject's key is gone.
    ///
    /// # Errors
    /// A part that does not decrypt under an existing key (the row was tampered with).
    pub(crate) fn open(&self, event: &mut AuditEvent) -> Result<(), CorruptRow> {
        let chain = event.chain();
        let (seq, id) = (i64::try_from(event.seq).ok(), event.id());
        let corrupt = |detail: String| CorruptRow {
            location: RowLocation {
                chain_id: Some(chain.to_string()),
                seq,
                id: Some(id),
            },
            column: "sealed",
            detail,
        };
        for index in 0..event.sealed.len() {
            let part = &event.sealed[index];
            let cipher = match self.cipher(chain, part.subject) {
                Some((key_id, cipher)) if key_id == part.key_id => cipher,
                // Erased (a later key, if any, is another one).
                _ => {
                    event
                        .erase_part(index)
                        .map_err(|e| corrupt(e.to_string()))?;
                    continue;
                }
            };
            if part.ciphertext.len() < NONCE_LEN {
                return Err(corrupt(format!("part {index} is too short")));
            }
            let (nonce, sealed) = part.ciphertext.split_at(NONCE_LEN);
            let nonce = <[u8; NONCE_LEN]>::try_from(nonce)
                .map_err(|_| corrupt(format!("part {index} is too short")))?;
            let aad =
                SealedPart::associated_data(id, chain, part.subject, part.key_id, &part.fields);
            let plaintext = cipher
                .decrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| corrupt(format!("part {index} does not decrypt")))?;
            event
                .open_part(index, &plaintext)
                .map_err(|e| corrupt(e.to_string()))?;
        }
        Ok(())
    }
}

/// Why the keys of an append could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnsureKeysError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Seal(#[from] SealPartError),
}

/// The `(chain, subject)` pairs whose keys reading `events` needs.
fn pairs_of(events: &[AuditEvent]) -> BTreeSet<(ChainId, DataSubject)> {
    events
        .iter()
        .flat_map(|e| e.sealed.iter().map(move |p| (e.chain(), p.subject)))
        .collect()
}

/// Creates the keys of those of `pairs` (chain, data subject) that have none yet, in
/// `conn` (the caller's transaction or a connection). For a bulk load that writes no
/// events about its subjects — a benchmark's dataset — so that its key table holds what
/// a deployment of that size would: a key per subject the trail has spoken of. An
/// append creates the keys it needs by itself; nothing else needs this.
///
/// # Errors
/// The database's, or the system's random source failing.
pub async fn ensure_subject_keys<C: ConnectionTrait>(
    conn: &C,
    pairs: &BTreeSet<(ChainId, DataSubject)>,
) -> Result<(), audit::BoxError> {
    let now = audit::truncate_to_micros(OffsetDateTime::now_utc());
    KeyRing::ensure(conn, pairs, now)
        .await
        .map(drop)
        .map_err(|e| match e {
            EnsureKeysError::Db(e) => Box::new(StorageError::from(e)) as audit::BoxError,
            EnsureKeysError::Seal(e) => Box::new(e) as audit::BoxError,
        })
}

/// Opens the sealed parts of `events` read through `conn` (from `audit_events`, or
/// parsed from an archive file): the subject's plaintext goes back into each body, or
/// [`audit::ERASED`] where the subject's key was erased. The hashes are unchanged.
///
/// # Errors
/// The keys cannot be read, or a part does not decrypt under its key (a
/// [`CorruptRow`]: the event was tampered with).
pub async fn open_events<C: ConnectionTrait>(
    conn: &C,
    events: &mut [AuditEvent],
) -> Result<(), audit::BoxError> {
    let pairs = pairs_of(events);
    if pairs.is_empty() {
        return Ok(());
    }
    let ring = KeyRing::load(conn, &pairs)
        .await
        .map_err(|e| Box::new(StorageError::from(e)) as audit::BoxError)?;
    for event in events {
        ring.open(event).map_err(Box::new)?;
    }
    Ok(())
}

/// Erases `subject`'s personal fields from the audit trail in the chains of `scope`, by
/// deleting its keys **inside the caller's transaction** (commit it with the rest of the
/// erasure; on SQLite call [`reclaim_erased_space`] after the commit).
///
/// Every sealed field of the subject in those chains — in live rows and in archive
/// files, which hold the same ciphertext — becomes unreadable: reads show
/// [`audit::ERASED`]. Nothing is rewritten, so `audit verify` (live, digests, archives)
/// passes as before. Events appended for the subject afterwards get a new key (erase
/// again to remove those). Events stored before migration 000090 hold their fields in
/// the clear (encoding v1) and are not affected.
///
/// A tenant-scoped transaction (`Database::begin_for_org`) sees and erases only that
/// org's keys on PostgreSQL (row-level security); erase [`ErasureScope::Everywhere`]
/// from a system-scope transaction (`Database::begin_write`).
///
/// # Errors
/// [`EraseSubjectError::Storage`] when the database fails; roll back then.
pub async fn erase_subject_in<C: ConnectionTrait>(
    conn: &C,
    subject: DataSubject,
    scope: ErasureScope,
) -> Result<SubjectErasure, EraseSubjectError> {
    let fail = |e: DbErr| EraseSubjectError::Storage(Box::new(StorageError::from(e)));
    let mut cond = Cond::all().add(Expr::col(AuditSubjectKeys::Subject).eq(subject.to_string()));
    if let ErasureScope::Chain(chain) = scope {
        cond = cond.add(Expr::col(AuditSubjectKeys::ChainId).eq(chain.to_string()));
    }
    let select = Query::select()
        .column(AuditSubjectKeys::ChainId)
        .from(AuditSubjectKeys::Table)
        .cond_where(cond.clone())
        .to_owned();
    let mut chains = Vec::new();
    for row in conn.query_all(&select).await.map_err(fail)? {
        let chain: String = row.try_get("", "chain_id").map_err(fail)?;
        let chain = chain
            .parse::<ChainId>()
            .map_err(|e| EraseSubjectError::Storage(Box::new(e)))?;
        chains.push(chain);
    }
    let delete = Query::delete()
        .from_table(AuditSubjectKeys::Table)
        .cond_where(cond)
        .to_owned();
    conn.execute(&delete).await.map_err(fail)?;
    chains.sort_unstable();
    tracing::info!(%subject, chains = chains.len(), "audit keys of a data subject erased");
    Ok(SubjectErasure { subject, chains })
}

/// After an erasure has committed: makes sure the deleted bytes don't linger in the
/// database files. On SQLite, checkpoints the write-ahead log and truncates it to zero
/// bytes (`PRAGMA wal_checkpoint(TRUNCATE)`), so the only remaining copy of each page is
/// the database file's, where `secure_delete` zeroed the deleted rows. Returns whether
/// the checkpoint completed (`false` if a long-running reader kept it from finishing:
/// call again). On PostgreSQL it returns `true` at once: deleted rows stay in dead
/// tuples until autovacuum reclaims them (see docs/decisions.md, "Erasure in the audit trail").
///
/// # Errors
/// [`StorageError`] when the database fails.
pub async fn reclaim_erased_space(db: &Database) -> Result<bool, StorageError> {
    let conn = db.primary();
    if conn.get_database_backend() != DbBackend::Sqlite {
        return Ok(true);
    }
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ))
        .await
        .map_err(StorageError::from)?;
    // (busy, log frames, checkpointed frames): busy = 1 when it could not complete.
    let busy = row
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .unwrap_or(1);
    Ok(busy == 0)
}

/// [`audit::AuditErasure`] on the primary database: each erasure in its own
/// system-scope transaction.
#[derive(Debug, Clone)]
pub struct SeaOrmAuditErasure {
    db: Database,
}

impl SeaOrmAuditErasure {
    /// Erasure over `db`.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

impl audit::AuditErasure for SeaOrmAuditErasure {
    async fn erase_subject(
        &self,
        subject: DataSubject,
        scope: ErasureScope,
    ) -> Result<SubjectErasure, EraseSubjectError> {
        let fail = |e: DbErr| EraseSubjectError::Storage(Box::new(StorageError::from(e)));
        let tx = self.db.begin_write().await.map_err(fail)?;
        let erased = erase_subject_in(&tx, subject, scope).await?;
        tx.commit().await.map_err(fail)?;
        reclaim_erased_space(&self.db)
            .await
            .map_err(|e| EraseSubjectError::Storage(Box::new(e)))?;
        Ok(erased)
    }
}
