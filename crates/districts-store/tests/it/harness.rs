//! Test databases: a fresh SQLite file per test, and a fresh PostgreSQL database per test
//! when `TEST_DATABASE_URL` (an admin URL) is set. Under `CI=true` a missing
//! `TEST_DATABASE_URL` fails the PostgreSQL tests instead of skipping them.
//!
//! Cleanup is explicit and async, at the end of each test ([`TestDb::finish`]), on the
//! test's own runtime. Only a test that panicked earlier falls back to `Drop`, which
//! never touches the pools: it drops the PostgreSQL database from a private runtime on
//! another thread (`WITH (FORCE)` ends our connections).

use std::path::PathBuf;
use std::time::Duration;

use audit::{Actor, RequestMeta};
use districts::ports::AuditContext;
use districts::{DistrictId, SchoolId};
use districts_store::SeaOrmDistrictRepository;
use persistence::{Database, DatabaseSettings, now_micros};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, Value};
use tenancy::{OrgId, UserId};
use uuid::Uuid;

/// Defines `sqlite` and `postgres` variants of each scenario `async fn name(&TestDb)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::harness::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::harness::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

/// A migrated database of its own.
pub struct TestDb {
    pub db: Database,
    dir: PathBuf,
    pg: Option<(String, String)>,
    finished: bool,
}

impl TestDb {
    fn scratch_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ptoc-ds-{}", Uuid::now_v7().simple()));
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
        let name = format!("ptoc_ds_{}", Uuid::now_v7().simple());
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
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
        };
        // From here on the database exists: a panic drops it through `Drop`.
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

    pub fn repo(&self) -> SeaOrmDistrictRepository {
        SeaOrmDistrictRepository::new(self.db.clone())
    }

    /// Closes the pools and drops the PostgreSQL database, on the test's own runtime.
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

    async fn exec<S: sea_orm::StatementBuilder>(&self, stmt: &S) {
        self.db.primary().execute(stmt).await.expect("statement");
    }

    /// A user row (district staff reference users).
    pub async fn insert_user(&self) -> UserId {
        let id = Uuid::now_v7();
        let now = now_micros();
        let stmt = Query::insert()
            .into_table(Alias::new("users"))
            .columns(
                [
                    "id",
                    "email",
                    "first_name",
                    "last_name",
                    "password_hash",
                    "status",
                    "is_platform_admin",
                    "version",
                    "created_at",
                    "updated_at",
                ]
                .map(Alias::new),
            )
            .values_panic([
                Expr::val(id),
                Expr::val(format!("{}@example.org", id.simple())),
                Expr::val("Test"),
                Expr::val("User"),
                Expr::val("$argon2id$test"),
                Expr::val("active"),
                Expr::val(false),
                Expr::val(1_i64),
                Expr::val(now),
                Expr::val(now),
            ])
            .to_owned();
        self.exec(&stmt).await;
        UserId::from_uuid(id)
    }

    /// An organization row, as the tenancy adapter would store it.
    pub async fn insert_org(
        &self,
        school: Option<SchoolId>,
        district: Option<DistrictId>,
    ) -> OrgId {
        let id = Uuid::now_v7();
        let now = now_micros();
        let stmt = Query::insert()
            .into_table(Alias::new("organizations"))
            .columns(
                [
                    "id",
                    "name",
                    "kind",
                    "school_id",
                    "district_id",
                    "signup_code",
                    "branding",
                    "status",
                    "version",
                    "permissions_version",
                    "created_at",
                    "updated_at",
                ]
                .map(Alias::new),
            )
            .values_panic([
                Expr::val(id),
                Expr::val("Test PTO"),
                Expr::val("pto"),
                Expr::val(school.map(|s| s.as_uuid())),
                Expr::val(district.map(|d| d.as_uuid())),
                Expr::val(format!("S{}", &id.simple().to_string()[20..])),
                Expr::val(serde_json::json!({})),
                Expr::val("active"),
                Expr::val(1_i64),
                Expr::val(1_i64),
                Expr::val(now),
                Expr::val(now),
            ])
            .to_owned();
        self.exec(&stmt).await;
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
        self.exec(&stmt).await;
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
