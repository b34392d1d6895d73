//! The change events (issue #19): the events API (`GET /orgs/{org_id}/events`) pages
//! the org's record without gaps or duplicates, filters by type, tells a caught-up
//! client so, answers 410 past retention, and shows each caller only what they may see.

use actix_web::http::Method;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::backend_tests;
use crate::handout::{App, set_settings};
use crate::helpers::{
    TestContext, join_with_code, member_of, new_org, patch_current, send, signed_up,
};

backend_tests!(
    events_page_without_gaps_or_duplicates_and_a_caught_up_cursor_stays,
    events_filter_by_type_and_refuse_unknown_types_and_bad_cursors,
    a_volunteer_never_sees_admin_only_events_but_sees_allowed_ones,
    another_orgs_events_are_not_visible,
    a_cursor_past_retention_answers_410,
    a_stream_resumes_without_gaps_or_repeats_even_on_another_instance,
    a_volunteers_stream_never_carries_an_admin_only_event,
    revoking_a_session_ends_its_stream,
    my_stream_follows_every_org_of_mine_and_resumes_per_org,
    a_slow_client_is_ended_with_a_reason_and_others_go_on,
    my_stream_pushes_my_unread_count_from_any_instance,
    my_stream_follows_an_org_i_join_and_stops_at_one_i_leave,
    my_stream_follows_an_org_joined_on_another_instance,
);

