//! Ports: what the district domain needs from storage, in the domain's words.
//!
//! One port, [`DistrictRepository`], covers districts, their schools and their staff.
//! Every write takes an [`AuditContext`] (who acts, from where) and the adapter writes
//! the audit event **in the same transaction** as the change: district-level events go
//! to the district's chain (`TenantScope::district(id)`), events about an org (whose
//! district changes with its school) to the org's chain. Action names:
//!
//! | operation | action(s) |
//! |---|---|
//! | [`create_district`](DistrictRepository::create_district) | `district.create` |
//! | [`update_district`](DistrictRepository::update_district) | `district.update` |
//! | [`delete_district`](DistrictRepository::delete_district) | `district.delete`, `org.district.change` per detached org |
//! | [`create_school`](DistrictRepository::create_school) | `school.create` |
//! | [`update_school`](DistrictRepository::update_school) | `school.update` |
//! | [`delete_school`](DistrictRepository::delete_school) | `school.delete` |
//! | [`move_school`](DistrictRepository::move_school) | `school.move` (in the chain of each district involved), `org.district.change` per org of the school |
//! | [`move_org`](DistrictRepository::move_org) | `org.move` (in the org's chain, scoped to the district it is in afterwards, else before) |
//! | [`set_staff`](DistrictRepository::set_staff) | `district_staff.add` or `district_staff.change` |
//! | [`remove_staff`](DistrictRepository::remove_staff) | `district_staff.remove` |
//!
//! School and standalone-school events without any district go to the platform chain.

use std::future::Future;

use ids::{OrgId, UserId};

use crate::{
    DisplayName, District, DistrictCode, DistrictId, DistrictSettings, DistrictStaff,
    DistrictStaffRole, GradeLevels, School, SchoolId, SubscriptionTier,
};

pub use audit::AuditContext;

/// An adapter's own error, carried opaquely through the domain to the edge (which may
/// downcast it to classify an outage).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request to create a district.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateDistrictRequest {
    /// Display name.
    pub name: DisplayName,
    /// Unique code (normalized by [`DistrictCode::parse`]).
    pub code: DistrictCode,
    /// Subscription tier.
    pub tier: SubscriptionTier,
    /// Initial settings (usually empty).
    pub settings: DistrictSettings,
}

/// Changes to a district (absent fields stay as they are).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DistrictChanges {
    /// New name.
    pub name: Option<DisplayName>,
    /// New code (must stay unique).
    pub code: Option<DistrictCode>,
    /// New subscription tier.
    pub tier: Option<SubscriptionTier>,
    /// New settings (replace the old ones as a whole).
    pub settings: Option<DistrictSettings>,
}

impl DistrictChanges {
    /// Whether the changes touch what only a platform admin may change (tier, code).
    #[must_use]
    pub fn touches_tier_or_code(&self) -> bool {
        self.tier.is_some() || self.code.is_some()
    }
}

/// Which page of districts to list: those with an id greater than `after`, in id
/// order, at most `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistrictPageRequest {
    after: Option<DistrictId>,
    limit: u32,
}

impl DistrictPageRequest {
    /// The default page size.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page size; larger requests are cut to it.
    pub const MAX_LIMIT: u32 = 200;

    /// A page after the cursor `after` (`None`: the first page); `limit` is clamped to
    /// `1..=MAX_LIMIT`.
    #[must_use]
    pub fn new(after: Option<DistrictId>, limit: u32) -> Self {
        Self {
            after,
            limit: limit.clamp(1, Self::MAX_LIMIT),
        }
    }

    /// The cursor: list districts with a greater id.
    #[must_use]
    pub fn after(&self) -> Option<DistrictId> {
        self.after
    }

