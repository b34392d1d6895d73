//! What the check needs to know about a member: status, role, and direct grants.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::keys::{KeySet, PermissionKey};
use crate::role::BuiltinRole;

/// The state of a membership. Only [`MemberStatus::Active`] members hold permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// A full member.
    Active,
    /// Invited, not yet joined.
    Invited,
    /// Suspended by an admin.
    Suspended,
    /// Removed from the org.
    Removed,
}

/// The role a member holds in an org: a built-in role, or a custom role that counts as one
/// and may carry extra keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRef {
    /// The role's name (`"board_member"`, or a custom name such as `"Treasurer"`).
    pub name: String,
    /// The built-in role whose rank this role has.
    pub counts_as: BuiltinRole,
    /// Keys the role always holds, whatever their minimum role (never when disabled).
    #[serde(default)]
    pub extra_keys: KeySet,
}

impl RoleRef {
    /// A built-in role: named after itself, no extra keys.
    #[must_use]
    pub fn builtin(role: BuiltinRole) -> Self {
        Self {
            name: role.as_str().to_owned(),
            counts_as: role,
            extra_keys: KeySet::new(),
        }
    }

    /// A custom role.
    #[must_use]
    pub fn custom(name: impl Into<String>, counts_as: BuiltinRole, extra_keys: KeySet) -> Self {
        Self {
            name: name.into(),
            counts_as,
            extra_keys,
        }
    }
}

/// A key granted directly to one member, optionally from a start time and until an expiry
/// time: active when `starts_at <= now < expires_at` (a missing bound is no bound).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The key granted.
    pub key: PermissionKey,
    /// When the grant starts counting; `None` for "from its creation" (RFC 3339 in JSON,
    /// omitted when absent so values written without it read the same).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub starts_at: Option<OffsetDateTime>,
    /// When the grant stops counting; `None` for a permanent grant. A grant is active while
    /// `now < expires_at` (RFC 3339 in JSON).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Why it was granted.
    #[serde(default)]
    pub reason: Option<String>,
}

impl Grant {
    /// A grant of `key` active from now on, without start, expiry or reason.
    #[must_use]
    pub const fn permanent(key: PermissionKey) -> Self {
        Self {
            key,
            starts_at: None,
            expires_at: None,
            reason: None,
        }
    }

    /// Whether the grant counts at `now`: `starts_at <= now < expires_at`.
    #[must_use]
    pub fn is_active_at(&self, now: OffsetDateTime) -> bool {
        self.starts_at.is_none_or(|starts_at| starts_at <= now)
            && self.expires_at.is_none_or(|expires_at| now < expires_at)
    }

    /// Whether the grant has a time bound (a start or an expiry).
    #[must_use]
    pub const fn is_timed(&self) -> bool {
        self.starts_at.is_some() || self.expires_at.is_some()
    }
}

/// A member's direct grants, with the sets the check's fast path reads: the keys held by a
/// permanent grant (no start, no expiry), and the keys that have at least one timed grant.
///
/// Serialized as the plain list of grants.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Grant>", into = "Vec<Grant>")]
pub struct Grants {
    all: Vec<Grant>,
    permanent: KeySet,
    expiring: KeySet,
}

impl Grants {
    /// Indexes `grants`.
    #[must_use]
    pub fn new(grants: Vec<Grant>) -> Self {
        let mut permanent = KeySet::new();
        let mut expiring = KeySet::new();
        for grant in &grants {
            if grant.is_timed() {
                expiring.insert(grant.key);
            } else {
                permanent.insert(grant.key);
            }
        }
        Self {
            all: grants,
            permanent,
            expiring,
        }
    }

    /// The grants, in the order given.
    #[must_use]
    pub fn as_slice(&self) -> &[Grant] {
        &self.all
    }

    /// The keys held by a grant without start or expiry.
    #[must_use]
    pub const fn permanent(&self) -> KeySet {
        self.permanent
    }

    /// Whether an active grant of `key` exists at `now` (`starts_at <= now < expires_at`).
    /// Without a timed grant for the key this is one bit test; otherwise it scans the
    /// member's grants.
    #[must_use]
    pub fn holds(&self, key: PermissionKey, now: OffsetDateTime) -> bool {
        self.permanent.contains(key)
            || (self.expiring.contains(key)
                && self
                    .all
                    .iter()
                    .any(|grant| grant.key == key && grant.is_active_at(now)))
    }

    /// The grants of `key`, in the order given.
    pub fn of_key(&self, key: PermissionKey) -> impl Iterator<Item = &Grant> + '_ {
        self.all.iter().filter(move |grant| grant.key == key)
    }

    /// The number of grants.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether there is no grant.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

impl From<Vec<Grant>> for Grants {
    fn from(grants: Vec<Grant>) -> Self {
        Self::new(grants)
    }
}

