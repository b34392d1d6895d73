//! Who may hand out what (spec: "Who may hand out what"): nobody can give what they
//! don't hold, and an API key carries at most what its creator holds *now*.
//!
//! "Hold" is always the check's answer for that key in that org right now
//! ([`allowed_keys`](crate::allowed_keys)), so a disabled key, a lapsed grant or a lost
//! rank counts as not held.

use std::fmt;

use time::OffsetDateTime;

use crate::check::check;
use crate::compiled::CompiledOrg;
use crate::keys::{KeySet, PermissionKey};
use crate::member::{MemberContext, MemberStatus};
use crate::role::BuiltinRole;

/// Keys an actor wanted to hand out (in a custom role, a grant, an API key or a role
/// they assign) without holding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("you do not hold {} yourself, so you cannot hand it out", KeyList(*.keys))]
pub struct NotHeld {
    /// The keys not held (never empty).
    pub keys: KeySet,
}

impl NotHeld {
    /// The keys' names, in catalog order (for API error details).
    #[must_use]
    pub fn key_names(&self) -> Vec<&'static str> {
        self.keys.iter().map(PermissionKey::as_str).collect()
    }
}

/// `a, b and c`, for messages.
struct KeyList(KeySet);

impl fmt::Display for KeyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(PermissionKey::as_str).collect();
        match names.split_last() {
            None => Ok(()),
            Some((last, [])) => f.write_str(last),
            Some((last, rest)) => write!(f, "{} and {last}", rest.join(", ")),
        }
    }
}

/// Checks that an actor who holds `held` may hand out every key of `wanted`.
///
/// # Errors
/// [`NotHeld`] naming every key of `wanted` outside `held`.
pub fn check_holds(held: KeySet, wanted: KeySet) -> Result<(), NotHeld> {
    let missing = wanted.difference(held);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(NotHeld { keys: missing })
    }
}

/// Whether an API key whose creator is `creator` (their membership in the key's org as
/// the engine sees it now; `None` if they are no longer a member) is still alive: a key
/// dies with its creator's membership or admin rights (API keys are an administrative
/// capability, which needs `admin`).
#[must_use]
pub fn api_key_alive(creator: Option<&MemberContext>) -> bool {
    creator.is_some_and(|c| {
        c.status == MemberStatus::Active && c.user_active && c.role.counts_as == BuiltinRole::Admin
    })
}

/// Whether an API key granting `granted`, created by `creator`, may use `key` in `org` at
/// `now`: the key must be alive ([`api_key_alive`]), name `key`, and its creator must hold
/// `key` now — so the org's current settings (a disabled key) bind keys as they bind
/// members, and a key never carries more than its creator holds.
#[must_use]
pub fn api_key_allows(
    org: &CompiledOrg,
    creator: Option<&MemberContext>,
    granted: KeySet,
    key: PermissionKey,
    now: OffsetDateTime,
) -> bool {
    granted.contains(key)
        && api_key_alive(creator)
        && creator.is_some_and(|c| check(org, c, key, now))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::member::RoleRef;
    use crate::scope::{OrgChain, ScopeSettings, ScopedSetting};

    const ORG: Uuid = Uuid::from_u128(0);
    const USER: Uuid = Uuid::from_u128(1);

    fn keys(list: &[PermissionKey]) -> KeySet {
        list.iter().copied().collect()
    }

    #[test]
    fn nobody_hands_out_what_they_do_not_hold() {
        use PermissionKey::*;
        let held = keys(&[UsersView, UsersEditRoles, EventsCreate]);
        assert_eq!(check_holds(held, keys(&[UsersView, EventsCreate])), Ok(()));
        assert_eq!(check_holds(held, KeySet::new()), Ok(()));
        let refused = check_holds(held, keys(&[UsersView, BudgetApprove, BudgetDelete]));
        assert_eq!(
            refused,
            Err(NotHeld {
                keys: keys(&[BudgetApprove, BudgetDelete])
            })
        );
        let Err(err) = refused else { panic!("refused") };
        assert_eq!(err.key_names(), vec!["budget.delete", "budget.approve"]);
        assert_eq!(
            err.to_string(),
            "you do not hold budget.delete and budget.approve yourself, so you cannot hand it out"
        );
        // Every key, held by nobody but an all-holding actor.
        assert!(check_holds(KeySet::new(), KeySet::all()).is_err());
        assert_eq!(check_holds(KeySet::all(), KeySet::all()), Ok(()));
    }

    fn admin() -> MemberContext {
        MemberContext::active(USER, RoleRef::builtin(BuiltinRole::Admin))
    }

    #[test]
    fn a_key_dies_with_its_creators_membership_or_admin_rights() {
        assert!(api_key_alive(Some(&admin())));
        assert!(!api_key_alive(None), "creator removed");
        assert!(!api_key_alive(Some(
            &admin().with_status(MemberStatus::Suspended)
        )));
        assert!(!api_key_alive(Some(
            &admin().with_status(MemberStatus::Removed)
        )));
        let board = MemberContext::active(USER, RoleRef::builtin(BuiltinRole::BoardMember));
        assert!(!api_key_alive(Some(&board)), "creator demoted below admin");
        let mut disabled = admin();
        disabled.user_active = false;
        assert!(!api_key_alive(Some(&disabled)));
    }

    #[test]
    fn a_key_follows_the_orgs_current_settings_and_its_grants() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let open = CompiledOrg::compile(&OrgChain::standalone(ORG), 0);
        let view = keys(&[PermissionKey::UsersView]);
        assert!(api_key_allows(
            &open,
            Some(&admin()),
            view,
            PermissionKey::UsersView,
            now
        ));
        assert!(
            !api_key_allows(&open, Some(&admin()), view, PermissionKey::UsersRemove, now),
            "only the keys it was given"
        );
        assert!(!api_key_allows(
            &open,
            None,
            view,
            PermissionKey::UsersView,
            now
        ));
        let settings: ScopeSettings = [(
            PermissionKey::UsersView,
            ScopedSetting {
                min_role: BuiltinRole::Volunteer,
                enabled: false,
                locked: false,
            },
        )]
        .into_iter()
        .collect();
        let disabled =
            CompiledOrg::compile(&OrgChain::standalone(ORG).with_org_settings(settings), 1);
        assert!(
            !api_key_allows(
                &disabled,
                Some(&admin()),
                view,
                PermissionKey::UsersView,
                now
            ),
            "a disabled key is disabled for keys too"
        );
    }
}
