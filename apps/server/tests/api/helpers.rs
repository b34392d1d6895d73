//! The test harness: spawns the app on an isolated database per test.

use std::collections::BTreeMap;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test;
use actix_web::web;
use pto_server::config::Settings;
use pto_server::startup::{HashingCost, app, build_state};
use pto_server::state::AppState;
use sea_orm::{ConnectionTrait, Database};

/// The bootstrap token every test app is started with.
pub const BOOTSTRAP_TOKEN: &str = "test-bootstrap-token-0123456789abcdef-xyz";

/// Which backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file in a temporary directory.
    Sqlite,
    /// A fresh PostgreSQL database (plus Redis when `TEST_REDIS_URL` is set).
    Postgres,
}

/// Defines one test per backend: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    if let Some(ctx) = $crate::helpers::TestContext::new($crate::helpers::Backend::Sqlite).await {
                        super::$name(ctx).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    if let Some(ctx) = $crate::helpers::TestContext::new($crate::helpers::Backend::Postgres).await {
                        super::$name(ctx).await;
                    }
                }
            )*
        }
    };
}

/// An isolated environment: its own data directory and database, removed on drop.
pub struct TestContext {
    /// The backend in use.
    pub backend: Backend,
    /// The app's shared state (to inspect or break dependencies).
    pub state: web::Data<AppState>,
    /// The route table.
    pub api: pto_server::http::Api,
    /// The settings the app was built with.
    pub settings: Settings,
    data_dir: std::path::PathBuf,
    pg: Option<(String, String)>,
}

impl TestContext {
    /// A fresh environment; `None` (test skipped, with a note) when the backend is
    /// not configured outside CI. Under `CI=true` a missing backend is a failure.
    pub async fn new(backend: Backend) -> Option<Self> {
        Self::with_env(backend, &[]).await
    }

    /// [`TestContext::new`] with extra settings (they win over the defaults here).
    /// Rate limiting is off unless `RATE_LIMIT_ENABLED` is among them: the other tests
    /// send many requests from one (unknown) address. `/metrics` is public unless
    /// `METRICS_PUBLIC` is among them.
    pub async fn with_env(backend: Backend, extra: &[(&str, &str)]) -> Option<Self> {
        Self::with_env_and_db_url(backend, extra, |url| url).await
    }

    /// [`TestContext::with_env`], with the PostgreSQL URL the app connects with passed
    /// through `route` first (e.g. to send it through a proxy the test controls). The
    /// test database itself is created and dropped directly, never through `route`.
    pub async fn with_env_and_db_url(
        backend: Backend,
        extra: &[(&str, &str)],
        route: impl FnOnce(String) -> String,
    ) -> Option<Self> {
        let data_dir =
            std::env::temp_dir().join(format!("ptoc-test-{}", uuid::Uuid::now_v7().simple()));
        let mut env = BTreeMap::new();
        env.insert("DATA_DIR".to_owned(), data_dir.display().to_string());
        env.insert("BIND_ADDR".to_owned(), "127.0.0.1:0".to_owned());
        env.insert("DATABASE_MAX_CONNECTIONS".to_owned(), "4".to_owned());
        env.insert("BOOTSTRAP_TOKEN".to_owned(), BOOTSTRAP_TOKEN.to_owned());
        let mut pg = None;
        if backend == Backend::Postgres {
            let admin_url = test_support::postgres_admin_url()?;
            let name = format!("ptoc_t_{}", uuid::Uuid::now_v7().simple());
            let admin = Database::connect(&admin_url)
                .await
                .expect("connect to TEST_DATABASE_URL");
            // The app connects as a plain role owning its database, never as a
            // superuser, so PostgreSQL row-level security binds it in every test.
            ensure_app_role(&admin).await;
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\" OWNER {APP_ROLE}"))
                .await
                .expect("create test database");
            admin.close().await.ok();
            env.insert(
                "DATABASE_URL".to_owned(),
                route(with_user(&with_database(&admin_url, &name), APP_ROLE)),
            );
            if let Ok(redis) = std::env::var("TEST_REDIS_URL") {
                env.insert("REDIS_URL".to_owned(), redis);
            } else {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "TEST_REDIS_URL must be set under CI=true"
                );
            }
            pg = Some((admin_url, name));
        }
        env.insert("RATE_LIMIT_ENABLED".to_owned(), "false".to_owned());
        // Tests read `/metrics` freely; `security_review` tests the default (off) and
        // the bearer token.
        env.insert("METRICS_PUBLIC".to_owned(), "true".to_owned());
        for (k, v) in extra {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let settings = Settings::from_sources(&env, false).expect("test settings are valid");
        let api = pto_server::routes::api();
        let state = build_state(&settings, &api, HashingCost::FastForTests)
            .await
            .expect("app state builds");
        Some(Self {
            backend,
            state,
            api,
            settings,
            data_dir,
            pg,
        })
    }

    /// The PostgreSQL test database's URL for the app's role, and for the superuser;
    /// `None` on SQLite.
    pub fn postgres_urls(&self) -> Option<(String, String)> {
        self.pg.as_ref().map(|(admin, name)| {
            let superuser = with_database(admin, name);
            (with_user(&superuser, APP_ROLE), superuser)
        })
    }

    /// A second instance of the app on the same database, Redis and settings.
    pub async fn another_instance(&self) -> web::Data<AppState> {
        build_state(&self.settings, &self.api, HashingCost::FastForTests)
            .await
            .expect("app state builds")
    }

    /// The app as an in-process service.
    pub async fn service(
        &self,
    ) -> impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    > {
        test::init_service(app(self.state.clone(), self.api.clone())).await
    }
}