impl From<Grants> for Vec<Grant> {
    fn from(grants: Grants) -> Self {
        grants.all
    }
}

impl FromIterator<Grant> for Grants {
    fn from_iter<I: IntoIterator<Item = Grant>>(grants: I) -> Self {
        Self::new(grants.into_iter().collect())
    }
}

/// One user as a member of one org: everything [`check`](crate::check()) reads besides the
/// org's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberContext {
    /// The user.
    pub user_id: Uuid,
    /// The membership's status in this org.
    pub status: MemberStatus,
    /// Whether the user account is usable (false when disabled or soft-deleted).
    pub user_active: bool,
    /// The member's one role in this org.
    pub role: RoleRef,
    /// Direct grants to this member in this org.
    #[serde(default)]
    pub grants: Grants,
}

impl MemberContext {
    /// An active member of an active user, with the given role and no grants.
    #[must_use]
    pub fn active(user_id: Uuid, role: RoleRef) -> Self {
        Self {
            user_id,
            status: MemberStatus::Active,
            user_active: true,
            role,
            grants: Grants::default(),
        }
    }

    /// This member with `grants` as their direct grants.
    #[must_use]
    pub fn with_grants(mut self, grants: impl Into<Grants>) -> Self {
        self.grants = grants.into();
        self
    }

    /// This member with `status`.
    #[must_use]
    pub const fn with_status(mut self, status: MemberStatus) -> Self {
        self.status = status;
        self
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn grants_index_permanent_and_expiring_keys() {
        let now = datetime!(2025-01-01 12:00 UTC);
        let grants = Grants::new(vec![
            Grant {
                reason: Some("treasurer stand-in".to_owned()),
                ..Grant::permanent(PermissionKey::BudgetApprove)
            },
            Grant {
                expires_at: Some(now),
                ..Grant::permanent(PermissionKey::EventsDelete)
            },
            Grant {
                expires_at: Some(datetime!(2025-01-02 0:00 UTC)),
                ..Grant::permanent(PermissionKey::UsersInvite)
            },
            Grant {
                starts_at: Some(datetime!(2025-01-01 12:00:01 UTC)),
                ..Grant::permanent(PermissionKey::UsersRemove)
            },
            Grant {
                starts_at: Some(now),
                expires_at: Some(datetime!(2025-01-01 12:00:01 UTC)),
                ..Grant::permanent(PermissionKey::FundraisingManage)
            },
        ]);
        assert_eq!(
            grants.permanent().iter().collect::<Vec<_>>(),
            [PermissionKey::BudgetApprove]
        );
        assert!(grants.holds(PermissionKey::BudgetApprove, now));
        assert!(
            !grants.holds(PermissionKey::EventsDelete, now),
            "expires exactly now"
        );
        assert!(grants.holds(
            PermissionKey::EventsDelete,
            datetime!(2025-01-01 11:59:59 UTC)
        ));
        assert!(grants.holds(PermissionKey::UsersInvite, now));
        assert!(
            !grants.holds(PermissionKey::UsersRemove, now),
            "starts later"
        );
        assert!(grants.holds(
            PermissionKey::UsersRemove,
            datetime!(2025-01-01 12:00:01 UTC)
        ));
        assert!(
            grants.holds(PermissionKey::FundraisingManage, now),
            "starts exactly now"
        );
        assert!(!grants.holds(
            PermissionKey::FundraisingManage,
            datetime!(2025-01-01 11:59:59 UTC)
        ));
        assert!(!grants.holds(PermissionKey::CommunicationsSend, now));
        assert_eq!(grants.of_key(PermissionKey::EventsDelete).count(), 1);
        assert_eq!(grants.len(), 5);
    }

    #[test]
    fn member_round_trips_through_json() {
        let json = serde_json::json!({
            "user_id": "00000000-0000-0000-0000-000000000001",
            "status": "active",
            "user_active": true,
            "role": {"name": "Treasurer", "counts_as": "committee_lead", "extra_keys": ["budget.approve"]},
            "grants": [
                {"key": "events.delete", "expires_at": "2025-06-01T00:00:00Z", "reason": "spring fair"},
                {"key": "events.edit", "starts_at": "2025-05-01T00:00:00Z", "expires_at": null},
                {"key": "users.invite"}
            ]
        });
        let member: MemberContext = serde_json::from_value(json).expect("deserialize");
        assert_eq!(member.role.counts_as, BuiltinRole::CommitteeLead);
        assert!(
            member
                .role
                .extra_keys
                .contains(PermissionKey::BudgetApprove)
        );
        assert_eq!(
            member.grants.permanent().iter().collect::<Vec<_>>(),
            [PermissionKey::UsersInvite]
        );
        let text = serde_json::to_string(&member).expect("serialize");
        let back: MemberContext = serde_json::from_str(&text).expect("deserialize again");
        assert_eq!(back, member);
    }
}
