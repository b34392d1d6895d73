//! Accounts and sessions.

use garde::Validate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::ports::AccountTokenRepository;
use tenancy::service::{RegisterError, RegisterRequest};
use tenancy::{Email, Language, Password, PersonName, User};

use super::common::domain_rule;
use crate::auth::{Caller, ClientMeta, Factor, Principal, SessionTokens, SignedIn};
use crate::http::rate_limit::{ClientIp, rate_limited};
use crate::http::{
    ApiError, ApiRoutes, Created, ErrorCode, FieldError, Json, NoContent, Order, PageQuery, Paged,
    Path, Query, Reply, RouteDoc,
};
use crate::state::State;
use rate_limit::RateClass;

pub(super) fn register(r: &mut ApiRoutes) {
    r.post(
        "/api/v2/auth/register",
        register_account,
        RouteDoc::new("register", "Open an account (no organization yet)", "auth")
            .public()
            .rate_class(RateClass::Create)
            .description("Creates a user and e-mails a link to prove the address (`POST /auth/verify-email`). Join an organization afterwards with its signup code, or accept an invitation.")
            .errors(&[ErrorCode::Conflict]),
    );
    r.post(
        "/api/v2/auth/login",
        login,
        RouteDoc::new("login", "Sign in with e-mail and password", "auth")
            .public()
            .rate_class(RateClass::SignIn)
            .description(
                "Returns a session token (a Biscuit) to send as `Authorization: Bearer <token>`, \
                 and a `device_token` to send with later sign-ins from this client. \
                 Attempts are counted before the password is checked, per client address and \
                 per account: after the free ones, each further attempt must wait an interval \
                 doubling with every failure (429 with `Retry-After`; concurrent attempts \
                 beyond the free ones are refused unchecked). A valid `device_token` replaces \
                 the account's count by its own, so others' failures do not lock its client \
                 out. A success clears the account's (or the token's) failures.",
            )
            .errors(&[ErrorCode::Unauthenticated]),
    );
    r.post(
        "/api/v2/auth/login/2fa",
        login_second_factor,
        RouteDoc::new(
            "login_second_factor",
            "Complete a two-factor sign-in with a code or a recovery code",
            "auth",
        )
        .public()
        .rate_class(RateClass::SignIn)
        .description(
            "The second step of a sign-in to an account with two-factor sign-in: the \
             `challenge` from `POST /auth/login` (valid 5 minutes, single use, dead after 5 \
             wrong codes) and either the authenticator's current `code` (each code is \
             accepted once) or one of the account's unused `recovery_code`s (each works \
             once). Wrong codes count against the account's sign-in back-off like wrong \
             passwords. Answers the session like `POST /auth/login`. Refusals are 401 with \
             `details.reason`: `challenge_invalid`, `challenge_expired`, `code_invalid`, \
             `code_reused`.",
        )
        .errors(&[ErrorCode::Unauthenticated, ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/auth/refresh",
        refresh,
        RouteDoc::new(
            "refresh",
            "Spend a refresh token for a new access token and refresh token",
            "auth",
        )
        .public()
        .rate_class(RateClass::SignIn)
        .description(
            "Access tokens last 15 minutes; the `refresh_token` of a sign-in (or of the \
             previous refresh) gets a new pair until the session ends (30 days after \
             sign-in). Each refresh token works once: presenting one that was already \
             rotated means a copy exists, so the whole session is revoked (every access \
             and refresh token of it) and the refusal says `details.reason = \
             refresh_token_reused`. Other refusals (401): `refresh_token_invalid`, \
             `refresh_token_expired` (expired, signed out or revoked).",
        )
        .errors(&[ErrorCode::Unauthenticated]),
    );
    r.post(
        "/api/v2/auth/logout",
        logout,
        RouteDoc::new(
            "logout",
            "Sign out: revoke the presented session token",
            "auth",
        ),
    );
    r.get(
        "/api/v2/auth/sessions",
        list_sessions,
        RouteDoc::new(
            "list_sessions",
            "The caller's sessions, newest first",
            "auth",
        )
        .description("Paginated (`limit`, `cursor`); `meta.pagination.total` counts them all.")
        .errors(&[ErrorCode::ValidationFailed]),
    );
    r.route(
        actix_web::http::Method::DELETE,
        "/api/v2/auth/sessions/{session_id}",
        revoke_session,
        RouteDoc::new(
            "revoke_session",
            "Revoke one of the caller's sessions",
            "auth",
        )
        .description("Answers 204 (also for a session that had ended already).")
        .errors(&[ErrorCode::NotFound]),
    );
    r.post(
        "/api/v2/auth/password",
        change_password,
        RouteDoc::new(
            "change_password",
            "Change the password; every other session is revoked",
            "auth",
        )
        .errors(&[ErrorCode::ValidationFailed]),
    );
}

/// A new account.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schemars(example = register_example())]
pub struct RegisterBody {
    /// Sign-in address; unique, case-insensitive (surrounding spaces are trimmed).
    #[garde(length(chars, max = 254), custom(domain_rule(Email::parse)))]
    #[schemars(email)]
    pub email: String,
    /// 12 to 128 characters.
    #[garde(length(chars, min = 12, max = 128), custom(domain_rule(|p: &str| Password::parse(p.to_owned()))))]
    pub password: String,
    /// Given name.
    #[garde(
        length(chars, min = 1, max = 100),
        custom(domain_rule(PersonName::parse))
    )]
    pub first_name: String,
    /// Family name.
    #[garde(
        length(chars, min = 1, max = 100),
        custom(domain_rule(PersonName::parse))
    )]
    pub last_name: String,
    /// The language of the account's e-mail (a language tag: `en`, `es-MX`). Without
    /// it, the first language of the request's `Accept-Language`; else English.
    #[serde(default)]
    #[garde(inner(length(chars, max = 35), custom(domain_rule(Language::parse))))]
    #[schemars(length(max = 35), regex(pattern = tenancy::LANGUAGE_TAG_PATTERN))]
    pub locale: Option<String>,
}