/// Every event of `uri` (after `after`) read `limit` at a time; returns the events and
/// the last `next_cursor` (reached when a page comes back short).
pub async fn read_all(
    app: &impl App,
    uri: &str,
    token: &str,
    after: Option<&str>,
    limit: u32,
) -> (Vec<Value>, String) {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let mut events = Vec::new();
    let mut cursor = after.map(str::to_owned);
    loop {
        let page_uri = match &cursor {
            Some(c) => format!("{uri}{sep}limit={limit}&after={c}"),
            None => format!("{uri}{sep}limit={limit}"),
        };
        let (status, page) = send(app, Method::GET, &page_uri, Some(token), None).await;
        assert_eq!(status, 200, "GET {page_uri}: {page}");
        let data = page["data"].as_array().expect("a list").clone();
        assert!(data.len() <= limit as usize);
        let next = page["meta"]["pagination"]["next_cursor"]
            .as_str()
            .expect("every page carries next_cursor")
            .to_owned();
        let short = data.len() < limit as usize;
        if let Some(last) = data.last()
            && !short
        {
            assert_eq!(
                last["id"],
                next.as_str(),
                "a full page ends at its last event"
            );
        }
        events.extend(data);
        cursor = Some(next.clone());
        if short {
            return (events, next);
        }
        assert!(events.len() < 2000, "no end of pages");
    }
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// An admin-only change (a permission setting), then one every member may see (the
/// org's name).
async fn admin_only_then_allowed(app: &impl App, org: &str, admin: &str, name: &str) {
    settings_change(
        app,
        org,
        admin,
        json!({"key": "budget.approve", "min_role": "admin"}),
    )
    .await;
    let (status, _) = patch_current(
        app,
        &format!("/api/v2/orgs/{org}"),
        Some(admin),
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(status, 200);
}

/// One settings change of `org` by its admin.
async fn settings_change(app: &impl App, org: &str, admin: &str, change: Value) {
    set_settings(app, org, admin, json!([change])).await;
}

async fn events_page_without_gaps_or_duplicates_and_a_caught_up_cursor_stays(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "ev-admin@example.org").await;
    let org = new_org(&app, &admin, "Events PTO").await;
    let mut members = Vec::new();
    for i in 0..4 {
        members.push(
            member_of(&app, &admin, &org, &format!("ev-m{i}@example.org"))
                .await
                .0,
        );
    }
    for (i, key) in ["budget.approve", "events.create", "documents.delete"]
        .iter()
        .enumerate()
    {
        let role = if i % 2 == 0 { "admin" } else { "board_member" };
        settings_change(&app, &org, &admin, json!({"key": key, "min_role": role})).await;
    }
    let uri = format!("/api/v2/orgs/{org}/events");
    let (whole, head) = read_all(&app, &uri, &admin, None, 200).await;
    // org.created, member.added (the creator), 4 joins, 3 settings.
    assert_eq!(whole.len(), 9, "{whole:#?}");
    assert_eq!(types(&whole)[..2], ["org.created", "member.added"]);
    assert_eq!(
        types(&whole)
            .iter()
            .filter(|t| *t == "member.joined")
            .count(),
        4
    );
    let first = &whole[0];
    assert_eq!(first["tenant"], json!({"type": "org", "id": org}));
    assert_eq!(first["actor"]["type"], "user");
    assert!(
        first["occurred_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let setting = whole
        .iter()
        .find(|e| e["type"] == "permission.settings_changed")
        .unwrap();
    assert_eq!(
        setting["subject"],
        json!({"type": "permission_setting", "id": "budget.approve"})
    );
    // The org's first setting of the key creates it.
    assert_eq!(setting["data"]["change"], "create");
    assert_eq!(setting["data"]["after"]["min_role"], "admin");
    // Member events show what changed, never the values (names, e-mail addresses).
    let joined = whole.iter().find(|e| e["type"] == "member.joined").unwrap();
    assert!(joined["data"].get("after").is_none(), "{joined}");
    assert!(!whole.iter().any(|e| e.to_string().contains("@example.org")));

    // Paging one or two at a time gives the same events, once each, in order.
    for limit in [1, 2] {
        let (paged, end) = read_all(&app, &uri, &admin, None, limit).await;
        assert_eq!(paged, whole, "limit {limit}");
        assert_eq!(end, head);
    }
    // Caught up: an empty page answers the same cursor.
    let (status, page) = send(
        &app,
        Method::GET,
        &format!("{uri}?after={head}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["data"], json!([]));
    assert_eq!(page["meta"]["pagination"]["next_cursor"], head.as_str());
    assert_eq!(page["meta"]["pagination"]["limit"], 50);
    // `cursor` is the same parameter as `after`.
    let (_, same) = send(
        &app,
        Method::GET,
        &format!("{uri}?cursor={head}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(same["meta"]["pagination"]["next_cursor"], head.as_str());
    // A change after it is the next page, alone; resuming mid-way repeats nothing.
    let (status, _) = patch_current(
        &app,
        &format!("/api/v2/orgs/{org}"),
        Some(&admin),
        Some(json!({"name": "Events PTO renamed"})),
    )
    .await;
    assert_eq!(status, 200);
    let (new, _) = read_all(&app, &uri, &admin, Some(&head), 50).await;
    assert_eq!(types(&new), ["org.updated"], "{new:#?}");
    assert!(
        new[0]["data"]["changed"]
            .as_array()
            .unwrap()
            .contains(&json!("name"))
    );
    let middle = whole[4]["id"].as_str().unwrap();
    let (rest, _) = read_all(&app, &uri, &admin, Some(middle), 3).await;
    let mut expected = whole[5..].to_vec();
    expected.extend(new);
    assert_eq!(rest, expected);
}

async fn events_filter_by_type_and_refuse_unknown_types_and_bad_cursors(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "evf-admin@example.org").await;
    let org = new_org(&app, &admin, "Filter PTO").await;
    member_of(&app, &admin, &org, "evf-1@example.org").await;
    settings_change(
        &app,
        &org,
        &admin,
        json!({"key": "budget.approve", "enabled": false}),
    )
    .await;
    member_of(&app, &admin, &org, "evf-2@example.org").await;
    let uri = format!("/api/v2/orgs/{org}/events");
    let (joins, _) = read_all(&app, &format!("{uri}?types=member.joined"), &admin, None, 1).await;
    assert_eq!(types(&joins), ["member.joined", "member.joined"]);
    let (two, _) = read_all(
        &app,
        &format!("{uri}?types=member.joined,permission.settings_changed"),
        &admin,
        None,
        50,
    )
    .await;
    assert_eq!(
        types(&two),
        [
            "member.joined",
            "permission.settings_changed",
            "member.joined"
        ]
    );
    for (query, field) in [
        ("types=member.joined,auth.sign_in", "types"),
        ("types=nope", "types"),
        ("after=not-a-cursor", "after"),
        ("cursor=0102", "cursor"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("since=1", "since"),
    ] {
        let (status, body) = send(
            &app,
            Method::GET,
            &format!("{uri}?{query}"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["error"]["code"], "VALIDATION_FAILED");
        assert_eq!(
            body["error"]["details"]["fields"][0]["field"], field,
            "{query}: {body}"
        );
    }
    // Anonymous: 401.
    let (status, _) = send(&app, Method::GET, &uri, None, None).await;
    assert_eq!(status, 401);
}

async fn a_volunteer_never_sees_admin_only_events_but_sees_allowed_ones(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "evv-admin@example.org").await;
    let org = new_org(&app, &admin, "Volunteer PTO").await;
    let (vol_id, volunteer) = member_of(&app, &admin, &org, "evv-vol@example.org").await;
    let (other_id, _) = member_of(&app, &admin, &org, "evv-other@example.org").await;
    admin_only_then_allowed(&app, &org, &admin, "Volunteer PTO 2").await;
    let uri = format!("/api/v2/orgs/{org}/events");
    let (admin_sees, _) = read_all(&app, &uri, &admin, None, 50).await;
    assert!(types(&admin_sees).contains(&"permission.settings_changed".to_owned()));
    let (seen, _) = read_all(&app, &uri, &volunteer, None, 50).await;
    let seen_types = types(&seen);
    assert!(
        !seen_types.contains(&"permission.settings_changed".to_owned()),
        "{seen_types:?}"
    );
    assert!(
        seen_types.contains(&"org.updated".to_owned()),
        "{seen_types:?}"
    );
    // Volunteers may read the directory by default: they see others joining.
    let subjects = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["type"] == "member.joined")
            .map(|e| e["subject"]["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(subjects(&seen), [vol_id.clone(), other_id.clone()]);
    // Asking for admin-only types by name shows nothing either.
    let (none, _) = read_all(
        &app,
        &format!("{uri}?types=permission.settings_changed"),
        &volunteer,
        None,
        50,
    )
    .await;
    assert_eq!(none, Vec::<Value>::new());
    // Once the directory is kept to the board, the volunteer sees only their own
    // member events (decided at each request, by the permission engine).
    settings_change(
        &app,
        &org,
        &admin,
        json!({"key": "users.view", "min_role": "board_member"}),
    )
    .await;
    let (seen, _) = read_all(&app, &uri, &volunteer, None, 2).await;
    assert_eq!(subjects(&seen), [vol_id]);
    assert!(!types(&seen).iter().any(|t| t.starts_with("permission.")));
    assert!(types(&seen).contains(&"org.updated".to_owned()));
}

async fn another_orgs_events_are_not_visible(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, a_admin) = signed_up(&app, "eva@example.org").await;
    let (_, b_admin) = signed_up(&app, "evb@example.org").await;
    let a = new_org(&app, &a_admin, "A PTO").await;
    let b = new_org(&app, &b_admin, "B PTO").await;
    settings_change(
        &app,
        &b,
        &b_admin,
        json!({"key": "budget.approve", "enabled": false}),
    )
    .await;
    let (a_events, a_cursor) = read_all(
        &app,
        &format!("/api/v2/orgs/{a}/events"),
        &a_admin,
        None,
        50,
    )
    .await;
    assert!(a_events.iter().all(|e| e["tenant"]["id"] == a.as_str()));
    assert!(!types(&a_events).contains(&"permission.settings_changed".to_owned()));
    let (b_events, _) = read_all(
        &app,
        &format!("/api/v2/orgs/{b}/events"),
        &b_admin,
        None,
        50,
    )
    .await;
    assert!(b_events.iter().all(|e| e["tenant"]["id"] == b.as_str()));
    // Not a member: 404, as for the org itself.
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{b}/events"),
        Some(&a_admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // A's cursor does not read B's events, even for B's admin.
    let (status, body) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{b}/events?after={a_cursor}"),
        Some(&b_admin),
        None,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "after");
}

async fn a_cursor_past_retention_answers_410(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "evr@example.org").await;
    let org = new_org(&app, &admin, "Retention PTO").await;
    member_of(&app, &admin, &org, "evr-1@example.org").await;
    let uri = format!("/api/v2/orgs/{org}/events");
    let (before, _) = read_all(&app, &uri, &admin, None, 50).await;
    let old = before[0]["id"].as_str().unwrap().to_owned();
    // Archive everything older than the default retention as of 500 days from now.
    let dir =
        std::env::temp_dir().join(format!("ptoc-ev-archive-{}", uuid::Uuid::now_v7().simple()));
    audit_store::archive_all(
        &ctx.state.db,
        &dir,
        &ctx.state.audit_signer,
        audit_store::ArchiveOptions::at(OffsetDateTime::now_utc() + Duration::days(500)),
        None,
    )
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let (status, body) = send(
        &app,
        Method::GET,
        &format!("{uri}?after={old}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "CURSOR_EXPIRED");
    assert!(body["error"]["details"]["resync"].is_string(), "{body}");
    // The stream answers the same before streaming anything.
    let (status, body) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/stream?after={old}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "CURSOR_EXPIRED");
    // Without a cursor, reading starts at the oldest retained event: the archive marker.
    let (after, head) = read_all(&app, &uri, &admin, None, 50).await;
    assert_eq!(types(&after), ["audit.archived"]);
    // The last archived event's cursor is still good (nothing after it was archived).
    let last_archived = before.last().unwrap()["id"].as_str().unwrap();
    let (status, page) = send(
        &app,
        Method::GET,
        &format!("{uri}?after={last_archived}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["meta"]["pagination"]["next_cursor"], head.as_str());
}

/// Reads a `text/event-stream` body frame by frame, each read bounded by a deadline.
pub struct Sse<B: actix_web::body::MessageBody> {
    body: std::pin::Pin<Box<B>>,
    buf: String,
}

/// One frame: its `id`, `event` and `data` lines (comments are skipped, heartbeats
/// kept as `event = "heartbeat"`).
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<Value>,
}

impl<B: actix_web::body::MessageBody> Sse<B> {
    pub fn new(res: actix_web::dev::ServiceResponse<B>) -> Self {
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        // Streams are never compressed (`open` asks with a browser's Accept-Encoding).
        assert!(
            res.headers()
                .get("content-encoding")
                .is_none_or(|v| v.as_bytes() == b"identity"),
            "{:?}",
            res.headers().get("content-encoding")
        );
        Self {
            body: Box::pin(res.into_body()),
            buf: String::new(),
        }
    }

    /// The next frame, `None` when the body ended; panics past `within`.
    pub async fn next(&mut self, within: std::time::Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let mut frame = Frame::default();
                let mut comment_only = true;
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        frame.id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        frame.event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        frame.data = Some(serde_json::from_str(v).expect("data is JSON"));
                    } else if line == ": heartbeat" {
                        frame.event = Some("heartbeat".into());
                    } else {
                        continue;
                    }
                    comment_only = false;
                }
                if comment_only {
                    continue;
                }
                return Some(frame);
            }
            let chunk = tokio::time::timeout_at(
                deadline,
                std::future::poll_fn(|cx| self.body.as_mut().poll_next(cx)),
            )
            .await
            .expect("a frame within the deadline");
            match chunk {
                None => return None,
                Some(Ok(bytes)) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Some(Err(_)) => panic!("the stream failed"),
            }
        }
    }

    /// The next change event (skipping heartbeats and unread counts); panics on the end
    /// or past `within`.
    pub async fn event(&mut self, within: std::time::Duration) -> Frame {
        loop {
            let frame = self.next(within).await.expect("an event, not the end");
            match frame.event.as_deref() {
                Some("heartbeat" | "unread") => continue,
                Some(other) => panic!("expected an event, got `{other}`: {frame:?}"),
                None => return frame,
            }
        }
    }
}

impl<B: actix_web::body::MessageBody> Sse<B> {
    /// The next unread count (`event: unread`), skipping change events and heartbeats;
    /// panics on the end or past `within`.
    pub async fn unread(&mut self, within: std::time::Duration) -> u64 {
        loop {
            let frame = self.next(within).await.expect("a count, not the end");
            match frame.event.as_deref() {
                Some("unread") => {
                    assert!(frame.id.is_none(), "a count does not move the position");
                    return frame
                        .data
                        .as_ref()
                        .and_then(|d| d["unread"].as_u64())
                        .expect("a count");
                }
                Some("end") => panic!("the stream ended: {frame:?}"),
                _ => continue,
            }
        }
    }
}

/// Opens a stream at `uri` with an optional `Last-Event-ID`.
pub async fn open<S, B>(app: &S, uri: &str, token: &str, last: Option<&str>) -> Sse<B>
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let mut req = actix_web::test::TestRequest::get()
        .uri(uri)
        .insert_header(("authorization", format!("Bearer {token}")))
        // As browsers' EventSource asks.
        .insert_header(("accept-encoding", "gzip, deflate, br"));
    if let Some(last) = last {
        req = req.insert_header(("last-event-id", last.to_owned()));
    }
    Sse::new(actix_web::test::call_service(app, req.to_request()).await)
}

fn ty(frame: &Frame) -> String {
    frame
        .data
        .as_ref()
        .map(|d| d["type"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

async fn a_stream_resumes_without_gaps_or_repeats_even_on_another_instance(ctx: TestContext) {
    use actix_web::test;
    use pto_server::startup::app;
    let shared = ctx.settings.redis_url.is_some();
    let b_state = ctx.another_instance().await;
    let a = test::init_service(app(ctx.state.clone(), ctx.api.clone())).await;
    let b = test::init_service(app(b_state.clone(), ctx.api.clone())).await;
    let (_, admin) = signed_up(&a, "evs-admin@example.org").await;
    let org = new_org(&a, &admin, "Stream PTO").await;
    let uri = format!("/api/v2/orgs/{org}/stream");
    let mut stream = open(&a, &uri, &admin, None).await;
    // The backlog, then live events.
    assert_eq!(ty(&stream.event(WAIT).await), "org.created");
    assert_eq!(ty(&stream.event(WAIT).await), "member.added");
    settings_change(
        &a,
        &org,
        &admin,
        json!({"key": "budget.approve", "enabled": false}),
    )
    .await;
    let first = stream.event(WAIT).await;
    assert_eq!(ty(&first), "permission.settings_changed");
    // The connection drops; changes go on meanwhile.
    drop(stream);
    settings_change(
        &a,
        &org,
        &admin,
        json!({"key": "events.create", "enabled": false}),
    )
    .await;
    member_of(&a, &admin, &org, "evs-1@example.org").await;
    // Resumed on the other instance: exactly what was missed, once, in order.
    let mut resumed = open(&b, &uri, &admin, first.id.as_deref()).await;
    let missed = [resumed.event(WAIT).await, resumed.event(WAIT).await];
    assert_eq!(
        missed.iter().map(ty).collect::<Vec<_>>(),
        ["permission.settings_changed", "member.joined"]
    );
    assert_eq!(
        missed[0].data.as_ref().unwrap()["subject"]["id"],
        "events.create"
    );
    // Then live: from the other instance over Redis, else (no Redis: one instance per
    // database) from B itself.
    let writer = if shared { &a } else { &b };
    settings_change(
        writer,
        &org,
        &admin,
        json!({"key": "documents.delete", "enabled": false}),
    )
    .await;
    let live = resumed.event(WAIT).await;
    assert_eq!(ty(&live), "permission.settings_changed");
    assert_eq!(
        live.data.as_ref().unwrap()["subject"]["id"],
        "documents.delete"
    );
    // The ids are the events API's: reading after the first one gives the same three.
    let (page, _) = read_all(
        &a,
        &format!("/api/v2/orgs/{org}/events"),
        &admin,
        first.id.as_deref(),
        50,
    )
    .await;
    let ids: Vec<Option<String>> = page
        .iter()
        .map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        ids,
        [missed[0].id.clone(), missed[1].id.clone(), live.id.clone()]
    );
    // Nothing repeated afterwards: the next thing is a heartbeat or a new event.
    member_of(writer, &admin, &org, "evs-2@example.org").await;
    assert_eq!(ty(&resumed.event(WAIT).await), "member.joined");
    // `?after=` resumes like the header; a cursor of nothing is 422.
    let mut by_query = open(
        &a,
        &format!("{uri}?after={}", live.id.as_deref().unwrap()),
        &admin,
        None,
    )
    .await;
    assert_eq!(ty(&by_query.event(WAIT).await), "member.joined");
    let (status, body) = send(
        &a,
        Method::GET,
        &format!("{uri}?after=zz"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 422, "{body}");
}

async fn a_volunteers_stream_never_carries_an_admin_only_event(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "evsv-admin@example.org").await;
    let org = new_org(&app, &admin, "Stream Volunteer PTO").await;
    let (vol_id, volunteer) = member_of(&app, &admin, &org, "evsv-vol@example.org").await;
    let mut stream = open(
        &app,
        &format!("/api/v2/orgs/{org}/stream"),
        &volunteer,
        None,
    )
    .await;
    let mut admin_stream = open(&app, &format!("/api/v2/orgs/{org}/stream"), &admin, None).await;
    // Backlog: the org, its creator, the volunteer joining.
    for expected in ["org.created", "member.added", "member.joined"] {
        assert_eq!(ty(&stream.event(WAIT).await), expected);
        assert_eq!(ty(&admin_stream.event(WAIT).await), expected);
    }
    admin_only_then_allowed(&app, &org, &admin, "Renamed").await;
    // The admin sees both; the volunteer only the second.
    assert_eq!(
        ty(&admin_stream.event(WAIT).await),
        "permission.settings_changed"
    );
    assert_eq!(ty(&admin_stream.event(WAIT).await), "org.updated");
    assert_eq!(ty(&stream.event(WAIT).await), "org.updated");
    // Once the directory is kept to the board, the volunteer sees their own member
    // events only (re-decided while the stream is open): someone joining is not shown,
    // their own change is the next event.
    settings_change(
        &app,
        &org,
        &admin,
        json!({"key": "users.view", "min_role": "board_member"}),
    )
    .await;
    // (The stream decides again at a change of rights, before the next event.)
    member_of(&app, &admin, &org, "evsv-late@example.org").await;
    let (status, _) = patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/users/{vol_id}"),
        Some(&admin),
        Some(json!({"committee": "Garden"})),
    )
    .await;
    assert_eq!(status, 200);
    let own = stream.event(WAIT).await;
    assert_eq!(ty(&own), "member.updated", "{own:?}");
    assert_eq!(own.data.as_ref().unwrap()["subject"]["id"], vol_id.as_str());

    // `/metrics` counts the app's open streams and shows the process's memory.
    let open_streams = |m: &str| crate::observability::series(m, "ptoc_streams_open");
    let metrics = crate::observability::scrape(&app).await;
    assert_eq!(open_streams(&metrics), Some(2.0));
    if cfg!(target_os = "linux") {
        let rss = crate::observability::series(&metrics, "process_resident_memory_bytes");
        assert!(rss.is_some_and(|b| b > 1_000_000.0), "{rss:?}");
    }
    drop(stream);
    assert_eq!(
        open_streams(&crate::observability::scrape(&app).await),
        Some(1.0)
    );
}

async fn revoking_a_session_ends_its_stream(ctx: TestContext) {
    let ctx = TestContext::with_env(ctx.backend, &[("STREAM_HEARTBEAT_MS", "100")])
        .await
        .unwrap();
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "evsr-admin@example.org").await;
    let org = new_org(&app, &admin, "Revoke PTO").await;
    let mut stream = open(&app, &format!("/api/v2/orgs/{org}/stream"), &admin, None).await;
    assert_eq!(ty(&stream.event(WAIT).await), "org.created");
    assert_eq!(ty(&stream.event(WAIT).await), "member.added");
    // Idle: heartbeats.
    let beat = stream
        .next(std::time::Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(beat.event.as_deref(), Some("heartbeat"));
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/logout",
        Some(&admin),
        None,
    )
    .await;
    assert!(status == 204 || status == 200, "{status}");
    let revoked = std::time::Instant::now();
    loop {
        match stream.next(std::time::Duration::from_secs(2)).await {
            Some(f) if f.event.as_deref() == Some("heartbeat") => continue,
            Some(f) => {
                assert_eq!(f.event.as_deref(), Some("end"), "{f:?}");
                assert_eq!(f.data.as_ref().unwrap()["reason"], "session_ended");
                break;
            }
            None => panic!("ended without a reason"),
        }
    }
    assert!(
        revoked.elapsed() < std::time::Duration::from_millis(1500),
        "{:?}",
        revoked.elapsed()
    );
    assert!(
        stream
            .next(std::time::Duration::from_secs(1))
            .await
            .is_none(),
        "the body ends"
    );
}

async fn my_stream_follows_every_org_of_mine_and_resumes_per_org(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, a_admin) = signed_up(&app, "evme-a@example.org").await;
    let (_, b_admin) = signed_up(&app, "evme-b@example.org").await;
    let a = new_org(&app, &a_admin, "Me A PTO").await;
    let b = new_org(&app, &b_admin, "Me B PTO").await;
    let (_, me) = member_of(&app, &a_admin, &a, "evme-me@example.org").await;
    join_with_code(&app, &b_admin, &b, &me).await;
    let mut stream = open(&app, "/api/v2/me/stream", &me, None).await;
    // Both orgs' backlogs (each in its order).
    let mut seen = Vec::new();
    for _ in 0..6 {
        let f = stream.event(WAIT).await;
        let data = f.data.clone().unwrap();
        seen.push((
            data["tenant"]["id"].as_str().unwrap().to_owned(),
            ty(&f),
            f.id.clone().unwrap(),
        ));
    }
    for org in [&a, &b] {
        let of: Vec<&str> = seen
            .iter()
            .filter(|(t, _, _)| t == org)
            .map(|(_, ty, _)| ty.as_str())
            .collect();
        assert_eq!(
            of,
            ["org.created", "member.added", "member.joined"],
            "{org}"
        );
    }
    let last = seen.last().unwrap().2.clone();
    drop(stream);
    // A change in each org while away; the resumed stream has exactly those.
    admin_only_then_allowed(&app, &a, &a_admin, "Me A renamed").await;
    admin_only_then_allowed(&app, &b, &b_admin, "Me B renamed").await;
    let mut resumed = open(&app, "/api/v2/me/stream", &me, Some(&last)).await;
    let mut tenants = Vec::new();
    for _ in 0..2 {
        let f = resumed.event(WAIT).await;
        assert_eq!(ty(&f), "org.updated", "{f:?}");
        tenants.push(f.data.unwrap()["tenant"]["id"].as_str().unwrap().to_owned());
    }
    tenants.sort();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(tenants, both);
    // The org's own stream does not take another org's position (422).
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{a}/stream?after={}", other_orgs_cursor()),
        Some(&me),
        None,
    )
    .await;
    assert_eq!(status, 422);
}

/// A cursor of an org nobody follows.
fn other_orgs_cursor() -> String {
    audit::EventCursor::at(audit::ChainId::Org(uuid::Uuid::now_v7()), 1).encode()
}

async fn a_slow_client_is_ended_with_a_reason_and_others_go_on(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, admin) = signed_up(&app, "evslow@example.org").await;
    let org = new_org(&app, &admin, "Slow PTO").await;
    let uri = format!("/api/v2/orgs/{org}/stream");
    let mut slow = open(&app, &uri, &admin, None).await;
    let mut fast = open(&app, &uri, &admin, None).await;
    for s in [&mut slow, &mut fast] {
        assert_eq!(ty(&s.event(WAIT).await), "org.created");
        assert_eq!(ty(&s.event(WAIT).await), "member.added");
    }
    // More live events than the broadcast keeps, fed the way the dispatcher feeds them
    // (consecutive positions after the chain's head); `fast` reads as they come, `slow`
    // does not read at all.
    let org_id = uuid::Uuid::parse_str(&org).unwrap();
    let chain = audit::ChainId::Org(org_id);
    let total = pto_server::event_hub::BUFFER as u64 + 100;
    let mut seq = 2;
    while seq < 2 + total {
        let batch: Vec<audit::AuditEvent> = (0..100)
            .map(|i| {
                let new = audit::NewAuditEvent::audit(
                    audit::TenantScope::org(org_id),
                    audit::Actor::System,
                    audit::EventType::OrgUpdate.action(),
                    "organization",
                    org.clone(),
                    audit::ChangeType::Update,
                );
                let head = audit::ChainHead {
                    chain,
                    seq: seq + i,
                    hash: audit::Hash32::GENESIS,
                };
                audit::seal(new, Some(&head)).unwrap()
            })
            .collect();
        ctx.state.events.committed(&batch).await;
        for _ in 0..100 {
            assert_eq!(ty(&fast.event(WAIT).await), "org.updated");
        }
        seq += 100;
    }
    // The slow one is told why it ends, and ends.
    let end = slow.next(WAIT).await.expect("a last frame");
    assert_eq!(end.event.as_deref(), Some("end"), "{end:?}");
    assert_eq!(end.data.unwrap()["reason"], "slow_consumer");
    assert!(slow.next(WAIT).await.is_none());
}

