//! Retention archiving: expired events move from the live log to gzip-compressed JSON
//! Lines files with signed manifests, then are deleted in batches. Resumable, and
//! verifiable on both sides of the cut.
//!
//! # One run, per chain
//! 1. **Cut.** The chain's latest recorded segment (`audit_archives`) is where the live
//!    chain starts; it must carry a valid signature of the digest key.
//! 2. **Finish deletions.** Rows at or below the cut still present (an interrupted run)
//!    are deleted in batches, each its own transaction.
//! 3. **Adopt an orphan.** A manifest in the directory that continues the cut but is not
//!    recorded (a run stopped between writing files and recording) is checked (signature,
//!    file hash, chain, and the stored row at its last seq) and recorded, then its rows
//!    are deleted — so re-running never writes the same events twice.
//! 4. **New segment.** The longest prefix of the live chain whose events are all older
//!    than the cutoff is streamed (pages of [`crate::VERIFY_PAGE_SIZE`], verified link by
//!    link while writing: a broken chain is never archived) into
//!    `<file>.jsonl.gz` through a temporary file, fsync'd and renamed; then its signed
//!    manifest likewise (`<file>.manifest.json`).
//! 5. **Record** the manifest in `audit_archives` together with an `audit.archive` event
//!    in the chain itself (one transaction), **then delete** the archived rows in batches.
//!
//! Verification of the live chain starts from the recorded cut
//! ([`crate::verify_live_chain`]); an archive directory verifies on its own with
//! [`verify_archive_dir`].

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use audit::{
    Action, Actor, ArchiveManifest, AuditEvent, BoxError, BrokenLink, ChainHead, ChainId,
    ChainStart, ChainVerifier, ChangeType, DigestSigner, Hash32, ManifestError, NewAuditEvent,
    RetentionPolicy, SignedManifest,
};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use persistence::{Database, StorageError};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr, Value};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::log::{all_chain_heads, chain_events};
use crate::retention::{StoredCut, insert_segment, latest_cut, retention_policies};
use crate::schema::{AuditEvents, CorruptRow, seq_value, time_expr};
use crate::tx::AuditedTx;
use crate::verify::VERIFY_PAGE_SIZE;

/// The action recorded in a chain when a segment of it is archived.
pub const ARCHIVE_ACTION: Action = audit::EventType::AuditArchive.action();

/// Where a run stops early (to limit the work of one run, or to simulate an
/// interrupted run in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveHalt {
    /// After writing the archive file and its manifest, before recording them.
    AfterFiles,
    /// After recording the segment, before deleting any row.
    AfterRecord,
    /// After this many deletion batches (per chain).
    AfterBatches(u32),
}

/// How to run the archiver.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveOptions {
    /// The current time: each chain archives events older than its retention before it.
    pub now: OffsetDateTime,
    /// Archive events older than this instead of each chain's retention cutoff.
    pub before: Option<OffsetDateTime>,
    /// Rows deleted per transaction.
    pub delete_batch: u32,
    /// Stop early.
    pub halt: Option<ArchiveHalt>,
}

impl ArchiveOptions {
    /// Default batches (1,000 rows), retention cutoffs relative to `now`.
    #[must_use]
    pub const fn at(now: OffsetDateTime) -> Self {
        Self {
            now,
            before: None,
            delete_batch: 1_000,
            halt: None,
        }
    }
}

/// What a run did to one chain.
#[derive(Debug, Clone, Default)]
pub struct ChainArchiveOutcome {
    /// Segments recorded by this run (an adopted orphan, then a new segment).
    pub recorded: Vec<SignedManifest>,
    /// A segment written but not recorded (run halted after the files).
    pub written_only: Option<SignedManifest>,
    /// Rows deleted from the live log by this run.
    pub rows_deleted: u64,
    /// The chain's cut after the run (the head of its last archived segment).
    pub cut: Option<ChainHead>,
}

