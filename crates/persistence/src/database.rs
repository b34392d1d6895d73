use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::StorageError;
use crate::replica::{ReplicaHealth, ReplicaPolicy};
use crate::write_tx::{AfterCommitSlot, WriteTx};

/// Which database engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (production).
    Postgres,
    /// SQLite (the embedded default).
    Sqlite,
}

impl Backend {
    /// A short lower-case name for logs and reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Primary (read-write) URL: `postgres://…` or `sqlite://path?mode=rwc`.
    pub url: String,
    /// Optional read replica URL (PostgreSQL only), for reads that tolerate lag.
    pub read_url: Option<String>,
    /// Upper bound of pooled connections per pool.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before failing with 503.
    pub acquire_timeout: Duration,
    /// SQLite: how long a writer waits for the database write lock before failing
    /// (then 503); ignored on PostgreSQL.
    pub busy_timeout: Duration,
}

impl DatabaseSettings {
    /// Settings for the embedded default: a SQLite file inside `data_dir`.
    #[must_use]
    pub fn sqlite_in(data_dir: &std::path::Path) -> Self {
        let file: PathBuf = data_dir.join("pto.sqlite3");
        Self {
            url: format!("sqlite://{}?mode=rwc", file.display()),
            read_url: None,
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL names an engine we do not support.
    #[error("unsupported database URL scheme (expected postgres:// or sqlite://)")]
    UnsupportedScheme,
    /// The server could not be reached or refused the connection.
    #[error("could not connect to the database: {0}")]
    Connect(#[source] sea_orm::DbErr),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] sea_orm::DbErr),
}

/// Whether one migration has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Migration name.
    pub name: String,
    /// Whether it has been applied.
    pub applied: bool,
}

/// Which pool a statistic is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRole {
    /// The read-write primary.
    Primary,
    /// The read replica.
    Replica,
}

impl PoolRole {
    /// `primary` or `replica`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Replica => "replica",
        }
    }
}

/// Upper bounds (seconds) of the connection-wait histogram buckets.
pub const WAIT_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0];

/// A pool's state now, and how long units of work waited for a connection so far.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStats {
    /// Which pool.
    pub role: PoolRole,
    /// The configured maximum of connections.
    pub max: u32,
    /// Open connections (in use + idle).
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Transactions begun through [`Database`] (each waited for a connection).
    pub waits: u64,
    /// Their total wait, in seconds.
    pub wait_sum_secs: f64,
    /// Cumulative counts per [`WAIT_BUCKETS`] bound.
    pub wait_buckets: [u64; WAIT_BUCKETS.len()],
}

/// Connection-wait histogram of one pool (lock-free counters).
#[derive(Debug, Default)]
struct WaitHistogram {
    count: AtomicU64,
    sum_micros: AtomicU64,
    buckets: [AtomicU64; WAIT_BUCKETS.len()],
}

