//! Direct grants: one key granted to one member, optionally from a start time and until
//! an expiry time.

use audit::EventType;
use audit::{ChangeType, TenantScope, truncate_to_micros};
use permissions::{
    Grant, GrantError, KeySet, LoadError, NewGrant, PermissionKey, RevokeGrantError,
    refuse_locked_exceptions,
};
use persistence::WriteTx;
use persistence::now_micros;
use sea_orm::{ConnectionTrait, QueryResult};
use serde::Serialize;
use serde_json::Value;
use tenancy::ports::AuditContext;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::chain;
use crate::convert::{self, db, get, invalid};
use crate::error::Failure;
use crate::sql::Sql;
use crate::write::{Change, bump_versions, org_scope, record};

/// The longest reason a grant may carry, in characters (the column's length).
pub const MAX_REASON_CHARS: usize = permissions::MAX_GRANT_REASON_CHARS;

const ACTION_GRANT: EventType = EventType::PermissionGrant;
const ACTION_REVOKE: EventType = EventType::PermissionRevoke;

/// A stored direct grant with who granted it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantRecord {
    /// The member holding the grant.
    pub user_id: Uuid,
    /// The key, expiry and reason.
    #[serde(flatten)]
    pub grant: Grant,
    /// The user who granted it, if known (kept `NULL` when that user is deleted).
    pub granted_by: Option<Uuid>,
    /// When it was first granted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl GrantRecord {
    /// Reads a `permission_grants` row; `None` for a key no longer in the catalog.
    fn read(row: &QueryResult) -> Result<Option<Self>, LoadError> {
        let name: String = get(row, "key")?;
        let Some(key) = convert::key(&name) else {
            return Ok(None);
        };
        Ok(Some(Self {
            user_id: get(row, "user_id")?,
            grant: Grant {
                key,
                starts_at: get(row, "starts_at")?,
                expires_at: get(row, "expires_at")?,
                reason: get(row, "reason")?,
            },
            granted_by: get(row, "granted_by")?,
            created_at: get(row, "created_at")?,
        }))
    }

    /// As audit JSON.
    fn json(&self) -> Option<Value> {
        serde_json::to_value(self).ok()
    }
}

const GRANT_COLUMNS: &str = "SELECT user_id, key, starts_at, expires_at, reason, granted_by, \
                             created_at FROM permission_grants WHERE org_id = ";

/// The grants of `org_id` (of one member when `user_id` is given), expired ones
/// included, ordered by user id then key.
pub(crate) async fn list<C: ConnectionTrait>(
    conn: &C,
    org_id: Uuid,
    user_id: Option<Uuid>,
) -> Result<Vec<GrantRecord>, LoadError> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push(GRANT_COLUMNS).bind(org_id);
    if let Some(user_id) = user_id {
        sql.push(" AND user_id = ").bind(user_id);
    }
    sql.push(" ORDER BY user_id, key");
    let rows = conn.query_all_raw(sql.build()).await.map_err(db)?;
    let mut grants = Vec::with_capacity(rows.len());
    for row in &rows {
        grants.extend(GrantRecord::read(row)?);
    }
    Ok(grants)
}

/// The grant of `key` to `user_id` in `org_id`, if any.
async fn read_one(
    txn: &WriteTx,
    org_id: Uuid,
    user_id: Uuid,
    key: PermissionKey,
) -> Result<Option<GrantRecord>, Failure> {
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push(GRANT_COLUMNS)
        .bind(org_id)
        .push(" AND user_id = ")
        .bind(user_id)
        .push(" AND key = ")
        .bind(key.as_str());
    let row = txn.query_one_raw(sql.build()).await?;
    Ok(row
        .map(|row| GrantRecord::read(&row))
        .transpose()?
        .flatten())
}

/// The org's `permissions_version` and district, read after `WriteTx::lock_org`.
async fn org_head(txn: &WriteTx, org_id: Uuid) -> Result<(u64, TenantScope), Failure> {
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push("SELECT permissions_version, district_id FROM organizations WHERE id = ")
        .bind(org_id);
    let row = txn
        .query_one_raw(sql.build())
        .await?
        .ok_or_else(|| invalid(format!("organization {org_id} vanished under its lock")))?;
    let version: i64 = get(&row, "permissions_version")?;
    let version = u64::try_from(version).map_err(|_| {
        invalid(format!(
            "organization {org_id}: negative permissions_version"
        ))
    })?;
    let district: Option<Uuid> = get(&row, "district_id")?;
    let scope = match district {
        Some(district) => TenantScope::org_in_district(org_id, district),
        None => TenantScope::org(org_id),
    };
    Ok((version, scope))
}

