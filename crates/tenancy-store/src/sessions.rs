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
use crate::notices::Notices;
use persistence::{Database, now_micros};

/// [`SessionRepository`] on SeaORM (PostgreSQL or SQLite).
#[derive(Debug, Clone)]
pub struct SeaOrmSessionRepository {
    db: Database,
    notices: Notices,
}

impl SeaOrmSessionRepository {
    /// A repository over the given database (telling nobody by e-mail).
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self {
            db,
            notices: Notices::none(),
        }
    }

    /// The same, queueing its security notices (new device, password changed) through
    /// `notices`.
    #[must_use]
    pub fn with_notices(mut self, notices: Notices) -> Self {
        self.notices = notices;
        self
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
    let locale = m
        .locale
        .as_deref()
        .and_then(|l| tenancy::Language::parse(l).ok());
    let version = m.version;
    Ok(StoredCredentials {
        version,
        user: convert::user(m)?,
        password_hash,
        is_platform_admin,
        email_verified,
        locale,
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
        // A sign-in from a client that proved no earlier one, to an account that has
        // signed in before, is told to the account's owner.
        let from_new_device = !new.known_device
            && sessions::Entity::find()
                .filter(sessions::Column::UserId.eq(new.user_id.as_uuid()))
                .one(&txn)
                .await
                .map_err(failure)?
                .is_some();
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
            second_factor: Set(new.second_factor),
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
        if from_new_device {
            let email = account_email(&txn, new.user_id).await?;
            self.notices
                .new_sign_in(
                    &txn,
                    &email,
                    row.created_at,
                    row.ip.clone().unwrap_or_default(),
                    row.user_agent.clone().unwrap_or_default(),
                )
                .await?;
        }
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
        let email = account_email(&txn, user).await?;
        self.notices.password_changed(&txn, &email).await?;
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

/// The address of `user` (in the transaction).
pub(crate) async fn account_email(
    txn: &persistence::WriteTx,
    user: UserId,
) -> Result<Email, StorageFailure> {
    let row = users::Entity::find_by_id(user.as_uuid())
        .one(txn)
        .await
        .map_err(failure)?
        .ok_or_else(|| convert::corrupt(format!("no users row {user}")))?;
    Email::parse(&row.email).map_err(|_| convert::corrupt(format!("users row {user}: bad email")))
}

/// The members who signed in since `since` (a session begun or seen since then), as
/// `(org, user)` pairs of their active memberships, the most recent first; at most
/// `limit` pairs. The signal for warming the permission cache at start.
///
/// # Errors
/// The database failed.
pub async fn recently_active_members(
    db: &Database,
    since: OffsetDateTime,
    limit: u64,
) -> Result<Vec<(uuid::Uuid, uuid::Uuid)>, StorageFailure> {
    use sea_orm::ConnectionTrait;
    let conn = db.reader();
    let rows = conn
        .query_all_raw(persistence::statement(
            conn.get_database_backend(),
            "SELECT m.org_id, m.user_id, MAX(s.created_at) AS seen FROM memberships m \
             JOIN sessions s ON s.user_id = m.user_id \
             WHERE m.status = 'active' AND (s.created_at >= ? OR s.last_seen_at >= ?) \
             GROUP BY m.org_id, m.user_id ORDER BY seen DESC LIMIT ?",
            vec![
                since.into(),
                since.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await
        .map_err(failure)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<uuid::Uuid>("", "org_id").map_err(failure)?,
                r.try_get::<uuid::Uuid>("", "user_id").map_err(failure)?,
            ))
        })
        .collect()
}
