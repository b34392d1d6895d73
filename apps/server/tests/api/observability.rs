//! Observability: `/metrics` series for the database pools and background jobs move
//! with traffic; the request span carries the org and user; slow requests name their
//! slowest spans; passwords, refresh tokens, challenges, TOTP secrets and recovery codes
//! never reach the logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::http::Method;
use actix_web::test;
use pto_server::telemetry::SlowRequestLayer;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use crate::backend_tests;
use crate::helpers::{TestContext, login, send, signed_up};

backend_tests!(
    metrics_show_pool_and_job_series_moving_after_traffic,
    request_span_carries_org_and_user_and_slow_requests_name_their_spans,
    passwords_are_never_logged,
    account_tokens_and_codes_are_never_logged,
    failed_job_runs_are_counted_by_kind,
    a_new_instance_warms_the_orgs_active_in_the_last_day_without_delaying_readiness,
);

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    fn lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON log line"))
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// Captures every log line (all levels, JSON with the full span list) of this thread,
/// with the slow-request report at threshold 0, until the guard drops.
fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(captured.clone())
                .with_filter(LevelFilter::TRACE),
        )
        .with(SlowRequestLayer::new(std::time::Duration::ZERO).with_filter(LevelFilter::DEBUG));
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}

pub(crate) async fn scrape<S, B>(app: &S) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let res = test::call_service(app, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    String::from_utf8(test::read_body(res).await.to_vec()).unwrap()
}

/// The value of one series (`name{labels}`), if present.
pub(crate) fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

