//! The account lifecycle around e-mailed links: accepting an invitation (signed in, or
//! as a new account), answering one's own invitations, proving an address, resetting a
//! password. Every link's token is random, stored only as a digest, single-use and
//! expiring; the messages are queued in the transaction of the change (see
//! `tenancy_store::Notices`).

use garde::Validate;
use rate_limit::RateClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::ports::{
    AcceptedInvitation, AccountTokenRepository, AnswerInvitationError, Claimant, EmailChangeError,
    InvitationRepository, PasswordHasher, SessionRepository, UseTokenError,
};
use tenancy::{Email, InvitationId, Language, OneTimeToken, Password, PersonName, TokenRefused};

use super::auth::UserView;
use super::common::domain_rule;
use crate::auth::{Caller, ClientMeta, MaybeCaller};
use crate::http::{
    Accepted, ApiError, ApiRoutes, ErrorCode, FieldError, Json, Order, PageQuery, Paged, Path,
    Query, Reply, RouteDoc,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    r.post(
        "/api/v2/invitations/accept",
        accept_invitation,
        RouteDoc::new(
            "accept_invitation",
            "Accept an invitation from its e-mailed link",
            "account",
        )
        .public()
        .rate_class(RateClass::SignIn)
        .description(
            "With `Authorization: Bearer <session>` the signed-in account (whose address \
             must be the invited one) joins the org. Without it, a new account is opened \
             for the invited address with `first_name`, `last_name` and `password` (the \
             link proves the address); if the address has an account already, sign in \
             first (409). Answers a session like `POST /auth/login`.",
        )
        .errors(&[
            ErrorCode::LinkInvalid,
            ErrorCode::LinkExpired,
            ErrorCode::InvitationEnded,
            ErrorCode::Conflict,
            ErrorCode::PermissionDenied,
            ErrorCode::ValidationFailed,
        ]),
    );
    r.get(
        "/api/v2/me/invitations",
        my_invitations,
        RouteDoc::new(
            "list_my_invitations",
            "The pending invitations to the caller's verified address",
            "account",
        )
        .description("In id (creation) order, paginated (`limit`, `cursor`); `meta.pagination.total` counts them all.")
        .errors(&[ErrorCode::EmailNotVerified, ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/me/invitations/{invitation_id}/accept",
        accept_my_invitation,
        RouteDoc::new(
            "accept_my_invitation",
            "Accept one of the caller's pending invitations",
            "account",
        )
        .errors(&[
            ErrorCode::EmailNotVerified,
            ErrorCode::NotFound,
            ErrorCode::LinkExpired,
            ErrorCode::InvitationEnded,
            ErrorCode::Conflict,
        ]),
    );
    r.post(
        "/api/v2/me/invitations/{invitation_id}/decline",
        decline_my_invitation,
        RouteDoc::new(
            "decline_my_invitation",
            "Decline one of the caller's pending invitations",
            "account",
        )
        .errors(&[
            ErrorCode::EmailNotVerified,
            ErrorCode::NotFound,
            ErrorCode::LinkExpired,
            ErrorCode::InvitationEnded,
        ]),
    );
    r.post(
        "/api/v2/auth/verify-email",
        verify_email,
        RouteDoc::new(
            "verify_email",
            "Prove an address with the token of its e-mailed link",
            "account",
        )
        .public()
        .rate_class(RateClass::SignIn)
        .errors(&[
            ErrorCode::LinkInvalid,
            ErrorCode::LinkExpired,
            ErrorCode::LinkUsed,
            ErrorCode::Conflict,
        ]),
    );
    r.post(
        "/api/v2/me/email",
        change_email,
        RouteDoc::new(
            "change_email",
            "Change the caller's address: confirm with the link sent to the new one",
            "account",
        )
        .rate_class(RateClass::SignIn)
        .description(
            "Needs the account's `password`. A link (valid like a verification link, \
             single-use) goes to the new address and a notice to the current one; the \
             address changes only when the link is followed (`POST /auth/verify-email` \
             with its token), and the new one counts as proven from then on. Until then \
             sign-in, messages and invitations keep the current address. 409 when \
             another account has the address (also when the link is followed, if it was \
             taken meanwhile). The new address counts against its 5 links an hour.",
        )
        .errors(&[ErrorCode::Conflict, ErrorCode::ValidationFailed]),
    );
    r.route(
        actix_web::http::Method::PATCH,
        "/api/v2/me",
        update_me,
        RouteDoc::new(
            "update_me",
            "Change the caller's account preferences (the language of their e-mail)",
            "me",
        )
        .description("Send the account's `version` (`GET /api/v2/me`) or `If-Match`: without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH` (other account changes, such as a new password or name, move the version on too).")
        .errors(&[
            ErrorCode::ValidationFailed,
            ErrorCode::PreconditionRequired,
            ErrorCode::VersionMismatch,
        ]),
    );
    r.post(
        "/api/v2/auth/verify-email/resend",
        resend_verification,
        RouteDoc::new(
            "resend_verification",
            "Send a new link to prove the caller's address",
            "account",
        )
        .rate_class(RateClass::SignIn)
        .description("At most 5 links an hour to one address (429 with `Retry-After`)."),
    );
    r.post(
        "/api/v2/auth/password-reset",
        request_password_reset,
        RouteDoc::new(
            "request_password_reset",
            "Ask for a password-reset link",
            "account",
        )
        .public()
        .rate_class(RateClass::SignIn)
        .description(
            "Always answers 202, whether or not an account has the address: a link (valid \
             one hour, single-use) is e-mailed only if one does. One address is sent at \
             most 5 links an hour (reset, verification, address change together), however \
             many clients ask: 429 with `Retry-After` beyond that.",
        ),
    );
    r.post(
        "/api/v2/auth/password-reset/confirm",
        confirm_password_reset,
        RouteDoc::new(
            "confirm_password_reset",
            "Set a new password with the token of a reset link",
            "account",
        )
        .public()
        .rate_class(RateClass::SignIn)
        .description("Every session of the account ends; the account holder is told by e-mail.")
        .errors(&[
            ErrorCode::LinkInvalid,
            ErrorCode::LinkExpired,
            ErrorCode::LinkUsed,
            ErrorCode::ValidationFailed,
        ]),
    );
}

/// A token from an e-mailed link (`token=<value>`).
fn parse_token(raw: &str) -> Result<OneTimeToken, ApiError> {
    OneTimeToken::parse(raw).ok_or_else(|| refused(TokenRefused::Unknown))
}

fn refused(r: TokenRefused) -> ApiError {
    let code = match r {
        TokenRefused::Unknown => ErrorCode::LinkInvalid,
        TokenRefused::Expired => ErrorCode::LinkExpired,
        TokenRefused::Used => ErrorCode::LinkUsed,
    };
    ApiError::new(code, r.to_string())
}

fn use_token_error(e: UseTokenError) -> ApiError {
    match e {
        UseTokenError::Refused(r) => refused(r),
        UseTokenError::AddressTaken { .. } => ApiError::new(
            ErrorCode::Conflict,
            "another account has this address by now; the change was not made",
        )
        .with_details(serde_json::json!({ "field": "email" })),
        UseTokenError::Unexpected(e) => ApiError::internal(e.0),
    }
}

fn answer_error(e: AnswerInvitationError) -> ApiError {
    match e {
        AnswerInvitationError::Refused(r) => refused(r),
        AnswerInvitationError::Ended(ended) => {
            ApiError::new(ErrorCode::InvitationEnded, ended.to_string())
                .with_details(serde_json::json!({ "status": ended.status }))
        }
        AnswerInvitationError::AccountExists => ApiError::new(
            ErrorCode::Conflict,
            "an account with this address exists: sign in, then accept",
        )
        .with_details(serde_json::json!({ "reason": "account_exists" })),
        AnswerInvitationError::WrongAccount => ApiError::new(
            ErrorCode::PermissionDenied,
            "the invitation is for another address",
        ),
        AnswerInvitationError::NotVerified => ApiError::new(
            ErrorCode::EmailNotVerified,
            "verify your e-mail address first",
        ),
        AnswerInvitationError::AlreadyMember => ApiError::new(
            ErrorCode::Conflict,
            "you are a member of this organization already",
        )
        .with_details(serde_json::json!({ "reason": "already_member" })),
        AnswerInvitationError::Unexpected(e) => ApiError::internal(e.0),
    }
}

/// Accepting an invitation from its link.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationBody {
    /// The link's `token`.
    #[garde(length(chars, max = 128))]
    pub token: String,
    /// For a new account: given name.
    #[garde(inner(
        length(chars, min = 1, max = 100),
        custom(domain_rule(PersonName::parse))
    ))]
    pub first_name: Option<String>,
    /// For a new account: family name.
    #[garde(inner(
        length(chars, min = 1, max = 100),
        custom(domain_rule(PersonName::parse))
    ))]
    pub last_name: Option<String>,
    /// For a new account: 12 to 128 characters.
    #[garde(inner(length(chars, min = 12, max = 128)))]
    #[schemars(length(min = 12, max = 128))]
    pub password: Option<String>,
}

