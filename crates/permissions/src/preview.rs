//! Preview (what-if): who would gain or lose which key if an org's table changed.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::check::check;
use crate::compiled::CompiledOrg;
use crate::keys::{KeySet, PermissionKey};
use crate::member::MemberContext;

/// Whether a member gains or loses a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Denied before, allowed after.
    Gained,
    /// Allowed before, denied after.
    Lost,
}

/// One member's answer for one key changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PermissionChange {
    /// The member.
    pub user_id: Uuid,
    /// The key.
    pub key: PermissionKey,
    /// Gained or lost.
    pub change: ChangeKind,
}

/// Every change of answer between `before` and `after` for `members` at `now`.
///
/// Listed member by member (in the order given), then key by key (in catalog order). Nothing
/// is saved: build
/// `after` from [`apply_org_changes`](crate::apply_org_changes) or
/// [`reset_org`](crate::reset_org) and compile it.
///
/// ```
/// use permissions::{
///     apply_org_changes, preview, BuiltinRole, ChangeKind, CompiledOrg, MemberContext, OrgChain,
///     PermissionKey, RoleRef, SettingChange,
/// };
/// use time::OffsetDateTime;
/// use uuid::Uuid;
///
/// let chain = OrgChain::standalone(Uuid::from_u128(1));
/// let change = SettingChange { key: PermissionKey::BudgetApprove, min_role: Some(BuiltinRole::CommitteeLead), enabled: None };
/// let after = apply_org_changes(&chain, &[change])?;
/// let lead = MemberContext::active(Uuid::from_u128(2), RoleRef::builtin(BuiltinRole::CommitteeLead));
///
/// let changes = preview(&CompiledOrg::compile(&chain, 0), &CompiledOrg::compile(&after, 1), &[lead], OffsetDateTime::now_utc());
/// assert_eq!(changes.len(), 1);
/// assert_eq!(changes[0].change, ChangeKind::Gained);
/// # Ok::<(), permissions::UpdateSettingsError>(())
/// ```
#[must_use]
pub fn preview(
    before: &CompiledOrg,
    after: &CompiledOrg,
    members: &[MemberContext],
    now: OffsetDateTime,
) -> Vec<PermissionChange> {
    let changed_keys: KeySet = PermissionKey::ALL
        .into_iter()
        .filter(|&key| before.effective(key) != after.effective(key))
        .collect();
    members
        .iter()
        .flat_map(|member| {
            changed_keys.iter().filter_map(move |key| {
                let change = match (
                    check(before, member, key, now),
                    check(after, member, key, now),
                ) {
                    (false, true) => ChangeKind::Gained,
                    (true, false) => ChangeKind::Lost,
                    _ => return None,
                };
                Some(PermissionChange {
                    user_id: member.user_id,
                    key,
                    change,
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::member::{MemberStatus, RoleRef};
    use crate::role::BuiltinRole;
    use crate::scope::{OrgChain, ScopeSettings, ScopedSetting};

    #[test]
    fn reports_gains_and_losses_per_member() {
        let now = datetime!(2025-01-01 0:00 UTC);
        let chain = OrgChain::standalone(Uuid::from_u128(1));
        let after_settings: ScopeSettings = [
            (
                PermissionKey::EventsView,
                ScopedSetting::new(BuiltinRole::Volunteer, false),
            ),
            (
                PermissionKey::EventsDelete,
                ScopedSetting::new(BuiltinRole::CommitteeLead, true),
            ),
        ]
        .into_iter()
        .collect();
        let before = CompiledOrg::compile(&chain, 0);
        let after = CompiledOrg::compile(&chain.clone().with_org_settings(after_settings), 1);
        let lead = MemberContext::active(
            Uuid::from_u128(2),
            RoleRef::builtin(BuiltinRole::CommitteeLead),
        );
        let suspended =
            MemberContext::active(Uuid::from_u128(3), RoleRef::builtin(BuiltinRole::Admin))
                .with_status(MemberStatus::Suspended);
        let admin = MemberContext::active(Uuid::from_u128(4), RoleRef::builtin(BuiltinRole::Admin));
        let changes = preview(&before, &after, &[lead, suspended, admin], now);
        assert_eq!(
            changes,
            [
                PermissionChange {
                    user_id: Uuid::from_u128(2),
                    key: PermissionKey::EventsView,
                    change: ChangeKind::Lost
                },
                PermissionChange {
                    user_id: Uuid::from_u128(2),
                    key: PermissionKey::EventsDelete,
                    change: ChangeKind::Gained
                },
                PermissionChange {
                    user_id: Uuid::from_u128(4),
                    key: PermissionKey::EventsView,
                    change: ChangeKind::Lost
                },
            ]
        );
        assert!(preview(&before, &before, &[], now).is_empty());
    }

    #[test]
    fn a_new_lock_above_lists_who_loses_through_an_extra_key_or_a_grant() {
        use crate::member::Grant;
        let now = datetime!(2025-01-01 0:00 UTC);
        let key = PermissionKey::BudgetApprove;
        let district = Uuid::from_u128(9);
        let unlocked: ScopeSettings = [(key, ScopedSetting::new(BuiltinRole::BoardMember, true))]
            .into_iter()
            .collect();
        let locked: ScopeSettings = [(key, ScopedSetting::locked(BuiltinRole::BoardMember, true))]
            .into_iter()
            .collect();
        let org = Uuid::from_u128(1);
        let before = CompiledOrg::compile(
            &OrgChain::standalone(org).with_district(district, unlocked),
            0,
        );
        let after = CompiledOrg::compile(
            &OrgChain::standalone(org).with_district(district, locked),
            1,
        );
        let treasurer = MemberContext::active(
            Uuid::from_u128(2),
            RoleRef::custom(
                "Treasurer",
                BuiltinRole::Volunteer,
                [key].into_iter().collect(),
            ),
        );
        let granted =
            MemberContext::active(Uuid::from_u128(3), RoleRef::builtin(BuiltinRole::Volunteer))
                .with_grants(vec![Grant::permanent(key)]);
        let board = MemberContext::active(
            Uuid::from_u128(4),
            RoleRef::builtin(BuiltinRole::BoardMember),
        );
        let changes = preview(&before, &after, &[treasurer, granted, board], now);
        assert_eq!(
            changes,
            [
                PermissionChange {
                    user_id: Uuid::from_u128(2),
                    key,
                    change: ChangeKind::Lost
                },
                PermissionChange {
                    user_id: Uuid::from_u128(3),
                    key,
                    change: ChangeKind::Lost
                },
            ]
        );
    }
}
