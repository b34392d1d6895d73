//! Adding members, bulk import (dry run, durable exactly-once job) and export (CSV,
//! XLSX, async jobs), on both backends.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix_web::http::Method;
use actix_web::test;
use jobs::{RunOutcome, Worker, WorkerSettings};

use crate::backend_tests;
use crate::helpers::{Rng, TestContext, send, signed_up};

backend_tests!(
    add_member_invites_or_creates_and_refuses_duplicates,
    import_dry_run_reports_row_errors_and_duplicates_and_writes_nothing,
    killed_import_resumes_and_applies_each_row_exactly_once,
    export_round_trips_through_the_importer_and_xlsx_has_typed_cells,
    exports_and_jobs_never_cross_orgs,
    jobs_can_be_cancelled_and_ended_jobs_are_swept,
    hostile_spreadsheets_are_refused_early_and_the_server_keeps_answering,
    hostile_csv_is_refused_at_its_caps_and_duplicate_headers_name_the_column,
    import_rows_are_staged_in_batches_each_committed_alone,
    multipart_uploads_import_like_the_raw_body,
    multipart_uploads_are_refused_clearly_within_the_same_caps,
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

async fn new_org(app: &svc_bound!(), email: &str, code: &str) -> (String, String) {
    let (_, token) = signed_up(app, email).await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs",
        Some(&token),
        Some(serde_json::json!({"name": "IO PTO", "signup_code": code})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["data"]["org"]["id"].as_str().unwrap().to_owned(),
        token,
    )
}

/// Uploads `body` to the import route; returns status and JSON body.
async fn upload(
    app: &svc_bound!(),
    token: &str,
    org: &str,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let req = test::TestRequest::post()
        .uri(&format!("/api/v2/orgs/{org}/users/import{query}"))
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("content-type", content_type.to_owned()))
        .set_payload(body)
        .to_request();
    let res = test::call_service(app, req).await;
    let status = res.status().as_u16();
    let bytes = test::read_body(res).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// GETs a file route; returns status, content type and bytes.
async fn download(app: &svc_bound!(), token: &str, uri: &str) -> (u16, String, Vec<u8>) {
    let req = test::TestRequest::get()
        .uri(uri)
        .insert_header(("authorization", format!("Bearer {token}")))
        .to_request();
    let res = test::call_service(app, req).await;
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ct, test::read_body(res).await.to_vec())
}

fn worker(ctx: &TestContext, crash_before_row: Option<i64>, batch: u64) -> Worker {
    let mut s = WorkerSettings::new(ctx.state.tmp_dir.clone());
    s.batch = batch;
    s.crash_before_row = crash_before_row;
    // A crashed worker's lease must be claimable at once by the next one (no waiting
    // in tests): a zero lease is always expired, and exactly-once does not depend on it.
    s.lease = Duration::ZERO;
    pto_server::startup::job_worker(&ctx.state, s)
}

