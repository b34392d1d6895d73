//! Test databases ([`test_support::ScratchDb`]: a fresh SQLite file, or a fresh
//! PostgreSQL database when `TEST_DATABASE_URL` is set) and audit fixtures.

use audit::{Action, Actor, AuditEvent, AuditLog, ChainId, ChangeType, NewAuditEvent, TenantScope};
use audit_store::{AuditedTx, SeaOrmAuditLog};
use persistence::{Backend, Database};
use test_support::{ScratchDb, TestEnv};

/// Defines `sqlite` and `postgres` variants of each scenario `async fn name(&TestDb)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        test_support::both_backends!($crate::harness::TestDb; $($name),*);
    };
}

/// A migrated database of its own, plus a scratch directory (`dir`, through `Deref`).
pub struct TestDb {
    scratch: ScratchDb,
}

impl std::ops::Deref for TestDb {
    type Target = ScratchDb;
    fn deref(&self) -> &ScratchDb {
        &self.scratch
    }
}

impl TestEnv for TestDb {
    async fn open(backend: test_support::Backend) -> Option<Self> {
        Some(Self {
            scratch: ScratchDb::open(backend, "ptoc_as", 16).await?,
        })
    }

    async fn finish(self) {
        self.scratch.finish().await;
    }
}

impl TestDb {
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    pub fn log(&self) -> SeaOrmAuditLog {
        SeaOrmAuditLog::new(self.db.clone())
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
