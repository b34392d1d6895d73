//! `cargo xtask bench-large [--quick]`: issue 20's large dataset on the release server
//! (PostgreSQL + Redis, rate limits off).
//!
//! - **Data**: `seed --enterprise --large` ([`Params::large`]: 40,000 orgs, 1,000,000
//!   members, ≥ 1,000,000 setting rows), written into a fresh database; the rows are
//!   counted back.
//! - **Start**: the server's time from spawn to `/ready` answering 200, and until the
//!   cache warming at start has finished (`ptoc_cache_warming_done`); its resident memory
//!   then.
//! - **Sessions**: the admin and a volunteer of [`ORGS`] orgs spread over the dataset sign
//!   in (the seed's shared password).
//! - **Cold**: the server is restarted with an empty shared cache (its own Redis database,
//!   flushed), so the first permission check of each org's volunteer loads the org's
//!   table and the member from the database: p50/p99 over those first checks.
//! - **Warm**: [`WARM_ROUNDS`] more checks of each volunteer (six keys in turn), member
//!   list pages (20 rows) and member searches with distinct texts per org, one at a time
//!   over a keep-alive connection with `Accept-Encoding: gzip`: p50/p99 each. The first
//!   list and search of each org (a cold directory cache) are reported apart.
//! - **Memory**: resident memory after start, after the measurements, and the maximum.
//!
//! Prints a Markdown report; fails on a missed target (not with `--quick`, a smoke run on
//! a small seed).

use std::io::{BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use persistence::{Database, DatabaseSettings};

use crate::bench::proc_status_kib;
use crate::bench_http::{
    ACCEPT_ENCODING, BenchDatabase, KEYS, ScratchDir, Server, encode_query, machine, ms,
    percentile, read_answer, release_server, service_urls,
};
use crate::bench_mix::{Backend, search_texts, seed, sessions};
use crate::seed::enterprise::Params;

/// Orgs whose admin and volunteer sign in (spread evenly over the dataset).
const ORGS: usize = 400;
/// `--quick`: orgs signed in.
const QUICK_ORGS: usize = 20;
/// Warm requests of each kind per org.
const WARM_ROUNDS: usize = 10;
/// The Redis database the server's cache uses here (flushed for the cold phase).
const REDIS_DB: u32 = 11;

/// Issue 20's budgets, as for the mixed load: reads p99, resident memory.
const READ_P99_MS: f64 = 25.0;
const RSS_BUDGET_MIB: f64 = 150.0;
/// A cold check reads the org's table and the member from the database.
const COLD_P99_MS: f64 = 50.0;
/// Readiness does not wait for the data (warming runs in the background).
const READY_MS: f64 = 5_000.0;

/// `--quick`: a small seed (2,000 members).
fn quick_params() -> Params {
    Params {
        districts: 2,
        schools_per_district: 20,
        orgs_per_school: 2,
        members_per_org: 25,
        large_rows: Some(20_000),
        org_settings_percent: 90.0,
        ..Params::default()
    }
}

/// Sorted request times and their p50/p99 in ms.
struct Timings {
    what: &'static str,
    times: Vec<Duration>,
}

impl Timings {
    fn new(what: &'static str, mut times: Vec<Duration>) -> Self {
        times.sort();
        Self { what, times }
    }

    fn p(&self, q: f64) -> f64 {
        ms(percentile(&self.times, q))
    }
}

/// One keep-alive connection sending GETs with a browser's `Accept-Encoding`.
struct Client {
    addr: SocketAddr,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            addr,
            writer: stream.try_clone()?,
            reader: BufReader::with_capacity(64 * 1024, stream),
        })
    }

    /// GETs `path` as `token`; the time from writing the request to the whole answer.
    fn get(&mut self, path: &str, token: &str) -> anyhow::Result<Duration> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nAuthorization: Bearer {token}\r\nAccept-Encoding: {ACCEPT_ENCODING}\r\n\r\n",
            self.addr
        );
        let started = Instant::now();
        self.writer.write_all(request.as_bytes())?;
        let answer = read_answer(&mut self.reader)?;
        let took = started.elapsed();
        if answer.status != 200 {
            bail!(
                "GET {path}: {} {}",
                answer.status,
                answer.json().map(|j| j.to_string()).unwrap_or_default()
            );
        }
        Ok(took)
    }
}

/// The server's `ptoc_cache_warming_done` and `ptoc_cache_warm_orgs`.
fn warming(addr: SocketAddr) -> anyhow::Result<(bool, f64)> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    writer.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let answer = read_answer(&mut BufReader::new(stream))?;
    let text = String::from_utf8_lossy(&answer.body);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Ok((
        value("ptoc_cache_warming_done") == Some(1.0),
        value("ptoc_cache_warm_orgs").unwrap_or(0.0),
    ))
}

