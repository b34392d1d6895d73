//! Adding someone creates an invitation (issue #13, "Cross-tenant lookup of personal
//! data"): the answer is built from the request alone, the same whether or not the
//! address has an account; no account is attached or created; invitations are listed and
//! revoked by the org's admins; an import creates them too.

use std::collections::BTreeSet;

use actix_web::http::Method;
use actix_web::test;
use jobs::WorkerSettings;

use crate::backend_tests;
use crate::helpers::{TestContext, login, send, signed_up};

backend_tests!(
    an_invitation_is_read_at_its_location_with_an_etag,
    adding_an_address_answers_the_same_whether_or_not_it_has_an_account,
    the_owner_of_an_invited_address_can_register,
    invitations_are_listed_and_revoked_by_admins,
    an_import_creates_one_invitation_per_new_address_and_a_dry_run_none,
);

macro_rules! svc_bound {
    () => {
        impl actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
            Error = actix_web::Error,
        >
    };
}

/// A new org with its admin; returns (org id, admin token).
async fn new_org(app: &svc_bound!(), email: &str, code: &str) -> (String, String) {
    let (_, token) = signed_up(app, email).await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs",
        Some(&token),
        Some(serde_json::json!({"name": "Invite PTO", "signup_code": code})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["data"]["org"]["id"].as_str().unwrap().to_owned(),
        token,
    )
}

async fn exec(ctx: &TestContext, sql: &str) {
    use sea_orm::ConnectionTrait;
    ctx.state
        .db
        .primary()
        .execute_unprepared(sql)
        .await
        .unwrap();
}

async fn count(ctx: &TestContext, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let db = ctx.state.db.primary();
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        sql.to_owned(),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap()
}

async fn get_data(app: &svc_bound!(), token: &str, uri: &str) -> serde_json::Value {
    let (status, body) = send(app, Method::GET, uri, Some(token), None).await;
    assert_eq!(status, 200, "{uri}: {body}");
    body["data"].clone()
}

