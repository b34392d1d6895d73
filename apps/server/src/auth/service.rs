use std::sync::Arc;
use std::time::Duration;

use cache::{InvalidationBus, LocalCache};
use credentials::{
    Argon2Hasher, IssuedToken, TokenError, TokenIssuer, TotpKey, VerifiedToken, secrets,
};
use tenancy::OrgId;
use tenancy::ports::{
    ApiKeyRepository, AuditContext, NewSession, PasswordHasher, SessionRepository,
    StoredCredentials,
};
use tenancy::{Email, Password, RefreshRefused, SecondFactorRefused, UserId, UserStatus};
use tenancy_store::{
    SeaOrmAccountSecurity, SeaOrmApiKeyRepository, SeaOrmSessionRepository, SecondFactor,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::http::{ApiError, ErrorCode};

/// Session lifetime and cache bounds.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// How long a session lasts: its refresh tokens are valid until then (rotation
    /// does not extend it; signing in again starts a new session).
    pub ttl: time::Duration,
    /// How long an access token (the bearer Biscuit) is valid; a refresh gets a new one.
    pub access_ttl: time::Duration,
    /// How long a second-factor challenge is valid after a right password.
    pub challenge_ttl: time::Duration,
    /// Upper bound on how long a verified token or a session's liveness is trusted
    /// from the cache without an invalidation (missed pub/sub messages heal after it).
    pub cache_ttl: Duration,
    /// Byte budget of the verified-token cache (per instance).
    pub verified_cache_bytes: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            ttl: time::Duration::days(30),
            access_ttl: time::Duration::minutes(15),
            challenge_ttl: time::Duration::minutes(5),
            cache_ttl: Duration::from_secs(30),
            verified_cache_bytes: VERIFIED_CACHE_BYTES,
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

/// The tokens of a new or refreshed session.
#[derive(Debug)]
pub struct SessionTokens {
    /// The access token (bearer) and its expiry.
    pub access: IssuedToken,
    /// The refresh token: spend it once at `POST /auth/refresh` for the next pair.
    pub refresh_token: String,
    /// When the session (and so the refresh token) ends.
    pub session_expires_at: OffsetDateTime,
    /// The session id.
    pub session_id: Uuid,
}

/// How a session's sign-in went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HowSignedIn {
    /// It passed a second factor.
    pub second_factor: bool,
    /// The client proved an earlier sign-in (a device token), or the sign-in is the
    /// account's first: no "new sign-in" e-mail.
    pub known_device: bool,
}

/// The outcome of a right password.
#[derive(Debug)]
pub enum SignedIn {
    /// A session is open.
    Session(SessionTokens),
    /// Two-factor sign-in is on: the second step needs this challenge and a code.
    Challenge {
        /// The challenge token (single use).
        challenge: String,
        /// When it expires.
        expires_at: OffsetDateTime,
    },
}

/// A second factor as typed by the user.
#[derive(Debug)]
pub enum Factor {
    /// A TOTP code.
    Totp(String),
    /// A recovery code.
    Recovery(String),
}

/// The issuer shown in authenticator apps.
const TOTP_ISSUER: &str = "PTO Central";

/// A 401 with a machine-readable `details.reason`.
fn unauthenticated(reason: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message)
        .with_details(serde_json::json!({ "reason": reason }))
}

/// The API error of a refused second factor.
#[must_use]
pub fn second_factor_error(e: SecondFactorRefused) -> ApiError {
    let reason = match e {
        SecondFactorRefused::UnknownChallenge => "challenge_invalid",
        SecondFactorRefused::ChallengeExpired => "challenge_expired",
        SecondFactorRefused::NotEnrolled => {
            return ApiError::new(ErrorCode::Conflict, e.to_string())
                .with_details(serde_json::json!({ "reason": "two_factor_not_enrolled" }));
        }
        SecondFactorRefused::WrongCode => "code_invalid",
        SecondFactorRefused::CodeReused => "code_reused",
    };
    unauthenticated(reason, e.to_string())
}

