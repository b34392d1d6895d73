//! The member directory: what listing, sorting and fuzzy search of an org's members
//! need.
//!
//! - `users.phone`, `users.last_active_at` (set at sign-in; sort key "last active");
//! - `memberships.search_doc`: the member's searchable text (names, e-mail, phone,
//!   committee, children), normalized by the domain (`tenancy::search::document`) and
//!   written by the application with every change to any of its parts;
//! - `removed_memberships`: removal is soft — the membership moves here (role, status,
//!   profile, who removed it and when) and can be restored. Keeping removed rows out of
//!   `memberships` means no query that decides access can forget to skip them;
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
    SearchDoc,
    SortName,
    Email,
    ActiveAt,
    JoinedAt,
}

#[derive(DeriveIden)]
enum RemovedMemberships {
    Table,
    OrgId,
    UserId,
    BuiltinRole,
    CustomRoleId,
    Status,
    Committee,
    Profile,
    RoleEndsAt,
    Version,
    JoinedAt,
    RemovedAt,
    RemovedBy,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

const PG_UP: &str = r"
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX ix_memberships_search_trgm ON memberships
  USING gin (org_id, search_doc gin_trgm_ops);
ALTER TABLE removed_memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE removed_memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON removed_memberships
  USING (ptoc_row_visible(org_id, NULL)) WITH CHECK (ptoc_row_visible(org_id, NULL));
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
        m.create_table(
            Table::create()
                .table(RemovedMemberships::Table)
                .col(ColumnDef::new(RemovedMemberships::OrgId).uuid().not_null())
                .col(ColumnDef::new(RemovedMemberships::UserId).uuid().not_null())
                .col(
                    ColumnDef::new(RemovedMemberships::BuiltinRole)
                        .string_len(32)
                        .null(),
                )
                .col(
                    ColumnDef::new(RemovedMemberships::CustomRoleId)
                        .uuid()
                        .null(),
                )
                .col(
                    ColumnDef::new(RemovedMemberships::Status)
                        .string_len(16)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(RemovedMemberships::Committee)
                        .string_len(100)
                        .null(),
                )
                .col(
                    ColumnDef::new(RemovedMemberships::Profile)
                        .json()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(RemovedMemberships::RoleEndsAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(RemovedMemberships::Version)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(RemovedMemberships::JoinedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(RemovedMemberships::RemovedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(RemovedMemberships::RemovedBy).uuid().null())
                .primary_key(
                    Index::create()
                        .col(RemovedMemberships::OrgId)
                        .col(RemovedMemberships::UserId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(RemovedMemberships::Table, RemovedMemberships::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_removed_memberships_org_removed")
                .table(RemovedMemberships::Table)
                .col(RemovedMemberships::OrgId)
                .col(RemovedMemberships::RemovedAt)
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
        // The member list's sort keys, kept with the membership so every order is an
        // index range scan within the org (names and e-mails never change without the
        // memberships being rewritten; sign-in writes `active_at` of every membership).
        for col in [Memberships::SortName, Memberships::Email] {
            m.alter_table(
                Table::alter()
                    .table(Memberships::Table)
                    .add_column(ColumnDef::new(col).text().not_null().default(""))
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Memberships::Table)
                .add_column(
                    ColumnDef::new(Memberships::ActiveAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("ix_memberships_org_sort_name", Memberships::SortName),
            ("ix_memberships_org_email", Memberships::Email),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(Memberships::Table)
                    .col(Memberships::OrgId)
                    .col(col)
                    .col(Memberships::UserId)
                    .to_owned(),
            )
            .await?;
        }
        m.get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_memberships_org_active ON memberships \
                 (org_id, (coalesce(active_at, joined_at)), user_id)",
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
        m.drop_table(Table::drop().table(RemovedMemberships::Table).to_owned())
            .await?;
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_memberships_org_active")
            .await?;
        for name in ["ix_memberships_org_sort_name", "ix_memberships_org_email"] {
            m.drop_index(
                Index::drop()
                    .name(name)
                    .table(Memberships::Table)
                    .to_owned(),
            )
            .await?;
        }
        for col in [
            Memberships::SearchDoc,
            Memberships::SortName,
            Memberships::Email,
            Memberships::ActiveAt,
        ] {
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
