//! Idempotency keys of `POST` creates (issue #16, "Retries"): per caller, route and
//! key, the digest of the first request's body and, once it succeeded, its answer
//! (status, `Location`, body), replayed to a retry for 24 hours. A row without a
//! status is a request still running. Not a tenant table: keys belong to callers
//! (users, API keys, anonymous addresses), and expire within a day.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000140_idempotency_keys"
    }
}

const POSTGRES_UP: &str = r"
CREATE TABLE idempotency_keys (
    caller text NOT NULL,
    route text NOT NULL,
    idem_key text NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
    request_hash text NOT NULL,
    attempt text NOT NULL,
    status integer NULL CHECK (status BETWEEN 200 AND 299),
    location text NULL,
    response_body text NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (caller, route, idem_key)
);
CREATE INDEX ix_idempotency_keys_created_at ON idempotency_keys (created_at);
";

const SQLITE_UP: &str = r"
CREATE TABLE idempotency_keys (
    caller text NOT NULL,
    route text NOT NULL,
    idem_key text NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
    request_hash text NOT NULL,
    attempt text NOT NULL,
    status integer NULL CHECK (status BETWEEN 200 AND 299),
    location text NULL,
    response_body text NULL,
    created_at text NOT NULL,
    PRIMARY KEY (caller, route, idem_key)
);
CREATE INDEX ix_idempotency_keys_created_at ON idempotency_keys (created_at);
";

const DOWN: &str = r"
DROP INDEX IF EXISTS ix_idempotency_keys_created_at;
DROP TABLE IF EXISTS idempotency_keys;
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
