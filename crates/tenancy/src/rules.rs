//! The invariants of membership changes, as pure functions the service (and tests)
//! call before anything is written.

use permissions::BuiltinRole;

use crate::{Membership, RoleAssignment};

/// Why a role change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleChangeRefused {
    /// Nobody raises their own role.
    #[error("you cannot raise your own role")]
    SelfEscalation,
    /// Nobody assigns a role ranking above their own.
    #[error("you cannot assign a role above your own ({actor})")]
    AboveOwnRank {
        /// The actor's rank.
        actor: BuiltinRole,
    },
    /// Nobody changes the role of someone ranking above them.
    #[error("you cannot change the role of someone ranking above you")]
    TargetOutranksActor,
    /// The org must keep at least one active admin.
    #[error("the organization must keep at least one active admin")]
    LastAdmin,
    /// The custom role has as many holders as it allows.
    #[error("the role {role} already has its maximum of {max} holder(s)")]
    RoleFull {
        /// Role name.
        role: String,
        /// Its limit.
        max: u32,
    },
}

/// Checks that `actor` may give `target` the role `new_role`.
///
/// `active_admins` is the org's current number of active admins; `holders` the current
/// number of holders of `new_role` if it is a custom role with a maximum.
pub fn check_role_change(
    actor: &Membership,
    target: &Membership,
    new_role: &RoleAssignment,
    active_admins: u64,
    holders: Option<(u64, u32)>,
) -> Result<(), RoleChangeRefused> {
    let actor_rank = actor.role.rank();
    let new_rank = new_role.rank();
    if actor.user_id == target.user_id && new_rank > target.role.rank() {
        return Err(RoleChangeRefused::SelfEscalation);
    }
    if target.role.rank() > actor_rank {
        return Err(RoleChangeRefused::TargetOutranksActor);
    }
    if new_rank > actor_rank {
        return Err(RoleChangeRefused::AboveOwnRank { actor: actor_rank });
    }
    if target.is_active_admin() && new_rank != BuiltinRole::Admin && active_admins <= 1 {
        return Err(RoleChangeRefused::LastAdmin);
    }
    if let Some((current, max)) = holders
        && &target.role != new_role
        && current >= u64::from(max)
    {
        return Err(RoleChangeRefused::RoleFull {
            role: new_role.name().to_owned(),
            max,
        });
    }
    Ok(())
}

/// Checks that `actor` may edit `target`'s profile (committee, children): their own
/// always, someone else's only if that member does not rank above them.
pub fn check_profile_edit(
    actor: &Membership,
    target: &Membership,
) -> Result<(), RoleChangeRefused> {
    if actor.user_id != target.user_id && target.role.rank() > actor.role.rank() {
        return Err(RoleChangeRefused::TargetOutranksActor);
    }
    Ok(())
}

/// Checks that removing (or suspending) `target` keeps an active admin.
pub fn check_removal(target: &Membership, active_admins: u64) -> Result<(), RoleChangeRefused> {
    if target.is_active_admin() && active_admins <= 1 {
        return Err(RoleChangeRefused::LastAdmin);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MembershipStatus, OrgId, RoleId, UserId};
    use permissions::KeySet;
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
        }
    }

    use BuiltinRole::*;

    #[test]
    fn nobody_raises_their_own_role() {
        let me = member(BoardMember);
        assert_eq!(
            check_role_change(&me, &me, &RoleAssignment::builtin(Admin), 1, None),
            Err(RoleChangeRefused::SelfEscalation)
        );
        // Lowering one's own role is fine (while another admin remains).
        let admin = member(Admin);
        assert_eq!(
            check_role_change(&admin, &admin, &RoleAssignment::builtin(Volunteer), 2, None),
            Ok(())
        );
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
    }

    #[test]
    fn nobody_assigns_above_their_rank_or_touches_a_superior() {
        let lead = member(CommitteeLead);
        let vol = member(Volunteer);
        assert_eq!(
            check_role_change(&lead, &vol, &RoleAssignment::builtin(BoardMember), 1, None),
            Err(RoleChangeRefused::AboveOwnRank {
                actor: CommitteeLead
            })
        );
        let board = member(BoardMember);
        assert_eq!(
            check_role_change(&lead, &board, &RoleAssignment::builtin(Volunteer), 1, None),
            Err(RoleChangeRefused::TargetOutranksActor)
        );
        assert_eq!(
            check_role_change(
                &lead,
                &vol,
                &RoleAssignment::builtin(CommitteeLead),
                1,
                None
            ),
            Ok(())
        );
    }

    #[test]
    fn the_last_admin_stays() {
        let a = member(Admin);
        let b = member(Admin);
        assert_eq!(
            check_role_change(&a, &b, &RoleAssignment::builtin(Volunteer), 1, None),
            Err(RoleChangeRefused::LastAdmin)
        );
        assert_eq!(
            check_role_change(&a, &b, &RoleAssignment::builtin(Volunteer), 2, None),
            Ok(())
        );
        assert_eq!(check_removal(&b, 1), Err(RoleChangeRefused::LastAdmin));
        assert_eq!(check_removal(&b, 2), Ok(()));
        let mut suspended = member(Admin);
        suspended.status = MembershipStatus::Suspended;
        assert_eq!(check_removal(&suspended, 1), Ok(()));
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
        assert_eq!(
            check_role_change(&admin, &vol, &president, 1, Some((1, 1))),
            Err(RoleChangeRefused::RoleFull {
                role: "President".into(),
                max: 1
            })
        );
        assert_eq!(
            check_role_change(&admin, &vol, &president, 1, Some((0, 1))),
            Ok(())
        );
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
