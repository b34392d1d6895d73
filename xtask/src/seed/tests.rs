//! The seeds against real databases: a fresh SQLite file per test, and a fresh
//! PostgreSQL database too when `TEST_DATABASE_URL` is set. The demo's printed admin
//! signs in over the real HTTP API (in process), and the bulk dataset is read back
//! through the API to prove its rows decode like the stores' own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::test;
use persistence::Database;
use pto_server::config::Settings;
use pto_server::startup::{HashingCost, app, build_state};
use sea_orm::{ConnectionTrait as _, Statement, Value};
use serde_json::json;

use super::{connect, database_settings, demo, enterprise};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// SQLite always; PostgreSQL when `TEST_DATABASE_URL` names a server.
fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        out.push(Backend::Postgres);
    } else {
        eprintln!("TEST_DATABASE_URL unset: PostgreSQL variant skipped");
    }
    out
}

/// An isolated environment: a data directory and its database, removed on drop.
struct TestEnv {
    env: BTreeMap<String, String>,
    data_dir: PathBuf,
    pg: Option<(String, String)>,
}

impl TestEnv {
    async fn new(backend: Backend) -> Self {
        let data_dir =
            std::env::temp_dir().join(format!("ptoc-seed-{}", uuid::Uuid::now_v7().simple()));
        let mut env = BTreeMap::new();
        env.insert("DATA_DIR".to_owned(), data_dir.display().to_string());
        env.insert("BIND_ADDR".to_owned(), "127.0.0.1:0".to_owned());
        env.insert("DATABASE_MAX_CONNECTIONS".to_owned(), "4".to_owned());
        let mut pg = None;
        if backend == Backend::Postgres {
            let admin_url = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
            let name = format!("ptoc_seed_t_{}", uuid::Uuid::now_v7().simple());
            let admin = sea_orm::Database::connect(&admin_url)
                .await
                .expect("connect to TEST_DATABASE_URL");
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create the test database");
            admin.close().await.ok();
            env.insert("DATABASE_URL".to_owned(), with_database(&admin_url, &name));
            pg = Some((admin_url, name));
        }
        Self { env, data_dir, pg }
    }

    /// The database, opened and migrated exactly as `cargo xtask seed` does.
    async fn db(&self) -> Database {
        let settings = database_settings(&self.env).expect("settings");
        connect(&settings).await.expect("database")
    }