/// A session from an accepted invitation.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AcceptedView {
    /// The access token: send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it expires (RFC 3339; then refresh).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub expires_at: time::OffsetDateTime,
    /// Spend it once at `POST /auth/refresh` for the next access and refresh token.
    pub refresh_token: String,
    /// When the session ends (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub refresh_expires_at: time::OffsetDateTime,
    /// The account.
    pub user: UserView,
    /// Whether the account was opened by this acceptance.
    pub account_created: bool,
    /// The org joined.
    pub org_id: uuid::Uuid,
    /// The role held there (`volunteer`, … or a custom role's name).
    pub role: String,
}

fn missing(field: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code: "required".to_owned(),
        message: format!("{field} is required to open a new account"),
    }
}

async fn accept_invitation(
    state: State,
    meta: ClientMeta,
    MaybeCaller(signed_in): MaybeCaller,
    Json(body): Json<AcceptInvitationBody>,
) -> Result<Reply<AcceptedView>, ApiError> {
    let token = parse_token(&body.token)?;
    let ctx = match &signed_in {
        Some(caller) => caller.audit_context(),
        None => meta.audit_context(audit::Actor::System),
    };
    let claimant = match &signed_in {
        Some(caller) => Claimant::Account(caller.user_id()),
        None => {
            let (Some(first), Some(last), Some(password)) =
                (body.first_name, body.last_name, body.password)
            else {
                return Err(ApiError::validation(vec![
                    missing("first_name"),
                    missing("last_name"),
                    missing("password"),
                ]));
            };
            let invalid =
                |f: &str, e: &dyn std::fmt::Display| ApiError::validation(vec![field(f, e)]);
            let first_name = PersonName::parse(&first).map_err(|e| invalid("first_name", &e))?;
            let last_name = PersonName::parse(&last).map_err(|e| invalid("last_name", &e))?;
            let password = Password::parse(password).map_err(|e| invalid("password", &e))?;
            let password_hash = state
                .auth
                .hasher()
                .hash(password)
                .await
                .map_err(ApiError::internal)?;
            Claimant::NewAccount {
                first_name,
                last_name,
                password_hash,
            }
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let accepted = state
        .orgs
        .accept_invitation(&ctx, &token, claimant, now)
        .await
        .map_err(answer_error)?;
    // A signed-in caller's new session is as strong as the one they signed in with; a
    // new account's is its first.
    let how = crate::auth::HowSignedIn {
        second_factor: signed_in.as_ref().is_some_and(Caller::second_factor),
        known_device: true,
    };
    let session = state.auth.open_session(&ctx, accepted.user.id, how).await?;
    Ok(Reply(accepted_view(accepted, session)))
}

fn accepted_view(a: AcceptedInvitation, session: crate::auth::SessionTokens) -> AcceptedView {
    AcceptedView {
        token: session.access.token,
        expires_at: session.access.expires_at,
        refresh_token: session.refresh_token,
        refresh_expires_at: session.session_expires_at,
        account_created: a.created,
        org_id: a.org.id.as_uuid(),
        role: a.membership.role.name().to_owned(),
        user: a.user.into(),
    }
}

fn field(name: &str, e: &dyn std::fmt::Display) -> FieldError {
    FieldError {
        field: name.to_owned(),
        code: "invalid_value".to_owned(),
        message: e.to_string(),
    }
}

/// A pending invitation to the caller.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MyInvitationView {
    /// The invitation.
    pub id: uuid::Uuid,
    /// The inviting org.
    pub org_id: uuid::Uuid,
    /// The role offered (`volunteer`, … or a custom role's name).
    pub role: String,
    /// Until when it can be accepted (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub expires_at: time::OffsetDateTime,
}

async fn verified_email(state: &State, caller: &Caller) -> Result<Email, ApiError> {
    let creds = state
        .auth
        .sessions()
        .credentials_by_id(caller.user_id())
        .await
        .map_err(|e| ApiError::internal(e.0))?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "unknown user"))?;
    if !creds.email_verified {
        return Err(ApiError::new(
            ErrorCode::EmailNotVerified,
            "verify your e-mail address first",
        ));
    }
    Ok(creds.user.email)
}

