//! Test harness: a fresh, migrated database per test (a SQLite file, or a PostgreSQL
//! database created from `TEST_DATABASE_URL` and dropped at the end), a unique Redis key
//! prefix per test (from `TEST_REDIS_URL`, cleaned up at the end), plain-SQL fixtures, and
//! a private `redis-server` the outage tests may stop, kill and restart.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cache::{InvalidationBus, RedisCache};
use fred::prelude::{Builder, ClientLike, Config, KeysInterface, LuaInterface};
use permissions_cache::{CacheSettings, Invalidation, PermissionCache};
use permissions_store::SeaOrmPermissionStore;
use test_support::{Backend, ScratchDb, TestEnv};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Defines each listed `async fn name(env: &Env)` as `sqlite::name` and `postgres::name`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        test_support::both_backends!($crate::support::Env; $($name),*);
    };
}

/// The shared Redis of `TEST_REDIS_URL`; `None` (skipped, with a note) when unset —
/// except under `CI=true`, where that fails the test.
pub fn redis_url() -> Option<String> {
    if let Ok(url) = std::env::var("TEST_REDIS_URL") {
        return Some(url);
    }
    assert!(
        !test_support::in_ci(),
        "TEST_REDIS_URL must be set under CI=true (Redis tests may not be skipped)"
    );
    eprintln!("redis not configured (TEST_REDIS_URL unset): redis part skipped");
    None
}

/// One test's database (with the shared SQL fixtures, through `Deref`), store and Redis
/// key prefix.
pub struct Env {
    scratch: ScratchDb,
    /// The store behind the caches.
    pub store: SeaOrmPermissionStore,
    /// This test's Redis key prefix (unique).
    pub prefix: String,
    keys: RedisKeys,
}

/// Removes a test's Redis keys when dropped (a test that failed before `finish`).
struct RedisKeys {
    prefix: String,
    done: bool,
}

impl RedisKeys {
    async fn remove(mut self) {
        self.done = true;
        if let Ok(url) = std::env::var("TEST_REDIS_URL") {
            delete_prefix(&url, &self.prefix).await;
        }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(url) = std::env::var("TEST_REDIS_URL") {
            let prefix = std::mem::take(&mut self.prefix);
            test_support::block_on_side_thread(async move { delete_prefix(&url, &prefix).await });
        }
    }
}

impl std::ops::Deref for Env {
    type Target = ScratchDb;
    fn deref(&self) -> &ScratchDb {
        &self.scratch
    }
}

impl TestEnv for Env {
    async fn open(backend: Backend) -> Option<Self> {
        let scratch = ScratchDb::open(backend, "ptoc_pc", 4).await?;
        let prefix = format!("ptoc:test:pcache:{}:", Uuid::now_v7().simple());
        Some(Self {
            store: SeaOrmPermissionStore::new(scratch.db.clone()),
            scratch,
            keys: RedisKeys {
                prefix: prefix.clone(),
                done: false,
            },
            prefix,
        })
    }

    /// Removes this test's Redis keys, then the database.
    async fn finish(self) {
        self.keys.remove().await;
        self.scratch.finish().await;
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

    /// Installs, on this test's database, an after-commit dispatcher that retires the
    /// org of every committed org-scoped event in `cache` (the app's dispatcher does
    /// this and more).
    pub fn dispatch_to(&self, cache: PermissionCache) {
        struct ToCache(PermissionCache);
        impl audit::AfterCommit for ToCache {
            fn committed<'a>(
                &'a self,
                events: &'a [audit::AuditEvent],
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
                Box::pin(async move {
                    let orgs: Vec<Uuid> =
                        events.iter().filter_map(|e| e.body.scope.org_id).collect();
                    self.0.org_changed(&orgs).await;
                })
            }
        }
        assert!(
            self.scratch
                .db
                .set_after_commit(std::sync::Arc::new(ToCache(cache))),
            "one dispatcher per test database"
        );
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
        self.scratch.user(id, "active", false).await;
    }

    /// A standalone organization (`permissions_version` 1).
    pub async fn org(&self, id: Uuid) {
        self.scratch.org(id, None, None).await;
    }

    /// An active user who is an active member of `org` with a built-in role.
    pub async fn active_member(&self, org: Uuid, user: Uuid, role: &str) {
        self.scratch.active_member(org, user, role).await;
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
