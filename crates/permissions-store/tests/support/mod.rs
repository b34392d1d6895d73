//! Test harness: a fresh, migrated database per test (a SQLite file, or a PostgreSQL
//! database created from `TEST_DATABASE_URL`), and plain-SQL fixtures.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use audit::{Actor, RequestMeta};
use permissions_store::SeaOrmPermissionStore;
use persistence::{Database, DatabaseSettings};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use serde_json::json;
use tenancy::ports::AuditContext;
use uuid::Uuid;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the server of `TEST_DATABASE_URL`.
    Postgres,
}

/// Defines each listed `async fn name(env: &Env)` as `sqlite::name` and `postgres::name`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let env = $crate::support::Env::new($crate::support::Kind::Sqlite)
                        .await
                        .expect("sqlite is always available");
                    super::$name(&env).await;
                    env.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(env) = $crate::support::Env::new($crate::support::Kind::Postgres).await {
                        super::$name(&env).await;
                        env.finish().await;
                    }
                }
            )*
        }
    };
}

/// One test's database and store.
pub struct Env {
    /// The backend.
    pub kind: Kind,
    /// The migrated database.
    pub db: Database,
    /// The store under test.
    pub store: SeaOrmPermissionStore,
    sqlite_dir: Option<PathBuf>,
    pg: Option<(String, String)>,
}

/// Replaces the database name of a PostgreSQL URL.
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

fn settings(url: String) -> DatabaseSettings {
    DatabaseSettings {
        url,
        read_url: None,
        max_connections: 4,
        acquire_timeout: Duration::from_secs(20),
    }
}

async fn drop_pg_database(admin_url: &str, name: &str) {
    if let Ok(admin) = sea_orm::Database::connect(admin_url).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
        let _ = admin.close().await;
    }
}

