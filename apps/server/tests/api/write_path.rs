//! The write path, route by route: the change events each write route records in its
//! transaction (read back from the audit table by the request's id), and the caches
//! the after-commit dispatcher retires — on a **second instance** sharing the database
//! and Redis, which learns of them only through the invalidation bus.
//!
//! The table below is the contract: one row per write route (method and path
//! template), the events it records and the invalidations that must reach the other
//! instance. `every_write_route_is_in_the_table` fails when a write route is added
//! without a row.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::test;
use permissions_cache::Invalidation;
use pto_server::startup::app;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{BOOTSTRAP_TOKEN, TestContext, json_body, send, signed_up};

crate::backend_tests!(every_write_route_records_its_events_and_retires_caches_everywhere);

/// Write routes that change nothing: reads sent as `POST` (a body of keys or changes).
const READS_BY_POST: &[&str] = &[
    "POST /api/v2/orgs/{org_id}/permissions/preview",
    "POST /api/v2/orgs/{org_id}/permissions/check",
];

/// What must reach the other instance after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The permission engine retires the org (table and every member).
    Org(Uuid),
    /// The permission engine retires one member.
    Member(Uuid, Uuid),
    /// The directory cache retires at least one org's pages.
    Directory,
}

struct World<S, B> {
    ctx: TestContext,
    a: S,
    body: std::marker::PhantomData<B>,
    b_state: actix_web::web::Data<pto_server::state::AppState>,
    /// The other instance, when Redis connects the two (PostgreSQL runs); on SQLite the
    /// dispatcher is checked on the writing instance itself.
    shared: bool,
    covered: BTreeSet<String>,
    n: u32,
}

impl<S, B> World<S, B>
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    /// One row of the table: sends the write to instance A as `token`, checks its status
    /// is 2xx, that exactly `events` were recorded (in any order, with multiplicity) under
    /// its request id, and that every expected invalidation reached the other instance.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &mut self,
        route: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
        events: &[&str],
        expect: &[Expect],
    ) -> Value {
        let (method, _) = route.split_once(' ').expect("METHOD /path");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        self.covered.insert(route.to_owned());
        self.n += 1;
        let request_id = format!("wp-{}-{}", self.n, Uuid::now_v7().simple());
        let watched = if self.shared {
            &self.b_state
        } else {
            &self.ctx.state
        };
        let mut perm = watched.authz.cache().applied_invalidations();
        let directory_before = watched.directory_cache.stats().invalidations_applied;

        let mut req = test::TestRequest::default()
            .method(method)
            .uri(uri)
            .insert_header(("x-request-id", request_id.clone()));
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        if let Some(b) = body {
            req = req.set_json(b);
        }
        let res = test::call_service(&self.a, req.to_request()).await;
        let status = res.status().as_u16();
        let bytes = test::read_body(res).await;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!((200..300).contains(&status), "{route}: {status} {body}");

        let mut recorded = self.recorded(&request_id).await;
        recorded.sort();
        let mut wanted: Vec<String> = events.iter().map(|e| (*e).to_owned()).collect();
        wanted.sort();
        assert_eq!(
            recorded, wanted,
            "{route}: the events recorded under its request"
        );

        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pending: Vec<Invalidation> = expect
            .iter()
            .filter_map(|e| match *e {
                Expect::Org(org) => Some(Invalidation::Org(org)),
                Expect::Member(org, user) => Some(Invalidation::Member { org, user }),
                Expect::Directory => None,
            })
            .collect();
        while !pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, perm.recv()).await {
                Ok(Ok(seen)) => pending.retain(|p| *p != seen),
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => panic!("{route}: invalidation stream closed: {e}"),
                Err(_) => panic!("{route}: never applied on the other instance: {pending:?}"),
            }
        }
        if expect.contains(&Expect::Directory) {
            while watched.directory_cache.stats().invalidations_applied == directory_before {
                assert!(
                    Instant::now() < deadline,
                    "{route}: the directory was not retired on the other instance"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        body
    }

    /// The token of the latest queued message of `template` to `to` (read from the
    /// outbox, as the mail worker would send it).
    async fn outbox_token(&self, to: &str, template: &str) -> String {
        use sea_orm::ConnectionTrait;
        let db = self.ctx.state.db.primary();
        let sql = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                "SELECT payload FROM mail_outbox WHERE recipient = $1 AND template = $2 ORDER BY id DESC"
            }
            _ => {
                "SELECT payload FROM mail_outbox WHERE recipient = ? AND template = ? ORDER BY id DESC"
            }
        };
        let row = db
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                db.get_database_backend(),
                sql,
                [to.into(), template.into()],
            ))
            .await
            .expect("read the outbox")
            .unwrap_or_else(|| panic!("no {template} message to {to}"));
        let payload: String = row
            .try_get::<String>("", "payload")
            .or_else(|_| row.try_get::<Value>("", "payload").map(|v| v.to_string()))
            .expect("payload");
        let at = payload.find("token=").expect("a link with a token") + "token=".len();
        payload[at..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect()
    }

    /// The actions recorded under `request_id`.
    async fn recorded(&self, request_id: &str) -> Vec<String> {
        use sea_orm::ConnectionTrait;
        let db = self.ctx.state.db.primary();
        let sql = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => "SELECT action FROM audit_events WHERE request_id = $1",
            _ => "SELECT action FROM audit_events WHERE request_id = ?",
        };
        db.query_all_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [request_id.into()],
        ))
        .await
        .expect("read the audit table")
        .iter()
        .map(|row| row.try_get::<String>("", "action").expect("action"))
        .collect()
    }
}