/// Why archiving a chain stopped (what was done before stays consistent: re-run).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The database failed.
    #[error("database: {0}")]
    Storage(#[source] BoxError),
    /// Reading or writing the archive directory failed.
    #[error("archive file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The chain's recorded cut is not signed by this key (forged, or another key).
    #[error("chain {0}: the recorded archive cut is not signed by the digest key")]
    UntrustedCut(ChainId),
    /// The events to archive do not verify: nothing is archived from a broken chain.
    #[error("chain {chain} is broken at {link}; not archiving it")]
    BrokenChain {
        /// The chain.
        chain: ChainId,
        /// The first broken link.
        link: BrokenLink,
    },
    /// An unrecorded manifest continuing the cut does not match its file or the database.
    #[error("chain {chain}: unrecorded archive {file} does not verify: {problem}")]
    BadOrphan {
        /// The chain.
        chain: ChainId,
        /// The manifest file.
        file: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The manifest could not be built.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

fn db_err(err: DbErr) -> ArchiveError {
    ArchiveError::Storage(Box::new(StorageError::from(err)))
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Archives every chain (or only `only`) into `dir`: each org chain by its retention
/// period ([`crate::retention_of`]), district and platform chains by the default, or
/// everything older than [`ArchiveOptions::before`].
///
/// # Errors
/// The first chain that failed (chains before it are done).
pub async fn archive_all(
    db: &Database,
    dir: &Path,
    signer: &(impl DigestSigner + ?Sized),
    options: ArchiveOptions,
    only: Option<ChainId>,
) -> Result<Vec<(ChainId, ChainArchiveOutcome)>, ArchiveError> {
    let policies = retention_policies(db.primary())
        .await
        .map_err(ArchiveError::Storage)?;
    let chains: Vec<ChainId> = match only {
        Some(chain) => vec![chain],
        None => all_chain_heads(db.primary())
            .await
            .map_err(ArchiveError::Storage)?
            .into_iter()
            .map(|h| h.chain)
            .collect(),
    };
    let mut out = Vec::new();
    for chain in chains {
        let policy = match chain {
            ChainId::Org(org) => policies.get(&org).copied().unwrap_or_default(),
            _ => RetentionPolicy::default(),
        };
        let cutoff = options.before.unwrap_or_else(|| policy.cutoff(options.now));
        let outcome = archive_chain(db, dir, signer, chain, cutoff, options).await?;
        out.push((chain, outcome));
    }
    Ok(out)
}

/// Archives the events of `chain` older than `cutoff` into `dir` (see the module
/// documentation for the steps).
///
/// # Errors
/// [`ArchiveError`]; a re-run continues where this one stopped.
pub async fn archive_chain(
    db: &Database,
    dir: &Path,
    signer: &(impl DigestSigner + ?Sized),
    chain: ChainId,
    cutoff: OffsetDateTime,
    options: ArchiveOptions,
) -> Result<ChainArchiveOutcome, ArchiveError> {
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let conn = db.primary();
    let mut outcome = ChainArchiveOutcome::default();
    let mut batches_left = match options.halt {
        Some(ArchiveHalt::AfterBatches(n)) => Some(n),
        _ => None,
    };

    // 1. The cut.
    let cut = match latest_cut(conn, chain)
        .await
        .map_err(ArchiveError::Storage)?
    {
        None => None,
        Some(StoredCut {
            manifest: Some(m), ..
        }) if m.is_signed_by(signer) && m.manifest.chain == chain => Some(m.manifest.cut()),
        Some(_) => return Err(ArchiveError::UntrustedCut(chain)),
    };
    outcome.cut = cut;

    // 2. Rows below the cut left by an interrupted run.
    if let Some(cut) = cut {
        outcome.rows_deleted +=
            delete_through(db, chain, cut.seq, options.delete_batch, &mut batches_left).await?;
        if batches_left == Some(0) {
            return Ok(outcome);
        }
    }

    // 3. An orphan written by an interrupted run.
    let next_seq = cut.map_or(1, |c| c.seq + 1);
    if let Some((path, orphan)) = find_manifest(dir, chain, next_seq)? {
        adopt(db, dir, signer, chain, cut, &path, &orphan).await?;
        outcome.recorded.push(orphan.clone());
        outcome.cut = Some(orphan.manifest.cut());
        outcome.rows_deleted += delete_through(
            db,
            chain,
            orphan.manifest.last_seq,
            options.delete_batch,
            &mut batches_left,
        )
        .await?;
        if batches_left == Some(0) {
            return Ok(outcome);
        }
    }

    // 4. A new segment.
    let start = outcome
        .cut
        .map_or(ChainStart::Genesis(chain), ChainStart::After);
    let first = start.head().map_or(1, |h| h.seq + 1);
    let Some(last) = last_expired_seq(conn, chain, first, cutoff).await? else {
        return Ok(outcome);
    };
    let signed = write_segment(conn, dir, signer, start, last, options.now).await?;
    if options.halt == Some(ArchiveHalt::AfterFiles) {
        outcome.written_only = Some(signed);
        return Ok(outcome);
    }

    // 5. Record, then delete.
    record(db, &signed).await?;
    outcome.cut = Some(signed.manifest.cut());
    outcome.recorded.push(signed.clone());
    if options.halt == Some(ArchiveHalt::AfterRecord) {
        return Ok(outcome);
    }
    outcome.rows_deleted += delete_through(
        db,
        chain,
        signed.manifest.last_seq,
        options.delete_batch,
        &mut batches_left,
    )
    .await?;
    Ok(outcome)
}

/// The last seq of the longest prefix (from `first`) whose events all occurred before
/// `cutoff`; `None` if there is none.
async fn last_expired_seq<C: ConnectionTrait>(
    conn: &C,
    chain: ChainId,
    first: u64,
    cutoff: OffsetDateTime,
) -> Result<Option<u64>, ArchiveError> {
    let Some(first_value) = seq_value(first) else {
        return Ok(None);
    };
    let backend = conn.get_database_backend();
    let scalar =
        |expr: &'static str, extra: Option<sea_orm::sea_query::SimpleExpr>, below: Option<i64>| {
            let mut q = Query::select();
            q.expr_as(Expr::cust(expr), Alias::new("n"))
                .from(AuditEvents::Table)
                .and_where(Expr::col(AuditEvents::ChainId).eq(chain.to_string()))
                .and_where(Expr::col(AuditEvents::Seq).gte(first_value));
            if let Some(extra) = extra {
                q.and_where(extra);
            }
            if let Some(below) = below {
                q.and_where(Expr::col(AuditEvents::Seq).lte(below));
            }
            q.to_owned()
        };
    let read = |row: Option<sea_orm::QueryResult>| -> Result<Option<i64>, ArchiveError> {
        row.map(|r| r.try_get::<Option<i64>>("", "n"))
            .transpose()
            .map(Option::flatten)
            .map_err(db_err)
    };
    // The head first: events appended after this read are not considered.
    let max = read(
        conn.query_one(&scalar("MAX(seq)", None, None))
            .await
            .map_err(db_err)?,
    )?;
    let Some(max) = max else {
        return Ok(None);
    };
    let young = Expr::col(AuditEvents::OccurredAt).gte(time_expr(backend, cutoff));
    let first_young = read(
        conn.query_one(&scalar("MIN(seq)", Some(young), Some(max)))
            .await
            .map_err(db_err)?,
    )?;
    let last = first_young.map_or(max, |s| s - 1);
    Ok(u64::try_from(last).ok().filter(|&l| l >= first))
}

/// Streams `start+1 ..= last` into a new archive file and writes its signed manifest.
async fn write_segment<C: ConnectionTrait>(
    conn: &C,
    dir: &Path,
    signer: &(impl DigestSigner + ?Sized),
    start: ChainStart,
    last: u64,
    now: OffsetDateTime,
) -> Result<SignedManifest, ArchiveError> {
    let chain = start.chain();
    let first_seq = start.head().map_or(1, |h| h.seq + 1);
    let name = ArchiveManifest::file_name_for(chain, first_seq, last);
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = async {
        let file = File::create(&tmp).map_err(io_at(&tmp))?;
        let mut gz = GzEncoder::new(
            HashingWriter::new(BufWriter::new(file)),
            Compression::default(),
        );
        let mut verifier = ChainVerifier::new(start);
        let (mut first_event, mut last_event) = (None, None);
        while verifier.next_seq() <= last {
            let want = u32::try_from(last - verifier.next_seq() + 1)
                .map_or(VERIFY_PAGE_SIZE, |n| Ord::min(n, VERIFY_PAGE_SIZE));
            let page = chain_events(conn, chain, verifier.next_seq(), want)
                .await
                .map_err(|e| match e.downcast::<CorruptRow>() {
                    Ok(corrupt) => ArchiveError::Storage(corrupt),
                    Err(e) => ArchiveError::Storage(e),
                })?;
            if page.is_empty() {
                // The rows vanished: the verifier reports the gap below.
                break;
            }
            for event in page.into_iter().filter(|e| e.seq <= last) {
                verifier
                    .push(&event)
                    .map_err(|link| ArchiveError::BrokenChain { chain, link })?;
                serde_json::to_writer(&mut gz, &event).map_err(|e| ArchiveError::Io {
                    path: tmp.clone(),
                    source: e.into(),
                })?;
                gz.write_all(b"\n").map_err(io_at(&tmp))?;
                if first_event.is_none() {
                    first_event = Some(event.clone());
                }
                last_event = Some(event);
            }
        }
        let report = verifier.finish();
        if let Some(link) = report.first_break {
            return Err(ArchiveError::BrokenChain { chain, link });
        }
        let (Some(first_event), Some(last_event)) = (first_event, last_event) else {
            return Err(ArchiveError::Storage("no events to archive".into()));
        };
        if last_event.seq != last {
            return Err(ArchiveError::Storage(
                format!("chain {chain} ends at seq {} before {last}", last_event.seq).into(),
            ));
        }
        let hashing = gz.finish().map_err(io_at(&tmp))?;
        let (writer, sha) = hashing.finish();
        let file = writer.into_inner().map_err(|e| ArchiveError::Io {
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_at(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_at(&path))?;
        let manifest = ArchiveManifest::new(&first_event, &last_event, sha, now)?;
        debug_assert_eq!(manifest.file_name, name);
        Ok(manifest)
    }
    .await;
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let signed = manifest.sign(signer);
    write_atomically(dir, &signed.manifest.manifest_file_name(), &signed)?;
    sync_dir(dir);
    tracing::info!(
        chain = %chain,
        first = signed.manifest.first_seq,
        last = signed.manifest.last_seq,
        file = %signed.manifest.file_name,
        "audit segment archived to file"
    );
    Ok(signed)
}

fn write_atomically(dir: &Path, name: &str, signed: &SignedManifest) -> Result<(), ArchiveError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let write = || -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut file, signed)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ArchiveError::Io { path, source: e }
    })
}

fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Records a segment and its `audit.archive` event in one transaction.
async fn record(db: &Database, signed: &SignedManifest) -> Result<(), ArchiveError> {
    let m = &signed.manifest;
    let tx = AuditedTx::begin(db)
        .await
        .map_err(|e| ArchiveError::Storage(Box::new(e)))?;
    insert_segment(tx.conn(), signed)
        .await
        .map_err(ArchiveError::Storage)?;
    tx.record(
        NewAuditEvent::audit(
            m.chain.scope(),
            Actor::System,
            ARCHIVE_ACTION,
            "audit_archive",
            m.file_name.clone(),
            ChangeType::Delete,
        )
        .with_new_value(serde_json::json!({
            "first_seq": m.first_seq,
            "last_seq": m.last_seq,
            "prev_hash": m.prev_hash.to_hex(),
            "head_hash": m.head_hash.to_hex(),
            "event_count": m.event_count,
            "file_sha256": m.file_sha256.to_hex(),
        })),
    )
    .await
    .map_err(|e| ArchiveError::Storage(Box::new(e)))?;
    tx.commit()
        .await
        .map_err(|e| ArchiveError::Storage(Box::new(e)))?;
    Ok(())
}

/// Deletes the rows of `chain` with `seq <= through`, oldest first, `batch` rows per
/// transaction. Decrements `batches_left` (if limited) and stops at zero.
async fn delete_through(
    db: &Database,
    chain: ChainId,
    through: u64,
    batch: u32,
    batches_left: &mut Option<u32>,
) -> Result<u64, ArchiveError> {
    let Some(through) = seq_value(through) else {
        return Ok(0);
    };
    let batch = i64::from(Ord::max(batch, 1));
    let mut deleted = 0;
    loop {
        if *batches_left == Some(0) {
            return Ok(deleted);
        }
        let lowest = Query::select()
            .expr_as(Expr::cust("MIN(seq)"), Alias::new("n"))
            .from(AuditEvents::Table)
            .and_where(Expr::col(AuditEvents::ChainId).eq(chain.to_string()))
            .and_where(Expr::col(AuditEvents::Seq).lte(through))
            .to_owned();
        let lowest: Option<i64> = db
            .primary()
            .query_one(&lowest)
            .await
            .map_err(db_err)?
            .map(|r| r.try_get::<Option<i64>>("", "n"))
            .transpose()
            .map_err(db_err)?
            .flatten();
        let Some(lowest) = lowest else {
            return Ok(deleted);
        };
        let upper = Ord::min(through, lowest.saturating_add(batch - 1));
        let tx = db.begin_write().await.map_err(db_err)?;
        let delete = Query::delete()
            .from_table(AuditEvents::Table)
            .and_where(Expr::col(AuditEvents::ChainId).eq(chain.to_string()))
            .and_where(Expr::col(AuditEvents::Seq).gte(Value::BigInt(Some(lowest))))
            .and_where(Expr::col(AuditEvents::Seq).lte(Value::BigInt(Some(upper))))
            .to_owned();
        let n = tx.execute(&delete).await.map_err(db_err)?.rows_affected();
        tx.commit().await.map_err(db_err)?;
        deleted += n;
        if let Some(left) = batches_left.as_mut() {
            *left -= 1;
        }
    }
}

