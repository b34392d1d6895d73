use sea_orm::entity::prelude::*;

/// Only the columns this adapter reads or writes: an org's name and status (listed by
/// district and school), its place in the hierarchy and the version of its effective
/// permissions.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub school_id: Option<Uuid>,
    pub district_id: Option<Uuid>,
    pub version: i64,
    pub permissions_version: i64,
    pub updated_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
