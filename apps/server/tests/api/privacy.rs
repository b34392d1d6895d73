//! Directory privacy (issue #17): the record (admins, the member themself) and the
//! directory (other members); members' choices and the org's policy; full exports for
//! admins only; data-access activity for reads of a record.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestContext, send, signed_up};
use crate::permissions::org_with_volunteer;

backend_tests!(
    a_volunteer_is_refused_the_export_and_sees_only_directory_fields,
    an_opt_out_hides_a_field_from_list_search_profile_and_directory_export_not_from_the_record,
    an_unlisted_member_is_not_in_the_directory_and_opt_in_lists_nobody_by_default,
    record_reads_are_logged_for_the_org_admins_and_for_the_member,
    the_policy_is_versioned_admin_only_and_audited,
);

/// Jane's distinctive values.
const JANE_EMAIL: &str = "jane.quillfeather@privacy.test";
const JANE_PHONE: &str = "+1 555 867 5309";
const JANE_DIGITS: &str = "15558675309";

async fn exec(ctx: &TestContext, sql: &str) {
    use sea_orm::ConnectionTrait;
    ctx.state
        .db
        .primary()
        .execute_unprepared(sql)
        .await
        .unwrap();
}

/// An org with an admin, a volunteer and Jane (a volunteer with a phone, a committee
/// and a child): (org, admin token, volunteer token, Jane's id, Jane's token).
async fn org_with_jane<S, B>(
    app: &S,
    ctx: &TestContext,
    tag: &str,
) -> (String, String, String, String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (org, admin, _, vol) = org_with_volunteer(app, tag).await;
    let (jane_id, jane) = signed_up(app, JANE_EMAIL).await;
    exec(
        ctx,
        &format!("UPDATE users SET phone = '{JANE_PHONE}', first_name = 'Jane', last_name = 'Quill' WHERE email = '{JANE_EMAIL}'"),
    )
    .await;
    let (status, _) = send(
        app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&jane),
        Some(json!({"signup_code": format!("CODE{tag}")})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = send(
        app,
        Method::PATCH,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&jane),
        Some(json!({"version": 1, "committee": "Garden", "children": [{"name": "Ava", "grade": "2"}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (org, admin, vol, jane_id, jane)
}

async fn get<S, B>(app: &S, uri: &str, token: &str) -> (u16, Value)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    send(app, Method::GET, uri, Some(token), None).await
}

/// Jane's row in a list or search answer, if there.
fn jane_in(body: &Value, jane_id: &str) -> Option<Value> {
    body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|m| m["user_id"] == jane_id)
        .cloned()
}

async fn open_policy<S, B>(app: &S, org: &str, admin: &str, listing: &str)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (_, current) = get(app, &format!("/api/v2/orgs/{org}/directory-policy"), admin).await;
    let (status, body) = send(
        app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/directory-policy"),
        Some(admin),
        Some(json!({"version": current["data"]["version"], "phone": true, "email": true, "committee": true, "children_and_grades": true, "listing": listing})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn a_volunteer_is_refused_the_export_and_sees_only_directory_fields(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol, jane_id, _) = org_with_jane(&app, &ctx, "pv1").await;

    // Full exports are the admins': 403 for a volunteer, in every format and mode.
    for q in ["", "?format=xlsx", "?async=true"] {
        let (status, body) = get(&app, &format!("/api/v2/orgs/{org}/users/export{q}"), &vol).await;
        assert_eq!(status, 403, "{q}: {body}");
        assert_eq!(body["error"]["details"]["required_role"], "admin");
    }
    // The admin's export is the record, audited with its row count and filter.
    let (status, csv) = get(
        &app,
        &format!("/api/v2/orgs/{org}/users/export?format=csv&committee=Garden"),
        &admin,
    )
    .await;
    assert_eq!(status, 200);
    let csv = csv.as_str().expect("csv text").to_owned();
    assert!(
        csv.contains(JANE_PHONE) && csv.contains(JANE_EMAIL),
        "{csv}"
    );
    let (status, events) = get(
        &app,
        &format!("/api/v2/orgs/{org}/audit-logs?action=data.export"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{events}");
    let export = &events["data"][0];
    assert_eq!(export["new_value"]["rows"], 1, "{export}");
    assert_eq!(export["new_value"]["filter"]["committee"], "Garden");
    assert_eq!(export["new_value"]["format"], "csv");

    // The volunteer's list shows Jane's directory entry under the default policy:
    // e-mail, committee and children, no phone.
    let (status, list) = get(&app, &format!("/api/v2/orgs/{org}/users"), &vol).await;
    assert_eq!(status, 200, "{list}");
    let jane = jane_in(&list, &jane_id).expect("Jane is listed");
    assert_eq!(jane["view"], "directory");
    assert_eq!(jane["phone"], Value::Null);
    assert_eq!(jane["hidden_fields"], json!(["phone"]));
    assert_eq!(jane["email"], JANE_EMAIL);
    assert_eq!(jane["children"][0]["name"], "Ava");
    // The admin's is the record.
    let (_, list) = get(&app, &format!("/api/v2/orgs/{org}/users"), &admin).await;
    let jane = jane_in(&list, &jane_id).expect("Jane is listed");
    assert_eq!(
        (jane["view"].clone(), jane["phone"].clone()),
        (json!("record"), json!(JANE_PHONE))
    );
    assert_eq!(jane["hidden_fields"], json!([]));
    // Ordering the directory by e-mail would reveal hidden addresses: admins only.
    let (status, body) = get(&app, &format!("/api/v2/orgs/{org}/users?sort=email"), &vol).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "sort");
    let (status, _) = get(
        &app,
        &format!("/api/v2/orgs/{org}/users?sort=email"),
        &admin,
    )
    .await;
    assert_eq!(status, 200);
    // The phone the policy hides is not searchable by the volunteer, by the admin it is.
    let search = format!("/api/v2/orgs/{org}/users/search?q={JANE_DIGITS}");
    let (_, found) = get(&app, &search, &vol).await;
    assert!(jane_in(&found, &jane_id).is_none(), "{found}");
    let (_, found) = get(&app, &search, &admin).await;
    assert!(jane_in(&found, &jane_id).is_some(), "{found}");
}

async fn an_opt_out_hides_a_field_from_list_search_profile_and_directory_export_not_from_the_record(
    ctx: TestContext,
) {
    let app = ctx.service().await;
    let (org, admin, vol, jane_id, jane) = org_with_jane(&app, &ctx, "pv2").await;
    // The org shows everything…
    open_policy(&app, &org, &admin, "opt_out").await;
    // …Jane hides her e-mail and phone.
    let (status, mine) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/me/privacy"),
        Some(&jane),
        Some(json!({"phone": "hidden", "email": "hidden"})),
    )
    .await;
    assert_eq!(status, 428, "the version is required: {mine}");
    let (status, mine) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/me/privacy"),
        Some(&jane),
        Some(json!({"phone": "hidden", "email": "hidden", "version": 0})),
    )
    .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["data"]["phone"], "hidden");
    assert_eq!(mine["data"]["committee"], Value::Null);
    assert_eq!(mine["data"]["notice_version"], 1);
    assert!(mine["data"]["chosen_at"].is_string());
    assert_eq!(
        mine["data"]["effective"]["hidden"],
        json!(["phone", "email"])
    );
    let (_, again) = get(&app, &format!("/api/v2/orgs/{org}/me/privacy"), &jane).await;
    assert_eq!(again["data"]["version"], 1);

    let users = format!("/api/v2/orgs/{org}/users");
    let check_directory = |entry: &Value| {
        assert_eq!(entry["view"], "directory", "{entry}");
        assert_eq!(entry["email"], Value::Null, "{entry}");
        assert_eq!(entry["phone"], Value::Null, "{entry}");
        assert_eq!(entry["committee"], "Garden", "{entry}");
        assert_eq!(entry["hidden_fields"], json!(["phone", "email"]));
    };
    // List.
    let (_, list) = get(&app, &users, &vol).await;
    check_directory(&jane_in(&list, &jane_id).expect("listed"));
    // Profile.
    let (status, profile) = get(&app, &format!("{users}/{jane_id}"), &vol).await;
    assert_eq!(status, 200);
    check_directory(&profile["data"]);
    // Search: by a shown field she is found (without the hidden ones); by a hidden one,
    // never — not by a part of the address, not by the phone's digits, not with a typo.
    let (_, found) = get(&app, &format!("{users}/search?q=Quill%20Garden"), &vol).await;
    check_directory(&jane_in(&found, &jane_id).expect("found by name"));
    for hidden in [
        "quillfeather",
        "jane.quillfeather",
        "quilfeather",
        JANE_DIGITS,
        "8675309",
    ] {
        let (status, found) = get(&app, &format!("{users}/search?q={hidden}"), &vol).await;
        assert_eq!(status, 200);
        assert!(jane_in(&found, &jane_id).is_none(), "{hidden}: {found}");
    }
    // The printable directory.
    let (status, printable) =
        get(&app, &format!("/api/v2/orgs/{org}/directory/export"), &vol).await;
    assert_eq!(status, 200, "{printable}");
    let printable = printable.as_str().expect("csv").to_owned();
    assert!(printable.starts_with("first_name,last_name,role,committee,email,phone,children"));
    assert!(
        printable.contains("Jane,Quill,volunteer,Garden,,,Ava (2)"),
        "{printable}"
    );
    assert!(
        !printable.contains("quillfeather") && !printable.contains("5309"),
        "{printable}"
    );
    // Even the admin's printable directory honours her choice…
    let (_, printable) = get(
        &app,
        &format!("/api/v2/orgs/{org}/directory/export"),
        &admin,
    )
    .await;
    assert!(!printable.as_str().expect("csv").contains("quillfeather"));
    // …while the admin's record still shows everything: list, search, profile, export.
    let (_, list) = get(&app, &users, &admin).await;
    let record = jane_in(&list, &jane_id).expect("listed");
    assert_eq!(
        (record["email"].clone(), record["phone"].clone()),
        (json!(JANE_EMAIL), json!(JANE_PHONE))
    );
    let (_, found) = get(&app, &format!("{users}/search?q=quillfeather"), &admin).await;
    assert!(jane_in(&found, &jane_id).is_some(), "{found}");
    let (_, profile) = get(&app, &format!("{users}/{jane_id}"), &admin).await;
    assert_eq!(profile["data"]["view"], "record");
    assert_eq!(profile["data"]["phone"], JANE_PHONE);
    let (_, csv) = get(&app, &format!("/api/v2/orgs/{org}/users/export"), &admin).await;
    assert!(csv.as_str().expect("csv").contains(JANE_EMAIL));
    // And Jane sees her own record.
    let (_, own) = get(&app, &format!("{users}/{jane_id}"), &jane).await;
    assert_eq!(
        (own["data"]["view"].clone(), own["data"]["email"].clone()),
        (json!("record"), json!(JANE_EMAIL))
    );

    // A committee filter matches only shown committees.
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/me/privacy"),
        Some(&jane),
        Some(json!({"committee": "hidden", "version": 1})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, filtered) = get(&app, &format!("{users}?committee=Garden"), &vol).await;
    assert!(jane_in(&filtered, &jane_id).is_none(), "{filtered}");
    let (_, filtered) = get(&app, &format!("{users}?committee=Garden"), &admin).await;
    assert!(jane_in(&filtered, &jane_id).is_some(), "{filtered}");
    // A stale version is refused; an unknown notice version too.
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/me/privacy"),
        Some(&jane),
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(status, 412);
    let (status, body) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/me/privacy"),
        Some(&jane),
        Some(json!({"notice_version": 9, "version": 2})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["details"]["fields"][0]["field"],
        "notice_version"
    );
    // Her choices are audited (without anyone else seeing them).
    let (_, events) = get(
        &app,
        &format!("/api/v2/orgs/{org}/audit-logs?entity_type=member_privacy"),
        &admin,
    )
    .await;
    assert_eq!(events["data"].as_array().map(Vec::len), Some(2), "{events}");
    assert_eq!(events["data"][0]["action"], "member.update");
}

async fn an_unlisted_member_is_not_in_the_directory_and_opt_in_lists_nobody_by_default(
    ctx: TestContext,
) {
    let app = ctx.service().await;
    let (org, admin, vol, jane_id, jane) = org_with_jane(&app, &ctx, "pv3").await;
    let users = format!("/api/v2/orgs/{org}/users");
    // Warm the volunteer's cached page, then Jane leaves the directory.
    let (_, list) = get(&app, &users, &vol).await;
    assert!(jane_in(&list, &jane_id).is_some());
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/me/privacy"),
        Some(&jane),
        Some(json!({"listing": "hidden", "version": 0})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, list) = get(&app, &users, &vol).await;
    assert!(
        jane_in(&list, &jane_id).is_none(),
        "the cached page was retired: {list}"
    );
    let (_, found) = get(&app, &format!("{users}/search?q=Jane"), &vol).await;
    assert!(jane_in(&found, &jane_id).is_none());
    let (status, _) = get(&app, &format!("{users}/{jane_id}"), &vol).await;
    assert_eq!(status, 404);
    let (_, printable) = get(&app, &format!("/api/v2/orgs/{org}/directory/export"), &vol).await;
    assert!(!printable.as_str().expect("csv").contains("Quill"));
    // The admin still has her record.
    let (_, list) = get(&app, &users, &admin).await;
    assert!(jane_in(&list, &jane_id).is_some());

    // Jane lists herself again; the org switches to opt-in: nobody who did not opt in
    // is listed — she did choose to be listed, but shared no field.
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/me/privacy"),
        Some(&jane),
        Some(json!({"listing": "members", "version": 1})),
    )
    .await;
    assert_eq!(status, 200);
    open_policy(&app, &org, &admin, "opt_in").await;
    let (_, list) = get(&app, &users, &vol).await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["first_name"].as_str())
        .collect();
    let entry = jane_in(&list, &jane_id).expect("opted in");
    assert_eq!(entry["email"], Value::Null);
    assert_eq!(entry["committee"], Value::Null);
    assert_eq!(entry["children"], Value::Null);
    // The volunteer sees themself (listed only if they opted in: they did not) and
    // nobody else who did not opt in.
    assert_eq!(names, vec!["Jane"], "{list}");
}

