//! The caller's own account security: two-factor sign-in (TOTP) and their sign-ins.

use audit::{AuditCursor, AuditFilter, AuditLog, Category, ChainId, EventType, PageRequest};
use garde::Validate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use super::auth::factor;
use crate::auth::Caller;
use crate::http::rate_limit::{ClientIp, rate_limited};
use crate::http::{
    ApiError, ApiRoutes, ErrorCode, FieldError, Json, Paged, Pagination, Query, Reply, RouteDoc,
};
use crate::state::State;
use rate_limit::RateClass;

const TAG: &str = "me";

pub(super) fn register(r: &mut ApiRoutes) {
    r.get(
        "/api/v2/me/2fa/totp",
        totp_status,
        RouteDoc::new(
            "totp_status",
            "Whether two-factor sign-in (TOTP) is on",
            TAG,
        ),
    );
    r.post(
        "/api/v2/me/2fa/totp",
        enrol_totp,
        RouteDoc::new(
            "enrol_totp",
            "Start enrolling an authenticator app (TOTP)",
            TAG,
        )
        .rate_class(RateClass::Update)
        .description(
            "Returns a new secret (base 32, to type into the app) and its `otpauth://` \
                 URI (to show as a QR code). Nothing changes at sign-in until the enrolment \
                 is confirmed with a code (`POST /me/2fa/totp/confirm`); enrolling again \
                 before that replaces the secret. 409 (`details.reason = \
                 two_factor_enabled`) when it is already on.",
        )
        .errors(&[ErrorCode::Conflict]),
    );
    r.post(
        "/api/v2/me/2fa/totp/confirm",
        confirm_totp,
        RouteDoc::new(
            "confirm_totp",
            "Confirm the enrolment with a code: two-factor sign-in is on",
            TAG,
        )
        .rate_class(RateClass::SignIn)
        .description(
            "Answers 10 single-use recovery codes, shown this once (only their hashes are \
             kept). From now on, `POST /auth/login` answers a challenge to complete at \
             `POST /auth/login/2fa`. A wrong or reused code is 401 (`details.reason`: \
             `code_invalid`, `code_reused`) and counts against the account's sign-in \
             back-off (429 with `Retry-After` when exhausted); no pending enrolment is 409.",
        )
        .errors(&[
            ErrorCode::Unauthenticated,
            ErrorCode::Conflict,
            ErrorCode::ValidationFailed,
        ]),
    );
    r.post(
        "/api/v2/me/2fa/totp/disable",
        disable_totp,
        RouteDoc::new("disable_totp", "Turn two-factor sign-in off", TAG)
            .rate_class(RateClass::SignIn)
            .description(
                "Proven by the app's current `code`, a `recovery_code` or the account's \
                 `password` (exactly one). The secret and the recovery codes are deleted. \
                 A wrong code or password counts against the account's sign-in back-off.",
            )
            .errors(&[
                ErrorCode::Unauthenticated,
                ErrorCode::Conflict,
                ErrorCode::ValidationFailed,
            ]),
    );
    r.get(
        "/api/v2/me/sign-ins",
        sign_ins,
        RouteDoc::new(
            "list_sign_ins",
            "Your sign-ins and failed attempts, newest first",
            TAG,
        )
        .description(
            "From the audit log's activity events on your account: successful sign-ins, \
             wrong passwords, wrong second-factor codes, reused refresh tokens, with the \
             client address and user agent.",
        )
        .errors(&[ErrorCode::ValidationFailed]),
    );
}

/// Two-factor sign-in, as its owner sees it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TotpStatus {
    /// Whether sign-ins need a second factor.
    pub enabled: bool,
    /// Whether an enrolment waits for its confirming code.
    pub pending: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: u64,
}

async fn totp_status(state: State, caller: Caller) -> Result<Reply<TotpStatus>, ApiError> {
    let enrolment = state
        .auth
        .security()
        .totp(caller.user_id())
        .await
        .map_err(|e| ApiError::internal(e.0))?;
    Ok(Reply(match enrolment {
        Some(e) => TotpStatus {
            enabled: e.confirmed,
            pending: !e.confirmed,
            recovery_codes_left: if e.confirmed {
                e.recovery_codes_left
            } else {
                0
            },
        },
        None => TotpStatus {
            enabled: false,
            pending: false,
            recovery_codes_left: 0,
        },
    }))
}

