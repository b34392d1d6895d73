//! Scopes (platform, district, school, org), per-scope settings, and the chain of scopes
//! above one org that resolution walks.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys::{KeySet, PermissionKey};
use crate::role::BuiltinRole;

/// Who set (or locked) a setting.
///
/// Serialized with a `kind` tag: `{"kind":"platform"}`, `{"kind":"district","id":"…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum ScopeRef {
    /// The platform default from the catalog.
    Platform,
    /// A district.
    District(Uuid),
    /// A school.
    School(Uuid),
    /// The organization itself.
    Org(Uuid),
}

impl ScopeRef {
    /// The id of the district, school or org; `None` for the platform.
    #[must_use]
    pub const fn id(self) -> Option<Uuid> {
        match self {
            Self::Platform => None,
            Self::District(id) | Self::School(id) | Self::Org(id) => Some(id),
        }
    }

    /// The level of the hierarchy; `None` for the platform.
    #[must_use]
    pub const fn level(self) -> Option<ScopeLevel> {
        match self {
            Self::Platform => None,
            Self::District(_) => Some(ScopeLevel::District),
            Self::School(_) => Some(ScopeLevel::School),
            Self::Org(_) => Some(ScopeLevel::Org),
        }
    }
}

impl fmt::Display for ScopeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Platform => f.write_str("platform"),
            Self::District(id) => write!(f, "district {id}"),
            Self::School(id) => write!(f, "school {id}"),
            Self::Org(id) => write!(f, "org {id}"),
        }
    }
}

/// A level of an org's chain below the platform, top-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeLevel {
    /// The district (optional).
    District,
    /// The school (optional).
    School,
    /// The organization (always present).
    Org,
}

impl ScopeLevel {
    /// The levels in resolution order: district, school, org.
    pub const TOP_DOWN: [Self; 3] = [Self::District, Self::School, Self::Org];
}

/// A setting held by a district, school or org for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedSetting {
    /// Lowest built-in role that holds the key.
    pub min_role: BuiltinRole,
    /// Whether the key can be held at all.
    pub enabled: bool,
    /// Whether lower levels are prevented from overriding this setting (default `false`).
    #[serde(default)]
    pub locked: bool,
}

impl ScopedSetting {
    /// An unlocked setting.
    #[must_use]
    pub const fn new(min_role: BuiltinRole, enabled: bool) -> Self {
        Self {
            min_role,
            enabled,
            locked: false,
        }
    }

    /// A locked setting: levels below cannot override it.
    #[must_use]
    pub const fn locked(min_role: BuiltinRole, enabled: bool) -> Self {
        Self {
            min_role,
            enabled,
            locked: true,
        }
    }
}

/// The settings one scope holds: at most one [`ScopedSetting`] per key.
///
/// A fixed array indexed by [`PermissionKey::index`]; copying or looking up never allocates.
/// Serialized as a JSON object keyed by dotted key names; duplicate keys are rejected.
///
/// ```
/// use permissions::{BuiltinRole, PermissionKey, ScopeSettings, ScopedSetting};
///
/// let mut settings = ScopeSettings::new();
/// settings.set(PermissionKey::EventsCreate, ScopedSetting::new(BuiltinRole::Volunteer, true));
/// assert_eq!(settings.get(PermissionKey::EventsCreate).map(|s| s.min_role), Some(BuiltinRole::Volunteer));
/// assert_eq!(settings.get(PermissionKey::EventsView), None);
/// assert_eq!(settings.len(), 1);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSettings {
    by_key: [Option<ScopedSetting>; PermissionKey::COUNT],
}