impl WaitHistogram {
    fn observe(&self, wait: Duration) {
        let secs = wait.as_secs_f64();
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(wait.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        for (bound, n) in WAIT_BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The application's database: a primary pool and, optionally, a read-replica pool.
///
/// Cloning is cheap (pools are reference-counted).
#[derive(Debug, Clone)]
pub struct Database {
    primary: DatabaseConnection,
    replica: Option<DatabaseConnection>,
    backend: Backend,
    waits: Arc<[WaitHistogram; 2]>,
    after_commit: AfterCommitSlot,
    replica_health: Arc<ReplicaHealth>,
}

impl Database {
    /// Opens the pools. Does not migrate; call [`Database::migrate`].
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, ConnectError> {
        let backend = backend_of(&settings.url).ok_or(ConnectError::UnsupportedScheme)?;
        let primary = open(&settings.url, settings).await?;
        let replica = match &settings.read_url {
            Some(url) => {
                if backend_of(url) != Some(Backend::Postgres) {
                    return Err(ConnectError::UnsupportedScheme);
                }
                Some(open(url, settings).await?)
            }
            None => None,
        };
        Ok(Self {
            primary,
            replica,
            backend,
            waits: Arc::default(),
            after_commit: AfterCommitSlot::default(),
            replica_health: Arc::default(),
        })
    }

    /// Starts measuring the replica's lag continuously (a background task on the current
    /// tokio runtime, ending with the last clone of this database): above
    /// `policy.max_lag` lag-tolerant reads go to the primary, and back to the replica
    /// at half of it, with a log line on each switch. Returns `false` (and does nothing)
    /// without a replica or when a monitor already runs.
    pub fn start_replica_monitor(&self, policy: ReplicaPolicy) -> bool {
        match &self.replica {
            Some(replica) if !self.replica_health.monitored() => {
                crate::replica::spawn(
                    self.primary.clone(),
                    replica.clone(),
                    &self.replica_health,
                    policy,
                );
                true
            }
            _ => false,
        }
    }

    /// Whether lag-tolerant reads use the replica now: `None` without a replica;
    /// `Some(false)` while the monitor has taken it out for lagging or not answering.
    #[must_use]
    pub fn replica_in_use(&self) -> Option<bool> {
        self.replica.as_ref().map(|_| self.replica_health.in_use())
    }

    /// Whether a read replica is configured.
    #[must_use]
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// The state of each pool (primary, then the replica if any).
    #[must_use]
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let mut out = vec![self.stats_of(PoolRole::Primary, &self.primary)];
        if let Some(replica) = &self.replica {
            out.push(self.stats_of(PoolRole::Replica, replica));
        }
        out
    }

    fn stats_of(&self, role: PoolRole, conn: &DatabaseConnection) -> PoolStats {
        let (max, size, idle) = match conn.get_database_backend() {
            DbBackend::Postgres => {
                let p = conn.get_postgres_connection_pool();
                (p.options().get_max_connections(), p.size(), p.num_idle())
            }
            DbBackend::Sqlite => {
                let p = conn.get_sqlite_connection_pool();
                (p.options().get_max_connections(), p.size(), p.num_idle())
            }
            _ => (0, 0, 0),
        };
        let h = &self.waits[role as usize];
        let mut wait_buckets = [0; WAIT_BUCKETS.len()];
        for (out, n) in wait_buckets.iter_mut().zip(&h.buckets) {
            *out = n.load(Ordering::Relaxed);
        }
        PoolStats {
            role,
            max,
            size,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
            waits: h.count.load(Ordering::Relaxed),
            #[allow(clippy::cast_precision_loss, reason = "a metric, not money")]
            wait_sum_secs: h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            wait_buckets,
        }
    }

    /// Which engine this is.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The read-write connection pool.
    #[must_use]
    pub fn primary(&self) -> &DatabaseConnection {
        &self.primary
    }

    /// The pool for reads that tolerate replication lag: the replica if configured,
    /// unless the current unit of work must see its own writes
    /// ([`crate::routing`]: it wrote, or carries a consistency token); else the primary.
    #[must_use]
    pub fn reader(&self) -> &DatabaseConnection {
        self.reader_role().1
    }

    fn reader_role(&self) -> (PoolRole, &DatabaseConnection) {
        match &self.replica {
            Some(replica) if self.replica_health.in_use() && !crate::routing::primary_only() => {
                (PoolRole::Replica, replica)
            }
            _ => (PoolRole::Primary, &self.primary),
        }
    }

    /// Begins a transaction on the primary for a unit of work that writes. On SQLite it
    /// is `BEGIN IMMEDIATE`: it takes the single write lock at once, queueing behind
    /// another writer for the busy timeout, instead of reading first and then failing
    /// with `SQLITE_BUSY` when it tries to upgrade after another writer committed (the
    /// failure a deferred transaction gets under concurrent writes). On PostgreSQL it is
    /// a plain transaction in the connection's system scope.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn begin_write(&self) -> Result<WriteTx, DbErr> {
        crate::routing::mark_written();
        let tx = begin_on(&self.primary, self.backend).await?;
        Ok(WriteTx::new(tx, &self.after_commit))
    }

    /// Installs the after-commit dispatcher for this database and every clone of it
    /// (the composition root does this once; a second call is ignored and returns
    /// `false`). Every [`WriteTx`] begun afterwards hands its committed events to it.
    pub fn set_after_commit(&self, dispatcher: Arc<dyn audit::AfterCommit>) -> bool {
        self.after_commit.set(dispatcher)
    }

    /// Begins a transaction on the primary confined to one org's rows: on PostgreSQL
    /// the transaction leaves the connection's system scope for `ptoc.org_id = org`,
    /// so row-level security hides every other tenant's rows even from a query that
    /// forgot its `WHERE org_id = …` (and refuses writes of them). On SQLite it is a
    /// plain transaction.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn begin_for_org(&self, org: uuid::Uuid) -> Result<WriteTx, DbErr> {
        crate::routing::mark_written();
        let tx = self
            .timed_txn(PoolRole::Primary, &self.primary, org)
            .await?;
        Ok(WriteTx::new(tx, &self.after_commit))
    }

