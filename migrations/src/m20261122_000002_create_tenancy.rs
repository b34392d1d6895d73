//! The tenancy hierarchy: districts → schools → organizations → memberships, plus
//! custom roles and district staff.
//!
//! Deletion rules (deliberate):
//! - deleting a district **detaches** its schools and organizations (their
//!   `district_id` becomes NULL: they carry on as standalone tenants, their data
//!   intact) and **cascades** to what exists only for the district (its staff and its
//!   permission templates);
//! - deleting a school detaches its organizations;
//! - deleting an organization cascades to everything it owns (roles, memberships,
//!   settings, grants, API keys);
//! - users are soft-deleted (`users.deleted_at`); a hard delete cascades to their
//!   memberships, staff roles and sessions.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000002_create_tenancy"
    }
}

#[derive(DeriveIden)]
pub(crate) enum Districts {
    Table,
    Id,
    Name,
    Code,
    Tier,
    Settings,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum Schools {
    Table,
    Id,
    DistrictId,
    Name,
    Code,
    GradeLevels,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum Organizations {
    Table,
    Id,
    Name,
    Kind,
    SchoolId,
    DistrictId,
    SignupCode,
    Branding,
    Status,
    Version,
    PermissionsVersion,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OrgRoles {
    Table,
    OrgId,
    Id,
    Name,
    CountsAs,
    ExtraKeys,
    MaxHolders,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    OrgId,
    UserId,
    BuiltinRole,
    CustomRoleId,
    Status,
    Committee,
    Profile,
    RoleEndsAt,
    Version,
    JoinedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum DistrictStaff {
    Table,
    DistrictId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

const BUILTIN_ROLES: [&str; 4] = ["volunteer", "committee_lead", "board_member", "admin"];

fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn version(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .default(1)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Districts::Table)
                .col(
                    ColumnDef::new(Districts::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Districts::Name).string_len(200).not_null())
                .col(
                    ColumnDef::new(Districts::Code)
                        .string_len(32)
                        .not_null()
                        .unique_key(),
                )
                .col(
                    ColumnDef::new(Districts::Tier)
                        .string_len(16)
                        .not_null()
                        .check(Expr::col(Districts::Tier).is_in([
                            "basic",
                            "professional",
                            "enterprise",
                        ])),
                )
                .col(ColumnDef::new(Districts::Settings).json_binary().not_null())
                .col(version(Districts::Version))
                .col(ts(Districts::CreatedAt))
                .col(ts(Districts::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Schools::Table)
                .col(ColumnDef::new(Schools::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Schools::DistrictId).uuid().null())
                .col(ColumnDef::new(Schools::Name).string_len(200).not_null())
                .col(ColumnDef::new(Schools::Code).string_len(32).not_null())
                .col(
                    ColumnDef::new(Schools::GradeLevels)
                        .json_binary()
                        .not_null(),
                )
                .col(version(Schools::Version))
                .col(ts(Schools::CreatedAt))
                .col(ts(Schools::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_schools_district")
                        .from(Schools::Table, Schools::DistrictId)
                        .to(Districts::Table, Districts::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_schools_district_code")
                .table(Schools::Table)
                .col(Schools::DistrictId)
                .col(Schools::Code)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Organizations::Table)
                .col(
                    ColumnDef::new(Organizations::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(Organizations::Name)
                        .string_len(200)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Organizations::Kind)
                        .string_len(16)
                        .not_null()
                        .check(
                            Expr::col(Organizations::Kind).is_in(["pto", "pta", "ptsa", "other"]),
                        ),
                )
                .col(ColumnDef::new(Organizations::SchoolId).uuid().null())
                // Denormalized from the school so the district of every org is one
                // indexed column (RLS, templates, distribution); kept in step when a
                // school moves, in the same transaction.
                .col(ColumnDef::new(Organizations::DistrictId).uuid().null())
                .col(
                    ColumnDef::new(Organizations::SignupCode)
                        .string_len(32)
                        .not_null()
                        .unique_key(),
                )
                .col(
                    ColumnDef::new(Organizations::Branding)
                        .json_binary()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Organizations::Status)
                        .string_len(16)
                        .not_null()
                        .default("active")
                        .check(Expr::col(Organizations::Status).is_in([
                            "active",
                            "suspended",
                            "archived",
                        ])),
                )
                .col(version(Organizations::Version))
                .col(version(Organizations::PermissionsVersion))
                .col(ts(Organizations::CreatedAt))
                .col(ts(Organizations::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_orgs_school")
                        .from(Organizations::Table, Organizations::SchoolId)
                        .to(Schools::Table, Schools::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_orgs_district")
                        .from(Organizations::Table, Organizations::DistrictId)
                        .to(Districts::Table, Districts::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_orgs_district")
                .table(Organizations::Table)
                .col(Organizations::DistrictId)
                .col(Organizations::Id)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_orgs_school")
                .table(Organizations::Table)
                .col(Organizations::SchoolId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(OrgRoles::Table)
                .col(ColumnDef::new(OrgRoles::OrgId).uuid().not_null())
                .col(ColumnDef::new(OrgRoles::Id).uuid().not_null())
                .col(ColumnDef::new(OrgRoles::Name).string_len(60).not_null())
                .col(
                    ColumnDef::new(OrgRoles::CountsAs)
                        .string_len(16)
                        .not_null()
                        .check(Expr::col(OrgRoles::CountsAs).is_in(BUILTIN_ROLES)),
                )
                .col(ColumnDef::new(OrgRoles::ExtraKeys).json_binary().not_null())
                .col(
                    ColumnDef::new(OrgRoles::MaxHolders)
                        .integer()
                        .null()
                        .check(Expr::col(OrgRoles::MaxHolders).gt(0)),
                )
                .col(version(OrgRoles::Version))
                .col(ts(OrgRoles::CreatedAt))
                .col(ts(OrgRoles::UpdatedAt))
                .primary_key(Index::create().col(OrgRoles::OrgId).col(OrgRoles::Id))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_org_roles_org")
                        .from(OrgRoles::Table, OrgRoles::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // Names are unique per org, compared in lower case (stored normalized).
        m.create_index(
            Index::create()
                .name("ux_org_roles_name")
                .table(OrgRoles::Table)
                .col(OrgRoles::OrgId)
                .col(OrgRoles::Name)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Memberships::Table)
                .col(ColumnDef::new(Memberships::OrgId).uuid().not_null())
                .col(ColumnDef::new(Memberships::UserId).uuid().not_null())
                .col(
                    ColumnDef::new(Memberships::BuiltinRole)
                        .string_len(16)
                        .null()
                        .check(Expr::col(Memberships::BuiltinRole).is_in(BUILTIN_ROLES)),
                )
                .col(ColumnDef::new(Memberships::CustomRoleId).uuid().null())
                .col(
                    ColumnDef::new(Memberships::Status)
                        .string_len(16)
                        .not_null()
                        .check(Expr::col(Memberships::Status).is_in([
                            "active",
                            "invited",
                            "suspended",
                        ])),
                )
                .col(
                    ColumnDef::new(Memberships::Committee)
                        .string_len(100)
                        .null(),
                )
                .col(
                    ColumnDef::new(Memberships::Profile)
                        .json_binary()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Memberships::RoleEndsAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(version(Memberships::Version))
                .col(ts(Memberships::JoinedAt))
                .col(ts(Memberships::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(Memberships::OrgId)
                        .col(Memberships::UserId),
                )
                // Exactly one role: a built-in one or a custom one of the same org.
                .check(
                    Expr::col(Memberships::BuiltinRole)
                        .is_null()
                        .ne(Expr::col(Memberships::CustomRoleId).is_null()),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_memberships_org")
                        .from(Memberships::Table, Memberships::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_memberships_user")
                        .from(Memberships::Table, Memberships::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_memberships_custom_role")
                        .from_tbl(Memberships::Table)
                        .from_col(Memberships::OrgId)
                        .from_col(Memberships::CustomRoleId)
                        .to_tbl(OrgRoles::Table)
                        .to_col(OrgRoles::OrgId)
                        .to_col(OrgRoles::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_memberships_user")
                .table(Memberships::Table)
                .col(Memberships::UserId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_memberships_org_role")
                .table(Memberships::Table)
                .col(Memberships::OrgId)
                .col(Memberships::BuiltinRole)
                .col(Memberships::Status)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_memberships_role_ends")
                .table(Memberships::Table)
                .col(Memberships::RoleEndsAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(DistrictStaff::Table)
                .col(ColumnDef::new(DistrictStaff::DistrictId).uuid().not_null())
                .col(ColumnDef::new(DistrictStaff::UserId).uuid().not_null())
                .col(
                    ColumnDef::new(DistrictStaff::Role)
                        .string_len(16)
                        .not_null()
                        .check(
                            Expr::col(DistrictStaff::Role)
                                .is_in(["district_admin", "district_viewer"]),
                        ),
                )
                .col(ts(DistrictStaff::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(DistrictStaff::DistrictId)
                        .col(DistrictStaff::UserId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_district_staff_district")
                        .from(DistrictStaff::Table, DistrictStaff::DistrictId)
                        .to(Districts::Table, Districts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_district_staff_user")
                        .from(DistrictStaff::Table, DistrictStaff::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_district_staff_user")
                .table(DistrictStaff::Table)
                .col(DistrictStaff::UserId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            DistrictStaff::Table.into_iden(),
            Memberships::Table.into_iden(),
            OrgRoles::Table.into_iden(),
            Organizations::Table.into_iden(),
            Schools::Table.into_iden(),
            Districts::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
