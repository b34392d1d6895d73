use actix_web::http::Method;

use crate::backend_tests;
use crate::helpers::{TestContext, all_pages, send, signed_up};

backend_tests!(
    settings_update_is_atomic_versioned_and_effective,
    grants_and_disabled_keys,
    member_rules_last_admin_and_self_escalation,
    custom_role_counts_as_rank_with_extra_keys,
    routes_enforce_their_declared_permission,
    officer_terms_end_by_themselves,
    suspended_member_denies,
    grants_may_start_later,
);

async fn grants_may_start_later(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, vol) = org_with_volunteer(&app, "s1").await;
    let grants = format!("/api/v2/orgs/{org}/permissions/grants");
    let now = time::OffsetDateTime::now_utc();
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let later = rfc(now + time::Duration::days(1));
    let even_later = rfc(now + time::Duration::days(2));
    // Ending before it starts: 422 on expires_at.
    let (status, body) = send(&app, Method::POST, &grants, Some(&admin), Some(serde_json::json!({"user_id": vol_id, "key": "budget.approve", "starts_at": even_later, "expires_at": later}))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["details"]["fields"][0]["code"],
        "before_start"
    );
    let (status, body) = send(&app, Method::POST, &grants, Some(&admin), Some(serde_json::json!({"user_id": vol_id, "key": "budget.approve", "starts_at": later, "expires_at": even_later}))).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        !allowed(&app, &org, &vol, "budget.approve").await,
        "a grant counts only from its start"
    );
    let (_, list) = send(&app, Method::GET, &grants, Some(&admin), None).await;
    let listed = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "budget.approve")
        .cloned()
        .unwrap();
    assert!(listed["starts_at"].is_string(), "{listed}");
    let (_, explained) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions/explain?key=budget.approve&user_id={vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    let grant_step = explained["data"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "grant")
        .cloned()
        .unwrap();
    assert_eq!(grant_step["grant"]["state"], "pending", "{explained}");
    // Started in the past: counts now.
    let earlier = rfc(now - time::Duration::hours(1));
    let (status, _) = send(
        &app,
        Method::POST,
        &grants,
        Some(&admin),
        Some(serde_json::json!({"user_id": vol_id, "key": "budget.approve", "starts_at": earlier})),
    )
    .await;
    assert_eq!(status, 201);
    assert!(allowed(&app, &org, &vol, "budget.approve").await);
}

