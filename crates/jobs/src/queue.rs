//! The durable job table: creating a job with its input rows, claiming one with a lease,
//! advancing its cursor inside the transaction that does the work, finishing it.
//!
//! Exactly-once rests on one rule: a worker applies the rows after `cursor` and moves
//! `cursor` past them **in the same transaction**, with a conditional update
//! (`… WHERE cursor = <what it read> AND lease_owner = <me>`). A crash before the commit
//! loses the work and the cursor move together; a worker whose lease was taken over
//! finds the condition false and rolls back. Claiming is `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL and the database write lock on SQLite.

use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entity::{job_errors, job_files, job_items, jobs};
use persistence::{Database, WriteTx, now_micros};

/// A storage failure of the job queue.
#[derive(Debug, thiserror::Error)]
#[error("job storage failure")]
pub struct JobStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl From<sea_orm::DbErr> for JobStoreError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self(persistence::boxed(e))
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Bulk member import from an uploaded CSV or XLSX file.
    MemberImport,
    /// A member export (CSV or XLSX) too large to stream in the request.
    MemberExport,
}

impl JobKind {
    /// Every kind.
    pub const ALL: [Self; 2] = [Self::MemberImport, Self::MemberExport];

    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MemberImport => "member_import",
            Self::MemberExport => "member_export",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker (or waiting for a new one after a crash).
    Running,
    /// Done (an import may still have failed rows: see the error report).
    Succeeded,
    /// Given up (see `error`).
    Failed,
    /// Stopped on request: the rows applied before stay applied.
    Cancelled,
}

impl JobStatus {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the job has ended (nothing will change it any more).
    #[must_use]
    pub const fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => Self::Running,
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The org it belongs to.
    pub org_id: Uuid,
    /// Its id.
    pub id: Uuid,
    /// What it does.
    pub kind: JobKind,
    /// Where it stands.
    pub status: JobStatus,
    /// Who started it.
    pub created_by: Option<Uuid>,
    /// Kind-specific parameters.
    pub params: serde_json::Value,
    /// Input rows (import) or rows written (export, when done).
    pub total: i64,
    /// The last input row processed (its sequence number).
    pub cursor: i64,
    /// Rows applied.
    pub succeeded: i64,
    /// Rows refused (in the error report).
    pub failed: i64,
    /// Why the job failed, if it did.
    pub error: Option<String>,
    /// Claims so far.
    pub attempts: i32,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// Last progress.
    pub updated_at: OffsetDateTime,
    /// When it ended.
    pub finished_at: Option<OffsetDateTime>,
}

fn job(m: jobs::Model) -> Job {
    Job {
        org_id: m.org_id,
        id: m.id,
        kind: JobKind::parse(&m.kind).unwrap_or(JobKind::MemberImport),
        status: JobStatus::parse(&m.status),
        created_by: m.created_by,
        params: m.params,
        total: m.total,
        cursor: m.cursor,
        succeeded: m.succeeded,
        failed: m.failed,
        error: m.error,
        attempts: m.attempts,
        created_at: m.created_at,
        updated_at: m.updated_at,
        finished_at: m.finished_at,
    }
}

/// Which of an org's jobs [`JobQueue::list`] lists (absent: any).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs of this kind.
    pub kind: Option<JobKind>,
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs this user started.
    pub created_by: Option<Uuid>,
}

/// One input row of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobItem {
    /// Its sequence number (for imports: the row number in the file).
    pub seq: i64,
    /// Its content.
    pub payload: serde_json::Value,
}

/// One refused row of a job's error report.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFailure {
    /// The row's sequence number.
    pub seq: i64,
    /// The row as read.
    pub payload: serde_json::Value,
    /// Why it was refused.
    pub reason: String,
}

