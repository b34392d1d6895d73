//! Custom roles as a resource: list (paged, with total), read (ETag, 304), change
//! (version required, who may hand out what, the last admin), delete (204, refused
//! while in use) — and their holders' permissions follow at once.

use actix_web::http::Method;
use actix_web::test;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestContext, get_tagged, send, signed_up};

backend_tests!(
    a_custom_role_is_read_changed_and_deleted,
    role_edits_follow_who_may_hand_out_what,
    a_role_keeps_the_orgs_last_admin,
);

/// Something that serves requests, as the helpers take it.
trait App:
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

/// An org with its admin; returns (org id, admin token).
async fn org(app: &impl App, tag: &str) -> (String, String) {
    let (_, admin) = signed_up(app, &format!("admin-{tag}@roles.test")).await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(json!({"name": "Roles PTO", "signup_code": format!("ROLES{tag}")})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["data"]["org"]["id"].as_str().unwrap().to_owned(),
        admin,
    )
}

/// A member who joined with the code and was given `role`; returns (id, token).
async fn member(
    app: &impl App,
    org: &str,
    admin: &str,
    tag: &str,
    name: &str,
    role: Value,
) -> (String, String) {
    let (id, token) = signed_up(app, &format!("{name}-{tag}@roles.test")).await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&token),
        Some(json!({"signup_code": format!("ROLES{tag}")})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    set_role(app, org, admin, &id, role).await;
    (id, token)
}

