use sea_orm::entity::prelude::*;

/// A member's privacy choices in one org (`tenancy::privacy::PrivacyChoices`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "member_privacy")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub listing: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub committee: Option<String>,
    pub children_and_grades: Option<String>,
    pub notice_version: Option<i64>,
    pub chosen_at: TimeDateTimeWithTimeZone,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
