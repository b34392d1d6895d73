//! Proven addresses and one-time tokens (issue #15).
//!
//! - `users.email_verified_at`: when the owner proved the address (a verification link,
//!   or an invitation link, which proves it as well); `NULL` until then.
//! - `invitations.token_hash`: SHA-256 (hex) of the invitation link's token; the token
//!   itself is only ever in the e-mail. A new token (resend) replaces it.
//! - `account_tokens`: e-mail verification and password-reset tokens, by hash only, each
//!   for one user and address, single-use (`used_at`), expiring.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000040_account_tokens"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    EmailVerifiedAt,
}

#[derive(DeriveIden)]
enum Invitations {
    Table,
    TokenHash,
}

#[derive(DeriveIden)]
enum AccountTokens {
    Table,
    TokenHash,
    UserId,
    Purpose,
    Email,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

/// The purposes a token may have (`tenancy::TokenPurpose`).
const PURPOSES: [&str; 2] = ["verify_email", "password_reset"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(
                    ColumnDef::new(Users::EmailVerifiedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Invitations::Table)
                .add_column(ColumnDef::new(Invitations::TokenHash).string_len(64).null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("invitations_token_hash")
                .table(Invitations::Table)
                .col(Invitations::TokenHash)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AccountTokens::Table)
                .col(
                    ColumnDef::new(AccountTokens::TokenHash)
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(AccountTokens::UserId).uuid().not_null())
                .col(
                    ColumnDef::new(AccountTokens::Purpose)
                        .string_len(20)
                        .not_null()
                        .check(Expr::col(AccountTokens::Purpose).is_in(PURPOSES)),
                )
                .col(
                    ColumnDef::new(AccountTokens::Email)
                        .string_len(254)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AccountTokens::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AccountTokens::ExpiresAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AccountTokens::UsedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from_col(AccountTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("account_tokens_user")
                .table(AccountTokens::Table)
                .col(AccountTokens::UserId)
                .col(AccountTokens::Purpose)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AccountTokens::Table).to_owned())
            .await?;
        m.drop_index(
            Index::drop()
                .name("invitations_token_hash")
                .table(Invitations::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Invitations::Table)
                .drop_column(Invitations::TokenHash)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .drop_column(Users::EmailVerifiedAt)
                .to_owned(),
        )
        .await
    }
}
