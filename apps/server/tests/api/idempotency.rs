//! `Idempotency-Key` on creates (`../shared/spec/api.md`, "Retries"; issue #16): a
//! retry replays the first answer without creating again, another body with the key is
//! 422, a duplicate while the first runs is 409, keys belong to their caller and route,
//! expire after 24 hours, and a failed attempt does not use its key up.

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::HeaderMap;
use actix_web::test;
use idempotency_store::{Claim, Scope};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{BOOTSTRAP_TOKEN, TestContext, expect_error, new_org, send, signed_up};

/// A `POST` with an `Idempotency-Key`: status, headers, raw body.
async fn post_keyed<S, B>(
    app: &S,
    uri: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> (u16, HeaderMap, Vec<u8>)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let req = test::TestRequest::post()
        .uri(uri)
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("idempotency-key", key))
        .set_json(body)
        .to_request();
    let res = test::call_service(app, req).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, test::read_body(res).await.to_vec())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("a JSON body")
}

fn location(headers: &HeaderMap) -> Option<String> {
    headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// How many orgs `token`'s user belongs to.
async fn org_count<S, B>(app: &S, token: &str) -> usize
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (status, body) = send(app, Method::GET, "/api/v2/orgs", Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().map_or(0, Vec::len)
}

/// The caller text a user's keys are kept under.
fn user_caller(user_id: &str) -> String {
    format!("user:{}", uuid::Uuid::parse_str(user_id).unwrap().simple())
}

async fn a_retry_replays_the_first_answer_and_creates_once(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "idem-replay@example.org").await;
    let body = json!({"name": "Replay PTO"});
    let key = "7f1d2c3e-replay";
    let (status, headers, first) = post_keyed(&app, "/api/v2/orgs", &token, key, &body).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&first));
    assert!(headers.get("idempotent-replayed").is_none());
    let (status, again_headers, again) = post_keyed(&app, "/api/v2/orgs", &token, key, &body).await;
    assert_eq!(status, 201);
    assert_eq!(again, first, "the very same body");
    assert_eq!(location(&again_headers), location(&headers));
    assert!(location(&headers).is_some());
    assert_eq!(
        again_headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(
        again_headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(org_count(&app, &token).await, 1, "created once");

    // Without the key, the same request creates again.
    let (status, _) = send(&app, Method::POST, "/api/v2/orgs", Some(&token), Some(body)).await;
    assert_eq!(status, 201);
    assert_eq!(org_count(&app, &token).await, 2);
}

async fn the_same_key_with_another_body_is_422(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "idem-body@example.org").await;
    let key = "key-body";
    let (status, _, _) = post_keyed(
        &app,
        "/api/v2/orgs",
        &token,
        key,
        &json!({"name": "First PTO"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _, bytes) = post_keyed(
        &app,
        "/api/v2/orgs",
        &token,
        key,
        &json!({"name": "Second PTO"}),
    )
    .await;
    assert_eq!(status, 422);
    let body = json_of(&bytes);
    assert_eq!(body["error"]["code"], "IDEMPOTENCY_KEY_REUSED", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("different request body")),
        "{body}"
    );
    assert_eq!(org_count(&app, &token).await, 1);
}

async fn keys_belong_to_their_caller_and_route(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, ann) = signed_up(&app, "idem-ann@example.org").await;
    let (_, bob) = signed_up(&app, "idem-bob@example.org").await;
    let key = "shared-key";
    let body = json!({"name": "Same Name PTO"});
    let (status, _, a) = post_keyed(&app, "/api/v2/orgs", &ann, key, &body).await;
    assert_eq!(status, 201);
    let (status, _, b) = post_keyed(&app, "/api/v2/orgs", &bob, key, &body).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&b));
    let (a, b) = (json_of(&a), json_of(&b));
    assert_ne!(
        a["data"]["org"]["id"], b["data"]["org"]["id"],
        "not a replay"
    );
    assert_eq!(org_count(&app, &ann).await, 1);
    assert_eq!(org_count(&app, &bob).await, 1);

    // The same key on another route is another key.
    let org = a["data"]["org"]["id"].as_str().unwrap();
    let (status, _, role) = post_keyed(
        &app,
        &format!("/api/v2/orgs/{org}/roles"),
        &ann,
        key,
        &json!({"name": "Helpers", "counts_as": "volunteer"}),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&role));
}