    /// The real app on the same database, as an in-process service.
    async fn service(
        &self,
    ) -> impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    > {
        let settings = Settings::from_sources(&self.env, false).expect("settings");
        let api = pto_server::routes::api();
        let state = build_state(&settings, &api, HashingCost::FastForTests)
            .await
            .expect("app state");
        test::init_service(app(state, api)).await
    }
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if let Some((admin_url, name)) = self.pg.take() {
            // The test's runtime is blocked here: drop the database from a private one.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(admin) = sea_orm::Database::connect(&admin_url).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

fn hasher() -> credentials::Argon2Hasher {
    credentials::Argon2Hasher::fast_for_tests().expect("hasher")
}

async fn send<S, B>(
    app: &S,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::default().method(method).uri(uri);
    if let Some(t) = token {
        req = req.insert_header(("authorization", format!("Bearer {t}")));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let bytes = test::read_body(res).await;
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

async fn login<S, B>(app: &S, email: &str, password: &str) -> (u16, Option<String>)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await;
    (status, body["data"]["token"].as_str().map(str::to_owned))
}

/// The single number a `SELECT COUNT(*) …` returns (`?` placeholders on both backends).
async fn count(db: &Database, sql: &str, values: Vec<Value>) -> i64 {
    let conn = db.primary();
    let row = conn
        .query_one_raw(test_support::statement(
            conn.get_database_backend(),
            sql,
            values,
        ))
        .await
        .expect("query")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

#[actix_web::test]
async fn demo_seed_then_the_printed_admin_signs_in() {
    for backend in backends() {
        let env = TestEnv::new(backend).await;
        let db = env.db().await;
        let outcome = demo::run(&db, &hasher()).await.expect("seed");
        demo::print(&outcome, "test");
        let demo::Outcome::Seeded(report) = outcome else {
            panic!("{backend:?}: a fresh database is not seeded yet");
        };
        assert_eq!(report.credentials.len(), 9);
        let passwords: BTreeSet<&str> = report
            .credentials
            .iter()
            .map(|c| c.password.as_str())
            .collect();
        assert_eq!(passwords.len(), 9, "every account has its own password");

        // Seeding twice is refused, and writes nothing.
        let events = count(&db, "SELECT COUNT(*) FROM audit_events", vec![]).await;
        assert!(matches!(
            demo::run(&db, &hasher()).await.expect("second run"),
            demo::Outcome::AlreadySeeded
        ));
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM audit_events", vec![]).await,
            events
        );
        assert!(events >= 20, "every step was audited ({events} events)");

        // The org hangs under Sunset Elementary (and so under the district).
        let org = report.org_id;
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM organizations WHERE id = ? AND school_id = ? AND district_id = ? AND signup_code = ?",
                vec![
                    org.into(),
                    report.schools[0].1.into(),
                    report.district_id.into(),
                    demo::SIGNUP_CODE.into()
                ],
            )
            .await,
            1
        );
        db.close().await.ok();

        // The printed admin signs in over HTTP, with the printed password only.
        let app = env.service().await;
        let admin = &report.credentials[0];
        assert_eq!(admin.role, "admin");
        let (status, _) = login(&app, &admin.email, "not the password!").await;
        assert_eq!(status, 401);
        let (status, token) = login(&app, &admin.email, &admin.password).await;
        assert_eq!(status, 200, "{backend:?}: the admin signs in");
        let token = token.expect("a token");
        let (status, me) = send(&app, Method::GET, "/api/v2/me", Some(&token), None).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["data"]["memberships"][0]["org_name"], demo::ORG_NAME);
        assert_eq!(me["data"]["memberships"][0]["role"], "admin");
        assert_eq!(me["data"]["memberships"][0]["org_id"], org.to_string());

        // Eight members in every role; the Treasurer is the custom role's only holder.
        let (status, members) = send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{org}/users"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{members}");
        let items = members["data"].as_array().expect("members");
        assert_eq!(items.len(), 8, "{members}");
        let ranks: BTreeMap<String, usize> = items.iter().fold(BTreeMap::new(), |mut acc, m| {
            *acc.entry(m["role"]["rank"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
            acc
        });
        assert_eq!(
            ranks,
            BTreeMap::from([
                ("admin".to_owned(), 1),
                ("board_member".to_owned(), 2),
                ("committee_lead".to_owned(), 2),
                ("volunteer".to_owned(), 3),
            ])
        );
        let treasurers: Vec<&serde_json::Value> = items
            .iter()
            .filter(|m| m["role"]["kind"] == "custom")
            .collect();
        assert_eq!(treasurers.len(), 1);
        assert_eq!(treasurers[0]["role"]["name"], "Treasurer");
        let (status, roles) = send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{org}/roles"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{roles}");
        assert_eq!(roles["data"][0]["name"], "Treasurer");
        assert_eq!(roles["data"][0]["counts_as"], "board_member");
        assert_eq!(roles["data"][0]["extra_keys"], json!(["budget.approve"]));
        assert_eq!(roles["data"][0]["max_holders"], 1);

        // The district's locked template reaches the org.
        let (status, matrix) = send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{org}/permissions"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{matrix}");
        let row = |key: &str| {
            matrix["data"]["permissions"]
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["key"] == key))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(row("fundraising.manage")["locked_by"]["kind"], "district");
        assert_eq!(row("fundraising.manage")["min_role"], "board_member");
        assert_eq!(row("communications.send")["source"]["kind"], "district");
        assert!(row("communications.send")["locked_by"].is_null());

        // Every other printed account signs in too.
        for c in &report.credentials[1..] {
            let (status, _) = login(&app, &c.email, &c.password).await;
            assert_eq!(status, 200, "{backend:?}: {} signs in", c.email);
        }
    }
}

fn small_params(large_rows: Option<u64>) -> enterprise::Params {
    enterprise::Params {
        districts: 3,
        schools_per_district: 2,
        orgs_per_school: 2,
        members_per_org: 12,
        district_keys: 10,
        locked_percent: 30.0,
        school_settings_percent: 10.0,
        org_settings_percent: 25.0,
        grant_percent: 10.0,
        large_rows,
        seed: 7,
        // Small batches: many statements and a partial last one.
        batch: 7,
    }
}

