//! `cargo xtask audit verify [--org ID] [--archive DIR]` and
//! `cargo xtask audit archive [--org ID] [--out DIR] [--before DATE]`, against
//! `DATABASE_URL` (default: the SQLite file in `DATA_DIR`), with the digest key and the
//! signed digests of `DATA_DIR` (as the server keeps them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use audit::{ChainId, DigestStore};
use audit_store::{ArchiveOptions, Ed25519DigestSigner, FileDigestStore};
use clap::Subcommand;
use persistence::{Database, DatabaseSettings};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum Action {
    /// Walk every chain (or one org's) from its archive cut, check the signed digests,
    /// print the first broken link per chain; exit non-zero on any break. With
    /// --archive, verify the archive files of DIR against their manifests instead.
    Verify {
        /// Only this org's chain.
        #[arg(long, value_name = "ORG_ID")]
        org: Option<Uuid>,
        /// Verify the archive directory (files against their signed manifests).
        #[arg(long, value_name = "DIR")]
        archive: Option<PathBuf>,
    },
    /// Move events older than each org's retention period (default 400 days) to
    /// gzip-compressed JSON Lines files with signed manifests, then delete them from the
    /// live log in batches. Resumable: re-running neither loses nor duplicates events.
    Archive {
        /// Only this org's chain.
        #[arg(long, value_name = "ORG_ID")]
        org: Option<Uuid>,
        /// Where the archive files go (default DATA_DIR/audit-archive).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Archive events before this date (`YYYY-MM-DD`, UTC, or RFC 3339) instead of
        /// each chain's retention cutoff (for tests and one-off moves).
        #[arg(long, value_name = "DATE")]
        before: Option<String>,
    },
    /// Benchmark (run by `cargo xtask bench`, release build): peak RSS growth while
    /// streaming the CSV export of N events of one org, per N.
    #[command(hide = true)]
    BenchExport {
        /// Event counts to compare.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        events: Vec<u64>,
    },
    /// One measurement of `bench-export`, in a fresh process (internal).
    #[command(hide = true)]
    BenchExportMeasure {
        /// The seeded data directory.
        #[arg(long)]
        dir: PathBuf,
        /// The org whose chain is exported.
        #[arg(long)]
        org: Uuid,
    },
}

/// Name of the archive directory inside `DATA_DIR`.
pub const ARCHIVE_DIR: &str = "audit-archive";

struct Env {
    data_dir: PathBuf,
    db: DatabaseSettings,
}

fn env() -> anyhow::Result<Env> {
    let vars: BTreeMap<String, String> = std::env::vars().collect();
    let settings = pto_server::config::Settings::from_sources(&vars, false)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let db = match &settings.database_url {
        Some(url) => DatabaseSettings {
            url: url.expose().to_owned(),
            read_url: None,
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(10),
            busy_timeout: std::time::Duration::from_secs(5),
        },
        None => DatabaseSettings::sqlite_in(&settings.data_dir),
    };
    Ok(Env {
        data_dir: settings.data_dir,
        db,
    })
}

/// The digest key the server uses (created like the server would if missing).
pub fn signer_in(data_dir: &Path) -> anyhow::Result<Ed25519DigestSigner> {
    Ed25519DigestSigner::load_or_create(&data_dir.join("audit_digest_key.pem"))
        .map(|(signer, _)| signer)
        .context("loading the audit digest key")
}

pub fn run(action: Action) -> anyhow::Result<()> {
    match action {
        Action::BenchExport { events } => return crate::bench::audit_export(&events),
        Action::BenchExportMeasure { dir, org } => {
            return crate::bench::audit_export_measure(&dir, org);
        }
        _ => {}
    }
    let env = env()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let signer = signer_in(&env.data_dir)?;
        if let Action::Verify {
            archive: Some(dir), ..
        } = &action
        {
            return verify_archive(dir, &signer);
        }
        let db = Database::connect(&env.db).await?;
        db.migrate().await?;
        let result = match action {
            Action::Verify { org, .. } => verify(&db, &env.data_dir, &signer, org).await,
            Action::Archive { org, out, before } => {
                let out = out.unwrap_or_else(|| env.data_dir.join(ARCHIVE_DIR));
                archive(&db, &out, &signer, org, before.as_deref()).await
            }
            Action::BenchExport { .. } | Action::BenchExportMeasure { .. } => Ok(()),
        };
        db.close().await.ok();
        result
    })
}

