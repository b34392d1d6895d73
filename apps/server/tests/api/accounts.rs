//! Accounts real people can use: sessions that last (refresh rotation and reuse
//! detection), two-factor sign-in with TOTP and recovery codes, the caller's sign-ins,
//! and leaving an org.

use actix_web::http::Method;
use actix_web::test;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestContext, send, signed_up};

backend_tests!(
    login_returns_a_refresh_token_that_rotates,
    reusing_a_rotated_refresh_token_revokes_the_whole_session,
    invalid_and_expired_refresh_tokens_are_refused_with_their_reason,
    two_factor_enrol_sign_in_code_reuse_and_recovery_codes,
    two_factor_can_be_turned_off_with_the_password,
    sign_ins_lists_successes_and_failures_with_address_and_agent,
    leaving_an_org_and_the_last_admin_cannot,
    password_reset_answers_alike_with_or_without_an_account,
);

mod link_flood {
    #[actix_web::test]
    async fn sqlite() {
        super::one_address_gets_a_few_links_an_hour_whoever_asks(crate::helpers::Backend::Sqlite)
            .await;
    }
    #[actix_web::test]
    async fn postgres() {
        super::one_address_gets_a_few_links_an_hour_whoever_asks(crate::helpers::Backend::Postgres)
            .await;
    }
}

mod backoff {
    #[actix_web::test]
    async fn sqlite() {
        super::wrong_second_factor_codes_count_against_the_sign_in_backoff(
            crate::helpers::Backend::Sqlite,
        )
        .await;
    }
    #[actix_web::test]
    async fn postgres() {
        super::wrong_second_factor_codes_count_against_the_sign_in_backoff(
            crate::helpers::Backend::Postgres,
        )
        .await;
    }
}

const PASSWORD: &str = "correct horse battery";

async fn login_body<S, B>(app: &S, email: &str) -> Value
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
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_owned()
}

