//! Who may hand out what (spec: "Who may hand out what"): nobody can give what they
//! don't hold, and an API key carries at most what its creator holds *now*.
//!
//! "Hold" is always the check's answer for that key in that org right now, so a disabled
//! key or a lost rank counts as not held. What one may hand *on* is narrower: a key held
//! only through a direct grant is the grantee's, for the grant's time — it is not passed
//! into a custom role, a role assignment, a grant or an API key, where it would outlive
//! the grant ([`keys_to_hand_out`]).

use std::fmt;

use time::OffsetDateTime;

use crate::check::{DecisionReason, check, decide};
use crate::compiled::CompiledOrg;
use crate::keys::{KeySet, PermissionKey};
use crate::member::{MemberContext, MemberStatus};
use crate::role::BuiltinRole;

/// Keys an actor wanted to hand out (in a custom role, a grant, an API key or a role
/// they assign) without holding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "you cannot hand out {}: nobody gives what they don't hold through their own role",
    KeyList(*.keys)
)]
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

/// The keys `member` may hand out in `org` at `now`: those the check allows through the
/// member's rank or role (its extra keys), not those held only through a direct grant —
/// a grant is personal and may expire or be revoked, and handing it on (into a role one
/// then takes, say) would keep it after the grant is gone.
#[must_use]
pub fn keys_to_hand_out(org: &CompiledOrg, member: &MemberContext, now: OffsetDateTime) -> KeySet {
    PermissionKey::ALL
        .into_iter()
        .filter(|&key| {
            matches!(
                decide(org, member, key, now),
                DecisionReason::RoleRank | DecisionReason::ExtraKey
            )
        })
        .collect()
}

/// Checks that an actor who may hand out `held` ([`keys_to_hand_out`]) may hand out every
/// key of `wanted`.
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

/// A grant whose expiry is not after its creation: it would never be active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the grant would expire at {expires_at}, which is not after now")]
pub struct GrantExpired {
    /// The expiry asked for.
    pub expires_at: OffsetDateTime,
}

/// Checks a new grant's expiry: absent (permanent) or after `now`. A grant that is
/// already expired would be listed as if it were active and never count.
///
/// # Errors
/// [`GrantExpired`].
pub fn check_grant_expiry(
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<(), GrantExpired> {
    match expires_at {
        Some(expires_at) if expires_at <= now => Err(GrantExpired { expires_at }),
        _ => Ok(()),
    }
}

/// A new grant's time window that would never (or no longer) be active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantWindowError {
    /// The expiry is not after now ([`GrantExpired`]).
    #[error(transparent)]
    Expired(#[from] GrantExpired),
    /// The expiry is not after the start.
    #[error("the grant would expire at {expires_at}, which is not after its start at {starts_at}")]
    EndsBeforeStart {
        /// The start asked for.
        starts_at: OffsetDateTime,
        /// The expiry asked for.
        expires_at: OffsetDateTime,
    },
}

/// Checks a new grant's window `starts_at <= now < expires_at`: the expiry, when given,
/// must be after now ([`check_grant_expiry`]) and after the start. A start in the past or
/// the future is fine (a future start makes the grant pending until then).
///
/// # Errors
/// [`GrantWindowError`].
pub fn check_grant_window(
    starts_at: Option<OffsetDateTime>,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<(), GrantWindowError> {
    check_grant_expiry(expires_at, now)?;
    match (starts_at, expires_at) {
        (Some(starts_at), Some(expires_at)) if expires_at <= starts_at => {
            Err(GrantWindowError::EndsBeforeStart {
                starts_at,
                expires_at,
            })
        }
        _ => Ok(()),
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
            "you cannot hand out budget.delete and budget.approve: nobody gives what they don't hold through their own role"
        );
        // Every key, held by nobody but an all-holding actor.
        assert!(check_holds(KeySet::new(), KeySet::all()).is_err());
        assert_eq!(check_holds(KeySet::all(), KeySet::all()), Ok(()));
    }

    #[test]
    fn a_granted_key_is_held_but_not_handed_on() {
        use crate::member::Grant;
        let now = OffsetDateTime::UNIX_EPOCH;
        let org = CompiledOrg::compile(&OrgChain::standalone(ORG), 0);
        let lead = MemberContext::active(
            USER,
            RoleRef::custom(
                "Helper",
                BuiltinRole::CommitteeLead,
                [PermissionKey::BudgetView].into_iter().collect(),
            ),
        )
        .with_grants(vec![Grant::permanent(PermissionKey::UsersEditRoles)]);
        assert!(check(&org, &lead, PermissionKey::UsersEditRoles, now));
        let mine = keys_to_hand_out(&org, &lead, now);
        assert!(!mine.contains(PermissionKey::UsersEditRoles), "granted");
        assert!(mine.contains(PermissionKey::EventsCreate), "by rank");
        assert!(mine.contains(PermissionKey::BudgetView), "extra key");
        assert!(!mine.contains(PermissionKey::BudgetApprove), "not held");
        let admin = MemberContext::active(USER, RoleRef::builtin(BuiltinRole::Admin));
        assert_eq!(keys_to_hand_out(&org, &admin, now), KeySet::all());
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

#[cfg(test)]
mod grant_expiry_tests {
    use super::*;

    #[test]
    fn a_grant_must_expire_after_now() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        assert_eq!(check_grant_expiry(None, now), Ok(()));
        assert_eq!(
            check_grant_expiry(Some(now + time::Duration::SECOND), now),
            Ok(())
        );
        assert_eq!(
            check_grant_expiry(Some(now), now),
            Err(GrantExpired { expires_at: now })
        );
        assert!(check_grant_expiry(Some(now - time::Duration::days(1)), now).is_err());
    }

    #[test]
    fn a_grant_window_must_end_after_now_and_after_its_start() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let hour = time::Duration::HOUR;
        assert_eq!(check_grant_window(None, None, now), Ok(()));
        assert_eq!(check_grant_window(Some(now + hour), None, now), Ok(()));
        assert_eq!(
            check_grant_window(Some(now - hour), Some(now + hour), now),
            Ok(())
        );
        assert_eq!(
            check_grant_window(Some(now + hour), Some(now + 2 * hour), now),
            Ok(())
        );
        assert_eq!(
            check_grant_window(Some(now + 2 * hour), Some(now + hour), now),
            Err(GrantWindowError::EndsBeforeStart {
                starts_at: now + 2 * hour,
                expires_at: now + hour
            })
        );
        assert_eq!(
            check_grant_window(Some(now - 2 * hour), Some(now - hour), now),
            Err(GrantWindowError::Expired(GrantExpired {
                expires_at: now - hour
            }))
        );
    }
}