/// A claim on a job: who holds it and for how long each renewal lasts.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The job's org.
    pub org_id: Uuid,
    /// The job.
    pub job_id: Uuid,
    /// The worker holding it.
    pub owner: String,
    /// How long a renewal lasts.
    pub duration: Duration,
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn until_ms(d: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The stored names of the statuses of ended jobs.
const FINISHED: [&str; 3] = ["succeeded", "failed", "cancelled"];

/// What [`JobQueue::sweep`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Jobs removed with everything they kept (error reports, result files).
    pub jobs: u64,
}

/// How old a draft's staged rows must be before the sweep takes them for a dead
/// process's leftovers (an upload is staged in seconds).
pub const STAGING_GRACE: time::Duration = time::Duration::hours(1);

/// Rows per multi-row insert of job items, and per staging transaction.
pub const ITEM_CHUNK: usize = 500;

/// A job being created. Its input rows are staged in batches of [`ITEM_CHUNK`], each
/// batch inserted and committed in a short transaction of its own, so that no write
/// transaction stays open while the file is read (on SQLite one open write
/// transaction blocks every other tenant's writes). Staged rows are invisible to
/// workers — a worker only looks for rows of a job it claimed — until
/// [`JobDraft::submit`] inserts the job row itself. Rows of a draft that is never
/// submitted are removed by [`JobDraft::discard`], in the background when the draft
/// is dropped, and in any case by [`JobQueue::sweep`] once they are older than its
/// cut-off (and [`STAGING_GRACE`]).
pub struct JobDraft {
    db: Database,
    org_id: Uuid,
    id: Uuid,
    kind: JobKind,
    created_by: Option<Uuid>,
    params: serde_json::Value,
    buffer: Vec<job_items::ActiveModel>,
    count: i64,
    batches: u64,
    ended: bool,
}

impl std::fmt::Debug for JobDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobDraft")
            .field("id", &self.id)
            .field("count", &self.count)
            .field("batches", &self.batches)
            .finish_non_exhaustive()
    }
}

impl JobDraft {
    /// The job's id.
    #[must_use]
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Batches of input rows committed so far (each in its own transaction).
    #[must_use]
    pub fn batches_committed(&self) -> u64 {
        self.batches
    }

    /// Adds an input row with sequence number `seq` (increasing); every
    /// [`ITEM_CHUNK`] rows are committed as one batch.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn push(
        &mut self,
        seq: i64,
        payload: serde_json::Value,
    ) -> Result<(), JobStoreError> {
        self.buffer.push(job_items::ActiveModel {
            org_id: Set(self.org_id),
            job_id: Set(self.id),
            seq: Set(seq),
            payload: Set(payload),
        });
        self.count += 1;
        if self.buffer.len() >= ITEM_CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), JobStoreError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.buffer);
        let txn = self.db.begin_for_org(self.org_id).await?;
        job_items::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        self.batches += 1;
        Ok(())
    }

    /// Stores the job (queued) with the rows staged so far (the last batch and the
    /// job row in one short transaction).
    ///
    /// # Errors
    /// Storage failures (the staged rows are then discarded in the background).
    pub async fn submit(mut self) -> Result<Job, JobStoreError> {
        let rows = std::mem::take(&mut self.buffer);
        let now = now_micros();
        let txn = self.db.begin_for_org(self.org_id).await?;
        if !rows.is_empty() {
            job_items::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await?;
        }
        let row = jobs::ActiveModel {
            org_id: Set(self.org_id),
            id: Set(self.id),
            kind: Set(self.kind.as_str().to_owned()),
            status: Set(JobStatus::Queued.as_str().to_owned()),
            created_by: Set(self.created_by),
            params: Set(std::mem::take(&mut self.params)),
            total: Set(self.count),
            cursor: Set(0),
            succeeded: Set(0),
            failed: Set(0),
            lease_owner: Set(None),
            lease_until_ms: Set(0),
            attempts: Set(0),
            error: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            finished_at: Set(None),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        self.ended = true;
        Ok(job(row))
    }

    /// Removes the rows staged so far (the job is not created).
    ///
    /// # Errors
    /// Storage failures (the sweep removes the rows later).
    pub async fn discard(mut self) -> Result<(), JobStoreError> {
        self.ended = true;
        if self.batches == 0 {
            return Ok(());
        }
        discard_items(&self.db, self.org_id, self.id).await
    }
}

