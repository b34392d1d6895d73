use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::{body::MessageBody, test};
use sea_orm::ConnectionTrait;

use crate::backend_tests;
use crate::helpers::{TestContext, send, signed_up};

backend_tests!(
    audit_log_lists_filters_pages_and_detects_tampering,
    audit_log_exports_csv_matching_the_list,
    audit_csv_export_guards_formulas,
    activities_are_visible_to_admins_and_to_the_member_themselves,
);

async fn audit_log_lists_filters_pages_and_detects_tampering(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "audit-admin@example.org").await;
    let (_, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Audit PTO", "signup_code": "AUDIT1"})),
    )
    .await;
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    for i in 0..4 {
        let (_, t) = signed_up(&app, &format!("joiner{i}@example.org")).await;
        send(
            &app,
            Method::POST,
            "/api/v2/orgs/join",
            Some(&t),
            Some(serde_json::json!({"signup_code": "AUDIT1"})),
        )
        .await;
    }
    let logs = format!("/api/v2/orgs/{org}/audit-logs");
    // Filter + pagination: 4 joins, 3 pages of 2, 2, 0 — no gaps, no duplicates.
    let mut seen = Vec::new();
    let mut uri = format!("{logs}?action=member.join&limit=2");
    loop {
        let (status, page) = send(&app, Method::GET, &uri, Some(&admin), None).await;
        assert_eq!(status, 200, "{page}");
        for e in page["data"].as_array().unwrap() {
            assert_eq!(e["action"], "member.join");
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        match page["meta"]["pagination"]["next_cursor"].as_str() {
            Some(c) => uri = format!("{logs}?action=member.join&limit=2&cursor={c}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (4, 4));
    // One event by id; volunteers may not read the log.
    let (status, one) = send(
        &app,
        Method::GET,
        &format!("{logs}/{}", seen[0]),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["data"]["change_type"], "CREATE");
    let (_, vol) = signed_up(&app, "audit-vol@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(serde_json::json!({"signup_code": "AUDIT1"})),
    )
    .await;
    assert_eq!(
        send(&app, Method::GET, &logs, Some(&vol), None).await.0,
        403
    );
    let (status, stats) = send(
        &app,
        Method::GET,
        &format!("{logs}/stats"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{stats}");
    assert!(stats["data"]["total"].as_u64().unwrap() >= 7);
    // Intact, then one row edited by SQL: verification names exactly that event.
    let (status, report) = send(
        &app,
        Method::GET,
        &format!("{logs}/verify"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["data"]["intact"], true);
    let tampered = &one["data"];
    ctx.state
        .db
        .primary()
        .execute_unprepared(&format!(
            "UPDATE audit_events SET entity_id = 'someone-else' WHERE chain_id = 'org:{org}' AND seq = {}",
            tampered["seq"]
        ))
        .await
        .unwrap();
    let (_, report) = send(
        &app,
        Method::GET,
        &format!("{logs}/verify"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(report["data"]["intact"], false);
    assert_eq!(report["data"]["first_break"]["seq"], tampered["seq"]);
    assert_eq!(report["data"]["first_break"]["event_id"], tampered["id"]);
}

/// `GET uri` with a bearer token: status, `content-type`, `content-disposition`, body.
async fn get_raw<S, B>(app: &S, uri: &str, token: &str) -> (u16, String, String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let req = test::TestRequest::get()
        .uri(uri)
        .insert_header(("authorization", format!("Bearer {token}")))
        .to_request();
    let res = test::call_service(app, req).await;
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (status, content_type, disposition) = (
        res.status().as_u16(),
        header("content-type"),
        header("content-disposition"),
    );
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    (status, content_type, disposition, body)
}

/// A minimal RFC 4180 reader: quoted fields may hold commas, doubled quotes and line
/// breaks; records end with CRLF (or LF).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "unterminated CSV"
    );
    rows
}

/// Every event the list returns for `query`, following the cursor.
async fn list_all<S, B>(app: &S, logs: &str, query: &str, token: &str) -> Vec<serde_json::Value>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut all = Vec::new();
    let mut uri = format!("{logs}?limit=7&{query}");
    loop {
        let (status, page) = send(app, Method::GET, &uri, Some(token), None).await;
        assert_eq!(status, 200, "{page}");
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["meta"]["pagination"]["next_cursor"].as_str() {
            Some(c) => uri = format!("{logs}?limit=7&{query}&cursor={c}"),
            None => return all,
        }
    }
}

async fn audit_log_exports_csv_matching_the_list(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "export-admin@example.org").await;
    let name = r#"Acme, "Best" PTO"#;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": name, "signup_code": "EXPORT1"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    for i in 0..3 {
        let (_, t) = signed_up(&app, &format!("export-joiner{i}@example.org")).await;
        send(
            &app,
            Method::POST,
            "/api/v2/orgs/join",
            Some(&t),
            Some(serde_json::json!({"signup_code": "EXPORT1"})),
        )
        .await;
    }
    // More events than one export page (200) holds, so the export follows its cursor.
    let org_uuid: uuid::Uuid = org.parse().unwrap();
    let tx = audit_store::AuditedTx::begin(&ctx.state.db).await.unwrap();
    for i in 0..230 {
        tx.record(audit::NewAuditEvent::activity(
            audit::TenantScope::org(org_uuid),
            audit::Actor::System,
            audit::Action::from_static("test.bulk"),
            "widget",
            format!("w{i}"),
        ))
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let logs = format!("/api/v2/orgs/{org}/audit-logs");
    let header = [
        "id",
        "seq",
        "occurred_at",
        "actor",
        "action",
        "category",
        "change_type",
        "entity_type",
        "entity_id",
        "ip",
        "request_id",
        "old_value",
        "new_value",
    ];
    // Unfiltered: the export is recorded before streaming, so it is in its own CSV,
    // and the CSV holds exactly the rows the list then returns.
    let (status, content_type, disposition, csv) =
        get_raw(&app, &format!("{logs}/export"), &admin).await;
    assert_eq!(status, 200, "{csv}");
    assert_eq!(content_type, "text/csv; charset=utf-8");
    assert_eq!(
        disposition,
        format!("attachment; filename=\"audit-{org}.csv\"")
    );
    let rows = parse_csv(&csv);
    assert_eq!(rows[0], header);
    let listed = list_all(&app, &logs, "", &admin).await;
    assert_eq!(rows.len() - 1, listed.len());
    assert!(listed.len() > 230, "{}", listed.len());
    for (row, event) in rows[1..].iter().zip(&listed) {
        assert_eq!(row.len(), header.len());
        assert_eq!(row[0], event["id"].as_str().unwrap());
        assert_eq!(row[1], event["seq"].to_string());
        assert_eq!(row[2], event["occurred_at"].as_str().unwrap());
        assert_eq!(row[3], event["actor"].as_str().unwrap());
        assert_eq!(row[4], event["action"].as_str().unwrap());
        assert_eq!(row[5], event["category"].as_str().unwrap());
        let json = |i: usize| {
            (!row[i].is_empty())
                .then(|| serde_json::from_str::<serde_json::Value>(&row[i]).unwrap())
        };
        assert_eq!(json(11).unwrap_or_default(), event["old_value"]);
        assert_eq!(json(12).unwrap_or_default(), event["new_value"]);
    }
    // A name with a comma and quotes round-trips through the CSV.
    let created = rows
        .iter()
        .find(|r| r[4] == "org.create")
        .expect("org.create row");
    let value: serde_json::Value = serde_json::from_str(&created[12]).unwrap();
    assert_eq!(value["name"], name);
    // In the CSV: JSON-escaped (`\"`), then CSV-quoted (`""`).
    assert!(
        csv.contains(r#"""name"":""Acme, \""Best\"" PTO"""#),
        "{csv}"
    );
    // Exactly one data.export event (by the admin), newest first.
    let exports = list_all(&app, &logs, "action=data.export", &admin).await;
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0]["category"], "activity");
    assert_eq!(exports[0]["entity_type"], "audit_log");
    assert_eq!(exports[0]["entity_id"], org.as_str());
    assert_eq!(rows[1][4], "data.export");
    // Filtered: the same rows as the list with the same filter.
    let (status, _, _, csv) =
        get_raw(&app, &format!("{logs}/export?action=member.join"), &admin).await;
    assert_eq!(status, 200, "{csv}");
    let rows = parse_csv(&csv);
    let listed = list_all(&app, &logs, "action=member.join", &admin).await;
    assert_eq!(listed.len(), 3);
    let ids: Vec<_> = listed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let exported: Vec<_> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(exported, ids);
    assert_eq!(
        list_all(&app, &logs, "action=data.export", &admin)
            .await
            .len(),
        2
    );
    // Pagination only on the list; a bad filter is a validation error.
    assert_eq!(
        get_raw(&app, &format!("{logs}/export?limit=5"), &admin)
            .await
            .0,
        422
    );
    assert_eq!(
        get_raw(&app, &format!("{logs}/export?category=nope"), &admin)
            .await
            .0,
        422
    );
    // Volunteers may not export.
    let (_, vol) = signed_up(&app, "export-vol@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(serde_json::json!({"signup_code": "EXPORT1"})),
    )
    .await;
    assert_eq!(get_raw(&app, &format!("{logs}/export"), &vol).await.0, 403);
}

async fn activities_are_visible_to_admins_and_to_the_member_themselves(ctx: TestContext) {
    let app = ctx.service().await;
    let (admin_id, admin) = signed_up(&app, "act-admin@example.org").await;
    let (_, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Activity PTO", "signup_code": "ACTIV1"})),
    )
    .await;
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    let (vol_id, vol) = signed_up(&app, "act-vol@example.org").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(serde_json::json!({"signup_code": "ACTIV1"})),
    )
    .await;
    assert!(status < 300, "{body}");
    // An export makes an activity event by the admin.
    let logs = format!("/api/v2/orgs/{org}/audit-logs");
    assert_eq!(
        get_raw(&app, &format!("{logs}/export"), &admin).await.0,
        200
    );
    let activities = format!("/api/v2/orgs/{org}/activities");
    // Admin, no user: activity events only.
    let (status, page) = send(&app, Method::GET, &activities, Some(&admin), None).await;
    assert_eq!(status, 200, "{page}");
    let items = page["data"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|e| e["category"] == "activity"), "{page}");
    assert!(items.iter().any(|e| e["action"] == "data.export"), "{page}");
    // The volunteer sees their own events, by default and by naming themselves.
    for uri in [activities.clone(), format!("{activities}?user_id={vol_id}")] {
        let (status, page) = send(&app, Method::GET, &uri, Some(&vol), None).await;
        assert_eq!(status, 200, "{page}");
        let items = page["data"].as_array().unwrap();
        assert!(items.iter().any(|e| e["action"] == "member.join"), "{page}");
        assert!(
            items.iter().all(|e| e["actor"] == format!("user:{vol_id}")),
            "{page}"
        );
    }
    // The admin may read the volunteer's; the volunteer may not read the admin's.
    let (status, page) = send(
        &app,
        Method::GET,
        &format!("{activities}?user_id={vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(!page["data"].as_array().unwrap().is_empty());
    let (status, body) = send(
        &app,
        Method::GET,
        &format!("{activities}?user_id={admin_id}"),
        Some(&vol),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");
}

/// The audit CSV uses the project's one CSV writer: a value an actor chose that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`, also after leading blanks,
/// and a leading tab or CR) is written with a leading `'`.
async fn audit_csv_export_guards_formulas(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "guard-admin@example.org").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Guard PTO", "signup_code": "GUARD1"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    let org_uuid: uuid::Uuid = org.parse().unwrap();
    let hostile = [
        "=HYPERLINK(\"http://evil.example\",\"x\")",
        "+1+1",
        "-2+3",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "  =1",
    ];
    let tx = audit_store::AuditedTx::begin(&ctx.state.db).await.unwrap();
    for (i, v) in hostile.iter().enumerate() {
        tx.record(audit::NewAuditEvent::activity(
            audit::TenantScope::org(org_uuid),
            audit::Actor::System,
            audit::Action::from_static("test.guard"),
            format!("@type{i}"),
            (*v).to_owned(),
        ))
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let (status, _, _, csv) = get_raw(
        &app,
        &format!("/api/v2/orgs/{org}/audit-logs/export?action=test.guard"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    let rows = parse_csv(&csv);
    assert_eq!(rows.len(), hostile.len() + 1);
    let mut ids: Vec<&str> = rows[1..].iter().map(|r| r[8].as_str()).collect();
    ids.sort_unstable();
    let mut expected: Vec<String> = hostile.iter().map(|v| format!("'{v}")).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "every entity id guarded");
    for r in &rows[1..] {
        assert!(r[7].starts_with("'@type"), "{r:?}");
    }
}
