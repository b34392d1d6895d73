//! `cargo xtask bench-streams`: issue #19's stream targets, measured against the release
//! server on PostgreSQL with Redis.
//!
//! An org of 10,000 members (seeded in bulk, each with a real password hash), every one
//! signed in and holding an open `GET /orgs/{org_id}/stream` — first all on one instance,
//! then split over two instances sharing Redis. An admin edits the org's settings (an
//! `org.updated` event, which every member may see) a few times; each stream's arrival
//! of each event is timed from the moment the edit was sent (so the figure includes the
//! write itself: an upper bound of "from commit"). Reported: the time to open the
//! streams, the server's resident memory before and with them (per connection), and the
//! fan-out latency percentiles. The same streams are first opened on a bare Tokio server
//! (a process of its own on two worker threads, one prepared frame written to every
//! connection per round: the floor, nothing but sockets and wake-ups) and the server's
//! p99 is reported as a ratio of the floor's. The generator runs in this process on one thread,
//! raises its own file-descriptor limit (`prlimit`), talks to loopback only, and every
//! phase has a deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use persistence::{Database, DatabaseSettings};
use sea_orm::ConnectionTrait as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::bench_http::{
    BenchDatabase, PASSWORD, ScratchDir, Server, create_org, expect, http, machine, ms, percentile,
    release_server, service_urls, sign_up,
};
use crate::seed::USER_COLUMNS;
use crate::seed::bench_rows::{BenchMember, MEMBERSHIP_COLUMNS, membership_row, user_row};
use crate::seed::bulk::{BulkInsert, thousands};

/// Streams of the full run.
const STREAMS: usize = 10_000;
/// Streams of the smoke run.
const QUICK_STREAMS: usize = 200;
/// Events sent per layout.
const ROUNDS: usize = 5;
/// Fan-out p99 target, milliseconds.
const P99_TARGET_MS: f64 = 50.0;
/// Server memory target with every stream open, MiB.
const MEMORY_TARGET_MIB: f64 = 200.0;
/// How long every stream has to receive one event.
const ROUND_DEADLINE: Duration = Duration::from_secs(20);

/// Raises this process's open-file limit to its hard limit (servers started from here
/// inherit it).
fn raise_file_limit(want: usize) -> anyhow::Result<()> {
    let pid = std::process::id().to_string();
    let hard = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            "--nofile",
            "--raw",
            "--noheadings",
            "--output=HARD",
        ])
        .output()
        .context("prlimit (util-linux) is needed to raise the open-file limit")?;
    let hard: usize = String::from_utf8_lossy(&hard.stdout)
        .trim()
        .parse()
        .unwrap_or(want);
    let limit = hard.max(1024);
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={limit}:{limit}")])
        .status()?;
    if !status.success() {
        bail!("could not raise the open-file limit to {limit}");
    }
    if limit < want {
        bail!("the open-file hard limit is {limit}; {want} are needed");
    }
    Ok(())
}

/// The server's resident memory, MiB.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")?;
    Ok(kib / 1024.0)
}

