use std::sync::Arc;
use std::time::Duration;

use cache::{InvalidationBus, LocalCache};
use credentials::{Argon2Hasher, IssuedToken, TokenError, TokenIssuer, VerifiedToken};
use tenancy::OrgId;
use tenancy::ports::{
    ApiKeyRepository, AuditContext, NewSession, PasswordHasher, SessionRepository,
    StoredCredentials,
};
use tenancy::{Email, Password, UserId, UserStatus};
use tenancy_store::{SeaOrmApiKeyRepository, SeaOrmSessionRepository};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::http::{ApiError, ErrorCode};

/// Session lifetime and cache bounds.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// How long a session token is valid.
    pub ttl: time::Duration,
    /// Upper bound on how long a verified token or a session's liveness is trusted
    /// from the cache without an invalidation (missed pub/sub messages heal after it).
    pub cache_ttl: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            ttl: time::Duration::hours(12),
            cache_ttl: Duration::from_secs(30),
        }
    }
}

/// The prefix of credential (session or API key) revocation messages on the bus.
const CREDENTIAL_MESSAGE: &str = "credential:";

/// A verified, live bearer token.
#[derive(Debug, Clone)]
pub struct Authentication {
    /// What the token says.
    pub verified: Arc<VerifiedToken>,
    /// For an API key: the user who created it (its rights bound the key's on every
    /// request).
    pub api_key_creator: Option<Uuid>,
}

/// Sign-in, sign-out and token verification.
pub struct AuthService {
    issuer: TokenIssuer,
    sessions: SeaOrmSessionRepository,
    api_keys: SeaOrmApiKeyRepository,
    hasher: Argon2Hasher,
    /// A hash to verify against when the e-mail is unknown, so timing does not reveal
    /// which addresses have accounts.
    dummy_hash: String,
    verified: LocalCache<([u8; 32], Option<Uuid>), Arc<VerifiedToken>>,
    /// Liveness of sessions by id.
    live: LocalCache<Uuid, bool>,
    /// Live API keys by id, with their creator (`None`: the key is dead).
    key_creators: LocalCache<Uuid, Option<Uuid>>,
    /// API keys whose last use was recorded within the last minute.
    touched: LocalCache<Uuid, ()>,
    bus: InvalidationBus,
    settings: SessionSettings,
}

impl AuthService {
    /// Wires the service and starts listening for session invalidations on `bus`.
    pub async fn new(
        issuer: TokenIssuer,
        sessions: SeaOrmSessionRepository,
        api_keys: SeaOrmApiKeyRepository,
        hasher: Argon2Hasher,
        bus: InvalidationBus,
        settings: SessionSettings,
    ) -> Result<Self, tenancy::ports::BoxError> {
        let dummy_hash = hasher
            .hash(
                Password::parse("dummy password for timing".to_owned())
                    .map_err(|e| e.to_string())?,
            )
            .await?;
        let live: LocalCache<Uuid, bool> = LocalCache::new(100_000, settings.cache_ttl);
        let key_creators: LocalCache<Uuid, Option<Uuid>> =
            LocalCache::new(100_000, settings.cache_ttl);
        let mut rx = bus.subscribe();
        let evict = live.clone();
        let evict_keys = key_creators.clone();
        tokio::spawn(async move {
            while let Ok(message) = rx.recv().await {
                if let Some(id) = message
                    .strip_prefix(CREDENTIAL_MESSAGE)
                    .and_then(|s| Uuid::parse_str(s).ok())
                {
                    evict.invalidate(&id).await;
                    evict_keys.invalidate(&id).await;
                }
            }
        });
        Ok(Self {
            issuer,
            sessions,
            api_keys,
            hasher,
            dummy_hash,
            verified: LocalCache::new(100_000, settings.cache_ttl),
            live,
            key_creators,
            touched: LocalCache::new(100_000, Duration::from_secs(60)),
            bus,
            settings,
        })
    }

