//! Test databases ([`test_support::ScratchDb`]: a fresh SQLite file, or a fresh
//! PostgreSQL database when `TEST_DATABASE_URL` is set) and district fixtures.

use audit::{Actor, RequestMeta};
use districts::ports::AuditContext;
use districts::{DistrictId, SchoolId};
use districts_store::SeaOrmDistrictRepository;
use persistence::now_micros;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, Value};
use tenancy::{OrgId, UserId};
use test_support::{Backend, ScratchDb, TestEnv};
use uuid::Uuid;

/// Defines `sqlite` and `postgres` variants of each scenario `async fn name(&TestDb)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        test_support::both_backends!($crate::harness::TestDb; $($name),*);
    };
}

/// A migrated database of its own (its fixtures through `Deref`).
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
    async fn open(backend: Backend) -> Option<Self> {
        Some(Self {
            scratch: ScratchDb::open(backend, "ptoc_ds", 8).await?,
        })
    }

    async fn finish(self) {
        self.scratch.finish().await;
    }
}

impl TestDb {
    pub fn repo(&self) -> SeaOrmDistrictRepository {
        SeaOrmDistrictRepository::new(self.db.clone())
    }

    async fn exec_stmt<S: sea_orm::StatementBuilder>(&self, stmt: &S) {
        self.db.primary().execute(stmt).await.expect("statement");
    }

    /// A user row (district staff reference users).
    pub async fn insert_user(&self) -> UserId {
        let id = Uuid::now_v7();
        self.user(id, "active", false).await;
        UserId::from_uuid(id)
    }

    /// An organization row, as the tenancy adapter would store it.
    pub async fn insert_org(
        &self,
        school: Option<SchoolId>,
        district: Option<DistrictId>,
    ) -> OrgId {
        let id = Uuid::now_v7();
        self.org(
            id,
            district.map(|d| d.as_uuid()),
            school.map(|s| s.as_uuid()),
        )
        .await;
        OrgId::from_uuid(id)
    }

    /// A district permission template row (to check it cascades with the district).
    pub async fn insert_template(&self, district: DistrictId, key: &str) {
        let stmt = Query::insert()
            .into_table(Alias::new("district_permission_settings"))
            .columns(
                [
                    "district_id",
                    "key",
                    "min_role",
                    "enabled",
                    "locked",
                    "updated_at",
                ]
                .map(Alias::new),
            )
            .values_panic([
                Expr::val(district.as_uuid()),
                Expr::val(key),
                Expr::val("board_member"),
                Expr::val(true),
                Expr::val(true),
                Expr::val(now_micros()),
            ])
            .to_owned();
        self.exec_stmt(&stmt).await;
    }

    /// Rows of `table` whose `column` equals `value`.
    pub async fn count_where(&self, table: &str, column: &str, value: impl Into<Value>) -> i64 {
        let stmt = Query::select()
            .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
            .from(Alias::new(table))
            .and_where(Expr::col(Alias::new(column)).eq(Expr::val(value)))
            .to_owned();
        let row = self
            .db
            .primary()
            .query_one(&stmt)
            .await
            .expect("count")
            .expect("a row");
        row.try_get::<i64>("", "n").expect("count value")
    }

    /// An org's `(district_id, permissions_version)`.
    pub async fn org_state(&self, org: OrgId) -> (Option<Uuid>, i64) {
        let stmt = Query::select()
            .columns([Alias::new("district_id"), Alias::new("permissions_version")])
            .from(Alias::new("organizations"))
            .and_where(Expr::col(Alias::new("id")).eq(org.as_uuid()))
            .to_owned();
        let row = self
            .db
            .primary()
            .query_one(&stmt)
            .await
            .expect("org")
            .expect("org row");
        (
            row.try_get::<Option<Uuid>>("", "district_id")
                .expect("district_id"),
            row.try_get::<i64>("", "permissions_version")
                .expect("permissions_version"),
        )
    }

    /// `(chain_id, entity_id, actor_id)` of every audit event with this action.
    pub async fn events(&self, action: &str) -> Vec<(String, String, Option<Uuid>)> {
        let stmt = Query::select()
            .columns([
                Alias::new("chain_id"),
                Alias::new("entity_id"),
                Alias::new("actor_id"),
            ])
            .from(Alias::new("audit_events"))
            .and_where(Expr::col(Alias::new("action")).eq(action))
            .order_by(Alias::new("chain_id"), sea_orm::Order::Asc)
            .order_by(Alias::new("seq"), sea_orm::Order::Asc)
            .to_owned();
        self.db
            .primary()
            .query_all(&stmt)
            .await
            .expect("events")
            .into_iter()
            .map(|r| {
                (
                    r.try_get::<String>("", "chain_id").expect("chain_id"),
                    r.try_get::<String>("", "entity_id").expect("entity_id"),
                    r.try_get::<Option<Uuid>>("", "actor_id").expect("actor_id"),
                )
            })
            .collect()
    }
}

/// The acting user of every write in the tests.
pub const ACTOR: Uuid = Uuid::from_u128(0x5eed);

pub fn ctx() -> AuditContext {
    AuditContext {
        actor: Actor::User(ACTOR),
        request: RequestMeta {
            request_id: Some("test-request".into()),
            ..RequestMeta::default()
        },
    }
}

/// The chain id of a district.
pub fn district_chain(d: DistrictId) -> String {
    format!("district:{d}")
}

/// The chain id of an org.
pub fn org_chain(o: OrgId) -> String {
    format!("org:{o}")
}
