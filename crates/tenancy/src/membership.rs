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
///
/// Serialised in the API's one role shape (`shared/spec/api.md`, "One shape for
/// everything"), also inside audit values: `{"kind": "builtin", "name": "volunteer",
/// "rank": "volunteer"}` or `{"kind": "custom", "name": "Treasurer", "rank":
/// "board_member", "custom_role_id": "…", "extra_keys": […]}`. The earlier shape
/// (`{"kind": "builtin", "role": …}`, `{"kind": "custom", "id": …, "counts_as": …}`) is
/// still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "RoleShape", try_from = "RoleShape")]
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

/// [`RoleAssignment`] as written (both shapes read; the one shape written).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RoleShape {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rank: Option<BuiltinRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    custom_role_id: Option<RoleId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extra_keys: Option<KeySet>,
    // The earlier shape.
    #[serde(default, skip_serializing)]
    role: Option<BuiltinRole>,
    #[serde(default, skip_serializing)]
    id: Option<RoleId>,
    #[serde(default, skip_serializing)]
    counts_as: Option<BuiltinRole>,
}

impl From<RoleAssignment> for RoleShape {
    fn from(r: RoleAssignment) -> Self {
        let blank = Self {
            kind: String::new(),
            name: None,
            rank: None,
            custom_role_id: None,
            extra_keys: None,
            role: None,
            id: None,
            counts_as: None,
        };
        match r {
            RoleAssignment::Builtin { role } => Self {
                kind: "builtin".into(),
                name: Some(role.as_str().to_owned()),
                rank: Some(role),
                ..blank
            },
            RoleAssignment::Custom {
                id,
                name,
                counts_as,
                extra_keys,
            } => Self {
                kind: "custom".into(),
                name: Some(name),
                rank: Some(counts_as),
                custom_role_id: Some(id),
                extra_keys: Some(extra_keys),
                ..blank
            },
        }
    }
}

impl TryFrom<RoleShape> for RoleAssignment {
    type Error = String;
    fn try_from(s: RoleShape) -> Result<Self, String> {
        match s.kind.as_str() {
            "builtin" => s
                .rank
                .or(s.role)
                .map(|role| Self::Builtin { role })
                .ok_or_else(|| "a built-in role needs its rank".to_owned()),
            "custom" => Ok(Self::Custom {
                id: s
                    .custom_role_id
                    .or(s.id)
                    .ok_or_else(|| "a custom role needs its custom_role_id".to_owned())?,
                name: s.name.unwrap_or_default(),
                counts_as: s
                    .rank
                    .or(s.counts_as)
                    .ok_or_else(|| "a custom role needs its rank".to_owned())?,
                extra_keys: s.extra_keys.unwrap_or_default(),
            }),
            other => Err(format!("unknown role kind `{other}`")),
        }
    }
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
    /// When they last confirmed their details (the org's "confirm your details"
    /// cycle, `crate::privacy::ConfirmationCycle`), if ever.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub details_confirmed_at: Option<OffsetDateTime>,
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

#[cfg(test)]
mod role_shape_tests {
    use super::*;

    #[test]
    fn roles_are_written_in_the_one_shape_and_both_shapes_are_read() {
        let builtin = RoleAssignment::builtin(BuiltinRole::Volunteer);
        assert_eq!(
            serde_json::to_value(&builtin).expect("role json"),
            serde_json::json!({"kind": "builtin", "name": "volunteer", "rank": "volunteer"})
        );
        let id = RoleId(Uuid::from_u128(7));
        let custom = RoleAssignment::Custom {
            id,
            name: "Treasurer".into(),
            counts_as: BuiltinRole::BoardMember,
            extra_keys: KeySet::default(),
        };
        let written = serde_json::to_value(&custom).expect("role json");
        assert_eq!(written["kind"], "custom");
        assert_eq!(written["name"], "Treasurer");
        assert_eq!(written["rank"], "board_member");
        assert_eq!(written["custom_role_id"], id.0.to_string());
        for value in [written, serde_json::to_value(&builtin).expect("role json")] {
            let back: RoleAssignment = serde_json::from_value(value.clone()).expect("role json");
            assert_eq!(serde_json::to_value(&back).expect("role json"), value);
        }
        let old: RoleAssignment =
            serde_json::from_value(serde_json::json!({"kind": "builtin", "role": "admin"}))
                .expect("role json");
        assert_eq!(old, RoleAssignment::builtin(BuiltinRole::Admin));
        let old: RoleAssignment = serde_json::from_value(serde_json::json!({
            "kind": "custom", "id": id.0, "name": "Treasurer", "counts_as": "board_member", "extra_keys": []
        }))
        .expect("role json");
        assert_eq!(old, custom);
        assert!(
            serde_json::from_value::<RoleAssignment>(serde_json::json!({"kind": "boss"})).is_err()
        );
    }
}
