//! Loading an org's settings chain in one round trip.

use permissions::{ChainLevel, LoadError, OrgChain, ScopeSettings};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::convert::{self, db, get, invalid};
use crate::sql::Sql;

/// An org's chain, with the row facts the store needs besides it.
#[derive(Debug, Clone)]
pub(crate) struct LoadedChain {
    /// The chain.
    pub(crate) chain: OrgChain,
    /// The org's `permissions_version`.
    pub(crate) version: u64,
}

/// Appends one branch of the chain query: the org row, LEFT JOINed with the settings of
/// one level, so that the branch yields at least one row whenever the org exists.
fn branch(sql: &mut Sql, level: i32, scope_col: &str, table: &str, fk: &str, org_id: Uuid) {
    sql.push("SELECT ")
        .push(&level.to_string())
        .push(" AS level, o.permissions_version AS permissions_version, ")
        .push("o.district_id AS district_id, o.school_id AS school_id, ")
        .push("s.key AS key, s.min_role AS min_role, s.enabled AS enabled, s.locked AS locked ")
        .push("FROM organizations o LEFT JOIN ")
        .push(table)
        .push(" s ON s.")
        .push(fk)
        .push(" = o.")
        .push(scope_col)
        .push(" WHERE o.id = ")
        .bind(org_id);
}

/// Loads the chain of `org_id` with its `permissions_version` in **one statement**: a
/// `UNION ALL` of three branches (district, school, org settings), each the org row LEFT
/// JOINed with one level's setting rows. No row at all means no such org.
pub(crate) async fn load<C: ConnectionTrait>(
    conn: &C,
    org_id: Uuid,
) -> Result<Option<LoadedChain>, LoadError> {
    let mut sql = Sql::new(conn.get_database_backend());
    branch(
        &mut sql,
        0,
        "district_id",
        "district_permission_settings",
        "district_id",
        org_id,
    );
    sql.push(" UNION ALL ");
    branch(
        &mut sql,
        1,
        "school_id",
        "school_permission_settings",
        "school_id",
        org_id,
    );
    sql.push(" UNION ALL ");
    branch(
        &mut sql,
        2,
        "id",
        "org_permission_settings",
        "org_id",
        org_id,
    );
    let rows = conn.query_all_raw(sql.build()).await.map_err(db)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let version: i64 = get(first, "permissions_version")?;
    let version = u64::try_from(version).map_err(|_| {
        invalid(format!(
            "organization {org_id}: negative permissions_version"
        ))
    })?;
    let district_id: Option<Uuid> = get(first, "district_id")?;
    let school_id: Option<Uuid> = get(first, "school_id")?;
    let mut levels = [ScopeSettings::new(); 3];
    for row in &rows {
        let Some(name) = get::<Option<String>>(row, "key")? else {
            continue;
        };
        let Some(key) = convert::key(&name) else {
            continue;
        };
        let level: i32 = get(row, "level")?;
        let slot = usize::try_from(level)
            .ok()
            .and_then(|i| levels.get_mut(i))
            .ok_or_else(|| invalid(format!("chain query returned level {level}")))?;
        let what = format!("setting {name} of organization {org_id}'s chain");
        slot.set(key, convert::setting(row, &what)?);
    }
    let [district, school, org] = levels;
    let chain = OrgChain {
        org_id,
        district: district_id.map(|id| ChainLevel {
            id,
            settings: district,
        }),
        school: school_id.map(|id| ChainLevel {
            id,
            settings: school,
        }),
        org_settings: org,
    };
    Ok(Some(LoadedChain { chain, version }))
}

/// The settings one district or school holds, or `None` when it does not exist.
///
/// `table` / `fk` name the settings table and its scope column; `owner` the owning table.
pub(crate) async fn load_scope<C: ConnectionTrait>(
    conn: &C,
    owner: &str,
    table: &str,
    fk: &str,
    id: Uuid,
) -> Result<Option<ScopeSettings>, LoadError> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push("SELECT s.key AS key, s.min_role AS min_role, s.enabled AS enabled, s.locked AS locked FROM ")
        .push(owner)
        .push(" x LEFT JOIN ")
        .push(table)
        .push(" s ON s.")
        .push(fk)
        .push(" = x.id WHERE x.id = ")
        .bind(id);
    let rows = conn.query_all_raw(sql.build()).await.map_err(db)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut settings = ScopeSettings::new();
    for row in &rows {
        let Some(name) = get::<Option<String>>(row, "key")? else {
            continue;
        };
        if let Some(key) = convert::key(&name) {
            settings.set(
                key,
                convert::setting(row, &format!("{owner} {id} setting {name}"))?,
            );
        }
    }
    Ok(Some(settings))
}
