//! Resolution of the effective setting of a key for an org.

use serde::{Deserialize, Serialize};

use crate::catalog::{DefaultSetting, platform_default};
use crate::explain::ExplainStep;
use crate::keys::PermissionKey;
use crate::role::BuiltinRole;
use crate::scope::{OrgChain, ScopeLevel, ScopeRef, ScopedSetting};

/// The effective setting of one key for one org, with where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Effective {
    /// Lowest built-in role that holds the key.
    pub min_role: BuiltinRole,
    /// Whether the key can be held at all.
    pub enabled: bool,
    /// The scope whose setting is in effect ([`ScopeRef::Platform`] for the catalog default).
    pub source: ScopeRef,
    /// The scope that locked the setting, when the setting in effect is locked. Levels below
    /// it were not consulted. For a district or school this is why the org's toggle is greyed
    /// out; an org's own lock binds no one (nothing is below it) and does not block org writes.
    pub locked_by: Option<ScopeRef>,
}

impl Effective {
    /// The platform default, before any level is consulted.
    #[must_use]
    pub const fn platform(default: DefaultSetting) -> Self {
        Self {
            min_role: default.min_role,
            enabled: default.enabled,
            source: ScopeRef::Platform,
            locked_by: None,
        }
    }

    /// The district or school that locked the setting, if one did: then the org's
    /// exceptions (a custom role's extra keys, direct grants) do not count for the key.
    /// An org's own lock binds no one and is not "above".
    #[must_use]
    pub const fn locked_above(&self) -> Option<ScopeRef> {
        match self.locked_by {
            Some(scope @ (ScopeRef::District(_) | ScopeRef::School(_))) => Some(scope),
            _ => None,
        }
    }

    /// The setting `scope` holds, as the one in effect.
    #[must_use]
    pub const fn from_setting(setting: ScopedSetting, scope: ScopeRef) -> Self {
        Self {
            min_role: setting.min_role,
            enabled: setting.enabled,
            source: scope,
            locked_by: if setting.locked { Some(scope) } else { None },
        }
    }
}

/// The effective setting of `key` for the org of `chain`:
///
/// 1. start from the platform default;
/// 2. walk district, then school, then the org (skipping levels the org doesn't have);
/// 3. a level holding a setting for the key replaces the current one;
/// 4. if that setting is locked, stop: lower levels are not consulted.
///
/// ```
/// use permissions::{resolve, BuiltinRole, OrgChain, PermissionKey, ScopeRef, ScopeSettings, ScopedSetting};
/// use uuid::Uuid;
///
/// let (district, org) = (Uuid::from_u128(1), Uuid::from_u128(3));
/// let key = PermissionKey::BudgetApprove;
/// let mut district_settings = ScopeSettings::new();
/// district_settings.set(key, ScopedSetting::locked(BuiltinRole::Admin, true));
/// let mut org_settings = ScopeSettings::new();
/// org_settings.set(key, ScopedSetting::new(BuiltinRole::Volunteer, true));
/// let chain = OrgChain::standalone(org)
///     .with_district(district, district_settings)
///     .with_org_settings(org_settings);
///
/// let effective = resolve(&chain, key);
/// assert_eq!(effective.min_role, BuiltinRole::Admin); // the org's override is ignored
/// assert_eq!(effective.source, ScopeRef::District(district));
/// assert_eq!(effective.locked_by, Some(ScopeRef::District(district)));
/// ```
#[must_use]
pub fn resolve(chain: &OrgChain, key: PermissionKey) -> Effective {
    walk(chain, key, |_| {})
}

