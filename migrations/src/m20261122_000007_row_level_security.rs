//! PostgreSQL row-level security on every tenant table: a second wall behind the
//! application's own `WHERE org_id = …` scoping (see docs/decisions.md, "Row-level
//! security").
//!
//! A row is visible (and writable) when the session or transaction says so:
//! - `ptoc.scope = 'system'`: every row (the application's connections start in this
//!   scope, for work that spans tenants: sign-in, districts, background jobs);
//! - `ptoc.org_id = <uuid>`: rows of that org (a tenant-scoped unit of work sets it
//!   with `SET LOCAL` semantics and leaves the system scope for the transaction);
//! - `ptoc.district_id = <uuid>`: rows of that district.
//!
//! With none of these set, a query sees nothing. The policies are `FORCE`d, so they
//! bind the tables' owner too; only superusers and `BYPASSRLS` roles are exempt, so the
//! application must not connect as one (the API tests connect as a plain role).
//! SQLite has no row-level security: this migration does nothing there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000007_row_level_security"
    }
}

/// Each tenant table (with row-level security from this migration or a later one: keep
/// the list complete, a test checks it against the schema) and the expressions giving a
/// row's org and district.
pub const TENANT_TABLES: &[(&str, &str, &str)] = &[
    ("organizations", "id", "district_id"),
    ("org_roles", "org_id", "NULL"),
    ("memberships", "org_id", "NULL"),
    ("removed_memberships", "org_id", "NULL"),
    ("invitations", "org_id", "NULL"),
    ("audit_retention", "org_id", "NULL"),
    ("api_keys", "org_id", "NULL"),
    ("org_permission_settings", "org_id", "NULL"),
    ("permission_grants", "org_id", "NULL"),
    ("audit_events", "org_id", "district_id"),
    ("districts", "NULL", "id"),
    ("schools", "NULL", "district_id"),
    ("district_staff", "NULL", "district_id"),
    ("district_permission_settings", "NULL", "district_id"),
];

/// Tenant tables created after this migration (their migration adds the policy).
const LATER: &[&str] = &["removed_memberships", "invitations"];

const VISIBLE_FN: &str = r"
CREATE OR REPLACE FUNCTION ptoc_row_visible(row_org uuid, row_district uuid)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT coalesce(current_setting('ptoc.scope', true), '') = 'system'
      OR row_org = nullif(current_setting('ptoc.org_id', true), '')::uuid
      OR row_district = nullif(current_setting('ptoc.district_id', true), '')::uuid
$$";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        db.execute_unprepared(VISIBLE_FN).await?;
        // Tables created by later migrations get their policy there.
        for (table, org, district) in TENANT_TABLES.iter().filter(|(t, _, _)| !LATER.contains(t)) {
            let check = format!("ptoc_row_visible({org}, {district})");
            db.execute_unprepared(&format!(
                "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
                 CREATE POLICY tenant_wall ON {table} USING ({check}) WITH CHECK ({check});"
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
        for (table, _, _) in TENANT_TABLES.iter().filter(|(t, _, _)| !LATER.contains(t)) {
            db.execute_unprepared(&format!(
                "DROP POLICY IF EXISTS tenant_wall ON {table};
                 ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
                 ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;"
            ))
            .await?;
        }
        db.execute_unprepared("DROP FUNCTION IF EXISTS ptoc_row_visible(uuid, uuid)")
            .await?;
        Ok(())
    }
}