/// The answer without what differs by nature between two invitations.
fn shape(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    for k in ["id", "email", "created_at", "expires_at"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

async fn adding_an_address_answers_the_same_whether_or_not_it_has_an_account(ctx: TestContext) {
    let app = ctx.service().await;
    // Another org knows Victoria: her phone, her last sign-in.
    let (org_b, _) = new_org(&app, "admin.b@inv.test", "INVB0001").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/register",
        None,
        Some(serde_json::json!({"email": "victoria@inv.test", "password": "correct horse battery", "first_name": "Victoria", "last_name": "Secretname"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let victoria_id = body["data"]["id"].as_str().unwrap().to_owned();
    let victoria = login(&app, "victoria@inv.test", "correct horse battery").await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&victoria),
        Some(serde_json::json!({"signup_code": "INVB0001"})),
    )
    .await;
    assert_eq!(status, 201);
    exec(
        &ctx,
        "UPDATE users SET phone = '+1 555 0199' WHERE email = 'victoria@inv.test'",
    )
    .await;
    let _ = org_b;

    // My org adds her address, and an address nobody has, with the same typed fields.
    let (org, admin) = new_org(&app, "admin.a@inv.test", "INVA0001").await;
    let typed = |email: &str| {
        serde_json::json!({
            "email": email, "first_name": "Typed", "last_name": "Name", "phone": "+1 555 0100",
            "role": "committee_lead", "committee": "Garden", "children": [{"name": "Ana", "grade": "3"}]
        })
    };
    let uri = format!("/api/v2/orgs/{org}/users");
    let (status, known) = send(
        &app,
        Method::POST,
        &uri,
        Some(&admin),
        Some(typed("Victoria@inv.test")),
    )
    .await;
    assert_eq!(status, 201, "{known}");
    let (status, unknown) = send(
        &app,
        Method::POST,
        &uri,
        Some(&admin),
        Some(typed("nobody@inv.test")),
    )
    .await;
    assert_eq!(status, 201, "{unknown}");
    let (known, unknown) = (&known["data"], &unknown["data"]);
    // Exactly what was typed; nothing of the account.
    assert_eq!(shape(known), shape(unknown));
    assert_eq!(known["email"], "victoria@inv.test");
    assert_eq!(known["first_name"], "Typed");
    assert_eq!(known["phone"], "+1 555 0100");
    assert_eq!(known["status"], "pending");
    assert_eq!(known["role"]["name"], "committee_lead");
    assert_eq!(known["children"][0]["name"], "Ana");
    assert!(known.get("user_id").is_none(), "{known}");
    let text = known.to_string();
    for secret in [victoria_id.as_str(), "Victoria", "Secretname", "0199"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(known), keys(unknown));

    // She is not a member of my org: my list and export hold only my admin; her phone and
    // sign-in (held by the other org) never show.
    let list = get_data(&app, &admin, &format!("{uri}?limit=200")).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let req = test::TestRequest::get()
        .uri(&format!("{uri}/export?format=csv"))
        .insert_header(("authorization", format!("Bearer {admin}")))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status().as_u16(), 200);
    let csv = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    for secret in ["victoria", "0199", "Secretname"] {
        assert!(
            !csv.to_lowercase().contains(&secret.to_lowercase()),
            "{csv}"
        );
    }
    assert_eq!(
        csv.trim_end().lines().count(),
        2,
        "header and my admin: {csv}"
    );
    // She has no membership in my org; no account was created for the unknown address.
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("{uri}/{victoria_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM users WHERE email = 'nobody@inv.test'"
        )
        .await,
        0
    );
    // Audited in my org's chain as what my org typed.
    let (_, logs) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?action=member.invite"),
        Some(&admin),
        None,
    )
    .await;
    let logs = logs["data"].as_array().unwrap().clone();
    assert_eq!(logs.len(), 2);
    for log in &logs {
        let text = log.to_string();
        assert!(
            !text.contains("Secretname") && !text.contains(&victoria_id),
            "{text}"
        );
    }
    // Adding her again while invited, or adding my own member: 409 (this org's own data).
    let (status, _) = send(
        &app,
        Method::POST,
        &uri,
        Some(&admin),
        Some(typed("victoria@inv.test")),
    )
    .await;
    assert_eq!(status, 409);
    let (status, body) = send(
        &app,
        Method::POST,
        &uri,
        Some(&admin),
        Some(typed("admin.a@inv.test")),
    )
    .await;
    assert_eq!(status, 409, "{body}");
}

