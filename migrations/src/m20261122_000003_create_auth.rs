//! Sessions and API keys. Neither stores a token: only the Biscuit revocation id
//! (public, checked on every request) and metadata.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000003_create_auth"
    }
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    RevocationId,
    CreatedAt,
    ExpiresAt,
    LastSeenAt,
    RevokedAt,
    Ip,
    UserAgent,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    OrgId,
    Id,
    Name,
    RevocationId,
    Permissions,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn ts_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .col(ColumnDef::new(Sessions::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Sessions::UserId).uuid().not_null())
                .col(
                    ColumnDef::new(Sessions::RevocationId)
                        .string_len(128)
                        .not_null()
                        .unique_key(),
                )
                .col(ts(Sessions::CreatedAt))
                .col(ts(Sessions::ExpiresAt))
                .col(ts_null(Sessions::LastSeenAt))
                .col(ts_null(Sessions::RevokedAt))
                .col(ColumnDef::new(Sessions::Ip).string_len(64).null())
                .col(ColumnDef::new(Sessions::UserAgent).string_len(512).null())
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_sessions_user")
                        .from(Sessions::Table, Sessions::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_sessions_user")
                .table(Sessions::Table)
                .col(Sessions::UserId)
                .col(Sessions::CreatedAt)
                .to_owned(),
        )
        .await?;
        // The revocation set is loaded by "revoked and not yet expired".
        m.create_index(
            Index::create()
                .name("ix_sessions_revoked")
                .table(Sessions::Table)
                .col(Sessions::RevokedAt)
                .col(Sessions::ExpiresAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(ColumnDef::new(ApiKeys::OrgId).uuid().not_null())
                .col(ColumnDef::new(ApiKeys::Id).uuid().not_null())
                .col(ColumnDef::new(ApiKeys::Name).string_len(100).not_null())
                .col(
                    ColumnDef::new(ApiKeys::RevocationId)
                        .string_len(128)
                        .not_null()
                        .unique_key(),
                )
                .col(
                    ColumnDef::new(ApiKeys::Permissions)
                        .json_binary()
                        .not_null(),
                )
                .col(ColumnDef::new(ApiKeys::CreatedBy).uuid().null())
                .col(ts(ApiKeys::CreatedAt))
                .col(ts(ApiKeys::ExpiresAt))
                .col(ts_null(ApiKeys::LastUsedAt))
                .col(ts_null(ApiKeys::RevokedAt))
                .primary_key(Index::create().col(ApiKeys::OrgId).col(ApiKeys::Id))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_api_keys_org")
                        .from(ApiKeys::Table, ApiKeys::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_api_keys_creator")
                        .from(ApiKeys::Table, ApiKeys::CreatedBy)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_api_keys_revoked")
                .table(ApiKeys::Table)
                .col(ApiKeys::RevokedAt)
                .col(ApiKeys::ExpiresAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }
}
