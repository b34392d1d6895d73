//! `cargo xtask bench-http`: the HTTP targets of issue 4, measured against the release
//! server on PostgreSQL + Redis with `wrk` as the load generator in its own process.
//!
//! 1. **Warm** `GET /orgs/{id}/permissions/check`: 64 signed-in members of 8 orgs, 28
//!    keys, 64 connections; after a warm-up, ≥ 10,000 requests/s and p99 ≤ 10 ms.
//! 2. **Cold**: the server restarted (empty L1, empty token cache) and the orgs' Redis
//!    keys deleted (empty L2); the first check of every member, one at a time; p99 ≤ 25 ms.
//! 3. **Propagation**: two instances on the same database and Redis; a setting changed
//!    on one is visible to checks on the other within 50 ms (p99 over 200 changes).
//! 4. **Edge** (issue 14; alone: `--edge`): the permission catalog, `/openapi.json` and a
//!    5-row member list on keep-alive connections with `Accept-Encoding: gzip, br`; p50 ≤
//!    1 ms each.
//!
//! Every request sends `Accept-Encoding: gzip, br` ([`ACCEPT_ENCODING`]), as browsers do:
//! without it no answer is compressed, and the ~40 ms stall of compressed, chunked answers
//! (Nagle on the server's sockets) went unmeasured.
//!
//! Needs `TEST_DATABASE_URL` (a PostgreSQL role that may create databases) and
//! `TEST_REDIS_URL` (defaults: the local services), and `wrk` on the PATH.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const ORGS: usize = 8;
const MEMBERS_PER_ORG: usize = 8;
/// The keys the checks ask about (those no seed locks users out of asking).
pub(crate) const KEYS: [&str; 6] = [
    "events.create",
    "events.view",
    "users.view",
    "budget.view",
    "communications.create",
    "users.invite",
];
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// What every benchmark request offers, as browsers do: a server that compresses answers
/// it for real (compressed, chunked bodies — the shape that waited ~40 ms for delayed ACKs
/// while Nagle was on; docs/decisions.md, "TCP_NODELAY at the edge").
pub(crate) const ACCEPT_ENCODING: &str = "gzip, br";

/// The head of an HTTP/1.1 request on a fresh connection (`Connection: close`), with
/// [`ACCEPT_ENCODING`], a bearer token and a body's type and length when given.
pub(crate) fn request_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, u64)>,
) -> String {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept-Encoding: {ACCEPT_ENCODING}\r\n"
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some((content_type, len)) = body {
        req.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {len}\r\n"
        ));
    }
    req.push_str("\r\n");
    req
}

/// A whole response read to its end (`Connection: close`): status and JSON body (`Null`
/// if the body is not JSON), de-chunked and decompressed as sent.
pub(crate) fn read_response(stream: &mut TcpStream) -> anyhow::Result<(u16, serde_json::Value)> {
    let (status, text) = read_response_text(stream)?;
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

/// Status and body text (de-chunked, decompressed) of the response on `stream`.
pub(crate) fn read_response_text(stream: &mut TcpStream) -> anyhow::Result<(u16, String)> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header end")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_ascii_lowercase())
        })
    };
    let mut body = raw[end + 4..].to_vec();
    if header("transfer-encoding").as_deref() == Some("chunked") {
        body = dechunk(&body)?;
    }
    let text = match header("content-encoding").as_deref() {
        None | Some("identity") => String::from_utf8_lossy(&body).into_owned(),
        Some("gzip") => {
            let mut text = String::new();
            flate2::read::GzDecoder::new(body.as_slice()).read_to_string(&mut text)?;
            text
        }
        Some(other) => bail!("a body in an unexpected content encoding: {other}"),
    };
    Ok((status, text))
}

/// The payload of a whole chunked body.
fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a truncated chunk size")?;
        let size = std::str::from_utf8(&raw[..eol])?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .context("a bad chunk size")?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(raw.get(..size).context("a truncated chunk")?);
        raw = raw.get(size + 2..).context("a truncated chunk")?;
    }
}

/// One HTTP/1.1 exchange on a fresh connection (`Connection: close`): status and body.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let (status, text) = http_text(addr, method, path, token, body)?;
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

/// As [`http`], with the body as text (e.g. `/metrics`).
pub(crate) fn http_text(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let payload = body.map(serde_json::Value::to_string).unwrap_or_default();
    let mut req = request_head(
        addr,
        method,
        path,
        token,
        body.map(|_| ("application/json", payload.len() as u64)),
    );
    req.push_str(&payload);
    stream.write_all(req.as_bytes())?;
    read_response_text(&mut stream)
}

