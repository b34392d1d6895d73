//! Matrices: all 28 keys of an org (settings and provenance) or of a member (answers).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::check::{DecisionReason, decide};
use crate::compiled::CompiledOrg;
use crate::keys::{Module, PermissionKey};
use crate::member::MemberContext;
use crate::role::BuiltinRole;
use crate::scope::ScopeRef;

/// One row of an org's matrix: a key's effective setting and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgMatrixRow {
    /// The key.
    pub key: PermissionKey,
    /// Its module.
    pub module: Module,
    /// The effective minimum role.
    pub min_role: BuiltinRole,
    /// Whether the key is enabled.
    pub enabled: bool,
    /// The scope the setting came from.
    pub source: ScopeRef,
    /// The scope that locked it, if any.
    pub locked_by: Option<ScopeRef>,
}

/// The org's matrix: one row per key, in catalog order.
#[must_use]
pub fn org_matrix(org: &CompiledOrg) -> [OrgMatrixRow; PermissionKey::COUNT] {
    PermissionKey::ALL.map(|key| {
        let effective = org.effective(key);
        OrgMatrixRow {
            key,
            module: key.module(),
            min_role: effective.min_role,
            enabled: effective.enabled,
            source: effective.source,
            locked_by: effective.locked_by,
        }
    })
}

/// One row of a member's matrix: whether they hold a key, and why in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberMatrixRow {
    /// The key.
    pub key: PermissionKey,
    /// Its module.
    pub module: Module,
    /// The check's answer.
    pub allowed: bool,
    /// Why.
    pub reason: DecisionReason,
}

/// A member's matrix at `now`: one row per key, in catalog order; `allowed` is
/// [`check`](crate::check()).
#[must_use]
pub fn member_matrix(
    org: &CompiledOrg,
    member: &MemberContext,
    now: OffsetDateTime,
) -> [MemberMatrixRow; PermissionKey::COUNT] {
    PermissionKey::ALL.map(|key| {
        let reason = decide(org, member, key, now);
        MemberMatrixRow {
            key,
            module: key.module(),
            allowed: reason.is_allowed(),
            reason,
        }
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::check::check;
    use crate::member::RoleRef;
    use crate::scope::{OrgChain, ScopeSettings, ScopedSetting};

    #[test]
    fn org_matrix_has_one_row_per_key_with_provenance() {
        let district: ScopeSettings = [(
            PermissionKey::CommunicationsSend,
            ScopedSetting::locked(BuiltinRole::Admin, false),
        )]
        .into_iter()
        .collect();
        let chain =
            OrgChain::standalone(Uuid::from_u128(3)).with_district(Uuid::from_u128(1), district);
        let rows = org_matrix(&CompiledOrg::compile(&chain, 0));
        assert_eq!(rows.len(), 28);
        let send = rows[PermissionKey::CommunicationsSend.index()];
        assert_eq!(send.module, Module::Communications);
        assert!(!send.enabled);
        assert_eq!(send.locked_by, Some(ScopeRef::District(Uuid::from_u128(1))));
        assert!(
            rows.iter()
                .zip(PermissionKey::ALL)
                .all(|(row, key)| row.key == key)
        );
        let json = serde_json::to_value(send).expect("serialize");
        assert_eq!(json["key"], "communications.send");
        assert_eq!(json["source"]["kind"], "district");
    }

    #[test]
    fn member_matrix_agrees_with_check() {
        let now = datetime!(2025-01-01 0:00 UTC);
        let org = CompiledOrg::compile(&OrgChain::standalone(Uuid::from_u128(3)), 0);
        let member = MemberContext::active(
            Uuid::from_u128(4),
            RoleRef::builtin(BuiltinRole::CommitteeLead),
        );
        for row in member_matrix(&org, &member, now) {
            assert_eq!(row.allowed, check(&org, &member, row.key, now));
        }
    }
}
