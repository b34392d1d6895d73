//! "Who may hand out what" (spec): custom roles, role assignment, terms, status, grants
//! and API keys — nobody gives what they don't hold, and keys follow their creator.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{BOOTSTRAP_TOKEN, TestContext, send, signed_up};

backend_tests!(
    committee_lead_cannot_escalate_through_custom_roles,
    term_status_and_role_only_below_ones_rank,
    bulk_changes_obey_the_same_rules,
    nobody_grants_a_key_they_do_not_hold,
    api_keys_follow_the_orgs_current_settings,
    api_keys_die_with_their_creators_rights,
    district_settings_bind_what_may_be_handed_out,
);

/// Something that serves requests, as the helpers take it.
pub(crate) trait App:
    actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<Self::Body>,
        Error = actix_web::Error,
    >
{
    /// The response body.
    type Body: actix_web::body::MessageBody;
}

impl<S, B> App for S
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    type Body = B;
}

/// An org with its admin; returns (org id, admin id, admin token).
async fn org(app: &impl App, tag: &str) -> (String, String, String) {
    let (admin_id, admin) = signed_up(app, &format!("admin-{tag}@example.org")).await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(json!({"name": "Handout PTO", "signup_code": format!("HAND{tag}")})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["data"]["org"]["id"].as_str().unwrap().to_owned(),
        admin_id,
        admin,
    )
}

/// A new member of `org` joined with its code, then given `role` by the admin; returns
/// (user id, token).
async fn member(
    app: &impl App,
    org: &str,
    admin: &str,
    tag: &str,
    name: &str,
    role: &str,
) -> (String, String) {
    let (id, token) = signed_up(app, &format!("{name}-{tag}@example.org")).await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&token),
        Some(json!({"signup_code": format!("HAND{tag}")})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    if role != "volunteer" {
        let (status, body) = patch_member(app, org, admin, &id, json!({"role": role})).await;
        assert_eq!(status, 200, "{body}");
    }
    (id, token)
}

async fn patch_member(
    app: &impl App,
    org: &str,
    token: &str,
    user: &str,
    body: Value,
) -> (u16, Value) {
    crate::helpers::patch_current(
        app,
        &format!("/api/v2/orgs/{org}/users/{user}"),
        Some(token),
        Some(body),
    )
    .await
}

async fn grant(app: &impl App, org: &str, admin: &str, user: &str, key: &str) -> (u16, Value) {
    send(
        app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/permissions/grants"),
        Some(admin),
        Some(json!({"user_id": user, "key": key, "reason": "test"})),
    )
    .await
}

