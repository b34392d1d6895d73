//! Durable background jobs on the application database, and the member import and
//! export that run as such jobs.
//!
//! - [`queue`]: the job table. A job and its input rows live in the database; a worker
//!   claims a job with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock
//!   on SQLite) and applies it in steps, each step's work and the move of the job's
//!   cursor committed in one transaction, so a crash neither loses nor repeats a row.
//!   A new job's input rows are staged in batches, each committed alone ([`JobDraft`]):
//!   no transaction stays open while an upload is read.
//! - [`import`]: validating rows, the dry run (row-level errors, duplicates), the import
//!   step (a step's valid rows added together through `tenancy_store::add_members_in`,
//!   each audited).
//! - [`export`]: member pages written as CSV or XLSX; the export job.
//! - [`table`]: the spreadsheet columns and header names, reading uploads (through the
//!   capped stream reader of `sheets`), writing XLSX; [`table::Cancel`] stops a read whose
//!   request is gone.
//! - [`worker`]: the loop that claims and runs jobs.
//! - [`cleanup`]: removing ended jobs past their retention and stale staged files.
//!
//! A job can be cancelled while queued or running ([`JobQueue::cancel_in`]): its lease is
//! revoked, so its worker stops at the next step; rows applied before stay applied. Input
//! rows are deleted when a job ends; an ended job (its error report, its export file) is
//! kept for the retention period, then [`JobQueue::sweep`] removes it.

pub mod cleanup;
mod entity;
mod erasure;
pub mod export;
pub mod import;
#[cfg(test)]
mod import_props;
pub mod queue;
pub mod table;
pub mod worker;

pub use erasure::{JobErasure, JobScope, erase_person_in};
pub use queue::{
    Job, JobDraft, JobFilter, JobKind, JobQueue, JobStatus, JobStoreError, SweepReport,
};
pub use worker::{RunOutcome, Worker, WorkerSettings};