async fn members(app: &svc_bound!(), token: &str, org: &str) -> Vec<serde_json::Value> {
    let (status, body) = send(
        app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users?limit=200"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// Registers `email` with these names and joins the org with `code`; returns the user id.
async fn joined(app: &svc_bound!(), email: &str, first: &str, last: &str, code: &str) -> String {
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/auth/register",
        None,
        Some(serde_json::json!({"email": email, "password": "correct horse battery", "first_name": first, "last_name": last})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let token = crate::helpers::login(app, email, "correct horse battery").await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&token),
        Some(serde_json::json!({"signup_code": code})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    id
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

/// The org's invitations (what adding and importing create).
async fn invitations(app: &svc_bound!(), token: &str, org: &str) -> Vec<serde_json::Value> {
    let (status, body) = send(
        app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/invitations?limit=200"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
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

async fn add_member_invites_or_creates_and_refuses_duplicates(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = new_org(&app, "admin@io.test", "IOADD001").await;
    let (existing_id, existing_token) = signed_up(&app, "existing@io.test").await;
    let uri = format!("/api/v2/orgs/{org}/users");
    // An existing account is invited like any address: the answer is what was typed.
    let (status, body) = send(&app, Method::POST, &uri, Some(&admin), Some(serde_json::json!({
        "email": "Existing@io.test", "first_name": "Typed", "last_name": "Name", "role": "committee_lead",
        "committee": "Garden", "children": [{"name": "Ana", "grade": "3"}]
    }))).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["data"].get("user_id").is_none(), "{body}");
    assert!(!body.to_string().contains(&existing_id), "{body}");
    assert_eq!(body["data"]["email"], "existing@io.test");
    assert_eq!(body["data"]["first_name"], "Typed");
    assert_eq!(body["data"]["status"], "pending");
    assert_eq!(body["data"]["role"]["name"], "committee_lead");
    assert_eq!(body["data"]["committee"], "Garden");
    assert_eq!(body["data"]["children"][0]["name"], "Ana");
    // An invitation is not a membership.
    let (status, _) = send(&app, Method::GET, &uri, Some(&existing_token), None).await;
    assert_eq!(status, 404);
    // No account is created for a new address.
    let (status, body) = send(
        &app,
        Method::POST,
        &uri,
        Some(&admin),
        Some(serde_json::json!({
            "email": "new@io.test", "first_name": "Nina", "last_name": "New", "phone": "+1 555 0100"
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["role"]["name"], "volunteer");
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM users WHERE email = 'new@io.test'"
        )
        .await,
        0
    );
    // Twice (a pending invitation): 409. Bad input: 422.
    let (status, body) = send(
        &app,
        Method::POST,
        &uri,
        Some(&admin),
        Some(serde_json::json!({
            "email": "new@io.test", "first_name": "Nina", "last_name": "New"
        })),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = send(
        &app,
        Method::POST,
        &uri,
        Some(&admin),
        Some(serde_json::json!({
            "email": "nope", "first_name": "", "last_name": "New"
        })),
    )
    .await;
    assert_eq!(status, 422);
    // Audited once per invitation.
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM audit_events WHERE action = 'member.invite'"
        )
        .await,
        2
    );
}

const BAD_CSV: &str = "Email,First Name,Last Name,Role,Committee\r\n\
ok@io.test,Olga,Okay,volunteer,Garden\r\n\
not-an-email,Bad,Email,volunteer,\r\n\
nobody@io.test,No,Role,wizard,\r\n\
ok@io.test,Olga,Again,,\r\n\
admin@io.test,Already,Member,,\r\n\
,,Nameless,,\r\n\
olga2@io.test,Olga,Okay,,\r\n";

async fn import_dry_run_reports_row_errors_and_duplicates_and_writes_nothing(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = new_org(&app, "admin@io.test", "IODRY001").await;
    let events_before = count(&ctx, "SELECT count(*) FROM audit_events").await;
    let (status, body) = upload(
        &app,
        &admin,
        &org,
        "?dry_run=true",
        "text/csv",
        BAD_CSV.into(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let r = &body["data"];
    assert_eq!(r["total_rows"], 7);
    let errors: BTreeSet<(i64, String, String)> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_i64().unwrap(),
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        errors.contains(&(3, "email".into(), "invalid_email".into())),
        "{errors:?}"
    );
    assert!(
        errors.contains(&(4, "role".into(), "unknown_role".into())),
        "{errors:?}"
    );
    assert!(
        errors.contains(&(7, "email".into(), "missing".into())),
        "{errors:?}"
    );
    assert!(
        errors.contains(&(7, "first_name".into(), "missing".into())),
        "{errors:?}"
    );
    let dups: BTreeSet<(i64, String)> = r["duplicates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["row"].as_i64().unwrap(),
                d["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        dups,
        BTreeSet::from([
            (5, "email_in_file".into()),
            (6, "already_member".into()),
            (8, "similar_name".into()),
        ])
    );
    assert_eq!(r["valid_rows"], 2);
    // Nothing written.
    assert_eq!(members(&app, &admin, &org).await.len(), 1);
    assert_eq!(
        count(&ctx, "SELECT count(*) FROM audit_events").await,
        events_before
    );
    assert_eq!(count(&ctx, "SELECT count(*) FROM jobs").await, 0);
    // Not a spreadsheet: 415.
    let (status, _) = upload(
        &app,
        &admin,
        &org,
        "?dry_run=true",
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 415);
    // Over the route's documented cap (x-body-limit): 413, on the declared length before
    // a byte is read.
    let (_, doc) = send(&app, Method::GET, "/openapi.json", None, None).await;
    let cap = doc["paths"]["/api/v2/orgs/{org_id}/users/import"]["post"]["x-body-limit"]
        .as_u64()
        .expect("the import documents its cap");
    assert_eq!(cap, 20 * 1024 * 1024);
    let req = test::TestRequest::post()
        .uri(&format!("/api/v2/orgs/{org}/users/import?dry_run=true"))
        .insert_header(("authorization", format!("Bearer {admin}")))
        .insert_header(("content-type", "text/csv"))
        .set_payload(b"email\n".to_vec())
        .insert_header(("content-length", (cap + 1).to_string()))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status().as_u16(), 413);
    let body: serde_json::Value = serde_json::from_slice(&test::read_body(res).await).unwrap();
    assert_eq!(body["error"]["details"]["limit_bytes"], cap);
}

async fn killed_import_resumes_and_applies_each_row_exactly_once(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = new_org(&app, "admin@io.test", "IOKIL001").await;
    // 12 valid rows (one an existing account), 2 invalid, 1 duplicate of an earlier row.
    let (_, _) = signed_up(&app, "has.account@io.test").await;
    let mut csv = String::from("email,first_name,last_name,role,children\r\n");
    for i in 0..11 {
        csv.push_str(&format!(
            "m{i}@io.test,First{i},Last{i},volunteer,Kid{i} (K)\r\n"
        ));
    }
    csv.push_str("has.account@io.test,Has,Account,board_member,\r\n");
    csv.push_str("bad-email,X,Y,,\r\n");
    csv.push_str("m3@io.test,First3,Last3,,\r\n");
    csv.push_str("z@io.test,Zed,Zulu,wizard,\r\n");
    let (status, body) = upload(&app, &admin, &org, "", "text/csv", csv.into()).await;
    assert_eq!(status, 202, "{body}");
    let job = body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["status"], "queued");
    assert_eq!(body["data"]["total_rows"], 15);
    let status_uri = format!("/api/v2/orgs/{org}/jobs/{job}");

    // The first worker is killed before row 7 (in its second batch of 4): rows 2–5 are
    // committed, 6 was applied in the uncommitted step and is rolled back.
    let first = worker(&ctx, Some(7), 4);
    let (_, outcome) = first.run_next().await.unwrap().expect("a job to run");
    assert_eq!(outcome, RunOutcome::Crashed);
    let (_, body) = send(&app, Method::GET, &status_uri, Some(&admin), None).await;
    assert_eq!(body["data"]["status"], "running");
    assert_eq!(body["data"]["processed_rows"], 4, "{body}");
    assert_eq!(invitations(&app, &admin, &org).await.len(), 4);
    assert_eq!(
        members(&app, &admin, &org).await.len(),
        1,
        "invitations, not members"
    );

    // The second is killed too, later; a third (on "another instance") finishes.
    let second = worker(&ctx, Some(13), 3);
    assert_eq!(
        second.run_next().await.unwrap().unwrap().1,
        RunOutcome::Crashed
    );
    let other = ctx.another_instance().await;
    let mut s = WorkerSettings::new(other.tmp_dir.clone());
    s.batch = 5;
    let third = pto_server::startup::job_worker(&other, s);
    assert_eq!(third.run_until_idle().await.unwrap(), 1);
    assert!(third.run_next().await.unwrap().is_none(), "nothing left");

    let (_, body) = send(&app, Method::GET, &status_uri, Some(&admin), None).await;
    let d = &body["data"];
    assert_eq!(d["status"], "succeeded", "{body}");
    assert_eq!(
        (d["succeeded_rows"].as_i64(), d["failed_rows"].as_i64()),
        (Some(12), Some(3))
    );
    // Each valid row exactly once: invitations, audit events; no account, no member.
    let listed = invitations(&app, &admin, &org).await;
    assert_eq!(listed.len(), 12);
    let emails: BTreeSet<&str> = listed
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 12);
    assert!(emails.contains("has.account@io.test"));
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM users WHERE email LIKE 'm%@io.test'"
        )
        .await,
        0
    );
    assert_eq!(members(&app, &admin, &org).await.len(), 1);
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM audit_events WHERE action = 'member.invite'"
        )
        .await,
        12
    );
    let kid = listed.iter().find(|m| m["email"] == "m7@io.test").unwrap();
    assert_eq!(
        kid["children"][0],
        serde_json::json!({"name": "Kid7", "grade": "K"})
    );
    // The error report lists the three refused rows with their reasons.
    let (status, ct, bytes) = download(&app, &admin, &format!("{status_uri}/errors")).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/csv"));
    let report = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines[0],
        "row,reason,email,first_name,last_name,role,phone,committee,children"
    );
    assert_eq!(lines.len(), 4, "{report}");
    assert!(
        lines[1].starts_with("14,") && lines[1].contains("email"),
        "{report}"
    );
    assert!(
        lines[2].starts_with("15,") && lines[2].contains("pending invitation"),
        "{report}"
    );
    assert!(
        lines[3].starts_with("16,") && lines[3].contains("role"),
        "{report}"
    );
    // /metrics counts the finished job (jobs by status, counted at scrape time).
    let res = actix_web::test::call_service(
        &app,
        actix_web::test::TestRequest::get()
            .uri("/metrics")
            .to_request(),
    )
    .await;
    let text = String::from_utf8(actix_web::test::read_body(res).await.to_vec()).unwrap();
    let succeeded = text
        .lines()
        .find_map(|l| l.strip_prefix("ptoc_jobs{state=\"succeeded\"} "))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(succeeded.is_some_and(|n| n >= 1), "{text}");
}

