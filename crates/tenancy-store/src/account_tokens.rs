//! [`AccountTokenRepository`] on SeaORM: address verification and password reset.

use audit::{ChangeType, EventType, TenantScope};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use tenancy::ports::{
    AccountTokenRepository, AuditContext, EmailChangeError, StorageFailure, UseTokenError,
};
use tenancy::{Email, OneTimeToken, TokenPurpose, TokenRefused, UserId};
use time::OffsetDateTime;

use crate::convert::{self, failure};
use crate::entity::{account_tokens, sessions, users};
use crate::notices::Notices;
use persistence::{Database, WriteTx, now_micros};

/// [`AccountTokenRepository`] on SeaORM (PostgreSQL or SQLite).
#[derive(Debug, Clone)]
pub struct SeaOrmAccountTokens {
    db: Database,
    notices: Notices,
}

impl SeaOrmAccountTokens {
    /// A repository over `db`, queueing its messages through `notices`.
    #[must_use]
    pub fn new(db: Database, notices: Notices) -> Self {
        Self { db, notices }
    }
}

/// The active user with this id.
async fn active_user(
    txn: &WriteTx,
    id: uuid::Uuid,
) -> Result<Option<users::Model>, StorageFailure> {
    users::Entity::find_by_id(id)
        .filter(users::Column::Status.eq("active"))
        .filter(users::Column::DeletedAt.is_null())
        .one(txn)
        .await
        .map_err(failure)
}

/// Stores `token` for `user` and `email` (their earlier unused tokens of the purpose
/// stop working).
async fn store_token(
    txn: &WriteTx,
    purpose: TokenPurpose,
    user: uuid::Uuid,
    email: &str,
    token: &OneTimeToken,
    now: OffsetDateTime,
    ttl: time::Duration,
) -> Result<(), StorageFailure> {
    account_tokens::Entity::delete_many()
        .filter(account_tokens::Column::UserId.eq(user))
        .filter(account_tokens::Column::Purpose.eq(purpose.as_str()))
        .filter(account_tokens::Column::UsedAt.is_null())
        .exec(txn)
        .await
        .map_err(failure)?;
    account_tokens::ActiveModel {
        token_hash: Set(token.digest()),
        user_id: Set(user),
        purpose: Set(purpose.as_str().to_owned()),
        email: Set(email.to_owned()),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        used_at: Set(None),
    }
    .insert(txn)
    .await
    .map_err(failure)?;
    Ok(())
}

/// Takes the token for its single use: the row, if the token is known, of one of
/// `purposes`, unused and unexpired at `now`; marks it used.
async fn take_token(
    txn: &WriteTx,
    purposes: &[TokenPurpose],
    token: &OneTimeToken,
    now: OffsetDateTime,
) -> Result<account_tokens::Model, UseTokenError> {
    let row = account_tokens::Entity::find_by_id(token.digest())
        .filter(account_tokens::Column::Purpose.is_in(purposes.iter().map(|p| p.as_str())))
        .one(txn)
        .await
        .map_err(failure)?
        .ok_or(TokenRefused::Unknown)?;
    if row.used_at.is_some() {
        return Err(TokenRefused::Used.into());
    }
    if row.expires_at <= now {
        return Err(TokenRefused::Expired.into());
    }
    // Conditional on still unused: of two concurrent uses, one wins.
    let taken = account_tokens::Entity::update_many()
        .col_expr(account_tokens::Column::UsedAt, Expr::value(Some(now)))
        .filter(account_tokens::Column::TokenHash.eq(row.token_hash.clone()))
        .filter(account_tokens::Column::UsedAt.is_null())
        .exec(txn)
        .await
        .map_err(failure)?;
    if taken.rows_affected == 0 {
        return Err(TokenRefused::Used.into());
    }
    Ok(row)
}

/// Whether an account other than `except` (deleted ones included: their address
/// stays reserved) has `email`.
async fn address_taken(
    txn: &WriteTx,
    email: &Email,
    except: uuid::Uuid,
) -> Result<bool, StorageFailure> {
    Ok(users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .filter(users::Column::Id.ne(except))
        .one(txn)
        .await
        .map_err(failure)?
        .is_some())
}

