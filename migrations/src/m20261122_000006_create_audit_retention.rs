//! Audit retention: the per-org retention period, and the archived segments of every
//! chain (the signed manifest of each archive file; the latest one per chain is the cut
//! from which the live chain is verified).

use sea_orm_migration::prelude::*;

use crate::m20261122_000002_create_tenancy::Organizations;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000006_create_audit_retention"
    }
}

#[derive(DeriveIden)]
enum AuditRetention {
    Table,
    OrgId,
    Days,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditArchives {
    Table,
    ChainId,
    LastSeq,
    FirstSeq,
    HeadHash,
    Manifest,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AuditRetention::Table)
                .col(
                    ColumnDef::new(AuditRetention::OrgId)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(AuditRetention::Days)
                        .integer()
                        .not_null()
                        .check(Expr::col(AuditRetention::Days).between(1, 36_500)),
                )
                .col(
                    ColumnDef::new(AuditRetention::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_audit_retention_org")
                        .from(AuditRetention::Table, AuditRetention::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AuditArchives::Table)
                .col(
                    ColumnDef::new(AuditArchives::ChainId)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditArchives::LastSeq)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditArchives::FirstSeq)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditArchives::HeadHash)
                        .string_len(64)
                        .not_null(),
                )
                .col(ColumnDef::new(AuditArchives::Manifest).text().not_null())
                .col(
                    ColumnDef::new(AuditArchives::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(AuditArchives::ChainId)
                        .col(AuditArchives::LastSeq),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AuditArchives::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(AuditRetention::Table).to_owned())
            .await
    }
}
