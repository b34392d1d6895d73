//! Editing an org's settings: validating proposed changes against locks above the org and
//! turning them into the writes a store performs (or a preview compiles).

use serde::{Deserialize, Serialize};

use crate::errors::UpdateSettingsError;
use crate::keys::{KeySet, Module, PermissionKey};
use crate::locks::{KeyLock, LockedKeys};
use crate::resolve::resolve;
use crate::role::BuiltinRole;
use crate::scope::{OrgChain, ScopeRef, ScopedSetting};

/// A proposed change of one key's org setting. Fields left out keep their current value:
/// the org's own setting if it has one, else the value it currently inherits (which the org
/// setting then pins). A change naming neither field changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingChange {
    /// The key to change.
    pub key: PermissionKey,
    /// The new minimum role.
    #[serde(default)]
    pub min_role: Option<BuiltinRole>,
    /// The new enabled flag.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// One row a store writes: an org's setting for a key, before and after. `None` means "no
/// org setting" (the key inherits); `after: None` deletes the row. Also what an audit entry
/// records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SettingWrite {
    /// The key.
    pub key: PermissionKey,
    /// The org's setting before the write.
    pub before: Option<ScopedSetting>,
    /// The org's setting after the write.
    pub after: Option<ScopedSetting>,
}

/// The district or school that locked `key` for `chain`'s org, if any. An org's own lock is
/// not "above" it and is not reported.
#[must_use]
pub fn locked_above(chain: &OrgChain, key: PermissionKey) -> Option<ScopeRef> {
    resolve(chain, key)
        .locked_by
        .filter(|&scope| scope != chain.org_scope())
}

/// Validates `changes` and turns them into writes: at most one per key, in catalog order,
/// only for keys whose org setting actually changes. Changes of the same key apply in order.
///
/// # Errors
/// [`UpdateSettingsError::Locked`] naming every change (in the order given) whose key is
/// locked above the org, with who locked it; then no write is planned at all.
pub fn plan_org_changes(
    chain: &OrgChain,
    changes: &[SettingChange],
) -> Result<Vec<SettingWrite>, UpdateSettingsError> {
    let locked = changes
        .iter()
        .filter_map(|change| {
            locked_above(chain, change.key).map(|by| KeyLock {
                key: change.key,
                by,
            })
        })
        .collect();
    if let Some(locked) = LockedKeys::new(locked) {
        return Err(UpdateSettingsError::Locked(locked));
    }
    let mut next = chain.org_settings;
    let mut touched = KeySet::new();
    for change in changes {
        if change.min_role.is_none() && change.enabled.is_none() {
            continue;
        }
        let current = next.get(change.key).unwrap_or_else(|| {
            let inherited = resolve(chain, change.key);
            ScopedSetting::new(inherited.min_role, inherited.enabled)
        });
        next.set(
            change.key,
            ScopedSetting {
                min_role: change.min_role.unwrap_or(current.min_role),
                enabled: change.enabled.unwrap_or(current.enabled),
                locked: current.locked,
            },
        );
        touched.insert(change.key);
    }
    Ok(touched
        .iter()
        .map(|key| SettingWrite {
            key,
            before: chain.org_settings.get(key),
            after: next.get(key),
        })
        .filter(|write| write.before != write.after)
        .collect())
}

/// A change of an org's own settings as it was asked for. The store plans it
/// ([`SettingsUpdate::plan`]) against the org's chain read under the org's lock, inside
/// the write: the locks and inherited values it is checked against are the ones in force
/// when it is written, and the lock rule is applied once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsUpdate {
    /// Set these keys, all or nothing (refused when one is locked above the org).
    Change(Vec<SettingChange>),
    /// Remove the org's own settings (of one module, when given) so it inherits again.
    Reset(Option<Module>),
}

impl SettingsUpdate {
    /// The rows to write against `chain` ([`plan_org_changes`] or [`plan_reset`]).
    ///
    /// # Errors
    /// [`UpdateSettingsError::Locked`] for a change of a key locked above the org.
    pub fn plan(&self, chain: &OrgChain) -> Result<Vec<SettingWrite>, UpdateSettingsError> {
        match self {
            Self::Change(changes) => plan_org_changes(chain, changes),
            Self::Reset(module) => Ok(plan_reset(chain, *module)),
        }
    }
}

