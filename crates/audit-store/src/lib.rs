//! SeaORM adapter of the [`audit`] domain: tamper-evident audit events stored in
//! `audit_events` / `audit_chain_heads` on PostgreSQL (production) or SQLite (embedded).
//!
//! * **Writing** — [`append_event`] appends one event to its tenant's hash chain
//!   ([`append_events`] many, with one head lock per chain)
//!   **inside the caller's transaction**; [`AuditedTx`] is the unit of work that owns that
//!   transaction, hands out [`AuditedTx::conn`] for the business writes and an
//!   [`audit::AuditSink`] ([`SeaOrmAuditSink`]) for the events, and refuses to commit
//!   without an event unless told why ([`AuditedTx::commit_unaudited`]).
//! * **Reading** — [`SeaOrmAuditLog`] implements [`audit::AuditLog`]: filtered, keyset-
//!   paginated listings, single events, statistics, chain heads and chain segments.
//! * **Verifying** — [`verify_chain_in_db`] streams a chain through the domain's
//!   [`audit::ChainVerifier`] in constant memory and checks it against signed digests.
//! * **Retention** — [`retention_of`] / [`set_retention`] (per-org period, audited);
//!   [`archive_all`] moves expired events to gzip JSON Lines files with signed manifests
//!   and deletes them in resumable batches; [`verify_live_chain`] starts from the
//!   recorded cut; [`verify_archive_dir`] checks the files against their manifests.
//! * **Personal data** — the personal fields of an event (values of an event about a
//!   person, the acting user's IP and user agent) are sealed per data subject under a
//!   key of `audit_subject_keys` while appending; [`SeaOrmAuditLog`] opens them for
//!   readers; [`erase_subject_in`] deletes a subject's keys ("crypto-shredding"), after
//!   which every read, live or archived, shows [`audit::ERASED`] and every chain still
//!   verifies ([`SeaOrmAuditErasure`] is the [`audit::AuditErasure`] port).
//! * **Anchoring** — [`write_digest`] signs the heads of all chains with an
//!   [`Ed25519DigestSigner`] (key in a PEM file outside the database) and appends the
//!   digest to a [`FileDigestStore`] (JSON Lines, fsync'd), so that a chain rewritten
//!   wholesale by someone with database access no longer matches.
//!
//! # Locking: why a chain cannot fork
//! Every chain has one row in `audit_chain_heads` (`chain_id` primary key, `seq`,
//! `hash`). An append is three statements inside the caller's transaction:
//!
//! 1. `INSERT INTO audit_chain_heads (chain_id, seq, hash, updated_at)
//!    VALUES (:chain, 0, :genesis, :now) ON CONFLICT (chain_id)
//!    DO UPDATE SET updated_at = excluded.updated_at RETURNING seq, hash`
//! 2. `INSERT INTO audit_events …` — the event sealed after the returned head;
//! 3. `UPDATE audit_chain_heads SET seq = :seq, hash = :hash … WHERE chain_id = :chain`.
//!
//! Statement 1 is a write to the chain's head row, so it takes that row's **write
//! lock**, held until the transaction commits or rolls back:
//!
//! * **PostgreSQL**: `ON CONFLICT DO UPDATE` locks the existing row; a second appender to
//!   the same chain blocks on that lock until the first transaction ends. Under READ
//!   COMMITTED it then updates — and `RETURNING` reports — the *latest committed*
//!   version of the row, i.e. the head the first transaction left behind, so it seals
//!   after it. Two new chains created concurrently collide on the primary key: the
//!   second insert waits for the first transaction and then takes the conflict path.
//!   Under REPEATABLE READ / SERIALIZABLE the second writer gets a serialisation error
//!   instead (reported as [`audit::AppendAuditError::Conflict`]: retry), never a stale
//!   head. Appends to different chains do not contend.
//! * **SQLite**: any write takes the database-wide write lock, so writers are serialised
//!   outright; [`AuditedTx`] begins with `BEGIN IMMEDIATE` so the lock is held from the
//!   transaction's first statement and a read can never need upgrading to a write
//!   (which fails with "database is locked" in WAL mode).
//!
//! Hence, for one chain, "read head → seal → insert → move head" runs strictly one
//! transaction at a time, and each transaction sees the head the previous one
//! committed: `seq` is gap-free and every `prev_hash` is the hash of its predecessor.
//! The `(chain_id, seq)` primary key is a second line of defence: a writer that
//! bypassed the lock would fail instead of forking the chain. If a transaction rolls
//! back, its event and its head update disappear together, so the next append reuses
//! the seq. No SERIALIZABLE isolation is needed.
//!
//! # Storage formats
//! Times are UTC microseconds (`timestamptz` on PostgreSQL; fixed-width RFC 3339 text
//! on SQLite so that text order is time order); JSON values are `jsonb` / JSON text;
//! hashes are 64 lowercase hex characters. Rows convert back to domain events exactly,
//! so [`audit::AuditEvent::compute_hash`] of a loaded event equals its stored hash on
//! both backends.

mod append;
mod archive;
mod digest;
mod log;
mod personal;
mod retention;
mod schema;
mod tx;
mod verify;

pub use append::{ChainStateError, InvalidEvent, append_event, append_events, append_in};
pub use archive::{
    ARCHIVE_ACTION, ArchiveChainReport, ArchiveError, ArchiveHalt, ArchiveOptions, ArchiveProblem,
    ArchiveVerification, ChainArchiveOutcome, archive_all, archive_chain, read_archived,
    verify_archive_dir,
};
pub use digest::{
    DigestFileError, Ed25519DigestSigner, FileDigestStore, KeySource, SignerKeyError,
    WriteDigestError, write_digest,
};
pub use log::SeaOrmAuditLog;
pub use personal::{
    SeaOrmAuditErasure, SealPartError, ensure_subject_keys, erase_subject_in, open_events,
    reclaim_erased_space,
};
pub use retention::{
    RETENTION_UPDATE, SetRetentionError, archive_record_count, archived_segments, retention_of,
    retention_policies, set_retention, versioned_retention_of,
};
pub use schema::{CorruptRow, RowLocation};
pub use tx::{AuditedTx, BeginError, CommitError, RecordAloneError, SeaOrmAuditSink, TxAuditSink};
pub use verify::{
    ChainVerification, VERIFY_PAGE_SIZE, VerifyDbError, verify_all_chains, verify_chain_in_db,
    verify_chain_in_log, verify_live_chain,
};
