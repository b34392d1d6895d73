//! Personal data exports (issue #17): one row per request, `queued` until its JSON
//! file is stored (`succeeded`), removed when it expires. `user_id` cascades with the
//! account (an erasure removes the person's exports); `org_id` is set for an org admin's
//! request (on the member's behalf) and cascades with the org; row-level security
//! (PostgreSQL) like every table holding an org id.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000110_personal_data_exports"
    }
}

/// The tenant table this migration adds (checked by the row-level security tests).
pub const PERSONAL_EXPORT_TABLES: &[(&str, &str, &str)] =
    &[("personal_data_exports", "org_id", "NULL")];

const POSTGRES_UP: &str = r"
CREATE TABLE personal_data_exports (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id uuid NULL REFERENCES organizations (id) ON DELETE CASCADE,
    requested_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
    status varchar(16) NOT NULL,
    file bytea NULL,
    size bigint NULL,
    created_at timestamptz NOT NULL,
    finished_at timestamptz NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX ix_personal_data_exports_user ON personal_data_exports (user_id);
CREATE INDEX ix_personal_data_exports_org ON personal_data_exports (org_id) WHERE org_id IS NOT NULL;
CREATE INDEX ix_personal_data_exports_due ON personal_data_exports (status, created_at);
ALTER TABLE personal_data_exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE personal_data_exports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON personal_data_exports
  USING (ptoc_row_visible(org_id, NULL))
  WITH CHECK (ptoc_row_visible(org_id, NULL));
";

const SQLITE_UP: &str = r"
CREATE TABLE personal_data_exports (
    id blob PRIMARY KEY,
    user_id blob NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id blob NULL REFERENCES organizations (id) ON DELETE CASCADE,
    requested_by blob NULL REFERENCES users (id) ON DELETE SET NULL,
    status varchar(16) NOT NULL,
    file blob NULL,
    size bigint NULL,
    created_at text NOT NULL,
    finished_at text NULL,
    expires_at text NOT NULL
);
CREATE INDEX ix_personal_data_exports_user ON personal_data_exports (user_id);
CREATE INDEX ix_personal_data_exports_org ON personal_data_exports (org_id);
CREATE INDEX ix_personal_data_exports_due ON personal_data_exports (status, created_at);
";

const DOWN: &str = "DROP TABLE IF EXISTS personal_data_exports;";

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
