//! Erasure (issue #17): a member's distinctive values spread through memberships,
//! invitations, imports, exports, audit events (live and archived), caches and
//! e-mails (queued and written) are gone from every table and every file under
//! `DATA_DIR` after `DELETE /me`, while the audit trail still verifies; an org's
//! admin erases a member of their org.

use std::path::Path;

use actix_web::http::Method;
use actix_web::test;
use serde_json::{Value, json};

use crate::backend_tests;
use test_support::scan::{self, contains};

use crate::helpers::{TestContext, login, new_org, send, signed_up};

backend_tests!(
    removed_members_records_are_erased_once_the_orgs_retention_period_has_passed,
    erasing_an_account_leaves_no_trace_in_any_table_or_file_and_the_audit_trail_verifies,
    an_admin_erases_a_member_of_their_org_and_the_account_only_when_nothing_else_holds_it,
);

const EMAIL: &str = "zelda.quillfeather@erasure.test";
const PASSWORD: &str = "correct horse battery";
const FIRST: &str = "Zeldarine";
const LAST: &str = "Quillfeather";
const PHONE: &str = "+1 555 314 1592";
const COMMITTEE: &str = "Xylophone Brigade";
const CHILD: &str = "Ottoline Quaver";
const INVITED_CHILD: &str = "Peregrine Quaver";

/// What the scan looks for (lower-cased; a phone in any of its stored forms).
fn needles() -> Vec<String> {
    [
        EMAIL,
        "zelda.quillfeather",
        FIRST,
        LAST,
        "555 314 1592",
        "5553141592",
        COMMITTEE,
        CHILD,
        INVITED_CHILD,
    ]
    .iter()
    .map(|s| s.to_lowercase())
    .collect()
}

/// Every row of every table, lower-cased (PostgreSQL through the superuser, so
/// row-level security hides nothing).
async fn table_texts(ctx: &TestContext) -> Vec<(String, String)> {
    let rows = match ctx.postgres_urls() {
        Some((_, superuser)) => {
            let conn = sea_orm::Database::connect(&superuser).await.unwrap();
            scan::table_texts(&conn).await
        }
        None => scan::table_texts(ctx.state.db.primary()).await,
    };
    assert!(
        rows.iter().any(|(t, _)| t == "audit_subject_keys"),
        "every table is read"
    );
    rows.into_iter()
        .map(|(t, r)| (t, r.to_lowercase()))
        .collect()
}

/// Every file under `DATA_DIR` (archives decompressed), lower-cased.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    scan::files_under(dir)
        .into_iter()
        .map(|(p, b)| (p, b.to_ascii_lowercase()))
        .collect()
}

/// Where each needle is found: (needle, place).
async fn traces(ctx: &TestContext) -> Vec<(String, String)> {
    let rows = table_texts(ctx).await;
    let files = files_under(&ctx.settings.data_dir);
    let mut found = Vec::new();
    for needle in needles() {
        let hex = hex::encode(needle.as_bytes());
        for (table, text) in &rows {
            if text.contains(&needle) || text.contains(&hex) {
                found.push((needle.clone(), format!("table {table}")));
            }
        }
        for (path, bytes) in &files {
            if contains(bytes, needle.as_bytes()) {
                found.push((needle.clone(), format!("file {path}")));
            }
        }
    }
    found
}

async fn import_csv(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    token: &str,
    org: &str,
    csv: Vec<u8>,
) -> (u16, Value) {
    let req = test::TestRequest::post()
        .uri(&format!("/api/v2/orgs/{org}/users/import"))
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("content-type", "text/csv"))
        .set_payload(csv)
        .to_request();
    let res = test::call_service(app, req).await;
    let status = res.status().as_u16();
    let bytes = test::read_body(res).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn download(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    token: &str,
    uri: &str,
) -> (u16, Vec<u8>) {
    let req = test::TestRequest::get()
        .uri(uri)
        .insert_header(("authorization", format!("Bearer {token}")))
        .to_request();
    let res = test::call_service(app, req).await;
    let status = res.status().as_u16();
    (status, test::read_body(res).await.to_vec())
}

