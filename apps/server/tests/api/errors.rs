use actix_web::test;

use crate::backend_tests;
use crate::helpers::{TestContext, expect_error, new_org, send, signed_up};

backend_tests!(
    unknown_route_is_enveloped_404,
    wrong_method_is_enveloped_405,
    malformed_json_is_422,
    unknown_field_is_422,
    wrong_content_type_is_415,
    oversized_body_is_413,
    database_outage_is_503_without_leaking,
    query_strings_are_parsed_one_way_everywhere,
    messages_are_written_for_people,
);

async fn unknown_route_is_enveloped_404(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "routes-404@example.org").await;
    let org = new_org(&app, &token, "Routes PTO").await;
    // Outside the org's routes, and inside their scope (its prefix matched, no path
    // under it): the same envelope.
    for uri in [
        "/api/v2/nope".to_owned(),
        format!("/api/v2/orgs/{org}/nope"),
        format!("/api/v2/orgs/{org}/"),
        format!("/api/v2/orgs/{org}/permissions/check/extra"),
    ] {
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri(&uri)
                .insert_header(("authorization", format!("Bearer {token}")))
                .to_request(),
        )
        .await;
        expect_error(res, 404, "NOT_FOUND").await;
    }
    // The paths the scope's prefix could also match are still routed to their own.
    let (status, body) = send(
        &app,
        actix_web::http::Method::POST,
        "/api/v2/orgs/join",
        Some(&token),
        Some(serde_json::json!({"signup_code": "NOSUCHCODE"})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_ne!(body["error"]["message"], "no such route", "{body}");
}

async fn wrong_method_is_enveloped_405(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "routes-405@example.org").await;
    let org = new_org(&app, &token, "Methods PTO").await;
    for (method, uri, allow) in [
        (actix_web::http::Method::DELETE, "/health".to_owned(), "GET"),
        (
            actix_web::http::Method::PUT,
            format!("/api/v2/orgs/{org}"),
            "GET, PATCH, DELETE",
        ),
        (
            actix_web::http::Method::DELETE,
            format!("/api/v2/orgs/{org}/permissions/check"),
            "GET, POST",
        ),
    ] {
        let res = test::call_service(
            &app,
            test::TestRequest::default()
                .method(method)
                .uri(&uri)
                .insert_header(("authorization", format!("Bearer {token}")))
                .to_request(),
        )
        .await;
        assert_eq!(
            res.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{uri}"
        );
        expect_error(res, 405, "METHOD_NOT_ALLOWED").await;
    }
}

fn register(body: &'static str) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/api/v2/auth/register")
        .insert_header(("content-type", "application/json"))
        .set_payload(body)
}

async fn malformed_json_is_422(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(&app, register("{\"email\": ").to_request()).await;
    let body = expect_error(res, 422, "VALIDATION_FAILED").await;
    assert_eq!(
        body["error"]["details"]["fields"][0]["code"],
        "invalid_json"
    );
}

async fn unknown_field_is_422(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(
        &app,
        register(r#"{"email":"a@b.org","password":"long enough pass","first_name":"A","last_name":"B","is_admin":true}"#)
            .to_request(),
    )
    .await;
    let body = expect_error(res, 422, "VALIDATION_FAILED").await;
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "is_admin");
    assert_eq!(
        body["error"]["details"]["fields"][0]["code"],
        "unknown_field"
    );
}

