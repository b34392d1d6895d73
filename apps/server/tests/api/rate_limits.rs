//! Rate limits: per role in the path's org, per API key, per endpoint class, per client
//! address (behind trusted proxies), the sign-in back-off, the headers and the 429, the
//! metrics, and the Redis backend: two instances sharing one budget, an unreachable
//! Redis (local limits, no 5xx) and an outage with recovery.
//!
//! Every test uses small limits and its own Redis key prefix (the keys expire by
//! themselves). The Redis parts use `TEST_REDIS_URL` on both database backends and are
//! skipped without it (a failure under `CI=true`).

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::test;
use rate_limit::testing::TcpProxy;

use crate::helpers::{Backend, TestContext, signed_up};

/// Like `backend_tests!`, but each test builds its own context (with its settings).
macro_rules! rate_limit_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}

rate_limit_tests!(
    role_limits_follow_the_callers_role_in_each_org,
    api_keys_have_their_own_budget,
    endpoint_classes_have_their_own_budget,
    anonymous_clients_are_limited_per_address,
    sign_in_backs_off_per_account_and_per_address,
    parallel_wrong_passwords_get_only_the_free_checks,
    the_owner_gets_past_an_attack_on_their_account,
    two_instances_share_one_budget_through_redis,
    unreachable_redis_means_local_limits_and_no_5xx,
    redis_outage_falls_back_to_local_and_recovers,
);

/// A response's status, the headers the tests look at and its JSON body.
struct Answer {
    status: u16,
    limit: Option<u32>,
    remaining: Option<u32>,
    reset: Option<u64>,
    retry_after: Option<u64>,
    body: serde_json::Value,
}

fn header<B>(res: &ServiceResponse<B>, name: &str) -> Option<u64> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Sends `method uri` from `peer` (with a bearer token if given).
async fn call<S, B>(
    app: &S,
    method: Method,
    uri: &str,
    token: Option<&str>,
    peer: &str,
    extra: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> Answer
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::default()
        .method(method)
        .uri(uri)
        .peer_addr(format!("{peer}:40000").parse().unwrap());
    if let Some(t) = token {
        req = req.insert_header(("authorization", format!("Bearer {t}")));
    }
    for (k, v) in extra {
        req = req.insert_header((*k, *v));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    let res = test::call_service(app, req.to_request()).await;
    let to_u32 = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok());
    let answer = Answer {
        status: res.status().as_u16(),
        limit: to_u32(header(&res, "ratelimit-limit")),
        remaining: to_u32(header(&res, "ratelimit-remaining")),
        reset: header(&res, "ratelimit-reset"),
        retry_after: header(&res, "retry-after"),
        body: serde_json::Value::Null,
    };
    let bytes = test::read_body(res).await;
    Answer {
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        ..answer
    }
}

async fn get<S, B>(app: &S, uri: &str, token: Option<&str>, peer: &str) -> Answer
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    call(app, Method::GET, uri, token, peer, &[], None).await
}

/// Asserts an allowed answer with its headers.
fn allowed(a: &Answer, limit: u32, remaining: u32) {
    assert!(
        a.status < 400,
        "expected success, got {}: {}",
        a.status,
        a.body
    );
    assert_eq!(
        (a.limit, a.remaining),
        (Some(limit), Some(remaining)),
        "headers of {}",
        a.body
    );
    assert!(a.reset.is_some_and(|r| r > 0), "RateLimit-Reset");
    assert_eq!(a.retry_after, None);
}

/// Asserts a 429 `RATE_LIMITED` in the envelope, with `Retry-After` = `retry_after`.
fn refused(a: &Answer, limit: u32, retry_after: u64) {
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.body["success"], false);
    assert_eq!(a.body["error"]["code"], "RATE_LIMITED", "{}", a.body);
    assert_eq!(a.body["error"]["details"]["retry_after_secs"], retry_after);
    assert_eq!(a.retry_after, Some(retry_after), "Retry-After");
    assert_eq!((a.limit, a.remaining), (Some(limit), Some(0)));
    assert!(a.reset.is_some_and(|r| r >= retry_after), "RateLimit-Reset");
}

