//! `cargo xtask bench-webhooks`: issue #19's webhook targets, measured against the
//! release server on PostgreSQL with Redis.
//!
//! A receiver in this process (a minimal HTTP/1.1 server on 127.0.0.1, one port, one
//! path per endpoint) verifies every request's Standard Webhooks signature with its
//! endpoint's secret (HMAC-SHA256 written here from the specification, not the server's
//! signing code), refuses bad ones (401, counted), answers 200 and records each
//! (endpoint, `webhook-id`) and each (endpoint, event) once — a second acceptance is a
//! duplicate. An admin registers 10 endpoints for `role.updated` and renames one custom
//! role over and over (`PATCH …/roles/{id}`: one `role.updated` event per write, its
//! `data.after.name` naming the write), each write timed from its request's send (an
//! upper bound of "from commit").
//!
//! 1. **Steady**: 1,000 events paced at 50/s; every delivery verified, p99 ≤ 1 s.
//! 2. **Outage**: the receiver's port closed (connections refused) for 60 s while events
//!    are committed at 5/s, then open again for 3 s more of them; every event of the
//!    phase must arrive at every endpoint once. Reported: the time from recovery until
//!    the last one arrived.
//!
//! Every wait has a deadline; a missed target fails the run (`--quick`: 100 events,
//! a 10 s outage, nothing enforced).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::bench_http::{BenchEnv, Server, expect, http, ms, percentile};
use crate::seed::bulk::thousands;

/// Endpoints registered.
const ENDPOINTS: usize = 10;
/// The event type they receive (what the writes produce, one each).
const EVENT_TYPE: &str = "role.updated";
/// p99 target from commit to a verified delivery.
const P99_TARGET: Duration = Duration::from_secs(1);
/// How far a message's `webhook-timestamp` may be from now (Standard Webhooks' default).
const TOLERANCE_SECS: i64 = 5 * 60;
/// How long the last delivery of the steady phase may take after its write.
const STEADY_DEADLINE: Duration = Duration::from_secs(60);
/// How long after recovery the outage's events may take to arrive: longer than the
/// schedule's 5-minute step, so a server that waits for it passes too (reported).
const RECOVERY_DEADLINE: Duration = Duration::from_secs(8 * 60);
/// After everything arrived, how long late duplicates are still watched for.
const SETTLE: Duration = Duration::from_secs(3);

/// The sizes of a run.
struct Plan {
    events: usize,
    rate: f64,
    outage: Duration,
    outage_rate: f64,
    after: Duration,
}

const FULL: Plan = Plan {
    events: 1_000,
    rate: 50.0,
    outage: Duration::from_secs(60),
    outage_rate: 5.0,
    after: Duration::from_secs(3),
};

const QUICK: Plan = Plan {
    events: 100,
    rate: 20.0,
    outage: Duration::from_secs(10),
    outage_rate: 5.0,
    after: Duration::from_secs(2),
};

// ---------------------------------------------------------------------------------------
// Standard Webhooks verification, from the specification (https://www.standardwebhooks.com/)

/// The HMAC key of a `whsec_<base64>` secret.
fn secret_key(secret: &str) -> anyhow::Result<Vec<u8>> {
    let b64 = secret
        .strip_prefix("whsec_")
        .context("a secret starts with whsec_")?;
    Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
}

/// Whether one of the space-separated `v1,<base64>` signatures is HMAC-SHA256 under
/// `key` of `"{id}.{timestamp}.{body}"`, and `timestamp` is within [`TOLERANCE_SECS`] of
/// `now` (unix seconds). The comparison is constant-time (`verify_slice`).
fn verify(key: &[u8], id: &str, timestamp: &str, body: &[u8], signatures: &str, now: i64) -> bool {
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now - ts).abs() > TOLERANCE_SECS || id.is_empty() {
        return false;
    }
    let Ok(mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key) else {
        return false;
    };
    let mac = mac
        .chain_update(id.as_bytes())
        .chain_update(b".")
        .chain_update(timestamp.as_bytes())
        .chain_update(b".")
        .chain_update(body);
    signatures.split(' ').any(|sig| {
        sig.strip_prefix("v1,")
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .is_some_and(|tag| mac.clone().verify_slice(&tag).is_ok())
    })
}

