//! [`CompiledOrg`]: the resolved table of one org, built once and read by every check.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::keys::{KeySet, PermissionKey};
use crate::resolve::{Effective, resolve};
use crate::role::BuiltinRole;
use crate::scope::OrgChain;

/// What [`check`](crate::check()) reads of an org: the resolved table folded into key sets,
/// 32 bytes, so a check touches one cache line of the org. Derived from the table at
/// compile time (never stored or serialized on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(32))]
pub(crate) struct CheckSets {
    /// The enabled keys.
    pub(crate) enabled: KeySet,
    /// Per built-in role, lowest first: the enabled keys whose minimum role it reaches.
    pub(crate) by_role: [KeySet; 4],
    /// The enabled keys no district or school locked: where a custom role's extra keys
    /// and direct grants count ("locks bind exceptions").
    pub(crate) open: KeySet,
}

impl CheckSets {
    fn of(table: &[Effective; PermissionKey::COUNT]) -> Self {
        let mut sets = Self {
            enabled: KeySet::new(),
            by_role: [KeySet::new(); 4],
            open: KeySet::new(),
        };
        for (key, effective) in PermissionKey::ALL.into_iter().zip(table) {
            if !effective.enabled {
                continue;
            }
            sets.enabled.insert(key);
            for role in BuiltinRole::ALL {
                if role >= effective.min_role {
                    sets.by_role[role.index()].insert(key);
                }
            }
            if effective.locked_above().is_none() {
                sets.open.insert(key);
            }
        }
        sets
    }

    /// The enabled keys `role` reaches by rank.
    pub(crate) const fn reached_by(&self, role: BuiltinRole) -> KeySet {
        self.by_role[role.index()]
    }
}

/// The effective setting of all 28 keys for one org, resolved once from its [`OrgChain`].
///
/// Immutable: a settings change produces a new `CompiledOrg` (with a new `generation`, which
/// caches use to tell a stale table from a fresh one). Looking a key up is one array index.
///
/// Laid out for the check: one 64-byte cache line holds the key sets the check reads, the
/// org id and the generation; the full table (28 × [`Effective`], with sources and locks,
/// for explain, the matrix and preview) sits behind a pointer. See `docs/decisions.md`.
///
/// ```
/// use permissions::{BuiltinRole, CompiledOrg, OrgChain, PermissionKey, ScopeRef};
/// use uuid::Uuid;
///
/// let org = CompiledOrg::compile(&OrgChain::standalone(Uuid::from_u128(1)), 7);
/// assert_eq!(org.generation(), 7);
/// let effective = org.effective(PermissionKey::UsersEditRoles);
/// assert_eq!(effective.min_role, BuiltinRole::Admin);
/// assert_eq!(effective.source, ScopeRef::Platform);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct CompiledOrg {
    sets: CheckSets,
    generation: u64,
    org_id: Uuid,
    table: Box<[Effective; PermissionKey::COUNT]>,
}

/// The serialized form (unchanged: `{org_id, generation, table}`); the check's key sets
/// are derived again on deserialization.
#[derive(Serialize)]
#[serde(rename = "CompiledOrg")]
struct CompiledOrgOut<'a> {
    org_id: Uuid,
    generation: u64,
    table: &'a [Effective; PermissionKey::COUNT],
}

#[derive(Deserialize)]
#[serde(rename = "CompiledOrg")]
struct CompiledOrgIn {
    org_id: Uuid,
    generation: u64,
    table: Box<[Effective; PermissionKey::COUNT]>,
}

impl Serialize for CompiledOrg {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CompiledOrgOut {
            org_id: self.org_id,
            generation: self.generation,
            table: &self.table,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CompiledOrg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let CompiledOrgIn {
            org_id,
            generation,
            table,
        } = CompiledOrgIn::deserialize(deserializer)?;
        Ok(Self::from_table(org_id, generation, table))
    }
}

impl CompiledOrg {
    /// Resolves every key of `chain`'s org. `generation` is opaque to this crate: the cache
    /// stamps it (e.g. the org's settings version) to detect stale tables.
    #[must_use]
    pub fn compile(chain: &OrgChain, generation: u64) -> Self {
        Self::from_table(
            chain.org_id,
            generation,
            Box::new(PermissionKey::ALL.map(|key| resolve(chain, key))),
        )
    }

    fn from_table(
        org_id: Uuid,
        generation: u64,
        table: Box<[Effective; PermissionKey::COUNT]>,
    ) -> Self {
        Self {
            sets: CheckSets::of(&table),
            generation,
            org_id,
            table,
        }
    }

    /// The org the table belongs to.
    #[must_use]
    pub const fn org_id(&self) -> Uuid {
        self.org_id
    }

    /// The generation stamped at compile time.
    #[must_use]
    pub const fn generation(&self) -> u64 {
        self.generation
    }

