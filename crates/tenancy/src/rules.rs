//! The invariants of membership changes, as pure functions every path (the REST routes,
//! bulk changes, imports, jobs) calls before anything is written.
//!
//! "Who may hand out what" (spec): nobody can give what they don't hold. An actor may
//! assign a role only at or below their own rank, and only if they hold every extra key
//! it carries; may set a member's term end, status or role only for members below their
//! own rank (admins: any member, but the org keeps an active admin); may lower but never
//! raise their own role, status or term. "Hold" is the permission engine's check for the
//! key in the org right now, through the actor's rank or role (a key granted directly is
//! not handed on: [`permissions::keys_to_hand_out`]); callers pass that set.

use permissions::{BuiltinRole, KeySet, NotHeld};
use time::OffsetDateTime;

use crate::{Membership, MembershipStatus, RoleAssignment};

/// Why a membership change (role, status, term, profile, removal) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleChangeRefused {
    /// Nobody raises their own role (or clears or extends their own term end).
    #[error("you cannot raise your own role")]
    SelfEscalation,
    /// Nobody clears or extends their own term end (it would keep their role longer).
    #[error("you cannot clear or extend your own term end")]
    OwnTermExtended,
    /// Nobody assigns a role ranking above their own.
    #[error("you cannot assign a role above your own ({actor})")]
    AboveOwnRank {
        /// The actor's rank.
        actor: BuiltinRole,
    },
    /// Nobody gives keys they don't hold (a custom role's extra keys, a grant).
    #[error(transparent)]
    KeysNotHeld(#[from] NotHeld),
    /// Nobody changes the profile of (or removes) someone ranking above them.
    #[error("you cannot change a member ranking above you")]
    TargetOutranksActor,
    /// Role, status and term of a member are changed only by someone ranking above
    /// them (or by an admin).
    #[error("you can change the role, status or term of members ranking below you only")]
    NotBelowActor,
    /// The org must keep at least one active admin.
    #[error("the organization must keep at least one active admin")]
    LastAdmin,
    /// A member's account belongs to other orgs too: only its owner changes it.
    #[error("this member's account belongs to other organizations too: only its owner changes it")]
    SharedAccount,
    /// One's own sign-in address changes through the link that proves the new one.
    #[error(
        "change your own e-mail address with POST /api/v2/me/email: a link proves the new address"
    )]
    OwnEmail,
    /// Another member's sign-in address is changed only by an admin, and only while
    /// its owner has not proven it.
    #[error(
        "only an admin changes another member's e-mail address, and only while its owner has not proven it"
    )]
    EmailNotEditable,
    /// The custom role has as many holders as it allows.
    #[error("the role {role} already has its maximum of {max} holder(s)")]
    RoleFull {
        /// Role name.
        role: String,
        /// Its limit.
        max: u32,
    },
}

/// The new role of a [`MemberChange`].
#[derive(Debug, Clone, Copy)]
pub struct NewRole<'a> {
    /// The role.
    pub role: &'a RoleAssignment,
    /// `(current holders, maximum)` if it is a custom role with a maximum.
    pub holders: Option<(u64, u32)>,
}

/// What a membership change touches.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemberChange<'a> {
    /// A new role.
    pub role: Option<NewRole<'a>>,
    /// A new status.
    pub status: Option<MembershipStatus>,
    /// A new term end (`Some(None)` clears it).
    pub role_ends_at: Option<Option<OffsetDateTime>>,
    /// Whether profile data (committee, children) changes.
    pub profile: bool,
}

impl MemberChange<'_> {
    /// Whether role, status or term change (the rank-guarded part).
    #[must_use]
    pub const fn touches_standing(&self) -> bool {
        self.role.is_some() || self.status.is_some() || self.role_ends_at.is_some()
    }

    /// Whether the change could leave the target without an admin's standing (a new
    /// role below admin, or a status other than active): only then does
    /// [`check_member_change`] read the org's count of active admins.
    #[must_use]
    pub fn may_end_admin_standing(&self) -> bool {
        self.role
            .is_some_and(|new| new.role.rank() != BuiltinRole::Admin)
            || self
                .status
                .is_some_and(|status| status != MembershipStatus::Active)
    }
}