/// Seeds `n` members of `org` who can sign in with [`PASSWORD`]; their e-mails.
async fn seed(db: &Database, org: uuid::Uuid, run: &str, n: usize) -> anyhow::Result<Vec<String>> {
    use tenancy::ports::PasswordHasher as _;
    let hash = credentials::Argon2Hasher::recommended()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .hash(tenancy::Password::parse(PASSWORD.to_owned()).map_err(|e| anyhow::anyhow!("{e}"))?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = time::OffsetDateTime::now_utc();
    let emails: Vec<String> = (0..n)
        .map(|i| format!("stream-{i}-{run}@bench.example"))
        .collect();
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
    let txn = sea_orm::TransactionTrait::begin(db.primary()).await?;
    let mut users = BulkInsert::new(&txn, "users", &USER_COLUMNS, 2_000, n as u64);
    for (id, email) in ids.iter().zip(&emails) {
        users
            .push(user_row(*id, email, "Stream", "Member", now))
            .await?;
    }
    users.finish().await?;
    let mut members = BulkInsert::new(&txn, "memberships", &MEMBERSHIP_COLUMNS, 2_000, n as u64);
    for (id, email) in ids.iter().zip(&emails) {
        let member = BenchMember {
            org,
            user: *id,
            role: "volunteer",
            status: "active",
            first: "Stream",
            last: "Member",
            email,
            committee: None,
            children: &[],
            profile: serde_json::json!({}),
            joined: now,
        };
        members.push(membership_row(member, now)).await?;
    }
    members.finish().await?;
    txn.execute_raw(sea_orm::Statement::from_sql_and_values(
        txn.get_database_backend(),
        "UPDATE users SET password_hash = $1 WHERE email LIKE $2",
        [hash.into(), format!("stream-%-{run}@bench.example").into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(emails)
}

/// Signs every e-mail in (on four threads); their tokens.
fn sign_in_all(addr: SocketAddr, emails: &[String]) -> anyhow::Result<Vec<String>> {
    let chunk = emails.len().div_ceil(4).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = emails
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|email| {
                            let body = expect(
                                "login",
                                200,
                                http(
                                    addr,
                                    "POST",
                                    "/api/v2/auth/login",
                                    None,
                                    Some(
                                        &serde_json::json!({"email": email, "password": PASSWORD}),
                                    ),
                                ),
                            )?;
                            Ok(body["data"]["token"].as_str().context("token")?.to_owned())
                        })
                        .collect::<anyhow::Result<Vec<String>>>()
                })
            })
            .collect();
        let mut tokens = Vec::with_capacity(emails.len());
        for part in parts {
            let Ok(part) = part.join() else {
                bail!("a sign-in thread panicked");
            };
            tokens.extend(part?);
        }
        Ok(tokens)
    })
}

/// One open stream: connected, its response headers read.
async fn open(addr: SocketAddr, org: &str, token: &str) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET /api/v2/orgs/{org}/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\nAccept-Encoding: gzip, deflate, br\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the stream closed before its headers");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 200") {
                // The error body follows the headers: read what came with them.
                let _ = tokio::time::timeout(Duration::from_millis(200), async {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    buf.extend_from_slice(&chunk[..n]);
                })
                .await;
                bail!(
                    "the stream at {addr} answered {}",
                    String::from_utf8_lossy(&buf).replace("\r\n", " | ")
                );
            }
            let rest = buf.split_off(end + 4);
            return Ok((stream, rest));
        }
    }
}

const MARKER: &[u8] = b"\"org.updated\"";

