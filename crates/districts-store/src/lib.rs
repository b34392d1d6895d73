//! SeaORM adapter of the districts port ([`districts::ports::DistrictRepository`]):
//! districts, their schools and their staff, on PostgreSQL and SQLite.
//!
//! Every write runs in one database transaction together with its audit events
//! (`audit_store::append_event`), so a change and its record commit or roll back
//! together. Unique violations become the port's `DuplicateCode` errors.
//!
//! Two writes reach beyond the district tables, in the same transaction:
//! * moving a school sets `organizations.district_id` (denormalized from the school) of
//!   every org of the school and bumps their `permissions_version`;
//! * deleting a district detaches its schools and orgs (`district_id` NULL, bumping the
//!   orgs' `permissions_version`) before the row goes, taking its staff and permission
//!   templates with it (`ON DELETE CASCADE`).

mod convert;
mod entity;
mod repo;

pub use repo::SeaOrmDistrictRepository;
