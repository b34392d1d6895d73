use actix_web::test;

use crate::backend_tests;
use crate::helpers::{TestContext, expect_error};

backend_tests!(
    unknown_route_is_enveloped_404,
    wrong_method_is_enveloped_405,
    malformed_json_is_422,
    unknown_field_is_422,
    wrong_content_type_is_415,
    oversized_body_is_413,
    database_outage_is_503_without_leaking,
);

async fn unknown_route_is_enveloped_404(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(
        &app,
        test::TestRequest::get().uri("/api/v2/nope").to_request(),
    )
    .await;
    expect_error(res, 404, "NOT_FOUND").await;
}

async fn wrong_method_is_enveloped_405(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(
        &app,
        test::TestRequest::delete().uri("/health").to_request(),
    )
    .await;
    expect_error(res, 405, "METHOD_NOT_ALLOWED").await;
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