/// The JSON body of a response with status `want`; an error naming `what` otherwise.
pub(crate) fn expect(
    what: &str,
    want: u16,
    got: anyhow::Result<(u16, serde_json::Value)>,
) -> anyhow::Result<serde_json::Value> {
    let (status, body) = got?;
    if status != want {
        bail!("{what}: expected {want}, got {status}: {body}");
    }
    Ok(body)
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The release server as a child process (killed when dropped).
pub(crate) struct Server {
    child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
}

impl Server {
    /// Starts `bin` on a free port with the database, Redis and data directory given
    /// (JSON logs at `warn`, rate limits off) and waits until `/ready` answers.
    pub(crate) fn start(
        bin: &Path,
        db_url: &str,
        redis_url: &str,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        Self::start_with(bin, db_url, redis_url, data_dir, &[])
    }

    /// [`Server::start`] with further environment variables (`(name, value)`).
    pub(crate) fn start_with(
        bin: &Path,
        db_url: &str,
        redis_url: &str,
        data_dir: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let addr = free_addr()?;
        let child = Command::new(bin)
            .envs(env.iter().copied())
            .env("BIND_ADDR", addr.to_string())
            .env("DATABASE_URL", db_url)
            .env("REDIS_URL", redis_url)
            .env("DATA_DIR", data_dir)
            .env("LOG_LEVEL", "warn")
            .env("LOG_FORMAT", "json")
            .env("RATE_LIMIT_ENABLED", "false")
            // Loopback only: the benchmarks read the server's own figures.
            .env("METRICS_PUBLIC", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start pto-server")?;
        let server = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http(addr, "GET", "/ready", None, None) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("the server at {addr} did not become ready");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed-up, signed-in user: (user id, token).
pub(crate) fn sign_up(addr: SocketAddr, email: &str) -> anyhow::Result<(String, String)> {
    let body = expect(
        "register",
        201,
        http(
            addr,
            "POST",
            "/api/v2/auth/register",
            None,
            Some(
                &serde_json::json!({"email": email, "password": PASSWORD, "first_name": "Bench", "last_name": "User"}),
            ),
        ),
    )?;
    let id = body["data"]["id"].as_str().context("user id")?.to_owned();
    Ok((id, login(addr, email, PASSWORD)?))
}

/// Signs `email` in; returns the session token.
pub(crate) fn login(addr: SocketAddr, email: &str, password: &str) -> anyhow::Result<String> {
    let body = expect(
        "login",
        200,
        http(
            addr,
            "POST",
            "/api/v2/auth/login",
            None,
            Some(&serde_json::json!({"email": email, "password": password})),
        ),
    )?;
    Ok(body["data"]["token"].as_str().context("token")?.to_owned())
}

/// Creates an org as the user of `token` (who becomes its admin); returns its id.
pub(crate) fn create_org(
    addr: SocketAddr,
    token: &str,
    name: &str,
    code: &str,
) -> anyhow::Result<String> {
    let body = expect(
        "create org",
        201,
        http(
            addr,
            "POST",
            "/api/v2/orgs",
            Some(token),
            Some(&serde_json::json!({"name": name, "signup_code": code})),
        ),
    )?;
    Ok(body["data"]["org"]["id"]
        .as_str()
        .context("org id")?
        .to_owned())
}

struct Fixture {
    /// (org id, admin token)
    orgs: Vec<(String, String)>,
    /// (org id, member token), every member of every org (admins included).
    members: Vec<(String, String)>,
}

fn fixture(addr: SocketAddr) -> anyhow::Result<Fixture> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut orgs = Vec::new();
    let mut members = Vec::new();
    for o in 0..ORGS {
        let (_, admin) = sign_up(addr, &format!("admin{o}-{run}@bench.example"))?;
        let code = format!("B{}{o}", &run[run.len() - 8..]).to_uppercase();
        let org = create_org(addr, &admin, &format!("Bench PTO {o}"), &code)?;
        members.push((org.clone(), admin.clone()));
        for m in 1..MEMBERS_PER_ORG {
            let (_, token) = sign_up(addr, &format!("m{o}-{m}-{run}@bench.example"))?;
            expect(
                "join",
                201,
                http(
                    addr,
                    "POST",
                    "/api/v2/orgs/join",
                    Some(&token),
                    Some(&serde_json::json!({"signup_code": code})),
                ),
            )?;
            members.push((org.clone(), token));
        }
        orgs.push((org, admin));
    }
    Ok(Fixture { orgs, members })
}

/// The end of every wrk script: non-200 answers counted, and a `JSON {…}` summary line
/// (what [`wrk`] parses).
pub(crate) const WRK_REPORT: &str = r#"local errors = 0
response = function(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"seconds\": %f, \"p50_us\": %d, \"p90_us\": %d, \"p99_us\": %d, \"max_us\": %d, \"non_2xx\": %d, \"socket_errors\": %d}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"#;

/// The wrk script: every request a different (member, key), round-robin.
fn wrk_script(members: &[(String, String)], dir: &Path) -> anyhow::Result<PathBuf> {
    let mut lua = String::from("local paths = {}\nlocal tokens = {}\n");
    for (i, (org, token)) in members.iter().enumerate() {
        for (k, key) in KEYS.iter().enumerate() {
            let n = i * KEYS.len() + k + 1;
            lua.push_str(&format!(
                "paths[{n}] = \"/api/v2/orgs/{org}/permissions/check?key={key}\"\ntokens[{n}] = \"Bearer {token}\"\n"
            ));
        }
    }
    lua.push_str(
        r#"local counter = 0
request = function()
  counter = counter + 1
  local n = (counter % #paths) + 1
  return wrk.format("GET", paths[n], { ["Authorization"] = tokens[n], ["Accept-Encoding"] = "gzip, br" })
end
"#,
    );
    lua.push_str(WRK_REPORT);
    let path = dir.join("check.lua");
    std::fs::write(&path, lua)?;
    Ok(path)
}

fn wrk(addr: SocketAddr, script: &Path, seconds: u32) -> anyhow::Result<serde_json::Value> {
    wrk_with(addr, script, seconds, 64)
}

/// Runs `script` (ending with [`WRK_REPORT`]) with `connections` keep-alive connections
/// for `seconds`; returns its summary.
pub(crate) fn wrk_with(
    addr: SocketAddr,
    script: &Path,
    seconds: u32,
    connections: u32,
) -> anyhow::Result<serde_json::Value> {
    let out = Command::new("wrk") // One load thread: on this 2-core machine a second would take CPU from the server.
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--timeout",
            "5s",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://{addr}"))
        .output()
        .context("run wrk (install it: apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("JSON "))
        .with_context(|| format!("wrk printed no summary: {text}"))?;
    Ok(serde_json::from_str(line)?)
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list"
    )]
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// `text` as a URL query value (everything but unreserved ASCII percent-encoded).
pub(crate) fn encode_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Milliseconds of `d`.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Deletes the orgs' permission-cache keys from Redis (the L2 of a cold start).
fn flush_l2(redis_url: &str, orgs: &[(String, String)]) -> anyhow::Result<u64> {
    let mut deleted = 0;
    for (org, _) in orgs {
        for pattern in [
            format!("*:org:{org}:*"),
            format!("*:member:{org}:*"),
            format!("*gen:{org}"),
        ] {
            let keys = Command::new("redis-cli")
                .args(["-u", redis_url, "--scan", "--pattern", &pattern])
                .output()
                .context("redis-cli")?;
            for key in String::from_utf8_lossy(&keys.stdout)
                .lines()
                .filter(|k| !k.is_empty())
            {
                Command::new("redis-cli")
                    .args(["-u", redis_url, "DEL", key])
                    .output()?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

/// The CPU (count × model) and the load average, for a report.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cores} × `{cpu}`; load average before: {}",
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    )
}

/// `TEST_DATABASE_URL` (a PostgreSQL role that may create databases) and
/// `TEST_REDIS_URL`, or the local services.
pub(crate) fn service_urls() -> (String, String) {
    (
        std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
    )
}

/// Builds the release server (`cargo build --release -p pto-server`; a no-op when it is
/// fresh) and returns the binary's path.
///
/// `PTOC_BENCH_SERVER_BIN` names another binary to use instead (a smoke run of a
/// benchmark's own code against a debug build; its figures mean nothing).
pub(crate) fn release_server() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("PTOC_BENCH_SERVER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let status = crate::cargo()
        .current_dir(&root)
        .args(["build", "--release", "-p", "pto-server"])
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    Ok(target.join("release/pto-server"))
}

/// A fresh PostgreSQL database next to the one `admin_url` names (created with `psql`),
/// dropped with `FORCE` when this goes out of scope.
pub(crate) struct BenchDatabase {
    admin_url: String,
    name: String,
    /// The new database's URL.
    pub(crate) url: String,
}

impl BenchDatabase {
    /// Creates `<prefix>_<uuid>`.
    pub(crate) fn create(admin_url: &str, prefix: &str) -> anyhow::Result<Self> {
        let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
        // The connection options (`?sslmode=…`) carry over to the new database.
        let (path, options) = match admin_url.split_once('?') {
            Some((path, options)) => (path, format!("?{options}")),
            None => (admin_url, String::new()),
        };
        let url = match path.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}{options}"),
            None => bail!("TEST_DATABASE_URL has no database part"),
        };
        let db = Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        };
        if !db
            .psql(&format!("CREATE DATABASE \"{}\"", db.name))?
            .success()
        {
            bail!("could not create the bench database");
        }
        Ok(db)
    }

    fn psql(&self, sql: &str) -> std::io::Result<std::process::ExitStatus> {
        Command::new("psql")
            .args([self.admin_url.as_str(), "-qAtc", sql])
            .status()
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let _ = self.psql(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

/// What a benchmark of the server starts from: the services (`TEST_REDIS_URL`), the
/// server binary ([`release_server`]), the machine line, a fresh database and data
/// directory, and a run id for unique names.
pub(crate) struct BenchEnv {
    pub(crate) redis_url: String,
    pub(crate) bin: PathBuf,
    pub(crate) machine: String,
    pub(crate) db: BenchDatabase,
    pub(crate) dir: ScratchDir,
    pub(crate) run: String,
}

impl BenchEnv {
    /// For benchmark `name` (database `ptoc_bench_<name>_…`, directory
    /// `ptoc-bench-<name>-…`).
    pub(crate) fn prepare(name: &str) -> anyhow::Result<Self> {
        let (admin_url, redis_url) = service_urls();
        let bin = release_server()?;
        let machine = machine();
        Ok(Self {
            redis_url,
            bin,
            machine,
            db: BenchDatabase::create(&admin_url, &format!("ptoc_bench_{name}"))?,
            dir: ScratchDir::create(&format!("ptoc-bench-{name}"))?,
            run: uuid::Uuid::now_v7().simple().to_string(),
        })
    }

    /// Signs up `<tag>-admin-<run>@bench.example` and creates the org `org_name` (signup
    /// code `<code>` and the run id's end); (admin token, org id).
    pub(crate) fn admin_and_org(
        &self,
        addr: SocketAddr,
        tag: &str,
        org_name: &str,
        code: &str,
    ) -> anyhow::Result<(String, String)> {
        let (_, admin) = sign_up(addr, &format!("{tag}-admin-{}@bench.example", self.run))?;
        let code = format!("{code}{}", &self.run[self.run.len() - 8..]).to_uppercase();
        let org = create_org(addr, &admin, org_name, &code)?;
        Ok((admin, org))
    }
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub(crate) struct ScratchDir(pub(crate) PathBuf);

impl ScratchDir {
    /// Creates `<prefix>-<uuid>`.
    pub(crate) fn create(prefix: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the three measurements and prints a Markdown report; fails if a target is missed.
pub fn run() -> anyhow::Result<()> {
    let (admin_url, redis_url) = service_urls();
    let bin = release_server()?;
    let db = BenchDatabase::create(&admin_url, "ptoc_bench")?;
    let dir = ScratchDir::create("ptoc-bench-http")?;
    measure(&bin, &db.url, &redis_url, &dir.0)?;
    edge(&bin, &db.url, &redis_url, &dir.0)
}

fn measure(bin: &Path, db_url: &str, redis_url: &str, dir: &Path) -> anyhow::Result<()> {
    let machine = machine();
    let a = Server::start(bin, db_url, redis_url, dir)?;
    println!(
        "bench-http: server up at {}; creating {ORGS} orgs × {MEMBERS_PER_ORG} members",
        a.addr
    );
    let fx = fixture(a.addr)?;
    let script = wrk_script(&fx.members, dir)?;

    // 1. Warm.
    wrk(a.addr, &script, 5)?;
    let warm = wrk(a.addr, &script, 20)?;
    let rps = warm["requests"].as_f64().unwrap_or(0.0) / warm["seconds"].as_f64().unwrap_or(1.0);
    let p99_warm = warm["p99_us"].as_f64().unwrap_or(f64::MAX) / 1000.0;

    // 2. Cold: restart (empty L1 and token cache), delete the orgs' L2 keys, then the first
    // check of every member, one at a time.
    drop(a);
    let deleted = flush_l2(redis_url, &fx.orgs)?;
    let a = Server::start(bin, db_url, redis_url, dir)?;
    // Open the pools (database, Redis) with the first org's members, untimed: "cold"
    // means empty caches, not a process that has not connected yet.
    for (org, token) in fx.members.iter().filter(|(o, _)| *o == fx.orgs[0].0) {
        expect(
            "pool warm-up",
            200,
            http(
                a.addr,
                "GET",
                &format!("/api/v2/orgs/{org}/permissions/check?key=events.create"),
                Some(token),
                None,
            ),
        )?;
    }
    let mut cold = Vec::new();
    for (org, token) in fx.members.iter().filter(|(o, _)| *o != fx.orgs[0].0) {
        let started = Instant::now();
        expect(
            "cold check",
            200,
            http(
                a.addr,
                "GET",
                &format!("/api/v2/orgs/{org}/permissions/check?key=events.create"),
                Some(token),
                None,
            ),
        )?;
        cold.push(started.elapsed());
    }
    cold.sort();

    // 3. Propagation to a second instance.
    let b = Server::start(bin, db_url, redis_url, dir)?;
    let (org, admin) = &fx.orgs[0];
    let volunteer = &fx.members[1].1;
    let check = format!("/api/v2/orgs/{org}/permissions/check?key=events.create");
    let mut lags = Vec::new();
    for i in 0..200 {
        let open = i % 2 == 0;
        let matrix = expect(
            "matrix",
            200,
            http(
                a.addr,
                "GET",
                &format!("/api/v2/orgs/{org}/permissions"),
                Some(admin),
                None,
            ),
        )?;
        let version = matrix["data"]["version"].as_u64().context("version")?;
        let min_role = if open { "volunteer" } else { "board_member" };
        expect(
            "update setting",
            200,
            http(
                a.addr,
                "PUT",
                &format!("/api/v2/orgs/{org}/permissions/settings"),
                Some(admin),
                Some(
                    &serde_json::json!({"version": version, "changes": [{"key": "events.create", "min_role": min_role}]}),
                ),
            ),
        )?;
        let changed = Instant::now();
        loop {
            let body = expect(
                "check on B",
                200,
                http(b.addr, "GET", &check, Some(volunteer), None),
            )?;
            if body["data"]["allowed"].as_bool() == Some(open) {
                lags.push(changed.elapsed());
                break;
            }
            if changed.elapsed() > Duration::from_secs(5) {
                bail!("change {i} not visible on the second instance after 5 s");
            }
        }
    }
    lags.sort();
    drop(b);
    drop(a);

    let date = time::OffsetDateTime::now_utc();
    let cold_p99 = ms(percentile(&cold, 0.99));
    let lag_p99 = ms(percentile(&lags, 0.99));
    println!("\n## HTTP permission check and propagation (issue 4)\n");
    println!(
        "Run: `cargo xtask bench-http` (release server on PostgreSQL + Redis, `wrk` in its own process). Recorded {date}.\n"
    );
    println!("Machine: {machine}.\n");
    println!("| measurement | result | target | |\n|---|---:|---:|---|");
    println!(
        "| load generator | `wrk -t1 -c64`, {ORGS} orgs × {MEMBERS_PER_ORG} members × {} keys round-robin | | |",
        KEYS.len()
    );
    println!(
        "| warm check, 64 connections, 20 s: throughput | {rps:.0} req/s ({} requests, non-2xx {}, socket errors {}) | ≥ 10,000 req/s | {} |",
        warm["requests"],
        warm["non_2xx"],
        warm["socket_errors"],
        if rps >= 10_000.0 { "PASS" } else { "MISS" }
    );
    println!(
        "| warm check: latency p50 / p90 / p99 / max | {:.2} / {:.2} / {p99_warm:.2} / {:.2} ms | p99 ≤ 10 ms | {} |",
        warm["p50_us"].as_f64().unwrap_or(0.0) / 1000.0,
        warm["p90_us"].as_f64().unwrap_or(0.0) / 1000.0,
        warm["max_us"].as_f64().unwrap_or(0.0) / 1000.0,
        if p99_warm <= 10.0 { "PASS" } else { "MISS" }
    );
    println!(
        "| cold first check per member ({} members of 7 orgs after a restart (L1 and token cache empty) with their {deleted} L2 keys deleted; pools opened first by an 8th org): p50 / p99 / max | {:.2} / {cold_p99:.2} / {:.2} ms | p99 ≤ 25 ms | {} |",
        cold.len(),
        ms(percentile(&cold, 0.5)),
        ms(percentile(&cold, 1.0)),
        if cold_p99 <= 25.0 { "PASS" } else { "MISS" }
    );
    println!(
        "| setting change on instance A visible to checks on B ({} changes): p50 / p99 / max | {:.2} / {lag_p99:.2} / {:.2} ms | p99 ≤ 50 ms | {} |",
        lags.len(),
        ms(percentile(&lags, 0.5)),
        ms(percentile(&lags, 1.0)),
        if lag_p99 <= 50.0 { "PASS" } else { "MISS" }
    );
    if rps < 10_000.0 || p99_warm > 10.0 || cold_p99 > 25.0 || lag_p99 > 50.0 {
        bail!("a target was missed (see the table)");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The edge as browsers meet it (issue 14)

/// Timed requests per route and header set, after [`EDGE_WARMUP`] untimed ones.
const EDGE_ROUNDS: usize = 500;
const EDGE_WARMUP: usize = 50;
/// The target p50 of each edge route, asked as a browser asks.
const EDGE_TARGET_MS: f64 = 1.0;

/// One response read off a keep-alive connection.
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// `Content-Encoding: gzip`.
    pub(crate) gzip: bool,
    /// `Transfer-Encoding: chunked`.
    chunked: bool,
    /// The body's size as sent (compressed, without the chunk framing).
    bytes: usize,
    /// The body as sent (compressed, de-chunked).
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, decompressed.
    pub(crate) fn json(&self) -> anyhow::Result<serde_json::Value> {
        if self.gzip {
            Ok(serde_json::from_reader(flate2::read::GzDecoder::new(
                self.body.as_slice(),
            ))?)
        } else {
            Ok(serde_json::from_slice(&self.body)?)
        }
    }
}

fn read_line(r: &mut BufReader<TcpStream>) -> anyhow::Result<String> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    match line.strip_suffix("\r\n") {
        Some(l) => Ok(l.to_owned()),
        None => bail!("a truncated line: {line:?}"),
    }
}

/// Reads one whole response (head, then a chunked or a sized body) off a keep-alive
/// connection.
pub(crate) fn read_answer(r: &mut BufReader<TcpStream>) -> anyhow::Result<Answer> {
    let status_line = read_line(r)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {status_line:?}"))?;
    let (mut gzip, mut chunked, mut length) = (false, false, 0);
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-encoding" => gzip = value.eq_ignore_ascii_case("gzip"),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "content-length" => length = value.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let size = read_line(r)?;
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .context("a bad chunk size")?;
            if size == 0 {
                read_line(r)?;
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            read_line(r)?;
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body)?;
    }
    let bytes = body.len();
    Ok(Answer {
        status,
        gzip,
        chunked,
        bytes,
        body,
    })
}

/// Sequential requests of `path` on one keep-alive connection (warm-up, then
/// [`EDGE_ROUNDS`] timed, request written to body read): the sorted durations and the
/// last answer.
fn time_keep_alive(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    accept_encoding: Option<&str>,
) -> anyhow::Result<(Vec<Duration>, Answer)> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n");
    if let Some(t) = token {
        request.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(e) = accept_encoding {
        request.push_str(&format!("Accept-Encoding: {e}\r\n"));
    }
    request.push_str("\r\n");
    let mut times = Vec::with_capacity(EDGE_ROUNDS);
    let mut last = None;
    for round in 0..EDGE_WARMUP + EDGE_ROUNDS {
        let started = Instant::now();
        writer.write_all(request.as_bytes())?;
        let answer = read_answer(&mut reader)?;
        let took = started.elapsed();
        if answer.status != 200 {
            bail!("{path}: status {}", answer.status);
        }
        if round >= EDGE_WARMUP {
            times.push(took);
        }
        last = Some(answer);
    }
    times.sort();
    Ok((times, last.context("no answer")?))
}

/// `cargo xtask bench-http --edge`: only the edge measurement, on a fresh database.
pub fn run_edge() -> anyhow::Result<()> {
    let (admin_url, redis_url) = service_urls();
    let bin = release_server()?;
    let db = BenchDatabase::create(&admin_url, "ptoc_bench_edge")?;
    let dir = ScratchDir::create("ptoc-bench-edge")?;
    edge(&bin, &db.url, &redis_url, &dir.0)
}

/// The routes browsers fetch whose answers are over ~1 KB — the permission catalog, the
/// OpenAPI document and a 5-row member list — timed on keep-alive connections with
/// `Accept-Encoding: gzip, br` (compressed, chunked answers) and without (for
/// comparison); prints a Markdown table and fails if a p50 with the header is over
/// [`EDGE_TARGET_MS`].
fn edge(bin: &Path, db_url: &str, redis_url: &str, dir: &Path) -> anyhow::Result<()> {
    let machine = machine();
    let server = Server::start(bin, db_url, redis_url, dir)?;
    let addr = server.addr;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let (_, admin) = sign_up(addr, &format!("edge-admin-{run}@bench.example"))?;
    let code = format!("E{}", &run[run.len() - 8..]).to_uppercase();
    let org = create_org(addr, &admin, "Edge Bench PTO", &code)?;
    for m in 1..5 {
        let (_, token) = sign_up(addr, &format!("edge-{m}-{run}@bench.example"))?;
        expect(
            "join",
            201,
            http(
                addr,
                "POST",
                "/api/v2/orgs/join",
                Some(&token),
                Some(&serde_json::json!({"signup_code": code})),
            ),
        )?;
    }
    let members = format!("/api/v2/orgs/{org}/users");
    let list = expect(
        "member list",
        200,
        http(addr, "GET", &members, Some(&admin), None),
    )?;
    let rows = list["data"]
        .as_array()
        .or_else(|| {
            list["data"]
                .as_object()
                .and_then(|o| o.values().find_map(serde_json::Value::as_array))
        })
        .map_or(0, Vec::len);
    if rows != 5 {
        bail!("the member list has {rows} rows, not 5: {list}");
    }
    let routes = [
        (
            "`GET /api/v2/permissions/catalog`",
            "/api/v2/permissions/catalog".to_owned(),
            None,
        ),
        ("`GET /openapi.json`", "/openapi.json".to_owned(), None),
        (
            "`GET /api/v2/orgs/{id}/users` (5 members)",
            members,
            Some(admin.as_str()),
        ),
    ];
    let mut table = Vec::new();
    let mut missed = false;
    for (name, path, token) in &routes {
        let (with, answer) = time_keep_alive(addr, path, *token, Some(ACCEPT_ENCODING))?;
        let (without, plain) = time_keep_alive(addr, path, *token, None)?;
        let p50 = ms(percentile(&with, 0.5));
        let ok = p50 <= EDGE_TARGET_MS;
        missed |= !ok;
        table.push(format!(
            "| {name} | {} B {}{} ({} B plain) | {p50:.2} / {:.2} / {:.2} ms | {:.2} / {:.2} ms | ≤ {EDGE_TARGET_MS} ms | {} |",
            answer.bytes,
            if answer.gzip { "gzip" } else { "not compressed" },
            if answer.chunked { ", chunked" } else { "" },
            plain.bytes,
            ms(percentile(&with, 0.99)),
            ms(percentile(&with, 1.0)),
            ms(percentile(&without, 0.5)),
            ms(percentile(&without, 0.99)),
            if ok { "PASS" } else { "MISS" }
        ));
    }
    drop(server);
    println!("\n## The edge as browsers meet it (issue 14)\n");
    println!(
        "Run: `cargo xtask bench-http --edge` (release server on PostgreSQL + Redis; one keep-alive connection per route and header set, {EDGE_WARMUP} untimed then {EDGE_ROUNDS} timed sequential requests, request written to body read). Recorded {}.\n",
        time::OffsetDateTime::now_utc()
    );
    println!("Machine: {machine}.\n");
    println!(
        "| route | answer with `Accept-Encoding: {ACCEPT_ENCODING}` | p50 / p99 / max with the header | p50 / p99 without | target p50 (with) | |\n|---|---|---:|---:|---:|---|"
    );
    for row in &table {
        println!("{row}");
    }
    if missed {
        bail!("an edge route missed its p50 target (see the table)");
    }
    Ok(())
}
