//! SeaORM adapter of the [`permissions`] domain, on PostgreSQL and SQLite: the
//! [`permissions::PermissionStore`] port ([`SeaOrmPermissionStore`]) plus district and
//! school templates, direct grants, the member listing and the reverse lookup.
//!
//! # Loading an org's chain in one round trip
//! Resolution needs the settings of the org's district, its school and the org itself.
//! [`SeaOrmPermissionStore::load_org_chain_versioned`] reads them with **one statement**,
//! on both backends:
//!
//! ```sql
//! SELECT 0 AS level, o.permissions_version, o.district_id, o.school_id, s.key, s.min_role, s.enabled, s.locked
//!   FROM organizations o LEFT JOIN district_permission_settings s ON s.district_id = o.district_id
//!  WHERE o.id = :org
//! UNION ALL SELECT 1, … LEFT JOIN school_permission_settings s ON s.school_id = o.school_id …
//! UNION ALL SELECT 2, … LEFT JOIN org_permission_settings s ON s.org_id = o.id …
//! ```
//!
//! Each branch yields at least one row when the org exists (the LEFT JOIN keeps the org
//! row when a level holds nothing), so "no rows" means "no such org", and every row also
//! carries the org's `district_id`, `school_id` and `permissions_version`. A member is
//! likewise one statement (membership ⋈ user ⋈ custom role ⟕ grants).
//!
//! # Versioning
//! `organizations.permissions_version` is the generation of an org's compiled table
//! ([`permissions::CompiledOrg::compile`] stamps it; see
//! [`SeaOrmPermissionStore::compile_org`]). **Every** write that can change what the org
//! resolves or who holds what bumps it in the same transaction as the write and its
//! audit events:
//!
//! * an org settings save (optimistic: it must name the version it was planned against,
//!   else [`permissions::UpdateSettingsError::VersionMismatch`]);
//! * a district or school template change bumps every org below it (orgs' `district_id` /
//!   `school_id`) and returns their ids, so the cache layer can publish invalidations;
//!   a cached table whose generation differs from
//!   [`SeaOrmPermissionStore::permissions_version`] is stale;
//! * granting or revoking a direct grant.
//!
//! (Membership and custom-role changes belong to the tenancy adapter and do not bump it;
//! members are not part of the compiled table.)
//!
//! # Concurrency and locks
//! Writes lock before they read: an org save first runs `UPDATE organizations SET
//! permissions_version = permissions_version WHERE id = ?` (a row lock on PostgreSQL, the
//! database write lock on SQLite), then re-reads the chain and refuses a key locked by the
//! **current** district or school settings ([`permissions::UpdateSettingsError::Locked`]).
//! A template change locks its district or school row, then its orgs in id order, so a
//! concurrent lock above either commits before the org save reads (and refuses it) or
//! after it (and bumps the version, so cached tables go stale).
//!
//! # Audit
//! Each change appends its audit event(s) with `audit_store::append_event` inside its own
//! transaction: `permission.update` (entity `permission_setting` for org settings,
//! `district_permission_setting` / `school_permission_setting` for templates, id = the
//! key), `permission.grant` and `permission.revoke` (entity `permission_grant`, id =
//! `<user>:<key>`). The actor and request come from the caller's
//! [`tenancy::ports::AuditContext`]; through the bare port (which carries none) the actor
//! is the system — bind a context with [`SeaOrmPermissionStore::with_context`].
//!
//! # Reverse lookup
//! [`SeaOrmPermissionStore::members_holding`] compiles the org, then asks SQL for a
//! superset of the holders — active members of active users whose role (built-in or a
//! custom role's `counts_as`) reaches the effective minimum role, whose custom role lists
//! the key in `extra_keys`, or who hold a grant of the key — ordered by user id after the
//! cursor, in chunks; the domain's [`permissions::check`] decides each candidate. The
//! result is exact and complete across pages. Timestamps are never compared in SQL.
//!
//! # Stored data
//! Keys no longer in the catalog are skipped with a warning (a retired key must not make
//! an org unreadable); an unknown role or status is [`permissions::LoadError::InvalidData`].

mod chain;
mod convert;
mod error;
mod grants;
mod lookup;
mod members;
mod sql;
mod store;
mod templates;
mod write;

pub use error::{BoxError, GrantError, RevokeGrantError, TemplateError};
pub use grants::{GrantRecord, MAX_REASON_CHARS};
pub use lookup::HoldersPage;
pub use store::{AuditedPermissionStore, SeaOrmPermissionStore};

/// The keys `user_id` may hand out in `org_id` at `now` ([`permissions::keys_to_hand_out`]:
/// held through their rank or role, not only through a direct grant) over the chain and
/// the member as `conn` sees them (two statements). Empty when the org is unknown or the
/// user is not a member.
///
/// For writes that must decide "who may hand out what" inside their own transaction
/// (the membership changes of the tenancy adapter), so the answer is as current as the
/// write itself.
///
/// # Errors
/// [`permissions::LoadError`] when the store fails or holds invalid data.
pub async fn keys_to_hand_out_in<C: sea_orm::ConnectionTrait>(
    conn: &C,
    org_id: uuid::Uuid,
    user_id: uuid::Uuid,
    now: time::OffsetDateTime,
) -> Result<permissions::KeySet, permissions::LoadError> {
    let Some(loaded) = chain_past_the_org_wall(conn, org_id).await? else {
        return Ok(permissions::KeySet::new());
    };
    let Some(member) = members::load_one(conn, org_id, user_id).await? else {
        return Ok(permissions::KeySet::new());
    };
    let org = permissions::CompiledOrg::compile(&loaded.chain, loaded.version);
    Ok(permissions::keys_to_hand_out(&org, &member, now))
}

/// The org's chain read in a tenant transaction. On PostgreSQL an org's transaction sees
/// only the org's rows (row-level security), not its district's settings, which decide
/// what the org's members hold; the chain read alone runs in the system scope the
/// permission cache reads with, and the transaction's scope is restored right after.
async fn chain_past_the_org_wall<C: sea_orm::ConnectionTrait>(
    conn: &C,
    org_id: uuid::Uuid,
) -> Result<Option<chain::LoadedChain>, permissions::LoadError> {
    use sea_orm::{DbBackend, Statement};
    if conn.get_database_backend() != DbBackend::Postgres {
        return chain::load(conn, org_id).await;
    }
    let scope = |to: &str| {
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('ptoc.scope', $1, true)",
            [to.into()],
        )
    };
    let before: String = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT coalesce(current_setting('ptoc.scope', true), '') AS scope",
        ))
        .await
        .map_err(convert::db)?
        .map(|row| convert::get::<String>(&row, "scope"))
        .transpose()?
        .unwrap_or_default();
    conn.execute_raw(scope("system"))
        .await
        .map_err(convert::db)?;
    let loaded = chain::load(conn, org_id).await;
    conn.execute_raw(scope(&before))
        .await
        .map_err(convert::db)?;
    loaded
}