    /// Hit/miss counters of the verified-token, session-liveness and API-key caches.
    pub fn cache_stats(&self) -> [(&'static str, cache::CacheStats); 3] {
        [
            ("token_verify", self.verified.stats()),
            ("credential_live", self.live.stats()),
            ("api_key_live", self.key_creators.stats()),
        ]
    }

    /// The session repository.
    pub fn sessions(&self) -> &SeaOrmSessionRepository {
        &self.sessions
    }

    /// The API key repository.
    pub fn api_keys(&self) -> &SeaOrmApiKeyRepository {
        &self.api_keys
    }

    /// The token issuer (for API keys).
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// The password hasher.
    pub fn hasher(&self) -> &Argon2Hasher {
        &self.hasher
    }

    /// Checks e-mail and password; on success opens a session and returns its token.
    pub async fn sign_in(
        &self,
        ctx: &AuditContext,
        email: &str,
        password: String,
    ) -> Result<(IssuedToken, StoredCredentials), ApiError> {
        let invalid = || ApiError::new(ErrorCode::Unauthenticated, "invalid email or password");
        let creds = match Email::parse(email) {
            Ok(email) => self
                .sessions
                .credentials(&email)
                .await
                .map_err(|e| ApiError::internal(e.0))?,
            Err(_) => None,
        };
        let hash = creds
            .as_ref()
            .map_or(self.dummy_hash.clone(), |c| c.password_hash.clone());
        let ok = self
            .hasher
            .verify(password, hash)
            .await
            .map_err(ApiError::internal)?;
        let Some(creds) = creds else {
            return Err(invalid());
        };
        if !ok || creds.user.status != UserStatus::Active {
            let ctx = AuditContext {
                actor: audit::Actor::User(creds.user.id.as_uuid()),
                ..ctx.clone()
            };
            self.sessions
                .record_failed_sign_in(&ctx, creds.user.id)
                .await
                .map_err(|e| ApiError::internal(e.0))?;
            return Err(invalid());
        }
        let token = self.open_session(ctx, creds.user.id).await?;
        Ok((token, creds))
    }

    /// Opens a session for `user` (whose sign-in was proven another way: a password, an
    /// invitation link) and returns its token; audited `auth.sign_in`.
    pub async fn open_session(
        &self,
        ctx: &AuditContext,
        user: UserId,
    ) -> Result<IssuedToken, ApiError> {
        let session_id = Uuid::now_v7();
        let expires_at = truncate_secs(OffsetDateTime::now_utc() + self.settings.ttl);
        let token = self
            .issuer
            .issue_session(user.as_uuid(), session_id, expires_at)
            .map_err(|e| ApiError::internal(Box::new(e)))?;
        let ctx = AuditContext {
            actor: audit::Actor::User(user.as_uuid()),
            ..ctx.clone()
        };
        self.sessions
            .create_session(
                &ctx,
                NewSession {
                    id: session_id,
                    user_id: user,
                    revocation_id: token.revocation_id.clone(),
                    expires_at,
                },
            )
            .await
            .map_err(|e| ApiError::internal(e.0))?;
        Ok(token)
    }

    /// After sessions ended in the store (a password reset): every instance forgets
    /// them.
    pub async fn sessions_ended(&self, sessions: &[Uuid]) {
        for &session in sessions {
            self.announce_revoked(session).await;
        }
    }

    /// Verifies a bearer token for a request on `org` (if the route has one): cached
    /// signature/Datalog verification, then the liveness of its session or API key.
    pub async fn authenticate(
        &self,
        token: &str,
        org: Option<Uuid>,
    ) -> Result<Authentication, ApiError> {
        let now = OffsetDateTime::now_utc();
        let key = (credentials::hash_token(token), org);
        let verified = match self.verified.get(&key).await {
            Some(v) => v,
            None => {
                let v = Arc::new(
                    self.issuer
                        .verify_for_org(token, now, org)
                        .map_err(token_error)?,
                );
                self.verified.insert(key, v.clone()).await;
                v
            }
        };
        if verified.expires_at.is_none_or(|e| e <= now) {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "the token has expired",
            ));
        }
        let mut api_key_creator = None;
        match &verified.principal {
            credentials::Principal::Session { session_id, .. } => {
                if !self.session_live(*session_id, now).await? {
                    return Err(ApiError::new(
                        ErrorCode::Unauthenticated,
                        "the session has been revoked",
                    ));
                }
            }
            credentials::Principal::ApiKey { org_id, key_id, .. } => {
                let org = OrgId::from_uuid(*org_id);
                let Some(creator) = self.live_api_key_creator(org, *key_id, now).await? else {
                    return Err(ApiError::new(
                        ErrorCode::Unauthenticated,
                        "the API key has been revoked",
                    ));
                };
                api_key_creator = Some(creator);
                if self.touched.get(key_id).await.is_none() {
                    self.touched.insert(*key_id, ()).await;
                    if let Err(e) = self.api_keys.touch_api_key(org, *key_id, now).await {
                        tracing::warn!(error = %e, "recording API key use");
                    }
                }
            }
        }
        Ok(Authentication {
            verified,
            api_key_creator,
        })
    }

    /// The creator of a live API key (`None`: revoked, expired, or its creator's account
    /// is gone), cached like sessions' liveness.
    async fn live_api_key_creator(
        &self,
        org: OrgId,
        key: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, ApiError> {
        if let Some(creator) = self.key_creators.get(&key).await {
            return Ok(creator);
        }
        let creator = self
            .api_keys
            .live_api_key_creator(org, key, now)
            .await
            .map_err(|e| ApiError::internal(e.0))?
            .map(|creator| creator.as_uuid());
        self.key_creators.insert(key, creator).await;
        Ok(creator)
    }

    /// Announces that an API key was revoked (this instance at once, others via the bus).
    pub async fn api_key_revoked(&self, key: Uuid) {
        self.announce_revoked(key).await;
    }

    async fn session_live(&self, session: Uuid, now: OffsetDateTime) -> Result<bool, ApiError> {
        if let Some(live) = self.live.get(&session).await {
            return Ok(live);
        }
        let live = self
            .sessions
            .session_is_live(session, now)
            .await
            .map_err(|e| ApiError::internal(e.0))?;
        self.live.insert(session, live).await;
        Ok(live)
    }

    /// Revokes one of `user`'s sessions everywhere (this instance at once, others via
    /// the bus). Returns whether it was live.
    pub async fn revoke(
        &self,
        ctx: &AuditContext,
        user: UserId,
        session: Uuid,
    ) -> Result<bool, ApiError> {
        let revoked = self
            .sessions
            .revoke_session(ctx, user, session)
            .await
            .map_err(|e| ApiError::internal(e.0))?;
        self.announce_revoked(session).await;
        Ok(revoked.is_some())
    }

    /// Changes a password after checking the current one; revokes every other session.
    pub async fn change_password(
        &self,
        ctx: &AuditContext,
        user: UserId,
        keep_session: Option<Uuid>,
        current: String,
        new: Password,
    ) -> Result<(), ApiError> {
        let creds = self
            .sessions
            .credentials_by_id(user)
            .await
            .map_err(|e| ApiError::internal(e.0))?
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "unknown user"))?;
        if !self
            .hasher
            .verify(current, creds.password_hash)
            .await
            .map_err(ApiError::internal)?
        {
            return Err(ApiError::validation(vec![crate::http::FieldError {
                field: "current_password".into(),
                code: "mismatch".into(),
                message: "the current password is not correct".into(),
            }]));
        }
        let hash = self.hasher.hash(new).await.map_err(ApiError::internal)?;
        let sessions = self
            .sessions
            .list_sessions(user)
            .await
            .map_err(|e| ApiError::internal(e.0))?;
        self.sessions
            .change_password(ctx, user, hash, keep_session)
            .await
            .map_err(|e| ApiError::internal(e.0))?;
        for s in sessions.iter().filter(|s| Some(s.id) != keep_session) {
            self.announce_revoked(s.id).await;
        }
        Ok(())
    }

    async fn announce_revoked(&self, credential: Uuid) {
        self.live.invalidate(&credential).await;
        self.key_creators.invalidate(&credential).await;
        self.bus
            .publish(&format!("{CREDENTIAL_MESSAGE}{credential}"))
            .await;
    }
}

fn token_error(e: TokenError) -> ApiError {
    match e {
        TokenError::Expired => ApiError::new(ErrorCode::Unauthenticated, "the token has expired"),
        _ => ApiError::new(ErrorCode::Unauthenticated, "the token is invalid"),
    }
}

fn truncate_secs(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}
