//! Permission settings at district, school and org scope (with locks) and direct
//! grants. One row per (scope, key) that holds a setting; absent rows inherit.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000004_create_permissions"
    }
}

#[derive(DeriveIden)]
enum DistrictPermissionSettings {
    Table,
    DistrictId,
    Key,
}

#[derive(DeriveIden)]
enum SchoolPermissionSettings {
    Table,
    SchoolId,
    Key,
}

#[derive(DeriveIden)]
enum OrgPermissionSettings {
    Table,
    OrgId,
    Key,
}

#[derive(DeriveIden)]
enum Common {
    MinRole,
    Enabled,
    Locked,
    UpdatedBy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PermissionGrants {
    Table,
    OrgId,
    UserId,
    Key,
    ExpiresAt,
    Reason,
    GrantedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Districts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Schools {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    OrgId,
    UserId,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

const BUILTIN_ROLES: [&str; 4] = ["volunteer", "committee_lead", "board_member", "admin"];

/// The setting columns shared by the three scope tables.
fn with_setting_columns(t: &mut TableCreateStatement) -> &mut TableCreateStatement {
    t.col(
        ColumnDef::new(Common::MinRole)
            .string_len(16)
            .not_null()
            .check(Expr::col(Common::MinRole).is_in(BUILTIN_ROLES)),
    )
    .col(ColumnDef::new(Common::Enabled).boolean().not_null())
    .col(
        ColumnDef::new(Common::Locked)
            .boolean()
            .not_null()
            .default(false),
    )
    .col(ColumnDef::new(Common::UpdatedBy).uuid().null())
    .col(
        ColumnDef::new(Common::UpdatedAt)
            .timestamp_with_time_zone()
            .not_null(),
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let mut t = Table::create();
        t.table(DistrictPermissionSettings::Table)
            .col(
                ColumnDef::new(DistrictPermissionSettings::DistrictId)
                    .uuid()
                    .not_null(),
            )
            .col(
                ColumnDef::new(DistrictPermissionSettings::Key)
                    .string_len(64)
                    .not_null(),
            );
        with_setting_columns(&mut t)
            .primary_key(
                Index::create()
                    .col(DistrictPermissionSettings::DistrictId)
                    .col(DistrictPermissionSettings::Key),
            )
            .foreign_key(
                ForeignKey::create()
                    .name("fk_dps_district")
                    .from(
                        DistrictPermissionSettings::Table,
                        DistrictPermissionSettings::DistrictId,
                    )
                    .to(Districts::Table, Districts::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            );
        m.create_table(t.to_owned()).await?;

        let mut t = Table::create();
        t.table(SchoolPermissionSettings::Table)
            .col(
                ColumnDef::new(SchoolPermissionSettings::SchoolId)
                    .uuid()
                    .not_null(),
            )
            .col(
                ColumnDef::new(SchoolPermissionSettings::Key)
                    .string_len(64)
                    .not_null(),
            );
        with_setting_columns(&mut t)
            .primary_key(
                Index::create()
                    .col(SchoolPermissionSettings::SchoolId)
                    .col(SchoolPermissionSettings::Key),
            )
            .foreign_key(
                ForeignKey::create()
                    .name("fk_sps_school")
                    .from(
                        SchoolPermissionSettings::Table,
                        SchoolPermissionSettings::SchoolId,
                    )
                    .to(Schools::Table, Schools::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            );
        m.create_table(t.to_owned()).await?;

        let mut t = Table::create();
        t.table(OrgPermissionSettings::Table)
            .col(
                ColumnDef::new(OrgPermissionSettings::OrgId)
                    .uuid()
                    .not_null(),
            )
            .col(
                ColumnDef::new(OrgPermissionSettings::Key)
                    .string_len(64)
                    .not_null(),
            );
        with_setting_columns(&mut t)
            .primary_key(
                Index::create()
                    .col(OrgPermissionSettings::OrgId)
                    .col(OrgPermissionSettings::Key),
            )
            .foreign_key(
                ForeignKey::create()
                    .name("fk_ops_org")
                    .from(OrgPermissionSettings::Table, OrgPermissionSettings::OrgId)
                    .to(Organizations::Table, Organizations::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            );
        m.create_table(t.to_owned()).await?;

        m.create_table(
            Table::create()
                .table(PermissionGrants::Table)
                .col(ColumnDef::new(PermissionGrants::OrgId).uuid().not_null())
                .col(ColumnDef::new(PermissionGrants::UserId).uuid().not_null())
                .col(
                    ColumnDef::new(PermissionGrants::Key)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(PermissionGrants::ExpiresAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(PermissionGrants::Reason)
                        .string_len(500)
                        .null(),
                )
                .col(ColumnDef::new(PermissionGrants::GrantedBy).uuid().null())
                .col(
                    ColumnDef::new(PermissionGrants::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(PermissionGrants::OrgId)
                        .col(PermissionGrants::UserId)
                        .col(PermissionGrants::Key),
                )
                // A grant belongs to a membership: it goes when the member goes.
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_grants_membership")
                        .from_tbl(PermissionGrants::Table)
                        .from_col(PermissionGrants::OrgId)
                        .from_col(PermissionGrants::UserId)
                        .to_tbl(Memberships::Table)
                        .to_col(Memberships::OrgId)
                        .to_col(Memberships::UserId)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_grants_granted_by")
                        .from(PermissionGrants::Table, PermissionGrants::GrantedBy)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        // Reverse lookup: which members hold a key.
        m.create_index(
            Index::create()
                .name("ix_grants_org_key")
                .table(PermissionGrants::Table)
                .col(PermissionGrants::OrgId)
                .col(PermissionGrants::Key)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            PermissionGrants::Table.into_iden(),
            OrgPermissionSettings::Table.into_iden(),
            SchoolPermissionSettings::Table.into_iden(),
            DistrictPermissionSettings::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
