//! `cargo xtask seed --demo | --enterprise [--large]`: sample data on the configured
//! database (`DATABASE_URL`, else the SQLite file in `DATA_DIR`), migrated first.
//!
//! * [`demo`]: a small tenant through the audited stores, with generated passwords.
//! * [`enterprise`]: the synthetic benchmark dataset, in bulk (see its docs for why it
//!   writes a single audit event).

pub(crate) mod bench_rows;
pub(crate) mod bulk;
mod demo;
pub(crate) mod enterprise;
pub(crate) mod rng;
#[cfg(test)]
mod tests;

pub(crate) use enterprise::{COMMITTEES, FIRST_NAMES, GRADE_BANDS, LAST_NAMES, USER_COLUMNS};

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::{ArgGroup, Args as ClapArgs};
use persistence::{Database, DatabaseSettings};

/// `cargo xtask seed`.
#[derive(Debug, ClapArgs)]
#[command(
    group(ArgGroup::new("dataset").required(true).args(["demo", "enterprise"])),
    after_help = "\
The database comes from the environment like the server's: DATABASE_URL, else the SQLite
file in DATA_DIR (default ./data). Migrations are applied first. Seeding the same dataset
twice is refused (nothing is written the second time).

Examples:
  cargo xtask seed --demo
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench cargo xtask seed --enterprise --large"
)]
pub struct Args {
    /// A small demo tenant for local use, with sign-ins printed once.
    ///
    /// Springfield Unified (SPRINGFIELD-USD), Sunset Elementary and Maple Middle, and
    /// "Sunset Elementary PTO" (signup code SUNSET2024) with 8 members in every role,
    /// incl. a custom Treasurer role; a district admin and two district templates (one
    /// locked). Written through the audited stores; passwords are random per run.
    #[arg(long)]
    demo: bool,

    /// The benchmark dataset, bulk-inserted (see the options below).
    ///
    /// Defaults: 50 districts, 1,000 schools, 2,000 orgs, 100,000 users and memberships,
    /// district/school/org settings (20% of district settings locked) and grants to 1% of
    /// members. One transaction, multi-row INSERTs, no per-row audit events (synthetic
    /// data, by design): one `seed.enterprise` audit event records the run. Deterministic
    /// for a given --seed; all generated users share one random password, printed once.
    #[arg(long)]
    enterprise: bool,

    /// The large dataset: 400 schools per district and 25 members per org (40,000 orgs,
    /// 1,000,000 members unless those are given), plus settings-heavy orgs until the
    /// settings tables hold --large-rows rows.
    #[arg(long, conflicts_with = "demo", help_heading = "Enterprise dataset")]
    large: bool,

    /// Setting rows to reach with --large.
    #[arg(
        long,
        default_value_t = 1_000_000,
        value_name = "N",
        help_heading = "Enterprise dataset"
    )]
    large_rows: u64,

    /// Districts.
    #[arg(
        long,
        default_value_t = 50,
        value_name = "N",
        help_heading = "Enterprise dataset"
    )]
    districts: usize,

    /// Schools per district [default: 20; 400 with --large].
    #[arg(long, value_name = "N", help_heading = "Enterprise dataset")]
    schools_per_district: Option<usize>,

    /// Organizations per school.
    #[arg(
        long,
        default_value_t = 2,
        value_name = "N",
        help_heading = "Enterprise dataset"
    )]
    orgs_per_school: usize,

    /// Members per organization (each a generated user) [default: 50; 25 with --large].
    #[arg(long, value_name = "N", help_heading = "Enterprise dataset")]
    members_per_org: Option<usize>,

    /// Permission keys each district sets.
    #[arg(
        long,
        default_value_t = 8,
        value_name = "N",
        help_heading = "Enterprise dataset"
    )]
    district_keys: usize,

    /// Percentage of district settings that are locked.
    #[arg(
        long,
        default_value_t = 20.0,
        value_name = "PCT",
        help_heading = "Enterprise dataset"
    )]
    locked_percent: f64,

    /// Percentage of (school, key) pairs with a school setting.
    #[arg(
        long,
        default_value_t = 5.0,
        value_name = "PCT",
        help_heading = "Enterprise dataset"
    )]
    school_settings_percent: f64,

    /// Percentage of (org, key) pairs with an org setting [default: 10; 90 with --large].
    #[arg(long, value_name = "PCT", help_heading = "Enterprise dataset")]
    org_settings_percent: Option<f64>,

    /// Percentage of non-admin members with a direct grant.
    #[arg(
        long,
        default_value_t = 1.0,
        value_name = "PCT",
        help_heading = "Enterprise dataset"
    )]
    grant_percent: f64,

    /// Random seed (same seed and counts → same ids and data).
    #[arg(long, default_value_t = 42, help_heading = "Enterprise dataset")]
    seed: u64,

    /// Rows per INSERT statement (capped so one statement binds at most 32,000 values).
    /// Fewer, larger statements are much faster on PostgreSQL over TCP.
    #[arg(
        long,
        default_value_t = 5000,
        value_name = "ROWS",
        help_heading = "Enterprise dataset"
    )]
    batch: usize,
}

impl Args {
    fn enterprise_params(&self) -> enterprise::Params {
        let shape = if self.large {
            enterprise::Params::large()
        } else {
            enterprise::Params::default()
        };
        enterprise::Params {
            districts: self.districts,
            schools_per_district: self
                .schools_per_district
                .unwrap_or(shape.schools_per_district),
            orgs_per_school: self.orgs_per_school,
            members_per_org: self.members_per_org.unwrap_or(shape.members_per_org),
            district_keys: self.district_keys,
            locked_percent: self.locked_percent,
            school_settings_percent: self.school_settings_percent,
            org_settings_percent: self
                .org_settings_percent
                .unwrap_or(shape.org_settings_percent),
            grant_percent: self.grant_percent,
            large_rows: self.large.then_some(self.large_rows),
            seed: self.seed,
            batch: self.batch,
        }
    }
}

/// Runs `cargo xtask seed`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let db_settings = database_settings(&env)?;
    let params = args.enterprise_params();
    if args.enterprise {
        params.validate()?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let db = connect(&db_settings).await?;
        let backend = db.backend().as_str();
        let hasher = credentials::Argon2Hasher::recommended()
            .map_err(|e| anyhow::anyhow!("password hasher: {e}"))?;
        if args.demo {
            let outcome = demo::run(&db, &hasher).await?;
            demo::print(&outcome, backend);
        } else {
            let outcome = enterprise::run(&db, &params, &hasher).await?;
            enterprise::print(&outcome, backend);
        }
        db.close().await.ok();
        anyhow::Ok(())
    })
}

/// Where the database is, read from the environment as the server reads it.
fn database_settings(env: &BTreeMap<String, String>) -> anyhow::Result<DatabaseSettings> {
    let settings = pto_server::config::Settings::from_sources(env, false)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(match &settings.database_url {
        Some(url) => DatabaseSettings {
            url: url.expose().to_owned(),
            read_url: None,
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(30),
            busy_timeout: std::time::Duration::from_secs(5),
        },
        None => {
            std::fs::create_dir_all(&settings.data_dir)
                .with_context(|| format!("creating {}", settings.data_dir.display()))?;
            DatabaseSettings::sqlite_in(&settings.data_dir)
        }
    })
}

/// Connects and applies pending migrations.
async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Database> {
    let db = Database::connect(settings).await?;
    db.migrate().await?;
    Ok(db)
}