    /// The page size.
    #[must_use]
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Builds the page from up to `limit + 1` rows fetched in id order: the extra row,
    /// if present, only tells that there is a next page.
    #[must_use]
    pub fn page(&self, mut rows: Vec<District>) -> DistrictPage {
        let limit = self.limit as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_after = if more {
            rows.last().map(|d| d.id)
        } else {
            None
        };
        DistrictPage {
            items: rows,
            next_after,
        }
    }
}

impl Default for DistrictPageRequest {
    fn default() -> Self {
        Self::new(None, Self::DEFAULT_LIMIT)
    }
}

/// One page of districts.
#[derive(Debug, Clone, PartialEq)]
pub struct DistrictPage {
    /// The districts, in id order.
    pub items: Vec<District>,
    /// The cursor of the next page; `None` on the last page.
    pub next_after: Option<DistrictId>,
}

/// What deleting a district did.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedDistrict {
    /// The district as it was.
    pub district: District,
    /// Its schools, now standalone.
    pub detached_schools: Vec<SchoolId>,
    /// Its orgs, now without a district (their `permissions_version` was bumped).
    pub detached_orgs: Vec<OrgId>,
    /// Its staff, removed with it.
    pub removed_staff: Vec<DistrictStaff>,
}

/// A request to create a school.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSchoolRequest {
    /// The district it belongs to; `None` for a standalone school.
    pub district_id: Option<DistrictId>,
    /// Display name.
    pub name: DisplayName,
    /// Code, unique within the district.
    pub code: DistrictCode,
    /// Grades taught.
    pub grade_levels: GradeLevels,
}

/// Changes to a school (absent fields stay as they are). Its district changes only by
/// [`DistrictRepository::move_school`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchoolChanges {
    /// New name.
    pub name: Option<DisplayName>,
    /// New code (must stay unique within the district).
    pub code: Option<DistrictCode>,
    /// New grade levels.
    pub grade_levels: Option<GradeLevels>,
}

/// What moving a school did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchoolMove {
    /// The school after the move.
    pub school: School,
    /// The district it left, if any.
    pub from: Option<DistrictId>,
    /// The school's orgs, whose district changed with it and whose
    /// `permissions_version` was bumped (their effective permissions change at once).
    /// Empty when nothing moved.
    pub affected_orgs: Vec<OrgId>,
}