/// Resolution, reporting each level's outcome to `on_step` (platform default first, then one
/// step per level, top-down). [`resolve`] and [`explain`](crate::explain()) both use it, so the
/// explanation cannot drift from the answer.
pub(crate) fn walk(
    chain: &OrgChain,
    key: PermissionKey,
    mut on_step: impl FnMut(ExplainStep),
) -> Effective {
    let default = platform_default(key);
    on_step(ExplainStep::PlatformDefault {
        min_role: default.min_role,
        enabled: default.enabled,
    });
    let mut effective = Effective::platform(default);
    for level in ScopeLevel::TOP_DOWN {
        let Some((scope, settings)) = chain.level(level) else {
            on_step(ExplainStep::LevelAbsent { level });
            continue;
        };
        let setting = settings.get(key);
        if let Some(locked_by) = effective.locked_by {
            on_step(ExplainStep::LevelSkipped {
                scope,
                locked_by,
                ignored_setting: setting,
            });
            continue;
        }
        match setting {
            None => on_step(ExplainStep::LevelNotSet { scope }),
            Some(setting) => {
                effective = Effective::from_setting(setting, scope);
                on_step(if setting.locked {
                    ExplainStep::LevelLocked {
                        scope,
                        min_role: setting.min_role,
                        enabled: setting.enabled,
                    }
                } else {
                    ExplainStep::LevelSet {
                        scope,
                        min_role: setting.min_role,
                        enabled: setting.enabled,
                    }
                });
            }
        }
    }
    effective
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::scope::ScopeSettings;

    const DISTRICT: Uuid = Uuid::from_u128(0xd);
    const SCHOOL: Uuid = Uuid::from_u128(0x5);
    const ORG: Uuid = Uuid::from_u128(0x0);
    const KEY: PermissionKey = PermissionKey::EventsCreate;

    fn settings(setting: ScopedSetting) -> ScopeSettings {
        [(KEY, setting)].into_iter().collect()
    }

    #[test]
    fn platform_default_when_nothing_is_set() {
        let effective = resolve(&OrgChain::standalone(ORG), KEY);
        assert_eq!(
            effective,
            Effective {
                min_role: BuiltinRole::CommitteeLead,
                enabled: true,
                source: ScopeRef::Platform,
                locked_by: None,
            }
        );
    }

    #[test]
    fn lock_at_district_beats_org_override() {
        let chain = OrgChain::standalone(ORG)
            .with_district(
                DISTRICT,
                settings(ScopedSetting::locked(BuiltinRole::BoardMember, true)),
            )
            .with_school(
                SCHOOL,
                settings(ScopedSetting::new(BuiltinRole::Volunteer, true)),
            )
            .with_org_settings(settings(ScopedSetting::new(BuiltinRole::Volunteer, true)));
        let effective = resolve(&chain, KEY);
        assert_eq!(effective.min_role, BuiltinRole::BoardMember);
        assert_eq!(effective.source, ScopeRef::District(DISTRICT));
        assert_eq!(effective.locked_by, Some(ScopeRef::District(DISTRICT)));
    }

    #[test]
    fn unlocked_district_setting_is_overridden_by_org() {
        let chain = OrgChain::standalone(ORG)
            .with_district(
                DISTRICT,
                settings(ScopedSetting::new(BuiltinRole::BoardMember, true)),
            )
            .with_org_settings(settings(ScopedSetting::new(BuiltinRole::Volunteer, false)));
        let effective = resolve(&chain, KEY);
        assert_eq!(effective.min_role, BuiltinRole::Volunteer);
        assert!(!effective.enabled);
        assert_eq!(effective.source, ScopeRef::Org(ORG));
        assert_eq!(effective.locked_by, None);
    }

    #[test]
    fn school_setting_applies_between_district_and_org() {
        let district_only = OrgChain::standalone(ORG)
            .with_district(
                DISTRICT,
                settings(ScopedSetting::new(BuiltinRole::Admin, true)),
            )
            .with_school(
                SCHOOL,
                settings(ScopedSetting::new(BuiltinRole::BoardMember, true)),
            );
        let effective = resolve(&district_only, KEY);
        assert_eq!(effective.min_role, BuiltinRole::BoardMember);
        assert_eq!(effective.source, ScopeRef::School(SCHOOL));

        let with_org = district_only
            .with_org_settings(settings(ScopedSetting::new(BuiltinRole::Volunteer, true)));
        assert_eq!(resolve(&with_org, KEY).source, ScopeRef::Org(ORG));
    }

    #[test]
    fn school_lock_stops_the_org_but_not_the_district_above() {
        let chain = OrgChain::standalone(ORG)
            .with_district(
                DISTRICT,
                settings(ScopedSetting::new(BuiltinRole::Admin, false)),
            )
            .with_school(
                SCHOOL,
                settings(ScopedSetting::locked(BuiltinRole::Volunteer, true)),
            )
            .with_org_settings(settings(ScopedSetting::new(BuiltinRole::Admin, false)));
        let effective = resolve(&chain, KEY);
        assert_eq!(effective.min_role, BuiltinRole::Volunteer);
        assert!(effective.enabled);
        assert_eq!(effective.locked_by, Some(ScopeRef::School(SCHOOL)));
    }

    #[test]
    fn school_without_district_is_consulted() {
        let chain = OrgChain::standalone(ORG).with_school(
            SCHOOL,
            settings(ScopedSetting::new(BuiltinRole::Admin, true)),
        );
        assert_eq!(resolve(&chain, KEY).source, ScopeRef::School(SCHOOL));
        assert_eq!(
            resolve(&chain, PermissionKey::EventsView).source,
            ScopeRef::Platform
        );
    }

    #[test]
    fn walk_reports_one_step_per_level() {
        let chain = OrgChain::standalone(ORG)
            .with_district(
                DISTRICT,
                settings(ScopedSetting::locked(BuiltinRole::Admin, true)),
            )
            .with_org_settings(settings(ScopedSetting::new(BuiltinRole::Volunteer, true)));
        let mut steps = Vec::new();
        let effective = walk(&chain, KEY, |step| steps.push(step));
        assert_eq!(effective, resolve(&chain, KEY));
        assert_eq!(
            steps,
            [
                ExplainStep::PlatformDefault {
                    min_role: BuiltinRole::CommitteeLead,
                    enabled: true
                },
                ExplainStep::LevelLocked {
                    scope: ScopeRef::District(DISTRICT),
                    min_role: BuiltinRole::Admin,
                    enabled: true
                },
                ExplainStep::LevelAbsent {
                    level: ScopeLevel::School
                },
                ExplainStep::LevelSkipped {
                    scope: ScopeRef::Org(ORG),
                    locked_by: ScopeRef::District(DISTRICT),
                    ignored_setting: Some(ScopedSetting::new(BuiltinRole::Volunteer, true)),
                },
            ]
        );
    }
}
