//! Test harness: a fresh, migrated database per test (a SQLite file, or a PostgreSQL
//! database created from `TEST_DATABASE_URL` and dropped at the end), a unique Redis key
//! prefix per test (from `TEST_REDIS_URL`, cleaned up at the end), plain-SQL fixtures, and
//! a private `redis-server` the outage tests may stop, kill and restart.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cache::{InvalidationBus, RedisCache};
use fred::prelude::{Builder, ClientLike, Config, KeysInterface, LuaInterface};
use permissions_cache::{CacheSettings, Invalidation, PermissionCache};
use permissions_store::SeaOrmPermissionStore;
use persistence::{Database, DatabaseSettings};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use serde_json::json;
use tokio::sync::broadcast;
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

/// Whether missing test services must fail the tests (`CI=true`).
fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The shared Redis of `TEST_REDIS_URL`; `None` (skipped, with a note) when unset —
/// except under `CI=true`, where that fails the test.
pub fn redis_url() -> Option<String> {
    if let Ok(url) = std::env::var("TEST_REDIS_URL") {
        return Some(url);
    }
    assert!(
        !in_ci(),
        "TEST_REDIS_URL must be set under CI=true (Redis tests may not be skipped)"
    );
    eprintln!("redis not configured (TEST_REDIS_URL unset): redis part skipped");
    None
}