    /// The effective setting of `key`.
    #[must_use]
    pub fn effective(&self, key: PermissionKey) -> &Effective {
        &self.table[key.index()]
    }

    /// Every key with its effective setting, in catalog order.
    #[must_use]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (PermissionKey, &Effective)> + '_ {
        PermissionKey::ALL.into_iter().zip(self.table.iter())
    }

    /// The key sets the check reads.
    pub(crate) const fn sets(&self) -> &CheckSets {
        &self.sets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::catalog;
    use crate::role::BuiltinRole;
    use crate::scope::{ScopeRef, ScopeSettings, ScopedSetting};

    #[test]
    fn compiled_table_matches_resolve_for_every_key() {
        let mut district = ScopeSettings::new();
        district.set(
            PermissionKey::BudgetApprove,
            ScopedSetting::locked(BuiltinRole::Admin, true),
        );
        let mut org_settings = ScopeSettings::new();
        org_settings.set(
            PermissionKey::EventsView,
            ScopedSetting::new(BuiltinRole::BoardMember, false),
        );
        let chain = OrgChain::standalone(Uuid::from_u128(9))
            .with_district(Uuid::from_u128(1), district)
            .with_org_settings(org_settings);
        let compiled = CompiledOrg::compile(&chain, 3);
        assert_eq!(compiled.org_id(), chain.org_id);
        assert_eq!(compiled.iter().len(), 28);
        for (key, effective) in compiled.iter() {
            assert_eq!(*effective, resolve(&chain, key));
        }
        assert_eq!(
            compiled.effective(PermissionKey::BudgetApprove).locked_by,
            Some(ScopeRef::District(Uuid::from_u128(1)))
        );
    }

    #[test]
    fn check_sets_fold_the_table() {
        use BuiltinRole::{Admin, BoardMember, CommitteeLead, Volunteer};
        use PermissionKey::{BudgetApprove, EventsDelete, EventsView, UsersInvite};
        let district: ScopeSettings = [
            (BudgetApprove, ScopedSetting::locked(BoardMember, true)),
            (EventsDelete, ScopedSetting::locked(Admin, false)),
        ]
        .into_iter()
        .collect();
        let org_settings: ScopeSettings = [
            (EventsView, ScopedSetting::new(CommitteeLead, false)),
            (UsersInvite, ScopedSetting::locked(Volunteer, true)),
        ]
        .into_iter()
        .collect();
        let chain = OrgChain::standalone(Uuid::from_u128(9))
            .with_district(Uuid::from_u128(1), district)
            .with_org_settings(org_settings);
        let compiled = CompiledOrg::compile(&chain, 3);
        let sets = compiled.sets();
        for (key, effective) in compiled.iter() {
            assert_eq!(sets.enabled.contains(key), effective.enabled, "{key}");
            assert_eq!(
                sets.open.contains(key),
                effective.enabled && effective.locked_above().is_none(),
                "{key}"
            );
            for role in BuiltinRole::ALL {
                assert_eq!(
                    sets.reached_by(role).contains(key),
                    effective.enabled && role >= effective.min_role,
                    "{key} {role}"
                );
            }
        }
        // The org's own lock does not close the key to exceptions; a district's does.
        assert!(sets.open.contains(UsersInvite));
        assert!(!sets.open.contains(BudgetApprove));
    }

    #[test]
    fn json_keeps_its_shape_and_the_sets_are_derived_again() {
        let org_settings: ScopeSettings = [(
            PermissionKey::EventsView,
            ScopedSetting::new(BuiltinRole::BoardMember, false),
        )]
        .into_iter()
        .collect();
        let compiled = CompiledOrg::compile(
            &OrgChain::standalone(Uuid::from_u128(5)).with_org_settings(org_settings),
            8,
        );
        let json = serde_json::to_value(&compiled).expect("serialize");
        let object = json.as_object().expect("an object");
        let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["generation", "org_id", "table"]);
        assert_eq!(json["table"].as_array().map(Vec::len), Some(28));
        let back: CompiledOrg = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, compiled);
        assert_eq!(back.sets(), compiled.sets());
    }

    #[test]
    fn the_check_reads_one_cache_line() {
        assert_eq!(std::mem::size_of::<CompiledOrg>(), 64);
        assert_eq!(std::mem::align_of::<CompiledOrg>(), 64);
        assert_eq!(std::mem::size_of::<CheckSets>(), 32);
    }

    #[test]
    fn standalone_org_gets_the_catalog_defaults() {
        let compiled = CompiledOrg::compile(&OrgChain::standalone(Uuid::from_u128(2)), 0);
        for entry in catalog() {
            let effective = compiled.effective(entry.key);
            assert_eq!(effective.min_role, entry.default.min_role);
            assert_eq!(effective.enabled, entry.default.enabled);
            assert_eq!(effective.source, ScopeRef::Platform);
        }
    }
}
