//! Webhooks (issue #19): an index of each endpoint's pending deliveries by due time.
//!
//! When an attempt to an endpoint is delivered, the worker makes that endpoint's
//! deliveries waiting for a retry (pending, due in the future, last failed without an
//! answer or with 502/503/504) due now, so a receiver that is back gets its backlog at
//! once (docs/decisions.md, "Webhooks: a receiver that answers again gets its backlog
//! now"). The query runs after every delivered attempt; with this index it is a range of
//! the endpoint's waiting retries, empty on the healthy path, instead of a walk over the
//! endpoint's 30 days of finished deliveries (`ix_webhook_deliveries_endpoint`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000190_webhook_retry_wake"
    }
}

/// The same on PostgreSQL and SQLite (both have partial indexes).
const UP: &str = "CREATE INDEX ix_webhook_deliveries_waiting ON webhook_deliveries \
                  (org_id, endpoint_id, due_ms) WHERE status = 'pending'";

const DOWN: &str = "DROP INDEX IF EXISTS ix_webhook_deliveries_waiting";

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
