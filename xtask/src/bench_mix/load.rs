//! The load generator of `bench-mix`, run as its own process (`xtask bench-mix-load
//! --plan FILE`) so that its CPU is not the server's and can be reported apart.
//!
//! One thread (a current-thread tokio runtime) drives a pool of keep-alive connections,
//! each sending `Accept-Encoding: gzip` as browsers do.
//!
//! - **Open loop** ([`Mode::Open`]): every virtual user sends at exponentially distributed
//!   intervals (mean `vus / rate`), whatever the answers do; the arrivals of all users are
//!   merged in time order ([`Arrivals`]) and queued for the next free connection. Latency
//!   runs from the **scheduled** send time, not from when a connection was free: a server
//!   that falls behind is charged for the queue it causes (no coordinated omission, as
//!   in wrk2).
//! - **Closed loop** ([`Mode::Closed`]): every connection sends its next request when
//!   the last is answered — the capacity of one route (`/health` alone, the permission
//!   check alone), whose ratio the benchmark reports.
//!
//! Prints one JSON line ([`Outcome`]) on stdout.

use std::collections::{BinaryHeap, HashMap};
use std::io::Read as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::bench_http::KEYS;
use crate::seed::rng::SplitMix64;

/// The kind of request, as the report groups them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Class {
    /// `GET /health`.
    Health,
    /// `GET /api/v2/orgs/{id}/permissions/check?key=…` (a member).
    Check,
    /// `GET /api/v2/orgs/{id}/users?limit=20` (the admin).
    List,
    /// `GET /api/v2/orgs/{id}/users/search?q=…` (the admin, distinct queries).
    Search,
    /// `GET /api/v2/me` (a member).
    Profile,
    /// `GET /api/v2/orgs/{id}/permissions`: the org's settings matrix (the admin).
    Settings,
    /// `GET /api/v2/orgs/{id}/audit-logs?limit=20` (the admin).
    Audit,
    /// `PATCH /api/v2/orgs/{id}/users/{user}` with the version read (the admin).
    MemberWrite,
    /// `PUT /api/v2/orgs/{id}/permissions/settings` with the version read (the admin).
    SettingsWrite,
}

impl Class {
    /// Writes have their own latency target.
    pub fn is_write(self) -> bool {
        matches!(self, Self::MemberWrite | Self::SettingsWrite)
    }

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Health => "`GET /health`",
            Self::Check => "permission check",
            Self::List => "member list",
            Self::Search => "member search",
            Self::Profile => "profile (`GET /me`)",
            Self::Settings => "org settings (matrix)",
            Self::Audit => "audit log page",
            Self::MemberWrite => "member write (PATCH, If-Match)",
            Self::SettingsWrite => "settings write (PUT, If-Match)",
        }
    }
}

/// How requests are paced.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum Mode {
    /// Open loop: this many requests per second in all, from all virtual users.
    Open {
        /// Requests per second offered.
        rate: f64,
    },
    /// Closed loop: every connection sends again as soon as it is answered.
    Closed,
}

/// One org's signed-in users and what its writes need.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrgSession {
    /// The org id.
    pub org: String,
    /// The admin's token (lists, searches, settings, audit, writes).
    pub admin_token: String,
    /// A volunteer's token (checks, profile reads).
    pub member_token: String,
    /// Members the admin edits: (user id, membership version).
    pub targets: Vec<(String, i64)>,
    /// A key the org may set (not locked above it).
    pub settings_key: String,
    /// The settings version read.
    pub settings_version: u64,
}

/// What the generator is asked to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadPlan {
    /// The server, `host:port`.
    pub addr: String,
    /// Pacing.
    pub mode: Mode,
    /// Keep-alive connections.
    pub connections: usize,
    /// Virtual users (open loop); user `i` belongs to org `i % orgs.len()`.
    pub vus: usize,
    /// Seconds sent but not measured, first.
    pub warmup_secs: f64,
    /// Seconds measured, after the warm-up.
    pub secs: f64,
    /// The random seed (arrivals, mix, keys).
    pub seed: u64,
    /// The mix: (class, weight).
    pub mix: Vec<(Class, u32)>,
    /// The orgs' sessions.
    pub orgs: Vec<OrgSession>,
    /// Search texts (a search takes the next one: distinct queries).
    pub queries: Vec<String>,
}

