//! Notifications (issue #19): the inbox, officers sending to members, per-user
//! preferences per kind and channel (security notices can't be turned off) and the
//! daily digest job (one e-mail per user per day).

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{
    TestContext, all_pages, create, member_of, new_org, patch_current, send, signed_up,
};

backend_tests!(
    the_inbox_lists_newest_first_marks_read_and_deletes,
    a_volunteer_cannot_send_an_admin_can_and_the_send_is_audited_and_idempotent,
    recipients_are_resolved_by_member_role_and_committee,
    preferences_are_versioned_and_respected_per_channel,
    security_notices_cannot_be_turned_off,
    the_digest_job_sends_one_email_per_user_per_day,
);

/// An org with its admin and two volunteers: (org, admin, [(id, email, token); 2]).
async fn org_with_members<S, B>(
    app: &S,
    tag: &str,
) -> (String, String, Vec<(String, String, String)>)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (_, admin) = signed_up(app, &format!("admin.{tag}@notify.test")).await;
    let org = new_org(app, &admin, &format!("Notify {tag}")).await;
    let mut members = Vec::new();
    for n in 0..2 {
        let email = format!("member{n}.{tag}@notify.test");
        let (id, token) = member_of(app, &admin, &org, &email).await;
        members.push((id, email, token));
    }
    (org, admin, members)
}

fn announcement(title: &str, to: Value) -> Value {
    json!({"kind": "announcement", "title": title, "body": format!("About {title}."), "to": to})
}

/// Messages of `template` to `to` in the outbox.
async fn outbox(ctx: &TestContext, to: &str, template: &str) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    let db = ctx.state.db.primary();
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            "SELECT payload FROM mail_outbox WHERE recipient = $1 AND template = $2 ORDER BY id"
        }
        _ => "SELECT payload FROM mail_outbox WHERE recipient = ? AND template = ? ORDER BY id",
    };
    db.query_all_raw(sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [to.into(), template.into()],
    ))
    .await
    .expect("read the outbox")
    .iter()
    .map(|row| {
        row.try_get::<String>("", "payload")
            .or_else(|_| row.try_get::<Value>("", "payload").map(|v| v.to_string()))
            .expect("payload")
    })
    .collect()
}

async fn the_inbox_lists_newest_first_marks_read_and_deletes(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, members) = org_with_members(&app, "inbox").await;
    let uri = format!("/api/v2/orgs/{org}/notifications");
    for title in ["First", "Second", "Third"] {
        create(
            &app,
            &uri,
            Some(&admin),
            announcement(title, json!({"all": true})),
        )
        .await;
    }
    let vol = &members[0].2;
    let items = all_pages(&app, "/api/v2/me/notifications", Some(vol), Some(3)).await;
    let titles: Vec<&str> = items.iter().map(|i| i["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Third", "Second", "First"]);
    assert!(
        items
            .iter()
            .all(|i| i["read"] == false && i["kind"] == "announcement")
    );
    assert_eq!(items[0]["org_id"], org.as_str());
    let (_, count) = send(
        &app,
        Method::GET,
        "/api/v2/me/notifications/unread-count",
        Some(vol),
        None,
    )
    .await;
    assert_eq!(count["data"], json!({"unread": 3, "total": 3}), "{count}");

    // Mark one read.
    let first = items[2]["id"].as_str().unwrap();
    let (status, read) = send(
        &app,
        Method::POST,
        &format!("/api/v2/me/notifications/{first}/read"),
        Some(vol),
        None,
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["data"]["read"], true);
    assert!(read["data"]["read_at"].is_string());
    // Someone else's notification is not theirs to mark or delete.
    let other = &members[1].2;
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/api/v2/me/notifications/{first}/read"),
        Some(other),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/me/notifications/{first}"),
        Some(other),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, unread) = send(
        &app,
        Method::GET,
        "/api/v2/me/notifications?unread=true",
        Some(vol),
        None,
    )
    .await;
    assert_eq!(unread["data"].as_array().unwrap().len(), 2, "{unread}");
    assert_eq!(unread["meta"]["pagination"]["total"], 2, "{unread}");

    // Mark all read.
    let (status, all) = send(
        &app,
        Method::POST,
        "/api/v2/me/notifications/read-all",
        Some(vol),
        None,
    )
    .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["data"], json!({"marked": 2, "unread": 0}));
    let (_, unread) = send(
        &app,
        Method::GET,
        "/api/v2/me/notifications?unread=true",
        Some(vol),
        None,
    )
    .await;
    assert_eq!(unread["data"], json!([]));
    // The other member's inbox is untouched.
    let (_, count) = send(
        &app,
        Method::GET,
        "/api/v2/me/notifications/unread-count",
        Some(other),
        None,
    )
    .await;
    assert_eq!(count["data"]["unread"], 3, "{count}");

    // Delete one.
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/me/notifications/{first}"),
        Some(vol),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/me/notifications/{first}"),
        Some(vol),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, list) = send(
        &app,
        Method::GET,
        "/api/v2/me/notifications",
        Some(vol),
        None,
    )
    .await;
    assert_eq!(list["meta"]["pagination"]["total"], 2, "{list}");
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["id"] != first)
    );
    // Unknown filters are refused.
    let (status, _) = send(
        &app,
        Method::GET,
        "/api/v2/me/notifications?unread=maybe",
        Some(vol),
        None,
    )
    .await;
    assert_eq!(status, 422);
}