async fn wrong_content_type_is_415(ctx: TestContext) {
    let app = ctx.service().await;
    let req = test::TestRequest::post()
        .uri("/api/v2/auth/register")
        .insert_header(("content-type", "text/plain"))
        .set_payload("{}")
        .to_request();
    expect_error(
        test::call_service(&app, req).await,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
}

async fn oversized_body_is_413(ctx: TestContext) {
    let app = ctx.service().await;
    let big = format!("{{\"email\":\"{}\"}}", "a".repeat(200 * 1024));
    let req = test::TestRequest::post()
        .uri("/api/v2/auth/register")
        .insert_header(("content-type", "application/json"))
        .set_payload(big)
        .to_request();
    expect_error(
        test::call_service(&app, req).await,
        413,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
}

async fn database_outage_is_503_without_leaking(ctx: TestContext) {
    let app = ctx.service().await;
    ctx.state.db.close().await.unwrap();
    let res = test::call_service(&app, test::TestRequest::get().uri("/ready").to_request()).await;
    let body = expect_error(res, 503, "SERVICE_UNAVAILABLE").await;
    assert_eq!(body["error"]["details"]["database"], "unavailable");
    let res = test::call_service(
        &app,
        register(r#"{"email":"down@b.org","password":"long enough pass","first_name":"A","last_name":"B"}"#).to_request(),
    )
    .await;
    let body = expect_error(res, 503, "SERVICE_UNAVAILABLE").await;
    let text = body.to_string().to_lowercase();
    for leak in ["select", "insert", "sqlx", "pool", "panicked", "backtrace"] {
        assert!(!text.contains(leak), "error body leaks {leak:?}: {text}");
    }
}

/// The field errors of a 422 as `(field, code)` pairs.
fn fields(body: &serde_json::Value) -> Vec<(String, String)> {
    body["error"]["details"]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f["field"].as_str().unwrap_or_default().to_owned(),
                        f["code"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn query_strings_are_parsed_one_way_everywhere(ctx: TestContext) {
    use actix_web::http::Method;
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "query-rules@example.org").await;
    let org = new_org(&app, &token, "Query PTO").await;
    // Unknown parameters: refused by name on lists with and without parameters of their own.
    for (uri, named) in [
        ("/api/v2/orgs?bogus=1".to_owned(), vec!["bogus"]),
        ("/api/v2/districts?limt=5".to_owned(), vec!["limt"]),
        (
            format!("/api/v2/orgs/{org}/roles?x=1&y=2&x=3"),
            vec!["x", "y"],
        ),
        (
            format!("/api/v2/orgs/{org}/users/export?limit=5"),
            vec!["limit"],
        ),
        (format!("/api/v2/orgs/{org}/users?limt=5"), vec!["limt"]),
        (
            format!("/api/v2/orgs/{org}/audit-logs/export?limit=5"),
            vec!["limit"],
        ),
    ] {
        let (status, body) = send(&app, Method::GET, &uri, Some(&token), None).await;
        assert_eq!(status, 422, "{uri}: {body}");
        let got = fields(&body);
        assert_eq!(
            got.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
            named,
            "{uri}: {body}"
        );
        assert!(got.iter().all(|(_, c)| c == "unknown_parameter"), "{body}");
    }
    // Bad values name their parameter, with the same codes as body fields.
    for (uri, field, code) in [
        (
            format!("/api/v2/orgs/{org}/users?limit=abc"),
            "limit",
            "invalid_type",
        ),
        (
            format!("/api/v2/orgs/{org}/users?sort=height"),
            "sort",
            "invalid_value",
        ),
        (
            format!("/api/v2/orgs/{org}/audit-logs?category=nope"),
            "category",
            "invalid_value",
        ),
    ] {
        let (status, body) = send(&app, Method::GET, &uri, Some(&token), None).await;
        assert_eq!(status, 422, "{uri}: {body}");
        assert_eq!(
            fields(&body).first().cloned(),
            Some((field.to_owned(), code.to_owned())),
            "{uri}: {body}"
        );
    }
    // Declared parameters still work.
    let (status, body) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users?limit=5&sort=name"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn messages_are_written_for_people(ctx: TestContext) {
    use actix_web::http::Method;
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "plain-words@example.org").await;
    let org = new_org(&app, &token, "Words PTO").await;
    let rust_words = [
        "variant", "untagged", "struct", "enum ", "u64", "u32", "i64", "`",
    ];
    for (method, uri, json) in [
        (
            Method::POST,
            format!("/api/v2/orgs/{org}/users"),
            serde_json::json!({"email": "x@example.org", "first_name": "X", "last_name": "Y", "role": "emperor"}),
        ),
        (
            Method::POST,
            format!("/api/v2/orgs/{org}/users"),
            serde_json::json!({"email": "x@example.org", "first_name": "X", "last_name": "Y", "role": {"nope": 1}}),
        ),
        (
            Method::PATCH,
            format!("/api/v2/orgs/{org}"),
            serde_json::json!({"name": 5, "version": "one"}),
        ),
        (
            Method::POST,
            "/api/v2/orgs".to_owned(),
            serde_json::json!({"name": "A", "colour": "red"}),
        ),
    ] {
        let (status, body) = send(&app, method.clone(), &uri, Some(&token), Some(json)).await;
        assert_eq!(status, 422, "{method} {uri}: {body}");
        let list = body["error"]["details"]["fields"]
            .as_array()
            .expect("fields");
        assert!(!list.is_empty(), "{body}");
        for f in list {
            let message = f["message"].as_str().expect("message");
            assert!(
                rust_words.iter().all(|w| !message.contains(w)),
                "{method} {uri}: {message:?}"
            );
            assert!(
                !f["field"].as_str().unwrap_or_default().is_empty(),
                "{body}"
            );
        }
    }
}
