//! Test support for the adapter crates' integration tests (never a runtime dependency).
//!
//! - [`ScratchDb`]: a fresh, migrated database per test — a SQLite file in its own
//!   directory, or a PostgreSQL database created on the server of `TEST_DATABASE_URL`
//!   (an admin URL) — removed at the end of the test. Without `TEST_DATABASE_URL` the
//!   PostgreSQL variant is skipped with a note, except under `CI=true`, where it fails.
//! - [`both_backends!`]: defines a `sqlite` and a `postgres` test for each scenario.
//! - SQL fixtures ([`ScratchDb::exec`], [`ScratchDb::user`], [`ScratchDb::org`], …) that
//!   write rows the way the adapters store them, for tests of one adapter that need rows
//!   another adapter owns.
//! - [`SmtpSink`]: a real SMTP server (Python's `aiosmtpd`) whose received messages a
//!   test reads; skipped with a note when unavailable, except under `CI=true`.
//!
//! Cleanup is explicit and async at the end of a passing test ([`ScratchDb::finish`], on
//! the test's own runtime). A test that panicked falls back to `Drop`, which never
//! touches the pools: it drops the PostgreSQL database from a private runtime on another
//! thread (`WITH (FORCE)` ends the test's connections server-side).

use std::path::PathBuf;
use std::time::Duration;

pub mod scan;
mod smtp;
pub use smtp::{SmtpSink, header};

use persistence::{Database, DatabaseSettings};
use sea_orm::{ConnectionTrait, Statement, Value};
use serde_json::json;
use uuid::Uuid;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the server of `TEST_DATABASE_URL`.
    Postgres,
}

/// A test environment [`both_backends!`] can open and close.
pub trait TestEnv: Sized {
    /// A fresh environment on `backend`; `None` when the test is skipped.
    fn open(backend: Backend) -> impl Future<Output = Option<Self>>;
    /// Releases everything at the end of a passing test.
    fn finish(self) -> impl Future<Output = ()>;
}

/// Defines `sqlite::name` and `postgres::name` tests for each scenario
/// `async fn name(env: &Env)`, where `Env` implements [`TestEnv`]:
/// `both_backends!(crate::support::Env; first_scenario, second_scenario);`.
#[macro_export]
macro_rules! both_backends {
    ($env:ty; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let env = <$env as $crate::TestEnv>::open($crate::Backend::Sqlite)
                        .await
                        .expect("sqlite is always available");
                    super::$name(&env).await;
                    <$env as $crate::TestEnv>::finish(env).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(env) = <$env as $crate::TestEnv>::open($crate::Backend::Postgres).await {
                        super::$name(&env).await;
                        <$env as $crate::TestEnv>::finish(env).await;
                    }
                }
            )*
        }
    };
}

/// Whether missing test services must fail the tests (`CI=true`).
#[must_use]
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The admin URL of the PostgreSQL test server; `None` (with a note) when
/// `TEST_DATABASE_URL` is unset.
///
/// # Panics
/// When it is unset under `CI=true` (PostgreSQL tests may not be skipped there).
#[must_use]
pub fn postgres_admin_url() -> Option<String> {
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        return Some(url);
    }
    assert!(
        !in_ci(),
        "TEST_DATABASE_URL must be set under CI=true (PostgreSQL tests may not be skipped)"
    );
    eprintln!("postgres backend not configured (TEST_DATABASE_URL unset): skipped");
    None
}

/// Replaces the database name of a PostgreSQL URL.
#[must_use]
pub fn with_database(url: &str, name: &str) -> String {
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

/// Replaces (or adds) the user of a PostgreSQL URL, keeping no password.
#[must_use]
pub fn with_user(url: &str, user: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

/// Drops a PostgreSQL database (ending its connections), reporting failures on stderr.
pub async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(admin) = sea_orm::Database::connect(admin_url).await {
        if let Err(e) = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
        {
            eprintln!("could not drop test database {name}: {e}");
        }
        let _ = admin.close().await;
    }
}

/// Runs `work` to completion on a private runtime on another thread: for cleanup from
/// `Drop`, where the test's runtime cannot be used.
pub fn block_on_side_thread<F>(work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    })
    .join();
}

pub use persistence::statement;