async fn new_org<S, B>(app: &S, email: &str) -> (String, String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (user_id, token) = signed_up(app, email).await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs",
        Some(&token),
        Some(serde_json::json!({"name": "Observed PTO", "signup_code": "OBSERVE24"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    (org, user_id, token)
}

async fn metrics_show_pool_and_job_series_moving_after_traffic(ctx: TestContext) {
    let app = ctx.service().await;
    let before = scrape(&app).await;
    let primary = "{pool=\"primary\"}";
    assert_eq!(
        series(&before, &format!("ptoc_db_pool_max{primary}")),
        Some(4.0)
    );
    for name in [
        "ptoc_db_pool_connections",
        "ptoc_db_pool_idle",
        "ptoc_db_pool_in_use",
    ] {
        assert!(
            series(&before, &format!("{name}{primary}")).is_some(),
            "{name}"
        );
    }
    assert!(before.contains("# TYPE ptoc_db_pool_acquire_seconds histogram"));
    assert!(before.contains("# TYPE ptoc_jobs gauge"));
    let waits = |t: &str| series(t, &format!("ptoc_db_pool_acquire_seconds_count{primary}"));
    let waits_before = waits(&before).unwrap();

    let (org, _, token) = new_org(&app, "metrics@example.org").await;
    // Three different pages (the same page twice would come from the directory cache).
    for limit in 1..=3 {
        let (status, body) = send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{org}/users?limit={limit}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    pto_server::http::metrics::jobs_gauge("queued", 3);
    pto_server::http::metrics::jobs_gauge("failed", 1);

    let after = scrape(&app).await;
    assert!(
        waits(&after).unwrap() >= waits_before + 3.0,
        "every member list waited for a tenant-scoped transaction:\n{after}"
    );
    let inf = series(
        &after,
        "ptoc_db_pool_acquire_seconds_bucket{pool=\"primary\",le=\"+Inf\"}",
    );
    assert_eq!(inf, waits(&after));
    assert!(series(&after, &format!("ptoc_db_pool_connections{primary}")).unwrap() >= 1.0);
    assert_eq!(series(&after, "ptoc_jobs{state=\"queued\"}"), Some(3.0));
    assert_eq!(series(&after, "ptoc_jobs{state=\"failed\"}"), Some(1.0));
    let listed = "http_server_request_duration_seconds_count{http_route=\"/api/v2/orgs/{org_id}/users\",http_request_method=\"GET\",http_response_status_code=\"200\"}";
    assert_eq!(series(&after, listed), Some(3.0), "{after}");
    // No replica configured: no replica series.
    assert!(!after.contains("pool=\"replica\""));
    assert!(!after.contains("ptoc_db_replica_lag_seconds"), "{after}");
}

/// A job that ends failed counts once in `ptoc_job_failures_total` under its kind (the
/// counters are per process: other tests' jobs may move them too, never down).
async fn failed_job_runs_are_counted_by_kind(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, _) = new_org(&app, "failing-job@example.org").await;
    let failed = "ptoc_job_failures_total{kind=\"member_export\",outcome=\"failed\"}";
    let before = scrape(&app).await;
    let at_start = series(&before, failed).expect("listed before any failure");
    for kind in ["member_import", "member_export"] {
        for outcome in ["failed", "retried"] {
            let name = format!("ptoc_job_failures_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}");
            assert!(
                series(&before, &name).is_some(),
                "{name} missing:\n{before}"
            );
        }
    }
    // An export whose parameters the worker cannot read ends failed.
    let org_id = uuid::Uuid::parse_str(&org).unwrap();
    ctx.state
        .jobs
        .draft(
            org_id,
            jobs::JobKind::MemberExport,
            None,
            serde_json::json!({"not": "an export"}),
        )
        .await
        .unwrap()
        .submit()
        .await
        .unwrap();
    pto_server::startup::job_worker(
        &ctx.state,
        jobs::WorkerSettings::new(ctx.state.tmp_dir.clone()),
    )
    .run_until_idle()
    .await
    .unwrap();
    // The app's own worker may have taken the job first: wait (bounded) for its count.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let after = scrape(&app).await;
        if series(&after, failed).unwrap_or(0.0) > at_start {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failed job was not counted:\n{after}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn request_span_carries_org_and_user_and_slow_requests_name_their_spans(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, user, token) = new_org(&app, "spans@example.org").await;
    let (captured, guard) = capture_logs();
    let req = test::TestRequest::get()
        .uri(&format!("/api/v2/orgs/{org}/users"))
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("x-request-id", "observe-1"))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status().as_u16(), 200);
    drop(guard);
    let lines = captured.lines();
    let completed = lines
        .iter()
        .find(|l| l["message"] == "request completed")
        .unwrap_or_else(|| panic!("no access line in {}", captured.text()));
    let span = &completed["span"];
    assert_eq!(span["name"], "request");
    assert_eq!(span["request_id"], "observe-1");
    assert_eq!(span["org_id"], org.as_str());
    assert_eq!(span["user_id"], user.as_str());
    assert_eq!(span["route"], "/api/v2/orgs/{org_id}/users");

    // The slow-request report itself is checked span by span in
    // `slow_requests_name_the_spans_that_took_the_time` (deterministic: the last
    // holder of a real request's span may be a task on another thread).
}

async fn passwords_are_never_logged(ctx: TestContext) {
    let app = ctx.service().await;
    let first = "Unlogged-Secret-Passphrase-1";
    let wrong = "Wrong-Guess-Passphrase-2";
    let second = "Second-Unlogged-Passphrase-3";
    let (captured, guard) = capture_logs();
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/register",
        None,
        Some(serde_json::json!({"email": "quiet@example.org", "password": first, "first_name": "Q", "last_name": "U"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = login(&app, "quiet@example.org", first).await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(serde_json::json!({"email": "quiet@example.org", "password": wrong})),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/password",
        Some(&token),
        Some(serde_json::json!({"current_password": first, "new_password": second})),
    )
    .await;
    assert!((200..300).contains(&status), "{status} {body}");
    login(&app, "quiet@example.org", second).await;
    // A validation failure echoes field names, never the values.
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/password",
        Some(&token),
        Some(serde_json::json!({"current_password": second, "new_password": "short"})),
    )
    .await;
    assert!(status == 422 || status == 401);
    drop(guard);
    let logs = captured.text();
    assert!(
        logs.matches("request completed").count() >= 6,
        "the capture saw the requests:\n{logs}"
    );
    for secret in [first, wrong, second, "short\""] {
        assert!(
            !logs.contains(secret),
            "{secret:?} appears in the logs:\n{logs}"
        );
    }
}

async fn account_tokens_and_codes_are_never_logged(ctx: TestContext) {
    use serde_json::json;
    let app = ctx.service().await;
    let (captured, guard) = capture_logs();
    let (_, token) = signed_up(&app, "hush@example.org").await;
    let password = "correct horse battery";
    let login_body = |body: serde_json::Value| body["data"].clone();
    let (_, first) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(json!({"email": "hush@example.org", "password": password})),
    )
    .await;
    let first = login_body(first);
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (status, refreshed) = send(
        &app,
        Method::POST,
        "/api/v2/auth/refresh",
        None,
        Some(json!({"refresh_token": r1})),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let r2 = refreshed["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Reuse (revokes the family), logged as a refusal without the token.
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/refresh",
        None,
        Some(json!({"refresh_token": r1})),
    )
    .await;
    assert_eq!(status, 401);
    let (_, enrolment) = send(
        &app,
        Method::POST,
        "/api/v2/me/2fa/totp",
        Some(&token),
        None,
    )
    .await;
    let secret = enrolment["data"]["secret"].as_str().unwrap().to_owned();
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let code = credentials::secrets::totp_code_base32(&secret, now).unwrap();
    let (status, confirmed) = send(
        &app,
        Method::POST,
        "/api/v2/me/2fa/totp/confirm",
        Some(&token),
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    let recovery: Vec<String> = confirmed["data"]["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let (_, challenged) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(json!({"email": "hush@example.org", "password": password})),
    )
    .await;
    let challenge = challenged["data"]["challenge"].as_str().unwrap().to_owned();
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": challenge, "recovery_code": "Wrong-Recovery-Code-9"})),
    )
    .await;
    assert_eq!(status, 401);
    let (status, session) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": challenge, "recovery_code": recovery[0]})),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let r3 = session["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(guard);
    let logs = captured.text();
    assert!(
        logs.matches("request completed").count() >= 9,
        "the capture saw the requests:\n{logs}"
    );
    let mut secrets = vec![
        r1,
        r2,
        r3,
        secret,
        challenge,
        "Wrong-Recovery-Code-9".to_owned(),
    ];
    secrets.extend(recovery.iter().cloned());
    secrets.extend(recovery.iter().map(|c| c.replace('-', "")));
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "{s:?} appears in the logs:\n{logs}"
        );
    }
}

/// A second instance started after sign-ins loads the active orgs' permission tables
/// (bounded by the configured maximum) in the background; `/ready` does not wait.
async fn a_new_instance_warms_the_orgs_active_in_the_last_day_without_delaying_readiness(
    ctx: TestContext,
) {
    let first = ctx.service().await;
    for n in 0..3 {
        let (_, token) = signed_up(&first, &format!("warm{n}@example.org")).await;
        let (status, body) = send(
            &first,
            Method::POST,
            "/api/v2/orgs",
            Some(&token),
            Some(serde_json::json!({"name": format!("Warm PTO {n}"), "signup_code": format!("WARM{n}X24")})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let state = pto_server::startup::build_state(
        &ctx.settings,
        &ctx.api,
        pto_server::startup::HashingCost::FastForTests,
    )
    .await
    .unwrap();
    let app = test::init_service(pto_server::startup::app(state.clone(), ctx.api.clone())).await;
    let cold = scrape(&app).await;
    assert_eq!(
        series(&cold, "ptoc_cache_warming_done"),
        Some(0.0),
        "{cold}"
    );
    assert_eq!(series(&cold, "ptoc_cache_warm_orgs"), Some(0.0), "{cold}");
    pto_server::cache_warming::spawn(
        state.db.clone(),
        state.authz.clone(),
        state.warming.clone(),
        2,
    );
    // Readiness never consults the warming.
    let ready = test::call_service(&app, test::TestRequest::get().uri("/ready").to_request()).await;
    assert_eq!(ready.status().as_u16(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let warm = loop {
        let m = scrape(&app).await;
        if series(&m, "ptoc_cache_warming_done") == Some(1.0) {
            // Once more: a scrape reads the cache counters before it awaits the database
            // and the warming state after, so the one that saw the warming done may hold
            // counters from before it ran.
            break scrape(&app).await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "warming never finished:\n{m}"
        );
        // Polling a condition with a deadline, not timing a behaviour.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // Three active orgs, at most two warmed, with their signed-in admin each.
    assert_eq!(series(&warm, "ptoc_cache_warm_orgs"), Some(2.0), "{warm}");
    assert_eq!(
        series(&warm, "ptoc_cache_warm_members"),
        Some(2.0),
        "{warm}"
    );
    let loads = series(&warm, "ptoc_permission_db_loads_total").unwrap_or(0.0);
    assert!(loads >= 2.0, "the warming read the tables: {warm}");
    // Every in-process cache reports its size in bytes, within its budget.
    for cache in [
        "token_verify",
        "token_expired",
        "credential_live",
        "api_key_live",
        "session_touched",
        "permission_orgs",
        "permission_members",
        "directory",
        "account_views",
    ] {
        let label = format!("{{cache=\"{cache}\"}}");
        let bytes = series(&warm, &format!("ptoc_cache_bytes{label}"));
        let budget = series(&warm, &format!("ptoc_cache_budget_bytes{label}"));
        assert!(
            bytes
                .zip(budget)
                .is_some_and(|(b, max)| b <= max && max > 0.0),
            "{cache}: {warm}"
        );
    }
    let warmed = series(&warm, "ptoc_cache_bytes{cache=\"permission_orgs\"}").unwrap_or(0.0);
    assert!(warmed > 0.0, "the warmed tables are weighed: {warm}");
}

/// Read routing with `DATABASE_READ_URL` (PostgreSQL only).
mod replica {
    use actix_web::http::Method;
    use actix_web::test;
    use pto_server::config::Secret;
    use pto_server::startup::{HashingCost, app, build_state};
    use sea_orm::ConnectionTrait;

    use super::{new_org, scrape, series};
    use crate::helpers::{APP_ROLE, Backend, TestContext, with_database, with_user};

    /// The PostgreSQL admin URL, or `None` (skipped) outside CI when unset.
    fn admin_url() -> Option<String> {
        let url = std::env::var("TEST_DATABASE_URL").ok();
        assert!(
            url.is_some() || std::env::var("CI").as_deref() != Ok("true"),
            "TEST_DATABASE_URL must be set under CI=true"
        );
        if url.is_none() {
            eprintln!("postgres backend not configured (TEST_DATABASE_URL unset): skipped");
        }
        url
    }

    async fn audit_events_seen<S, B>(app: &S, org: &str, token: &str, consistency: bool) -> usize
    where
        S: actix_web::dev::Service<
                actix_http::Request,
                Response = actix_web::dev::ServiceResponse<B>,
                Error = actix_web::Error,
            >,
        B: actix_web::body::MessageBody,
    {
        let mut req = test::TestRequest::get()
            .uri(&format!("/api/v2/orgs/{org}/audit-logs"))
            .insert_header(("authorization", format!("Bearer {token}")));
        if consistency {
            req = req.insert_header(("x-consistency-token", "1"));
        }
        let res = test::call_service(app, req.to_request()).await;
        assert_eq!(res.status().as_u16(), 200);
        let body: serde_json::Value = test::read_body_json(res).await;
        body["data"].as_array().expect("a list").len()
    }

    /// Without a real replica: `DATABASE_READ_URL` names a second database with the
    /// same schema and none of the data, so the answer shows which pool served a read.
    #[actix_web::test]
    async fn lag_tolerant_reads_use_the_replica_and_consistent_reads_the_primary() {
        let Some(admin_url) = admin_url() else { return };
        let ctx = TestContext::new(Backend::Postgres).await.expect("postgres");
        let name = format!("ptoc_r_{}", uuid::Uuid::now_v7().simple());
        let admin = sea_orm::Database::connect(&admin_url).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\" OWNER {APP_ROLE}"))
            .await
            .unwrap();
        let replica_url = with_user(&with_database(&admin_url, &name), APP_ROLE);
        let replica = persistence::Database::connect(&persistence::DatabaseSettings {
            url: replica_url.clone(),
            read_url: None,
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(5),
            busy_timeout: std::time::Duration::from_secs(5),
        })
        .await
        .unwrap();
        replica.migrate().await.unwrap();
        replica.close().await.unwrap();

        let mut settings = ctx.settings.clone();
        settings.database_read_url = Some(Secret::new(replica_url));
        let state = build_state(&settings, &ctx.api, HashingCost::FastForTests)
            .await
            .unwrap();
        assert!(state.db.has_replica());
        let app = test::init_service(app(state.clone(), ctx.api.clone())).await;
        let (org, _, token) = new_org(&app, "routing@example.org").await;

        // The audit log tolerates lag: served by the (empty) replica. (Member lists are
        // answered by the directory cache, which fills from the primary.)
        assert_eq!(audit_events_seen(&app, &org, &token, false).await, 0);
        // Asking for one's own writes: served by the primary, which has the org's events.
        assert!(audit_events_seen(&app, &org, &token, true).await > 0);
        // The member list may use the replica, but it is answered by the directory cache,
        // whose fills read the primary (a page read from a lagging replica would stay
        // stale for the cache's lifetime): the admin is there, and no tenant transaction
        // was opened on the replica.
        let (status, list) = crate::helpers::send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{org}/users"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
        let metrics = scrape(&app).await;
        let replica_waits = series(
            &metrics,
            "ptoc_db_pool_acquire_seconds_count{pool=\"replica\"}",
        );
        assert_eq!(replica_waits.unwrap_or(0.0), 0.0, "{metrics}");
        assert!(series(&metrics, "ptoc_db_pool_max{pool=\"replica\"}").is_some());
        // Not a standby (a second primary database): no lag.
        assert_eq!(
            series(&metrics, "ptoc_db_replica_lag_seconds"),
            Some(0.0),
            "{metrics}"
        );

        // A write request reads the primary too (e.g. the org it just created).
        let (status, body) = crate::helpers::send(
            &app,
            Method::POST,
            "/api/v2/orgs",
            Some(&token),
            Some(serde_json::json!({"name": "Second PTO", "signup_code": "SECOND24"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");

        state.db.close().await.ok();
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .unwrap();
    }

    /// With a real streaming replica (`cargo xtask replica setup`, then
    /// `TEST_REPLICA_URL=postgres://postgres@127.0.0.1:5433/postgres`): a write on the
    /// primary is read back through the replica pool once replayed.
    #[actix_web::test]
    async fn writes_on_the_primary_are_read_through_a_real_replica() {
        let Ok(replica_base) = std::env::var("TEST_REPLICA_URL") else {
            eprintln!("TEST_REPLICA_URL unset (see `cargo xtask replica setup`): skipped");
            return;
        };
        let Some(admin_url) = admin_url() else { return };
        let ctx = TestContext::new(Backend::Postgres).await.expect("postgres");
        let (app_url, _) = ctx.postgres_urls().unwrap();
        let name = app_url.rsplit('/').next().unwrap().to_owned();
        let primary_app = ctx.service().await;
        let (org, _, token) = new_org(&primary_app, "streamed@example.org").await;

        // Wait (bounded) until the replica has replayed the primary's WAL up to now.
        let primary = sea_orm::Database::connect(&admin_url).await.unwrap();
        let lsn = primary
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_current_wal_lsn()::text AS lsn",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<String>("", "lsn")
            .unwrap();
        let standby = sea_orm::Database::connect(&replica_base).await.unwrap();
        let caught_up = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn AS ok");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let ok = standby
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    caught_up.clone(),
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get::<bool>("", "ok")
                .unwrap();
            if ok {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the replica did not catch up"
            );
            // Polling a condition with a deadline, not timing a behaviour.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }

        let mut settings = ctx.settings.clone();
        settings.database_read_url = Some(Secret::new(with_user(
            &with_database(&replica_base, &name),
            APP_ROLE,
        )));
        let state = build_state(&settings, &ctx.api, HashingCost::FastForTests)
            .await
            .unwrap();
        let app = test::init_service(app(state.clone(), ctx.api.clone())).await;
        assert!(audit_events_seen(&app, &org, &token, false).await > 0);
        let metrics = scrape(&app).await;
        assert_eq!(
            series(
                &metrics,
                "ptoc_db_pool_acquire_seconds_count{pool=\"replica\"}"
            ),
            Some(1.0)
        );
        // Caught up (checked above): the lag is measured, and small.
        let lag = series(&metrics, "ptoc_db_replica_lag_seconds").expect("lag measured");
        assert!((0.0..60.0).contains(&lag), "{metrics}");
        state.db.close().await.ok();
    }

    /// A streaming standby of the local PostgreSQL made for one test: `pg_basebackup -R`
    /// into a temporary directory, started on a free port (as the `postgres` OS user
    /// when we are root: PostgreSQL refuses to run as root), stopped and deleted on drop
    /// — also when the test fails.
    struct Standby {
        dir: std::path::PathBuf,
        bin: std::path::PathBuf,
        port: u16,
        started: bool,
    }

    const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

    fn as_postgres(program: &std::path::Path) -> std::process::Command {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            std::process::Command::new(program)
        }
    }

    fn run(cmd: &mut std::process::Command, what: &str) {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    impl Standby {
        /// The PostgreSQL binaries with `pg_basebackup`, or `None` (skipped) outside CI.
        fn binaries() -> Option<std::path::PathBuf> {
            let bin = std::path::PathBuf::from(PG_BIN);
            if bin.join("pg_basebackup").exists() && bin.join("pg_ctl").exists() {
                return Some(bin);
            }
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "pg_basebackup and pg_ctl are required under CI=true (looked in {PG_BIN})"
            );
            eprintln!("pg_basebackup not found in {PG_BIN}: the paused-replica test is skipped");
            None
        }

        /// Copies the primary at `primary_port` and starts the copy as a hot standby.
        fn start(bin: std::path::PathBuf, primary_port: u16) -> Self {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir = std::env::temp_dir()
                .join(format!("ptoc-standby-{}", uuid::Uuid::now_v7().simple()));
            std::fs::create_dir_all(&dir).expect("standby dir");
            let mut standby = Self {
                dir,
                bin,
                port,
                started: false,
            };
            let dir = standby.dir.clone();
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .expect("chmod");
            // Only root can (and must) hand the directory to the postgres user.
            let _ = std::process::Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir)
                .output();
            run(
                as_postgres(&standby.bin.join("pg_basebackup"))
                    .args(["-h", "127.0.0.1", "-p", &primary_port.to_string()])
                    .args(["-U", "postgres", "-D"])
                    .arg(&dir)
                    .args(["-R", "-X", "stream", "-c", "fast"]),
                "pg_basebackup (the primary must allow replication connections from \
                 127.0.0.1: `host replication postgres 127.0.0.1/32 trust` in pg_hba.conf, \
                 which .ci/run and `cargo xtask replica setup --allow-replication` add)",
            );
            // Debian keeps the configuration outside the data directory: the copy gets
            // its own, a hot standby on `port`.
            let conf = format!(
                "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nhot_standby = on\n",
                dir.display()
            );
            let hba = "local all all trust\nhost all all 127.0.0.1/32 trust\n";
            run(
                as_postgres(std::path::Path::new("sh"))
                    .arg("-c")
                    .arg("printf '%s' \"$1\" > \"$3/postgresql.conf\" && printf '%s' \"$2\" > \"$3/pg_hba.conf\"")
                    .args(["sh", &conf, hba])
                    .arg(&dir),
                "writing the standby's configuration",
            );
            standby.started = true;
            let started = as_postgres(&standby.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&dir)
                .arg("-l")
                .arg(dir.join("standby.log"))
                .args(["-w", "-t", "60", "start"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                started,
                "the standby did not start; its log:\n{}",
                std::fs::read_to_string(dir.join("standby.log")).unwrap_or_default()
            );
            standby
        }

        fn url(&self) -> String {
            format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
        }
    }

    impl Drop for Standby {
        fn drop(&mut self) {
            if self.started {
                let _ = as_postgres(&self.bin.join("pg_ctl"))
                    .arg("-D")
                    .arg(&self.dir)
                    .args(["-m", "immediate", "-w", "stop"])
                    .output();
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Polls `/metrics` until `check` holds for the scrape (deadline 30 s).
    async fn until_metrics<S, B>(app: &S, what: &str, check: impl Fn(&str) -> bool) -> String
    where
        S: actix_web::dev::Service<
                actix_http::Request,
                Response = actix_web::dev::ServiceResponse<B>,
                Error = actix_web::Error,
            >,
        B: actix_web::body::MessageBody,
    {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let metrics = scrape(app).await;
            if check(&metrics) {
                return metrics;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what} did not happen in time:\n{metrics}"
            );
            // Polling a condition with a deadline, not timing a behaviour.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A real streaming standby made for the test, paused: the monitor measures the
    /// lag growing past `DATABASE_REPLICA_MAX_LAG_MS`, lag-tolerant reads switch to the
    /// primary (a write is visible to them at once) with a log line, and back to the
    /// replica once replay resumes.
    #[actix_web::test]
    async fn reads_leave_a_paused_replica_and_return_when_it_catches_up() {
        let Some(admin_url) = admin_url() else { return };
        let Some(bin) = Standby::binaries() else {
            return;
        };
        let ctx = TestContext::new(Backend::Postgres).await.expect("postgres");
        let (app_url, _) = ctx.postgres_urls().unwrap();
        let name = app_url.rsplit('/').next().unwrap().to_owned();
        let primary_port = url_port(&admin_url);
        let standby = Standby::start(bin, primary_port);
        let standby_admin = sea_orm::Database::connect(&standby.url()).await.unwrap();

        let (captured, guard) = super::capture_logs();
        let mut settings = ctx.settings.clone();
        settings.database_read_url = Some(Secret::new(with_user(
            &with_database(&standby.url(), &name),
            APP_ROLE,
        )));
        settings.database_replica_max_lag = std::time::Duration::from_millis(300);
        let state = build_state(&settings, &ctx.api, HashingCost::FastForTests)
            .await
            .unwrap();
        let app = test::init_service(app(state.clone(), ctx.api.clone())).await;
        let (org, _, token) = new_org(&app, "paused@example.org").await;
        let in_use = |m: &str| series(m, "ptoc_db_replica_in_use");
        let lag = |m: &str| series(m, "ptoc_db_replica_lag_seconds");
        until_metrics(&app, "the replica in use", |m| {
            in_use(m) == Some(1.0) && lag(m) == Some(0.0)
        })
        .await;
        // Streaming: the org's events reach the replica (a lag-tolerant read).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while audit_events_seen(&app, &org, &token, false).await == 0 {
            assert!(std::time::Instant::now() < deadline, "never replicated");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }

        // Pause replay, then write on the primary: a second org with its own events.
        standby_admin
            .execute_unprepared("SELECT pg_wal_replay_pause()")
            .await
            .unwrap();
        let (status, body) = crate::helpers::send(
            &app,
            Method::POST,
            "/api/v2/orgs",
            Some(&token),
            Some(serde_json::json!({"name": "Paused PTO", "signup_code": "PAUSED24"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let second = body["data"]["org"]["id"].as_str().unwrap().to_owned();
        let metrics = until_metrics(&app, "the switch to the primary", |m| {
            in_use(m) == Some(0.0)
        })
        .await;
        assert!(lag(&metrics).is_some_and(|l| l > 0.3), "{metrics}");
        // Lag-tolerant reads now see the write, which the paused replica has not replayed.
        assert!(audit_events_seen(&app, &second, &token, false).await > 0);
        let paused: bool = standby_admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_is_wal_replay_paused() AS p",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "p")
            .unwrap();
        assert!(paused, "the standby stayed paused throughout");

        standby_admin
            .execute_unprepared("SELECT pg_wal_replay_resume()")
            .await
            .unwrap();
        until_metrics(&app, "the switch back to the replica", |m| {
            in_use(m) == Some(1.0) && lag(m) == Some(0.0)
        })
        .await;
        assert!(audit_events_seen(&app, &second, &token, false).await > 0);
        assert_eq!(state.db.replica_in_use(), Some(true));
        drop(guard);
        let messages: Vec<String> = captured
            .lines()
            .iter()
            .filter_map(|l| {
                l["fields"]["message"]
                    .as_str()
                    .or(l["message"].as_str())
                    .map(str::to_owned)
            })
            .collect();
        for expected in [
            "replica lagging or unreachable: lag-tolerant reads go to the primary",
            "replica caught up: lag-tolerant reads use the replica again",
        ] {
            assert!(
                messages.iter().any(|m| m == expected),
                "no log line {expected:?} in {messages:?}"
            );
        }
        state.db.close().await.ok();
        drop(standby_admin);
        drop(standby);
    }

    fn url_port(url: &str) -> u16 {
        let after_at = url.rsplit('@').next().unwrap_or(url);
        let host_port = after_at.split('/').next().unwrap_or(after_at);
        host_port
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(5432)
    }
}

#[::core::prelude::v1::test]
fn slow_requests_name_the_spans_that_took_the_time() {
    let (captured, guard) = capture_logs();
    {
        let request = tracing::info_span!(
            "request",
            request_id = "slow-1",
            method = "GET",
            path = "/api/v2/orgs/x/users",
            route = tracing::field::Empty,
        );
        let _r = request.enter();
        request.record("route", "/api/v2/orgs/{org_id}/users");
        for name in ["authz", "db.begin", "handler"] {
            let span = match name {
                "authz" => tracing::debug_span!("authz"),
                "db.begin" => tracing::debug_span!("db.begin"),
                _ => tracing::debug_span!("handler"),
            };
            let _e = span.enter();
        }
    }
    drop(guard);
    let lines = captured.lines();
    let slow = lines
        .iter()
        .find(|l| l["message"] == "slow request")
        .unwrap_or_else(|| panic!("no slow-request line in {}", captured.text()));
    assert_eq!(slow["level"], "WARN");
    assert_eq!(slow["request_id"], "slow-1");
    assert_eq!(slow["route"], "/api/v2/orgs/{org_id}/users");
    let slowest = slow["slowest"].as_str().unwrap();
    for stage in ["handler=", "authz=", "db.begin=", "(request)="] {
        assert!(slowest.contains(stage), "{stage} missing from {slowest}");
    }
}

/// The report reaches the layer's own subscriber even when the request span closes on a
/// thread where that subscriber is not the default (an actix task may hold it last).
#[::core::prelude::v1::test]
fn the_slow_request_report_reaches_its_subscriber_from_any_thread() {
    let (captured, guard) = capture_logs();
    let request = tracing::info_span!(
        "request",
        request_id = "slow-2",
        method = "GET",
        path = "/p",
        route = "/p",
    );
    {
        let _r = request.enter();
        let _e = tracing::debug_span!("handler").entered();
    }
    // Closed on another thread, which has no default subscriber.
    std::thread::spawn(move || drop(request))
        .join()
        .expect("the closing thread");
    drop(guard);
    let lines = captured.lines();
    let slow = lines
        .iter()
        .find(|l| l["message"] == "slow request")
        .unwrap_or_else(|| panic!("no slow-request line in {}", captured.text()));
    assert_eq!(slow["request_id"], "slow-2");
    assert!(
        slow["slowest"]
            .as_str()
            .is_some_and(|s| s.contains("handler="))
    );
}