/// The figures of one class.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClassOutcome {
    /// Answers with a 2xx status.
    pub ok: u64,
    /// 412 answers: another write of the same record went first (not an error).
    pub conflicts: u64,
    /// Other statuses, socket errors and timeouts.
    pub errors: u64,
    /// Latency percentiles (from the scheduled send time), ms.
    pub p50_ms: f64,
    /// p95, ms.
    pub p95_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// The slowest, ms.
    pub max_ms: f64,
}

/// What the generator measured (the measured window only).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// Seconds measured.
    pub secs: f64,
    /// Requests scheduled in the measured window (open loop) or sent (closed).
    pub scheduled: u64,
    /// Answers (any status, warm-up requests still queued included) that arrived inside
    /// the measured window: what the throughput counts.
    pub answered: u64,
    /// Scheduled but never sent before the generator gave up draining.
    pub unsent: u64,
    /// Per class.
    pub classes: Vec<(Class, ClassOutcome)>,
    /// The first few error descriptions.
    pub sample_errors: Vec<String>,
    /// The generator's CPU seconds over the measured window.
    pub cpu_secs: f64,
}

impl Outcome {
    /// Answered requests per second.
    pub fn per_s(&self) -> f64 {
        self.answered as f64 / self.secs.max(1e-9)
    }

    /// Errors of every class, plus the unsent.
    pub fn errors(&self) -> u64 {
        self.classes.iter().map(|(_, c)| c.errors).sum::<u64>() + self.unsent
    }
}

// ---------------------------------------------------------------------------------------
// The open-loop schedule

/// A uniform draw in (0, 1].
#[allow(clippy::cast_precision_loss, reason = "53 random bits")]
fn unit(rng: &mut SplitMix64) -> f64 {
    ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// The merged arrivals of `vus` virtual users, each sending at exponentially distributed
/// intervals with mean `vus / rate` seconds (so `rate` per second in all), in time
/// order: (offset from the start, user).
pub struct Arrivals {
    heap: BinaryHeap<std::cmp::Reverse<(u64, usize)>>,
    mean_ns: f64,
    rngs: Vec<SplitMix64>,
}

impl Arrivals {
    /// Every user's first arrival is one interval after the start (random phases).
    pub fn new(vus: usize, rate: f64, seed: u64) -> Self {
        let vus = vus.max(1);
        #[allow(clippy::cast_precision_loss, reason = "a count of users")]
        let mean_ns = vus as f64 / rate.max(1e-9) * 1e9;
        let mut rngs: Vec<SplitMix64> = (0..vus)
            .map(|u| SplitMix64::stream(seed, 0xA441, u as u64))
            .collect();
        let heap = rngs
            .iter_mut()
            .enumerate()
            .map(|(u, rng)| std::cmp::Reverse((Self::gap(mean_ns, rng), u)))
            .collect();
        Self {
            heap,
            mean_ns,
            rngs,
        }
    }

    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a positive number of nanoseconds"
    )]
    fn gap(mean_ns: f64, rng: &mut SplitMix64) -> u64 {
        (-unit(rng).ln() * mean_ns) as u64
    }
}

impl Iterator for Arrivals {
    type Item = (Duration, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let std::cmp::Reverse((at, u)) = self.heap.pop()?;
        let next = at + Self::gap(self.mean_ns, &mut self.rngs[u]);
        self.heap.push(std::cmp::Reverse((next, u)));
        Some((Duration::from_nanos(at), u))
    }
}

/// Picks classes by weight.
pub struct Mix {
    cumulative: Vec<(u64, Class)>,
}