/// Replaces the database name of a PostgreSQL URL.
/// The role the app connects as in PostgreSQL tests: `LOGIN`, not a superuser, no
/// `BYPASSRLS` (trust authentication on the test server, so no password).
pub const APP_ROLE: &str = "ptoc_app_test";

/// Creates [`APP_ROLE`] unless it exists (roles are cluster-wide; tests race to create it).
async fn ensure_app_role(admin: &sea_orm::DatabaseConnection) {
    let create = format!(
        "DO $$ BEGIN
           CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
         END $$"
    );
    admin
        .execute_unprepared(&create)
        .await
        .expect("create the app role");
}

pub use test_support::{with_database, with_user};

impl Drop for TestContext {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if let Some((admin_url, name)) = self.pg.take() {
            // The test's runtime is blocked in this drop, so its pool cannot be closed
            // gracefully from here: FORCE terminates its connections server-side.
            test_support::block_on_side_thread(async move {
                test_support::drop_database(&admin_url, &name).await;
            });
        }
    }
}

/// The JSON body of a response.
pub async fn json_body<B: MessageBody>(res: ServiceResponse<B>) -> serde_json::Value {
    let bytes = test::read_body(res).await;
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// Asserts the error envelope shape and code; returns the body.
pub async fn expect_error<B: MessageBody>(
    res: ServiceResponse<B>,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(res.status().as_u16(), status, "status");
    assert!(
        res.headers().contains_key("x-request-id"),
        "x-request-id header"
    );
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let body = json_body(res).await;
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(
        body["meta"]["request_id"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body.get("data").is_none());
    body
}

/// Sends a JSON request (with an optional bearer token) and returns status and body.
pub async fn send<S, B>(
    app: &S,
    method: actix_web::http::Method,
    uri: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (status, _, json) = send_with_headers(app, method, uri, token, body).await;
    (status, json)
}

/// A create (`POST`) that must answer 201 with a `Location` header: returns the
/// `Location` and the body.
pub async fn create<S, B>(
    app: &S,
    uri: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> (String, serde_json::Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (status, headers, json) =
        send_with_headers(app, actix_web::http::Method::POST, uri, token, Some(body)).await;
    assert_eq!(status, 201, "POST {uri}: {json}");
    let location = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("POST {uri} answered without a Location"))
        .to_owned();
    assert!(location.starts_with("/api/v2/"), "{location}");
    (location, json)
}

/// Sends a JSON request (with an optional bearer token) and returns status, response
/// headers and body.
pub async fn send_with_headers<S, B>(
    app: &S,
    method: actix_web::http::Method,
    uri: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, actix_web::http::header::HeaderMap, serde_json::Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::default().method(method).uri(uri);
    if let Some(t) = token {
        req = req.insert_header(("authorization", format!("Bearer {t}")));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = test::read_body(res).await;
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        })
    };
    (status, headers, json)
}

