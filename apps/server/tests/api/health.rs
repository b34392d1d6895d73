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

mod metrics {
    use actix_web::test;

    use crate::helpers::{Backend, TestContext};

    fn series(text: &str, prefix: &str) -> u64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    #[actix_web::test]
    async fn metrics_move_after_traffic() {
        let ctx = TestContext::new(Backend::Sqlite).await.unwrap();
        let app = ctx.service().await;
        let scrape = || test::TestRequest::get().uri("/metrics").to_request();
        let before = String::from_utf8(
            test::read_body(test::call_service(&app, scrape()).await)
                .await
                .to_vec(),
        )
        .unwrap();
        for _ in 0..3 {
            test::call_service(&app, test::TestRequest::get().uri("/health").to_request()).await;
        }
        let res = test::call_service(&app, scrape()).await;
        assert!(
            res.headers()
                .get("content-type")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let after = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
        let labels =
            "http_route=\"/health\",http_request_method=\"GET\",http_response_status_code=\"200\"";
        let key = format!("http_server_request_duration_seconds_count{{{labels}}}");
        assert!(series(&after, &key) >= series(&before, &key) + 3, "{after}");
        assert!(after.contains(&format!(
            "http_server_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}}"
        )));
        assert!(after.contains("# TYPE http_server_request_duration_seconds histogram"));
        assert!(
            !after.contains("ptoc_http_"),
            "the old names are gone: {after}"
        );
        assert!(after.contains("ptoc_cache_hits_total{cache=\"token_verify\",layer=\"l1\"}"));
    }
}
