use actix_web::http::Method;

use crate::backend_tests;
use crate::helpers::{TestContext, all_pages, create, send, signed_up};

backend_tests!(
    orgs_are_created_joined_and_listed_in_one_shape,
    create_join_and_see_orgs,
    join_errors_are_clear,
    org_settings_need_admin_and_version
);

async fn create_org<S, B>(app: &S, token: &str, name: &str, code: &str) -> serde_json::Value
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
        "/api/v2/orgs",
        Some(token),
        Some(serde_json::json!({"name": name, "signup_code": code})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

async fn create_join_and_see_orgs(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "admin@example.org").await;
    let created = create_org(&app, &admin, "Sunset Elementary PTO", "sunset-2024").await;
    assert_eq!(created["org"]["signup_code"], "SUNSET2024");
    assert_eq!(created["membership"]["role"], "admin");
    let org_id = created["org"]["id"].as_str().unwrap().to_owned();

    let (_, parent) = signed_up(&app, "parent@example.org").await;
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org_id}"),
        Some(&parent),
        None,
    )
    .await;
    assert_eq!(status, 404, "a non-member cannot see the org");
    let (status, joined) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&parent),
        Some(serde_json::json!({"signup_code": "Sunset 2024"})),
    )
    .await;
    assert_eq!(status, 201, "{joined}");
    assert_eq!(joined["data"]["membership"]["role"], "volunteer");
    assert!(
        joined["data"]["org"].get("signup_code").is_none(),
        "volunteers do not see the code"
    );
    let (status, org) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org_id}"),
        Some(&parent),
        None,
    )
    .await;
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["data"]["name"], "Sunset Elementary PTO");

    let (_, me) = send(&app, Method::GET, "/api/v2/me", Some(&parent), None).await;
    assert_eq!(me["data"]["memberships"][0]["org_id"], org_id.as_str());
    assert_eq!(me["data"]["memberships"][0]["role"], "volunteer");
    let (_, mine) = send(&app, Method::GET, "/api/v2/orgs", Some(&admin), None).await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
}

async fn join_errors_are_clear(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "a2@example.org").await;
    create_org(&app, &admin, "Maple PTA", "MAPLE1").await;
    let (_, parent) = signed_up(&app, "p2@example.org").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&parent),
        Some(serde_json::json!({"signup_code": "NOPE99"})),
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signup code"),
        "{body}"
    );
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&parent),
        Some(serde_json::json!({"signup_code": "!!"})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        send(
            &app,
            Method::POST,
            "/api/v2/orgs/join",
            Some(&parent),
            Some(serde_json::json!({"signup_code": "maple1"}))
        )
        .await
        .0,
        201
    );
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&parent),
        Some(serde_json::json!({"signup_code": "MAPLE1"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("CONFLICT"))
    );
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&parent),
        Some(serde_json::json!({"name": "Dup", "signup_code": "MAPLE1"})),
    )
    .await;
    assert_eq!(status, 409, "signup codes are unique");
}

async fn org_settings_need_admin_and_version(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "a3@example.org").await;
    let created = create_org(&app, &admin, "Oak PTO", "OAKPTO").await;
    let org_id = created["org"]["id"].as_str().unwrap().to_owned();
    let (_, vol) = signed_up(&app, "v3@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(serde_json::json!({"signup_code": "OAKPTO"})),
    )
    .await;
    let uri = format!("/api/v2/orgs/{org_id}");
    let (status, body) = crate::helpers::patch_current(
        &app,
        &uri,
        Some(&vol),
        Some(serde_json::json!({"name": "Hijacked"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = crate::helpers::patch_current(
        &app,
        &uri,
        Some(&admin),
        Some(serde_json::json!({"version": 1, "name": "Oak Grove PTO"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["version"], 2);
    let (status, body) = crate::helpers::patch_current(
        &app,
        &uri,
        Some(&admin),
        Some(serde_json::json!({"version": 1, "name": "Stale"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (412, Some("VERSION_MISMATCH"))
    );
    let (status, rotated) = send(
        &app,
        Method::POST,
        &format!("{uri}/signup-code"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(rotated["data"]["signup_code"], "OAKPTO");
    let (_, late) = signed_up(&app, "late@example.org").await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&late),
        Some(serde_json::json!({"signup_code": "OAKPTO"})),
    )
    .await;
    assert_eq!(status, 404, "the old code stops working");
}

/// Creating and joining an org answer 201 with a `Location` that reads what was
/// made (the org; the membership); the caller's orgs page like every list.
async fn orgs_are_created_joined_and_listed_in_one_shape(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "shape-admin@example.org").await;
    let mut orgs = Vec::new();
    for (name, code) in [("Shape One PTO", "SHAPE001"), ("Shape Two PTO", "SHAPE002")] {
        let (at, body) = create(
            &app,
            "/api/v2/orgs",
            Some(&admin),
            serde_json::json!({"name": name, "signup_code": code}),
        )
        .await;
        let id = body["data"]["org"]["id"].as_str().unwrap().to_owned();
        assert_eq!(at, format!("/api/v2/orgs/{id}"));
        let (status, read) = send(&app, Method::GET, &at, Some(&admin), None).await;
        assert_eq!((status, read["data"]["name"].as_str()), (200, Some(name)));
        orgs.push(id);
    }
    let (parent_id, parent) = signed_up(&app, "shape-parent@example.org").await;
    let (at, body) = create(
        &app,
        "/api/v2/orgs/join",
        Some(&parent),
        serde_json::json!({"signup_code": "SHAPE001"}),
    )
    .await;
    assert_eq!(at, format!("/api/v2/orgs/{}/users/{parent_id}", orgs[0]));
    assert_eq!(body["data"]["org"]["id"], orgs[0].as_str());
    let (status, me) = send(&app, Method::GET, &at, Some(&parent), None).await;
    assert_eq!(
        (status, me["data"]["user_id"].as_str()),
        (200, Some(parent_id.as_str()))
    );

    let listed = all_pages(&app, "/api/v2/orgs", Some(&admin), Some(2)).await;
    orgs.sort();
    assert_eq!(
        listed
            .iter()
            .filter_map(|o| o["org"]["id"].as_str())
            .collect::<Vec<_>>(),
        orgs.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        all_pages(&app, "/api/v2/orgs", Some(&parent), Some(1))
            .await
            .len(),
        1
    );
}
