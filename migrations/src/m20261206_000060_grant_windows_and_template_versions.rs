//! Issue #16: grant start times and versioned templates.
//!
//! - `permission_grants.starts_at`: a grant counts when `starts_at <= now < expires_at`;
//!   `NULL` = from its creation (every grant stored so far).
//! - `districts.template_version` and `schools.template_version`: the version of the
//!   district's or school's permission settings (its template), bumped by every template
//!   change and required by the many-key template write (stale: 412). Separate from the
//!   row's own `version`, so renaming a district does not make a template edit stale.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000060_grant_windows_and_template_versions"
    }
}

#[derive(DeriveIden)]
enum PermissionGrants {
    Table,
    StartsAt,
}

#[derive(DeriveIden)]
enum Districts {
    Table,
    TemplateVersion,
}

#[derive(DeriveIden)]
enum Schools {
    Table,
    TemplateVersion,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(PermissionGrants::Table)
                .add_column(
                    ColumnDef::new(PermissionGrants::StartsAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Districts::Table)
                .add_column(
                    ColumnDef::new(Districts::TemplateVersion)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Schools::Table)
                .add_column(
                    ColumnDef::new(Schools::TemplateVersion)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Schools::Table)
                .drop_column(Schools::TemplateVersion)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Districts::Table)
                .drop_column(Districts::TemplateVersion)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(PermissionGrants::Table)
                .drop_column(PermissionGrants::StartsAt)
                .to_owned(),
        )
        .await
    }
}
