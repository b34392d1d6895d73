//! An org as a complete resource: deleting it (for everyone, at once, its history
//! kept), listing its jobs, and the one concurrency contract of orgs, members and
//! districts (version required: 428; `ETag`, `If-None-Match` → 304, `If-Match`).

use actix_web::http::Method;
use actix_web::test;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{BOOTSTRAP_TOKEN, TestContext, send, signed_up};

backend_tests!(
    an_org_is_deleted_for_everyone_and_its_history_kept,
    the_orgs_jobs_are_listed_to_whoever_may_see_them,
    orgs_members_and_districts_need_the_version_and_carry_an_etag,
    a_members_account_details_change_under_the_rules,
    an_address_change_reaches_the_member_directories,
    every_single_resource_answers_not_modified,
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

/// An org with its admin; returns (org id, admin id, admin token).
async fn org(app: &impl App, tag: &str) -> (String, String, String) {
    let (admin_id, admin) = signed_up(app, &format!("admin-{tag}@orgres.test")).await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(json!({"name": "Resource PTO", "signup_code": format!("ORES{tag}")})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["data"]["org"]["id"].as_str().unwrap().to_owned(),
        admin_id,
        admin,
    )
}

/// A member who joined with the code, given `role`; returns (id, token).
async fn member(
    app: &impl App,
    org: &str,
    admin: &str,
    tag: &str,
    name: &str,
    role: &str,
) -> (String, String) {
    let (id, token) = signed_up(app, &format!("{name}-{tag}@orgres.test")).await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&token),
        Some(json!({"signup_code": format!("ORES{tag}")})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    if role != "volunteer" {
        let (status, body) = send(
            app,
            Method::PATCH,
            &format!("/api/v2/orgs/{org}/users/{id}"),
            Some(admin),
            Some(json!({"role": role, "version": 1})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    (id, token)
}

/// Starts an import job of one row as `token`; returns the job id.
async fn import(app: &impl App, org: &str, token: &str, email: &str) -> String {
    let req = test::TestRequest::post()
        .uri(&format!("/api/v2/orgs/{org}/users/import"))
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("content-type", "text/csv"))
        .set_payload(format!("email,first_name,last_name\n{email},Ann,Lee\n"))
        .to_request();
    let res = test::call_service(app, req).await;
    assert_eq!(res.status().as_u16(), 202);
    let body: Value = serde_json::from_slice(&test::read_body(res).await).unwrap();
    body["data"]["id"].as_str().unwrap().to_owned()
}

/// A request with extra headers: (status, ETag, body as JSON or `Null`).
async fn call(
    app: &impl App,
    method: Method,
    uri: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let mut req = test::TestRequest::default()
        .method(method)
        .uri(uri)
        .insert_header(("authorization", format!("Bearer {token}")));
    for (k, v) in headers {
        req = req.insert_header(((*k).to_owned(), (*v).to_owned()));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let etag = res
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = test::read_body(res).await;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, etag, body)
}

/// The actions recorded for `org` in the audit table.
async fn recorded(ctx: &TestContext, org: &str) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    let db = ctx.state.db.primary();
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT action FROM audit_events WHERE org_id = $1 ORDER BY seq"
        }
        _ => "SELECT action FROM audit_events WHERE org_id = ? ORDER BY seq",
    };
    let org = uuid::Uuid::parse_str(org).unwrap();
    db.query_all_raw(sea_orm::Statement::from_sql_and_values(
        backend,
        sql,
        [org.into()],
    ))
    .await
    .expect("read the audit table")
    .iter()
    .map(|row| row.try_get::<String>("", "action").expect("action"))
    .collect()
}

