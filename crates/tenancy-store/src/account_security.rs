//! Sessions that last and two-factor sign-in: refresh-token rotation with reuse
//! detection, TOTP enrolments, recovery codes and sign-in challenges.
//!
//! Tokens and codes arrive here as their SHA-256 digests (hex) and are looked up by
//! them; the TOTP secret arrives sealed. Every spend is a conditional update (`… WHERE
//! used_at IS NULL`, `… WHERE last_step < step`), so two concurrent requests cannot
//! both spend the same token, code or time step. Every step is an activity event on
//! the platform chain, appended in the step's [`WriteTx`].

use audit::EventType;
use persistence::{Database, WriteTx, now_micros};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, Set};
use tenancy::ports::{AuditContext, StorageFailure};
use tenancy::{
    CHALLENGE_MAX_FAILURES, RefreshRefused, SecondFactorRefused, UserId, totp_step_is_fresh,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::convert::{failure, record_activity};
use crate::entity::{
    recovery_codes, refresh_tokens, sessions, sign_in_challenges, totp_credentials,
};

/// A refresh that succeeded: the session goes on under a new refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refreshed {
    /// The session (family).
    pub session: Uuid,
    /// Its user.
    pub user: UserId,
    /// When the session ends (the new refresh token's expiry).
    pub session_expires_at: OffsetDateTime,
    /// Whether the session was opened with a second factor.
    pub second_factor: bool,
}

/// A user's TOTP enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// The sealed secret.
    pub sealed_secret: String,
    /// Whether it was confirmed (two-factor sign-in is on).
    pub confirmed: bool,
    /// Unspent recovery codes.
    pub recovery_codes_left: u64,
}

/// A second factor presented to complete a sign-in or to confirm/disable TOTP.
#[derive(Debug, Clone)]
pub enum SecondFactor<F> {
    /// A TOTP code, checked by `F` against the owner's sealed secret: the matching
    /// time step.
    Totp(F),
    /// The digest of a normalized recovery code.
    Recovery(String),
}

/// An outcome that may have to be committed even when refused (a counted failure, a
/// revoked family): `Err` values are durable too.
type Committed<T, E> = Result<Result<T, E>, StorageFailure>;

/// The store of refresh tokens, TOTP enrolments, recovery codes and challenges.
#[derive(Debug, Clone)]
pub struct SeaOrmAccountSecurity {
    db: Database,
    notices: crate::notices::Notices,
}

