//! District and school templates: the settings a district or school holds for every org
//! below it, with locks, and the rules for changing them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::errors::TemplateError;
use crate::keys::PermissionKey;
use crate::locks::{KeyLock, LockedKeys};
use crate::scope::{ScopeRef, ScopeSettings, ScopedSetting};

/// A scope that holds a template: a district or a school.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum TemplateScope {
    /// A district.
    District(Uuid),
    /// A school.
    School(Uuid),
}

impl TemplateScope {
    /// As a scope of the hierarchy.
    #[must_use]
    pub const fn scope(self) -> ScopeRef {
        match self {
            Self::District(id) => ScopeRef::District(id),
            Self::School(id) => ScopeRef::School(id),
        }
    }

    /// The district's or school's id.
    #[must_use]
    pub const fn id(self) -> Uuid {
        match self {
            Self::District(id) | Self::School(id) => id,
        }
    }
}

impl From<TemplateScope> for ScopeRef {
    fn from(scope: TemplateScope) -> Self {
        scope.scope()
    }
}

/// A district's or school's settings and their version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// The settings it holds.
    pub settings: ScopeSettings,
    /// Its version: every change bumps it. Send it back with a versioned change.
    pub version: u64,
}

/// One key of a template change: set (`Some`) or remove (`None`) the scope's setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TemplateChange {
    /// The key.
    pub key: PermissionKey,
    /// The new setting; `None` removes the scope's setting (and its lock).
    pub setting: Option<ScopedSetting>,
}

/// A change of a template, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateUpdate {
    /// The version the caller read, when the change is conditional on it (refused as
    /// [`TemplateError::VersionMismatch`] when stale); `None` for an unconditional change.
    pub expected_version: Option<u64>,
    /// The changes; later changes of a key replace earlier ones.
    pub changes: Vec<TemplateChange>,
}

impl TemplateUpdate {
    /// An unconditional change of one key.
    #[must_use]
    pub fn one(key: PermissionKey, setting: Option<ScopedSetting>) -> Self {
        Self {
            expected_version: None,
            changes: vec![TemplateChange { key, setting }],
        }
    }
}

/// One row a store writes for a template change: the scope's setting of a key, before and
/// after (`None`: no setting). Also what its audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TemplateWrite {
    /// The key.
    pub key: PermissionKey,
    /// Before.
    pub before: Option<ScopedSetting>,
    /// After.
    pub after: Option<ScopedSetting>,
}

/// What a template change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSaved {
    /// The template's version after the change (unchanged when nothing changed).
    pub version: u64,
    /// The orgs below the scope, whose effective settings are re-resolved (empty when
    /// nothing changed).
    pub affected_orgs: Vec<Uuid>,
}