fn job_worker(ctx: &TestContext) -> jobs::Worker {
    let mut s = jobs::WorkerSettings::new(ctx.state.tmp_dir.clone());
    s.lease = std::time::Duration::ZERO;
    pto_server::startup::job_worker(&ctx.state, s)
}

/// Writes every queued message as an `.eml` file (the embedded default's transport).
async fn deliver_mail(ctx: &TestContext) {
    let worker = mail::MailWorker::new(
        ctx.state.db.clone(),
        pto_server::startup::mail_transport(&ctx.settings).unwrap(),
        mail::WorkerSettings::new(ctx.settings.mail.from.clone()),
    );
    worker.drain().await.unwrap();
}

async fn erasing_an_account_leaves_no_trace_in_any_table_or_file_and_the_audit_trail_verifies(
    ctx: TestContext,
) {
    let app = ctx.service().await;
    let (_, admin_a) = signed_up(&app, "admin.a@erasure.test").await;
    let org_a = new_org(&app, &admin_a, "Erasure PTO A").await;
    let (_, admin_b) = signed_up(&app, "admin.b@erasure.test").await;
    let org_b = new_org(&app, &admin_b, "Erasure PTO B").await;

    // B invites Zelda before she has an account: an invitation and its e-mail.
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org_b}/users"),
        Some(&admin_b),
        Some(
            json!({"email": EMAIL, "first_name": FIRST, "last_name": LAST, "phone": PHONE,
                    "committee": COMMITTEE, "children": [{"name": INVITED_CHILD, "grade": "4"}]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Zelda registers (a verification e-mail), joins A and fills in her profile.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/register",
        None,
        Some(json!({"email": EMAIL, "password": PASSWORD, "first_name": FIRST, "last_name": LAST})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let zelda_id = body["data"]["id"].as_str().unwrap().to_owned();
    let zelda = login(&app, EMAIL, PASSWORD).await;
    let (_, org) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org_a}"),
        Some(&admin_a),
        None,
    )
    .await;
    let code = org["data"]["signup_code"].as_str().unwrap().to_owned();
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&zelda),
        Some(json!({"signup_code": code})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("/api/v2/orgs/{org_a}/me"),
        Some(&zelda),
        Some(json!({"committee": COMMITTEE, "children": [{"name": CHILD, "grade": "2"}], "phone": PHONE})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = crate::helpers::write_current(
        &app,
        Method::PUT,
        &format!("/api/v2/orgs/{org_a}/me/privacy"),
        Some(&zelda),
        Some(json!({"phone": "hidden"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The e-mails so far are written as files; a reset link stays queued.
    deliver_mail(&ctx).await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/password-reset",
        None,
        Some(json!({"email": EMAIL})),
    )
    .await;
    assert_eq!(status, 202);

    // A's admin reads her record (an access-log entry), warms the cached list, exports
    // the members (streamed) and imports that file into B (a job whose rows name her),
    // and runs an export as a job (a stored file listing her).
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org_a}/users/{zelda_id}"),
        Some(&admin_a),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, list) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org_a}/users"),
        Some(&admin_a),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(list.to_string().contains(LAST), "{list}");
    let (status, csv) = download(
        &app,
        &admin_a,
        &format!("/api/v2/orgs/{org_a}/users/export?format=csv&async=false"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(contains(&csv, EMAIL.as_bytes()));
    let (status, body) = import_csv(&app, &admin_b, &org_b, csv).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = download(
        &app,
        &admin_a,
        &format!("/api/v2/orgs/{org_a}/users/export?format=csv&async=true"),
    )
    .await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    job_worker(&ctx).run_until_idle().await.unwrap();

    // Archive every chain's events so far into DATA_DIR (archived events hold her too).
    let archive_dir = ctx.settings.data_dir.join("audit-archive");
    audit_store::archive_all(
        &ctx.state.db,
        &archive_dir,
        &ctx.state.audit_signer,
        audit_store::ArchiveOptions::at(
            time::OffsetDateTime::now_utc() + time::Duration::days(1000),
        ),
        None,
    )
    .await
    .unwrap();
    // More live events about her after the archive.
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("/api/v2/orgs/{org_a}/me"),
        Some(&zelda),
        Some(json!({"committee": format!("{COMMITTEE} II")})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The audit trail holds her values sealed (no plaintext in its rows or archives);
    // her org's admins read them opened, live and archived events alike.
    assert!(
        files_under(&archive_dir)
            .iter()
            .any(|(p, _)| p.ends_with(".gz")),
        "archives written"
    );
    let (_, logs) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org_a}/audit-logs?limit=200"),
        Some(&admin_a),
        None,
    )
    .await;
    assert!(
        logs.to_string().contains(&format!("{COMMITTEE} II")),
        "{logs}"
    );

    // Her data export holds every value the scan looks for (the phone as she typed
    // it; the scan also looks for the digits the search index keeps); the org admin's
    // export of her holds what org A has, not org B's invitation.
    let (status, asked) = send(
        &app,
        Method::POST,
        "/api/v2/me/data-export",
        Some(&zelda),
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
    let (status, state) = send(
        &app,
        Method::GET,
        &format!("/api/v2/me/data-exports/{export_id}"),
        Some(&zelda),
        None,
    )
    .await;
    assert_eq!(
        (status, state["data"]["status"].as_str()),
        (200, Some("succeeded")),
        "{state}"
    );
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/me/data-exports/{export_id}"),
        Some(&admin_a),
        None,
    )
    .await;
    assert_eq!(status, 404, "another user's export is not found");
    let (status, file) = download(&app, &zelda, state["data"]["download"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let export: Value = serde_json::from_slice(&file).unwrap();
    assert_eq!(export["format"], "ptoc.personal-data-export/1");
    let text = String::from_utf8_lossy(&file).to_lowercase();
    for needle in needles() {
        assert!(
            text.contains(needle.as_str()),
            "{needle} missing from her data export"
        );
    }
    // Archived events about her are in it too, opened (archived above, before the
    // committee changed to "… II").
    let archived = export["data"]["archived_audit_events"].as_array().unwrap();
    assert!(!archived.is_empty(), "{export}");
    assert!(
        archived
            .iter()
            .all(|e| e.get("sealed").is_none() && e["seq"].as_u64().is_some()),
        "{archived:?}"
    );
    let archived_text = serde_json::to_string(archived).unwrap().to_lowercase();
    assert!(
        archived_text.contains(&FIRST.to_lowercase()),
        "{archived:?}"
    );
    assert!(
        !archived_text.contains(&format!("{COMMITTEE} II").to_lowercase()),
        "only what was archived: {archived:?}"
    );
    // Live events.
    let events = export["data"]["audit_events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["action"] == "member.update"
            && e.to_string().contains(&format!("{COMMITTEE} II"))),
        "{export}"
    );
    assert!(!export["data"]["sessions"].as_array().unwrap().is_empty());
    let (status, asked) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org_a}/users/{zelda_id}/data-export"),
        Some(&admin_a),
        None,
    )
    .await;
    assert_eq!(status, 202, "{asked}");
    let org_export = asked["data"]["id"].as_str().unwrap().to_owned();
    tenancy_store::personal_data::run_export(
        &ctx.state.db,
        &ctx.state.audit_archive_dir,
        org_export.parse().unwrap(),
    )
    .await
    .unwrap();
    let (status, file) = download(
        &app,
        &admin_a,
        &format!("/api/v2/orgs/{org_a}/data-exports/{org_export}/download"),
    )
    .await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&file).to_lowercase();
    for needle in [EMAIL, COMMITTEE, CHILD] {
        assert!(
            text.contains(&needle.to_lowercase()),
            "{needle} missing from the org's export"
        );
    }
    assert!(
        !text.contains(&INVITED_CHILD.to_lowercase()),
        "org B's invitation is not org A's to export"
    );
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org_b}/users/{zelda_id}/data-export"),
        Some(&admin_b),
        None,
    )
    .await;
    assert_eq!(status, 404, "only invited to B: not a member");

    // The scan finds her everywhere it should before the erasure (so it can fail).
    let before = traces(&ctx).await;
    let place = |p: &str| before.iter().any(|(_, w)| w.contains(p));
    for expected in [
        "users",
        "memberships",
        "invitations",
        "mail_outbox",
        "job_files",
        "job_errors",
        "personal_data_exports",
        ".eml",
    ] {
        assert!(
            place(expected),
            "the scan should find her in {expected}: {before:?}"
        );
    }
    for needle in needles() {
        assert!(
            before.iter().any(|(n, _)| *n == needle),
            "{needle} not found before erasure"
        );
    }

    // The last admin of an org cannot erase their account; a wrong password is 422.
    let (status, body) = send(
        &app,
        Method::DELETE,
        "/api/v2/me",
        Some(&admin_a),
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "last_admin");
    assert_eq!(body["error"]["details"]["org_ids"][0], org_a.as_str());
    let (status, body) = send(
        &app,
        Method::DELETE,
        "/api/v2/me",
        Some(&zelda),
        Some(json!({"password": "wrong password"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");

    let (status, receipt) = send(
        &app,
        Method::DELETE,
        "/api/v2/me",
        Some(&zelda),
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    let r = &receipt["data"];
    assert_eq!(r["user_id"], zelda_id.as_str());
    assert_eq!(r["scope"], "account");
    assert_eq!(r["account_erased"], true);
    assert!(
        time::OffsetDateTime::parse(
            r["erased_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    let removed = &r["removed"];
    for (what, at_least) in [
        ("accounts", 1),
        ("memberships", 1),
        ("invitations", 1),
        ("privacy_choices", 1),
        ("access_log_entries", 1),
        ("sessions", 1),
        ("emails", 3),
        ("job_records", 1),
        ("export_files", 1),
        ("audit_keys", 2),
    ] {
        assert!(
            removed[what].as_u64().unwrap() >= at_least,
            "{what}: {receipt}"
        );
    }

    // Signed out everywhere, the account is gone, and no list shows her (cached pages
    // were retired).
    let (status, _) = send(&app, Method::GET, "/api/v2/me", Some(&zelda), None).await;
    assert_eq!(status, 401);
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(json!({"email": EMAIL, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 401);
    let (_, list) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org_a}/users"),
        Some(&admin_a),
        None,
    )
    .await;
    assert!(
        !list
            .to_string()
            .to_lowercase()
            .contains(&LAST.to_lowercase()),
        "{list}"
    );

    // Nothing of her is left in any table or file.
    let after = traces(&ctx).await;
    assert!(after.is_empty(), "traces left after erasure: {after:?}");

    // The audit trail keeps its events and still verifies, live and archived; her
    // fields read [erased]; the erasure itself is recorded without her data.
    for (org, admin) in [(&org_a, &admin_a), (&org_b, &admin_b)] {
        let (status, report) = send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{org}/audit-logs/verify"),
            Some(admin),
            None,
        )
        .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["data"]["intact"], true, "{report}");
    }
    let (_, logs) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org_a}/audit-logs?limit=200"),
        Some(&admin_a),
        None,
    )
    .await;
    let logs = logs["data"].as_array().unwrap().clone();
    let erase = logs
        .iter()
        .find(|e| e["action"] == "member.erase")
        .expect("member.erase recorded");
    assert_eq!(erase["entity_id"], zelda_id.as_str());
    assert!(
        logs.iter()
            .any(|e| e["entity_id"] == zelda_id.as_str() && e.to_string().contains("[erased]")),
        "{logs:?}"
    );
    let archive = audit_store::verify_archive_dir(&archive_dir, &ctx.state.audit_signer).unwrap();
    assert!(archive.is_intact(), "{archive:?}");
}

async fn an_admin_erases_a_member_of_their_org_and_the_account_only_when_nothing_else_holds_it(
    ctx: TestContext,
) {
    let app = ctx.service().await;
    let (admin_id, admin) = signed_up(&app, "admin@erase-member.test").await;
    let org = new_org(&app, &admin, "Erase Member PTO").await;
    let (_, other_admin) = signed_up(&app, "other@erase-member.test").await;
    let other = new_org(&app, &other_admin, "Other PTO").await;
    let code = |org: String, token: String| {
        let app = &app;
        async move {
            let (_, o) = send(
                app,
                Method::GET,
                &format!("/api/v2/orgs/{org}"),
                Some(&token),
                None,
            )
            .await;
            o["data"]["signup_code"].as_str().unwrap().to_owned()
        }
    };
    let code_a = code(org.clone(), admin.clone()).await;
    let code_b = code(other.clone(), other_admin.clone()).await;
    let join = |token: String, code: String| {
        let app = &app;
        async move {
            let (status, body) = send(
                app,
                Method::POST,
                "/api/v2/orgs/join",
                Some(&token),
                Some(json!({"signup_code": code})),
            )
            .await;
            assert_eq!(status, 201, "{body}");
        }
    };
    // Only here: the account goes too.
    let (solo_id, solo) = signed_up(&app, "solo@erase-member.test").await;
    join(solo.clone(), code_a.clone()).await;
    // Also a member of another org: the account stays, with that membership.
    let (both_id, both) = signed_up(&app, "both@erase-member.test").await;
    join(both.clone(), code_a.clone()).await;
    join(both.clone(), code_b).await;

    let uri = |user: &str| format!("/api/v2/orgs/{org}/users/{user}/erase");
    // Not an admin: 403; no reason: 422; yourself: 409; a non-member: 404.
    let (status, _) = send(
        &app,
        Method::POST,
        &uri(&solo_id),
        Some(&both),
        Some(json!({"reason": "asked by phone"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = send(
        &app,
        Method::POST,
        &uri(&solo_id),
        Some(&admin),
        Some(json!({"reason": " x "})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "reason");
    let (status, body) = send(
        &app,
        Method::POST,
        &uri(&admin_id),
        Some(&admin),
        Some(json!({"reason": "asked by phone"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "yourself");
    let (status, _) = send(
        &app,
        Method::POST,
        &uri(&uuid::Uuid::now_v7().to_string()),
        Some(&admin),
        Some(json!({"reason": "asked by phone"})),
    )
    .await;
    assert_eq!(status, 404);

    let (status, receipt) = send(
        &app,
        Method::POST,
        &uri(&solo_id),
        Some(&admin),
        Some(json!({"reason": "asked by e-mail on 2026-12-01"})),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["data"]["scope"], "org");
    assert_eq!(receipt["data"]["org_id"], org.as_str());
    assert_eq!(receipt["data"]["account_erased"], true);
    assert_eq!(receipt["data"]["removed"]["memberships"], 1);
    assert_eq!(receipt["data"]["removed"]["accounts"], 1);
    let (status, _) = send(&app, Method::GET, "/api/v2/me", Some(&solo), None).await;
    assert_eq!(status, 401, "the erased account's session ends");

    let (status, receipt) = send(
        &app,
        Method::POST,
        &uri(&both_id),
        Some(&admin),
        Some(json!({"reason": "asked by e-mail on 2026-12-02"})),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["data"]["account_erased"], false);
    assert_eq!(receipt["data"]["removed"]["accounts"], 0);
    let (status, me) = send(&app, Method::GET, "/api/v2/me", Some(&both), None).await;
    assert_eq!(status, 200, "{me}");
    let orgs: Vec<&str> = me["data"]["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["org_id"].as_str().unwrap())
        .collect();
    assert_eq!(orgs, vec![other.as_str()], "{me}");
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users/{both_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Twice is 404 (nothing left to erase here).
    let (status, _) = send(
        &app,
        Method::POST,
        &uri(&both_id),
        Some(&admin),
        Some(json!({"reason": "asked again"})),
    )
    .await;
    assert_eq!(status, 404);
    // Recorded with its reason, in this org's chain, which still verifies.
    let (_, logs) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?limit=200"),
        Some(&admin),
        None,
    )
    .await;
    let erasures: Vec<&Value> = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "member.erase")
        .collect();
    assert_eq!(erasures.len(), 2, "{logs}");
    assert!(
        logs.to_string().contains("asked by e-mail on 2026-12-02"),
        "{logs}"
    );
    let (_, report) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs/verify"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(report["data"]["intact"], true, "{report}");
}

async fn removed_members_records_are_erased_once_the_orgs_retention_period_has_passed(
    ctx: TestContext,
) {
    use sea_orm::ConnectionTrait;
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "admin@retention.test").await;
    let org = new_org(&app, &admin, "Retention PTO").await;
    let mut members = Vec::new();
    for email in [
        "old@retention.test",
        "recent@retention.test",
        "current@retention.test",
    ] {
        members.push(crate::helpers::member_of(&app, &admin, &org, email).await);
    }
    let retention = format!("/api/v2/orgs/{org}/member-retention");
    let (status, body) = send(&app, Method::GET, &retention, Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["data"]["removed_member_days"].as_u64(),
            body["data"]["version"].as_i64()
        ),
        (Some(365), Some(0))
    );
    let (status, _) = send(&app, Method::GET, &retention, Some(&members[2].1), None).await;
    assert_eq!(status, 403, "admins only");
    let (status, _) = send(
        &app,
        Method::PUT,
        &retention,
        Some(&admin),
        Some(json!({"removed_member_days": 30})),
    )
    .await;
    assert_eq!(status, 428);
    let (status, body) = send(
        &app,
        Method::PUT,
        &retention,
        Some(&admin),
        Some(json!({"removed_member_days": 10, "version": 0})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(
        &app,
        Method::PUT,
        &retention,
        Some(&admin),
        Some(json!({"removed_member_days": 30, "version": 0})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["version"], 1);
    let (status, _) = send(
        &app,
        Method::PUT,
        &retention,
        Some(&admin),
        Some(json!({"removed_member_days": 60, "version": 0})),
    )
    .await;
    assert_eq!(status, 412);

    // Two members are removed: one 31 days ago (past the org's 30 days), one just now.
    for (id, _) in &members[..2] {
        let (status, body) = send(
            &app,
            Method::DELETE,
            &format!("/api/v2/orgs/{org}/users/{id}"),
            Some(&admin),
            None,
        )
        .await;
        assert!(status < 300, "{status} {body}");
    }
    let now = time::OffsetDateTime::now_utc();
    let db = ctx.state.db.primary();
    db.execute_raw(persistence::statement(
        db.get_database_backend(),
        "UPDATE removed_memberships SET removed_at = ? WHERE user_id = ?",
        vec![
            (now - time::Duration::days(31)).into(),
            members[0].0.parse::<uuid::Uuid>().unwrap().into(),
        ],
    ))
    .await
    .unwrap();

    let receipts = tenancy_store::erasure::apply_retention(
        &ctx.state.db,
        now,
        &pto_server::routes::JobsAndMail,
        100,
    )
    .await
    .unwrap();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    let r = &receipts[0];
    assert_eq!(r.user_id.to_string(), members[0].0);
    assert!(!r.account_erased, "retention never takes the account");
    assert_eq!(r.removed.removed_memberships, 1);
    // Run again: nothing left to do.
    assert!(
        tenancy_store::erasure::apply_retention(
            &ctx.state.db,
            now,
            &pto_server::routes::JobsAndMail,
            100
        )
        .await
        .unwrap()
        .is_empty()
    );

    // The old record cannot be restored any more; the recent one can; the accounts stay.
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/users/{}/restore", members[0].0),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/users/{}/restore", members[1].0),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(&app, Method::GET, "/api/v2/me", Some(&members[0].1), None).await;
    assert_eq!(status, 200);
    // Recorded by the system, with the period as its reason.
    let (_, logs) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?limit=200"),
        Some(&admin),
        None,
    )
    .await;
    let erase = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "member.erase")
        .expect("member.erase");
    assert_eq!(erase["actor"], "system", "{erase}");
    assert_eq!(erase["entity_id"], members[0].0.as_str());
    // An account erased while removed from an org takes the org's kept record too.
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/orgs/{org}/users/{}", members[2].0),
        Some(&admin),
        None,
    )
    .await;
    assert!(status < 300, "{status} {body}");
    let (status, receipt) = send(
        &app,
        Method::DELETE,
        "/api/v2/me",
        Some(&members[2].1),
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(
        receipt["data"]["removed"]["removed_memberships"], 1,
        "{receipt}"
    );
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/users/{}/restore", members[2].0),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        erase["new_value"]["reason"]
            .as_str()
            .unwrap()
            .contains("30 days"),
        "{erase}"
    );
}