async fn my_invitations(
    state: State,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<Paged<MyInvitationView>, ApiError> {
    let email = verified_email(&state, &caller).await?;
    let now = time::OffsetDateTime::now_utc();
    // One address's pending invitations are few: read whole, paged here in id order.
    let list = state
        .orgs
        .invitations_to(&email, now)
        .await
        .map_err(|e| ApiError::internal(e.0))?;
    Ok(Paged::from_all(
        list,
        |i| i.id.as_uuid(),
        Order::Ascending,
        q.cursor.as_ref(),
        q.limit(),
    )
    .map(|i| MyInvitationView {
        id: i.id.as_uuid(),
        org_id: i.org_id.as_uuid(),
        role: i.role.name().to_owned(),
        expires_at: i.expires_at,
    }))
}

/// One of the caller's invitations.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct MyInvitationPath {
    /// The invitation (from `GET /me/invitations`).
    pub invitation_id: uuid::Uuid,
}

/// The answer to one's own invitation.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Answered {
    /// `accepted` or `declined`.
    pub status: String,
    /// The org.
    pub org_id: uuid::Uuid,
}

async fn answer(
    state: &State,
    caller: &Caller,
    p: &MyInvitationPath,
    accept: bool,
) -> Result<Reply<Answered>, ApiError> {
    let email = verified_email(state, caller).await?;
    let now = time::OffsetDateTime::now_utc();
    // Only an invitation to the caller's own address is theirs to answer.
    let org = state
        .orgs
        .invitations_to(&email, now)
        .await
        .map_err(|e| ApiError::internal(e.0))?
        .into_iter()
        .find(|i| i.id.as_uuid() == p.invitation_id)
        .map(|i| i.org_id)
        .ok_or_else(|| ApiError::not_found("no such pending invitation to your address"))?;
    state
        .orgs
        .answer_invitation(
            &caller.audit_context(),
            caller.user_id(),
            org,
            InvitationId::from_uuid(p.invitation_id),
            accept,
            now,
        )
        .await
        .map_err(answer_error)?;
    Ok(Reply(Answered {
        status: if accept { "accepted" } else { "declined" }.to_owned(),
        org_id: org.as_uuid(),
    }))
}