/// Empties the Redis database `db` of `redis_url`.
fn flush_redis(redis_url: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("redis-cli")
        .args(["-u", redis_url, "FLUSHDB"])
        .output()
        .context("redis-cli")?;
    if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("OK") {
        bail!("FLUSHDB on {redis_url} failed");
    }
    Ok(())
}

/// Rows of the tables that make the dataset large.
async fn count_rows(url: &str) -> anyhow::Result<Vec<(&'static str, i64)>> {
    let db = Database::connect(&DatabaseSettings {
        url: url.to_owned(),
        read_url: None,
        max_connections: 1,
        acquire_timeout: Duration::from_secs(30),
        busy_timeout: Duration::from_secs(30),
    })
    .await?;
    let mut counts = Vec::new();
    for table in [
        "organizations",
        "users",
        "memberships",
        "district_permission_settings",
        "school_permission_settings",
        "org_permission_settings",
    ] {
        let row = sea_orm::ConnectionTrait::query_one_raw(
            db.primary(),
            sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT count(*) AS n FROM {table}"),
            ),
        )
        .await?
        .context("no count")?;
        counts.push((table, row.try_get::<i64>("", "n")?));
    }
    db.close().await.ok();
    Ok(counts)
}

/// Starts the server and times it: (server, ms to `/ready`, ms until warming was done,
/// orgs warmed).
fn start_timed(
    bin: &std::path::Path,
    url: &str,
    redis: &str,
    dir: &std::path::Path,
) -> anyhow::Result<(Server, f64, f64, f64)> {
    let started = Instant::now();
    let server = Server::start(bin, url, redis, dir)?;
    let ready = ms(started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (done, orgs) = warming(server.addr)?;
        if done {
            return Ok((server, ready, ms(started.elapsed()), orgs));
        }
        if Instant::now() > deadline {
            bail!("the cache warming did not finish within 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cargo xtask bench-large`.
pub fn run(quick: bool) -> anyhow::Result<()> {
    let params = if quick {
        quick_params()
    } else {
        Params::large()
    };
    let orgs_signed_in = if quick { QUICK_ORGS } else { ORGS };
    let (admin_url, redis_url) = service_urls();
    let redis = format!("{}/{REDIS_DB}", redis_url.trim_end_matches('/'));
    let bin = release_server()?;
    let machine = machine();
    let dir = ScratchDir::create("ptoc-bench-large")?;
    let db = BenchDatabase::create(&admin_url, "ptoc_bench_large")?;
    let started = Instant::now();
    let password = seed(&db.url, &params, Backend::Postgres)?;
    let seed_secs = started.elapsed().as_secs_f64();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let counts = rt.block_on(count_rows(&db.url))?;
    println!("bench-large: seeded in {seed_secs:.0} s: {counts:?}");
    flush_redis(&redis)?;

    // Start on the large dataset; sign in.
    let (server, ready_ms, warm_ms, warm_orgs) = start_timed(&bin, &db.url, &redis, &dir.0)?;
    let pid = server.pid().to_string();
    let rss_started = proc_status_kib(&pid, "VmRSS:");
    let total_orgs = params.base_orgs();
    let step = (total_orgs / orgs_signed_in).max(1);
    let picked: Vec<usize> = (0..orgs_signed_in).map(|i| i * step).collect();
    let began = Instant::now();
    let orgs = sessions(server.addr, params.members_per_org, &picked, &password)?;
    println!(
        "bench-large: {} orgs signed in in {:.1} s",
        orgs.len(),
        began.elapsed().as_secs_f64()
    );
    drop(server);

    // Cold: a new process, the shared cache emptied.
    flush_redis(&redis)?;
    let (server, _, _, _) = start_timed(&bin, &db.url, &redis, &dir.0)?;
    let pid = server.pid().to_string();
    let mut rss_max = proc_status_kib(&pid, "VmRSS:");
    let mut client = Client::connect(server.addr)?;
    // Open the pools with one org, untimed ("cold" is empty caches, not a process that
    // has not connected yet).
    let check = |org: &str, key: &str| format!("/api/v2/orgs/{org}/permissions/check?key={key}");
    client.get(&check(&orgs[0].org, KEYS[0]), &orgs[0].member_token)?;
    let mut cold = Vec::new();
    for o in &orgs[1..] {
        cold.push(client.get(&check(&o.org, KEYS[0]), &o.member_token)?);
    }
    let mut cold_list = Vec::new();
    let mut cold_search = Vec::new();
    let texts = search_texts(7);
    let mut text = texts.iter().cycle();
    let search = |o: &crate::bench_mix::load::OrgSession, q: &str| {
        format!(
            "/api/v2/orgs/{}/users/search?q={}&limit=20",
            o.org,
            encode_query(q)
        )
    };
    for o in &orgs {
        cold_list.push(client.get(
            &format!("/api/v2/orgs/{}/users?limit=20", o.org),
            &o.admin_token,
        )?);
        let q = text.next().context("no search text")?;
        cold_search.push(client.get(&search(o, q), &o.admin_token)?);
    }
    rss_max = rss_max.max(proc_status_kib(&pid, "VmRSS:"));

    // Warm.
    let (mut warm, mut list, mut found) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..WARM_ROUNDS {
        for o in &orgs {
            warm.push(client.get(&check(&o.org, KEYS[round % KEYS.len()]), &o.member_token)?);
            let sort = if round % 2 == 0 { "name" } else { "joined" };
            list.push(client.get(
                &format!("/api/v2/orgs/{}/users?limit=20&sort={sort}", o.org),
                &o.admin_token,
            )?);
            let q = text.next().context("no search text")?;
            found.push(client.get(&search(o, q), &o.admin_token)?);
        }
        rss_max = rss_max.max(proc_status_kib(&pid, "VmRSS:"));
    }
    let rss_after = proc_status_kib(&pid, "VmRSS:");
    drop(server);

    let rows = [
        (
            Timings::new("permission check, cold (first of each org)", cold),
            COLD_P99_MS,
        ),
        (Timings::new("permission check, warm", warm), READ_P99_MS),
        (
            Timings::new("member list, first of each org", cold_list),
            READ_P99_MS,
        ),
        (
            Timings::new("member list (20 rows), warm", list),
            READ_P99_MS,
        ),
        (
            Timings::new("member search, first of each org", cold_search),
            READ_P99_MS,
        ),
        (
            Timings::new("member search (distinct texts)", found),
            READ_P99_MS,
        ),
    ];
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut misses = Vec::new();
    let date = time::OffsetDateTime::now_utc();
    println!("\n## The large dataset (issue 20)\n");
    println!(
        "Run: `cargo xtask bench-large{}` (release server, PostgreSQL + Redis, rate limits off). Recorded {date}.\n",
        if quick { " --quick" } else { "" }
    );
    println!("Machine: {machine}.\n");
    let rows_text: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
    println!(
        "Data: {} (seeded in {seed_secs:.0} s). Requests one at a time on a keep-alive connection with `Accept-Encoding: {ACCEPT_ENCODING}`; {} orgs spread over the dataset, their admin and a volunteer signed in.\n",
        rows_text.join(", "),
        orgs.len()
    );
    println!("| measurement | p50 | p99 | target p99 | |\n|---|---:|---:|---:|---|");
    for (t, target) in &rows {
        let (p50, p99) = (t.p(0.5), t.p(0.99));
        let ok = p99 <= *target;
        if !ok {
            misses.push(format!("{} p99 {p99:.2} ms > {target} ms", t.what));
        }
        println!(
            "| {} ({} requests) | {p50:.2} ms | {p99:.2} ms | ≤ {target} ms | {} |",
            t.what,
            t.times.len(),
            if ok { "met" } else { "**missed**" }
        );
    }
    println!("\n| server | value | target | |\n|---|---:|---:|---|");
    let ready_ok = ready_ms <= READY_MS;
    if !ready_ok {
        misses.push(format!("ready after {ready_ms:.0} ms"));
    }
    println!(
        "| start to `/ready` | {ready_ms:.0} ms | ≤ {READY_MS} ms | {} |",
        if ready_ok { "met" } else { "**missed**" }
    );
    println!("| start to warming done | {warm_ms:.0} ms ({warm_orgs:.0} orgs warmed) | | |");
    println!("| memory after start | {:.0} MiB | | |", mib(rss_started));
    let rss_ok = mib(rss_max) <= RSS_BUDGET_MIB;
    if !rss_ok {
        misses.push(format!("memory {:.0} MiB", mib(rss_max)));
    }
    println!(
        "| memory, maximum sampled / after the run | {:.0} / {:.0} MiB | ≤ {RSS_BUDGET_MIB} MiB | {} |",
        mib(rss_max),
        mib(rss_after),
        if rss_ok { "met" } else { "**missed**" }
    );
    if !misses.is_empty() {
        if quick {
            println!("\n(--quick: targets not enforced)");
        } else {
            bail!("{} target(s) missed: {}", misses.len(), misses.join("; "));
        }
    }
    Ok(())
}