async fn suspended_member_denies(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, vol) = org_with_volunteer(&app, "x1").await;
    let check = format!("/api/v2/orgs/{org}/permissions/check?key=events.view&user_id={vol_id}");
    let (_, before) = send(&app, Method::GET, &check, Some(&admin), None).await;
    assert_eq!(before["data"]["allowed"], true, "{before}");
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/users/{vol_id}"),
        Some(&admin),
        Some(serde_json::json!({"status": "suspended"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, after) = send(&app, Method::GET, &check, Some(&admin), None).await;
    assert_eq!(
        after["data"]["allowed"], false,
        "a suspended member holds nothing: {after}"
    );
    let (_, explained) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions/explain?key=events.view&user_id={vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(explained["data"]["allowed"], false);
    // The suspended member cannot act in the org at all.
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users"),
        Some(&vol),
        None,
    )
    .await;
    assert_eq!(status, 403);
}

async fn officer_terms_end_by_themselves(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, vol) = org_with_volunteer(&app, "t1").await;
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/users/{vol_id}"),
        Some(&admin),
        Some(serde_json::json!({
        "role": "board_member", "role_ends_at": "2026-06-30T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["role"]["name"], "board_member");
    let ended = ctx
        .state
        .end_expired_terms(time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(ended, 1);
    let (_, member) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users/{vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(member["data"]["role"]["name"], "volunteer");
    assert!(member["data"]["role_ends_at"].is_null());
    assert!(!allowed(&app, &org, &vol, "budget.delete").await);
    let (_, logs) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?action=member.term_end"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(logs["data"].as_array().unwrap().len(), 1, "{logs}");
    assert_eq!(logs["data"][0]["actor"], "system");
    // Nothing left to end.
    assert_eq!(
        ctx.state
            .end_expired_terms(time::OffsetDateTime::now_utc())
            .await
            .unwrap(),
        0
    );
}

/// An org with an admin and a volunteer; returns (org id, admin token, volunteer id, volunteer token).
pub(crate) async fn org_with_volunteer<S, B>(app: &S, tag: &str) -> (String, String, String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (_, admin) = signed_up(app, &format!("admin-{tag}@example.org")).await;
    let code = format!("CODE{tag}");
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Test PTO", "signup_code": code})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    let (vol_id, vol) = signed_up(app, &format!("vol-{tag}@example.org")).await;
    let (status, _) = send(
        app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(serde_json::json!({"signup_code": code})),
    )
    .await;
    assert_eq!(status, 201);
    (org, admin, vol_id, vol)
}

async fn allowed<S, B>(app: &S, org: &str, token: &str, key: &str) -> bool
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
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions/check?key={key}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["allowed"].as_bool().unwrap()
}

async fn settings_update_is_atomic_versioned_and_effective(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, _, vol) = org_with_volunteer(&app, "s1").await;
    assert!(!allowed(&app, &org, &vol, "events.create").await);
    let (status, matrix) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(matrix["data"]["permissions"].as_array().unwrap().len(), 28);
    let version = matrix["data"]["version"].as_u64().unwrap();
    let uri = format!("/api/v2/orgs/{org}/permissions/settings");
    // Without a version (body or If-Match): 428, nothing applied.
    let (status, body) = send(
        &app,
        Method::PUT,
        &uri,
        Some(&admin),
        Some(serde_json::json!({"changes": [
        {"key": "events.create", "min_role": "volunteer"}]})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (428, Some("PRECONDITION_REQUIRED")),
        "{body}"
    );
    // One bad key refuses the whole batch.
    let (status, _) = send(&app, Method::PUT, &uri, Some(&admin), Some(serde_json::json!({"version": version, "changes": [
        {"key": "events.create", "min_role": "volunteer"}, {"key": "events.nope", "enabled": false}]}))).await;
    assert_eq!(status, 422);
    assert!(
        !allowed(&app, &org, &vol, "events.create").await,
        "nothing was applied"
    );
    let (status, body) = send(
        &app,
        Method::PUT,
        &uri,
        Some(&admin),
        Some(serde_json::json!({"version": version, "changes": [
        {"key": "events.create", "min_role": "volunteer"}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["version"].as_u64().unwrap() > version);
    assert!(
        allowed(&app, &org, &vol, "events.create").await,
        "visible on the next request"
    );
    let (status, body) = send(
        &app,
        Method::PUT,
        &uri,
        Some(&admin),
        Some(serde_json::json!({"version": version, "changes": [
        {"key": "events.edit", "min_role": "volunteer"}]})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (412, Some("VERSION_MISMATCH"))
    );
    // Non-admins cannot change settings.
    let (status, body) = send(
        &app,
        Method::PUT,
        &uri,
        Some(&vol),
        Some(serde_json::json!({"version": 0, "changes": [
        {"key": "events.edit", "min_role": "volunteer"}]})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Explain agrees with check, and the source is the org.
    let (_, explained) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions/explain?key=events.create"),
        Some(&vol),
        None,
    )
    .await;
    assert_eq!(explained["data"]["allowed"], true);
    assert_eq!(explained["data"]["effective"]["source"]["kind"], "org");
    // Reset brings the default back.
    let (_, matrix) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&admin),
        None,
    )
    .await;
    let version = matrix["data"]["version"].as_u64().unwrap();
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/permissions/reset"),
        Some(&admin),
        Some(serde_json::json!({"version": version, "module": "events"})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!allowed(&app, &org, &vol, "events.create").await);
}

async fn grants_and_disabled_keys(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, vol) = org_with_volunteer(&app, "g1").await;
    assert!(!allowed(&app, &org, &vol, "budget.approve").await);
    let grants = format!("/api/v2/orgs/{org}/permissions/grants");
    let (status, body) = send(&app, Method::POST, &grants, Some(&admin), Some(serde_json::json!({"user_id": vol_id, "key": "budget.approve", "reason": "treasurer on leave"}))).await;
    assert_eq!(status, 201, "{body}");
    // A create: the grant as stored, the settings version, and where it is read.
    assert_eq!(body["data"]["key"], "budget.approve", "{body}");
    assert_eq!(body["data"]["user_id"], vol_id.as_str(), "{body}");
    assert_eq!(body["data"]["reason"], "treasurer on leave", "{body}");
    assert!(body["data"]["version"].as_u64().is_some(), "{body}");
    let one = format!("{grants}/{vol_id}/budget.approve");
    let (status, etag, got) = crate::helpers::get_tagged(&app, &one, &admin, None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got["data"]["granted_by"], body["data"]["granted_by"],
        "{got}"
    );
    assert_eq!(got["data"]["reason"], "treasurer on leave", "{got}");
    // Its ETag answers 304 while the grant is unchanged.
    let etag = etag.expect("an ETag");
    let (status, _, _) = crate::helpers::get_tagged(&app, &one, &admin, Some(&etag)).await;
    assert_eq!(status, 304);
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("{grants}/{vol_id}/budget.view"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404, "no grant of that key");
    assert!(
        allowed(&app, &org, &vol, "budget.approve").await,
        "a grant allows"
    );
    // Grants page like every list (by member, then key), with their total.
    let (status, body) = send(
        &app,
        Method::POST,
        &grants,
        Some(&admin),
        Some(serde_json::json!({"user_id": vol_id, "key": "budget.view"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let listed = all_pages(&app, &grants, Some(&admin), Some(2)).await;
    let keys: Vec<&str> = listed.iter().filter_map(|g| g["key"].as_str()).collect();
    assert_eq!(keys, ["budget.approve", "budget.view"]);
    // Preview: disabling the key would take it away.
    let (status, preview) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/permissions/preview"),
        Some(&admin),
        Some(serde_json::json!({"changes": [{"key": "budget.approve", "enabled": false}]})),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert!(
        preview["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["user_id"] == vol_id.as_str() && c["change"] == "lost")
    );
    let (_, matrix) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&admin),
        None,
    )
    .await;
    let version = matrix["data"]["version"].as_u64().unwrap();
    let (status, _) = send(&app, Method::PUT, &format!("/api/v2/orgs/{org}/permissions/settings"), Some(&admin), Some(serde_json::json!({"version": version, "changes": [{"key": "budget.approve", "enabled": false}]}))).await;
    assert_eq!(status, 200);
    assert!(
        !allowed(&app, &org, &vol, "budget.approve").await,
        "disabled beats grant"
    );
    // A grant that is already expired is refused (it would be listed as if active), and
    // nothing is stored.
    let (status, body) = send(&app, Method::POST, &grants, Some(&admin), Some(serde_json::json!({"user_id": vol_id, "key": "documents.delete", "expires_at": "2020-01-01T00:00:00Z"}))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["details"]["fields"][0]["field"], "expires_at",
        "{body}"
    );
    assert!(
        !allowed(&app, &org, &vol, "documents.delete").await,
        "nothing granted"
    );
    let (_, list) = send(&app, Method::GET, &grants, Some(&admin), None).await;
    assert!(
        !list.to_string().contains("documents.delete"),
        "no expired grant listed: {list}"
    );
    // Nobody grants themselves anything.
    let (status, _) = send(
        &app,
        Method::POST,
        &grants,
        Some(&vol),
        Some(serde_json::json!({"user_id": vol_id, "key": "budget.view"})),
    )
    .await;
    assert_eq!(status, 403);
    // Reverse lookup and revocation.
    let (status, holders) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions/holders?key=users.view&limit=1"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{holders}");
    assert_eq!(holders["data"].as_array().unwrap().len(), 1);
    assert!(
        holders["meta"]["pagination"]["next_cursor"].is_string(),
        "two members hold users.view"
    );
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{grants}/{vol_id}/budget.approve"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("{grants}/{vol_id}/budget.approve"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

async fn member_rules_last_admin_and_self_escalation(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, vol) = org_with_volunteer(&app, "m1").await;
    let (_, me) = send(&app, Method::GET, "/api/v2/me", Some(&admin), None).await;
    let admin_id = me["data"]["user"]["id"].as_str().unwrap().to_owned();
    let users = format!("/api/v2/orgs/{org}/users");
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("{users}/{admin_id}"),
        Some(&admin),
        Some(serde_json::json!({"role": "volunteer"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("CONFLICT")),
        "the last admin stays"
    );
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("{users}/{admin_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = crate::helpers::patch_current(
        &app,
        &format!("{users}/{admin_id}"),
        Some(&admin),
        Some(serde_json::json!({"status": "suspended"})),
    )
    .await;
    assert_eq!(status, 409);
    // A volunteer cannot change roles at all (users.edit_roles is admin by default)…
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("{users}/{vol_id}"),
        Some(&vol),
        Some(serde_json::json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["details"]["required_permission"],
        "users.edit_roles"
    );
    // …and with the permission opened to volunteers, still cannot raise their own role.
    let (_, matrix) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&admin),
        None,
    )
    .await;
    let version = matrix["data"]["version"].as_u64().unwrap();
    send(&app, Method::PUT, &format!("/api/v2/orgs/{org}/permissions/settings"), Some(&admin), Some(serde_json::json!({"version": version, "changes": [{"key": "users.edit_roles", "min_role": "volunteer"}]}))).await;
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("{users}/{vol_id}"),
        Some(&vol),
        Some(serde_json::json!({"role": "board_member"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Promote, then the former sole admin may step down.
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("{users}/{vol_id}"),
        Some(&admin),
        Some(serde_json::json!({"role": "admin", "version": 1})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["role"]["name"], "admin");
    let (status, _) = crate::helpers::patch_current(
        &app,
        &format!("{users}/{admin_id}"),
        Some(&admin),
        Some(serde_json::json!({"role": "volunteer"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, list) = send(&app, Method::GET, &users, Some(&vol), None).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
}

async fn custom_role_counts_as_rank_with_extra_keys(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, vol) = org_with_volunteer(&app, "r1").await;
    let (status, role) = send(&app, Method::POST, &format!("/api/v2/orgs/{org}/roles"), Some(&admin), Some(serde_json::json!({
        "name": "Treasurer", "counts_as": "committee_lead", "extra_keys": ["budget.approve"], "max_holders": 1}))).await;
    assert_eq!(status, 201, "{role}");
    let role_id = role["data"]["id"].as_str().unwrap().to_owned();
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/roles"),
        Some(&admin),
        Some(serde_json::json!({"name": "treasurer", "counts_as": "volunteer"})),
    )
    .await;
    assert_eq!(status, 409, "names are unique case-insensitively");
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/users/{vol_id}"),
        Some(&admin),
        Some(serde_json::json!({"role": {"custom_role_id": role_id}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["role"]["name"], "Treasurer");
    assert!(
        allowed(&app, &org, &vol, "events.create").await,
        "counts as committee lead"
    );
    assert!(
        allowed(&app, &org, &vol, "budget.approve").await,
        "extra key"
    );
    assert!(
        !allowed(&app, &org, &vol, "budget.delete").await,
        "board member key"
    );
    // max_holders = 1: a second treasurer is refused.
    let (second_id, second) = signed_up(&app, "second-r1@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&second),
        Some(serde_json::json!({"signup_code": "CODEr1"})),
    )
    .await;
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/users/{second_id}"),
        Some(&admin),
        Some(serde_json::json!({"role": {"custom_role_id": role_id}})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
}

async fn routes_enforce_their_declared_permission(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _admin, _, _vol) = org_with_volunteer(&app, "e1").await;
    let (_, stranger) = signed_up(&app, "stranger-e1@example.org").await;
    // Every guarded route of another org answers 404 to a stranger, never data.
    let res = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users"),
        Some(&stranger),
        None,
    )
    .await;
    assert_eq!(res.0, 404, "{}", res.1);
    let res = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&stranger),
        None,
    )
    .await;
    assert_eq!(res.0, 404);
    // Without a token: 401.
    let res = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users"),
        None,
        None,
    )
    .await;
    assert_eq!(res.0, 401);
    // The document lists each route's requirement.
    let doc = send(&app, Method::GET, "/openapi.json", None, None).await.1;
    assert_eq!(
        doc["paths"]["/api/v2/orgs/{org_id}/users"]["get"]["x-required-permission"],
        "users.view"
    );
    assert_eq!(
        doc["paths"]["/api/v2/orgs/{org_id}/permissions"]["get"]["x-required-role"],
        "admin"
    );
}
