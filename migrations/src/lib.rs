//! Database migrations: one set that runs on both PostgreSQL (production) and SQLite
//! (the embedded default). Backend-specific extras (row-level security, trigram
//! indexes) are added inside a migration behind a backend check, so the two schemas
//! agree on every table, column, key and constraint.
//!
//! Every tenant-owned table carries its tenant id (`org_id` or `district_id`) as the
//! leading column of its keys and indexes, so isolation is checkable and the schema can
//! later be distributed by tenant.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_users;

/// The ordered list of all migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261121_000001_create_users::Migration)]
    }
}
