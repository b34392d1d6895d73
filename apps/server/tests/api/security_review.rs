//! Regressions for the attack review (issue 13) at the HTTP edge: control characters in
//! free text, trailing bytes after a JSON body, over-long URLs, `/metrics` opt-in, a
//! removed member rejoining with the code, a bulk-removal token used twice, and a busy
//! database answering 503 rather than 500.

use actix_web::http::Method;
use actix_web::test;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, TestContext, expect_error, send, signed_up};
use crate::permissions::org_with_volunteer;

backend_tests!(
    control_characters_in_free_text_are_422_and_change_nothing,
    a_json_body_with_trailing_bytes_is_422,
    a_url_over_the_cap_is_414_in_the_envelope,
    a_member_removed_by_an_admin_cannot_rejoin_with_the_code,
    a_bulk_removal_token_confirms_once,
    an_import_row_with_a_control_character_is_refused_by_the_dry_run,
    a_database_outage_during_a_settings_write_is_503,
);

async fn control_characters_in_free_text_are_422_and_change_nothing(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, _) = org_with_volunteer(&app, "ctl").await;
    let o = format!("/api/v2/orgs/{org}");
    let nul = "Book\u{0}Fair";
    let cases: Vec<(Method, String, serde_json::Value, &str)> = vec![
        (
            Method::PATCH,
            o.clone(),
            json!({"name": "PTO\u{0}", "version": 1}),
            "name",
        ),
        (
            Method::PATCH,
            o.clone(),
            json!({"branding": {"color": "red\u{1b}[31m"}, "version": 1}),
            "branding.color",
        ),
        (
            Method::PATCH,
            format!("{o}/me"),
            json!({"committee": nul, "version": 1}),
            "committee",
        ),
        (
            Method::PATCH,
            format!("{o}/me"),
            json!({"children": [{"name": "Ana", "grade": "3\u{0}"}], "version": 1}),
            "children[0].grade",
        ),
        (
            Method::PATCH,
            format!("{o}/users/{vol_id}"),
            json!({"committee": nul, "version": 1}),
            "committee",
        ),
        (
            Method::POST,
            format!("{o}/users"),
            json!({"email": "new@example.org", "first_name": "N", "last_name": "M",
                   "role": "volunteer", "phone": "555\u{0}1234"}),
            "phone",
        ),
        (
            Method::POST,
            format!("{o}/roles"),
            json!({"name": "Treasurer\u{7f}", "counts_as": "volunteer", "extra_keys": []}),
            "name",
        ),
        (
            Method::POST,
            format!("{o}/api-keys"),
            json!({"name": "sync\u{0}", "permissions": ["users.view"], "expires_in_days": 30}),
            "name",
        ),
        (
            Method::POST,
            format!("{o}/permissions/grants"),
            json!({"user_id": vol_id, "key": "events.create", "reason": "help\u{85}"}),
            "reason",
        ),
        (
            Method::POST,
            "/api/v2/auth/register".to_owned(),
            json!({"email": "x@example.org", "password": "correct horse battery",
                   "first_name": "A\u{0}", "last_name": "B"}),
            "first_name",
        ),
    ];
    for (method, uri, body, field) in cases {
        let res = test::call_service(
            &app,
            test::TestRequest::default()
                .method(method.clone())
                .uri(&uri)
                .insert_header(("authorization", format!("Bearer {admin}")))
                .set_json(body)
                .to_request(),
        )
        .await;
        let env = expect_error(res, 422, "VALIDATION_FAILED").await;
        let f = &env["error"]["details"]["fields"][0];
        assert_eq!(f["code"], "control_character", "{method} {uri}: {env}");
        assert_eq!(f["field"], field, "{method} {uri}: {env}");
    }
    // Query parameters (filters) too, named.
    for uri in [
        format!("{o}/users?committee=ab%00c"),
        format!("{o}/users/search?q=Ann%00"),
        format!("{o}/audit-logs?action=member%00"),
    ] {
        let (status, body) = send(&app, Method::GET, &uri, Some(&admin), None).await;
        assert_eq!(status, 422, "{uri}: {body}");
        assert_eq!(
            body["error"]["details"]["fields"][0]["code"], "control_character",
            "{uri}: {body}"
        );
    }
    // Nothing was written: the org keeps its name and version, no role or key exists.
    let (_, got) = send(&app, Method::GET, &o, Some(&admin), None).await;
    assert_eq!(got["data"]["name"], "Test PTO");
    assert_eq!(got["data"]["version"], 1);
    let (_, roles) = send(&app, Method::GET, &format!("{o}/roles"), Some(&admin), None).await;
    assert_eq!(roles["data"].as_array().map(Vec::len), Some(0), "{roles}");
    let (_, keys) = send(
        &app,
        Method::GET,
        &format!("{o}/api-keys"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(keys["data"].as_array().map(Vec::len), Some(0), "{keys}");
    // Tab and line breaks are still text.
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("{o}/me"),
        Some(&admin),
        Some(json!({"committee": "Book Fair\tSpring", "version": 1})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn a_json_body_with_trailing_bytes_is_422(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "trail@example.org").await;
    for body in [
        r#"{"name":"Trailing PTO","signup_code":"TRAIL2024"} xx"#,
        r#"{"name":"Trailing PTO","signup_code":"TRAIL2024"}{"name":"b"}"#,
    ] {
        let res = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/api/v2/orgs")
                .insert_header(("authorization", format!("Bearer {token}")))
                .insert_header(("content-type", "application/json"))
                .set_payload(body)
                .to_request(),
        )
        .await;
        let env = expect_error(res, 422, "VALIDATION_FAILED").await;
        assert_eq!(env["error"]["details"]["fields"][0]["code"], "invalid_json");
    }
    let (_, orgs) = send(&app, Method::GET, "/api/v2/orgs", Some(&token), None).await;
    assert_eq!(
        orgs["data"].as_array().map(Vec::len),
        Some(0),
        "nothing created: {orgs}"
    );
    // White space after the value is fine.
    let res = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/api/v2/orgs")
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("content-type", "application/json"))
            .set_payload("{\"name\":\"Trailing PTO\",\"signup_code\":\"TRAIL2024\"}\r\n ")
            .to_request(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 201);
}

