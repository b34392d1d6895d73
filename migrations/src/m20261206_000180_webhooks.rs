//! Webhooks (issue #19): an org's endpoints, one delivery per (endpoint, event) and a
//! bounded log of attempts. All three are tenant tables (`org_id` leads every key and
//! index) with forced row-level security on PostgreSQL.
//!
//! - `webhook_endpoints`: the URL, the event types (JSON array), the signing secret
//!   sealed at rest (never answered after creation or rotation), the previous secret
//!   and until when it still signs, enabled or disabled (with the reason), the
//!   position in the org's change-event chain up to which deliveries were queued
//!   (`cursor_seq`: the worker reads the committed record after it, see
//!   docs/decisions.md, "Webhooks: deliveries from the committed record"), `version`.
//! - `webhook_deliveries`: one message to one endpoint — a change event (`event_seq`,
//!   unique per endpoint, so queuing twice inserts nothing) or a test ping (`NULL`) —
//!   its body (kept, so every attempt sends the same bytes), its status, attempts,
//!   when it is next due (a claimed one: until when its lease runs), the last answer's
//!   status code and latency and the last error.
//! - `webhook_attempts`: each attempt's time, status code, latency and error (the
//!   newest 20 per delivery are kept).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000180_webhooks"
    }
}

/// The webhook tables (all tenant tables: forced row-level security on PostgreSQL).
pub const WEBHOOK_TABLES: &[(&str, &str, &str)] = &[
    ("webhook_endpoints", "org_id", "NULL"),
    ("webhook_deliveries", "org_id", "NULL"),
    ("webhook_attempts", "org_id", "NULL"),
];

fn up_sql(ts: &str) -> String {
    format!(
        r"
CREATE TABLE webhook_endpoints (
    org_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    url varchar(2048) NOT NULL,
    event_types text NOT NULL,
    secret text NOT NULL,
    previous_secret text NULL,
    previous_until {ts} NULL,
    enabled boolean NOT NULL,
    disabled_reason varchar(32) NULL,
    cursor_seq bigint NOT NULL,
    version bigint NOT NULL,
    created_by uuid NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX ix_webhook_endpoints_enabled ON webhook_endpoints (org_id, enabled);
CREATE TABLE webhook_deliveries (
    org_id uuid NOT NULL,
    id uuid NOT NULL,
    endpoint_id uuid NOT NULL,
    event_type varchar(64) NOT NULL,
    event_seq bigint NULL,
    payload text NOT NULL,
    status varchar(16) NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts integer NOT NULL,
    round_start integer NOT NULL,
    manual boolean NOT NULL,
    due_ms bigint NOT NULL,
    lease_owner varchar(64) NULL,
    last_status_code integer NULL,
    last_latency_ms integer NULL,
    last_error text NULL,
    last_attempt_at {ts} NULL,
    created_at {ts} NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, endpoint_id, event_seq),
    FOREIGN KEY (org_id, endpoint_id) REFERENCES webhook_endpoints (org_id, id) ON DELETE CASCADE
);
CREATE INDEX ix_webhook_deliveries_endpoint ON webhook_deliveries (org_id, endpoint_id, id);
CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (due_ms) WHERE status IN ('pending', 'sending');
CREATE TABLE webhook_attempts (
    org_id uuid NOT NULL,
    id uuid NOT NULL,
    delivery_id uuid NOT NULL,
    attempted_at {ts} NOT NULL,
    status_code integer NULL,
    latency_ms integer NOT NULL,
    error text NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, delivery_id) REFERENCES webhook_deliveries (org_id, id) ON DELETE CASCADE
);
CREATE INDEX ix_webhook_attempts_delivery ON webhook_attempts (org_id, delivery_id, id);
"
    )
}

const DOWN: &str = r"
DROP TABLE IF EXISTS webhook_attempts;
DROP TABLE IF EXISTS webhook_deliveries;
DROP TABLE IF EXISTS webhook_endpoints;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(&up_sql("timestamptz")).await?;
            for (table, org, district) in WEBHOOK_TABLES {
                let check = format!("ptoc_row_visible({org}, {district})");
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
                     ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
                     CREATE POLICY tenant_wall ON {table} USING ({check}) WITH CHECK ({check});"
                ))
                .await?;
            }
        } else {
            db.execute_unprepared(&up_sql("text")).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
