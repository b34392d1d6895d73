//! The member directory: what listing, sorting and fuzzy search of an org's members
//! need.
//!
//! - `users.phone`, `users.last_active_at` (set at sign-in; sort key "last active");
//! - `memberships.deleted_at` (a member removed softly can be restored) and
//!   `memberships.search_doc`: the member's searchable text (names, e-mail, phone,
//!   committee, children), normalized by the domain (`tenancy::search::document`) and
//!   written by the application with every change to any of its parts;
//! - indexes for every sort key of the member list, tenant first;
//! - search indexes answering the same candidate predicate (the document contains one of
//!   a word's trigrams): on PostgreSQL a trigram GIN index (`pg_trgm`, with `btree_gin`
//!   so the org id leads it); on SQLite an FTS5 table with the trigram tokenizer over the
//!   same column, kept in sync by triggers. (No tsvector: stemming and whole-word
//!   matching are wrong for names, and ranking is the domain's, the same everywhere.)

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000008_member_directory"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Phone,
    LastActiveAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    OrgId,
    UserId,
    DeletedAt,
    SearchDoc,
    JoinedAt,
}

const PG_UP: &str = r"
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX ix_memberships_search_trgm ON memberships
  USING gin (org_id, search_doc gin_trgm_ops);
";

const PG_DOWN: &str = r"
DROP INDEX IF EXISTS ix_memberships_search_trgm;
";

const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE member_search USING fts5(
       search_doc, content='memberships', content_rowid='rowid', tokenize='trigram')",
    "CREATE TRIGGER member_search_ai AFTER INSERT ON memberships BEGIN
       INSERT INTO member_search(rowid, search_doc) VALUES (new.rowid, new.search_doc);
     END",
    "CREATE TRIGGER member_search_ad AFTER DELETE ON memberships BEGIN
       INSERT INTO member_search(member_search, rowid, search_doc)
         VALUES ('delete', old.rowid, old.search_doc);
     END",
    "CREATE TRIGGER member_search_au AFTER UPDATE OF search_doc ON memberships BEGIN
       INSERT INTO member_search(member_search, rowid, search_doc)
         VALUES ('delete', old.rowid, old.search_doc);
       INSERT INTO member_search(rowid, search_doc) VALUES (new.rowid, new.search_doc);
     END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS member_search_au",
    "DROP TRIGGER IF EXISTS member_search_ad",
    "DROP TRIGGER IF EXISTS member_search_ai",
    "DROP TABLE IF EXISTS member_search",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(ColumnDef::new(Users::Phone).string_len(32).null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(
                    ColumnDef::new(Users::LastActiveAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Memberships::Table)
                .add_column(
                    ColumnDef::new(Memberships::DeletedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Memberships::Table)
                .add_column(
                    ColumnDef::new(Memberships::SearchDoc)
                        .text()
                        .not_null()
                        .default(""),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_memberships_org_joined")
                .table(Memberships::Table)
                .col(Memberships::OrgId)
                .col(Memberships::JoinedAt)
                .col(Memberships::UserId)
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        match db.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(PG_UP).await?;
            }
            _ => {
                for stmt in SQLITE_UP {
                    db.execute_unprepared(stmt).await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        match db.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(PG_DOWN).await?;
            }
            _ => {
                for stmt in SQLITE_DOWN {
                    db.execute_unprepared(stmt).await?;
                }
            }
        }
        m.drop_index(
            Index::drop()
                .name("ix_memberships_org_joined")
                .table(Memberships::Table)
                .to_owned(),
        )
        .await?;
        for col in [Memberships::SearchDoc, Memberships::DeletedAt] {
            m.alter_table(
                Table::alter()
                    .table(Memberships::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        for col in [Users::LastActiveAt, Users::Phone] {
            m.alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