async fn a_url_over_the_cap_is_414_in_the_envelope(ctx: TestContext) {
    let app = ctx.service().await;
    let long = format!("/api/v2/orgs?q={}", "a".repeat(9 * 1024));
    let res = test::call_service(&app, test::TestRequest::get().uri(&long).to_request()).await;
    let env = expect_error(res, 414, "URI_TOO_LONG").await;
    assert_eq!(env["error"]["details"]["limit_bytes"], 8192);
    let path = format!("/api/v2/orgs/{}", "b".repeat(9 * 1024));
    let res = test::call_service(&app, test::TestRequest::get().uri(&path).to_request()).await;
    expect_error(res, 414, "URI_TOO_LONG").await;
    // Just under the cap is routed as usual: the route itself refuses the parameter it
    // doesn't take, by name.
    let ok = format!("/api/v2/orgs?q={}", "a".repeat(8 * 1024 - 20));
    let res = test::call_service(&app, test::TestRequest::get().uri(&ok).to_request()).await;
    let env = expect_error(res, 422, "VALIDATION_FAILED").await;
    assert_eq!(env["error"]["details"]["fields"][0]["field"], "q");
    assert_eq!(
        env["error"]["details"]["fields"][0]["code"],
        "unknown_parameter"
    );
}

async fn a_member_removed_by_an_admin_cannot_rejoin_with_the_code(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, vol) = org_with_volunteer(&app, "rejoin").await;
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/orgs/{org}/users/{vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert!(status < 300, "{status} {body}");
    let join = || {
        send(
            &app,
            Method::POST,
            "/api/v2/orgs/join",
            Some(&vol),
            Some(json!({"signup_code": "CODErejoin"})),
        )
    };
    let (status, body) = join().await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");
    // Still not a member.
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users/{vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // An admin restores them: that is the way back.
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/users/{vol_id}/restore"),
        Some(&admin),
        None,
    )
    .await;
    assert!(status < 300, "{status} {body}");
    let (status, _) = join().await;
    assert_eq!(status, 409, "a member already");
}