async fn a_volunteer_cannot_send_an_admin_can_and_the_send_is_audited_and_idempotent(
    ctx: TestContext,
) {
    let app = ctx.service().await;
    let (org, admin, members) = org_with_members(&app, "send").await;
    let uri = format!("/api/v2/orgs/{org}/notifications");
    let vol = &members[0].2;
    let (status, body) = send(
        &app,
        Method::POST,
        &uri,
        Some(vol),
        Some(announcement("Nope", json!({"all": true}))),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");
    let (location, sent) = create(
        &app,
        &uri,
        Some(&admin),
        announcement("Bake sale", json!({"all": true})),
    )
    .await;
    assert_eq!(sent["data"]["recipients"], 3, "{sent}");
    assert_eq!(sent["data"]["in_app"], 3, "{sent}");
    assert_eq!(sent["data"]["emailed"], 3, "{sent}");
    assert_eq!(sent["data"]["digest"], 0, "{sent}");
    let id = sent["data"]["id"].as_str().unwrap();
    // The Location is the send's audit record: counts, not the message.
    let (status, log) = send(&app, Method::GET, &location, Some(&admin), None).await;
    assert_eq!(status, 200, "{log}");
    let events = log["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{log}");
    assert_eq!(events[0]["action"], "notification.send");
    assert_eq!(events[0]["entity_id"], id);
    assert_eq!(events[0]["new_value"]["recipients"], 3, "{log}");
    assert!(!log.to_string().contains("Bake sale"), "{log}");
    // Bad audiences and bodies are 422.
    for bad in [
        announcement("X", json!({"all": false})),
        announcement("X", json!({"members": []})),
        announcement("X", json!({"everyone": true})),
        json!({"title": "", "body": "x", "to": {"all": true}}),
        json!({"kind": "security", "title": "x", "body": "x", "to": {"all": true}}),
    ] {
        let (status, body) = send(&app, Method::POST, &uri, Some(&admin), Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    // Idempotency-Key replays the first answer; one inbox item per member.
    let mut replies = Vec::new();
    for _ in 0..2 {
        let req = actix_web::test::TestRequest::post()
            .uri(&uri)
            .insert_header(("authorization", format!("Bearer {admin}")))
            .insert_header(("idempotency-key", "notify-once-1"))
            .set_json(announcement("Once", json!({"all": true})))
            .to_request();
        let res = actix_web::test::call_service(&app, req).await;
        assert_eq!(res.status().as_u16(), 201);
        let body: Value = actix_web::test::read_body_json(res).await;
        replies.push(body["data"]["id"].clone());
    }
    assert_eq!(replies[0], replies[1]);
    let (_, list) = send(
        &app,
        Method::GET,
        "/api/v2/me/notifications",
        Some(vol),
        None,
    )
    .await;
    assert_eq!(list["meta"]["pagination"]["total"], 2, "{list}");
}

async fn recipients_are_resolved_by_member_role_and_committee(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, members) = org_with_members(&app, "aud").await;
    let (board_id, board_email, board) = &members[0];
    let (vol_id, _, vol) = &members[1];
    let (status, body) = patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/users/{board_id}"),
        Some(&admin),
        Some(json!({"role": "board_member"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/users/{vol_id}"),
        Some(&admin),
        Some(json!({"committee": "Fundraising"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let uri = format!("/api/v2/orgs/{org}/notifications");
    let inbox = |token: String| {
        let app = &app;
        async move {
            let (_, list) = send(
                app,
                Method::GET,
                "/api/v2/me/notifications",
                Some(&token),
                None,
            )
            .await;
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["title"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let (_, sent) = create(
        &app,
        &uri,
        Some(&admin),
        announcement("Board", json!({"roles": ["board_member"]})),
    )
    .await;
    assert_eq!(sent["data"]["recipients"], 1, "{sent}");
    let (_, sent) = create(
        &app,
        &uri,
        Some(&admin),
        announcement("Funds", json!({"committees": ["fundraising"]})),
    )
    .await;
    assert_eq!(sent["data"]["recipients"], 1, "{sent}");
    let (_, sent) = create(
        &app,
        &uri,
        Some(&admin),
        announcement("Direct", json!({"members": [vol_id, uuid::Uuid::now_v7()]})),
    )
    .await;
    assert_eq!(sent["data"]["recipients"], 1, "{sent}");
    let (_, sent) = create(
        &app,
        &uri,
        Some(&admin),
        announcement("Admins", json!({"roles": ["admin", "volunteer"]})),
    )
    .await;
    assert_eq!(sent["data"]["recipients"], 2, "{sent}");
    assert_eq!(inbox(board.clone()).await, ["Board"]);
    assert_eq!(inbox(vol.clone()).await, ["Admins", "Direct", "Funds"]);
    assert_eq!(inbox(admin.clone()).await, ["Admins"]);
    // Someone outside the org (a member of another org) is never reached from here.
    let (outsider_id, outsider) = signed_up(&app, "outsider.aud@notify.test").await;
    new_org(&app, &outsider, "Elsewhere").await;
    let (_, sent) = create(
        &app,
        &uri,
        Some(&admin),
        announcement("Outside", json!({"members": [outsider_id]})),
    )
    .await;
    assert_eq!(sent["data"]["recipients"], 0, "{sent}");
    assert!(inbox(outsider.clone()).await.is_empty());
    assert_eq!(outbox(&ctx, board_email, "notification").await.len(), 1);
    // A board member may send (communications.send is board_member's by default).
    let (_, sent) = create(
        &app,
        &uri,
        Some(board),
        announcement("From the board", json!({"all": true})),
    )
    .await;
    assert_eq!(sent["data"]["recipients"], 3, "{sent}");
}

async fn preferences_are_versioned_and_respected_per_channel(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, members) = org_with_members(&app, "prefs").await;
    let (_, quiet_email, quiet) = &members[0];
    let (_, mail_email, mailer) = &members[1];
    let uri = "/api/v2/me/notification-preferences";
    let (status, prefs) = send(&app, Method::GET, uri, Some(quiet), None).await;
    assert_eq!(status, 200, "{prefs}");
    assert_eq!(prefs["data"]["version"], 0);
    assert_eq!(
        prefs["data"]["announcement"],
        json!({"in_app": "instant", "email": "instant"})
    );
    assert_eq!(prefs["data"]["activity"]["email"], "daily_digest");
    // Versioned: 428 without a version, 412 when stale.
    let (status, body) = send(
        &app,
        Method::PUT,
        uri,
        Some(quiet),
        Some(json!({"announcement": {"in_app": "off"}})),
    )
    .await;
    assert_eq!(status, 428, "{body}");
    let (status, body) = send(
        &app,
        Method::PUT,
        uri,
        Some(quiet),
        Some(json!({"version": 0, "announcement": {"in_app": "off", "email": "off"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["version"], 1);
    assert_eq!(
        body["data"]["announcement"],
        json!({"in_app": "off", "email": "off"})
    );
    let (status, body) = send(
        &app,
        Method::PUT,
        uri,
        Some(quiet),
        Some(json!({"version": 0})),
    )
    .await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["error"]["code"], "VERSION_MISMATCH");
    let (status, tag, _) = crate::helpers::get_tagged(&app, uri, quiet, None).await;
    assert_eq!(status, 200);
    assert!(tag.is_some());
    // The other member: no inbox item, e-mail at once.
    let (status, body) = send(
        &app,
        Method::PUT,
        uri,
        Some(mailer),
        Some(json!({"version": 0, "announcement": {"in_app": "off", "email": "instant"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (_, sent) = create(
        &app,
        &format!("/api/v2/orgs/{org}/notifications"),
        Some(&admin),
        announcement("Picnic", json!({"all": true})),
    )
    .await;
    assert_eq!(sent["data"]["recipients"], 3, "{sent}");
    assert_eq!(sent["data"]["in_app"], 1, "{sent}");
    assert_eq!(sent["data"]["emailed"], 2, "{sent}");
    for token in [quiet, mailer] {
        let (_, list) = send(
            &app,
            Method::GET,
            "/api/v2/me/notifications",
            Some(token),
            None,
        )
        .await;
        assert_eq!(list["data"], json!([]), "{list}");
    }
    let (_, list) = send(
        &app,
        Method::GET,
        "/api/v2/me/notifications",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert!(outbox(&ctx, quiet_email, "notification").await.is_empty());
    let mails = outbox(&ctx, mail_email, "notification").await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("Picnic"), "{}", mails[0]);
}

async fn security_notices_cannot_be_turned_off(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "secure@notify.test").await;
    let uri = "/api/v2/me/notification-preferences";
    for channel in ["in_app", "email"] {
        let (status, body) = send(
            &app,
            Method::PUT,
            uri,
            Some(&token),
            Some(json!({"version": 0, "security": {channel: "off"}})),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "VALIDATION_FAILED");
        let field = &body["error"]["details"]["fields"][0];
        assert_eq!(field["field"], format!("security.{channel}"), "{body}");
        assert_eq!(field["code"], "security_notices_required", "{body}");
    }
    let (_, prefs) = send(&app, Method::GET, uri, Some(&token), None).await;
    assert_eq!(prefs["data"]["version"], 0, "nothing was stored: {prefs}");
    assert_eq!(
        prefs["data"]["security"],
        json!({"in_app": "instant", "email": "instant"})
    );
    // Anything but off is fine.
    let (status, body) = send(
        &app,
        Method::PUT,
        uri,
        Some(&token),
        Some(json!({"version": 0, "security": {"email": "daily_digest"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn the_digest_job_sends_one_email_per_user_per_day(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, members) = org_with_members(&app, "digest").await;
    let uri = "/api/v2/me/notification-preferences";
    for (_, _, token) in &members {
        let (status, body) = send(
            &app,
            Method::PUT,
            uri,
            Some(token),
            Some(json!({"version": 0, "announcement": {"email": "daily_digest"}})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let send_uri = format!("/api/v2/orgs/{org}/notifications");
    for title in ["Gala", "Raffle"] {
        let (_, sent) = create(
            &app,
            &send_uri,
            Some(&admin),
            announcement(title, json!({"all": true})),
        )
        .await;
        assert_eq!(sent["data"]["digest"], 2, "{sent}");
        assert_eq!(sent["data"]["emailed"], 1, "{sent}");
    }
    for (_, email, _) in &members {
        assert!(outbox(&ctx, email, "notification").await.is_empty());
    }
    let today = time::OffsetDateTime::now_utc().date();
    let first = ctx
        .state
        .notifications
        .run_daily_digest(today)
        .await
        .unwrap();
    assert_eq!((first.emails, first.items), (2, 4));
    // Run again the same day: nothing more, even with a new item waiting.
    let second = ctx
        .state
        .notifications
        .run_daily_digest(today)
        .await
        .unwrap();
    assert_eq!(second.emails, 0);
    create(
        &app,
        &send_uri,
        Some(&admin),
        announcement("Late", json!({"all": true})),
    )
    .await;
    let third = ctx
        .state
        .notifications
        .run_daily_digest(today)
        .await
        .unwrap();
    assert_eq!(third.emails, 0);
    for (_, email, _) in &members {
        let digests = outbox(&ctx, email, "notification_digest").await;
        assert_eq!(digests.len(), 1, "{email}");
        assert!(
            digests[0].contains("Gala") && digests[0].contains("Raffle"),
            "{}",
            digests[0]
        );
        assert!(!digests[0].contains("Late"));
    }
    assert!(
        outbox(&ctx, "admin.digest@notify.test", "notification_digest")
            .await
            .is_empty()
    );
    // The next day, the item that waited goes out, once.
    let tomorrow = today.next_day().unwrap();
    let next = ctx
        .state
        .notifications
        .run_daily_digest(tomorrow)
        .await
        .unwrap();
    assert_eq!((next.emails, next.items), (2, 2));
    assert_eq!(
        ctx.state
            .notifications
            .run_daily_digest(tomorrow)
            .await
            .unwrap()
            .emails,
        0
    );
    for (_, email, _) in &members {
        let digests = outbox(&ctx, email, "notification_digest").await;
        assert_eq!(digests.len(), 2, "{email}");
        assert!(digests[1].contains("Late"));
    }
    // The inbox still has every item (the digest is the e-mail channel only).
    let (_, list) = send(
        &app,
        Method::GET,
        "/api/v2/me/notifications",
        Some(&members[0].2),
        None,
    )
    .await;
    assert_eq!(list["meta"]["pagination"]["total"], 3, "{list}");
}