/// A new TOTP secret.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TotpEnrolmentView {
    /// The secret in base 32 (to type into an authenticator app).
    pub secret: String,
    /// The `otpauth://totp/…` URI (to show as a QR code).
    pub otpauth_uri: String,
    /// Digits per code.
    pub digits: u8,
    /// Seconds per code.
    pub period: u32,
}

/// The caller's sign-in address.
async fn email_of(state: &State, caller: &Caller) -> Result<String, ApiError> {
    use tenancy::ports::SessionRepository;
    Ok(state
        .auth
        .sessions()
        .credentials_by_id(caller.user_id())
        .await
        .map_err(|e| ApiError::internal(e.0))?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "unknown user"))?
        .user
        .email
        .to_string())
}

/// Runs a check of a code or password for the signed-in `email` under the sign-in
/// back-off of the account and the address (as `POST /auth/login`): a wrong code or
/// password counts as a failed sign-in, so a stolen session cannot guess either.
async fn under_sign_in_backoff<T>(
    state: &State,
    email: &str,
    ip: Option<std::net::IpAddr>,
    attempt: impl std::future::Future<Output = Result<T, ApiError>> + Send,
) -> Result<T, ApiError> {
    let limits = &state.rate_limits;
    let permit = limits.sign_in_begin(email, None, ip).await.map_err(|wait| {
        rate_limited(
            wait,
            "too many wrong codes or passwords for this account or address; retry after the time in Retry-After",
        )
    })?;
    match attempt.await {
        Ok(done) => {
            limits.sign_in_succeeded(permit).await;
            Ok(done)
        }
        Err(e) => {
            if matches!(
                e.code,
                ErrorCode::Unauthenticated | ErrorCode::ValidationFailed
            ) {
                limits.sign_in_failed(permit);
            } else {
                limits.sign_in_abandoned(permit).await;
            }
            Err(e)
        }
    }
}

async fn enrol_totp(state: State, caller: Caller) -> Result<Reply<TotpEnrolmentView>, ApiError> {
    let user = caller.user_id();
    let account = email_of(&state, &caller).await?;
    let (secret, otpauth_uri) = state
        .auth
        .enrol_totp(&caller.audit_context(), user, &account)
        .await?;
    Ok(Reply(TotpEnrolmentView {
        secret,
        otpauth_uri,
        digits: 6,
        period: 30,
    }))
}

/// A TOTP code.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct TotpCodeBody {
    /// The authenticator app's current code.
    #[garde(length(chars, min = 6, max = 10))]
    pub code: String,
}

/// Two-factor sign-in is on.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TotpEnabled {
    /// Always `true`.
    pub enabled: bool,
    /// Single-use recovery codes: store them safely, they are not shown again.
    pub recovery_codes: Vec<String>,
}

async fn confirm_totp(
    state: State,
    caller: Caller,
    ClientIp(ip): ClientIp,
    Json(body): Json<TotpCodeBody>,
) -> Result<Reply<TotpEnabled>, ApiError> {
    let email = email_of(&state, &caller).await?;
    let recovery_codes = under_sign_in_backoff(
        &state,
        &email,
        ip,
        Box::pin(
            state
                .auth
                .confirm_totp(&caller.audit_context(), caller.user_id(), body.code),
        ),
    )
    .await?;
    Ok(Reply(TotpEnabled {
        enabled: true,
        recovery_codes,
    }))
}

