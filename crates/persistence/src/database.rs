use std::path::PathBuf;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    Statement, TransactionTrait,
};

use crate::StorageError;

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

/// The application's database: a primary pool and, optionally, a read-replica pool.
///
/// Cloning is cheap (pools are reference-counted).
#[derive(Debug, Clone)]
pub struct Database {
    primary: DatabaseConnection,
    replica: Option<DatabaseConnection>,
    backend: Backend,
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
        })
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

    /// The pool for reads that tolerate replication lag (the replica if configured,
    /// else the primary).
    #[must_use]
    pub fn reader(&self) -> &DatabaseConnection {
        self.replica.as_ref().unwrap_or(&self.primary)
    }

    /// Begins a transaction on the primary confined to one org's rows: on PostgreSQL
    /// the transaction leaves the connection's system scope for `ptoc.org_id = org`,
    /// so row-level security hides every other tenant's rows even from a query that
    /// forgot its `WHERE org_id = …` (and refuses writes of them). On SQLite it is a
    /// plain transaction.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn begin_for_org(&self, org: uuid::Uuid) -> Result<DatabaseTransaction, DbErr> {
        tenant_txn(&self.primary, self.backend, org).await
    }

    /// Like [`Database::begin_for_org`], on the reader pool (for lag-tolerant reads).
    ///
    /// # Errors
    /// The driver's error.
    pub async fn read_for_org(&self, org: uuid::Uuid) -> Result<DatabaseTransaction, DbErr> {
        tenant_txn(self.reader(), self.backend, org).await
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

async fn open(url: &str, settings: &DatabaseSettings) -> Result<DatabaseConnection, ConnectError> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_timeout(settings.acquire_timeout)
        .sqlx_logging(false)
        // WAL lets readers proceed during a write; a busy timeout queues writers
        // instead of failing them; foreign keys are enforced as on PostgreSQL.
        .map_sqlx_sqlite_opts(|o: SqliteConnectOptions| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
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
