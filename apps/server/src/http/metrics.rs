//! Per-instance Prometheus metrics: the request histogram by route template, method and
//! status (OpenTelemetry names), the caches' hit/miss counters, rate-limit refusals and
//! sign-in lock-outs, database pools and replica lag, background jobs and their
//! failures, webhook deliveries, served as text at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Latency histogram bucket bounds, in seconds (up to 10 s: a request that waits out the
/// pool's acquire timeout still lands in a finite bucket).
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The request histogram's name (OpenTelemetry HTTP semantic conventions, as Prometheus
/// names them: `http.server.request.duration` in seconds).
pub const HTTP_DURATION: &str = "http_server_request_duration_seconds";

#[derive(Default)]
struct RouteStats {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// The request methods named in the metrics; any other is `_OTHER`, as the
/// OpenTelemetry conventions say (a client cannot create series at will).
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

/// `method` as a metric label: a known method, or `_OTHER`.
#[must_use]
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("_OTHER")
}

/// One route's answers: by method label and status code.
type ByAnswer = BTreeMap<(&'static str, u16), RouteStats>;

/// The request metrics of this process: per route template, then per method and status.
#[derive(Default)]
pub struct RequestMetrics {
    by_route: Mutex<BTreeMap<String, ByAnswer>>,
}

/// The process-wide request metrics.
pub fn requests() -> &'static RequestMetrics {
    static METRICS: OnceLock<RequestMetrics> = OnceLock::new();
    METRICS.get_or_init(RequestMetrics::default)
}

impl RequestMetrics {
    /// Records one finished request (`method` as [`method_label`] names it). The route is
    /// copied only the first time it is seen.
    pub fn observe(&self, route: &str, method: &'static str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let Ok(mut map) = self.by_route.lock() else {
            return;
        };
        let by_answer = if let Some(known) = map.get_mut(route) {
            known
        } else {
            map.entry(route.to_owned()).or_default()
        };
        let stats = by_answer.entry((method, status)).or_default();
        stats.count += 1;
        stats.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                stats.buckets[i] += 1;
            }
        }
    }

    /// Appends the request histogram in Prometheus text format. Labels follow the
    /// OpenTelemetry HTTP conventions: `http_route` (the route template),
    /// `http_request_method` and `http_response_status_code`; its `_count` is the
    /// request count.
    pub fn render(&self, out: &mut String) {
        let Ok(map) = self.by_route.lock() else {
            return;
        };
        let name = HTTP_DURATION;
        let _ = writeln!(
            out,
            "# HELP {name} Duration of HTTP server requests by route template, method and status.\n# TYPE {name} histogram"
        );
        for (route, by_answer) in map.iter() {
            for ((method, status), s) in by_answer {
                let labels = format!(
                    "http_route=\"{route}\",http_request_method=\"{method}\",http_response_status_code=\"{status}\""
                );
                for (bound, n) in BUCKETS.iter().zip(s.buckets) {
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
                }
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
                let _ = writeln!(out, "{name}_sum{{{labels}}} {}", s.sum);
                let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count);
            }
        }
    }
}

/// Appends the member search indexes' size: how many orgs have one kept, their
/// estimated bytes and the budget they share.
pub fn render_search_indexes(
    out: &mut String,
    orgs: usize,
    (index_bytes, document_bytes): (usize, usize),
    budget: usize,
) {
    let _ = writeln!(
        out,
        "# HELP ptoc_search_indexes Orgs whose member search index is kept on this instance.\n# TYPE ptoc_search_indexes gauge\nptoc_search_indexes {orgs}"
    );
    let _ = writeln!(
        out,
        "# HELP ptoc_search_index_bytes Estimated bytes of the kept member search indexes (the search structures).\n# TYPE ptoc_search_index_bytes gauge\nptoc_search_index_bytes {index_bytes}"
    );
    let _ = writeln!(
        out,
        "# HELP ptoc_search_document_bytes Estimated bytes of the member rows the kept searches answer pages from.\n# TYPE ptoc_search_document_bytes gauge\nptoc_search_document_bytes {document_bytes}"
    );
    let _ = writeln!(
        out,
        "# HELP ptoc_search_index_budget_bytes The byte budget the member searches (indexes and rows) share.\n# TYPE ptoc_search_index_budget_bytes gauge\nptoc_search_index_budget_bytes {budget}"
    );
}

