//! District and school settings (templates with locks).

use audit::EventType;
use audit::{ChangeType, TenantScope};
use permissions::{
    LoadError, ScopeRef, ScopeSettings, ScopedSetting, Template, TemplateError, TemplateSaved,
    TemplateScope, TemplateUpdate, plan_template,
};
use persistence::WriteTx;
use persistence::now_micros;
use sea_orm::ConnectionTrait;
use serde_json::Value;
use tenancy::ports::AuditContext;
use uuid::Uuid;

use crate::chain;
use crate::convert::{db, get, invalid};
use crate::error::Failure;
use crate::sql::Sql;
use crate::write::{
    ACTION_UPDATE, SettingsTable, acting_user, bump_versions, change_type, lock_orgs_below,
    lock_row, setting_json, write_setting,
};

/// A level above orgs that holds a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// A district.
    District,
    /// A school.
    School,
}

impl Level {
    /// The table of the district or school rows.
    pub(crate) const fn owner(self) -> &'static str {
        match self {
            Self::District => "districts",
            Self::School => "schools",
        }
    }

    /// The settings table.
    pub(crate) const fn settings(self) -> SettingsTable {
        match self {
            Self::District => SettingsTable {
                table: "district_permission_settings",
                fk: "district_id",
            },
            Self::School => SettingsTable {
                table: "school_permission_settings",
                fk: "school_id",
            },
        }
    }

    /// The column of `organizations` pointing at this level.
    const fn org_column(self) -> &'static str {
        match self {
            Self::District => "district_id",
            Self::School => "school_id",
        }
    }

    /// The audit entity type of a setting at this level.
    const fn entity_type(self) -> &'static str {
        match self {
            Self::District => "district_permission_setting",
            Self::School => "school_permission_setting",
        }
    }

    /// The scope `id` at this level.
    const fn scope(self, id: Uuid) -> ScopeRef {
        match self {
            Self::District => ScopeRef::District(id),
            Self::School => ScopeRef::School(id),
        }
    }
}

/// A template setting as audit JSON: the setting plus the scope holding it.
fn template_json(scope: ScopeRef, setting: Option<ScopedSetting>) -> Option<Value> {
    let mut value = setting_json(setting)?;
    if let (Value::Object(map), Ok(scope)) = (&mut value, serde_json::to_value(scope)) {
        map.insert("scope".to_owned(), scope);
    }
    Some(value)
}

/// The district of school `school_id` (`None` for a standalone school).
async fn district_of_school(txn: &WriteTx, school_id: Uuid) -> Result<Option<Uuid>, Failure> {
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push("SELECT district_id FROM schools WHERE id = ")
        .bind(school_id);
    let row = txn.query_one_raw(sql.build()).await?;
    Ok(match row {
        Some(row) => get::<Option<Uuid>>(&row, "district_id")?,
        None => None,
    })
}

/// The template version of `level` `id` (read under its lock).
async fn template_version(txn: &WriteTx, level: Level, id: Uuid) -> Result<u64, Failure> {
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push("SELECT template_version FROM ")
        .push(level.owner())
        .push(" WHERE id = ")
        .bind(id);
    let row = txn
        .query_one_raw(sql.build())
        .await?
        .ok_or_else(|| invalid(format!("{} {id} vanished under its lock", level.owner())))?;
    let version: i64 = get(&row, "template_version")?;
    u64::try_from(version)
        .map_err(|_| invalid(format!("{} {id}: negative template_version", level.owner())).into())
}

/// The settings `level` `id` holds, read inside `txn`.
async fn read_settings(txn: &WriteTx, level: Level, id: Uuid) -> Result<ScopeSettings, Failure> {
    let settings = level.settings();
    Ok(
        chain::load_scope(txn, level.owner(), settings.table, settings.fk, id)
            .await?
            .unwrap_or_default(),
    )
}

/// The level and id of a template scope.
const fn level_of(scope: TemplateScope) -> (Level, Uuid) {
    match scope {
        TemplateScope::District(id) => (Level::District, id),
        TemplateScope::School(id) => (Level::School, id),
    }
}