/// Makes `email` (proven by a change link just taken) the address of `user`.
async fn change_email(
    txn: &WriteTx,
    ctx: &AuditContext,
    user: users::Model,
    email: &str,
    now: OffsetDateTime,
) -> Result<(), UseTokenError> {
    let new_email = Email::parse(email)
        .map_err(|_| convert::corrupt(format!("account token for {}: bad email", user.id)))?;
    if address_taken(txn, &new_email, user.id).await? {
        return Err(UseTokenError::AddressTaken { email: new_email });
    }
    let id = user.id;
    let version = user.version;
    let mut active: users::ActiveModel = user.into();
    active.email = Set(new_email.as_str().to_owned());
    active.email_verified_at = Set(Some(now));
    active.version = Set(version + 1);
    active.updated_at = Set(now_micros());
    // Two accounts racing for one address: the unique index decides.
    let updated = active.update(txn).await.map_err(|e| {
        if matches!(
            e.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        ) {
            UseTokenError::AddressTaken {
                email: new_email.clone(),
            }
        } else {
            failure(e).into()
        }
    })?;
    // The member directories sort and find members by address too.
    crate::member_account::refresh_memberships_in(txn, &updated, None).await?;
    // Other pending links for the old address prove nothing any more.
    account_tokens::Entity::delete_many()
        .filter(account_tokens::Column::UserId.eq(id))
        .filter(account_tokens::Column::UsedAt.is_null())
        .exec(txn)
        .await
        .map_err(failure)?;
    convert::record_all(
        txn,
        vec![user_event(
            ctx,
            EventType::AuthEmailChange,
            id,
            (None, None),
        )],
    )
    .await?;
    Ok(())
}

fn user_event(
    ctx: &AuditContext,
    what: EventType,
    user: uuid::Uuid,
    values: (Option<serde_json::Value>, Option<serde_json::Value>),
) -> audit::NewAuditEvent {
    ctx.change(
        TenantScope::PLATFORM,
        what,
        ("user", user.to_string()),
        ChangeType::Update,
        values,
    )
}