/// Checks that `actor`, holding `actor_holds` now, may make `change` to `target`.
///
/// `active_admins` is the org's current number of active admins; it is read only when
/// [`MemberChange::may_end_admin_standing`] (a caller may skip counting otherwise). This
/// is the one check of every membership change: single and bulk updates alike.
///
/// # Errors
/// The first rule the change breaks.
pub fn check_member_change(
    actor: &Membership,
    actor_holds: KeySet,
    target: &Membership,
    change: &MemberChange<'_>,
    active_admins: u64,
) -> Result<(), RoleChangeRefused> {
    if change.profile {
        check_profile_edit(actor, target)?;
    }
    if !change.touches_standing() {
        return Ok(());
    }
    let own = actor.user_id == target.user_id;
    if own {
        check_own_standing(target, change)?;
    } else if actor.role.rank() != BuiltinRole::Admin && target.role.rank() >= actor.role.rank() {
        return Err(RoleChangeRefused::NotBelowActor);
    }
    if let Some(new) = change.role {
        check_assignable_role(actor, new.role, actor_holds)?;
    }
    if change.may_end_admin_standing() {
        check_last_admin(target, active_admins)?;
    }
    if let Some(NewRole {
        role,
        holders: Some((current, max)),
    }) = change.role
        && &target.role != role
        && current >= u64::from(max)
    {
        return Err(RoleChangeRefused::RoleFull {
            role: role.name().to_owned(),
            max,
        });
    }
    Ok(())
}

/// One's own role, status and term may go down, never up: no higher rank, no clearing
/// or extending the term end. (Keys the new role carries are checked as for anyone.)
fn check_own_standing(me: &Membership, change: &MemberChange<'_>) -> Result<(), RoleChangeRefused> {
    if change
        .role
        .is_some_and(|new| new.role.rank() > me.role.rank())
    {
        return Err(RoleChangeRefused::SelfEscalation);
    }
    if change.status.is_some_and(|s| s == MembershipStatus::Active)
        && me.status != MembershipStatus::Active
    {
        return Err(RoleChangeRefused::SelfEscalation);
    }
    match (change.role_ends_at, me.role_ends_at) {
        (None, _) | (Some(None), None) => Ok(()),
        (Some(Some(new)), current) if current.is_none_or(|c| new <= c) => Ok(()),
        _ => Err(RoleChangeRefused::OwnTermExtended),
    }
}

/// Checks that `actor`, holding `actor_holds` now, may give `role` to someone (an update,
/// an added or imported member, an invitation, a restore): at or below their own rank,
/// and only with extra keys they hold. Taking a role oneself is the same check: a role
/// carrying keys one doesn't hold is refused.
///
/// # Errors
/// [`RoleChangeRefused::AboveOwnRank`] or [`RoleChangeRefused::KeysNotHeld`].
pub fn check_assignable_role(
    actor: &Membership,
    role: &RoleAssignment,
    actor_holds: KeySet,
) -> Result<(), RoleChangeRefused> {
    check_rank_assignable(actor.role.rank(), role.rank())?;
    if let RoleAssignment::Custom { extra_keys, .. } = role {
        permissions::check_holds(actor_holds, *extra_keys)?;
    }
    Ok(())
}

/// The rank part of [`check_assignable_role`], for callers that know only ranks (an
/// import's dry run, which validates rows before the role's keys are looked at).
///
/// # Errors
/// [`RoleChangeRefused::AboveOwnRank`].
pub fn check_rank_assignable(
    actor_rank: BuiltinRole,
    role_rank: BuiltinRole,
) -> Result<(), RoleChangeRefused> {
    if role_rank > actor_rank {
        return Err(RoleChangeRefused::AboveOwnRank { actor: actor_rank });
    }
    Ok(())
}

