//! `cargo xtask bench-mix [--quick] [--backend postgres|sqlite] [--per-class]`: the mixed
//! load of issue 20 on the release server (PostgreSQL + Redis by default, rate limits off)
//! over the enterprise seed.
//!
//! - **Sessions**: the admin and a volunteer of each of [`Plan::orgs`] seeded orgs sign
//!   in (the seed's shared password); the admin's member list and settings matrix give
//!   the members and the version the writes start from.
//! - **Load**: its own generator in a separate process ([`load`], `xtask
//!   bench-mix-load`), open loop: 1,000 virtual users with exponential inter-arrival
//!   times at a fixed total rate over a pool of keep-alive connections with
//!   `Accept-Encoding: gzip`; latency from the scheduled send time (queueing under
//!   overload counts). The mix ([`MIX`]): permission checks, member lists, member
//!   searches with distinct queries, profile reads, settings matrix reads, audit log
//!   pages, member writes (PATCH with the version read) and settings writes (PUT with
//!   the version read); CSV imports run in the background meanwhile.
//! - **Capacity**: `GET /health` alone and the permission check alone, closed loop on
//!   the same connections, in the same run: the ratio of their throughputs.
//! - **Per class** (`--per-class`, a diagnostic): each other class alone, closed loop,
//!   with the server's and the generator's CPU per answer.
//! - **Server**: its CPU (`/proc/<pid>/stat`) per phase and its resident memory
//!   (`VmRSS`) sampled through the run, the maximum and after the load.
//!
//! Prints a Markdown report and fails on a missed target (not with `--quick`, a smoke
//! run on 20 orgs at a low rate). Needs `TEST_DATABASE_URL` (a role that may create
//! databases) and `TEST_REDIS_URL` (defaults: the local services).

pub(crate) mod load;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use load::{Class, LoadPlan, Mode, OrgSession, Outcome, cpu_secs};
use persistence::{Database, DatabaseSettings};

use crate::bench::proc_status_kib;
use crate::bench_http::{
    BenchDatabase, ScratchDir, Server, expect, http, login, machine, read_response, release_server,
    request_head, service_urls,
};
use crate::seed::enterprise::{self, Params, org_id, user_email};
use crate::seed::rng::SplitMix64;
use crate::seed::{FIRST_NAMES, LAST_NAMES};

/// The database the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// PostgreSQL (a fresh database next to `TEST_DATABASE_URL`).
    Postgres,
    /// SQLite (a file in a scratch directory).
    Sqlite,
}

/// The run's sizes and durations.
#[derive(Clone, Copy)]
struct Plan {
    /// The seed's shape: districts, schools per district, orgs per school, members per org.
    seed: [usize; 4],
    /// Orgs whose admin and a volunteer sign in.
    orgs: usize,
    /// Virtual users.
    vus: usize,
    /// Keep-alive connections of the generator.
    connections: usize,
    /// Requests per second offered in the mix.
    rate: f64,
    /// Seconds of mix: warm-up (unmeasured), measured.
    mix_secs: [f64; 2],
    /// Seconds of each capacity phase: warm-up, measured.
    capacity_secs: [f64; 2],
    /// Background imports and their rows.
    imports: usize,
    import_rows: usize,
    /// Seconds idle after the load before the "after" memory sample.
    settle_secs: u64,
    /// Whether a missed target fails the run.
    enforce: bool,
}

/// The run: the default enterprise seed (2,000 orgs, 100,000 members).
const FULL: Plan = Plan {
    seed: [50, 20, 2, 50],
    orgs: 200,
    vus: 1_000,
    connections: 64,
    rate: 10_500.0,
    mix_secs: [10.0, 30.0],
    capacity_secs: [3.0, 10.0],
    imports: 2,
    import_rows: 2_000,
    settle_secs: 10,
    enforce: true,
};

