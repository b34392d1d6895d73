//! The e-mail outbox (`crates/mail`): one row per message, written in the transaction of
//! the change that causes it and sent afterwards by the mail worker.
//!
//! - `mail_outbox`: keyed by the message id (UUID v7, also its `Message-ID`), the org it
//!   belongs to when it belongs to one (`org_id`, nullable: a password reset belongs to
//!   an account, not an org), the recipient, locale, template and its variables
//!   (`payload`, cleared once the message is sent or has failed, so links with tokens do
//!   not stay at rest), the delivery state (`status`, `attempts`, `due_ms`: when a
//!   pending message may next be tried, or when a claimed one's lease runs out).
//! - Indexes: the worker's claim (`due_ms` of the unfinished messages, a partial index),
//!   a tenant's messages (`org_id`, `created_at`) and the purge of finished ones
//!   (`created_at` of the sent and failed messages, a partial index).
//! - Forced row-level security on PostgreSQL like every tenant table: a tenant-scoped
//!   transaction sees and writes only its org's messages (so a message enqueued in one
//!   must carry that org); the worker works in the system scope.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000020_mail_outbox"
    }
}

/// The mail tables (tenant tables with forced row-level security on PostgreSQL).
pub const MAIL_TABLES: &[(&str, &str, &str)] = &[("mail_outbox", "org_id", "NULL")];

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    Id,
    OrgId,
    Recipient,
    Locale,
    Template,
    Payload,
    Status,
    Attempts,
    DueMs,
    LeaseOwner,
    LastError,
    CreatedAt,
    SentAt,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

/// The statuses a message may have (`mail::outbox`).
const STATUSES: [&str; 4] = ["pending", "sending", "sent", "failed"];

const PG_UP: &str = r"
ALTER TABLE mail_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE mail_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON mail_outbox
  USING (ptoc_row_visible(org_id, NULL)) WITH CHECK (ptoc_row_visible(org_id, NULL));
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(MailOutbox::Table)
                .col(
                    ColumnDef::new(MailOutbox::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(MailOutbox::OrgId).uuid().null())
                .col(
                    ColumnDef::new(MailOutbox::Recipient)
                        .string_len(254)
                        .not_null(),
                )
                .col(ColumnDef::new(MailOutbox::Locale).string_len(8).not_null())
                .col(
                    ColumnDef::new(MailOutbox::Template)
                        .string_len(32)
                        .not_null(),
                )
                .col(ColumnDef::new(MailOutbox::Payload).text().not_null())
                .col(
                    ColumnDef::new(MailOutbox::Status)
                        .string_len(8)
                        .not_null()
                        .check(Expr::col(MailOutbox::Status).is_in(STATUSES)),
                )
                .col(
                    ColumnDef::new(MailOutbox::Attempts)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .col(ColumnDef::new(MailOutbox::DueMs).big_integer().not_null())
                .col(ColumnDef::new(MailOutbox::LeaseOwner).string_len(64).null())
                .col(ColumnDef::new(MailOutbox::LastError).text().null())
                .col(
                    ColumnDef::new(MailOutbox::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(MailOutbox::SentAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_mail_outbox_org")
                        .from(MailOutbox::Table, MailOutbox::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        // Plain SQL: partial indexes read the same on both backends.
        db.execute_unprepared(
            "CREATE INDEX ix_mail_outbox_due ON mail_outbox (due_ms) \
             WHERE status IN ('pending', 'sending')",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_mail_outbox_org ON mail_outbox (org_id, created_at)",
        )
        .await?;
        // The purge of finished messages.
        db.execute_unprepared(
            "CREATE INDEX ix_mail_outbox_finished ON mail_outbox (created_at) \
             WHERE status IN ('sent', 'failed')",
        )
        .await?;
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(PG_UP).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(MailOutbox::Table).to_owned())
            .await
    }
}