/// The manifest in `dir` of a segment of `chain` starting at `first_seq`, if any.
fn find_manifest(
    dir: &Path,
    chain: ChainId,
    first_seq: u64,
) -> Result<Option<(PathBuf, SignedManifest)>, ArchiveError> {
    let prefix = ArchiveManifest::file_name_for(chain, first_seq, 0);
    let prefix = prefix
        .rsplit_once('-')
        .map_or(prefix.as_str(), |(p, _)| p)
        .to_owned();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{prefix}-")) && name.ends_with(".manifest.json") {
            let path = entry.path();
            let text = fs::read_to_string(&path).map_err(io_at(&path))?;
            let signed: SignedManifest =
                serde_json::from_str(&text).map_err(|e| ArchiveError::BadOrphan {
                    chain,
                    file: path.clone(),
                    problem: e.to_string(),
                })?;
            return Ok(Some((path, signed)));
        }
    }
    Ok(None)
}

/// Checks an unrecorded segment and records it.
async fn adopt(
    db: &Database,
    dir: &Path,
    signer: &(impl DigestSigner + ?Sized),
    chain: ChainId,
    cut: Option<ChainHead>,
    path: &Path,
    orphan: &SignedManifest,
) -> Result<(), ArchiveError> {
    let bad = |problem: String| ArchiveError::BadOrphan {
        chain,
        file: path.to_owned(),
        problem,
    };
    let m = &orphan.manifest;
    if !orphan.is_signed_by(signer) || m.chain != chain {
        return Err(bad("not signed by the digest key".into()));
    }
    let expected_start = cut.map_or(ChainStart::Genesis(chain), ChainStart::After);
    if m.start() != expected_start {
        return Err(bad("does not continue the recorded cut".into()));
    }
    if let Some(problem) = verify_segment(dir, m) {
        return Err(bad(problem.to_string()));
    }
    let stored = chain_events(db.primary(), chain, m.last_seq, 1)
        .await
        .map_err(ArchiveError::Storage)?;
    match stored.first() {
        Some(e) if e.seq == m.last_seq && e.hash == m.head_hash => {}
        _ => return Err(bad("the live chain does not hold its last event".into())),
    }
    record(db, orphan).await
}