async fn an_org_is_deleted_for_everyone_and_its_history_kept(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = org(&app, "D1").await;
    let (_, vol) = member(&app, &org, &admin, "D1", "vol", "volunteer").await;
    let (_, board) = member(&app, &org, &admin, "D1", "board", "board_member").await;
    let (status, key) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/api-keys"),
        Some(&admin),
        Some(json!({"name": "Sync", "permissions": ["users.view"], "expires_in_days": 30})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let key_token = key["data"]["token"].as_str().unwrap().to_owned();
    let (status, invited) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/users"),
        Some(&admin),
        Some(json!({"email": "pending@orgres.test", "first_name": "Pat", "last_name": "Ent"})),
    )
    .await;
    assert_eq!(status, 201, "{invited}");
    let job = import(&app, &org, &admin, "row@orgres.test").await;
    let uri = format!("/api/v2/orgs/{org}");

    // Admins only; the version is required.
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{uri}?version=1"),
        Some(&board),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(&app, Method::DELETE, &uri, Some(&admin), None).await;
    assert_eq!(status, 428, "{body}");
    assert_eq!(body["error"]["code"], "PRECONDITION_REQUIRED");
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{uri}?version=9"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 412, "{body}");
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{uri}?version=1"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, Value::Null);

    // Gone for everyone at once: members, the admin, the API key, the signup code.
    for token in [&admin, &vol, &board] {
        let (status, _) = send(&app, Method::GET, &uri, Some(token), None).await;
        assert_eq!(status, 404);
        let (_, me) = send(&app, Method::GET, "/api/v2/me", Some(token), None).await;
        assert_eq!(me["data"]["memberships"], json!([]), "{me}");
        let (_, mine) = send(&app, Method::GET, "/api/v2/orgs", Some(token), None).await;
        assert_eq!(mine["data"], json!([]), "{mine}");
    }
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("{uri}/users"),
        Some(&key_token),
        None,
    )
    .await;
    assert_eq!(status, 401, "the org's API keys are revoked");
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(json!({"signup_code": "ORESD1"})),
    )
    .await;
    assert_eq!(status, 404, "the signup code stops working");
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("{uri}?version=2"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404, "deleted once");

    // Its job stopped; its history is kept, with the deletion at the end.
    let stopped = ctx
        .state
        .jobs
        .get(
            uuid::Uuid::parse_str(&org).unwrap(),
            uuid::Uuid::parse_str(&job).unwrap(),
        )
        .await
        .unwrap()
        .expect("the job is kept");
    assert_eq!(stopped.status, jobs::JobStatus::Cancelled);
    let actions = recorded(&ctx, &org).await;
    assert!(actions.contains(&"org.create".to_owned()), "{actions:?}");
    assert!(actions.contains(&"org.delete".to_owned()), "{actions:?}");
    assert!(
        actions.contains(&"api_key.revoke".to_owned()),
        "{actions:?}"
    );
    assert_eq!(
        actions.last().map(String::as_str),
        Some("job.cancel"),
        "{actions:?}"
    );
    // The pending invitation was revoked with it.
    use sea_orm::ConnectionTrait;
    let db = ctx.state.db.primary();
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => "SELECT status FROM invitations WHERE org_id = $1",
        _ => "SELECT status FROM invitations WHERE org_id = ?",
    };
    let statuses: Vec<String> = db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [uuid::Uuid::parse_str(&org).unwrap().into()],
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "status").unwrap())
        .collect();
    assert_eq!(statuses, vec!["revoked".to_owned()]);
}

async fn the_orgs_jobs_are_listed_to_whoever_may_see_them(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = org(&app, "J1").await;
    let (_, board) = member(&app, &org, &admin, "J1", "board", "board_member").await;
    let (_, vol) = member(&app, &org, &admin, "J1", "vol", "volunteer").await;
    let first = import(&app, &org, &admin, "one@orgres.test").await;
    let second = import(&app, &org, &board, "two@orgres.test").await;
    let list = |token: String, query: &'static str| {
        let app = &app;
        let org = org.clone();
        async move {
            send(
                app,
                Method::GET,
                &format!("/api/v2/orgs/{org}/jobs{query}"),
                Some(&token),
                None,
            )
            .await
        }
    };
    let ids = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    };

    // Admins see every job, newest first; others the jobs they started.
    let (status, all) = list(admin.clone(), "").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(ids(&all), vec![second.clone(), first.clone()]);
    assert_eq!(all["meta"]["pagination"]["total"], 2);
    assert_eq!(all["data"][0]["kind"], "member_import");
    let (_, own) = list(board.clone(), "").await;
    assert_eq!(ids(&own), vec![second.clone()]);
    assert_eq!(own["meta"]["pagination"]["total"], 1);
    let (status, none) = list(vol.clone(), "").await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(none["data"], json!([]));
    assert_eq!(none["meta"]["pagination"]["total"], 0);

    // Paged, with the total.
    let (_, page) = list(admin.clone(), "?limit=1").await;
    assert_eq!(ids(&page), vec![second.clone()]);
    assert_eq!(page["meta"]["pagination"]["total"], 2);
    let cursor = page["meta"]["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, next) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/jobs?limit=1&cursor={cursor}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(ids(&next), vec![first.clone()]);
    assert!(
        next["meta"]["pagination"].get("next_cursor").is_none(),
        "{next}"
    );

    // Filters, validated.
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/jobs/{first}/cancel"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, cancelled) = list(admin.clone(), "?status=cancelled&kind=member_import").await;
    assert_eq!(ids(&cancelled), vec![first.clone()]);
    assert_eq!(cancelled["meta"]["pagination"]["total"], 1);
    let (_, exports) = list(admin.clone(), "?kind=member_export").await;
    assert_eq!(exports["data"], json!([]));
    for bad in [
        "?kind=payroll",
        "?status=done",
        "?sort=created",
        "?cursor=nope",
        "?limit=0",
    ] {
        let (status, body) = list(admin.clone(), bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "VALIDATION_FAILED", "{bad}");
    }
}

