//! Cross-tenant isolation: members of org A call every org-scoped route of org B (with
//! real and guessed ids, in random order) and get 404 or 403 only, never data.

use actix_web::http::Method;

use crate::backend_tests;
use crate::helpers::{Rng, TestContext, send, signed_up};

backend_tests!(members_of_one_org_never_see_another);

async fn members_of_one_org_never_see_another(ctx: TestContext) {
    let app = ctx.service().await;
    // Org B, with real members, roles, grants and keys to aim at.
    let (b_admin_id, b_admin) = signed_up(&app, "b-admin@example.org").await;
    let (_, org_b) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&b_admin),
        Some(serde_json::json!({"name": "Org B", "signup_code": "ORGB01"})),
    )
    .await;
    let org_b = org_b["data"]["org"]["id"].as_str().unwrap().to_owned();
    let (b_member_id, b_member) = signed_up(&app, "b-member@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&b_member),
        Some(serde_json::json!({"signup_code": "ORGB01"})),
    )
    .await;
    let (_, role) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org_b}/roles"),
        Some(&b_admin),
        Some(serde_json::json!({"name": "Treasurer", "counts_as": "board_member"})),
    )
    .await;
    let role_b = role["data"]["id"].as_str().unwrap().to_owned();
    let (_, key) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org_b}/api-keys"),
        Some(&b_admin),
        Some(serde_json::json!({"name": "k", "permissions": ["users.view"], "expires_in_days": 1})),
    )
    .await;
    let key_b = key["data"]["key"]["id"].as_str().unwrap().to_owned();
    // Org A: an admin (the strongest role) and a volunteer, plus an API key of A.
    let (_, a_admin) = signed_up(&app, "a-admin@example.org").await;
    let (_, org_a) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&a_admin),
        Some(serde_json::json!({"name": "Org A", "signup_code": "ORGA01"})),
    )
    .await;
    let org_a = org_a["data"]["org"]["id"].as_str().unwrap().to_owned();
    let (_, a_vol) = signed_up(&app, "a-vol@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&a_vol),
        Some(serde_json::json!({"signup_code": "ORGA01"})),
    )
    .await;
    let (_, a_key) = send(&app, Method::POST, &format!("/api/v2/orgs/{org_a}/api-keys"), Some(&a_admin), Some(serde_json::json!({"name": "a", "permissions": ["users.view", "events.view"], "expires_in_days": 1}))).await;
    let a_key = a_key["data"]["token"].as_str().unwrap().to_owned();
    let attackers = [a_admin.as_str(), a_vol.as_str(), a_key.as_str()];

    let doc = send(&app, Method::GET, "/openapi.json", None, None).await.1;
    let mut rng = Rng(0x005E_ED0F_7E57);
    let real_ids = [
        b_admin_id.clone(),
        b_member_id.clone(),
        role_b.clone(),
        key_b.clone(),
    ];
    let mut calls = 0;
    let mut routes: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.contains("{org_id}") {
            for method in item.as_object().unwrap().keys() {
                routes.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(
        routes.len() > 20,
        "the document lists the org routes ({})",
        routes.len()
    );
    for round in 0..3 {
        // Shuffle the order each round.
        for i in (1..routes.len()).rev() {
            let j = usize::try_from(rng.next() % (i as u64 + 1)).unwrap();
            routes.swap(i, j);
        }
        for (method, path) in &routes {
            let mut uri = path.replace("{org_id}", &org_b);
            for placeholder in ["{user_id}", "{key_id}", "{session_id}"] {
                let id = if rng.next().is_multiple_of(2) {
                    real_ids[usize::try_from(rng.next() % 4).unwrap()].clone()
                } else {
                    uuid::Uuid::now_v7().to_string()
                };
                uri = uri.replace(placeholder, &id);
            }
            uri = uri.replace("{key}", "users.view");
            let query = match path.as_str() {
                p if p.ends_with("/check")
                    || p.ends_with("/explain")
                    || p.ends_with("/holders") =>
                {
                    "?key=users.view"
                }
                _ => "",
            };
            let body = match method.as_str() {
                "GET" | "DELETE" => None,
                _ => Some(
                    serde_json::json!({"version": 1, "changes": [{"key": "users.view", "min_role": "volunteer"}], "keys": ["users.view"],
                    "user_id": b_member_id, "key": "users.view", "name": "x", "permissions": ["users.view"], "expires_in_days": 1, "role": "admin"}),
                ),
            };
            let token = attackers[usize::try_from((rng.next() + round) % 3).unwrap()];
            let (status, response) = send(
                &app,
                method.parse().unwrap(),
                &format!("{uri}{query}"),
                Some(token),
                body,
            )
            .await;
            calls += 1;
            assert!(
                [401, 403, 404].contains(&status),
                "{method} {uri} from org A answered {status}: {response}"
            );
            assert!(
                response.get("data").is_none(),
                "{method} {uri} leaked data: {response}"
            );
            let text = response.to_string();
            for secret in [&org_b, &b_admin_id, &b_member_id, &role_b, &key_b] {
                assert!(
                    !text.contains(secret.as_str()) || uri.contains(secret.as_str()),
                    "{method} {uri} echoed an id of org B: {text}"
                );
            }
        }
    }
    assert!(calls >= routes.len() * 3);
    // Org B's data is intact and still visible to its own members.
    let (status, list) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org_b}/users"),
        Some(&b_admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
}