/// Checks that an actor of `actor_rank`, holding `actor_holds` now, may define (create or edit) a custom
/// role counting as `counts_as` with `extra_keys`: no rank above their own, no key they
/// don't hold.
///
/// # Errors
/// [`RoleChangeRefused::AboveOwnRank`] or [`RoleChangeRefused::KeysNotHeld`].
pub fn check_role_definition(
    actor_rank: BuiltinRole,
    actor_holds: KeySet,
    counts_as: BuiltinRole,
    extra_keys: KeySet,
) -> Result<(), RoleChangeRefused> {
    check_rank_assignable(actor_rank, counts_as)?;
    permissions::check_holds(actor_holds, extra_keys)?;
    Ok(())
}

/// A custom role's definition as "who may hand out what" sees it: the rank it counts as
/// and the extra keys it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleDefinition {
    /// The built-in rank it counts as.
    pub counts_as: BuiltinRole,
    /// Keys its holders always hold.
    pub extra_keys: KeySet,
}

/// Checks that an actor of `actor_rank`, holding `actor_holds` now, may change a custom
/// role from `before` to `after`: both definitions must be within their reach
/// ([`check_role_definition`]). Nobody edits (or deletes: pass the same definition
/// twice) a role they could not have created, so a role carrying a key one does not
/// hold, or ranking above one's own, is out of one's hands as a whole.
///
/// # Errors
/// [`RoleChangeRefused::AboveOwnRank`] or [`RoleChangeRefused::KeysNotHeld`] (naming
/// the keys of either definition the actor does not hold).
pub fn check_role_edit(
    actor_rank: BuiltinRole,
    actor_holds: KeySet,
    before: RoleDefinition,
    after: RoleDefinition,
) -> Result<(), RoleChangeRefused> {
    check_rank_assignable(actor_rank, before.counts_as)?;
    check_rank_assignable(actor_rank, after.counts_as)?;
    permissions::check_holds(actor_holds, before.extra_keys.union(after.extra_keys))?;
    Ok(())
}

/// Checks that re-ranking a custom role from `before` to `after` leaves the org an
/// active admin: when the role stops counting as admin, its active holders stop being
/// admins, so at least one active admin must hold another role
/// (`active_admins_outside`).
///
/// # Errors
/// [`RoleChangeRefused::LastAdmin`].
pub fn check_role_rerank(
    before: BuiltinRole,
    after: BuiltinRole,
    active_admins_outside: u64,
) -> Result<(), RoleChangeRefused> {
    if before == BuiltinRole::Admin && after != BuiltinRole::Admin && active_admins_outside == 0 {
        return Err(RoleChangeRefused::LastAdmin);
    }
    Ok(())
}

/// Checks that `actor` may edit `target`'s profile (committee, children): their own
/// always, someone else's only if that member does not rank above them.
///
/// # Errors
/// [`RoleChangeRefused::TargetOutranksActor`].
pub fn check_profile_edit(
    actor: &Membership,
    target: &Membership,
) -> Result<(), RoleChangeRefused> {
    if actor.user_id != target.user_id && target.role.rank() > actor.role.rank() {
        return Err(RoleChangeRefused::TargetOutranksActor);
    }
    Ok(())
}

/// What an account edit through an org touches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountEdit {
    /// Names or phone change.
    pub profile: bool,
    /// The sign-in address changes.
    pub email: bool,
}