/// Appends one cache layer's counters.
pub fn render_cache(out: &mut String, cache: &str, layer: &str, stats: cache::CacheStats) {
    let _ = writeln!(
        out,
        "ptoc_cache_hits_total{{cache=\"{cache}\",layer=\"{layer}\"}} {}",
        stats.hits
    );
    let _ = writeln!(
        out,
        "ptoc_cache_misses_total{{cache=\"{cache}\",layer=\"{layer}\"}} {}",
        stats.misses
    );
}

/// Appends the rate limiter's series: refusals by endpoint class or tier
/// (`class="list"`, `class="volunteer"`, `class="sign_in_backoff"`, …), which store
/// decides now, and its Redis failures.
pub fn render_rate_limits(out: &mut String, limits: &super::rate_limit::RateLimits) {
    out.push_str("# HELP ptoc_rate_limit_rejections_total Requests refused with 429, by endpoint class or caller tier.\n");
    out.push_str("# TYPE ptoc_rate_limit_rejections_total counter\n");
    for (class, n) in limits.rejections() {
        let _ = writeln!(
            out,
            "ptoc_rate_limit_rejections_total{{class=\"{class}\"}} {n}"
        );
    }
    out.push_str("# HELP ptoc_rate_limit_backend The store the rate limiter decides with (1: in use; redis is shared, local is this instance only).\n");
    out.push_str("# TYPE ptoc_rate_limit_backend gauge\n");
    let current = limits.backend();
    for backend in [rate_limit::Backend::Redis, rate_limit::Backend::Local] {
        let _ = writeln!(
            out,
            "ptoc_rate_limit_backend{{backend=\"{}\"}} {}",
            backend.as_str(),
            u8::from(backend == current)
        );
    }
    let _ = writeln!(
        out,
        "# HELP ptoc_auth_lockouts_total Sign-in attempts refused by the back-off (the account, device token or address used its free attempts).\n# TYPE ptoc_auth_lockouts_total counter\nptoc_auth_lockouts_total {}",
        limits.lockouts()
    );
    let _ = writeln!(
        out,
        "# HELP ptoc_auth_sign_in_failures_total Wrong passwords or codes (sign-in, second factor, re-authentication).\n# TYPE ptoc_auth_sign_in_failures_total counter\nptoc_auth_sign_in_failures_total {}",
        limits.sign_in_failures()
    );
    let stats = limits.stats();
    out.push_str("# HELP ptoc_rate_limit_redis_errors_total Redis failures of the rate limiter (each decided locally instead).\n");
    out.push_str("# TYPE ptoc_rate_limit_redis_errors_total counter\n");
    let _ = writeln!(
        out,
        "ptoc_rate_limit_redis_errors_total {}",
        stats.redis_errors
    );
}

/// Appends the database pools' series: connections open, idle and in use per pool, the
/// configured maximum, and how long transactions waited to start (connection acquire
/// plus `BEGIN`) as a histogram.
pub fn render_pools(out: &mut String, db: &persistence::Database) {
    let pools = db.pool_stats();
    type Gauge = (
        &'static str,
        &'static str,
        fn(&persistence::PoolStats) -> u32,
    );
    let gauges: [Gauge; 4] = [
        (
            "ptoc_db_pool_connections",
            "Open connections (in use + idle) by pool.",
            |p| p.size,
        ),
        (
            "ptoc_db_pool_idle",
            "Open connections not in use by pool.",
            |p| p.idle,
        ),
        ("ptoc_db_pool_in_use", "Connections in use by pool.", |p| {
            p.size.saturating_sub(p.idle)
        }),
        (
            "ptoc_db_pool_max",
            "Configured maximum connections by pool.",
            |p| p.max,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for p in &pools {
            let _ = writeln!(out, "{name}{{pool=\"{}\"}} {}", p.role.as_str(), value(p));
        }
    }
    let name = "ptoc_db_pool_acquire_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time to start a transaction (connection acquire + BEGIN) by pool.\n# TYPE {name} histogram"
    );
    for p in &pools {
        let pool = p.role.as_str();
        for (bound, n) in persistence::WAIT_BUCKETS.iter().zip(p.wait_buckets) {
            let _ = writeln!(out, "{name}_bucket{{pool=\"{pool}\",le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{pool=\"{pool}\",le=\"+Inf\"}} {}",
            p.waits
        );
        let _ = writeln!(out, "{name}_sum{{pool=\"{pool}\"}} {}", p.wait_sum_secs);
        let _ = writeln!(out, "{name}_count{{pool=\"{pool}\"}} {}", p.waits);
    }
}

/// Background jobs by state (`queued`, `running`, `failed`, …), as last reported.
fn jobs() -> &'static Mutex<BTreeMap<String, u64>> {
    static JOBS: OnceLock<Mutex<BTreeMap<String, u64>>> = OnceLock::new();
    JOBS.get_or_init(Mutex::default)
}

