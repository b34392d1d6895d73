//! Durable background jobs (member import and export): the job row with its progress
//! cursor and lease, its input rows, the rows that failed with their reason, and the
//! result file in chunks. Everything a job needs lives here, so a restarted worker on any
//! instance resumes it (see docs/decisions.md, "Durable jobs").
//!
//! Every table carries `org_id` first and gets the same row-level security policy as
//! the other tenant tables on PostgreSQL ([`JOB_TABLES`]).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000009_jobs"
    }
}

/// The job tables and the expressions giving a row's org and district (for RLS).
pub const JOB_TABLES: &[(&str, &str, &str)] = &[
    ("jobs", "org_id", "NULL"),
    ("job_items", "org_id", "NULL"),
    ("job_errors", "org_id", "NULL"),
    ("job_files", "org_id", "NULL"),
];

#[derive(DeriveIden, Clone, Copy)]
enum Jobs {
    Table,
    OrgId,
    Id,
    Kind,
    Status,
    CreatedBy,
    Params,
    Total,
    Cursor,
    Succeeded,
    Failed,
    LeaseOwner,
    LeaseUntilMs,
    Attempts,
    Error,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum JobItems {
    Table,
    OrgId,
    JobId,
    Seq,
    Payload,
}

#[derive(DeriveIden, Clone, Copy)]
enum JobErrors {
    Table,
    OrgId,
    JobId,
    Seq,
    Payload,
    Reason,
}

#[derive(DeriveIden, Clone, Copy)]
enum JobFiles {
    Table,
    OrgId,
    JobId,
    Part,
    Data,
}

#[derive(DeriveIden, Clone, Copy)]
enum Organizations {
    Table,
    Id,
}

fn uuid(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().to_owned()
}

fn big(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().to_owned()
}

fn org_fk(table: impl IntoIden, name: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, Jobs::OrgId)
        .to(Organizations::Table, Organizations::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Jobs::Table)
                .col(uuid(Jobs::OrgId))
                .col(uuid(Jobs::Id))
                .col(ColumnDef::new(Jobs::Kind).string_len(32).not_null())
                .col(ColumnDef::new(Jobs::Status).string_len(16).not_null())
                .col(ColumnDef::new(Jobs::CreatedBy).uuid().null())
                .col(ColumnDef::new(Jobs::Params).json_binary().not_null())
                .col(big(Jobs::Total))
                .col(big(Jobs::Cursor))
                .col(big(Jobs::Succeeded))
                .col(big(Jobs::Failed))
                .col(ColumnDef::new(Jobs::LeaseOwner).string_len(64).null())
                .col(big(Jobs::LeaseUntilMs))
                .col(ColumnDef::new(Jobs::Attempts).integer().not_null())
                .col(ColumnDef::new(Jobs::Error).text().null())
                .col(
                    ColumnDef::new(Jobs::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Jobs::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Jobs::FinishedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .primary_key(Index::create().col(Jobs::OrgId).col(Jobs::Id))
                .foreign_key(&mut org_fk(Jobs::Table, "fk_jobs_org"))
                .to_owned(),
        )
        .await?;
        // Workers look for runnable jobs across tenants, oldest first.
        m.create_index(
            Index::create()
                .name("ix_jobs_runnable")
                .table(Jobs::Table)
                .col(Jobs::Status)
                .col(Jobs::LeaseUntilMs)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(JobItems::Table)
                .col(uuid(JobItems::OrgId))
                .col(uuid(JobItems::JobId))
                .col(big(JobItems::Seq))
                .col(ColumnDef::new(JobItems::Payload).json_binary().not_null())
                .primary_key(
                    Index::create()
                        .col(JobItems::OrgId)
                        .col(JobItems::JobId)
                        .col(JobItems::Seq),
                )
                .foreign_key(&mut org_fk(JobItems::Table, "fk_job_items_org"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(JobErrors::Table)
                .col(uuid(JobErrors::OrgId))
                .col(uuid(JobErrors::JobId))
                .col(big(JobErrors::Seq))
                .col(ColumnDef::new(JobErrors::Payload).json_binary().not_null())
                .col(ColumnDef::new(JobErrors::Reason).text().not_null())
                .primary_key(
                    Index::create()
                        .col(JobErrors::OrgId)
                        .col(JobErrors::JobId)
                        .col(JobErrors::Seq),
                )
                .foreign_key(&mut org_fk(JobErrors::Table, "fk_job_errors_org"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(JobFiles::Table)
                .col(uuid(JobFiles::OrgId))
                .col(uuid(JobFiles::JobId))
                .col(ColumnDef::new(JobFiles::Part).integer().not_null())
                .col(ColumnDef::new(JobFiles::Data).blob().not_null())
                .primary_key(
                    Index::create()
                        .col(JobFiles::OrgId)
                        .col(JobFiles::JobId)
                        .col(JobFiles::Part),
                )
                .foreign_key(&mut org_fk(JobFiles::Table, "fk_job_files_org"))
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            for (table, org, district) in JOB_TABLES {
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
            JobFiles::Table.into_iden(),
            JobErrors::Table.into_iden(),
            JobItems::Table.into_iden(),
            Jobs::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
