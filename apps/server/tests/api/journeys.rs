//! Account journeys with mail read from a real SMTP server (`aiosmtpd`): a parent added
//! by a CSV import follows the invitation link, sets a password, is an active member
//! and signs in; an existing account accepts while signed in; a password reset end to
//! end; address verification; expired and revoked links refused with clear codes.

use actix_web::http::Method;
use actix_web::test;
use pto_server::startup::mail_transport;
use serde_json::json;
use test_support::{SmtpSink, header};

use crate::helpers::{Backend, TestContext, login, send, signed_up};

/// One test per backend, each with its own SMTP server (skipped with a note outside CI
/// when `aiosmtpd` is missing; a failure under `CI=true`).
macro_rules! smtp_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::run(super::Backend::Sqlite, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::run(super::Backend::Postgres, super::$name).await;
                }
            )*
        }
    };
}

smtp_tests!(
    a_parent_added_by_import_joins_from_the_link_and_signs_in,
    an_existing_account_accepts_its_invitation,
    password_reset_end_to_end,
    addresses_are_proven_before_invitations_are_answered,
    expired_and_revoked_links_are_refused_clearly,
    messages_are_written_in_the_recipients_language,
    security_notices_reach_the_account_holder,
    an_address_changes_only_when_the_new_one_is_proven,
);

async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestContext, SmtpSink) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let Some(ctx) = with_smtp(backend, &sink).await else {
        return;
    };
    test(ctx, sink).await;
}

macro_rules! svc_bound {
    () => {
        impl actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
            Error = actix_web::Error,
        >
    };
}

/// A test context whose mail goes to `sink`.
async fn with_smtp(backend: Backend, sink: &SmtpSink) -> Option<TestContext> {
    let url = sink.url();
    TestContext::with_env(
        backend,
        &[
            ("SMTP_URL", url.as_str()),
            ("MAIL_FROM", "PTO Connect <pto@school.test>"),
            ("PUBLIC_BASE_URL", "https://pto.school.test"),
        ],
    )
    .await
}

/// Delivers everything queued (the server's mail worker, run to completion here).
async fn deliver(ctx: &TestContext) -> usize {
    let worker = mail::MailWorker::new(
        ctx.state.db.clone(),
        mail_transport(&ctx.settings).expect("transport"),
        mail::WorkerSettings::new(ctx.settings.mail.from.clone()),
    );
    let done = worker.drain().await.expect("deliver");
    done.sent
}

/// The messages `sink` received for `to`, decoded from quoted-printable.
fn mail_to(sink: &SmtpSink, to: &str) -> Vec<String> {
    sink.messages()
        .into_iter()
        .filter(|m| header(m, "To").is_some_and(|t| t.contains(to)))
        .map(|m| {
            m.replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=")
        })
        .collect()
}

