//! An org's retention period for removed members (issue #17, "Retention"): how many
//! days a removed (or departed) member's record is kept for a restore before the
//! scheduled erasure takes it. No row: the default (365 days, one school year).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000120_member_retention"
    }
}

/// The tenant table this migration adds (checked by the row-level security tests).
pub const MEMBER_RETENTION_TABLES: &[(&str, &str, &str)] =
    &[("member_retention", "org_id", "NULL")];

const POSTGRES_UP: &str = r"
CREATE TABLE member_retention (
    org_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    removed_member_days integer NOT NULL CHECK (removed_member_days BETWEEN 30 AND 3650),
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by uuid NULL REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX ix_removed_memberships_removed_at ON removed_memberships (removed_at);
ALTER TABLE member_retention ENABLE ROW LEVEL SECURITY;
ALTER TABLE member_retention FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON member_retention
  USING (ptoc_row_visible(org_id, NULL))
  WITH CHECK (ptoc_row_visible(org_id, NULL));
";

const SQLITE_UP: &str = r"
CREATE TABLE member_retention (
    org_id blob PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    removed_member_days integer NOT NULL CHECK (removed_member_days BETWEEN 30 AND 3650),
    version bigint NOT NULL,
    updated_at text NOT NULL,
    updated_by blob NULL REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX ix_removed_memberships_removed_at ON removed_memberships (removed_at);
";

const DOWN: &str = r"
DROP INDEX IF EXISTS ix_removed_memberships_removed_at;
DROP TABLE IF EXISTS member_retention;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let sql = match db.get_database_backend() {
            DbBackend::Postgres => POSTGRES_UP,
            _ => SQLITE_UP,
        };
        db.execute_unprepared(sql).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
