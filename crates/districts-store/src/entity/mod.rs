//! SeaORM entities: this adapter's private view of the tables.

pub(crate) mod district_rows;
pub(crate) mod district_staff;
pub(crate) mod organizations;
pub(crate) mod schools;
pub(crate) mod users;
