use permissions::{BuiltinRole, KeySet};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{OrgId, UserId};

/// Identifies a custom role within its organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoleId(pub Uuid);

/// A role an organization defined (e.g. "Treasurer"): counts as a built-in rank and may
/// always hold extra permission keys; optionally limited to a number of holders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomRole {
    /// Identifier (unique within the org).
    pub id: RoleId,
    /// The org it belongs to.
    pub org_id: OrgId,
    /// Display name, unique (case-insensitively) within the org.
    pub name: String,
    /// The built-in rank it counts as.
    pub counts_as: BuiltinRole,
    /// Keys its holders always hold.
    pub extra_keys: KeySet,
    /// At most this many members may hold it (a PTO has one President).
    pub max_holders: Option<u32>,
    /// Optimistic-concurrency version.
    pub version: i64,
}

/// The one role a member has in an org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoleAssignment {
    /// A built-in role.
    Builtin {
        /// Which one.
        role: BuiltinRole,
    },
    /// A custom role of the org.
    Custom {
        /// Its id.
        id: RoleId,
        /// Its name.
        name: String,
        /// The rank it counts as.
        counts_as: BuiltinRole,
        /// Keys it always holds.
        extra_keys: KeySet,
    },
}

impl RoleAssignment {
    /// A built-in role assignment.
    #[must_use]
    pub const fn builtin(role: BuiltinRole) -> Self {
        Self::Builtin { role }
    }

    /// The rank this role counts as.
    #[must_use]
    pub fn rank(&self) -> BuiltinRole {
        match self {
            Self::Builtin { role } => *role,
            Self::Custom { counts_as, .. } => *counts_as,
        }
    }

    /// The name shown to people (`admin`, or the custom role's name).
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Builtin { role } => role.as_str(),
            Self::Custom { name, .. } => name,
        }
    }
}

/// Whether a membership is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    /// A full member.
    Active,
    /// Invited, not yet accepted: holds no permissions.
    Invited,
    /// Suspended by an admin: holds no permissions.
    Suspended,
}

impl From<MembershipStatus> for permissions::MemberStatus {
    fn from(s: MembershipStatus) -> Self {
        match s {
            MembershipStatus::Active => Self::Active,
            MembershipStatus::Invited => Self::Invited,
            MembershipStatus::Suspended => Self::Suspended,
        }
    }
}

/// A child of a member, kept as profile data (for class lists and teacher requests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    /// The child's name.
    pub name: String,
    /// Grade, e.g. "K" or "3".
    pub grade: Option<String>,
}

/// A user's membership in one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The org.
    pub org_id: OrgId,
    /// The user.
    pub user_id: UserId,
    /// Their one role.
    pub role: RoleAssignment,
    /// Status.
    pub status: MembershipStatus,
    /// Committee or department, if any.
    pub committee: Option<String>,
    /// Children (profile data).
    pub children: Vec<Child>,
    /// End of the current officer term: after it the member falls back to volunteer.
    #[serde(with = "time::serde::rfc3339::option")]
    pub role_ends_at: Option<OffsetDateTime>,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// When they joined.
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    /// When they last signed in (any org), if since joining.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_active_at: Option<OffsetDateTime>,
}

impl Membership {
    /// Whether this member counts as an active admin (the org must keep one).
    #[must_use]
    pub fn is_active_admin(&self) -> bool {
        self.status == MembershipStatus::Active && self.role.rank() == BuiltinRole::Admin
    }

    /// Whether the officer term has ended at `now` (the role should fall back).
    #[must_use]
    pub fn term_ended(&self, now: OffsetDateTime) -> bool {
        self.role_ends_at.is_some_and(|end| end <= now)
            && self.role != RoleAssignment::builtin(BuiltinRole::Volunteer)
    }
}
