use actix_web::http::Method;

use crate::backend_tests;
use crate::helpers::{
    BOOTSTRAP_TOKEN, TestContext, all_pages, create, platform_admin, send, signed_up,
};

backend_tests!(
    district_creates_answer_where_and_lists_page,
    bootstrap_is_one_time_and_guarded,
    district_templates_locks_schools_and_moves,
    orgs_move_with_authority_over_both_ends,
    districts_and_the_platform_can_require_a_second_factor,
    district_staff_are_listed_and_removed,
    placed_orgs_are_listed_and_schools_read_edited_and_deleted,
    many_key_templates_are_versioned_and_locks_bind_exceptions,
);

async fn bootstrap_is_one_time_and_guarded(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, first) = signed_up(&app, "root@example.org").await;
    let (_, second) = signed_up(&app, "late-root@example.org").await;
    let uri = "/api/v2/platform/bootstrap";
    let (status, _) = send(
        &app,
        Method::POST,
        uri,
        Some(&first),
        Some(serde_json::json!({"token": "wrong"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/districts",
        Some(&first),
        Some(serde_json::json!({"name": "D", "code": "D1"})),
    )
    .await;
    assert_eq!(status, 403, "not yet a platform admin");
    let (status, body) = send(
        &app,
        Method::POST,
        uri,
        Some(&first),
        Some(serde_json::json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(
        &app,
        Method::POST,
        uri,
        Some(&second),
        Some(serde_json::json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    assert_eq!(status, 409, "only the first");
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/districts",
        Some(&first),
        Some(serde_json::json!({"name": "Springfield Unified", "code": "springfield usd"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["code"], "SPRINGFIELD-USD");
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/districts",
        Some(&second),
        Some(serde_json::json!({"name": "X", "code": "X1"})),
    )
    .await;
    assert_eq!(status, 403);
    // Edit (versioned) and delete.
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let uri = format!("/api/v2/districts/{id}");
    let (status, edited) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&first),
        Some(serde_json::json!({"version": 1, "name": "Springfield USD", "tier": "professional"})),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(
        (
            edited["data"]["name"].as_str(),
            edited["data"]["tier"].as_str()
        ),
        (Some("Springfield USD"), Some("professional"))
    );
    let (status, _) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&first),
        Some(serde_json::json!({"version": 1, "name": "Stale"})),
    )
    .await;
    assert_eq!(status, 412);
    let (status, _) = send(&app, Method::DELETE, &uri, Some(&second), None).await;
    assert_eq!(status, 404, "a stranger cannot even see it");
    let (status, deleted) = send(&app, Method::DELETE, &uri, Some(&first), None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        send(&app, Method::GET, &uri, Some(&first), None).await.0,
        404
    );
}

async fn district_templates_locks_schools_and_moves(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, root) = signed_up(&app, "root2@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/platform/bootstrap",
        Some(&root),
        Some(serde_json::json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    let (_, d) = send(
        &app,
        Method::POST,
        "/api/v2/districts",
        Some(&root),
        Some(serde_json::json!({"name": "Shelbyville", "code": "SHELBY"})),
    )
    .await;
    let district = d["data"]["id"].as_str().unwrap().to_owned();
    let (status, s) = send(&app, Method::POST, &format!("/api/v2/districts/{district}/schools"), Some(&root), Some(serde_json::json!({"name": "Sunset Elementary", "code": "SUNSET", "grade_levels": ["K", "1", "2"]}))).await;
    assert_eq!(status, 201, "{s}");
    let school = s["data"]["id"].as_str().unwrap().to_owned();
    let (staff_id, staff) = signed_up(&app, "staff@example.org").await;
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/districts/{district}/staff/{staff_id}"),
        Some(&root),
        Some(serde_json::json!({"role": "district_admin", "version": 0})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, mine) = send(&app, Method::GET, "/api/v2/districts", Some(&staff), None).await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    // District staff create an org under their school; they become its first admin.
    let (status, o) = send(&app, Method::POST, &format!("/api/v2/districts/{district}/orgs"), Some(&staff), Some(serde_json::json!({"name": "Sunset PTO", "school_id": school, "signup_code": "SUNSETPTO"}))).await;
    assert_eq!(status, 201, "{o}");
    let org = o["data"]["id"].as_str().unwrap().to_owned();
    let (_, vol) = signed_up(&app, "vol-d@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(serde_json::json!({"signup_code": "SUNSETPTO"})),
    )
    .await;
    let check = |key: &'static str| format!("/api/v2/orgs/{org}/permissions/check?key={key}");

    // The org opens events.create to volunteers…
    let (_, matrix) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&staff),
        None,
    )
    .await;
    let version = matrix["data"]["version"].as_u64().unwrap();
    let settings = format!("/api/v2/orgs/{org}/permissions/settings");
    let (status, _) = send(&app, Method::PUT, &settings, Some(&staff), Some(serde_json::json!({"version": version, "changes": [{"key": "events.create", "min_role": "volunteer"}]}))).await;
    assert_eq!(status, 200);
    assert_eq!(
        send(&app, Method::GET, &check("events.create"), Some(&vol), None)
            .await
            .1["data"]["allowed"],
        true
    );
    // …then the district locks it at board_member: the lock beats the org override.
    let (status, t) = crate::helpers::write_current(
        &app,
        Method::PUT,
        &format!("/api/v2/districts/{district}/permission-templates/events.create"),
        Some(&staff),
        Some(serde_json::json!({"min_role": "board_member", "enabled": true, "locked": true})),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["data"]["affected_orgs"][0], org.as_str());
    let (_, c) = send(&app, Method::GET, &check("events.create"), Some(&vol), None).await;
    assert_eq!(c["data"]["allowed"], false);
    assert_eq!(c["data"]["effective"]["locked_by"]["kind"], "district");
    let (_, matrix) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&staff),
        None,
    )
    .await;
    let version = matrix["data"]["version"].as_u64().unwrap();
    let (status, body) = send(&app, Method::PUT, &settings, Some(&staff), Some(serde_json::json!({"version": version, "changes": [{"key": "events.create", "min_role": "volunteer"}]}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("PERMISSION_LOCKED")),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["locked_by"]["kind"], "district");
    // A school setting applies between district and org.
    let (status, t) = crate::helpers::write_current(
        &app,
        Method::PUT,
        &format!("/api/v2/schools/{school}/permission-templates/budget.view"),
        Some(&staff),
        Some(serde_json::json!({"min_role": "committee_lead", "enabled": true})),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["data"]["scope"]["kind"], "school");
    // The school cannot override what the district locked.
    let (status, _) = crate::helpers::write_current(
        &app,
        Method::PUT,
        &format!("/api/v2/schools/{school}/permission-templates/events.create"),
        Some(&staff),
        Some(serde_json::json!({"min_role": "volunteer", "enabled": true})),
    )
    .await;
    assert_eq!(status, 409);
    let (_, c) = send(&app, Method::GET, &check("budget.view"), Some(&vol), None).await;
    assert_eq!(
        (
            c["data"]["allowed"].as_bool(),
            c["data"]["effective"]["source"]["kind"].as_str()
        ),
        (Some(false), Some("school"))
    );
    // A viewer cannot change templates.
    let (viewer_id, viewer) = signed_up(&app, "viewer@example.org").await;
    send(
        &app,
        Method::PUT,
        &format!("/api/v2/districts/{district}/staff/{viewer_id}"),
        Some(&root),
        Some(serde_json::json!({"role": "district_viewer", "version": 0})),
    )
    .await;
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/districts/{district}/permission-templates/events.create"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 403);
    // Moving the school out of the district re-resolves the org at once: the lock is gone.
    let (status, moved) = send(
        &app,
        Method::POST,
        &format!("/api/v2/schools/{school}/move"),
        Some(&root),
        Some(serde_json::json!({"district_id": null})),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["data"]["affected_orgs"][0], org.as_str());
    assert_eq!(
        send(&app, Method::GET, &check("events.create"), Some(&vol), None)
            .await
            .1["data"]["allowed"],
        true
    );
}

async fn orgs_move_with_authority_over_both_ends(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, root) = signed_up(&app, "root3@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/platform/bootstrap",
        Some(&root),
        Some(serde_json::json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    let mut schools = Vec::new();
    for code in ["NORTH", "SOUTH"] {
        let (_, d) = send(
            &app,
            Method::POST,
            "/api/v2/districts",
            Some(&root),
            Some(serde_json::json!({"name": code, "code": code})),
        )
        .await;
        let district = d["data"]["id"].as_str().unwrap().to_owned();
        let (status, s) = send(
            &app,
            Method::POST,
            &format!("/api/v2/districts/{district}/schools"),
            Some(&root),
            Some(serde_json::json!({"name": format!("{code} Elementary"), "code": "ELEM"})),
        )
        .await;
        assert_eq!(status, 201, "{s}");
        schools.push((district, s["data"]["id"].as_str().unwrap().to_owned()));
    }
    let [(north, north_school), (south, south_school)] = [schools[0].clone(), schools[1].clone()];
    // North locks events.create at board_member; South leaves it alone.
    let (status, _) = crate::helpers::write_current(
        &app,
        Method::PUT,
        &format!("/api/v2/districts/{north}/permission-templates/events.create"),
        Some(&root),
        Some(serde_json::json!({"min_role": "board_member", "enabled": true, "locked": true})),
    )
    .await;
    assert_eq!(status, 200);
    let (staff_id, staff) = signed_up(&app, "north-admin@example.org").await;
    send(
        &app,
        Method::PUT,
        &format!("/api/v2/districts/{north}/staff/{staff_id}"),
        Some(&root),
        Some(serde_json::json!({"role": "district_admin", "version": 0})),
    )
    .await;

    // A standalone PTO whose volunteers may create events.
    let (org, pto_admin, _, vol) = crate::permissions::org_with_volunteer(&app, "mv").await;
    let (_, matrix) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&pto_admin),
        None,
    )
    .await;
    let version = matrix["data"]["version"].as_u64().unwrap();
    send(&app, Method::PUT, &format!("/api/v2/orgs/{org}/permissions/settings"), Some(&pto_admin), Some(serde_json::json!({"version": version, "changes": [{"key": "events.create", "min_role": "volunteer"}]}))).await;
    let can_create = || async {
        let (_, c) = send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{org}/permissions/check?key=events.create"),
            Some(&vol),
            None,
        )
        .await;
        c["data"]["allowed"].as_bool().unwrap()
    };
    assert!(can_create().await);

    let mv = format!("/api/v2/orgs/{org}/move");
    let to = |school: &str| Some(serde_json::json!({"school_id": school}));
    // The district's admin cannot annex a standalone PTO (it is not even visible to them)…
    let (status, _) = send(&app, Method::POST, &mv, Some(&staff), to(&north_school)).await;
    assert_eq!(status, 404);
    // …a plain member does not decide, and the PTO's admin alone cannot join a district.
    let (status, _) = send(&app, Method::POST, &mv, Some(&vol), to(&north_school)).await;
    assert_eq!(status, 403);
    let (status, _) = send(&app, Method::POST, &mv, Some(&pto_admin), to(&north_school)).await;
    assert_eq!(status, 403);
    // An outsider learns nothing; an unknown school is 404.
    let (_, stranger) = signed_up(&app, "stranger-mv@example.org").await;
    let (status, _) = send(&app, Method::POST, &mv, Some(&stranger), to(&north_school)).await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &app,
        Method::POST,
        &mv,
        Some(&root),
        to(&uuid::Uuid::new_v4().to_string()),
    )
    .await;
    assert_eq!(status, 404);
    assert!(can_create().await, "refused moves change nothing");

    // The platform admin places it in North: North's lock applies at once.
    let (status, moved) = send(&app, Method::POST, &mv, Some(&root), to(&north_school)).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["data"]["after"]["district_id"], north.as_str());
    assert_eq!(moved["data"]["permissions_changed"], true);
    assert!(!can_create().await, "the district lock applies");
    let version = moved["data"]["after"]["version"].as_i64().unwrap();

    // North's admin moves it on to South only once they also administer South.
    let (status, _) = send(&app, Method::POST, &mv, Some(&staff), to(&south_school)).await;
    assert_eq!(status, 403);
    send(
        &app,
        Method::PUT,
        &format!("/api/v2/districts/{south}/staff/{staff_id}"),
        Some(&root),
        Some(serde_json::json!({"role": "district_admin", "version": 0})),
    )
    .await;
    let (status, body) = send(
        &app,
        Method::POST,
        &mv,
        Some(&staff),
        Some(serde_json::json!({"school_id": south_school, "version": version - 1})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (412, Some("VERSION_MISMATCH")),
        "{body}"
    );
    let (status, moved) = send(
        &app,
        Method::POST,
        &mv,
        Some(&staff),
        Some(serde_json::json!({"school_id": south_school, "version": version})),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["data"]["before"]["district_id"], north.as_str());
    assert_eq!(moved["data"]["after"]["school_id"], south_school.as_str());
    assert!(can_create().await, "South has no lock");

    // Leaving for standalone needs the PTO's own admin too.
    let (status, _) = send(
        &app,
        Method::POST,
        &mv,
        Some(&staff),
        Some(serde_json::json!({"school_id": null})),
    )
    .await;
    assert_eq!(status, 403);

    // Each move is in the org's audit log.
    let (status, log) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?action=org.move"),
        Some(&pto_admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{log}");
    let events = log["data"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{log}");
    assert!(events.iter().any(
        |e| e["new_value"]["placement"]["district_id"] == south.as_str()
            && e["old_value"]["placement"]["district_id"] == north.as_str()
    ));
}

/// Signs in with the password and the current TOTP code of `secret` (the next step's
/// code: the current one was spent confirming the enrolment); returns the login body.
async fn sign_in_with_code<S, B>(app: &S, email: &str, secret: &str) -> serde_json::Value
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (status, first) = send(
        app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(serde_json::json!({"email": email, "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let challenge = first["data"]["challenge"]
        .as_str()
        .expect("a challenge")
        .to_owned();
    let code = crate::accounts::code(secret, crate::accounts::now() + 30);
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/auth/login/2fa",
        None,
        Some(serde_json::json!({"challenge": challenge, "code": code})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn reason(body: &serde_json::Value) -> Option<&str> {
    body["error"]["details"]["reason"].as_str()
}

async fn districts_and_the_platform_can_require_a_second_factor(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, root) = signed_up(&app, "root3@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/platform/bootstrap",
        Some(&root),
        Some(serde_json::json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    let (status, d) = send(
        &app,
        Method::POST,
        "/api/v2/districts",
        Some(&root),
        Some(serde_json::json!({"name": "Ogdenville", "code": "OGDEN"})),
    )
    .await;
    assert_eq!(status, 201, "{d}");
    let district = d["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(d["data"]["require_two_factor"], false, "{d}");
    let (staff_id, staff) = signed_up(&app, "ogden.staff@example.org").await;
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/districts/{district}/staff/{staff_id}"),
        Some(&root),
        Some(serde_json::json!({"role": "district_admin", "version": 0})),
    )
    .await;
    assert_eq!(status, 200);
    let uri = format!("/api/v2/districts/{district}");
    let require = serde_json::json!({"require_two_factor": true});

    // Turning it on needs a session that meets it.
    let (status, body) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&staff),
        Some(require.clone()),
    )
    .await;
    assert_eq!(
        (status, reason(&body)),
        (403, Some("second_factor_required")),
        "{body}"
    );
    let (secret, _) = crate::accounts::enrol(&app, &staff).await;
    let strong = sign_in_with_code(&app, "ogden.staff@example.org", &secret).await;
    let strong_token = strong["data"]["token"].as_str().unwrap().to_owned();
    let (status, body) =
        crate::helpers::patch_current(&app, &uri, Some(&strong_token), Some(require)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["require_two_factor"], true, "{body}");

    // On: the staff member's password-only session may not act as staff, on the
    // service's routes and on the template routes alike…
    let (status, body) = send(&app, Method::GET, &uri, Some(&staff), None).await;
    assert_eq!(
        (status, reason(&body)),
        (403, Some("second_factor_required")),
        "{body}"
    );
    let (status, body) = send(
        &app,
        Method::GET,
        &format!("{uri}/staff"),
        Some(&staff),
        None,
    )
    .await;
    assert!(status == 403 || status == 404, "{status} {body}");
    let templates = format!("{uri}/permission-templates/events.create");
    let (status, body) = send(
        &app,
        Method::PUT,
        &templates,
        Some(&staff),
        Some(serde_json::json!({"min_role": "volunteer", "enabled": true})),
    )
    .await;
    assert_eq!(
        (status, reason(&body)),
        (403, Some("second_factor_required")),
        "{body}"
    );
    // …while the session opened with the code may, and so does its refresh.
    let (status, body) = send(&app, Method::GET, &uri, Some(&strong_token), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, refreshed) = send(
        &app,
        Method::POST,
        "/api/v2/auth/refresh",
        None,
        Some(serde_json::json!({"refresh_token": strong["data"]["refresh_token"]})),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, body) = send(
        &app,
        Method::GET,
        &uri,
        Some(refreshed["data"]["token"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The platform admin is not bound by a district's rule (only by the platform's).
    let (status, _) = send(&app, Method::GET, &uri, Some(&root), None).await;
    assert_eq!(status, 200);

    // A platform that requires it of its admins.
    let Some(strict) =
        TestContext::with_env(ctx.backend, &[("PLATFORM_ADMIN_REQUIRE_2FA", "true")]).await
    else {
        return;
    };
    let app = strict.service().await;
    let (_, admin) = signed_up(&app, "strict.root@example.org").await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/platform/bootstrap",
        Some(&admin),
        Some(serde_json::json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    assert_eq!(status, 200);
    let new_district = serde_json::json!({"name": "Capital City", "code": "CAPITAL"});
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/districts",
        Some(&admin),
        Some(new_district.clone()),
    )
    .await;
    assert_eq!(
        (status, reason(&body)),
        (403, Some("second_factor_required")),
        "{body}"
    );
    let (secret, _) = crate::accounts::enrol(&app, &admin).await;
    let strong = sign_in_with_code(&app, "strict.root@example.org", &secret).await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/districts",
        Some(strong["data"]["token"].as_str().unwrap()),
        Some(new_district),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// A platform admin (bootstrapped), one district, and its id.
async fn platform_and_district<S, B>(app: &S, root_email: &str, code: &str) -> (String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (_, root) = signed_up(app, root_email).await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/platform/bootstrap",
        Some(&root),
        Some(serde_json::json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, d) = send(
        app,
        Method::POST,
        "/api/v2/districts",
        Some(&root),
        Some(serde_json::json!({"name": "Ogdenville", "code": code})),
    )
    .await;
    assert_eq!(status, 201, "{d}");
    (root, d["data"]["id"].as_str().unwrap().to_owned())
}

async fn district_staff_are_listed_and_removed(ctx: TestContext) {
    let app = ctx.service().await;
    let (root, district) = platform_and_district(&app, "root-staff@example.org", "OGDEN").await;
    let staff_uri = |user: &str| format!("/api/v2/districts/{district}/staff/{user}");
    let (admin_id, admin) = signed_up(&app, "dadmin@example.org").await;
    let (viewer_id, viewer) = signed_up(&app, "dviewer@example.org").await;
    let (_, outsider) = signed_up(&app, "outsider@example.org").await;
    for (id, role) in [
        (&admin_id, "district_admin"),
        (&viewer_id, "district_viewer"),
    ] {
        let (status, body) = send(
            &app,
            Method::PUT,
            &staff_uri(id),
            Some(&root),
            Some(serde_json::json!({"role": role, "version": 0})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let list = format!("/api/v2/districts/{district}/staff");
    // Every staff member sees the list, with roles; outsiders do not see the district.
    for token in [&admin, &viewer, &root] {
        let (status, body) = send(&app, Method::GET, &list, Some(token), None).await;
        assert_eq!(status, 200, "{body}");
        let rows = body["data"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{body}");
        assert!(
            rows.iter()
                .any(|r| r["user_id"] == admin_id.as_str() && r["role"] == "district_admin")
        );
        assert!(
            rows.iter()
                .any(|r| r["user_id"] == viewer_id.as_str() && r["role"] == "district_viewer")
        );
        assert_eq!(body["meta"]["pagination"]["total"], 2, "{body}");
    }
    assert_eq!(
        send(&app, Method::GET, &list, Some(&outsider), None)
            .await
            .0,
        404
    );
    let (status, first) = send(
        &app,
        Method::GET,
        &format!("{list}?limit=1"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let cursor = first["meta"]["pagination"]["next_cursor"]
        .as_str()
        .expect("a second page");
    let (_, second) = send(
        &app,
        Method::GET,
        &format!("{list}?limit=1&cursor={cursor}"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(second["data"].as_array().unwrap().len(), 1, "{second}");
    assert_ne!(first["data"][0]["user_id"], second["data"][0]["user_id"]);
    assert!(
        second["meta"]["pagination"]["next_cursor"].is_null(),
        "{second}"
    );
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("{list}?sort=role"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 422, "unknown parameters are refused");
    // A viewer may not remove; an outsider does not see the district.
    let (status, _) = send(
        &app,
        Method::DELETE,
        &staff_uri(&admin_id),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        &app,
        Method::DELETE,
        &staff_uri(&viewer_id),
        Some(&outsider),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // The admin removes the viewer: 204, then 404 (no longer staff).
    let (status, body) = send(
        &app,
        Method::DELETE,
        &staff_uri(&viewer_id),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let (status, _) = send(
        &app,
        Method::DELETE,
        &staff_uri(&viewer_id),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, body) = send(&app, Method::GET, &list, Some(&admin), None).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    // The removed viewer no longer sees the district.
    assert_eq!(
        send(&app, Method::GET, &list, Some(&viewer), None).await.0,
        404
    );
}

async fn placed_orgs_are_listed_and_schools_read_edited_and_deleted(ctx: TestContext) {
    let app = ctx.service().await;
    let (root, district) = platform_and_district(&app, "root-orgs@example.org", "NORTHHAV").await;
    let (viewer_id, viewer) = signed_up(&app, "viewer-orgs@example.org").await;
    let (_, outsider) = signed_up(&app, "outsider-orgs@example.org").await;
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/districts/{district}/staff/{viewer_id}"),
        Some(&root),
        Some(serde_json::json!({"role": "district_viewer", "version": 0})),
    )
    .await;
    assert_eq!(status, 200);
    let mut schools = Vec::new();
    for code in ["NORTH", "EMPTY"] {
        let (status, s) = send(
            &app,
            Method::POST,
            &format!("/api/v2/districts/{district}/schools"),
            Some(&root),
            Some(serde_json::json!({"name": format!("{code} School"), "code": code, "grade_levels": ["K"]})),
        )
        .await;
        assert_eq!(status, 201, "{s}");
        schools.push(s["data"]["id"].as_str().unwrap().to_owned());
    }
    let (school, empty) = (&schools[0], &schools[1]);
    let mut orgs = Vec::new();
    for n in 1..=3 {
        let (status, o) = send(
            &app,
            Method::POST,
            &format!("/api/v2/districts/{district}/orgs"),
            Some(&root),
            Some(serde_json::json!({"name": format!("North PTO {n}"), "school_id": school, "signup_code": format!("NORTHPT{n}")})),
        )
        .await;
        assert_eq!(status, 201, "{o}");
        orgs.push(o["data"]["id"].as_str().unwrap().to_owned());
    }
    orgs.sort();

    // Both lists hold the three orgs, two to a page.
    for base in [
        format!("/api/v2/districts/{district}/orgs"),
        format!("/api/v2/schools/{school}/orgs"),
    ] {
        let (status, first) = send(
            &app,
            Method::GET,
            &format!("{base}?limit=2"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(status, 200, "{first}");
        let page = &first["meta"]["pagination"];
        assert_eq!(
            (page["limit"].as_u64(), page["total"].as_u64()),
            (Some(2), Some(3)),
            "{first}"
        );
        let cursor = page["next_cursor"]
            .as_str()
            .expect("a next page")
            .to_owned();
        let (status, second) = send(
            &app,
            Method::GET,
            &format!("{base}?limit=2&cursor={cursor}"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(status, 200, "{second}");
        assert!(
            second["meta"]["pagination"]["next_cursor"].is_null(),
            "{second}"
        );
        let ids: Vec<String> = first["data"]
            .as_array()
            .unwrap()
            .iter()
            .chain(second["data"].as_array().unwrap())
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, orgs);
        assert_eq!(first["data"][0]["school_id"], school.as_str());
        assert_eq!(first["data"][0]["district_id"], district.as_str());
        assert!(
            first["data"][0]["name"]
                .as_str()
                .unwrap()
                .starts_with("North PTO")
        );
        assert_eq!(
            send(&app, Method::GET, &base, Some(&outsider), None)
                .await
                .0,
            404
        );
        let (status, _) = send(
            &app,
            Method::GET,
            &format!("{base}?limit=0"),
            Some(&root),
            None,
        )
        .await;
        assert_eq!(status, 422);
    }

    // One school: read by staff, hidden from outsiders.
    let uri = format!("/api/v2/schools/{school}");
    let (status, s) = send(&app, Method::GET, &uri, Some(&viewer), None).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(
        (s["data"]["code"].as_str(), s["data"]["version"].as_i64()),
        (Some("NORTH"), Some(1))
    );
    assert_eq!(
        send(&app, Method::GET, &uri, Some(&outsider), None).await.0,
        404
    );
    assert_eq!(
        send(
            &app,
            Method::PATCH,
            &uri,
            Some(&outsider),
            Some(serde_json::json!({"version": 1, "name": "X"}))
        )
        .await
        .0,
        404
    );

    // Edit: the version is required, a stale one refused, viewers refused.
    let (status, body) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&root),
        Some(serde_json::json!({"name": "North Elementary"})),
    )
    .await;
    assert_eq!(status, 428, "{body}");
    assert_eq!(body["error"]["code"], "PRECONDITION_REQUIRED");
    let (status, _) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&viewer),
        Some(serde_json::json!({"version": 1, "name": "North Elementary"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = send(&app, Method::PATCH, &uri, Some(&root), Some(serde_json::json!({"version": 1, "name": "North Elementary", "code": "north-el", "grade_levels": ["K", "1"]}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["data"]["name"].as_str(),
            body["data"]["code"].as_str(),
            body["data"]["version"].as_i64()
        ),
        (Some("North Elementary"), Some("NORTH-EL"), Some(2))
    );
    assert_eq!(body["data"]["grade_levels"], serde_json::json!(["K", "1"]));
    let (status, body) = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&root),
        Some(serde_json::json!({"version": 1, "name": "Stale"})),
    )
    .await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["error"]["code"], "VERSION_MISMATCH");

    // Delete: refused while orgs are placed there; an empty school goes (204).
    let (status, _) = send(&app, Method::DELETE, &uri, Some(&root), None).await;
    assert_eq!(status, 428);
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{uri}?version=2"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"]["org_count"], 3, "{body}");
    let empty_uri = format!("/api/v2/schools/{empty}");
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("{empty_uri}?version=1"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{empty_uri}?version=1"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    assert_eq!(
        send(&app, Method::GET, &empty_uri, Some(&root), None)
            .await
            .0,
        404
    );
    let (_, list) = send(
        &app,
        Method::GET,
        &format!("/api/v2/districts/{district}/schools"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}

/// `PUT …/permission-templates` with a version header instead of a body version.
async fn put_if_match<S, B>(
    app: &S,
    uri: &str,
    token: &str,
    version: u64,
    body: serde_json::Value,
) -> (u16, serde_json::Value)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let req = actix_web::test::TestRequest::put()
        .uri(uri)
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("if-match", format!("\"{version}\"")))
        .set_json(body)
        .to_request();
    let res = actix_web::test::call_service(app, req).await;
    let status = res.status().as_u16();
    (status, crate::helpers::json_body(res).await)
}

async fn many_key_templates_are_versioned_and_locks_bind_exceptions(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, root) = signed_up(&app, "root-mk@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/platform/bootstrap",
        Some(&root),
        Some(serde_json::json!({"token": BOOTSTRAP_TOKEN})),
    )
    .await;
    let (_, d) = send(
        &app,
        Method::POST,
        "/api/v2/districts",
        Some(&root),
        Some(serde_json::json!({"name": "Capital City", "code": "CAPCITY"})),
    )
    .await;
    let district = d["data"]["id"].as_str().unwrap().to_owned();
    let (_, s) = send(&app, Method::POST, &format!("/api/v2/districts/{district}/schools"), Some(&root), Some(serde_json::json!({"name": "Capital Elementary", "code": "CAPEL", "grade_levels": ["K"]}))).await;
    let school = s["data"]["id"].as_str().unwrap().to_owned();
    let (status, o) = send(&app, Method::POST, &format!("/api/v2/districts/{district}/orgs"), Some(&root), Some(serde_json::json!({"name": "Capital PTO", "school_id": school, "signup_code": "CAPPTO1"}))).await;
    assert_eq!(status, 201, "{o}");
    let org = o["data"]["id"].as_str().unwrap().to_owned();
    let (vol_id, vol) = signed_up(&app, "vol-mk@example.org").await;
    send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(serde_json::json!({"signup_code": "CAPPTO1"})),
    )
    .await;
    let allowed = async |key: &str| {
        send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{org}/permissions/check?key={key}"),
            Some(&vol),
            None,
        )
        .await
        .1["data"]["allowed"]
            .as_bool()
            .unwrap()
    };
    let grants = format!("/api/v2/orgs/{org}/permissions/grants");
    let (status, body) = send(&app, Method::POST, &grants, Some(&root), Some(serde_json::json!({"user_id": vol_id, "key": "budget.approve", "reason": "treasurer away"}))).await;
    assert_eq!(status, 201, "{body}");
    assert!(allowed("budget.approve").await, "the grant counts");

    // The district's templates carry a version; a write without one is 428.
    let templates = format!("/api/v2/districts/{district}/permission-templates");
    let (status, t) = send(&app, Method::GET, &templates, Some(&root), None).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["data"]["version"], 0);
    assert_eq!(t["data"]["templates"].as_array().unwrap().len(), 0);
    let lock_both = serde_json::json!([
        {"key": "budget.approve", "min_role": "board_member", "enabled": true, "locked": true},
        {"key": "events.delete", "min_role": "admin", "enabled": true, "locked": true},
        {"key": "events.view", "min_role": "volunteer", "enabled": true},
    ]);
    let (status, body) = send(
        &app,
        Method::PUT,
        &templates,
        Some(&root),
        Some(serde_json::json!({"set": lock_both})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (428, Some("PRECONDITION_REQUIRED")),
        "{body}"
    );
    // A key named twice, or an empty write: 422, nothing written.
    let (status, body) = send(&app, Method::PUT, &templates, Some(&root), Some(serde_json::json!({"version": 0, "set": [{"key": "events.view", "min_role": "admin", "enabled": true}], "remove": ["events.view"]}))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        (
            body["error"]["details"]["fields"][0]["field"].as_str(),
            body["error"]["details"]["fields"][0]["code"].as_str()
        ),
        (Some("remove[0]"), Some("duplicate")),
        "{body}"
    );
    let (status, body) = send(
        &app,
        Method::PUT,
        &templates,
        Some(&root),
        Some(serde_json::json!({"version": 0})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, w) = send(
        &app,
        Method::PUT,
        &templates,
        Some(&root),
        Some(serde_json::json!({"version": 0, "set": lock_both})),
    )
    .await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["data"]["version"], 1);
    assert_eq!(w["data"]["affected_orgs"][0], org.as_str());
    let (_, t) = send(&app, Method::GET, &templates, Some(&root), None).await;
    assert_eq!(t["data"]["version"], 1);
    assert_eq!(t["data"]["templates"].as_array().unwrap().len(), 3);
    // Stale: 412, nothing written.
    let (status, body) = send(
        &app,
        Method::PUT,
        &templates,
        Some(&root),
        Some(serde_json::json!({"version": 0, "remove": ["events.view"]})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (412, Some("VERSION_MISMATCH")),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["current_version"], 1);

    // The lock binds the grant: stored, listed, inert — and explain says why.
    assert!(
        !allowed("budget.approve").await,
        "a grant under a lock is inert"
    );
    let (_, listed) = send(&app, Method::GET, &grants, Some(&root), None).await;
    assert!(listed.to_string().contains("budget.approve"), "{listed}");
    let (_, explained) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions/explain?key=budget.approve&user_id={vol_id}"),
        Some(&root),
        None,
    )
    .await;
    let ignored: Vec<&serde_json::Value> = explained["data"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["step"] == "exception_ignored")
        .collect();
    assert_eq!(ignored.len(), 1, "{explained}");
    assert_eq!(ignored[0]["exception"], "grant");
    assert_eq!(
        ignored[0]["note"],
        format!("grant ignored: locked by district {district}")
    );
    // A new grant of a locked key is refused, naming the key and who locked it.
    let (status, body) = send(
        &app,
        Method::POST,
        &grants,
        Some(&root),
        Some(serde_json::json!({"user_id": vol_id, "key": "events.delete"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("PERMISSION_LOCKED")),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["locked_keys"][0]["key"],
        "events.delete"
    );
    assert_eq!(
        body["error"]["details"]["locked_keys"][0]["locked_by"]["id"],
        district.as_str()
    );
    // An org settings write naming both locked keys reports both.
    let (_, matrix) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&root),
        None,
    )
    .await;
    let version = matrix["data"]["version"].as_u64().unwrap();
    let (status, body) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/orgs/{org}/permissions/settings"),
        Some(&root),
        Some(serde_json::json!({"version": version, "changes": [
            {"key": "events.create", "min_role": "volunteer"},
            {"key": "events.delete", "enabled": false},
            {"key": "budget.approve", "min_role": "volunteer"},
        ]})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let named: Vec<&str> = body["error"]["details"]["locked_keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["key"].as_str())
        .collect();
    assert_eq!(named, ["events.delete", "budget.approve"]);

    // A custom role naming locked keys: refused on create and on edit, every key named.
    let roles = format!("/api/v2/orgs/{org}/roles");
    let (status, body) = send(
        &app,
        Method::POST,
        &roles,
        Some(&root),
        Some(
            serde_json::json!({"name": "Treasurer helper", "counts_as": "volunteer",
            "extra_keys": ["budget.approve", "events.delete", "documents.view"]}),
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("PERMISSION_LOCKED")),
        "{body}"
    );
    let mut named: Vec<&str> = body["error"]["details"]["locked_keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["key"].as_str())
        .collect();
    named.sort_unstable();
    assert_eq!(named, ["budget.approve", "events.delete"], "{body}");
    let (status, role) = send(
        &app,
        Method::POST,
        &roles,
        Some(&root),
        Some(
            serde_json::json!({"name": "Doc helper", "counts_as": "volunteer",
            "extra_keys": ["documents.view"]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{role}");
    let (status, body) = send(
        &app,
        Method::PATCH,
        &format!("{roles}/{}", role["data"]["id"].as_str().unwrap()),
        Some(&root),
        Some(serde_json::json!({"version": role["data"]["version"],
            "extra_keys": ["documents.view", "budget.approve"]})),
    )
    .await;
    assert_eq!(
        (
            status,
            body["error"]["details"]["locked_keys"][0]["key"].as_str()
        ),
        (409, Some("budget.approve")),
        "{body}"
    );

    // A school naming keys its district locked: every one named, nothing written.
    let school_templates = format!("/api/v2/schools/{school}/permission-templates");
    let (_, st) = send(&app, Method::GET, &school_templates, Some(&root), None).await;
    assert_eq!(st["data"]["version"], 0, "{st}");
    let (status, body) = send(
        &app,
        Method::PUT,
        &school_templates,
        Some(&root),
        Some(serde_json::json!({"version": 0, "set": [
            {"key": "documents.view", "min_role": "committee_lead", "enabled": true},
            {"key": "budget.approve", "min_role": "volunteer", "enabled": true},
            {"key": "events.delete", "min_role": "volunteer", "enabled": true},
        ]})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"]["details"]["locked_keys"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{body}"
    );
    // The version may come as If-Match.
    let (status, body) = put_if_match(
        &app,
        &school_templates,
        &root,
        0,
        serde_json::json!({"set": [
            {"key": "documents.view", "min_role": "committee_lead", "enabled": true},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["scope"]["kind"], "school");
    assert!(
        !allowed("documents.view").await,
        "the school's setting reaches the org"
    );

    // Lifting the lock makes the stored grant count again, at once.
    let (status, body) = send(
        &app,
        Method::PUT,
        &templates,
        Some(&root),
        Some(serde_json::json!({"version": 1, "remove": ["budget.approve"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(allowed("budget.approve").await, "the grant counts again");
}

/// Creates answer 201 with a `Location` that reads the created resource; the
/// district lists page like every list; clearing a template key is 204; deleting a
/// district is 200 with what it detached.
async fn district_creates_answer_where_and_lists_page(ctx: TestContext) {
    use serde_json::json;
    let app = ctx.service().await;
    let root = platform_admin(&app, "root-shape@example.org").await;
    let mut districts = Vec::new();
    for code in ["SHAPE-A", "SHAPE-B"] {
        let (at, body) = create(
            &app,
            "/api/v2/districts",
            Some(&root),
            json!({"name": format!("District {code}"), "code": code}),
        )
        .await;
        let id = body["data"]["id"].as_str().unwrap().to_owned();
        assert_eq!(at, format!("/api/v2/districts/{id}"));
        let (status, read) = send(&app, Method::GET, &at, Some(&root), None).await;
        assert_eq!(
            (status, read["data"]["id"].as_str()),
            (200, Some(id.as_str()))
        );
        districts.push(id);
    }
    let district = &districts[0];
    let mut schools = Vec::new();
    for code in ["NORTH", "SOUTH"] {
        let (at, body) = create(
            &app,
            &format!("/api/v2/districts/{district}/schools"),
            Some(&root),
            json!({"name": format!("{code} Elementary"), "code": code, "grade_levels": ["K"]}),
        )
        .await;
        let id = body["data"]["id"].as_str().unwrap().to_owned();
        assert_eq!(at, format!("/api/v2/schools/{id}"));
        let (status, _) = send(&app, Method::GET, &at, Some(&root), None).await;
        assert_eq!(status, 200);
        schools.push(id);
    }
    let (at, body) = create(
        &app,
        &format!("/api/v2/districts/{district}/orgs"),
        Some(&root),
        json!({"name": "North PTO", "school_id": schools[0]}),
    )
    .await;
    let org = body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(at, format!("/api/v2/orgs/{org}"));
    let (status, read) = send(&app, Method::GET, &at, Some(&root), None).await;
    assert_eq!(
        (status, read["data"]["id"].as_str()),
        (200, Some(org.as_str()))
    );

    // Lists: a platform admin pages through every district (no total), staff through
    // theirs (with it); schools with their total.
    let all = all_pages(&app, "/api/v2/districts", Some(&root), None).await;
    let ids: Vec<&str> = all.iter().filter_map(|d| d["id"].as_str()).collect();
    assert_eq!(
        ids,
        districts.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let (staff_id, staff) = signed_up(&app, "staff-shape@example.org").await;
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/api/v2/districts/{district}/staff/{staff_id}"),
        Some(&root),
        Some(json!({"role": "district_admin", "version": 0})),
    )
    .await;
    assert_eq!(status, 200);
    // A staff role is versioned: listed with its version; 428 without one, 412 stale.
    let staff_uri = format!("/api/v2/districts/{district}/staff/{staff_id}");
    let listed = all_pages(
        &app,
        &format!("/api/v2/districts/{district}/staff"),
        Some(&root),
        Some(1),
    )
    .await;
    assert_eq!(listed[0]["version"], 1, "{listed:?}");
    let (status, body) = send(
        &app,
        Method::PUT,
        &staff_uri,
        Some(&root),
        Some(json!({"role": "district_viewer"})),
    )
    .await;
    assert_eq!(status, 428, "{body}");
    let (status, body) = send(
        &app,
        Method::PUT,
        &staff_uri,
        Some(&root),
        Some(json!({"role": "district_viewer", "version": 0})),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["details"]["current_version"]),
        (412, &json!(1)),
        "{body}"
    );
    let mine = all_pages(&app, "/api/v2/districts", Some(&staff), Some(1)).await;
    assert_eq!(mine[0]["id"], district.as_str());
    let listed = all_pages(
        &app,
        &format!("/api/v2/districts/{district}/schools"),
        Some(&staff),
        Some(2),
    )
    .await;
    let mut expected = schools.clone();
    expected.sort();
    assert_eq!(
        listed
            .iter()
            .filter_map(|s| s["id"].as_str())
            .collect::<Vec<_>>(),
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );

    // Clearing a template key: 204, no body (district and school).
    let key_uri = format!("/api/v2/districts/{district}/permission-templates/events.create");
    // One key's write is versioned like the many-key one: 428 without, 412 stale.
    let setting = json!({"min_role": "board_member", "enabled": true});
    let (status, body) = send(&app, Method::PUT, &key_uri, Some(&staff), Some(setting)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (428, Some("PRECONDITION_REQUIRED")),
        "{body}"
    );
    let stale = json!({"min_role": "board_member", "enabled": true, "version": 99});
    let (status, body) = send(&app, Method::PUT, &key_uri, Some(&staff), Some(stale)).await;
    assert_eq!(status, 412, "{body}");
    let (status, _) = crate::helpers::write_current(
        &app,
        Method::PUT,
        &key_uri,
        Some(&staff),
        Some(json!({"min_role": "board_member", "enabled": true, "locked": true})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(&app, Method::DELETE, &key_uri, Some(&staff), None).await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let school_key = format!(
        "/api/v2/schools/{}/permission-templates/budget.view",
        schools[0]
    );
    let (status, _) = crate::helpers::write_current(
        &app,
        Method::PUT,
        &school_key,
        Some(&staff),
        Some(json!({"min_role": "committee_lead", "enabled": true})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(&app, Method::DELETE, &school_key, Some(&staff), None).await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let (_, templates) = send(
        &app,
        Method::GET,
        &format!("/api/v2/districts/{district}/permission-templates"),
        Some(&staff),
        None,
    )
    .await;
    assert_eq!(templates["data"]["templates"], json!([]), "{templates}");

    // Deleting a district tells what it detached (200, not 204).
    let (status, deleted) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/districts/{district}"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted["data"]["detached_schools"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(deleted["data"]["detached_orgs"], json!([org]));
}