async fn verify(
    db: &Database,
    data_dir: &Path,
    signer: &Ed25519DigestSigner,
    org: Option<Uuid>,
) -> anyhow::Result<()> {
    let digests = FileDigestStore::in_data_dir(data_dir)?
        .list(None, u32::MAX)
        .await
        .context("reading the signed digests")?;
    let reports = audit_store::verify_all_chains(db, &digests, signer, org.map(ChainId::Org))
        .await
        .map_err(|e| anyhow::anyhow!("listing the chains: {e}"))?;
    println!(
        "audit verify: {} database, {} chain(s), {} signed digest(s)",
        db.backend().as_str(),
        reports.len(),
        digests.len()
    );
    let mut broken = 0;
    for r in &reports {
        match &r.outcome {
            Ok(report) if report.is_intact() => println!(
                "  ok      {}: {} event(s) checked{}, {} anchor(s) confirmed",
                r.chain,
                report.checked,
                report
                    .start
                    .map(|s| format!(" after the archive cut at seq {}", s.seq))
                    .unwrap_or_default(),
                report.anchors_confirmed
            ),
            Ok(report) => {
                broken += 1;
                if let Some(link) = report.first_break {
                    println!("  BROKEN  {}: {link}", r.chain);
                }
            }
            Err(e) => {
                broken += 1;
                println!("  BROKEN  {}: {e}", r.chain);
            }
        }
    }
    if broken > 0 {
        bail!("{broken} chain(s) broken");
    }
    Ok(())
}

fn verify_archive(dir: &Path, signer: &Ed25519DigestSigner) -> anyhow::Result<()> {
    let result = audit_store::verify_archive_dir(dir, signer)
        .with_context(|| format!("reading {}", dir.display()))?;
    println!(
        "audit verify --archive {}: {} chain(s)",
        dir.display(),
        result.chains.len()
    );
    for (file, why) in &result.unreadable {
        println!("  BROKEN  {file}: not a signed manifest: {why}");
    }
    for c in &result.chains {
        match &c.problem {
            None => println!(
                "  ok      {}: {} segment(s), {} event(s), cut at seq {}",
                c.chain,
                c.segments,
                c.events,
                c.cut.map_or(0, |h| h.seq)
            ),
            Some(problem) => println!("  BROKEN  {}: {problem}", c.chain),
        }
    }
    if !result.is_intact() {
        bail!("the archive does not verify");
    }
    Ok(())
}

/// `YYYY-MM-DD` (midnight UTC) or RFC 3339.
fn parse_before(raw: &str) -> anyhow::Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(t);
    }
    let date = time::Date::parse(
        raw,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .with_context(|| format!("--before {raw:?}: expected YYYY-MM-DD or RFC 3339"))?;
    Ok(date.midnight().assume_utc())
}

async fn archive(
    db: &Database,
    out: &Path,
    signer: &Ed25519DigestSigner,
    org: Option<Uuid>,
    before: Option<&str>,
) -> anyhow::Result<()> {
    let mut options = ArchiveOptions::at(OffsetDateTime::now_utc());
    options.before = before.map(parse_before).transpose()?;
    let outcomes = audit_store::archive_all(db, out, signer, options, org.map(ChainId::Org))
        .await
        .context("archiving")?;
    println!(
        "audit archive into {}: {} chain(s) considered",
        out.display(),
        outcomes.len()
    );
    for (chain, o) in outcomes {
        for m in &o.recorded {
            println!(
                "  {chain}: archived seq {}..={} ({} events) to {}",
                m.manifest.first_seq,
                m.manifest.last_seq,
                m.manifest.event_count,
                m.manifest.file_name
            );
        }
        if o.rows_deleted > 0 {
            println!(
                "  {chain}: {} row(s) deleted from the live log",
                o.rows_deleted
            );
        }
    }
    Ok(())
}