// ---------------------------------------------------------------------------------------
// The receiver

/// A write's event, named by the role name it set: `whb-<phase>-<index>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Marker {
    phase: u8,
    index: usize,
}

impl Marker {
    fn name(self) -> String {
        format!("whb-{}-{:06}", self.phase, self.index)
    }

    fn parse(name: &str) -> Option<Self> {
        let (phase, index) = name.strip_prefix("whb-")?.split_once('-')?;
        Some(Self {
            phase: phase.parse().ok()?,
            index: index.parse().ok()?,
        })
    }

    /// The write a delivered body is about (`data.data.after.name` of `role.updated`).
    fn of_body(body: &[u8]) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        Self::parse(v.pointer("/data/data/after/name")?.as_str()?)
    }
}

/// What the receiver accepted.
#[derive(Default)]
struct Log {
    /// First acceptance of each (endpoint, event).
    arrivals: HashMap<(usize, Marker), Instant>,
    /// Accepted (endpoint, `webhook-id`).
    ids: HashSet<(usize, String)>,
    /// Accepted again (by `webhook-id` or by event), per phase.
    duplicates: HashMap<u8, usize>,
    /// Deliveries per phase (first acceptances).
    delivered: HashMap<u8, usize>,
    bad_signatures: usize,
    /// Verified but about no write of this run (or not to an endpoint path).
    unmatched: usize,
}

/// One request as read: its path, headers (lower-case names) and body.
struct Request {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// The request line's path and the headers of an HTTP/1.1 request head (without the
/// blank line).
fn parse_head(head: &str) -> Option<(String, HashMap<String, String>)> {
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    if request_line.next()? != "POST" {
        return None;
    }
    let path = request_line.next()?.to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some((path, headers))
}

/// The receiver's state, shared by its connections.
struct Shared {
    /// Each endpoint's HMAC key (filled in as the endpoints are registered).
    keys: RwLock<Vec<Vec<u8>>>,
    log: Mutex<Log>,
}

impl Shared {
    /// Judges one request that arrived at `at`; the status to answer.
    fn accept(&self, req: &Request, at: Instant) -> u16 {
        let endpoint = req
            .path
            .strip_prefix("/hook/")
            .and_then(|n| n.parse::<usize>().ok());
        let key = endpoint.and_then(|n| self.keys.read().ok()?.get(n).cloned());
        let (Some(endpoint), Some(key)) = (endpoint, key) else {
            self.with_log(|log| log.unmatched += 1);
            return 404;
        };
        let header = |name: &str| req.headers.get(name).map_or("", String::as_str);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let id = header("webhook-id");
        if !verify(
            &key,
            id,
            header("webhook-timestamp"),
            &req.body,
            header("webhook-signature"),
            now,
        ) {
            self.with_log(|log| log.bad_signatures += 1);
            return 401;
        }
        let marker = Marker::of_body(&req.body);
        self.with_log(|log| {
            let Some(marker) = marker else {
                log.unmatched += 1;
                return;
            };
            let new_id = log.ids.insert((endpoint, id.to_owned()));
            let new_event = !log.arrivals.contains_key(&(endpoint, marker));
            if new_id && new_event {
                log.arrivals.insert((endpoint, marker), at);
                *log.delivered.entry(marker.phase).or_default() += 1;
            } else {
                // Accepted before: a de-duplicating receiver answers 2xx again.
                *log.duplicates.entry(marker.phase).or_default() += 1;
            }
        });
        200
    }

    fn with_log<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut log)
    }
}

