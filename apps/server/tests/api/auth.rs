use actix_web::http::Method;

use crate::backend_tests;
use crate::helpers::{TestContext, all_pages, login, send, signed_up};

backend_tests!(
    sign_up_sign_in_me_sign_out,
    bad_credentials_are_401_without_telling_which,
    tampered_or_missing_tokens_are_401,
    an_expired_token_is_refused_and_not_verified_again,
    revoked_session_is_401_immediately,
    password_change_revokes_other_sessions,
);

async fn sign_up_sign_in_me_sign_out(ctx: TestContext) {
    let app = ctx.service().await;
    let (id, token) = signed_up(&app, "ana@example.org").await;
    let (status, me) = send(&app, Method::GET, "/api/v2/me", Some(&token), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["user"]["id"], id.as_str());
    assert_eq!(me["data"]["memberships"], serde_json::json!([]));
    let (status, out) = send(
        &app,
        Method::POST,
        "/api/v2/auth/logout",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (status, out["data"]["revoked"].as_bool()),
        (200, Some(true))
    );
    let (status, body) = send(&app, Method::GET, "/api/v2/me", Some(&token), None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
}

async fn bad_credentials_are_401_without_telling_which(ctx: TestContext) {
    let app = ctx.service().await;
    signed_up(&app, "ben@example.org").await;
    let wrong_password = send(
        &app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(serde_json::json!({"email": "ben@example.org", "password": "not the password"})),
    )
    .await;
    let unknown_user = send(
        &app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(serde_json::json!({"email": "nobody@example.org", "password": "not the password"})),
    )
    .await;
    assert_eq!(wrong_password.0, 401);
    assert_eq!(unknown_user.0, 401);
    assert_eq!(
        wrong_password.1["error"]["message"],
        unknown_user.1["error"]["message"]
    );
}

async fn tampered_or_missing_tokens_are_401(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, token) = signed_up(&app, "cy@example.org").await;
    let (status, _) = send(&app, Method::GET, "/api/v2/me", None, None).await;
    assert_eq!(status, 401);
    for pos in [10, token.len() / 2, token.len() - 5] {
        let mut bytes = token.clone().into_bytes();
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        let (status, body) = send(&app, Method::GET, "/api/v2/me", Some(&tampered), None).await;
        assert_eq!(status, 401, "tampering at {pos} must not pass: {body}");
    }
    let (status, _) = send(&app, Method::GET, "/api/v2/me", Some("not-a-token"), None).await;
    assert_eq!(status, 401);
}

async fn revoked_session_is_401_immediately(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, first) = signed_up(&app, "dee@example.org").await;
    let second = login(&app, "dee@example.org", "correct horse battery").await;
    // Warm the caches with both tokens.
    assert_eq!(
        send(&app, Method::GET, "/api/v2/me", Some(&first), None)
            .await
            .0,
        200
    );
    assert_eq!(
        send(&app, Method::GET, "/api/v2/me", Some(&second), None)
            .await
            .0,
        200
    );
    let (_, sessions) = send(
        &app,
        Method::GET,
        "/api/v2/auth/sessions",
        Some(&first),
        None,
    )
    .await;
    let list = sessions["data"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    // Paged like every list, newest (largest v7 id) first.
    let paged = all_pages(&app, "/api/v2/auth/sessions", Some(&first), Some(2)).await;
    assert_eq!(&paged, list);
    assert!(
        paged[0]["id"].as_str() > paged[1]["id"].as_str(),
        "{sessions}"
    );
    let other = list.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/auth/sessions/{other}"),
        Some(&first),
        None,
    )
    .await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    assert_eq!(
        send(&app, Method::GET, "/api/v2/me", Some(&second), None)
            .await
            .0,
        401
    );
    assert_eq!(
        send(&app, Method::GET, "/api/v2/me", Some(&first), None)
            .await
            .0,
        200
    );
    // Someone else's (or an unknown) session id is not found.
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/auth/sessions/{}", uuid::Uuid::now_v7()),
        Some(&first),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

async fn password_change_revokes_other_sessions(ctx: TestContext) {
    let app = ctx.service().await;
    let (_, current) = signed_up(&app, "eve@example.org").await;
    let other = login(&app, "eve@example.org", "correct horse battery").await;
    assert_eq!(
        send(&app, Method::GET, "/api/v2/me", Some(&other), None)
            .await
            .0,
        200
    );
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/password",
        Some(&current),
        Some(serde_json::json!({"current_password": "wrong one", "new_password": "a brand new passphrase"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/password",
        Some(&current),
        Some(serde_json::json!({"current_password": "correct horse battery", "new_password": "a brand new passphrase"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        send(&app, Method::GET, "/api/v2/me", Some(&other), None)
            .await
            .0,
        401
    );
    assert_eq!(
        send(&app, Method::GET, "/api/v2/me", Some(&current), None)
            .await
            .0,
        200
    );
    login(&app, "eve@example.org", "a brand new passphrase").await;
}

/// A token signed by us but past its expiry is 401 "expired"; the second time it comes,
/// the refusal is answered from the expired-token cache, without verifying the signature
/// again (a client retrying with a stale token would otherwise cost a verification per
/// request).
async fn an_expired_token_is_refused_and_not_verified_again(ctx: TestContext) {
    let app = ctx.service().await;
    let (id, _) = signed_up(&app, "exp@example.org").await;
    let user = uuid::Uuid::parse_str(&id).unwrap();
    let expired = ctx
        .state
        .auth
        .issuer()
        .issue_session(
            user,
            uuid::Uuid::now_v7(),
            time::OffsetDateTime::now_utc() - time::Duration::minutes(1),
            false,
        )
        .unwrap();
    let hits = || {
        ctx.state
            .auth
            .cache_stats()
            .into_iter()
            .find(|(name, _)| *name == "token_expired")
            .map(|(_, s)| s.hits)
            .unwrap()
    };
    let before = hits();
    for round in 0..2 {
        let (status, body) =
            send(&app, Method::GET, "/api/v2/me", Some(&expired.token), None).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["message"], "the token has expired", "{body}");
        assert_eq!(hits(), before + round, "round {round}");
    }
}
