//! Liveness, readiness and the API documentation.

use schemars::JsonSchema;
use serde::Serialize;

use actix_web::HttpRequest;

use crate::config::MetricsAccess;
use crate::http::raw::{Html, RawJson};
use crate::http::{ApiError, ApiRoutes, ErrorCode, Reply, RouteDoc};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    r.get(
        "/health",
        health,
        RouteDoc::new("health", "Liveness: the process is up", "system")
            .public()
            .rate_exempt(),
    );
    r.get(
        "/ready",
        ready,
        RouteDoc::new(
            "ready",
            "Readiness: the database (and Redis, if configured) answer",
            "system",
        )
        .public()
        .rate_exempt()
        .errors(&[ErrorCode::ServiceUnavailable]),
    );
    r.get(
        "/metrics",
        metrics,
        RouteDoc::new("metrics", "Prometheus metrics of this instance", "system")
            .description(
                "Off unless configured: with `METRICS_TOKEN` it needs \
                 `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise); with \
                 `METRICS_PUBLIC=true` it is open to whoever reaches the listener; \
                 otherwise 404.",
            )
            .public()
            .errors(&[ErrorCode::Unauthenticated, ErrorCode::NotFound]),
    );
    r.get(
        "/openapi.json",
        openapi_json,
        RouteDoc::new("openapi", "This OpenAPI 3.1 document", "system").public(),
    );
    r.get(
        "/docs",
        docs,
        RouteDoc::new("docs", "Interactive API documentation (Scalar)", "system").public(),
    );
}

/// Liveness answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
}

async fn health() -> Reply<Health> {
    Reply(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// State of one dependency.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Reachable.
    Ok,
    /// Not reachable.
    Unavailable,
    /// Not configured (e.g. Redis in the embedded setup).
    NotConfigured,
}

/// Readiness answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Readiness {
    /// The database engine in use (`sqlite` or `postgres`).
    pub database_backend: &'static str,
    /// Database state.
    pub database: CheckState,
    /// Redis state.
    pub redis: CheckState,
}

/// How long `/ready` waits for each dependency: both checks run concurrently, so the
/// probe answers within this bound (plus scheduling) even when a dependency hangs.
pub const READY_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs one readiness check, bounded by [`READY_CHECK_TIMEOUT`]; a failure or a timeout
/// reports the dependency as unavailable.
async fn check<E: std::fmt::Display>(
    name: &'static str,
    ping: impl std::future::Future<Output = Result<(), E>>,
) -> CheckState {
    match tokio::time::timeout(READY_CHECK_TIMEOUT, ping).await {
        Ok(Ok(())) => CheckState::Ok,
        Ok(Err(e)) => {
            tracing::warn!(dependency = name, error = %e, "readiness: dependency unavailable");
            CheckState::Unavailable
        }
        Err(_) => {
            tracing::warn!(
                dependency = name,
                timeout_ms = READY_CHECK_TIMEOUT.as_millis(),
                "readiness: dependency did not answer in time"
            );
            CheckState::Unavailable
        }
    }
}

async fn ready(state: State) -> Result<Reply<Readiness>, ApiError> {
    let redis = async {
        match &state.redis {
            None => CheckState::NotConfigured,
            Some(r) => check("redis", r.ping()).await,
        }
    };
    let (database, redis) = tokio::join!(check("database", state.db.ping()), redis);
    let report = Readiness {
        database_backend: state.db.backend().as_str(),
        database,
        redis,
    };
    if database == CheckState::Unavailable || redis == CheckState::Unavailable {
        return Err(
            ApiError::new(ErrorCode::ServiceUnavailable, "a dependency is unavailable")
                .with_details(serde_json::to_value(&report).unwrap_or_default()),
        );
    }
    Ok(Reply(report))
}

/// A caller allowed to read the metrics under the server's [`MetricsAccess`].
struct MetricsReader;

impl actix_web::FromRequest for MetricsReader {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let access = req
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .map_or(MetricsAccess::Off, |s| s.security.metrics_access().clone());
        std::future::ready(metrics_allowed(&access, req).map(|()| Self))
    }
}

impl aide::OperationInput for MetricsReader {}

