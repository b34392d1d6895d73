//! `seed --enterprise`: the synthetic benchmark dataset, written with bulk `INSERT`s.
//!
//! # Why not through the stores
//! The stores write one audited transaction per change; 100,000 memberships that way
//! would take many minutes. This seed writes rows directly, in multi-row `INSERT`s of
//! thousands of rows (`--batch`, capped at 32,000 bound values per statement), all
//! inside **one** transaction (so a failure leaves nothing behind). By design it writes
//! **no per-row audit events**: the data is synthetic, made for benchmarks. It records
//! exactly one audit event, `seed.enterprise` on the platform chain (actor: system),
//! with the parameters and the row counts, committed in the same transaction as the
//! rows. (On SQLite that transaction holds the database write lock throughout: seed
//! while the server is stopped, or its writes wait and time out.)
//!
//! # Shape (defaults)
//! 50 districts × 20 schools × 2 orgs × 50 members = 1,000 schools, 2,000 orgs, 100,000
//! users and memberships (one admin, two board members, four committee leads, the rest
//! volunteers per org; 2% invited, 1% suspended); each district sets 8 keys (20% of them
//! locked) and has one district admin (the admin of its first org); schools set 5% and
//! orgs 10% of their (scope, key) pairs, never a key their district locked; 1% of the
//! non-admin members hold one direct grant. Settings pick any minimum role and disable
//! 10% of keys, never a `users.*` key. `--large` adds settings-heavy orgs (every key
//! their district leaves unlocked, one admin each, spread over the schools) until the
//! three settings tables hold at least `--large-rows` (1,000,000) rows.
//!
//! # Determinism
//! Every id, name, role, setting and grant comes from SplitMix64 streams keyed by
//! `--seed` and the entity, so the same parameters give the same dataset on every backend
//! (ids are UUID v7 with a fixed base time). Only the timestamps (the time of the run)
//! and the shared password differ between runs.

use std::time::Instant;

use audit::{Action, Actor, ChangeType, NewAuditEvent, TenantScope};
use audit_store::AuditedTx;
use permissions::PermissionKey;
use persistence::Database;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use tenancy::Password;
use tenancy::ports::PasswordHasher as _;
use uuid::Uuid;

use super::bulk::{Progress, seconds, thousands};
use super::rng::{SplitMix64, random_password, uuid_v7};
pub(crate) use write::{COMMITTEES, FIRST_NAMES, GRADE_BANDS, LAST_NAMES, USER_COLUMNS};
use write::{v, write_all};

mod write;

/// 2026-01-01T00:00:00Z: the time part of the generated UUID v7 ids.
const BASE_MS: u64 = 1_767_225_600_000;

/// The number of permission keys.
const KEYS: usize = PermissionKey::COUNT;

/// Every key.
const ALL_KEYS: u32 = (1 << KEYS) - 1;

/// Stream tags: one independent random stream per (phase, entity).
mod tag {
    pub const USER: u64 = 1;
    pub const DISTRICT: u64 = 2;
    pub const SCHOOL: u64 = 3;
    pub const ORG: u64 = 4;
    pub const MEMBER: u64 = 5;
    pub const DISTRICT_KEYS: u64 = 6;
    pub const SCHOOL_KEYS: u64 = 7;
    pub const ORG_KEYS: u64 = 8;
    pub const DISTRICT_VALUE: u64 = 9;
    pub const SCHOOL_VALUE: u64 = 10;
    pub const ORG_VALUE: u64 = 11;
    pub const GRANT: u64 = 12;
}

/// The size and mix of the dataset.
#[derive(Debug, Clone)]
pub struct Params {
    /// Districts.
    pub districts: usize,
    /// Schools per district.
    pub schools_per_district: usize,
    /// Orgs per school.
    pub orgs_per_school: usize,
    /// Members (and users) per org.
    pub members_per_org: usize,
    /// Keys each district sets (at most 28).
    pub district_keys: usize,
    /// Share of district settings that are locked, in percent.
    pub locked_percent: f64,
    /// Share of (school, key) pairs with a school setting, in percent.
    pub school_settings_percent: f64,
    /// Share of (org, key) pairs with an org setting, in percent.
    pub org_settings_percent: f64,
    /// Share of non-admin members holding a direct grant, in percent.
    pub grant_percent: f64,
    /// With `--large`: add settings-heavy orgs until the settings tables hold this many
    /// rows.
    pub large_rows: Option<u64>,
    /// The random seed.
    pub seed: u64,
    /// Rows per `INSERT`.
    pub batch: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            districts: 50,
            schools_per_district: 20,
            orgs_per_school: 2,
            members_per_org: 50,
            district_keys: 8,
            locked_percent: 20.0,
            school_settings_percent: 5.0,
            org_settings_percent: 10.0,
            grant_percent: 1.0,
            large_rows: None,
            seed: 42,
            batch: 5000,
        }
    }
}

