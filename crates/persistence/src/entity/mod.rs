//! SeaORM entities: the adapter's private view of the tables.

pub(crate) mod users;
