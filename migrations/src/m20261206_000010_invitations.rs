//! Invitations instead of attached accounts (see docs/decisions.md, "Invitations
//! instead of attached accounts").
//!
//! - `invitations`: an org's invitation of an e-mail address, with the role and the
//!   profile as the org typed them; keyed by `(org_id, id)`, at most one `pending` per
//!   `(org_id, email)` (a partial unique index), forced row-level security on
//!   PostgreSQL like every tenant table.
//! - Data move: every `invited` membership becomes a pending invitation of its org (the
//!   address, names and phone of the account, the role, committee and children of the
//!   membership: what the org saw), open for the default 14 days from now, and the
//!   membership is deleted. Then every account that was created by an invitation (its
//!   password hash is the unusable one: salt and digest of 32 hex digits each, which no
//!   real argon2 hash has) and has no membership left, no district staff role and is no
//!   platform admin is deleted (with its restorable removed memberships), so that its
//!   owner can register the address.

use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000010_invitations"
    }
}

#[derive(DeriveIden)]
enum Invitations {
    Table,
    OrgId,
    Id,
    Email,
    BuiltinRole,
    CustomRoleId,
    FirstName,
    LastName,
    Phone,
    Committee,
    Profile,
    Status,
    InvitedBy,
    CreatedAt,
    ExpiresAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum OrgRoles {
    Table,
    OrgId,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

/// The statuses an invitation may have (`tenancy::InvitationStatus`).
const STATUSES: [&str; 5] = ["pending", "accepted", "declined", "expired", "revoked"];

/// How long moved invitations stay open (the default of `INVITATION_TTL_DAYS`).
const MOVED_VALID_DAYS: i64 = 14;

/// Rows per multi-row insert or `IN (…)` list.
const CHUNK: usize = 200;

/// The prefix of the unusable password hash invitations used to give new accounts.
const UNUSABLE_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

const PG_UP: &str = r"
ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON invitations
  USING (ptoc_row_visible(org_id, NULL)) WITH CHECK (ptoc_row_visible(org_id, NULL));
";

/// Whether `hash` is the unusable hash an invitation gave a new account: the argon2id
/// prefix, then a salt and a digest of exactly 32 lower-case hex digits each (a real
/// argon2 hash has base64 segments of 22 and 43 characters).
pub(crate) fn is_unusable_hash(hash: &str) -> bool {
    let hex32 =
        |s: &str| s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    hash.strip_prefix(UNUSABLE_PREFIX)
        .and_then(|rest| rest.split_once('$'))
        .is_some_and(|(salt, digest)| hex32(salt) && hex32(digest))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// In one transaction on SQLite too: the data move must not stop half-way.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Invitations::Table)
                .col(ColumnDef::new(Invitations::OrgId).uuid().not_null())
                .col(ColumnDef::new(Invitations::Id).uuid().not_null())
                .col(
                    ColumnDef::new(Invitations::Email)
                        .string_len(254)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Invitations::BuiltinRole)
                        .string_len(32)
                        .null(),
                )
                .col(ColumnDef::new(Invitations::CustomRoleId).uuid().null())
                .col(
                    ColumnDef::new(Invitations::FirstName)
                        .string_len(100)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Invitations::LastName)
                        .string_len(100)
                        .not_null(),
                )
                .col(ColumnDef::new(Invitations::Phone).string_len(40).null())
                .col(
                    ColumnDef::new(Invitations::Committee)
                        .string_len(100)
                        .null(),
                )
                .col(ColumnDef::new(Invitations::Profile).json().not_null())
                .col(
                    ColumnDef::new(Invitations::Status)
                        .string_len(16)
                        .not_null()
                        .check(Expr::col(Invitations::Status).is_in(STATUSES)),
                )
                .col(ColumnDef::new(Invitations::InvitedBy).uuid().null())
                .col(
                    ColumnDef::new(Invitations::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Invitations::ExpiresAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Invitations::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Invitations::Version)
                        .big_integer()
                        .not_null()
                        .default(1),
                )
                .primary_key(Index::create().col(Invitations::OrgId).col(Invitations::Id))
                // Exactly one of a built-in role and a custom role, as for memberships.
                .check(
                    Expr::col(Invitations::BuiltinRole)
                        .is_null()
                        .ne(Expr::col(Invitations::CustomRoleId).is_null()),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_invitations_org")
                        .from(Invitations::Table, Invitations::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_invitations_custom_role")
                        .from_tbl(Invitations::Table)
                        .from_col(Invitations::OrgId)
                        .from_col(Invitations::CustomRoleId)
                        .to_tbl(OrgRoles::Table)
                        .to_col(OrgRoles::OrgId)
                        .to_col(OrgRoles::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_invitations_invited_by")
                        .from(Invitations::Table, Invitations::InvitedBy)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        // At most one pending invitation per address and org (partial: ended ones stay
        // as history). Plain SQL: the same on both backends.
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_invitations_org_email_pending \
             ON invitations (org_id, email) WHERE status = 'pending'",
        )
        .await?;
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(PG_UP).await?;
        }
        move_invited_memberships(db).await?;
        free_unclaimed_accounts(db).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // The moved memberships and deleted accounts are not brought back: an
        // invitation is not an account.
        m.drop_table(Table::drop().table(Invitations::Table).to_owned())
            .await
    }
}

fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DbBackend::Postgres {
        // `?` placeholders → `$1, $2, …`
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Every `invited` membership becomes a pending invitation; the memberships go.
async fn move_invited_memberships<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(stmt(
            backend,
            "SELECT m.org_id, m.builtin_role, m.custom_role_id, m.committee, m.profile, \
                    m.joined_at, u.email, u.first_name, u.last_name, u.phone \
             FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.status = 'invited' ORDER BY m.org_id, m.joined_at",
            vec![],
        ))
        .await?;
    let now = time::OffsetDateTime::now_utc();
    let expires = now + time::Duration::days(MOVED_VALID_DAYS);
    for chunk in rows.chunks(CHUNK) {
        let mut values = Vec::with_capacity(chunk.len() * 16);
        for r in chunk {
            values.extend(invitation_values(r, now, expires)?);
        }
        let row = format!("({})", placeholders(16));
        db.execute_raw(stmt(
            backend,
            &format!(
                "INSERT INTO invitations (org_id, id, email, builtin_role, custom_role_id, \
                 first_name, last_name, phone, committee, profile, status, invited_by, \
                 created_at, expires_at, updated_at, version) VALUES {}",
                vec![row; chunk.len()].join(", ")
            ),
            values,
        ))
        .await?;
    }
    // Only when there is something to move: on SQLite, a pooled connection that
    // created the FTS5 search table earlier in the same migration run fails to prepare
    // a DELETE on `memberships` (its AFTER DELETE trigger writes that table) with "no
    // such table: memberships"; a database being created from scratch has nothing
    // to move anyway.
    if !rows.is_empty() {
        db.execute_raw(stmt(
            backend,
            "DELETE FROM memberships WHERE status = 'invited'",
            vec![],
        ))
        .await?;
    }
    Ok(())
}

/// The 16 column values of the invitation an `invited` membership becomes.
fn invitation_values(
    r: &QueryResult,
    now: time::OffsetDateTime,
    expires: time::OffsetDateTime,
) -> Result<Vec<Value>, DbErr> {
    let org: uuid::Uuid = r.try_get("", "org_id")?;
    let builtin: Option<String> = r.try_get("", "builtin_role")?;
    let custom: Option<uuid::Uuid> = r.try_get("", "custom_role_id")?;
    let committee: Option<String> = r.try_get("", "committee")?;
    let profile: serde_json::Value = r.try_get("", "profile")?;
    let joined: time::OffsetDateTime = r.try_get("", "joined_at")?;
    let email: String = r.try_get("", "email")?;
    let first: String = r.try_get("", "first_name")?;
    let last: String = r.try_get("", "last_name")?;
    let phone: Option<String> = r.try_get("", "phone")?;
    // Only the children belong to the invitation's profile.
    let profile = match profile.get("children") {
        Some(children) if children.as_array().is_some_and(|c| !c.is_empty()) => {
            serde_json::json!({ "children": children })
        }
        _ => serde_json::json!({}),
    };
    Ok(vec![
        org.into(),
        uuid::Uuid::now_v7().into(),
        email.into(),
        builtin.into(),
        custom.into(),
        first.into(),
        last.into(),
        phone.into(),
        committee.into(),
        profile.into(),
        "pending".into(),
        Option::<uuid::Uuid>::None.into(),
        joined.into(),
        expires.into(),
        now.into(),
        1_i64.into(),
    ])
}

/// Deletes the accounts invitations created that nobody claimed and nothing holds.
async fn free_unclaimed_accounts<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(stmt(
            backend,
            "SELECT u.id, u.password_hash FROM users u \
             WHERE u.password_hash LIKE ? AND u.is_platform_admin = ? \
               AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id) \
               AND NOT EXISTS (SELECT 1 FROM district_staff d WHERE d.user_id = u.id)",
            vec![format!("{UNUSABLE_PREFIX}%").into(), false.into()],
        ))
        .await?;
    let mut ids = Vec::new();
    for r in rows {
        let hash: String = r.try_get("", "password_hash")?;
        if is_unusable_hash(&hash) {
            ids.push(r.try_get::<uuid::Uuid>("", "id")?);
        }
    }
    for chunk in ids.chunks(CHUNK) {
        let values: Vec<Value> = chunk.iter().map(|id| (*id).into()).collect();
        let list = placeholders(chunk.len());
        db.execute_raw(stmt(
            backend,
            &format!("DELETE FROM removed_memberships WHERE user_id IN ({list})"),
            values.clone(),
        ))
        .await?;
        db.execute_raw(stmt(
            backend,
            &format!("DELETE FROM users WHERE id IN ({list})"),
            values,
        ))
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_unusable_hash;

    #[test]
    fn only_the_invitation_hash_is_unusable() {
        let hex = "0123456789abcdef0123456789abcdef";
        assert!(is_unusable_hash(&format!(
            "$argon2id$v=19$m=19456,t=2,p=1${hex}${hex}"
        )));
        // A real argon2id hash with the same parameters (base64 salt and digest).
        assert!(!is_unusable_hash(
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Xv3y0J0VJfqyq1Q9tYfE0pXgXq0nH2bH6kq2qk3t2ZQ"
        ));
        assert!(!is_unusable_hash(
            "$argon2id$v=19$m=19456,t=2,p=1$bench$bench"
        ));
        assert!(!is_unusable_hash(&format!(
            "$argon2id$v=19$m=8,t=1,p=1${hex}${hex}"
        )));
    }
}