impl Params {
    /// Issue 20's large dataset: 50 districts × 400 schools × 2 orgs (40,000 orgs) × 25
    /// members (1,000,000). Orgs set 90% of the keys open to them (about 1M setting
    /// rows); settings-heavy orgs are added if the settings tables hold fewer than
    /// 1,000,000 rows.
    #[must_use]
    pub fn large() -> Self {
        Self {
            schools_per_district: 400,
            members_per_org: 25,
            org_settings_percent: 90.0,
            large_rows: Some(1_000_000),
            ..Self::default()
        }
    }

    /// Rejects impossible combinations before anything is written.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.districts >= 1, "--districts must be at least 1");
        anyhow::ensure!(
            self.schools_per_district >= 1,
            "--schools-per-district must be at least 1"
        );
        anyhow::ensure!(
            self.district_keys <= KEYS,
            "--district-keys must be at most {KEYS}"
        );
        anyhow::ensure!(self.batch >= 1, "--batch must be at least 1");
        for (name, p) in [
            ("--locked-percent", self.locked_percent),
            ("--school-settings-percent", self.school_settings_percent),
            ("--org-settings-percent", self.org_settings_percent),
            ("--grant-percent", self.grant_percent),
        ] {
            anyhow::ensure!(
                (0.0..=100.0).contains(&p),
                "{name} must be between 0 and 100"
            );
        }
        Ok(())
    }

    fn schools(&self) -> usize {
        self.districts * self.schools_per_district
    }

    /// Orgs before the settings-heavy ones of `--large`.
    pub fn base_orgs(&self) -> usize {
        self.schools() * self.orgs_per_school
    }
}

/// What the seed did.
#[derive(Debug)]
pub enum Outcome {
    /// The dataset's first district code exists: nothing was written.
    AlreadySeeded {
        /// The marker code.
        code: String,
    },
    /// The dataset was written.
    Seeded(Box<Report>),
}