/// Whether `user` holds `key` now, as the admin sees it.
async fn holds(app: &impl App, org: &str, admin: &str, user: &str, key: &str) -> bool {
    let (status, body) = send(
        app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions/check?key={key}&user_id={user}"),
        Some(admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["allowed"].as_bool().unwrap()
}

async fn create_role(
    app: &impl App,
    org: &str,
    token: &str,
    name: &str,
    counts_as: &str,
    keys: &[&str],
) -> (u16, Value) {
    send(
        app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/roles"),
        Some(token),
        Some(json!({"name": name, "counts_as": counts_as, "extra_keys": keys})),
    )
    .await
}

/// Sets org settings (`changes` as the settings API takes them).
pub(crate) async fn set_settings(app: &impl App, org: &str, admin: &str, changes: Value) {
    let (_, matrix) = send(
        app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(admin),
        None,
    )
    .await;
    let version = matrix["data"]["version"].as_u64().unwrap();
    let (status, body) = send(
        app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/permissions/settings"),
        Some(admin),
        Some(json!({"version": version, "changes": changes})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

fn not_held(body: &Value) -> Vec<String> {
    body["error"]["details"]["keys_not_held"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

const ALL_KEYS: [&str; 28] = [
    "communications.view",
    "communications.create",
    "communications.send",
    "communications.delete",
    "budget.view",
    "budget.create",
    "budget.edit",
    "budget.delete",
    "budget.approve",
    "events.view",
    "events.create",
    "events.edit",
    "events.delete",
    "events.manage_volunteers",
    "fundraising.view",
    "fundraising.create",
    "fundraising.edit",
    "fundraising.manage",
    "documents.view",
    "documents.upload",
    "documents.delete",
    "teacher_requests.view",
    "teacher_requests.create",
    "teacher_requests.fulfill",
    "users.view",
    "users.invite",
    "users.edit_roles",
    "users.remove",
];

/// The attack of the review: a committee lead granted `users.edit_roles` defines a role
/// counting as committee_lead with all 28 keys and takes it; revoking the grant then
/// changed nothing. Now every step that gives more than the lead holds is refused, and
/// after the revocation the lead holds nothing extra.
async fn committee_lead_cannot_escalate_through_custom_roles(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = org(&app, "e1").await;
    let (lead_id, lead) = member(&app, &org, &admin, "e1", "lead", "committee_lead").await;
    let (vol_id, _) = member(&app, &org, &admin, "e1", "vol", "volunteer").await;
    let (status, body) = grant(&app, &org, &admin, &lead_id, "users.edit_roles").await;
    assert_eq!(status, 201, "{body}");

    // A role with all 28 keys: refused, naming the keys the lead lacks.
    let (status, body) =
        create_role(&app, &org, &lead, "Shadow", "committee_lead", &ALL_KEYS).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");
    let missing = not_held(&body);
    assert!(missing.contains(&"budget.approve".to_owned()), "{body}");
    assert!(missing.contains(&"users.remove".to_owned()), "{body}");
    assert!(
        missing.contains(&"users.edit_roles".to_owned()),
        "a granted key is the grantee's alone: {body}"
    );
    assert!(!missing.contains(&"events.create".to_owned()), "{body}");
    // Even the one key the grant gives: passed into a role the lead then takes, it
    // would outlive the grant.
    let (status, body) = create_role(
        &app,
        &org,
        &lead,
        "Deputy",
        "committee_lead",
        &["users.edit_roles"],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(not_held(&body), vec!["users.edit_roles".to_owned()]);
    // Nor a role above the lead's rank.
    let (status, body) = create_role(&app, &org, &lead, "Chair", "board_member", &[]).await;
    assert_eq!(status, 403, "{body}");
    // A role with keys the lead holds: fine.
    let (status, body) = create_role(
        &app,
        &org,
        &lead,
        "Helper",
        "committee_lead",
        &["events.create"],
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // A role an admin defined with keys the lead lacks: the lead can't take it, nor
    // give it to anyone.
    let (status, body) = create_role(
        &app,
        &org,
        &admin,
        "Treasurer",
        "committee_lead",
        &["budget.approve", "budget.delete"],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let treasurer = body["data"]["id"].as_str().unwrap().to_owned();
    let (status, body) = patch_member(
        &app,
        &org,
        &lead,
        &lead_id,
        json!({"role": {"custom_role_id": treasurer}}),
    )
    .await;
    assert_eq!(status, 403, "taking it oneself: {body}");
    assert_eq!(
        not_held(&body),
        vec!["budget.delete".to_owned(), "budget.approve".to_owned()]
    );
    let (status, body) = patch_member(
        &app,
        &org,
        &lead,
        &vol_id,
        json!({"role": {"custom_role_id": treasurer}}),
    )
    .await;
    assert_eq!(status, 403, "giving it to someone else: {body}");
    // The admin may.
    let (status, body) = patch_member(
        &app,
        &org,
        &admin,
        &vol_id,
        json!({"role": {"custom_role_id": treasurer}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // After the grant is revoked the lead keeps nothing of it.
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/orgs/{org}/permissions/grants/{lead_id}/users.edit_roles"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    for key in ["users.edit_roles", "budget.approve", "users.remove"] {
        assert!(
            !holds(&app, &org, &admin, &lead_id, key).await,
            "the lead holds {key}"
        );
    }
    let (status, body) =
        patch_member(&app, &org, &lead, &vol_id, json!({"role": "volunteer"})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = create_role(&app, &org, &lead, "Again", "volunteer", &[]).await;
    assert_eq!(status, 403, "{body}");
}

/// The term end demotes a member when it passes, so it is a role change: only for
/// members below one's rank (admins: anyone); never cleared or extended for oneself.
async fn term_status_and_role_only_below_ones_rank(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin_id, admin) = org(&app, "t1").await;
    let (board_id, board) = member(&app, &org, &admin, "t1", "board", "board_member").await;
    let (peer_id, _) = member(&app, &org, &admin, "t1", "peer", "board_member").await;
    let (lead_id, _) = member(&app, &org, &admin, "t1", "lead", "committee_lead").await;
    let (status, body) = grant(&app, &org, &admin, &board_id, "users.edit_roles").await;
    assert_eq!(status, 201, "{body}");

    // The attack: a board member ends the admin's term in the past.
    let past = json!({"role_ends_at": "2020-01-01T00:00:00Z"});
    let (status, body) = patch_member(&app, &org, &board, &admin_id, past.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");
    assert_eq!(
        ctx.state
            .end_expired_terms(time::OffsetDateTime::now_utc())
            .await
            .unwrap(),
        0,
        "no term was set"
    );
    // Nor a peer's term, status or role.
    let (status, body) = patch_member(&app, &org, &board, &peer_id, past.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        patch_member(&app, &org, &board, &peer_id, json!({"status": "suspended"})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        patch_member(&app, &org, &board, &peer_id, json!({"role": "volunteer"})).await;
    assert_eq!(status, 403, "{body}");
    // Below one's rank: fine.
    let (status, body) = patch_member(
        &app,
        &org,
        &board,
        &lead_id,
        json!({"role_ends_at": "2030-06-30T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // An admin may set a board member's term end.
    let (status, body) = patch_member(
        &app,
        &org,
        &admin,
        &board_id,
        json!({"role_ends_at": "2030-06-30T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["role_ends_at"], "2030-06-30T00:00:00Z");
    // The board member can't clear or extend it…
    let (status, body) =
        patch_member(&app, &org, &board, &board_id, json!({"role_ends_at": null})).await;
    assert_eq!(status, 403, "clearing one's own term end: {body}");
    let (status, body) = patch_member(
        &app,
        &org,
        &board,
        &board_id,
        json!({"role_ends_at": "2031-06-30T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 403, "extending one's own term: {body}");
    // …but may end it sooner.
    let (status, body) = patch_member(
        &app,
        &org,
        &board,
        &board_id,
        json!({"role_ends_at": "2029-06-30T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The admin's term is untouched, and an admin may still end another admin's term.
    let (_, me) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users/{admin_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert!(me["data"]["role_ends_at"].is_null(), "{me}");
    let (status, body) = patch_member(&app, &org, &admin, &peer_id, json!({"role": "admin"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = patch_member(&app, &org, &admin, &peer_id, past).await;
    assert_eq!(status, 200, "{body}");
}

/// Bulk role and status changes go through the same rules as single ones.
async fn bulk_changes_obey_the_same_rules(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin_id, admin) = org(&app, "b1").await;
    let (board_id, board) = member(&app, &org, &admin, "b1", "board", "board_member").await;
    let (peer_id, _) = member(&app, &org, &admin, "b1", "peer", "board_member").await;
    let (vol_id, _) = member(&app, &org, &admin, "b1", "vol", "volunteer").await;
    let (status, body) = grant(&app, &org, &admin, &board_id, "users.edit_roles").await;
    assert_eq!(status, 201, "{body}");
    let bulk = format!("/api/v2/orgs/{org}/users/bulk-update");

    let (status, body) = send(
        &app,
        Method::POST,
        &bulk,
        Some(&board),
        Some(json!({"user_ids": [admin_id, peer_id, vol_id], "status": "suspended"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let results = body["data"]["results"].as_array().unwrap();
    assert_eq!(results[0]["ok"], false, "the admin: {body}");
    assert_eq!(results[1]["ok"], false, "a peer: {body}");
    assert_eq!(results[1]["error"]["code"], "PERMISSION_DENIED");
    assert_eq!(results[2]["ok"], true, "a volunteer: {body}");

    // A role carrying a key the board member lacks (users.remove is the admin's).
    let (status, body) = create_role(
        &app,
        &org,
        &admin,
        "Registrar",
        "volunteer",
        &["users.remove"],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let registrar = body["data"]["id"].as_str().unwrap().to_owned();
    let (status, body) = send(
        &app,
        Method::POST,
        &bulk,
        Some(&board),
        Some(json!({"user_ids": [vol_id, board_id], "role": {"custom_role_id": registrar}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["succeeded"], 0, "{body}");
    for item in body["data"]["results"].as_array().unwrap() {
        assert_eq!(item["error"]["code"], "PERMISSION_DENIED", "{body}");
    }
    assert!(!holds(&app, &org, &admin, &board_id, "users.remove").await);
}

/// Grants are handed out only by someone holding the key: a key disabled for the org is
/// held by nobody, so not even an admin grants it.
async fn nobody_grants_a_key_they_do_not_hold(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = org(&app, "g1").await;
    let (vol_id, _) = member(&app, &org, &admin, "g1", "vol", "volunteer").await;
    set_settings(
        &app,
        &org,
        &admin,
        json!([{"key": "budget.approve", "enabled": false}]),
    )
    .await;
    let (status, body) = grant(&app, &org, &admin, &vol_id, "budget.approve").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");
    assert_eq!(not_held(&body), vec!["budget.approve".to_owned()]);
    let (_, grants) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions/grants"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(grants["data"].as_array().unwrap().len(), 0, "{grants}");
    // A held key is granted as before.
    let (status, body) = grant(&app, &org, &admin, &vol_id, "budget.edit").await;
    assert_eq!(status, 201, "{body}");
}

async fn create_key(app: &impl App, org: &str, token: &str, keys: &[&str]) -> (u16, Value) {
    send(
        app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/api-keys"),
        Some(token),
        Some(json!({"name": "sync", "permissions": keys, "expires_in_days": 365})),
    )
    .await
}

async fn key_token(app: &impl App, org: &str, token: &str, keys: &[&str]) -> String {
    let (status, body) = create_key(app, org, token, keys).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["token"].as_str().unwrap().to_owned()
}

/// A key is checked against the org's settings on every request: a disabled key is
/// disabled for keys too.
async fn api_keys_follow_the_orgs_current_settings(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = org(&app, "k1").await;
    let key = key_token(&app, &org, &admin, &["users.view"]).await;
    let list = format!("/api/v2/orgs/{org}/users");
    // The printable directory follows `users.view`; full exports of records are for the
    // org's admins in person (issue #17), never for a key.
    let export = format!("/api/v2/orgs/{org}/directory/export");
    assert_eq!(
        send(&app, Method::GET, &list, Some(&key), None).await.0,
        200
    );
    assert_eq!(
        send(&app, Method::GET, &export, Some(&key), None).await.0,
        200
    );
    let (status, body) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users/export"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 403, "a key exporting records: {body}");
    set_settings(
        &app,
        &org,
        &admin,
        json!([{"key": "users.view", "enabled": false}]),
    )
    .await;
    let (status, body) = send(&app, Method::GET, &list, Some(&key), None).await;
    assert_eq!(status, 403, "list with users.view disabled: {body}");
    let (status, body) = send(&app, Method::GET, &export, Some(&key), None).await;
    assert_eq!(status, 403, "export with users.view disabled: {body}");
    // Nor can a key be made with a key its creator doesn't hold.
    let (status, body) = create_key(&app, &org, &admin, &["users.view", "events.view"]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(not_held(&body), vec!["users.view".to_owned()]);
    // Enabled again, the key works again.
    set_settings(
        &app,
        &org,
        &admin,
        json!([{"key": "users.view", "enabled": true}]),
    )
    .await;
    assert_eq!(
        send(&app, Method::GET, &list, Some(&key), None).await.0,
        200
    );
}

/// A key dies with its creator's membership or admin rights: at once on every request,
/// and its revocation is recorded when the creator is removed or demoted.
async fn api_keys_die_with_their_creators_rights(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = org(&app, "k2").await;
    let (gone_id, gone) = member(&app, &org, &admin, "k2", "gone", "admin").await;
    let (demoted_id, demoted) = member(&app, &org, &admin, "k2", "demoted", "admin").await;
    let (paused_id, paused) = member(&app, &org, &admin, "k2", "paused", "admin").await;
    let gone_key = key_token(&app, &org, &gone, &["users.view"]).await;
    let demoted_key = key_token(&app, &org, &demoted, &["users.view"]).await;
    let paused_key = key_token(&app, &org, &paused, &["users.view"]).await;
    let list = format!("/api/v2/orgs/{org}/users");
    for key in [&gone_key, &demoted_key, &paused_key] {
        assert_eq!(send(&app, Method::GET, &list, Some(key), None).await.0, 200);
    }

    // Removed: the key is refused at once and revoked, audited.
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/orgs/{org}/users/{gone_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = send(&app, Method::GET, &list, Some(&gone_key), None).await;
    assert_eq!(status, 401, "creator removed: {body}");

    // Demoted below admin (still holding users.view as a board member): the key is
    // an admin's capability and dies too.
    let (status, body) = patch_member(
        &app,
        &org,
        &admin,
        &demoted_id,
        json!({"role": "board_member"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(&app, Method::GET, &list, Some(&demoted_key), None).await;
    assert_eq!(status, 401, "creator demoted: {body}");

    // Suspended: inert while the creator is (not revoked).
    let (status, body) = patch_member(
        &app,
        &org,
        &admin,
        &paused_id,
        json!({"status": "suspended"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(&app, Method::GET, &list, Some(&paused_key), None).await;
    assert_eq!(status, 401, "creator suspended: {body}");

    let (status, keys) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/api-keys"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{keys}");
    let revoked = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revoked"] == true)
        .count();
    assert_eq!(
        revoked, 2,
        "the removed and the demoted creator's keys: {keys}"
    );
    let (status, logs) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?action=api_key.revoke"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{logs}");
    assert_eq!(logs["data"].as_array().unwrap().len(), 2, "{logs}");

    // The demoted creator, made admin again, doesn't bring the revoked key back.
    let (status, body) =
        patch_member(&app, &org, &admin, &demoted_id, json!({"role": "admin"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(&app, Method::GET, &list, Some(&demoted_key), None).await;
    assert_eq!(status, 401);
    // The suspended one, reactivated, does (the key was only inert).
    let (status, body) =
        patch_member(&app, &org, &admin, &paused_id, json!({"status": "active"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        send(&app, Method::GET, &list, Some(&paused_key), None)
            .await
            .0,
        200
    );
}

/// The keys an actor holds are decided by the whole chain: a key the district disabled
/// is held by nobody in its orgs, so nobody there hands it out (the membership write
/// reads the chain in its own transaction, past the org's row-level wall).
async fn district_settings_bind_what_may_be_handed_out(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, root) = signed_up(&app, "root-h1@example.org").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/platform/bootstrap",
        Some(&root),
        Some(json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    assert!(status == 200 || status == 201, "{body}");
    let (status, d) = send(
        &app,
        Method::POST,
        "/api/v2/districts",
        Some(&root),
        Some(json!({"name": "Handout District", "code": "HANDD"})),
    )
    .await;
    assert_eq!(status, 201, "{d}");
    let district = d["data"]["id"].as_str().unwrap().to_owned();
    let (status, s) = send(
        &app,
        Method::POST,
        &format!("/api/v2/districts/{district}/schools"),
        Some(&root),
        Some(json!({"name": "Handout Elementary", "code": "HANDS", "grade_levels": ["K"]})),
    )
    .await;
    assert_eq!(status, 201, "{s}");
    let school = s["data"]["id"].as_str().unwrap().to_owned();
    let (status, o) = send(
        &app,
        Method::POST,
        &format!("/api/v2/districts/{district}/orgs"),
        Some(&root),
        Some(json!({"name": "Handout PTO", "school_id": school, "signup_code": "HANDh1"})),
    )
    .await;
    assert_eq!(status, 201, "{o}");
    let org = o["data"]["id"].as_str().unwrap().to_owned();
    let admin = root;
    let (board_id, board) = member(&app, &org, &admin, "h1", "board", "board_member").await;
    let (vol_id, _) = member(&app, &org, &admin, "h1", "vol", "volunteer").await;
    let (status, body) = grant(&app, &org, &admin, &board_id, "users.edit_roles").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = create_role(
        &app,
        &org,
        &admin,
        "Approver",
        "volunteer",
        &["budget.approve"],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let approver = body["data"]["id"].as_str().unwrap().to_owned();

    let (status, t) = crate::helpers::write_current(
        &app,
        Method::PUT,
        &format!("/api/v2/districts/{district}/permission-templates/budget.approve"),
        Some(&admin),
        Some(json!({"min_role": "board_member", "enabled": false, "locked": false})),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert!(!holds(&app, &org, &admin, &board_id, "budget.approve").await);
    let (status, body) = patch_member(
        &app,
        &org,
        &board,
        &vol_id,
        json!({"role": {"custom_role_id": approver}}),
    )
    .await;
    assert_eq!(status, 403, "a key the district disabled: {body}");
    assert_eq!(not_held(&body), vec!["budget.approve".to_owned()]);
}
