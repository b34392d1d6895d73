//! Locks above an org (spec: "Locks bind exceptions too"): a key locked by the district or
//! school fixes that key for every org below — org settings cannot override it, and the
//! org's exceptions (a custom role's extra keys, direct grants) neither count nor may be
//! written for it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::keys::{KeySet, PermissionKey};
use crate::scope::{OrgChain, ScopeRef};
use crate::settings::locked_above;

/// One key locked above an org, and the district or school that locked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyLock {
    /// The locked key.
    pub key: PermissionKey,
    /// The scope that locked it.
    pub by: ScopeRef,
}

/// A write named keys that are locked above the org (`PERMISSION_LOCKED`): every one of
/// them, with who locked it. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} locked above and cannot be changed here", LockList(&self.locks))]
pub struct LockedKeys {
    locks: Vec<KeyLock>,
}

impl LockedKeys {
    /// The refusal naming `locks`; `None` when there is none (nothing refused).
    #[must_use]
    pub fn new(locks: Vec<KeyLock>) -> Option<Self> {
        let mut unique: Vec<KeyLock> = Vec::with_capacity(locks.len());
        for lock in locks {
            if !unique.iter().any(|seen| seen.key == lock.key) {
                unique.push(lock);
            }
        }
        (!unique.is_empty()).then_some(Self { locks: unique })
    }

    /// The refusal naming one locked key.
    #[must_use]
    pub fn one(key: PermissionKey, by: ScopeRef) -> Self {
        Self {
            locks: vec![KeyLock { key, by }],
        }
    }

    /// Every locked key with who locked it, each key once, in the order the write named
    /// them.
    #[must_use]
    pub fn locks(&self) -> &[KeyLock] {
        &self.locks
    }

    /// The first locked key the write named.
    #[must_use]
    pub fn first(&self) -> KeyLock {
        // Never empty by construction.
        self.locks[0]
    }

    /// The locked keys as a set.
    #[must_use]
    pub fn keys(&self) -> KeySet {
        self.locks.iter().map(|lock| lock.key).collect()
    }
}

/// `a (locked by district …) and b (locked by school …)`, for messages.
struct LockList<'a>(&'a [KeyLock]);

impl fmt::Display for LockList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = |lock: &KeyLock| format!("{} (locked by {})", lock.key, lock.by);
        match self.0.split_last() {
            None => Ok(()),
            Some((last, [])) => write!(f, "{} is", one(last)),
            Some((last, rest)) => {
                let rest: Vec<String> = rest.iter().map(one).collect();
                write!(f, "{} and {} are", rest.join(", "), one(last))
            }
        }
    }
}

/// Every key of `keys` (in catalog order) that a district or school locked for `chain`'s
/// org.
#[must_use]
pub fn locks_above(chain: &OrgChain, keys: KeySet) -> Vec<KeyLock> {
    keys.iter()
        .filter_map(|key| locked_above(chain, key).map(|by| KeyLock { key, by }))
        .collect()
}

/// Refuses org-level exceptions for keys locked above the org: a direct grant of a key,
/// or a custom role whose extra keys name it, is refused at write time when a district
/// or school locked the key (one that existed before the lock stays stored but inert —
/// [`check`](crate::check()) ignores it).
///
/// ```
/// use permissions::{refuse_locked_exceptions, BuiltinRole, OrgChain, PermissionKey, ScopeRef, ScopeSettings, ScopedSetting};
/// use uuid::Uuid;
///
/// let district = Uuid::from_u128(1);
/// let mut settings = ScopeSettings::new();
/// settings.set(PermissionKey::BudgetApprove, ScopedSetting::locked(BuiltinRole::Admin, true));
/// let chain = OrgChain::standalone(Uuid::from_u128(3)).with_district(district, settings);
///
/// let extra = [PermissionKey::BudgetApprove, PermissionKey::EventsCreate].into_iter().collect();
/// let refused = refuse_locked_exceptions(&chain, extra).unwrap_err();
/// assert_eq!(refused.locks().len(), 1);
/// assert_eq!(refused.first().by, ScopeRef::District(district));
/// assert!(refuse_locked_exceptions(&chain, [PermissionKey::EventsCreate].into_iter().collect()).is_ok());
/// ```
///
/// # Errors
/// [`LockedKeys`] naming every locked key of `keys` and who locked it.
pub fn refuse_locked_exceptions(chain: &OrgChain, keys: KeySet) -> Result<(), LockedKeys> {
    LockedKeys::new(locks_above(chain, keys)).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::role::BuiltinRole;
    use crate::scope::{ScopeSettings, ScopedSetting};

    const DISTRICT: Uuid = Uuid::from_u128(1);
    const SCHOOL: Uuid = Uuid::from_u128(2);
    const ORG: Uuid = Uuid::from_u128(3);

    fn chain() -> OrgChain {
        let district: ScopeSettings = [(
            PermissionKey::BudgetApprove,
            ScopedSetting::locked(BuiltinRole::Admin, true),
        )]
        .into_iter()
        .collect();
        let school: ScopeSettings = [
            (
                PermissionKey::EventsDelete,
                ScopedSetting::locked(BuiltinRole::BoardMember, true),
            ),
            (
                PermissionKey::EventsCreate,
                ScopedSetting::new(BuiltinRole::BoardMember, true),
            ),
        ]
        .into_iter()
        .collect();
        let org: ScopeSettings = [(
            PermissionKey::UsersRemove,
            ScopedSetting::locked(BuiltinRole::Admin, true),
        )]
        .into_iter()
        .collect();
        OrgChain::standalone(ORG)
            .with_district(DISTRICT, district)
            .with_school(SCHOOL, school)
            .with_org_settings(org)
    }

    #[test]
    fn every_locked_key_is_named_with_who_locked_it() {
        use PermissionKey::*;
        let keys = [BudgetApprove, EventsDelete, EventsCreate, UsersRemove]
            .into_iter()
            .collect();
        let refused = refuse_locked_exceptions(&chain(), keys).expect_err("locked");
        assert_eq!(
            refused.locks(),
            [
                KeyLock {
                    key: BudgetApprove,
                    by: ScopeRef::District(DISTRICT)
                },
                KeyLock {
                    key: EventsDelete,
                    by: ScopeRef::School(SCHOOL)
                },
            ]
        );
        assert_eq!(refused.first().key, BudgetApprove);
        assert_eq!(
            refused.to_string(),
            format!(
                "budget.approve (locked by district {DISTRICT}) and events.delete (locked by school {SCHOOL}) are locked above and cannot be changed here"
            )
        );
        // An unlocked school setting and the org's own lock bind nothing.
        assert_eq!(
            refuse_locked_exceptions(&chain(), [EventsCreate, UsersRemove].into_iter().collect()),
            Ok(())
        );
    }

    #[test]
    fn a_refusal_is_never_empty_and_names_each_key_once() {
        assert_eq!(LockedKeys::new(Vec::new()), None);
        let lock = KeyLock {
            key: PermissionKey::BudgetView,
            by: ScopeRef::District(DISTRICT),
        };
        let refused = LockedKeys::new(vec![lock, lock]).expect("one");
        assert_eq!(refused.locks(), [lock]);
        assert_eq!(refused, LockedKeys::one(lock.key, lock.by));
        assert_eq!(
            refused.to_string(),
            format!(
                "budget.view (locked by district {DISTRICT}) is locked above and cannot be changed here"
            )
        );
    }
}