/// Reads one request (head and `Content-Length` body).
async fn read_request(stream: &mut TcpStream) -> anyhow::Result<Request> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed before the request's head ended");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            bail!("a request head over 64 KiB");
        }
    };
    let (path, headers) =
        parse_head(&String::from_utf8_lossy(&buf[..head_end])).context("not a POST request")?;
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .context("no Content-Length")?;
    let mut body = buf.split_off(head_end + 4);
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed before the body ended");
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Request {
        path,
        headers,
        body,
    })
}

/// One connection: one request, one answer, closed.
async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let Ok(Ok(req)) =
        tokio::time::timeout(Duration::from_secs(10), read_request(&mut stream)).await
    else {
        return;
    };
    let status = shared.accept(&req, Instant::now());
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let answer =
        format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    if stream.write_all(answer.as_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

/// The receiver: up (accepting on `addr`) or down (the port closed: connections refused).
struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accepting: Option<tokio::task::JoinHandle<()>>,
    rt: tokio::runtime::Handle,
}

impl Receiver {
    /// Listens on a free loopback port.
    fn start(rt: &tokio::runtime::Runtime) -> anyhow::Result<Self> {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let mut receiver = Self {
            addr: listener.local_addr()?,
            shared: Arc::new(Shared {
                keys: RwLock::new(Vec::new()),
                log: Mutex::new(Log::default()),
            }),
            accepting: None,
            rt: rt.handle().clone(),
        };
        receiver.listen(listener);
        Ok(receiver)
    }