/// The settings of `scope` and their version, read by `conn`; `None` for an unknown
/// district or school.
pub(crate) async fn load<C: ConnectionTrait>(
    conn: &C,
    scope: TemplateScope,
) -> Result<Option<Template>, LoadError> {
    let (level, id) = level_of(scope);
    let settings = level.settings();
    let Some(held) =
        chain::load_scope(conn, level.owner(), settings.table, settings.fk, id).await?
    else {
        return Ok(None);
    };
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push("SELECT template_version FROM ")
        .push(level.owner())
        .push(" WHERE id = ")
        .bind(id);
    let Some(row) = conn.query_one_raw(sql.build()).await.map_err(db)? else {
        return Ok(None);
    };
    let version: i64 = get(&row, "template_version")?;
    let version = u64::try_from(version)
        .map_err(|_| invalid(format!("{} {id}: negative template_version", level.owner())))?;
    Ok(Some(Template {
        settings: held,
        version,
    }))
}

/// Applies `update` to `scope`'s template in one transaction: lock the district/school
/// row, read its settings and version (and a school's district's settings), plan with
/// [`plan_template`] (a school cannot set what its district locked; a stale version is
/// refused), lock the orgs below in id order, write every changed row, bump the template
/// version and every org's `permissions_version`, append the audit events. Returns the
/// new version and the orgs below (none, and nothing written, when nothing changes).
pub(crate) async fn save(
    txn: &WriteTx,
    ctx: &AuditContext,
    scope: TemplateScope,
    update: &TemplateUpdate,
) -> Result<TemplateSaved, TemplateError> {
    let (level, id) = level_of(scope);
    if !lock_row(txn, level.owner(), id)
        .await
        .map_err(Failure::from)?
    {
        return Err(TemplateError::NotFound);
    }
    let version = template_version(txn, level, id).await?;
    let current = read_settings(txn, level, id).await?;
    let (audit_scope, district) = match level {
        Level::District => (TenantScope::district(id), None),
        Level::School => match district_of_school(txn, id).await? {
            Some(district) => (
                TenantScope::district(district),
                Some((
                    district,
                    read_settings(txn, Level::District, district).await?,
                )),
            ),
            None => (TenantScope::PLATFORM, None),
        },
    };
    let writes = plan_template(
        scope,
        &current,
        version,
        district.as_ref().map(|(id, settings)| (*id, settings)),
        update,
    )?;
    if writes.is_empty() {
        return Ok(TemplateSaved {
            version,
            affected_orgs: Vec::new(),
        });
    }
    let orgs = lock_orgs_below(txn, level.org_column(), id).await?;
    let now = now_micros();
    for write in &writes {
        write_setting(
            txn,
            level.settings(),
            id,
            write.key,
            write.after,
            acting_user(ctx),
            now,
        )
        .await
        .map_err(Failure::from)?;
    }
    bump_versions(txn, level.org_column(), id)
        .await
        .map_err(Failure::from)?;
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push("UPDATE ")
        .push(level.owner())
        .push(" SET template_version = template_version + 1 WHERE id = ")
        .bind(id);
    txn.execute_raw(sql.build()).await.map_err(Failure::from)?;
    // Per changed key: the template's own event, and one in each org below (every org's
    // chain says its effective settings changed: the change event its caches and streams
    // follow). One batch, so chains are locked in id order like every other multi-chain
    // append.
    let at = level.scope(id);
    let mut events = Vec::with_capacity(writes.len() * (orgs.len() + 1));
    for write in &writes {
        let kind = change_type(write.before, write.after, ChangeType::Delete);
        let values = (
            template_json(at, write.before),
            template_json(at, write.after),
        );
        let entity = (level.entity_type(), write.key.as_str().to_owned());
        events.push(ctx.change(
            audit_scope,
            ACTION_UPDATE,
            entity.clone(),
            kind,
            values.clone(),
        ));
        events.extend(orgs.iter().map(|&org| {
            ctx.change(
                TenantScope {
                    org_id: Some(org),
                    district_id: audit_scope.district_id,
                },
                EventType::PermissionInheritedUpdate,
                entity.clone(),
                kind,
                values.clone(),
            )
        }));
    }
    audit_store::append_in(txn, events)
        .await
        .map_err(Failure::from)?;
    Ok(TemplateSaved {
        version: version + 1,
        affected_orgs: orgs,
    })
}