/// The writes that reset `chain`'s org to inherited settings: every org setting is removed
/// (only those of `module` when given), in catalog order.
#[must_use]
pub fn plan_reset(chain: &OrgChain, module: Option<Module>) -> Vec<SettingWrite> {
    let keys = module.map_or_else(KeySet::all, Module::keys);
    keys.iter()
        .filter_map(|key| {
            chain.org_settings.get(key).map(|before| SettingWrite {
                key,
                before: Some(before),
                after: None,
            })
        })
        .collect()
}

/// `chain` with `writes` applied to the org's settings.
#[must_use]
pub fn apply_writes(chain: &OrgChain, writes: &[SettingWrite]) -> OrgChain {
    let mut next = chain.clone();
    for write in writes {
        next.org_settings.replace(write.key, write.after);
    }
    next
}

/// `chain` with `changes` applied to the org's settings, all or nothing.
///
/// ```
/// use permissions::{apply_org_changes, BuiltinRole, LockedKeys, OrgChain, PermissionKey, ScopeRef, ScopeSettings, ScopedSetting, SettingChange, UpdateSettingsError};
/// use uuid::Uuid;
///
/// let district_id = Uuid::from_u128(1);
/// let mut district = ScopeSettings::new();
/// district.set(PermissionKey::BudgetApprove, ScopedSetting::locked(BuiltinRole::Admin, true));
/// let chain = OrgChain::standalone(Uuid::from_u128(3)).with_district(district_id, district);
///
/// let events = SettingChange { key: PermissionKey::EventsCreate, min_role: None, enabled: Some(false) };
/// let changed = apply_org_changes(&chain, &[events])?;
/// assert_eq!(changed.org_settings.get(PermissionKey::EventsCreate).map(|s| s.enabled), Some(false));
///
/// let budget = SettingChange { key: PermissionKey::BudgetApprove, min_role: Some(BuiltinRole::Volunteer), enabled: None };
/// assert_eq!(
///     apply_org_changes(&chain, &[events, budget]),
///     Err(UpdateSettingsError::Locked(LockedKeys::one(PermissionKey::BudgetApprove, ScopeRef::District(district_id))))
/// );
/// # Ok::<(), UpdateSettingsError>(())
/// ```
///
/// # Errors
/// [`UpdateSettingsError::Locked`] as [`plan_org_changes`].
pub fn apply_org_changes(
    chain: &OrgChain,
    changes: &[SettingChange],
) -> Result<OrgChain, UpdateSettingsError> {
    plan_org_changes(chain, changes).map(|writes| apply_writes(chain, &writes))
}

