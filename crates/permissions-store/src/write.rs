//! Shared write helpers (row locks, version bumps, setting rows, audit events) and the
//! audited save of an org's settings.

use audit::EventType;
use audit::{Actor, ChangeType, TenantScope};
use permissions::{OrgChain, PermissionKey, ScopedSetting, SettingsUpdate, UpdateSettingsError};
use persistence::WriteTx;
use persistence::now_micros;
use sea_orm::{ConnectionTrait, DbBackend, DbErr};
use serde_json::{Value, json};
use tenancy::ports::AuditContext;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::chain;
use crate::convert::get;
use crate::error::Failure;
use crate::sql::Sql;

/// The action of every settings change (org, school or district).
pub(crate) const ACTION_UPDATE: EventType = EventType::PermissionUpdate;

/// Takes the write lock of a district's or school's row (`table` is `districts` or
/// `schools`). `false` when there is no such row.
pub(crate) async fn lock_row(txn: &WriteTx, table: &str, id: Uuid) -> Result<bool, DbErr> {
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push("UPDATE ")
        .push(table)
        .push(" SET version = version WHERE id = ")
        .bind(id);
    Ok(txn.execute_raw(sql.build()).await?.rows_affected() > 0)
}

/// Locks the orgs whose `column` (`district_id` or `school_id`) is `id`, in id order (so
/// concurrent template changes lock overlapping sets without deadlocking), and returns
/// their ids in that order. On SQLite the transaction already holds the database write
/// lock.
pub(crate) async fn lock_orgs_below(
    txn: &WriteTx,
    column: &str,
    id: Uuid,
) -> Result<Vec<Uuid>, Failure> {
    let backend = txn.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("SELECT id FROM organizations WHERE ")
        .push(column)
        .push(" = ")
        .bind(id)
        .push(" ORDER BY id");
    if backend == DbBackend::Postgres {
        sql.push(" FOR UPDATE");
    }
    let rows = txn.query_all_raw(sql.build()).await?;
    Ok(rows
        .iter()
        .map(|row| get::<Uuid>(row, "id"))
        .collect::<Result<_, _>>()?)
}

/// Bumps `permissions_version` of the orgs whose `column` is `id` (`id` itself for the
/// org's own column).
pub(crate) async fn bump_versions(txn: &WriteTx, column: &str, id: Uuid) -> Result<(), DbErr> {
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push("UPDATE organizations SET permissions_version = permissions_version + 1 WHERE ")
        .push(column)
        .push(" = ")
        .bind(id);
    txn.execute_raw(sql.build()).await.map(|_| ())
}

/// A settings table: the district, school or org level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SettingsTable {
    /// The table holding the settings.
    pub(crate) table: &'static str,
    /// Its scope column.
    pub(crate) fk: &'static str,
}

/// `org_permission_settings`.
pub(crate) const ORG_SETTINGS: SettingsTable = SettingsTable {
    table: "org_permission_settings",
    fk: "org_id",
};