impl SeaOrmAccountSecurity {
    /// A store over the given database (telling nobody by e-mail).
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self {
            db,
            notices: crate::notices::Notices::none(),
        }
    }

    /// The same, telling the account's owner when two-factor sign-in is turned off.
    #[must_use]
    pub fn with_notices(mut self, notices: crate::notices::Notices) -> Self {
        self.notices = notices;
        self
    }

    /// Spends the refresh token whose digest is `digest` and stores `next_digest` in its
    /// place (`auth.token_refresh`). A token spent before revokes its whole session
    /// (`auth.refresh_reuse`) and is refused.
    ///
    /// # Errors
    /// A storage failure; the refusal is the inner `Err`.
    pub async fn rotate_refresh(
        &self,
        ctx: &AuditContext,
        digest: &str,
        next_digest: String,
        now: OffsetDateTime,
    ) -> Committed<Refreshed, RefreshRefused> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let Some(token) = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(digest))
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Ok(Err(RefreshRefused::Unknown));
        };
        let user = UserId::from_uuid(token.user_id);
        let ctx = as_user(ctx, user);
        let session = sessions::Entity::find_by_id(token.session_id)
            .one(&txn)
            .await
            .map_err(failure)?;
        let Some(session) = session.filter(|s| s.revoked_at.is_none() && now < s.expires_at) else {
            return Ok(Err(RefreshRefused::Expired));
        };
        if token.expires_at <= now {
            return Ok(Err(RefreshRefused::Expired));
        }
        let spent = token.used_at.is_some()
            || refresh_tokens::Entity::update_many()
                .col_expr(
                    refresh_tokens::Column::UsedAt,
                    Expr::value(Some(now_micros())),
                )
                .filter(refresh_tokens::Column::Id.eq(token.id))
                .filter(refresh_tokens::Column::UsedAt.is_null())
                .exec(&txn)
                .await
                .map_err(failure)?
                .rows_affected
                == 0;
        if spent {
            revoke_family(&txn, session.id).await?;
            record_activity(&txn, &ctx, EventType::AuthRefreshReuse, user).await?;
            txn.commit().await.map_err(failure)?;
            return Ok(Err(RefreshRefused::Reused {
                session: session.id,
            }));
        }
        refresh_tokens::ActiveModel {
            id: Set(Uuid::now_v7()),
            session_id: Set(session.id),
            user_id: Set(token.user_id),
            token_hash: Set(next_digest),
            created_at: Set(now_micros()),
            expires_at: Set(session.expires_at),
            used_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(failure)?;
        sessions::Entity::update_many()
            .col_expr(
                sessions::Column::LastSeenAt,
                Expr::value(Some(now_micros())),
            )
            .filter(sessions::Column::Id.eq(session.id))
            .exec(&txn)
            .await
            .map_err(failure)?;
        record_activity(&txn, &ctx, EventType::AuthTokenRefresh, user).await?;
        txn.commit().await.map_err(failure)?;
        Ok(Ok(Refreshed {
            session: session.id,
            user,
            session_expires_at: session.expires_at,
            second_factor: session.second_factor,
        }))
    }

    /// The user's TOTP enrolment, if any.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn totp(&self, user: UserId) -> Result<Option<TotpEnrolment>, StorageFailure> {
        let Some(row) = totp_credentials::Entity::find_by_id(user.as_uuid())
            .one(self.db.primary())
            .await
            .map_err(failure)?
        else {
            return Ok(None);
        };
        let left = recovery_codes::Entity::find()
            .filter(recovery_codes::Column::UserId.eq(user.as_uuid()))
            .filter(recovery_codes::Column::UsedAt.is_null())
            .all(self.db.primary())
            .await
            .map_err(failure)?
            .len();
        Ok(Some(TotpEnrolment {
            sealed_secret: row.secret_sealed,
            confirmed: row.confirmed_at.is_some(),
            recovery_codes_left: u64::try_from(left).unwrap_or(u64::MAX),
        }))
    }

    /// Starts (or restarts) a TOTP enrolment with a new sealed secret
    /// (`auth.two_factor_enrol`). Returns `false`, changing nothing, when two-factor
    /// sign-in is already on.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn begin_totp(
        &self,
        ctx: &AuditContext,
        user: UserId,
        sealed_secret: String,
    ) -> Result<bool, StorageFailure> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let existing = totp_credentials::Entity::find_by_id(user.as_uuid())
            .one(&txn)
            .await
            .map_err(failure)?;
        match existing {
            Some(row) if row.confirmed_at.is_some() => return Ok(false),
            Some(row) => {
                let mut active: totp_credentials::ActiveModel = row.into();
                active.secret_sealed = Set(sealed_secret);
                active.created_at = Set(now_micros());
                active.last_step = Set(None);
                active.update(&txn).await.map_err(failure)?;
            }
            None => {
                totp_credentials::ActiveModel {
                    user_id: Set(user.as_uuid()),
                    secret_sealed: Set(sealed_secret),
                    created_at: Set(now_micros()),
                    confirmed_at: Set(None),
                    last_step: Set(None),
                }
                .insert(&txn)
                .await
                .map_err(failure)?;
            }
        }
        record_activity(&txn, ctx, EventType::AuthTwoFactorEnrol, user).await?;
        txn.commit().await.map_err(failure)?;
        Ok(true)
    }

    /// Confirms a pending enrolment with a TOTP code (`check` gives the code's time
    /// step from the sealed secret) and stores the recovery codes' digests
    /// (`auth.two_factor_enable`). A wrong code is recorded (`auth.two_factor_failed`).
    ///
    /// # Errors
    /// A storage failure; the refusal is the inner `Err`.
    pub async fn confirm_totp<F>(
        &self,
        ctx: &AuditContext,
        user: UserId,
        check: F,
        recovery_digests: Vec<String>,
    ) -> Committed<(), SecondFactorRefused>
    where
        F: FnOnce(Uuid, &str) -> Option<u64> + Send,
    {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let row = totp_credentials::Entity::find_by_id(user.as_uuid())
            .one(&txn)
            .await
            .map_err(failure)?;
        let Some(row) = row.filter(|r| r.confirmed_at.is_none()) else {
            return Ok(Err(SecondFactorRefused::NotEnrolled));
        };
        if let Err(refused) = spend_step(&txn, &row, check).await? {
            record_activity(&txn, ctx, EventType::AuthTwoFactorFailed, user).await?;
            txn.commit().await.map_err(failure)?;
            return Ok(Err(refused));
        }
        totp_credentials::Entity::update_many()
            .col_expr(
                totp_credentials::Column::ConfirmedAt,
                Expr::value(Some(now_micros())),
            )
            .filter(totp_credentials::Column::UserId.eq(user.as_uuid()))
            .exec(&txn)
            .await
            .map_err(failure)?;
        replace_recovery_codes(&txn, user, recovery_digests).await?;
        record_activity(&txn, ctx, EventType::AuthTwoFactorEnable, user).await?;
        txn.commit().await.map_err(failure)?;
        Ok(Ok(()))
    }

    /// Turns two-factor sign-in off (`auth.two_factor_disable`): the enrolment and the
    /// recovery codes are deleted. With `proof`, the code must be right (a wrong one is
    /// recorded, `auth.two_factor_failed`); without, the caller checked the password.
    ///
    /// # Errors
    /// A storage failure; the refusal is the inner `Err`.
    pub async fn disable_totp<F>(
        &self,
        ctx: &AuditContext,
        user: UserId,
        proof: Option<SecondFactor<F>>,
    ) -> Committed<(), SecondFactorRefused>
    where
        F: FnOnce(Uuid, &str) -> Option<u64> + Send,
    {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let Some(row) = totp_credentials::Entity::find_by_id(user.as_uuid())
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Ok(Err(SecondFactorRefused::NotEnrolled));
        };
        if let Some(proof) = proof {
            let checked = match proof {
                SecondFactor::Totp(check) => spend_step(&txn, &row, check).await?,
                SecondFactor::Recovery(digest) => spend_recovery(&txn, user, &digest).await?,
            };
            if let Err(refused) = checked {
                record_activity(&txn, ctx, EventType::AuthTwoFactorFailed, user).await?;
                txn.commit().await.map_err(failure)?;
                return Ok(Err(refused));
            }
        }
        totp_credentials::Entity::delete_by_id(user.as_uuid())
            .exec(&txn)
            .await
            .map_err(failure)?;
        replace_recovery_codes(&txn, user, Vec::new()).await?;
        record_activity(&txn, ctx, EventType::AuthTwoFactorDisable, user).await?;
        if row.confirmed_at.is_some() {
            let email = crate::sessions::account_email(&txn, user).await?;
            self.notices.two_factor_disabled(&txn, &email).await?;
        }
        txn.commit().await.map_err(failure)?;
        Ok(Ok(()))
    }

    /// Whether `user` has two-factor sign-in on.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn two_factor_on(&self, user: UserId) -> Result<bool, StorageFailure> {
        Ok(totp_credentials::Entity::find_by_id(user.as_uuid())
            .one(self.db.primary())
            .await
            .map_err(failure)?
            .is_some_and(|r| r.confirmed_at.is_some()))
    }

    /// Stores a sign-in challenge (its digest) for `user` after a right password
    /// (`auth.sign_in_challenge`).
    ///
    /// # Errors
    /// A storage failure.
    pub async fn create_challenge(
        &self,
        ctx: &AuditContext,
        user: UserId,
        digest: String,
        expires_at: OffsetDateTime,
    ) -> Result<(), StorageFailure> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        sign_in_challenges::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user.as_uuid()),
            token_hash: Set(digest),
            created_at: Set(now_micros()),
            expires_at: Set(expires_at),
            used_at: Set(None),
            failures: Set(0),
        }
        .insert(&txn)
        .await
        .map_err(failure)?;
        record_activity(&txn, ctx, EventType::AuthSignInChallenge, user).await?;
        txn.commit().await.map_err(failure)
    }

    /// The user a live challenge belongs to (for rate limiting before the code is
    /// checked); refused when unknown, or spent, expired or dead of wrong codes.
    ///
    /// # Errors
    /// A storage failure; the refusal is the inner `Err`.
    pub async fn challenge_user(
        &self,
        digest: &str,
        now: OffsetDateTime,
    ) -> Committed<UserId, SecondFactorRefused> {
        let challenge = sign_in_challenges::Entity::find()
            .filter(sign_in_challenges::Column::TokenHash.eq(digest))
            .one(self.db.primary())
            .await
            .map_err(failure)?;
        Ok(match challenge {
            None => Err(SecondFactorRefused::UnknownChallenge),
            Some(c) if !live_challenge(&c, now) => Err(SecondFactorRefused::ChallengeExpired),
            Some(c) => Ok(UserId::from_uuid(c.user_id)),
        })
    }

    /// Completes a sign-in challenge with a second factor: spends the challenge and the
    /// TOTP step or recovery code (`auth.recovery_code_use` for the latter). A wrong
    /// code counts against the challenge (`auth.two_factor_failed`); after
    /// [`CHALLENGE_MAX_FAILURES`] it is dead.
    ///
    /// # Errors
    /// A storage failure; the refusal is the inner `Err`.
    pub async fn complete_challenge<F>(
        &self,
        ctx: &AuditContext,
        digest: &str,
        factor: SecondFactor<F>,
        now: OffsetDateTime,
    ) -> Committed<UserId, SecondFactorRefused>
    where
        F: FnOnce(Uuid, &str) -> Option<u64> + Send,
    {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let Some(challenge) = sign_in_challenges::Entity::find()
            .filter(sign_in_challenges::Column::TokenHash.eq(digest))
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Ok(Err(SecondFactorRefused::UnknownChallenge));
        };
        if !live_challenge(&challenge, now) {
            return Ok(Err(SecondFactorRefused::ChallengeExpired));
        }
        let user = UserId::from_uuid(challenge.user_id);
        let ctx = as_user(ctx, user);
        let Some(row) = totp_credentials::Entity::find_by_id(user.as_uuid())
            .one(&txn)
            .await
            .map_err(failure)?
            .filter(|r| r.confirmed_at.is_some())
        else {
            return Ok(Err(SecondFactorRefused::NotEnrolled));
        };
        let (checked, used) = match factor {
            SecondFactor::Totp(check) => (spend_step(&txn, &row, check).await?, None),
            SecondFactor::Recovery(digest) => (
                spend_recovery(&txn, user, &digest).await?,
                Some(EventType::AuthRecoveryCodeUse),
            ),
        };
        if let Err(refused) = checked {
            sign_in_challenges::Entity::update_many()
                .col_expr(
                    sign_in_challenges::Column::Failures,
                    Expr::col(sign_in_challenges::Column::Failures).add(1),
                )
                .filter(sign_in_challenges::Column::Id.eq(challenge.id))
                .exec(&txn)
                .await
                .map_err(failure)?;
            record_activity(&txn, &ctx, EventType::AuthTwoFactorFailed, user).await?;
            txn.commit().await.map_err(failure)?;
            return Ok(Err(refused));
        }
        let spent = sign_in_challenges::Entity::update_many()
            .col_expr(
                sign_in_challenges::Column::UsedAt,
                Expr::value(Some(now_micros())),
            )
            .filter(sign_in_challenges::Column::Id.eq(challenge.id))
            .filter(sign_in_challenges::Column::UsedAt.is_null())
            .exec(&txn)
            .await
            .map_err(failure)?
            .rows_affected
            == 1;
        if !spent {
            return Ok(Err(SecondFactorRefused::ChallengeExpired));
        }
        if let Some(what) = used {
            record_activity(&txn, &ctx, what, user).await?;
        }
        txn.commit().await.map_err(failure)?;
        Ok(Ok(user))
    }
}