fn parse_csv(bytes: &[u8]) -> Vec<BTreeMap<String, String>> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    lines
        .map(|l| {
            // The test data has no quoted fields except children (no commas inside).
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_owned))
                .collect()
        })
        .collect()
}

async fn export_round_trips_through_the_importer_and_xlsx_has_typed_cells(ctx: TestContext) {
    let app = ctx.service().await;
    let (org_a, admin_a) = new_org(&app, "admin.a@io.test", "IORTA001").await;
    let (org_b, admin_b) = new_org(&app, "admin.b@io.test", "IORTB001").await;
    let (status, treasurer) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org_a}/roles"),
        Some(&admin_a),
        Some(serde_json::json!({"name": "Treasurer", "counts_as": "board_member"})),
    )
    .await;
    assert_eq!(status, 201, "{treasurer}");
    send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org_b}/roles"),
        Some(&admin_b),
        Some(serde_json::json!({"name": "Treasurer", "counts_as": "board_member"})),
    )
    .await;
    for (i, role) in ["volunteer", "committee_lead", "Treasurer"]
        .iter()
        .enumerate()
    {
        let role = if *role == "Treasurer" {
            serde_json::json!({"custom_role_id": role_id(&treasurer)})
        } else {
            serde_json::json!(role)
        };
        // A real member of A: registered, joined, then given a role and a profile (the
        // phone is the account's).
        let email = format!("p{i}@io.test");
        let id = joined(&app, &email, &format!("Pat{i}"), "O'Round", "IORTA001").await;
        let (status, body) = crate::helpers::patch_current(
            &app,
            &format!("/api/v2/orgs/{org_a}/users/{id}"),
            Some(&admin_a),
            Some(serde_json::json!({
                "role": role, "committee": if i == 1 { Some("Book Fair") } else { None },
                "children": [{"name": format!("Kid{i}"), "grade": "2"}, {"name": "Sib"}]
            })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        exec(
            &ctx,
            &format!("UPDATE users SET phone = '+1 555 010{i}' WHERE email = '{email}'"),
        )
        .await;
    }
    fn role_id(v: &serde_json::Value) -> String {
        v["data"]["id"].as_str().unwrap().to_owned()
    }
    let (status, ct, csv) = download(
        &app,
        &admin_a,
        &format!("/api/v2/orgs/{org_a}/users/export?format=csv"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/csv"));
    let exported = parse_csv(&csv);
    assert_eq!(exported.len(), 4, "admin + 3");
    // Import into org B (the admin of A is not imported twice: B's admin is another).
    let (status, body) = upload(&app, &admin_b, &org_b, "", "text/csv", csv.clone()).await;
    assert_eq!(status, 202, "{body}");
    worker(&ctx, None, 50).run_until_idle().await.unwrap();
    let key = |r: &BTreeMap<String, String>| {
        [
            "email",
            "first_name",
            "last_name",
            "phone",
            "role",
            "committee",
            "children",
        ]
        .map(|k| r.get(k).cloned().unwrap_or_default())
    };
    // The export guards cells a spreadsheet would run as formulas (`'+1 555…`); the
    // importer reads them back without the guard.
    let a: BTreeSet<_> = exported
        .iter()
        .map(|r| key(r).map(|v| v.strip_prefix('\'').map(str::to_owned).unwrap_or(v)))
        .collect();
    // B invited each of them (A's admin too), with exactly the exported profile.
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let b: BTreeSet<_> = invitations(&app, &admin_b, &org_b)
        .await
        .iter()
        .map(|inv| {
            let children: Vec<String> = inv["children"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| match c["grade"].as_str() {
                    Some(g) => format!("{} ({g})", text(&c["name"])),
                    None => text(&c["name"]),
                })
                .collect();
            [
                text(&inv["email"]),
                text(&inv["first_name"]),
                text(&inv["last_name"]),
                text(&inv["phone"]),
                text(&inv["role"]["name"]),
                text(&inv["committee"]),
                children.join("; "),
            ]
        })
        .collect();
    assert_eq!(a, b, "org B invited the members of org A");
    assert!(
        b.iter()
            .any(|r| r[4] == "Treasurer" && r[6] == "Kid2 (2); Sib")
    );

    // XLSX: parse it back with the importer's crate.
    let (status, ct, xlsx) = download(
        &app,
        &admin_a,
        &format!("/api/v2/orgs/{org_a}/users/export?format=xlsx&sort=email"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(ct.contains("spreadsheetml"));
    use calamine::{Data, Reader};
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(xlsx.clone())).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<&[Data]> = sheet.rows().collect();
    assert_eq!(rows.len(), 5);
    let header: Vec<String> = rows[0].iter().map(ToString::to_string).collect();
    assert_eq!(
        &header[..4],
        ["user_id", "email", "first_name", "last_name"]
    );
    let joined = header.iter().position(|h| h == "joined_at").unwrap();
    for r in &rows[1..] {
        assert!(matches!(r[1], Data::String(_)));
        assert!(
            matches!(&r[joined], Data::DateTime(d) if d.is_datetime()),
            "{:?}",
            r[joined]
        );
    }
    // The xlsx imports too (dry run: everyone is already a member of A).
    let (status, body) = upload(
        &app,
        &admin_a,
        &org_a,
        "?dry_run=true",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        xlsx,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["total_rows"], 4);
    assert_eq!(body["data"]["duplicates"].as_array().unwrap().len(), 4);

    // Async export: a job, then the same file.
    let (status, body) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org_a}/users/export?async=true"),
        Some(&admin_a),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let status_url = body["data"]["status_url"].as_str().unwrap().to_owned();
    assert!(body["data"]["download_url"].is_null());
    worker(&ctx, None, 50).run_until_idle().await.unwrap();
    let (_, body) = send(&app, Method::GET, &status_url, Some(&admin_a), None).await;
    assert_eq!(body["data"]["status"], "succeeded", "{body}");
    assert_eq!(body["data"]["total_rows"], 4);
    let (status, _, file) = download(
        &app,
        &admin_a,
        body["data"]["download_url"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(file, csv, "the job's file is the streamed export");
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM audit_events WHERE action = 'data.export'"
        )
        .await,
        3,
        "A's CSV, XLSX and job"
    );
}

async fn exports_and_jobs_never_cross_orgs(ctx: TestContext) {
    let app = ctx.service().await;
    let mut rng = Rng(0x10_5eed);
    let mut orgs = Vec::new();
    for o in 0..3 {
        let (org, admin) =
            new_org(&app, &format!("admin{o}@io.test"), &format!("IOISO00{o}")).await;
        orgs.push((org, admin, BTreeSet::from([format!("admin{o}@io.test")])));
    }
    for i in 0..24 {
        let o = usize::try_from(rng.next() % 3).unwrap();
        let email = format!("x{i}@io.test");
        let (_, _, set) = &mut orgs[o];
        joined(&app, &email, "Same", "Name", &format!("IOISO00{o}")).await;
        set.insert(email);
    }
    for (org, admin, expected) in &orgs {
        for q in ["", "&q=same", "&status=invited"] {
            let (status, _, csv) = download(
                &app,
                admin,
                &format!("/api/v2/orgs/{org}/users/export?format=csv{q}"),
            )
            .await;
            assert_eq!(status, 200);
            let got: BTreeSet<String> = parse_csv(&csv)
                .into_iter()
                .map(|r| r["email"].clone())
                .collect();
            assert!(got.is_subset(expected), "{q}: {got:?} ⊄ {expected:?}");
            if q.is_empty() {
                assert_eq!(&got, expected);
            }
        }
    }
    // A job of org 0 is 404 for org 1's admin, on its own org's path and on org 0's.
    let (org0, admin0, _) = &orgs[0];
    let (org1, admin1, _) = &orgs[1];
    let (status, body) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org0}/users/export?async=true"),
        Some(admin0),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let job = body["data"]["id"].as_str().unwrap();
    for uri in [
        format!("/api/v2/orgs/{org1}/jobs/{job}"),
        format!("/api/v2/orgs/{org0}/jobs/{job}"),
        format!("/api/v2/orgs/{org1}/jobs/{job}/download"),
    ] {
        let (status, _) = send(&app, Method::GET, &uri, Some(admin1), None).await;
        assert_eq!(status, 404, "{uri}");
    }
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org0}/jobs/{job}"),
        Some(admin0),
        None,
    )
    .await;
    assert_eq!(status, 200);
}