/// Reads a stream, telling `arrivals` of each `org.updated` event (its ordinal) as it
/// comes.
async fn follow(
    mut stream: TcpStream,
    mut pending: Vec<u8>,
    arrivals: tokio::sync::mpsc::UnboundedSender<(usize, Instant)>,
) {
    let mut seen = 0;
    let mut chunk = vec![0_u8; 4096];
    loop {
        while let Some(at) = pending.windows(MARKER.len()).position(|w| w == MARKER) {
            let now = Instant::now();
            if arrivals.send((seen, now)).is_err() {
                return;
            }
            seen += 1;
            pending.drain(..at + MARKER.len());
        }
        // Keep only a tail that could hold the start of a marker.
        if pending.len() > MARKER.len() {
            pending.drain(..pending.len() - MARKER.len());
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One layout's figures.
struct Layout {
    name: &'static str,
    connect: Vec<Duration>,
    rss_before: f64,
    rss_with: f64,
    latencies: Vec<Duration>,
    missing: usize,
}

/// Edits the org's name (an `org.updated` event for every member); when it was sent.
fn edit_org(addr: SocketAddr, admin: &str, org: &str, round: usize) -> anyhow::Result<Instant> {
    let read = expect(
        "read org",
        200,
        http(
            addr,
            "GET",
            &format!("/api/v2/orgs/{org}"),
            Some(admin),
            None,
        ),
    )?;
    let version = read["data"]["version"].as_i64().context("org version")?;
    let sent = Instant::now();
    expect(
        "edit org",
        200,
        http(
            addr,
            "PATCH",
            &format!("/api/v2/orgs/{org}"),
            Some(admin),
            Some(&serde_json::json!({"name": format!("Stream bench {round}"), "version": version})),
        ),
    )?;
    Ok(sent)
}

/// Opens a stream per token (token `i` on `servers[i % len]`), sends [`ROUNDS`] events
/// through `servers[0]`, and times their arrival everywhere. A stream opened without a
/// cursor first replays the org's retained events: the `earlier` `org.updated` events
/// sent before this layout come first on every stream and are not timed.
fn measure(
    name: &'static str,
    earlier: usize,
    servers: &[&Server],
    admin: &str,
    org: &str,
    tokens: &[String],
) -> anyhow::Result<Layout> {
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let pids: Vec<u32> = servers.iter().map(|s| s.pid()).collect();
    let first = addrs[0];
    let (admin, org_id) = (admin.to_owned(), org.to_owned());
    let send = move |round| edit_org(first, &admin, &org_id, round);
    fan_out(name, earlier, &addrs, &pids, org, tokens, send)
}

/// Opens a stream per token (token `i` on `addrs[i % len]`), has `send` make [`ROUNDS`]
/// events (it answers when each was sent), and times their arrival everywhere; memory is
/// read from the processes `pids`.
fn fan_out(
    name: &'static str,
    earlier: usize,
    addrs: &[SocketAddr],
    pids: &[u32],
    org: &str,
    tokens: &[String],
    send: impl Fn(usize) -> anyhow::Result<Instant> + Send + Sync + 'static,
) -> anyhow::Result<Layout> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rss_before: f64 = pids
        .iter()
        .map(|&p| rss_mib(p))
        .sum::<anyhow::Result<f64>>()?;
    let send = std::sync::Arc::new(send);
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut connect = Vec::with_capacity(tokens.len());
        let mut tasks = tokio::task::JoinSet::new();
        // Opened 100 at a time, like clients arriving.
        for (batch_no, batch) in tokens.chunks(100).enumerate() {
            let mut opening = tokio::task::JoinSet::new();
            for (i, token) in batch.iter().enumerate() {
                let addr = addrs[(batch_no * 100 + i) % addrs.len()];
                let (org, token) = (org.to_owned(), token.clone());
                opening.spawn(async move {
                    let started = Instant::now();
                    let opened =
                        tokio::time::timeout(Duration::from_secs(30), open(addr, &org, &token))
                            .await;
                    (started.elapsed(), opened)
                });
            }
            while let Some(done) = opening.join_next().await {
                let (took, opened) = done?;
                let (stream, rest) = opened.context("opening a stream timed out")??;
                connect.push(took);
                tasks.spawn(follow(stream, rest, tx.clone()));
            }
        }
        drop(tx);
        let rss_with: f64 = pids
            .iter()
            .map(|&p| rss_mib(p))
            .sum::<anyhow::Result<f64>>()?;
        let mut latencies = Vec::with_capacity(tokens.len() * ROUNDS);
        let mut missing = 0;
        for round in 0..ROUNDS {
            let send = std::sync::Arc::clone(&send);
            let sent = tokio::task::spawn_blocking(move || send(round)).await??;
            let deadline = tokio::time::Instant::now() + ROUND_DEADLINE;
            let mut got = 0;
            while got < tokens.len() {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some((ordinal, at))) => {
                        if ordinal == earlier + round {
                            latencies.push(at.saturating_duration_since(sent));
                            got += 1;
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            missing += tokens.len() - got;
        }
        tasks.abort_all();
        Ok::<_, anyhow::Error>(Layout {
            name,
            connect,
            rss_before,
            rss_with,
            latencies,
            missing,
        })
    })
}

/// The floor: a plain Tokio server on two worker threads (as many as the real one has),
/// in a process of its own (`xtask bench-streams-bare`), answering every request with an
/// event-stream response and writing one prepared frame (an `org.updated` event's size)
/// to every connection per round. Measured by the same generator on the same machine, it
/// is what a fan-out costs with nothing but sockets and task wake-ups: the real server's
/// figure is read against it.
struct BareServer {
    addr: SocketAddr,
    child: std::process::Child,
    rounds: std::sync::Arc<std::sync::Mutex<std::process::ChildStdin>>,
}

impl BareServer {
    fn start() -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .arg("bench-streams-bare")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting the bare server")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the bare server's pipes");
        };
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .parse()
            .with_context(|| format!("the bare server's address: {line:?}"))?;
        Ok(Self {
            addr,
            child,
            rounds: std::sync::Arc::new(std::sync::Mutex::new(stdin)),
        })
    }

    /// What has the bare server write the frame to every connection (answering when it
    /// was asked).
    fn trigger(&self) -> impl Fn(usize) -> anyhow::Result<Instant> + Send + Sync + 'static {
        use std::io::Write as _;
        let rounds = std::sync::Arc::clone(&self.rounds);
        move |_| {
            let mut stdin = rounds
                .lock()
                .map_err(|_| anyhow::anyhow!("the bare server's pipe"))?;
            let sent = Instant::now();
            stdin.write_all(b"\n")?;
            stdin.flush()?;
            Ok(sent)
        }
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `xtask bench-streams-bare`: the floor's server (see [`BareServer`]). Prints its
/// address; each line on stdin writes one frame to every connection; ends at EOF.
pub fn bare_server() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?);
        let (frames, _) = tokio::sync::broadcast::channel(16);
        let subscribe = frames.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(bare_stream(socket, subscribe.subscribe()));
            }
        });
        let frame = bare_frame();
        tokio::task::spawn_blocking(move || {
            use std::io::BufRead as _;
            for line in std::io::stdin().lock().lines() {
                if line.is_err() {
                    break;
                }
                let _ = frames.send(std::sync::Arc::clone(&frame));
            }
        })
        .await?;
        Ok(())
    })
}