/// Settings for a test: limits on, a unique Redis key prefix, everything not under test
/// off, then `extra`.
fn limits<'a>(prefix: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_KEY_PREFIX", prefix),
    ];
    for key in pto_server::config::KEYS {
        if key.starts_with("RATE_LIMIT_")
            && !matches!(
                *key,
                "RATE_LIMIT_ENABLED" | "RATE_LIMIT_KEY_PREFIX" | "RATE_LIMIT_REDIS_TIMEOUT_MS"
            )
        {
            env.push((key, "off"));
        }
    }
    env.extend_from_slice(extra);
    env
}

fn prefix() -> String {
    format!("ptoc:test:rlapi:{}:", uuid::Uuid::now_v7().simple())
}

/// `TEST_REDIS_URL`, or `None` (skipped with a note; a failure under `CI=true`).
fn redis_url() -> Option<String> {
    if let Ok(url) = std::env::var("TEST_REDIS_URL") {
        return Some(url);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "TEST_REDIS_URL must be set under CI=true"
    );
    eprintln!("redis not configured (TEST_REDIS_URL unset): skipped");
    None
}

/// A context with `env`; `None` when the backend is not configured (skipped).
async fn context(backend: Backend, env: &[(&str, &str)]) -> Option<TestContext> {
    TestContext::with_env(backend, env).await
}

/// One sign-in attempt from `peer`.
async fn login_from<S, B>(app: &S, email: &str, password: &str, peer: &str) -> Answer
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    call(
        app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        peer,
        &[],
        Some(serde_json::json!({"email": email, "password": password})),
    )
    .await
}

async fn create_org<S, B>(app: &S, token: &str, code: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let a = call(
        app,
        Method::POST,
        "/api/v2/orgs",
        Some(token),
        "192.0.2.1",
        &[],
        Some(serde_json::json!({"name": format!("{code} PTO"), "signup_code": code})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["data"]["org"]["id"].as_str().unwrap().to_owned()
}

async fn metrics<S, B>(app: &S) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let req = test::TestRequest::get().uri("/metrics").to_request();
    let res = test::call_service(app, req).await;
    assert_eq!(res.status().as_u16(), 200);
    String::from_utf8(test::read_body(res).await.to_vec()).unwrap()
}

async fn role_limits_follow_the_callers_role_in_each_org(backend: Backend) {
    let prefix = prefix();
    let env = limits(
        &prefix,
        &[
            ("RATE_LIMIT_ADMIN", "6/15m"),
            ("RATE_LIMIT_VOLUNTEER", "3/15m"),
        ],
    );
    let Some(ctx) = context(backend, &env).await else {
        return;
    };
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "rl-admin@example.org").await;
    let org = create_org(&app, &admin, "RLROLE1").await;
    let (_, vol) = signed_up(&app, "rl-vol@example.org").await;
    let joined = call(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        "192.0.2.2",
        &[],
        Some(serde_json::json!({"signup_code": "RLROLE1"})),
    )
    .await;
    assert_eq!(joined.status, 201, "{}", joined.body);

    let uri = format!("/api/v2/orgs/{org}");
    for left in [2, 1, 0] {
        allowed(&get(&app, &uri, Some(&vol), "192.0.2.2").await, 3, left);
    }
    // 15 min / 3 = one request every 300 s.
    let a = get(&app, &uri, Some(&vol), "192.0.2.2").await;
    refused(&a, 3, 300);
    // Keyed by user, not address: another address does not help.
    refused(&get(&app, &uri, Some(&vol), "192.0.2.99").await, 3, 300);
    // The admin of that org has the admin budget.
    allowed(&get(&app, &uri, Some(&admin), "192.0.2.2").await, 6, 5);
    // The volunteer is admin of an org of their own: the admin budget there.
    let own = create_org(&app, &vol, "RLROLE2").await;
    allowed(
        &get(
            &app,
            &format!("/api/v2/orgs/{own}"),
            Some(&vol),
            "192.0.2.2",
        )
        .await,
        6,
        5,
    );
    // Outside org routes the signed-in tier applies (off here: no headers).
    let me = get(&app, "/api/v2/me", Some(&vol), "192.0.2.2").await;
    assert_eq!((me.status, me.limit), (200, None));
    let text = metrics(&app).await;
    assert!(
        text.contains("ptoc_rate_limit_rejections_total{class=\"volunteer\"} 2"),
        "{text}"
    );
}