#[actix_web::test]
async fn enterprise_seed_writes_what_it_reports_and_the_app_reads_it() {
    for backend in backends() {
        let env = TestEnv::new(backend).await;
        let db = env.db().await;
        let params = small_params(Some(600));
        let outcome = enterprise::run(&db, &params, &hasher())
            .await
            .expect("seed");
        enterprise::print(&outcome, "test");
        let enterprise::Outcome::Seeded(report) = outcome else {
            panic!("{backend:?}: a fresh database is not seeded yet");
        };
        for (table, n) in &report.counts {
            let stored = count(&db, &format!("SELECT COUNT(*) FROM {table}"), vec![]).await;
            assert_eq!(stored, *n as i64, "{backend:?}: {table}");
        }
        assert_eq!(report.count("users"), 3 * 2 * 2 * 12);
        assert_eq!(report.count("districts"), 3);
        assert_eq!(report.count("schools"), 6);
        assert_eq!(report.count("district_permission_settings"), 30);
        assert!(report.large_orgs > 0);
        assert_eq!(report.count("organizations"), 12 + report.large_orgs as u64);
        assert_eq!(report.count("memberships"), 144 + report.large_orgs as u64);
        let settings = report.count("district_permission_settings")
            + report.count("school_permission_settings")
            + report.count("org_permission_settings");
        assert!(settings >= 600, "--large reaches its target ({settings})");
        assert!(report.count("permission_grants") > 0);
        assert_eq!(report.count("audit_events"), 1);
        // No lower level sets a key its district locked.
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM org_permission_settings s \
                 JOIN organizations o ON o.id = s.org_id \
                 JOIN district_permission_settings d ON d.district_id = o.district_id AND d.key = s.key \
                 WHERE d.locked = ?",
                vec![true.into()],
            )
            .await,
            0
        );
        assert!(
            count(
                &db,
                "SELECT COUNT(*) FROM district_permission_settings WHERE locked = ?",
                vec![true.into()],
            )
            .await
                > 0
        );
        // Exactly one admin per org.
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM memberships WHERE builtin_role = ?",
                vec!["admin".into()],
            )
            .await,
            report.count("organizations") as i64
        );

        // Twice is refused.
        assert!(matches!(
            enterprise::run(&db, &params, &hasher())
                .await
                .expect("second run"),
            enterprise::Outcome::AlreadySeeded { .. }
        ));
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM users", vec![]).await,
            report.count("users") as i64
        );

        // What the app makes of the bulk rows: the sample admin signs in with the shared
        // password, and the org's matrix matches the stored settings and locks.
        let district_locks: BTreeSet<String> = {
            let conn = db.primary();
            let backend = conn.get_database_backend();
            let sql = if backend == sea_orm::DbBackend::Postgres {
                "SELECT d.key FROM district_permission_settings d JOIN organizations o ON o.district_id = d.district_id WHERE o.id = $1 AND d.locked = $2"
            } else {
                "SELECT d.key FROM district_permission_settings d JOIN organizations o ON o.district_id = d.district_id WHERE o.id = ? AND d.locked = ?"
            };
            conn.query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [report.sample_org.into(), true.into()],
            ))
            .await
            .expect("locks")
            .iter()
            .map(|r| r.try_get::<String>("", "key").expect("key"))
            .collect()
        };
        db.close().await.ok();
        let app = env.service().await;
        let (status, token) = login(&app, &report.sample_admin, &report.password).await;
        assert_eq!(status, 200, "{backend:?}: a generated user signs in");
        let token = token.expect("token");
        let (status, matrix) = send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{}/permissions", report.sample_org),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{matrix}");
        let locked: BTreeSet<String> = matrix["data"]["permissions"]
            .as_array()
            .expect("rows")
            .iter()
            .filter(|r| r["locked_by"]["kind"] == "district")
            .filter_map(|r| r["key"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(locked, district_locks);
        let (status, members) = send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{}/users?limit=100", report.sample_org),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{members}");
        assert_eq!(members["data"].as_array().map(Vec::len), Some(12));
        let (status, grants) = send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{}/permissions/grants", report.sample_org),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{grants}");
    }
}

/// Column `i` of a row as text, whatever its type; `None` past the last column.
fn cell(row: &sea_orm::QueryResult, i: usize) -> Option<String> {
    if let Ok(u) = row.try_get_by_index::<uuid::Uuid>(i) {
        return Some(u.to_string());
    }
    if let Ok(b) = row.try_get_by_index::<bool>(i) {
        return Some(b.to_string());
    }
    row.try_get_by_index::<String>(i).ok()
}

/// The ids and settings of a seeded database, for comparison.
async fn fingerprint(db: &Database) -> Vec<String> {
    let conn = db.primary();
    let backend = conn.get_database_backend();
    let mut out = Vec::new();
    for sql in [
        "SELECT id, signup_code FROM organizations ORDER BY id",
        "SELECT id, email FROM users ORDER BY id",
        "SELECT org_id, key, min_role, enabled FROM org_permission_settings ORDER BY org_id, key",
        "SELECT org_id, user_id, key FROM permission_grants ORDER BY org_id, user_id, key",
    ] {
        for row in conn
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .expect("query")
        {
            let cells: Vec<String> = (0..4).filter_map(|i| cell(&row, i)).collect();
            out.push(cells.join(" "));
        }
    }
    out
}

#[actix_web::test]
async fn enterprise_seed_is_deterministic() {
    let a = TestEnv::new(Backend::Sqlite).await;
    let b = TestEnv::new(Backend::Sqlite).await;
    let (db_a, db_b) = (a.db().await, b.db().await);
    let params = small_params(None);
    enterprise::run(&db_a, &params, &hasher())
        .await
        .expect("seed a");
    enterprise::run(&db_b, &params, &hasher())
        .await
        .expect("seed b");
    let (fa, fb) = (fingerprint(&db_a).await, fingerprint(&db_b).await);
    assert!(fa.len() > 100);
    assert_eq!(fa, fb);
    let c = TestEnv::new(Backend::Sqlite).await;
    let db_c = c.db().await;
    let other = enterprise::Params {
        seed: 8,
        ..small_params(None)
    };
    enterprise::run(&db_c, &other, &hasher())
        .await
        .expect("seed c");
    assert_ne!(
        fingerprint(&db_c).await,
        fa,
        "another seed, another dataset"
    );
}
