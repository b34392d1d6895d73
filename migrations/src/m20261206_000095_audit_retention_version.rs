//! `audit_retention.version` (issue #16): the retention setting is a versioned resource
//! like every other, so `PUT …/audit-logs/retention` takes the version it read (428
//! without, 412 when stale). 0 = never set (no row); a row stored before this migration
//! was set once: 1.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000095_audit_retention_version"
    }
}

#[derive(DeriveIden)]
enum AuditRetention {
    Table,
    Version,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AuditRetention::Table)
                .add_column(
                    ColumnDef::new(AuditRetention::Version)
                        .big_integer()
                        .not_null()
                        .default(1),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AuditRetention::Table)
                .drop_column(AuditRetention::Version)
                .to_owned(),
        )
        .await
    }
}
