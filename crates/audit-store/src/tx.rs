//! The audited unit of work: one database transaction for a change and its audit events.

use std::sync::atomic::{AtomicBool, Ordering};

use audit::{AppendAuditError, AuditEvent, AuditSink, NewAuditEvent};
use persistence::{Database, StorageError, WriteTx};
use sea_orm::{ConnectionTrait, DbErr};

use crate::append::{append_event, append_in};

/// Why an audited unit of work could not be committed. In every case the transaction
/// was rolled back: neither the change nor its events are stored.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// [`AuditedTx::commit`] was called but no event was recorded. Record the event, or
    /// call [`AuditedTx::commit_unaudited`] with a reason if the change needs none.
    #[error("refusing to commit a unit of work without an audit event")]
    NothingRecorded,
    /// An append failed earlier in this unit of work, so the transaction may hold a
    /// partial append (and on PostgreSQL is aborted anyway).
    #[error("an audit append failed in this unit of work; it was rolled back")]
    AuditFailed,
    /// The database failed to commit (or to roll back after one of the above).
    #[error("commit failed")]
    Storage(#[source] StorageError),
}

/// Why [`AuditedTx::record_alone`] stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum RecordAloneError {
    /// The transaction could not begin.
    #[error(transparent)]
    Begin(#[from] BeginError),
    /// The append failed.
    #[error(transparent)]
    Append(#[from] AppendAuditError),
    /// The commit failed.
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// Why an audited unit of work could not start.
#[derive(Debug, thiserror::Error)]
#[error("could not begin the audited transaction")]
pub struct BeginError(#[source] pub StorageError);

/// One database transaction holding a change **and** the audit events that describe it:
/// they commit together or not at all.
///
/// * [`AuditedTx::conn`]: the transaction, for the business writes;
/// * [`AuditedTx::record`] (or the [`AuditSink`] from [`AuditedTx::sink`]): appends an
///   event to its chain in the same transaction ([`crate::append_event`]);
/// * [`AuditedTx::commit`]: commits, and **fails (rolling back) if no event was
///   recorded**, or if an append failed; [`AuditedTx::commit_unaudited`] is the explicit,
///   logged way to commit a change that needs no event;
/// * dropping it (or [`AuditedTx::rollback`]) rolls both back.
///
/// On SQLite the transaction starts with `BEGIN IMMEDIATE`: it holds the database write
/// lock from the first statement, so reads before the first write can never turn into a
/// "database is locked" upgrade failure.
///
/// ```no_run
/// # use audit::{Action, Actor, ChangeType, NewAuditEvent, TenantScope};
/// # async fn demo(db: &persistence::Database, org: uuid::Uuid) -> Result<(), Box<dyn std::error::Error>> {
/// use sea_orm::ConnectionTrait;
/// let tx = audit_store::AuditedTx::begin(db).await?;
/// tx.conn().execute_unprepared("UPDATE organizations SET name = 'New' WHERE 1 = 0").await?;
/// tx.record(NewAuditEvent::audit(
///     TenantScope::org(org),
///     Actor::System,
///     Action::new("organization.rename")?,
///     "organization",
///     org.to_string(),
///     ChangeType::Update,
/// ))
/// .await?;
/// let events = tx.commit().await?;
/// # let _ = events; Ok(()) }
/// ```
#[derive(Debug)]
pub struct AuditedTx {
    tx: WriteTx,
    failed: AtomicBool,
    /// Serialises `record` calls: two appends interleaved on one transaction would both
    /// seal after the same head.
    appending: tokio::sync::Mutex<()>,
}

impl AuditedTx {
    /// Begins a unit of work on the primary database ([`Database::begin_write`]: `BEGIN
    /// IMMEDIATE` on SQLite); its events reach the database's after-commit dispatcher.
    ///
    /// # Errors
    /// [`BeginError`] if the transaction cannot be started.
    pub async fn begin(db: &Database) -> Result<Self, BeginError> {
        let tx = db.begin_write().await.map_err(|e| BeginError(e.into()))?;
        Ok(Self {
            tx,
            failed: AtomicBool::new(false),
            appending: tokio::sync::Mutex::new(()),
        })
    }

    /// Records `event` alone in its own unit of work: for events that are the change
    /// themselves (an export, an archive), not the record of another write.
    ///
    /// # Errors
    /// [`RecordAloneError`] when the transaction cannot begin, the append fails or the
    /// commit fails; nothing is stored then.
    pub async fn record_alone(
        db: &Database,
        event: NewAuditEvent,
    ) -> Result<AuditEvent, RecordAloneError> {
        let tx = Self::begin(db).await?;
        let sealed = tx.record(event).await?;
        tx.commit().await?;
        Ok(sealed)
    }

    /// The transaction, for the business writes of this unit of work.
    #[must_use]
    pub fn conn(&self) -> &WriteTx {
        &self.tx
    }

    /// Appends `event` to its chain in this transaction (see [`crate::append_event`]).
    ///
    /// # Errors
    /// As [`crate::append_event`]. After an error the unit of work can only be rolled
    /// back: [`AuditedTx::commit`] will fail with [`CommitError::AuditFailed`].
    pub async fn record(&self, event: NewAuditEvent) -> Result<AuditEvent, AppendAuditError> {
        let appending = self.appending.lock().await;
        let chain = event.chain();
        let result = append_in(&self.tx, vec![event]).await;
        drop(appending);
        match result {
            Ok(mut sealed) => sealed.pop().ok_or_else(|| {
                self.failed.store(true, Ordering::Relaxed);
                AppendAuditError::Storage(Box::new(crate::ChainStateError::CorruptHead {
                    chain,
                    detail: "an append stored no event".to_owned(),
                }))
            }),
            Err(e) => {
                self.failed.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// An [`AuditSink`] writing into this unit of work, for domain services that take
    /// the port.
    #[must_use]
    pub fn sink(&self) -> SeaOrmAuditSink<'_> {
        SeaOrmAuditSink { tx: self }
    }

    /// The events recorded so far.
    #[must_use]
    pub fn recorded(&self) -> Vec<AuditEvent> {
        self.tx.events()
    }

    /// Commits the change and its events, returning the events.
    ///
    /// # Errors
    /// [`CommitError::NothingRecorded`] if no event was recorded and
    /// [`CommitError::AuditFailed`] if an append failed — both after rolling back;
    /// [`CommitError::Storage`] if the commit itself fails.
    pub async fn commit(self) -> Result<Vec<AuditEvent>, CommitError> {
        let refusal = if self.failed.load(Ordering::Relaxed) {
            Some(CommitError::AuditFailed)
        } else if self.tx.events().is_empty() {
            Some(CommitError::NothingRecorded)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            tracing::error!(error = %refusal, "audited unit of work rolled back");
            self.tx.rollback().await.map_err(storage)?;
            return Err(refusal);
        }
        let events = self.tx.events();
        self.tx.commit().await.map_err(storage)?;
        Ok(events)
    }

    /// Commits a change that deliberately has no audit event, logging `reason` (a
    /// short, static explanation such as `"session touch"`).
    ///
    /// # Errors
    /// [`CommitError::AuditFailed`] (after rolling back) if an append failed;
    /// [`CommitError::Storage`] if the commit fails.
    pub async fn commit_unaudited(self, reason: &'static str) -> Result<(), CommitError> {
        if self.failed.load(Ordering::Relaxed) {
            self.tx.rollback().await.map_err(storage)?;
            return Err(CommitError::AuditFailed);
        }
        tracing::info!(
            reason,
            events = self.tx.events().len(),
            "committing a unit of work without requiring an audit event"
        );
        self.tx.commit().await.map_err(storage)
    }

    /// Rolls back the change and its events (dropping the value does the same).
    ///
    /// # Errors
    /// [`StorageError`] if the rollback statement fails (the database then discards the
    /// transaction when the connection is recycled).
    pub async fn rollback(self) -> Result<(), StorageError> {
        self.tx.rollback().await.map_err(StorageError::from)
    }
}

fn storage(err: DbErr) -> CommitError {
    CommitError::Storage(err.into())
}

/// The [`AuditSink`] port on an [`AuditedTx`]: appends go into that unit of work and
/// count towards its commit check.
#[derive(Debug, Clone, Copy)]
pub struct SeaOrmAuditSink<'a> {
    tx: &'a AuditedTx,
}

impl AuditSink for SeaOrmAuditSink<'_> {
    async fn append(&self, event: NewAuditEvent) -> Result<AuditEvent, AppendAuditError> {
        self.tx.record(event).await
    }
}

/// An [`AuditSink`] on a caller-managed transaction (or any connection), for code that
/// already owns its [`sea_orm::DatabaseTransaction`]. Prefer [`AuditedTx`], which also refuses
/// to commit without an event.
///
/// The caller must use the same transaction for the change and commit it afterwards,
/// and must not run two appends on it concurrently; see [`crate::append_event`].
#[derive(Debug, Clone, Copy)]
pub struct TxAuditSink<'a, C> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait + Sync> TxAuditSink<'a, C> {
    /// A sink appending through `conn` (normally a [`sea_orm::DatabaseTransaction`]).
    #[must_use]
    pub const fn new(conn: &'a C) -> Self {
        Self { conn }
    }
}

impl<C: ConnectionTrait + Sync> AuditSink for TxAuditSink<'_, C> {
    async fn append(&self, event: NewAuditEvent) -> Result<AuditEvent, AppendAuditError> {
        append_event(self.conn, event).await
    }
}
