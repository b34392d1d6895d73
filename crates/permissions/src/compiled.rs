//! [`CompiledOrg`]: the resolved table of one org, built once and read by every check.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys::PermissionKey;
use crate::resolve::{Effective, resolve};
use crate::scope::OrgChain;

/// The effective setting of all 28 keys for one org, resolved once from its [`OrgChain`].
///
/// Immutable: a settings change produces a new `CompiledOrg` (with a new `generation`, which
/// caches use to tell a stale table from a fresh one). Looking a key up is one array index.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledOrg {
    org_id: Uuid,
    generation: u64,
    table: [Effective; PermissionKey::COUNT],
}

impl CompiledOrg {
    /// Resolves every key of `chain`'s org. `generation` is opaque to this crate: the cache
    /// stamps it (e.g. the org's settings version) to detect stale tables.
    #[must_use]
    pub fn compile(chain: &OrgChain, generation: u64) -> Self {
        Self {
            org_id: chain.org_id,
            generation,
            table: PermissionKey::ALL.map(|key| resolve(chain, key)),
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
    pub const fn effective(&self, key: PermissionKey) -> &Effective {
        &self.table[key.index()]
    }

    /// Every key with its effective setting, in catalog order.
    #[must_use]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (PermissionKey, &Effective)> + '_ {
        PermissionKey::ALL.into_iter().zip(&self.table)
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
