use actix_web::test;

use crate::backend_tests;
use crate::helpers::{TestContext, expect_error, json_body};

backend_tests!(
    register_creates_user,
    duplicate_email_is_409_case_insensitively,
    all_invalid_fields_reported_at_once
);

fn register(body: serde_json::Value) -> actix_http::Request {
    test::TestRequest::post()
        .uri("/api/v2/auth/register")
        .set_json(body)
        .to_request()
}

async fn register_creates_user(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(
        &app,
        register(serde_json::json!({"email":" Jane.Doe@Example.org ","password":"correct horse battery","first_name":"Jane","last_name":"Doe"})),
    )
    .await;
    assert_eq!(res.status().as_u16(), 201);
    let body = json_body(res).await;
    assert_eq!(body["data"]["email"], "jane.doe@example.org");
    assert_eq!(body["data"]["status"], "active");
    let id = body["data"]["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    assert!(body["data"].get("password").is_none() && body["data"].get("password_hash").is_none());
}

async fn duplicate_email_is_409_case_insensitively(ctx: TestContext) {
    let app = ctx.service().await;
    let first = test::call_service(
        &app,
        register(serde_json::json!({"email":"sam@example.org","password":"correct horse battery","first_name":"Sam","last_name":"Lee"})),
    )
    .await;
    assert_eq!(first.status().as_u16(), 201);
    let again = test::call_service(
        &app,
        register(serde_json::json!({"email":"SAM@example.org","password":"another long secret","first_name":"Sam","last_name":"Lee"})),
    )
    .await;
    expect_error(again, 409, "CONFLICT").await;
}

async fn all_invalid_fields_reported_at_once(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(
        &app,
        register(serde_json::json!({"email":"not-an-email","password":"short","first_name":"","last_name":"Doe"})),
    )
    .await;
    let body = expect_error(res, 422, "VALIDATION_FAILED").await;
    let fields: Vec<&str> = body["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for expected in ["email", "password", "first_name"] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }
}
