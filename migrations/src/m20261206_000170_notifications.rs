//! Notifications (issue #19): the inbox, per-user delivery preferences and the record
//! of daily digests sent.
//!
//! - `notifications`: one row per recipient of a notification — an inbox item
//!   (`in_app`) and/or an entry waiting for the recipient's daily digest
//!   (`digest_pending`). `org_id` is the org that sent it (`NULL`: the platform); a
//!   tenant table with forced row-level security on PostgreSQL, so a send in an org's
//!   scope writes only that org's rows. The inbox reads by (`user_id`, `id`) (ids are
//!   UUID v7: newest first); the org's rows by (`org_id`, `id`); the digest job by
//!   (`digest_pending`, `user_id`).
//! - `notification_preferences`: a user's choices per kind and channel (JSON), with
//!   the `version` their `PUT` is checked against. Not a tenant table.
//! - `notification_digests`: one row per user and UTC day a digest was sent — the
//!   primary key (`user_id`, `day`) is what makes a second run of the job on the same
//!   day send nothing more.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000170_notifications"
    }
}

/// The notification tables that hold a tenant id (forced row-level security on
/// PostgreSQL).
pub const NOTIFICATION_TABLES: &[(&str, &str, &str)] = &[("notifications", "org_id", "NULL")];

fn up_sql(ts: &str) -> String {
    format!(
        r"
CREATE TABLE notifications (
    id uuid NOT NULL PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id uuid NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind varchar(16) NOT NULL CHECK (kind IN ('system', 'security', 'activity', 'announcement')),
    title varchar(200) NOT NULL,
    body text NOT NULL,
    sender_id uuid NULL,
    in_app boolean NOT NULL,
    digest_pending boolean NOT NULL,
    created_at {ts} NOT NULL,
    read_at {ts} NULL
);
CREATE INDEX ix_notifications_user ON notifications (user_id, id);
CREATE INDEX ix_notifications_org ON notifications (org_id, id);
CREATE INDEX ix_notifications_digest ON notifications (digest_pending, user_id);
CREATE TABLE notification_preferences (
    user_id uuid NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    choices text NOT NULL,
    version bigint NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE TABLE notification_digests (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day varchar(10) NOT NULL,
    items integer NOT NULL,
    message_id uuid NOT NULL,
    sent_at {ts} NOT NULL,
    PRIMARY KEY (user_id, day)
);
"
    )
}

const PG_RLS: &str = r"
ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON notifications
  USING (ptoc_row_visible(org_id, NULL)) WITH CHECK (ptoc_row_visible(org_id, NULL));
";

const DOWN: &str = r"
DROP TABLE IF EXISTS notification_digests;
DROP TABLE IF EXISTS notification_preferences;
DROP INDEX IF EXISTS ix_notifications_digest;
DROP INDEX IF EXISTS ix_notifications_org;
DROP INDEX IF EXISTS ix_notifications_user;
DROP TABLE IF EXISTS notifications;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(&up_sql("timestamptz")).await?;
            db.execute_unprepared(PG_RLS).await?;
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