// ---------------------------------------------------------------------------------------
// Verifying archive files

/// What is wrong with an archived segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveProblem {
    /// The manifest is not signed by the digest key (or was altered).
    #[error("{file}: manifest is not signed by the digest key")]
    Unsigned {
        /// The manifest file.
        file: String,
    },
    /// The manifest contradicts itself.
    #[error("{file}: {error}")]
    Manifest {
        /// The manifest file.
        file: String,
        /// The inconsistency.
        error: ManifestError,
    },
    /// The segment does not continue the previous one (or the first does not start at
    /// seq 1): a segment is missing.
    #[error("{file}: does not continue the previous segment (a segment is missing)")]
    NotContinuous {
        /// The manifest file.
        file: String,
    },
    /// The archive file cannot be read (missing, or not gzip / JSON Lines).
    #[error("{file}: unreadable: {detail}")]
    Unreadable {
        /// The archive file.
        file: String,
        /// Why.
        detail: String,
    },
    /// An archived event does not verify (edited, removed, reordered).
    #[error("{file}: {link}")]
    Broken {
        /// The archive file.
        file: String,
        /// The first broken link.
        link: BrokenLink,
    },
    /// The file holds fewer or more events than the manifest says, or ends elsewhere.
    #[error("{file}: holds {found} events ending at {head:?}, the manifest says {expected}")]
    Incomplete {
        /// The archive file.
        file: String,
        /// Events per the manifest.
        expected: u64,
        /// Events found.
        found: u64,
        /// The last verified head.
        head: Option<ChainHead>,
    },
    /// The file's bytes differ from those the manifest recorded.
    #[error("{file}: SHA-256 differs from the manifest")]
    FileHash {
        /// The archive file.
        file: String,
    },
}

