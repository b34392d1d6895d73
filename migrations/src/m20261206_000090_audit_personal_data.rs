//! Personal data in audit events, sealed per data subject (issue #17, "Erasure").
//!
//! - `audit_events.sealed`: the event's sealed parts (JSON: subject, field names and
//!   ciphertext as hex), `NULL` for an event without personal fields. A row with parts
//!   is hashed with the canonical encoding v2, which covers the ciphertexts; rows written
//!   before this migration have `NULL` and keep verifying with encoding v1 (nothing is
//!   rewritten: their hashes are anchored in signed digests and archive manifests).
//! - `audit_subject_keys`: one random 256-bit key per chain and data subject
//!   (`user:<uuid>`, `invitation:<uuid>`) with a random `key_id` the sealed parts name,
//!   created by the first event that seals a field of that subject in that chain and
//!   deleted to erase the subject (`audit_store::erase_subject_in`); a subject seen again
//!   after an erasure gets a new key (and id). `org_id` / `district_id` say whose chain it is,
//!   for row-level security (PostgreSQL) like `audit_events`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000090_audit_personal_data"
    }
}

/// The tenant table this migration adds, with the expressions giving a row's org and
/// district (as `TENANT_TABLES`; checked by the row-level security tests).
pub const AUDIT_KEY_TABLES: &[(&str, &str, &str)] =
    &[("audit_subject_keys", "org_id", "district_id")];

const POSTGRES_UP: &str = r"
ALTER TABLE audit_events ADD COLUMN sealed jsonb NULL;
CREATE TABLE audit_subject_keys (
    chain_id varchar(64) NOT NULL,
    subject varchar(64) NOT NULL,
    key_id uuid NOT NULL UNIQUE,
    org_id uuid NULL,
    district_id uuid NULL,
    key bytea NOT NULL CHECK (octet_length(key) = 32),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (chain_id, subject)
);
CREATE INDEX ix_audit_subject_keys_subject ON audit_subject_keys (subject);
ALTER TABLE audit_subject_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_subject_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON audit_subject_keys
  USING (ptoc_row_visible(org_id, district_id))
  WITH CHECK (ptoc_row_visible(org_id, district_id));
";

const SQLITE_UP: &str = r"
ALTER TABLE audit_events ADD COLUMN sealed text NULL;
CREATE TABLE audit_subject_keys (
    chain_id varchar(64) NOT NULL,
    subject varchar(64) NOT NULL,
    key_id blob NOT NULL UNIQUE,
    org_id blob NULL,
    district_id blob NULL,
    key blob NOT NULL CHECK (length(key) = 32),
    created_at text NOT NULL,
    PRIMARY KEY (chain_id, subject)
);
CREATE INDEX ix_audit_subject_keys_subject ON audit_subject_keys (subject);
";

const DOWN: &str = r"
DROP TABLE IF EXISTS audit_subject_keys;
ALTER TABLE audit_events DROP COLUMN sealed;
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