/// `chain` with the org's settings removed (only those of `module` when given), so the org
/// inherits again. District and school settings are untouched.
#[must_use]
pub fn reset_org(chain: &OrgChain, module: Option<Module>) -> OrgChain {
    apply_writes(chain, &plan_reset(chain, module))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::scope::ScopeSettings;

    const DISTRICT: Uuid = Uuid::from_u128(1);
    const SCHOOL: Uuid = Uuid::from_u128(2);
    const ORG: Uuid = Uuid::from_u128(3);

    fn chain() -> OrgChain {
        let district: ScopeSettings = [
            (
                PermissionKey::BudgetApprove,
                ScopedSetting::locked(BuiltinRole::Admin, true),
            ),
            (
                PermissionKey::EventsCreate,
                ScopedSetting::new(BuiltinRole::BoardMember, true),
            ),
        ]
        .into_iter()
        .collect();
        let school: ScopeSettings = [(
            PermissionKey::UsersView,
            ScopedSetting::locked(BuiltinRole::CommitteeLead, true),
        )]
        .into_iter()
        .collect();
        let org: ScopeSettings = [
            (
                PermissionKey::EventsView,
                ScopedSetting::new(BuiltinRole::Volunteer, false),
            ),
            (
                PermissionKey::DocumentsView,
                ScopedSetting::locked(BuiltinRole::Volunteer, true),
            ),
            (
                PermissionKey::BudgetView,
                ScopedSetting::new(BuiltinRole::BoardMember, true),
            ),
        ]
        .into_iter()
        .collect();
        OrgChain::standalone(ORG)
            .with_district(DISTRICT, district)
            .with_school(SCHOOL, school)
            .with_org_settings(org)
    }

    fn change(
        key: PermissionKey,
        min_role: Option<BuiltinRole>,
        enabled: Option<bool>,
    ) -> SettingChange {
        SettingChange {
            key,
            min_role,
            enabled,
        }
    }

    #[test]
    fn locked_above_ignores_the_orgs_own_lock() {
        let chain = chain();
        assert_eq!(
            locked_above(&chain, PermissionKey::BudgetApprove),
            Some(ScopeRef::District(DISTRICT))
        );
        assert_eq!(
            locked_above(&chain, PermissionKey::UsersView),
            Some(ScopeRef::School(SCHOOL))
        );
        assert_eq!(locked_above(&chain, PermissionKey::DocumentsView), None);
        assert_eq!(locked_above(&chain, PermissionKey::EventsCreate), None);
    }

    #[test]
    fn refuses_the_whole_batch_naming_every_locked_key() {
        let chain = chain();
        let result = apply_org_changes(
            &chain,
            &[
                change(PermissionKey::EventsDelete, Some(BuiltinRole::Admin), None),
                change(PermissionKey::UsersView, None, Some(false)),
                change(PermissionKey::BudgetApprove, None, Some(false)),
            ],
        );
        let Err(UpdateSettingsError::Locked(locked)) = result else {
            panic!("refused: {result:?}");
        };
        assert_eq!(
            locked.locks(),
            [
                KeyLock {
                    key: PermissionKey::UsersView,
                    by: ScopeRef::School(SCHOOL)
                },
                KeyLock {
                    key: PermissionKey::BudgetApprove,
                    by: ScopeRef::District(DISTRICT)
                },
            ]
        );
    }

    #[test]
    fn partial_change_starts_from_the_inherited_or_own_setting() {
        let chain = chain();
        let writes = plan_org_changes(
            &chain,
            &[
                change(PermissionKey::EventsCreate, None, Some(false)),
                change(
                    PermissionKey::EventsView,
                    Some(BuiltinRole::CommitteeLead),
                    None,
                ),
                change(PermissionKey::DocumentsView, None, Some(false)),
            ],
        )
        .expect("nothing locked above");
        assert_eq!(
            writes,
            [
                SettingWrite {
                    key: PermissionKey::EventsView,
                    before: Some(ScopedSetting::new(BuiltinRole::Volunteer, false)),
                    after: Some(ScopedSetting::new(BuiltinRole::CommitteeLead, false)),
                },
                SettingWrite {
                    key: PermissionKey::EventsCreate,
                    before: None,
                    after: Some(ScopedSetting::new(BuiltinRole::BoardMember, false)),
                },
                SettingWrite {
                    key: PermissionKey::DocumentsView,
                    before: Some(ScopedSetting::locked(BuiltinRole::Volunteer, true)),
                    after: Some(ScopedSetting::locked(BuiltinRole::Volunteer, false)),
                },
            ]
        );
        let applied = apply_org_changes(
            &chain,
            &[change(PermissionKey::EventsCreate, None, Some(false))],
        )
        .expect("nothing locked above");
        assert_eq!(
            resolve(&applied, PermissionKey::EventsCreate).source,
            ScopeRef::Org(ORG)
        );
        assert!(!resolve(&applied, PermissionKey::EventsCreate).enabled);
    }

    #[test]
    fn no_op_and_repeated_changes() {
        let chain = chain();
        assert_eq!(
            plan_org_changes(&chain, &[change(PermissionKey::EventsDelete, None, None)]),
            Ok(vec![])
        );
        assert_eq!(
            plan_org_changes(
                &chain,
                &[change(
                    PermissionKey::EventsView,
                    Some(BuiltinRole::Volunteer),
                    Some(false)
                )]
            ),
            Ok(vec![])
        );
        let writes = plan_org_changes(
            &chain,
            &[
                change(PermissionKey::EventsDelete, Some(BuiltinRole::Admin), None),
                change(PermissionKey::EventsDelete, None, Some(false)),
            ],
        )
        .expect("nothing locked above");
        assert_eq!(writes.len(), 1);
        assert_eq!(
            writes[0].after,
            Some(ScopedSetting::new(BuiltinRole::Admin, false))
        );
    }

    #[test]
    fn reset_removes_org_settings_of_one_module_or_all() {
        let chain = chain();
        let events_only = reset_org(&chain, Some(Module::Events));
        assert_eq!(
            events_only.org_settings.get(PermissionKey::EventsView),
            None
        );
        assert!(
            events_only
                .org_settings
                .get(PermissionKey::BudgetView)
                .is_some()
        );
        assert_eq!(events_only.district, chain.district);

        let writes = plan_reset(&chain, None);
        assert_eq!(writes.len(), 3);
        assert!(
            writes
                .iter()
                .all(|write| write.after.is_none() && write.before.is_some())
        );
        assert!(reset_org(&chain, None).org_settings.is_empty());
        assert!(plan_reset(&chain, Some(Module::Fundraising)).is_empty());
    }
}