/// A chunk of the size of an `org.updated` event's frame.
fn bare_frame() -> std::sync::Arc<[u8]> {
    let nil = uuid::Uuid::nil();
    let body = format!(
        "id: {cursor}\ndata: {{\"id\":\"{cursor}\",\"type\":\"org.updated\",\"org_id\":\"{nil}\",\"subject\":{{\"type\":\"org\",\"id\":\"{nil}\"}},\"occurred_at\":\"2026-12-07T00:00:00.000000Z\",\"changes\":\"{pad}\"}}\n\n",
        cursor = "0".repeat(24),
        pad = "x".repeat(120)
    );
    format!("{:x}\r\n{body}\r\n", body.len())
        .into_bytes()
        .into()
}

/// One connection of the bare server: the request's headers read, the response's
/// written, then each broadcast frame written as it comes.
async fn bare_stream(
    mut socket: TcpStream,
    mut frames: tokio::sync::broadcast::Receiver<std::sync::Arc<[u8]>>,
) {
    let _ = socket.set_nodelay(true);
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0_u8; 512];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let opened = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n13\r\n: bare stream open\n\r\n";
    if socket.write_all(opened).await.is_err() {
        return;
    }
    while let Ok(frame) = frames.recv().await {
        if socket.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// Prints `l`'s row of the report (open times, memory, fan-out percentiles) as `name`;
/// its fan-out p99 in milliseconds.
fn report_row(name: &str, l: &Layout, n: usize) -> f64 {
    let mut connect = l.connect.clone();
    connect.sort_unstable();
    let mut lat = l.latencies.clone();
    lat.sort_unstable();
    let p99 = ms(percentile(&lat, 0.99));
    let per = (l.rss_with - l.rss_before) * 1024.0 / n as f64;
    println!(
        "| {name} | {:.1} / {:.1} ms | {:.0} → **{:.0} MiB** | {per:.1} KiB | {:.1} ms | **{p99:.1} ms** | {:.1} ms | {} |",
        ms(percentile(&connect, 0.5)),
        ms(percentile(&connect, 0.99)),
        l.rss_before,
        l.rss_with,
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 1.0)),
        l.missing
    );
    p99
}

