use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, SqlErr};
use tenancy::ports::{CreateUserError, CreateUserRequest, FindUserError, UserRepository};
use tenancy::{Email, PersonName, User, UserId, UserStatus};
use time::OffsetDateTime;

use crate::entity::users;
use crate::error::boxed;
use crate::{Database, StorageError};

/// [`UserRepository`] on SeaORM (PostgreSQL or SQLite).
#[derive(Debug, Clone)]
pub struct SeaOrmUserRepository {
    db: Database,
}

impl SeaOrmUserRepository {
    /// A repository over the given database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn to_domain(m: users::Model) -> Result<User, StorageError> {
    let corrupt = |what: &str| StorageError::Query(format!("corrupt users row {}: {what}", m.id));
    Ok(User {
        id: UserId::from_uuid(m.id),
        email: Email::parse(&m.email).map_err(|_| corrupt("email"))?,
        first_name: PersonName::parse(&m.first_name).map_err(|_| corrupt("first_name"))?,
        last_name: PersonName::parse(&m.last_name).map_err(|_| corrupt("last_name"))?,
        status: match m.status.as_str() {
            "active" => UserStatus::Active,
            "disabled" => UserStatus::Disabled,
            _ => return Err(corrupt("status")),
        },
        created_at: m.created_at,
    })
}

impl UserRepository for SeaOrmUserRepository {
    async fn create_user(&self, req: CreateUserRequest) -> Result<User, CreateUserError> {
        let now = now_micros();
        let row = users::ActiveModel {
            id: Set(UserId::new().as_uuid()),
            email: Set(req.email.as_str().to_owned()),
            first_name: Set(req.first_name.as_str().to_owned()),
            last_name: Set(req.last_name.as_str().to_owned()),
            password_hash: Set(req.password_hash),
            status: Set("active".to_owned()),
            is_platform_admin: Set(false),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        };
        let model = row.insert(self.db.primary()).await.map_err(|e| {
            if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
                CreateUserError::Duplicate {
                    email: req.email.clone(),
                }
            } else {
                CreateUserError::Unexpected(boxed(e))
            }
        })?;
        to_domain(model).map_err(|e| CreateUserError::Unexpected(Box::new(e)))
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, FindUserError> {
        let found = users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .filter(users::Column::DeletedAt.is_null())
            .one(self.db.primary())
            .await
            .map_err(|e| FindUserError::Unexpected(boxed(e)))?;
        found
            .map(to_domain)
            .transpose()
            .map_err(|e| FindUserError::Unexpected(Box::new(e)))
    }
}

/// The current time truncated to microseconds, the precision both backends store.
pub(crate) fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}