/// Checks that `actor` may change `target`'s account (names, phone, e-mail) through the
/// org. One's own names and phone: always. Someone else's: only for members not ranking
/// above the actor ([`check_profile_edit`]) whose account belongs to this org alone
/// (`other_orgs`: the other orgs it is a member of) — an org edits only what is its
/// own to keep right. A sign-in address is the key to the account: one's own changes
/// through the link that proves the new one (not here), someone else's only by an
/// admin and only while its owner has not proven it (`email_verified`) — a typo at
/// registration, not a takeover.
///
/// # Errors
/// [`RoleChangeRefused::OwnEmail`], [`RoleChangeRefused::TargetOutranksActor`],
/// [`RoleChangeRefused::SharedAccount`] or [`RoleChangeRefused::EmailNotEditable`].
pub fn check_account_edit(
    actor: &Membership,
    target: &Membership,
    other_orgs: u64,
    email_verified: bool,
    edit: AccountEdit,
) -> Result<(), RoleChangeRefused> {
    if actor.user_id == target.user_id {
        return if edit.email {
            Err(RoleChangeRefused::OwnEmail)
        } else {
            Ok(())
        };
    }
    if !edit.profile && !edit.email {
        return Ok(());
    }
    check_profile_edit(actor, target)?;
    if other_orgs > 0 {
        return Err(RoleChangeRefused::SharedAccount);
    }
    if edit.email && (actor.role.rank() != BuiltinRole::Admin || email_verified) {
        return Err(RoleChangeRefused::EmailNotEditable);
    }
    Ok(())
}

/// Checks that `actor` may remove `target`: oneself (leaving), anyone ranking below,
/// anyone for an admin; the org keeps an active admin.
///
/// # Errors
/// [`RoleChangeRefused::NotBelowActor`] or [`RoleChangeRefused::LastAdmin`].
pub fn check_member_removal(
    actor: &Membership,
    target: &Membership,
    active_admins: u64,
) -> Result<(), RoleChangeRefused> {
    if actor.user_id != target.user_id
        && actor.role.rank() != BuiltinRole::Admin
        && target.role.rank() >= actor.role.rank()
    {
        return Err(RoleChangeRefused::NotBelowActor);
    }
    check_last_admin(target, active_admins)
}