fn register_example() -> serde_json::Value {
    serde_json::json!({
        "email": "jane.doe@example.org",
        "password": "correct horse battery staple",
        "first_name": "Jane",
        "last_name": "Doe"
    })
}

/// A user as the API shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserView {
    /// User id (UUID v7).
    pub id: uuid::Uuid,
    /// Sign-in address (normalized to lower case).
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Creation time, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: time::OffsetDateTime,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.as_uuid(),
            email: u.email.to_string(),
            first_name: u.first_name.to_string(),
            last_name: u.last_name.to_string(),
            status: serde_json::to_value(u.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            created_at: u.created_at,
        }
    }
}

pub(crate) fn field(field: &str, message: impl ToString) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code: "invalid_value".to_owned(),
        message: message.to_string(),
    }
}

/// The first language of the request's `Accept-Language` that is a tag, by weight.
pub struct AcceptLanguage(pub Option<Language>);

impl actix_web::FromRequest for AcceptLanguage {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;
    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(Self(
            req.headers()
                .get(actix_web::http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Language::from_accept_language),
        )))
    }
}

impl aide::OperationInput for AcceptLanguage {}

async fn register_account(
    state: State,
    meta: ClientMeta,
    AcceptLanguage(accepted): AcceptLanguage,
    Json(body): Json<RegisterBody>,
) -> Result<Created<UserView>, ApiError> {
    // The extractor ran the domain rules already; parsing again yields the typed values.
    let invalid = |f: &str, e: &dyn std::fmt::Display| ApiError::validation(vec![field(f, e)]);
    let email = Email::parse(&body.email).map_err(|e| invalid("email", &e))?;
    let password = Password::parse(body.password).map_err(|e| invalid("password", &e))?;
    let first_name = PersonName::parse(&body.first_name).map_err(|e| invalid("first_name", &e))?;
    let last_name = PersonName::parse(&body.last_name).map_err(|e| invalid("last_name", &e))?;
    let locale = match body.locale.as_deref() {
        Some(tag) => Some(Language::parse(tag).map_err(|e| invalid("locale", &e))?),
        None => accepted,
    };
    let user = state
        .accounts
        .register(
            &meta.audit_context(audit::Actor::System),
            RegisterRequest {
                email,
                password,
                first_name,
                last_name,
                locale,
            },
        )
        .await
        .map_err(|e| match e {
            RegisterError::EmailTaken { .. } => ApiError::new(
                ErrorCode::Conflict,
                "an account with this email already exists",
            )
            .with_details(serde_json::json!({ "field": "email" })),
            RegisterError::Unexpected(source) => ApiError::internal(source),
        })?;
    // The link that proves the address (claiming invitations needs a proven address).
    state
        .account_tokens
        .issue_email_verification(
            &meta.audit_context(audit::Actor::User(user.id.as_uuid())),
            user.id,
            &tenancy::OneTimeToken::generate(),
            time::OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| ApiError::internal(e.0))?;
    Ok(Created::at("/api/v2/me", user.into()))
}