    /// Like [`Database::begin_for_org`], on the reader pool (for lag-tolerant reads).
    ///
    /// # Errors
    /// The driver's error.
    pub async fn read_for_org(&self, org: uuid::Uuid) -> Result<DatabaseTransaction, DbErr> {
        let (role, conn) = self.reader_role();
        self.timed_txn(role, conn, org).await
    }

    #[tracing::instrument(name = "db.begin", level = "debug", skip_all, fields(pool = role.as_str()))]
    async fn timed_txn(
        &self,
        role: PoolRole,
        conn: &DatabaseConnection,
        org: uuid::Uuid,
    ) -> Result<DatabaseTransaction, DbErr> {
        let started = Instant::now();
        let txn = tenant_txn(conn, self.backend, org).await;
        self.waits[role as usize].observe(started.elapsed());
        txn
    }

    /// Applies all pending migrations.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        Migrator::up(&self.primary, None)
            .await
            .map_err(ConnectError::Migrate)
    }

    /// Rolls back the last `steps` migrations.
    pub async fn migrate_down(&self, steps: u32) -> Result<(), ConnectError> {
        Migrator::down(&self.primary, Some(steps))
            .await
            .map_err(ConnectError::Migrate)
    }

    /// Drops everything and re-applies all migrations.
    pub async fn migrate_fresh(&self) -> Result<(), ConnectError> {
        Migrator::fresh(&self.primary)
            .await
            .map_err(ConnectError::Migrate)
    }

    /// Lists every migration with whether it has been applied.
    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>, ConnectError> {
        let list = Migrator::get_migration_with_status(&self.primary)
            .await
            .map_err(ConnectError::Migrate)?;
        Ok(list
            .iter()
            .map(|m| MigrationStatus {
                name: m.name().to_owned(),
                applied: m.status() == sea_orm_migration::MigrationStatus::Applied,
            })
            .collect())
    }

    /// Checks that the primary (and the replica, if any) answer a trivial query.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.primary.ping().await?;
        if let Some(replica) = &self.replica {
            replica.ping().await?;
        }
        Ok(())
    }

    /// How far the read replica's replay is behind the primary: `None` without a
    /// replica. Measured on the replica itself: 0 when it has replayed all the WAL it
    /// received (an idle primary sends nothing, which is no lag), otherwise the age of
    /// the last transaction it replayed; 0 for a server that is not in recovery (a
    /// `DATABASE_READ_URL` naming a primary).
    ///
    /// With a running monitor ([`Database::start_replica_monitor`]) it is the monitor's
    /// last measurement (positions compared with the primary's), an error when that
    /// failed.
    pub async fn replica_lag(&self) -> Option<Result<Duration, StorageError>> {
        let replica = self.replica.as_ref()?;
        if self.replica_health.monitored() {
            return Some(self.replica_health.lag().ok_or_else(|| {
                StorageError::Unavailable("the replica's lag could not be measured".into())
            }));
        }
        let sql = "SELECT CASE \
                     WHEN NOT pg_is_in_recovery() THEN 0::float8 \
                     WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8 \
                     ELSE COALESCE(EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())), 0)::float8 \
                   END AS lag";
        let measured = async {
            let row = replica
                .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await?
                .ok_or_else(|| DbErr::RecordNotFound("replica lag".into()))?;
            let secs: f64 = row.try_get("", "lag")?;
            Ok::<_, StorageError>(Duration::try_from_secs_f64(secs).unwrap_or_default())
        };
        Some(measured.await)
    }

    /// Closes the pools; later queries fail as "unavailable". Used at shutdown (and by
    /// tests to simulate an outage).
    pub async fn close(&self) -> Result<(), StorageError> {
        self.primary.close_by_ref().await?;
        if let Some(replica) = &self.replica {
            replica.close_by_ref().await?;
        }
        Ok(())
    }
}

