//! The audit API beyond the org log: the district's chain, the per-day activity
//! timeline, the retention setting, and keyset pages that stay exact while events are
//! written between fetches.

use actix_web::http::Method;
use time::{Duration, OffsetDateTime};

use crate::backend_tests;
use crate::helpers::{BOOTSTRAP_TOKEN, TestContext, send, signed_up};

backend_tests!(
    timestamps_inside_audit_values_are_rfc3339,
    district_audit_log_is_for_district_staff_only,
    daily_timeline_counts_exactly_per_utc_day_and_category,
    retention_is_readable_and_settable_by_org_admins,
    pages_have_no_gaps_or_duplicates_while_events_are_written,
);

async fn district_audit_log_is_for_district_staff_only(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, root) = signed_up(&app, "d-root@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/platform/bootstrap",
        Some(&root),
        Some(serde_json::json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    let mut districts = Vec::new();
    for (name, code) in [("North", "NORTH"), ("South", "SOUTH")] {
        let (status, d) = send(
            &app,
            Method::POST,
            "/api/v2/districts",
            Some(&root),
            Some(serde_json::json!({"name": name, "code": code})),
        )
        .await;
        assert_eq!(status, 201, "{d}");
        districts.push(d["data"]["id"].as_str().unwrap().to_owned());
    }
    let (north, south) = (&districts[0], &districts[1]);
    let staff = |d: &str, user: &str| format!("/api/v2/districts/{d}/staff/{user}");
    let (admin_id, admin) = signed_up(&app, "d-admin@example.org").await;
    let (viewer_id, viewer) = signed_up(&app, "d-viewer@example.org").await;
    let (other_id, other) = signed_up(&app, "d-other@example.org").await;
    for (d, user, role) in [
        (north, &admin_id, "district_admin"),
        (north, &viewer_id, "district_viewer"),
        (south, &other_id, "district_admin"),
    ] {
        let (status, body) = send(
            &app,
            Method::PUT,
            &staff(d, user),
            Some(&root),
            Some(serde_json::json!({"role": role, "version": 0})),
        )
        .await;
        assert!(status < 300, "{body}");
    }
    // A school and an org under it; a PTO admin of that org who is not district staff.
    let (status, s) = send(
        &app,
        Method::POST,
        &format!("/api/v2/districts/{north}/schools"),
        Some(&admin),
        Some(serde_json::json!({"name": "North Elementary", "code": "NORTHEL"})),
    )
    .await;
    assert_eq!(status, 201, "{s}");
    let school = s["data"]["id"].as_str().unwrap().to_owned();
    let (status, o) = send(&app, Method::POST, &format!("/api/v2/districts/{north}/orgs"), Some(&admin), Some(serde_json::json!({"name": "North PTO", "school_id": school, "signup_code": "NORTHPTO"}))).await;
    assert_eq!(status, 201, "{o}");
    let org = o["data"]["id"]
        .as_str()
        .or(o["data"]["org"]["id"].as_str())
        .unwrap()
        .to_owned();
    let (pto_id, pto) = signed_up(&app, "pto-admin@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&pto),
        Some(serde_json::json!({"signup_code": "NORTHPTO"})),
    )
    .await;
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/users/{pto_id}"),
        Some(&admin),
        Some(serde_json::json!({"role": "admin", "version": 1})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The PTO admin reads their org's log…
    assert_eq!(
        send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{org}/audit-logs"),
            Some(&pto),
            None
        )
        .await
        .0,
        200
    );

    let logs = format!("/api/v2/districts/{north}/audit-logs");
    // District staff (admin and viewer) and the platform admin see the district's chain.
    let mut listings = Vec::new();
    for token in [&admin, &viewer, &root] {
        let (status, page) = send(
            &app,
            Method::GET,
            &format!("{logs}?limit=200"),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        listings.push(page["data"].as_array().unwrap().clone());
    }
    let events = &listings[0];
    assert_eq!(listings[1], *events);
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.iter().any(|a| a.starts_with("school.")),
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a.contains("staff")), "{actions:?}");
    // Only district-chain events: the org's own events (joins, role changes) are not here.
    assert!(!actions.contains(&"member.join"), "{actions:?}");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "the whole chain, no gaps"
    );
    // One event, stats, verify, export.
    let id = events[0]["id"].as_str().unwrap();
    let (status, one) = send(
        &app,
        Method::GET,
        &format!("{logs}/{id}"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["data"]["id"], events[0]["id"]);
    let (status, stats) = send(
        &app,
        Method::GET,
        &format!("{logs}/stats"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["data"]["total"].as_u64(), Some(events.len() as u64));
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
    assert_eq!(
        report["data"]["checked"].as_u64(),
        Some(events.len() as u64)
    );
    let (status, csv) = send(
        &app,
        Method::GET,
        &format!("{logs}/export"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap().to_owned();
    assert_eq!(
        csv.lines().count(),
        events.len() + 2,
        "header + events + the export itself"
    );
    let (_, after) = send(
        &app,
        Method::GET,
        &format!("{logs}?action=data.export"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(after["data"][0]["actor"], format!("user:{viewer_id}"));
    // An event of another chain is not found through the district.
    let (_, org_page) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?limit=1"),
        Some(&pto),
        None,
    )
    .await;
    let org_event = org_page["data"][0]["id"].as_str().unwrap();
    assert_eq!(
        send(
            &app,
            Method::GET,
            &format!("{logs}/{org_event}"),
            Some(&admin),
            None
        )
        .await
        .0,
        404
    );

    // Everyone else gets 404 on every district audit route: the PTO admin of an org in
    // the district, the other district's staff, a stranger.
    let (_, stranger) = signed_up(&app, "d-stranger@example.org").await;
    for token in [&pto, &other, &stranger] {
        for uri in [
            logs.clone(),
            format!("{logs}/{id}"),
            format!("{logs}/stats"),
            format!("{logs}/verify"),
            format!("{logs}/export"),
        ] {
            let (status, body) = send(&app, Method::GET, &uri, Some(token), None).await;
            assert_eq!(status, 404, "{uri}: {body}");
        }
    }
    // The other district's staff see their own (empty but for the district's creation).
    let (status, own) = send(
        &app,
        Method::GET,
        &format!("/api/v2/districts/{south}/audit-logs"),
        Some(&other),
        None,
    )
    .await;
    assert_eq!(status, 200, "{own}");
    assert!(
        own["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["id"] != events[0]["id"])
    );
}

async fn daily_timeline_counts_exactly_per_utc_day_and_category(ctx: TestContext) {
    let app = ctx.service().await;
    let (admin_id, admin) = signed_up(&app, "tl-admin@example.org").await;
    let (_, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Timeline PTO", "signup_code": "TIMELN1"})),
    )
    .await;
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    let (vol_id, vol) = signed_up(&app, "tl-vol@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(serde_json::json!({"signup_code": "TIMELN1"})),
    )
    .await;
    // Seeded events at chosen times, long ago so that nothing else falls on those days:
    // (day offset, hour, minute, category, by the volunteer?).
    let base = time::macros::datetime!(2024-03-10 00:00 UTC);
    let seeded = [
        (0, 0, 0, "audit", true),
        (0, 23, 59, "activity", true),
        (0, 12, 0, "audit", false),
        (1, 0, 0, "activity", false),
        (1, 1, 0, "activity", true),
        (3, 23, 59, "audit", true),
        (3, 23, 59, "audit", true),
        (5, 0, 0, "audit", true), // outside the range asked below
    ];
    let org_uuid: uuid::Uuid = org.parse().unwrap();
    let vol_uuid: uuid::Uuid = vol_id.parse().unwrap();
    let admin_uuid: uuid::Uuid = admin_id.parse().unwrap();
    let tx = audit_store::AuditedTx::begin(&ctx.state.db).await.unwrap();
    for (i, (day, h, m, category, by_vol)) in seeded.iter().enumerate() {
        let actor = audit::Actor::User(if *by_vol { vol_uuid } else { admin_uuid });
        let scope = audit::TenantScope::org(org_uuid);
        let action = audit::Action::from_static("test.timeline");
        let mut e = match *category {
            "audit" => audit::NewAuditEvent::audit(
                scope,
                actor,
                action,
                "widget",
                format!("w{i}"),
                audit::ChangeType::Update,
            ),
            _ => audit::NewAuditEvent::activity(scope, actor, action, "widget", format!("w{i}")),
        };
        e.occurred_at = base + Duration::days(*day) + Duration::hours(*h) + Duration::minutes(*m);
        tx.record(e).await.unwrap();
    }
    tx.commit().await.unwrap();
    let daily = format!("/api/v2/orgs/{org}/activities/daily");
    let range = "from=2024-03-10&to=2024-03-14";
    let days = |body: &serde_json::Value| -> Vec<(String, u64, u64, u64)> {
        body["data"]["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["day"].as_str().unwrap().to_owned(),
                    d["audit"].as_u64().unwrap(),
                    d["activity"].as_u64().unwrap(),
                    d["total"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let s = |d: &str| d.to_owned();
    // The admin, everyone: days without events omitted; day 5 is outside the range.
    let (status, all) = send(
        &app,
        Method::GET,
        &format!("{daily}?{range}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        days(&all),
        vec![
            (s("2024-03-10"), 2, 1, 3),
            (s("2024-03-11"), 0, 2, 2),
            (s("2024-03-13"), 2, 0, 2)
        ]
    );
    assert_eq!(
        (all["data"]["from"].as_str(), all["data"]["to"].as_str()),
        (Some("2024-03-10"), Some("2024-03-14"))
    );
    // One user's.
    let (status, one) = send(
        &app,
        Method::GET,
        &format!("{daily}?{range}&user_id={vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(
        days(&one),
        vec![
            (s("2024-03-10"), 1, 1, 2),
            (s("2024-03-11"), 0, 1, 1),
            (s("2024-03-13"), 2, 0, 2)
        ]
    );
    // A member gets their own by default, and not someone else's.
    let (status, mine) = send(
        &app,
        Method::GET,
        &format!("{daily}?{range}"),
        Some(&vol),
        None,
    )
    .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(days(&mine), days(&one));
    assert_eq!(mine["data"]["user_id"], vol_id.as_str());
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("{daily}?{range}&user_id={admin_id}"),
        Some(&vol),
        None,
    )
    .await;
    assert_eq!(status, 403);
    // The range is inclusive of `to` and capped.
    let (_, last_day) = send(
        &app,
        Method::GET,
        &format!("{daily}?from=2024-03-15&to=2024-03-15"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(days(&last_day), vec![(s("2024-03-15"), 1, 0, 1)]);
    for bad in [
        "from=2024-03-14&to=2024-03-10",
        "from=2023-01-01&to=2024-03-10",
        "from=10-03-2024",
        "to=2024-02-30",
    ] {
        let (status, body) = send(
            &app,
            Method::GET,
            &format!("{daily}?{bad}"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    // Default: the last 30 days, today included (the org's creation and the join).
    let (status, recent) = send(&app, Method::GET, &daily, Some(&admin), None).await;
    assert_eq!(status, 200, "{recent}");
    let today = OffsetDateTime::now_utc().date().to_string();
    assert_eq!(recent["data"]["to"].as_str(), Some(today.as_str()));
    assert!(
        days(&recent).iter().any(|d| d.0 == today && d.3 >= 2),
        "{recent}"
    );
}

async fn retention_is_readable_and_settable_by_org_admins(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "ret-admin@example.org").await;
    let (_, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Retention PTO", "signup_code": "RETAIN1"})),
    )
    .await;
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    let uri = format!("/api/v2/orgs/{org}/audit-logs/retention");
    let (status, r) = send(&app, Method::GET, &uri, Some(&admin), None).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (
            r["data"]["days"].as_u64(),
            r["data"]["default_days"].as_u64()
        ),
        (Some(400), Some(400))
    );
    assert_eq!(r["data"]["version"], 0, "never set: {r}");
    // Versioned: 428 without a version, 412 with a stale one; nothing stored.
    let (status, body) = send(
        &app,
        Method::PUT,
        &uri,
        Some(&admin),
        Some(serde_json::json!({"days": 90})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (428, Some("PRECONDITION_REQUIRED")),
        "{body}"
    );
    let (status, body) = send(
        &app,
        Method::PUT,
        &uri,
        Some(&admin),
        Some(serde_json::json!({"days": 90, "version": 3})),
    )
    .await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["error"]["details"]["current_version"], 0, "{body}");
    let (status, r) = send(
        &app,
        Method::PUT,
        &uri,
        Some(&admin),
        Some(serde_json::json!({"days": 90, "version": 0})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (&r["data"]["days"], &r["data"]["version"]),
        (&serde_json::json!(90), &serde_json::json!(1))
    );
    // The next change names version 1; 0 is stale now.
    let (status, _) = send(
        &app,
        Method::PUT,
        &uri,
        Some(&admin),
        Some(serde_json::json!({"days": 90, "version": 0})),
    )
    .await;
    assert_eq!(status, 412);
    assert_eq!(
        send(&app, Method::GET, &uri, Some(&admin), None).await.1["data"]["days"],
        90
    );
    // Stored where the archiver reads it.
    let policy = audit_store::retention_of(ctx.state.db.primary(), org.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(policy.days(), 90);
    // Audited, with the old and new values.
    let (_, events) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?action=audit.retention_update"),
        Some(&admin),
        None,
    )
    .await;
    let events = events["data"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0]["old_value"]["days"].as_u64(),
            events[0]["new_value"]["days"].as_u64()
        ),
        (Some(400), Some(90))
    );
    for bad in [
        serde_json::json!({"days": 0}),
        serde_json::json!({"days": 36_501}),
        serde_json::json!({}),
    ] {
        let (status, body) = send(&app, Method::PUT, &uri, Some(&admin), Some(bad)).await;
        assert_eq!(status, 422, "{body}");
    }
    // The version may come as `If-Match`.
    let req = actix_web::test::TestRequest::put()
        .uri(&uri)
        .insert_header(("authorization", format!("Bearer {admin}")))
        .insert_header(("if-match", "\"1\""))
        .set_json(serde_json::json!({"days": 90}));
    let res = actix_web::test::call_service(&app, req.to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    // Members may not read or change it; strangers do not see the org.
    let (_, vol) = signed_up(&app, "ret-vol@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(serde_json::json!({"signup_code": "RETAIN1"})),
    )
    .await;
    assert_eq!(send(&app, Method::GET, &uri, Some(&vol), None).await.0, 403);
    assert_eq!(
        send(
            &app,
            Method::PUT,
            &uri,
            Some(&vol),
            Some(serde_json::json!({"days": 1}))
        )
        .await
        .0,
        403
    );
    let (_, stranger) = signed_up(&app, "ret-stranger@example.org").await;
    assert_eq!(
        send(&app, Method::GET, &uri, Some(&stranger), None).await.0,
        404
    );
    assert_eq!(
        send(&app, Method::GET, &uri, Some(&admin), None).await.1["data"]["days"],
        90
    );

    // The archiver applies each org's own period: 100 days from now, this org's events
    // (90 days) are due, another org's (default 400) are not.
    let (_, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Default PTO", "signup_code": "RETAIN2"})),
    )
    .await;
    let other = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    let logs = format!("/api/v2/orgs/{org}/audit-logs");
    let before = send(
        &app,
        Method::GET,
        &format!("{logs}?limit=200"),
        Some(&admin),
        None,
    )
    .await
    .1["data"]
        .as_array()
        .unwrap()
        .len();
    let dir = std::env::temp_dir().join(format!("ptoc-archive-{}", uuid::Uuid::now_v7().simple()));
    let later = OffsetDateTime::now_utc() + Duration::days(100);
    let outcomes = audit_store::archive_all(
        &ctx.state.db,
        &dir,
        &ctx.state.audit_signer,
        audit_store::ArchiveOptions::at(later),
        None,
    )
    .await
    .unwrap();
    let archived = |id: &str| {
        outcomes
            .iter()
            .find(|(c, _)| c.to_string() == format!("org:{id}"))
            .map(|(_, o)| {
                o.recorded
                    .iter()
                    .map(|m| m.manifest.event_count)
                    .sum::<u64>()
            })
    };
    assert_eq!(archived(&org), Some(before as u64));
    assert_eq!(archived(&other), Some(0));
    // What is left is the archive marker; the chain still verifies over HTTP from the cut.
    let (_, left) = send(&app, Method::GET, &logs, Some(&admin), None).await;
    let left = left["data"].as_array().unwrap().clone();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["action"], "audit.archive");
    assert_eq!(left[0]["seq"].as_u64(), Some(before as u64 + 1));
    let (status, report) = send(
        &app,
        Method::GET,
        &format!("{logs}/verify"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            report["data"]["intact"].as_bool(),
            report["data"]["checked"].as_u64()
        ),
        (Some(true), Some(1))
    );
    let v = audit_store::verify_archive_dir(&dir, &ctx.state.audit_signer).unwrap();
    assert!(v.is_intact(), "{v:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn pages_have_no_gaps_or_duplicates_while_events_are_written(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "pg-admin@example.org").await;
    let (_, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Paging PTO", "signup_code": "PAGING1"})),
    )
    .await;
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    let org_uuid: uuid::Uuid = org.parse().unwrap();
    // 25 events, several sharing a timestamp (ties are broken by id).
    let at = OffsetDateTime::now_utc() - Duration::hours(1);
    let tx = audit_store::AuditedTx::begin(&ctx.state.db).await.unwrap();
    for i in 0..25 {
        let mut e = audit::NewAuditEvent::activity(
            audit::TenantScope::org(org_uuid),
            audit::Actor::System,
            audit::Action::from_static("test.page"),
            "widget",
            format!("w{i}"),
        );
        e.occurred_at = at + Duration::seconds(i / 3);
        tx.record(e).await.unwrap();
    }
    tx.commit().await.unwrap();
    let logs = format!("/api/v2/orgs/{org}/audit-logs");
    let (_, everything) = send(
        &app,
        Method::GET,
        &format!("{logs}?limit=200"),
        Some(&admin),
        None,
    )
    .await;
    let before: Vec<String> = everything["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(before.len() >= 26);
    // Page through 4 at a time, writing new events (newer, and one back-dated into the
    // middle of the already-read range) between fetches.
    let mut seen: Vec<String> = Vec::new();
    let mut uri = format!("{logs}?limit=4");
    let mut fetches = 0;
    loop {
        let (status, page) = send(&app, Method::GET, &uri, Some(&admin), None).await;
        assert_eq!(status, 200, "{page}");
        fetches += 1;
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        let tx = audit_store::AuditedTx::begin(&ctx.state.db).await.unwrap();
        let mut e = audit::NewAuditEvent::activity(
            audit::TenantScope::org(org_uuid),
            audit::Actor::System,
            audit::Action::from_static("test.page.late"),
            "widget",
            format!("late{fetches}"),
        );
        if fetches == 2 {
            e.occurred_at = at + Duration::days(1);
        }
        tx.record(e).await.unwrap();
        tx.commit().await.unwrap();
        match page["meta"]["pagination"]["next_cursor"].as_str() {
            Some(c) => uri = format!("{logs}?limit=4&cursor={c}"),
            None => break,
        }
    }
    assert!(fetches >= 7);
    // Exactly the events that existed at the first fetch, in order, each once; events
    // written later are newer than the cursor and never show up in later pages.
    assert_eq!(seen, before);
}

/// Every timestamp inside an audit value is an RFC 3339 string (issue #16: they were
/// arrays such as `[2026,340,0,34,11,19047000,0,0,0]`).
async fn timestamps_inside_audit_values_are_rfc3339(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "rfc-admin@example.org").await;
    let org = crate::helpers::new_org(&app, &admin, "RFC PTO").await;
    let (member_id, _) =
        crate::helpers::member_of(&app, &admin, &org, "rfc-member@example.org").await;
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/users/{member_id}"),
        Some(&admin),
        Some(serde_json::json!({"committee": "Garden", "role_ends_at": "2030-06-30T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, logs) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?limit=200"),
        Some(&admin),
        None,
    )
    .await;
    let events = logs["data"].as_array().unwrap();
    let update = events
        .iter()
        .find(|e| e["action"] == "member.update" || e["action"] == "member.role.change")
        .expect("the member's change is logged");
    let joined = update["new_value"]["joined_at"]
        .as_str()
        .expect("joined_at is a string");
    OffsetDateTime::parse(joined, &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(update["new_value"]["role_ends_at"], "2030-06-30T00:00:00Z");
    // The one role shape, in audit values as everywhere.
    assert_eq!(
        update["new_value"]["role"],
        serde_json::json!({"kind": "builtin", "name": "volunteer", "rank": "volunteer"})
    );
    // No value anywhere holds a timestamp as an array of numbers.
    fn numeric_arrays(v: &serde_json::Value, found: &mut Vec<String>) {
        match v {
            serde_json::Value::Array(a)
                if a.len() >= 6 && a.iter().all(serde_json::Value::is_number) =>
            {
                found.push(v.to_string());
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| numeric_arrays(x, found)),
            serde_json::Value::Object(o) => o.values().for_each(|x| numeric_arrays(x, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    for e in events {
        numeric_arrays(&e["old_value"], &mut found);
        numeric_arrays(&e["new_value"], &mut found);
    }
    assert!(found.is_empty(), "timestamps as arrays: {found:?}");
}