/// `ctx` acted by `user` (a refresh or a second factor is the account holder's act).
fn as_user(ctx: &AuditContext, user: UserId) -> AuditContext {
    AuditContext {
        actor: audit::Actor::User(user.as_uuid()),
        ..ctx.clone()
    }
}

fn live_challenge(c: &sign_in_challenges::Model, now: OffsetDateTime) -> bool {
    c.used_at.is_none() && now < c.expires_at && c.failures < CHALLENGE_MAX_FAILURES
}

/// Revokes a session and every refresh token of it.
async fn revoke_family(txn: &WriteTx, session: Uuid) -> Result<(), StorageFailure> {
    let now = now_micros();
    sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(Some(now)))
        .filter(sessions::Column::Id.eq(session))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(txn)
        .await
        .map_err(failure)?;
    refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::UsedAt, Expr::value(Some(now)))
        .filter(refresh_tokens::Column::SessionId.eq(session))
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .exec(txn)
        .await
        .map_err(failure)?;
    Ok(())
}

/// Checks a TOTP code against the enrolment and spends its time step: accepted only
/// if the step is later than the last one accepted (one conditional update).
async fn spend_step<F>(
    txn: &WriteTx,
    row: &totp_credentials::Model,
    check: F,
) -> Result<Result<(), SecondFactorRefused>, StorageFailure>
where
    F: FnOnce(Uuid, &str) -> Option<u64>,
{
    let Some(step) = check(row.user_id, &row.secret_sealed) else {
        return Ok(Err(SecondFactorRefused::WrongCode));
    };
    if !totp_step_is_fresh(row.last_step, step) {
        return Ok(Err(SecondFactorRefused::CodeReused));
    }
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    let updated = totp_credentials::Entity::update_many()
        .col_expr(totp_credentials::Column::LastStep, Expr::value(Some(step)))
        .filter(totp_credentials::Column::UserId.eq(row.user_id))
        .filter(
            Condition::any()
                .add(totp_credentials::Column::LastStep.is_null())
                .add(totp_credentials::Column::LastStep.lt(step)),
        )
        .exec(txn)
        .await
        .map_err(failure)?;
    Ok(if updated.rows_affected == 1 {
        Ok(())
    } else {
        Err(SecondFactorRefused::CodeReused)
    })
}

