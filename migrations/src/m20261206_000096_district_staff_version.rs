//! `district_staff.version` (issue #16): a staff member's role is a versioned resource,
//! so `PUT /districts/{id}/staff/{user_id}` takes the version it read (0: not staff
//! yet; 428 without, 412 when stale). Rows stored before this migration are at 1.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000096_district_staff_version"
    }
}

#[derive(DeriveIden)]
enum DistrictStaff {
    Table,
    Version,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(DistrictStaff::Table)
                .add_column(
                    ColumnDef::new(DistrictStaff::Version)
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
                .table(DistrictStaff::Table)
                .drop_column(DistrictStaff::Version)
                .to_owned(),
        )
        .await
    }
}
