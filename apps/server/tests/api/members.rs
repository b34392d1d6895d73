//! Member profiles: committee and children, edited by the member or by an admin.

use actix_web::http::Method;

use crate::backend_tests;
use crate::helpers::{TestContext, send};
use crate::permissions::org_with_volunteer;

backend_tests!(
    members_edit_their_own_profile,
    admins_edit_profiles_and_bad_profiles_are_refused,
    removal_is_soft_and_restorable,
    bulk_changes_report_each_member_and_removal_needs_confirmation,
);

async fn members_edit_their_own_profile(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, vol) = org_with_volunteer(&app, "p1").await;
    let me = format!("/api/v2/orgs/{org}/me");
    // The version of one's membership is required (428), a stale one refused (412).
    let (status, body) = send(
        &app,
        Method::PATCH,
        &me,
        Some(&vol),
        Some(serde_json::json!({"committee": "Garden"})),
    )
    .await;
    assert_eq!(status, 428, "{body}");
    let (status, body) = send(
        &app,
        Method::PATCH,
        &me,
        Some(&vol),
        Some(serde_json::json!({"committee": "Garden", "version": 99})),
    )
    .await;
    assert_eq!(status, 412, "{body}");
    let (status, body) = crate::helpers::patch_current(
        &app,
        &me,
        Some(&vol),
        Some(serde_json::json!({
            "committee": "  Book Fair ",
            "children": [{"name": "Mia", "grade": "3"}, {"name": "Leo"}]
        })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["committee"], "Book Fair", "trimmed");
    assert_eq!(
        body["data"]["children"],
        serde_json::json!([{"name": "Mia", "grade": "3"}, {"name": "Leo", "grade": null}])
    );
    let version = body["data"]["version"].as_i64().unwrap();

    // The admin reads the same profile through the member resource.
    let (status, got) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users/{vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got["data"]["children"][0]["name"], "Mia");
    assert_eq!(got["data"]["committee"], "Book Fair");

    // A stale version is refused and changes nothing.
    let (status, body) = crate::helpers::patch_current(
        &app,
        &me,
        Some(&vol),
        Some(serde_json::json!({"version": version - 1, "children": []})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (412, Some("VERSION_MISMATCH"))
    );

    // Role and status are not editable through one's own profile.
    let (status, body) = crate::helpers::patch_current(
        &app,
        &me,
        Some(&vol),
        Some(serde_json::json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");

    // `null` clears the committee; the children stay.
    let (status, body) = crate::helpers::patch_current(
        &app,
        &me,
        Some(&vol),
        Some(serde_json::json!({"version": version, "committee": null})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["committee"].is_null());
    assert_eq!(body["data"]["children"].as_array().map(Vec::len), Some(2));

    // The change is in the audit log with before and after.
    let (status, log) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?action=member.update"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{log}");
    let events = log["data"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{log}");
    let first = events
        .iter()
        .find(|e| e["new_value"]["committee"] == "Book Fair")
        .expect("the first edit is audited");
    assert!(first["old_value"]["committee"].is_null());
    assert_eq!(first["new_value"]["children"][1]["name"], "Leo");
}

async fn admins_edit_profiles_and_bad_profiles_are_refused(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, vol) = org_with_volunteer(&app, "p2").await;
    let users = format!("/api/v2/orgs/{org}/users");
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("{users}/{vol_id}"),
        Some(&admin),
        Some(serde_json::json!({"committee": "Fundraising", "children": [{"name": "Ada", "grade": "K"}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["committee"], "Fundraising");
    assert_eq!(body["data"]["children"][0]["grade"], "K");

    // Every invalid field is reported at once, and nothing changes.
    let too_many: Vec<_> = (0..21)
        .map(|i| serde_json::json!({"name": format!("Child {i}")}))
        .collect();
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("{users}/{vol_id}"),
        Some(&admin),
        Some(serde_json::json!({"committee": "x".repeat(101), "children": too_many})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("VALIDATION_FAILED")),
        "{body}"
    );
    let fields: Vec<&str> = body["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["field"].as_str())
        .collect();
    assert!(
        fields.iter().any(|f| f.starts_with("committee")),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.starts_with("children")),
        "{fields:?}"
    );
    let (status, body) = crate::helpers::patch_current(
        &app,
        &format!("/api/v2/orgs/{org}/me"),
        Some(&vol),
        Some(serde_json::json!({"children": [{"name": ""}]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (_, got) = send(
        &app,
        Method::GET,
        &format!("{users}/{vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(got["data"]["committee"], "Fundraising");
    assert_eq!(got["data"]["children"].as_array().map(Vec::len), Some(1));

    // A volunteer cannot edit someone else's profile (users.edit_roles is admin-only).
    let (_, me) = send(&app, Method::GET, "/api/v2/me", Some(&admin), None).await;
    let admin_id = me["data"]["user"]["id"].as_str().unwrap();
    let (status, _) = crate::helpers::patch_current(
        &app,
        &format!("{users}/{admin_id}"),
        Some(&vol),
        Some(serde_json::json!({"committee": "Hijacked"})),
    )
    .await;
    assert_eq!(status, 403);
}

async fn removal_is_soft_and_restorable(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, vol) = org_with_volunteer(&app, "rm").await;
    let users = format!("/api/v2/orgs/{org}/users");
    let check = format!("/api/v2/orgs/{org}/permissions/check?key=events.view");
    crate::helpers::patch_current(
        &app,
        &format!("{users}/{vol_id}"),
        Some(&admin),
        Some(serde_json::json!({"committee": "Garden", "children": [{"name": "Ivy"}]})),
    )
    .await;
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("{users}/{vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204);
    // Removed: no access at all, not in the directory.
    let (status, _) = send(&app, Method::GET, &check, Some(&vol), None).await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("{users}/{vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, list) = send(&app, Method::GET, &users, Some(&admin), None).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    // Listed as removed, with what a restore brings back.
    let (status, removed) = send(
        &app,
        Method::GET,
        &format!("{users}/removed"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["data"][0]["user_id"], vol_id.as_str());
    assert_eq!(removed["data"][0]["committee"], "Garden");
    assert!(removed["data"][0]["removed_at"].is_string());
    // Restored as they were; access is back at once.
    let restore = format!("{users}/{vol_id}/restore");
    let (status, back) = send(&app, Method::POST, &restore, Some(&admin), None).await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["data"]["committee"], "Garden");
    assert_eq!(back["data"]["children"][0]["name"], "Ivy");
    assert_eq!(back["data"]["role"]["name"], "volunteer");
    let (status, _) = send(&app, Method::GET, &check, Some(&vol), None).await;
    assert_eq!(status, 200);
    let (status, _) = send(&app, Method::POST, &restore, Some(&admin), None).await;
    assert_eq!(status, 409, "a member again: nothing to restore");
    let nobody = format!("{users}/{}/restore", uuid::Uuid::new_v4());
    let (status, _) = send(&app, Method::POST, &nobody, Some(&admin), None).await;
    assert_eq!(status, 404, "never removed: nothing to restore");
    // Removed again, the signup code is no way back (403); an admin's restore is.
    send(
        &app,
        Method::DELETE,
        &format!("{users}/{vol_id}"),
        Some(&admin),
        None,
    )
    .await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&vol),
        Some(serde_json::json!({"signup_code": "CODErm"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = send(&app, Method::POST, &restore, Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    // Both removals and the restore are audited.
    let (_, log) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?entity_type=member"),
        Some(&admin),
        None,
    )
    .await;
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "member.remove").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "member.restore").count(),
        2,
        "{actions:?}"
    );

    // Nobody restores someone into a role above their own.
    let (admin2_id, _) = crate::helpers::signed_up(&app, "second-admin-rm@example.org").await;
    let (_, t2) = (
        admin2_id.clone(),
        crate::helpers::login(&app, "second-admin-rm@example.org", "correct horse battery").await,
    );
    send(
        &app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&t2),
        Some(serde_json::json!({"signup_code": "CODErm"})),
    )
    .await;
    let (status, _) = crate::helpers::patch_current(
        &app,
        &format!("{users}/{admin2_id}"),
        Some(&admin),
        Some(serde_json::json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("{users}/{admin2_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, matrix) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&admin),
        None,
    )
    .await;
    let version = matrix["data"]["version"].as_u64().unwrap();
    send(&app, Method::PUT, &format!("/api/v2/orgs/{org}/permissions/settings"), Some(&admin), Some(serde_json::json!({"version": version, "changes": [{"key": "users.remove", "min_role": "volunteer"}]}))).await;
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("{users}/{admin2_id}/restore"),
        Some(&vol),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("{users}/{admin2_id}/restore"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
}

async fn bulk_changes_report_each_member_and_removal_needs_confirmation(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin, vol_id, _) = org_with_volunteer(&app, "bk").await;
    let users = format!("/api/v2/orgs/{org}/users");
    let mut ids = vec![vol_id.clone()];
    for i in 0..3 {
        let (id, token) = crate::helpers::signed_up(&app, &format!("bulk{i}@example.org")).await;
        send(
            &app,
            Method::POST,
            "/api/v2/orgs/join",
            Some(&token),
            Some(serde_json::json!({"signup_code": "CODEbk"})),
        )
        .await;
        ids.push(id);
    }
    let (_, me) = send(&app, Method::GET, "/api/v2/me", Some(&admin), None).await;
    let admin_id = me["data"]["user"]["id"].as_str().unwrap().to_owned();
    let stranger = uuid::Uuid::new_v4().to_string();

    // Each item on its own: the last admin and a non-member fail, the rest succeed.
    let mut targets = ids.clone();
    targets.extend([admin_id.clone(), stranger.clone()]);
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("{users}/bulk-update"),
        Some(&admin),
        Some(serde_json::json!({"user_ids": targets, "role": "committee_lead"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["data"]["succeeded"].as_u64(),
            body["data"]["failed"].as_u64()
        ),
        (Some(4), Some(2)),
        "{body}"
    );
    let results = body["data"]["results"].as_array().unwrap();
    assert_eq!(results[4]["user_id"], admin_id.as_str());
    assert_eq!(
        results[4]["error"]["code"], "CONFLICT",
        "the last admin stays"
    );
    assert_eq!(results[5]["error"]["code"], "NOT_FOUND");
    let (_, page) = send(
        &app,
        Method::GET,
        &format!("{users}?role=committee_lead"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(4));

    // Bad input: duplicates, nothing to change, too many.
    for bad in [
        serde_json::json!({"user_ids": [vol_id, vol_id], "status": "suspended"}),
        serde_json::json!({"user_ids": [vol_id]}),
        serde_json::json!({"user_ids": (0..501).map(|_| uuid::Uuid::new_v4()).collect::<Vec<_>>(), "status": "active"}),
    ] {
        let (status, body) = send(
            &app,
            Method::POST,
            &format!("{users}/bulk-update"),
            Some(&admin),
            Some(bad),
        )
        .await;
        assert_eq!(status, 422, "{body}");
    }

    // Removal: the first call changes nothing and returns a token for exactly these ids.
    let remove = format!("{users}/bulk-remove");
    let two = &ids[..2];
    let (status, step1) = send(
        &app,
        Method::POST,
        &remove,
        Some(&admin),
        Some(serde_json::json!({"user_ids": two})),
    )
    .await;
    assert_eq!(status, 200, "{step1}");
    assert_eq!(step1["data"]["status"], "confirmation_required");
    let token = step1["data"]["confirmation_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, page) = send(&app, Method::GET, &users, Some(&admin), None).await;
    assert_eq!(
        page["data"].as_array().map(Vec::len),
        Some(5),
        "nothing removed yet"
    );
    // The token does not confirm other members, nor a forged one anything.
    let (status, _) = send(
        &app,
        Method::POST,
        &remove,
        Some(&admin),
        Some(serde_json::json!({"user_ids": &ids[..3], "confirmation_token": token})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = send(
        &app,
        Method::POST,
        &remove,
        Some(&admin),
        Some(serde_json::json!({"user_ids": two, "confirmation_token": format!("{token}0")})),
    )
    .await;
    assert_eq!(status, 422);
    // Same ids in another order, with the token: removed, each reported and audited.
    let reversed: Vec<&String> = two.iter().rev().collect();
    let (status, done) = send(
        &app,
        Method::POST,
        &remove,
        Some(&admin),
        Some(serde_json::json!({"user_ids": reversed, "confirmation_token": token})),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (
            done["data"]["status"].as_str(),
            done["data"]["succeeded"].as_u64()
        ),
        (Some("done"), Some(2))
    );
    let (_, page) = send(&app, Method::GET, &users, Some(&admin), None).await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(3));
    let (_, removed) = send(
        &app,
        Method::GET,
        &format!("{users}/removed"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(removed["data"].as_array().map(Vec::len), Some(2));
}