async fn login_returns_a_refresh_token_that_rotates(ctx: TestContext) {
    let app = ctx.service().await;
    signed_up(&app, "rota@example.org").await;
    let session = login_body(&app, "rota@example.org").await;
    let first = s(&session, "refresh_token");
    assert!(first.len() >= 32, "{session}");
    let access_expiry = time::OffsetDateTime::parse(
        &s(&session, "expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let session_end = time::OffsetDateTime::parse(
        &s(&session, "refresh_expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        access_expiry - time::OffsetDateTime::now_utc() <= time::Duration::minutes(15),
        "access tokens are short"
    );
    assert!(session_end - access_expiry > time::Duration::days(29));

    let (status, refreshed) = send(
        &app,
        Method::POST,
        "/api/v2/auth/refresh",
        None,
        Some(json!({"refresh_token": first})),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let next = s(&refreshed["data"], "refresh_token");
    let token = s(&refreshed["data"], "token");
    assert_ne!(next, first, "rotated");
    assert_eq!(
        s(&refreshed["data"], "refresh_expires_at"),
        s(&session, "refresh_expires_at")
    );
    let (status, me) = send(&app, Method::GET, "/api/v2/me", Some(&token), None).await;
    assert_eq!(status, 200, "{me}");
    // The new refresh token works once more; the old access token still works too.
    let (status, again) = send(
        &app,
        Method::POST,
        "/api/v2/auth/refresh",
        None,
        Some(json!({"refresh_token": next})),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    let old_access = s(&session, "token");
    assert_eq!(
        send(&app, Method::GET, "/api/v2/me", Some(&old_access), None)
            .await
            .0,
        200
    );
}

async fn reusing_a_rotated_refresh_token_revokes_the_whole_session(ctx: TestContext) {
    let app = ctx.service().await;
    signed_up(&app, "reuse@example.org").await;
    let session = login_body(&app, "reuse@example.org").await;
    let stolen = s(&session, "refresh_token");
    let (_, refreshed) = send(
        &app,
        Method::POST,
        "/api/v2/auth/refresh",
        None,
        Some(json!({"refresh_token": stolen})),
    )
    .await;
    let current_refresh = s(&refreshed["data"], "refresh_token");
    let current_access = s(&refreshed["data"], "token");
    assert_eq!(
        send(&app, Method::GET, "/api/v2/me", Some(&current_access), None)
            .await
            .0,
        200
    );

    // The thief replays the rotated token: refused, and the family is gone.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/refresh",
        None,
        Some(json!({"refresh_token": stolen})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
    assert_eq!(body["error"]["details"]["reason"], "refresh_token_reused");
    for access in [&current_access, &s(&session, "token")] {
        let (status, body) = send(&app, Method::GET, "/api/v2/me", Some(access), None).await;
        assert_eq!(
            status, 401,
            "every access token of the session is revoked: {body}"
        );
    }
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/refresh",
        None,
        Some(json!({"refresh_token": current_refresh})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "refresh_token_expired");
    // Another session of the same account is untouched; the reuse is audited.
    let other = login_body(&app, "reuse@example.org").await;
    assert_eq!(
        send(
            &app,
            Method::GET,
            "/api/v2/me",
            Some(&s(&other, "token")),
            None
        )
        .await
        .0,
        200
    );
    let (_, list) = send(
        &app,
        Method::GET,
        "/api/v2/me/sign-ins",
        Some(&s(&other, "token")),
        None,
    )
    .await;
    let outcomes: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"refresh_token_reused"), "{list}");
}

async fn invalid_and_expired_refresh_tokens_are_refused_with_their_reason(ctx: TestContext) {
    use sea_orm::ConnectionTrait;
    let app = ctx.service().await;
    signed_up(&app, "exp@example.org").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/refresh",
        None,
        Some(json!({"refresh_token": "rt_0000000000000000000000000000000000000000000000000000000000000000"})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "refresh_token_invalid");

    let session = login_body(&app, "exp@example.org").await;
    let db = ctx.state.db.primary();
    db.execute_unprepared("UPDATE refresh_tokens SET expires_at = '2001-01-01 00:00:00+00:00'")
        .await
        .unwrap();
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/refresh",
        None,
        Some(json!({"refresh_token": s(&session, "refresh_token")})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "refresh_token_expired");

    // Signing out ends the session's refresh tokens too.
    let session = login_body(&app, "exp@example.org").await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/logout",
        Some(&s(&session, "token")),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/refresh",
        None,
        Some(json!({"refresh_token": s(&session, "refresh_token")})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "refresh_token_expired");
}

pub(crate) fn now() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

pub(crate) fn code(secret: &str, at: u64) -> String {
    credentials::secrets::totp_code_base32(secret, at).expect("a code")
}

/// Enrols and confirms TOTP for the signed-in `token`; returns (secret, recovery codes).
pub(crate) async fn enrol<S, B>(app: &S, token: &str) -> (String, Vec<String>)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (status, enrolment) =
        send(app, Method::POST, "/api/v2/me/2fa/totp", Some(token), None).await;
    assert_eq!(status, 200, "{enrolment}");
    let secret = s(&enrolment["data"], "secret");
    let uri = s(&enrolment["data"], "otpauth_uri");
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&secret),
        "{uri}"
    );
    // Not on until confirmed.
    let (_, status_body) = send(app, Method::GET, "/api/v2/me/2fa/totp", Some(token), None).await;
    assert_eq!(status_body["data"]["enabled"], false);
    assert_eq!(status_body["data"]["pending"], true);
    let (status, wrong) = send(
        app,
        Method::POST,
        "/api/v2/me/2fa/totp/confirm",
        Some(token),
        Some(json!({"code": "000000"})),
    )
    .await;
    if code(&secret, now()) != "000000" {
        assert_eq!(status, 401, "{wrong}");
        assert_eq!(wrong["error"]["details"]["reason"], "code_invalid");
    }
    let (status, confirmed) = send(
        app,
        Method::POST,
        "/api/v2/me/2fa/totp/confirm",
        Some(token),
        Some(json!({"code": code(&secret, now())})),
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    let codes: Vec<String> = confirmed["data"]["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::BTreeSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    (secret, codes)
}

async fn challenge<S, B>(app: &S, email: &str) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let body = login_body(app, email).await;
    assert_eq!(body["two_factor_required"], true, "{body}");
    assert!(
        body.get("token").is_none(),
        "no session before the second factor: {body}"
    );
    s(&body, "challenge")
}

async fn two_factor_enrol_sign_in_code_reuse_and_recovery_codes(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "totp@example.org").await;
    let (secret, recovery) = enrol(&app, &token).await;
    // Enrolling again while on is refused.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/me/2fa/totp",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // Password → challenge → code → session. The code of the next step (accepted with
    // one step of skew) so it cannot be the one the confirmation spent.
    let ch = challenge(&app, "totp@example.org").await;
    let next_code = code(&secret, now() + 30);
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": ch, "code": next_code})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let session = body["data"].clone();
    assert!(session["refresh_token"].is_string());
    assert_eq!(
        send(
            &app,
            Method::GET,
            "/api/v2/me",
            Some(&s(&session, "token")),
            None
        )
        .await
        .0,
        200
    );
    // The challenge is spent.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": ch, "code": next_code})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "challenge_expired");

    // The same code again, on a fresh challenge: refused as reused.
    let ch = challenge(&app, "totp@example.org").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": ch, "code": next_code})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "code_reused");

    // A recovery code works once (typed in upper case, with spaces).
    let typed = recovery[3].to_uppercase().replace('-', " ");
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": ch, "recovery_code": typed})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ch = challenge(&app, "totp@example.org").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": ch, "recovery_code": recovery[3]})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "code_invalid");
    let (_, status_body) = send(&app, Method::GET, "/api/v2/me/2fa/totp", Some(&token), None).await;
    assert_eq!(status_body["data"]["enabled"], true);
    assert_eq!(status_body["data"]["recovery_codes_left"], 9);

    // A challenge dies after five wrong codes, even before the right one.
    for _ in 0..4 {
        let (status, _) = send(
            &app,
            Method::POST,
            "/api/v2/auth/login/2fa",
            None,
            Some(json!({"challenge": ch, "recovery_code": "not-a-code"})),
        )
        .await;
        assert_eq!(status, 401);
    }
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": ch, "recovery_code": recovery[4]})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "challenge_expired");
    // A challenge expires after its five minutes.
    let ch = challenge(&app, "totp@example.org").await;
    {
        use sea_orm::ConnectionTrait;
        ctx.state
            .db
            .primary()
            .execute_unprepared(
                "UPDATE sign_in_challenges SET expires_at = '2001-01-01 00:00:00+00:00'",
            )
            .await
            .unwrap();
    }
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": ch, "recovery_code": recovery[4]})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "challenge_expired");
    // An unknown challenge, and a body with neither or both factors.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": "ch_nope", "code": "123456"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["details"]["reason"].as_str()),
        (401, Some("challenge_invalid"))
    );
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": "ch_nope"})),
    )
    .await;
    assert_eq!(status, 422);
}