/// The verification of one chain's archived segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveChainReport {
    /// The chain.
    pub chain: ChainId,
    /// Segments checked (up to the first problem).
    pub segments: u64,
    /// Events verified.
    pub events: u64,
    /// The head of the last verified segment: where the live chain must continue.
    pub cut: Option<ChainHead>,
    /// The first problem, if any.
    pub problem: Option<ArchiveProblem>,
}

/// The verification of an archive directory.
#[derive(Debug, Clone, Default)]
pub struct ArchiveVerification {
    /// Per chain, in chain order.
    pub chains: Vec<ArchiveChainReport>,
    /// Manifest files that are not signed manifests at all: `(file, why)`.
    pub unreadable: Vec<(String, String)>,
}

impl ArchiveVerification {
    /// Whether every segment of every chain verified.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.unreadable.is_empty() && self.chains.iter().all(|c| c.problem.is_none())
    }
}

/// Verifies every segment in `dir` against its manifest: the manifest's signature and
/// consistency, continuity between segments of a chain (the first from seq 1), each
/// file's events as a chain from the manifest's start to its cut, the count, and the
/// file's SHA-256. Streams each file (constant memory).
///
/// # Errors
/// If the directory cannot be listed.
pub fn verify_archive_dir(
    dir: &Path,
    signer: &(impl DigestSigner + ?Sized),
) -> io::Result<ArchiveVerification> {
    let mut out = ArchiveVerification::default();
    let mut per_chain: BTreeMap<ChainId, Vec<(String, SignedManifest)>> = BTreeMap::new();
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".manifest.json") && !n.starts_with('.'))
        .collect();
    names.sort();
    for name in names {
        let parsed = fs::read_to_string(dir.join(&name))
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<SignedManifest>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(signed) => per_chain
                .entry(signed.manifest.chain)
                .or_default()
                .push((name, signed)),
            Err(why) => out.unreadable.push((name, why)),
        }
    }
    for (chain, mut segments) in per_chain {
        segments.sort_by_key(|(_, s)| s.manifest.first_seq);
        let mut report = ArchiveChainReport {
            chain,
            segments: 0,
            events: 0,
            cut: None,
            problem: None,
        };
        let mut previous: Option<&ArchiveManifest> = None;
        for (file, signed) in &segments {
            let m = &signed.manifest;
            let problem = if !signed.is_signed_by(signer) {
                Some(ArchiveProblem::Unsigned { file: file.clone() })
            } else if let Err(error) = m.validate() {
                Some(ArchiveProblem::Manifest {
                    file: file.clone(),
                    error,
                })
            } else if previous.map_or(m.first_seq != 1, |p| m.follows(p).is_err()) {
                Some(ArchiveProblem::NotContinuous { file: file.clone() })
            } else {
                verify_segment(dir, m)
            };
            if let Some(problem) = problem {
                report.problem = Some(problem);
                break;
            }
            report.segments += 1;
            report.events += m.event_count;
            report.cut = Some(m.cut());
            previous = Some(m);
        }
        out.chains.push(report);
    }
    Ok(out)
}

