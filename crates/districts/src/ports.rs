//! Ports: what the district domain needs from storage, in the domain's words.

use std::future::Future;

use crate::{District, DistrictCode, DistrictId, SubscriptionTier};

/// An adapter's own error, carried opaquely through the domain to the edge (which may
/// downcast it to classify an outage).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request to create a district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateDistrictRequest {
    /// Display name.
    pub name: String,
    /// Unique code.
    pub code: DistrictCode,
    /// Subscription tier.
    pub tier: SubscriptionTier,
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

/// Why a district lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum GetDistrictError {
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Storage of districts.
#[cfg_attr(test, mockall::automock)]
pub trait DistrictRepository: Send + Sync + 'static {
    /// Creates a district.
    fn create_district(
        &self,
        req: CreateDistrictRequest,
    ) -> impl Future<Output = Result<District, CreateDistrictError>> + Send;

    /// Loads a district by id; `None` if it does not exist.
    fn get_district(
        &self,
        id: DistrictId,
    ) -> impl Future<Output = Result<Option<District>, GetDistrictError>> + Send;
}