/// A fresh, migrated database of one test, with a scratch directory.
pub struct ScratchDb {
    /// The backend.
    pub backend: Backend,
    /// The migrated database.
    pub db: Database,
    /// A directory of the test's own (the SQLite file lives there).
    pub dir: PathBuf,
    pg: Option<(String, String)>,
}

impl std::fmt::Debug for ScratchDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchDb")
            .field("backend", &self.backend)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ScratchDb {
    /// A fresh database on `backend` with at most `max_connections` pooled connections,
    /// named `{label}_{uuid}`; `None` when PostgreSQL is not configured (outside CI).
    ///
    /// # Panics
    /// When the database cannot be created, opened or migrated.
    pub async fn open(backend: Backend, label: &str, max_connections: u32) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("{label}-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        let settings = |url: String| DatabaseSettings {
            url,
            read_url: None,
            max_connections,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(5),
        };
        let (db, pg) = match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite3").display());
                let db = Database::connect(&settings(url))
                    .await
                    .expect("open sqlite");
                (db, None)
            }
            Backend::Postgres => {
                let Some(admin_url) = postgres_admin_url() else {
                    let _ = std::fs::remove_dir_all(&dir);
                    return None;
                };
                let name = format!("{label}_{}", Uuid::now_v7().simple());
                let admin = sea_orm::Database::connect(&admin_url)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                match Database::connect(&settings(with_database(&admin_url, &name))).await {
                    Ok(db) => (db, Some((admin_url, name))),
                    Err(e) => {
                        drop_database(&admin_url, &name).await;
                        panic!("connect to the test database: {e}");
                    }
                }
            }
        };
        // From here on, `Drop` removes the database if the test fails.
        let this = Self {
            backend,
            db,
            dir,
            pg,
        };
        this.db.migrate().await.expect("migrate the test database");
        Some(this)
    }

    /// The PostgreSQL admin URL and this test's database name.
    #[must_use]
    pub fn postgres(&self) -> Option<(&str, &str)> {
        self.pg
            .as_ref()
            .map(|(url, name)| (url.as_str(), name.as_str()))
    }

    /// Closes the pools on the test's runtime, then drops the database and the directory.
    pub async fn finish(mut self) {
        let _ = self.db.close().await;
        if let Some((admin_url, name)) = self.pg.take() {
            drop_database(&admin_url, &name).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// `sql` (with `?` placeholders, numbered for PostgreSQL) bound to `values`.
    #[must_use]
    pub fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        statement(self.db.primary().get_database_backend(), sql, values)
    }

    /// Runs `sql` (see [`Self::statement`]) on the primary.
    ///
    /// # Panics
    /// When it fails.
    pub async fn exec(&self, sql: &str, values: Vec<Value>) {
        self.db
            .primary()
            .execute_raw(self.statement(sql, values))
            .await
            .unwrap_or_else(|e| panic!("fixture `{sql}` failed: {e}"));
    }

    /// The `i64` column `n` of the single row `sql` returns.
    ///
    /// # Panics
    /// When the query fails or returns no row.
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

    /// The rows `sql` returns.
    ///
    /// # Panics
    /// When the query fails.
    pub async fn rows(&self, sql: &str, values: Vec<Value>) -> Vec<sea_orm::QueryResult> {
        self.db
            .primary()
            .query_all_raw(self.statement(sql, values))
            .await
            .expect("query")
    }

    /// A user (`status` as stored, e.g. `active`; `deleted`: soft-deleted).
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

    /// An organization (`permissions_version` 1), under a school and/or district or
    /// standalone.
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

    /// A custom role of `org` counting as `counts_as`, with `extra` permission keys.
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

    /// An active user who is an active member of `org` with a built-in role.
    pub async fn active_member(&self, org: Uuid, user: Uuid, role: &str) {
        self.user(user, "active", false).await;
        self.member(org, user, Ok(role), "active").await;
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg.take() {
            block_on_side_thread(async move { drop_database(&admin_url, &name).await });
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_database_and_user_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "t2"),
            "postgres://u@h/t2?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "t3"), "postgres://u@h/t3");
        assert_eq!(
            with_user("postgres://postgres@127.0.0.1:5432/t1", "app"),
            "postgres://app@127.0.0.1:5432/t1"
        );
        assert_eq!(with_user("postgres://h/t1", "app"), "postgres://app@h/t1");
    }
}