/// Whether `req` may read the metrics under `access`.
fn metrics_allowed(access: &MetricsAccess, req: &HttpRequest) -> Result<(), ApiError> {
    match access {
        MetricsAccess::Public => Ok(()),
        MetricsAccess::Off => Err(ApiError::not_found(
            "metrics are off on this server (set METRICS_TOKEN or METRICS_PUBLIC)",
        )),
        MetricsAccess::Token(expected) => {
            let presented = req
                .headers()
                .get(actix_web::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if crate::http::security::constant_time_eq(
                expected.expose().as_bytes(),
                presented.trim().as_bytes(),
            ) {
                Ok(())
            } else {
                Err(ApiError::new(
                    ErrorCode::Unauthenticated,
                    "metrics need Authorization: Bearer <METRICS_TOKEN>",
                ))
            }
        }
    }
}

async fn metrics(
    state: State,
    _reader: MetricsReader,
) -> Result<crate::http::raw::PlainText, ApiError> {
    // Background jobs by status, counted at scrape time (all instances share the table).
    if let Ok(counts) = state.jobs.count_by_status().await {
        for (status, n) in counts {
            crate::http::metrics::jobs_gauge(&status, n);
        }
    }
    let mut out = String::new();
    crate::http::metrics::requests().render(&mut out);
    out.push_str("# HELP ptoc_cache_hits_total Cache hits by cache and layer.\n# TYPE ptoc_cache_hits_total counter\n");
    out.push_str("# HELP ptoc_cache_misses_total Cache misses by cache and layer.\n# TYPE ptoc_cache_misses_total counter\n");
    for (name, stats) in state.auth.cache_stats() {
        crate::http::metrics::render_cache(&mut out, name, "l1", stats);
    }
    let p = state.authz.cache().stats();
    let layers = [
        (
            "l1",
            cache::CacheStats {
                hits: p.l1_hits,
                misses: p.l1_misses,
            },
        ),
        (
            "l2",
            cache::CacheStats {
                hits: p.l2_hits,
                misses: p.l2_misses,
            },
        ),
    ];
    for (layer, stats) in layers {
        crate::http::metrics::render_cache(&mut out, "permissions", layer, stats);
    }
    let d = state.directory_cache.stats();
    for (layer, hits, misses) in [
        ("l1", d.l1_hits, d.l1_misses),
        ("l2", d.l2_hits, d.l2_misses),
    ] {
        crate::http::metrics::render_cache(
            &mut out,
            "directory",
            layer,
            cache::CacheStats { hits, misses },
        );
    }
    let a = state.account_views.stats();
    for (layer, hits, misses) in [
        ("l1", a.l1_hits, a.l1_misses),
        ("l2", a.l2_hits, a.l2_misses),
    ] {
        crate::http::metrics::render_cache(
            &mut out,
            "account_views",
            layer,
            cache::CacheStats { hits, misses },
        );
    }
    let _ = std::fmt::Write::write_fmt(
        &mut out,
        format_args!(
            "# HELP ptoc_permission_db_loads_total Permission loads that reached the database.\n# TYPE ptoc_permission_db_loads_total counter\nptoc_permission_db_loads_total {}\n# HELP ptoc_cache_redis_errors_total Redis failures of the permission cache.\n# TYPE ptoc_cache_redis_errors_total counter\nptoc_cache_redis_errors_total {}\n",
            p.db_loads, p.redis_errors
        ),
    );
    crate::http::metrics::render_rate_limits(&mut out, &state.rate_limits);
    crate::http::metrics::render_pools(&mut out, &state.db);
    crate::http::metrics::render_jobs(&mut out);
    crate::http::metrics::render_job_failures(&mut out);
    crate::http::metrics::render_replica_lag(
        &mut out,
        replica_lag(&state.db).await,
        state.db.replica_in_use(),
    );
    crate::http::metrics::render_webhooks(&mut out, webhook_backlog(&state.webhooks).await);
    crate::http::metrics::render_cache_warming(&mut out, &state.warming);
    let mut sizes: Vec<cache::CacheBytes> = state.auth.cache_bytes().await.into();
    sizes.extend(state.authz.cache().l1_bytes().await);
    sizes.push(state.directory_cache.l1_bytes().await);
    sizes.push(state.account_views.l1_bytes().await);
    crate::http::metrics::render_cache_bytes(&mut out, &sizes);
    crate::http::metrics::render_process(&mut out, &state.open_streams);
    let (orgs, index_bytes, document_bytes) = state.search_indexes.usage();
    crate::http::metrics::render_search_indexes(
        &mut out,
        orgs,
        (index_bytes, document_bytes),
        state.search_indexes.budget(),
    );
    Ok(crate::http::raw::PlainText(out))
}

/// The unfinished webhook deliveries for `/metrics`, bounded by [`READY_CHECK_TIMEOUT`]:
/// `None` when the database did not answer in time (logged).
async fn webhook_backlog(
    webhooks: &webhooks_store::SeaOrmWebhooks,
) -> Option<webhooks_store::Backlog> {
    match tokio::time::timeout(READY_CHECK_TIMEOUT, webhooks.backlog()).await {
        Ok(Ok(backlog)) => Some(backlog),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: could not count the webhook deliveries");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: counting the webhook deliveries timed out");
            None
        }
    }
}

/// The replica's lag for `/metrics`, bounded by [`READY_CHECK_TIMEOUT`]: `None` without
/// a replica, or when it did not answer (logged; `/ready` reports it unavailable).
async fn replica_lag(db: &persistence::Database) -> Option<std::time::Duration> {
    match tokio::time::timeout(READY_CHECK_TIMEOUT, db.replica_lag()).await {
        Ok(Some(Ok(lag))) => Some(lag),
        Ok(None) => None,
        Ok(Some(Err(e))) => {
            tracing::warn!(error = %e, "metrics: replica lag not measured");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: the replica did not report its lag in time");
            None
        }
    }
}

async fn openapi_json(state: State) -> RawJson {
    RawJson(state.openapi_json.clone())
}

async fn docs(state: State) -> Html {
    Html(state.docs_html.clone())
}
