use sea_orm::entity::prelude::*;

/// An org's directory policy (`tenancy::privacy::DirectoryPolicy`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "directory_policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: Uuid,
    pub phone: bool,
    pub email: bool,
    pub committee: bool,
    pub children_and_grades: bool,
    pub listing: String,
    pub children_data: bool,
    pub confirm_starts_on: Option<TimeDate>,
    pub confirm_by: Option<TimeDate>,
    pub version: i64,
    pub updated_at: TimeDateTimeWithTimeZone,
    pub updated_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