    fn listen(&mut self, listener: TcpListener) {
        let shared = Arc::clone(&self.shared);
        self.accepting = Some(self.rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, Arc::clone(&shared)));
            }
        }));
    }

    fn url(&self, endpoint: usize) -> String {
        format!("http://{}/hook/{endpoint}", self.addr)
    }

    /// Closes the port (requests being answered finish).
    fn down(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
            // The listener is dropped once the aborted task is.
            let _ = self.rt.block_on(task);
        }
    }

    /// Opens the port again.
    fn up(&mut self) -> anyhow::Result<()> {
        let listener = self
            .rt
            .block_on(TcpListener::bind(self.addr))
            .with_context(|| format!("listen on {} again", self.addr))?;
        self.listen(listener);
        Ok(())
    }

    /// Waits until `want` deliveries of `phase` arrived, or `deadline`; how many did.
    fn wait_for(&self, phase: u8, want: usize, deadline: Instant) -> usize {
        loop {
            let got = self
                .shared
                .with_log(|log| log.delivered.get(&phase).copied().unwrap_or(0));
            if got >= want || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---------------------------------------------------------------------------------------
// The writes

/// Renames one custom role (one `role.updated` event per write).
struct Writer {
    addr: SocketAddr,
    token: String,
    path: String,
    version: i64,
}

impl Writer {
    /// Creates the role as the admin of `token` in `org`.
    fn create(addr: SocketAddr, token: &str, org: &str) -> anyhow::Result<Self> {
        let body = expect(
            "create role",
            201,
            http(
                addr,
                "POST",
                &format!("/api/v2/orgs/{org}/roles"),
                Some(token),
                Some(&serde_json::json!({"name": "whb-setup", "counts_as": "volunteer"})),
            ),
        )?;
        let role = body["data"]["id"].as_str().context("role id")?;
        Ok(Self {
            addr,
            token: token.to_owned(),
            path: format!("/api/v2/orgs/{org}/roles/{role}"),
            version: body["data"]["version"].as_i64().context("role version")?,
        })
    }

    /// One write; when its request was sent.
    fn write(&mut self, marker: Marker) -> anyhow::Result<Instant> {
        let sent = Instant::now();
        let body = expect(
            "rename role",
            200,
            http(
                self.addr,
                "PATCH",
                &self.path,
                Some(&self.token),
                Some(&serde_json::json!({"name": marker.name(), "version": self.version})),
            ),
        )?;
        self.version = body["data"]["version"].as_i64().context("role version")?;
        Ok(sent)
    }

    /// Writes `count` events of `phase` from index `first`, paced at `rate` per second
    /// (sent late when the previous write took longer); when each was sent.
    fn paced(
        &mut self,
        phase: u8,
        first: usize,
        count: usize,
        rate: f64,
    ) -> anyhow::Result<Vec<Instant>> {
        let start = Instant::now();
        let mut sent = Vec::with_capacity(count);
        for i in 0..count {
            #[allow(clippy::cast_precision_loss, reason = "a few thousand writes")]
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            sent.push(self.write(Marker {
                phase,
                index: first + i,
            })?);
        }
        Ok(sent)
    }
}

// ---------------------------------------------------------------------------------------
// The run

/// Registers the endpoints (`role.updated`, one receiver path each) and hands their
/// secrets' keys to the receiver.
fn register(addr: SocketAddr, admin: &str, org: &str, receiver: &Receiver) -> anyhow::Result<()> {
    let mut keys = Vec::with_capacity(ENDPOINTS);
    for endpoint in 0..ENDPOINTS {
        let body = expect(
            "register webhook",
            201,
            http(
                addr,
                "POST",
                &format!("/api/v2/orgs/{org}/webhooks"),
                Some(admin),
                Some(&serde_json::json!({"url": receiver.url(endpoint), "events": [EVENT_TYPE]})),
            ),
        )?;
        keys.push(secret_key(
            body["data"]["secret"].as_str().context("webhook secret")?,
        )?);
    }
    *receiver
        .shared
        .keys
        .write()
        .map_err(|_| anyhow::anyhow!("the receiver's keys are poisoned"))? = keys;
    Ok(())
}

/// Each delivery's latency from its write's send, sorted.
fn latencies(receiver: &Receiver, phase: u8, sent: &[Instant]) -> Vec<Duration> {
    let mut lat: Vec<Duration> = receiver.shared.with_log(|log| {
        log.arrivals
            .iter()
            .filter(|((_, m), _)| m.phase == phase)
            .filter_map(|((_, m), at)| Some(at.saturating_duration_since(*sent.get(m.index)?)))
            .collect()
    });
    lat.sort_unstable();
    lat
}

/// The steady phase's figures.
struct Steady {
    wrote_in: Duration,
    latencies: Vec<Duration>,
}

/// The outage phase's figures.
struct Outage {
    events: usize,
    delivered: usize,
    /// From recovery to the first and to the last delivery of the phase.
    first_after: Option<Duration>,
    complete_after: Option<Duration>,
}

fn outage(writer: &mut Writer, receiver: &mut Receiver, plan: &Plan) -> anyhow::Result<Outage> {
    receiver.down();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "seconds × a small rate"
    )]
    let count = |d: Duration| (d.as_secs_f64() * plan.outage_rate).round() as usize;
    let during = count(plan.outage);
    writer.paced(2, 0, during, plan.outage_rate)?;
    receiver.up()?;
    let recovered = Instant::now();
    let after = count(plan.after);
    writer.paced(2, during, after, plan.outage_rate)?;
    let events = during + after;
    let want = events * ENDPOINTS;
    let delivered = receiver.wait_for(2, want, recovered + RECOVERY_DEADLINE);
    let (first, last) = receiver.shared.with_log(|log| {
        let times = log
            .arrivals
            .iter()
            .filter(|((_, m), _)| m.phase == 2)
            .map(|(_, at)| *at);
        (times.clone().min(), times.max())
    });
    Ok(Outage {
        events,
        delivered,
        first_after: first.map(|at| at.saturating_duration_since(recovered)),
        complete_after: (delivered >= want)
            .then_some(last)
            .flatten()
            .map(|at| at.saturating_duration_since(recovered)),
    })
}

