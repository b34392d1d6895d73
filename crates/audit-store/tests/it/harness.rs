//! Test databases: a fresh SQLite file per test, and a fresh PostgreSQL database per test
//! when `TEST_DATABASE_URL` (an admin URL) is set. Under `CI=true` a missing
//! `TEST_DATABASE_URL` fails the PostgreSQL tests instead of skipping them.

use std::path::PathBuf;
use std::time::Duration;

use audit::{Action, Actor, AuditEvent, AuditLog, ChainId, ChangeType, NewAuditEvent, TenantScope};
use audit_store::{AuditedTx, SeaOrmAuditLog};
use persistence::{Backend, Database, DatabaseSettings};
use sea_orm::ConnectionTrait;

/// Defines `sqlite` and `postgres` variants of each scenario `async fn name(&TestDb)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::harness::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = $crate::harness::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

/// A migrated database of its own, plus a scratch directory.
pub struct TestDb {
    pub db: Database,
    pub dir: PathBuf,
    pg: Option<(String, String)>,
    finished: bool,
}

impl TestDb {
    fn scratch_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ptoc-as-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    pub async fn sqlite() -> Self {
        let dir = Self::scratch_dir();
        let db = Database::connect(&DatabaseSettings::sqlite_in(&dir))
            .await
            .expect("open sqlite");
        db.migrate().await.expect("migrate sqlite");
        Self {
            db,
            dir,
            pg: None,
            finished: false,
        }
    }

    /// `None` (skipped, with a note) without `TEST_DATABASE_URL`, unless `CI=true`.
    pub async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "TEST_DATABASE_URL must be set under CI=true (PostgreSQL tests may not be skipped)"
            );
            eprintln!("TEST_DATABASE_URL unset: PostgreSQL variant skipped");
            return None;
        };
        let name = format!("ptoc_as_{}", uuid::Uuid::now_v7().simple());
        let admin = sea_orm::Database::connect(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let settings = DatabaseSettings {
            url: with_database(&admin_url, &name),
            read_url: None,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
        };
        let mut this = Self {
            db: Database::connect(&settings).await.expect("open postgres"),
            dir: Self::scratch_dir(),
            pg: Some((admin_url, name)),
            finished: false,
        };
        if let Err(e) = this.db.migrate().await {
            this.drop_pg_blocking();
            panic!("migrate postgres: {e}");
        }
        Some(this)
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    pub fn log(&self) -> SeaOrmAuditLog {
        SeaOrmAuditLog::new(self.db.clone())
    }

    /// Closes the pools and drops the PostgreSQL database (explicitly, on the test's own
    /// runtime). A test that panics earlier is cleaned up by `Drop` instead.
    pub async fn finish(mut self) {
        self.finished = true;
        self.db.close().await.ok();
        if let Some((admin_url, name)) = self.pg.take() {
            drop_database(&admin_url, &name).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn drop_pg_blocking(&mut self) {
        if let Some((admin_url, name)) = self.pg.take() {
            // Called while the test's runtime is blocked (panic unwinding): a private
            // runtime on another thread drops the database, FORCE ends our connections.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_database(&admin_url, &name));
                }
            })
            .join();
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.finished {
            self.drop_pg_blocking();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) {
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

/// An audit event of `scope` with the given action and entity.
pub fn event(scope: TenantScope, action: &str, entity_id: &str) -> NewAuditEvent {
    NewAuditEvent::audit(
        scope,
        Actor::User(uuid::Uuid::from_u128(7)),
        Action::new(action).expect("valid action"),
        "permission_setting",
        entity_id,
        ChangeType::Update,
    )
}

/// Appends `n` events to `scope`'s chain, one committed unit of work each.
pub async fn append_n(db: &Database, scope: TenantScope, n: usize) -> Vec<AuditEvent> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let tx = AuditedTx::begin(db).await.expect("begin");
        let new = event(scope, "permission.update", &format!("key.{i}"))
            .with_new_value(serde_json::json!({ "i": i, "enabled": i % 2 == 0 }));
        tx.record(new).await.expect("record");
        out.extend(tx.commit().await.expect("commit"));
    }
    out
}

/// Every stored event of `chain`, ascending by seq, through the port.
pub async fn load_chain(log: &SeaOrmAuditLog, chain: ChainId) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    loop {
        let from = out.last().map_or(1, |e: &AuditEvent| e.seq + 1);
        let page = log
            .chain_events(chain, from, 100)
            .await
            .expect("chain events");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}
