//! `cargo xtask bench-directory`: the member-directory targets of issue 6 on
//! PostgreSQL — list and search p95 ≤ 30 ms and fuzzy search over 10,000 members p95 ≤
//! 50 ms — on the enterprise seed (100,000 memberships in 2,000 orgs) plus one org of
//! 10,000 members, measured through the directory adapter the API handlers call
//! (server-side: the SQL, the ranking and the conversion; no HTTP).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use persistence::{Database, DatabaseSettings};
use sea_orm::{ConnectionTrait, Statement};
use tenancy::OrgId;
use tenancy::directory::{
    MemberCursor, MemberDirectory, MemberFilter, MemberListRequest, MemberSearchRequest, MemberSort,
};
use tenancy::search::SearchQuery;
use tenancy_store::SeaOrmMemberDirectory;

use crate::seed::bench_rows::{BenchMember, MEMBERSHIP_COLUMNS, membership_row};
use crate::seed::bulk::BulkInsert;
use crate::seed::rng::SplitMix64;

const BIG_ORG_MEMBERS: usize = 10_000;
const ROUNDS: usize = 200;

fn p(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list"
    )]
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

struct Row {
    what: &'static str,
    times: Vec<Duration>,
    hits: usize,
    target_ms: f64,
}

/// Seeds a fresh PostgreSQL database, measures, prints a Markdown report; fails if a
/// target is missed.
pub fn run() -> anyhow::Result<()> {
    let (admin_url, _) = crate::bench_http::service_urls();
    let db = crate::bench_http::BenchDatabase::create(&admin_url, "ptoc_bench_dir")?;
    let data_dir = crate::bench_http::ScratchDir::create("ptoc-bench-dir")?;
    let started = Instant::now();
    let status = Command::new(std::env::current_exe()?)
        .args(["seed", "--enterprise"])
        .env("DATABASE_URL", &db.url)
        .env("DATA_DIR", &data_dir.0)
        .status()?;
    if !status.success() {
        bail!("seeding failed");
    }
    println!(
        "bench-directory: enterprise seed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(measure(&db.url))
}

async fn measure(url: &str) -> anyhow::Result<()> {
    let db = Database::connect(&DatabaseSettings {
        url: url.to_owned(),
        read_url: None,
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
        busy_timeout: Duration::from_secs(5),
    })
    .await?;
    let conn = db.primary();
    // One big org: the first 10,000 users join it.
    let big = uuid::Uuid::now_v7();
    let now = time::OffsetDateTime::now_utc();
    conn.execute_raw(Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "INSERT INTO organizations (id, name, kind, signup_code, branding, status, version, permissions_version, created_at, updated_at)
         VALUES ($1, 'Big PTO', 'pto', 'BIGPTO10K', '{}', 'active', 1, 1, $2, $2)",
        [big.into(), now.into()],
    ))
    .await?;
    let users = conn
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT id, first_name, last_name, email FROM users ORDER BY email LIMIT {BIG_ORG_MEMBERS}"),
        ))
        .await?;
    let mut names = Vec::with_capacity(users.len());
    {
        let txn = sea_orm::TransactionTrait::begin(conn).await?;
        let mut out = BulkInsert::new(
            &txn,
            "memberships",
            &MEMBERSHIP_COLUMNS,
            1000,
            users.len() as u64,
        );
        let mut rng = SplitMix64::stream(7, 1, 0);
        for (i, u) in users.iter().enumerate() {
            let id: uuid::Uuid = u.try_get_by_index(0)?;
            let first: String = u.try_get_by_index(1)?;
            let last: String = u.try_get_by_index(2)?;
            let email: String = u.try_get_by_index(3)?;
            let joined = now - time::Duration::minutes(i64::try_from(rng.below(500_000))?);
            let member = BenchMember {
                org: big,
                user: id,
                role: if i == 0 { "admin" } else { "volunteer" },
                status: "active",
                first: &first,
                last: &last,
                email: &email,
                committee: None,
                children: &[],
                profile: serde_json::json!({}),
                joined,
            };
            out.push(membership_row(member, now)).await?;
            names.push((first, last));
        }
        out.finish().await?;
        txn.commit().await?;
    }
    conn.execute_unprepared("ANALYZE").await?;
    let orgs: Vec<uuid::Uuid> = conn
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT id FROM organizations WHERE name <> 'Big PTO' ORDER BY id LIMIT 200".to_owned(),
        ))
        .await?
        .iter()
        .map(|r| r.try_get_by_index(0))
        .collect::<Result<_, _>>()?;
    let dir = SeaOrmMemberDirectory::new(db.clone());
    let mut rng = SplitMix64::stream(11, 2, 0);
    let sorts = [
        MemberSort::Name,
        MemberSort::Email,
        MemberSort::Joined,
        MemberSort::LastActive,
    ];
    let typo = |s: &str| -> String {
        // Swap two neighbouring letters after the first (a transposition typo).
        let mut c: Vec<char> = s.to_lowercase().chars().collect();
        if c.len() >= 4 {
            c.swap(2, 3);
        }
        c.into_iter().collect()
    };
    let mut rows = vec![
        Row {
            what: "list, 2,000 orgs of 50: first page of 50, any sort/direction",
            times: vec![],
            hits: 0,
            target_ms: 30.0,
        },
        Row {
            what: "list, org of 10,000: first page of 50, any sort/direction",
            times: vec![],
            hits: 0,
            target_ms: 30.0,
        },
        Row {
            what: "list, org of 10,000: page 6 (keyset cursor)",
            times: vec![],
            hits: 0,
            target_ms: 30.0,
        },
        Row {
            what: "search, 2,000 orgs of 50: a member's last name",
            times: vec![],
            hits: 0,
            target_ms: 30.0,
        },
        Row {
            what: "search, org of 10,000: full name, exact",
            times: vec![],
            hits: 0,
            target_ms: 30.0,
        },
        Row {
            what: "fuzzy search, org of 10,000: first and last name, each with a typo",
            times: vec![],
            hits: 0,
            target_ms: 50.0,
        },
    ];
    let big_org = OrgId::from_uuid(big);
    for round in 0..ROUNDS {
        let sort = sorts[round % sorts.len()];
        let descending = round % 2 == 1;
        let small = OrgId::from_uuid(orgs[usize::try_from(rng.below(orgs.len() as u64))?]);
        let list = |org: OrgId, after: Option<MemberCursor>| MemberListRequest {
            org,
            filter: MemberFilter::default(),
            sort,
            descending,
            after,
            limit: 50,
            // An admin's view (the record): the directory's own predicates are measured
            // by the API tests, not here.
            audience: tenancy::directory::Audience::Record,
        };
        let t = Instant::now();
        let page = dir.list(&list(small, None)).await?;
        rows[0].times.push(t.elapsed());
        rows[0].hits += page.rows.len();

        let t = Instant::now();
        let page = dir.list(&list(big_org, None)).await?;
        rows[1].times.push(t.elapsed());
        rows[1].hits += page.rows.len();

        // Walk to page 6 untimed, then time it.
        let mut after = None;
        for _ in 0..5 {
            let pg = dir.list(&list(big_org, after)).await?;
            let (u, m) = pg.rows.last().context("a full page")?;
            after = Some(MemberCursor::after(sort, descending, u, m));
        }
        let t = Instant::now();
        let page = dir.list(&list(big_org, after)).await?;
        rows[2].times.push(t.elapsed());
        rows[2].hits += page.rows.len();

        let (first, last) = &names[usize::try_from(rng.below(names.len() as u64))?];
        let search = |org: OrgId, q: &str| -> anyhow::Result<MemberSearchRequest> {
            Ok(MemberSearchRequest {
                org,
                query: SearchQuery::parse(q)?,
                filter: MemberFilter::default(),
                offset: 0,
                limit: 20,
                audience: tenancy::directory::Audience::Record,
            })
        };
        let t = Instant::now();
        let page = dir.search(&search(small, last)?).await?;
        rows[3].times.push(t.elapsed());
        rows[3].hits += usize::from(!page.rows.is_empty());

        let t = Instant::now();
        let page = dir
            .search(&search(big_org, &format!("{first} {last}"))?)
            .await?;
        rows[4].times.push(t.elapsed());
        rows[4].hits += usize::from(page.rows.iter().any(|(u, _)| u.last_name.as_str() == last));

        let q = format!("{} {}", typo(first), typo(last));
        let t = Instant::now();
        let page = dir.search(&search(big_org, &q)?).await?;
        rows[5].times.push(t.elapsed());
        rows[5].hits += usize::from(
            page.rows
                .iter()
                .any(|(u, _)| u.last_name.as_str() == last && u.first_name.as_str() == first),
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    println!("\n## Member directory: list and search (issue 6)\n");
    println!(
        "Run: `cargo xtask bench-directory` (PostgreSQL; enterprise seed + one org of {BIG_ORG_MEMBERS} members; {ROUNDS} rounds, timed through `SeaOrmMemberDirectory`, i.e. server-side without HTTP). Recorded {}. Machine: {} × `{cpu}`; load average after: {}.\n",
        time::OffsetDateTime::now_utc(),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "| query | p50 | p95 | max | found | target p95 | |\n|---|---:|---:|---:|---:|---:|---|"
    );
    let mut missed = false;
    for r in &mut rows {
        r.times.sort();
        let p95 = p(&r.times, 0.95);
        let ok = p95 <= r.target_ms;
        missed |= !ok;
        println!(
            "| {} | {:.2} ms | {p95:.2} ms | {:.2} ms | {} / {} | ≤ {} ms | {} |",
            r.what,
            p(&r.times, 0.5),
            p(&r.times, 1.0),
            r.hits,
            r.times.len(),
            r.target_ms,
            if ok { "PASS" } else { "MISS" }
        );
    }
    println!(
        "\n\"found\": for lists, rows returned in all rounds; for searches, rounds whose answer held the sought member (typo search: the exact person)."
    );
    if missed {
        bail!("a target was missed (see the table)");
    }
    Ok(())
}
