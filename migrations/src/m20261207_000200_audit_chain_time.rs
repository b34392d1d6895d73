//! Audit pages in time order within one chain (issue #20): an index on
//! `audit_events (chain_id, occurred_at, id)`.
//!
//! An audit page of a tenant is `WHERE chain_id = … ORDER BY occurred_at DESC, id DESC
//! LIMIT n`: with this index, a backward scan that reads `n` rows. The page's query
//! used to add the tenant column (`org_id = …`), which the chain already implies;
//! PostgreSQL took the two conditions as independent and, in the generic plans of
//! prepared statements, combined two bitmaps and sorted every event of the tenant
//! instead (docs/decisions.md, "An audit page reads its page, not its tenant's
//! history"). `ix_audit_org_time`, which served that query, stays for instances of the
//! previous release during a roll; a later release drops it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000200_audit_chain_time"
    }
}

/// The same on PostgreSQL and SQLite.
const UP: &str = "CREATE INDEX ix_audit_chain_time ON audit_events (chain_id, occurred_at, id)";

const DOWN: &str = "DROP INDEX IF EXISTS ix_audit_chain_time";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
