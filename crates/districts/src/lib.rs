//! District tier domain: districts (enterprise customers), their schools and their
//! staff, with the ports the adapters implement.
//!
//! Pure: no framework, database or cache crate. A school belongs to at most one
//! district; its code is unique within that district. District staff manage a
//! district's permission templates and see its schools and orgs, but are not org
//! members by virtue of that.

mod code;
mod model;
pub mod ports;

pub use code::{DistrictCode, DistrictCodeError};
pub use model::{District, DistrictId, DistrictStaffRole, School, SchoolId, SubscriptionTier};
