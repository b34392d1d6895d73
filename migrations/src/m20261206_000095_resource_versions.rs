//! Versions for the last mutable resources without one (issue #16: every write takes the
//! version it read, 428 without, 412 when stale):
//! - `audit_retention.version`: 0 = never set (no row);
//! - `district_staff.version`: a staff member's role; 0 = not staff (no row).
//!
//! Rows stored before this migration were written once: 1.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000095_resource_versions"
    }
}

#[derive(DeriveIden)]
enum AuditRetention {
    Table,
}

#[derive(DeriveIden)]
enum DistrictStaff {
    Table,
}

#[derive(DeriveIden)]
enum Columns {
    Version,
}

/// The tables that gain a `version`.
fn tables() -> [DynIden; 2] {
    [
        AuditRetention::Table.into_iden(),
        DistrictStaff::Table.into_iden(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in tables() {
            m.alter_table(
                Table::alter()
                    .table(table)
                    .add_column(
                        ColumnDef::new(Columns::Version)
                            .big_integer()
                            .not_null()
                            .default(1),
                    )
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in tables() {
            m.alter_table(
                Table::alter()
                    .table(table)
                    .drop_column(Columns::Version)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
