use actix_web::test;

use crate::backend_tests;
use crate::helpers::{Backend, TestContext, json_body};

backend_tests!(
    health_is_enveloped_with_headers,
    ready_reports_backend,
    client_request_id_is_echoed_only_if_sane
);

async fn health_is_enveloped_with_headers(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/health").to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    let id = res
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let time = res
        .headers()
        .get("x-response-time")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(time.ends_with("ms"), "{time}");
    let body = json_body(res).await;
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["status"], "ok");
    assert_eq!(body["meta"]["request_id"], id.as_str());
    assert_eq!(body["meta"]["version"], "v2");
    assert!(
        time::OffsetDateTime::parse(
            body["meta"]["timestamp"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
}

async fn ready_reports_backend(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/ready").to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    let body = json_body(res).await;
    let expected = match ctx.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["data"]["database_backend"], expected);
    assert_eq!(body["data"]["database"], "ok");
    let redis_expected = if ctx.state.redis.is_some() {
        "ok"
    } else {
        "not_configured"
    };
    assert_eq!(body["data"]["redis"], redis_expected);
}

async fn client_request_id_is_echoed_only_if_sane(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/health")
            .insert_header(("x-request-id", "client-abc.123"))
            .to_request(),
    )
    .await;
    assert_eq!(res.headers().get("x-request-id").unwrap(), "client-abc.123");
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/health")
            .insert_header(("x-request-id", "bad id with spaces"))
            .to_request(),
    )
    .await;
    let id = res.headers().get("x-request-id").unwrap().to_str().unwrap();
    assert_ne!(id, "bad id with spaces");
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "generated ids are UUIDs: {id}"
    );
}