async fn record_reads_are_logged_for_the_org_admins_and_for_the_member(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol, jane_id, jane) = org_with_jane(&app, &ctx, "pv4").await;
    let users = format!("/api/v2/orgs/{org}/users");
    let (_, everyone) = get(&app, &users, &admin).await;
    let admin_id = everyone["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"]["name"] == "admin")
        .and_then(|m| m["user_id"].as_str())
        .unwrap()
        .to_owned();
    // Two reads of Jane's record by the admin; reads that are not of someone else's
    // record (the admin's own, a volunteer's directory view, Jane's own) are not logged.
    for _ in 0..2 {
        let (status, _) = get(&app, &format!("{users}/{jane_id}"), &admin).await;
        assert_eq!(status, 200);
    }
    get(&app, &format!("{users}/{admin_id}"), &admin).await;
    get(&app, &format!("{users}/{jane_id}"), &vol).await;
    get(&app, &format!("{users}/{jane_id}"), &jane).await;

    let log = format!("/api/v2/orgs/{org}/access-log");
    let (status, page) = get(&app, &format!("{log}?limit=1"), &admin).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["meta"]["pagination"]["limit"], 1);
    let entry = &page["data"][0];
    assert_eq!(entry["accessor_user_id"], admin_id.as_str());
    assert_eq!(entry["subject_user_id"], jane_id.as_str());
    assert_eq!(entry["org_id"], org.as_str());
    assert_eq!(entry["what"], "member.record");
    assert!(entry["at"].is_string());
    let cursor = page["meta"]["pagination"]["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (_, rest) = get(&app, &format!("{log}?limit=1&cursor={cursor}"), &admin).await;
    assert_eq!(rest["data"].as_array().map(Vec::len), Some(1));
    assert!(
        rest["meta"]["pagination"]["next_cursor"].is_null(),
        "{rest}"
    );
    let (_, only_admin) = get(&app, &format!("{log}?user_id={admin_id}"), &admin).await;
    assert_eq!(only_admin["data"].as_array().map(Vec::len), Some(0));
    // The log is the admins'.
    let (status, _) = get(&app, &log, &vol).await;
    assert_eq!(status, 403);
    // Jane reads who read her record, across orgs.
    let (status, own) = get(&app, "/api/v2/me/access-log", &jane).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(own["data"][0]["accessor_user_id"], admin_id.as_str());
    assert_eq!(own["meta"]["pagination"]["limit"], 50);
    let (_, theirs) = get(&app, "/api/v2/me/access-log", &vol).await;
    assert_eq!(theirs["data"].as_array().map(Vec::len), Some(0));
}