/// Inserts, replaces (`Some`) or deletes (`None`) the setting `scope_id` holds for `key`.
pub(crate) async fn write_setting(
    txn: &WriteTx,
    table: SettingsTable,
    scope_id: Uuid,
    key: PermissionKey,
    setting: Option<ScopedSetting>,
    updated_by: Option<Uuid>,
    now: OffsetDateTime,
) -> Result<(), DbErr> {
    let mut sql = Sql::new(txn.get_database_backend());
    match setting {
        Some(setting) => {
            sql.push("INSERT INTO ")
                .push(table.table)
                .push(" (")
                .push(table.fk)
                .push(", key, min_role, enabled, locked, updated_by, updated_at) VALUES (")
                .bind(scope_id)
                .push(", ")
                .bind(key.as_str())
                .push(", ")
                .bind(setting.min_role.as_str())
                .push(", ")
                .bind(setting.enabled)
                .push(", ")
                .bind(setting.locked)
                .push(", ")
                .bind(updated_by)
                .push(", ")
                .bind(now)
                .push(") ON CONFLICT (")
                .push(table.fk)
                .push(
                    ", key) DO UPDATE SET min_role = excluded.min_role, \
                     enabled = excluded.enabled, locked = excluded.locked, \
                     updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                );
        }
        None => {
            sql.push("DELETE FROM ")
                .push(table.table)
                .push(" WHERE ")
                .push(table.fk)
                .push(" = ")
                .bind(scope_id)
                .push(" AND key = ")
                .bind(key.as_str());
        }
    }
    txn.execute_raw(sql.build()).await.map(|_| ())
}

/// The user recorded as `updated_by` / `granted_by`: the acting user, if a user acts.
pub(crate) const fn acting_user(ctx: &AuditContext) -> Option<Uuid> {
    match ctx.actor {
        Actor::User(id) => Some(id),
        Actor::ApiKey(_) | Actor::System => None,
    }
}

/// The audit scope of an org: its chain, with its district as context.
pub(crate) fn org_scope(chain: &OrgChain) -> TenantScope {
    match &chain.district {
        Some(district) => TenantScope::org_in_district(chain.org_id, district.id),
        None => TenantScope::org(chain.org_id),
    }
}

/// What an audit event records about one change.
pub(crate) struct Change {
    /// Where the event is chained.
    pub(crate) scope: TenantScope,
    /// What happened.
    pub(crate) what: EventType,
    /// The entity's type.
    pub(crate) entity_type: &'static str,
    /// The entity's id.
    pub(crate) entity_id: String,
    /// The kind of change.
    pub(crate) change_type: ChangeType,
    /// Before.
    pub(crate) old_value: Option<Value>,
    /// After.
    pub(crate) new_value: Option<Value>,
}

/// Appends the audit event of `change` inside `txn`, so that it commits (or rolls back)
/// with the change itself.
pub(crate) async fn record(
    txn: &WriteTx,
    ctx: &AuditContext,
    change: Change,
) -> Result<(), Failure> {
    let event = ctx.change(
        change.scope,
        change.what,
        (change.entity_type, change.entity_id),
        change.change_type,
        (change.old_value, change.new_value),
    );
    audit_store::append_in(txn, vec![event]).await?;
    Ok(())
}

/// The change type of a setting going from `before` to `after`; a removed org setting
/// means the key inherits again, recorded as `reset` (org) or `delete` (templates).
pub(crate) const fn change_type(
    before: Option<ScopedSetting>,
    after: Option<ScopedSetting>,
    removal: ChangeType,
) -> ChangeType {
    match (before, after) {
        (None, Some(_)) => ChangeType::Create,
        (Some(_), None) => removal,
        _ => ChangeType::Update,
    }
}

/// A setting as audit JSON (`{"min_role", "enabled", "locked"}`).
pub(crate) fn setting_json(setting: Option<ScopedSetting>) -> Option<Value> {
    setting.map(|s| json!({"min_role": s.min_role, "enabled": s.enabled, "locked": s.locked}))
}

/// The body of the audited save, inside `txn`. See
/// [`SeaOrmPermissionStore::save_org_settings_audited`](crate::SeaOrmPermissionStore::save_org_settings_audited).
pub(crate) async fn save_org_settings(
    txn: &WriteTx,
    ctx: &AuditContext,
    org_id: Uuid,
    expected_version: u64,
    update: &SettingsUpdate,
) -> Result<u64, UpdateSettingsError> {
    if !txn.lock_org(org_id).await.map_err(Failure::from)? {
        return Err(UpdateSettingsError::NotFound);
    }
    // Read under the org's lock and planned here, once: the district and school settings
    // (and their locks) in force now, not the ones the caller saw.
    let loaded = chain::load(txn, org_id)
        .await?
        .ok_or(UpdateSettingsError::NotFound)?;
    let mut changes: Vec<(PermissionKey, Option<ScopedSetting>, Option<ScopedSetting>)> = update
        .plan(&loaded.chain)?
        .into_iter()
        .map(|write| (write.key, write.before, write.after))
        .collect();
    if loaded.version != expected_version {
        return Err(UpdateSettingsError::VersionMismatch {
            expected: expected_version,
            actual: loaded.version,
        });
    }
    changes.retain(|(_, before, after)| before != after);
    if changes.is_empty() {
        return Ok(loaded.version);
    }
    let now = now_micros();
    let scope = org_scope(&loaded.chain);
    for (key, before, after) in changes {
        write_setting(txn, ORG_SETTINGS, org_id, key, after, acting_user(ctx), now)
            .await
            .map_err(Failure::from)?;
        let change = Change {
            scope,
            what: ACTION_UPDATE,
            entity_type: "permission_setting",
            entity_id: key.as_str().to_owned(),
            change_type: change_type(before, after, ChangeType::Reset),
            old_value: setting_json(before),
            new_value: setting_json(after),
        };
        record(txn, ctx, change).await?;
    }
    bump_versions(txn, "id", org_id)
        .await
        .map_err(Failure::from)?;
    Ok(loaded.version + 1)
}