/// Sign-in, sign-out and token verification.
pub struct AuthService {
    issuer: TokenIssuer,
    sessions: SeaOrmSessionRepository,
    security: SeaOrmAccountSecurity,
    totp_key: TotpKey,
    api_keys: SeaOrmApiKeyRepository,
    hasher: Argon2Hasher,
    /// A hash to verify against when the e-mail is unknown, so timing does not reveal
    /// which addresses have accounts.
    dummy_hash: String,
    verified: LocalCache<([u8; 32], Option<Uuid>), Arc<VerifiedToken>>,
    /// Tokens found expired (by their hash): refused again without verifying the
    /// signature (an expired token stays expired). Nothing else is remembered: other
    /// refusals may be transient (the verification's time limit).
    expired: LocalCache<[u8; 32], ()>,
    /// Liveness of sessions by id.
    live: LocalCache<Uuid, bool>,
    /// Live API keys by id, with their creator (`None`: the key is dead).
    key_creators: LocalCache<Uuid, Option<Uuid>>,
    /// API keys whose last use was recorded within the last minute.
    touched: LocalCache<Uuid, ()>,
    bus: InvalidationBus,
    settings: SessionSettings,
}

/// Default byte budget of the verified-token cache (per instance).
pub const VERIFIED_CACHE_BYTES: u64 = 16 << 20;
/// Byte budget of each small session cache (liveness, API-key creators, touched sessions).
pub const SMALL_CACHE_BYTES: u64 = 4 << 20;

/// A verified token's weight: the key, the token and its revocation ids.
fn verified_weight(_: &([u8; 32], Option<Uuid>), token: &Arc<VerifiedToken>) -> u32 {
    let heap = size_of::<VerifiedToken>()
        + token
            .revocation_ids
            .iter()
            .map(|id| id.len() + size_of::<String>())
            .sum::<usize>();
    cache::weight::entry_bytes::<([u8; 32], Option<Uuid>), Arc<VerifiedToken>>(heap)
}

