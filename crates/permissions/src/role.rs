//! Built-in roles and their ranks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the four built-in roles.
///
/// Every role a member holds — built-in or custom —
/// counts as exactly one of these, and its [rank](BuiltinRole::rank) is what the check
/// compares against a permission's minimum role.
///
/// The order of the variants is the order of the ranks, so `Ord` compares ranks:
///
/// ```
/// use permissions::BuiltinRole;
///
/// assert!(BuiltinRole::Volunteer < BuiltinRole::CommitteeLead);
/// assert!(BuiltinRole::Admin > BuiltinRole::BoardMember);
/// assert_eq!(BuiltinRole::BoardMember.rank(), 3);
/// assert_eq!("committee_lead".parse::<BuiltinRole>(), Ok(BuiltinRole::CommitteeLead));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinRole {
    /// Rank 1: a volunteer.
    Volunteer,
    /// Rank 2: a committee lead.
    CommitteeLead,
    /// Rank 3: a board member.
    BoardMember,
    /// Rank 4: an org admin.
    Admin,
}

impl BuiltinRole {
    /// All built-in roles, lowest rank first.
    pub const ALL: [Self; 4] = [
        Self::Volunteer,
        Self::CommitteeLead,
        Self::BoardMember,
        Self::Admin,
    ];

    /// The position in [`BuiltinRole::ALL`] (`rank() - 1`), for per-role tables.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// The rank: 1 for volunteer up to 4 for admin.
    #[must_use]
    pub const fn rank(self) -> u8 {
        match self {
            Self::Volunteer => 1,
            Self::CommitteeLead => 2,
            Self::BoardMember => 3,
            Self::Admin => 4,
        }
    }

    /// The `snake_case` name, as used in JSON and in the database.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Volunteer => "volunteer",
            Self::CommitteeLead => "committee_lead",
            Self::BoardMember => "board_member",
            Self::Admin => "admin",
        }
    }

    /// Parses a `snake_case` role name; same as [`str::parse`].
    ///
    /// # Errors
    /// [`UnknownRoleError`] when the name is not one of the four built-in roles.
    pub fn parse(name: &str) -> Result<Self, UnknownRoleError> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| UnknownRoleError {
                name: name.to_owned(),
            })
    }
}

impl fmt::Display for BuiltinRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for BuiltinRole {
    type Err = UnknownRoleError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name)
    }
}

/// A role name that is not one of the built-in roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown built-in role `{name}` (expected volunteer, committee_lead, board_member or admin)"
)]
pub struct UnknownRoleError {
    /// The name that was given.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_one_to_four_in_declaration_order() {
        let ranks: Vec<u8> = BuiltinRole::ALL.iter().map(|role| role.rank()).collect();
        assert_eq!(ranks, [1, 2, 3, 4]);
        let mut sorted = BuiltinRole::ALL;
        sorted.sort();
        assert_eq!(sorted, BuiltinRole::ALL);
    }

    #[test]
    fn names_round_trip_through_parse_and_serde() {
        for role in BuiltinRole::ALL {
            assert_eq!(BuiltinRole::parse(role.as_str()), Ok(role));
            let json = serde_json::to_string(&role).expect("serialize");
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            let back: BuiltinRole = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, role);
        }
    }

    #[test]
    fn unknown_role_is_an_error() {
        let error = "treasurer"
            .parse::<BuiltinRole>()
            .expect_err("not built in");
        assert_eq!(error.name, "treasurer");
        assert!(serde_json::from_str::<BuiltinRole>("\"Admin\"").is_err());
    }
}