/// Gives `user` a role (as `token`), reading the member's version first.
async fn set_role(app: &impl App, org: &str, token: &str, user: &str, role: Value) {
    let uri = format!("/api/v2/orgs/{org}/users/{user}");
    let (status, m) = send(app, Method::GET, &uri, Some(token), None).await;
    assert_eq!(status, 200, "{m}");
    let (status, body) = send(
        app,
        Method::PATCH,
        &uri,
        Some(token),
        Some(json!({"version": m["data"]["version"], "role": role})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Whether `user` holds `key` now, as `admin` sees it.
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

/// Creates a role: 201 with its address in `Location`, which reads it.
async fn create(app: &impl App, org: &str, token: &str, body: Value) -> Value {
    let roles = format!("/api/v2/orgs/{org}/roles");
    let (at, role) = crate::helpers::create(app, &roles, Some(token), body).await;
    let id = role["data"]["id"].as_str().unwrap();
    assert_eq!(at, format!("{roles}/{id}"));
    let (status, read) = send(app, Method::GET, &at, Some(token), None).await;
    assert_eq!((status, &read["data"]), (200, &role["data"]));
    role["data"].clone()
}

async fn a_custom_role_is_read_changed_and_deleted(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = org(&app, "A1").await;
    let treasurer = create(
        &app,
        &org,
        &admin,
        json!({"name": "Treasurer", "counts_as": "committee_lead", "extra_keys": ["budget.approve"], "max_holders": 2}),
    )
    .await;
    assert_eq!(treasurer["version"], 1, "{treasurer}");
    let role_id = treasurer["id"].as_str().unwrap().to_owned();
    let uri = format!("/api/v2/orgs/{org}/roles/{role_id}");
    let (holder, _) = member(
        &app,
        &org,
        &admin,
        "A1",
        "holder",
        json!({"custom_role_id": role_id}),
    )
    .await;
    assert!(holds(&app, &org, &admin, &holder, "budget.approve").await);

    // Read: an ETag naming the version; If-None-Match with it → 304, no body.
    let (status, etag, read) = get_tagged(&app, &uri, &admin, None).await;
    assert_eq!(status, 200);
    let etag = etag.expect("an ETag");
    assert!(etag.starts_with("\"1-"), "{etag}");
    assert_eq!(read["data"]["name"], "Treasurer");
    let (status, again, body) = get_tagged(&app, &uri, &admin, Some(&etag)).await;
    assert_eq!(status, 304);
    assert_eq!(again.as_deref(), Some(etag.as_str()));
    assert_eq!(body, Value::Null, "a 304 has no body");

    // Change: the version is required (428), a stale one is 412.
    let (status, body) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&admin),
        Some(json!({"name": "Bursar"})),
    )
    .await;
    assert_eq!(status, 428, "{body}");
    assert_eq!(body["error"]["code"], "PRECONDITION_REQUIRED");
    let (status, body) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&admin),
        Some(json!({"version": 7, "name": "Bursar"})),
    )
    .await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["error"]["details"]["current_version"], 1);
    // The ETag works as If-Match; the extra keys change (no longer frozen at creation)
    // and the holder's permissions follow at once.
    let req = test::TestRequest::patch()
        .uri(&uri)
        .insert_header(("authorization", format!("Bearer {admin}")))
        .insert_header(("if-match", etag.clone()))
        .set_json(json!({"name": "Bursar", "extra_keys": ["budget.edit"], "counts_as": "volunteer", "max_holders": null}))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status().as_u16(), 200);
    let new_etag = res
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("an ETag");
    let changed: Value = serde_json::from_slice(&test::read_body(res).await).unwrap();
    assert_eq!(changed["data"]["version"], 2, "{changed}");
    assert_eq!(changed["data"]["name"], "Bursar");
    assert_eq!(changed["data"]["counts_as"], "volunteer");
    assert_eq!(changed["data"]["extra_keys"], json!(["budget.edit"]));
    assert_eq!(changed["data"]["max_holders"], Value::Null);
    assert_ne!(new_etag, etag);
    assert!(!holds(&app, &org, &admin, &holder, "budget.approve").await);
    assert!(holds(&app, &org, &admin, &holder, "budget.edit").await);
    let (_, m) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users/{holder}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(m["data"]["role"]["name"], "Bursar", "{m}");
    assert_eq!(m["data"]["role"]["rank"], "volunteer", "{m}");
    // The old ETag no longer matches.
    let (status, _, _) = get_tagged(&app, &uri, &admin, Some(&etag)).await;
    assert_eq!(status, 200);
    // A name taken by another role (case-insensitively) is 409; a built-in's is 422.
    create(
        &app,
        &org,
        &admin,
        json!({"name": "Secretary", "counts_as": "volunteer"}),
    )
    .await;
    let (status, body) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&admin),
        Some(json!({"version": 2, "name": "secretary"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&admin),
        Some(json!({"version": 2, "name": "Board member"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&admin),
        Some(json!({"version": 2, "extra_keys": ["budget.nope"]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");

    // The list: paged, with the total.
    let (status, list) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/roles?limit=1"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["meta"]["pagination"]["total"], 2);
    let cursor = list["meta"]["pagination"]["next_cursor"].as_str().unwrap();
    let (_, rest) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/roles?limit=1&cursor={cursor}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(rest["data"][0]["name"], "Secretary", "{rest}");
    assert!(rest["meta"]["pagination"].get("next_cursor").is_none());
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/roles?sort=name"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 422);

    // Delete: refused while someone holds it (nobody's rights change by a delete).
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{uri}?version=2"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "role_in_use");
    assert_eq!(body["error"]["details"]["members"], 1);
    set_role(&app, &org, &admin, &holder, json!("volunteer")).await;
    let (status, body) = send(&app, Method::DELETE, &uri, Some(&admin), None).await;
    assert_eq!(status, 428, "{body}");
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{uri}?version=1"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 412, "{body}");
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{uri}?version=2"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, Value::Null);
    let (status, _) = send(&app, Method::GET, &uri, Some(&admin), None).await;
    assert_eq!(status, 404);
    let (_, list) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/roles"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(list["meta"]["pagination"]["total"], 1, "{list}");

    // Audited.
    let (status, log) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?entity_type=role"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{log}");
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"role.update"), "{actions:?}");
    assert!(actions.contains(&"role.delete"), "{actions:?}");
}

async fn role_edits_follow_who_may_hand_out_what(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = org(&app, "B1").await;
    // Board members may edit roles in this org.
    let (_, matrix) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&admin),
        None,
    )
    .await;
    let (status, body) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/permissions/settings"),
        Some(&admin),
        Some(json!({"version": matrix["data"]["version"], "changes": [{"key": "users.edit_roles", "min_role": "board_member"}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, board) = member(&app, &org, &admin, "B1", "board", json!("board_member")).await;
    let chair = create(
        &app,
        &org,
        &admin,
        json!({"name": "Chair", "counts_as": "admin"}),
    )
    .await;
    let gate = create(&app, &org, &admin, json!({"name": "Gatekeeper", "counts_as": "committee_lead", "extra_keys": ["users.remove"]})).await;
    let helper = create(
        &app,
        &org,
        &board,
        json!({"name": "Helper", "counts_as": "volunteer"}),
    )
    .await;
    let at = |role: &Value| format!("/api/v2/orgs/{org}/roles/{}", role["id"].as_str().unwrap());

    // A role above one's rank is out of reach: no edit, no delete.
    let (status, body) = send(
        &app,
        Method::PATCH,
        &at(&chair),
        Some(&board),
        Some(json!({"version": 1, "name": "Co-chair"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{}?version=1", at(&chair)),
        Some(&board),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // A role carrying a key one doesn't hold too, even to take the key away.
    let (status, body) = send(
        &app,
        Method::PATCH,
        &at(&gate),
        Some(&board),
        Some(json!({"version": 1, "extra_keys": []})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["details"]["keys_not_held"],
        json!(["users.remove"])
    );
    // One's own role may not be raised above one's rank, nor given keys one lacks.
    let (status, body) = send(
        &app,
        Method::PATCH,
        &at(&helper),
        Some(&board),
        Some(json!({"version": 1, "counts_as": "admin"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(
        &app,
        Method::PATCH,
        &at(&helper),
        Some(&board),
        Some(json!({"version": 1, "extra_keys": ["users.remove", "budget.approve"]})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["details"]["keys_not_held"],
        json!(["users.remove"])
    );
    // Within reach: fine.
    let (status, body) = send(
        &app,
        Method::PATCH,
        &at(&helper),
        Some(&board),
        Some(json!({"version": 1, "counts_as": "board_member", "extra_keys": ["budget.approve"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{}?version=2", at(&helper)),
        Some(&board),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // A volunteer may not edit roles at all.
    let (_, vol) = member(&app, &org, &admin, "B1", "vol", json!("volunteer")).await;
    let (status, body) = send(
        &app,
        Method::PATCH,
        &at(&chair),
        Some(&vol),
        Some(json!({"version": 1, "name": "X"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");
    // Another org's role is not found.
    let (other, other_admin) = crate::roles::org(&app, "B2").await;
    let foreign = create(
        &app,
        &other,
        &other_admin,
        json!({"name": "Foreign", "counts_as": "volunteer"}),
    )
    .await;
    let (status, _) = send(
        &app,
        Method::GET,
        &format!(
            "/api/v2/orgs/{org}/roles/{}",
            foreign["id"].as_str().unwrap()
        ),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

async fn a_role_keeps_the_orgs_last_admin(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = org(&app, "C1").await;
    let chair = create(
        &app,
        &org,
        &admin,
        json!({"name": "Chair", "counts_as": "admin", "max_holders": 3}),
    )
    .await;
    let chair_id = chair["id"].as_str().unwrap().to_owned();
    let uri = format!("/api/v2/orgs/{org}/roles/{chair_id}");
    let (_, me) = send(&app, Method::GET, "/api/v2/me", Some(&admin), None).await;
    let admin_id = me["data"]["user"]["id"].as_str().unwrap().to_owned();
    // The only admin takes the Chair role: its rank cannot drop while they hold it.
    set_role(
        &app,
        &org,
        &admin,
        &admin_id,
        json!({"custom_role_id": chair_id}),
    )
    .await;
    let (status, body) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&admin),
        Some(json!({"version": 1, "counts_as": "board_member"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "last_admin");
    // Nor can its maximum go below its holders.
    let (other, _) = member(
        &app,
        &org,
        &admin,
        "C1",
        "other",
        json!({"custom_role_id": chair_id}),
    )
    .await;
    let (status, body) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&admin),
        Some(json!({"version": 1, "max_holders": 1})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "below_holders");
    // With a built-in admin besides, the rank may drop: the Chair holders lose admin.
    set_role(&app, &org, &admin, &other, json!("admin")).await;
    let (status, body) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&admin),
        Some(json!({"version": 1, "counts_as": "board_member"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 403, "the former admin lost admin rights at once");
}
