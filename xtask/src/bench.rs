//! `cargo xtask bench`: the speed goals, measured (release builds). Results are
//! recorded in docs/benchmarks.md with the machine and date.

use std::process::Command;

use anyhow::bail;

fn run(name: &str, cmd: &mut Command) -> anyhow::Result<()> {
    println!("==> bench: {name}");
    let status = cmd.status()?;
    if !status.success() {
        bail!("bench {name} failed (a target was missed, or engines disagreed)");
    }
    Ok(())
}

/// `cargo run --release -p xtask -- <args>` in the workspace root.
fn release_xtask(args: &[&str]) -> Command {
    let mut cmd = crate::cargo();
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["run", "--release", "-p", "xtask", "--"])
        .args(args);
    cmd
}

pub fn run_all() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    run(
        "permission check vs casbin-rs and cedar-policy (writes benches/engine-peers/RESULTS.md)",
        crate::cargo().current_dir(root).args([
            "run",
            "--release",
            "--manifest-path",
            "benches/engine-peers/Cargo.toml",
        ]),
    )?;
    run(
        "warm check through the permission cache",
        crate::cargo().current_dir(root).args([
            "run",
            "--release",
            "-p",
            "permissions-cache",
            "--example",
            "warm_check",
        ]),
    )?;
    run(
        "audit CSV export memory, 10k vs 100k events (streamed, constant memory)",
        &mut release_xtask(&["audit", "bench-export"]),
    )?;
    run(
        "HTTP check under load, cold checks, propagation between instances, the edge with Accept-Encoding",
        &mut release_xtask(&["bench-http"]),
    )?;
    run(
        "member directory list, search and fuzzy search on the enterprise seed",
        &mut release_xtask(&["bench-directory"]),
    )?;
    run(
        "member import (10k rows ≤ 15 s) and CSV export memory, over HTTP on PostgreSQL",
        &mut release_xtask(&["bench-member-io"]),
    )?;
    run(
        "member search: relevance vs brute force, searches/s and p99 at 20k and 100k members, freshness, memory (PostgreSQL and SQLite)",
        &mut release_xtask(&["bench-search"]),
    )?;
    run(
        "mixed load: 1,000 virtual users, open loop, p99 per route class, server CPU and memory, check vs /health",
        &mut release_xtask(&["bench-mix"]),
    )?;
    run(
        "large dataset: 40,000 orgs and 1M members — start, memory, cold and warm checks, lists and searches",
        &mut release_xtask(&["bench-large"]),
    )?;
    run(
        "event streams: 10,000 members connected on one and two instances, open time, memory per stream, fan-out p99",
        &mut release_xtask(&["bench-streams"]),
    )?;
    run(
        "webhooks: 1,000 events to 10 endpoints verified by a local receiver (p99 ≤ 1 s from commit), a receiver down for a minute gets every event once",
        &mut release_xtask(&["bench-webhooks"]),
    )?;
    run(
        "mail delivery: 10,000 messages to a local SMTP server (≥ 200 messages/s, flat memory)",
        &mut release_xtask(&["bench-mail"]),
    )?;
    println!("bench: copy the results into docs/benchmarks.md with the machine and date");
    Ok(())
}

/// The mail delivery benchmark: `crates/mail/examples/bench_mail.rs` in release (an
/// example, so it can use test-support's scratch database and SMTP server).
pub fn mail() -> anyhow::Result<()> {
    run(
        "mail delivery to aiosmtpd",
        crate::cargo()
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(["run", "--release", "-p", "mail", "--example", "bench_mail"]),
    )
}

// ---------------------------------------------------------------------------------------
// Audit export memory (issue 5)

/// How many events one seeding transaction appends.
const SEED_TX: u64 = 5_000;