/// The token of the link to `path` in the latest message to `to` that has one.
fn token_in(sink: &SmtpSink, to: &str, path: &str) -> String {
    let marker = format!("https://pto.school.test{path}?token=");
    let mail = mail_to(sink, to);
    let last = mail
        .iter()
        .rev()
        .find(|m| m.contains(&marker))
        .unwrap_or_else(|| panic!("no {path} link in the {} messages to {to}", mail.len()));
    let at = last.rfind(&marker).unwrap_or_default();
    let token: String = last[at + marker.len()..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(token.len(), 64, "a full token in {last}");
    token
}

async fn org_with_admin(app: &svc_bound!(), email: &str, code: &str) -> (String, String) {
    let (_, admin) = signed_up(app, email).await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(json!({"name": "Maple PTO", "signup_code": code})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["data"]["org"]["id"].as_str().unwrap().to_owned(),
        admin,
    )
}

async fn a_parent_added_by_import_joins_from_the_link_and_signs_in(
    ctx: TestContext,
    sink: SmtpSink,
) {
    let app = ctx.service().await;
    let (org, admin) = org_with_admin(&app, "admin@maple.test", "MAPLE001").await;
    let csv = "email,first_name,last_name\r\nines.garcia@home.test,Inés,García\r\n";
    let upload = |query: &'static str| {
        test::TestRequest::post()
            .uri(&format!("/api/v2/orgs/{org}/users/import{query}"))
            .insert_header(("authorization", format!("Bearer {admin}")))
            .insert_header(("content-type", "text/csv"))
            .set_payload(csv)
            .to_request()
    };
    // A dry run queues nothing.
    let res = test::call_service(&app, upload("?dry_run=true")).await;
    assert_eq!(res.status().as_u16(), 200);
    deliver(&ctx).await;
    assert!(mail_to(&sink, "ines.garcia@home.test").is_empty());
    // The import: one invitation, one e-mail.
    let res = test::call_service(&app, upload("")).await;
    assert_eq!(res.status().as_u16(), 202);
    let mut s = jobs::WorkerSettings::new(ctx.state.tmp_dir.clone());
    s.lease = std::time::Duration::ZERO;
    pto_server::startup::job_worker(&ctx.state, s)
        .run_until_idle()
        .await
        .expect("import runs");
    assert_eq!(deliver(&ctx).await, 1);
    let mails = mail_to(&sink, "ines.garcia@home.test");
    assert_eq!(mails.len(), 1);
    assert!(header(&mails[0], "Subject").is_some());
    assert!(mails[0].contains("Maple PTO"), "{}", mails[0]);
    let token = token_in(&sink, "ines.garcia@home.test", "/invitations/accept");

    // A new person needs names and a password with the link.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/invitations/accept",
        None,
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("VALIDATION_FAILED"))
    );
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/invitations/accept",
        None,
        Some(json!({"token": token, "first_name": "Inés", "last_name": "García", "password": "a long garden path"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["account_created"], true);
    assert_eq!(body["data"]["org_id"], org.as_str());
    assert_eq!(body["data"]["role"], "volunteer");
    let session = body["data"]["token"].as_str().unwrap().to_owned();
    // An active member, through the session the link gave…
    let (status, me) = send(&app, Method::GET, "/api/v2/me", Some(&session), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["memberships"][0]["org_id"], org.as_str(), "{me}");
    assert_eq!(me["data"]["memberships"][0]["status"], "active");
    // …and by signing in with the password just set.
    let signed_in = login(&app, "ines.garcia@home.test", "a long garden path").await;
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/users"),
        Some(&signed_in),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // The link works once.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/invitations/accept",
        None,
        Some(json!({"token": token, "first_name": "X", "last_name": "Y", "password": "another long one"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("LINK_INVALID")),
        "{body}"
    );
}

async fn an_existing_account_accepts_its_invitation(ctx: TestContext, sink: SmtpSink) {
    let app = ctx.service().await;
    let (org, admin) = org_with_admin(&app, "admin@birch.test", "BIRCH001").await;
    let (_, parent) = signed_up(&app, "sam.okafor@home.test").await;
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/users"),
        Some(&admin),
        Some(json!({"email": "sam.okafor@home.test", "first_name": "Sam", "last_name": "Okafor", "role": "committee_lead"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    deliver(&ctx).await;
    let token = token_in(&sink, "sam.okafor@home.test", "/invitations/accept");
    // Not signed in: the address has an account, so sign in first.
    let (status, body) = send(&app, Method::POST, "/api/v2/invitations/accept", None, Some(json!({"token": token, "first_name": "Sam", "last_name": "Okafor", "password": "not my account"}))).await;
    assert_eq!(
        (status, body["error"]["details"]["reason"].as_str()),
        (409, Some("account_exists")),
        "{body}"
    );
    // Signed in as someone else: refused.
    let (_, other) = signed_up(&app, "someone.else@home.test").await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/invitations/accept",
        Some(&other),
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(status, 403);
    // Signed in as the invited account: a member with the invited role.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/invitations/accept",
        Some(&parent),
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["account_created"], false);
    assert_eq!(body["data"]["role"], "committee_lead");
    let (status, me) = send(&app, Method::GET, "/api/v2/me", Some(&parent), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["memberships"][0]["org_id"], org.as_str(), "{me}");
    assert_eq!(
        me["data"]["memberships"][0]["role"], "committee_lead",
        "{me}"
    );
    // The admin sees it accepted.
    let (_, list) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/invitations"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(list["data"][0]["status"], "accepted", "{list}");
}

async fn password_reset_end_to_end(ctx: TestContext, sink: SmtpSink) {
    let app = ctx.service().await;
    let (_, old_session) = signed_up(&app, "rosa@home.test").await;
    // Unknown and known addresses answer alike; only the known one gets mail.
    for email in ["nobody@home.test", "rosa@home.test"] {
        let (status, body) = send(
            &app,
            Method::POST,
            "/api/v2/auth/password-reset",
            None,
            Some(json!({"email": email})),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["data"], json!({"accepted": true}));
    }
    deliver(&ctx).await;
    assert!(mail_to(&sink, "nobody@home.test").is_empty());
    let token = token_in(&sink, "rosa@home.test", "/reset-password");
    // A too-short password is refused and the link still works.
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/password-reset/confirm",
        None,
        Some(json!({"token": token, "password": "short"})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/password-reset/confirm",
        None,
        Some(json!({"token": token, "password": "a brand new passphrase"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["sessions_ended"].as_u64().unwrap() >= 1);
    // Every session ended; the new password signs in; the old one does not.
    let (status, _) = send(
        &app,
        Method::GET,
        "/api/v2/auth/sessions",
        Some(&old_session),
        None,
    )
    .await;
    assert_eq!(status, 401);
    login(&app, "rosa@home.test", "a brand new passphrase").await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(json!({"email": "rosa@home.test", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 401);
    // Single use.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/password-reset/confirm",
        None,
        Some(json!({"token": token, "password": "yet another passphrase"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("LINK_USED"))
    );
    // The account holder is told.
    deliver(&ctx).await;
    let told = mail_to(&sink, "rosa@home.test");
    assert!(
        told.len() >= 3,
        "verification, reset, changed: {}",
        told.len()
    );
    assert_ne!(
        header(told.last().unwrap(), "Subject"),
        header(&told[told.len() - 2], "Subject")
    );
}

async fn addresses_are_proven_before_invitations_are_answered(ctx: TestContext, sink: SmtpSink) {
    let app = ctx.service().await;
    let (org, admin) = org_with_admin(&app, "admin@cedar.test", "CEDAR001").await;
    let (_, lee) = signed_up(&app, "lee@home.test").await;
    send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/users"),
        Some(&admin),
        Some(json!({"email": "lee@home.test", "first_name": "Lee", "last_name": "Park"})),
    )
    .await;
    // Not proven yet: the list is refused.
    let (status, body) = send(
        &app,
        Method::GET,
        "/api/v2/me/invitations",
        Some(&lee),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("EMAIL_NOT_VERIFIED"))
    );
    deliver(&ctx).await;
    let token = token_in(&sink, "lee@home.test", "/verify-email");
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/verify-email",
        None,
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/verify-email",
        None,
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("LINK_USED"))
    );
    // Proven: Lee sees and declines the invitation.
    let (status, list) = send(
        &app,
        Method::GET,
        "/api/v2/me/invitations",
        Some(&lee),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // Paged like every list.
    let paged =
        crate::helpers::all_pages(&app, "/api/v2/me/invitations", Some(&lee), Some(1)).await;
    assert_eq!(paged, *list["data"].as_array().unwrap());
    let id = list["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/api/v2/me/invitations/{id}/decline"),
        Some(&lee),
        None,
    )
    .await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("declined")),
        "{body}"
    );
    let (_, list) = send(
        &app,
        Method::GET,
        "/api/v2/me/invitations",
        Some(&lee),
        None,
    )
    .await;
    assert!(list["data"].as_array().unwrap().is_empty());
    // A declined invitation's link is dead.
    let link = token_in(&sink, "lee@home.test", "/invitations/accept");
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/invitations/accept",
        Some(&lee),
        Some(json!({"token": link})),
    )
    .await;
    assert_eq!(status, 400);
}

async fn expired_and_revoked_links_are_refused_clearly(ctx: TestContext, sink: SmtpSink) {
    use sea_orm::ConnectionTrait;
    let app = ctx.service().await;
    let (org, admin) = org_with_admin(&app, "admin@elm.test", "ELM00001").await;
    let (status, revoked) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/users"),
        Some(&admin),
        Some(json!({"email": "gone@home.test", "first_name": "Gone", "last_name": "Away"})),
    )
    .await;
    assert_eq!(status, 201);
    send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/users"),
        Some(&admin),
        Some(json!({"email": "late@home.test", "first_name": "Late", "last_name": "Comer"})),
    )
    .await;
    deliver(&ctx).await;
    let gone = token_in(&sink, "gone@home.test", "/invitations/accept");
    let first_late = token_in(&sink, "late@home.test", "/invitations/accept");
    // Sent again: a new link, and the first one stops working.
    let (_, pending) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/invitations?status=pending"),
        Some(&admin),
        None,
    )
    .await;
    let late_id = pending["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == "late@home.test")
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .expect("late's invitation");
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{org}/invitations/{late_id}/resend"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    deliver(&ctx).await;
    let late = token_in(&sink, "late@home.test", "/invitations/accept");
    assert_ne!(late, first_late);
    let old = json!({"token": first_late, "first_name": "A", "last_name": "B", "password": "long enough password"});
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/invitations/accept",
        None,
        Some(old),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("LINK_INVALID")),
        "{body}"
    );
    let id = revoked["data"]["id"].as_str().unwrap();
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/api/v2/orgs/{org}/invitations/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let accept = |token: &str| json!({"token": token, "first_name": "A", "last_name": "B", "password": "long enough password"});
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/invitations/accept",
        None,
        Some(accept(&gone)),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("INVITATION_ENDED")),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["status"], "revoked");
    // The other one runs out.
    let db = ctx.state.db.primary();
    db.execute_unprepared(
        "UPDATE invitations SET expires_at = created_at WHERE email = 'late@home.test'",
    )
    .await
    .unwrap();
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/invitations/accept",
        None,
        Some(accept(&late)),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("LINK_EXPIRED")),
        "{body}"
    );
    // A malformed token is refused without a lookup.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/invitations/accept",
        None,
        Some(accept("' OR 1=1 --")),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("LINK_INVALID"))
    );
}

