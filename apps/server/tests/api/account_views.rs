//! `GET /me` from the account views' cache: repeated reads load nothing, and every
//! change the view shows — the account's language and names, an org's name, a custom
//! role's name, a role given, leaving — is shown at once by the next read (on this
//! instance at once, on the others through the bus).

use actix_web::http::Method;
use pto_server::startup::app;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestContext, patch_current, send, signed_up};

backend_tests!(me_is_cached_and_every_change_it_shows_retires_it);

/// `GET /api/v2/me` as `token` (asserting 200).
async fn me<S, B>(app: &S, token: &str) -> Value
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (status, body) = send(app, Method::GET, "/api/v2/me", Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

/// The one membership of `view` in `org`, if any: (org name, role, rank, status).
fn membership(view: &Value, org: &str) -> Option<(String, String, String, String)> {
    view["memberships"].as_array()?.iter().find_map(|m| {
        (m["org_id"] == org).then(|| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (s("org_name"), s("role"), s("rank"), s("status"))
        })
    })
}

async fn me_is_cached_and_every_change_it_shows_retires_it(ctx: TestContext) {
    let app = ctx.service().await;
    let stats = || ctx.state.account_views.stats();
    let (_, admin) = signed_up(&app, "views-admin@example.org").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(json!({"name": "Views PTO", "signup_code": "VIEWS001"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    let (vol_id, vol) = signed_up(&app, "views-vol@example.org").await;
    // Read before joining: the view is cached without the org.
    assert_eq!(me(&app, &vol).await["memberships"], json!([]));
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(json!({"signup_code": "VIEWS001"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let first = me(&app, &vol).await;
    assert_eq!(
        membership(&first, &org),
        Some((
            "Views PTO".into(),
            "volunteer".into(),
            "volunteer".into(),
            "active".into()
        )),
        "{first}"
    );

    // Read again: answered by the cache, nothing loaded.
    let before = stats();
    assert_eq!(me(&app, &vol).await, first);
    let after = stats();
    assert_eq!(after.loads, before.loads, "the view was loaded again");
    assert!(after.l1_hits >= before.l1_hits + 2, "{before:?} {after:?}");

    // The account's language (and its version).
    let (status, body) = patch_current(
        &app,
        "/api/v2/me",
        Some(&vol),
        Some(json!({"locale": "es"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let view = me(&app, &vol).await;
    assert_eq!(view["locale"], "es", "{view}");
    assert!(
        view["version"].as_i64() > first["version"].as_i64(),
        "{view}"
    );

    // The account's names, edited through the org profile (`user.profile_update`).
    let (status, body) = patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&vol),
        Some(json!({"first_name": "Renata"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me(&app, &vol).await["user"]["first_name"], "Renata");

    // The org's name (its part of every member's view).
    let (status, body) = patch_current(
        &app,
        &format!("/api/v2/orgs/{org}"),
        Some(&admin),
        Some(json!({"name": "Views Elementary PTO"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        membership(&me(&app, &vol).await, &org).map(|m| m.0),
        Some("Views Elementary PTO".to_owned())
    );

    // A custom role given, then renamed.
    let (_, role) = crate::helpers::create(
        &app,
        &format!("/api/v2/orgs/{org}/roles"),
        Some(&admin),
        json!({"name": "Treasurer", "counts_as": "committee_lead"}),
    )
    .await;
    let role_id = role["data"]["id"].as_str().unwrap().to_owned();
    let (status, body) = patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/users/{vol_id}"),
        Some(&admin),
        Some(json!({"role": {"custom_role_id": role_id}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, name, rank, _) = membership(&me(&app, &vol).await, &org).expect("a member");
    assert_eq!(
        (name.as_str(), rank.as_str()),
        ("Treasurer", "committee_lead")
    );
    let (status, body) = patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/roles/{role_id}"),
        Some(&admin),
        Some(json!({"name": "Bursar"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        membership(&me(&app, &vol).await, &org).map(|m| m.1),
        Some("Bursar".to_owned())
    );

    // Leaving.
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&vol),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(me(&app, &vol).await["memberships"], json!([]));

    // The admin's view: the org, until it is deleted.
    assert!(membership(&me(&app, &admin).await, &org).is_some());
    let (status, org_now) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{org_now}");
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/orgs/{org}?version={}", org_now["data"]["version"]),
        Some(&admin),
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    assert_eq!(membership(&me(&app, &admin).await, &org), None);
}

/// With Redis, an org renamed through one instance shows in a member's view on another
/// whose L1 holds the view, once the invalidation message arrives.
#[actix_web::test]
async fn another_instance_shows_an_org_renamed_elsewhere() {
    let Some(ctx) = TestContext::new(Backend::Postgres).await else {
        return;
    };
    if ctx.settings.redis_url.is_none() {
        eprintln!("TEST_REDIS_URL unset: skipped");
        return;
    }
    let a = ctx.service().await;
    let (_, admin) = signed_up(&a, "views-multi@example.org").await;
    let (status, body) = send(
        &a,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(json!({"name": "Multi Views PTO", "signup_code": "VIEWS002"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();

    let b_state = ctx.another_instance().await;
    let b = actix_web::test::init_service(app(b_state.clone(), ctx.api.clone())).await;
    // B caches the view (L1 and, with Redis, L2).
    assert_eq!(
        membership(&me(&b, &admin).await, &org).map(|m| m.0),
        Some("Multi Views PTO".to_owned())
    );
    let applied_before = b_state.account_views.stats().invalidations_applied;

    let (status, body) = patch_current(
        &a,
        &format!("/api/v2/orgs/{org}"),
        Some(&admin),
        Some(json!({"name": "Renamed Views PTO"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // B applies the invalidation when the bus message arrives (a bounded wait for that
    // event, not a timing assumption), then shows the new name.
    crate::helpers::await_invalidation(
        || b_state.account_views.stats().invalidations_applied,
        applied_before,
    )
    .await;
    assert_eq!(
        membership(&me(&b, &admin).await, &org).map(|m| m.0),
        Some("Renamed Views PTO".to_owned())
    );
}