/// Sends an announcement to every member of `org`.
async fn announce(app: &impl App, org: &str, admin: &str, title: &str) {
    let (status, body) = send(
        app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/notifications"),
        Some(admin),
        Some(json!({"title": title, "body": "Read me.", "to": {"all": true}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

async fn my_stream_pushes_my_unread_count_from_any_instance(ctx: TestContext) {
    use actix_web::test;
    use pto_server::startup::app;
    let shared = ctx.settings.redis_url.is_some();
    let b_state = ctx.another_instance().await;
    let a = test::init_service(app(ctx.state.clone(), ctx.api.clone())).await;
    let b = test::init_service(app(b_state.clone(), ctx.api.clone())).await;
    let (_, admin) = signed_up(&a, "evun-admin@example.org").await;
    let org = new_org(&a, &admin, "Unread PTO").await;
    let (_, me) = member_of(&a, &admin, &org, "evun-me@example.org").await;
    let mut stream = open(&a, "/api/v2/me/stream", &me, None).await;
    // The count once at the start.
    assert_eq!(stream.unread(WAIT).await, 0);
    // Changes made on the other instance reach this one's stream over Redis (without
    // Redis, instances share nothing: the changes are made here).
    let writer = if shared { &b } else { &a };
    announce(writer, &org, &admin, "First").await;
    assert_eq!(stream.unread(WAIT).await, 1);
    announce(writer, &org, &admin, "Second").await;
    assert_eq!(stream.unread(WAIT).await, 2);
    let (status, inbox) = send(
        writer,
        Method::GET,
        "/api/v2/me/notifications",
        Some(&me),
        None,
    )
    .await;
    assert_eq!(status, 200, "{inbox}");
    let ids: Vec<String> = inbox["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    // Marked read: one less.
    let (status, _) = send(
        writer,
        Method::POST,
        &format!("/api/v2/me/notifications/{}/read", ids[0]),
        Some(&me),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(stream.unread(WAIT).await, 1);
    // A new one, then an unread one deleted.
    announce(writer, &org, &admin, "Third").await;
    assert_eq!(stream.unread(WAIT).await, 2);
    let (status, _) = send(
        writer,
        Method::DELETE,
        &format!("/api/v2/me/notifications/{}", ids[1]),
        Some(&me),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(stream.unread(WAIT).await, 1);
    // All read.
    let (status, body) = send(
        writer,
        Method::POST,
        "/api/v2/me/notifications/read-all",
        Some(&me),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stream.unread(WAIT).await, 0);
    // A reconnect starts with the current count.
    drop(stream);
    announce(writer, &org, &admin, "Fourth").await;
    let mut again = open(&a, "/api/v2/me/stream", &me, None).await;
    assert_eq!(again.unread(WAIT).await, 1);
    // An org's own stream carries no counts: its first frame is the org's first event.
    let mut org_stream = open(&a, &format!("/api/v2/orgs/{org}/stream"), &me, None).await;
    let first = org_stream.next(WAIT).await.unwrap();
    assert_eq!(first.event, None, "{first:?}");
    assert_eq!(ty(&first), "org.created");
}

async fn my_stream_follows_an_org_i_join_and_stops_at_one_i_leave(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, a_admin) = signed_up(&app, "evjoin-a@example.org").await;
    let (_, b_admin) = signed_up(&app, "evjoin-b@example.org").await;
    let a = new_org(&app, &a_admin, "Join A PTO").await;
    let b = new_org(&app, &b_admin, "Join B PTO").await;
    let (me_id, me) = member_of(&app, &a_admin, &a, "evjoin-me@example.org").await;
    let mut stream = open(&app, "/api/v2/me/stream", &me, None).await;
    for expected in ["org.created", "member.added", "member.joined"] {
        assert_eq!(ty(&stream.event(WAIT).await), expected);
    }
    let tenant = |f: &Frame| {
        f.data.as_ref().unwrap()["tenant"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // B before the join is not followed: its change is not shown.
    let (status, _) = patch_current(
        &app,
        &format!("/api/v2/orgs/{b}"),
        Some(&b_admin),
        Some(json!({"name": "Join B before"})),
    )
    .await;
    assert_eq!(status, 200);
    // Joining B while connected: B's events from the join on, no reconnect.
    join_with_code(&app, &b_admin, &b, &me).await;
    let joined = stream.event(WAIT).await;
    assert_eq!(ty(&joined), "member.joined", "{joined:?}");
    assert_eq!(tenant(&joined), b);
    assert_eq!(
        joined.data.as_ref().unwrap()["subject"]["id"],
        me_id.as_str()
    );
    let (status, _) = patch_current(
        &app,
        &format!("/api/v2/orgs/{b}"),
        Some(&b_admin),
        Some(json!({"name": "Join B renamed"})),
    )
    .await;
    assert_eq!(status, 200);
    let renamed = stream.event(WAIT).await;
    assert_eq!(ty(&renamed), "org.updated");
    assert_eq!(tenant(&renamed), b);
    // Its id holds a position in B: resuming from it reads B (and A) on after it.
    let (status, _) = patch_current(
        &app,
        &format!("/api/v2/orgs/{a}"),
        Some(&a_admin),
        Some(json!({"name": "Join A renamed"})),
    )
    .await;
    assert_eq!(status, 200);
    let a_renamed = stream.event(WAIT).await;
    assert_eq!(
        (ty(&a_renamed), tenant(&a_renamed)),
        ("org.updated".to_owned(), a.clone())
    );
    let mut resumed = open(&app, "/api/v2/me/stream", &me, renamed.id.as_deref()).await;
    let again = resumed.event(WAIT).await;
    let (x, y) = (
        again.data.as_ref().unwrap(),
        a_renamed.data.as_ref().unwrap(),
    );
    assert_eq!(
        (&x["type"], &x["tenant"], &x["occurred_at"]),
        (&y["type"], &y["tenant"], &y["occurred_at"]),
        "{again:?}"
    );
    drop(resumed);
    // Removed from B: B's events stop at the removal (shown to the member it is about,
    // unless the stream re-decided first), A's go on.
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/orgs/{b}/users/{me_id}"),
        Some(&b_admin),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = patch_current(
        &app,
        &format!("/api/v2/orgs/{b}"),
        Some(&b_admin),
        Some(json!({"name": "Join B after"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = patch_current(
        &app,
        &format!("/api/v2/orgs/{a}"),
        Some(&a_admin),
        Some(json!({"name": "Join A again"})),
    )
    .await;
    assert_eq!(status, 200);
    loop {
        let f = stream.event(WAIT).await;
        if tenant(&f) == a {
            assert_eq!(ty(&f), "org.updated", "{f:?}");
            break;
        }
        assert_eq!(
            ty(&f),
            "member.removed",
            "after the removal, nothing more of B: {f:?}"
        );
    }
}

async fn my_stream_follows_an_org_joined_on_another_instance(ctx: TestContext) {
    use actix_web::test;
    use pto_server::startup::app;
    let shared = ctx.settings.redis_url.is_some();
    let b_state = ctx.another_instance().await;
    let a = test::init_service(app(ctx.state.clone(), ctx.api.clone())).await;
    let b = test::init_service(app(b_state.clone(), ctx.api.clone())).await;
    // Without Redis, instances share nothing: everything happens on one.
    let other = if shared { &b } else { &a };
    let (_, x_admin) = signed_up(&a, "evjoinx-a@example.org").await;
    let (_, y_admin) = signed_up(&a, "evjoinx-b@example.org").await;
    let x = new_org(&a, &x_admin, "Join X PTO").await;
    let y = new_org(&a, &y_admin, "Join Y PTO").await;
    let (me_id, me) = member_of(&a, &x_admin, &x, "evjoinx-me@example.org").await;
    let mut stream = open(&a, "/api/v2/me/stream", &me, None).await;
    for expected in ["org.created", "member.added", "member.joined"] {
        assert_eq!(ty(&stream.event(WAIT).await), expected);
    }
    // The join is committed on the other instance; this one's stream follows Y from it.
    join_with_code(other, &y_admin, &y, &me).await;
    let joined = stream.event(WAIT).await;
    let data = joined.data.as_ref().expect("data");
    assert_eq!(ty(&joined), "member.joined", "{joined:?}");
    assert_eq!(data["tenant"]["id"], y.as_str());
    assert_eq!(data["subject"]["id"], me_id.as_str());
    let (status, _) = patch_current(
        other,
        &format!("/api/v2/orgs/{y}"),
        Some(&y_admin),
        Some(json!({"name": "Join Y renamed"})),
    )
    .await;
    assert_eq!(status, 200);
    let renamed = stream.event(WAIT).await;
    assert_eq!(ty(&renamed), "org.updated", "{renamed:?}");
    assert_eq!(
        renamed.data.as_ref().expect("data")["tenant"]["id"],
        y.as_str()
    );
}