/// The hook for background-job runners: sets how many jobs are in `state` now
/// (exported as `ptoc_jobs{state="…"}`). Call it whenever a count changes, or
/// periodically; the last value wins.
pub fn jobs_gauge(state: &str, n: u64) {
    let mut map = jobs()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.insert(state.to_owned(), n);
}

/// Appends the failed job runs of this process by kind and outcome (`failed`: the job
/// ended failed; `retried`: a step met a storage failure and the job was released).
pub fn render_job_failures(out: &mut String) {
    let name = "ptoc_job_failures_total";
    let _ = writeln!(
        out,
        "# HELP {name} Failed job runs of this instance by kind and outcome (failed: ended failed; retried: a step failed and the job was released for a retry).\n# TYPE {name} counter"
    );
    for (kind, outcome, n) in jobs::worker::failure_counts() {
        let _ = writeln!(
            out,
            "{name}{{kind=\"{}\",outcome=\"{outcome}\"}} {n}",
            kind.as_str()
        );
    }
}

/// Appends the replica's replication lag, when a replica is configured and it answered
/// ([`persistence::Database::replica_lag`]); nothing otherwise.
pub fn render_replica_lag(out: &mut String, lag: Option<Duration>, in_use: Option<bool>) {
    if let Some(lag) = lag {
        let name = "ptoc_db_replica_lag_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} How far the read replica's replay is behind the primary (0 when it has replayed all the primary wrote).\n# TYPE {name} gauge\n{name} {}",
            lag.as_secs_f64()
        );
    }
    if let Some(in_use) = in_use {
        let name = "ptoc_db_replica_in_use";
        let _ = writeln!(
            out,
            "# HELP {name} 1 while lag-tolerant reads use the read replica, 0 while they go to the primary (the replica lags more than DATABASE_REPLICA_MAX_LAG_MS or does not answer).\n# TYPE {name} gauge\n{name} {}",
            u8::from(in_use)
        );
    }
}

/// Appends the background-job series.
pub fn render_jobs(out: &mut String) {
    let map = jobs()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    out.push_str("# HELP ptoc_jobs Background jobs by state (as reported by the job runner).\n# TYPE ptoc_jobs gauge\n");
    for (state, n) in map.iter() {
        let state: String = state
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let _ = writeln!(out, "ptoc_jobs{{state=\"{state}\"}} {n}");
    }
}

/// Appends how warm the permission cache is (warming at start).
pub fn render_cache_warming(out: &mut String, warming: &crate::cache_warming::Warming) {
    let _ = writeln!(
        out,
        "# HELP ptoc_cache_warm_orgs Orgs whose permission table was loaded by the warming at start.\n# TYPE ptoc_cache_warm_orgs gauge\nptoc_cache_warm_orgs {}\n# HELP ptoc_cache_warm_members Member contexts loaded by the warming at start.\n# TYPE ptoc_cache_warm_members gauge\nptoc_cache_warm_members {}\n# HELP ptoc_cache_warming_done 1 once the warming at start has finished (or was skipped).\n# TYPE ptoc_cache_warming_done gauge\nptoc_cache_warming_done {}",
        warming.orgs(),
        warming.members(),
        u8::from(warming.done())
    );
}