/// A CSV of `n` valid rows `c{i}@io.test`.
fn valid_rows(n: usize) -> Vec<u8> {
    let mut csv = String::from("email,first_name,last_name,role\r\n");
    for i in 0..n {
        csv.push_str(&format!("c{i}@io.test,Cancel{i},Row{i},volunteer\r\n"));
    }
    csv.into_bytes()
}

async fn jobs_can_be_cancelled_and_ended_jobs_are_swept(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = new_org(&app, "admin@io.test", "IOCAN001").await;
    let (_, stranger) = signed_up(&app, "stranger@io.test").await;

    // A queued import is cancelled before any worker saw it: nothing is applied.
    let (status, body) = upload(&app, &admin, &org, "", "text/csv", valid_rows(6)).await;
    assert_eq!(status, 202, "{body}");
    let queued = body["data"]["id"].as_str().unwrap().to_owned();
    let cancel = |job: &str| format!("/api/v2/orgs/{org}/jobs/{job}/cancel");
    // Not visible to a non-member: 404, and nothing changes.
    let (status, _) = send(&app, Method::POST, &cancel(&queued), Some(&stranger), None).await;
    assert_eq!(status, 404);
    let (status, body) = send(&app, Method::POST, &cancel(&queued), Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "cancelled");
    assert_eq!(body["data"]["succeeded_rows"], 0);
    assert!(body["data"]["expires_at"].is_string(), "{body}");
    assert_eq!(
        count(&ctx, "SELECT count(*) FROM job_items").await,
        0,
        "the uploaded rows are deleted"
    );
    assert_eq!(
        worker(&ctx, None, 2).run_until_idle().await.unwrap(),
        0,
        "nothing to run"
    );
    assert_eq!(invitations(&app, &admin, &org).await.len(), 0);
    // Cancelling again: the job has ended.
    let (status, body) = send(&app, Method::POST, &cancel(&queued), Some(&admin), None).await;
    assert_eq!(status, 409, "{body}");

    // A running import is cancelled between steps: the steps committed before stay
    // applied, whole; no worker picks the job up again.
    let (status, body) = upload(&app, &admin, &org, "", "text/csv", valid_rows(8)).await;
    assert_eq!(status, 202, "{body}");
    let running = body["data"]["id"].as_str().unwrap().to_owned();
    // Killed before row 6 (its rows are 2–9): the step with rows 2–3 and 4–5 committed.
    let killed = worker(&ctx, Some(6), 2);
    assert_eq!(
        killed.run_next().await.unwrap().unwrap().1,
        RunOutcome::Crashed
    );
    // Its lease has expired (zero lease in tests): the job would be claimable again.
    let (status, body) = send(&app, Method::POST, &cancel(&running), Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "cancelled");
    assert_eq!(body["data"]["succeeded_rows"], 4);
    assert_eq!(worker(&ctx, None, 2).run_until_idle().await.unwrap(), 0);
    let listed = invitations(&app, &admin, &org).await;
    assert_eq!(listed.len(), 4, "exactly the committed steps' rows");
    let (_, logs) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?action=job.cancel"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(logs["data"].as_array().map(Vec::len), Some(2), "{logs}");
    assert_eq!(logs["data"][0]["new_value"]["status"], "cancelled");

    // A finished export, kept until its retention ends, then swept with its file.
    let (status, body) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users/export?format=csv&async=true"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let export = body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(worker(&ctx, None, 50).run_until_idle().await.unwrap(), 1);
    let download = format!("/api/v2/orgs/{org}/jobs/{export}/download");
    assert_eq!(download_status(&app, &admin, &download).await, 200);
    // A job still queued is never swept.
    let (status, body) = upload(&app, &admin, &org, "", "text/csv", valid_rows(1)).await;
    assert_eq!(status, 202, "{body}");
    let pending = body["data"]["id"].as_str().unwrap().to_owned();

    let now = time::OffsetDateTime::now_utc();
    let kept = ctx
        .state
        .jobs
        .sweep(now - time::Duration::DAY, 2)
        .await
        .unwrap();
    assert_eq!(kept.jobs, 0, "nothing ended a day ago");
    let swept = ctx
        .state
        .jobs
        .sweep(now + time::Duration::SECOND, 2)
        .await
        .unwrap();
    assert_eq!(
        swept.jobs, 3,
        "two cancelled imports and the export, in batches of 2"
    );
    for job in [&queued, &running, &export] {
        let (status, _) = send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{org}/jobs/{job}"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(status, 404, "{job} was swept");
    }
    assert_eq!(download_status(&app, &admin, &download).await, 404);
    assert_eq!(count(&ctx, "SELECT count(*) FROM job_files").await, 0);
    let (status, body) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/jobs/{pending}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["status"], "queued");
    assert!(body["data"]["expires_at"].is_null());
}