async fn accept_my_invitation(
    state: State,
    caller: Caller,
    Path(p): Path<MyInvitationPath>,
) -> Result<Reply<Answered>, ApiError> {
    answer(&state, &caller, &p, true).await
}

async fn decline_my_invitation(
    state: State,
    caller: Caller,
    Path(p): Path<MyInvitationPath>,
) -> Result<Reply<Answered>, ApiError> {
    answer(&state, &caller, &p, false).await
}

/// A token from an e-mailed link.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// The link's `token`.
    #[garde(length(chars, max = 128))]
    pub token: String,
}

/// The outcome of proving an address.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Verified {
    /// Always true.
    pub verified: bool,
}

async fn verify_email(
    state: State,
    meta: ClientMeta,
    Json(body): Json<TokenBody>,
) -> Result<Reply<Verified>, ApiError> {
    let token = parse_token(&body.token)?;
    state
        .account_tokens
        .verify_email(
            &meta.audit_context(audit::Actor::System),
            &token,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .map_err(use_token_error)?;
    Ok(Reply(Verified { verified: true }))
}

/// A request that was taken (its effect, if any, arrives by e-mail).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Queued {
    /// Always true.
    pub accepted: bool,
}

/// 429 when `email` was sent too many links this hour.
async fn charge_mail(state: &State, email: &str) -> Result<(), ApiError> {
    state.rate_limits.account_mail(email).await.map_err(|wait| {
        crate::http::rate_limit::rate_limited(
            wait,
            "too many e-mailed links for this address this hour; retry after the time in Retry-After",
        )
    })
}