/// The rows written, the shared password and where to start.
#[derive(Debug)]
pub struct Report {
    /// Rows per table, in write order.
    pub counts: Vec<(&'static str, u64)>,
    /// Settings-heavy orgs added by `--large`.
    pub large_orgs: usize,
    /// The password every generated user shares (random per run).
    pub password: String,
    /// The e-mail of the admin of the first org (also its district's admin).
    pub sample_admin: String,
    /// The first org.
    pub sample_org: Uuid,
    /// Total time.
    pub elapsed: std::time::Duration,
}

impl Report {
    /// Rows written to `table`.
    #[cfg(test)]
    pub fn count(&self, table: &str) -> u64 {
        self.counts
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }
}

/// The code of district `d` (0-based). The first one marks a seeded database.
fn district_code(d: usize) -> String {
    format!("BENCH-{:04}", d + 1)
}

/// The e-mail of user `u` (0-based).
pub fn user_email(u: usize) -> String {
    format!("u{:06}@bench.example.org", u + 1)
}

/// The id of org `o` (0-based; base orgs first) of the dataset of `seed`.
pub fn org_id(seed: u64, o: usize) -> Uuid {
    uuid_v7(
        BASE_MS,
        o as u64,
        &mut SplitMix64::stream(seed, tag::ORG, o as u64),
    )
}

/// One district's template: the keys it sets and which of them are locked.
struct DistrictPlan {
    id: Uuid,
    keys: u32,
    locked: u32,
}

/// One direct grant.
struct GrantPlan {
    org: usize,
    user: usize,
    key: PermissionKey,
    expires_in_days: Option<i64>,
}

/// Everything decided before writing: ids and which settings exist.
struct Plan {
    districts: Vec<DistrictPlan>,
    schools: Vec<Uuid>,
    school_keys: Vec<u32>,
    /// Base orgs first, then the settings-heavy ones.
    orgs: Vec<Uuid>,
    org_keys: Vec<u32>,
    users: Vec<Uuid>,
    grants: Vec<GrantPlan>,
}

impl Plan {
    fn new(p: &Params) -> Self {
        let seed = p.seed;
        let districts: Vec<DistrictPlan> = (0..p.districts)
            .map(|d| {
                let mut rng = SplitMix64::stream(seed, tag::DISTRICT_KEYS, d as u64);
                // A partial Fisher–Yates shuffle picks `district_keys` distinct keys.
                let mut order: Vec<usize> = (0..KEYS).collect();
                let mut keys = 0u32;
                let mut locked = 0u32;
                for i in 0..p.district_keys {
                    let j = i + rng.index(KEYS - i);
                    order.swap(i, j);
                    keys |= 1 << order[i];
                    if rng.percent(p.locked_percent) {
                        locked |= 1 << order[i];
                    }
                }
                let mut id_rng = SplitMix64::stream(seed, tag::DISTRICT, d as u64);
                DistrictPlan {
                    id: uuid_v7(BASE_MS, d as u64, &mut id_rng),
                    keys,
                    locked,
                }
            })
            .collect();
        let schools: Vec<Uuid> = (0..p.schools())
            .map(|s| {
                uuid_v7(
                    BASE_MS,
                    s as u64,
                    &mut SplitMix64::stream(seed, tag::SCHOOL, s as u64),
                )
            })
            .collect();
        let school_keys: Vec<u32> = (0..p.schools())
            .map(|s| {
                let open = ALL_KEYS & !districts[s / p.schools_per_district].locked;
                let mut rng = SplitMix64::stream(seed, tag::SCHOOL_KEYS, s as u64);
                pick_keys(open, p.school_settings_percent, &mut rng)
            })
            .collect();
        let base_orgs = p.base_orgs();
        let mut org_keys: Vec<u32> = (0..base_orgs)
            .map(|o| {
                let s = o / p.orgs_per_school;
                let open = ALL_KEYS & !districts[s / p.schools_per_district].locked;
                let mut rng = SplitMix64::stream(seed, tag::ORG_KEYS, o as u64);
                pick_keys(open, p.org_settings_percent, &mut rng)
            })
            .collect();
        if let Some(target) = p.large_rows {
            let mut rows: u64 = districts
                .iter()
                .map(|d| u64::from(d.keys.count_ones()))
                .chain(
                    school_keys
                        .iter()
                        .chain(&org_keys)
                        .map(|k: &u32| u64::from(k.count_ones())),
                )
                .sum();
            let mut extra = 0usize;
            while rows < target {
                let s = extra % p.schools();
                let open = ALL_KEYS & !districts[s / p.schools_per_district].locked;
                if open == 0 {
                    // Every district locks every key: no org can add a setting.
                    break;
                }
                org_keys.push(open);
                rows += u64::from(open.count_ones());
                extra += 1;
            }
        }
        let orgs = (0..org_keys.len()).map(|o| org_id(seed, o)).collect();
        let users = (0..base_orgs * p.members_per_org)
            .map(|u| {
                uuid_v7(
                    BASE_MS,
                    u as u64,
                    &mut SplitMix64::stream(seed, tag::USER, u as u64),
                )
            })
            .collect();
        let mut grants = Vec::new();
        for o in 0..base_orgs {
            for m in 1..p.members_per_org {
                let user = o * p.members_per_org + m;
                let mut rng = SplitMix64::stream(seed, tag::GRANT, user as u64);
                if rng.percent(p.grant_percent) {
                    let key = *rng.pick(&PermissionKey::ALL);
                    let expires_in_days = rng.percent(50.0).then(|| 30 + rng.below(335) as i64);
                    grants.push(GrantPlan {
                        org: o,
                        user,
                        key,
                        expires_in_days,
                    });
                }
            }
        }
        Self {
            districts,
            schools,
            school_keys,
            orgs,
            org_keys,
            users,
            grants,
        }
    }

    /// The school of org `o`: base orgs `orgs_per_school` at a time, then the
    /// settings-heavy ones round-robin.
    fn school_of(&self, p: &Params, o: usize) -> usize {
        let base = p.base_orgs();
        if o < base {
            o / p.orgs_per_school
        } else {
            (o - base) % self.schools.len()
        }
    }

    /// The single member (admin) of settings-heavy org `o`: a generated user.
    fn large_org_admin(&self, o: usize) -> Option<usize> {
        if self.users.is_empty() {
            None
        } else {
            Some((o.wrapping_mul(7919) + 13) % self.users.len())
        }
    }