impl ScopeSettings {
    /// No settings.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            by_key: [None; PermissionKey::COUNT],
        }
    }

    /// The setting for `key`, if this scope holds one.
    #[must_use]
    pub const fn get(&self, key: PermissionKey) -> Option<ScopedSetting> {
        self.by_key[key.index()]
    }

    /// Sets the setting for `key`; returns the previous one.
    pub const fn set(
        &mut self,
        key: PermissionKey,
        setting: ScopedSetting,
    ) -> Option<ScopedSetting> {
        self.by_key[key.index()].replace(setting)
    }

    /// Removes the setting for `key` (the key inherits again); returns the previous one.
    pub const fn clear(&mut self, key: PermissionKey) -> Option<ScopedSetting> {
        self.by_key[key.index()].take()
    }

    /// Sets (`Some`) or removes (`None`) the setting for `key`; returns the previous one.
    pub const fn replace(
        &mut self,
        key: PermissionKey,
        setting: Option<ScopedSetting>,
    ) -> Option<ScopedSetting> {
        std::mem::replace(&mut self.by_key[key.index()], setting)
    }

    /// Every key with its setting or `None`, in key order.
    #[must_use]
    pub fn iter(
        &self,
    ) -> impl ExactSizeIterator<Item = (PermissionKey, Option<ScopedSetting>)> + '_ {
        PermissionKey::ALL.into_iter().zip(self.by_key)
    }

    /// The settings held, in key order, skipping keys without one.
    pub fn held(&self) -> impl Iterator<Item = (PermissionKey, ScopedSetting)> + '_ {
        self.iter()
            .filter_map(|(key, setting)| setting.map(|setting| (key, setting)))
    }

    /// The keys this scope holds a setting for.
    #[must_use]
    pub fn keys(&self) -> KeySet {
        self.held().map(|(key, _)| key).collect()
    }

    /// How many keys this scope holds a setting for.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_key.iter().flatten().count()
    }

    /// Whether this scope holds no setting at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_key.iter().all(Option::is_none)
    }
}

impl fmt::Debug for ScopeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.held().map(|(key, setting)| (key.as_str(), setting)))
            .finish()
    }
}

impl FromIterator<(PermissionKey, ScopedSetting)> for ScopeSettings {
    fn from_iter<I: IntoIterator<Item = (PermissionKey, ScopedSetting)>>(settings: I) -> Self {
        let mut all = Self::new();
        for (key, setting) in settings {
            all.set(key, setting);
        }
        all
    }
}

impl Serialize for ScopeSettings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, setting) in self.held() {
            map.serialize_entry(&key, &setting)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ScopeSettings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SettingsVisitor;

        impl<'de> Visitor<'de> for SettingsVisitor {
            type Value = ScopeSettings;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping permission keys to settings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ScopeSettings, A::Error> {
                let mut settings = ScopeSettings::new();
                while let Some((key, setting)) = map.next_entry::<PermissionKey, ScopedSetting>()? {
                    if settings.set(key, setting).is_some() {
                        return Err(de::Error::custom(format_args!(
                            "duplicate setting for `{key}`"
                        )));
                    }
                }
                Ok(settings)
            }
        }

        deserializer.deserialize_map(SettingsVisitor)
    }
}

/// A district or school in an org's chain, with the settings it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainLevel {
    /// The district's or school's id.
    pub id: Uuid,
    /// Its settings (its template, for a district).
    #[serde(default)]
    pub settings: ScopeSettings,
}

/// Everything resolution needs about one org: its id, and the settings of its district (if
/// any), its school (if any) and its own.
///
/// ```
/// use permissions::{OrgChain, ScopeSettings};
/// use uuid::Uuid;
///
/// let org = Uuid::from_u128(3);
/// let chain = OrgChain::standalone(org)
///     .with_district(Uuid::from_u128(1), ScopeSettings::new())
///     .with_school(Uuid::from_u128(2), ScopeSettings::new());
/// assert_eq!(chain.org_id, org);
/// assert!(chain.district.is_some() && chain.school.is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgChain {
    /// The org.
    pub org_id: Uuid,
    /// The org's district, if it belongs to one.
    #[serde(default)]
    pub district: Option<ChainLevel>,
    /// The org's school, if it belongs to one.
    #[serde(default)]
    pub school: Option<ChainLevel>,
    /// The org's own settings.
    #[serde(default)]
    pub org_settings: ScopeSettings,
}

impl OrgChain {
    /// An org with no district, no school and no settings of its own.
    #[must_use]
    pub const fn standalone(org_id: Uuid) -> Self {
        Self {
            org_id,
            district: None,
            school: None,
            org_settings: ScopeSettings::new(),
        }
    }

    /// This chain with a district holding `settings`.
    #[must_use]
    pub const fn with_district(mut self, district_id: Uuid, settings: ScopeSettings) -> Self {
        self.district = Some(ChainLevel {
            id: district_id,
            settings,
        });
        self
    }

    /// This chain with a school holding `settings`.
    #[must_use]
    pub const fn with_school(mut self, school_id: Uuid, settings: ScopeSettings) -> Self {
        self.school = Some(ChainLevel {
            id: school_id,
            settings,
        });
        self
    }