impl AccountTokenRepository for SeaOrmAccountTokens {
    async fn issue_email_verification(
        &self,
        ctx: &AuditContext,
        user: UserId,
        token: &OneTimeToken,
        now: OffsetDateTime,
    ) -> Result<Option<Email>, StorageFailure> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let Some(row) = active_user(&txn, user.as_uuid()).await? else {
            return Ok(None);
        };
        let email = Email::parse(&row.email)
            .map_err(|_| convert::corrupt(format!("users row {}: bad email", row.id)))?;
        store_token(
            &txn,
            TokenPurpose::VerifyEmail,
            row.id,
            &row.email,
            token,
            now,
            tenancy::VERIFY_EMAIL_TTL,
        )
        .await?;
        convert::record_all(
            &txn,
            vec![user_event(
                ctx,
                EventType::AuthEmailVerificationSent,
                row.id,
                (None, None),
            )],
        )
        .await?;
        self.notices.verify_email(&txn, &email, token).await?;
        txn.commit().await.map_err(failure)?;
        Ok(Some(email))
    }

    async fn request_email_change(
        &self,
        ctx: &AuditContext,
        user: UserId,
        new_email: &Email,
        token: &OneTimeToken,
        now: OffsetDateTime,
    ) -> Result<(), EmailChangeError> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let Some(row) = active_user(&txn, user.as_uuid()).await? else {
            return Err(EmailChangeError::NoAccount);
        };
        let current = Email::parse(&row.email)
            .map_err(|_| convert::corrupt(format!("users row {}: bad email", row.id)))?;
        if current == *new_email {
            return Err(EmailChangeError::Unchanged);
        }
        if address_taken(&txn, new_email, row.id).await? {
            return Err(EmailChangeError::Taken {
                email: new_email.clone(),
            });
        }
        store_token(
            &txn,
            TokenPurpose::ChangeEmail,
            row.id,
            new_email.as_str(),
            token,
            now,
            tenancy::VERIFY_EMAIL_TTL,
        )
        .await?;
        convert::record_all(
            &txn,
            vec![user_event(
                ctx,
                EventType::AuthEmailChangeRequest,
                row.id,
                (None, None),
            )],
        )
        .await?;
        // The link to the new address; the notice to the one in use, whose owner can
        // still react (change the password) before the change takes effect.
        self.notices.verify_email(&txn, new_email, token).await?;
        self.notices
            .email_changed(&txn, &current, new_email)
            .await?;
        txn.commit().await.map_err(failure)?;
        Ok(())
    }

    async fn verify_email(
        &self,
        ctx: &AuditContext,
        token: &OneTimeToken,
        now: OffsetDateTime,
    ) -> Result<UserId, UseTokenError> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let row = take_token(
            &txn,
            &[TokenPurpose::VerifyEmail, TokenPurpose::ChangeEmail],
            token,
            now,
        )
        .await?;
        let Some(user) = active_user(&txn, row.user_id).await? else {
            return Err(TokenRefused::Unknown.into());
        };
        if row.purpose == TokenPurpose::ChangeEmail.as_str() {
            change_email(&txn, ctx, user, &row.email, now).await?;
            txn.commit().await.map_err(failure)?;
            return Ok(UserId::from_uuid(row.user_id));
        }
        // A link sent to an address the account no longer has proves nothing.
        if !user.email.eq_ignore_ascii_case(&row.email) {
            return Err(TokenRefused::Unknown.into());
        }
        let before = user.email_verified_at;
        if before.is_none() {
            let mut active: users::ActiveModel = user.into();
            active.email_verified_at = Set(Some(now));
            active.updated_at = Set(now_micros());
            active.update(&txn).await.map_err(failure)?;
        }
        convert::record_all(
            &txn,
            vec![user_event(
                ctx,
                EventType::AuthEmailVerified,
                row.user_id,
                (
                    Some(serde_json::json!({"email_verified": before.is_some()})),
                    Some(serde_json::json!({"email_verified": true})),
                ),
            )],
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(UserId::from_uuid(row.user_id))
    }

    async fn issue_password_reset(
        &self,
        ctx: &AuditContext,
        email: &Email,
        token: &OneTimeToken,
        now: OffsetDateTime,
    ) -> Result<bool, StorageFailure> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let Some(user) = users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .filter(users::Column::Status.eq("active"))
            .filter(users::Column::DeletedAt.is_null())
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Ok(false);
        };
        store_token(
            &txn,
            TokenPurpose::PasswordReset,
            user.id,
            &user.email,
            token,
            now,
            tenancy::PASSWORD_RESET_TTL,
        )
        .await?;
        convert::record_all(
            &txn,
            vec![user_event(
                ctx,
                EventType::AuthPasswordResetRequest,
                user.id,
                (None, None),
            )],
        )
        .await?;
        self.notices.password_reset(&txn, email, token).await?;
        txn.commit().await.map_err(failure)?;
        Ok(true)
    }

    async fn reset_password(
        &self,
        ctx: &AuditContext,
        token: &OneTimeToken,
        password_hash: String,
        now: OffsetDateTime,
    ) -> Result<(UserId, Vec<uuid::Uuid>), UseTokenError> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let row = take_token(&txn, &[TokenPurpose::PasswordReset], token, now).await?;
        let Some(user) = active_user(&txn, row.user_id).await? else {
            return Err(TokenRefused::Unknown.into());
        };
        if !user.email.eq_ignore_ascii_case(&row.email) {
            return Err(TokenRefused::Unknown.into());
        }
        let email = Email::parse(&user.email)
            .map_err(|_| convert::corrupt(format!("users row {}: bad email", user.id)))?;
        let verified = user.email_verified_at.or(Some(now));
        let version = user.version;
        let mut active: users::ActiveModel = user.into();
        active.password_hash = Set(password_hash);
        active.email_verified_at = Set(verified);
        active.version = Set(version + 1);
        active.updated_at = Set(now_micros());
        active.update(&txn).await.map_err(failure)?;
        // Every other reset link dies with this one.
        account_tokens::Entity::delete_many()
            .filter(account_tokens::Column::UserId.eq(row.user_id))
            .filter(account_tokens::Column::Purpose.eq(TokenPurpose::PasswordReset.as_str()))
            .filter(account_tokens::Column::UsedAt.is_null())
            .exec(&txn)
            .await
            .map_err(failure)?;
        let live: Vec<uuid::Uuid> = sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(row.user_id))
            .filter(sessions::Column::RevokedAt.is_null())
            .all(&txn)
            .await
            .map_err(failure)?
            .into_iter()
            .map(|s| s.id)
            .collect();
        if !live.is_empty() {
            sessions::Entity::update_many()
                .col_expr(sessions::Column::RevokedAt, Expr::value(Some(now_micros())))
                .filter(sessions::Column::UserId.eq(row.user_id))
                .filter(sessions::Column::RevokedAt.is_null())
                .exec(&txn)
                .await
                .map_err(failure)?;
        }
        convert::record_all(
            &txn,
            vec![user_event(
                ctx,
                EventType::AuthPasswordReset,
                row.user_id,
                (
                    None,
                    Some(serde_json::json!({"sessions_ended": live.len()})),
                ),
            )],
        )
        .await?;
        self.notices.password_changed(&txn, &email).await?;
        txn.commit().await.map_err(failure)?;
        Ok((UserId::from_uuid(row.user_id), live))
    }
}