/// Proof for turning two-factor sign-in off: exactly one of the fields.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"required": ["code"], "properties": {"code": {"type": "string"}, "recovery_code": {"type": "null"}, "password": {"type": "null"}}},
    {"required": ["recovery_code"], "properties": {"recovery_code": {"type": "string"}, "code": {"type": "null"}, "password": {"type": "null"}}},
    {"required": ["password"], "properties": {"password": {"type": "string"}, "code": {"type": "null"}, "recovery_code": {"type": "null"}}}
]))]
pub struct DisableTotpBody {
    /// The authenticator app's current code.
    #[serde(default)]
    #[garde(inner(length(chars, min = 6, max = 10)))]
    #[schemars(length(min = 6, max = 10))]
    pub code: Option<String>,
    /// A recovery code.
    #[serde(default)]
    #[garde(inner(length(chars, min = 1, max = 64)))]
    #[schemars(length(min = 1, max = 64))]
    pub recovery_code: Option<String>,
    /// The account's password.
    #[serde(default)]
    #[garde(inner(length(chars, min = 1, max = 128)))]
    #[schemars(length(min = 1, max = 128))]
    pub password: Option<String>,
}

/// Two-factor sign-in is off.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TotpDisabled {
    /// Always `false`.
    pub enabled: bool,
}

async fn disable_totp(
    state: State,
    caller: Caller,
    ClientIp(ip): ClientIp,
    Json(body): Json<DisableTotpBody>,
) -> Result<Reply<TotpDisabled>, ApiError> {
    let proofs = [
        body.code.is_some(),
        body.recovery_code.is_some(),
        body.password.is_some(),
    ];
    if proofs.iter().filter(|p| **p).count() != 1 {
        return Err(ApiError::validation(vec![FieldError {
            field: "code".into(),
            code: "one_of".into(),
            message: "send exactly one of `code`, `recovery_code` or `password`".into(),
        }]));
    }
    let factor = if body.password.is_some() {
        None
    } else {
        Some(factor(body.code, body.recovery_code)?)
    };
    let email = email_of(&state, &caller).await?;
    under_sign_in_backoff(
        &state,
        &email,
        ip,
        Box::pin(state.auth.disable_totp(
            &caller.audit_context(),
            caller.user_id(),
            factor,
            body.password,
        )),
    )
    .await?;
    Ok(Reply(TotpDisabled { enabled: false }))
}

/// The sign-in list's query.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct SignInsQuery {
    /// The `next_cursor` of the previous page.
    #[garde(skip)]
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[garde(inner(range(min = 1, max = 200)))]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
}

/// One sign-in or failed attempt.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SignInView {
    /// When (RFC 3339).
    pub at: String,
    /// `success`, `wrong_password`, `wrong_second_factor`, `second_factor_required`
    /// (a right password, waiting for the code) or `refresh_token_reused` (the
    /// session was revoked).
    pub outcome: &'static str,
    /// The client address.
    pub ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
}

fn outcome(kind: EventType) -> Option<&'static str> {
    Some(match kind {
        EventType::AuthSignIn => "success",
        EventType::AuthSignInFailed => "wrong_password",
        EventType::AuthTwoFactorFailed => "wrong_second_factor",
        EventType::AuthSignInChallenge => "second_factor_required",
        EventType::AuthRefreshReuse => "refresh_token_reused",
        _ => return None,
    })
}

async fn sign_ins(
    state: State,
    caller: Caller,
    Query(q): Query<SignInsQuery>,
) -> Result<Paged<SignInView>, ApiError> {
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<AuditCursor>().map_err(|e| {
                ApiError::validation(vec![FieldError {
                    field: "cursor".into(),
                    code: "invalid_value".into(),
                    message: e.to_string(),
                }])
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
    let mut filter = AuditFilter::new(ChainId::Platform);
    filter.category = Some(Category::Activity);
    filter.entity_type = Some("user".to_owned());
    filter.entity_id = Some(caller.user_id().to_string());
    let page = state
        .audit_log
        .find(filter, PageRequest::new(limit, cursor))
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    let items = page
        .items
        .into_iter()
        .filter_map(|e| {
            let outcome = outcome(EventType::of(&e.body.action)?)?;
            Some(SignInView {
                at: e.body.occurred_at.format(&Rfc3339).unwrap_or_default(),
                outcome,
                ip: e.body.ip,
                user_agent: e.body.user_agent,
            })
        })
        .collect();
    Ok(Paged {
        items,
        pagination: Pagination {
            limit,
            next_cursor: page.next_cursor.map(|c| c.encode()),
            total: None,
        },
    })
}
