//! SeaORM adapter: implements the domain ports on PostgreSQL (production) and SQLite
//! (the embedded default) with one schema, created by the `migration` crate.
//!
//! Domain types cross the port boundary; SeaORM types never do. Driver errors are
//! translated here into the domain's per-operation errors (a unique violation becomes
//! `Duplicate`, and so on).

mod database;
mod entity;
mod error;
mod users;

pub use database::{Backend, ConnectError, Database, DatabaseSettings, MigrationStatus};
pub use error::StorageError;
pub use users::SeaOrmUserRepository;
