use std::collections::BTreeSet;

use actix_web::test;

use crate::backend_tests;
use crate::helpers::{TestContext, json_body};

backend_tests!(
    every_route_is_documented_and_routed,
    docs_page_renders,
    served_document_matches_committed,
    every_org_route_declares_its_requirement,
    every_operation_has_examples,
    every_page_size_declares_its_bounds,
);

/// Org-scoped routes open to every active member (their answers are about the caller).
const MEMBER_LEVEL: &[(&str, &str)] = &[
    ("GET", "/api/v2/orgs/{org_id}"),
    ("GET", "/api/v2/orgs/{org_id}/permissions/check"),
    ("POST", "/api/v2/orgs/{org_id}/permissions/check"),
    ("GET", "/api/v2/orgs/{org_id}/permissions/explain"),
    // A member's own activity timeline (another member's needs admin, checked inside).
    ("GET", "/api/v2/orgs/{org_id}/activities"),
    // A member's own profile in the org (committee, children).
    ("PATCH", "/api/v2/orgs/{org_id}/me"),
    // Leaving the org (the last admin cannot: checked inside).
    ("DELETE", "/api/v2/orgs/{org_id}/me"),
    ("GET", "/api/v2/orgs/{org_id}/activities/daily"),
    // A member's own directory privacy choices (issue #17).
    ("GET", "/api/v2/orgs/{org_id}/me/privacy"),
    ("PUT", "/api/v2/orgs/{org_id}/me/privacy"),
    // Confirming one's own details for the org's yearly cycle (issue #17).
    ("POST", "/api/v2/orgs/{org_id}/me/confirm-details"),
    // The org's directory policy: the notice every member's choices refer to.
    ("GET", "/api/v2/orgs/{org_id}/directory-policy"),
    // The org's change events: each filtered per caller by its type's audience
    // (`audit::changes`), decided with the permission engine inside (issue #19).
    ("GET", "/api/v2/orgs/{org_id}/events"),
    ("GET", "/api/v2/orgs/{org_id}/stream"),
];

async fn every_org_route_declares_its_requirement(ctx: TestContext) {
    let doc = served_document(&ctx).await;
    let mut org_routes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.contains("{org_id}") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            org_routes += 1;
            let method = method.to_uppercase();
            let declared =
                op.get("x-required-permission").is_some() || op.get("x-required-role").is_some();
            assert!(
                declared,
                "{method} {path}: every org route declares its requirement"
            );
            let member_level = MEMBER_LEVEL.contains(&(method.as_str(), path.as_str()));
            assert_eq!(
                op.get("x-required-role") == Some(&serde_json::json!("member")),
                member_level,
                "{method} {path}: only the listed routes are open to every member"
            );
        }
    }
    assert!(
        org_routes > MEMBER_LEVEL.len(),
        "the check saw the org routes"
    );
}

fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// Replaces every `{name}` of a path template with a fresh UUID.
fn fill_placeholders(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |e| start + e + 1);
        out.push_str(&uuid::Uuid::now_v7().to_string());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

async fn every_route_is_documented_and_routed(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(
        &app,
        test::TestRequest::get().uri("/openapi.json").to_request(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let doc = json_body(res).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = documented(&doc);
    // The actix app is configured from exactly this table; each entry must be documented…
    let registered: BTreeSet<(String, String)> = ctx
        .api
        .routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(registered, documented);
    // …and each documented operation must reach a handler (not the router's 404/405).
    for (method, path) in &documented {
        let uri = fill_placeholders(path);
        let req = test::TestRequest::default()
            .method(method.parse().unwrap())
            .uri(&uri)
            .to_request();
        let res = test::call_service(&app, req).await;
        let status = res.status().as_u16();
        let body = test::read_body(res).await;
        let text = String::from_utf8_lossy(&body);
        assert!(
            !(status == 404 && text.contains("no such route")) && status != 405,
            "{method} {path} is documented but not routed ({status}: {text})"
        );
    }
    // Every error code the API can answer with is in the schema.
    let codes = doc["components"]["schemas"]["ErrorCode"].to_string();
    for code in pto_server::http::ErrorCode::ALL {
        assert!(
            codes.contains(code.as_str()),
            "{} missing from the ErrorCode schema",
            code.as_str()
        );
    }
}

async fn docs_page_renders(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/docs").to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(
        res.headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = test::read_body(res).await;
    let html = String::from_utf8_lossy(&body);
    assert!(
        html.contains("/openapi.json"),
        "the page loads the served document"
    );
}

async fn served_document_matches_committed(ctx: TestContext) {
    let app = ctx.service().await;
    let res = test::call_service(
        &app,
        test::TestRequest::get().uri("/openapi.json").to_request(),
    )
    .await;
    let served = json_body(res).await;
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/openapi.json"
        ))
        .expect("docs/openapi.json exists (run `cargo xtask openapi`)"),
    )
    .unwrap();
    assert!(
        served == committed,
        "docs/openapi.json is stale: run `cargo xtask openapi`"
    );
}

async fn every_operation_has_examples(ctx: TestContext) {
    let doc = served_document(&ctx).await;
    let mut bodies = 0;
    let mut responses = 0;
    // The API (system routes answer raw documents, not the envelope).
    let api_paths = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.starts_with("/api/"));
    for (path, item) in api_paths {
        for (method, op) in item.as_object().unwrap() {
            if let Some(content) = op["requestBody"]["content"].as_object() {
                for (ct, media) in content {
                    if ct.starts_with("application/json") {
                        bodies += 1;
                        assert!(
                            media.get("example").is_some_and(|e| !e.is_null()),
                            "{method} {path}: request body without an example"
                        );
                    }
                }
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                if !status.starts_with('2') {
                    continue;
                }
                for (ct, media) in response["content"].as_object().into_iter().flatten() {
                    if ct.starts_with("application/json") {
                        responses += 1;
                        let example = &media["example"];
                        assert_eq!(
                            example["success"], true,
                            "{method} {path} {status}: response example is an envelope"
                        );
                        assert!(
                            example.get("data").is_some(),
                            "{method} {path} {status}: response example without data"
                        );
                    }
                }
            }
        }
    }
    assert!(
        bodies > 20 && responses > 50,
        "{bodies} bodies, {responses} responses"
    );
}

/// A page size the server refuses beyond its bounds (422) says so in the document: a
/// client (or a fuzzer) sending a schema-valid `limit` is never refused for it.
async fn every_page_size_declares_its_bounds(ctx: TestContext) {
    let doc = served_document(&ctx).await;
    let mut limits = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let Some(params) = op["parameters"].as_array() else {
                continue;
            };
            for p in params.iter().filter(|p| p["name"] == "limit") {
                limits += 1;
                let text = p["schema"].to_string();
                assert!(
                    text.contains("\"maximum\"") && text.contains("\"minimum\""),
                    "{method} {path}: `limit` has no bounds in {text}"
                );
            }
        }
    }
    assert!(limits >= 10, "only {limits} `limit` parameters found");
}

/// The OpenAPI document the app serves.
async fn served_document(ctx: &TestContext) -> serde_json::Value {
    let app = ctx.service().await;
    let res = test::call_service(
        &app,
        test::TestRequest::get().uri("/openapi.json").to_request(),
    )
    .await;
    json_body(res).await
}