/// Runs the benchmark (`quick`: 200 streams, nothing enforced).
pub fn run(quick: bool) -> anyhow::Result<()> {
    let n = if quick { QUICK_STREAMS } else { STREAMS };
    // Each stream is a socket here and one in the server (a process of its own, which
    // inherits the limit), plus headroom.
    raise_file_limit(n + 1_000)?;
    let (admin_url, redis_url) = service_urls();
    let bin = release_server()?;
    let machine = machine();
    let db = BenchDatabase::create(&admin_url, "ptoc_bench_streams")?;
    let dir = ScratchDir::create("ptoc-bench-streams")?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let a = Server::start(&bin, &db.url, &redis_url, &dir.0)?;
    let (_, admin) = sign_up(a.addr, &format!("streams-admin-{run}@bench.example"))?;
    let code = format!("ST{}", &run[run.len() - 8..]).to_uppercase();
    let org = create_org(a.addr, &admin, "Stream bench", &code)?;
    println!("bench-streams: seeding {} members", thousands(n as u64));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let emails = rt.block_on(async {
        let db = Database::connect(&DatabaseSettings {
            url: db.url.clone(),
            read_url: None,
            max_connections: 2,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(30),
        })
        .await?;
        let emails = seed(&db, uuid::Uuid::parse_str(&org)?, &run, n).await;
        db.close().await.ok();
        emails
    })?;
    println!("bench-streams: signing in {} members", thousands(n as u64));
    let started = Instant::now();
    let tokens = sign_in_all(a.addr, &emails)?;
    let sign_in = started.elapsed();
    println!(
        "bench-streams: {} streams on one instance",
        thousands(n as u64)
    );
    println!(
        "bench-streams: {} streams on a bare Tokio server (the floor)",
        thousands(n as u64)
    );
    let bare = BareServer::start()?;
    let floor = fan_out(
        "bare Tokio sockets (the floor)",
        0,
        &[bare.addr],
        &[bare.child.id()],
        &org,
        &tokens,
        bare.trigger(),
    )?;
    drop(bare);
    let one = measure("one instance", 0, &[&a], &admin, &org, &tokens)?;
    let b = Server::start(&bin, &db.url, &redis_url, &dir.0)?;
    println!(
        "bench-streams: {} streams over two instances",
        thousands(n as u64)
    );
    let two = measure(
        "two instances (Redis)",
        ROUNDS,
        &[&a, &b],
        &admin,
        &org,
        &tokens,
    )?;

    println!(
        "\nRun: `cargo xtask bench-streams{}` (release server, PostgreSQL + Redis; {} members of one org, each signed in and holding `GET /orgs/{{org_id}}/stream`; {ROUNDS} `org.updated` events, timed from the edit's request to each stream's frame). Recorded {}.\n",
        if quick { " --quick" } else { "" },
        thousands(n as u64),
        time::OffsetDateTime::now_utc()
    );
    println!(
        "Machine: {machine}. {} sign-ins took {:.1} s.\n",
        thousands(n as u64),
        sign_in.as_secs_f64()
    );
    println!(
        "| layout | open p50 / p99 | server memory before → with streams | per stream | fan-out p50 | p99 | max | missed |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let floor_p99 = report_row(
        &format!(
            "{} (same generator; timed from the server's being asked, no write before it)",
            floor.name
        ),
        &floor,
        n,
    );
    let mut misses = Vec::new();
    let mut ratios = Vec::new();
    for l in [&one, &two] {
        let p99 = report_row(l.name, l, n);
        ratios.push(format!(
            "- {}: fan-out p99 {:.1}× the floor's",
            l.name,
            p99 / floor_p99.max(1e-9)
        ));
        if p99 > P99_TARGET_MS {
            misses.push(format!(
                "{}: fan-out p99 {p99:.1} ms > {P99_TARGET_MS} ms",
                l.name
            ));
        }
        if l.missing > 0 {
            misses.push(format!("{}: {} deliveries missed", l.name, l.missing));
        }
        // The memory target is per instance (the two-instance figure is a sum).
        let per_instance = l.rss_with / if l.name.starts_with("two") { 2.0 } else { 1.0 };
        if per_instance > MEMORY_TARGET_MIB {
            misses.push(format!(
                "{}: {per_instance:.0} MiB per instance > {MEMORY_TARGET_MIB} MiB",
                l.name
            ));
        }
    }
    println!();
    for r in &ratios {
        println!("{r}");
    }
    if floor_p99 > P99_TARGET_MS {
        println!(
            "- The floor's own p99 ({floor_p99:.1} ms) is over the {P99_TARGET_MS} ms target: on this machine, with the generator on the same cores, no server reaches it."
        );
    }
    println!();
    for m in &misses {
        println!("- MISS: {m}");
    }
    if !quick && !misses.is_empty() {
        bail!("{} target(s) missed: {}", misses.len(), misses.join("; "));
    }
    Ok(())
}