async fn api_keys_have_their_own_budget(backend: Backend) {
    let prefix = prefix();
    let env = limits(&prefix, &[("RATE_LIMIT_API_KEY", "2/10m")]);
    let Some(ctx) = context(backend, &env).await else {
        return;
    };
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "rl-keys@example.org").await;
    let org = create_org(&app, &admin, "RLKEYS").await;
    let mut tokens = Vec::new();
    for name in ["one", "two"] {
        let a = call(
            &app,
            Method::POST,
            &format!("/api/v2/orgs/{org}/api-keys"),
            Some(&admin),
            "192.0.2.3",
            &[],
            Some(serde_json::json!({"name": name, "permissions": ["users.view"], "expires_in_days": 1})),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.body);
        tokens.push(a.body["data"]["token"].as_str().unwrap().to_owned());
    }
    let users = format!("/api/v2/orgs/{org}/users");
    allowed(
        &get(&app, &users, Some(&tokens[0]), "192.0.2.3").await,
        2,
        1,
    );
    allowed(
        &get(&app, &users, Some(&tokens[0]), "192.0.2.3").await,
        2,
        0,
    );
    refused(
        &get(&app, &users, Some(&tokens[0]), "192.0.2.3").await,
        2,
        300,
    );
    // Each key has its own budget, from the same address too.
    allowed(
        &get(&app, &users, Some(&tokens[1]), "192.0.2.3").await,
        2,
        1,
    );
    // An invalid token counts as anonymous (off here) and is answered 401, not 429.
    let bad = get(&app, &users, Some("not-a-token"), "192.0.2.3").await;
    assert_eq!(bad.status, 401);
}

async fn endpoint_classes_have_their_own_budget(backend: Backend) {
    let prefix = prefix();
    let env = limits(
        &prefix,
        &[
            ("RATE_LIMIT_ADMIN", "1000/15m"),
            ("RATE_LIMIT_LIST", "2/1m"),
            ("RATE_LIMIT_EXPORT", "1/5m"),
            ("RATE_LIMIT_CREATE", "2/1m"),
        ],
    );
    let Some(ctx) = context(backend, &env).await else {
        return;
    };
    let app = ctx.service().await;
    // Registration is the "create user" class, per address (the tier is off).
    let (_, admin) = signed_up(&app, "rl-class@example.org").await;
    let register = |email: &'static str| serde_json::json!({"email": email, "password": "correct horse battery", "first_name": "A", "last_name": "B"});
    let a = call(
        &app,
        Method::POST,
        "/api/v2/auth/register",
        None,
        "192.0.2.4",
        &[],
        Some(register("rl-c1@example.org")),
    )
    .await;
    allowed(&a, 2, 1);
    let _ = call(
        &app,
        Method::POST,
        "/api/v2/auth/register",
        None,
        "192.0.2.4",
        &[],
        Some(register("rl-c2@example.org")),
    )
    .await;
    let a = call(
        &app,
        Method::POST,
        "/api/v2/auth/register",
        None,
        "192.0.2.4",
        &[],
        Some(register("rl-c3@example.org")),
    )
    .await;
    refused(&a, 2, 30);

    let org = create_org(&app, &admin, "RLCLASS").await;
    let users = format!("/api/v2/orgs/{org}/users");
    // The class binds (fewer left than the admin tier): its numbers in the headers.
    allowed(&get(&app, &users, Some(&admin), "192.0.2.5").await, 2, 1);
    allowed(&get(&app, &users, Some(&admin), "192.0.2.5").await, 2, 0);
    refused(&get(&app, &users, Some(&admin), "192.0.2.5").await, 2, 30);
    // Other routes of the org draw on the tier only.
    allowed(
        &get(
            &app,
            &format!("/api/v2/orgs/{org}"),
            Some(&admin),
            "192.0.2.5",
        )
        .await,
        1000,
        997,
    );
    let export = format!("/api/v2/orgs/{org}/audit-logs/export");
    let first = get(&app, &export, Some(&admin), "192.0.2.5").await;
    allowed(&first, 1, 0);
    refused(&get(&app, &export, Some(&admin), "192.0.2.5").await, 1, 300);

    let text = metrics(&app).await;
    for class in ["create", "list", "export"] {
        assert!(
            text.contains(&format!(
                "ptoc_rate_limit_rejections_total{{class=\"{class}\"}} 1"
            )),
            "{class}: {text}"
        );
    }
    assert!(text.contains("ptoc_rate_limit_backend{backend="), "{text}");
}