    /// This chain with the org holding `settings`.
    #[must_use]
    pub const fn with_org_settings(mut self, settings: ScopeSettings) -> Self {
        self.org_settings = settings;
        self
    }

    /// The org's own scope.
    #[must_use]
    pub const fn org_scope(&self) -> ScopeRef {
        ScopeRef::Org(self.org_id)
    }

    /// One level of the chain: its scope and settings, or `None` when the org has no such
    /// level (no district or no school). The org level is always present.
    #[must_use]
    pub const fn level(&self, level: ScopeLevel) -> Option<(ScopeRef, &ScopeSettings)> {
        match level {
            ScopeLevel::District => match &self.district {
                Some(district) => Some((ScopeRef::District(district.id), &district.settings)),
                None => None,
            },
            ScopeLevel::School => match &self.school {
                Some(school) => Some((ScopeRef::School(school.id), &school.settings)),
                None => None,
            },
            ScopeLevel::Org => Some((ScopeRef::Org(self.org_id), &self.org_settings)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_ref_serializes_with_a_kind_tag() {
        let id = Uuid::from_u128(7);
        let json = serde_json::to_value(ScopeRef::District(id)).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"kind": "district", "id": "00000000-0000-0000-0000-000000000007"})
        );
        assert_eq!(
            serde_json::to_value(ScopeRef::Platform).expect("serialize"),
            serde_json::json!({"kind": "platform"})
        );
        for scope in [
            ScopeRef::Platform,
            ScopeRef::District(id),
            ScopeRef::School(id),
            ScopeRef::Org(id),
        ] {
            let text = serde_json::to_string(&scope).expect("serialize");
            assert_eq!(
                serde_json::from_str::<ScopeRef>(&text).expect("deserialize"),
                scope
            );
        }
    }

    #[test]
    fn scope_settings_round_trip_as_an_object() {
        let settings: ScopeSettings = [
            (
                PermissionKey::BudgetApprove,
                ScopedSetting::locked(BuiltinRole::Admin, true),
            ),
            (
                PermissionKey::EventsView,
                ScopedSetting::new(BuiltinRole::Volunteer, false),
            ),
        ]
        .into_iter()
        .collect();
        let json = serde_json::to_value(settings).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({
                "budget.approve": {"min_role": "admin", "enabled": true, "locked": true},
                "events.view": {"min_role": "volunteer", "enabled": false, "locked": false},
            })
        );
        let back: ScopeSettings = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, settings);
        assert_eq!(back.keys().len(), 2);
    }

    #[test]
    fn scope_settings_reject_duplicates_and_unknown_keys() {
        let duplicate = r#"{"events.view": {"min_role": "admin", "enabled": true},
                            "events.view": {"min_role": "admin", "enabled": true}}"#;
        assert!(serde_json::from_str::<ScopeSettings>(duplicate).is_err());
        let unknown = r#"{"events.fly": {"min_role": "admin", "enabled": true}}"#;
        assert!(serde_json::from_str::<ScopeSettings>(unknown).is_err());
        let typo = r#"{"events.view": {"min_role": "admin", "enabled": true, "lock": true}}"#;
        assert!(serde_json::from_str::<ScopeSettings>(typo).is_err());
    }

    #[test]
    fn set_clear_and_replace() {
        let mut settings = ScopeSettings::new();
        let setting = ScopedSetting::new(BuiltinRole::BoardMember, true);
        assert_eq!(settings.set(PermissionKey::UsersView, setting), None);
        assert_eq!(
            settings.replace(PermissionKey::UsersView, None),
            Some(setting)
        );
        assert!(settings.is_empty());
        assert_eq!(settings.clear(PermissionKey::UsersView), None);
    }

    #[test]
    fn chain_levels_are_reported_top_down() {
        let chain = OrgChain::standalone(Uuid::from_u128(3))
            .with_school(Uuid::from_u128(2), ScopeSettings::new());
        assert_eq!(chain.level(ScopeLevel::District), None);
        assert_eq!(
            chain.level(ScopeLevel::School).map(|(scope, _)| scope),
            Some(ScopeRef::School(Uuid::from_u128(2)))
        );
        assert_eq!(
            chain.level(ScopeLevel::Org).map(|(scope, _)| scope),
            Some(chain.org_scope())
        );
    }
}