/// Whether `user_id` is a member of `org_id` (any status).
async fn is_member(txn: &WriteTx, org_id: Uuid, user_id: Uuid) -> Result<bool, Failure> {
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push("SELECT user_id FROM memberships WHERE org_id = ")
        .bind(org_id)
        .push(" AND user_id = ")
        .bind(user_id);
    Ok(txn.query_one_raw(sql.build()).await?.is_some())
}

/// Upserts a grant inside `txn`; returns the org's new `permissions_version` (unchanged
/// when the same grant already exists). Under the org's lock, a key locked above the org
/// as its chain stands now is refused (a grant of it would not count).
pub(crate) async fn grant(
    txn: &WriteTx,
    ctx: &AuditContext,
    org_id: Uuid,
    new: &NewGrant,
) -> Result<u64, GrantError> {
    if new
        .reason
        .as_ref()
        .is_some_and(|reason| reason.chars().count() > MAX_REASON_CHARS)
    {
        return Err(GrantError::ReasonTooLong);
    }
    if !txn.lock_org(org_id).await.map_err(Failure::from)? {
        return Err(GrantError::OrgNotFound);
    }
    let loaded = chain::load(txn, org_id)
        .await
        .map_err(Failure::from)?
        .ok_or(GrantError::OrgNotFound)?;
    let (version, scope) = (loaded.version, org_scope(&loaded.chain));
    refuse_locked_exceptions(&loaded.chain, [new.key].into_iter().collect::<KeySet>())
        .map_err(GrantError::Locked)?;
    if !is_member(txn, org_id, new.user_id).await? {
        return Err(GrantError::NotMember);
    }
    let before = read_one(txn, org_id, new.user_id, new.key).await?;
    let after = GrantRecord {
        user_id: new.user_id,
        grant: Grant {
            key: new.key,
            starts_at: new.starts_at.map(truncate_to_micros),
            expires_at: new.expires_at.map(truncate_to_micros),
            reason: new.reason.clone(),
        },
        granted_by: new.granted_by,
        created_at: before
            .as_ref()
            .map_or_else(now_micros, |before| before.created_at),
    };
    if before.as_ref() == Some(&after) {
        return Ok(version);
    }
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push(
        "INSERT INTO permission_grants \
         (org_id, user_id, key, starts_at, expires_at, reason, granted_by, created_at) VALUES (",
    )
    .bind(org_id)
    .push(", ")
    .bind(after.user_id)
    .push(", ")
    .bind(after.grant.key.as_str())
    .push(", ")
    .bind(after.grant.starts_at)
    .push(", ")
    .bind(after.grant.expires_at)
    .push(", ")
    .bind(after.grant.reason.clone())
    .push(", ")
    .bind(after.granted_by)
    .push(", ")
    .bind(after.created_at)
    .push(
        ") ON CONFLICT (org_id, user_id, key) DO UPDATE SET starts_at = excluded.starts_at, \
         expires_at = excluded.expires_at, reason = excluded.reason, \
         granted_by = excluded.granted_by",
    );
    txn.execute_raw(sql.build()).await.map_err(Failure::from)?;
    bump_versions(txn, "id", org_id)
        .await
        .map_err(Failure::from)?;
    let change = Change {
        scope,
        what: ACTION_GRANT,
        entity_type: "permission_grant",
        entity_id: format!("{}:{}", after.user_id, after.grant.key),
        change_type: if before.is_some() {
            ChangeType::Update
        } else {
            ChangeType::Create
        },
        old_value: before.as_ref().and_then(GrantRecord::json),
        new_value: after.json(),
    };
    record(txn, ctx, change).await?;
    Ok(version + 1)
}

/// Deletes a grant inside `txn`; whether there was one.
pub(crate) async fn revoke(
    txn: &WriteTx,
    ctx: &AuditContext,
    org_id: Uuid,
    user_id: Uuid,
    key: PermissionKey,
) -> Result<bool, RevokeGrantError> {
    if !txn.lock_org(org_id).await.map_err(Failure::from)? {
        return Err(RevokeGrantError::OrgNotFound);
    }
    let (_, scope) = org_head(txn, org_id).await?;
    let Some(before) = read_one(txn, org_id, user_id, key).await? else {
        return Ok(false);
    };
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push("DELETE FROM permission_grants WHERE org_id = ")
        .bind(org_id)
        .push(" AND user_id = ")
        .bind(user_id)
        .push(" AND key = ")
        .bind(key.as_str());
    txn.execute_raw(sql.build()).await.map_err(Failure::from)?;
    bump_versions(txn, "id", org_id)
        .await
        .map_err(Failure::from)?;
    let change = Change {
        scope,
        what: ACTION_REVOKE,
        entity_type: "permission_grant",
        entity_id: format!("{user_id}:{key}"),
        change_type: ChangeType::Delete,
        old_value: before.json(),
        new_value: None,
    };
    record(txn, ctx, change).await?;
    Ok(true)
}