async fn an_expired_key_runs_again(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "idem-expiry@example.org").await;
    let key = "key-expiry";
    let body = json!({"name": "Expiry PTO"});
    let (status, _, first) = post_keyed(&app, "/api/v2/orgs", &token, key, &body).await;
    assert_eq!(status, 201);
    // A day and a minute ago: expired (and the sweep's to remove).
    let then =
        time::OffsetDateTime::now_utc() - time::Duration::hours(24) - time::Duration::minutes(1);
    let conn = ctx.state.db.primary();
    let backend = conn.get_database_backend();
    conn.execute_raw(persistence::statement(
        backend,
        "UPDATE idempotency_keys SET created_at = ? WHERE idem_key = ?",
        vec![then.into(), key.into()],
    ))
    .await
    .unwrap();
    let (status, headers, again) = post_keyed(&app, "/api/v2/orgs", &token, key, &body).await;
    assert_eq!(status, 201);
    assert!(headers.get("idempotent-replayed").is_none());
    assert_ne!(
        json_of(&again)["data"]["org"]["id"],
        json_of(&first)["data"]["org"]["id"]
    );
    assert_eq!(org_count(&app, &token).await, 2);

    // The sweep removes expired keys, and only those.
    let older = time::OffsetDateTime::now_utc() - time::Duration::hours(30);
    conn.execute_raw(persistence::statement(
        backend,
        "UPDATE idempotency_keys SET created_at = ? WHERE idem_key = ?",
        vec![older.into(), key.into()],
    ))
    .await
    .unwrap();
    let (status, _, _) = post_keyed(
        &app,
        "/api/v2/orgs",
        &token,
        "key-kept",
        &json!({"name": "Kept PTO"}),
    )
    .await;
    assert_eq!(status, 201);
    let purged = ctx
        .state
        .idempotency
        .purge(time::OffsetDateTime::now_utc() - idempotency_store::RETENTION)
        .await
        .unwrap();
    assert_eq!(purged, 1);
}

async fn a_failed_attempt_leaves_the_key_for_a_retry(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "idem-retry@example.org").await;
    let key = "key-retry";
    let body = json!({"name": "Retry District", "code": "RETRY1"});
    let (status, _, bytes) = post_keyed(&app, "/api/v2/districts", &token, key, &body).await;
    assert_eq!(
        status,
        403,
        "not a platform admin yet: {}",
        String::from_utf8_lossy(&bytes)
    );
    let (status, made) = send(
        &app,
        Method::POST,
        "/api/v2/platform/bootstrap",
        Some(&token),
        Some(json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let (status, headers, bytes) = post_keyed(&app, "/api/v2/districts", &token, key, &body).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&bytes));
    assert!(headers.get("idempotent-replayed").is_none());
    let (status, again_headers, again) =
        post_keyed(&app, "/api/v2/districts", &token, key, &body).await;
    assert_eq!(status, 201);
    assert_eq!(again, bytes);
    assert!(again_headers.contains_key("idempotent-replayed"));
}

async fn a_duplicate_while_the_first_runs_is_409(ctx: TestContext) {
    let app = ctx.service().await;
    let (user, token) = signed_up(&app, "idem-inflight@example.org").await;
    let key = "key-in-flight";
    let body = json!({"name": "In Flight PTO"});
    // The first request holds the key (claimed, not finished), as it would mid-write.
    let scope = Scope {
        caller: user_caller(&user),
        route: "POST /api/v2/orgs".to_owned(),
        key: key.to_owned(),
    };
    let hash = pto_server::http::idempotency::body_hash(&serde_json::to_vec(&body).unwrap());
    let Claim::Fresh(attempt) = ctx
        .state
        .idempotency
        .claim(&scope, &hash, time::OffsetDateTime::now_utc())
        .await
        .unwrap()
    else {
        panic!("the key was free");
    };
    let (status, _, bytes) = post_keyed(&app, "/api/v2/orgs", &token, key, &body).await;
    assert_eq!(status, 409);
    assert_eq!(json_of(&bytes)["error"]["code"], "IDEMPOTENCY_KEY_IN_USE");
    assert_eq!(org_count(&app, &token).await, 0, "nothing ran");
    // The first request failed: the key is free again.
    ctx.state.idempotency.release(&attempt).await.unwrap();
    let (status, _, _) = post_keyed(&app, "/api/v2/orgs", &token, key, &body).await;
    assert_eq!(status, 201);
    assert_eq!(org_count(&app, &token).await, 1);
}

async fn a_bad_key_is_422_naming_the_header(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "idem-bad@example.org").await;
    let body = json!({"name": "Bad Key PTO"});
    let long = "k".repeat(256);
    for key in [long.as_str(), "tab\tinside"] {
        let req = test::TestRequest::post()
            .uri("/api/v2/orgs")
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("idempotency-key", key))
            .set_json(&body)
            .to_request();
        let res = test::call_service(&app, req).await;
        let err = expect_error(res, 422, "VALIDATION_FAILED").await;
        assert_eq!(
            err["error"]["details"]["fields"][0]["field"], "Idempotency-Key",
            "{err}"
        );
    }
    assert_eq!(org_count(&app, &token).await, 0);
    // Who asks is judged first: without credentials a signed-in route is 401, whatever
    // the key holds (and no key is claimed).
    for (auth, key) in [(None, long.as_str()), (Some("Bearer nonsense"), "fine-key")] {
        let mut req = test::TestRequest::post()
            .uri("/api/v2/orgs")
            .insert_header(("idempotency-key", key))
            .set_json(&body);
        if let Some(a) = auth {
            req = req.insert_header(("authorization", a));
        }
        let res = test::call_service(&app, req.to_request()).await;
        expect_error(res, 401, "UNAUTHENTICATED").await;
    }
    let (status, _, _) = post_keyed(&app, "/api/v2/orgs", &token, "fine-key", &body).await;
    assert_eq!(status, 201, "the key was not taken by the refused attempt");
}

