use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::DistrictCode;

/// Identifies a district.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DistrictId(pub Uuid);

/// Identifies a school.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SchoolId(pub Uuid);

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

/// A school district: an enterprise customer above schools and their PTOs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct District {
    /// Identifier.
    pub id: DistrictId,
    /// Display name.
    pub name: String,
    /// Unique code.
    pub code: DistrictCode,
    /// Subscription tier.
    pub tier: SubscriptionTier,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// When it was created.
    pub created_at: OffsetDateTime,
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
    /// Code, unique within the district.
    pub code: DistrictCode,
    /// Grade levels taught, e.g. `["K", "1", "2"]`.
    pub grade_levels: Vec<String>,
    /// Optimistic-concurrency version.
    pub version: i64,
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
