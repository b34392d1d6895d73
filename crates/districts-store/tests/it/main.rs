//! Integration tests of the districts adapter against real, migrated databases: SQLite
//! always, PostgreSQL when `TEST_DATABASE_URL` is set (required under `CI=true`).

#![allow(clippy::unwrap_used, missing_docs)]

mod harness;

mod district_crud;
mod district_delete;
mod school_move;
mod schools;
mod staff;