async fn download_status(app: &svc_bound!(), token: &str, uri: &str) -> u16 {
    download(app, token, uri).await.0
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Asserts a refusal: its status, its code (`details.cap` for 413, the field error's
/// code for 422), and that the message says something.
fn refused(status: u16, body: &serde_json::Value, want_status: u16, want: &str) {
    assert_eq!(status, want_status, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.len() > 20, "a clear message: {body}");
    if want_status == 413 {
        assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE", "{body}");
        assert_eq!(body["error"]["details"]["cap"], want, "{body}");
    } else {
        assert_eq!(body["error"]["code"], "VALIDATION_FAILED", "{body}");
        assert_eq!(
            body["error"]["details"]["fields"][0]["code"], want,
            "{body}"
        );
    }
}

/// The attack review's files, made here: a 2 KiB workbook with one cell at XFD1048576
/// (it made calamine allocate 512 GiB and abort the process), a zip bomb (256 MiB of
/// whitespace, four times the cap, in 1.7 MB; the reader's own test inflates 1 GiB) and ten million tiny rows. Each is refused at a cap
/// — the reader's own tests show how little it read — and the server keeps answering.
async fn hostile_spreadsheets_are_refused_early_and_the_server_keeps_answering(ctx: TestContext) {
    use sheets::testing::{repeated, workbook, workbook_with_sheet_entry};
    let app = ctx.service().await;
    let (org, admin) = new_org(&app, "admin@io.test", "IOHOS001").await;

    let sparse = workbook(
        r#"<worksheet><dimension ref="A1:XFD1048576"/><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row><row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData></worksheet>"#,
        None,
    );
    assert!(sparse.len() < 4096, "{}", sparse.len());
    let (status, body) = upload(&app, &admin, &org, "?dry_run=true", XLSX, sparse.clone()).await;
    refused(status, &body, 422, "too_many_columns");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("column 16384"),
        "{body}"
    );
    // Still answering, and the real import refuses it the same way.
    assert_eq!(members(&app, &admin, &org).await.len(), 1);
    let (status, body) = upload(&app, &admin, &org, "", XLSX, sparse).await;
    refused(status, &body, 422, "too_many_columns");

    let bomb = workbook_with_sheet_entry(
        repeated(
            "xl/worksheets/sheet1.xml",
            b"<worksheet><sheetData>",
            b" ",
            256 << 20,
            b"</sheetData></worksheet>",
        ),
        None,
    );
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let (status, body) = upload(&app, &admin, &org, "?dry_run=true", XLSX, bomb.clone()).await;
    refused(status, &body, 413, "inflated_bytes");
    assert_eq!(body["error"]["details"]["limit"], 64 << 20);
    let (status, body) = upload(&app, &admin, &org, "", XLSX, bomb).await;
    refused(status, &body, 413, "inflated_bytes");

    let many_rows = workbook_with_sheet_entry(
        repeated(
            "xl/worksheets/sheet1.xml",
            b"<worksheet><sheetData><row><c t=\"inlineStr\"><is><t>email</t></is></c></row>",
            b"<row><c><v>1</v></c></row>",
            10_000_000,
            b"</sheetData></worksheet>",
        ),
        None,
    );
    assert!(many_rows.len() < 2 << 20, "{}", many_rows.len());
    let (status, body) = upload(&app, &admin, &org, "?dry_run=true", XLSX, many_rows).await;
    refused(status, &body, 413, "rows");
    assert_eq!(body["error"]["details"]["limit"], 50_000);

    // Nothing was created, nothing staged is left, and the server still answers.
    assert_eq!(count(&ctx, "SELECT count(*) FROM jobs").await, 0);
    assert_eq!(count(&ctx, "SELECT count(*) FROM job_items").await, 0);
    assert_eq!(members(&app, &admin, &org).await.len(), 1);
}

/// The same caps for CSV: too many rows (413), a huge cell, too many columns, a
/// header naming a column twice (422) — on the dry run and on the real import, which
/// leaves no job and no staged row behind.
async fn hostile_csv_is_refused_at_its_caps_and_duplicate_headers_name_the_column(
    ctx: TestContext,
) {
    let app = ctx.service().await;
    let (org, admin) = new_org(&app, "admin@io.test", "IOCSV001").await;
    let too_many = valid_rows(50_001);
    let (status, body) = upload(
        &app,
        &admin,
        &org,
        "?dry_run=true",
        "text/csv",
        too_many.clone(),
    )
    .await;
    refused(status, &body, 413, "rows");
    // The real import stages rows in batches before it meets the cap: they are removed.
    let (status, body) = upload(&app, &admin, &org, "", "text/csv", too_many).await;
    refused(status, &body, 413, "rows");
    assert_eq!(count(&ctx, "SELECT count(*) FROM jobs").await, 0);
    assert_eq!(count(&ctx, "SELECT count(*) FROM job_items").await, 0);

    let mut huge_cell = b"email,first_name,last_name\r\nbig@io.test,".to_vec();
    huge_cell.extend(std::iter::repeat_n(b'a', 5 << 20));
    huge_cell.extend(b",Cell\r\n");
    let (status, body) = upload(&app, &admin, &org, "?dry_run=true", "text/csv", huge_cell).await;
    refused(status, &body, 422, "cell_too_large");

    let mut wide = String::from("email,first_name,last_name");
    for i in 0..100 {
        wide.push_str(&format!(",extra{i}"));
    }
    wide.push_str("\r\n");
    let (status, body) = upload(
        &app,
        &admin,
        &org,
        "?dry_run=true",
        "text/csv",
        wide.into_bytes(),
    )
    .await;
    refused(status, &body, 422, "too_many_columns");

    let dup = b"email,first_name,last_name,E-mail\r\na@io.test,Ann,Able,b@io.test\r\n".to_vec();
    let (status, body) = upload(&app, &admin, &org, "?dry_run=true", "text/csv", dup.clone()).await;
    refused(status, &body, 422, "duplicate_column");
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "email");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`email` twice"),
        "{body}"
    );
    let (status, body) = upload(&app, &admin, &org, "", "text/csv", dup).await;
    refused(status, &body, 422, "duplicate_column");
    assert_eq!(count(&ctx, "SELECT count(*) FROM jobs").await, 0);
    assert_eq!(members(&app, &admin, &org).await.len(), 1);
}

