//! Directory privacy and data-access activity (issue #17).
//!
//! - `directory_policies`: one row per org that set its policy (without one, the
//!   defaults of `tenancy::privacy::DirectoryPolicy` apply): which fields the directory
//!   shows, opt-in or opt-out listing, its `version` (also the privacy notice's
//!   version), when and by whom it was last changed.
//! - `member_privacy`: a member's choices in one org, keyed `(org_id, user_id)` — each
//!   field `hidden`, `members` or `NULL` (no choice: the org's listing mode decides),
//!   the notice version they chose under, when, and a `version`. Kept when the
//!   membership is removed (a restore brings them back).
//! - `data_access_log`: reads of a member's record by someone else (who, whose, what,
//!   when), keyed `(org_id, id)` with `id` a UUID v7; indexed by subject within the
//!   org (an admin asking about one member) and by subject across orgs (the member's
//!   own `GET /me/access-log`).
//!
//! All three carry `org_id` and get forced row-level security on PostgreSQL, like every
//! tenant table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000080_directory_privacy"
    }
}

/// The privacy tables (tenant tables with forced row-level security on PostgreSQL).
pub const PRIVACY_TABLES: &[(&str, &str, &str)] = &[
    ("directory_policies", "org_id", "NULL"),
    ("member_privacy", "org_id", "NULL"),
    ("data_access_log", "org_id", "NULL"),
];

#[derive(DeriveIden)]
enum DirectoryPolicies {
    Table,
    OrgId,
    Phone,
    Email,
    Committee,
    ChildrenAndGrades,
    Listing,
    Version,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden, Clone, Copy)]
enum MemberPrivacy {
    Table,
    OrgId,
    UserId,
    Listing,
    Phone,
    Email,
    Committee,
    ChildrenAndGrades,
    NoticeVersion,
    ChosenAt,
    Version,
}

#[derive(DeriveIden)]
enum DataAccessLog {
    Table,
    OrgId,
    Id,
    AccessorId,
    SubjectId,
    What,
    At,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

const CHOICES: [&str; 2] = ["hidden", "members"];
const LISTINGS: [&str; 2] = ["opt_out", "opt_in"];

fn choice(col: MemberPrivacy) -> ColumnDef {
    ColumnDef::new(col)
        .string_len(8)
        .null()
        .check(Expr::col(col).is_in(CHOICES))
        .to_owned()
}

fn org_fk<T: IntoIden + 'static, C: IntoIden + 'static>(
    table: T,
    name: &str,
    col: C,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, col)
        .to(Organizations::Table, Organizations::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DirectoryPolicies::Table)
                .col(
                    ColumnDef::new(DirectoryPolicies::OrgId)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(DirectoryPolicies::Phone)
                        .boolean()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DirectoryPolicies::Email)
                        .boolean()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DirectoryPolicies::Committee)
                        .boolean()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DirectoryPolicies::ChildrenAndGrades)
                        .boolean()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DirectoryPolicies::Listing)
                        .string_len(8)
                        .not_null()
                        .check(Expr::col(DirectoryPolicies::Listing).is_in(LISTINGS)),
                )
                .col(
                    ColumnDef::new(DirectoryPolicies::Version)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DirectoryPolicies::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(DirectoryPolicies::UpdatedBy).uuid().null())
                .foreign_key(&mut org_fk(
                    DirectoryPolicies::Table,
                    "fk_directory_policies_org",
                    DirectoryPolicies::OrgId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(MemberPrivacy::Table)
                .col(ColumnDef::new(MemberPrivacy::OrgId).uuid().not_null())
                .col(ColumnDef::new(MemberPrivacy::UserId).uuid().not_null())
                .col(choice(MemberPrivacy::Listing))
                .col(choice(MemberPrivacy::Phone))
                .col(choice(MemberPrivacy::Email))
                .col(choice(MemberPrivacy::Committee))
                .col(choice(MemberPrivacy::ChildrenAndGrades))
                .col(
                    ColumnDef::new(MemberPrivacy::NoticeVersion)
                        .big_integer()
                        .null(),
                )
                .col(
                    ColumnDef::new(MemberPrivacy::ChosenAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(MemberPrivacy::Version)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(MemberPrivacy::OrgId)
                        .col(MemberPrivacy::UserId),
                )
                .foreign_key(&mut org_fk(
                    MemberPrivacy::Table,
                    "fk_member_privacy_org",
                    MemberPrivacy::OrgId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DataAccessLog::Table)
                .col(ColumnDef::new(DataAccessLog::OrgId).uuid().not_null())
                .col(ColumnDef::new(DataAccessLog::Id).uuid().not_null())
                .col(ColumnDef::new(DataAccessLog::AccessorId).uuid().not_null())
                .col(ColumnDef::new(DataAccessLog::SubjectId).uuid().not_null())
                .col(
                    ColumnDef::new(DataAccessLog::What)
                        .string_len(32)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DataAccessLog::At)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(DataAccessLog::OrgId)
                        .col(DataAccessLog::Id),
                )
                .foreign_key(&mut org_fk(
                    DataAccessLog::Table,
                    "fk_data_access_log_org",
                    DataAccessLog::OrgId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_data_access_log_org_subject")
                .table(DataAccessLog::Table)
                .col(DataAccessLog::OrgId)
                .col(DataAccessLog::SubjectId)
                .col(DataAccessLog::Id)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_data_access_log_subject")
                .table(DataAccessLog::Table)
                .col(DataAccessLog::SubjectId)
                .col(DataAccessLog::Id)
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            for (table, org, district) in PRIVACY_TABLES {
                let check = format!("ptoc_row_visible({org}, {district})");
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
                     ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
                     CREATE POLICY tenant_wall ON {table} USING ({check}) WITH CHECK ({check});"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            DataAccessLog::Table.into_iden(),
            MemberPrivacy::Table.into_iden(),
            DirectoryPolicies::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