async fn the_policy_is_versioned_admin_only_and_audited(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol, _, _) = org_with_jane(&app, &ctx, "pv5").await;
    let uri = format!("/api/v2/orgs/{org}/directory-policy");
    let (status, policy) = get(&app, &uri, &vol).await;
    assert_eq!(status, 200);
    assert_eq!(
        policy["data"],
        json!({"phone": false, "email": true, "committee": true, "children_and_grades": true, "listing": "opt_out", "children_data": true, "confirm_cycle": null, "version": 0, "updated_at": null})
    );
    let body = json!({"phone": true, "email": false, "committee": true, "children_and_grades": false, "listing": "opt_out"});
    let (status, _) = send(&app, Method::PUT, &uri, Some(&vol), Some(body.clone())).await;
    assert_eq!(status, 403);
    let (status, _) = send(&app, Method::PUT, &uri, Some(&admin), Some(body.clone())).await;
    assert_eq!(status, 428);
    let mut versioned = body.clone();
    versioned["version"] = json!(0);
    let (status, saved) = send(
        &app,
        Method::PUT,
        &uri,
        Some(&admin),
        Some(versioned.clone()),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["data"]["version"], 1);
    assert_eq!(saved["data"]["email"], false);
    let (status, stale) = send(&app, Method::PUT, &uri, Some(&admin), Some(versioned)).await;
    assert_eq!(status, 412, "{stale}");
    assert_eq!(stale["error"]["details"]["current_version"], 1);
    // Audited with before and after.
    let (_, events) = get(
        &app,
        &format!("/api/v2/orgs/{org}/audit-logs?entity_type=directory_policy"),
        &admin,
    )
    .await;
    let event = &events["data"][0];
    assert_eq!(event["action"], "org.update");
    assert_eq!(event["old_value"]["email"], true);
    assert_eq!(event["new_value"]["email"], false);
    // The volunteer's list follows the new policy at once (cached pages retired).
    let (_, list) = get(&app, &format!("/api/v2/orgs/{org}/users"), &vol).await;
    for m in list["data"].as_array().unwrap() {
        if m["view"] == "directory" {
            assert_eq!(m["email"], Value::Null, "{m}");
        }
    }
}