/// Checks that `target` may stop being an active admin (demoted, suspended, removed,
/// term ended): the org keeps at least one.
///
/// # Errors
/// [`RoleChangeRefused::LastAdmin`].
pub fn check_last_admin(target: &Membership, active_admins: u64) -> Result<(), RoleChangeRefused> {
    if target.is_active_admin() && active_admins <= 1 {
        return Err(RoleChangeRefused::LastAdmin);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OrgId, RoleId, UserId};
    use permissions::PermissionKey;
    use time::OffsetDateTime;

    fn member(role: BuiltinRole) -> Membership {
        Membership {
            org_id: OrgId::from_uuid(uuid::Uuid::nil()),
            user_id: UserId::new(),
            role: RoleAssignment::builtin(role),
            status: MembershipStatus::Active,
            committee: None,
            children: vec![],
            role_ends_at: None,
            version: 1,
            joined_at: OffsetDateTime::UNIX_EPOCH,
            last_active_at: None,
            details_confirmed_at: None,
        }
    }

    use BuiltinRole::*;

    /// The keys a member of `rank` holds with the platform defaults.
    fn holds(rank: BuiltinRole) -> KeySet {
        permissions::catalog()
            .iter()
            .filter(|e| e.default.enabled && e.default.min_role <= rank)
            .map(|e| e.key)
            .collect()
    }

    fn custom(counts_as: BuiltinRole, extra_keys: KeySet) -> RoleAssignment {
        RoleAssignment::Custom {
            id: RoleId(uuid::Uuid::nil()),
            name: "Custom".into(),
            counts_as,
            extra_keys,
        }
    }

    fn role(role: &RoleAssignment) -> MemberChange<'_> {
        MemberChange {
            role: Some(NewRole {
                role,
                holders: None,
            }),
            ..MemberChange::default()
        }
    }

    fn term(end: Option<OffsetDateTime>) -> MemberChange<'static> {
        MemberChange {
            role_ends_at: Some(end),
            ..MemberChange::default()
        }
    }

    fn status(s: MembershipStatus) -> MemberChange<'static> {
        MemberChange {
            status: Some(s),
            ..MemberChange::default()
        }
    }

    fn change(
        actor: &Membership,
        target: &Membership,
        change: &MemberChange<'_>,
        admins: u64,
    ) -> Result<(), RoleChangeRefused> {
        check_member_change(actor, holds(actor.role.rank()), target, change, admins)
    }

    const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    #[test]
    fn nobody_raises_their_own_role() {
        let me = member(BoardMember);
        let admin = RoleAssignment::builtin(Admin);
        assert_eq!(
            change(&me, &me, &role(&admin), 1),
            Err(RoleChangeRefused::SelfEscalation)
        );
        // Lowering one's own role is fine (while another admin remains).
        let a = member(Admin);
        let vol = RoleAssignment::builtin(Volunteer);
        assert_eq!(change(&a, &a, &role(&vol), 2), Ok(()));
        assert_eq!(
            change(&a, &a, &role(&vol), 1),
            Err(RoleChangeRefused::LastAdmin)
        );
    }

    #[test]
    fn only_a_change_that_may_end_an_admins_standing_needs_the_admin_count() {
        let admin_role = RoleAssignment::builtin(Admin);
        let vol = RoleAssignment::builtin(Volunteer);
        let profile = MemberChange {
            profile: true,
            ..MemberChange::default()
        };
        assert!(!profile.may_end_admin_standing());
        assert!(!role(&admin_role).may_end_admin_standing());
        assert!(!status(MembershipStatus::Active).may_end_admin_standing());
        assert!(!term(Some(T0)).may_end_admin_standing());
        assert!(role(&vol).may_end_admin_standing());
        assert!(status(MembershipStatus::Suspended).may_end_admin_standing());
        // The sole admin edits their own profile or term: the count (not read) is moot.
        let a = member(Admin);
        assert_eq!(change(&a, &a, &profile, 0), Ok(()));
        assert_eq!(change(&a, &a, &term(Some(T0)), 0), Ok(()));
        // Suspending the last admin is still refused when it is read.
        assert_eq!(
            change(&a, &a, &status(MembershipStatus::Suspended), 1),
            Err(RoleChangeRefused::LastAdmin)
        );
    }

    #[test]
    fn taking_a_role_with_keys_one_does_not_hold_is_self_escalation() {
        // A committee lead (who may hand out their rank's keys and users.edit_roles,
        // say through a custom role): a role counting as their own rank with all 28
        // extra keys is refused, naming the keys they lack.
        let lead = member(CommitteeLead);
        let held =
            holds(CommitteeLead).union([PermissionKey::UsersEditRoles].into_iter().collect());
        let everything = custom(CommitteeLead, KeySet::all());
        let refused = check_member_change(&lead, held, &lead, &role(&everything), 1);
        let Err(RoleChangeRefused::KeysNotHeld(not_held)) = refused else {
            panic!("expected KeysNotHeld, got {refused:?}");
        };
        assert_eq!(not_held.keys, KeySet::all().difference(held));
        assert!(not_held.keys.contains(PermissionKey::BudgetApprove));
        // A role with keys they hold is theirs to take.
        let modest = custom(
            CommitteeLead,
            [PermissionKey::EventsCreate].into_iter().collect(),
        );
        assert_eq!(
            check_member_change(&lead, held, &lead, &role(&modest), 1),
            Ok(())
        );
    }

    #[test]
    fn nobody_gives_a_role_carrying_keys_they_do_not_hold() {
        let board = member(BoardMember);
        let vol = member(Volunteer);
        let treasurer = custom(
            CommitteeLead,
            [PermissionKey::BudgetApprove, PermissionKey::UsersRemove]
                .into_iter()
                .collect(),
        );
        // Board members hold budget.approve by default, not users.remove.
        assert_eq!(
            change(&board, &vol, &role(&treasurer), 1),
            Err(RoleChangeRefused::KeysNotHeld(NotHeld {
                keys: [PermissionKey::UsersRemove].into_iter().collect()
            }))
        );
        assert_eq!(
            check_assignable_role(&board, &treasurer, holds(BoardMember)),
            Err(RoleChangeRefused::KeysNotHeld(NotHeld {
                keys: [PermissionKey::UsersRemove].into_iter().collect()
            }))
        );
        // A key disabled for the org is held by nobody: not even an admin gives it.
        let admin = member(Admin);
        let mut admin_holds = holds(Admin);
        admin_holds.remove(PermissionKey::BudgetApprove);
        assert!(matches!(
            check_assignable_role(&admin, &treasurer, admin_holds),
            Err(RoleChangeRefused::KeysNotHeld(_))
        ));
        assert_eq!(
            check_assignable_role(&admin, &treasurer, holds(Admin)),
            Ok(())
        );
    }

    #[test]
    fn role_definitions_need_the_rank_and_every_key() {
        let lead = CommitteeLead;
        let held = holds(CommitteeLead);
        assert_eq!(
            check_role_definition(lead, held, BoardMember, KeySet::new()),
            Err(RoleChangeRefused::AboveOwnRank {
                actor: CommitteeLead
            })
        );
        assert!(matches!(
            check_role_definition(lead, held, CommitteeLead, KeySet::all()),
            Err(RoleChangeRefused::KeysNotHeld(_))
        ));
        assert_eq!(
            check_role_definition(
                lead,
                held,
                CommitteeLead,
                [PermissionKey::EventsCreate].into_iter().collect()
            ),
            Ok(())
        );
        assert_eq!(check_rank_assignable(Admin, Admin), Ok(()));
        assert_eq!(
            check_rank_assignable(Volunteer, CommitteeLead),
            Err(RoleChangeRefused::AboveOwnRank { actor: Volunteer })
        );
    }

    #[test]
    fn role_edits_need_both_definitions_within_reach() {
        let held = holds(BoardMember);
        let modest = RoleDefinition {
            counts_as: CommitteeLead,
            extra_keys: [PermissionKey::BudgetApprove].into_iter().collect(),
        };
        let removing = RoleDefinition {
            counts_as: CommitteeLead,
            extra_keys: [PermissionKey::UsersRemove].into_iter().collect(),
        };
        assert_eq!(check_role_edit(BoardMember, held, modest, modest), Ok(()));
        // Adding a key one does not hold is refused, and so is taking one away.
        assert_eq!(
            check_role_edit(BoardMember, held, modest, removing),
            Err(RoleChangeRefused::KeysNotHeld(NotHeld {
                keys: [PermissionKey::UsersRemove].into_iter().collect()
            }))
        );
        assert!(matches!(
            check_role_edit(BoardMember, held, removing, modest),
            Err(RoleChangeRefused::KeysNotHeld(_))
        ));
        // Raising it above one's rank, or touching a role above it, is refused.
        let admin_role = RoleDefinition {
            counts_as: Admin,
            extra_keys: KeySet::new(),
        };
        assert_eq!(
            check_role_edit(BoardMember, held, modest, admin_role),
            Err(RoleChangeRefused::AboveOwnRank { actor: BoardMember })
        );
        assert_eq!(
            check_role_edit(BoardMember, held, admin_role, modest),
            Err(RoleChangeRefused::AboveOwnRank { actor: BoardMember })
        );
        assert_eq!(
            check_role_edit(Admin, holds(Admin), admin_role, modest),
            Ok(())
        );
    }

    #[test]
    fn accounts_are_edited_by_their_owner_or_for_an_org_alone() {
        let me = member(Volunteer);
        let lead = member(CommitteeLead);
        let admin = member(Admin);
        let names = AccountEdit {
            profile: true,
            email: false,
        };
        let email = AccountEdit {
            profile: false,
            email: true,
        };
        // Oneself: names and phone always (even when in other orgs), never the address.
        assert_eq!(check_account_edit(&me, &me, 3, false, names), Ok(()));
        assert_eq!(
            check_account_edit(&me, &me, 0, false, email),
            Err(RoleChangeRefused::OwnEmail)
        );
        // Others: not above oneself, and only an account of this org alone.
        assert_eq!(check_account_edit(&lead, &me, 0, true, names), Ok(()));
        assert_eq!(
            check_account_edit(&me, &lead, 0, true, names),
            Err(RoleChangeRefused::TargetOutranksActor)
        );
        assert_eq!(
            check_account_edit(&admin, &me, 1, false, names),
            Err(RoleChangeRefused::SharedAccount)
        );
        // Someone else's address: admins, while it is unproven.
        assert_eq!(check_account_edit(&admin, &me, 0, false, email), Ok(()));
        assert_eq!(
            check_account_edit(&admin, &me, 0, true, email),
            Err(RoleChangeRefused::EmailNotEditable)
        );
        assert_eq!(
            check_account_edit(&lead, &me, 0, false, email),
            Err(RoleChangeRefused::EmailNotEditable)
        );
        assert_eq!(
            check_account_edit(&admin, &me, 2, false, email),
            Err(RoleChangeRefused::SharedAccount)
        );
    }

    #[test]
    fn a_rerank_keeps_an_active_admin() {
        assert_eq!(
            check_role_rerank(Admin, BoardMember, 0),
            Err(RoleChangeRefused::LastAdmin)
        );
        assert_eq!(check_role_rerank(Admin, BoardMember, 1), Ok(()));
        assert_eq!(check_role_rerank(Admin, Admin, 0), Ok(()));
        assert_eq!(check_role_rerank(BoardMember, Volunteer, 0), Ok(()));
    }

    #[test]
    fn profiles_are_editable_by_self_and_by_members_not_outranked() {
        let vol = member(Volunteer);
        let lead = member(CommitteeLead);
        assert_eq!(check_profile_edit(&vol, &vol), Ok(()));
        assert_eq!(check_profile_edit(&lead, &vol), Ok(()));
        assert_eq!(
            check_profile_edit(&vol, &lead),
            Err(RoleChangeRefused::TargetOutranksActor)
        );
        let profile = MemberChange {
            profile: true,
            ..MemberChange::default()
        };
        assert_eq!(change(&vol, &vol, &profile, 1), Ok(()));
        assert_eq!(
            change(&vol, &lead, &profile, 1),
            Err(RoleChangeRefused::TargetOutranksActor)
        );
    }

    #[test]
    fn nobody_assigns_above_their_rank_or_touches_a_peer_or_superior() {
        let lead = member(CommitteeLead);
        let vol = member(Volunteer);
        assert_eq!(
            change(&lead, &vol, &role(&RoleAssignment::builtin(BoardMember)), 1),
            Err(RoleChangeRefused::AboveOwnRank {
                actor: CommitteeLead
            })
        );
        let board = member(BoardMember);
        assert_eq!(
            change(&lead, &board, &role(&RoleAssignment::builtin(Volunteer)), 1),
            Err(RoleChangeRefused::NotBelowActor)
        );
        let peer = member(CommitteeLead);
        assert_eq!(
            change(&lead, &peer, &role(&RoleAssignment::builtin(Volunteer)), 1),
            Err(RoleChangeRefused::NotBelowActor)
        );
        assert_eq!(
            change(
                &lead,
                &vol,
                &role(&RoleAssignment::builtin(CommitteeLead)),
                1
            ),
            Ok(())
        );
        // Status follows the same rank rule.
        assert_eq!(
            change(
                &board,
                &member(Admin),
                &status(MembershipStatus::Suspended),
                2
            ),
            Err(RoleChangeRefused::NotBelowActor)
        );
        assert_eq!(
            change(&board, &lead, &status(MembershipStatus::Suspended), 2),
            Ok(())
        );
    }

    #[test]
    fn term_ends_only_below_ones_rank_and_never_extended_for_oneself() {
        let board = member(BoardMember);
        let admin = member(Admin);
        let past = Some(T0);
        // A board member cannot end an admin's term (nor a peer's).
        assert_eq!(
            change(&board, &admin, &term(past), 2),
            Err(RoleChangeRefused::NotBelowActor)
        );
        assert_eq!(
            change(&board, &member(BoardMember), &term(past), 2),
            Err(RoleChangeRefused::NotBelowActor)
        );
        assert_eq!(
            change(&board, &member(CommitteeLead), &term(past), 2),
            Ok(())
        );
        // An admin may set any member's term, another admin's too.
        assert_eq!(change(&admin, &board, &term(past), 1), Ok(()));
        assert_eq!(change(&admin, &member(Admin), &term(past), 2), Ok(()));
        // Oneself: clearing or extending is refused; shortening or setting one is fine.
        let mut me = member(BoardMember);
        me.role_ends_at = Some(T0 + time::Duration::days(30));
        assert_eq!(
            change(&me, &me, &term(None), 1),
            Err(RoleChangeRefused::OwnTermExtended)
        );
        assert_eq!(
            change(&me, &me, &term(Some(T0 + time::Duration::days(31))), 1),
            Err(RoleChangeRefused::OwnTermExtended)
        );
        assert_eq!(
            change(&me, &me, &term(Some(T0 + time::Duration::days(1))), 1),
            Ok(())
        );
        let open = member(BoardMember);
        assert_eq!(change(&open, &open, &term(None), 1), Ok(()));
        assert_eq!(change(&open, &open, &term(past), 1), Ok(()));
    }

    #[test]
    fn the_last_admin_stays() {
        let a = member(Admin);
        let b = member(Admin);
        let vol = RoleAssignment::builtin(Volunteer);
        assert_eq!(
            change(&a, &b, &role(&vol), 1),
            Err(RoleChangeRefused::LastAdmin)
        );
        assert_eq!(change(&a, &b, &role(&vol), 2), Ok(()));
        assert_eq!(
            change(&a, &b, &status(MembershipStatus::Suspended), 1),
            Err(RoleChangeRefused::LastAdmin)
        );
        assert_eq!(
            check_member_removal(&a, &b, 1),
            Err(RoleChangeRefused::LastAdmin)
        );
        assert_eq!(check_member_removal(&a, &b, 2), Ok(()));
        let mut suspended = member(Admin);
        suspended.status = MembershipStatus::Suspended;
        assert_eq!(check_member_removal(&a, &suspended, 1), Ok(()));
        assert_eq!(check_last_admin(&suspended, 1), Ok(()));
    }

    #[test]
    fn removal_follows_the_rank_rule() {
        let lead = member(CommitteeLead);
        assert_eq!(
            check_member_removal(&lead, &member(BoardMember), 1),
            Err(RoleChangeRefused::NotBelowActor)
        );
        assert_eq!(
            check_member_removal(&lead, &member(CommitteeLead), 1),
            Err(RoleChangeRefused::NotBelowActor)
        );
        assert_eq!(check_member_removal(&lead, &member(Volunteer), 1), Ok(()));
        assert_eq!(check_member_removal(&lead, &lead, 1), Ok(()), "leaving");
    }

    #[test]
    fn custom_roles_respect_their_maximum() {
        let admin = member(Admin);
        let vol = member(Volunteer);
        let president = RoleAssignment::Custom {
            id: RoleId(uuid::Uuid::nil()),
            name: "President".into(),
            counts_as: BoardMember,
            extra_keys: KeySet::new(),
        };
        let full = MemberChange {
            role: Some(NewRole {
                role: &president,
                holders: Some((1, 1)),
            }),
            ..MemberChange::default()
        };
        assert_eq!(
            change(&admin, &vol, &full, 1),
            Err(RoleChangeRefused::RoleFull {
                role: "President".into(),
                max: 1
            })
        );
        let room = MemberChange {
            role: Some(NewRole {
                role: &president,
                holders: Some((0, 1)),
            }),
            ..MemberChange::default()
        };
        assert_eq!(change(&admin, &vol, &room, 1), Ok(()));
    }

    #[test]
    fn terms_end() {
        let mut m = member(BoardMember);
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(10);
        assert!(!m.term_ended(now));
        m.role_ends_at = Some(now);
        assert!(m.term_ended(now));
        m.role = RoleAssignment::builtin(Volunteer);
        assert!(
            !m.term_ended(now),
            "a volunteer has nothing to fall back from"
        );
    }
}