/// `--quick`: a smoke run on a small seed at a low rate (targets shown, not enforced).
const QUICK: Plan = Plan {
    seed: [2, 5, 2, 50],
    orgs: 20,
    vus: 1_000,
    connections: 32,
    rate: 1_500.0,
    mix_secs: [3.0, 10.0],
    capacity_secs: [1.0, 3.0],
    imports: 1,
    import_rows: 200,
    settle_secs: 3,
    enforce: false,
};

/// The mix, in requests per thousand.
const MIX: [(Class, u32); 8] = [
    (Class::Check, 500),
    (Class::List, 100),
    (Class::Search, 120),
    (Class::Profile, 130),
    (Class::Settings, 80),
    (Class::Audit, 50),
    (Class::MemberWrite, 15),
    (Class::SettingsWrite, 5),
];

/// Issue 20: requests per second in the mix (load generator on the same machine).
const RATE_TARGET: f64 = 10_000.0;
/// Issue 20: p99 of every read route class.
const READ_P99_MS: f64 = 25.0;
/// Issue 20: p99 of every write route class.
const WRITE_P99_MS: f64 = 100.0;
/// Issue 20: the permission check's throughput against `GET /health`'s.
const CHECK_RATIO: f64 = 0.7;
/// Issue 20: the server's resident memory through the run.
const RSS_BUDGET_MIB: f64 = 150.0;
/// The seed (ids, arrivals, queries).
const SEED: u64 = 42;
/// The volunteer who signs in per org: the first active one from this member index.
const FIRST_VOLUNTEER: usize = 10;

/// Distinct search texts from the seed's names: full names, prefixes (type-ahead) and
/// one-transposition typos, shuffled.
pub(crate) fn search_texts(seed: u64) -> Vec<String> {
    let mut texts = Vec::new();
    for last in LAST_NAMES {
        for n in 3..last.chars().count() {
            texts.push(last.chars().take(n).collect::<String>());
        }
        let chars: Vec<char> = last.chars().collect();
        for i in 1..chars.len().saturating_sub(1) {
            let mut typo = chars.clone();
            typo.swap(i, i + 1);
            if typo != chars {
                texts.push(typo.into_iter().collect());
            }
        }
        for first in FIRST_NAMES {
            texts.push(format!("{first} {last}"));
            texts.push(format!(
                "{} {last}",
                first.chars().take(2).collect::<String>()
            ));
        }
    }
    texts.sort();
    texts.dedup();
    let mut rng = SplitMix64::stream(seed, 0x5EA7, 0);
    for i in (1..texts.len()).rev() {
        texts.swap(i, rng.index(i + 1));
    }
    texts
}

/// The seed's shape of `plan` (the rest as the enterprise seed's defaults).
fn params(plan: &Plan) -> Params {
    let [
        districts,
        schools_per_district,
        orgs_per_school,
        members_per_org,
    ] = plan.seed;
    Params {
        districts,
        schools_per_district,
        orgs_per_school,
        members_per_org,
        seed: SEED,
        ..Params::default()
    }
}

/// Seeds the enterprise dataset of `params` on `url` (migrated first); returns the
/// shared password.
pub(crate) fn seed(url: &str, params: &Params, backend: Backend) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let db = Database::connect(&DatabaseSettings {
            url: url.to_owned(),
            read_url: None,
            max_connections: 2,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(30),
        })
        .await?;
        db.migrate().await?;
        let hasher = credentials::Argon2Hasher::recommended()
            .map_err(|e| anyhow::anyhow!("password hasher: {e}"))?;
        let outcome = enterprise::run(&db, params, &hasher).await?;
        let enterprise::Outcome::Seeded(report) = outcome else {
            bail!("the bench database was seeded already");
        };
        subject_keys(&db).await?;
        if backend == Backend::Postgres {
            sea_orm::ConnectionTrait::execute_unprepared(db.primary(), "ANALYZE").await?;
        }
        db.close().await.ok();
        Ok(report.password)
    })
}

