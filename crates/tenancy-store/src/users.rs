use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, SqlErr};
use tenancy::ports::{
    AccountWrite, AuditContext, CreateUserError, CreateUserRequest, FindUserError, UserRepository,
};
use tenancy::{Email, User, UserId};

use crate::convert;
use crate::entity::users;
use persistence::{Database, now_micros};

/// Activity: an account was opened.
const REGISTER: audit::EventType = audit::EventType::AuthRegister;

/// Activity: the first platform admin was appointed.
const BOOTSTRAP: audit::EventType = audit::EventType::PlatformAdminBootstrap;

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

impl UserRepository for SeaOrmUserRepository {
    async fn create_user(
        &self,
        ctx: &AuditContext,
        req: CreateUserRequest,
    ) -> Result<User, CreateUserError> {
        let unexpected = |e| CreateUserError::Unexpected(persistence::boxed(e));
        let now = now_micros();
        let txn = self.db.begin_write().await.map_err(unexpected)?;
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
            phone: Set(None),
            last_active_at: Set(None),
            email_verified_at: Set(None),
            locale: Set(req.locale.map(String::from)),
        };
        let model = row.insert(&txn).await.map_err(|e| {
            if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
                CreateUserError::Duplicate {
                    email: req.email.clone(),
                }
            } else {
                CreateUserError::Unexpected(persistence::boxed(e))
            }
        })?;
        let user = convert::user(model).map_err(|e| CreateUserError::Unexpected(e.0))?;
        convert::record_activity(&txn, ctx, REGISTER, user.id)
            .await
            .map_err(|e| CreateUserError::Unexpected(e.0))?;
        txn.commit().await.map_err(unexpected)?;
        Ok(user)
    }

    async fn promote_first_platform_admin(
        &self,
        ctx: &AuditContext,
        user: UserId,
    ) -> Result<bool, FindUserError> {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ConnectionTrait, PaginatorTrait};
        let unexpected = |e| FindUserError::Unexpected(persistence::boxed(e));
        let txn = self.db.begin_write().await.map_err(unexpected)?;
        // Take the write lock first (row lock on PostgreSQL, database lock on SQLite) so
        // two concurrent bootstraps cannot both see "no admin yet".
        let lock = sea_orm::sea_query::Query::update()
            .table(users::Entity)
            .value(users::Column::Version, Expr::col(users::Column::Version))
            .and_where(users::Column::Id.eq(user.as_uuid()))
            .to_owned();
        if txn
            .execute(&lock)
            .await
            .map_err(unexpected)?
            .rows_affected()
            == 0
        {
            return Ok(false);
        }
        let existing = users::Entity::find()
            .filter(users::Column::IsPlatformAdmin.eq(true))
            .count(&txn)
            .await
            .map_err(unexpected)?;
        if existing > 0 {
            return Ok(false);
        }
        users::Entity::update_many()
            .col_expr(users::Column::IsPlatformAdmin, Expr::value(true))
            .filter(users::Column::Id.eq(user.as_uuid()))
            .exec(&txn)
            .await
            .map_err(unexpected)?;
        convert::record_activity(&txn, ctx, BOOTSTRAP, user)
            .await
            .map_err(|e| FindUserError::Unexpected(e.0))?;
        txn.commit().await.map_err(unexpected)?;
        Ok(true)
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, FindUserError> {
        let found = users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .filter(users::Column::DeletedAt.is_null())
            .one(self.db.primary())
            .await
            .map_err(|e| FindUserError::Unexpected(persistence::boxed(e)))?;
        found
            .map(convert::user)
            .transpose()
            .map_err(|e| FindUserError::Unexpected(e.0))
    }

    async fn set_locale(
        &self,
        ctx: &AuditContext,
        user: UserId,
        expected_version: i64,
        locale: Option<tenancy::Language>,
    ) -> Result<AccountWrite, FindUserError> {
        use sea_orm::sea_query::Expr;
        let unexpected = |e| FindUserError::Unexpected(persistence::boxed(e));
        let txn = self.db.begin_write().await.map_err(unexpected)?;
        let Some(row) = users::Entity::find_by_id(user.as_uuid())
            .filter(users::Column::DeletedAt.is_null())
            .one(&txn)
            .await
            .map_err(unexpected)?
        else {
            return Ok(AccountWrite::NotFound);
        };
        if row.version != expected_version {
            return Ok(AccountWrite::Stale {
                current: row.version,
            });
        }
        let after = locale.map(String::from);
        let mut version = row.version;
        if row.locale != after {
            // Conditional on the version read: of two concurrent changes one is stale.
            let written = users::Entity::update_many()
                .col_expr(users::Column::Locale, Expr::value(after.clone()))
                .col_expr(users::Column::Version, Expr::value(row.version + 1))
                .col_expr(users::Column::UpdatedAt, Expr::value(now_micros()))
                .filter(users::Column::Id.eq(user.as_uuid()))
                .filter(users::Column::Version.eq(row.version))
                .exec(&txn)
                .await
                .map_err(unexpected)?;
            if written.rows_affected != 1 {
                return Ok(AccountWrite::Stale {
                    current: row.version + 1,
                });
            }
            version = row.version + 1;
            convert::record_all(
                &txn,
                vec![ctx.change(
                    audit::TenantScope::PLATFORM,
                    audit::EventType::UserProfileUpdate,
                    ("user", user.to_string()),
                    audit::ChangeType::Update,
                    (
                        Some(serde_json::json!({ "locale": row.locale })),
                        Some(serde_json::json!({ "locale": after })),
                    ),
                )],
            )
            .await
            .map_err(|e| FindUserError::Unexpected(e.0))?;
        }
        txn.commit().await.map_err(unexpected)?;
        Ok(AccountWrite::Written { version })
    }
}
