//! The check: may this member use this key in this org, now?

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::compiled::CompiledOrg;
use crate::keys::{KeySet, PermissionKey};
use crate::member::{MemberContext, MemberStatus};
use crate::resolve::Effective;

/// Why a check allowed or denied, in one word. Denials are reported in the order the
/// formula tests them (membership, user, enabled, role); allowances in the order role rank,
/// extra key, direct grant.
///
/// A denial with `InsufficientRole` may still have an extra key or a grant of the key that
/// does not count because a district or school locked the key; [`explain`](crate::explain())
/// says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionReason {
    /// Allowed: the role's rank reaches the minimum role.
    RoleRank,
    /// Allowed: the member's custom role carries the key.
    ExtraKey,
    /// Allowed: the member holds an unexpired direct grant of the key.
    DirectGrant,
    /// Denied: the membership is invited, suspended or removed.
    MembershipInactive,
    /// Denied: the user account is disabled or deleted.
    UserInactive,
    /// Denied: the key is disabled for the org (no role, extra key or grant beats that).
    KeyDisabled,
    /// Denied: the role ranks too low and no extra key or active grant applies (none
    /// exists, or the key is locked above the org, which makes them inert).
    InsufficientRole,
}

impl DecisionReason {
    /// Whether this reason is an allowance.
    #[must_use]
    pub const fn is_allowed(self) -> bool {
        matches!(self, Self::RoleRank | Self::ExtraKey | Self::DirectGrant)
    }
}

/// Whether `member` may use `key` in `org` at `now`:
///
/// ```text
/// e = effective(org, key)        -- e.locked_above: a district or school locked the key
/// membership is active and the user is active
/// and e.enabled
/// and ( rank(role) >= rank(e.min_role)
///       or ( not e.locked_above
///            and ( key in role.extra_keys
///                  or an active direct grant of key exists ) ) )
/// ```
///
/// A grant is active when `starts_at <= now < expires_at`.
///
/// Allocation-free and, short of a timed grant, branch-free: the org's key sets (one cache
/// line of [`CompiledOrg`]) and the member's (one cache line of [`MemberContext`]) are
/// combined with a few bit operations; only a member holding a timed grant of an open key
/// scans their timed grants. `member` must be a member of `org`; a caller without a
/// membership is denied before this is called.
///
/// ```
/// use permissions::{check, BuiltinRole, CompiledOrg, MemberContext, MemberStatus, OrgChain, PermissionKey, RoleRef};
/// use time::OffsetDateTime;
/// use uuid::Uuid;
///
/// let org = CompiledOrg::compile(&OrgChain::standalone(Uuid::from_u128(1)), 0);
/// let lead = MemberContext::active(Uuid::from_u128(2), RoleRef::builtin(BuiltinRole::CommitteeLead));
/// let now = OffsetDateTime::now_utc();
///
/// assert!(check(&org, &lead, PermissionKey::EventsCreate, now));
/// assert!(!check(&org, &lead, PermissionKey::BudgetApprove, now));
/// let suspended = lead.with_status(MemberStatus::Suspended);
/// assert!(!check(&org, &suspended, PermissionKey::EventsCreate, now));
/// ```
#[must_use]
#[inline]
pub fn check(
    org: &CompiledOrg,
    member: &MemberContext,
    key: PermissionKey,
    now: OffsetDateTime,
) -> bool {
    let sets = org.sets();
    let grants = &member.grants;
    // `&` rather than `&&`: both sides are plain loads, no branch needed.
    let active = (member.status == MemberStatus::Active) & member.user_active;
    // Exceptions (extra keys, permanent grants) count only for open keys: enabled and not
    // locked above the org. `reached_by` holds enabled keys only.
    let (permanent, timed) = grants.key_sets();
    let exceptions = member.role.extra_keys.union(permanent);
    let allowed = sets
        .reached_by(member.role.counts_as)
        .union(sets.open.intersection(exceptions))
        .contains(key);
    if !allowed && sets.open.intersection(timed).contains(key) {
        // Rare: the answer depends on a timed grant's window.
        return active && grants.holds_timed(key, now);
    }
    active & allowed
}

/// The check's answer together with its short reason. `decide(..).is_allowed()` is
/// [`check`].
#[must_use]
pub fn decide(
    org: &CompiledOrg,
    member: &MemberContext,
    key: PermissionKey,
    now: OffsetDateTime,
) -> DecisionReason {
    let sets = org.sets();
    reason(
        member,
        key,
        now,
        sets.enabled.contains(key),
        sets.reached_by(member.role.counts_as).contains(key),
        sets.open.contains(key),
    )
}

/// The check formula against one effective setting, for [`explain`](crate::explain()),
/// which resolves the key itself: the same reasons as [`decide`] on the compiled table.
pub(crate) fn decide_with(
    effective: &Effective,
    member: &MemberContext,
    key: PermissionKey,
    now: OffsetDateTime,
) -> DecisionReason {
    reason(
        member,
        key,
        now,
        effective.enabled,
        member.role.counts_as >= effective.min_role,
        effective.locked_above().is_none(),
    )
}

