//! Micro benchmark of the warm check (no criterion): the median time of
//! [`permissions::check`] on a compiled table, and of [`PermissionCache::check`] when both
//! the table and the member are in L1.
//!
//! ```text
//! cargo run --release -p permissions-cache --example warm_check [-- ITERATIONS]
//! ```
//!
//! Runs on a temporary SQLite database (no Redis: the warm path never touches it). Each
//! figure is the median over batches of 1 000 calls (so the clock's own cost is spread over
//! the batch), 1 000 000 calls by default.

#![allow(
    clippy::print_stdout,
    reason = "an example that prints its measurements"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use cache::InvalidationBus;
use permissions::{PermissionKey, check};
use permissions_cache::{CacheSettings, PermissionCache};
use permissions_store::SeaOrmPermissionStore;
use persistence::{Database, DatabaseSettings};
use sea_orm::{ConnectionTrait, Statement, Value};
use time::OffsetDateTime;
use uuid::Uuid;

const BATCH: u64 = 1_000;

/// Median, 1st and 99th percentile of per-call nanoseconds over batches of `BATCH` calls.
struct Summary {
    median: f64,
    p1: f64,
    p99: f64,
}

fn summarize(mut per_call: Vec<f64>) -> Summary {
    per_call.sort_by(f64::total_cmp);
    let at = |q: f64| per_call[((per_call.len() - 1) as f64 * q).round() as usize];
    Summary {
        median: at(0.5),
        p1: at(0.01),
        p99: at(0.99),
    }
}

fn report(label: &str, summary: &Summary) {
    println!(
        "{label:<48} median {:>7.1} ns   (p1 {:>6.1} ns, p99 {:>7.1} ns)",
        summary.median, summary.p1, summary.p99
    );
}

async fn exec(db: &Database, sql: &str, values: Vec<Value>) {
    let conn = db.primary();
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        sql,
        values,
    ))
    .await
    .expect("fixture");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let iterations: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let batches = (iterations / BATCH).max(1);

    let dir = std::env::temp_dir().join(format!("ptoc_warm_check_{}", Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = Database::connect(&DatabaseSettings {
        url: format!("sqlite://{}?mode=rwc", dir.join("db.sqlite3").display()),
        read_url: None,
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        busy_timeout: Duration::from_secs(5),
    })
    .await
    .expect("open sqlite");
    db.migrate().await.expect("migrate");
    let (org, user) = (Uuid::now_v7(), Uuid::now_v7());
    let at = persistence::now_micros();
    exec(
        &db,
        "INSERT INTO users (id, email, first_name, last_name, password_hash, status, \
         is_platform_admin, version, created_at, updated_at) \
         VALUES (?, 'bench@example.test', 'B', 'U', 'x', 'active', ?, 1, ?, ?)",
        vec![user.into(), false.into(), at.into(), at.into()],
    )
    .await;
    exec(
        &db,
        "INSERT INTO organizations (id, name, kind, signup_code, branding, status, version, \
         permissions_version, created_at, updated_at) \
         VALUES (?, 'PTO', 'pto', 'bench', ?, 'active', 1, 1, ?, ?)",
        vec![
            org.into(),
            serde_json::json!({}).into(),
            at.into(),
            at.into(),
        ],
    )
    .await;
    exec(
        &db,
        "INSERT INTO memberships (org_id, user_id, builtin_role, status, profile, version, \
         joined_at, updated_at) VALUES (?, ?, 'committee_lead', 'active', ?, 1, ?, ?)",
        vec![
            org.into(),
            user.into(),
            serde_json::json!({}).into(),
            at.into(),
            at.into(),
        ],
    )
    .await;

    let cache = PermissionCache::new(
        SeaOrmPermissionStore::new(db.clone()),
        None,
        InvalidationBus::local_only(),
        CacheSettings::default(),
    )
    .await
    .expect("cache");
    let now = OffsetDateTime::now_utc();
    // Denied after walking the whole formula (rank too low, no extra key, no grant).
    let denied = PermissionKey::BudgetApprove;
    // Allowed by rank.
    let allowed = PermissionKey::EventsCreate;
    assert_eq!(
        cache
            .check(org, user, denied, now, None)
            .await
            .expect("warm"),
        Some(false)
    );
    assert_eq!(
        cache
            .check(org, user, allowed, now, None)
            .await
            .expect("warm"),
        Some(true)
    );
    let compiled = cache
        .compiled_org(org, None)
        .await
        .expect("table")
        .expect("org");
    let member = cache
        .member(org, user, None)
        .await
        .expect("member")
        .expect("is a member");

    println!(
        "{} iterations per figure, batches of {BATCH}, release build: {}",
        batches * BATCH,
        !cfg!(debug_assertions)
    );
    for (label, key) in [("denied", denied), ("allowed", allowed)] {
        let mut per_call = Vec::with_capacity(batches as usize);
        for _ in 0..batches {
            let start = Instant::now();
            for _ in 0..BATCH {
                black_box(check(
                    black_box(&compiled),
                    black_box(&member),
                    black_box(key),
                    black_box(now),
                ));
            }
            per_call.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
        }
        report(
            &format!("permissions::check ({label})"),
            &summarize(per_call),
        );
    }
    for (label, key) in [("denied", denied), ("allowed", allowed)] {
        let mut per_call = Vec::with_capacity(batches as usize);
        for _ in 0..batches {
            let start = Instant::now();
            for _ in 0..BATCH {
                let answer = cache
                    .check(black_box(org), black_box(user), black_box(key), now, None)
                    .await;
                black_box(answer.ok());
            }
            per_call.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
        }
        report(
            &format!("PermissionCache::check, warm L1 ({label})"),
            &summarize(per_call),
        );
    }
    let stats = cache.stats();
    println!(
        "cache stats: l1 hits {}, l1 misses {}, db loads {}",
        stats.l1_hits, stats.l1_misses, stats.db_loads
    );
    drop(cache);
    let _ = db.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