/// Credentials.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Sign-in address.
    #[garde(length(chars, min = 1, max = 254))]
    pub email: String,
    /// Password.
    #[garde(length(chars, min = 1, max = 128))]
    pub password: String,
    /// The `device_token` of an earlier successful sign-in to this account from this
    /// client, if it kept one: the attempt then counts against that token's own
    /// back-off instead of the account's, so others' failed guesses on the account do
    /// not lock this client out (the client address's back-off still applies). An
    /// invalid, expired or other account's token is ignored.
    #[serde(default)]
    #[garde(inner(length(chars, max = 256)))]
    #[schemars(length(max = 256))]
    pub device_token: Option<String>,
}

/// A new session.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LoginResponse {
    /// The access token: send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it expires (RFC 3339; 15 minutes, then refresh).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub expires_at: time::OffsetDateTime,
    /// Spend it once at `POST /auth/refresh` for the next access and refresh token.
    /// Keep it secret: whoever holds it holds the session.
    pub refresh_token: String,
    /// When the session ends: no refresh after this (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub refresh_expires_at: time::OffsetDateTime,
    /// The signed-in user.
    pub user: UserView,
    /// Proof that this client signed in to this account: keep it (it is not a
    /// credential) and send it as `device_token` with later sign-ins from this client.
    /// Valid 90 days; a fresh one comes with every sign-in.
    pub device_token: String,
}

/// A password was right, and the account has two-factor sign-in: complete the sign-in
/// at `POST /auth/login/2fa` with this challenge and a code.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TwoFactorChallenge {
    /// Always `true`.
    pub two_factor_required: bool,
    /// The challenge (single use).
    pub challenge: String,
    /// When it expires (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub challenge_expires_at: time::OffsetDateTime,
    /// What the second step accepts: `totp`, `recovery_code`.
    pub methods: Vec<&'static str>,
}

/// The answer to a right password: a session, or a second-factor challenge.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum LoginOutcome {
    /// Signed in.
    Session(LoginResponse),
    /// Two-factor sign-in: one more step.
    Challenge(TwoFactorChallenge),
}

/// How long a device token is honoured.
const DEVICE_TOKEN_TTL: time::Duration = time::Duration::days(90);

/// What a device token signs: the account (digest of its normalized e-mail) and the
/// token's id.
fn device_subject(email: &str, id: &str) -> String {
    format!(
        "sign-in device v1|{}|{id}",
        rate_limit::account_digest(email)
    )
}

/// A device token for `email`: `<id>.<expiry>.<tag>`, an HMAC under the server's
/// confirmation key (no state stored; every instance accepts it).
fn issue_device_token(
    key: &credentials::ConfirmationKey,
    email: &str,
    now: time::OffsetDateTime,
) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let expires = (now + DEVICE_TOKEN_TTL).unix_timestamp();
    format!("{id}.{}", key.issue(&device_subject(email, &id), expires))
}