/// The formula, in the order of its reasons, given what the org says about the key:
/// `enabled`, whether the member's rank `reaches` the minimum role, and whether the key is
/// `open` (not locked above the org, so exceptions count).
fn reason(
    member: &MemberContext,
    key: PermissionKey,
    now: OffsetDateTime,
    enabled: bool,
    reaches: bool,
    open: bool,
) -> DecisionReason {
    if member.status != MemberStatus::Active {
        DecisionReason::MembershipInactive
    } else if !member.user_active {
        DecisionReason::UserInactive
    } else if !enabled {
        DecisionReason::KeyDisabled
    } else if reaches {
        DecisionReason::RoleRank
    } else if !open {
        // Locks bind exceptions too: extra keys and grants do not count.
        DecisionReason::InsufficientRole
    } else if member.role.extra_keys.contains(key) {
        DecisionReason::ExtraKey
    } else if member.grants.holds(key, now) {
        DecisionReason::DirectGrant
    } else {
        DecisionReason::InsufficientRole
    }
}

/// Batch check, many keys for one member: the set of keys `member` may use in `org` at `now`.
#[must_use]
pub fn allowed_keys(org: &CompiledOrg, member: &MemberContext, now: OffsetDateTime) -> KeySet {
    PermissionKey::ALL
        .into_iter()
        .filter(|&key| check(org, member, key, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::member::{Grant, RoleRef};
    use crate::role::BuiltinRole;
    use crate::scope::{OrgChain, ScopeSettings, ScopedSetting};

    const NOW: OffsetDateTime = datetime!(2025-03-01 9:00 UTC);
    const ORG: Uuid = Uuid::from_u128(0x0);
    const USER: Uuid = Uuid::from_u128(0x1);

    fn org_with(key: PermissionKey, setting: ScopedSetting) -> CompiledOrg {
        let settings: ScopeSettings = [(key, setting)].into_iter().collect();
        CompiledOrg::compile(&OrgChain::standalone(ORG).with_org_settings(settings), 1)
    }

    fn member(role: BuiltinRole) -> MemberContext {
        MemberContext::active(USER, RoleRef::builtin(role))
    }

    fn grant(key: PermissionKey, expires_at: Option<OffsetDateTime>) -> Grant {
        Grant {
            expires_at,
            ..Grant::permanent(key)
        }
    }

    #[test]
    fn rank_at_or_above_min_role_allows() {
        let org = CompiledOrg::compile(&OrgChain::standalone(ORG), 0);
        let key = PermissionKey::BudgetApprove; // board_member by default
        assert!(!check(&org, &member(BuiltinRole::CommitteeLead), key, NOW));
        assert!(check(&org, &member(BuiltinRole::BoardMember), key, NOW));
        assert!(check(&org, &member(BuiltinRole::Admin), key, NOW));
        assert_eq!(
            decide(&org, &member(BuiltinRole::Volunteer), key, NOW),
            DecisionReason::InsufficientRole
        );
    }

    #[test]
    fn disabled_beats_grant_extra_key_and_rank() {
        let key = PermissionKey::FundraisingCreate;
        let org = org_with(key, ScopedSetting::new(BuiltinRole::Volunteer, false));
        let admin = member(BuiltinRole::Admin);
        assert_eq!(decide(&org, &admin, key, NOW), DecisionReason::KeyDisabled);
        let granted = member(BuiltinRole::Volunteer).with_grants(vec![grant(key, None)]);
        assert!(!check(&org, &granted, key, NOW));
        let mut extra = member(BuiltinRole::Volunteer);
        extra.role = RoleRef::custom(
            "Fundraiser",
            BuiltinRole::Volunteer,
            [key].into_iter().collect(),
        );
        assert!(!check(&org, &extra, key, NOW));
    }

    #[test]
    fn expired_grant_denies_and_unexpired_grant_allows() {
        let org = CompiledOrg::compile(&OrgChain::standalone(ORG), 0);
        let key = PermissionKey::UsersRemove;
        let expired = member(BuiltinRole::Volunteer)
            .with_grants(vec![grant(key, Some(datetime!(2025-02-28 0:00 UTC)))]);
        assert_eq!(
            decide(&org, &expired, key, NOW),
            DecisionReason::InsufficientRole
        );
        let at_expiry = member(BuiltinRole::Volunteer).with_grants(vec![grant(key, Some(NOW))]);
        assert!(!check(&org, &at_expiry, key, NOW));
        let unexpired = member(BuiltinRole::Volunteer)
            .with_grants(vec![grant(key, Some(datetime!(2025-03-02 0:00 UTC)))]);
        assert_eq!(
            decide(&org, &unexpired, key, NOW),
            DecisionReason::DirectGrant
        );
        let permanent = member(BuiltinRole::Volunteer).with_grants(vec![grant(key, None)]);
        assert!(check(&org, &permanent, key, NOW));
        let other_key = member(BuiltinRole::Volunteer)
            .with_grants(vec![grant(PermissionKey::UsersInvite, None)]);
        assert!(!check(&org, &other_key, key, NOW));
    }

    #[test]
    fn suspended_removed_invited_or_disabled_user_is_denied() {
        let org = CompiledOrg::compile(&OrgChain::standalone(ORG), 0);
        let key = PermissionKey::EventsView;
        let admin = member(BuiltinRole::Admin).with_grants(vec![grant(key, None)]);
        assert!(check(&org, &admin, key, NOW));
        for status in [
            MemberStatus::Suspended,
            MemberStatus::Removed,
            MemberStatus::Invited,
        ] {
            let inactive = admin.clone().with_status(status);
            assert_eq!(
                decide(&org, &inactive, key, NOW),
                DecisionReason::MembershipInactive
            );
        }
        let mut disabled_user = admin;
        disabled_user.user_active = false;
        assert_eq!(
            decide(&org, &disabled_user, key, NOW),
            DecisionReason::UserInactive
        );
    }

    #[test]
    fn custom_role_counts_as_its_rank_and_holds_its_extra_keys() {
        let org = CompiledOrg::compile(&OrgChain::standalone(ORG), 0);
        let treasurer = MemberContext::active(
            USER,
            RoleRef::custom(
                "Treasurer",
                BuiltinRole::CommitteeLead,
                [PermissionKey::BudgetApprove].into_iter().collect(),
            ),
        );
        assert_eq!(
            decide(&org, &treasurer, PermissionKey::BudgetCreate, NOW),
            DecisionReason::RoleRank
        );
        assert_eq!(
            decide(&org, &treasurer, PermissionKey::BudgetApprove, NOW),
            DecisionReason::ExtraKey
        );
        assert!(!check(&org, &treasurer, PermissionKey::BudgetDelete, NOW));
    }

    #[test]
    fn a_lock_above_makes_extra_keys_and_grants_inert_but_not_rank() {
        use crate::scope::ScopeRef;
        let key = PermissionKey::BudgetApprove;
        let district = Uuid::from_u128(0xd);
        let locked: ScopeSettings = [(key, ScopedSetting::locked(BuiltinRole::BoardMember, true))]
            .into_iter()
            .collect();
        let chain = OrgChain::standalone(ORG).with_district(district, locked);
        let org = CompiledOrg::compile(&chain, 1);
        assert_eq!(
            org.effective(key).locked_above(),
            Some(ScopeRef::District(district))
        );
        let granted = member(BuiltinRole::Volunteer).with_grants(vec![grant(key, None)]);
        assert_eq!(
            decide(&org, &granted, key, NOW),
            DecisionReason::InsufficientRole
        );
        let mut extra = member(BuiltinRole::Volunteer);
        extra.role = RoleRef::custom(
            "Treasurer",
            BuiltinRole::Volunteer,
            [key].into_iter().collect(),
        );
        assert!(!check(&org, &extra, key, NOW));
        assert!(
            check(&org, &member(BuiltinRole::BoardMember), key, NOW),
            "rank still counts"
        );
        // The same exceptions count where nothing above locks the key, and under the
        // org's own lock.
        let own_lock: ScopeSettings =
            [(key, ScopedSetting::locked(BuiltinRole::BoardMember, true))]
                .into_iter()
                .collect();
        let org = CompiledOrg::compile(&OrgChain::standalone(ORG).with_org_settings(own_lock), 1);
        assert_eq!(org.effective(key).locked_above(), None);
        assert_eq!(
            decide(&org, &granted, key, NOW),
            DecisionReason::DirectGrant
        );
        assert_eq!(decide(&org, &extra, key, NOW), DecisionReason::ExtraKey);
    }

    #[test]
    fn a_grant_counts_from_its_start_until_its_expiry() {
        let org = CompiledOrg::compile(&OrgChain::standalone(ORG), 0);
        let key = PermissionKey::UsersRemove;
        let window = |starts_at, expires_at| {
            member(BuiltinRole::Volunteer).with_grants(vec![Grant {
                starts_at,
                expires_at,
                ..Grant::permanent(key)
            }])
        };
        let later = datetime!(2025-03-02 0:00 UTC);
        assert!(
            !check(&org, &window(Some(later), None), key, NOW),
            "not yet"
        );
        assert!(
            check(&org, &window(Some(NOW), None), key, NOW),
            "from exactly now"
        );
        assert!(check(&org, &window(Some(NOW), Some(later)), key, NOW));
        assert!(
            !check(&org, &window(Some(NOW), Some(NOW)), key, NOW),
            "empty window"
        );
    }

    #[test]
    fn allowed_keys_collects_every_allowed_key() {
        let org = CompiledOrg::compile(&OrgChain::standalone(ORG), 0);
        assert_eq!(
            allowed_keys(&org, &member(BuiltinRole::Admin), NOW),
            KeySet::all()
        );
        let volunteer = allowed_keys(&org, &member(BuiltinRole::Volunteer), NOW);
        assert!(volunteer.iter().all(|key| key.as_str().ends_with(".view")));
        assert_eq!(volunteer.len(), 7);
    }
}