/// Registers a user (201, `Location: /api/v2/me`) and signs in; returns (user id, token).
pub async fn signed_up<S, B>(app: &S, email: &str) -> (String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (location, body) = create(
        app,
        "/api/v2/auth/register",
        None,
        serde_json::json!({"email": email, "password": "correct horse battery", "first_name": "Test", "last_name": "User"}),
    )
    .await;
    assert_eq!(location, "/api/v2/me");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    (id, login(app, email, "correct horse battery").await)
}

/// Creates an org as `token`'s user (its admin); returns its id. (Older test files
/// carry their own copies; new tests use this one.)
pub async fn new_org<S, B>(app: &S, token: &str, name: &str) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (status, body) = send(
        app,
        actix_web::http::Method::POST,
        "/api/v2/orgs",
        Some(token),
        Some(serde_json::json!({ "name": name })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["data"]["org"]["id"]
        .as_str()
        .expect("org id")
        .to_owned()
}

/// Signs in; returns the token.
pub async fn login<S, B>(app: &S, email: &str, password: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (status, body) = send(
        app,
        actix_web::http::Method::POST,
        "/api/v2/auth/login",
        None,
        Some(serde_json::json!({"email": email, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["token"].as_str().unwrap().to_owned()
}

/// A tiny deterministic generator (splitmix64), so a failure is reproducible.
pub struct Rng(pub u64);

impl Rng {
    /// The next pseudo-random number.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A `PATCH` of an org, a member, a district or a school sending the version the
/// resource has now (see [`write_current`]). For tests about something other than
/// concurrency; the version is required (428 without it).
pub async fn patch_current<S, B>(
    app: &S,
    uri: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    write_current(app, actix_web::http::Method::PATCH, uri, token, body).await
}

/// A write sending the version the resource has now — read with a `GET` by the same
/// caller of the same URI (the account: `/api/v2/me`), or for one's own profile (`…/orgs/{org_id}/me`) of one's
/// membership `…/users/{my id}`, for one template key (`…/permission-templates/{key}`)
/// of the templates — unless the body names one (or the caller cannot read it: then
/// the body goes as it is).
pub async fn write_current<S, B>(
    app: &S,
    method: actix_web::http::Method,
    uri: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    use actix_web::http::Method;
    let mut body = body;
    let versioned = uri == "/api/v2/me"
        || ["/api/v2/orgs/", "/api/v2/districts/", "/api/v2/schools/"]
            .iter()
            .any(|p| uri.starts_with(p));
    if let Some(serde_json::Value::Object(fields)) = body.as_mut()
        && versioned
        && !fields.contains_key("version")
    {
        let read = if let Some(org) = uri
            .strip_suffix("/me")
            .filter(|org| org.starts_with("/api/v2/orgs/"))
        {
            let (_, me) = send(app, Method::GET, "/api/v2/me", token, None).await;
            let id = me["data"]["user"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            format!("{org}/users/{id}")
        } else if let Some((templates, _key)) = uri.rsplit_once('/')
            && templates.ends_with("/permission-templates")
        {
            templates.to_owned()
        } else {
            uri.to_owned()
        };
        let (status, current) = send(app, Method::GET, &read, token, None).await;
        if status == 200
            && let Some(v) = current["data"]["version"].as_i64()
        {
            fields.insert("version".to_owned(), v.into());
        }
    }
    send(app, method, uri, token, body).await
}

/// Walks a list one item a page (`limit=1`, following `meta.pagination.next_cursor`)
/// and returns every item. Asserts on the way what every list answers: `data` an
/// array, `meta.pagination.limit`, `total` when `total` is given (else absent), the
/// default limit of 50, and `422` naming `limit` (0, 201) or `cursor` (not one).
pub async fn all_pages<S, B>(
    app: &S,
    uri: &str,
    token: Option<&str>,
    total: Option<u64>,
) -> Vec<serde_json::Value>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    use actix_web::http::Method;
    let sep = if uri.contains('?') { '&' } else { '?' };
    let (status, first) = send(app, Method::GET, uri, token, None).await;
    assert_eq!(status, 200, "GET {uri}: {first}");
    assert_eq!(
        first["meta"]["pagination"]["limit"], 50,
        "GET {uri}: {first}"
    );
    for bad in ["limit=0", "limit=201", "cursor=not-a-cursor"] {
        let (status, body) = send(app, Method::GET, &format!("{uri}{sep}{bad}"), token, None).await;
        assert_eq!(status, 422, "GET {uri}{sep}{bad}: {body}");
        let field = bad.split('=').next().unwrap_or_default();
        assert_eq!(
            body["error"]["details"]["fields"][0]["field"], field,
            "{body}"
        );
    }
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_uri = match &cursor {
            None => format!("{uri}{sep}limit=1"),
            Some(c) => format!("{uri}{sep}limit=1&cursor={c}"),
        };
        let (status, page) = send(app, Method::GET, &page_uri, token, None).await;
        assert_eq!(status, 200, "GET {page_uri}: {page}");
        let data = page["data"].as_array().expect("data is an array");
        assert!(data.len() <= 1, "GET {page_uri}: {page}");
        let pagination = &page["meta"]["pagination"];
        assert_eq!(pagination["limit"], 1, "{page}");
        match total {
            Some(n) => assert_eq!(pagination["total"], n, "{page}"),
            None => assert!(pagination.get("total").is_none(), "{page}"),
        }
        items.extend(data.iter().cloned());
        match pagination["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(items.len() < 1000, "GET {uri}: no end of pages");
    }
    if let Some(n) = total {
        assert_eq!(items.len() as u64, n, "GET {uri}: items over all pages");
    }
    items
}

/// Registers a user and makes them the platform admin (the one-time bootstrap);
/// returns their token.
pub async fn platform_admin<S, B>(app: &S, email: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (_, token) = signed_up(app, email).await;
    let (status, body) = send(
        app,
        actix_web::http::Method::POST,
        "/api/v2/platform/bootstrap",
        Some(&token),
        Some(serde_json::json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    token
}

/// Signs up `email` and joins `org` (read by its admin `admin` for the signup code);
/// returns (user id, token).
pub async fn member_of<S, B>(app: &S, admin: &str, org: &str, email: &str) -> (String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (id, token) = signed_up(app, email).await;
    join_with_code(app, admin, org, &token).await;
    (id, token)
}

/// The user of `token` joins `org` with its sign-up code (read by its admin).
pub async fn join_with_code<S, B>(app: &S, admin: &str, org: &str, token: &str)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    use actix_web::http::Method;
    let (_, o) = send(
        app,
        Method::GET,
        &format!("/api/v2/orgs/{org}"),
        Some(admin),
        None,
    )
    .await;
    let code = o["data"]["signup_code"]
        .as_str()
        .expect("the org's signup code")
        .to_owned();
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(token),
        Some(serde_json::json!({"signup_code": code})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// A `GET` (with a bearer token and an optional `If-None-Match`): returns the status,
/// the `ETag` and the body (`Null` when empty, as on 304).
pub async fn get_tagged<S, B>(
    app: &S,
    uri: &str,
    token: &str,
    if_none_match: Option<&str>,
) -> (u16, Option<String>, serde_json::Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::get()
        .uri(uri)
        .insert_header(("authorization", format!("Bearer {token}")));
    if let Some(tag) = if_none_match {
        req = req.insert_header(("if-none-match", tag.to_owned()));
    }
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let tag = res
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = test::read_body(res).await;
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_default()
    };
    (status, tag, body)
}

/// Waits (at most 10 s, polling) until `applied()` — an instance's count of applied cache
/// invalidations — moves past `before`: the bus message of a write made elsewhere has
/// arrived. A bounded wait for that event, not a timing assumption.
pub async fn await_invalidation(applied: impl Fn() -> u64, before: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while applied() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the instance never received the invalidation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
