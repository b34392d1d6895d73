//! Issue #17, "Retention": children's data switched off per org, and the yearly
//! "confirm your details" cycle.
//! - `directory_policies.children_data`: whether the org keeps children's names and
//!   grades at all (default true: what orgs did before).
//! - `directory_policies.confirm_starts_on`, `confirm_by`: the org's confirmation cycle
//!   (both `NULL`: none), UTC days.
//! - `memberships.details_confirmed_at`: when the member last confirmed their details.
//!
//! Columns only (same on both databases); the tables' row-level security stands.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000130_children_data_and_confirmation"
    }
}

#[derive(DeriveIden)]
enum DirectoryPolicies {
    Table,
    ChildrenData,
    ConfirmStartsOn,
    ConfirmBy,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    DetailsConfirmedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        let add = |table: DynIden, col: ColumnDef| {
            let mut col = col;
            Table::alter().table(table).add_column(&mut col).to_owned()
        };
        m.alter_table(add(
            DirectoryPolicies::Table.into_iden(),
            ColumnDef::new(DirectoryPolicies::ChildrenData)
                .boolean()
                .not_null()
                .default(true)
                .to_owned(),
        ))
        .await?;
        m.alter_table(add(
            DirectoryPolicies::Table.into_iden(),
            ColumnDef::new(DirectoryPolicies::ConfirmStartsOn)
                .date()
                .null()
                .to_owned(),
        ))
        .await?;
        m.alter_table(add(
            DirectoryPolicies::Table.into_iden(),
            ColumnDef::new(DirectoryPolicies::ConfirmBy)
                .date()
                .null()
                .to_owned(),
        ))
        .await?;
        m.alter_table(add(
            Memberships::Table.into_iden(),
            ColumnDef::new(Memberships::DetailsConfirmedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Memberships::Table)
                .drop_column(Memberships::DetailsConfirmedAt)
                .to_owned(),
        )
        .await?;
        for col in [
            DirectoryPolicies::ConfirmBy,
            DirectoryPolicies::ConfirmStartsOn,
            DirectoryPolicies::ChildrenData,
        ] {
            m.alter_table(
                Table::alter()
                    .table(DirectoryPolicies::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
