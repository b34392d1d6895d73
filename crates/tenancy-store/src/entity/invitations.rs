use sea_orm::entity::prelude::*;

/// An org's invitation of an e-mail address (the role and profile as the org typed them).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub email: String,
    pub builtin_role: Option<String>,
    pub custom_role_id: Option<Uuid>,
    pub first_name: String,
    pub last_name: String,
    pub phone: Option<String>,
    pub committee: Option<String>,
    pub profile: Json,
    pub status: String,
    pub invited_by: Option<Uuid>,
    pub created_at: TimeDateTimeWithTimeZone,
    pub expires_at: TimeDateTimeWithTimeZone,
    pub updated_at: TimeDateTimeWithTimeZone,
    pub version: i64,
    pub token_hash: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