/// The id of `token` when it is a live device token for `email`.
fn device_id<'t>(
    key: &credentials::ConfirmationKey,
    token: &'t str,
    email: &str,
    now: time::OffsetDateTime,
) -> Option<&'t str> {
    let (id, signed) = token.split_once('.')?;
    (id.len() == 32
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && key.verify(signed, &device_subject(email, id), now.unix_timestamp()))
    .then_some(id)
}

async fn login(
    state: State,
    meta: ClientMeta,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginBody>,
) -> Result<Reply<LoginOutcome>, ApiError> {
    let limits = &state.rate_limits;
    let now = time::OffsetDateTime::now_utc();
    let device = body
        .device_token
        .as_deref()
        .and_then(|t| device_id(&state.confirmations, t, &body.email, now));
    // The attempt is reserved (counted as a failure) before the password is checked, in
    // one atomic step per store: concurrent guesses beyond the free ones are refused
    // without a check. A success or an internal error refunds it below.
    let permit = match limits.sign_in_begin(&body.email, device, ip).await {
        Ok(permit) => permit,
        Err(wait) => {
            return Err(rate_limited(
                wait,
                "too many failed sign-ins for this account or address; retry after the time in Retry-After",
            ));
        }
    };
    let signed_in = state
        .auth
        .sign_in(
            &meta.audit_context(audit::Actor::System),
            &body.email,
            body.password,
            device.is_some(),
        )
        .await;
    let outcome = match signed_in {
        Ok((SignedIn::Session(tokens), creds)) => {
            limits.sign_in_succeeded(permit).await;
            LoginOutcome::Session(session_response(tokens, creds.user, ""))
        }
        Ok((
            SignedIn::Challenge {
                challenge,
                expires_at,
            },
            _,
        )) => {
            // The password was right, but nobody is signed in yet: neither counted nor
            // cleared. The second step counts its wrong codes against the account.
            limits.sign_in_abandoned(permit).await;
            LoginOutcome::Challenge(TwoFactorChallenge {
                two_factor_required: true,
                challenge,
                challenge_expires_at: expires_at,
                methods: vec!["totp", "recovery_code"],
            })
        }
        Err(e) => {
            if e.code == ErrorCode::Unauthenticated {
                limits.sign_in_failed(permit);
            } else {
                limits.sign_in_abandoned(permit).await;
            }
            return Err(e);
        }
    };
    Ok(Reply(match outcome {
        LoginOutcome::Session(mut session) => {
            session.device_token = issue_device_token(&state.confirmations, &body.email, now);
            LoginOutcome::Session(session)
        }
        challenge @ LoginOutcome::Challenge(_) => challenge,
    }))
}

fn session_response(tokens: SessionTokens, user: User, device_token: &str) -> LoginResponse {
    LoginResponse {
        token: tokens.access.token,
        expires_at: tokens.access.expires_at,
        refresh_token: tokens.refresh_token,
        refresh_expires_at: tokens.session_expires_at,
        user: user.into(),
        device_token: device_token.to_owned(),
    }
}

/// The second step of a two-factor sign-in: `code` or `recovery_code`, not both.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"required": ["code"], "properties": {"code": {"type": "string"}, "recovery_code": {"type": "null"}}},
    {"required": ["recovery_code"], "properties": {"recovery_code": {"type": "string"}, "code": {"type": "null"}}}
]))]
pub struct SecondFactorBody {
    /// The `challenge` from `POST /auth/login`.
    #[garde(length(chars, min = 1, max = 128))]
    pub challenge: String,
    /// The authenticator app's current 6-digit code (or send `recovery_code`).
    #[serde(default)]
    #[garde(inner(length(chars, min = 6, max = 10)))]
    #[schemars(length(min = 6, max = 10))]
    pub code: Option<String>,
    /// One of the recovery codes (dashes and spaces are ignored).
    #[serde(default)]
    #[garde(inner(length(chars, min = 1, max = 64)))]
    #[schemars(length(min = 1, max = 64))]
    pub recovery_code: Option<String>,
    /// The `device_token` of an earlier sign-in from this client, if it kept one
    /// (without it, the account's owner is told of a sign-in from a new device).
    #[serde(default)]
    #[garde(inner(length(chars, max = 256)))]
    #[schemars(length(max = 256))]
    pub device_token: Option<String>,
}