/// The JSON body of a request with extra headers.
async fn send_with(
    app: &svc_bound!(),
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut req = test::TestRequest::default()
        .method(method)
        .uri(uri)
        .set_json(body);
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let bytes = test::read_body(res).await;
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

fn spanish(mail: &str) -> bool {
    mail.contains("Hola:")
}

fn english(mail: &str) -> bool {
    mail.contains("Hello,")
}

async fn messages_are_written_in_the_recipients_language(ctx: TestContext, sink: SmtpSink) {
    let app = ctx.service().await;
    let password = "correct horse battery";
    // The body's `locale` wins; else `Accept-Language`; else English.
    for (email, locale, accept, want_spanish) in [
        ("lucia@home.test", Some("es-MX"), None, true),
        (
            "marta@home.test",
            None,
            Some("es-ES,es;q=0.9,en;q=0.5"),
            true,
        ),
        ("tom@home.test", None, Some("fr;q=0.9, en;q=0.8"), false),
        ("ann@home.test", None, None, false),
    ] {
        let mut body =
            json!({"email": email, "password": password, "first_name": "A", "last_name": "B"});
        if let Some(l) = locale {
            body["locale"] = json!(l);
        }
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-language", a)).into_iter().collect();
        let (status, body) =
            send_with(&app, Method::POST, "/api/v2/auth/register", &headers, body).await;
        assert_eq!(status, 201, "{body}");
        deliver(&ctx).await;
        let mail = mail_to(&sink, email);
        assert_eq!(mail.len(), 1, "{email}");
        assert_eq!(spanish(&mail[0]), want_spanish, "{email}: {}", mail[0]);
        assert_eq!(english(&mail[0]), !want_spanish, "{email}: {}", mail[0]);
    }
    // A tag that is not one is refused, and nothing is created.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/register",
        None,
        Some(json!({"email": "x@home.test", "password": password, "first_name": "A", "last_name": "B", "locale": "<script>"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");

    // The account holder changes their language; later messages follow it.
    let ann = login(&app, "ann@home.test", password).await;
    let (status, me) = send(&app, Method::GET, "/api/v2/me", Some(&ann), None).await;
    assert_eq!((status, &me["data"]["locale"]), (200, &json!(null)), "{me}");
    // The account's version is required (428), a stale one refused (412).
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/api/v2/me",
        Some(&ann),
        Some(json!({"locale": "es"})),
    )
    .await;
    assert_eq!(status, 428, "{body}");
    let stale = me["data"]["version"].as_i64().unwrap() - 1;
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/api/v2/me",
        Some(&ann),
        Some(json!({"locale": "es", "version": stale})),
    )
    .await;
    assert_eq!(status, 412, "{body}");
    let (status, body) = crate::helpers::patch_current(
        &app,
        "/api/v2/me",
        Some(&ann),
        Some(json!({"locale": "es"})),
    )
    .await;
    assert_eq!(
        (status, &body["data"]["locale"]),
        (200, &json!("es")),
        "{body}"
    );
    let (status, _) = crate::helpers::patch_current(
        &app,
        "/api/v2/me",
        Some(&ann),
        Some(json!({"locale": "not a tag"})),
    )
    .await;
    assert_eq!(status, 422);
    let (_, me) = send(&app, Method::GET, "/api/v2/me", Some(&ann), None).await;
    assert_eq!(me["data"]["locale"], "es", "{me}");
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/verify-email/resend",
        Some(&ann),
        None,
    )
    .await;
    assert_eq!(status, 202);
    deliver(&ctx).await;
    let mail = mail_to(&sink, "ann@home.test");
    assert!(spanish(mail.last().unwrap()), "{}", mail.last().unwrap());

    // Invitations: an account's own language; for someone without an account, the
    // inviter's.
    let lucia = login(&app, "lucia@home.test", password).await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/orgs",
        Some(&lucia),
        Some(json!({"name": "Escuela Roble", "signup_code": "ROBLE001"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let org = body["data"]["org"]["id"].as_str().unwrap().to_owned();
    for (email, want_spanish) in [("tom@home.test", false), ("new.family@home.test", true)] {
        let (status, body) = send(
            &app,
            Method::POST,
            &format!("/api/v2/orgs/{org}/users"),
            Some(&lucia),
            Some(json!({"email": email, "first_name": "N", "last_name": "F", "role": "volunteer"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        deliver(&ctx).await;
        let mail = mail_to(&sink, email);
        let invitation = mail.last().unwrap();
        assert!(invitation.contains("Escuela Roble"), "{invitation}");
        assert_eq!(spanish(invitation), want_spanish, "{email}: {invitation}");
    }
    // Clearing the language goes back to English.
    let (status, body) = crate::helpers::patch_current(
        &app,
        "/api/v2/me",
        Some(&ann),
        Some(json!({"locale": null})),
    )
    .await;
    assert_eq!(
        (status, &body["data"]["locale"]),
        (200, &json!(null)),
        "{body}"
    );
    send(
        &app,
        Method::POST,
        "/api/v2/auth/verify-email/resend",
        Some(&ann),
        None,
    )
    .await;
    deliver(&ctx).await;
    assert!(english(mail_to(&sink, "ann@home.test").last().unwrap()));
}

/// The subjects of the messages to `to`.
fn subjects(sink: &SmtpSink, to: &str) -> Vec<String> {
    sink.messages()
        .into_iter()
        .filter(|m| header(m, "To").is_some_and(|t| t.contains(to)))
        .filter_map(|m| header(&m, "Subject"))
        .collect()
}

async fn security_notices_reach_the_account_holder(ctx: TestContext, sink: SmtpSink) {
    let app = ctx.service().await;
    let email = "guard@home.test";
    let password = "correct horse battery";
    let (_, first) = signed_up(&app, email).await;
    deliver(&ctx).await;
    // The first sign-in of an account tells nobody: only the verification link so far.
    assert_eq!(
        subjects(&sink, email).len(),
        1,
        "{:?}",
        subjects(&sink, email)
    );
    // A second sign-in without the device token of the first: "new sign-in".
    let sign_in = |device: Option<String>| {
        let app = &app;
        async move {
            let mut body = json!({"email": email, "password": password});
            if let Some(d) = device {
                body["device_token"] = json!(d);
            }
            let (status, body) = send_with(
                app,
                Method::POST,
                "/api/v2/auth/login",
                &[("user-agent", "Firefox/140 (test)")],
                body,
            )
            .await;
            assert_eq!(status, 200, "{body}");
            (
                body["data"]["token"].as_str().unwrap().to_owned(),
                body["data"]["device_token"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (_, device) = sign_in(None).await;
    deliver(&ctx).await;
    let mail = mail_to(&sink, email);
    assert_eq!(mail.len(), 2);
    let notice = mail.last().unwrap();
    assert_eq!(
        header(notice, "Subject").as_deref(),
        Some("New sign-in to your account")
    );
    assert!(notice.contains("Firefox/140 (test)"), "{notice}");
    // The same client, proving its earlier sign-in: no message.
    let (session, _) = sign_in(Some(device)).await;
    deliver(&ctx).await;
    assert_eq!(mail_to(&sink, email).len(), 2);
    // Changing the password tells the holder.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/password",
        Some(&session),
        Some(json!({"current_password": password, "new_password": "an even longer passphrase"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    deliver(&ctx).await;
    assert_eq!(
        subjects(&sink, email).last().map(String::as_str),
        Some("Your password was changed")
    );
    // Turning two-factor sign-in off tells the holder; an unconfirmed enrolment
    // dropped does not.
    let (_, fresh) = signed_up(&app, "second@home.test").await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/me/2fa/totp",
        Some(&fresh),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/me/2fa/totp/disable",
        Some(&fresh),
        Some(json!({"password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    deliver(&ctx).await;
    assert!(
        !subjects(&sink, "second@home.test")
            .iter()
            .any(|s| s.contains("Two-factor"))
    );
    crate::accounts::enrol(&app, &fresh).await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/me/2fa/totp/disable",
        Some(&fresh),
        Some(json!({"password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    deliver(&ctx).await;
    assert_eq!(
        subjects(&sink, "second@home.test")
            .last()
            .map(String::as_str),
        Some("Two-factor sign-in was turned off")
    );
    drop(first);
}

async fn an_address_changes_only_when_the_new_one_is_proven(ctx: TestContext, sink: SmtpSink) {
    let app = ctx.service().await;
    let password = "correct horse battery";
    let (_, session) = signed_up(&app, "old.address@home.test").await;
    signed_up(&app, "taken@home.test").await;
    let change = |email: &'static str, password: &'static str| {
        let (app, session) = (&app, session.clone());
        async move {
            send(
                app,
                Method::POST,
                "/api/v2/me/email",
                Some(&session),
                Some(json!({"email": email, "password": password})),
            )
            .await
        }
    };
    // A wrong password, the same address, another account's address: refused.
    let (status, body) = change("new.address@home.test", "not the password").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("VALIDATION_FAILED")),
        "{body}"
    );
    let (status, _) = change("old.address@home.test", password).await;
    assert_eq!(status, 422);
    let (status, body) = change("taken@home.test", password).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("CONFLICT")),
        "{body}"
    );
    // Asked: the new address gets a link, the old one a notice.
    let (status, body) = change("New.Address@home.test", password).await;
    assert_eq!(status, 202, "{body}");
    deliver(&ctx).await;
    // Found by its subject: the old address's earlier mail (its own confirmation link)
    // may reach the sink after it (the mail worker sends in parallel).
    let to_old = mail_to(&sink, "old.address@home.test");
    let notice = to_old
        .iter()
        .find(|m| header(m, "Subject").as_deref() == Some("Your e-mail address is being changed"))
        .unwrap_or_else(|| panic!("no change notice among the old address's {to_old:?}"));
    assert!(notice.contains("new.address@home.test"), "{notice}");
    let token = token_in(&sink, "new.address@home.test", "/verify-email");
    // Nothing changes before the link is followed.
    login(&app, "old.address@home.test", password).await;
    let (_, me) = send(&app, Method::GET, "/api/v2/me", Some(&session), None).await;
    assert_eq!(me["data"]["user"]["email"], "old.address@home.test", "{me}");
    // Followed: the new address is the account's, proven; the old one signs in no more.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/verify-email",
        None,
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, me) = send(&app, Method::GET, "/api/v2/me", Some(&session), None).await;
    assert_eq!(me["data"]["user"]["email"], "new.address@home.test", "{me}");
    assert_eq!(me["data"]["email_verified"], true, "{me}");
    login(&app, "new.address@home.test", password).await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(json!({"email": "old.address@home.test", "password": password})),
    )
    .await;
    assert_eq!(status, 401);
    // The link works once.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/verify-email",
        None,
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("LINK_USED")),
        "{body}"
    );
    // An address taken between the request and the link: 409, nothing changes.
    let (status, _) = change("contested@home.test", password).await;
    assert_eq!(status, 202);
    deliver(&ctx).await;
    let token = token_in(&sink, "contested@home.test", "/verify-email");
    signed_up(&app, "contested@home.test").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v2/auth/verify-email",
        None,
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("CONFLICT")),
        "{body}"
    );
    let (_, me) = send(&app, Method::GET, "/api/v2/me", Some(&session), None).await;
    assert_eq!(me["data"]["user"]["email"], "new.address@home.test", "{me}");
}