impl Env {
    /// A fresh environment; `None` (skipped, with a note) for PostgreSQL when
    /// `TEST_DATABASE_URL` is unset — except under `CI=true`, where that fails the test.
    pub async fn new(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("ptoc_ps_{}", Uuid::now_v7().simple()));
                std::fs::create_dir_all(&dir).expect("create temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite3").display());
                let db = Database::connect(&settings(url))
                    .await
                    .expect("open sqlite");
                db.migrate().await.expect("migrate sqlite");
                Some(Self {
                    kind,
                    store: SeaOrmPermissionStore::new(db.clone()),
                    db,
                    sqlite_dir: Some(dir),
                    pg: None,
                })
            }
            Kind::Postgres => {
                let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
                    assert!(
                        std::env::var("CI").as_deref() != Ok("true"),
                        "TEST_DATABASE_URL must be set under CI=true (PostgreSQL tests may not be skipped)"
                    );
                    eprintln!("postgres backend not configured (TEST_DATABASE_URL unset): skipped");
                    return None;
                };
                let name = format!("ptoc_ps_{}", Uuid::now_v7().simple());
                let admin = sea_orm::Database::connect(&admin_url)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                let db = match Database::connect(&settings(with_database(&admin_url, &name))).await
                {
                    Ok(db) => db,
                    Err(e) => {
                        drop_pg_database(&admin_url, &name).await;
                        panic!("connect to the test database: {e}");
                    }
                };
                // From here on, `Drop` removes the database if the test fails.
                let env = Self {
                    kind,
                    store: SeaOrmPermissionStore::new(db.clone()),
                    db,
                    sqlite_dir: None,
                    pg: Some((admin_url, name)),
                };
                env.db.migrate().await.expect("migrate postgres");
                Some(env)
            }
        }
    }

    /// Explicit cleanup at the end of a passing test: closes the pools on the test's
    /// runtime, then drops the database (PostgreSQL) or its directory (SQLite).
    pub async fn finish(mut self) {
        let _ = self.db.close().await;
        if let Some((admin_url, name)) = self.pg.take() {
            drop_pg_database(&admin_url, &name).await;
        }
        if let Some(dir) = self.sqlite_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Runs `sql` (with `?` placeholders, numbered for PostgreSQL) bound to `values`.
    pub async fn exec(&self, sql: &str, values: Vec<Value>) {
        let conn = self.db.primary();
        conn.execute_raw(self.statement(sql, values))
            .await
            .unwrap_or_else(|e| panic!("fixture `{sql}` failed: {e}"));
    }

    /// One `i64` column `n` of the single row `sql` returns.
    pub async fn count(&self, sql: &str, values: Vec<Value>) -> i64 {
        let row = self
            .db
            .primary()
            .query_one_raw(self.statement(sql, values))
            .await
            .expect("query")
            .expect("one row");
        row.try_get::<i64>("", "n").expect("column n")
    }

    /// The rows of `sql`.
    pub async fn rows(&self, sql: &str, values: Vec<Value>) -> Vec<sea_orm::QueryResult> {
        self.db
            .primary()
            .query_all_raw(self.statement(sql, values))
            .await
            .expect("query")
    }

    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        let backend = self.db.primary().get_database_backend();
        let sql = if backend == DbBackend::Postgres {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(c);
                }
            }
            out
        } else {
            sql.to_owned()
        };
        Statement::from_sql_and_values(backend, sql, values)
    }

    /// Number of stored audit events.
    pub async fn audit_count(&self) -> i64 {
        self.count("SELECT COUNT(*) AS n FROM audit_events", vec![])
            .await
    }

    /// The stored `permissions_version` of an org.
    pub async fn version(&self, org: Uuid) -> u64 {
        self.store
            .permissions_version(org)
            .await
            .expect("read version")
            .expect("org exists")
    }

    /// An active user (or a disabled / soft-deleted one).
    pub async fn user(&self, id: Uuid, status: &str, deleted: bool) {
        let now = persistence::now_micros();
        let deleted_at: Option<time::OffsetDateTime> = deleted.then_some(now);
        self.exec(
            "INSERT INTO users (id, email, first_name, last_name, password_hash, status, \
             is_platform_admin, version, created_at, updated_at, deleted_at) \
             VALUES (?, ?, 'Test', 'User', 'x', ?, ?, 1, ?, ?, ?)",
            vec![
                id.into(),
                format!("{}@example.test", id.simple()).into(),
                status.into(),
                false.into(),
                now.into(),
                now.into(),
                deleted_at.into(),
            ],
        )
        .await;
    }

    /// A district.
    pub async fn district(&self, id: Uuid) {
        let now = persistence::now_micros();
        self.exec(
            "INSERT INTO districts (id, name, code, tier, settings, version, created_at, updated_at) \
             VALUES (?, 'District', ?, 'enterprise', ?, 1, ?, ?)",
            vec![
                id.into(),
                id.simple().to_string().into(),
                json!({}).into(),
                now.into(),
                now.into(),
            ],
        )
        .await;
    }

    /// A school, in a district or standalone.
    pub async fn school(&self, id: Uuid, district: Option<Uuid>) {
        let now = persistence::now_micros();
        self.exec(
            "INSERT INTO schools (id, district_id, name, code, grade_levels, version, created_at, updated_at) \
             VALUES (?, ?, 'School', ?, ?, 1, ?, ?)",
            vec![
                id.into(),
                district.into(),
                id.simple().to_string().into(),
                json!([]).into(),
                now.into(),
                now.into(),
            ],
        )
        .await;
    }

    /// An organization (`permissions_version` 1).
    pub async fn org(&self, id: Uuid, district: Option<Uuid>, school: Option<Uuid>) {
        let now = persistence::now_micros();
        self.exec(
            "INSERT INTO organizations (id, name, kind, school_id, district_id, signup_code, \
             branding, status, version, permissions_version, created_at, updated_at) \
             VALUES (?, 'PTO', 'pto', ?, ?, ?, ?, 'active', 1, 1, ?, ?)",
            vec![
                id.into(),
                school.into(),
                district.into(),
                id.simple().to_string().into(),
                json!({}).into(),
                now.into(),
                now.into(),
            ],
        )
        .await;
    }

    /// A custom role.
    pub async fn role(&self, org: Uuid, id: Uuid, name: &str, counts_as: &str, extra: &[&str]) {
        let now = persistence::now_micros();
        self.exec(
            "INSERT INTO org_roles (org_id, id, name, counts_as, extra_keys, max_holders, version, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, NULL, 1, ?, ?)",
            vec![
                org.into(),
                id.into(),
                name.into(),
                counts_as.into(),
                json!(extra).into(),
                now.into(),
                now.into(),
            ],
        )
        .await;
    }

    /// A membership with a built-in role (`Ok(name)`) or a custom role (`Err(id)`).
    pub async fn member(&self, org: Uuid, user: Uuid, role: Result<&str, Uuid>, status: &str) {
        let now = persistence::now_micros();
        let (builtin, custom): (Option<String>, Option<Uuid>) = match role {
            Ok(name) => (Some(name.to_owned()), None),
            Err(id) => (None, Some(id)),
        };
        self.exec(
            "INSERT INTO memberships (org_id, user_id, builtin_role, custom_role_id, status, \
             committee, profile, role_ends_at, version, joined_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, NULL, ?, NULL, 1, ?, ?)",
            vec![
                org.into(),
                user.into(),
                builtin.into(),
                custom.into(),
                status.into(),
                json!({}).into(),
                now.into(),
                now.into(),
            ],
        )
        .await;
    }

    /// An active user who is a member of `org` with a built-in role.
    pub async fn active_member(&self, org: Uuid, user: Uuid, role: &str) {
        self.user(user, "active", false).await;
        self.member(org, user, Ok(role), "active").await;
    }
}

impl Drop for Env {
    /// Best-effort cleanup when a test failed before [`Env::finish`]. Never touches the
    /// pools (their runtime is the test's, blocked here): `DROP … WITH (FORCE)` ends their
    /// connections server-side, from a private runtime on another thread.
    fn drop(&mut self) {
        if let Some(dir) = self.sqlite_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((admin_url, name)) = self.pg.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_pg_database(&admin_url, &name));
                }
            })
            .join();
        }
    }
}

/// A context auditing as user `id`.
pub fn ctx(id: Uuid) -> AuditContext {
    AuditContext {
        actor: Actor::User(id),
        request: RequestMeta {
            ip: Some("192.0.2.1".to_owned()),
            user_agent: Some("tests".to_owned()),
            request_id: Some("req-1".to_owned()),
        },
    }
}

/// A well-spread id: consecutive `n` do not sort in creation order.
pub const fn id(n: u128) -> Uuid {
    Uuid::from_u128(n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) ^ 0x5555)
}