async fn anonymous_clients_are_limited_per_address(backend: Backend) {
    let prefix = prefix();
    let env = limits(
        &prefix,
        &[
            ("RATE_LIMIT_ANONYMOUS", "2/1m"),
            ("TRUSTED_PROXIES", "10.0.0.1"),
        ],
    );
    let Some(ctx) = context(backend, &env).await else {
        return;
    };
    let app = ctx.service().await;
    allowed(&get(&app, "/openapi.json", None, "203.0.113.1").await, 2, 1);
    allowed(&get(&app, "/openapi.json", None, "203.0.113.1").await, 2, 0);
    refused(
        &get(&app, "/openapi.json", None, "203.0.113.1").await,
        2,
        30,
    );
    // Another address has its own budget.
    allowed(&get(&app, "/openapi.json", None, "203.0.113.2").await, 2, 1);
    // X-Forwarded-For from an untrusted peer is ignored...
    let spoofed = call(
        &app,
        Method::GET,
        "/openapi.json",
        None,
        "203.0.113.1",
        &[("x-forwarded-for", "198.51.100.9")],
        None,
    )
    .await;
    assert_eq!(spoofed.status, 429);
    // ...and from the trusted proxy names the client.
    for left in [1, 0] {
        let via = call(
            &app,
            Method::GET,
            "/openapi.json",
            None,
            "10.0.0.1",
            &[("x-forwarded-for", "203.0.113.1, 198.51.100.7")],
            None,
        )
        .await;
        allowed(&via, 2, left);
    }
    let via = call(
        &app,
        Method::GET,
        "/openapi.json",
        None,
        "10.0.0.1",
        &[("x-forwarded-for", "198.51.100.8")],
        None,
    )
    .await;
    allowed(&via, 2, 1);
    // Liveness and readiness probes are never limited.
    for _ in 0..5 {
        let a = get(&app, "/health", None, "203.0.113.1").await;
        assert_eq!((a.status, a.limit), (200, None));
    }
}