fn id(body: &Value, pointer: &str) -> String {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {body}"))
        .to_owned()
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("uuid")
}

/// A successful GET's body.
async fn get<S, B>(app: &S, token: &str, uri: &str) -> Value
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (status, body) = send(app, Method::GET, uri, Some(token), None).await;
    assert_eq!(status, 200, "GET {uri}: {body}");
    body
}

#[allow(clippy::too_many_lines)]
async fn every_write_route_records_its_events_and_retires_caches_everywhere(ctx: TestContext) {
    let shared = ctx.settings.redis_url.is_some();
    let b_state = ctx.another_instance().await;
    let a = test::init_service(app(ctx.state.clone(), ctx.api.clone())).await;
    let b = test::init_service(app(b_state.clone(), ctx.api.clone())).await;
    let write_routes: BTreeSet<String> = ctx
        .api
        .routes()
        .iter()
        .filter(|r| r.method != Method::GET && r.method != Method::HEAD)
        .map(|r| format!("{} {}", r.method, r.path))
        .filter(|r| !READS_BY_POST.contains(&r.as_str()))
        .collect();
    let mut w = World {
        ctx,
        a,
        body: std::marker::PhantomData,
        b_state,
        shared,
        covered: BTreeSet::new(),
        n: 0,
    };
    use Expect::{Directory, Member, Org};

    // Accounts and the platform.
    w.write(
            "POST /api/v2/auth/register",
            "/api/v2/auth/register",
            None,
            Some(json!({"email": "root@wp.test", "password": "correct horse battery", "first_name": "Root", "last_name": "Admin"})),
            &["auth.register", "auth.email_verification_sent"],
            &[],
        )
        .await;
    let login = w
        .write(
            "POST /api/v2/auth/login",
            "/api/v2/auth/login",
            None,
            Some(json!({"email": "root@wp.test", "password": "correct horse battery"})),
            &["auth.sign_in"],
            &[],
        )
        .await;
    let root = id(&login, "/data/token");
    w.write(
        "POST /api/v2/platform/bootstrap",
        "/api/v2/platform/bootstrap",
        Some(&root),
        Some(json!({"token": BOOTSTRAP_TOKEN})),
        &["platform.admin_bootstrap"],
        &[],
    )
    .await;

    // District, school, staff.
    let d = w
        .write(
            "POST /api/v2/districts",
            "/api/v2/districts",
            Some(&root),
            Some(json!({"name": "Springfield", "code": "SPRING"})),
            &["district.create"],
            &[],
        )
        .await;
    let district = id(&d, "/data/id");
    let d = w
        .write(
            "PATCH /api/v2/districts/{district_id}",
            &format!("/api/v2/districts/{district}"),
            Some(&root),
            Some(json!({"name": "Springfield USD", "version": 1})),
            &["district.update"],
            &[],
        )
        .await;
    let district_version = d["data"]["version"].as_i64().expect("version");
    let s = w
        .write(
            "POST /api/v2/districts/{district_id}/schools",
            &format!("/api/v2/districts/{district}/schools"),
            Some(&root),
            Some(json!({"name": "Evergreen", "code": "EVERGREEN", "grade_levels": ["K"]})),
            &["school.create"],
            &[],
        )
        .await;
    let school = id(&s, "/data/id");
    let (staff_id, staff) = signed_up(&w.a, "staff@wp.test").await;
    w.write(
        "PUT /api/v2/districts/{district_id}/staff/{user_id}",
        &format!("/api/v2/districts/{district}/staff/{staff_id}"),
        Some(&root),
        Some(json!({"role": "district_admin", "version": 0})),
        &["district_staff.add"],
        &[],
    )
    .await;

    // A second school, edited and deleted; a second staff member, removed.
    let s2 = w
        .write(
            "POST /api/v2/districts/{district_id}/schools",
            &format!("/api/v2/districts/{district}/schools"),
            Some(&root),
            Some(json!({"name": "Oakwood", "code": "OAKWOOD"})),
            &["school.create"],
            &[],
        )
        .await;
    let school2 = id(&s2, "/data/id");
    w.write(
        "PATCH /api/v2/schools/{school_id}",
        &format!("/api/v2/schools/{school2}"),
        Some(&root),
        Some(json!({"version": 1, "name": "Oakwood Elementary"})),
        &["school.update"],
        &[],
    )
    .await;
    w.write(
        "DELETE /api/v2/schools/{school_id}",
        &format!("/api/v2/schools/{school2}?version=2"),
        Some(&root),
        None,
        &["school.delete"],
        &[],
    )
    .await;
    let (viewer_id, _) = signed_up(&w.a, "viewer@wp.test").await;
    w.write(
        "PUT /api/v2/districts/{district_id}/staff/{user_id}",
        &format!("/api/v2/districts/{district}/staff/{viewer_id}"),
        Some(&root),
        Some(json!({"role": "district_viewer", "version": 0})),
        &["district_staff.add"],
        &[],
    )
    .await;
    w.write(
        "DELETE /api/v2/districts/{district_id}/staff/{user_id}",
        &format!("/api/v2/districts/{district}/staff/{viewer_id}"),
        Some(&staff),
        None,
        &["district_staff.remove"],
        &[],
    )
    .await;

    // Orgs: one under the school (district staff), one standalone.
    let o = w
        .write(
            "POST /api/v2/districts/{district_id}/orgs",
            &format!("/api/v2/districts/{district}/orgs"),
            Some(&staff),
            Some(json!({"name": "Evergreen PTO", "school_id": school, "signup_code": "EVERGRN1"})),
            &["org.create", "member.create"],
            &[],
        )
        .await;
    let org = id(&o, "/data/id");
    let org_id = uuid(&org);
    let (admin_id, admin) = signed_up(&w.a, "admin@wp.test").await;
    let o = w
        .write(
            "POST /api/v2/orgs",
            "/api/v2/orgs",
            Some(&admin),
            Some(json!({"name": "Riverside PTA", "kind": "pta", "signup_code": "RIVERSD1"})),
            &["org.create", "member.create"],
            &[],
        )
        .await;
    let org2 = id(&o, "/data/org/id");
    let org2_id = uuid(&org2);
    let admin_uuid = uuid(&admin_id);
    // Warm the other instance: the admin's membership and the org's table are cached.
    let _ = get(&b, &admin, &format!("/api/v2/orgs/{org2}/users")).await;
    let (vol_id, vol) = signed_up(&w.a, "vol@wp.test").await;
    let vol_uuid = uuid(&vol_id);
    w.write(
        "POST /api/v2/orgs/join",
        "/api/v2/orgs/join",
        Some(&vol),
        Some(json!({"signup_code": "RIVERSD1"})),
        &["member.join"],
        &[Member(org2_id, vol_uuid), Directory],
    )
    .await;
    let (leaver_id, leaver) = signed_up(&w.a, "leaver@wp.test").await;
    let (status, joined) = send(
        &w.a,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&leaver),
        Some(json!({"signup_code": "RIVERSD1"})),
    )
    .await;
    assert_eq!(status, 201, "{joined}");
    w.write(
        "DELETE /api/v2/orgs/{org_id}/me",
        &format!("/api/v2/orgs/{org2}/me"),
        Some(&leaver),
        None,
        &["member.leave"],
        &[Member(org2_id, uuid(&leaver_id)), Directory],
    )
    .await;
    w.write(
        "PUT /api/v2/orgs/{org_id}/member-retention",
        &format!("/api/v2/orgs/{org2}/member-retention"),
        Some(&admin),
        Some(json!({"removed_member_days": 200, "version": 0})),
        &["org.update"],
        &[Directory],
    )
    .await;
    // Personal data exports: the person's own, and an org admin's on a member's request.
    w.write(
        "POST /api/v2/me/data-export",
        "/api/v2/me/data-export",
        Some(&vol),
        None,
        &["data.export"],
        &[],
    )
    .await;
    w.write(
        "POST /api/v2/orgs/{org_id}/users/{user_id}/data-export",
        &format!("/api/v2/orgs/{org2}/users/{vol_id}/data-export"),
        Some(&admin),
        None,
        &["data.export"],
        &[],
    )
    .await;
    // Erasure: by an admin (the account goes with it: nothing else holds it), and of
    // one's own account.
    for (email, by_admin) in [("erased@wp.test", true), ("quitter@wp.test", false)] {
        let (erased_id, erased) = signed_up(&w.a, email).await;
        let (status, joined) = send(
            &w.a,
            Method::POST,
            "/api/v2/orgs/join",
            Some(&erased),
            Some(json!({"signup_code": "RIVERSD1"})),
        )
        .await;
        assert_eq!(status, 201, "{joined}");
        let _ = get(&b, &admin, &format!("/api/v2/orgs/{org2}/users")).await;
        if by_admin {
            w.write(
                "POST /api/v2/orgs/{org_id}/users/{user_id}/erase",
                &format!("/api/v2/orgs/{org2}/users/{erased_id}/erase"),
                Some(&admin),
                Some(json!({"reason": "asked by e-mail"})),
                &["member.erase", "user.erase"],
                &[Member(org2_id, uuid(&erased_id)), Directory],
            )
            .await;
        } else {
            w.write(
                "DELETE /api/v2/me",
                "/api/v2/me",
                Some(&erased),
                Some(json!({"password": "correct horse battery"})),
                &["member.erase", "user.erase"],
                &[Member(org2_id, uuid(&erased_id)), Directory],
            )
            .await;
        }
    }
    let current = get(&w.a, &admin, &format!("/api/v2/orgs/{org2}")).await;
    let o = w
        .write(
            "PATCH /api/v2/orgs/{org_id}",
            &format!("/api/v2/orgs/{org2}"),
            Some(&admin),
            Some(json!({"name": "Riverside PTSA", "version": current["data"]["version"]})),
            &["org.update"],
            &[],
        )
        .await;
    let _ = o;
    w.write(
        "POST /api/v2/orgs/{org_id}/signup-code",
        &format!("/api/v2/orgs/{org2}/signup-code"),
        Some(&admin),
        None,
        &["org.signup_code.rotate"],
        &[],
    )
    .await;

    // Permissions.
    let matrix = get(&w.a, &admin, &format!("/api/v2/orgs/{org2}/permissions")).await;
    let version = matrix["data"]["version"].as_u64().expect("version");
    let saved = w
        .write(
            "PUT /api/v2/orgs/{org_id}/permissions/settings",
            &format!("/api/v2/orgs/{org2}/permissions/settings"),
            Some(&admin),
            Some(json!({"version": version, "changes": [{"key": "events.create", "min_role": "volunteer"}]})),
            &["permission.update"],
            &[Org(org2_id)],
        )
        .await;
    let version = saved["data"]["version"].as_u64().expect("version");
    w.write(
        "POST /api/v2/orgs/{org_id}/permissions/reset",
        &format!("/api/v2/orgs/{org2}/permissions/reset"),
        Some(&admin),
        Some(json!({"version": version, "module": "events"})),
        &["permission.update"],
        &[Org(org2_id)],
    )
    .await;
    w.write(
        "POST /api/v2/orgs/{org_id}/permissions/grants",
        &format!("/api/v2/orgs/{org2}/permissions/grants"),
        Some(&admin),
        Some(json!({"user_id": vol_id, "key": "budget.view", "reason": "treasurer backup"})),
        &["permission.grant"],
        &[Org(org2_id)],
    )
    .await;
    w.write(
        "DELETE /api/v2/orgs/{org_id}/permissions/grants/{user_id}/{key}",
        &format!("/api/v2/orgs/{org2}/permissions/grants/{vol_id}/budget.view"),
        Some(&admin),
        None,
        &["permission.revoke"],
        &[Org(org2_id)],
    )
    .await;
    let role = w
        .write(
            "POST /api/v2/orgs/{org_id}/roles",
            &format!("/api/v2/orgs/{org2}/roles"),
            Some(&admin),
            Some(json!({"name": "Treasurer", "counts_as": "board_member", "extra_keys": ["budget.view"], "max_holders": 1})),
            &["role.create"],
            &[Org(org2_id)],
        )
        .await;
    let role_id = id(&role, "/data/id");
    let _ = get(&b, &admin, &format!("/api/v2/orgs/{org2}/users")).await;
    w.write(
        "PATCH /api/v2/orgs/{org_id}/roles/{role_id}",
        &format!("/api/v2/orgs/{org2}/roles/{role_id}"),
        Some(&admin),
        Some(json!({"version": 1, "name": "Bursar", "extra_keys": ["budget.approve"]})),
        &["role.update"],
        &[Org(org2_id)],
    )
    .await;
    let spare = w
        .write(
            "POST /api/v2/orgs/{org_id}/roles",
            &format!("/api/v2/orgs/{org2}/roles"),
            Some(&admin),
            Some(json!({"name": "Spare", "counts_as": "volunteer"})),
            &["role.create"],
            &[Org(org2_id)],
        )
        .await;
    let spare_id = id(&spare, "/data/id");
    w.write(
        "DELETE /api/v2/orgs/{org_id}/roles/{role_id}",
        &format!("/api/v2/orgs/{org2}/roles/{spare_id}?version=1"),
        Some(&admin),
        None,
        &["role.delete"],
        &[Org(org2_id)],
    )
    .await;

    // Members.
    let _ = get(&b, &admin, &format!("/api/v2/orgs/{org2}/users")).await;
    let added = w
        .write(
            "POST /api/v2/orgs/{org_id}/users",
            &format!("/api/v2/orgs/{org2}/users"),
            Some(&admin),
            Some(json!({"email": "new.parent@wp.test", "first_name": "Ana", "last_name": "Núñez"})),
            &["member.invite"],
            &[Directory],
        )
        .await;
    let invitation = id(&added, "/data/id");
    w.write(
        "POST /api/v2/orgs/{org_id}/invitations/{invitation_id}/resend",
        &format!("/api/v2/orgs/{org2}/invitations/{invitation}/resend"),
        Some(&admin),
        None,
        &["invitation.resend"],
        &[Directory],
    )
    .await;
    w.write(
        "DELETE /api/v2/orgs/{org_id}/invitations/{invitation_id}",
        &format!("/api/v2/orgs/{org2}/invitations/{invitation}"),
        Some(&admin),
        None,
        &["invitation.revoke"],
        &[Directory],
    )
    .await;
    let _ = get(&b, &vol, &format!("/api/v2/orgs/{org2}/users")).await;
    let current = get(&w.a, &admin, &format!("/api/v2/orgs/{org2}/users/{vol_id}")).await;
    w.write(
        "PATCH /api/v2/orgs/{org_id}/users/{user_id}",
        &format!("/api/v2/orgs/{org2}/users/{vol_id}"),
        Some(&admin),
        Some(json!({"role": "committee_lead", "version": current["data"]["version"]})),
        &["member.update"],
        &[Member(org2_id, vol_uuid), Directory],
    )
    .await;
    let current = get(&w.a, &vol, &format!("/api/v2/orgs/{org2}/users/{vol_id}")).await;
    w.write(
        "PATCH /api/v2/orgs/{org_id}/me",
        &format!("/api/v2/orgs/{org2}/me"),
        Some(&vol),
        Some(json!({"committee": "Book fair", "version": current["data"]["version"]})),
        &["member.update"],
        &[Member(org2_id, vol_uuid), Directory],
    )
    .await;
    // Directory privacy: a member's choices retire the org's directory pages (and the
    // member), the org's policy its pages.
    let _ = get(&b, &vol, &format!("/api/v2/orgs/{org2}/users")).await;
    w.write(
        "PUT /api/v2/orgs/{org_id}/me/privacy",
        &format!("/api/v2/orgs/{org2}/me/privacy"),
        Some(&vol),
        Some(json!({"email": "hidden", "version": 0})),
        &["member.update"],
        &[Member(org2_id, vol_uuid), Directory],
    )
    .await;
    // Confirming one's details (the yearly cycle) changes the membership.
    let _ = get(&b, &vol, &format!("/api/v2/orgs/{org2}/users")).await;
    w.write(
        "POST /api/v2/orgs/{org_id}/me/confirm-details",
        &format!("/api/v2/orgs/{org2}/me/confirm-details"),
        Some(&vol),
        None,
        &["member.update"],
        &[Member(org2_id, vol_uuid), Directory],
    )
    .await;
    let _ = get(&b, &vol, &format!("/api/v2/orgs/{org2}/users")).await;
    w.write(
        "PUT /api/v2/orgs/{org_id}/directory-policy",
        &format!("/api/v2/orgs/{org2}/directory-policy"),
        Some(&admin),
        Some(json!({"version": 0, "phone": true, "email": true, "committee": true, "children_and_grades": false, "listing": "opt_out"})),
        &["org.update"],
        &[Directory],
    )
    .await;
    w.write(
        "POST /api/v2/orgs/{org_id}/users/bulk-update",
        &format!("/api/v2/orgs/{org2}/users/bulk-update"),
        Some(&admin),
        Some(json!({"user_ids": [vol_id], "status": "suspended"})),
        &["member.update"],
        &[Member(org2_id, vol_uuid), Directory],
    )
    .await;
    w.write(
        "DELETE /api/v2/orgs/{org_id}/users/{user_id}",
        &format!("/api/v2/orgs/{org2}/users/{vol_id}"),
        Some(&admin),
        None,
        &["member.remove"],
        &[Member(org2_id, vol_uuid), Directory],
    )
    .await;
    w.write(
        "POST /api/v2/orgs/{org_id}/users/{user_id}/restore",
        &format!("/api/v2/orgs/{org2}/users/{vol_id}/restore"),
        Some(&admin),
        None,
        &["member.restore"],
        &[Member(org2_id, vol_uuid), Directory],
    )
    .await;
    let first = w
        .write(
            "POST /api/v2/orgs/{org_id}/users/bulk-remove",
            &format!("/api/v2/orgs/{org2}/users/bulk-remove"),
            Some(&admin),
            Some(json!({"user_ids": [vol_id]})),
            &[],
            &[],
        )
        .await;
    let confirmation = id(&first, "/data/confirmation_token");
    w.write(
        "POST /api/v2/orgs/{org_id}/users/bulk-remove",
        &format!("/api/v2/orgs/{org2}/users/bulk-remove"),
        Some(&admin),
        Some(json!({"user_ids": [vol_id], "confirmation_token": confirmation})),
        &["member.remove"],
        &[Member(org2_id, vol_uuid), Directory],
    )
    .await;

    // API keys: the other instance accepts the key, then refuses it once revoked.
    let key = w
        .write(
            "POST /api/v2/orgs/{org_id}/api-keys",
            &format!("/api/v2/orgs/{org2}/api-keys"),
            Some(&admin),
            Some(json!({"name": "Newsletter sync", "permissions": ["users.view"], "expires_in_days": 30})),
            &["api_key.create"],
            &[],
        )
        .await;
    let key_id = id(&key, "/data/key/id");
    let key_token = id(&key, "/data/token");
    let users2 = format!("/api/v2/orgs/{org2}/users");
    let _ = get(&b, &key_token, &users2).await;
    w.write(
        "DELETE /api/v2/orgs/{org_id}/api-keys/{key_id}",
        &format!("/api/v2/orgs/{org2}/api-keys/{key_id}"),
        Some(&admin),
        None,
        &["api_key.revoke"],
        &[],
    )
    .await;
    if w.shared {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let req = test::TestRequest::get()
                .uri(&users2)
                .insert_header(("authorization", format!("Bearer {key_token}")))
                .to_request();
            let status = test::call_service(&b, req).await.status().as_u16();
            if status == 401 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the other instance still accepts the revoked key ({status})"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // Audit settings and jobs.
    w.write(
        "PUT /api/v2/orgs/{org_id}/audit-logs/retention",
        &format!("/api/v2/orgs/{org2}/audit-logs/retention"),
        Some(&admin),
        Some(json!({"days": 400, "version": 0})),
        &["audit.retention_update"],
        &[],
    )
    .await;
    let import = {
        let route = "POST /api/v2/orgs/{org_id}/users/import";
        w.covered.insert(route.to_owned());
        let req = test::TestRequest::post()
            .uri(&format!("/api/v2/orgs/{org2}/users/import"))
            .insert_header(("authorization", format!("Bearer {admin}")))
            .insert_header(("content-type", "text/csv"))
            .set_payload("email,first_name,last_name\nzoe@wp.test,Zoë,Ōta\n")
            .to_request();
        let res = test::call_service(&w.a, req).await;
        assert_eq!(res.status().as_u16(), 202, "{route}");
        json_body(res).await
    };
    let job = id(&import, "/data/id");
    w.write(
        "POST /api/v2/orgs/{org_id}/jobs/{job_id}/cancel",
        &format!("/api/v2/orgs/{org2}/jobs/{job}/cancel"),
        Some(&admin),
        None,
        &["job.cancel"],
        &[],
    )
    .await;

    // Templates above the org reach it through its own event.
    let _ = get(&b, &staff, &format!("/api/v2/orgs/{org}/users")).await;
    let version = get(
        &b,
        &staff,
        &format!("/api/v2/districts/{district}/permission-templates"),
    )
    .await["data"]["version"]
        .clone();
    w.write(
        "PUT /api/v2/districts/{district_id}/permission-templates/{key}",
        &format!("/api/v2/districts/{district}/permission-templates/events.create"),
        Some(&staff),
        Some(json!({"min_role": "board_member", "enabled": true, "locked": true, "version": version})),
        &["permission.update", "permission.inherited_update"],
        &[Org(org_id)],
    )
    .await;
    w.write(
        "DELETE /api/v2/districts/{district_id}/permission-templates/{key}",
        &format!("/api/v2/districts/{district}/permission-templates/events.create"),
        Some(&staff),
        None,
        &["permission.update", "permission.inherited_update"],
        &[Org(org_id)],
    )
    .await;
    let version = get(
        &b,
        &staff,
        &format!("/api/v2/schools/{school}/permission-templates"),
    )
    .await["data"]["version"]
        .clone();
    w.write(
        "PUT /api/v2/schools/{school_id}/permission-templates/{key}",
        &format!("/api/v2/schools/{school}/permission-templates/budget.view"),
        Some(&staff),
        Some(json!({"min_role": "committee_lead", "enabled": true, "version": version})),
        &["permission.update", "permission.inherited_update"],
        &[Org(org_id)],
    )
    .await;
    w.write(
        "DELETE /api/v2/schools/{school_id}/permission-templates/{key}",
        &format!("/api/v2/schools/{school}/permission-templates/budget.view"),
        Some(&staff),
        None,
        &["permission.update", "permission.inherited_update"],
        &[Org(org_id)],
    )
    .await;
    // Many keys at once: one pair of events per changed key.
    let version = get(
        &b,
        &staff,
        &format!("/api/v2/districts/{district}/permission-templates"),
    )
    .await["data"]["version"]
        .clone();
    w.write(
        "PUT /api/v2/districts/{district_id}/permission-templates",
        &format!("/api/v2/districts/{district}/permission-templates"),
        Some(&staff),
        Some(json!({"version": version, "set": [
            {"key": "events.edit", "min_role": "board_member", "enabled": true},
            {"key": "events.delete", "min_role": "admin", "enabled": true, "locked": true},
        ]})),
        &[
            "permission.update",
            "permission.update",
            "permission.inherited_update",
            "permission.inherited_update",
        ],
        &[Org(org_id)],
    )
    .await;
    let version = get(
        &b,
        &staff,
        &format!("/api/v2/schools/{school}/permission-templates"),
    )
    .await["data"]["version"]
        .clone();
    w.write(
        "PUT /api/v2/schools/{school_id}/permission-templates",
        &format!("/api/v2/schools/{school}/permission-templates"),
        Some(&staff),
        Some(json!({"version": version, "set": [
            {"key": "budget.view", "min_role": "committee_lead", "enabled": true},
        ]})),
        &["permission.update", "permission.inherited_update"],
        &[Org(org_id)],
    )
    .await;

    // Placement: the org leaves its school and comes back; the school leaves the
    // district; the district is deleted.
    w.write(
        "POST /api/v2/orgs/{org_id}/move",
        &format!("/api/v2/orgs/{org}/move"),
        Some(&root),
        Some(json!({"school_id": null})),
        &["org.move", "org.move"],
        &[Org(org_id)],
    )
    .await;
    w.write(
        "POST /api/v2/orgs/{org_id}/move",
        &format!("/api/v2/orgs/{org}/move"),
        Some(&root),
        Some(json!({"school_id": school})),
        &["org.move", "org.move"],
        &[Org(org_id)],
    )
    .await;
    w.write(
        "POST /api/v2/schools/{school_id}/move",
        &format!("/api/v2/schools/{school}/move"),
        Some(&root),
        Some(json!({"district_id": null})),
        &["school.move", "org.district.change"],
        &[Org(org_id)],
    )
    .await;
    let d = get(&w.a, &root, &format!("/api/v2/districts/{district}")).await;
    let district_version = d["data"]["version"].as_i64().unwrap_or(district_version);
    w.write(
        "DELETE /api/v2/districts/{district_id}",
        &format!("/api/v2/districts/{district}?version={district_version}"),
        Some(&root),
        None,
        &["district.delete"],
        &[],
    )
    .await;

    // An org deleted: its members, keys and jobs stop at once.
    let o = w
        .write(
            "POST /api/v2/orgs",
            "/api/v2/orgs",
            Some(&admin),
            Some(json!({"name": "Short-lived PTO", "signup_code": "SHORTLV1"})),
            &["org.create", "member.create"],
            &[],
        )
        .await;
    let org3 = id(&o, "/data/org/id");
    let _ = get(&b, &admin, &format!("/api/v2/orgs/{org3}/users")).await;
    w.write(
        "DELETE /api/v2/orgs/{org_id}",
        &format!("/api/v2/orgs/{org3}?version=1"),
        Some(&admin),
        None,
        &["org.delete"],
        &[Org(uuid(&org3))],
    )
    .await;

    // Sessions and passwords.
    let second = w
        .write(
            "POST /api/v2/auth/login",
            "/api/v2/auth/login",
            None,
            Some(json!({"email": "admin@wp.test", "password": "correct horse battery"})),
            &["auth.sign_in"],
            &[Directory],
        )
        .await;
    let second_token = id(&second, "/data/token");
    let sessions = get(&w.a, &admin, "/api/v2/auth/sessions").await;
    let other_session = sessions["data"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["current"] != true)
        .map(|s| id(s, "/id"))
        .expect("a second session");
    w.write(
        "DELETE /api/v2/auth/sessions/{session_id}",
        &format!("/api/v2/auth/sessions/{other_session}"),
        Some(&admin),
        None,
        &["auth.sign_out"],
        &[],
    )
    .await;
    let _ = second_token;
    w.write(
        "POST /api/v2/auth/password",
        "/api/v2/auth/password",
        Some(&admin),
        Some(json!({"current_password": "correct horse battery", "new_password": "another long passphrase"})),
        &["auth.password_change"],
        &[],
    )
    .await;
    w.write(
        "POST /api/v2/auth/logout",
        "/api/v2/auth/logout",
        Some(&admin),
        None,
        &["auth.sign_out"],
        &[],
    )
    .await;
    let _ = admin_uuid;

    // Links by e-mail: the tokens are read from the queued messages.
    let (_, cara) = signed_up(&w.a, "cara@wp.test").await;
    let verify = w.outbox_token("cara@wp.test", "verify_email").await;
    w.write(
        "POST /api/v2/auth/verify-email/resend",
        "/api/v2/auth/verify-email/resend",
        Some(&cara),
        None,
        &["auth.email_verification_sent"],
        &[],
    )
    .await;
    let verify_again = w.outbox_token("cara@wp.test", "verify_email").await;
    assert_ne!(verify, verify_again);
    w.write(
        "POST /api/v2/auth/verify-email",
        "/api/v2/auth/verify-email",
        None,
        Some(json!({"token": verify_again})),
        &["auth.email_verified"],
        &[],
    )
    .await;
    w.write(
        "POST /api/v2/auth/password-reset",
        "/api/v2/auth/password-reset",
        None,
        Some(json!({"email": "cara@wp.test"})),
        &["auth.password_reset_request"],
        &[],
    )
    .await;
    let reset = w.outbox_token("cara@wp.test", "password_reset").await;
    w.write(
        "POST /api/v2/auth/password-reset/confirm",
        "/api/v2/auth/password-reset/confirm",
        None,
        Some(json!({"token": reset, "password": "cara's new passphrase"})),
        &["auth.password_reset"],
        &[],
    )
    .await;
    let cara = crate::helpers::login(&w.a, "cara@wp.test", "cara's new passphrase").await;
    let cara_id = get(&w.a, &cara, "/api/v2/me").await["data"]["user"]["id"]
        .as_str()
        .map(uuid)
        .expect("id");
    let invite = |email: &str| json!({"email": email, "first_name": "Cara", "last_name": "Lind"});
    let (status, _) = send(
        &w.a,
        Method::POST,
        &format!("/api/v2/orgs/{org2}/users"),
        Some(&admin_token_after_password(&w.a).await),
        Some(invite("cara@wp.test")),
    )
    .await;
    assert_eq!(status, 201);
    let invited = w.outbox_token("cara@wp.test", "invitation").await;
    w.write(
        "POST /api/v2/invitations/accept",
        "/api/v2/invitations/accept",
        Some(&cara),
        Some(json!({"token": invited})),
        &["invitation.accept", "member.create", "auth.sign_in"],
        &[Member(org2_id, cara_id), Directory],
    )
    .await;
    let list = get(&w.a, &cara, "/api/v2/me/invitations").await;
    assert_eq!(list["data"], json!([]));
    for (email, route, verb, events) in [
        (
            "dan@wp.test",
            "POST /api/v2/me/invitations/{invitation_id}/accept",
            "accept",
            &["invitation.accept", "member.create"][..],
        ),
        (
            "eve@wp.test",
            "POST /api/v2/me/invitations/{invitation_id}/decline",
            "decline",
            &["invitation.decline"][..],
        ),
    ] {
        let (_, who) = signed_up(&w.a, email).await;
        let token = w.outbox_token(email, "verify_email").await;
        let (status, _) = send(
            &w.a,
            Method::POST,
            "/api/v2/auth/verify-email",
            None,
            Some(json!({"token": token})),
        )
        .await;
        assert_eq!(status, 200);
        let admin = admin_token_after_password(&w.a).await;
        let (status, _) = send(
            &w.a,
            Method::POST,
            &format!("/api/v2/orgs/{org2}/users"),
            Some(&admin),
            Some(invite(email)),
        )
        .await;
        assert_eq!(status, 201);
        let pending = get(&w.a, &who, "/api/v2/me/invitations").await;
        let inv = id(&pending, "/data/0/id");
        w.write(
            route,
            &format!("/api/v2/me/invitations/{inv}/{verb}"),
            Some(&who),
            None,
            events,
            &[Directory],
        )
        .await;
    }

    // Refresh tokens and two-factor sign-in.
    let (_, sec) = signed_up(&w.a, "sec@wp.test").await;
    let (status, session) = send(
        &w.a,
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(json!({"email": "sec@wp.test", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    w.write(
        "POST /api/v2/auth/refresh",
        "/api/v2/auth/refresh",
        None,
        Some(json!({"refresh_token": id(&session, "/data/refresh_token")})),
        &["auth.token_refresh"],
        &[],
    )
    .await;
    let enrolment = w
        .write(
            "POST /api/v2/me/2fa/totp",
            "/api/v2/me/2fa/totp",
            Some(&sec),
            None,
            &["auth.two_factor_enrol"],
            &[],
        )
        .await;
    let secret = id(&enrolment, "/data/secret");
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).expect("after 1970");
    let code = |at: u64| credentials::secrets::totp_code_base32(&secret, at).expect("code");
    w.write(
        "POST /api/v2/me/2fa/totp/confirm",
        "/api/v2/me/2fa/totp/confirm",
        Some(&sec),
        Some(json!({"code": code(now)})),
        &["auth.two_factor_enable"],
        &[],
    )
    .await;
    let (status, challenge) = send(
        &w.a,
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(json!({"email": "sec@wp.test", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 200, "{challenge}");
    w.write(
        "POST /api/v2/auth/login/2fa",
        "/api/v2/auth/login/2fa",
        None,
        Some(json!({"challenge": id(&challenge, "/data/challenge"), "code": code(now + 30)})),
        &["auth.sign_in"],
        &[],
    )
    .await;
    w.write(
        "POST /api/v2/me/2fa/totp/disable",
        "/api/v2/me/2fa/totp/disable",
        Some(&sec),
        Some(json!({"password": "correct horse battery"})),
        &["auth.two_factor_disable"],
        &[],
    )
    .await;

    // Preferences and a new address (proven by the link sent to it).
    let account = get(&w.a, &sec, "/api/v2/me").await;
    w.write(
        "PATCH /api/v2/me",
        "/api/v2/me",
        Some(&sec),
        Some(json!({"locale": "es-MX", "version": account["data"]["version"]})),
        &["user.profile_update"],
        &[],
    )
    .await;
    w.write(
        "POST /api/v2/me/email",
        "/api/v2/me/email",
        Some(&sec),
        Some(json!({"email": "sec.new@wp.test", "password": "correct horse battery"})),
        &["auth.email_change_request"],
        &[],
    )
    .await;
    let change = w.outbox_token("sec.new@wp.test", "verify_email").await;
    let (status, body) = send(
        &w.a,
        Method::POST,
        "/api/v2/auth/verify-email",
        None,
        Some(json!({"token": change})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Notifications (issue #19): an announcement records `notification.send` (its
    // e-mails wake the mail worker; no cache holds notifications); the inbox and the
    // preferences are the caller's own and record nothing.
    let admin = admin_token_after_password(&w.a).await;
    w.write(
        "POST /api/v2/orgs/{org_id}/notifications",
        &format!("/api/v2/orgs/{org2}/notifications"),
        Some(&admin),
        Some(json!({"title": "Hello", "body": "To all.", "to": {"all": true}})),
        &["notification.send"],
        &[],
    )
    .await;
    let inbox = get(&w.a, &admin, "/api/v2/me/notifications").await;
    let item = id(&inbox, "/data/0/id");
    for (route, uri, method_body) in [
        (
            "POST /api/v2/me/notifications/{notification_id}/read",
            format!("/api/v2/me/notifications/{item}/read"),
            None,
        ),
        (
            "POST /api/v2/me/notifications/read-all",
            "/api/v2/me/notifications/read-all".to_owned(),
            None,
        ),
        (
            "DELETE /api/v2/me/notifications/{notification_id}",
            format!("/api/v2/me/notifications/{item}"),
            None,
        ),
        (
            "PUT /api/v2/me/notification-preferences",
            "/api/v2/me/notification-preferences".to_owned(),
            Some(json!({"version": 0})),
        ),
    ] {
        w.write(route, &uri, Some(&admin), method_body, &[], &[])
            .await;
    }

    // Webhooks (issue #19): every endpoint change and every queued message is audited;
    // no cache holds webhooks (the worker reads the database, woken by the dispatcher).
    let hooks = format!("/api/v2/orgs/{org2}/webhooks");
    let created = w
        .write(
            "POST /api/v2/orgs/{org_id}/webhooks",
            &hooks,
            Some(&admin),
            Some(json!({"url": "https://example.org/hook", "events": ["member.added"]})),
            &["webhook.create"],
            &[],
        )
        .await;
    let hook = id(&created, "/data/webhook/id");
    w.write(
        "PATCH /api/v2/orgs/{org_id}/webhooks/{webhook_id}",
        &format!("{hooks}/{hook}"),
        Some(&admin),
        Some(json!({"version": 1, "events": ["member.added", "member.removed"]})),
        &["webhook.update"],
        &[],
    )
    .await;
    w.write(
        "POST /api/v2/orgs/{org_id}/webhooks/{webhook_id}/rotate-secret",
        &format!("{hooks}/{hook}/rotate-secret"),
        Some(&admin),
        None,
        &["webhook.secret_rotate"],
        &[],
    )
    .await;
    let ping = w
        .write(
            "POST /api/v2/orgs/{org_id}/webhooks/{webhook_id}/ping",
            &format!("{hooks}/{hook}/ping"),
            Some(&admin),
            None,
            &["webhook.ping"],
            &[],
        )
        .await;
    let delivery = id(&ping, "/data/delivery_id");
    w.write(
        "POST /api/v2/orgs/{org_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
        &format!("{hooks}/{hook}/deliveries/{delivery}/redeliver"),
        Some(&admin),
        None,
        &["webhook.redeliver"],
        &[],
    )
    .await;
    w.write(
        "DELETE /api/v2/orgs/{org_id}/webhooks/{webhook_id}",
        &format!("{hooks}/{hook}"),
        Some(&admin),
        None,
        &["webhook.delete"],
        &[],
    )
    .await;

    let missing: Vec<&String> = write_routes.difference(&w.covered).collect();
    assert!(
        missing.is_empty(),
        "write routes without a row in the write-path table: {missing:?}"
    );
}

/// A fresh session of the table's org admin (after its password change and sign-out).
async fn admin_token_after_password<S, B>(app: &S) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    crate::helpers::login(app, "admin@wp.test", "another long passphrase").await
}