/// Spends an unused recovery code of `user` by its digest.
async fn spend_recovery(
    txn: &WriteTx,
    user: UserId,
    digest: &str,
) -> Result<Result<(), SecondFactorRefused>, StorageFailure> {
    let updated = recovery_codes::Entity::update_many()
        .col_expr(
            recovery_codes::Column::UsedAt,
            Expr::value(Some(now_micros())),
        )
        .filter(recovery_codes::Column::UserId.eq(user.as_uuid()))
        .filter(recovery_codes::Column::CodeHash.eq(digest))
        .filter(recovery_codes::Column::UsedAt.is_null())
        .exec(txn)
        .await
        .map_err(failure)?;
    Ok(if updated.rows_affected == 1 {
        Ok(())
    } else {
        Err(SecondFactorRefused::WrongCode)
    })
}

/// Replaces every recovery code of `user` with `digests`.
async fn replace_recovery_codes(
    txn: &WriteTx,
    user: UserId,
    digests: Vec<String>,
) -> Result<(), StorageFailure> {
    recovery_codes::Entity::delete_many()
        .filter(recovery_codes::Column::UserId.eq(user.as_uuid()))
        .exec(txn)
        .await
        .map_err(failure)?;
    if digests.is_empty() {
        return Ok(());
    }
    let now = now_micros();
    recovery_codes::Entity::insert_many(digests.into_iter().map(|d| recovery_codes::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.as_uuid()),
        code_hash: Set(d),
        created_at: Set(now),
        used_at: Set(None),
    }))
    .exec(txn)
    .await
    .map_err(failure)?;
    Ok(())
}