async fn sign_in_backs_off_per_account_and_per_address(backend: Backend) {
    let prefix = prefix();
    let env = limits(
        &prefix,
        &[
            ("SIGN_IN_FREE_FAILURES_PER_ACCOUNT", "2"),
            ("SIGN_IN_FREE_FAILURES_PER_IP", "4"),
            ("SIGN_IN_LOCKOUT_BASE_SECS", "60"),
        ],
    );
    let Some(ctx) = context(backend, &env).await else {
        return;
    };
    let app = ctx.service().await;
    let _ = signed_up(&app, "rl-signin@example.org").await;
    let _ = signed_up(&app, "rl-other@example.org").await;
    let text = metrics(&app).await;
    for zero in [
        "ptoc_auth_lockouts_total 0",
        "ptoc_auth_sign_in_failures_total 0",
    ] {
        assert!(text.contains(zero), "{zero}: {text}");
    }
    const GOOD: &str = "correct horse battery";
    let attempt = |email, password, peer| login_from(&app, email, password, peer);
    // Two free attempts: a failure, then a success, which clears the account's count
    // (and hands out a device token).
    assert_eq!(
        attempt("rl-signin@example.org", "wrong", "198.51.100.1")
            .await
            .status,
        401
    );
    let ok = attempt("rl-signin@example.org", GOOD, "198.51.100.1").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let device = ok.body["data"]["device_token"].as_str().unwrap().to_owned();
    // Two failures (from two addresses) use the free attempts: the next waits 60 s.
    for peer in ["198.51.100.2", "198.51.100.3"] {
        assert_eq!(
            attempt("RL-Signin@Example.org ", "wrong", peer)
                .await
                .status,
            401
        );
    }
    let locked = attempt("rl-signin@example.org", "wrong", "198.51.100.4").await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    // Refused for clients unknown to the account, even with the right password...
    let locked = attempt("rl-signin@example.org", GOOD, "198.51.100.5").await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert_eq!(locked.body["error"]["code"], "RATE_LIMITED");
    assert_eq!(locked.retry_after, Some(60));
    // ...but not for the client holding a device token from an earlier sign-in.
    let known = with_device("rl-signin@example.org", GOOD, &device);
    let a = call(
        &app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        "198.51.100.5",
        &[],
        Some(known),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    // Another account is not affected.
    assert_eq!(
        attempt("rl-other@example.org", GOOD, "198.51.100.5")
            .await
            .status,
        200
    );
    // Per address: four failures on four unknown accounts use the address's free
    // attempts; the next waits, whatever the account, device token or not.
    for email in ["a@x.org", "b@x.org", "c@x.org", "d@x.org"] {
        assert_eq!(attempt(email, "wrong", "198.51.100.6").await.status, 401);
    }
    let a = attempt("rl-other@example.org", GOOD, "198.51.100.6").await;
    assert_eq!((a.status, a.retry_after), (429, Some(60)), "{}", a.body);
    let known = with_device("rl-signin@example.org", GOOD, &device);
    let a = call(
        &app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        "198.51.100.6",
        &[],
        Some(known),
    )
    .await;
    assert_eq!((a.status, a.retry_after), (429, Some(60)), "{}", a.body);
    assert_eq!(
        attempt("rl-other@example.org", GOOD, "198.51.100.7")
            .await
            .status,
        200
    );
    let text = metrics(&app).await;
    assert!(
        text.contains("ptoc_rate_limit_rejections_total{class=\"sign_in_backoff\"} 4"),
        "{text}"
    );
    // The security series: the four refusals are lock-outs; the seven wrong passwords
    // (the refused attempts were never checked) are sign-in failures.
    assert!(text.contains("ptoc_auth_lockouts_total 4"), "{text}");
    assert!(
        text.contains("ptoc_auth_sign_in_failures_total 7"),
        "{text}"
    );
}

/// A sign-in body with a device token.
fn with_device(email: &str, password: &str, device: &str) -> serde_json::Value {
    serde_json::json!({"email": email, "password": password, "device_token": device})
}

/// `n` sign-ins sent at once from `peer`, the i-th for `email(i)`; their statuses.
async fn burst<S, B>(
    app: &S,
    n: usize,
    email: impl Fn(usize) -> String,
    password: &str,
    peer: &str,
) -> Vec<u16>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let attempts = (0..n).map(|i| {
        let email = email(i);
        async move { login_from(app, &email, password, peer).await.status }
    });
    futures_util::future::join_all(attempts).await
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

async fn parallel_wrong_passwords_get_only_the_free_checks(backend: Backend) {
    let prefix = prefix();
    let env = limits(
        &prefix,
        &[
            ("SIGN_IN_FREE_FAILURES_PER_ACCOUNT", "5"),
            ("SIGN_IN_FREE_FAILURES_PER_IP", "5"),
            ("SIGN_IN_LOCKOUT_BASE_SECS", "60"),
            ("RATE_LIMIT_REDIS_TIMEOUT_MS", "5000"),
        ],
    );
    let Some(ctx) = context(backend, &env).await else {
        return;
    };
    let app = ctx.service().await;
    let _ = signed_up(&app, "rl-burst@example.org").await;
    // 20 wrong passwords for one account at once, from 20 addresses: 5 are checked.
    let attempts = (0..20).map(|i| {
        let app = &app;
        async move {
            login_from(
                app,
                "rl-burst@example.org",
                "wrong",
                &format!("198.51.100.{}", 100 + i),
            )
            .await
            .status
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 15, "{statuses:?}");
    // 20 wrong passwords from one address at once, each for another account: 5 checked.
    let statuses = burst(
        &app,
        20,
        |i| format!("nobody{i}@x.org"),
        "wrong",
        "198.51.100.60",
    )
    .await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 15, "{statuses:?}");
}

async fn the_owner_gets_past_an_attack_on_their_account(backend: Backend) {
    let prefix = prefix();
    // 5 free attempts per account, 20 per address (the defaults), then one attempt per
    // interval, the first 60 s (long enough that the test's own time cannot run it out).
    // Redis gets a generous time bound: on a loaded machine a 75 ms timeout would let a
    // few attempts be decided by the local store instead (the outage fallback).
    let env = limits(
        &prefix,
        &[
            ("SIGN_IN_LOCKOUT_BASE_SECS", "60"),
            ("RATE_LIMIT_REDIS_TIMEOUT_MS", "5000"),
        ],
    );
    let Some(ctx) = context(backend, &env).await else {
        return;
    };
    let app = ctx.service().await;
    const GOOD: &str = "correct horse battery";
    let _ = signed_up(&app, "rl-owner@example.org").await;
    let _ = signed_up(&app, "rl-attacker@example.org").await;
    // The owner signed in from their laptop before: it kept the device token.
    let laptop = login_from(&app, "rl-owner@example.org", GOOD, "192.0.2.10").await;
    assert_eq!(laptop.status, 200, "{}", laptop.body);
    let device = laptop.body["data"]["device_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The attacker has a device token too, for their own account.
    let own = login_from(&app, "rl-attacker@example.org", GOOD, "203.0.113.66").await;
    let stolen_elsewhere = own.body["data"]["device_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A parallel burst of wrong passwords from the attacker's address.
    let statuses = burst(
        &app,
        20,
        |_| "rl-owner@example.org".to_owned(),
        "wrong",
        "203.0.113.66",
    )
    .await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 15, "{statuses:?}");
    // The attacker's own device token, a forged one or garbage: ignored, still refused.
    let forged = format!("{}.{}", "0".repeat(32), device.split_once('.').unwrap().1);
    for token in [stolen_elsewhere.as_str(), forged.as_str(), "garbage"] {
        let body = with_device("rl-owner@example.org", "wrong", token);
        let a = call(
            &app,
            Method::POST,
            "/api/v2/auth/login",
            None,
            "203.0.113.67",
            &[],
            Some(body),
        )
        .await;
        assert_eq!(a.status, 429, "{token}: {}", a.body);
    }

    // The owner on a new phone from a clean address: slowed down by one interval (the
    // next check comes after it; the crate's tests move a clock through it).
    let phone = login_from(&app, "rl-owner@example.org", GOOD, "192.0.2.20").await;
    assert_eq!(
        (phone.status, phone.retry_after),
        (429, Some(60)),
        "{}",
        phone.body
    );
    // The owner with the device token, from their laptop or anywhere clean: in at once.
    for peer in ["192.0.2.10", "192.0.2.21"] {
        let body = with_device("rl-owner@example.org", GOOD, &device);
        let a = call(
            &app,
            Method::POST,
            "/api/v2/auth/login",
            None,
            peer,
            &[],
            Some(body),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(
            a.body["data"]["device_token"]
                .as_str()
                .is_some_and(|t| t != device)
        );
    }
}

async fn two_instances_share_one_budget_through_redis(backend: Backend) {
    let Some(url) = redis_url() else { return };
    let prefix = prefix();
    let env = limits(
        &prefix,
        &[("REDIS_URL", &url), ("RATE_LIMIT_AUTHENTICATED", "4/15m")],
    );
    let Some(ctx) = context(backend, &env).await else {
        return;
    };
    let first = ctx.service().await;
    let second_state = ctx.another_instance().await;
    let second = test::init_service(pto_server::startup::app(second_state, ctx.api.clone())).await;
    let (_, token) = signed_up(&first, "rl-shared@example.org").await;
    // Alternating instances draw on one budget.
    allowed(
        &get(&first, "/api/v2/me", Some(&token), "192.0.2.7").await,
        4,
        3,
    );
    allowed(
        &get(&second, "/api/v2/me", Some(&token), "192.0.2.8").await,
        4,
        2,
    );
    allowed(
        &get(&first, "/api/v2/me", Some(&token), "192.0.2.7").await,
        4,
        1,
    );
    allowed(
        &get(&second, "/api/v2/me", Some(&token), "192.0.2.8").await,
        4,
        0,
    );
    refused(
        &get(&first, "/api/v2/me", Some(&token), "192.0.2.7").await,
        4,
        225,
    );
    refused(
        &get(&second, "/api/v2/me", Some(&token), "192.0.2.8").await,
        4,
        225,
    );
    for app_metrics in [metrics(&first).await, metrics(&second).await] {
        assert!(
            app_metrics.contains("ptoc_rate_limit_backend{backend=\"redis\"} 1"),
            "{app_metrics}"
        );
        assert!(
            app_metrics.contains("ptoc_rate_limit_rejections_total{class=\"authenticated\"} 1")
        );
    }
}

async fn unreachable_redis_means_local_limits_and_no_5xx(backend: Backend) {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let dead = format!("redis://127.0.0.1:{port}");
    let prefix = prefix();
    let env = limits(
        &prefix,
        &[("REDIS_URL", &dead), ("RATE_LIMIT_AUTHENTICATED", "2/1m")],
    );
    let Some(ctx) = context(backend, &env).await else {
        return;
    };
    assert_eq!(ctx.state.rate_limits.backend(), rate_limit::Backend::Local);
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "rl-dead@example.org").await;
    allowed(
        &get(&app, "/api/v2/me", Some(&token), "192.0.2.9").await,
        2,
        1,
    );
    allowed(
        &get(&app, "/api/v2/me", Some(&token), "192.0.2.9").await,
        2,
        0,
    );
    refused(
        &get(&app, "/api/v2/me", Some(&token), "192.0.2.9").await,
        2,
        30,
    );
    let text = metrics(&app).await;
    assert!(
        text.contains("ptoc_rate_limit_backend{backend=\"local\"} 1"),
        "{text}"
    );
}

async fn redis_outage_falls_back_to_local_and_recovers(backend: Backend) {
    let Some(url) = redis_url() else { return };
    let proxy = TcpProxy::start(&url).await;
    let proxied = proxy.url();
    let prefix = prefix();
    let env = limits(
        &prefix,
        &[
            ("REDIS_URL", &proxied),
            ("RATE_LIMIT_AUTHENTICATED", "3/15m"),
        ],
    );
    let Some(ctx) = context(backend, &env).await else {
        return;
    };
    let limits = &ctx.state.rate_limits;
    assert_eq!(limits.backend(), rate_limit::Backend::Redis);
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "rl-outage@example.org").await;
    allowed(
        &get(&app, "/api/v2/me", Some(&token), "192.0.2.10").await,
        3,
        2,
    );

    proxy.cut();
    // Redis is gone: the next requests are decided locally (a fresh bucket), never 5xx.
    allowed(
        &get(&app, "/api/v2/me", Some(&token), "192.0.2.10").await,
        3,
        2,
    );
    assert_eq!(limits.backend(), rate_limit::Backend::Local);
    allowed(
        &get(&app, "/api/v2/me", Some(&token), "192.0.2.10").await,
        3,
        1,
    );
    allowed(
        &get(&app, "/api/v2/me", Some(&token), "192.0.2.10").await,
        3,
        0,
    );
    refused(
        &get(&app, "/api/v2/me", Some(&token), "192.0.2.10").await,
        3,
        300,
    );
    let text = metrics(&app).await;
    assert!(
        text.contains("ptoc_rate_limit_backend{backend=\"local\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("ptoc_rate_limit_redis_errors_total 0"),
        "{text}"
    );

    proxy.restore();
    // The client reconnects in the background: probe until Redis answers (≤ 10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !limits.limiter().probe_now().await {
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Shared again: the Redis bucket (one request spent before the outage) decides.
    allowed(
        &get(&app, "/api/v2/me", Some(&token), "192.0.2.10").await,
        3,
        1,
    );
    let text = metrics(&app).await;
    assert!(
        text.contains("ptoc_rate_limit_backend{backend=\"redis\"} 1"),
        "{text}"
    );
}
