//! The shared database layer of the SeaORM adapters: one schema on PostgreSQL
//! (production) and SQLite (the embedded default), created by the `migration` crate;
//! connection pools (primary and optional read replica); and the classification of
//! driver errors (`StorageError`: unavailable → 503, other → 500).
//!
//! The per-domain adapters (`tenancy-store`, `audit-store`, …) build on it; domain
//! types cross their ports, SeaORM types never do.

mod database;
mod error;
mod replica;
pub mod routing;
mod sql;
mod time_util;
mod write_tx;

pub use database::{
    Backend, ConnectError, Database, DatabaseSettings, MigrationStatus, PoolRole, PoolStats,
    SQLITE_CACHE_KIB, WAIT_BUCKETS,
};
pub use error::{StorageError, boxed, is_transient};
pub use replica::ReplicaPolicy;
pub use sql::statement;
pub use time_util::now_micros;
pub use write_tx::{ORG_LOCK, WriteTx};
