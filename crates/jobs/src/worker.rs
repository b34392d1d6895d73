//! The job worker: claims runnable jobs (new ones, or ones whose worker died) and runs
//! them step by step. Several workers, on one instance or many, share the queue.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::export::{ExportParams, run_export};
use crate::import::{ImportParams, StepOutcome, import_step};
use crate::queue::{Job, JobKind, JobQueue, JobStoreError, Lease};

/// Job runs of this process that failed, per kind (in [`JobKind::ALL`] order): jobs
/// that ended `failed`, and steps that met a storage failure (the job was released
/// for a retry).
static ENDED_FAILED: [AtomicU64; JobKind::ALL.len()] =
    [const { AtomicU64::new(0) }; JobKind::ALL.len()];
static RELEASED_FOR_RETRY: [AtomicU64; JobKind::ALL.len()] =
    [const { AtomicU64::new(0) }; JobKind::ALL.len()];

fn kind_index(kind: JobKind) -> usize {
    JobKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// Failed job runs of this process so far, per kind and outcome: `failed` (the job
/// ended failed) or `retried` (a step met a storage failure; the job was released for
/// another attempt). Every pair is listed, zeros included.
#[must_use]
pub fn failure_counts() -> Vec<(JobKind, &'static str, u64)> {
    let mut out = Vec::with_capacity(JobKind::ALL.len() * 2);
    for (i, kind) in JobKind::ALL.into_iter().enumerate() {
        out.push((kind, "failed", ENDED_FAILED[i].load(Ordering::Relaxed)));
        out.push((
            kind,
            "retried",
            RELEASED_FOR_RETRY[i].load(Ordering::Relaxed),
        ));
    }
    out
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// This worker's name in leases (unique per worker).
    pub owner: String,
    /// How long a claim lasts without renewal (each step renews it).
    pub lease: Duration,
    /// Import rows per transaction.
    pub batch: u64,
    /// Where temporary export files go.
    pub tmp_dir: PathBuf,
    /// Tests: stop abruptly (as if killed) before applying the row with this sequence
    /// number, leaving its step uncommitted and the lease held.
    pub crash_before_row: Option<i64>,
}

impl WorkerSettings {
    /// Production defaults: a 60 s lease, 200 rows per step.
    #[must_use]
    pub fn new(tmp_dir: PathBuf) -> Self {
        Self {
            owner: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            lease: Duration::from_secs(60),
            batch: 200,
            tmp_dir,
            crash_before_row: None,
        }
    }
}

/// How running one job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The job finished (succeeded or failed for good).
    Finished,
    /// Another worker took it over.
    LeaseLost,
    /// The test hook stopped this worker mid-job.
    Crashed,
}

/// Runs jobs from the queue.
#[derive(Clone)]
pub struct Worker {
    queue: JobQueue,
    directory: tenancy_store::SeaOrmMemberDirectory,
    settings: WorkerSettings,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker over `queue`, reading members through `directory`.
    #[must_use]
    pub fn new(
        queue: JobQueue,
        directory: tenancy_store::SeaOrmMemberDirectory,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            queue,
            directory,
            settings,
        }
    }

    /// Claims one runnable job and runs it; `None` when the queue has nothing to run.
    ///
    /// # Errors
    /// Storage failures (a claimed job is released for a retry).
    pub async fn run_next(&self) -> Result<Option<(Job, RunOutcome)>, JobStoreError> {
        let Some((job, lease)) = self
            .queue
            .claim(&self.settings.owner, self.settings.lease)
            .await?
        else {
            return Ok(None);
        };
        let outcome = match self.run(&job, &lease).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "job step failed; released for a retry");
                RELEASED_FOR_RETRY[kind_index(job.kind)].fetch_add(1, Ordering::Relaxed);
                self.queue.release(&lease, &e.to_string()).await?;
                return Err(e);
            }
        };
        Ok(Some((job, outcome)))
    }

    /// Runs jobs until none is runnable; returns how many it finished.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn run_until_idle(&self) -> Result<usize, JobStoreError> {
        let mut finished = 0;
        while let Some((_, outcome)) = self.run_next().await? {
            match outcome {
                RunOutcome::Finished => finished += 1,
                RunOutcome::Crashed => return Ok(finished),
                RunOutcome::LeaseLost => {}
            }
        }
        Ok(finished)
    }

    async fn run(&self, job: &Job, lease: &Lease) -> Result<RunOutcome, JobStoreError> {
        match job.kind {
            JobKind::MemberImport => {
                let params: ImportParams = match serde_json::from_value(job.params.clone()) {
                    Ok(p) => p,
                    Err(e) => return self.fail(job, lease, format!("bad parameters: {e}")).await,
                };
                let mut cursor = job.cursor;
                loop {
                    match import_step(
                        &self.queue,
                        lease,
                        &params,
                        cursor,
                        self.settings.batch,
                        self.settings.crash_before_row,
                    )
                    .await?
                    {
                        StepOutcome::Advanced(to) => {
                            cursor = to;
                        }
                        StepOutcome::Done => {
                            self.queue.finish(lease, Ok(None)).await?;
                            return Ok(RunOutcome::Finished);
                        }
                        StepOutcome::LeaseLost => return Ok(RunOutcome::LeaseLost),
                        StepOutcome::Crashed => return Ok(RunOutcome::Crashed),
                    }
                }
            }
            JobKind::MemberExport => {
                let params: ExportParams = match serde_json::from_value(job.params.clone()) {
                    Ok(p) => p,
                    Err(e) => return self.fail(job, lease, format!("bad parameters: {e}")).await,
                };
                match run_export(
                    &self.queue,
                    self.directory.clone(),
                    lease,
                    &params,
                    &self.settings.tmp_dir,
                    job.created_by,
                )
                .await?
                {
                    Ok(_) => {}
                    Err(reason) => {
                        self.fail(job, lease, reason).await?;
                    }
                }
                Ok(RunOutcome::Finished)
            }
        }
    }

    /// Ends `job` as failed with `reason` (counted in [`failure_counts`] when this
    /// worker still held it).
    async fn fail(
        &self,
        job: &Job,
        lease: &Lease,
        reason: String,
    ) -> Result<RunOutcome, JobStoreError> {
        tracing::warn!(job = %job.id, kind = job.kind.as_str(), reason = %reason, "job failed");
        if self.queue.finish(lease, Err(reason)).await? {
            ENDED_FAILED[kind_index(job.kind)].fetch_add(1, Ordering::Relaxed);
        }
        Ok(RunOutcome::Finished)
    }

    /// Runs forever in the background: whenever `wake` is notified (a job was created
    /// on this instance) and at least every `poll` (jobs of other instances, or left by
    /// a worker that died).
    pub fn spawn(self, wake: Arc<Notify>, poll: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.run_until_idle().await {
                    tracing::warn!(error = %e, "job worker: storage failure; retrying");
                }
                let _ = tokio::time::timeout(poll, wake.notified()).await;
            }
        })
    }
}
