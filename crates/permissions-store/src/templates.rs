//! District and school settings (templates with locks).

use audit::EventType;
use audit::{ChangeType, TenantScope};
use permissions::{PermissionKey, ScopeRef, ScopedSetting};
use persistence::WriteTx;
use persistence::now_micros;
use sea_orm::ConnectionTrait;
use serde_json::Value;
use tenancy::ports::AuditContext;
use uuid::Uuid;

use crate::convert::get;
use crate::error::{Failure, TemplateError};
use crate::sql::Sql;
use crate::write::{
    ACTION_UPDATE, SettingsTable, acting_user, bump_versions, change_type, lock_orgs_below,
    lock_row, read_setting, setting_json, write_setting,
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

/// Sets (`Some`) or removes (`None`) the setting of `key` at `level` `id`, in one
/// transaction: lock the district/school row, refuse a school setting for a key its
/// district locked, lock the orgs below in id order, write the row, bump every org's
/// `permissions_version`, append the audit event. Returns the orgs below (empty when
/// nothing changed, in which case nothing is bumped or recorded).
pub(crate) async fn change(
    txn: &WriteTx,
    ctx: &AuditContext,
    level: Level,
    id: Uuid,
    key: PermissionKey,
    after: Option<ScopedSetting>,
) -> Result<Vec<Uuid>, TemplateError> {
    if !lock_row(txn, level.owner(), id)
        .await
        .map_err(Failure::from)?
    {
        return Err(TemplateError::NotFound);
    }
    let audit_scope = match level {
        Level::District => TenantScope::district(id),
        Level::School => {
            let district = district_of_school(txn, id).await?;
            if let Some(district) = district
                && after.is_some()
            {
                let above = read_setting(txn, Level::District.settings(), district, key).await?;
                if above.is_some_and(|setting| setting.locked) {
                    return Err(TemplateError::Locked {
                        key,
                        by: ScopeRef::District(district),
                    });
                }
            }
            district.map_or(TenantScope::PLATFORM, TenantScope::district)
        }
    };
    let before = read_setting(txn, level.settings(), id, key).await?;
    if before == after {
        return Ok(Vec::new());
    }
    let orgs = lock_orgs_below(txn, level.org_column(), id).await?;
    write_setting(
        txn,
        level.settings(),
        id,
        key,
        after,
        acting_user(ctx),
        now_micros(),
    )
    .await
    .map_err(Failure::from)?;
    bump_versions(txn, level.org_column(), id)
        .await
        .map_err(Failure::from)?;
    let scope = level.scope(id);
    let kind = change_type(before, after, ChangeType::Delete);
    let values = (template_json(scope, before), template_json(scope, after));
    let entity = (level.entity_type(), key.as_str().to_owned());
    // The template's own event, and one in each org below: every org's chain says its
    // effective settings changed (the change event its caches and streams follow). One
    // batch, so chains are locked in id order like every other multi-chain append.
    let mut events = vec![ctx.change(
        audit_scope,
        ACTION_UPDATE,
        entity.clone(),
        kind,
        values.clone(),
    )];
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
    audit_store::append_in(txn, events)
        .await
        .map_err(Failure::from)?;
    Ok(orgs)
}
