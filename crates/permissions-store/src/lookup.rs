//! Reverse lookup: which members hold a key, complete and paginated by user id.

use permissions::{BuiltinRole, CompiledOrg, LoadError, PermissionKey, check};
use sea_orm::ConnectionTrait;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::convert::{self, MEMBER_COLUMNS, MemberRow, db, get};
use crate::sql::Sql;

/// One page of a reverse lookup.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HoldersPage {
    /// The members holding the key, in ascending user-id order.
    pub user_ids: Vec<Uuid>,
    /// Pass as `after` to get the next page; `None` when this is the last page.
    pub next_cursor: Option<Uuid>,
}

/// The largest number of candidate rows read per statement.
const MAX_CHUNK: usize = 1000;

/// Custom roles of `org_id` that hold `key` through their `extra_keys` (their rank is
/// compared in SQL).
async fn roles_with_extra_key<C: ConnectionTrait>(
    conn: &C,
    org_id: Uuid,
    key: PermissionKey,
) -> Result<Vec<Uuid>, LoadError> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push("SELECT id, extra_keys FROM org_roles WHERE org_id = ")
        .bind(org_id);
    let rows = conn.query_all_raw(sql.build()).await.map_err(db)?;
    let mut ids = Vec::new();
    for row in &rows {
        let id: Uuid = get(row, "id")?;
        let extra: serde_json::Value = get(row, "extra_keys")?;
        if convert::extra_keys(&extra, &format!("org role {id}"))?.contains(key) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The members of `org` holding `key` at `now` with a user id greater than `after`, at
/// most `limit` of them (at least one), in user-id order.
///
/// SQL narrows the members down to a superset of the holders — active memberships of
/// active users whose built-in role or custom role's rank reaches the effective minimum
/// role, whose custom role carries the key, or who hold a grant of the key (expired or
/// not) — ordered by user id and read in chunks after the cursor. Each candidate is then
/// decided by the domain's [`check`] (which also applies grant expiry), so the result is
/// exactly what [`permissions::members_holding`] answers over all members.
pub(crate) async fn members_holding<C: ConnectionTrait>(
    conn: &C,
    org: &CompiledOrg,
    key: PermissionKey,
    now: OffsetDateTime,
    after: Option<Uuid>,
    limit: usize,
) -> Result<HoldersPage, LoadError> {
    let effective = org.effective(key);
    if !effective.enabled {
        return Ok(HoldersPage::default());
    }
    let limit = limit.max(1);
    let org_id = org.org_id();
    let ranks: Vec<&'static str> = BuiltinRole::ALL
        .into_iter()
        .filter(|role| *role >= effective.min_role)
        .map(BuiltinRole::as_str)
        .collect();
    let extra_roles = roles_with_extra_key(conn, org_id, key).await?;
    let chunk = limit.saturating_add(1).min(MAX_CHUNK);
    let chunk_sql = i64::try_from(chunk).unwrap_or(i64::MAX);

    let mut holders: Vec<Uuid> = Vec::with_capacity(limit.saturating_add(1).min(MAX_CHUNK));
    let mut cursor = after;
    loop {
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push("SELECT ")
            .push(MEMBER_COLUMNS)
            .push(
                " FROM memberships m JOIN users u ON u.id = m.user_id \
                 LEFT JOIN org_roles r ON r.org_id = m.org_id AND r.id = m.custom_role_id \
                 LEFT JOIN permission_grants g ON g.org_id = m.org_id \
                 AND g.user_id = m.user_id AND g.key = ",
            )
            .bind(key.as_str())
            .push(" WHERE m.org_id = ")
            .bind(org_id)
            .push(
                " AND m.status = 'active' AND u.status = 'active' AND u.deleted_at IS NULL \
                 AND (g.key IS NOT NULL OR m.builtin_role IN ",
            )
            .bind_list(ranks.iter().copied())
            .push(" OR r.counts_as IN ")
            .bind_list(ranks.iter().copied());
        if !extra_roles.is_empty() {
            sql.push(" OR m.custom_role_id IN ")
                .bind_list(extra_roles.iter().copied());
        }
        sql.push(")");
        if let Some(cursor) = cursor {
            sql.push(" AND m.user_id > ").bind(cursor);
        }
        sql.push(" ORDER BY m.user_id LIMIT ").bind(chunk_sql);
        let rows = conn.query_all_raw(sql.build()).await.map_err(db)?;
        for row in &rows {
            let MemberRow { member, grant } = MemberRow::read(row, org_id)?;
            cursor = Some(member.user_id);
            let member = member.with_grants(grant.into_iter().collect::<Vec<_>>());
            if check(org, &member, key, now) {
                holders.push(member.user_id);
                if holders.len() > limit {
                    holders.truncate(limit);
                    let next_cursor = holders.last().copied();
                    return Ok(HoldersPage {
                        user_ids: holders,
                        next_cursor,
                    });
                }
            }
        }
        if rows.len() < chunk {
            return Ok(HoldersPage {
                user_ids: holders,
                next_cursor: None,
            });
        }
    }
}
