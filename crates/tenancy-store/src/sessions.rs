use audit::EventType;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use tenancy::ports::{
    AuditContext, NewSession, SessionRepository, StorageFailure, StoredCredentials,
};
use tenancy::{Email, Session, UserId};
use time::OffsetDateTime;

use crate::convert::{self, failure};
use crate::entity::{memberships, refresh_tokens, sessions, users};
use persistence::{Database, now_micros};

/// [`SessionRepository`] on SeaORM (PostgreSQL or SQLite).
#[derive(Debug, Clone)]
pub struct SeaOrmSessionRepository {
    db: Database,
}

impl SeaOrmSessionRepository {
    /// A repository over the given database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn session(m: sessions::Model) -> Session {
    Session {
        id: m.id,
        user_id: UserId::from_uuid(m.user_id),
        created_at: m.created_at,
        expires_at: m.expires_at,
        revoked_at: m.revoked_at,
        ip: m.ip,
        user_agent: m.user_agent,
    }
}

fn credentials(m: users::Model) -> Result<StoredCredentials, StorageFailure> {
    let password_hash = m.password_hash.clone();
    let is_platform_admin = m.is_platform_admin;
    let email_verified = m.email_verified_at.is_some();
    Ok(StoredCredentials {
        user: convert::user(m)?,
        password_hash,
        is_platform_admin,
        email_verified,
    })
}

impl SessionRepository for SeaOrmSessionRepository {
    async fn credentials(
        &self,
        email: &Email,
    ) -> Result<Option<StoredCredentials>, StorageFailure> {
        users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .filter(users::Column::DeletedAt.is_null())
            .one(self.db.primary())
            .await
            .map_err(failure)?
            .map(credentials)
            .transpose()
    }

    async fn credentials_by_id(
        &self,
        user: UserId,
    ) -> Result<Option<StoredCredentials>, StorageFailure> {
        users::Entity::find_by_id(user.as_uuid())
            .filter(users::Column::DeletedAt.is_null())
            .one(self.db.primary())
            .await
            .map_err(failure)?
            .map(credentials)
            .transpose()
    }

    async fn create_session(
        &self,
        ctx: &AuditContext,
        new: NewSession,
    ) -> Result<Session, StorageFailure> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let row = sessions::ActiveModel {
            id: Set(new.id),
            user_id: Set(new.user_id.as_uuid()),
            revocation_id: Set(new.revocation_id),
            created_at: Set(now_micros()),
            expires_at: Set(new.expires_at),
            last_seen_at: Set(None),
            revoked_at: Set(None),
            ip: Set(ctx.request.ip.clone()),
            user_agent: Set(ctx
                .request
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(512).collect())),
        }
        .insert(&txn)
        .await
        .map_err(failure)?;
        refresh_tokens::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            session_id: Set(new.id),
            user_id: Set(new.user_id.as_uuid()),
            token_hash: Set(new.refresh_digest),
            created_at: Set(row.created_at),
            expires_at: Set(new.expires_at),
            used_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(failure)?;
        // "Last active" in the member directory is the last sign-in (kept with each
        // membership too, so the directory sorts by it from an index).
        users::Entity::update_many()
            .col_expr(users::Column::LastActiveAt, Expr::value(row.created_at))
            .filter(users::Column::Id.eq(new.user_id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(failure)?;
        memberships::Entity::update_many()
            .col_expr(memberships::Column::ActiveAt, Expr::value(row.created_at))
            .filter(memberships::Column::UserId.eq(new.user_id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(failure)?;
        convert::record_activity(&txn, ctx, EventType::AuthSignIn, new.user_id).await?;
        txn.commit().await.map_err(failure)?;
        Ok(session(row))
    }

    async fn record_failed_sign_in(
        &self,
        ctx: &AuditContext,
        user: UserId,
    ) -> Result<(), StorageFailure> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        convert::record_activity(&txn, ctx, EventType::AuthSignInFailed, user).await?;
        txn.commit().await.map_err(failure)
    }

    async fn get_session(
        &self,
        user: UserId,
        id: uuid::Uuid,
    ) -> Result<Option<Session>, StorageFailure> {
        Ok(sessions::Entity::find_by_id(id)
            .filter(sessions::Column::UserId.eq(user.as_uuid()))
            .one(self.db.primary())
            .await
            .map_err(failure)?
            .map(session))
    }

    async fn list_sessions(&self, user: UserId) -> Result<Vec<Session>, StorageFailure> {
        Ok(sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user.as_uuid()))
            .order_by_desc(sessions::Column::CreatedAt)
            .all(self.db.primary())
            .await
            .map_err(failure)?
            .into_iter()
            .map(session)
            .collect())
    }

    async fn revoke_session(
        &self,
        ctx: &AuditContext,
        user: UserId,
        id: uuid::Uuid,
    ) -> Result<Option<String>, StorageFailure> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let Some(row) = sessions::Entity::find_by_id(id)
            .filter(sessions::Column::UserId.eq(user.as_uuid()))
            .filter(sessions::Column::RevokedAt.is_null())
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Ok(None);
        };
        let revocation_id = row.revocation_id.clone();
        let mut active: sessions::ActiveModel = row.into();
        active.revoked_at = Set(Some(now_micros()));
        active.update(&txn).await.map_err(failure)?;
        convert::record_activity(&txn, ctx, EventType::AuthSignOut, user).await?;
        txn.commit().await.map_err(failure)?;
        Ok(Some(revocation_id))
    }

    async fn change_password(
        &self,
        ctx: &AuditContext,
        user: UserId,
        new_hash: String,
        keep_session: Option<uuid::Uuid>,
    ) -> Result<Vec<String>, StorageFailure> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let now = now_micros();
        users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(new_hash))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .col_expr(
                users::Column::Version,
                Expr::col(users::Column::Version).add(1),
            )
            .filter(users::Column::Id.eq(user.as_uuid()))
            .exec(&txn)
            .await
            .map_err(failure)?;
        let mut live = sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user.as_uuid()))
            .filter(sessions::Column::RevokedAt.is_null());
        if let Some(keep) = keep_session {
            live = live.filter(sessions::Column::Id.ne(keep));
        }
        let revoked: Vec<String> = live
            .all(&txn)
            .await
            .map_err(failure)?
            .into_iter()
            .map(|s| s.revocation_id)
            .collect();
        if !revoked.is_empty() {
            sessions::Entity::update_many()
                .col_expr(sessions::Column::RevokedAt, Expr::value(Some(now)))
                .filter(sessions::Column::RevocationId.is_in(revoked.clone()))
                .exec(&txn)
                .await
                .map_err(failure)?;
        }
        convert::record_activity(&txn, ctx, EventType::AuthPasswordChange, user).await?;
        txn.commit().await.map_err(failure)?;
        Ok(revoked)
    }

    async fn session_is_live(
        &self,
        id: uuid::Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, StorageFailure> {
        Ok(sessions::Entity::find_by_id(id)
            .one(self.db.primary())
            .await
            .map_err(failure)?
            .is_some_and(|s| s.revoked_at.is_none() && now < s.expires_at))
    }
}
