//! Reverse lookup: which members hold a key.

use time::OffsetDateTime;

use crate::check::check;
use crate::compiled::CompiledOrg;
use crate::keys::PermissionKey;
use crate::member::MemberContext;

/// Batch check, one key for many members: the members of `members` that hold `key` in `org`
/// at `now`, in the order given.
///
/// Lazy and pure: the adapter decides which members to load and pages the result (for
/// instance, feeds one page of members ordered by id and keeps the last id as the cursor, or
/// uses `skip`/`take` on a stable order). Nothing here allocates.
pub fn members_holding<'a>(
    org: &'a CompiledOrg,
    members: &'a [MemberContext],
    key: PermissionKey,
    now: OffsetDateTime,
) -> impl Iterator<Item = &'a MemberContext> + 'a {
    members
        .iter()
        .filter(move |member| check(org, member, key, now))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::member::{MemberStatus, RoleRef};
    use crate::role::BuiltinRole;
    use crate::scope::OrgChain;

    #[test]
    fn finds_the_members_holding_a_key_in_order() {
        let now = datetime!(2025-01-01 0:00 UTC);
        let org = CompiledOrg::compile(&OrgChain::standalone(Uuid::from_u128(1)), 0);
        let members = [
            MemberContext::active(Uuid::from_u128(10), RoleRef::builtin(BuiltinRole::Admin)),
            MemberContext::active(
                Uuid::from_u128(11),
                RoleRef::builtin(BuiltinRole::Volunteer),
            ),
            MemberContext::active(
                Uuid::from_u128(12),
                RoleRef::builtin(BuiltinRole::BoardMember),
            ),
            MemberContext::active(Uuid::from_u128(13), RoleRef::builtin(BuiltinRole::Admin))
                .with_status(MemberStatus::Removed),
        ];
        let holders: Vec<Uuid> = members_holding(&org, &members, PermissionKey::BudgetApprove, now)
            .map(|member| member.user_id)
            .collect();
        assert_eq!(holders, [Uuid::from_u128(10), Uuid::from_u128(12)]);
    }
}