impl Mix {
    /// From (class, weight) pairs (zero weights never picked).
    pub fn new(weights: &[(Class, u32)]) -> Self {
        let mut total = 0;
        let cumulative = weights
            .iter()
            .filter(|(_, w)| *w > 0)
            .map(|&(c, w)| {
                total += u64::from(w);
                (total, c)
            })
            .collect();
        Self { cumulative }
    }

    /// One class.
    pub fn pick(&self, rng: &mut SplitMix64) -> Class {
        let total = self.cumulative.last().map_or(1, |(t, _)| *t);
        let r = rng.below(total);
        self.cumulative
            .iter()
            .find(|(t, _)| r < *t)
            .map_or(Class::Health, |(_, c)| *c)
    }
}

/// Latencies of one class and its counts.
#[derive(Default)]
pub struct Tally {
    /// Latencies of answered requests.
    pub times: Vec<Duration>,
    ok: u64,
    conflicts: u64,
    errors: u64,
}

impl Tally {
    /// The summary (sorts the latencies).
    pub fn outcome(&mut self) -> ClassOutcome {
        self.times.sort_unstable();
        let p = |q| crate::bench_http::ms(crate::bench_http::percentile(&self.times, q));
        ClassOutcome {
            ok: self.ok,
            conflicts: self.conflicts,
            errors: self.errors,
            p50_ms: p(0.5),
            p95_ms: p(0.95),
            p99_ms: p(0.99),
            max_ms: p(1.0),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Requests

/// A request to send: when it was due and what it is.
struct Job {
    due: Instant,
    vu: usize,
    class: Class,
    measured: bool,
}

/// Versions of what the writes change, per org.
struct OrgWrites {
    targets: Vec<(String, i64, bool)>,
    next: usize,
    settings_version: u64,
    flip: bool,
}

/// What a request needs to update when answered.
enum Pending {
    None,
    Member { org: usize, target: usize },
    Settings { org: usize },
}

struct Shared {
    plan: LoadPlan,
    host: String,
    writes: Mutex<Vec<OrgWrites>>,
    query: Mutex<usize>,
    tallies: Mutex<HashMap<Class, Tally>>,
    /// Answers that arrived inside the measured window.
    answered: AtomicU64,
    /// The measured window.
    window: std::sync::OnceLock<(Instant, Instant)>,
    sample_errors: Mutex<Vec<String>>,
}

const COMMITTEES: [&str; 2] = ["Book Fair", "Garden"];

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `text` as a URL query value.
pub(crate) use crate::bench_http::encode_query as encode;

impl Shared {
    /// The request's bytes and what to update with its answer.
    fn build(&self, job: &Job) -> (Vec<u8>, Pending) {
        let o = job.vu % self.plan.orgs.len().max(1);
        let s = &self.plan.orgs[o];
        let org = &s.org;
        let (method, path, token, body, pending) = match job.class {
            Class::Health => ("GET", "/health".to_owned(), None, None, Pending::None),
            Class::Check => (
                "GET",
                format!(
                    "/api/v2/orgs/{org}/permissions/check?key={}",
                    KEYS[job.vu % KEYS.len()]
                ),
                Some(&s.member_token),
                None,
                Pending::None,
            ),
            Class::List => (
                "GET",
                format!(
                    "/api/v2/orgs/{org}/users?limit=20&sort={}",
                    ["name", "joined"][job.vu % 2]
                ),
                Some(&s.admin_token),
                None,
                Pending::None,
            ),
            Class::Search => {
                let q = {
                    // The next text (shuffled by the plan); each is asked once per round,
                    // of whichever org's admin comes next.
                    let mut next = lock(&self.query);
                    *next += 1;
                    let i = *next % self.plan.queries.len().max(1);
                    self.plan.queries.get(i).cloned().unwrap_or_default()
                };
                (
                    "GET",
                    format!("/api/v2/orgs/{org}/users/search?q={}&limit=20", encode(&q)),
                    Some(&s.admin_token),
                    None,
                    Pending::None,
                )
            }
            Class::Profile => (
                "GET",
                "/api/v2/me".to_owned(),
                Some(&s.member_token),
                None,
                Pending::None,
            ),
            Class::Settings => (
                "GET",
                format!("/api/v2/orgs/{org}/permissions"),
                Some(&s.admin_token),
                None,
                Pending::None,
            ),
            Class::Audit => (
                "GET",
                format!("/api/v2/orgs/{org}/audit-logs?limit=20"),
                Some(&s.admin_token),
                None,
                Pending::None,
            ),
            Class::MemberWrite => {
                let mut w = lock(&self.writes);
                let ow = &mut w[o];
                let n = ow.targets.len().max(1);
                // The next member with no write on the way (else the next one).
                let mut t = ow.next % n;
                for k in 0..n {
                    let i = (ow.next + k) % n;
                    if !ow.targets.get(i).is_some_and(|x| x.2) {
                        t = i;
                        break;
                    }
                }
                ow.next = t + 1;
                ow.flip = !ow.flip;
                let committee = COMMITTEES[usize::from(ow.flip)];
                match ow.targets.get_mut(t) {
                    Some((user, version, in_flight)) => {
                        *in_flight = true;
                        (
                            "PATCH",
                            format!("/api/v2/orgs/{org}/users/{user}"),
                            Some(&s.admin_token),
                            Some(
                                serde_json::json!({"committee": committee, "version": *version})
                                    .to_string(),
                            ),
                            Pending::Member { org: o, target: t },
                        )
                    }
                    None => ("GET", "/health".to_owned(), None, None, Pending::None),
                }
            }
            Class::SettingsWrite => {
                let mut w = lock(&self.writes);
                let ow = &mut w[o];
                ow.flip = !ow.flip;
                let min_role = if ow.flip { "board_member" } else { "volunteer" };
                (
                    "PUT",
                    format!("/api/v2/orgs/{org}/permissions/settings"),
                    Some(&s.admin_token),
                    Some(
                        serde_json::json!({"version": ow.settings_version, "changes": [{"key": s.settings_key, "min_role": min_role}]})
                            .to_string(),
                    ),
                    Pending::Settings { org: o },
                )
            }
        };
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\n",
            self.host
        );
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(b) = &body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        if let Some(b) = body {
            req.push_str(&b);
        }
        (req.into_bytes(), pending)
    }

    /// Keeps the versions the writes answered (or a 412's current one).
    fn settle(&self, pending: &Pending, answer: Option<&Answer>) {
        if matches!(pending, Pending::None) {
            // A read: nothing to keep, so its body is not decoded (the generator's CPU
            // counts against the machine the server runs on).
            return;
        }
        let version = answer.and_then(|a| {
            let json = a.json()?;
            json["data"]["version"]
                .as_i64()
                .or_else(|| json["error"]["details"]["current_version"].as_i64())
        });
        let mut w = lock(&self.writes);
        match *pending {
            Pending::None => {}
            Pending::Member { org, target } => {
                if let Some(t) = w[org].targets.get_mut(target) {
                    t.2 = false;
                    if let Some(v) = version {
                        t.1 = v;
                    }
                }
            }
            Pending::Settings { org } => {
                if let Some(v) = version.and_then(|v| u64::try_from(v).ok()) {
                    w[org].settings_version = v;
                }
            }
        }
    }

    fn record(&self, job: &Job, outcome: Result<(u16, Duration), String>) {
        // Throughput: every answer that arrives inside the measured window (warm-up
        // requests still queued included: the server's work in the window).
        if outcome.is_ok()
            && self
                .window
                .get()
                .is_some_and(|(from, to)| (*from..=*to).contains(&Instant::now()))
        {
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
        if !job.measured {
            return;
        }
        let mut tallies = lock(&self.tallies);
        let t = tallies.entry(job.class).or_default();
        match outcome {
            Ok((status, took)) => {
                t.times.push(took);
                match status {
                    200..=299 => t.ok += 1,
                    412 => t.conflicts += 1,
                    _ => {
                        t.errors += 1;
                        self.sample(format!("{:?}: status {status}", job.class));
                    }
                }
            }
            Err(e) => {
                t.errors += 1;
                self.sample(format!("{:?}: {e}", job.class));
            }
        }
    }

    fn sample(&self, e: String) {
        let mut s = lock(&self.sample_errors);
        if s.len() < 10 {
            s.push(e);
        }
    }
}

/// One answer off a keep-alive connection.
struct Answer {
    status: u16,
    gzip: bool,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Option<serde_json::Value> {
        if self.gzip {
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(self.body.as_slice())
                .read_to_end(&mut text)
                .ok()?;
            serde_json::from_slice(&text).ok()
        } else {
            serde_json::from_slice(&self.body).ok()
        }
    }
}

async fn read_line(r: &mut BufReader<TcpStream>, line: &mut String) -> anyhow::Result<()> {
    line.clear();
    r.read_line(line).await?;
    if !line.ends_with("\r\n") {
        anyhow::bail!("a truncated line: {line:?}");
    }
    line.truncate(line.len() - 2);
    Ok(())
}

/// Reads one response (sized or chunked body).
async fn read_answer(r: &mut BufReader<TcpStream>) -> anyhow::Result<Answer> {
    let mut line = String::new();
    read_line(r, &mut line).await?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {line:?}"))?;
    let (mut gzip, mut chunked, mut length) = (false, false, 0);
    loop {
        read_line(r, &mut line).await?;
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-encoding") {
                gzip = value.eq_ignore_ascii_case("gzip");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            read_line(r, &mut line).await?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .context("a bad chunk size")?;
            if size == 0 {
                read_line(r, &mut line).await?;
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..]).await?;
            read_line(r, &mut line).await?;
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body).await?;
    }
    Ok(Answer { status, gzip, body })
}

/// How long one answer may take before it counts as an error (and the connection is
/// replaced).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the queue is drained after the schedule ends; what is left is unsent.
const DRAIN: Duration = Duration::from_secs(15);

async fn connect(addr: &str) -> anyhow::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(BufReader::with_capacity(64 * 1024, stream))
}