/// Deletes a draft's staged rows — unless its job row exists (a commit that reported
/// an error but went through: the job keeps its rows).
async fn discard_items(db: &Database, org_id: Uuid, id: Uuid) -> Result<(), JobStoreError> {
    let txn = db.begin_for_org(org_id).await?;
    if jobs::Entity::find_by_id((org_id, id))
        .one(&txn)
        .await?
        .is_none()
    {
        delete_items(&txn, org_id, id).await?;
    }
    txn.commit().await?;
    Ok(())
}

impl Drop for JobDraft {
    fn drop(&mut self) {
        // Neither submitted nor discarded (the request was dropped, or failed): remove
        // what was staged in the background when there is a runtime to do it.
        if self.ended || self.batches == 0 {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (db, org_id, id) = (self.db.clone(), self.org_id, self.id);
            rt.spawn(async move {
                if let Err(e) = discard_items(&db, org_id, id).await {
                    tracing::warn!(error = %e, job = %id, "staged import rows not removed; the sweep will");
                }
            });
        }
    }
}

/// The job queue over the application database.
#[derive(Debug, Clone)]
pub struct JobQueue {
    db: Database,
    notices: tenancy_store::Notices,
}

impl JobQueue {
    /// A queue over `db` (its imports queue no messages: see
    /// [`JobQueue::with_notices`]).
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self {
            db,
            notices: tenancy_store::Notices::none(),
        }
    }

    /// The same queue, its imports queueing their invitations' messages through
    /// `notices`.
    #[must_use]
    pub fn with_notices(mut self, notices: tenancy_store::Notices) -> Self {
        self.notices = notices;
        self
    }

    /// Where its imports queue messages.
    #[must_use]
    pub fn notices(&self) -> &tenancy_store::Notices {
        &self.notices
    }

    /// The database.
    #[must_use]
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// How many jobs of every org are in each status (for `/metrics`).
    ///
    /// # Errors
    /// [`JobStoreError`] when the database fails.
    pub async fn count_by_status(&self) -> Result<Vec<(String, u64)>, JobStoreError> {
        let rows = self
            .db
            .reader()
            .query_all_raw(sea_orm::Statement::from_string(
                self.db.reader().get_database_backend(),
                "SELECT status, count(*) FROM jobs GROUP BY status ORDER BY status",
            ))
            .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get_by_index(0)?;
                let n: i64 = r.try_get_by_index(1)?;
                Ok((status, u64::try_from(n).unwrap_or_default()))
            })
            .collect()
    }

    /// Starts creating a job of `org` (see [`JobDraft`]: nothing is written until the
    /// first batch of rows).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn draft(
        &self,
        org_id: Uuid,
        kind: JobKind,
        created_by: Option<Uuid>,
        params: serde_json::Value,
    ) -> Result<JobDraft, JobStoreError> {
        Ok(JobDraft {
            db: self.db.clone(),
            org_id,
            id: Uuid::now_v7(),
            kind,
            created_by,
            params,
            buffer: Vec::new(),
            count: 0,
            batches: 0,
            ended: false,
        })
    }

    /// One job of `org` (`None` if it does not exist there).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn get(&self, org_id: Uuid, id: Uuid) -> Result<Option<Job>, JobStoreError> {
        let txn = self.db.read_for_org(org_id).await?;
        let row = jobs::Entity::find_by_id((org_id, id)).one(&txn).await?;
        txn.commit().await?;
        Ok(row.map(job))
    }

    /// The org's jobs matching `filter`, newest first (by id), after `before` (the last id
    /// of the previous page), at most `limit`; with the number of all jobs matching
    /// `filter`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(
        &self,
        org_id: Uuid,
        filter: &JobFilter,
        before: Option<Uuid>,
        limit: u64,
    ) -> Result<(Vec<Job>, u64), JobStoreError> {
        use sea_orm::PaginatorTrait;
        let txn = self.db.read_for_org(org_id).await?;
        let mut q = jobs::Entity::find().filter(jobs::Column::OrgId.eq(org_id));
        if let Some(kind) = filter.kind {
            q = q.filter(jobs::Column::Kind.eq(kind.as_str()));
        }
        if let Some(status) = filter.status {
            q = q.filter(jobs::Column::Status.eq(status.as_str()));
        }
        if let Some(creator) = filter.created_by {
            q = q.filter(jobs::Column::CreatedBy.eq(creator));
        }
        let total = q.clone().count(&txn).await?;
        if let Some(before) = before {
            q = q.filter(jobs::Column::Id.lt(before));
        }
        let rows = q
            .order_by_desc(jobs::Column::Id)
            .limit(limit)
            .all(&txn)
            .await?;
        txn.commit().await?;
        Ok((rows.into_iter().map(job).collect(), total))
    }

    /// Cancels every queued or running job of the org (as [`JobQueue::cancel`] does one),
    /// in one transaction, each audited `job.cancel`; returns the cancelled jobs.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn cancel_unfinished(
        &self,
        ctx: &audit::AuditContext,
        org_id: Uuid,
    ) -> Result<Vec<Job>, JobStoreError> {
        let tx = self.db.begin_write().await?;
        let open = jobs::Entity::find()
            .filter(jobs::Column::OrgId.eq(org_id))
            .filter(jobs::Column::Status.is_not_in(FINISHED))
            .all(&tx)
            .await?;
        let mut cancelled = Vec::with_capacity(open.len());
        let mut events = Vec::with_capacity(open.len());
        for row in open {
            let before = job(row);
            let Some(after) = Self::cancel_in(&tx, org_id, before.id).await? else {
                continue;
            };
            events.push(ctx.change(
                audit::TenantScope::org(org_id),
                audit::EventType::JobCancel,
                ("job", before.id.to_string()),
                audit::ChangeType::Update,
                (
                    Some(serde_json::json!({"status": before.status.as_str(), "kind": before.kind.as_str()})),
                    Some(serde_json::json!({
                        "status": after.status.as_str(),
                        "succeeded_rows": after.succeeded,
                        "failed_rows": after.failed,
                    })),
                ),
            ));
            cancelled.push(after);
        }
        if !events.is_empty() {
            audit_store::append_in(&tx, events)
                .await
                .map_err(|e| JobStoreError(Box::new(e)))?;
        }
        tx.commit().await?;
        Ok(cancelled)
    }

    /// Refused rows of a job after `after_seq`, in order, at most `limit`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn failures(
        &self,
        org_id: Uuid,
        id: Uuid,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<JobFailure>, JobStoreError> {
        let txn = self.db.read_for_org(org_id).await?;
        let rows = job_errors::Entity::find()
            .filter(job_errors::Column::OrgId.eq(org_id))
            .filter(job_errors::Column::JobId.eq(id))
            .filter(job_errors::Column::Seq.gt(after_seq))
            .order_by_asc(job_errors::Column::Seq)
            .limit(limit)
            .all(&txn)
            .await?;
        txn.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| JobFailure {
                seq: r.seq,
                payload: r.payload,
                reason: r.reason,
            })
            .collect())
    }

    /// Part `part` of a job's result file.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn file_part(
        &self,
        org_id: Uuid,
        id: Uuid,
        part: i32,
    ) -> Result<Option<Vec<u8>>, JobStoreError> {
        let txn = self.db.read_for_org(org_id).await?;
        let row = job_files::Entity::find_by_id((org_id, id, part))
            .one(&txn)
            .await?;
        txn.commit().await?;
        Ok(row.map(|r| r.data))
    }

    /// Claims the oldest runnable job (queued, or running with an expired lease: its
    /// worker died) for `owner`; `None` when there is none.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn claim(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<(Job, Lease)>, JobStoreError> {
        let conn = self.db.primary();
        let backend = conn.get_database_backend();
        let (sql, lock) = match backend {
            DbBackend::Postgres => ("$1, $2, $3", " FOR UPDATE SKIP LOCKED"),
            _ => ("?, ?, ?", ""),
        };
        let mut params = sql.split(", ");
        let (p1, p2, p3) = (
            params.next().unwrap_or("?"),
            params.next().unwrap_or("?"),
            params.next().unwrap_or("?"),
        );
        let stmt = format!(
            "UPDATE jobs SET status = 'running', lease_owner = {p1}, lease_until_ms = {p2}, \
             attempts = attempts + 1 \
             WHERE (org_id, id) = (SELECT org_id, id FROM jobs \
               WHERE status IN ('queued', 'running') AND lease_until_ms <= {p3} \
               ORDER BY created_at, id LIMIT 1{lock}) \
             RETURNING org_id, id"
        );
        let row = conn
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                stmt,
                [owner.into(), until_ms(lease).into(), now_ms().into()],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let org_id: Uuid = row.try_get("", "org_id")?;
        let id: Uuid = row.try_get("", "id")?;
        let Some(model) = jobs::Entity::find_by_id((org_id, id)).one(conn).await? else {
            return Ok(None);
        };
        Ok(Some((
            job(model),
            Lease {
                org_id,
                job_id: id,
                owner: owner.to_owned(),
                duration: lease,
            },
        )))
    }

    /// Begins one step of work on a claimed job: a transaction scoped to its org that
    /// has renewed the lease on condition that the cursor is still `cursor` and the
    /// lease still ours (on PostgreSQL this also locks the job row until the step
    /// commits). `None` if the lease was lost.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn begin_step(
        &self,
        lease: &Lease,
        cursor: i64,
    ) -> Result<Option<WriteTx>, JobStoreError> {
        let txn = self.db.begin_for_org(lease.org_id).await?;
        let touched = jobs::Entity::update_many()
            .col_expr(
                jobs::Column::LeaseUntilMs,
                Expr::value(until_ms(lease.duration)),
            )
            .filter(jobs::Column::OrgId.eq(lease.org_id))
            .filter(jobs::Column::Id.eq(lease.job_id))
            .filter(jobs::Column::Cursor.eq(cursor))
            .filter(jobs::Column::LeaseOwner.eq(lease.owner.as_str()))
            .exec(&txn)
            .await?;
        if touched.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        Ok(Some(txn))
    }

    /// Input rows after `cursor`, at most `limit`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn items<C: ConnectionTrait>(
        conn: &C,
        lease: &Lease,
        cursor: i64,
        limit: u64,
    ) -> Result<Vec<JobItem>, JobStoreError> {
        Ok(job_items::Entity::find()
            .filter(job_items::Column::OrgId.eq(lease.org_id))
            .filter(job_items::Column::JobId.eq(lease.job_id))
            .filter(job_items::Column::Seq.gt(cursor))
            .order_by_asc(job_items::Column::Seq)
            .limit(limit)
            .all(conn)
            .await?
            .into_iter()
            .map(|r| JobItem {
                seq: r.seq,
                payload: r.payload,
            })
            .collect())
    }

    /// Records refused rows (inside the step's transaction), with multi-row inserts.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn record_failures<C: ConnectionTrait>(
        conn: &C,
        lease: &Lease,
        failures: Vec<JobFailure>,
    ) -> Result<(), JobStoreError> {
        let rows: Vec<job_errors::ActiveModel> = failures
            .into_iter()
            .map(|f| job_errors::ActiveModel {
                org_id: Set(lease.org_id),
                job_id: Set(lease.job_id),
                seq: Set(f.seq),
                payload: Set(f.payload),
                reason: Set(f.reason),
            })
            .collect();
        for chunk in rows.chunks(ITEM_CHUNK) {
            job_errors::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(conn)
                .await?;
        }
        Ok(())
    }

    /// Moves the cursor from `from` to `to` and adds to the counters, then commits the
    /// step; `false` (rolled back) if the cursor or the lease changed meanwhile.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn commit_step(
        txn: WriteTx,
        lease: &Lease,
        from: i64,
        to: i64,
        succeeded: i64,
        failed: i64,
    ) -> Result<bool, JobStoreError> {
        let moved = jobs::Entity::update_many()
            .col_expr(jobs::Column::Cursor, Expr::value(to))
            .col_expr(
                jobs::Column::Succeeded,
                Expr::col(jobs::Column::Succeeded).add(succeeded),
            )
            .col_expr(
                jobs::Column::Failed,
                Expr::col(jobs::Column::Failed).add(failed),
            )
            .col_expr(jobs::Column::UpdatedAt, Expr::value(now_micros()))
            .filter(jobs::Column::OrgId.eq(lease.org_id))
            .filter(jobs::Column::Id.eq(lease.job_id))
            .filter(jobs::Column::Cursor.eq(from))
            .filter(jobs::Column::LeaseOwner.eq(lease.owner.as_str()))
            .exec(&txn)
            .await?;
        if moved.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        txn.commit().await?;
        Ok(true)
    }

    /// Renews the lease (long single steps, e.g. an export); `false` if it was lost.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn renew(&self, lease: &Lease) -> Result<bool, JobStoreError> {
        let txn = self.db.begin_for_org(lease.org_id).await?;
        let touched = jobs::Entity::update_many()
            .col_expr(
                jobs::Column::LeaseUntilMs,
                Expr::value(until_ms(lease.duration)),
            )
            .filter(jobs::Column::OrgId.eq(lease.org_id))
            .filter(jobs::Column::Id.eq(lease.job_id))
            .filter(jobs::Column::LeaseOwner.eq(lease.owner.as_str()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(touched.rows_affected > 0)
    }

    /// Ends the job (`Succeeded`, or `Failed` with `error`), releasing the lease;
    /// `total` replaces the stored total when given (exports count as they write).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn finish(
        &self,
        lease: &Lease,
        outcome: Result<Option<i64>, String>,
    ) -> Result<bool, JobStoreError> {
        let txn = self.db.begin_for_org(lease.org_id).await?;
        let done = Self::finish_in(&txn, lease, outcome).await?;
        txn.commit().await?;
        Ok(done)
    }

    /// [`JobQueue::finish`] inside the caller's transaction.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn finish_in<C: ConnectionTrait>(
        conn: &C,
        lease: &Lease,
        outcome: Result<Option<i64>, String>,
    ) -> Result<bool, JobStoreError> {
        let now = now_micros();
        let mut update = jobs::Entity::update_many()
            .col_expr(
                jobs::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(jobs::Column::LeaseUntilMs, Expr::value(0_i64))
            .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
            .col_expr(jobs::Column::FinishedAt, Expr::value(Some(now)));
        match outcome {
            Ok(total) => {
                update = update.col_expr(
                    jobs::Column::Status,
                    Expr::value(JobStatus::Succeeded.as_str()),
                );
                if let Some(t) = total {
                    update = update
                        .col_expr(jobs::Column::Total, Expr::value(t))
                        .col_expr(jobs::Column::Succeeded, Expr::value(t))
                        .col_expr(jobs::Column::Cursor, Expr::value(t));
                }
            }
            Err(e) => {
                update = update
                    .col_expr(
                        jobs::Column::Status,
                        Expr::value(JobStatus::Failed.as_str()),
                    )
                    .col_expr(jobs::Column::Error, Expr::value(Some(e)));
            }
        }
        let res = update
            .filter(jobs::Column::OrgId.eq(lease.org_id))
            .filter(jobs::Column::Id.eq(lease.job_id))
            .filter(jobs::Column::LeaseOwner.eq(lease.owner.as_str()))
            .exec(conn)
            .await?;
        if res.rows_affected == 0 {
            return Ok(false);
        }
        // The input rows are not needed any more (refused ones are in the error report):
        // uploaded personal data is kept no longer than the job runs.
        delete_items(conn, lease.org_id, lease.job_id).await?;
        Ok(true)
    }

    /// Cancels `job` (as the caller last read it) in one audited unit of work:
    /// [`JobQueue::cancel_in`] and its `job.cancel` event commit together. Returns the
    /// cancelled job, or `None` when it had ended meanwhile (nothing is written then).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn cancel(
        &self,
        ctx: &audit::AuditContext,
        job: &Job,
    ) -> Result<Option<Job>, JobStoreError> {
        let tx = self.db.begin_write().await?;
        let Some(cancelled) = Self::cancel_in(&tx, job.org_id, job.id).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let event = ctx.change(
            audit::TenantScope::org(job.org_id),
            audit::EventType::JobCancel,
            ("job", job.id.to_string()),
            audit::ChangeType::Update,
            (
                Some(serde_json::json!({"status": job.status.as_str(), "kind": job.kind.as_str()})),
                Some(serde_json::json!({
                    "status": cancelled.status.as_str(),
                    "succeeded_rows": cancelled.succeeded,
                    "failed_rows": cancelled.failed,
                })),
            ),
        );
        audit_store::append_in(&tx, vec![event])
            .await
            .map_err(|e| JobStoreError(Box::new(e)))?;
        tx.commit().await?;
        Ok(Some(cancelled))
    }

    /// Cancels the job `id` of `org_id` inside the caller's transaction, unless it has
    /// ended: its lease is revoked, so its worker stops at its next step (a step in flight
    /// commits or rolls back whole first — on PostgreSQL this waits for it), and its input
    /// rows are removed. Returns the job as it was before, or `None` when there is no such
    /// job or it had already ended.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn cancel_in<C: ConnectionTrait>(
        conn: &C,
        org_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Job>, JobStoreError> {
        let now = now_micros();
        let res = jobs::Entity::update_many()
            .col_expr(
                jobs::Column::Status,
                Expr::value(JobStatus::Cancelled.as_str()),
            )
            .col_expr(
                jobs::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(jobs::Column::LeaseUntilMs, Expr::value(0_i64))
            .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
            .col_expr(jobs::Column::FinishedAt, Expr::value(Some(now)))
            .filter(jobs::Column::OrgId.eq(org_id))
            .filter(jobs::Column::Id.eq(id))
            .filter(jobs::Column::Status.is_not_in(FINISHED))
            .exec(conn)
            .await?;
        if res.rows_affected == 0 {
            return Ok(None);
        }
        delete_items(conn, org_id, id).await?;
        Ok(jobs::Entity::find_by_id((org_id, id))
            .one(conn)
            .await?
            .map(job))
    }

    /// Removes jobs that ended before `ended_before`, with their error reports and result
    /// files, at most `batch` jobs per transaction until none is left; safe to run on
    /// several instances at once.
    ///
    /// # Errors
    /// Storage failures (what was removed before stays removed).
    pub async fn sweep(
        &self,
        ended_before: OffsetDateTime,
        batch: u64,
    ) -> Result<SweepReport, JobStoreError> {
        let batch = Ord::max(batch, 1);
        let mut report = SweepReport::default();
        self.sweep_orphan_items(Ord::min(
            ended_before,
            OffsetDateTime::now_utc() - STAGING_GRACE,
        ))
        .await?;
        loop {
            let txn = self.db.begin_write().await?;
            let due: Vec<(Uuid, Uuid)> = jobs::Entity::find()
                .select_only()
                .column(jobs::Column::OrgId)
                .column(jobs::Column::Id)
                .filter(jobs::Column::Status.is_in(FINISHED))
                .filter(jobs::Column::FinishedAt.lt(ended_before))
                .order_by_asc(jobs::Column::FinishedAt)
                .limit(batch)
                .into_tuple()
                .all(&txn)
                .await?;
            for &(org_id, id) in &due {
                delete_items(&txn, org_id, id).await?;
                job_errors::Entity::delete_many()
                    .filter(job_errors::Column::OrgId.eq(org_id))
                    .filter(job_errors::Column::JobId.eq(id))
                    .exec(&txn)
                    .await?;
                job_files::Entity::delete_many()
                    .filter(job_files::Column::OrgId.eq(org_id))
                    .filter(job_files::Column::JobId.eq(id))
                    .exec(&txn)
                    .await?;
                let gone = jobs::Entity::delete_many()
                    .filter(jobs::Column::OrgId.eq(org_id))
                    .filter(jobs::Column::Id.eq(id))
                    .filter(jobs::Column::Status.is_in(FINISHED))
                    .exec(&txn)
                    .await?;
                report.jobs += gone.rows_affected;
            }
            txn.commit().await?;
            if (due.len() as u64) < batch {
                return Ok(report);
            }
        }
    }

    /// Removes staged input rows of drafts never submitted nor discarded (the process
    /// died while an upload was being staged) whose job id — a UUIDv7, so a time — is
    /// older than `before` (at most now − [`STAGING_GRACE`], so a draft being staged
    /// keeps its rows whatever the retention).
    async fn sweep_orphan_items(&self, before: OffsetDateTime) -> Result<u64, JobStoreError> {
        let conn = self.db.primary();
        let backend = conn.get_database_backend();
        let p = if backend == DbBackend::Postgres {
            "$1"
        } else {
            "?"
        };
        let done = conn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "DELETE FROM job_items WHERE job_id < {p} AND NOT EXISTS \
                     (SELECT 1 FROM jobs WHERE jobs.org_id = job_items.org_id \
                     AND jobs.id = job_items.job_id)"
                ),
                [v7_floor(before).into()],
            ))
            .await?;
        Ok(done.rows_affected())
    }

    /// Gives the job back after a transient failure: the lease ends now, so any worker
    /// (this one included) may claim it again.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn release(&self, lease: &Lease, error: &str) -> Result<(), JobStoreError> {
        let txn = self.db.begin_for_org(lease.org_id).await?;
        jobs::Entity::update_many()
            .col_expr(
                jobs::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(jobs::Column::LeaseUntilMs, Expr::value(0_i64))
            .col_expr(jobs::Column::Error, Expr::value(Some(error.to_owned())))
            .filter(jobs::Column::OrgId.eq(lease.org_id))
            .filter(jobs::Column::Id.eq(lease.job_id))
            .filter(jobs::Column::LeaseOwner.eq(lease.owner.as_str()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Replaces the job's result file with the contents of `parts` (in order), inside
    /// the caller's transaction.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn store_file_part<C: ConnectionTrait>(
        conn: &C,
        lease: &Lease,
        part: i32,
        data: Vec<u8>,
    ) -> Result<(), JobStoreError> {
        if part == 0 {
            job_files::Entity::delete_many()
                .filter(job_files::Column::OrgId.eq(lease.org_id))
                .filter(job_files::Column::JobId.eq(lease.job_id))
                .exec(conn)
                .await?;
        }
        job_files::ActiveModel {
            org_id: Set(lease.org_id),
            job_id: Set(lease.job_id),
            part: Set(part),
            data: Set(data),
        }
        .insert(conn)
        .await?;
        Ok(())
    }
}

/// The smallest UUIDv7 of the millisecond `t`: every v7 id made before `t` sorts below.
fn v7_floor(t: OffsetDateTime) -> Uuid {
    let ms = u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    let mut bytes = [0_u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    Uuid::from_bytes(bytes)
}

/// Deletes a job's input rows.
async fn delete_items<C: ConnectionTrait>(
    conn: &C,
    org_id: Uuid,
    id: Uuid,
) -> Result<(), JobStoreError> {
    job_items::Entity::delete_many()
        .filter(job_items::Column::OrgId.eq(org_id))
        .filter(job_items::Column::JobId.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}