/// The factor of a body with `code` or `recovery_code` (exactly one).
pub(super) fn factor(
    code: Option<String>,
    recovery_code: Option<String>,
) -> Result<Factor, ApiError> {
    match (code, recovery_code) {
        (Some(code), None) => Ok(Factor::Totp(code)),
        (None, Some(recovery)) => Ok(Factor::Recovery(recovery)),
        _ => Err(ApiError::validation(vec![FieldError {
            field: "code".into(),
            code: "one_of".into(),
            message: "send either `code` or `recovery_code`".into(),
        }])),
    }
}

async fn login_second_factor(
    state: State,
    meta: ClientMeta,
    ClientIp(ip): ClientIp,
    Json(body): Json<SecondFactorBody>,
) -> Result<Reply<LoginResponse>, ApiError> {
    let factor = factor(body.code, body.recovery_code)?;
    let owner = state.auth.challenge_owner(&body.challenge).await?;
    let email = owner.user.email.to_string();
    let limits = &state.rate_limits;
    let permit = match limits.sign_in_begin(&email, None, ip).await {
        Ok(permit) => permit,
        Err(wait) => {
            return Err(rate_limited(
                wait,
                "too many failed sign-ins for this account or address; retry after the time in Retry-After",
            ));
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let known_device = body
        .device_token
        .as_deref()
        .and_then(|t| device_id(&state.confirmations, t, &email, now))
        .is_some();
    let done = state
        .auth
        .complete_sign_in(
            &meta.audit_context(audit::Actor::System),
            &body.challenge,
            factor,
            known_device,
        )
        .await;
    let (tokens, _) = match done {
        Ok(done) => {
            limits.sign_in_succeeded(permit).await;
            done
        }
        Err(e) => {
            if e.code == ErrorCode::Unauthenticated {
                limits.sign_in_failed(permit);
            } else {
                limits.sign_in_abandoned(permit).await;
            }
            return Err(e);
        }
    };
    let device = issue_device_token(&state.confirmations, &email, now);
    Ok(Reply(session_response(tokens, owner.user, &device)))
}

/// A refresh.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// The refresh token of the sign-in or of the previous refresh.
    #[garde(length(chars, min = 1, max = 256))]
    pub refresh_token: String,
}

/// A refreshed session.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RefreshResponse {
    /// The new access token.
    pub token: String,
    /// When it expires (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub expires_at: time::OffsetDateTime,
    /// The next refresh token (the one sent is spent).
    pub refresh_token: String,
    /// When the session ends (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub refresh_expires_at: time::OffsetDateTime,
    /// The session.
    pub session_id: uuid::Uuid,
}

async fn refresh(
    state: State,
    meta: ClientMeta,
    Json(body): Json<RefreshBody>,
) -> Result<Reply<RefreshResponse>, ApiError> {
    let (tokens, _) = state
        .auth
        .refresh(
            &meta.audit_context(audit::Actor::System),
            &body.refresh_token,
        )
        .await?;
    Ok(Reply(RefreshResponse {
        token: tokens.access.token,
        expires_at: tokens.access.expires_at,
        refresh_token: tokens.refresh_token,
        refresh_expires_at: tokens.session_expires_at,
        session_id: tokens.session_id,
    }))
}

/// The outcome of a revocation.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Revoked {
    /// Whether a live session was revoked.
    pub revoked: bool,
}

async fn logout(state: State, caller: Caller) -> Result<Reply<Revoked>, ApiError> {
    let Principal::User {
        user_id,
        session_id,
        ..
    } = caller.principal;
    let revoked = state
        .auth
        .revoke(&caller.audit_context(), user_id, session_id)
        .await?;
    Ok(Reply(Revoked { revoked }))
}