async fn the_owner_of_an_invited_address_can_register(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = new_org(&app, "admin@inv.test", "INVR0001").await;
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/users"),
        Some(&admin),
        Some(serde_json::json!({"email": "newbie@inv.test", "first_name": "New", "last_name": "Bie"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // The address is not taken: its owner registers and signs in with their password.
    let (_, token) = signed_up(&app, "newbie@inv.test").await;
    let me = get_data(&app, &token, "/api/v2/me").await;
    assert_eq!(me["user"]["email"], "newbie@inv.test");
    assert_eq!(me["memberships"].as_array().map(Vec::len), Some(0));
    // Registering does not make them a member (claiming needs a proven address).
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let _ = ctx;
}

async fn invitations_are_listed_and_revoked_by_admins(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = new_org(&app, "admin@inv.test", "INVL0001").await;
    let (_, vol) = signed_up(&app, "vol@inv.test").await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(serde_json::json!({"signup_code": "INVL0001"})),
    )
    .await;
    assert_eq!(status, 201);
    let users = format!("/api/v2/orgs/{org}/users");
    let invitations = format!("/api/v2/orgs/{org}/invitations");
    let mut ids = Vec::new();
    for e in ["one@inv.test", "two@inv.test"] {
        // 201 with the invitation's address in `Location`.
        let (at, body) = crate::helpers::create(
            &app,
            &users,
            Some(&admin),
            serde_json::json!({"email": e, "first_name": "In", "last_name": "Vited"}),
        )
        .await;
        let id = body["data"]["id"].as_str().unwrap().to_owned();
        assert_eq!(at, format!("{invitations}/{id}"));
        ids.push(id);
    }
    // Listed newest first, pending, with what was typed; not members.
    let listed = get_data(&app, &admin, &invitations).await;
    let listed_ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed_ids, [ids[1].as_str(), ids[0].as_str()]);
    assert_eq!(listed[0]["status"], "pending");
    assert_eq!(listed[0]["email"], "two@inv.test");
    assert_eq!(
        get_data(&app, &admin, &users)
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A volunteer may neither list nor revoke them.
    let (status, _) = send(&app, Method::GET, &invitations, Some(&vol), None).await;
    assert_eq!(status, 403);
    let one = format!("{invitations}/{}", ids[0]);
    let (status, _) = send(&app, Method::DELETE, &one, Some(&vol), None).await;
    assert_eq!(status, 403);
    // Revoked once; a second time is a conflict; an unknown one is not found.
    let (status, body) = send(&app, Method::DELETE, &one, Some(&admin), None).await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let (status, body) = send(&app, Method::DELETE, &one, Some(&admin), None).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("{invitations}/{}", uuid::Uuid::now_v7()),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let revoked = get_data(&app, &admin, &format!("{invitations}?status=revoked")).await;
    assert_eq!(revoked.as_array().unwrap().len(), 1);
    let pending = get_data(&app, &admin, &format!("{invitations}?status=pending")).await;
    assert_eq!(pending.as_array().unwrap().len(), 1);
    // The revoked address can be invited again.
    let (status, _) = send(
        &app,
        Method::POST,
        &users,
        Some(&admin),
        Some(
            serde_json::json!({"email": "one@inv.test", "first_name": "In", "last_name": "Vited"}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    // Expired is computed on read.
    exec(
        &ctx,
        "UPDATE invitations SET expires_at = created_at WHERE email = 'two@inv.test'",
    )
    .await;
    let expired = get_data(&app, &admin, &format!("{invitations}?status=expired")).await;
    assert_eq!(expired.as_array().unwrap().len(), 1, "{expired}");
    assert_eq!(expired[0]["email"], "two@inv.test");
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("{invitations}/{}", ids[1]),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 409, "an expired invitation is not revoked");
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM audit_events WHERE action = 'invitation.revoke'"
        )
        .await,
        1
    );
    // Another org's admin sees none of them.
    let (_, other_admin) = new_org(&app, "other@inv.test", "INVL0002").await;
    let (status, _) = send(&app, Method::GET, &invitations, Some(&other_admin), None).await;
    assert_eq!(status, 404);
}

async fn upload(
    app: &svc_bound!(),
    token: &str,
    org: &str,
    query: &str,
    csv: &str,
) -> (u16, serde_json::Value) {
    let req = test::TestRequest::post()
        .uri(&format!("/api/v2/orgs/{org}/users/import{query}"))
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("content-type", "text/csv"))
        .set_payload(csv.to_owned())
        .to_request();
    let res = test::call_service(app, req).await;
    let status = res.status().as_u16();
    let bytes = test::read_body(res).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

async fn an_import_creates_one_invitation_per_new_address_and_a_dry_run_none(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = new_org(&app, "admin@inv.test", "INVI0001").await;
    // An address with an account elsewhere is invited like any other.
    let (_, _) = signed_up(&app, "has.account@inv.test").await;
    let csv = "email,first_name,last_name,role,phone,children\r\n\
               new1@inv.test,New,One,volunteer,555-1,Kid (K)\r\n\
               has.account@inv.test,Has,Account,board_member,,\r\n\
               NEW1@inv.test,New,Again,,,\r\n\
               admin@inv.test,Already,Member,,,\r\n";
    let (status, body) = upload(&app, &admin, &org, "?dry_run=true", csv).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["valid_rows"], 2, "{body}");
    assert_eq!(
        count(&ctx, "SELECT count(*) FROM invitations").await,
        0,
        "a dry run writes nothing"
    );

    let (status, body) = upload(&app, &admin, &org, "", csv).await;
    assert_eq!(status, 202, "{body}");
    let job = body["data"]["id"].as_str().unwrap().to_owned();
    let worker =
        pto_server::startup::job_worker(&ctx.state, WorkerSettings::new(ctx.state.tmp_dir.clone()));
    assert_eq!(worker.run_until_idle().await.unwrap(), 1);
    let done = get_data(&app, &admin, &format!("/api/v2/orgs/{org}/jobs/{job}")).await;
    assert_eq!(
        (
            done["succeeded_rows"].as_i64(),
            done["failed_rows"].as_i64()
        ),
        (Some(2), Some(2)),
        "{done}"
    );

    let listed = get_data(&app, &admin, &format!("/api/v2/orgs/{org}/invitations")).await;
    let emails: BTreeSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        BTreeSet::from(["new1@inv.test", "has.account@inv.test"])
    );
    let has = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == "has.account@inv.test")
        .unwrap();
    assert_eq!(
        (has["first_name"].as_str(), has["role"]["name"].as_str()),
        (Some("Has"), Some("board_member"))
    );
    let new1 = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == "new1@inv.test")
        .unwrap();
    assert_eq!(
        new1["children"][0],
        serde_json::json!({"name": "Kid", "grade": "K"})
    );
    assert_eq!(new1["phone"], "555-1");
    // No member, no account was added.
    assert_eq!(
        get_data(&app, &admin, &format!("/api/v2/orgs/{org}/users"))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM users WHERE email = 'new1@inv.test'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM audit_events WHERE action = 'member.invite'"
        )
        .await,
        2
    );
    // A dry run of the same file now reports the invited addresses.
    let (status, body) = upload(&app, &admin, &org, "?dry_run=true", csv).await;
    assert_eq!(status, 200, "{body}");
    let invited: BTreeSet<&str> = body["data"]["duplicates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "already_invited")
        .map(|d| d["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        invited,
        BTreeSet::from(["new1@inv.test", "has.account@inv.test"])
    );
    assert_eq!(body["data"]["valid_rows"], 0, "{body}");
    // The refused rows are reported: the repeated address and my own member.
    let req = test::TestRequest::get()
        .uri(&format!("/api/v2/orgs/{org}/jobs/{job}/errors"))
        .insert_header(("authorization", format!("Bearer {admin}")))
        .to_request();
    let report = String::from_utf8(
        test::read_body(test::call_service(&app, req).await)
            .await
            .to_vec(),
    )
    .unwrap();
    assert!(report.contains("pending invitation"), "{report}");
    assert!(report.contains("already a member"), "{report}");
}

/// `POST …/users` answers the invitation's `Location`; a `GET` there reads it with an
/// `ETag` (304 on `If-None-Match`), for those who may invite; a change is a new tag.
async fn an_invitation_is_read_at_its_location_with_an_etag(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "admin@inv-get.test").await;
    let org = crate::helpers::new_org(&app, &admin, "Invitation PTO").await;
    let (location, created) = crate::helpers::create(
        &app,
        &format!("/api/v2/orgs/{org}/users"),
        Some(&admin),
        serde_json::json!({"email": "guest@inv-get.test", "first_name": "Gwen", "last_name": "Guest"}),
    )
    .await;
    let get = |uri: String, token: String, etag: Option<String>| {
        let app = &app;
        async move { crate::helpers::get_tagged(app, &uri, &token, etag.as_deref()).await }
    };
    let (status, etag, body) = get(location.clone(), admin.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["id"], created["data"]["id"]);
    assert_eq!(body["data"]["status"], "pending");
    assert_eq!(body["data"]["first_name"], "Gwen");
    let etag = etag.expect("an ETag");
    let (status, _, _) = get(location.clone(), admin.clone(), Some(etag.clone())).await;
    assert_eq!(status, 304);
    // Revoked: a new state, a new tag.
    let (status, _) = send(&app, Method::DELETE, &location, Some(&admin), None).await;
    assert_eq!(status, 204);
    let (status, changed, body) = get(location.clone(), admin.clone(), Some(etag.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "revoked");
    assert_ne!(changed.as_deref(), Some(etag.as_str()));
    // Not for members who may not invite; another id is 404.
    let (_, vol) = crate::helpers::member_of(&app, &admin, &org, "vol@inv-get.test").await;
    let (status, _, _) = get(location.clone(), vol, None).await;
    assert_eq!(status, 403);
    let (status, _, _) = get(
        format!("/api/v2/orgs/{org}/invitations/{}", uuid::Uuid::now_v7()),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 404);
}
