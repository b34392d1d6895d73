//! Loading members with their roles and grants.

use permissions::{LoadError, MemberContext};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::convert::{MEMBER_COLUMNS, db, fold_members};
use crate::sql::Sql;

/// The FROM clause of member queries: memberships joined with users, the custom role and
/// every grant of the member (one row per grant).
fn from_with_all_grants(sql: &mut Sql) {
    sql.push("SELECT ").push(MEMBER_COLUMNS).push(
        " FROM memberships m JOIN users u ON u.id = m.user_id \
             LEFT JOIN org_roles r ON r.org_id = m.org_id AND r.id = m.custom_role_id \
             LEFT JOIN permission_grants g ON g.org_id = m.org_id AND g.user_id = m.user_id",
    );
}

/// One member of `org_id` with all their grants (expired ones included: the domain checks
/// expiry), in one statement; `None` when `user_id` is not a member.
pub(crate) async fn load_one<C: ConnectionTrait>(
    conn: &C,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Option<MemberContext>, LoadError> {
    let mut sql = Sql::new(conn.get_database_backend());
    from_with_all_grants(&mut sql);
    sql.push(" WHERE m.org_id = ")
        .bind(org_id)
        .push(" AND m.user_id = ")
        .bind(user_id)
        .push(" ORDER BY g.key");
    let rows = conn.query_all_raw(sql.build()).await.map_err(db)?;
    Ok(fold_members(&rows, org_id)?.into_iter().next())
}

/// Every member of `org_id` (any status) with all their grants, ordered by user id, in one
/// statement.
pub(crate) async fn load_all<C: ConnectionTrait>(
    conn: &C,
    org_id: Uuid,
) -> Result<Vec<MemberContext>, LoadError> {
    let mut sql = Sql::new(conn.get_database_backend());
    from_with_all_grants(&mut sql);
    sql.push(" WHERE m.org_id = ")
        .bind(org_id)
        .push(" ORDER BY m.user_id, g.key");
    let rows = conn.query_all_raw(sql.build()).await.map_err(db)?;
    fold_members(&rows, org_id)
}