fn backend_of(url: &str) -> Option<Backend> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else if url.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else {
        None
    }
}

/// `BEGIN` (PostgreSQL) or `BEGIN IMMEDIATE` (SQLite: the write lock from the first
/// statement, so a read-then-write unit of work never fails to upgrade).
async fn begin_on(
    conn: &DatabaseConnection,
    backend: Backend,
) -> Result<DatabaseTransaction, DbErr> {
    match backend {
        Backend::Sqlite => {
            conn.begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
        }
        Backend::Postgres => conn.begin().await,
    }
}

async fn tenant_txn(
    conn: &DatabaseConnection,
    backend: Backend,
    org: uuid::Uuid,
) -> Result<DatabaseTransaction, DbErr> {
    let txn = conn.begin().await?;
    if backend == Backend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('ptoc.scope', 'tenant', true), set_config('ptoc.org_id', $1, true)",
            [org.to_string().into()],
        ))
        .await?;
    }
    Ok(txn)
}

/// SQLite's page cache per connection, as `PRAGMA cache_size` takes it: negative, in KiB
/// (1 MiB; SQLite's default is 2,000 KiB).
pub const SQLITE_CACHE_KIB: i32 = -1024;

async fn open(url: &str, settings: &DatabaseSettings) -> Result<DatabaseConnection, ConnectError> {
    let busy_timeout = settings.busy_timeout;
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_timeout(settings.acquire_timeout)
        .sqlx_logging(false)
        // WAL lets readers proceed during a write; a busy timeout queues writers
        // instead of failing them; foreign keys are enforced as on PostgreSQL;
        // `secure_delete` zeroes deleted rows in their pages, so erased personal data
        // and erased audit keys don't linger in free space (issue #17).
        .map_sqlx_sqlite_opts(move |o: SqliteConnectOptions| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy_timeout)
                .foreign_keys(true)
                .pragma("secure_delete", "ON")
                // The engine runs in this process: each connection's page cache counts
                // in the server's memory (docs/decisions.md, "SQLite's memory").
                .pragma("cache_size", SQLITE_CACHE_KIB.to_string())
        })
        // Row-level security (migration 000007): connections start in the system
        // scope; tenant-scoped units of work narrow it (`Database::begin_for_org`).
        .map_sqlx_postgres_opts(|o: PgConnectOptions| o.options([("ptoc.scope", "system")]));
    let conn = sea_orm::Database::connect(opts)
        .await
        .map_err(ConnectError::Connect)?;
    debug_assert!(matches!(
        conn.get_database_backend(),
        DbBackend::Postgres | DbBackend::Sqlite
    ));
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnectionTrait;

    #[tokio::test]
    async fn every_sqlite_connection_has_the_bounded_page_cache() {
        let dir = std::env::temp_dir().join(format!("ptoc-pragma-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let mut settings = DatabaseSettings::sqlite_in(&dir);
        settings.max_connections = 2;
        let db = Database::connect(&settings).await.expect("open");
        // Two connections at once: both were opened with the pragmas.
        let (a, b) = (db.begin_write().await, db.primary().begin().await);
        let (a, b) = (a.expect("first"), b.expect("second"));
        for pragma in ["cache_size", "secure_delete", "foreign_keys"] {
            for txn in [a.inner(), &b] {
                let row = txn
                    .query_one_raw(Statement::from_string(
                        DbBackend::Sqlite,
                        format!("PRAGMA {pragma}"),
                    ))
                    .await
                    .expect("pragma")
                    .expect("a row");
                let value: i64 = row.try_get_by_index(0).expect("a number");
                let want = if pragma == "cache_size" {
                    i64::from(SQLITE_CACHE_KIB)
                } else {
                    1
                };
                assert_eq!(value, want, "{pragma}");
            }
        }
        drop((a, b));
        db.primary().clone().close().await.expect("close");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
