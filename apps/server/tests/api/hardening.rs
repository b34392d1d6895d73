//! Input and response hardening: body caps and JSON structure limits (never a 500),
//! security headers, HSTS behind TLS, CORS by allow-list, no server banner.

use actix_web::test;

use crate::backend_tests;
use crate::helpers::{TestContext, expect_error};

backend_tests!(
    oversized_deep_and_malformed_bodies_are_413_or_422_never_500,
    declared_length_over_the_cap_is_413_before_reading,
    security_headers_are_on_every_response,
    docs_page_has_a_strict_csp_pinning_its_scripts,
    hsts_only_behind_tls,
    cors_preflight_follows_the_allow_list,
    member_list_query_strings_never_fail_the_server,
);

fn post_json(uri: &str, body: String) -> test::TestRequest {
    test::TestRequest::post()
        .uri(uri)
        .insert_header(("content-type", "application/json"))
        .set_payload(body)
}

async fn oversized_deep_and_malformed_bodies_are_413_or_422_never_500(ctx: TestContext) {
    let app = ctx.service().await;
    let register = "/api/v2/auth/register";
    let cases: Vec<(String, u16, &str)> = vec![
        (
            format!(r#"{{"email":"{}"}}"#, "a".repeat(70 * 1024)),
            413,
            "",
        ),
        (
            format!("{}1{}", "[".repeat(40), "]".repeat(40)),
            422,
            "too_deep",
        ),
        (
            format!(
                r#"{{"email":"a@b.org","password":"{}","first_name":"A","last_name":"B"}}"#,
                "p".repeat(20 * 1024)
            ),
            422,
            "too_long",
        ),
        (
            format!(r#"{{"email":[{}]}}"#, vec!["1"; 2_000].join(",")),
            422,
            "too_many_items",
        ),
        ("{\"email\":\"a@b.org\",".to_owned(), 422, "invalid_json"),
        ("\u{0}\u{1}garbage".to_owned(), 422, "invalid_json"),
        ("[]".to_owned(), 422, "invalid_type"),
        (
            r#"{"email":"a@b.org","password":12,"first_name":"A","last_name":"B"}"#.to_owned(),
            422,
            "invalid_type",
        ),
    ];
    for (body, status, field_code) in cases {
        let res = test::call_service(&app, post_json(register, body).to_request()).await;
        let code = if status == 413 {
            "PAYLOAD_TOO_LARGE"
        } else {
            "VALIDATION_FAILED"
        };
        let env = expect_error(res, status, code).await;
        if !field_code.is_empty() {
            assert_eq!(
                env["error"]["details"]["fields"][0]["code"], field_code,
                "{env}"
            );
        }
    }
    // Deep nesting inside an otherwise valid body is refused the same way.
    let nested = format!(
        r#"{{"email":"a@b.org","password":"long enough pass","first_name":"A","last_name":"B","x":{}{}}}"#,
        "{\"a\":".repeat(33),
        "}".repeat(33)
    );
    let res = test::call_service(&app, post_json(register, nested).to_request()).await;
    let env = expect_error(res, 422, "VALIDATION_FAILED").await;
    assert_eq!(env["error"]["details"]["fields"][0]["code"], "too_deep");
}

async fn declared_length_over_the_cap_is_413_before_reading(ctx: TestContext) {
    let app = ctx.service().await;
    let req = test::TestRequest::post()
        .uri("/api/v2/auth/login")
        .insert_header(("content-type", "application/json"))
        .set_payload("{}")
        .insert_header(("content-length", "10000000"))
        .to_request();
    let res = test::call_service(&app, req).await;
    let env = expect_error(res, 413, "PAYLOAD_TOO_LARGE").await;
    assert_eq!(env["error"]["details"]["limit_bytes"], 64 * 1024);
}

const HARDENING_HEADERS: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

async fn security_headers_are_on_every_response(ctx: TestContext) {
    let app = ctx.service().await;
    let requests = [
        test::TestRequest::get().uri("/health"),
        test::TestRequest::get().uri("/api/v2/nope"),
        test::TestRequest::get().uri("/api/v2/me"),
        test::TestRequest::delete().uri("/health"),
        post_json("/api/v2/auth/login", "{".into()),
    ];
    for req in requests {
        let res = test::call_service(&app, req.to_request()).await;
        let h = res.headers();
        for (name, value) in HARDENING_HEADERS {
            assert_eq!(
                h.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{name} on {} {}",
                res.request().method(),
                res.request().path()
            );
        }
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert!(h.get("server").is_none(), "no server banner");
        assert!(
            h.get("strict-transport-security").is_none(),
            "plain HTTP: no HSTS"
        );
    }
}

async fn docs_page_has_a_strict_csp_pinning_its_scripts(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/docs").to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    let csp = res
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let html = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    let script_src = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .expect("a script-src directive");
    // Only hashes: no inline escape hatch, no eval, no host (the bundle is served inline).
    for source in script_src.split_whitespace().skip(1) {
        assert!(source.starts_with("'sha256-"), "{source} in {script_src}");
    }
    // One hash per script element of the page (a script element ends at the first
    // `</script>`, whatever its text holds).
    let inline_scripts = html.matches("</script>").count();
    assert_eq!(script_src.split_whitespace().count() - 1, inline_scripts);
    assert!(
        !csp.contains("http:") && !csp.contains("https:"),
        "no CDN: {csp}"
    );
    assert!(
        csp.contains("connect-src 'self'"),
        "the page fetches /openapi.json"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
}

async fn hsts_only_behind_tls(ctx: TestContext) {
    let peer: std::net::SocketAddr = "10.1.2.3:4000".parse().unwrap();
    let stranger: std::net::SocketAddr = "192.0.2.9:4000".parse().unwrap();
    let behind_proxy = TestContext::with_env(ctx.backend, &[("TRUSTED_PROXIES", "10.0.0.0/8")])
        .await
        .unwrap();
    let app = behind_proxy.service().await;
    let hsts = |res: &actix_web::dev::ServiceResponse<_>| {
        res.headers().contains_key("strict-transport-security")
    };
    let via = |addr, proto: &str| {
        test::TestRequest::get()
            .uri("/health")
            .peer_addr(addr)
            .insert_header(("x-forwarded-proto", proto.to_owned()))
            .to_request()
    };
    assert!(hsts(&test::call_service(&app, via(peer, "https")).await));
    assert!(!hsts(&test::call_service(&app, via(peer, "http")).await));
    // Anyone else's X-Forwarded-Proto is not believed.
    assert!(!hsts(
        &test::call_service(&app, via(stranger, "https")).await
    ));
    drop(app);
    drop(behind_proxy);

    let always = TestContext::with_env(ctx.backend, &[("HSTS", "true")])
        .await
        .unwrap();
    let app = always.service().await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/health").to_request()).await;
    assert_eq!(
        res.headers().get("strict-transport-security").unwrap(),
        "max-age=31536000; includeSubDomains"
    );
}

async fn cors_preflight_follows_the_allow_list(ctx: TestContext) {
    let allowed = "https://app.example.org";
    let ctx2 = TestContext::with_env(
        ctx.backend,
        &[(
            "CORS_ALLOWED_ORIGINS",
            "https://app.example.org, http://localhost:5173",
        )],
    )
    .await
    .unwrap();
    let app = ctx2.service().await;
    let preflight = |origin: &str| {
        test::TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/api/v2/auth/login")
            .insert_header(("origin", origin.to_owned()))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header((
                "access-control-request-headers",
                "content-type, authorization",
            ))
            .to_request()
    };
    let res = test::call_service(&app, preflight(allowed)).await;
    assert_eq!(res.status().as_u16(), 204);
    let h = res.headers();
    assert_eq!(h.get("access-control-allow-origin").unwrap(), allowed);
    let methods = h
        .get("access-control-allow-methods")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"));
    let headers = h
        .get("access-control-allow-headers")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(headers.contains("authorization") && headers.contains("content-type"));
    assert!(headers.contains("idempotency-key"), "{headers}");
    assert!(h.get("access-control-allow-credentials").is_none());
    assert!(h.get("vary").unwrap().to_str().unwrap().contains("Origin"));

    let res = test::call_service(&app, preflight("https://evil.example.com")).await;
    assert!(res.headers().get("access-control-allow-origin").is_none());
    expect_error(res, 403, "PERMISSION_DENIED").await;

    // Actual requests: the origin is echoed only when allowed, never `*`.
    let get = |origin: &str| {
        test::TestRequest::get()
            .uri("/health")
            .insert_header(("origin", origin.to_owned()))
            .to_request()
    };
    let res = test::call_service(&app, get("http://localhost:5173")).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers().get("access-control-allow-origin").unwrap(),
        "http://localhost:5173"
    );
    let exposed = res
        .headers()
        .get("access-control-expose-headers")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("location") && exposed.contains("idempotent-replayed"),
        "{exposed}"
    );
    let res = test::call_service(&app, get("https://evil.example.com")).await;
    assert!(res.headers().get("access-control-allow-origin").is_none());

    // Without an allow-list nothing is allowed cross-origin.
    let default_app = ctx.service().await;
    let res = test::call_service(&default_app, preflight(allowed)).await;
    assert_eq!(res.status().as_u16(), 403);
}

/// A property test through the real `Query` extractor of the member list
/// (`MemberListQuery`: filters, sort, order, cursor, limit): generated query strings,
/// valid and not, answer 200 or a 422 envelope, never a 5xx.
async fn member_list_query_strings_never_fail_the_server(ctx: TestContext) {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    let app = ctx.service().await;
    let (_, token) = crate::helpers::signed_up(&app, "query@example.org").await;
    let (status, body) = crate::helpers::send(
        &app,
        actix_web::http::Method::POST,
        "/api/v2/orgs",
        Some(&token),
        Some(serde_json::json!({"name": "Query PTO", "signup_code": "QUERY2024"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();

    let key = proptest::prop_oneof![
        proptest::strategy::Just("sort"),
        proptest::strategy::Just("order"),
        proptest::strategy::Just("limit"),
        proptest::strategy::Just("cursor"),
        proptest::strategy::Just("role"),
        proptest::strategy::Just("status"),
        proptest::strategy::Just("committee"),
        proptest::strategy::Just("joined_from"),
        proptest::strategy::Just("joined_to"),
        proptest::strategy::Just("bogus"),
    ];
    let value = proptest::prop_oneof![
        proptest::strategy::Just("name".to_owned()),
        proptest::strategy::Just("email".to_owned()),
        proptest::strategy::Just("last_active".to_owned()),
        proptest::strategy::Just("desc".to_owned()),
        proptest::strategy::Just("admin".to_owned()),
        proptest::strategy::Just("active".to_owned()),
        proptest::strategy::Just("2026-01-01T00:00:00Z".to_owned()),
        "-?[0-9]{1,12}",
        "[0-9a-f]{0,64}",
        "(%[0-9A-F]{2}|[a-zA-Z0-9+&=%:._-]){0,30}",
    ];
    let pairs = proptest::collection::vec((key, value), 0..5);
    let mut runner = TestRunner::deterministic();
    for _ in 0..96 {
        let query: Vec<(&str, String)> = pairs.new_tree(&mut runner).unwrap().current();
        let qs = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let req = test::TestRequest::get()
            .uri(&format!("/api/v2/orgs/{org}/users?{qs}"))
            .insert_header(("authorization", format!("Bearer {token}")))
            .to_request();
        let res = test::call_service(&app, req).await;
        let status = res.status().as_u16();
        assert!(status == 200 || status == 422, "{status} for ?{qs}");
        if status == 422 {
            expect_error(res, 422, "VALIDATION_FAILED").await;
        }
    }
}