async fn resend_verification(state: State, caller: Caller) -> Result<Accepted<Queued>, ApiError> {
    let creds = state
        .auth
        .sessions()
        .credentials_by_id(caller.user_id())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "unknown user"))?;
    charge_mail(&state, creds.user.email.as_str()).await?;
    state
        .account_tokens
        .issue_email_verification(
            &caller.audit_context(),
            caller.user_id(),
            &OneTimeToken::generate(),
            time::OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| ApiError::internal(e.0))?;
    Ok(Accepted(Queued { accepted: true }))
}

/// A new address for the caller's account.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailBody {
    /// The new address.
    #[garde(length(chars, max = 254), custom(domain_rule(Email::parse)))]
    #[schemars(email)]
    pub email: String,
    /// The account's password.
    #[garde(length(chars, min = 1, max = 128))]
    pub password: String,
}

async fn change_email(
    state: State,
    caller: Caller,
    Json(body): Json<ChangeEmailBody>,
) -> Result<Accepted<Queued>, ApiError> {
    let email =
        Email::parse(&body.email).map_err(|e| ApiError::validation(vec![field("email", &e)]))?;
    state
        .auth
        .check_password(caller.user_id(), "password", body.password)
        .await?;
    charge_mail(&state, email.as_str()).await?;
    state
        .account_tokens
        .request_email_change(
            &caller.audit_context(),
            caller.user_id(),
            &email,
            &OneTimeToken::generate(),
            time::OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| match e {
            EmailChangeError::Taken { .. } => {
                ApiError::new(ErrorCode::Conflict, "another account has this address")
                    .with_details(serde_json::json!({ "field": "email" }))
            }
            EmailChangeError::Unchanged => ApiError::validation(vec![FieldError {
                field: "email".into(),
                code: "unchanged".into(),
                message: "this is already the account's address".into(),
            }]),
            EmailChangeError::NoAccount => {
                ApiError::new(ErrorCode::Unauthenticated, "unknown user")
            }
            EmailChangeError::Unexpected(e) => ApiError::internal(e.0),
        })?;
    Ok(Accepted(Queued { accepted: true }))
}

/// Account preferences to change (absent fields stay as they are).
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeBody {
    /// The account's `version` you read (`GET /api/v2/me`), or send it as `If-Match`;
    /// required.
    #[garde(skip)]
    pub version: Option<i64>,
    /// The language of the account's e-mail (`en`, `es-MX`); `null` for the default
    /// (English).
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<String>", length(max = 35), regex(pattern = tenancy::LANGUAGE_TAG_PATTERN))]
    #[garde(inner(inner(length(chars, max = 35), custom(domain_rule(Language::parse)))))]
    pub locale: Option<Option<String>>,
}

/// Absent → `None` (no change); `null` → `Some(None)`; a value → `Some(Some(value))`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// The caller's preferences after the change.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MePreferences {
    /// The language of the account's e-mail (`null`: English).
    pub locale: Option<String>,
    /// The account's version after the change.
    pub version: i64,
}