async fn a_bulk_removal_token_confirms_once(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, _) = org_with_volunteer(&app, "bulk1").await;
    let uri = format!("/api/v2/orgs/{org}/users/bulk-remove");
    let (status, first) = send(
        &app,
        Method::POST,
        &uri,
        Some(&admin),
        Some(json!({"user_ids": [vol_id]})),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let token = first["data"]["confirmation_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let confirm = || {
        send(
            &app,
            Method::POST,
            &uri,
            Some(&admin),
            Some(json!({"user_ids": [vol_id], "confirmation_token": token})),
        )
    };
    let (status, body) = confirm().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["succeeded"], 1, "{body}");
    // Restored, then the same token again: refused, the member stays.
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/users/{vol_id}/restore"),
        Some(&admin),
        None,
    )
    .await;
    assert!(status < 300);
    let (status, body) = confirm().await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["details"]["fields"][0]["field"],
        "confirmation_token"
    );
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users/{vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "still a member");
}

#[actix_web::test]
async fn metrics_are_off_by_default_and_need_their_token() {
    let token = "metrics-token-0123456789abcdef-0123456789";
    for (env, bearer, expected) in [
        (vec![("METRICS_PUBLIC", "false")], None, 404),
        (vec![("METRICS_PUBLIC", "false")], Some(token), 404),
        (
            vec![("METRICS_PUBLIC", "false"), ("METRICS_TOKEN", token)],
            None,
            401,
        ),
        (
            vec![("METRICS_PUBLIC", "false"), ("METRICS_TOKEN", token)],
            Some("metrics-token-0123456789abcdef-0123456780"),
            401,
        ),
        (
            vec![("METRICS_PUBLIC", "false"), ("METRICS_TOKEN", token)],
            Some(token),
            200,
        ),
        (vec![("METRICS_PUBLIC", "true")], None, 200),
    ] {
        let ctx = TestContext::with_env(Backend::Sqlite, &env)
            .await
            .expect("sqlite");
        let app = ctx.service().await;
        let mut req = test::TestRequest::get().uri("/metrics");
        if let Some(b) = bearer {
            req = req.insert_header(("authorization", format!("Bearer {b}")));
        }
        let res = test::call_service(&app, req.to_request()).await;
        assert_eq!(res.status().as_u16(), expected, "{env:?} {bearer:?}");
        let body = test::read_body(res).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(
            text.contains("http_server_request_duration_seconds") || text.contains("# TYPE"),
            expected == 200,
            "{text}"
        );
    }
}

/// SQLite: a write that waits out the busy timeout behind another writer is a 503 with
/// `Retry-After` (was a 500), and the same write succeeds once the lock is gone.
#[actix_web::test]
async fn a_busy_sqlite_database_is_503_with_retry_after() {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let ctx = TestContext::new(Backend::Sqlite).await.expect("sqlite");
    let app = ctx.service().await;
    let (org, admin, _, _) = org_with_volunteer(&app, "busy").await;
    let file = ctx.settings.data_dir.join("pto.sqlite3");
    let other = Database::connect(format!("sqlite://{}", file.display()))
        .await
        .expect("second connection");
    other
        .execute_raw(Statement::from_string(
            other.get_database_backend(),
            "BEGIN IMMEDIATE",
        ))
        .await
        .expect("take the write lock");
    let patch = || {
        test::TestRequest::patch()
            .uri(&format!("/api/v2/orgs/{org}"))
            .insert_header(("authorization", format!("Bearer {admin}")))
            .set_json(json!({"name": "Renamed PTO", "version": 1}))
            .to_request()
    };
    let res = test::call_service(&app, patch()).await;
    assert_eq!(
        res.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    expect_error(res, 503, "SERVICE_UNAVAILABLE").await;
    other
        .execute_raw(Statement::from_string(
            other.get_database_backend(),
            "ROLLBACK",
        ))
        .await
        .expect("release");
    other.close().await.ok();
    let res = test::call_service(&app, patch()).await;
    assert_eq!(
        res.status().as_u16(),
        200,
        "nothing was lost: the retry applies"
    );
}

/// SQLite: parallel joins (each a read then a write) all succeed: write transactions
/// take the write lock up front, so none fails on upgrading a stale read snapshot.
#[actix_web::test]
async fn parallel_joins_on_sqlite_all_succeed() {
    let ctx = TestContext::new(Backend::Sqlite).await.expect("sqlite");
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "par-admin@example.org").await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(json!({"name": "Parallel PTO", "signup_code": "PARALLEL1"})),
    )
    .await;
    assert_eq!(status, 201);
    let mut tokens = Vec::new();
    for i in 0..12 {
        tokens.push(signed_up(&app, &format!("par{i}@example.org")).await.1);
    }
    let joins = tokens.iter().map(|t| {
        send(
            &app,
            Method::POST,
            "/api/v2/orgs/join",
            Some(t),
            Some(json!({"signup_code": "PARALLEL1"})),
        )
    });
    let results = futures_util::future::join_all(joins).await;
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert!(
        statuses.iter().all(|s| *s == 201),
        "{statuses:?} {results:?}"
    );
}