/// Staging an import does not hold a write transaction while the file is read: every
/// 500 rows are committed on their own (visible to another connection, invisible to
/// workers — no job row yet), and another org's write succeeds between two batches
/// (on SQLite an open write transaction made it wait for the busy timeout and fail).
async fn import_rows_are_staged_in_batches_each_committed_alone(ctx: TestContext) {
    let app = ctx.service().await;
    let (org_a, _) = new_org(&app, "a@io.test", "IOSTG001").await;
    let (org_b, _) = new_org(&app, "b@io.test", "IOSTG002").await;
    let (org_a, org_b): (uuid::Uuid, uuid::Uuid) = (org_a.parse().unwrap(), org_b.parse().unwrap());
    let row = |i: i64| serde_json::json!({"row": i, "cells": {"email": format!("s{i}@io.test")}});
    let mut draft = ctx
        .state
        .jobs
        .draft(
            org_a,
            jobs::JobKind::MemberImport,
            None,
            serde_json::json!({}),
        )
        .await
        .unwrap();
    for i in 1..=1_200 {
        draft.push(i, row(i)).await.unwrap();
    }
    assert_eq!(draft.batches_committed(), 2);
    // Committed, so another connection sees them; no job row, so no worker runs them.
    assert_eq!(count(&ctx, "SELECT count(*) FROM job_items").await, 1_000);
    assert_eq!(count(&ctx, "SELECT count(*) FROM jobs").await, 0);
    // Another tenant writes meanwhile: a whole job, submitted.
    let mut other = ctx
        .state
        .jobs
        .draft(
            org_b,
            jobs::JobKind::MemberImport,
            None,
            serde_json::json!({}),
        )
        .await
        .unwrap();
    other.push(1, row(1)).await.unwrap();
    let other = other.submit().await.unwrap();
    assert_eq!(other.total, 1);
    // The first draft goes on and is submitted with every row.
    for i in 1_201..=1_300 {
        draft.push(i, row(i)).await.unwrap();
    }
    let job = draft.submit().await.unwrap();
    assert_eq!(job.total, 1_300);
    assert_eq!(count(&ctx, "SELECT count(*) FROM job_items").await, 1_301);

    // A draft given up is removed; one left by a dead process goes with the sweep.
    let mut dropped = ctx
        .state
        .jobs
        .draft(
            org_a,
            jobs::JobKind::MemberImport,
            None,
            serde_json::json!({}),
        )
        .await
        .unwrap();
    for i in 1..=600 {
        dropped.push(i, row(i)).await.unwrap();
    }
    dropped.discard().await.unwrap();
    assert_eq!(count(&ctx, "SELECT count(*) FROM job_items").await, 1_301);
    // Rows a dead process left (a draft of two hours ago, never submitted) go with the
    // sweep, even with a cut-off in the future; a draft being staged keeps its rows.
    let mut inflight = ctx
        .state
        .jobs
        .draft(
            org_a,
            jobs::JobKind::MemberImport,
            None,
            serde_json::json!({}),
        )
        .await
        .unwrap();
    for i in 1..=500 {
        inflight.push(i, row(i)).await.unwrap();
    }
    let two_hours_ago = uuid::Timestamp::from_unix(
        uuid::NoContext,
        u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp() - 7_200).unwrap(),
        0,
    );
    let dead = uuid::Uuid::new_v7(two_hours_ago);
    {
        use sea_orm::ConnectionTrait;
        let db = ctx.state.db.primary();
        let backend = db.get_database_backend();
        let sql = match backend {
            sea_orm::DbBackend::Postgres => {
                "INSERT INTO job_items (org_id, job_id, seq, payload) VALUES ($1, $2, $3, $4)"
            }
            _ => "INSERT INTO job_items (org_id, job_id, seq, payload) VALUES (?, ?, ?, ?)",
        };
        for seq in 1..=3_i64 {
            db.execute_raw(sea_orm::Statement::from_sql_and_values(
                backend,
                sql,
                [org_a.into(), dead.into(), seq.into(), row(seq).into()],
            ))
            .await
            .unwrap();
        }
    }
    assert_eq!(count(&ctx, "SELECT count(*) FROM job_items").await, 1_804);
    ctx.state
        .jobs
        .sweep(
            time::OffsetDateTime::now_utc() - time::Duration::hours(3),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        count(&ctx, "SELECT count(*) FROM job_items").await,
        1_804,
        "younger than the cut-off: kept"
    );
    ctx.state
        .jobs
        .sweep(
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        count(&ctx, "SELECT count(*) FROM job_items").await,
        1_801,
        "the dead draft's rows are swept; the jobs' and the draft in flight's stay"
    );
    assert_eq!(inflight.submit().await.unwrap().total, 500);
}

const BOUNDARY: &str = "----ptoc-form-7MA4YWxkTrZu0gW";