async fn an_api_key_token_is_never_kept(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "idem-apikey@example.org").await;
    let org = new_org(&app, &token, "Keys PTO").await;
    let uri = format!("/api/v2/orgs/{org}/api-keys");
    let body = json!({"name": "Sync", "permissions": ["users.view"], "expires_in_days": 30});
    let (status, headers, bytes) = post_keyed(&app, &uri, &token, "key-api", &body).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&bytes));
    let secret = json_of(&bytes)["data"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, again) = post_keyed(&app, &uri, &token, "key-api", &body).await;
    assert_eq!(status, 409);
    let again = json_of(&again);
    assert_eq!(again["error"]["code"], "CONFLICT", "{again}");
    assert_eq!(
        again["error"]["details"]["location"].as_str(),
        location(&headers).as_deref()
    );
    assert!(!again.to_string().contains(&secret));
    let (_, keys) = send(&app, Method::GET, &uri, Some(&token), None).await;
    assert_eq!(keys["data"].as_array().map(Vec::len), Some(1), "{keys}");
    // Nothing of the answer's body is stored.
    let conn = ctx.state.db.primary();
    let row = conn
        .query_one_raw(persistence::statement(
            conn.get_database_backend(),
            "SELECT COUNT(*) AS n FROM idempotency_keys WHERE idem_key = ? AND response_body IS NULL AND status = 201",
            vec!["key-api".into()],
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), 1);
}

async fn an_account_erasure_forgets_its_keys(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "idem-admin@example.org").await;
    let org = new_org(&app, &admin, "Erasure PTO").await;
    let (_, o) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}"),
        Some(&admin),
        None,
    )
    .await;
    let code = o["data"]["signup_code"].as_str().unwrap().to_owned();
    let (user, token) = signed_up(&app, "idem-erased@example.org").await;
    let (status, _, bytes) = post_keyed(
        &app,
        "/api/v2/orgs/join",
        &token,
        "key-join",
        &json!({"signup_code": code}),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&bytes));
    let conn = ctx.state.db.primary();
    let count = || async {
        let row = conn
            .query_one_raw(persistence::statement(
                conn.get_database_backend(),
                "SELECT COUNT(*) AS n FROM idempotency_keys WHERE caller = ?",
                vec![user_caller(&user).into()],
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    assert_eq!(count().await, 1);
    let (status, body) = send(
        &app,
        Method::DELETE,
        "/api/v2/me",
        Some(&token),
        Some(json!({"password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count().await, 0);
}

async fn an_anonymous_registration_replays_too(ctx: TestContext) {
    let app = ctx.service().await;
    let body = json!({
        "email": "idem-register@example.org",
        "password": "correct horse battery",
        "first_name": "Reg",
        "last_name": "Ister"
    });
    let register = |body: Value| {
        test::TestRequest::post()
            .uri("/api/v2/auth/register")
            .insert_header(("idempotency-key", "key-register"))
            .set_json(body)
            .to_request()
    };
    let first = test::call_service(&app, register(body.clone())).await;
    assert_eq!(first.status().as_u16(), 201);
    let first = test::read_body(first).await;
    let again = test::call_service(&app, register(body.clone())).await;
    assert_eq!(
        again.status().as_u16(),
        201,
        "replayed, not 409 (address taken)"
    );
    assert!(again.headers().contains_key("idempotent-replayed"));
    assert_eq!(test::read_body(again).await, first);
    let mut other = body;
    other["first_name"] = json!("Other");
    let res = test::call_service(&app, register(other)).await;
    expect_error(res, 422, "IDEMPOTENCY_KEY_REUSED").await;
}

crate::backend_tests!(
    an_anonymous_registration_replays_too,
    an_account_erasure_forgets_its_keys,
    a_retry_replays_the_first_answer_and_creates_once,
    the_same_key_with_another_body_is_422,
    keys_belong_to_their_caller_and_route,
    an_expired_key_runs_again,
    a_failed_attempt_leaves_the_key_for_a_retry,
    a_duplicate_while_the_first_runs_is_409,
    a_bad_key_is_422_naming_the_header,
    an_api_key_token_is_never_kept,
);