/// The process's resident memory in bytes, from `/proc/self/status` (`None` off Linux).
#[must_use]
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Streams (`/orgs/{org_id}/stream`, `/me/stream`) open on this instance. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct OpenStreams(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl OpenStreams {
    /// Counts one more open stream until the returned guard is dropped.
    #[must_use]
    pub fn opened(&self) -> StreamGuard {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    /// How many are open.
    #[must_use]
    pub fn count(&self) -> u64 {
        u64::try_from(self.0.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(0)
    }
}

/// Held by an open stream ([`OpenStreams::opened`]).
#[derive(Debug)]
pub struct StreamGuard(OpenStreams);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        (self.0)
            .0
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Appends the process's resident memory (`process_resident_memory_bytes`, the name
/// Prometheus client libraries use) and the open streams.
pub fn render_process(out: &mut String, streams: &OpenStreams) {
    if let Some(bytes) = resident_bytes() {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {bytes}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP ptoc_streams_open Event streams open on this instance.\n# TYPE ptoc_streams_open gauge\nptoc_streams_open {}",
        streams.count()
    );
}

/// Appends each in-process cache's weight and byte budget.
pub fn render_cache_bytes(out: &mut String, sizes: &[cache::CacheBytes]) {
    out.push_str("# HELP ptoc_cache_bytes Estimated bytes held by each in-process cache (moka weighers).\n# TYPE ptoc_cache_bytes gauge\n");
    for s in sizes {
        let _ = writeln!(out, "ptoc_cache_bytes{{cache=\"{}\"}} {}", s.name, s.bytes);
    }
    out.push_str("# HELP ptoc_cache_budget_bytes The byte budget of each in-process cache.\n# TYPE ptoc_cache_budget_bytes gauge\n");
    for s in sizes {
        let _ = writeln!(
            out,
            "ptoc_cache_budget_bytes{{cache=\"{}\"}} {}",
            s.name, s.budget
        );
    }
}

/// Appends the webhook deliveries' series: settled attempts by outcome
/// (`ptoc_webhook_deliveries_total`, this instance's), every attempt's duration
/// (`ptoc_webhook_delivery_seconds`) and, when it could be read, the unfinished
/// deliveries of enabled endpoints by state (`ptoc_webhook_deliveries_pending`, the same
/// database-wide number on every instance).
pub fn render_webhooks(out: &mut String, backlog: Option<webhooks_store::Backlog>) {
    let m = webhooks_store::metrics::snapshot();
    let name = "ptoc_webhook_deliveries_total";
    let _ = writeln!(
        out,
        "# HELP {name} Webhook delivery attempts of this instance by what they did (delivered: 2xx; retried: failed, tried again later; failed: failed with no attempt left; disabled: 410 Gone, the endpoint was disabled).\n# TYPE {name} counter"
    );
    for (outcome, n) in m.outcomes {
        let _ = writeln!(out, "{name}{{outcome=\"{}\"}} {n}", outcome.as_str());
    }
    let name = "ptoc_webhook_delivery_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Duration of webhook delivery attempts of this instance (request sent to answer, or to the error).\n# TYPE {name} histogram"
    );
    for (bound, n) in webhooks_store::metrics::BUCKETS.iter().zip(m.buckets) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", m.count);
    let _ = writeln!(out, "{name}_sum {}", m.sum_secs);
    let _ = writeln!(out, "{name}_count {}", m.count);
    if let Some(b) = backlog {
        let name = "ptoc_webhook_deliveries_pending";
        let _ = writeln!(
            out,
            "# HELP {name} Unfinished webhook deliveries of enabled endpoints by state (due: to be sent now; waiting: for a retry's time; sending: claimed by a worker).\n# TYPE {name} gauge"
        );
        for (state, n) in [
            ("due", b.due),
            ("waiting", b.waiting),
            ("sending", b.sending),
        ] {
            let _ = writeln!(out, "{name}{{state=\"{state}\"}} {n}");
        }
    }
}