impl AuthService {
    /// Wires the service and starts listening for session invalidations on `bus`.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        issuer: TokenIssuer,
        sessions: SeaOrmSessionRepository,
        security: SeaOrmAccountSecurity,
        totp_key: TotpKey,
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
        let live: LocalCache<Uuid, bool> = LocalCache::new(SMALL_CACHE_BYTES, settings.cache_ttl);
        let key_creators: LocalCache<Uuid, Option<Uuid>> =
            LocalCache::new(SMALL_CACHE_BYTES, settings.cache_ttl);
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
            security,
            totp_key,
            api_keys,
            hasher,
            dummy_hash,
            verified: LocalCache::with_weigher(
                settings.verified_cache_bytes,
                settings.cache_ttl,
                verified_weight,
            ),
            expired: LocalCache::new(SMALL_CACHE_BYTES, settings.cache_ttl),
            live,
            key_creators,
            touched: LocalCache::new(SMALL_CACHE_BYTES, Duration::from_secs(60)),
            bus,
            settings,
        })
    }

    /// Hit/miss counters of the verified-token, session-liveness and API-key caches.
    pub fn cache_stats(&self) -> [(&'static str, cache::CacheStats); 4] {
        [
            ("token_verify", self.verified.stats()),
            ("token_expired", self.expired.stats()),
            ("credential_live", self.live.stats()),
            ("api_key_live", self.key_creators.stats()),
        ]
    }

    /// The session caches' weights now and their budgets, in bytes.
    pub async fn cache_bytes(&self) -> [cache::CacheBytes; 5] {
        let of = |name, bytes, budget| cache::CacheBytes {
            name,
            bytes,
            budget,
        };
        [
            of(
                "token_verify",
                self.verified.bytes().await,
                self.verified.budget(),
            ),
            of(
                "credential_live",
                self.live.bytes().await,
                self.live.budget(),
            ),
            of(
                "api_key_live",
                self.key_creators.bytes().await,
                self.key_creators.budget(),
            ),
            of(
                "session_touched",
                self.touched.bytes().await,
                self.touched.budget(),
            ),
            of(
                "token_expired",
                self.expired.bytes().await,
                self.expired.budget(),
            ),
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

    /// The refresh tokens, TOTP enrolments and recovery codes.
    pub fn security(&self) -> &SeaOrmAccountSecurity {
        &self.security
    }

    /// Checks e-mail and password; on success opens a session (or, with two-factor
    /// sign-in on, issues a challenge for the second step).
    pub async fn sign_in(
        &self,
        ctx: &AuditContext,
        email: &str,
        password: String,
        known_device: bool,
    ) -> Result<(SignedIn, StoredCredentials), ApiError> {
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
        let ctx = AuditContext {
            actor: audit::Actor::User(creds.user.id.as_uuid()),
            ..ctx.clone()
        };
        if !ok || creds.user.status != UserStatus::Active {
            self.sessions
                .record_failed_sign_in(&ctx, creds.user.id)
                .await
                .map_err(|e| ApiError::internal(e.0))?;
            return Err(invalid());
        }
        if self
            .security
            .two_factor_on(creds.user.id)
            .await
            .map_err(|e| ApiError::internal(e.0))?
        {
            let challenge = secrets::random_token("ch").map_err(internal)?;
            let expires_at = truncate_secs(OffsetDateTime::now_utc() + self.settings.challenge_ttl);
            self.security
                .create_challenge(
                    &ctx,
                    creds.user.id,
                    secrets::digest_hex(&challenge),
                    expires_at,
                )
                .await
                .map_err(|e| ApiError::internal(e.0))?;
            return Ok((
                SignedIn::Challenge {
                    challenge,
                    expires_at,
                },
                creds,
            ));
        }
        let how = HowSignedIn {
            second_factor: false,
            known_device,
        };
        let tokens = self.open_session(&ctx, creds.user.id, how).await?;
        Ok((SignedIn::Session(tokens), creds))
    }

    /// Opens a session for `user` (who has proven who they are): an access token and
    /// the first refresh token of the session (`auth.sign_in`).
    pub async fn open_session(
        &self,
        ctx: &AuditContext,
        user: UserId,
        how: HowSignedIn,
    ) -> Result<SessionTokens, ApiError> {
        let session_id = Uuid::now_v7();
        let now = OffsetDateTime::now_utc();
        let session_expires_at = truncate_secs(now + self.settings.ttl);
        let access =
            self.access_token(user, session_id, now, session_expires_at, how.second_factor)?;
        let refresh_token = secrets::random_token("rt").map_err(internal)?;
        self.sessions
            .create_session(
                ctx,
                NewSession {
                    id: session_id,
                    user_id: user,
                    revocation_id: access.revocation_id.clone(),
                    expires_at: session_expires_at,
                    refresh_digest: secrets::digest_hex(&refresh_token),
                    second_factor: how.second_factor,
                    known_device: how.known_device,
                },
            )
            .await
            .map_err(|e| ApiError::internal(e.0))?;
        Ok(SessionTokens {
            access,
            refresh_token,
            session_expires_at,
            session_id,
        })
    }

    fn access_token(
        &self,
        user: UserId,
        session: Uuid,
        now: OffsetDateTime,
        session_expires_at: OffsetDateTime,
        second_factor: bool,
    ) -> Result<IssuedToken, ApiError> {
        let expires_at = truncate_secs(now + self.settings.access_ttl).min(session_expires_at);
        self.issuer
            .issue_session(user.as_uuid(), session, expires_at, second_factor)
            .map_err(|e| ApiError::internal(Box::new(e)))
    }

    /// Spends a refresh token for a new access token and a new refresh token. A token
    /// spent before revokes its whole session everywhere and is refused.
    pub async fn refresh(
        &self,
        ctx: &AuditContext,
        refresh_token: &str,
    ) -> Result<(SessionTokens, UserId), ApiError> {
        let now = OffsetDateTime::now_utc();
        let next = secrets::random_token("rt").map_err(internal)?;
        let outcome = self
            .security
            .rotate_refresh(
                ctx,
                &secrets::digest_hex(refresh_token),
                secrets::digest_hex(&next),
                now,
            )
            .await
            .map_err(|e| ApiError::internal(e.0))?;
        let refreshed = match outcome {
            Ok(refreshed) => refreshed,
            Err(refused) => {
                let reason = match refused {
                    RefreshRefused::Unknown => "refresh_token_invalid",
                    RefreshRefused::Expired => "refresh_token_expired",
                    RefreshRefused::Reused { session } => {
                        self.announce_revoked(session).await;
                        "refresh_token_reused"
                    }
                };
                return Err(unauthenticated(reason, refused.to_string()));
            }
        };
        let access = self.access_token(
            refreshed.user,
            refreshed.session,
            now,
            refreshed.session_expires_at,
            refreshed.second_factor,
        )?;
        Ok((
            SessionTokens {
                access,
                refresh_token: next,
                session_expires_at: refreshed.session_expires_at,
                session_id: refreshed.session,
            },
            refreshed.user,
        ))
    }

    /// The user a live sign-in challenge belongs to, with their credentials (to rate
    /// limit the second step per account before the code is checked); 401 with the
    /// reason when the challenge is unknown or no longer live.
    pub async fn challenge_owner(&self, challenge: &str) -> Result<StoredCredentials, ApiError> {
        let user = self
            .security
            .challenge_user(&secrets::digest_hex(challenge), OffsetDateTime::now_utc())
            .await
            .map_err(|e| ApiError::internal(e.0))?
            .map_err(second_factor_error)?;
        self.sessions
            .credentials_by_id(user)
            .await
            .map_err(|e| ApiError::internal(e.0))?
            .ok_or_else(|| second_factor_error(SecondFactorRefused::UnknownChallenge))
    }

    /// Completes a sign-in with its challenge and a second factor.
    pub async fn complete_sign_in(
        &self,
        ctx: &AuditContext,
        challenge: &str,
        factor: Factor,
        known_device: bool,
    ) -> Result<(SessionTokens, UserId), ApiError> {
        let now = OffsetDateTime::now_utc();
        let outcome = self
            .security
            .complete_challenge(
                ctx,
                &secrets::digest_hex(challenge),
                self.second_factor(factor, now),
                now,
            )
            .await
            .map_err(|e| ApiError::internal(e.0))?;
        let user = outcome.map_err(second_factor_error)?;
        let ctx = AuditContext {
            actor: audit::Actor::User(user.as_uuid()),
            ..ctx.clone()
        };
        let how = HowSignedIn {
            second_factor: true,
            known_device,
        };
        let tokens = self.open_session(&ctx, user, how).await?;
        Ok((tokens, user))
    }

    /// The checker of a typed factor: a TOTP code checked against the sealed secret
    /// of whoever the store finds, or a recovery code's digest.
    fn second_factor(
        &self,
        factor: Factor,
        now: OffsetDateTime,
    ) -> SecondFactor<impl FnOnce(Uuid, &str) -> Option<u64> + Send + use<'_>> {
        match factor {
            Factor::Totp(code) => {
                let key = self.totp_key.clone();
                SecondFactor::Totp(move |owner: Uuid, sealed: &str| {
                    let secret = key.open(owner.as_bytes(), sealed).ok()?;
                    secrets::totp_matching_step(&secret, &code, unix(now))
                })
            }
            Factor::Recovery(code) => SecondFactor::Recovery(secrets::digest_hex(
                &secrets::normalize_recovery_code(&code),
            )),
        }
    }

    /// Starts a TOTP enrolment: a new secret, its base-32 form and `otpauth://` URI.
    /// 409 when two-factor sign-in is already on.
    pub async fn enrol_totp(
        &self,
        ctx: &AuditContext,
        user: UserId,
        account: &str,
    ) -> Result<(String, String), ApiError> {
        let secret = secrets::totp_secret().map_err(internal)?;
        let sealed = self
            .totp_key
            .seal(user.as_uuid().as_bytes(), &secret)
            .map_err(internal)?;
        let provisioning =
            secrets::totp_provisioning(&secret, account, TOTP_ISSUER).map_err(internal)?;
        if !self
            .security
            .begin_totp(ctx, user, sealed)
            .await
            .map_err(|e| ApiError::internal(e.0))?
        {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "two-factor sign-in is already on; turn it off first to enrol again",
            )
            .with_details(serde_json::json!({ "reason": "two_factor_enabled" })));
        }
        Ok(provisioning)
    }

    /// Confirms the pending enrolment with a code; returns the recovery codes (shown
    /// once: only their digests are kept).
    pub async fn confirm_totp(
        &self,
        ctx: &AuditContext,
        user: UserId,
        code: String,
    ) -> Result<Vec<String>, ApiError> {
        let codes = (0..secrets::RECOVERY_CODES)
            .map(|_| secrets::recovery_code())
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        let digests = codes
            .iter()
            .map(|c| secrets::digest_hex(&secrets::normalize_recovery_code(c)))
            .collect();
        let now = OffsetDateTime::now_utc();
        let SecondFactor::Totp(check) = self.second_factor(Factor::Totp(code), now) else {
            return Err(ApiError::internal(
                "a TOTP factor checks a TOTP code".into(),
            ));
        };
        self.security
            .confirm_totp(ctx, user, check, digests)
            .await
            .map_err(|e| ApiError::internal(e.0))?
            .map_err(second_factor_error)?;
        Ok(codes)
    }

    /// Turns two-factor sign-in off, proven by a code, a recovery code or the password.
    pub async fn disable_totp(
        &self,
        ctx: &AuditContext,
        user: UserId,
        factor: Option<Factor>,
        password: Option<String>,
    ) -> Result<(), ApiError> {
        let proof = match (factor, password) {
            (Some(factor), _) => Some(self.second_factor(factor, OffsetDateTime::now_utc())),
            (None, Some(password)) => {
                let creds = self
                    .sessions
                    .credentials_by_id(user)
                    .await
                    .map_err(|e| ApiError::internal(e.0))?
                    .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "unknown user"))?;
                if !self
                    .hasher
                    .verify(password, creds.password_hash)
                    .await
                    .map_err(ApiError::internal)?
                {
                    return Err(ApiError::validation(vec![crate::http::FieldError {
                        field: "password".into(),
                        code: "mismatch".into(),
                        message: "the password is not correct".into(),
                    }]));
                }
                None
            }
            (None, None) => {
                return Err(ApiError::validation(vec![crate::http::FieldError {
                    field: "code".into(),
                    code: "required".into(),
                    message: "send a code, a recovery code or the password".into(),
                }]));
            }
        };
        self.security
            .disable_totp(ctx, user, proof)
            .await
            .map_err(|e| ApiError::internal(e.0))?
            .map_err(second_factor_error)
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
                if self.expired.get(&key.0).await.is_some() {
                    return Err(token_error(TokenError::Expired));
                }
                let v = match self.issuer.verify_for_org(token, now, org) {
                    Ok(v) => Arc::new(v),
                    Err(e) => {
                        if matches!(e, TokenError::Expired) {
                            self.expired.insert(key.0, ()).await;
                        }
                        return Err(token_error(e));
                    }
                };
                self.verified.insert(key, v.clone()).await;
                v
            }
        };
        let api_key_creator = self.still_live(&verified, now).await?;
        Ok(Authentication {
            verified,
            api_key_creator,
        })
    }

    /// Checks again what [`AuthService::authenticate`] checks after the signature: that
    /// an already verified token has not expired and that its session or API key is
    /// still live (cached; revocations reach every instance's cache). Open event streams
    /// call it every second without hashing or verifying their token again.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` when the token expired or its credential was revoked.
    pub async fn recheck(&self, verified: &VerifiedToken) -> Result<(), ApiError> {
        self.still_live(verified, OffsetDateTime::now_utc())
            .await
            .map(|_| ())
    }

    /// The expiry and liveness checks of a verified token; for an API key, its creator.
    async fn still_live(
        &self,
        verified: &VerifiedToken,
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, ApiError> {
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
        Ok(api_key_creator)
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

    /// Checks `user`'s password (a step-up before a sensitive change); 422 on `field`
    /// when it is wrong.
    pub async fn check_password(
        &self,
        user: UserId,
        field: &str,
        password: String,
    ) -> Result<(), ApiError> {
        let creds = self
            .sessions
            .credentials_by_id(user)
            .await
            .map_err(|e| ApiError::internal(e.0))?
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "unknown user"))?;
        if self
            .hasher
            .verify(password, creds.password_hash)
            .await
            .map_err(ApiError::internal)?
        {
            Ok(())
        } else {
            Err(ApiError::validation(vec![crate::http::FieldError {
                field: field.into(),
                code: "mismatch".into(),
                message: "the password is not correct".into(),
            }]))
        }
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
        self.check_password(user, "current_password", current)
            .await?;
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

    /// After sessions ended in the store (a password reset): every instance forgets
    /// them.
    pub async fn sessions_ended(&self, sessions: &[Uuid]) {
        for &session in sessions {
            self.announce_revoked(session).await;
        }
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

fn internal(e: credentials::SecretError) -> ApiError {
    ApiError::internal(Box::new(e))
}

fn unix(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap_or(0)
}

fn truncate_secs(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}
