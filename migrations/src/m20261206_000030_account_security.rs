//! Sessions that last and two-factor sign-in: rotating refresh tokens (one family per
//! session), TOTP enrolments, recovery codes and sign-in challenges. No token, code or
//! secret is stored as such: tokens and codes by their SHA-256 (hex), the TOTP secret
//! encrypted (ChaCha20-Poly1305 under a key derived from the server's signing key).
//! All rows belong to a user (not a tenant) and go with the account.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000030_account_security"
    }
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    SessionId,
    UserId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum TotpCredentials {
    Table,
    UserId,
    SecretSealed,
    CreatedAt,
    ConfirmedAt,
    LastStep,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum SignInChallenges {
    Table,
    Id,
    UserId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    Failures,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
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

fn hash(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .string_len(64)
        .not_null()
        .unique_key()
        .to_owned()
}

fn user_fk(name: &str, table: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, Alias::new("user_id"))
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .col(
                    ColumnDef::new(RefreshTokens::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(RefreshTokens::SessionId).uuid().not_null())
                .col(ColumnDef::new(RefreshTokens::UserId).uuid().not_null())
                .col(hash(RefreshTokens::TokenHash))
                .col(ts(RefreshTokens::CreatedAt))
                .col(ts(RefreshTokens::ExpiresAt))
                .col(ts_null(RefreshTokens::UsedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_refresh_tokens_session")
                        .from(RefreshTokens::Table, RefreshTokens::SessionId)
                        .to(Sessions::Table, Sessions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(&mut user_fk("fk_refresh_tokens_user", RefreshTokens::Table))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_refresh_tokens_session")
                .table(RefreshTokens::Table)
                .col(RefreshTokens::SessionId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TotpCredentials::Table)
                .col(
                    ColumnDef::new(TotpCredentials::UserId)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(TotpCredentials::SecretSealed)
                        .string_len(256)
                        .not_null(),
                )
                .col(ts(TotpCredentials::CreatedAt))
                .col(ts_null(TotpCredentials::ConfirmedAt))
                .col(
                    ColumnDef::new(TotpCredentials::LastStep)
                        .big_integer()
                        .null(),
                )
                .foreign_key(&mut user_fk(
                    "fk_totp_credentials_user",
                    TotpCredentials::Table,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RecoveryCodes::Table)
                .col(
                    ColumnDef::new(RecoveryCodes::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(RecoveryCodes::UserId).uuid().not_null())
                .col(hash(RecoveryCodes::CodeHash))
                .col(ts(RecoveryCodes::CreatedAt))
                .col(ts_null(RecoveryCodes::UsedAt))
                .foreign_key(&mut user_fk("fk_recovery_codes_user", RecoveryCodes::Table))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_recovery_codes_user")
                .table(RecoveryCodes::Table)
                .col(RecoveryCodes::UserId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SignInChallenges::Table)
                .col(
                    ColumnDef::new(SignInChallenges::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(SignInChallenges::UserId).uuid().not_null())
                .col(hash(SignInChallenges::TokenHash))
                .col(ts(SignInChallenges::CreatedAt))
                .col(ts(SignInChallenges::ExpiresAt))
                .col(ts_null(SignInChallenges::UsedAt))
                .col(
                    ColumnDef::new(SignInChallenges::Failures)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .foreign_key(&mut user_fk(
                    "fk_sign_in_challenges_user",
                    SignInChallenges::Table,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_sign_in_challenges_user")
                .table(SignInChallenges::Table)
                .col(SignInChallenges::UserId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SignInChallenges::Table.into_iden(),
            RecoveryCodes::Table.into_iden(),
            TotpCredentials::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
