//! The audit log: one append-only table holding a SHA-256 hash chain per tenant
//! (`chain_id` = `org:<uuid>`, `district:<uuid>` or `platform`), and a table of chain
//! heads that appenders lock to serialize writers per chain (no forks).

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000005_create_audit"
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    ChainId,
    Seq,
    Id,
    OrgId,
    DistrictId,
    ActorKind,
    ActorId,
    Action,
    Category,
    EntityType,
    EntityId,
    ChangeType,
    OldValue,
    NewValue,
    Ip,
    UserAgent,
    RequestId,
    OccurredAt,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditChainHeads {
    Table,
    ChainId,
    Seq,
    Hash,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AuditEvents::Table)
                .col(
                    ColumnDef::new(AuditEvents::ChainId)
                        .string_len(64)
                        .not_null(),
                )
                .col(ColumnDef::new(AuditEvents::Seq).big_integer().not_null())
                .col(
                    ColumnDef::new(AuditEvents::Id)
                        .uuid()
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(AuditEvents::OrgId).uuid().null())
                .col(ColumnDef::new(AuditEvents::DistrictId).uuid().null())
                .col(
                    ColumnDef::new(AuditEvents::ActorKind)
                        .string_len(16)
                        .not_null(),
                )
                .col(ColumnDef::new(AuditEvents::ActorId).uuid().null())
                .col(
                    ColumnDef::new(AuditEvents::Action)
                        .string_len(100)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditEvents::Category)
                        .string_len(16)
                        .not_null()
                        .check(Expr::col(AuditEvents::Category).is_in(["audit", "activity"])),
                )
                .col(
                    ColumnDef::new(AuditEvents::EntityType)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditEvents::EntityId)
                        .string_len(128)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditEvents::ChangeType)
                        .string_len(8)
                        .not_null(),
                )
                .col(ColumnDef::new(AuditEvents::OldValue).json_binary().null())
                .col(ColumnDef::new(AuditEvents::NewValue).json_binary().null())
                .col(ColumnDef::new(AuditEvents::Ip).string_len(64).null())
                .col(
                    ColumnDef::new(AuditEvents::UserAgent)
                        .string_len(512)
                        .null(),
                )
                .col(ColumnDef::new(AuditEvents::RequestId).string_len(64).null())
                .col(
                    ColumnDef::new(AuditEvents::OccurredAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditEvents::PrevHash)
                        .string_len(64)
                        .not_null(),
                )
                .col(ColumnDef::new(AuditEvents::Hash).string_len(64).not_null())
                .primary_key(
                    Index::create()
                        .col(AuditEvents::ChainId)
                        .col(AuditEvents::Seq),
                )
                .to_owned(),
        )
        .await?;
        // Every filter of the query API leads with the tenant and ends with the
        // pagination order (occurred_at, id).
        let indexes: [(&str, Vec<AuditEvents>); 6] = [
            (
                "ix_audit_org_time",
                vec![AuditEvents::OrgId, AuditEvents::OccurredAt, AuditEvents::Id],
            ),
            (
                "ix_audit_district_time",
                vec![
                    AuditEvents::DistrictId,
                    AuditEvents::OccurredAt,
                    AuditEvents::Id,
                ],
            ),
            (
                "ix_audit_org_actor",
                vec![
                    AuditEvents::OrgId,
                    AuditEvents::ActorId,
                    AuditEvents::OccurredAt,
                ],
            ),
            (
                "ix_audit_org_action",
                vec![
                    AuditEvents::OrgId,
                    AuditEvents::Action,
                    AuditEvents::OccurredAt,
                ],
            ),
            (
                "ix_audit_org_entity",
                vec![
                    AuditEvents::OrgId,
                    AuditEvents::EntityType,
                    AuditEvents::EntityId,
                ],
            ),
            (
                "ix_audit_org_category",
                vec![
                    AuditEvents::OrgId,
                    AuditEvents::Category,
                    AuditEvents::OccurredAt,
                ],
            ),
        ];
        for (name, cols) in indexes {
            let mut idx = Index::create();
            idx.name(name).table(AuditEvents::Table);
            for c in cols {
                idx.col(c);
            }
            m.create_index(idx.to_owned()).await?;
        }

        m.create_table(
            Table::create()
                .table(AuditChainHeads::Table)
                .col(
                    ColumnDef::new(AuditChainHeads::ChainId)
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(AuditChainHeads::Seq)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditChainHeads::Hash)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditChainHeads::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AuditChainHeads::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}