/// The audit trail's keys a deployment of the seed's size holds: one per member in their
/// org's chain (every member has been spoken of there: their joining, their changes).
/// The seed writes no per-row events, so without them the key table would start empty
/// and be analyzed empty, and the mix's first writes would grow it under lookups planned
/// for an empty table (docs/benchmarks.md, "Sixth runs").
async fn subject_keys(db: &Database) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let rows = sea_orm::ConnectionTrait::query_all_raw(
        db.primary(),
        persistence::statement(
            sea_orm::ConnectionTrait::get_database_backend(db.primary()),
            "SELECT org_id, user_id FROM memberships",
            vec![],
        ),
    )
    .await?;
    let mut pairs = std::collections::BTreeSet::new();
    for row in &rows {
        let org: uuid::Uuid = row.try_get("", "org_id")?;
        let user: uuid::Uuid = row.try_get("", "user_id")?;
        pairs.insert((audit::ChainId::Org(org), audit::DataSubject::User(user)));
    }
    let count = pairs.len();
    let mut batch = std::collections::BTreeSet::new();
    for pair in pairs {
        batch.insert(pair);
        if batch.len() == 10_000 {
            let full = std::mem::take(&mut batch);
            audit_store::ensure_subject_keys(db.primary(), &full)
                .await
                .map_err(|e| anyhow::anyhow!("audit subject keys: {e}"))?;
        }
    }
    audit_store::ensure_subject_keys(db.primary(), &batch)
        .await
        .map_err(|e| anyhow::anyhow!("audit subject keys: {e}"))?;
    println!(
        "bench-mix: {count} audit subject keys (one per membership) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Org `o`'s admin and first active volunteer signed in (`mpo` members per org in the
/// seed), its members and settings read.
pub(crate) fn session(
    addr: SocketAddr,
    mpo: usize,
    password: &str,
    o: usize,
) -> anyhow::Result<OrgSession> {
    let org = org_id(SEED, o).to_string();
    let admin_email = user_email(o * mpo);
    let admin_token = login(addr, &admin_email, password)?;
    let mut member_token = None;
    for m in FIRST_VOLUNTEER..mpo {
        let token = login(addr, &user_email(o * mpo + m), password)?;
        let (status, _) = http(
            addr,
            "GET",
            &format!("/api/v2/orgs/{org}/permissions/check?key=events.view"),
            Some(&token),
            None,
        )?;
        // Invited and suspended members are not active yet (or any more).
        if status == 200 {
            member_token = Some(token);
            break;
        }
    }
    let member_token = member_token.with_context(|| format!("no active volunteer in org {o}"))?;
    let list = expect(
        "member list",
        200,
        http(
            addr,
            "GET",
            &format!("/api/v2/orgs/{org}/users?limit=50"),
            Some(&admin_token),
            None,
        ),
    )?;
    let targets = list["data"]
        .as_array()
        .context("no member rows")?
        .iter()
        .filter(|m| m["email"].as_str() != Some(admin_email.as_str()) && m["status"] == "active")
        .filter_map(|m| Some((m["user_id"].as_str()?.to_owned(), m["version"].as_i64()?)))
        .collect();
    let matrix = expect(
        "settings matrix",
        200,
        http(
            addr,
            "GET",
            &format!("/api/v2/orgs/{org}/permissions"),
            Some(&admin_token),
            None,
        ),
    )?;
    let open: Vec<&str> = matrix["data"]["permissions"]
        .as_array()
        .context("no matrix rows")?
        .iter()
        .filter(|r| r["locked_by"].is_null())
        .filter_map(|r| r["key"].as_str())
        .filter(|k| !k.starts_with("users."))
        .collect();
    let settings_key = if open.contains(&"events.create") {
        "events.create"
    } else {
        open.first()
            .copied()
            .with_context(|| format!("org {o} may set no key"))?
    };
    Ok(OrgSession {
        org,
        admin_token,
        member_token,
        targets,
        settings_key: settings_key.to_owned(),
        settings_version: matrix["data"]["version"].as_u64().context("no version")?,
    })
}

/// The sessions of `orgs` (indices in the seed of `mpo` members per org), four
/// sign-ins at a time.
pub(crate) fn sessions(
    addr: SocketAddr,
    mpo: usize,
    orgs: &[usize],
    password: &str,
) -> anyhow::Result<Vec<OrgSession>> {
    std::thread::scope(|s| {
        let parts: Vec<_> = orgs
            .chunks(orgs.len().div_ceil(4).max(1))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|&o| session(addr, mpo, password, o))
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(orgs.len());
        for p in parts {
            let Ok(part) = p.join() else {
                bail!("a sign-in thread panicked");
            };
            all.extend(part?);
        }
        Ok(all)
    })
}