async fn orgs_members_and_districts_need_the_version_and_carry_an_etag(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = org(&app, "E1").await;
    let (vol_id, _) = member(&app, &org, &admin, "E1", "vol", "volunteer").await;
    let (_, root) = signed_up(&app, "root-e1@orgres.test").await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/platform/bootstrap",
        Some(&root),
        Some(json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, d) = send(
        &app,
        Method::POST,
        "/api/v2/districts",
        Some(&root),
        Some(json!({"name": "Etag District", "code": "ETAGD"})),
    )
    .await;
    assert_eq!(status, 201, "{d}");
    let district = d["data"]["id"].as_str().unwrap().to_owned();

    for (uri, token, change) in [
        (
            format!("/api/v2/orgs/{org}"),
            &admin,
            json!({"name": "Renamed PTO"}),
        ),
        (
            format!("/api/v2/orgs/{org}/users/{vol_id}"),
            &admin,
            json!({"committee": "Book fair"}),
        ),
        (
            format!("/api/v2/districts/{district}"),
            &root,
            json!({"name": "Renamed District"}),
        ),
    ] {
        // A read carries an ETag; If-None-Match with it is 304 with no body.
        let (status, etag, body) = call(&app, Method::GET, &uri, token, &[], None).await;
        assert_eq!(status, 200, "{uri}: {body}");
        let etag = etag.unwrap_or_else(|| panic!("{uri}: an ETag"));
        let version = body["data"]["version"].as_i64().unwrap();
        assert!(etag.starts_with(&format!("\"{version}-")), "{uri}: {etag}");
        let (status, again, body) = call(
            &app,
            Method::GET,
            &uri,
            token,
            &[("if-none-match", &etag)],
            None,
        )
        .await;
        assert_eq!((status, &body), (304, &Value::Null), "{uri}");
        assert_eq!(again.as_deref(), Some(etag.as_str()));

        // A write without a version is 428, with a stale one 412.
        let (status, _, body) =
            call(&app, Method::PATCH, &uri, token, &[], Some(change.clone())).await;
        assert_eq!(status, 428, "{uri}: {body}");
        assert_eq!(body["error"]["code"], "PRECONDITION_REQUIRED", "{uri}");
        let mut stale = change.clone();
        stale["version"] = json!(version + 5);
        let (status, _, body) = call(&app, Method::PATCH, &uri, token, &[], Some(stale)).await;
        assert_eq!(status, 412, "{uri}: {body}");
        // The ETag works as If-Match; the answer carries the new tag, and the old
        // one no longer matches.
        let (status, fresh, body) = call(
            &app,
            Method::PATCH,
            &uri,
            token,
            &[("if-match", &etag)],
            Some(change),
        )
        .await;
        assert_eq!(status, 200, "{uri}: {body}");
        assert_eq!(body["data"]["version"].as_i64(), Some(version + 1), "{uri}");
        let fresh = fresh.unwrap_or_else(|| panic!("{uri}: an ETag on the write"));
        assert_ne!(fresh, etag);
        let (status, _, _) = call(
            &app,
            Method::GET,
            &uri,
            token,
            &[("if-none-match", &etag)],
            None,
        )
        .await;
        assert_eq!(status, 200, "{uri}: a changed resource is sent again");
        let (status, _, _) = call(
            &app,
            Method::GET,
            &uri,
            token,
            &[("if-none-match", &fresh)],
            None,
        )
        .await;
        assert_eq!(status, 304, "{uri}");
    }
}

