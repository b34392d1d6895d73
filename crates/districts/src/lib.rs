//! District tier domain: districts (enterprise customers), their schools and their
//! staff, with the ports the adapters implement.
//!
//! Pure: no framework, database or cache crate. A school belongs to at most one
//! district; its code is unique within that district. District staff manage a
//! district's permission templates and see its schools and orgs, but are not org
//! members by virtue of that.
//!
//! * [`ports::DistrictRepository`]: storage of districts, schools and staff; every
//!   write is audited in its own transaction.
//! * [`rules`]: who may do what (platform admin, district admin, district viewer) and
//!   what moving a school means.
//! * [`service::DistrictService`]: the use cases, applying the rules before writing.

mod code;
mod model;
pub mod ports;
pub mod rules;
pub mod service;
mod values;

pub use code::{DistrictCode, DistrictCodeError};
pub use model::{
    District, DistrictId, DistrictSettings, DistrictStaff, DistrictStaffRole, School, SchoolId,
    SubscriptionTier, UnknownVariant,
};
pub use values::{DisplayName, DisplayNameError, GradeLevelError, GradeLevels};
