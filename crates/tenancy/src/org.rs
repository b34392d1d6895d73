use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{OrgId, SignupCode};

/// What kind of parent-teacher organization this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// Parent-Teacher Organization.
    Pto,
    /// Parent-Teacher Association.
    Pta,
    /// Parent-Teacher-Student Association.
    Ptsa,
    /// Any other booster or parent group.
    Other,
}

/// Whether an organization is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgStatus {
    /// In use.
    Active,
    /// Temporarily disabled: members cannot act in it.
    Suspended,
    /// Closed; kept for its history.
    Archived,
}

/// An organization (PTO/PTA): the primary tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    /// Identifier.
    pub id: OrgId,
    /// Display name, e.g. "Sunset Elementary PTO".
    pub name: String,
    /// Kind of organization.
    pub kind: OrgKind,
    /// The school it belongs to, if any.
    pub school_id: Option<Uuid>,
    /// The district above it (through its school), if any.
    pub district_id: Option<Uuid>,
    /// The code people use to join it.
    pub signup_code: SignupCode,
    /// Branding (free-form JSON: colours, logo URL).
    pub branding: serde_json::Value,
    /// Lifecycle status.
    pub status: OrgStatus,
    /// Optimistic-concurrency version, bumped on every update.
    pub version: i64,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}
