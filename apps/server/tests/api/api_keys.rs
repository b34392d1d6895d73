use actix_web::http::Method;

use crate::backend_tests;
use crate::helpers::{TestContext, all_pages, create, send, signed_up};

backend_tests!(api_keys_are_scoped_shown_once_and_revocable);

async fn api_keys_are_scoped_shown_once_and_revocable(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "keys-admin@example.org").await;
    let (_, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Keys PTO", "signup_code": "KEYS01"})),
    )
    .await;
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    let (_, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Other PTO", "signup_code": "KEYS02"})),
    )
    .await;
    let other = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    let keys = format!("/api/v2/orgs/{org}/api-keys");

    // 201 with the key's address in `Location`; it reads the key, never its token.
    let (at, viewer) = create(&app, &keys, Some(&admin), serde_json::json!({"name": "directory", "permissions": ["users.view"], "expires_in_days": 30})).await;
    let viewer_token = viewer["data"]["token"].as_str().unwrap().to_owned();
    let viewer_id = viewer["data"]["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(at, format!("{keys}/{viewer_id}"));
    let (status, read) = send(&app, Method::GET, &at, Some(&admin), None).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["data"]["name"], "directory");
    assert!(read["data"].get("token").is_none());
    let (status, events) = send(&app, Method::POST, &keys, Some(&admin), Some(serde_json::json!({"name": "events", "permissions": ["events.view"], "expires_in_days": 30}))).await;
    assert_eq!(status, 201);
    let events_token = events["data"]["token"].as_str().unwrap().to_owned();

    // Authorized exactly as its grants say.
    let users = format!("/api/v2/orgs/{org}/users");
    assert_eq!(
        send(&app, Method::GET, &users, Some(&viewer_token), None)
            .await
            .0,
        200
    );
    let (status, body) = send(&app, Method::GET, &users, Some(&events_token), None).await;
    assert_eq!(status, 403, "a key without users.view: {body}");
    // Bound to its org.
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{other}/users"),
        Some(&viewer_token),
        None,
    )
    .await;
    assert!(status == 401 || status == 404, "another org: {status}");
    // Not a person: outside its org the token itself does not verify (401); admin
    // routes of its org refuse it (403).
    assert_eq!(
        send(&app, Method::GET, "/api/v2/me", Some(&viewer_token), None)
            .await
            .0,
        401
    );
    assert_eq!(
        send(&app, Method::GET, &keys, Some(&viewer_token), None)
            .await
            .0,
        403
    );

    // Listed without tokens, with last use.
    let (_, list) = send(&app, Method::GET, &keys, Some(&admin), None).await;
    let listed = list["data"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let paged = all_pages(&app, &keys, Some(&admin), Some(2)).await;
    assert_eq!(paged[0]["id"], viewer_id.as_str(), "creation order");
    assert!(listed.iter().all(|k| k.get("token").is_none()));
    assert!(
        listed
            .iter()
            .any(|k| k["id"] == viewer_id.as_str() && k["last_used_at"].is_string())
    );

    // Revoked: 401 at once.
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{keys}/{viewer_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let (status, read) = send(&app, Method::GET, &at, Some(&admin), None).await;
    assert_eq!(
        (status, &read["data"]["revoked"]),
        (200, &serde_json::json!(true))
    );
    assert_eq!(
        send(&app, Method::GET, &users, Some(&viewer_token), None)
            .await
            .0,
        401
    );

    // A key cannot hold what its creator does not (budget.approve is disabled here).
    let (_, matrix) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&admin),
        None,
    )
    .await;
    let version = matrix["data"]["version"].as_u64().unwrap();
    send(&app, Method::PUT, &format!("/api/v2/orgs/{org}/permissions/settings"), Some(&admin), Some(serde_json::json!({"version": version, "changes": [{"key": "budget.approve", "enabled": false}]}))).await;
    let (status, body) = send(&app, Method::POST, &keys, Some(&admin), Some(serde_json::json!({"name": "x", "permissions": ["budget.approve"], "expires_in_days": 1}))).await;
    assert_eq!(status, 403, "{body}");
}
