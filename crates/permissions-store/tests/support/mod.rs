//! Test harness: a fresh, migrated database per test (a SQLite file, or a PostgreSQL
//! database created from `TEST_DATABASE_URL`), and plain-SQL fixtures.

#![allow(dead_code)]

use audit::{Actor, RequestMeta};
use permissions_store::SeaOrmPermissionStore;
use tenancy::ports::AuditContext;
use test_support::{Backend, ScratchDb, TestEnv};
use uuid::Uuid;

/// Defines each listed `async fn name(env: &Env)` as `sqlite::name` and `postgres::name`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        test_support::both_backends!($crate::support::Env; $($name),*);
    };
}

/// One test's database (with the shared SQL fixtures, through `Deref`) and store.
pub struct Env {
    scratch: ScratchDb,
    /// The store under test.
    pub store: SeaOrmPermissionStore,
}

impl std::ops::Deref for Env {
    type Target = ScratchDb;
    fn deref(&self) -> &ScratchDb {
        &self.scratch
    }
}

impl TestEnv for Env {
    async fn open(backend: Backend) -> Option<Self> {
        let scratch = ScratchDb::open(backend, "ptoc_ps", 4).await?;
        Some(Self {
            store: SeaOrmPermissionStore::new(scratch.db.clone()),
            scratch,
        })
    }

    async fn finish(self) {
        self.scratch.finish().await;
    }
}

impl Env {
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