async fn update_me(
    state: State,
    caller: Caller,
    if_match: crate::http::IfMatch,
    Json(body): Json<UpdateMeBody>,
) -> Result<Reply<MePreferences>, ApiError> {
    use tenancy::ports::{AccountWrite, UserRepository};
    let expected = super::common::required_version(body.version, if_match)?;
    let Some(locale) = body.locale else {
        let creds = state
            .auth
            .sessions()
            .credentials_by_id(caller.user_id())
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "unknown user"))?;
        if creds.version != expected {
            return Err(account_changed(creds.version));
        }
        return Ok(Reply(MePreferences {
            locale: creds.locale.map(String::from),
            version: creds.version,
        }));
    };
    let locale = locale
        .map(|tag| Language::parse(&tag))
        .transpose()
        .map_err(|e| ApiError::validation(vec![field("locale", &e)]))?;
    let written = state
        .accounts
        .users()
        .set_locale(
            &caller.audit_context(),
            caller.user_id(),
            expected,
            locale.clone(),
        )
        .await
        .map_err(|e| match e {
            tenancy::ports::FindUserError::Unexpected(e) => ApiError::internal(e),
        })?;
    match written {
        AccountWrite::Written { version } => Ok(Reply(MePreferences {
            locale: locale.map(String::from),
            version,
        })),
        AccountWrite::Stale { current } => Err(account_changed(current)),
        AccountWrite::NotFound => Err(ApiError::new(ErrorCode::Unauthenticated, "unknown user")),
    }
}

/// 412: the account changed since the caller read it.
fn account_changed(current: i64) -> ApiError {
    ApiError::new(
        ErrorCode::VersionMismatch,
        "your account changed since you read it",
    )
    .with_details(serde_json::json!({ "current_version": current }))
}

/// Asking for a password-reset link.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestBody {
    /// The account's address.
    #[garde(length(chars, max = 254))]
    pub email: String,
}

async fn request_password_reset(
    state: State,
    meta: ClientMeta,
    Json(body): Json<ResetRequestBody>,
) -> Result<Accepted<Queued>, ApiError> {
    // The same answer whether or not the address has an account, and at the same time:
    // the work (a lookup and, only when it exists, a token row and a queued message)
    // differs by milliseconds, so the answer waits until a fixed time after the request
    // began (`RESET_ANSWER_AFTER`), far above that work, either way.
    let answer_at = tokio::time::Instant::now() + RESET_ANSWER_AFTER;
    if let Ok(email) = Email::parse(&body.email) {
        // Counted per address whether or not an account has it (the answer tells
        // nothing either way).
        charge_mail(&state, email.as_str()).await?;
        state
            .account_tokens
            .issue_password_reset(
                &meta.audit_context(audit::Actor::System),
                &email,
                &OneTimeToken::generate(),
                time::OffsetDateTime::now_utc(),
            )
            .await
            .map_err(|e| ApiError::internal(e.0))?;
    }
    tokio::time::sleep_until(answer_at).await;
    Ok(Accepted(Queued { accepted: true }))
}

/// When a password-reset request is answered, counted from its start: the same for
/// addresses with and without an account (the work takes a few milliseconds).
pub const RESET_ANSWER_AFTER: std::time::Duration = std::time::Duration::from_millis(250);

/// Setting a new password from a reset link.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmBody {
    /// The link's `token`.
    #[garde(length(chars, max = 128))]
    pub token: String,
    /// The new password: 12 to 128 characters.
    #[garde(length(chars, min = 12, max = 128), custom(domain_rule(|p: &str| Password::parse(p.to_owned()))))]
    pub password: String,
}

/// The outcome of a password reset.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PasswordReset {
    /// How many sessions ended.
    pub sessions_ended: usize,
}

async fn confirm_password_reset(
    state: State,
    meta: ClientMeta,
    Json(body): Json<ResetConfirmBody>,
) -> Result<Reply<PasswordReset>, ApiError> {
    let token = parse_token(&body.token)?;
    let password = Password::parse(body.password)
        .map_err(|e| ApiError::validation(vec![field("password", &e)]))?;
    let hash = state
        .auth
        .hasher()
        .hash(password)
        .await
        .map_err(ApiError::internal)?;
    let (_, ended) = state
        .account_tokens
        .reset_password(
            &meta.audit_context(audit::Actor::System),
            &token,
            hash,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .map_err(use_token_error)?;
    state.auth.sessions_ended(&ended).await;
    Ok(Reply(PasswordReset {
        sessions_ended: ended.len(),
    }))
}