/// A read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Why a district could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateDistrictError {
    /// The code is taken.
    #[error("a district with code {code} already exists")]
    DuplicateCode {
        /// The conflicting code.
        code: DistrictCode,
    },
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Why a district could not be updated.
#[derive(Debug, thiserror::Error)]
pub enum UpdateDistrictError {
    /// No such district.
    #[error("no such district")]
    NotFound,
    /// It changed since the version the caller saw.
    #[error("the district changed (now at version {current})")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// The new code is taken.
    #[error("a district with code {code} already exists")]
    DuplicateCode {
        /// The conflicting code.
        code: DistrictCode,
    },
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Why a district could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteDistrictError {
    /// No such district.
    #[error("no such district")]
    NotFound,
    /// It changed since the version the caller saw.
    #[error("the district changed (now at version {current})")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Why a school could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateSchoolError {
    /// The district does not exist.
    #[error("no such district")]
    DistrictNotFound,
    /// The district already has a school with this code.
    #[error("the district already has a school with code {code}")]
    DuplicateCode {
        /// The conflicting code.
        code: DistrictCode,
    },
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Why a school could not be updated.
#[derive(Debug, thiserror::Error)]
pub enum UpdateSchoolError {
    /// No such school.
    #[error("no such school")]
    NotFound,
    /// It changed since the version the caller saw.
    #[error("the school changed (now at version {current})")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// The district already has a school with the new code.
    #[error("the district already has a school with code {code}")]
    DuplicateCode {
        /// The conflicting code.
        code: DistrictCode,
    },
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Why a school could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum MoveSchoolError {
    /// No such school.
    #[error("no such school")]
    NotFound,
    /// The target district does not exist.
    #[error("no such district")]
    DistrictNotFound,
    /// It changed since the version the caller saw.
    #[error("the school changed (now at version {current})")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// The target district already has a school with this school's code.
    #[error("the target district already has a school with code {code}")]
    DuplicateCode {
        /// The conflicting code.
        code: DistrictCode,
    },
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Why a staff role could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SetStaffError {
    /// No such district.
    #[error("no such district")]
    DistrictNotFound,
    /// No such user.
    #[error("no such user")]
    UserNotFound,
    /// Their staff role is no longer at the version the caller read.
    #[error("the staff role changed (now version {current})")]
    VersionMismatch {
        /// Its version now (0: not staff).
        current: i64,
    },
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Where an org sits in the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OrgPlacement {
    /// The org.
    pub org_id: OrgId,
    /// Its school, if any.
    pub school_id: Option<SchoolId>,
    /// Its district (its school's, if it has a school), if any.
    pub district_id: Option<DistrictId>,
    /// The org's version (bumped by a move).
    pub version: i64,
}

/// The outcome of moving an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgMove {
    /// Where it was.
    pub before: OrgPlacement,
    /// Where it is now.
    pub after: OrgPlacement,
}

impl OrgMove {
    /// Whether the org's effective permissions may have changed (its school or
    /// district changed: templates apply per school and district).
    #[must_use]
    pub fn permissions_changed(&self) -> bool {
        self.before.school_id != self.after.school_id
            || self.before.district_id != self.after.district_id
    }
}

/// Why an org could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum MoveOrgError {
    /// No such org (or the caller may not see it).
    #[error("no such organization")]
    NotFound,
    /// The target school does not exist.
    #[error("no such school")]
    SchoolNotFound,
    /// It changed since the version the caller saw.
    #[error("the organization changed (now at version {current})")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Why a school could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteSchoolError {
    /// No such school.
    #[error("no such school")]
    NotFound,
    /// It changed since the version the caller saw.
    #[error("the school changed (now at version {current})")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// Orgs are still placed at the school (move them first).
    #[error("{count} organization(s) are still placed at the school")]
    HasOrgs {
        /// How many.
        count: u64,
    },
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Where to look for placed orgs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgScope {
    /// The orgs of a district (through any of its schools).
    District(DistrictId),
    /// The orgs of one school.
    School(SchoolId),
}

/// An org placed in a district or school, as a list of them shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedOrg {
    /// Where it sits (and its version).
    pub placement: OrgPlacement,
    /// Its name.
    pub name: String,
    /// Its status (`active`, …).
    pub status: String,
}

/// Why a staff member could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveStaffError {
    /// The user is not staff of that district.
    #[error("no such district staff member")]
    NotFound,
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

macro_rules! from_read_error {
    ($($t:ty),*) => {$(
        impl From<ReadError> for $t {
            fn from(e: ReadError) -> Self {
                match e {
                    ReadError::Unexpected(e) => Self::Unexpected(e),
                }
            }
        }
    )*};
}

from_read_error!(
    CreateDistrictError,
    UpdateDistrictError,
    DeleteDistrictError,
    CreateSchoolError,
    UpdateSchoolError,
    MoveSchoolError,
    MoveOrgError,
    SetStaffError,
    RemoveStaffError,
    DeleteSchoolError
);

/// Storage of districts, their schools and their staff.
///
/// # Deleting a district
/// [`delete_district`](Self::delete_district) **detaches** what outlives the district
/// and **cascades** to what exists only for it, in one transaction:
/// * its schools become standalone (`schools.district_id` becomes NULL — the foreign
///   key's `ON DELETE SET NULL`, done explicitly so their version is bumped);
/// * its orgs lose their district (`organizations.district_id` becomes NULL) and their
///   `permissions_version` is bumped: district templates no longer apply to them;
/// * its staff and its permission templates are deleted (foreign keys `ON DELETE
///   CASCADE`).
///
/// # Moving a school
/// [`move_school`](Self::move_school) updates, in one transaction, the school's
/// district, the denormalized `organizations.district_id` of every org of the school
/// (bumping their `permissions_version`: their effective permissions change at once),
/// and writes the audit events; it returns the affected orgs so callers can invalidate
/// caches.
#[cfg_attr(test, mockall::automock)]
pub trait DistrictRepository: Send + Sync + 'static {
    /// Creates a district (`district.create`).
    fn create_district(
        &self,
        ctx: &AuditContext,
        req: CreateDistrictRequest,
    ) -> impl Future<Output = Result<District, CreateDistrictError>> + Send;

    /// Loads a district by id; `None` if it does not exist.
    fn get_district(
        &self,
        id: DistrictId,
    ) -> impl Future<Output = Result<Option<District>, ReadError>> + Send;

    /// Lists districts in id order, one page at a time (keyset cursor on the id).
    fn list_districts(
        &self,
        page: DistrictPageRequest,
    ) -> impl Future<Output = Result<DistrictPage, ReadError>> + Send;

    /// Changes a district's name, code, tier or settings (`district.update`); with
    /// `expected_version`, refuses if the district changed since. Bumps its version.
    fn update_district(
        &self,
        ctx: &AuditContext,
        id: DistrictId,
        expected_version: Option<i64>,
        changes: DistrictChanges,
    ) -> impl Future<Output = Result<District, UpdateDistrictError>> + Send;

    /// Deletes a district (`district.delete`): detaches its schools and orgs, bumps the
    /// orgs' `permissions_version`, cascades to its staff and permission templates (see
    /// the trait documentation).
    fn delete_district(
        &self,
        ctx: &AuditContext,
        id: DistrictId,
        expected_version: Option<i64>,
    ) -> impl Future<Output = Result<DeletedDistrict, DeleteDistrictError>> + Send;

    /// Creates a school in a district or standalone (`school.create`).
    fn create_school(
        &self,
        ctx: &AuditContext,
        req: CreateSchoolRequest,
    ) -> impl Future<Output = Result<School, CreateSchoolError>> + Send;

    /// Loads a school by id; `None` if it does not exist.
    fn get_school(
        &self,
        id: SchoolId,
    ) -> impl Future<Output = Result<Option<School>, ReadError>> + Send;

    /// The schools of a district, by code.
    fn list_schools(
        &self,
        district: DistrictId,
    ) -> impl Future<Output = Result<Vec<School>, ReadError>> + Send;

    /// Changes a school's name, code or grade levels (`school.update`); with
    /// `expected_version`, refuses if the school changed since. Bumps its version.
    fn update_school(
        &self,
        ctx: &AuditContext,
        id: SchoolId,
        expected_version: Option<i64>,
        changes: SchoolChanges,
    ) -> impl Future<Output = Result<School, UpdateSchoolError>> + Send;

    /// Deletes a school that no org is placed at any more (`school.delete`); with
    /// `expected_version`, refuses if the school changed since. Its permission templates
    /// go with it.
    fn delete_school(
        &self,
        ctx: &AuditContext,
        id: SchoolId,
        expected_version: Option<i64>,
    ) -> impl Future<Output = Result<School, DeleteSchoolError>> + Send;

    /// The orgs placed in a district or school, in id order, at most `limit` of them
    /// after the org `after` (keyset).
    fn list_orgs(
        &self,
        scope: OrgScope,
        after: Option<OrgId>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<PlacedOrg>, ReadError>> + Send;

    /// How many orgs are placed in a district or school.
    fn count_orgs(&self, scope: OrgScope) -> impl Future<Output = Result<u64, ReadError>> + Send;

    /// Moves a school to another district, or out of any (`to: None`), together with
    /// its orgs (see the trait documentation). Moving it where it already is changes
    /// nothing and returns no affected orgs.
    fn move_school(
        &self,
        ctx: &AuditContext,
        id: SchoolId,
        to: Option<DistrictId>,
        expected_version: Option<i64>,
    ) -> impl Future<Output = Result<SchoolMove, MoveSchoolError>> + Send;

    /// Where an org sits; `None` if there is no such org.
    fn org_placement(
        &self,
        org: OrgId,
    ) -> impl Future<Output = Result<Option<OrgPlacement>, ReadError>> + Send;

    /// Moves an org to a school (taking that school's district) or out of any
    /// (`to: None`; it keeps no district). With `expected_version`, refuses if the org
    /// changed since. Bumps the org's version and, when its school or district
    /// changes, its `permissions_version`. Moving it where it already is writes
    /// nothing.
    fn move_org(
        &self,
        ctx: &AuditContext,
        org: OrgId,
        to: Option<SchoolId>,
        expected_version: Option<i64>,
    ) -> impl Future<Output = Result<OrgMove, MoveOrgError>> + Send;

    /// The district of a school; `None` for a standalone or unknown school.
    fn district_of_school(
        &self,
        school: SchoolId,
    ) -> impl Future<Output = Result<Option<DistrictId>, ReadError>> + Send;

    /// Adds a user to a district's staff, or changes their role
    /// (`district_staff.add` / `district_staff.change`; nothing is written if the role
    /// is unchanged). With `expected_version`, only if their staff role is still at
    /// that version (0: not staff yet).
    fn set_staff(
        &self,
        ctx: &AuditContext,
        district: DistrictId,
        user: UserId,
        role: DistrictStaffRole,
        expected_version: Option<i64>,
    ) -> impl Future<Output = Result<DistrictStaff, SetStaffError>> + Send;

    /// Removes a user from a district's staff (`district_staff.remove`).
    fn remove_staff(
        &self,
        ctx: &AuditContext,
        district: DistrictId,
        user: UserId,
    ) -> impl Future<Output = Result<DistrictStaff, RemoveStaffError>> + Send;

    /// A district's staff, oldest first.
    fn list_staff(
        &self,
        district: DistrictId,
    ) -> impl Future<Output = Result<Vec<DistrictStaff>, ReadError>> + Send;

    /// A user's staff role in a district, if any.
    fn staff_role(
        &self,
        district: DistrictId,
        user: UserId,
    ) -> impl Future<Output = Result<Option<DistrictStaffRole>, ReadError>> + Send;

    /// The districts a user is staff of, with their role there.
    fn districts_of(
        &self,
        user: UserId,
    ) -> impl Future<Output = Result<Vec<(DistrictId, DistrictStaffRole)>, ReadError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn district(n: u128) -> District {
        District {
            id: DistrictId::from_uuid(uuid::Uuid::from_u128(n)),
            name: format!("D{n}"),
            code: DistrictCode::parse(&format!("D{n}")).expect("code"),
            tier: SubscriptionTier::Basic,
            settings: DistrictSettings::new(),
            version: 1,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn page_limits_are_clamped() {
        assert_eq!(DistrictPageRequest::new(None, 0).limit(), 1);
        assert_eq!(DistrictPageRequest::new(None, 10_000).limit(), 200);
        assert_eq!(DistrictPageRequest::default().limit(), 50);
    }

    #[test]
    fn the_extra_row_only_signals_a_next_page() {
        let req = DistrictPageRequest::new(None, 2);
        let page = req.page((1..=3).map(district).collect());
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_after, Some(district(2).id));
        let last = req.page((1..=2).map(district).collect());
        assert_eq!(last.items.len(), 2);
        assert_eq!(last.next_after, None);
    }

    #[test]
    fn tier_and_code_are_platform_changes() {
        assert!(!DistrictChanges::default().touches_tier_or_code());
        assert!(
            DistrictChanges {
                tier: Some(SubscriptionTier::Enterprise),
                ..DistrictChanges::default()
            }
            .touches_tier_or_code()
        );
    }
}