    fn memberships(&self, p: &Params) -> u64 {
        let large = self.orgs.len() - p.base_orgs();
        let large_members = if self.users.is_empty() { 0 } else { large };
        (self.users.len() + large_members) as u64
    }
}

/// Each key of `open` with probability `percent`.
fn pick_keys(open: u32, percent: f64, rng: &mut SplitMix64) -> u32 {
    let mut keys = 0;
    for k in 0..KEYS {
        if open & (1 << k) != 0 && rng.percent(percent) {
            keys |= 1 << k;
        }
    }
    keys
}

/// Seeds the dataset on `db` (migrated), hashing the shared password with `hasher`.
pub async fn run(
    db: &Database,
    p: &Params,
    hasher: &credentials::Argon2Hasher,
) -> anyhow::Result<Outcome> {
    p.validate()?;
    let started = Instant::now();
    let marker = district_code(0);
    if district_exists(db.primary(), &marker).await? {
        return Ok(Outcome::AlreadySeeded { code: marker });
    }

    println!(
        "seed --enterprise: {} districts × {} schools × {} orgs × {} members (seed {}, up to {} rows per INSERT)",
        p.districts, p.schools_per_district, p.orgs_per_school, p.members_per_org, p.seed, p.batch
    );
    let progress = Progress::start("plan + password hash", 0);
    let plan = Plan::new(p);
    let password = random_password();
    let hash = hasher
        .hash(Password::parse(password.clone())?)
        .await
        .map_err(|e| anyhow::anyhow!("hashing the shared password: {e}"))?;
    progress.finish_step();

    let tx = AuditedTx::begin(db)
        .await
        .map_err(|e| anyhow::anyhow!("{e}: {:?}", e.0))?;
    let now = persistence::now_micros();
    let mut counts = write_all(tx.conn(), p, &plan, &hash, now).await?;

    let progress = Progress::start("audit event + commit", 1);
    let large_orgs = plan.orgs.len() - p.base_orgs();
    let summary: serde_json::Map<String, serde_json::Value> = counts
        .iter()
        .map(|(t, n)| ((*t).to_owned(), json!(n)))
        .collect();
    tx.record(
        NewAuditEvent::audit(
            TenantScope::PLATFORM,
            Actor::System,
            Action::from_static("seed.enterprise"),
            "dataset",
            "enterprise",
            ChangeType::Create,
        )
        .with_new_value(json!({
            "note": "synthetic benchmark data written in bulk: no per-row audit events by design",
            "seed": p.seed,
            "districts": p.districts,
            "schools_per_district": p.schools_per_district,
            "orgs_per_school": p.orgs_per_school,
            "members_per_org": p.members_per_org,
            "large_orgs": large_orgs,
            "rows": summary,
        })),
    )
    .await
    .map_err(|e| anyhow::anyhow!("recording the seed's audit event: {e}"))?;
    tx.commit()
        .await
        .map_err(|e| anyhow::anyhow!("commit: {e}"))?;
    progress.finish_step();
    counts.push(("audit_events", 1));

    Ok(Outcome::Seeded(Box::new(Report {
        counts,
        large_orgs,
        password,
        sample_admin: user_email(0),
        sample_org: plan.orgs.first().copied().unwrap_or_default(),
        elapsed: started.elapsed(),
    })))
}

/// Whether a district with this code exists.
pub async fn district_exists<C: ConnectionTrait>(conn: &C, code: &str) -> anyhow::Result<bool> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => "SELECT id FROM districts WHERE code = $1",
        _ => "SELECT id FROM districts WHERE code = ?",
    };
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [v(code)]))
        .await?;
    Ok(row.is_some())
}

/// Prints the outcome.
pub fn print(outcome: &Outcome, backend: &str) {
    match outcome {
        Outcome::AlreadySeeded { code } => println!(
            "seed --enterprise: district {code} exists, so this {backend} database is already seeded; nothing written.\n\
             To reseed, start from an empty database (e.g. `cargo xtask migrate fresh`)."
        ),
        Outcome::Seeded(r) => {
            let rows: u64 = r.counts.iter().map(|(_, n)| n).sum();
            println!(
                "\nseed --enterprise on {backend}: {} rows in {}{}",
                thousands(rows),
                seconds(r.elapsed),
                if r.large_orgs > 0 {
                    format!(
                        " (--large: {} settings-heavy orgs)",
                        thousands(r.large_orgs as u64)
                    )
                } else {
                    String::new()
                }
            );
            for (table, n) in &r.counts {
                println!("  {table:<30} {:>11}", thousands(*n));
            }
            println!(
                "\nNo per-row audit events were written (synthetic benchmark data, by design); \
                 one `seed.enterprise` event on the platform chain records this run."
            );
            println!(
                "Every generated user (u000001@bench.example.org …) shares this password, for local use only:\n  {}",
                r.password
            );
            println!(
                "Example: {} is the admin of org {} and a district admin.",
                r.sample_admin, r.sample_org
            );
        }
    }
}