/// One test's database, store and Redis key prefix.
pub struct Env {
    /// The backend.
    pub kind: Kind,
    /// The migrated database.
    pub db: Database,
    /// The store behind the caches.
    pub store: SeaOrmPermissionStore,
    /// This test's Redis key prefix (unique).
    pub prefix: String,
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

fn db_settings(url: String) -> DatabaseSettings {
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

/// Deletes every key under `prefix` (tests only: a server-side `SCAN` loop).
pub async fn delete_prefix(url: &str, prefix: &str) {
    const PURGE: &str = r"
local cursor = '0'
local n = 0
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do redis.call('DEL', k); n = n + 1 end
until cursor == '0'
return n
";
    let Ok(client) = raw_client(url).await else {
        return;
    };
    let _: Result<i64, _> = client
        .eval(PURGE, Vec::<String>::new(), vec![format!("{prefix}*")])
        .await;
    let _ = client.quit().await;
}

/// A plain fred client (for assertions on stored keys).
pub async fn raw_client(url: &str) -> Result<fred::clients::Client, fred::error::Error> {
    let client = Builder::from_config(Config::from_url(url)?).build()?;
    let _task = client.connect();
    tokio::time::timeout(Duration::from_secs(5), client.wait_for_connect())
        .await
        .map_err(|_| fred::error::Error::new(fred::error::ErrorKind::Timeout, "connect"))??;
    Ok(client)
}

/// The value of `key`, if any.
pub async fn redis_get(url: &str, key: &str) -> Option<String> {
    let client = raw_client(url).await.expect("connect to redis");
    let value: Option<String> = client.get(key).await.expect("GET");
    let _ = client.quit().await;
    value
}

impl Env {
    /// A fresh environment; `None` (skipped, with a note) for PostgreSQL when
    /// `TEST_DATABASE_URL` is unset — except under `CI=true`, where that fails the test.
    pub async fn new(kind: Kind) -> Option<Self> {
        let prefix = format!("ptoc:test:pcache:{}:", Uuid::now_v7().simple());
        match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("ptoc_pc_{}", Uuid::now_v7().simple()));
                std::fs::create_dir_all(&dir).expect("create temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite3").display());
                let db = Database::connect(&db_settings(url))
                    .await
                    .expect("open sqlite");
                db.migrate().await.expect("migrate sqlite");
                Some(Self {
                    kind,
                    store: SeaOrmPermissionStore::new(db.clone()),
                    db,
                    prefix,
                    sqlite_dir: Some(dir),
                    pg: None,
                })
            }
            Kind::Postgres => {
                let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
                    assert!(
                        !in_ci(),
                        "TEST_DATABASE_URL must be set under CI=true (PostgreSQL tests may not be skipped)"
                    );
                    eprintln!("postgres backend not configured (TEST_DATABASE_URL unset): skipped");
                    return None;
                };
                let name = format!("ptoc_pc_{}", Uuid::now_v7().simple());
                let admin = sea_orm::Database::connect(&admin_url)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                let db =
                    match Database::connect(&db_settings(with_database(&admin_url, &name))).await {
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
                    prefix,
                    sqlite_dir: None,
                    pg: Some((admin_url, name)),
                };
                env.db.migrate().await.expect("migrate postgres");
                Some(env)
            }
        }
    }

    /// Settings with this test's key prefix.
    pub fn settings(&self) -> CacheSettings {
        CacheSettings::default().with_key_prefix(self.prefix.clone())
    }

    /// An instance on Redis at `url` (its own bus subscription there) with `settings`.
    pub async fn cache_on(&self, url: &str, settings: CacheSettings) -> PermissionCache {
        let publisher = RedisCache::connect(url, Duration::from_secs(2))
            .await
            .expect("redis url");
        let bus = InvalidationBus::with_redis(url, publisher, Duration::from_secs(2))
            .await
            .expect("bus");
        PermissionCache::new(self.store.clone(), Some(url), bus, settings)
            .await
            .expect("cache")
    }

    /// An instance on `TEST_REDIS_URL` when set, else without Redis (local bus).
    pub async fn cache(&self) -> PermissionCache {
        match redis_url() {
            Some(url) => self.cache_on(&url, self.settings()).await,
            None => self.cache_without_redis().await,
        }
    }

    /// An instance without Redis (L1 and database, in-process bus).
    pub async fn cache_without_redis(&self) -> PermissionCache {
        PermissionCache::new(
            self.store.clone(),
            None,
            InvalidationBus::local_only(),
            self.settings(),
        )
        .await
        .expect("cache")
    }

    /// Explicit cleanup at the end of a passing test: removes this test's Redis keys,
    /// closes the pools on the test's runtime, then drops the database (PostgreSQL) or its
    /// directory (SQLite).
    pub async fn finish(mut self) {
        if let Ok(url) = std::env::var("TEST_REDIS_URL") {
            delete_prefix(&url, &self.prefix).await;
        }
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

    /// The stored `permissions_version` of an org.
    pub async fn version(&self, org: Uuid) -> u64 {
        self.store
            .permissions_version(org)
            .await
            .expect("read version")
            .expect("org exists")
    }

    /// An active user.
    pub async fn user(&self, id: Uuid) {
        let now = persistence::now_micros();
        self.exec(
            "INSERT INTO users (id, email, first_name, last_name, password_hash, status, \
             is_platform_admin, version, created_at, updated_at, deleted_at) \
             VALUES (?, ?, 'Test', 'User', 'x', 'active', ?, 1, ?, ?, NULL)",
            vec![
                id.into(),
                format!("{}@example.test", id.simple()).into(),
                false.into(),
                now.into(),
                now.into(),
            ],
        )
        .await;
    }

    /// A standalone organization (`permissions_version` 1).
    pub async fn org(&self, id: Uuid) {
        let now = persistence::now_micros();
        self.exec(
            "INSERT INTO organizations (id, name, kind, school_id, district_id, signup_code, \
             branding, status, version, permissions_version, created_at, updated_at) \
             VALUES (?, 'PTO', 'pto', NULL, NULL, ?, ?, 'active', 1, 1, ?, ?)",
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

    /// An active user who is an active member of `org` with a built-in role.
    pub async fn active_member(&self, org: Uuid, user: Uuid, role: &str) {
        self.user(user).await;
        self.member(org, user, Ok(role), "active").await;
    }
}

impl Drop for Env {
    /// Best-effort cleanup when a test failed before [`Env::finish`] (see the
    /// permissions-store harness): removes the SQLite directory, drops the PostgreSQL
    /// database and this test's Redis keys from a private runtime on another thread.
    fn drop(&mut self) {
        if let Some(dir) = self.sqlite_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        let pg = self.pg.take();
        let redis = std::env::var("TEST_REDIS_URL").ok();
        let prefix = self.prefix.clone();
        if pg.is_none() && redis.is_none() {
            return;
        }
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    if let Some((admin_url, name)) = pg {
                        drop_pg_database(&admin_url, &name).await;
                    }
                    if let Some(url) = redis {
                        delete_prefix(&url, &prefix).await;
                    }
                });
            }
        })
        .join();
    }
}

/// Waits (at most 10 s) until `applied` reports `want` (or a full eviction).
pub async fn wait_for(applied: &mut broadcast::Receiver<Invalidation>, want: Invalidation) {
    let wait = async {
        loop {
            match applied.recv().await {
                Ok(got) if got == want || got == Invalidation::All => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("cache dropped"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no {want:?} within 10 s"));
}

/// Polls `condition` every 20 ms for at most `limit`; whether it became true.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// A `redis-server` of this test's own, on a free port, without persistence.
pub struct PrivateRedis {
    child: Option<Child>,
    port: u16,
}

impl PrivateRedis {
    /// Starts one; `None` (skipped, with a note) when no `redis-server` binary is found
    /// (`REDIS_SERVER_BIN`, else `redis-server` on the `PATH`).
    pub fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let mut server = Self { child: None, port };
        if !server.spawn() {
            eprintln!("redis-server not found: outage test skipped");
            return None;
        }
        Some(server)
    }

    fn spawn(&mut self) -> bool {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned());
        let Ok(child) = Command::new(bin)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return false;
        };
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "private redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill {signal} failed");
        }
    }

    /// Freezes the server (connections stay open, nothing is answered).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Unfreezes it.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Kills it (its data is lost).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "restart redis-server");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