/// Seeds `n` events of one org (a valid chain, appended through the real adapter) into
/// a fresh SQLite file per count, then measures each export in a fresh process and
/// compares the peak RSS growth. Fails if the growth scales with the event count.
pub fn audit_export(counts: &[u64]) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for &n in counts {
        let dir = std::env::temp_dir().join(format!(
            "ptoc-bench-export-{n}-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        let started = std::time::Instant::now();
        let org = seed_events(&dir, n)?;
        let seeded = started.elapsed();
        let out = Command::new(std::env::current_exe()?)
            .args([
                "audit",
                "bench-export-measure",
                "--org",
                &org.to_string(),
                "--dir",
            ])
            .arg(&dir)
            .output()?;
        let _ = std::fs::remove_dir_all(&dir);
        if !out.status.success() {
            bail!(
                "measuring the export of {n} events failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let m: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        println!(
            "  {n} events: seeded in {:.1} s; export {m}",
            seeded.as_secs_f64()
        );
        rows.push((n, m));
    }
    println!(
        "| events | CSV bytes | rows | export time | RSS before | peak RSS growth during export |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for (n, m) in &rows {
        println!(
            "| {n} | {} | {} | {:.2} s | {:.1} MiB | {:.1} MiB |",
            m["bytes"],
            m["rows"],
            m["seconds"].as_f64().unwrap_or(0.0),
            kib_to_mib(&m["rss_before_kib"]),
            kib_to_mib(&m["growth_kib"])
        );
    }
    if let (Some((_, small)), Some((_, large))) = (rows.first(), rows.last()) {
        let (small, large) = (kib(&small["growth_kib"]), kib(&large["growth_kib"]));
        // Constant memory: 10x the events may not cost more than 2x the smaller run's
        // growth plus 8 MiB of allocator and driver noise.
        let limit = 2 * small + 8 * 1024;
        println!(
            "target: peak RSS growth does not scale with the event count: {} ({} KiB vs limit {limit} KiB)",
            if large <= limit { "PASS" } else { "FAIL" },
            large
        );
        if large > limit {
            bail!("export memory grows with the event count");
        }
    }
    Ok(())
}

fn kib(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

#[allow(clippy::cast_precision_loss, reason = "display only")]
fn kib_to_mib(v: &serde_json::Value) -> f64 {
    kib(v) as f64 / 1024.0
}

fn seed_events(dir: &std::path::Path, n: u64) -> anyhow::Result<uuid::Uuid> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let db =
            persistence::Database::connect(&persistence::DatabaseSettings::sqlite_in(dir)).await?;
        db.migrate().await?;
        let org = uuid::Uuid::now_v7();
        let scope = audit::TenantScope::org(org);
        let start = time::OffsetDateTime::now_utc() - time::Duration::days(30);
        let mut written = 0;
        while written < n {
            let tx = audit_store::AuditedTx::begin(&db).await?;
            for i in written..(written + SEED_TX).min(n) {
                let mut e = audit::NewAuditEvent::audit(
                    scope,
                    audit::Actor::User(uuid::Uuid::from_u128(u128::from(i % 97))),
                    audit::Action::from_static("permission.update"),
                    "permission_setting",
                    format!("events.key{}", i % 28),
                    audit::ChangeType::Update,
                )
                .with_old_value(serde_json::json!({"min_role": "volunteer", "enabled": true}))
                .with_new_value(
                    serde_json::json!({"min_role": "board_member", "enabled": i % 2 == 0}),
                )
                .with_ip("192.0.2.7")
                .with_request_id(format!("req-{i}"));
                e.occurred_at =
                    start + time::Duration::milliseconds(i64::try_from(i).unwrap_or(0) * 20);
                tx.record(e).await?;
            }
            tx.commit().await?;
            written = (written + SEED_TX).min(n);
        }
        db.close().await.ok();
        Ok(org)
    })
}

/// A `/proc/<process>/status` field in KiB (`VmRSS:`, `VmHWM:`; `process` is a pid or
/// `self`); 0 if it cannot be read.
pub(crate) fn proc_status_kib(process: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// One export in this (fresh) process: resets the peak RSS (`/proc/self/clear_refs`),
/// streams the whole CSV through the route's own stream function, and prints the
/// numbers as JSON.
pub fn audit_export_measure(dir: &std::path::Path, org: uuid::Uuid) -> anyhow::Result<()> {
    use futures_util::StreamExt as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let db =
            persistence::Database::connect(&persistence::DatabaseSettings::sqlite_in(dir)).await?;
        let log = audit_store::SeaOrmAuditLog::new(db.clone());
        // Warm the pool and the statement cache with one small page.
        let mut warm = pto_server::routes::csv_stream(
            log.clone(),
            audit::AuditFilter::new(audit::ChainId::Org(org)),
        );
        let _ = warm.next().await;
        drop(warm);
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = proc_status_kib("self", "VmRSS:");
        let started = std::time::Instant::now();
        let mut stream =
            pto_server::routes::csv_stream(log, audit::AuditFilter::new(audit::ChainId::Org(org)));
        let (mut bytes, mut rows) = (0_u64, 0_u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            rows += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        let seconds = started.elapsed().as_secs_f64();
        let peak = proc_status_kib("self", "VmHWM:");
        db.close().await.ok();
        println!(
            "{}",
            serde_json::json!({
                "bytes": bytes,
                "rows": rows.saturating_sub(1),
                "seconds": seconds,
                "rss_before_kib": before,
                "peak_kib": peak,
                "growth_kib": peak.saturating_sub(before),
            })
        );
        anyhow::Ok(())
    })
}
