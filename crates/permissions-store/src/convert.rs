//! Row → domain conversions and error mapping shared by the queries.

use permissions::{
    BuiltinRole, Grant, Grants, KeySet, LoadError, MemberContext, MemberStatus, PermissionKey,
    RoleRef, ScopedSetting,
};
use persistence::StorageError;
use sea_orm::{DbErr, QueryResult, TryGetable};
use time::OffsetDateTime;
use uuid::Uuid;

/// A driver error as the domain's load failure (classified by [`StorageError`] first, so
/// the message says whether the database was unavailable).
pub(crate) fn db(err: DbErr) -> LoadError {
    let err = StorageError::from(err);
    if err.is_unavailable() {
        LoadError::Unavailable(err.to_string())
    } else {
        LoadError::Unexpected(err.to_string())
    }
}

/// Stored data that cannot be turned into domain values.
pub(crate) fn invalid(what: impl Into<String>) -> LoadError {
    LoadError::InvalidData(what.into())
}

/// Reads column `col` of `row`.
pub(crate) fn get<T: TryGetable>(row: &QueryResult, col: &str) -> Result<T, LoadError> {
    row.try_get::<T>("", col).map_err(db)
}

/// A stored permission key; `None` (with a warning) for a key no longer in the catalog, so
/// that a retired key cannot make a whole org unreadable.
pub(crate) fn key(name: &str) -> Option<PermissionKey> {
    match PermissionKey::parse(name) {
        Ok(key) => Some(key),
        Err(_) => {
            tracing::warn!(
                key = name,
                "ignoring a stored permission key not in the catalog"
            );
            None
        }
    }
}

/// A stored built-in role name.
pub(crate) fn role(name: &str, what: &str) -> Result<BuiltinRole, LoadError> {
    BuiltinRole::parse(name).map_err(|_| invalid(format!("{what}: unknown role `{name}`")))
}

/// A stored setting row (`min_role`, `enabled`, `locked`).
pub(crate) fn setting(row: &QueryResult, what: &str) -> Result<ScopedSetting, LoadError> {
    let min_role: String = get(row, "min_role")?;
    Ok(ScopedSetting {
        min_role: role(&min_role, what)?,
        enabled: get(row, "enabled")?,
        locked: get(row, "locked")?,
    })
}

/// A custom role's `extra_keys` JSON: a list of key names. Keys no longer in the catalog
/// are skipped (see [`key`]); anything but a list of strings is invalid.
pub(crate) fn extra_keys(value: &serde_json::Value, what: &str) -> Result<KeySet, LoadError> {
    let list = value
        .as_array()
        .ok_or_else(|| invalid(format!("{what}: extra_keys is not a list")))?;
    let mut keys = KeySet::new();
    for item in list {
        let name = item
            .as_str()
            .ok_or_else(|| invalid(format!("{what}: extra_keys holds a non-string")))?;
        if let Some(k) = key(name) {
            keys.insert(k);
        }
    }
    Ok(keys)
}

/// A membership status column.
pub(crate) fn member_status(status: &str, what: &str) -> Result<MemberStatus, LoadError> {
    match status {
        "active" => Ok(MemberStatus::Active),
        "invited" => Ok(MemberStatus::Invited),
        "suspended" => Ok(MemberStatus::Suspended),
        "removed" => Ok(MemberStatus::Removed),
        other => Err(invalid(format!("{what}: unknown status `{other}`"))),
    }
}

/// The columns every member query selects, in the names [`MemberRow::read`] expects.
///
/// `m` = memberships, `u` = users, `r` = the custom role (LEFT JOIN), `g` = a grant (LEFT
/// JOIN; one row per grant, or one row with NULLs).
pub(crate) const MEMBER_COLUMNS: &str = "m.user_id AS user_id, m.status AS member_status, \
     m.builtin_role AS builtin_role, m.custom_role_id AS custom_role_id, \
     r.name AS role_name, r.counts_as AS counts_as, r.extra_keys AS extra_keys, \
     u.status AS user_status, CASE WHEN u.deleted_at IS NULL THEN 1 ELSE 0 END AS user_live, \
     g.key AS grant_key, g.starts_at AS grant_starts_at, g.expires_at AS grant_expires_at, \
     g.reason AS grant_reason";

/// One row of a member query: a member, and at most one of their grants.
pub(crate) struct MemberRow {
    /// The member (with no grants yet).
    pub(crate) member: MemberContext,
    /// The grant on this row, if any (and if its key is still in the catalog).
    pub(crate) grant: Option<Grant>,
}

impl MemberRow {
    /// Reads a row selected with [`MEMBER_COLUMNS`].
    pub(crate) fn read(row: &QueryResult, org_id: Uuid) -> Result<Self, LoadError> {
        let user_id: Uuid = get(row, "user_id")?;
        let what = format!("membership ({org_id}, {user_id})");
        let status: String = get(row, "member_status")?;
        let builtin: Option<String> = get(row, "builtin_role")?;
        let custom_id: Option<Uuid> = get(row, "custom_role_id")?;
        let role = match (builtin, custom_id) {
            (Some(name), None) => RoleRef::builtin(role(&name, &what)?),
            (None, Some(id)) => {
                let name: Option<String> = get(row, "role_name")?;
                let counts_as: Option<String> = get(row, "counts_as")?;
                let extra: Option<serde_json::Value> = get(row, "extra_keys")?;
                let (Some(name), Some(counts_as), Some(extra)) = (name, counts_as, extra) else {
                    return Err(invalid(format!("{what}: custom role {id} is missing")));
                };
                RoleRef::custom(name, role(&counts_as, &what)?, extra_keys(&extra, &what)?)
            }
            _ => {
                return Err(invalid(format!(
                    "{what}: needs exactly one of builtin_role and custom_role_id"
                )));
            }
        };
        let user_status: String = get(row, "user_status")?;
        let user_live: i32 = get(row, "user_live")?;
        let member = MemberContext {
            user_id,
            status: member_status(&status, &what)?,
            user_active: user_status == "active" && user_live == 1,
            role,
            grants: Grants::default(),
        };
        let grant_key: Option<String> = get(row, "grant_key")?;
        let grant = match grant_key.as_deref().and_then(key) {
            Some(key) => Some(Grant {
                key,
                starts_at: get::<Option<OffsetDateTime>>(row, "grant_starts_at")?,
                expires_at: get::<Option<OffsetDateTime>>(row, "grant_expires_at")?,
                reason: get(row, "grant_reason")?,
            }),
            None => None,
        };
        Ok(Self { member, grant })
    }
}

/// Folds member rows ordered by user id into members with their grants.
pub(crate) fn fold_members(
    rows: &[QueryResult],
    org_id: Uuid,
) -> Result<Vec<MemberContext>, LoadError> {
    let mut members: Vec<(MemberContext, Vec<Grant>)> = Vec::new();
    for row in rows {
        let MemberRow { member, grant } = MemberRow::read(row, org_id)?;
        match members.last_mut() {
            Some((last, grants)) if last.user_id == member.user_id => grants.extend(grant),
            _ => members.push((member, grant.into_iter().collect())),
        }
    }
    Ok(members
        .into_iter()
        .map(|(member, grants)| member.with_grants(grants))
        .collect())
}