/// The archived events of `chains` in `dir` that `keep` selects, in chain then
/// sequence order, still sealed (open them with [`crate::open_events`]). Segments are
/// found through their manifests; a directory that does not exist holds none.
///
/// Reads every segment of those chains in full (decompressing one line at a time): for
/// exports and audits, not for request paths.
///
/// # Errors
/// A manifest or segment that cannot be read or parsed.
pub fn read_archived(
    dir: &Path,
    chains: &[ChainId],
    mut keep: impl FnMut(&AuditEvent) -> bool,
) -> io::Result<Vec<AuditEvent>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut manifests = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".manifest.json") || name.starts_with('.') {
            continue;
        }
        let text = fs::read_to_string(dir.join(&name))?;
        let signed: SignedManifest = serde_json::from_str(&text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {e}")))?;
        if chains.contains(&signed.manifest.chain) {
            manifests.push(signed.manifest);
        }
    }
    manifests.sort_by_key(|m| (m.chain, m.first_seq));
    let mut out = Vec::new();
    for m in manifests {
        let file = File::open(dir.join(&m.file_name))?;
        let lines = BufReader::new(GzDecoder::new(BufReader::new(file)));
        for line in lines.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let event: AuditEvent = serde_json::from_str(&line).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", m.file_name))
            })?;
            if keep(&event) {
                out.push(event);
            }
        }
    }
    Ok(out)
}

/// Verifies one archive file against its manifest; the first problem, if any.
fn verify_segment(dir: &Path, m: &ArchiveManifest) -> Option<ArchiveProblem> {
    let file = m.file_name.clone();
    let unreadable = |detail: String| ArchiveProblem::Unreadable {
        file: m.file_name.clone(),
        detail,
    };
    let raw = match File::open(dir.join(&m.file_name)) {
        Ok(f) => f,
        Err(e) => return Some(unreadable(e.to_string())),
    };
    let mut decoder = GzDecoder::new(HashingReader::new(BufReader::new(raw)));
    let mut verifier = ChainVerifier::new(m.start());
    let mut found = 0_u64;
    {
        let mut lines = BufReader::new(&mut decoder);
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Some(unreadable(e.to_string())),
            }
            let event: AuditEvent = match serde_json::from_str(line.trim_end()) {
                Ok(e) => e,
                Err(e) => return Some(unreadable(format!("line {}: {e}", found + 1))),
            };
            if let Err(link) = verifier.push(&event) {
                return Some(ArchiveProblem::Broken { file, link });
            }
            found += 1;
        }
    }
    // Hash the whole file, including anything after the gzip stream.
    let mut rest = decoder.into_inner();
    if let Err(e) = io::copy(&mut rest, &mut io::sink()) {
        return Some(unreadable(e.to_string()));
    }
    let sha = rest.finish();
    let report = verifier.finish();
    if found != m.event_count || report.head != Some(m.cut()) {
        return Some(ArchiveProblem::Incomplete {
            file,
            expected: m.event_count,
            found,
            head: report.head,
        });
    }
    (sha != m.file_sha256).then_some(ArchiveProblem::FileHash { file })
}

/// A writer computing the SHA-256 of what passes through.
struct HashingWriter<W> {
    inner: W,
    sha: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            sha: Sha256::new(),
        }
    }

    fn finish(self) -> (W, Hash32) {
        (self.inner, Hash32(self.sha.finalize().into()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader computing the SHA-256 of what passes through.
struct HashingReader<R> {
    inner: R,
    sha: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            sha: Sha256::new(),
        }
    }

    fn finish(self) -> Hash32 {
        Hash32(self.sha.finalize().into())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}
