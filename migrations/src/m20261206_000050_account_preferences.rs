//! The rest of the account lifecycle (issue #15).
//!
//! - `users.locale`: the language tag messages to the account are written in (`es-MX`);
//!   `NULL` = the default (English).
//! - `sessions.second_factor`: whether the session was opened with a second factor
//!   (a TOTP or recovery code), so a refreshed access token keeps saying so.
//! - `account_tokens.purpose` also allows `change_email`: a link to the new address of
//!   an e-mail change (the row's `email`), which changes the address when followed.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000050_account_preferences"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Locale,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    SecondFactor,
}

/// Purposes before and after this migration (`tenancy::TokenPurpose`).
const PURPOSES_BEFORE: [&str; 2] = ["verify_email", "password_reset"];
const PURPOSES: [&str; 3] = ["verify_email", "password_reset", "change_email"];

/// Lets `account_tokens.purpose` take exactly `purposes`.
async fn set_purposes(m: &SchemaManager<'_>, purposes: &[&str]) -> Result<(), DbErr> {
    let db = m.get_connection();
    if db.get_database_backend() == DbBackend::Postgres {
        let list = purposes
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(", ");
        db.execute_unprepared(&format!(
            "ALTER TABLE account_tokens DROP CONSTRAINT IF EXISTS account_tokens_purpose_check; \
             ALTER TABLE account_tokens ADD CONSTRAINT account_tokens_purpose_check \
             CHECK (purpose IN ({list}))"
        ))
        .await?;
        return Ok(());
    }
    // SQLite cannot alter a CHECK: rebuild the table from its own definition with the
    // new list (same columns, types and foreign key), then its index.
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'account_tokens'",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("account_tokens is missing".into()))?;
    let create: String = row.try_get("", "sql")?;
    let open = create
        .find(" IN (")
        .ok_or_else(|| DbErr::Custom(format!("no purpose check in {create}")))?;
    let close = create[open..]
        .find(')')
        .map(|i| open + i)
        .ok_or_else(|| DbErr::Custom(format!("no purpose check in {create}")))?;
    let list = purposes
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let create = format!("{} IN ({list}{}", &create[..open], &create[close..]).replacen(
        "account_tokens",
        "account_tokens_next",
        1,
    );
    // One call: every step on the same connection, in order.
    db.execute_unprepared(&format!(
        "{create}; \
         INSERT INTO account_tokens_next \
         SELECT token_hash, user_id, purpose, email, created_at, expires_at, used_at \
         FROM account_tokens; \
         DROP TABLE account_tokens; \
         ALTER TABLE account_tokens_next RENAME TO account_tokens; \
         CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose)"
    ))
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(ColumnDef::new(Users::Locale).string_len(35).null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Sessions::Table)
                .add_column(
                    ColumnDef::new(Sessions::SecondFactor)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await?;
        set_purposes(m, &PURPOSES).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared("DELETE FROM account_tokens WHERE purpose = 'change_email'")
            .await?;
        set_purposes(m, &PURPOSES_BEFORE).await?;
        m.alter_table(
            Table::alter()
                .table(Sessions::Table)
                .drop_column(Sessions::SecondFactor)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .drop_column(Users::Locale)
                .to_owned(),
        )
        .await
    }
}
