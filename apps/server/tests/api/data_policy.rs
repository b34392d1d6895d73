//! Issue #17, "Retention": children's data switched off for an org (refused on every
//! write path, deleted when switched off, never shown) and the yearly "confirm your
//! details" cycle (unconfirmed members leave the directory after the org's date), on
//! both backends. Dates are set relative to today: nothing sleeps.

use actix_web::http::Method;
use actix_web::test;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestContext, member_of, send};
use crate::permissions::org_with_volunteer;

backend_tests!(
    children_switched_off_are_refused_on_every_path_erased_and_never_shown,
    unconfirmed_members_leave_the_directory_after_the_date_until_they_confirm,
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

/// A child's name found nowhere else.
const KID: &str = "Zephyrine";

async fn get(app: &svc_bound!(), uri: &str, token: &str) -> (u16, Value) {
    send(app, Method::GET, uri, Some(token), None).await
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
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Rows of every table that held children and still hold `KID`'s name.
async fn kid_rows(ctx: &TestContext) -> i64 {
    let mut n = 0;
    for sql in [
        format!("SELECT count(*) FROM memberships WHERE CAST(profile AS TEXT) LIKE '%{KID}%'"),
        format!(
            "SELECT count(*) FROM memberships WHERE search_doc LIKE '%{}%'",
            KID.to_lowercase()
        ),
        format!(
            "SELECT count(*) FROM removed_memberships WHERE CAST(profile AS TEXT) LIKE '%{KID}%'"
        ),
        format!("SELECT count(*) FROM invitations WHERE CAST(profile AS TEXT) LIKE '%{KID}%'"),
    ] {
        n += count(ctx, &sql).await;
    }
    n
}

async fn put_policy(app: &svc_bound!(), org: &str, admin: &str, extra: Value) -> (u16, Value) {
    let (_, current) = get(app, &format!("/api/v2/orgs/{org}/directory-policy"), admin).await;
    let mut body = json!({
        "version": current["data"]["version"],
        "phone": false, "email": true, "committee": true, "children_and_grades": true,
        "listing": "opt_out",
    });
    for (k, v) in extra.as_object().expect("an object") {
        body[k] = v.clone();
    }
    send(
        app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/directory-policy"),
        Some(admin),
        Some(body),
    )
    .await
}

fn row_of(body: &Value, id: &str) -> Option<Value> {
    body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|m| m["user_id"] == id)
        .cloned()
}

async fn upload_csv(
    app: &svc_bound!(),
    token: &str,
    org: &str,
    query: &str,
    csv: &str,
) -> (u16, Value) {
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
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn children_switched_off_are_refused_on_every_path_erased_and_never_shown(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, vol) = org_with_volunteer(&app, "kd1").await;
    let users = format!("/api/v2/orgs/{org}/users");
    // Children stored three ways: a member's profile, a removed member's, an invitation.
    let (jane_id, jane) = member_of(&app, &admin, &org, "jane@kids.test").await;
    let (status, body) = send(
        &app,
        Method::PATCH,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&jane),
        Some(json!({"version": 1, "children": [{"name": KID, "grade": "2"}, {"name": "Bo"}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &app,
        Method::PATCH,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&vol),
        Some(json!({"version": 1, "children": [{"name": format!("{KID}-Vol")}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("{users}/{vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = send(
        &app,
        Method::POST,
        &users,
        Some(&admin),
        Some(json!({"email": "invited@kids.test", "first_name": "In", "last_name": "Vited", "children": [{"name": format!("{KID}-Inv")}]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        kid_rows(&ctx).await,
        4,
        "profile, search document, removed, invitation"
    );

    let (_, before) = get(&app, &format!("{users}/{jane_id}"), &jane).await;
    // Switching children's data off deletes them all, in the policy's transaction.
    let (status, policy) = put_policy(&app, &org, &admin, json!({"children_data": false})).await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["data"]["children_data"], false);
    assert_eq!(kid_rows(&ctx).await, 0);
    // Audited with counts, naming no child.
    let (status, events) = get(
        &app,
        &format!("/api/v2/orgs/{org}/audit-logs?entity_type=directory_policy"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{events}");
    let erased = &events["data"][0]["new_value"]["children_erased"];
    assert_eq!(
        *erased,
        json!({"members": 1, "removed_members": 1, "invitations": 1, "children": 4}),
        "{events}"
    );
    assert!(
        !events["data"][0].to_string().contains(KID),
        "{}",
        events["data"][0]
    );
    // A policy write that leaves `children_data` out keeps it off.
    let (status, policy) = put_policy(&app, &org, &admin, json!({})).await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["data"]["children_data"], false);

    // Explicit writes sending children: 422 naming the field; sending none is fine.
    let (_, own) = get(&app, &format!("{users}/{jane_id}"), &jane).await;
    let version = own["data"]["version"].clone();
    assert_eq!(
        version.as_i64(),
        before["data"]["version"].as_i64().map(|v| v + 1),
        "the changed record's version moved"
    );
    assert_eq!(own["data"]["children"], json!([]));
    let (status, body) = send(
        &app,
        Method::PATCH,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&jane),
        Some(json!({"version": version, "children": [{"name": KID}]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "children");
    assert_eq!(
        body["error"]["details"]["fields"][0]["code"],
        "not_collected"
    );
    let (status, body) = send(
        &app,
        Method::PATCH,
        &format!("{users}/{jane_id}"),
        Some(&admin),
        Some(json!({"version": version, "children": [{"name": KID}]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(
        &app,
        Method::PATCH,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&jane),
        Some(json!({"version": version, "children": [], "committee": "Garden"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &app,
        Method::POST,
        &users,
        Some(&admin),
        Some(json!({"email": "second@kids.test", "first_name": "Se", "last_name": "Cond", "children": [{"name": KID}]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["details"]["fields"][0]["code"],
        "not_collected"
    );

    // Imports: the dry run flags rows with children, the job refuses them row by row.
    let csv = format!(
        "email,first_name,last_name,children\r\nrow2@kids.test,Row,Two,{KID} (K)\r\nrow3@kids.test,Row,Three,\r\n"
    );
    let (status, dry) = upload_csv(&app, &admin, &org, "?dry_run=true", &csv).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        (
            dry["data"]["valid_rows"].as_i64(),
            dry["data"]["invalid_rows"].as_i64()
        ),
        (Some(1), Some(1)),
        "{dry}"
    );
    assert_eq!(dry["data"]["errors"][0]["row"], 2);
    assert_eq!(dry["data"]["errors"][0]["code"], "children_not_collected");
    let (status, job) = upload_csv(&app, &admin, &org, "", &csv).await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["data"]["id"].as_str().unwrap().to_owned();
    let worker = pto_server::startup::job_worker(
        &ctx.state,
        jobs::WorkerSettings::new(ctx.state.tmp_dir.clone()),
    );
    assert_eq!(worker.run_until_idle().await.unwrap(), 1);
    let (_, job) = get(&app, &format!("/api/v2/orgs/{org}/jobs/{job_id}"), &admin).await;
    assert_eq!(job["data"]["status"], "succeeded", "{job}");
    assert_eq!(
        (
            job["data"]["succeeded_rows"].as_i64(),
            job["data"]["failed_rows"].as_i64()
        ),
        (Some(1), Some(1)),
        "{job}"
    );
    assert_eq!(kid_rows(&ctx).await, 0, "nothing stored by any path");

    // A restored member comes back without children.
    let (status, restored) = send(
        &app,
        Method::POST,
        &format!("{users}/{vol_id}/restore"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["data"]["children"], json!([]));

    // Shown nowhere: the directory hides the field, the record holds none.
    let (_, list) = get(&app, &users, &vol).await;
    let entry = row_of(&list, &jane_id).expect("Jane is listed");
    assert_eq!(entry["children"], Value::Null, "{entry}");
    assert!(
        entry["hidden_fields"]
            .as_array()
            .unwrap()
            .contains(&json!("children_and_grades"))
    );
    let (_, list) = get(&app, &users, &admin).await;
    assert_eq!(
        row_of(&list, &jane_id).expect("Jane")["children"],
        json!([])
    );
    let (_, printable) = get(&app, &format!("/api/v2/orgs/{org}/directory/export"), &vol).await;
    assert!(!printable.as_str().expect("csv").contains(KID));
    let (_, found) = get(&app, &format!("{users}/search?q={KID}"), &admin).await;
    assert!(found["data"].as_array().unwrap().is_empty(), "{found}");

    // Switched on again, children are accepted again (nothing comes back).
    let (status, _) = put_policy(&app, &org, &admin, json!({"children_data": true})).await;
    assert_eq!(status, 200);
    let (_, own) = get(&app, &format!("{users}/{jane_id}"), &jane).await;
    assert_eq!(own["data"]["children"], json!([]));
    let (status, body) = send(
        &app,
        Method::PATCH,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&jane),
        Some(json!({"version": own["data"]["version"], "children": [{"name": "Ava"}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

fn day(offset_days: i64) -> String {
    let d = time::OffsetDateTime::now_utc().date() + time::Duration::days(offset_days);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

async fn unconfirmed_members_leave_the_directory_after_the_date_until_they_confirm(
    ctx: TestContext,
) {
    let app = ctx.service().await;
    let (org, admin, _, vol) = org_with_volunteer(&app, "kc1").await;
    let users = format!("/api/v2/orgs/{org}/users");
    let (jane_id, jane) = member_of(&app, &admin, &org, "jane.cycle@kids.test").await;
    let (status, body) = send(
        &app,
        Method::PATCH,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&jane),
        Some(json!({"version": 1, "first_name": "Jane", "last_name": "Quorra"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Everyone joined long before this year's cycle (joining counts as confirming).
    exec(
        &ctx,
        "UPDATE memberships SET joined_at = '2020-01-01 00:00:00.000000+00:00'",
    )
    .await;

    // The cycle is versioned like every policy write.
    let (status, body) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/directory-policy"),
        Some(&admin),
        Some(json!({"phone": false, "email": true, "committee": true, "children_and_grades": true, "listing": "opt_out", "confirm_cycle": {"starts_on": day(-30), "confirm_by": day(30)}})),
    )
    .await;
    assert_eq!(status, 428, "{body}");
    let (status, body) = put_policy(
        &app,
        &org,
        &admin,
        json!({"confirm_cycle": {"starts_on": day(-30), "confirm_by": day(-31)}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["details"]["fields"][0]["field"],
        "confirm_cycle.confirm_by"
    );
    let (status, body) = put_policy(
        &app,
        &org,
        &admin,
        json!({"confirm_cycle": {"starts_on": day(-30), "confirm_by": day(30)}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["confirm_cycle"]["confirm_by"], day(30));
    assert_eq!(body["data"]["confirm_cycle"]["deadline_passed"], false);
    // Before the date: Jane is due, and listed.
    let (_, list) = get(&app, &users, &vol).await;
    assert!(row_of(&list, &jane_id).is_some(), "{list}");
    let (_, list) = get(&app, &users, &admin).await;
    assert_eq!(
        row_of(&list, &jane_id).unwrap()["details_confirmation"],
        "due"
    );

    // The date has passed (the org set it yesterday): Jane, who did not confirm, is
    // gone from another member's list, search, profile and printable directory…
    let (status, body) = put_policy(
        &app,
        &org,
        &admin,
        json!({"confirm_cycle": {"starts_on": day(-30), "confirm_by": day(-1)}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["confirm_cycle"]["deadline_passed"], true);
    let in_directory = |vol: String| {
        let app = &app;
        let users = users.clone();
        let org = org.clone();
        let jane_id = jane_id.clone();
        async move {
            let (_, list) = get(app, &users, &vol).await;
            let listed = row_of(&list, &jane_id).is_some();
            let (_, found) = get(app, &format!("{users}/search?q=Quorra"), &vol).await;
            let found = row_of(&found, &jane_id).is_some();
            let (status, _) = get(app, &format!("{users}/{jane_id}"), &vol).await;
            let profile = status == 200;
            let (_, printable) =
                get(app, &format!("/api/v2/orgs/{org}/directory/export"), &vol).await;
            let printed = printable.as_str().expect("csv").contains("Quorra");
            [listed, found, profile, printed]
        }
    };
    assert_eq!(in_directory(vol.clone()).await, [false; 4]);
    // …while the admin's record views list her, with her standing…
    let (_, list) = get(&app, &users, &admin).await;
    let record = row_of(&list, &jane_id).expect("the admin lists Jane");
    assert_eq!(record["details_confirmation"], "lapsed");
    assert_eq!(record["details_confirmed_at"], Value::Null);
    let (_, found) = get(&app, &format!("{users}/search?q=Quorra"), &admin).await;
    assert!(row_of(&found, &jane_id).is_some(), "{found}");
    // …and Jane sees herself.
    let (status, own) = get(&app, &format!("{users}/{jane_id}"), &jane).await;
    assert_eq!(status, 200);
    assert_eq!(own["data"]["details_confirmation"], "lapsed");

    let (_, mine) = get(&app, &format!("/api/v2/orgs/{org}/me/privacy"), &jane).await;
    assert_eq!(mine["data"]["effective"]["listed"], false, "{mine}");
    assert_eq!(mine["data"]["effective"]["details_confirmation"], "lapsed");

    // She confirms: back in the directory at once.
    let (status, confirmed) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/me/confirm-details"),
        Some(&jane),
        None,
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["data"]["status"], "confirmed");
    assert!(confirmed["data"]["details_confirmed_at"].is_string());
    assert_eq!(confirmed["data"]["confirm_cycle"]["confirm_by"], day(-1));
    assert_eq!(in_directory(vol.clone()).await, [true; 4]);
    let (_, mine) = get(&app, &format!("/api/v2/orgs/{org}/me/privacy"), &jane).await;
    assert_eq!(mine["data"]["effective"]["listed"], true, "{mine}");
    let (_, list) = get(&app, &users, &admin).await;
    let record = row_of(&list, &jane_id).unwrap();
    assert_eq!(record["details_confirmation"], "confirmed");
    assert_eq!(
        record["details_confirmed_at"],
        confirmed["data"]["details_confirmed_at"]
    );
    // Other members never see when she confirmed.
    let (_, list) = get(&app, &users, &vol).await;
    assert_eq!(
        row_of(&list, &jane_id).unwrap()["details_confirmed_at"],
        Value::Null
    );
    // Audited as a change of her membership.
    let (_, events) = get(
        &app,
        &format!("/api/v2/orgs/{org}/audit-logs?action=member.update"),
        &admin,
    )
    .await;
    assert!(
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["new_value"]["details_confirmed_at"].is_string()),
        "{events}"
    );

    // Her personal data export holds the confirmation time.
    let (status, asked) = send(
        &app,
        Method::POST,
        "/api/v2/me/data-export",
        Some(&jane),
        None,
    )
    .await;
    assert_eq!(status, 202, "{asked}");
    let export_id = asked["data"]["id"].as_str().unwrap().to_owned();
    tenancy_store::personal_data::run_export(
        &ctx.state.db,
        &ctx.state.audit_archive_dir,
        export_id.parse().unwrap(),
    )
    .await
    .unwrap();
    let (_, state) = get(&app, &format!("/api/v2/me/data-exports/{export_id}"), &jane).await;
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(state["data"]["download"].as_str().expect("a download link"))
            .insert_header(("authorization", format!("Bearer {jane}")))
            .to_request(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let export: Value = serde_json::from_slice(&test::read_body(res).await).unwrap();
    let memberships = export["data"]["memberships"]
        .as_array()
        .expect("memberships");
    assert!(
        memberships
            .iter()
            .any(|m| m["details_confirmed_at"].is_string()),
        "{export}"
    );

    // A confirmation from before the cycle started does not count (a page not read
    // before: the raw update bypasses the cache's invalidation).
    exec(
        &ctx,
        "UPDATE memberships SET details_confirmed_at = '2021-01-01 00:00:00.000000+00:00'",
    )
    .await;
    let (_, list) = get(&app, &format!("{users}?limit=150"), &admin).await;
    assert_eq!(
        row_of(&list, &jane_id).unwrap()["details_confirmation"],
        "lapsed"
    );
    // No cycle: nobody lapses.
    let (status, body) = put_policy(&app, &org, &admin, json!({"confirm_cycle": null})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["confirm_cycle"], Value::Null);
    assert_eq!(in_directory(vol).await, [true; 4]);
}