/// The Content-Type of a form with [`BOUNDARY`].
fn form_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// A `multipart/form-data` body of `parts` (header lines, data) with [`BOUNDARY`].
fn form<H: AsRef<str>, D: AsRef<[u8]>>(parts: &[(H, D)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (headers, data) in parts {
        let headers = headers.as_ref();
        out.extend_from_slice(format!("--{BOUNDARY}\r\n{headers}\r\n\r\n").as_bytes());
        out.extend_from_slice(data.as_ref());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// The headers of a `file` part.
fn file_part(filename: &str, content_type: Option<&str>) -> String {
    let mut h = format!("Content-Disposition: form-data; name=\"file\"; filename=\"{filename}\"");
    if let Some(ct) = content_type {
        h.push_str(&format!("\r\nContent-Type: {ct}"));
    }
    h
}

/// The uploads' staging files left in the instance's temporary folder.
fn staged_files(ctx: &TestContext) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(&ctx.state.tmp_dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// A CSV and an XLSX sent as the `file` part of a form give what the raw body gives:
/// the same dry-run report, and jobs that invite the same people.
async fn multipart_uploads_import_like_the_raw_body(ctx: TestContext) {
    use sheets::testing::{sheet_xml, workbook};
    let app = ctx.service().await;
    let (org_a, admin_a) = new_org(&app, "admin.a@io.test", "IOMPA001").await;
    let (org_b, admin_b) = new_org(&app, "admin.b@io.test", "IOMPB001").await;

    // Dry run, CSV: the part's Content-Type says CSV (with a charset).
    let (status, raw) = upload(
        &app,
        &admin_a,
        &org_a,
        "?dry_run=true",
        "text/csv",
        BAD_CSV.into(),
    )
    .await;
    assert_eq!(status, 200, "{raw}");
    let body = form(&[(
        &file_part("members.csv", Some("text/csv; charset=utf-8")),
        BAD_CSV.as_bytes(),
    )]);
    let (status, multi) = upload(&app, &admin_a, &org_a, "?dry_run=true", &form_type(), body).await;
    assert_eq!(status, 200, "{multi}");
    assert_eq!(raw["data"], multi["data"]);
    assert_eq!(multi["data"]["total_rows"], 7);

    // Dry run, XLSX: no Content-Type of its own (or a generic one), so the file name's
    // extension says XLSX.
    let xlsx = workbook(
        &sheet_xml(&[
            vec!["email", "first_name", "last_name", "role"],
            vec!["x1@io.test", "Xena", "One", "volunteer"],
            vec!["x2@io.test", "Xavier", "Two", "board_member"],
            vec!["not-an-email", "Bad", "Row", ""],
        ]),
        None,
    );
    let (status, raw) = upload(&app, &admin_a, &org_a, "?dry_run=true", XLSX, xlsx.clone()).await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(raw["data"]["total_rows"], 3, "{raw}");
    for ct in [None, Some("application/octet-stream")] {
        let body = form(&[(&file_part("Members.XLSX", ct), &xlsx)]);
        let (status, multi) =
            upload(&app, &admin_a, &org_a, "?dry_run=true", &form_type(), body).await;
        assert_eq!(status, 200, "{multi}");
        assert_eq!(raw["data"], multi["data"]);
    }
    assert_eq!(count(&ctx, "SELECT count(*) FROM jobs").await, 0);

    // Real runs: the raw files into A, the same files as forms into B (the XLSX part
    // typed by its Content-Type, its name saying nothing).
    let csv = b"email,first_name,last_name,role\r\nc1@io.test,Cleo,One,volunteer\r\nc2@io.test,Cy,Two,committee_lead\r\n".to_vec();
    let (status, a1) = upload(&app, &admin_a, &org_a, "", "text/csv", csv.clone()).await;
    assert_eq!(status, 202, "{a1}");
    let (status, a2) = upload(&app, &admin_a, &org_a, "", XLSX, xlsx.clone()).await;
    assert_eq!(status, 202, "{a2}");
    let body = form(&[(&file_part("c.csv", Some("text/csv")), &csv)]);
    let (status, b1) = upload(&app, &admin_b, &org_b, "", &form_type(), body).await;
    assert_eq!(status, 202, "{b1}");
    let body = form(&[(&file_part("upload", Some(XLSX)), &xlsx)]);
    let (status, b2) = upload(&app, &admin_b, &org_b, "", &form_type(), body).await;
    assert_eq!(status, 202, "{b2}");
    for (a, b) in [(&a1, &b1), (&a2, &b2)] {
        assert_eq!(a["data"]["total_rows"], b["data"]["total_rows"]);
        assert_eq!(b["data"]["status"], "queued");
    }
    assert_eq!(b1["data"]["total_rows"], 2);
    assert_eq!(b2["data"]["total_rows"], 3);
    worker(&ctx, None, 50).run_until_idle().await.unwrap();
    let people = |list: Vec<serde_json::Value>| -> BTreeSet<String> {
        list.iter()
            .map(|i| {
                format!(
                    "{} {} {} {}",
                    i["email"], i["first_name"], i["last_name"], i["role"]["name"]
                )
            })
            .collect()
    };
    let a = people(invitations(&app, &admin_a, &org_a).await);
    let b = people(invitations(&app, &admin_b, &org_b).await);
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(a, b);
    for uri in [&b1, &b2].map(|j| j["data"]["status_url"].as_str().unwrap().to_owned()) {
        let (_, job) = send(&app, Method::GET, &uri, Some(&admin_b), None).await;
        assert_eq!(job["data"]["status"], "succeeded", "{job}");
    }
    assert!(staged_files(&ctx).is_empty(), "{:?}", staged_files(&ctx));
}

/// A CSV of valid rows with wide ignored columns, as close to `bytes` as whole rows
/// allow; returns it and its row count.
fn wide_rows(bytes: usize) -> (Vec<u8>, usize) {
    let mut csv = b"email,first_name,last_name,note1,note2,note3,note4\r\n".to_vec();
    let note = "n".repeat(4000);
    let mut rows = 0;
    loop {
        let row = format!("w{rows}@io.test,Wide,Row{rows},{note},{note},{note},{note}\r\n");
        if csv.len() + row.len() > bytes {
            return (csv, rows);
        }
        csv.extend_from_slice(row.as_bytes());
        rows += 1;
    }
}

/// Each way a form can be wrong is refused with a status and a code naming it, within
/// the raw body's caps (20 MiB in all, counted while reading), leaving no job and no
/// staged file behind.
async fn multipart_uploads_are_refused_clearly_within_the_same_caps(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = new_org(&app, "admin@io.test", "IOMPR001").await;
    let csv = b"email,first_name,last_name\r\na@io.test,Ann,Able\r\n".as_slice();
    let file = file_part("a.csv", Some("text/csv"));
    let good = form(&[(&file, csv)]);
    let post = |query: &'static str, ct: String, body: Vec<u8>| {
        let app = &app;
        let admin = admin.clone();
        let org = org.clone();
        async move { upload(app, &admin, &org, query, &ct, body).await }
    };
    for query in ["?dry_run=true", ""] {
        // No boundary, or one RFC 2046 does not allow.
        let (status, body) = post(query, "multipart/form-data".into(), good.clone()).await;
        refused(status, &body, 422, "missing_boundary");
        let long = "b".repeat(71);
        for ct in [
            format!("multipart/form-data; boundary={long}"),
            "multipart/form-data; boundary=\"\"".into(),
            "multipart/form-data; boundary=a!b".into(),
        ] {
            let (status, body) = post(query, ct.clone(), good.clone()).await;
            refused(status, &body, 422, "invalid_boundary");
        }
        // A Content-Type whose parameters cannot be read.
        let (status, body) = post(
            query,
            format!("multipart/form-data; boundary={BOUNDARY}; charset"),
            good.clone(),
        )
        .await;
        refused(status, &body, 422, "invalid_content_type");
        // A boundary that is not the body's: no part found, the end never reached.
        let (status, body) = post(
            query,
            "multipart/form-data; boundary=other".into(),
            good.clone(),
        )
        .await;
        refused(status, &body, 422, "malformed_multipart");
        // No `file` part; two of them.
        let (status, body) = post(query, form_type(), form::<&str, &[u8]>(&[])).await;
        refused(status, &body, 422, "missing_part");
        assert_eq!(body["error"]["details"]["fields"][0]["field"], "file");
        let (status, body) = post(query, form_type(), form(&[(&file, csv), (&file, csv)])).await;
        refused(status, &body, 422, "duplicate_part");
        // Any other part, before or after the file, even a known option.
        for other in ["dry_run", "notes"] {
            let part = format!("Content-Disposition: form-data; name=\"{other}\"");
            let t = b"true".as_slice();
            for parts in [
                [(part.as_str(), t), (file.as_str(), csv)],
                [(file.as_str(), csv), (part.as_str(), t)],
            ] {
                let (status, body) = post(query, form_type(), form(&parts)).await;
                refused(status, &body, 422, "unknown_part");
                assert_eq!(body["error"]["details"]["fields"][0]["field"], other);
            }
        }
        // A part without a name; a body cut before its closing boundary.
        let (status, body) = post(
            query,
            form_type(),
            form(&[("Content-Disposition: form-data; filename=\"a.csv\"", csv)]),
        )
        .await;
        refused(status, &body, 422, "malformed_multipart");
        let (status, body) = post(query, form_type(), good[..good.len() - 10].to_vec()).await;
        refused(status, &body, 422, "malformed_multipart");
        // A file that says neither CSV nor XLSX: 415, as for the raw body.
        for (name, ct) in [
            ("a.txt", Some("text/plain")),
            ("members", None),
            ("a.csv.exe", Some("application/octet-stream")),
        ] {
            let (status, body) =
                post(query, form_type(), form(&[(&file_part(name, ct), csv)])).await;
            assert_eq!(status, 415, "{name}: {body}");
            assert_eq!(body["error"]["code"], "UNSUPPORTED_MEDIA_TYPE");
        }
        let (status, body) = post(query, "multipart/mixed; boundary=b".into(), good.clone()).await;
        assert_eq!(status, 415, "{body}");
        // The file's own caps still apply inside a form.
        let dup = b"email,first_name,last_name,E-mail\r\na@io.test,Ann,Able,b@io.test\r\n";
        let (status, body) = post(query, form_type(), form(&[(&file, dup)])).await;
        refused(status, &body, 422, "duplicate_column");
    }

    // 20 MiB in all, counted while reading: a form whose file fits but whose body does
    // not (declaring a small length) is cut off at the cap, like a raw body.
    let cap = 20 * 1024 * 1024;
    let (big, rows) = wide_rows(cap - 1000);
    for (ct, body) in [
        (
            form_type(),
            form(&[(&file, {
                let mut b = big.clone();
                b.resize(cap, b'\n');
                b
            })]),
        ),
        ("text/csv".to_owned(), {
            let mut b = big.clone();
            b.resize(cap + 1, b'\n');
            b
        }),
    ] {
        assert!(body.len() > cap);
        let req = test::TestRequest::post()
            .uri(&format!("/api/v2/orgs/{org}/users/import?dry_run=true"))
            .insert_header(("authorization", format!("Bearer {admin}")))
            .insert_header(("content-type", ct.clone()))
            .set_payload(body)
            .insert_header(("content-length", "1000"))
            .to_request();
        let res = test::call_service(&app, req).await;
        let status = res.status().as_u16();
        let body: serde_json::Value = serde_json::from_slice(&test::read_body(res).await).unwrap();
        refused(status, &body, 413, "body_bytes");
        assert_eq!(body["error"]["details"]["limit"], cap, "{ct}");
        // And the declared length is refused before a byte is read.
        let req = test::TestRequest::post()
            .uri(&format!("/api/v2/orgs/{org}/users/import"))
            .insert_header(("authorization", format!("Bearer {admin}")))
            .insert_header(("content-type", ct))
            .set_payload(b"x".to_vec())
            .insert_header(("content-length", (cap + 1).to_string()))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status().as_u16(), 413);
    }
    // Just under the cap (within a row of it), the same file in a form is read whole.
    let body = form(&[(&file, &big)]);
    assert!(
        body.len() <= cap && body.len() > cap - 20_000,
        "{}",
        body.len()
    );
    let (status, body) = post("?dry_run=true", form_type(), body).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["total_rows"], rows);
    assert_eq!(body["data"]["valid_rows"], rows);

    // Nothing created, nothing staged, and the good form still works.
    assert_eq!(count(&ctx, "SELECT count(*) FROM jobs").await, 0);
    assert_eq!(count(&ctx, "SELECT count(*) FROM job_items").await, 0);
    assert!(staged_files(&ctx).is_empty(), "{:?}", staged_files(&ctx));
    let (status, body) = post("?dry_run=true", form_type(), good).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["valid_rows"], 1);
}