/// Runs the benchmark (`quick`: a smoke run that enforces nothing).
pub fn run(quick: bool) -> anyhow::Result<()> {
    let plan = if quick { QUICK } else { FULL };
    let env = BenchEnv::prepare("webhooks")?;
    let server = Server::start_with(
        &env.bin,
        &env.db.url,
        &env.redis_url,
        &env.dir.0,
        &[("WEBHOOK_ALLOW_LOOPBACK", "true")],
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut receiver = Receiver::start(&rt)?;
    let (admin, org) = env.admin_and_org(server.addr, "webhooks", "Webhook bench", "WH")?;
    let mut writer = Writer::create(server.addr, &admin, &org)?;
    register(server.addr, &admin, &org, &receiver)?;

    // A first event through the whole path (connections, caches), not measured.
    writer.write(Marker { phase: 0, index: 0 })?;
    if receiver.wait_for(0, ENDPOINTS, Instant::now() + Duration::from_secs(30)) < ENDPOINTS {
        bail!("the warm-up event did not reach every endpoint within 30 s");
    }

    println!(
        "bench-webhooks: {} events at {}/s to {ENDPOINTS} endpoints",
        thousands(plan.events as u64),
        plan.rate
    );
    let started = Instant::now();
    let sent = writer.paced(1, 0, plan.events, plan.rate)?;
    let wrote_in = started.elapsed();
    receiver.wait_for(1, plan.events * ENDPOINTS, Instant::now() + STEADY_DEADLINE);
    let steady = Steady {
        wrote_in,
        latencies: latencies(&receiver, 1, &sent),
    };

    println!(
        "bench-webhooks: the receiver down for {} s while events are committed",
        plan.outage.as_secs()
    );
    let down = outage(&mut writer, &mut receiver, &plan)?;
    std::thread::sleep(SETTLE);
    drop(server);
    receiver
        .shared
        .with_log(|log| report(quick, &plan, &env, &steady, &down, log))
}

/// Prints the Markdown results; fails a full run that missed a target.
fn report(
    quick: bool,
    plan: &Plan,
    env: &BenchEnv,
    steady: &Steady,
    down: &Outage,
    log: &Log,
) -> anyhow::Result<()> {
    let lat = &steady.latencies;
    let want = plan.events * ENDPOINTS;
    let p99 = percentile(lat, 0.99);
    let dup = |phase: u8| log.duplicates.get(&phase).copied().unwrap_or(0);
    let secs = |d: Option<Duration>| {
        d.map_or_else(|| "—".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
    };
    println!(
        "\nRun: `cargo xtask bench-webhooks{}` (release server, PostgreSQL + Redis, `WEBHOOK_ALLOW_LOOPBACK=true`; {ENDPOINTS} endpoints for `{EVENT_TYPE}` on one receiver in the benchmark's process, every signature verified; one write per event, `PATCH …/roles/{{id}}`, timed from the write's request). Recorded {}.\n",
        if quick { " --quick" } else { "" },
        time::OffsetDateTime::now_utc()
    );
    println!(
        "Machine: {}. Server binary: `{}`.\n",
        env.machine,
        env.bin.display()
    );
    println!("| phase | events | deliveries verified | p50 from commit | p99 | max | duplicates |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    #[allow(clippy::cast_precision_loss, reason = "display only")]
    let achieved = plan.events as f64 / steady.wrote_in.as_secs_f64().max(1e-9);
    println!(
        "| steady ({:.0} events/s wanted, {achieved:.0}/s written) | {} | {} / {} | {:.0} ms | **{:.0} ms** | {:.0} ms | {} |",
        plan.rate,
        thousands(plan.events as u64),
        thousands(lat.len() as u64),
        thousands(want as u64),
        ms(percentile(lat, 0.5)),
        ms(p99),
        ms(percentile(lat, 1.0)),
        dup(1)
    );
    println!();
    println!(
        "| outage | events | deliveries after recovery | first after recovery | all after recovery | duplicates |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| receiver refused connections {} s (events at {}/s), then up ({} s more of events) | {} | {} / {} | {} | **{}** | {} |",
        plan.outage.as_secs(),
        plan.outage_rate,
        plan.after.as_secs(),
        thousands(down.events as u64),
        thousands(down.delivered as u64),
        thousands((down.events * ENDPOINTS) as u64),
        secs(down.first_after),
        secs(down.complete_after),
        dup(2)
    );
    println!(
        "\nBad signatures: {}; requests about no write of this run: {}.\n",
        log.bad_signatures, log.unmatched
    );

    let mut misses = Vec::new();
    if lat.len() < want {
        misses.push(format!(
            "steady: {} of {want} deliveries within {} s of the last write",
            lat.len(),
            STEADY_DEADLINE.as_secs()
        ));
    }
    if p99 > P99_TARGET {
        misses.push(format!(
            "steady: p99 {:.0} ms > {} ms",
            ms(p99),
            P99_TARGET.as_millis()
        ));
    }
    if down.complete_after.is_none() {
        misses.push(format!(
            "outage: {} of {} deliveries within {} s of recovery",
            down.delivered,
            down.events * ENDPOINTS,
            RECOVERY_DEADLINE.as_secs()
        ));
    }
    for phase in [0, 1, 2] {
        if dup(phase) > 0 {
            misses.push(format!(
                "phase {phase}: {} duplicate deliveries",
                dup(phase)
            ));
        }
    }
    if log.bad_signatures > 0 {
        misses.push(format!(
            "{} requests with a bad signature",
            log.bad_signatures
        ));
    }
    for m in &misses {
        println!("- MISS: {m}");
    }
    if !quick && !misses.is_empty() {
        bail!("{} target(s) missed: {}", misses.len(), misses.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From the Standard Webhooks reference libraries' tests.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn check(key: &[u8], ts: &str, body: &[u8], signatures: &str, now: i64) -> bool {
        verify(key, ID, ts, body, signatures, now)
    }

    #[test]
    fn the_reference_vector_verifies_and_changes_do_not() {
        let key = secret_key(SECRET).expect("key");
        let ts = TS.to_string();
        assert!(check(&key, &ts, BODY, SIGNATURE, TS));
        // Among other signatures (a rotation), in either order.
        assert!(check(&key, &ts, BODY, &format!("v1,AAAA {SIGNATURE}"), TS));
        // Another body, timestamp, id, version or secret.
        assert!(!check(&key, &ts, br#"{"test": 2432232315}"#, SIGNATURE, TS));
        assert!(!check(&key, &(TS + 1).to_string(), BODY, SIGNATURE, TS));
        assert!(!verify(&key, "msg_other", &ts, BODY, SIGNATURE, TS));
        assert!(!check(
            &key,
            &ts,
            BODY,
            &SIGNATURE.replacen("v1", "v2", 1),
            TS
        ));
        let other = secret_key("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").expect("key");
        assert!(!check(&other, &ts, BODY, SIGNATURE, TS));
        // Garbage is refused, not an error.
        assert!(!check(&key, "soon", BODY, SIGNATURE, TS));
        assert!(!check(&key, &ts, BODY, "v1,!!!", TS));
        assert!(!check(&key, &ts, BODY, "", TS));
    }

    #[test]
    fn a_timestamp_outside_five_minutes_is_refused() {
        let key = secret_key(SECRET).expect("key");
        let ts = TS.to_string();
        assert!(check(&key, &ts, BODY, SIGNATURE, TS + TOLERANCE_SECS));
        assert!(check(&key, &ts, BODY, SIGNATURE, TS - TOLERANCE_SECS));
        assert!(!check(&key, &ts, BODY, SIGNATURE, TS + TOLERANCE_SECS + 1));
        assert!(!check(&key, &ts, BODY, SIGNATURE, TS - TOLERANCE_SECS - 1));
    }

    #[test]
    fn secrets_need_their_prefix_and_base64() {
        assert_eq!(secret_key("whsec_AAEC").expect("key"), vec![0, 1, 2]);
        assert!(secret_key("AAEC").is_err());
        assert!(secret_key("whsec_!!").is_err());
    }

    #[test]
    fn markers_round_trip_and_are_found_in_a_role_updated_body() {
        let m = Marker {
            phase: 2,
            index: 17,
        };
        assert_eq!(m.name(), "whb-2-000017");
        assert_eq!(Marker::parse(&m.name()), Some(m));
        assert_eq!(Marker::parse("whb-setup"), None);
        assert_eq!(Marker::parse("Board"), None);
        let body = serde_json::json!({
            "type": "role.updated",
            "data": {"data": {"before": {"name": "whb-2-000016"}, "after": {"name": "whb-2-000017"}}},
        });
        assert_eq!(Marker::of_body(body.to_string().as_bytes()), Some(m));
        assert_eq!(Marker::of_body(b"{\"type\":\"webhook.ping\"}"), None);
        assert_eq!(Marker::of_body(b"not json"), None);
    }

    #[test]
    fn request_heads_name_the_path_and_headers() {
        let (path, headers) = parse_head(
            "POST /hook/3 HTTP/1.1\r\nHost: x\r\nWebhook-Id: msg_1\r\ncontent-length: 12",
        )
        .expect("head");
        assert_eq!(path, "/hook/3");
        assert_eq!(headers["webhook-id"], "msg_1");
        assert_eq!(headers["content-length"], "12");
        assert!(parse_head("GET /hook/3 HTTP/1.1\r\n").is_none());
    }

    fn shared_with(key: &[u8]) -> Shared {
        Shared {
            keys: RwLock::new(vec![key.to_vec()]),
            log: Mutex::new(Log::default()),
        }
    }

    fn request(id: &str, body: &serde_json::Value, key: &[u8]) -> Request {
        let body = body.to_string().into_bytes();
        let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("key");
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(&body);
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        Request {
            path: "/hook/0".into(),
            headers: [
                ("webhook-id".to_owned(), id.to_owned()),
                ("webhook-timestamp".to_owned(), ts),
                ("webhook-signature".to_owned(), format!("v1,{sig}")),
            ]
            .into(),
            body,
        }
    }

    #[test]
    fn the_receiver_counts_each_acceptance_once_and_refuses_bad_signatures() {
        let key = [7_u8; 32];
        let shared = shared_with(&key);
        let body = |name: &str| serde_json::json!({"data": {"data": {"after": {"name": name}}}});
        let at = Instant::now();
        // A message; the same message again and the same event under another id
        // (duplicates); another event; one signed with another key.
        for (id, event, key, status) in [
            ("msg_a", "whb-1-000000", [7; 32], 200),
            ("msg_a", "whb-1-000000", [7; 32], 200),
            ("msg_b", "whb-1-000000", [7; 32], 200),
            ("msg_c", "whb-1-000001", [7; 32], 200),
            ("msg_d", "whb-1-000002", [8; 32], 401),
        ] {
            assert_eq!(
                shared.accept(&request(id, &body(event), &key), at),
                status,
                "{id}"
            );
        }
        // To an unknown endpoint.
        let mut elsewhere = request("msg_e", &body("whb-1-000003"), &key);
        elsewhere.path = "/hook/1".into();
        assert_eq!(shared.accept(&elsewhere, at), 404);
        shared.with_log(|log| {
            assert_eq!(log.delivered.get(&1), Some(&2));
            assert_eq!(log.duplicates.get(&1), Some(&2));
            assert_eq!(log.bad_signatures, 1);
            assert_eq!(log.unmatched, 1);
            assert_eq!(log.arrivals.len(), 2);
        });
    }
}
