//! The write transaction every store uses: a database transaction that remembers the
//! change events appended in it and hands them, once committed, to the after-commit
//! dispatcher.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use audit::{AfterCommit, AuditEvent};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
};

/// Where a [`crate::Database`] and its clones find the after-commit dispatcher
/// (installed once by the composition root, after the stores were built).
#[derive(Clone, Default)]
pub(crate) struct AfterCommitSlot(Arc<OnceLock<Arc<dyn AfterCommit>>>);

impl AfterCommitSlot {
    pub(crate) fn set(&self, dispatcher: Arc<dyn AfterCommit>) -> bool {
        self.0.set(dispatcher).is_ok()
    }
}

impl std::fmt::Debug for AfterCommitSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "installed"
        } else {
            "none"
        })
    }
}

/// A write transaction: the business writes of one unit of work and the change events
/// appended with them (see `audit_store::append_in`). Use it wherever a
/// [`DatabaseTransaction`] would be used (it implements [`ConnectionTrait`]).
///
/// [`WriteTx::commit`] commits, then hands the recorded events to the database's
/// [`AfterCommit`] dispatcher (when one is installed) before returning, so the caller's
/// next read sees every cache invalidated. Dropping it, or [`WriteTx::rollback`], rolls
/// the change back and nothing is dispatched: a rolled-back change leaves no event.
pub struct WriteTx {
    tx: DatabaseTransaction,
    events: Mutex<Vec<AuditEvent>>,
    after_commit: Option<Arc<dyn AfterCommit>>,
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx")
            .field("events", &self.lock().len())
            .field("dispatches", &self.after_commit.is_some())
            .finish_non_exhaustive()
    }
}

/// The row lock an org's writers take on PostgreSQL ([`WriteTx::lock_org`], and
/// [`WriteTx::lock_org_reading`] with the org's row): the lock an `UPDATE` of the row's
/// non-key columns would take, so it serialises the org's writers exactly as one, while
/// inserts of rows referencing the org (which take `FOR KEY SHARE`) still pass — without
/// writing a new version of the row.
pub const ORG_LOCK: sea_orm::sea_query::LockType = sea_orm::sea_query::LockType::NoKeyUpdate;

impl WriteTx {
    pub(crate) fn new(tx: DatabaseTransaction, slot: &AfterCommitSlot) -> Self {
        Self {
            tx,
            events: Mutex::new(Vec::new()),
            after_commit: slot.0.get().cloned(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AuditEvent>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the write lock of org `org` for the rest of the transaction, without
    /// changing the org: on PostgreSQL a row lock ([`ORG_LOCK`], held until commit; a
    /// concurrent writer of the same org waits), taken without writing the row; on
    /// SQLite the database's write lock, taken by an update that changes nothing (the
    /// transaction is deferred: a read first would take a shared lock, and two
    /// transactions both upgrading from one fail at once with `SQLITE_BUSY` instead of
    /// waiting). Every unit of work that must serialize with others on one org
    /// (membership counts, settings versions, moves) takes it here, first. `false` when
    /// there is no such org.
    ///
    /// # Errors
    /// The database's.
    pub async fn lock_org(&self, org: uuid::Uuid) -> Result<bool, DbErr> {
        let backend = self.tx.get_database_backend();
        if backend == DbBackend::Postgres {
            let found = self
                .tx
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    "SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE",
                    [org.into()],
                ))
                .await?;
            return Ok(found.is_some());
        }
        let done = self
            .tx
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "UPDATE organizations SET version = version WHERE id = ?",
                [org.into()],
            ))
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// [`WriteTx::lock_org`] and the org's row read by `row` (a select of the org's own
    /// row by id, of whatever entity the caller maps it to): one statement on
    /// PostgreSQL (the select taking [`ORG_LOCK`]), the lock's update then the read on
    /// SQLite. `None` when there is no such org (nothing is locked then).
    ///
    /// # Errors
    /// The database's.
    pub async fn lock_org_reading<E>(
        &self,
        org: uuid::Uuid,
        row: sea_orm::Select<E>,
    ) -> Result<Option<E::Model>, DbErr>
    where
        E: sea_orm::EntityTrait,
    {
        use sea_orm::QuerySelect;
        if self.tx.get_database_backend() == DbBackend::Postgres {
            return row.lock(ORG_LOCK).one(&self.tx).await;
        }
        if !self.lock_org(org).await? {
            return Ok(None);
        }
        row.one(&self.tx).await
    }

    /// The underlying transaction.
    #[must_use]
    pub fn inner(&self) -> &DatabaseTransaction {
        &self.tx
    }

    /// Notes events appended in this transaction (called by the audit appender, not by
    /// business code): they are dispatched if and when it commits.
    pub fn note_events(&self, events: &[AuditEvent]) {
        self.lock().extend_from_slice(events);
    }

    /// The events appended so far.
    #[must_use]
    pub fn events(&self) -> Vec<AuditEvent> {
        self.lock().clone()
    }

    /// Commits, then dispatches the recorded events.
    ///
    /// # Errors
    /// The driver's error; nothing is dispatched then.
    pub async fn commit(self) -> Result<(), DbErr> {
        let events = self
            .events
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        self.tx.commit().await?;
        if let Some(dispatcher) = &self.after_commit
            && !events.is_empty()
        {
            dispatcher.committed(&events).await;
        }
        Ok(())
    }

    /// Rolls back (dropping the value does the same).
    ///
    /// # Errors
    /// The driver's error.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.tx.rollback().await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTx {
    fn get_database_backend(&self) -> DbBackend {
        self.tx.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.tx.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.tx.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.tx.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.tx.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.tx.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.tx.is_mock_connection()
    }
}