async fn a_members_account_details_change_under_the_rules(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin_id, admin) = org(&app, "F1").await;
    let (vol_id, vol) = member(&app, &org, &admin, "F1", "vol", "volunteer").await;
    let uri = format!("/api/v2/orgs/{org}/users/{vol_id}");
    let patch = |token: String, body: Value| {
        let app = &app;
        let uri = uri.clone();
        async move { crate::helpers::patch_current(app, &uri, Some(&token), Some(body)).await }
    };

    // The version is required here too.
    let (status, body) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&admin),
        Some(json!({"first_name": "Jo"})),
    )
    .await;
    assert_eq!(status, 428, "{body}");
    // An admin corrects the names, phone and (unproven) address of a member whose
    // account is the org's alone.
    let (status, body) = patch(
        admin.clone(),
        json!({"first_name": "Jo", "last_name": "March", "phone": "555-0100"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["data"]["first_name"].as_str(),
            body["data"]["last_name"].as_str()
        ),
        (Some("Jo"), Some("March"))
    );
    let (status, body) = patch(admin.clone(), json!({"email": "Jo.March@orgres.test"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["email"], "jo.march@orgres.test");
    let jo = crate::helpers::login(&app, "jo.march@orgres.test", "correct horse battery").await;
    // The directory finds the member by the new name and address.
    let (_, found) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users/search?q=March"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(found["data"][0]["user_id"], vol_id.as_str(), "{found}");
    let (_, sorted) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users?sort=email"),
        Some(&admin),
        None,
    )
    .await;
    let emails: Vec<&str> = sorted["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["email"].as_str())
        .collect();
    assert!(emails.contains(&"jo.march@orgres.test"), "{emails:?}");
    // Another account's address is 409; one's own address goes through its link (422).
    let (status, body) = patch(admin.clone(), json!({"email": "admin-F1@orgres.test"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"]["field"], "email");
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/users/{admin_id}"),
        Some(&admin),
        Some(json!({"email": "new-admin@orgres.test"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "email");

    // Members change their own names and phone (not through another member's route).
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&jo),
        Some(json!({"first_name": "Josephine"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["first_name"], "Josephine");
    let (status, _) = patch(vol.clone(), json!({"first_name": "X"})).await;
    assert_eq!(status, 403, "another member's route needs users.edit_roles");

    // Once the account belongs to another org too, only its owner changes it.
    let (_, other_admin) = signed_up(&app, "other-F1@orgres.test").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&other_admin),
        Some(json!({"name": "Other PTO", "signup_code": "OTHERF1X"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&jo),
        Some(json!({"signup_code": "OTHERF1X"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = patch(admin.clone(), json!({"last_name": "Bhaer"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "shared_account");

    // Audited in the org's log.
    let (status, log) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?action=user.profile_update"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["data"].as_array().map(Vec::len), Some(3), "{log}");
}

/// The token of the latest queued message of `template` to `to` (from the outbox).
async fn outbox_token(ctx: &TestContext, to: &str, template: &str) -> String {
    use sea_orm::ConnectionTrait;
    let db = ctx.state.db.primary();
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            "SELECT payload FROM mail_outbox WHERE recipient = $1 AND template = $2 ORDER BY id DESC"
        }
        _ => {
            "SELECT payload FROM mail_outbox WHERE recipient = ? AND template = ? ORDER BY id DESC"
        }
    };
    let row = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [to.into(), template.into()],
        ))
        .await
        .expect("read the outbox")
        .unwrap_or_else(|| panic!("no {template} message to {to}"));
    let payload: String = row
        .try_get::<String>("", "payload")
        .or_else(|_| row.try_get::<Value>("", "payload").map(|v| v.to_string()))
        .expect("payload");
    let at = payload.find("token=").expect("a link with a token") + "token=".len();
    payload[at..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect()
}

async fn an_address_change_reaches_the_member_directories(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = org(&app, "G1").await;
    let (vol_id, vol) = member(&app, &org, &admin, "G1", "vol", "volunteer").await;
    let search = |q: &'static str| {
        let (app, org, admin) = (&app, org.clone(), admin.clone());
        async move {
            send(
                app,
                Method::GET,
                &format!("/api/v2/orgs/{org}/users/search?q={q}"),
                Some(&admin),
                None,
            )
            .await
        }
    };
    let (_, before) = search("Relocated").await;
    assert_eq!(before["data"], json!([]), "{before}");
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/me/email",
        Some(&vol),
        Some(json!({"email": "relocated.vol@orgres.test", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let token = outbox_token(&ctx, "relocated.vol@orgres.test", "verify_email").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/verify-email",
        None,
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Found by the new address, sorted by it.
    let (_, after) = search("Relocated").await;
    assert_eq!(after["data"][0]["user_id"], vol_id.as_str(), "{after}");
    let (_, sorted) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users?sort=email&order=desc"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        sorted["data"][0]["email"], "relocated.vol@orgres.test",
        "{sorted}"
    );
}

/// Every single resource carries an `ETag` and answers 304 to `If-None-Match` while
/// unchanged: versioned ones (the account, the directory policy, privacy choices,
/// retention) and the ones that change by themselves (a job, an API key, an audit
/// event, a grant). A write moves a versioned resource's tag.
async fn every_single_resource_answers_not_modified(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = org(&app, "T1").await;
    let (vol_id, _) = member(&app, &org, &admin, "T1", "vol", "volunteer").await;
    let job = import(&app, &org, &admin, "tag@orgres.test").await;
    let (key, _) = crate::helpers::create(
        &app,
        &format!("/api/v2/orgs/{org}/api-keys"),
        Some(&admin),
        json!({"name": "sync", "permissions": ["users.view"], "expires_in_days": 30}),
    )
    .await;
    let (grant, _) = crate::helpers::create(
        &app,
        &format!("/api/v2/orgs/{org}/permissions/grants"),
        Some(&admin),
        json!({"user_id": vol_id, "key": "budget.view", "reason": "backup"}),
    )
    .await;
    let (_, events) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?limit=1"),
        Some(&admin),
        None,
    )
    .await;
    let event = events["data"][0]["id"].as_str().unwrap().to_owned();
    let resources = [
        "/api/v2/me".to_owned(),
        format!("/api/v2/orgs/{org}/me/privacy"),
        format!("/api/v2/orgs/{org}/directory-policy"),
        format!("/api/v2/orgs/{org}/member-retention"),
        format!("/api/v2/orgs/{org}/audit-logs/retention"),
        format!("/api/v2/orgs/{org}/jobs/{job}"),
        key,
        grant,
        format!("/api/v2/orgs/{org}/audit-logs/{event}"),
    ];
    for uri in &resources {
        let (status, tag, body) = crate::helpers::get_tagged(&app, uri, &admin, None).await;
        assert_eq!(status, 200, "{uri}: {body}");
        let tag = tag.unwrap_or_else(|| panic!("{uri}: no ETag"));
        let (status, again, body) = crate::helpers::get_tagged(&app, uri, &admin, Some(&tag)).await;
        assert_eq!(status, 304, "{uri}: {body}");
        assert_eq!(body, Value::Null, "{uri}: a 304 has no body");
        assert_eq!(again.as_deref(), Some(tag.as_str()), "{uri}");
    }

    // A job that moves has a new tag.
    let job_uri = format!("/api/v2/orgs/{org}/jobs/{job}");
    let (_, queued_tag, _) = crate::helpers::get_tagged(&app, &job_uri, &admin, None).await;
    let worker = pto_server::startup::job_worker(
        &ctx.state,
        jobs::WorkerSettings::new(ctx.state.tmp_dir.clone()),
    );
    assert_eq!(worker.run_until_idle().await.unwrap(), 1);
    let (status, _, done) =
        crate::helpers::get_tagged(&app, &job_uri, &admin, queued_tag.as_deref()).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["data"]["status"], "succeeded", "{done}");

    // A write moves the tag: the old one reads the new representation.
    let (_, old_tag, me) = crate::helpers::get_tagged(&app, "/api/v2/me", &admin, None).await;
    let old_tag = old_tag.unwrap();
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/api/v2/me",
        Some(&admin),
        Some(json!({"version": me["data"]["version"], "locale": "es-MX"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, new_tag, me) =
        crate::helpers::get_tagged(&app, "/api/v2/me", &admin, Some(&old_tag)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["locale"], "es-MX");
    assert_ne!(new_tag.as_deref(), Some(old_tag.as_str()));
}
