use ids::UserId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::DistrictCode;

pub use ids::{DistrictId, SchoolId};

/// A string is not one of the names of an enumeration stored as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what}: {value:?}")]
pub struct UnknownVariant {
    /// What was being parsed (`"subscription tier"`, `"district staff role"`).
    pub what: &'static str,
    /// The rejected input.
    pub value: String,
}

/// The commercial tier a district subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionTier {
    /// Free tier.
    Basic,
    /// Paid tier.
    Professional,
    /// Enterprise tier (templates with locks, compliance exports).
    Enterprise,
}

impl SubscriptionTier {
    /// Its storage and wire name: `basic`, `professional` or `enterprise`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Professional => "professional",
            Self::Enterprise => "enterprise",
        }
    }

    /// Parses the storage and wire name.
    ///
    /// # Errors
    /// [`UnknownVariant`] for any other string.
    pub fn parse(s: &str) -> Result<Self, UnknownVariant> {
        match s {
            "basic" => Ok(Self::Basic),
            "professional" => Ok(Self::Professional),
            "enterprise" => Ok(Self::Enterprise),
            _ => Err(UnknownVariant {
                what: "subscription tier",
                value: s.to_owned(),
            }),
        }
    }
}

/// A district's free-form settings: always a JSON object.
pub type DistrictSettings = serde_json::Map<String, serde_json::Value>;

/// A school district: an enterprise customer above schools and their PTOs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct District {
    /// Identifier.
    pub id: DistrictId,
    /// Display name.
    pub name: String,
    /// Unique code.
    pub code: DistrictCode,
    /// Subscription tier.
    pub tier: SubscriptionTier,
    /// Free-form settings (a JSON object).
    pub settings: DistrictSettings,
    /// Optimistic-concurrency version, bumped on every update.
    pub version: i64,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A school; belongs to at most one district.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct School {
    /// Identifier.
    pub id: SchoolId,
    /// The district it belongs to, if any.
    pub district_id: Option<DistrictId>,
    /// Display name.
    pub name: String,
    /// Code, unique within the district (standalone schools' codes are not unique).
    pub code: DistrictCode,
    /// Grade levels taught, in canonical order, e.g. `["K", "1", "2"]`.
    pub grade_levels: Vec<String>,
    /// Optimistic-concurrency version, bumped on every update (and move).
    pub version: i64,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A district staff role: manages (admin) or only sees (viewer) the district.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistrictStaffRole {
    /// Manages the district's schools, orgs and permission templates.
    DistrictAdmin,
    /// Read-only access to the district.
    DistrictViewer,
}

impl DistrictStaffRole {
    /// Its storage and wire name: `district_admin` or `district_viewer`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DistrictAdmin => "district_admin",
            Self::DistrictViewer => "district_viewer",
        }
    }

    /// Parses the storage and wire name.
    ///
    /// # Errors
    /// [`UnknownVariant`] for any other string.
    pub fn parse(s: &str) -> Result<Self, UnknownVariant> {
        match s {
            "district_admin" => Ok(Self::DistrictAdmin),
            "district_viewer" => Ok(Self::DistrictViewer),
            _ => Err(UnknownVariant {
                what: "district staff role",
                value: s.to_owned(),
            }),
        }
    }
}

/// One user's staff role in one district.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistrictStaff {
    /// The district.
    pub district_id: DistrictId,
    /// The staff member.
    pub user_id: UserId,
    /// Their role.
    pub role: DistrictStaffRole,
    /// When they were added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Version of their role (1 when added, one more with every change).
    pub version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_their_names() {
        for t in [
            SubscriptionTier::Basic,
            SubscriptionTier::Professional,
            SubscriptionTier::Enterprise,
        ] {
            assert_eq!(SubscriptionTier::parse(t.as_str()), Ok(t));
            assert_eq!(
                serde_json::to_value(t).ok(),
                Some(serde_json::Value::from(t.as_str()))
            );
        }
        for r in [
            DistrictStaffRole::DistrictAdmin,
            DistrictStaffRole::DistrictViewer,
        ] {
            assert_eq!(DistrictStaffRole::parse(r.as_str()), Ok(r));
            assert_eq!(
                serde_json::to_value(r).ok(),
                Some(serde_json::Value::from(r.as_str()))
            );
        }
        assert!(SubscriptionTier::parse("gold").is_err());
        assert!(DistrictStaffRole::parse("admin").is_err());
    }
}
