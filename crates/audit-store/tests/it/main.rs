//! Integration tests of the audit adapter against real, migrated databases: SQLite always,
//! PostgreSQL when `TEST_DATABASE_URL` is set (required under `CI=true`).

#![allow(clippy::unwrap_used, missing_docs)]

mod harness;

mod archive;
mod atomicity;
mod batch;
mod concurrency;
mod digests;
mod erasure;
mod query;
mod roundtrip;
mod tamper;