/// Plans `update` of `scope`'s template `current` (read under the scope's lock): the rows
/// to write, one per key that actually changes, in the order first named.
///
/// A school cannot set a key its district locked (`district` is the school's district and
/// its settings; `None` for a district, or a school without one); removing the
/// school's own setting of such a key is allowed. Locks are checked before the version,
/// so a refusal names every locked key even on a stale version.
///
/// ```
/// use permissions::{plan_template, BuiltinRole, PermissionKey, ScopeSettings, ScopedSetting, TemplateChange, TemplateScope, TemplateUpdate};
/// use uuid::Uuid;
///
/// let school = TemplateScope::School(Uuid::from_u128(2));
/// let mut district = ScopeSettings::new();
/// district.set(PermissionKey::BudgetApprove, ScopedSetting::locked(BuiltinRole::Admin, true));
/// let update = TemplateUpdate {
///     expected_version: Some(4),
///     changes: vec![TemplateChange { key: PermissionKey::BudgetApprove, setting: Some(ScopedSetting::new(BuiltinRole::Volunteer, true)) }],
/// };
/// assert!(plan_template(school, &ScopeSettings::new(), 4, Some((Uuid::from_u128(1), &district)), &update).is_err());
/// ```
///
/// # Errors
/// [`TemplateError::Locked`] naming every key locked by the district;
/// [`TemplateError::VersionMismatch`] when `update.expected_version` is not
/// `current_version`.
pub fn plan_template(
    scope: TemplateScope,
    current: &ScopeSettings,
    current_version: u64,
    district: Option<(Uuid, &ScopeSettings)>,
    update: &TemplateUpdate,
) -> Result<Vec<TemplateWrite>, TemplateError> {
    if let (TemplateScope::School(_), Some((district_id, district))) = (scope, district) {
        let locked = update
            .changes
            .iter()
            .filter(|change| change.setting.is_some())
            .filter_map(|change| {
                district
                    .get(change.key)
                    .filter(|setting| setting.locked)
                    .map(|_| KeyLock {
                        key: change.key,
                        by: ScopeRef::District(district_id),
                    })
            })
            .collect();
        if let Some(locked) = LockedKeys::new(locked) {
            return Err(TemplateError::Locked(locked));
        }
    }
    if let Some(expected) = update.expected_version
        && expected != current_version
    {
        return Err(TemplateError::VersionMismatch {
            expected,
            actual: current_version,
        });
    }
    let mut next = *current;
    let mut order: Vec<PermissionKey> = Vec::new();
    for change in &update.changes {
        next.replace(change.key, change.setting);
        if !order.contains(&change.key) {
            order.push(change.key);
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|key| {
            let (before, after) = (current.get(key), next.get(key));
            (before != after).then_some(TemplateWrite { key, before, after })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::BuiltinRole;

    const SCHOOL: TemplateScope = TemplateScope::School(Uuid::from_u128(2));
    const DISTRICT: TemplateScope = TemplateScope::District(Uuid::from_u128(1));

    fn set(key: PermissionKey, setting: ScopedSetting) -> TemplateChange {
        TemplateChange {
            key,
            setting: Some(setting),
        }
    }

    fn update(version: Option<u64>, changes: Vec<TemplateChange>) -> TemplateUpdate {
        TemplateUpdate {
            expected_version: version,
            changes,
        }
    }

    #[test]
    fn plans_one_write_per_changed_key_and_skips_no_ops() {
        let mut current = ScopeSettings::new();
        current.set(
            PermissionKey::EventsView,
            ScopedSetting::new(BuiltinRole::Volunteer, true),
        );
        current.set(
            PermissionKey::BudgetView,
            ScopedSetting::new(BuiltinRole::Admin, true),
        );
        let writes = plan_template(
            DISTRICT,
            &current,
            3,
            None,
            &update(
                Some(3),
                vec![
                    set(
                        PermissionKey::EventsView,
                        ScopedSetting::new(BuiltinRole::Volunteer, true),
                    ),
                    set(
                        PermissionKey::BudgetApprove,
                        ScopedSetting::new(BuiltinRole::Volunteer, true),
                    ),
                    set(
                        PermissionKey::BudgetApprove,
                        ScopedSetting::locked(BuiltinRole::Admin, true),
                    ),
                    TemplateChange {
                        key: PermissionKey::BudgetView,
                        setting: None,
                    },
                ],
            ),
        )
        .expect("planned");
        assert_eq!(
            writes,
            [
                TemplateWrite {
                    key: PermissionKey::BudgetApprove,
                    before: None,
                    after: Some(ScopedSetting::locked(BuiltinRole::Admin, true)),
                },
                TemplateWrite {
                    key: PermissionKey::BudgetView,
                    before: Some(ScopedSetting::new(BuiltinRole::Admin, true)),
                    after: None,
                },
            ]
        );
    }

    #[test]
    fn a_stale_version_is_refused_and_an_unconditional_change_is_not() {
        let change = vec![set(
            PermissionKey::EventsView,
            ScopedSetting::new(BuiltinRole::Admin, true),
        )];
        assert!(matches!(
            plan_template(
                DISTRICT,
                &ScopeSettings::new(),
                5,
                None,
                &update(Some(4), change.clone())
            ),
            Err(TemplateError::VersionMismatch {
                expected: 4,
                actual: 5
            })
        ));
        assert_eq!(
            plan_template(
                DISTRICT,
                &ScopeSettings::new(),
                5,
                None,
                &update(None, change)
            )
            .expect("unconditional")
            .len(),
            1
        );
    }

    #[test]
    fn a_school_cannot_set_keys_its_district_locked_and_every_one_is_named() {
        let mut district = ScopeSettings::new();
        for key in [PermissionKey::BudgetApprove, PermissionKey::EventsDelete] {
            district.set(key, ScopedSetting::locked(BuiltinRole::Admin, true));
        }
        district.set(
            PermissionKey::EventsView,
            ScopedSetting::new(BuiltinRole::Admin, true),
        );
        let mut current = ScopeSettings::new();
        current.set(
            PermissionKey::EventsDelete,
            ScopedSetting::new(BuiltinRole::Volunteer, true),
        );
        let setting = ScopedSetting::new(BuiltinRole::Volunteer, true);
        let refused = plan_template(
            SCHOOL,
            &current,
            1,
            Some((Uuid::from_u128(1), &district)),
            // Locks come before the version.
            &update(
                Some(0),
                vec![
                    set(PermissionKey::EventsDelete, setting),
                    set(PermissionKey::EventsView, setting),
                    set(PermissionKey::BudgetApprove, setting),
                ],
            ),
        );
        let Err(TemplateError::Locked(locked)) = refused else {
            panic!("refused: {refused:?}");
        };
        assert_eq!(
            locked.keys(),
            [PermissionKey::EventsDelete, PermissionKey::BudgetApprove]
                .into_iter()
                .collect()
        );
        // Removing the school's own setting of a locked key is allowed; so is anything
        // for the district itself.
        let removal = update(
            Some(1),
            vec![TemplateChange {
                key: PermissionKey::EventsDelete,
                setting: None,
            }],
        );
        assert_eq!(
            plan_template(
                SCHOOL,
                &current,
                1,
                Some((Uuid::from_u128(1), &district)),
                &removal
            )
            .expect("allowed")
            .len(),
            1
        );
        let district_change = update(None, vec![set(PermissionKey::BudgetApprove, setting)]);
        assert!(plan_template(DISTRICT, &district, 0, None, &district_change).is_ok());
    }
}