async fn two_factor_can_be_turned_off_with_the_password(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "off@example.org").await;
    enrol(&app, &token).await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/me/2fa/totp/disable",
        Some(&token),
        Some(json!({"password": "not the password"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/me/2fa/totp/disable",
        Some(&token),
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Sign-in is one step again.
    let session = login_body(&app, "off@example.org").await;
    assert!(session["token"].is_string(), "{session}");
    let (_, status_body) = send(&app, Method::GET, "/api/v2/me/2fa/totp", Some(&token), None).await;
    assert_eq!(status_body["data"]["enabled"], false);
}

async fn sign_ins_lists_successes_and_failures_with_address_and_agent(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "seen@example.org").await;
    for password in ["a wrong password", PASSWORD] {
        let req = test::TestRequest::post()
            .uri("/api/v2/auth/login")
            .insert_header(("user-agent", "TestBrowser/1.0"))
            .peer_addr("203.0.113.7:5000".parse().unwrap())
            .set_json(json!({"email": "seen@example.org", "password": password}))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert!(res.status().as_u16() == 200 || res.status().as_u16() == 401);
    }
    let (status, list) = send(&app, Method::GET, "/api/v2/me/sign-ins", Some(&token), None).await;
    assert_eq!(status, 200, "{list}");
    let items = list["data"].as_array().unwrap();
    let outcomes: Vec<&str> = items
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    // Newest first: the success, the failure, then the sign-up's sign-in.
    assert_eq!(outcomes, ["success", "wrong_password", "success"], "{list}");
    for item in &items[..2] {
        assert_eq!(item["user_agent"], "TestBrowser/1.0", "{item}");
        assert_eq!(item["ip"], "203.0.113.7", "{item}");
        assert!(item["at"].is_string());
    }
    assert!(list["meta"]["pagination"]["limit"].is_number());
    // Someone else sees only their own.
    let (_, other) = signed_up(&app, "other@example.org").await;
    let (_, list) = send(&app, Method::GET, "/api/v2/me/sign-ins", Some(&other), None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}

async fn leaving_an_org_and_the_last_admin_cannot(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "boss@example.org").await;
    let (status, created) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(json!({"name": "Hill PTO", "signup_code": "hill-2026"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let org = s(&created["data"]["org"], "id");
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "CONFLICT");
    assert_eq!(body["error"]["details"]["reason"], "last_admin");

    let (_, parent) = signed_up(&app, "mum@example.org").await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&parent),
        Some(json!({"signup_code": "hill-2026"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&parent),
        None,
    )
    .await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}"),
        Some(&parent),
        None,
    )
    .await;
    assert_eq!(status, 404, "no longer a member");
    let (_, me) = send(&app, Method::GET, "/api/v2/me", Some(&parent), None).await;
    assert_eq!(me["data"]["memberships"], json!([]));
    // Leaving twice: not a member.
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&parent),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

async fn wrong_second_factor_codes_count_against_the_sign_in_backoff(
    backend: crate::helpers::Backend,
) {
    let prefix = format!("ptoc:test:2fa:{}:", uuid::Uuid::now_v7().simple());
    let mut env = vec![
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_KEY_PREFIX", prefix.as_str()),
        ("SIGN_IN_FREE_FAILURES_PER_ACCOUNT", "2"),
        ("SIGN_IN_FREE_FAILURES_PER_IP", "10"),
        ("SIGN_IN_LOCKOUT_BASE_SECS", "60"),
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
    let Some(ctx) = TestContext::with_env(backend, &env).await else {
        return;
    };
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "guess@example.org").await;
    let (secret, _) = enrol(&app, &token).await;
    let ch = challenge(&app, "guess@example.org").await;
    let right = code(&secret, now() + 30);
    let wrong = if right == "111111" {
        "222222"
    } else {
        "111111"
    };
    for _ in 0..2 {
        let (status, body) = send(
            &app,
            Method::POST,
            "/api/v2/auth/login/2fa",
            None,
            Some(json!({"challenge": ch, "code": wrong})),
        )
        .await;
        assert_eq!(status, 401, "{body}");
    }
    // The free attempts are used: even the right code waits now.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": ch, "code": right})),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
}

async fn one_address_gets_a_few_links_an_hour_whoever_asks(backend: crate::helpers::Backend) {
    let prefix = format!("ptoc:test:links:{}:", uuid::Uuid::now_v7().simple());
    let mut env = vec![
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_KEY_PREFIX", prefix.as_str()),
    ];
    // Only the per-address link budget is under test: every class and tier unlimited.
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
    let Some(ctx) = TestContext::with_env(backend, &env).await else {
        return;
    };
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "victim@example.org").await;
    let reset = |email: &'static str, ip: &'static str| {
        let app = &app;
        async move {
            let req = test::TestRequest::post()
                .uri("/api/v2/auth/password-reset")
                .peer_addr(ip.parse().expect("address"))
                .set_json(json!({"email": email}))
                .to_request();
            let res = test::call_service(app, req).await;
            (
                res.status().as_u16(),
                res.headers().get("retry-after").is_some(),
            )
        }
    };
    // Five links an hour to one address, asked from five different clients (and in
    // different spellings of the address)…
    let ips = [
        "198.51.100.1:1",
        "198.51.100.2:1",
        "198.51.100.3:1",
        "198.51.100.4:1",
    ];
    for ip in ips {
        assert_eq!(reset("victim@example.org", ip).await, (202, false));
    }
    assert_eq!(
        reset(" Victim@Example.org ", "198.51.100.5:1").await,
        (202, false)
    );
    // …then the sixth, from yet another client, waits.
    assert_eq!(
        reset("victim@example.org", "198.51.100.6:1").await,
        (429, true)
    );
    // Other links to the same address share the budget; other addresses have theirs.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/verify-email/resend",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    // An address without an account is counted the same way (the answer tells nothing).
    for ip in ips {
        assert_eq!(reset("nobody@example.org", ip).await, (202, false));
    }
    assert_eq!(
        reset("nobody@example.org", "198.51.100.5:1").await,
        (202, false)
    );
    assert_eq!(
        reset("nobody@example.org", "198.51.100.6:1").await,
        (429, true)
    );
}

async fn password_reset_answers_alike_with_or_without_an_account(ctx: TestContext) {
    let app = ctx.service().await;
    signed_up(&app, "known@example.org").await;
    for email in ["known@example.org", "unknown@example.org", "not an address"] {
        let started = std::time::Instant::now();
        let (status, body) = send(
            &app,
            Method::POST,
            "/api/v2/auth/password-reset",
            None,
            Some(json!({"email": email})),
        )
        .await;
        let took = started.elapsed();
        assert_eq!(
            (status, &body["data"]),
            (202, &json!({"accepted": true})),
            "{email}"
        );
        // Every answer waits for the same moment after the request began (the work
        // behind it takes milliseconds), so its timing tells nothing either.
        assert!(
            took >= pto_server::routes::RESET_ANSWER_AFTER,
            "{email}: answered after {took:?}"
        );
    }
}
