use sea_orm::entity::prelude::*;

/// A membership removed softly: restorable by `restore_member`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "removed_memberships")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub builtin_role: Option<String>,
    pub custom_role_id: Option<Uuid>,
    pub status: String,
    pub committee: Option<String>,
    pub profile: Json,
    pub role_ends_at: Option<TimeDateTimeWithTimeZone>,
    pub version: i64,
    pub joined_at: TimeDateTimeWithTimeZone,
    pub removed_at: TimeDateTimeWithTimeZone,
    pub removed_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