/// A NUL in a spreadsheet cell is a row error in the dry run (the real import validates
/// rows with the same function), not a surprise when the real import writes.
async fn an_import_row_with_a_control_character_is_refused_by_the_dry_run(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, _, _) = org_with_volunteer(&app, "nulimp").await;
    let csv = "email,first_name,last_name,committee\r\n\
               ok@example.org,Ok,Row,Garden\r\n\
               nul@example.org,Nul,Row,Book\u{0}Fair\r\n";
    let res = test::call_service(
        &app,
        test::TestRequest::post()
            .uri(&format!("/api/v2/orgs/{org}/users/import?dry_run=true"))
            .insert_header(("authorization", format!("Bearer {admin}")))
            .insert_header(("content-type", "text/csv"))
            .set_payload(csv)
            .to_request(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let body: serde_json::Value = test::read_body_json(res).await;
    let r = &body["data"];
    assert_eq!(
        (r["total_rows"].as_i64(), r["valid_rows"].as_i64()),
        (Some(2), Some(1)),
        "{r}"
    );
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{r}");
    assert_eq!(errors[0]["row"], 3);
    assert_eq!(errors[0]["field"], "committee");
    assert_eq!(errors[0]["code"], "control_character");
}

/// The permission store's failures keep their kind up to the edge: a database outage
/// while saving org settings is a 503 with `Retry-After` (was a 500: the store's error
/// travelled as a bare string).
async fn a_database_outage_during_a_settings_write_is_503(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, _, _) = org_with_volunteer(&app, "outage").await;
    let uri = format!("/api/v2/orgs/{org}/permissions/settings");
    // Warm the guard's cache (membership and the org's settings).
    let (status, body) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    ctx.state.db.close().await.unwrap();
    let res = test::call_service(
        &app,
        test::TestRequest::put()
            .uri(&uri)
            .insert_header(("authorization", format!("Bearer {admin}")))
            .set_json(json!({"version": 1, "changes": [{"key": "events.create", "min_role": "volunteer"}]}))
            .to_request(),
    )
    .await;
    assert_eq!(
        res.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    expect_error(res, 503, "SERVICE_UNAVAILABLE").await;
}

/// Over a real socket: requests the HTTP parser refuses before the app runs (a 100 KB
/// URL, a request line that isn't HTTP, a head over the parser's buffer) are answered in
/// the error envelope with their own status, and the server keeps serving.
#[actix_web::test]
async fn requests_the_http_parser_refuses_get_the_envelope() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ctx = TestContext::new(Backend::Sqlite).await.expect("sqlite");
    let app = pto_server::startup::Application::build(
        ctx.settings.clone(),
        pto_server::startup::HashingCost::FastForTests,
    )
    .await
    .expect("server builds");
    let port = app.port();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let exchange = |request: Vec<u8>| async move {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.write_all(&request).await.expect("send");
        // Read what comes until the server closes (a reset after the answer is fine).
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => {
                    assert!(!answer.is_empty(), "no answer before {e}");
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (status, text, body)
    };
    let long_url = format!(
        "GET /api/v2/orgs?q={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let big_header = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(200 * 1024)
    );
    for (request, status, code) in [
        (long_url.into_bytes(), 414, "URI_TOO_LONG"),
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), 400, "BAD_REQUEST"),
        (big_header.into_bytes(), 431, "HEADERS_TOO_LARGE"),
    ] {
        let (got, text, body) = exchange(request).await;
        assert_eq!(got, status, "{}", &text[..text.len().min(400)]);
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{text}"
        );
        let env: serde_json::Value = serde_json::from_str(body.trim()).expect("a JSON body");
        assert_eq!(env["success"], false);
        assert_eq!(env["error"]["code"], code);
        assert!(
            env["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (status, _, body) =
        exchange(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()).await;
    assert_eq!(status, 200, "{body}");
    handle.stop(true).await;
}
