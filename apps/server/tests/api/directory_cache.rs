//! The directory cache: profiles and list pages are served from the two-level
//! cache, and every write that changes what they show retires them (on this instance at
//! once, on the others through Redis).

use actix_web::http::Method;
use pto_server::startup::app;

use crate::backend_tests;
use crate::helpers::{Backend, TestContext, login, send, signed_up};

backend_tests!(reads_are_cached_and_every_write_that_shows_retires_them);

/// GETs `uri` as `token` and returns the body (asserting 200).
async fn get<S, B>(app: &S, token: &str, uri: &str) -> serde_json::Value
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (status, body) = send(app, Method::GET, uri, Some(token), None).await;
    assert_eq!(status, 200, "{uri}: {body}");
    body
}

fn ids(body: &serde_json::Value) -> Vec<String> {
    body["data"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["user_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn reads_are_cached_and_every_write_that_shows_retires_them(ctx: TestContext) {
    let app = ctx.service().await;
    let stats = || ctx.state.directory_cache.stats();
    let (admin_id, admin) = signed_up(&app, "cache-admin@example.org").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Cache PTO", "signup_code": "CACHE001"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    let (vol_id, vol) = signed_up(&app, "cache-vol@example.org").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(serde_json::json!({"signup_code": "CACHE001"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let users = format!("/api/v2/orgs/{org}/users");
    let list = format!("{users}?sort=name");
    let by_activity = format!("{users}?sort=last_active&order=desc");
    let profile = format!("{users}/{vol_id}");
    let search = format!("{users}/search?q=Fundraising");

    // Repeated reads are answered by the cache: no new load.
    for uri in [&list, &profile] {
        let first = get(&app, &admin, uri).await;
        let before = stats();
        let again = get(&app, &admin, uri).await;
        let after = stats();
        assert_eq!(first["data"], again["data"], "{uri}");
        assert_eq!(after.loads, before.loads, "{uri} was loaded again");
        assert_eq!(after.l1_hits, before.l1_hits + 1, "{uri}");
    }
    // A search is not kept (its texts are nearly all different): the cache is not asked.
    let before = stats();
    assert_eq!(
        get(&app, &admin, &search).await["data"],
        get(&app, &admin, &search).await["data"]
    );
    let after = stats();
    assert_eq!(
        (after.l1_hits, after.l1_misses, after.loads),
        (before.l1_hits, before.l1_misses, before.loads)
    );
    let metrics = crate::observability::scrape(&app).await;
    let hits = crate::observability::series(
        &metrics,
        "ptoc_cache_hits_total{cache=\"directory\",layer=\"l1\"}",
    );
    assert!(hits.is_some_and(|h| h >= 2.0), "{metrics}");
    assert_eq!(ids(&get(&app, &admin, &list).await).len(), 2);
    assert!(ids(&get(&app, &admin, &search).await).is_empty());

    // An admin changes the member: profile and list show it.
    let (status, body) = crate::helpers::patch_current(
        &app,
        &profile,
        Some(&admin),
        Some(serde_json::json!({"role": "board_member"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get(&app, &admin, &profile).await["data"]["role"]["name"],
        "board_member"
    );
    let rows = get(&app, &admin, &list).await;
    let row = rows["data"]
        .as_array()
        .and_then(|r| r.iter().find(|m| m["user_id"] == vol_id.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["role"]["name"], "board_member", "{rows}");

    // The member edits their own profile: the admin's search finds them now.
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&vol),
        Some(serde_json::json!({"committee": "Fundraising"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&get(&app, &admin, &search).await), vec![vol_id.clone()]);
    assert_eq!(
        get(&app, &admin, &profile).await["data"]["committee"],
        "Fundraising"
    );

    // A sign-in moves "last active": the cached order follows.
    let _ = login(&app, "cache-admin@example.org", "correct horse battery").await;
    assert_eq!(ids(&get(&app, &admin, &by_activity).await)[0], admin_id);
    let _ = login(&app, "cache-vol@example.org", "correct horse battery").await;
    assert_eq!(ids(&get(&app, &admin, &by_activity).await)[0], vol_id);

    // A new member (joining by code) shows in the cached list; an invitation does not.
    let (status, body) = send(
        &app,
        Method::POST,
        &users,
        Some(&admin),
        Some(serde_json::json!({"email": "invited@example.org", "first_name": "Ivy", "last_name": "Invited"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(ids(&get(&app, &admin, &list).await).len(), 2);
    let (_, new) = signed_up(&app, "new@example.org").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&new),
        Some(serde_json::json!({"signup_code": "CACHE001"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(ids(&get(&app, &admin, &list).await).len(), 3);

    // Removal: gone from the list, the search and the profile; restore brings it back.
    let (status, body) = send(&app, Method::DELETE, &profile, Some(&admin), None).await;
    assert_eq!(status, 204, "{body}");
    assert!(!ids(&get(&app, &admin, &list).await).contains(&vol_id));
    assert!(ids(&get(&app, &admin, &search).await).is_empty());
    let (status, _) = send(&app, Method::GET, &profile, Some(&admin), None).await;
    assert_eq!(status, 404);
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("{profile}/restore"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(ids(&get(&app, &admin, &list).await).contains(&vol_id));
    assert_eq!(
        get(&app, &admin, &profile).await["data"]["committee"],
        "Fundraising"
    );

    // Bulk update: each member's new status shows.
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("{users}/bulk-update"),
        Some(&admin),
        Some(serde_json::json!({"user_ids": [vol_id], "status": "suspended"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get(&app, &admin, &profile).await["data"]["status"],
        "suspended"
    );
    let suspended = get(&app, &admin, &format!("{users}?status=suspended")).await;
    assert_eq!(ids(&suspended), vec![vol_id.clone()]);

    // A request carrying a consistency token reads the database, not the cache.
    let before = stats();
    let req = actix_web::test::TestRequest::get()
        .uri(&list)
        .insert_header(("authorization", format!("Bearer {admin}")))
        .insert_header(("x-consistency-token", "1"))
        .to_request();
    let res = actix_web::test::call_service(&app, req).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(stats().l1_hits, before.l1_hits);
}

/// With Redis, a write on one instance is seen by the others: at once by an instance
/// whose L1 does not hold the page (the org's generation in Redis moved before the writer
/// answered), and by one whose L1 does once the invalidation message arrives.
#[actix_web::test]
async fn a_write_on_one_instance_is_seen_by_the_others() {
    let Some(ctx) = TestContext::new(Backend::Postgres).await else {
        return;
    };
    if ctx.settings.redis_url.is_none() {
        eprintln!("TEST_REDIS_URL unset: skipped");
        return;
    }
    let a = ctx.service().await;
    let (_, admin) = signed_up(&a, "multi@example.org").await;
    let (status, body) = send(
        &a,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Multi PTO", "signup_code": "MULTI001"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    let users = format!("/api/v2/orgs/{org}/users");

    let b_state = ctx.another_instance().await;
    let b = actix_web::test::init_service(app(b_state.clone(), ctx.api.clone())).await;
    // B caches the one-member page (L1 and Redis).
    assert_eq!(ids(&get(&b, &admin, &users).await).len(), 1);
    let applied_before = b_state.directory_cache.stats().invalidations_applied;

    let (_, second) = signed_up(&a, "second@example.org").await;
    let (status, body) = send(
        &a,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&second),
        Some(serde_json::json!({"signup_code": "MULTI001"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // A third instance (empty L1) reads through Redis at once: the retired page is not
    // found there.
    let c_state = ctx.another_instance().await;
    let c = actix_web::test::init_service(app(c_state.clone(), ctx.api.clone())).await;
    assert_eq!(ids(&get(&c, &admin, &users).await).len(), 2);

    // B applies the invalidation when the message arrives (a bounded wait for that
    // event, not a timing assumption), then reloads.
    crate::helpers::await_invalidation(
        || b_state.directory_cache.stats().invalidations_applied,
        applied_before,
    )
    .await;
    assert_eq!(ids(&get(&b, &admin, &users).await).len(), 2);
}