/// Sends one job on `conn` (connecting first if needed); records it.
async fn exchange(shared: &Shared, conn: &mut Option<BufReader<TcpStream>>, job: &Job) {
    let (bytes, pending) = shared.build(job);
    let result: anyhow::Result<Answer> = async {
        if conn.is_none() {
            *conn = Some(connect(&shared.plan.addr).await?);
        }
        let c = conn.as_mut().context("no connection")?;
        c.get_mut().write_all(&bytes).await?;
        tokio::time::timeout(ANSWER_TIMEOUT, read_answer(c))
            .await
            .context("no answer within 10 s")?
    }
    .await;
    match result {
        Ok(answer) => {
            let took = job.due.elapsed();
            shared.settle(&pending, Some(&answer));
            shared.record(job, Ok((answer.status, took)));
        }
        Err(e) => {
            *conn = None;
            shared.settle(&pending, None);
            shared.record(job, Err(e.to_string()));
        }
    }
}

/// The process's CPU seconds (user + system), from `/proc/<process>/stat`.
pub fn cpu_secs(process: &str) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{process}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    #[allow(clippy::cast_precision_loss, reason = "clock ticks")]
    let ticks = ticks as f64;
    ticks / clock_ticks()
}

/// `getconf CLK_TCK` (100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// `xtask bench-mix-load --plan FILE`: runs the plan, prints the [`Outcome`] as JSON.
pub fn run(plan_file: &std::path::Path) -> anyhow::Result<()> {
    let plan: LoadPlan = serde_json::from_slice(&std::fs::read(plan_file)?)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(drive(plan))?;
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

async fn drive(plan: LoadPlan) -> anyhow::Result<Outcome> {
    anyhow::ensure!(!plan.orgs.is_empty(), "a plan without sessions");
    let writes = plan
        .orgs
        .iter()
        .map(|s| OrgWrites {
            targets: s
                .targets
                .iter()
                .map(|(u, v)| (u.clone(), *v, false))
                .collect(),
            next: 0,
            settings_version: s.settings_version,
            flip: false,
        })
        .collect();
    let shared = Arc::new(Shared {
        host: plan.addr.clone(),
        writes: Mutex::new(writes),
        query: Mutex::new(0),
        tallies: Mutex::new(HashMap::new()),
        answered: AtomicU64::new(0),
        window: std::sync::OnceLock::new(),
        sample_errors: Mutex::new(Vec::new()),
        plan,
    });
    let plan = &shared.plan;
    let mix = Arc::new(Mix::new(&plan.mix));
    let warmup = Duration::from_secs_f64(plan.warmup_secs);
    let total = warmup + Duration::from_secs_f64(plan.secs);
    // Open every connection before the clock starts.
    let mut conns = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        conns.push(Some(connect(&plan.addr).await?));
    }
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + warmup;
    let end = start + total;
    let _ = shared.window.set((measure_from, end));
    let cpu = Arc::new(Mutex::new(None::<f64>));
    let scheduled = Arc::new(Mutex::new(0u64));
    let mut tasks = Vec::new();
    let unsent;
    match plan.mode {
        Mode::Closed => {
            for (i, mut conn) in conns.into_iter().enumerate() {
                let (shared, mix, scheduled) = (shared.clone(), mix.clone(), scheduled.clone());
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep_until(start.into()).await;
                    let mut rng = SplitMix64::stream(shared.plan.seed, 0xC105, i as u64);
                    let vus = shared.plan.vus.max(1);
                    loop {
                        let now = Instant::now();
                        if now >= end {
                            break;
                        }
                        let job = Job {
                            due: now,
                            vu: rng.index(vus),
                            class: mix.pick(&mut rng),
                            measured: now >= measure_from,
                        };
                        if job.measured {
                            *lock(&scheduled) += 1;
                        }
                        exchange(&shared, &mut conn, &job).await;
                    }
                }));
            }
            let cpu = cpu.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(measure_from.into()).await;
                *lock(&cpu) = Some(cpu_secs("self"));
            }));
            for t in tasks {
                t.await?;
            }
            unsent = 0;
        }
        Mode::Open { rate } => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            let queued = Arc::new(AtomicU64::new(0));
            let abandon = Arc::new(AtomicBool::new(false));
            let left = Arc::new(AtomicU64::new(0));
            for mut conn in conns {
                let (shared, rx) = (shared.clone(), rx.clone());
                let (queued, abandon, left) = (queued.clone(), abandon.clone(), left.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let job = { rx.lock().await.recv().await };
                        let Some(job) = job else { break };
                        queued.fetch_sub(1, Ordering::Relaxed);
                        if abandon.load(Ordering::Relaxed) {
                            if job.measured {
                                left.fetch_add(1, Ordering::Relaxed);
                            }
                            continue;
                        }
                        exchange(&shared, &mut conn, &job).await;
                    }
                }));
            }
            // The schedule: every arrival queued at its time, whatever the answers do.
            let mut rng = SplitMix64::stream(plan.seed, 0x5C4E, 0);
            let mut cpu_taken = false;
            for (offset, vu) in Arrivals::new(plan.vus, rate, plan.seed) {
                if offset >= total {
                    break;
                }
                let due = start + offset;
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let measured = offset >= warmup;
                if measured {
                    if !cpu_taken {
                        *lock(&cpu) = Some(cpu_secs("self"));
                        cpu_taken = true;
                    }
                    *lock(&scheduled) += 1;
                }
                let class = mix.pick(&mut rng);
                queued.fetch_add(1, Ordering::Relaxed);
                if tx
                    .send(Job {
                        due,
                        vu,
                        class,
                        measured,
                    })
                    .is_err()
                {
                    break;
                }
            }
            // Drain what is queued, for a while; then give up on the rest.
            let drain_until = Instant::now() + DRAIN;
            while queued.load(Ordering::Relaxed) > 0 && Instant::now() < drain_until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            abandon.store(true, Ordering::Relaxed);
            drop(tx);
            for t in tasks {
                // A connection stuck on a dead answer ends at its timeout.
                t.await?;
            }
            unsent = left.load(Ordering::Relaxed);
        }
    }
    let cpu_end = cpu_secs("self");
    let cpu_start = (*lock(&cpu)).unwrap_or(cpu_end);
    let mut tallies = std::mem::take(&mut *lock(&shared.tallies));
    let mut classes: Vec<(Class, ClassOutcome)> =
        tallies.iter_mut().map(|(c, t)| (*c, t.outcome())).collect();
    classes.sort_by_key(|(c, _)| *c as u8);
    let scheduled = *lock(&scheduled);
    let answered = shared.answered.load(Ordering::Relaxed);
    let sample_errors = lock(&shared.sample_errors).clone();
    Ok(Outcome {
        secs: plan.secs,
        scheduled,
        answered,
        unsent,
        classes,
        sample_errors,
        cpu_secs: cpu_end - cpu_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_come_in_time_order_at_the_asked_rate() {
        let rate = 5_000.0;
        let secs = 4.0;
        let horizon = Duration::from_secs_f64(secs);
        let mut last = Duration::ZERO;
        let mut per_user = vec![0u32; 1_000];
        let mut n = 0u32;
        for (at, u) in Arrivals::new(1_000, rate, 7) {
            if at >= horizon {
                break;
            }
            assert!(at >= last, "arrivals out of order");
            last = at;
            per_user[u] += 1;
            n += 1;
        }
        // 20,000 expected; a Poisson count's standard deviation is ~141.
        assert!((19_300..=20_700).contains(&n), "{n} arrivals");
        // Every user sends (about 20 each), none hogs the schedule.
        assert!(per_user.iter().all(|&c| c > 0 && c < 60), "{per_user:?}");
    }

    #[test]
    fn arrivals_are_exponential_per_user() {
        // One user: the gaps' mean is 1/rate and about 1/e of them exceed the mean.
        let gaps: Vec<f64> = Arrivals::new(1, 100.0, 3)
            .take(20_001)
            .map(|(at, _)| at.as_secs_f64())
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| w[1] - w[0])
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.01).abs() < 0.0005, "mean gap {mean}");
        let over = gaps.iter().filter(|&&g| g > 0.01).count() as f64 / gaps.len() as f64;
        assert!(
            (over - (-1.0f64).exp()).abs() < 0.02,
            "share over the mean {over}"
        );
    }

    #[test]
    fn the_mix_follows_its_weights() {
        let mix = Mix::new(&[(Class::Check, 3), (Class::List, 1), (Class::Audit, 0)]);
        let mut rng = SplitMix64::stream(1, 2, 3);
        let picks: Vec<Class> = (0..40_000).map(|_| mix.pick(&mut rng)).collect();
        let checks = picks.iter().filter(|c| **c == Class::Check).count();
        assert!((29_000..=31_000).contains(&checks), "{checks}");
        assert!(!picks.contains(&Class::Audit));
    }

    #[test]
    fn latency_runs_from_the_scheduled_time_and_percentiles_are_nearest_rank() {
        // A request due 30 ms ago and answered now took 30 ms, however long it waited
        // for a connection.
        let job = Job {
            due: Instant::now() - Duration::from_millis(30),
            vu: 0,
            class: Class::Check,
            measured: true,
        };
        assert!(job.due.elapsed() >= Duration::from_millis(30));
        let mut t = Tally {
            times: (1..=100).rev().map(Duration::from_millis).collect(),
            ..Tally::default()
        };
        let o = t.outcome();
        assert!((o.p50_ms - 50.0).abs() < 1e-9);
        assert!((o.p95_ms - 95.0).abs() < 1e-9);
        assert!((o.p99_ms - 99.0).abs() < 1e-9);
        assert!((o.max_ms - 100.0).abs() < 1e-9);
    }

    #[test]
    fn queries_are_url_encoded() {
        assert_eq!(encode("Ana García"), "Ana%20Garc%C3%ADa");
    }
}
