//! Per-instance Prometheus metrics: request counts and latency by route template and
//! status, the caches' hit/miss counters, rate-limit refusals, database pools and
//! background jobs, served as text at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Default)]
struct RouteStats {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// The request metrics of this process.
#[derive(Default)]
pub struct RequestMetrics {
    by_route: Mutex<BTreeMap<(String, u16), RouteStats>>,
}

/// The process-wide request metrics.
pub fn requests() -> &'static RequestMetrics {
    static METRICS: OnceLock<RequestMetrics> = OnceLock::new();
    METRICS.get_or_init(RequestMetrics::default)
}

impl RequestMetrics {
    /// Records one finished request.
    pub fn observe(&self, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let Ok(mut map) = self.by_route.lock() else {
            return;
        };
        let stats = map.entry((route.to_owned(), status)).or_default();
        stats.count += 1;
        stats.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                stats.buckets[i] += 1;
            }
        }
    }

    /// Appends the request series in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let Ok(map) = self.by_route.lock() else {
            return;
        };
        out.push_str("# HELP ptoc_http_requests_total Requests by route template and status.\n");
        out.push_str("# TYPE ptoc_http_requests_total counter\n");
        for ((route, status), s) in map.iter() {
            let _ = writeln!(
                out,
                "ptoc_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP ptoc_http_request_duration_seconds Request latency by route template and status.\n");
        out.push_str("# TYPE ptoc_http_request_duration_seconds histogram\n");
        for ((route, status), s) in map.iter() {
            let labels = format!("route=\"{route}\",status=\"{status}\"");
            for (bound, n) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "ptoc_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "ptoc_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "ptoc_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "ptoc_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
    }
}

/// Appends the member search indexes' size: how many orgs have one kept, their
/// estimated bytes and the budget they share.
pub fn render_search_indexes(out: &mut String, orgs: usize, bytes: usize, budget: usize) {
    let _ = writeln!(
        out,
        "# HELP ptoc_search_indexes Orgs whose member search index is kept on this instance.\n# TYPE ptoc_search_indexes gauge\nptoc_search_indexes {orgs}"
    );
    let _ = writeln!(
        out,
        "# HELP ptoc_search_index_bytes Estimated bytes of the kept member search indexes.\n# TYPE ptoc_search_index_bytes gauge\nptoc_search_index_bytes {bytes}"
    );
    let _ = writeln!(
        out,
        "# HELP ptoc_search_index_budget_bytes The byte budget the member search indexes share.\n# TYPE ptoc_search_index_budget_bytes gauge\nptoc_search_index_budget_bytes {budget}"
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
