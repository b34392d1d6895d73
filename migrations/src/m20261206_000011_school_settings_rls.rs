//! Row-level security on `school_permission_settings`, the one tenant table migration
//! 000007 missed: it carries a `school_id`, not an org or district id, so its rows are
//! visible when the transaction's scope is the system, the school's district, or an org
//! of that school (an org's permission chain reads its school's settings).
//! SQLite has no row-level security: this migration does nothing there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000011_school_settings_rls"
    }
}

/// Tenant tables keyed by a school (checked by the row-level security tests).
pub const SCHOOL_TABLES: &[&str] = &["school_permission_settings"];

const VISIBLE_FN: &str = r"
CREATE OR REPLACE FUNCTION ptoc_school_visible(row_school uuid)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT coalesce(current_setting('ptoc.scope', true), '') = 'system'
      OR EXISTS (SELECT 1 FROM schools s
                  WHERE s.id = row_school
                    AND s.district_id = nullif(current_setting('ptoc.district_id', true), '')::uuid)
      OR EXISTS (SELECT 1 FROM organizations o
                  WHERE o.school_id = row_school
                    AND o.id = nullif(current_setting('ptoc.org_id', true), '')::uuid)
$$";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        db.execute_unprepared(VISIBLE_FN).await?;
        for table in SCHOOL_TABLES {
            db.execute_unprepared(&format!(
                "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
                 CREATE POLICY tenant_wall ON {table}
                   USING (ptoc_school_visible(school_id))
                   WITH CHECK (ptoc_school_visible(school_id));"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        for table in SCHOOL_TABLES {
            db.execute_unprepared(&format!(
                "DROP POLICY IF EXISTS tenant_wall ON {table};
                 ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
                 ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;"
            ))
            .await?;
        }
        db.execute_unprepared("DROP FUNCTION IF EXISTS ptoc_school_visible(uuid)")
            .await?;
        Ok(())
    }
}
