use actix_web::http::Method;
use sea_orm::ConnectionTrait;

use crate::backend_tests;
use crate::helpers::{TestContext, send, signed_up};

backend_tests!(audit_log_lists_filters_pages_and_detects_tampering);

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