/// Starts a CSV import of `rows` new people into `org`; returns the job's status URL.
fn start_import(
    addr: SocketAddr,
    token: &str,
    org: &str,
    rows: usize,
    tag: &str,
) -> anyhow::Result<String> {
    let mut csv = String::from("email,first_name,last_name,role,phone,committee,children\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "mix-{tag}-{i}@bench.example,{},{},volunteer,,,\n",
            FIRST_NAMES[i % FIRST_NAMES.len()],
            LAST_NAMES[(i / FIRST_NAMES.len()) % LAST_NAMES.len()]
        ));
    }
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let head = request_head(
        addr,
        "POST",
        &format!("/api/v2/orgs/{org}/users/import"),
        Some(token),
        Some(("text/csv", csv.len() as u64)),
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(csv.as_bytes())?;
    let job = expect("import upload", 202, read_response(&mut stream))?;
    Ok(job["data"]["status_url"]
        .as_str()
        .context("no status url")?
        .to_owned())
}

/// The import job's status, waiting up to `wait` for it to end.
fn import_status(addr: SocketAddr, token: &str, url: &str, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    loop {
        let status = match http(addr, "GET", url, Some(token), None) {
            Ok((200, body)) => body["data"]["status"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned(),
            Ok((status, _)) => format!("status {status}"),
            Err(e) => format!("error: {e}"),
        };
        if !matches!(status.as_str(), "queued" | "running") || Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The server's resident memory, sampled every 100 ms on a thread until stopped.
struct RssSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<u64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let kib = proc_status_kib(&pid.to_string(), "VmRSS:");
                    if let Ok(mut s) = samples.lock() {
                        s.push(kib);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Self {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// The largest sample so far, in KiB.
    fn max_kib(&self) -> u64 {
        self.samples
            .lock()
            .map_or(0, |s| s.iter().copied().max().unwrap_or(0))
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One phase's figures: the generator's and the server's CPU.
struct Phase {
    outcome: Outcome,
    wall_secs: f64,
    server_cpu_secs: f64,
    /// CPU seconds of the local PostgreSQL's processes over the phase (0 on SQLite, whose
    /// engine runs in the server).
    database_cpu_secs: f64,
}

/// CPU seconds used so far by every live process named `postgres` on this machine (the
/// local server and its backends; a backend that exits takes its time with it, but the
/// server's pool keeps its connections).
fn database_cpu_secs() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == "postgres")
        })
        .map(|pid| cpu_secs(&pid))
        .sum()
}

/// Runs `plan` in a separate generator process (this binary, `bench-mix-load`).
fn phase(name: &str, plan: &LoadPlan, server: &Server, dir: &Path) -> anyhow::Result<Phase> {
    let file = dir.join(format!("plan-{name}.json"));
    std::fs::write(&file, serde_json::to_vec(plan)?)?;
    println!(
        "bench-mix: phase {name} ({:.0} s + {:.0} s warm-up)",
        plan.secs, plan.warmup_secs
    );
    let pid = server.pid().to_string();
    let cpu_before = cpu_secs(&pid);
    let database_before = database_cpu_secs();
    let started = Instant::now();
    let out = Command::new(std::env::current_exe()?)
        .args(["bench-mix-load", "--plan"])
        .arg(&file)
        .stderr(Stdio::inherit())
        .output()
        .context("run the load generator")?;
    let wall_secs = started.elapsed().as_secs_f64();
    let server_cpu_secs = cpu_secs(&pid) - cpu_before;
    let database_cpu_secs = (database_cpu_secs() - database_before).max(0.0);
    if !out.status.success() {
        bail!("the load generator failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the load generator printed no outcome")?;
    Ok(Phase {
        outcome: serde_json::from_str(line)?,
        wall_secs,
        server_cpu_secs,
        database_cpu_secs,
    })
}

/// `--per-class`: each other class of the mix alone, closed loop, after the capacity
/// phases; prints what one request of each costs the server and the generator in CPU
/// time (a diagnostic: where the mix's CPU goes; no target).
fn per_class_costs(
    base: &LoadPlan,
    server: &Server,
    dir: &Path,
    measured: &[(Class, &Phase)],
) -> anyhow::Result<()> {
    let mut rows: Vec<(Class, Phase)> = Vec::new();
    for (class, _) in MIX
        .iter()
        .filter(|(c, _)| !measured.iter().any(|(m, _)| m == c))
    {
        let name = format!("alone-{class:?}").to_lowercase();
        let plan = LoadPlan {
            mix: vec![(*class, 1)],
            ..base.clone()
        };
        rows.push((*class, phase(&name, &plan, server, dir)?));
    }
    println!(
        "\n| class alone (closed loop, {} connections) | answered per s | server cores | server CPU per answer | generator CPU per answer | PostgreSQL CPU per answer | non-2xx |",
        base.connections
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let all = measured
        .iter()
        .map(|(c, p)| (*c, *p))
        .chain(rows.iter().map(|(c, p)| (*c, p)));
    for (class, p) in all {
        let per_s = p.outcome.per_s().max(1e-9);
        let cores = p.server_cpu_secs / p.wall_secs.max(1e-9);
        let generator = p.outcome.cpu_secs / p.outcome.secs.max(1e-9);
        let not_ok: u64 = p
            .outcome
            .classes
            .iter()
            .map(|(_, c)| c.errors + c.conflicts)
            .sum();
        let database = p.database_cpu_secs / p.wall_secs.max(1e-9);
        println!(
            "| {} | {:.0} | {cores:.2} | {:.0} µs | {:.0} µs | {:.0} µs | {not_ok} |",
            class.label(),
            per_s,
            cores / per_s * 1e6,
            generator / per_s * 1e6,
            database / per_s * 1e6,
        );
    }
    Ok(())
}

/// Runs the benchmark, prints a Markdown report; fails on a missed target unless `quick`.
/// `per_class` adds [`per_class_costs`] after the capacity phases.
pub fn run(quick: bool, backend: Backend, per_class: bool) -> anyhow::Result<()> {
    let plan = if quick { QUICK } else { FULL };
    if cfg!(debug_assertions) {
        println!(
            "bench-mix: note: this xtask (the load generator) is a debug build; `cargo xtask bench` runs it in release"
        );
    }
    let (admin_url, redis_url) = service_urls();
    let bin = release_server()?;
    let machine = machine();
    let dir = ScratchDir::create("ptoc-bench-mix")?;
    let (_db, url) = match backend {
        Backend::Postgres => {
            let db = BenchDatabase::create(&admin_url, "ptoc_bench_mix")?;
            let url = db.url.clone();
            (Some(db), url)
        }
        Backend::Sqlite => (
            None,
            format!("sqlite://{}?mode=rwc", dir.0.join("bench.db").display()),
        ),
    };
    let started = Instant::now();
    let password = seed(&url, &params(&plan), backend)?;
    println!(
        "bench-mix: seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let server = Server::start(&bin, &url, &redis_url, &dir.0)?;
    let pid = server.pid().to_string();
    let rss = RssSampler::start(server.pid());
    let idle_kib = proc_status_kib(&pid, "VmRSS:");
    let started = Instant::now();
    let indices: Vec<usize> = (0..plan.orgs).collect();
    let orgs = sessions(server.addr, plan.seed[3], &indices, &password)?;
    let mut steps = vec![("signed in", proc_status_kib(&pid, "VmRSS:"))];
    println!(
        "bench-mix: {} orgs signed in (admin and a volunteer each) in {:.1} s",
        orgs.len(),
        started.elapsed().as_secs_f64()
    );
    let base = LoadPlan {
        addr: server.addr.to_string(),
        mode: Mode::Closed,
        connections: plan.connections,
        vus: plan.vus,
        warmup_secs: plan.capacity_secs[0],
        secs: plan.capacity_secs[1],
        seed: SEED,
        mix: vec![(Class::Health, 1)],
        orgs,
        queries: search_texts(SEED),
    };
    let health = phase("health", &base, &server, &dir.0)?;
    let check = phase(
        "check",
        &LoadPlan {
            mix: vec![(Class::Check, 1)],
            ..base.clone()
        },
        &server,
        &dir.0,
    )?;
    steps.push((
        "after /health alone and the check alone",
        proc_status_kib(&pid, "VmRSS:"),
    ));
    if per_class {
        per_class_costs(
            &base,
            &server,
            &dir.0,
            &[(Class::Health, &health), (Class::Check, &check)],
        )?;
    }
    let mut imports = Vec::new();
    for i in 0..plan.imports {
        let s = &base.orgs[i % base.orgs.len()];
        imports.push((
            s,
            start_import(
                server.addr,
                &s.admin_token,
                &s.org,
                plan.import_rows,
                &format!("{i}-{}", uuid::Uuid::now_v7().simple()),
            )?,
        ));
    }
    let mix = phase(
        "mix",
        &LoadPlan {
            mode: Mode::Open { rate: plan.rate },
            warmup_secs: plan.mix_secs[0],
            secs: plan.mix_secs[1],
            mix: MIX.to_vec(),
            ..base.clone()
        },
        &server,
        &dir.0,
    )?;
    let max_kib = rss.max_kib();
    steps.push(("after the mix", proc_status_kib(&pid, "VmRSS:")));
    let held = held_after(server.addr);
    let import_states: Vec<String> = imports
        .iter()
        .map(|(s, url)| import_status(server.addr, &s.admin_token, url, Duration::from_secs(60)))
        .collect();
    std::thread::sleep(Duration::from_secs(plan.settle_secs));
    let after_kib = proc_status_kib(&pid, "VmRSS:");
    let max_kib = max_kib.max(rss.max_kib());
    drop(rss);
    drop(server);
    report(&Report {
        machine,
        backend,
        plan,
        health,
        check,
        mix,
        idle_kib,
        max_kib,
        after_kib,
        steps,
        held,
        imports: import_states,
    })
}

/// What the server's caches and search indexes hold, from `/metrics`
/// (`ptoc_cache_bytes{cache=…}`, `ptoc_search_index_bytes`): (name, bytes), largest first.
/// Empty (with a note on stderr) when `/metrics` does not answer.
fn held_after(addr: SocketAddr) -> Vec<(String, f64)> {
    let text = match crate::bench_http::http_text(addr, "GET", "/metrics", None, None) {
        Ok((200, text)) => text,
        other => {
            eprintln!("bench-mix: /metrics did not answer: {other:?}");
            return Vec::new();
        }
    };
    let mut held: Vec<(String, f64)> = text
        .lines()
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let name = match name {
                "ptoc_search_index_bytes" => "search indexes".to_owned(),
                _ => name
                    .strip_prefix("ptoc_cache_bytes{cache=\"")?
                    .strip_suffix("\"}")?
                    .to_owned(),
            };
            Some((name, value))
        })
        .collect();
    held.sort_by(|a, b| b.1.total_cmp(&a.1));
    held
}

struct Report {
    machine: String,
    backend: Backend,
    plan: Plan,
    health: Phase,
    check: Phase,
    mix: Phase,
    idle_kib: u64,
    max_kib: u64,
    after_kib: u64,
    /// RSS after each step (KiB).
    steps: Vec<(&'static str, u64)>,
    /// What the caches and search indexes held after the mix: (name, bytes).
    held: Vec<(String, f64)>,
    imports: Vec<String>,
}

#[allow(clippy::cast_precision_loss, reason = "KiB for display")]
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(r: &Report) -> anyhow::Result<()> {
    let plan = &r.plan;
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let m = &r.mix.outcome;
    println!("\n## Mixed load (issue 20)\n");
    println!(
        "Run: `cargo xtask bench-mix{}{}` (release server on {} + Redis, rate limits off; the enterprise seed {} × {} × {} × {}; {} orgs' admins and volunteers signed in; generator `xtask bench-mix-load` in its own process, one thread, {} keep-alive connections with `Accept-Encoding: gzip`, open loop: {} virtual users, exponential inter-arrival times, {:.0} req/s offered, latency from the scheduled send time; {:.0} s measured after {:.0} s of warm-up). Recorded {}.\n",
        if plan.enforce { "" } else { " --quick" },
        if r.backend == Backend::Sqlite {
            " --backend sqlite"
        } else {
            ""
        },
        if r.backend == Backend::Sqlite {
            "SQLite"
        } else {
            "PostgreSQL"
        },
        plan.seed[0],
        plan.seed[1],
        plan.seed[2],
        plan.seed[3],
        plan.orgs,
        plan.connections,
        plan.vus,
        plan.rate,
        plan.mix_secs[1],
        plan.mix_secs[0],
        time::OffsetDateTime::now_utc()
    );
    println!(
        "Machine: {}; load average after: {}.\n",
        r.machine,
        load_avg.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "| route class | share | answered | per s | p50 | p95 | p99 | max | 412 | errors | p99 target |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut misses = Vec::new();
    for (class, c) in &m.classes {
        let share = MIX.iter().find(|(k, _)| k == class).map_or(0, |(_, w)| *w);
        let target = if class.is_write() {
            WRITE_P99_MS
        } else {
            READ_P99_MS
        };
        let ok = c.p99_ms <= target;
        if !ok {
            misses.push(format!(
                "{}: p99 {:.2} ms > {target} ms",
                class.label(),
                c.p99_ms
            ));
        }
        let answered = c.ok + c.conflicts + c.errors;
        #[allow(clippy::cast_precision_loss, reason = "counts for display")]
        let per_s = answered as f64 / m.secs.max(1e-9);
        println!(
            "| {} | {:.1}% | {answered} | {per_s:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} ms | {} | {} | ≤ {target} ms {} |",
            class.label(),
            f64::from(share) / 10.0,
            c.p50_ms,
            c.p95_ms,
            c.p99_ms,
            c.max_ms,
            c.conflicts,
            c.errors,
            if ok { "PASS" } else { "MISS" }
        );
    }
    let cores = |cpu: f64, secs: f64| cpu / secs.max(1e-9);
    println!(
        "\nMix: {} requests scheduled, {} answered in the window, **{:.0} req/s**, {} errors ({} never sent); the generator used {:.2} cores, the server {:.2} cores, PostgreSQL {:.2} cores (CPU over the phase, {:.1} s of wall time). Background imports ({} × {} rows): {}.\n",
        m.scheduled,
        m.answered,
        m.per_s(),
        m.errors(),
        m.unsent,
        cores(m.cpu_secs, m.secs),
        cores(r.mix.server_cpu_secs, r.mix.wall_secs),
        cores(r.mix.database_cpu_secs, r.mix.wall_secs),
        r.mix.wall_secs,
        plan.imports,
        plan.import_rows,
        r.imports.join(", ")
    );
    let ratio = r.check.outcome.per_s() / r.health.outcome.per_s().max(1e-9);
    for (name, p) in [
        ("`GET /health` alone", &r.health),
        ("permission check alone", &r.check),
    ] {
        println!(
            "{name} (closed loop, {} connections, {:.0} s): **{:.0} req/s**, {} errors; generator {:.2} cores, server {:.2} cores.",
            plan.connections,
            p.outcome.secs,
            p.outcome.per_s(),
            p.outcome.errors(),
            cores(p.outcome.cpu_secs, p.outcome.secs),
            cores(p.server_cpu_secs, p.wall_secs)
        );
    }
    println!(
        "\nServer memory (VmRSS): {:.1} MiB idle after start, **{:.1} MiB at most** through the run (sampled every 100 ms), {:.1} MiB {} s after the load.\n",
        mib(r.idle_kib),
        mib(r.max_kib),
        mib(r.after_kib),
        plan.settle_secs
    );
    println!(
        "RSS by step: {}.\n",
        r.steps
            .iter()
            .map(|(step, kib)| format!("{step} {:.1} MiB", mib(*kib)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !r.held.is_empty() {
        let total: f64 = r.held.iter().map(|(_, b)| b).sum();
        println!(
            "Held after the mix (`/metrics`: `ptoc_cache_bytes`, `ptoc_search_index_bytes`): {:.1} MiB in all; {}.\n",
            total / 1_048_576.0,
            r.held
                .iter()
                .map(|(name, b)| format!("{name} {:.2} MiB", b / 1_048_576.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for e in m
        .sample_errors
        .iter()
        .chain(&r.health.outcome.sample_errors)
        .chain(&r.check.outcome.sample_errors)
    {
        println!("- error sample: {e}");
    }
    let mut check = |ok: bool, what: String| {
        println!("- {what}: {}", if ok { "PASS" } else { "MISS" });
        if !ok {
            misses.push(what);
        }
    };
    println!("Targets:");
    check(
        m.per_s() >= RATE_TARGET,
        format!("≥ {RATE_TARGET:.0} req/s in the mix ({:.0})", m.per_s()),
    );
    check(
        ratio >= CHECK_RATIO,
        format!("permission check ≥ {CHECK_RATIO}× `GET /health` ({ratio:.2}×)"),
    );
    check(
        mib(r.max_kib) <= RSS_BUDGET_MIB,
        format!(
            "server RSS ≤ {RSS_BUDGET_MIB} MiB through the run ({:.1} MiB)",
            mib(r.max_kib)
        ),
    );
    let errors = m.errors() + r.health.outcome.errors() + r.check.outcome.errors();
    check(
        errors == 0 && r.imports.iter().all(|s| s == "succeeded"),
        format!(
            "no errors and the imports succeeded ({errors} errors; imports: {})",
            r.imports.join(", ")
        ),
    );
    println!("- p99 ≤ {READ_P99_MS} ms for reads, ≤ {WRITE_P99_MS} ms for writes: see the table");
    if !misses.is_empty() {
        if plan.enforce {
            bail!("{} target(s) missed: {}", misses.len(), misses.join("; "));
        }
        println!(
            "\n--quick: {} target(s) missed, not enforced: {}",
            misses.len(),
            misses.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_texts_are_distinct_and_many() {
        let texts = search_texts(SEED);
        let mut sorted = texts.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), texts.len());
        assert!(texts.len() > 1_000, "{}", texts.len());
    }

    #[test]
    fn the_mix_is_per_mille_and_has_every_class_but_health() {
        assert_eq!(MIX.iter().map(|(_, w)| w).sum::<u32>(), 1_000);
        assert!(!MIX.iter().any(|(c, _)| *c == Class::Health));
        assert_eq!(MIX.iter().filter(|(c, _)| c.is_write()).count(), 2);
    }
}