/// A session as its owner sees it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SessionView {
    /// Session id.
    pub id: uuid::Uuid,
    /// Created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: time::OffsetDateTime,
    /// Expires (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub expires_at: time::OffsetDateTime,
    /// Whether it can still be used.
    pub active: bool,
    /// Whether it is the one making this request.
    pub current: bool,
    /// Client IP at sign-in.
    pub ip: Option<String>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
}

async fn list_sessions(
    state: State,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<Paged<SessionView>, ApiError> {
    use tenancy::ports::SessionRepository;
    let Principal::User {
        user_id,
        session_id,
        ..
    } = caller.principal;
    let now = time::OffsetDateTime::now_utc();
    // A user's sessions are read whole and paged here, newest (largest v7 id) first.
    let sessions = state.auth.sessions().list_sessions(user_id).await?;
    Ok(Paged::from_all(
        sessions,
        |s| s.id,
        Order::Descending,
        q.cursor.as_ref(),
        q.limit(),
    )
    .map(|s| SessionView {
        active: s.is_live(now),
        current: s.id == session_id,
        id: s.id,
        created_at: s.created_at,
        expires_at: s.expires_at,
        ip: s.ip,
        user_agent: s.user_agent,
    }))
}

/// Path of one session.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SessionPath {
    /// Session id.
    pub session_id: uuid::Uuid,
}

async fn revoke_session(
    state: State,
    caller: Caller,
    Path(p): Path<SessionPath>,
) -> Result<NoContent, ApiError> {
    use tenancy::ports::SessionRepository;
    let user = caller.user_id();
    if state
        .auth
        .sessions()
        .get_session(user, p.session_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("no such session"));
    }
    state
        .auth
        .revoke(&caller.audit_context(), user, p.session_id)
        .await?;
    Ok(NoContent)
}

/// A password change.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    /// The current password.
    #[garde(length(chars, min = 1, max = 128))]
    pub current_password: String,
    /// The new password (12 to 128 characters).
    #[garde(length(chars, min = 12, max = 128), custom(domain_rule(|p: &str| Password::parse(p.to_owned()))))]
    pub new_password: String,
}

async fn change_password(
    state: State,
    caller: Caller,
    Json(body): Json<ChangePasswordBody>,
) -> Result<Reply<Revoked>, ApiError> {
    let Principal::User {
        user_id,
        session_id,
        ..
    } = caller.principal;
    let new = Password::parse(body.new_password)
        .map_err(|e| ApiError::validation(vec![field("new_password", e)]))?;
    state
        .auth
        .change_password(
            &caller.audit_context(),
            user_id,
            Some(session_id),
            body.current_password,
            new,
        )
        .await?;
    Ok(Reply(Revoked { revoked: true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tokens_name_their_account_and_expire() {
        let key = credentials::ConfirmationKey::derive(&credentials::SigningKey::generate());
        let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid");
        let token = issue_device_token(&key, "Jane@Example.org", now);
        let id = device_id(&key, &token, " jane@example.org", now).expect("same account");
        assert_eq!(token.split_once('.').map(|(i, _)| i), Some(id));
        // Another account, a later sign-in after expiry, a forged id or tag: ignored.
        assert_eq!(device_id(&key, &token, "john@example.org", now), None);
        let expired = now + DEVICE_TOKEN_TTL + time::Duration::seconds(1);
        assert_eq!(device_id(&key, &token, "jane@example.org", expired), None);
        let (_, signed) = token.split_once('.').expect("id.rest");
        let forged = format!("{}.{signed}", "a".repeat(32));
        assert_eq!(device_id(&key, &forged, "jane@example.org", now), None);
        let other = credentials::ConfirmationKey::derive(&credentials::SigningKey::generate());
        assert_eq!(device_id(&other, &token, "jane@example.org", now), None);
        for bad in ["", ".", "x.y.z", "garbage"] {
            assert_eq!(
                device_id(&key, bad, "jane@example.org", now),
                None,
                "{bad:?}"
            );
        }
        // Every sign-in gets a fresh id.
        assert_ne!(issue_device_token(&key, "jane@example.org", now), token);
    }
}
