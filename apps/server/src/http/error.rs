//! The error model of the API: a closed set of error codes, each with one HTTP status,
//! rendered in the envelope. Domain errors are mapped to it here, once.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use schemars::JsonSchema;
use serde::Serialize;

use super::envelope::Meta;

/// Every error code the API can answer with. Closed: clients may match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// 400: the request is not valid HTTP (answered by the HTTP parser, before routing).
    BadRequest,
    /// 401: missing, invalid, expired or revoked credentials.
    Unauthenticated,
    /// 403: a known caller lacks the required permission (named in details).
    PermissionDenied,
    /// 404: no such resource, or one the caller may not see.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 409: the request conflicts with current state (e.g. a duplicate).
    Conflict,
    /// 409: the setting is locked by a higher scope (named in details).
    PermissionLocked,
    /// 412: the resource changed since the version the client sent.
    VersionMismatch,
    /// 428: a mutation sent neither `If-Match` nor `version`.
    PreconditionRequired,
    /// 413: the body is larger than this route accepts.
    PayloadTooLarge,
    /// 414: the URL (path and query) is longer than the server accepts.
    UriTooLong,
    /// 431: the request's headers are larger than the server accepts (answered by the
    /// HTTP parser, before routing).
    HeadersTooLarge,
    /// 415: the body is not of a content type this route accepts.
    UnsupportedMediaType,
    /// 422: the request is malformed or fails validation (fields in details).
    ValidationFailed,
    /// 429: too many requests; retry after the time in `Retry-After`.
    RateLimited,
    /// 500: an unexpected server error (details are logged, never returned).
    Internal,
    /// 503: a dependency (database) is unavailable; retry later.
    ServiceUnavailable,
    /// 400: an e-mailed link's token is not valid (mistyped, or replaced by a newer
    /// link): ask for a new one.
    LinkInvalid,
    /// 410: an e-mailed link has expired: ask for a new one.
    LinkExpired,
    /// 410: an e-mailed link was used already.
    LinkUsed,
    /// 410: the invitation was accepted, declined or revoked already (`details.status`).
    InvitationEnded,
    /// 403: the account's e-mail address must be verified first.
    EmailNotVerified,
    /// 422: the `Idempotency-Key` was used with a different request body.
    IdempotencyKeyReused,
    /// 409: a request with the same `Idempotency-Key` is still being processed.
    IdempotencyKeyInUse,
    /// 410: an event cursor points before the retained events (they were archived):
    /// resynchronise from the current state and read on without a cursor.
    CursorExpired,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [Self; 25] = [
        Self::BadRequest,
        Self::Unauthenticated,
        Self::PermissionDenied,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::PermissionLocked,
        Self::VersionMismatch,
        Self::PreconditionRequired,
        Self::PayloadTooLarge,
        Self::UriTooLong,
        Self::HeadersTooLarge,
        Self::UnsupportedMediaType,
        Self::ValidationFailed,
        Self::RateLimited,
        Self::Internal,
        Self::ServiceUnavailable,
        Self::LinkInvalid,
        Self::LinkExpired,
        Self::LinkUsed,
        Self::InvitationEnded,
        Self::EmailNotVerified,
        Self::IdempotencyKeyReused,
        Self::IdempotencyKeyInUse,
        Self::CursorExpired,
    ];

    /// The HTTP status this code is always answered with.
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict | Self::PermissionLocked => StatusCode::CONFLICT,
            Self::VersionMismatch => StatusCode::PRECONDITION_FAILED,
            Self::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::LinkInvalid => StatusCode::BAD_REQUEST,
            Self::LinkExpired | Self::LinkUsed | Self::InvitationEnded | Self::CursorExpired => {
                StatusCode::GONE
            }
            Self::EmailNotVerified => StatusCode::FORBIDDEN,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyKeyInUse => StatusCode::CONFLICT,
        }
    }

    /// The wire name, e.g. `NOT_FOUND`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BAD_REQUEST",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Conflict => "CONFLICT",
            Self::PermissionLocked => "PERMISSION_LOCKED",
            Self::VersionMismatch => "VERSION_MISMATCH",
            Self::PreconditionRequired => "PRECONDITION_REQUIRED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UriTooLong => "URI_TOO_LONG",
            Self::HeadersTooLarge => "HEADERS_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::ValidationFailed => "VALIDATION_FAILED",
            Self::RateLimited => "RATE_LIMITED",
            Self::Internal => "INTERNAL",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::LinkInvalid => "LINK_INVALID",
            Self::LinkExpired => "LINK_EXPIRED",
            Self::LinkUsed => "LINK_USED",
            Self::InvitationEnded => "INVITATION_ENDED",
            Self::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::IdempotencyKeyInUse => "IDEMPOTENCY_KEY_IN_USE",
            Self::CursorExpired => "CURSOR_EXPIRED",
        }
    }
}

/// Whether `err` (or an error it wraps) says a dependency cannot answer now but may in a
/// moment: the one place the edge tells a 503 from a 500.
fn is_unavailable(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        let transient = e
            .downcast_ref::<persistence::StorageError>()
            .is_some_and(persistence::StorageError::is_unavailable)
            || e.downcast_ref::<permissions::LoadError>()
                .is_some_and(permissions::LoadError::is_unavailable)
            || e.downcast_ref::<permissions::UpdateSettingsError>()
                .is_some_and(permissions::UpdateSettingsError::is_unavailable)
            || e.downcast_ref::<audit::AppendAuditError>()
                .is_some_and(audit::AppendAuditError::is_retryable)
            || e.downcast_ref::<permissions_cache::CacheError>()
                .is_some_and(
                    |c| matches!(c, permissions_cache::CacheError::Load(l) if l.is_unavailable()),
                );
        if transient {
            return true;
        }
        next = e.source();
    }
    false
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FieldError {
    /// The field's path, e.g. `email` or `changes[2].min_role`; empty for the whole body.
    pub field: String,
    /// A stable machine code, e.g. `email`, `length`, `required`, `unknown_field`.
    pub code: String,
    /// A human sentence.
    pub message: String,
}

/// An error answered to the client, built by handlers and extractors and rendered in
/// the envelope with its code's status.
#[derive(Debug)]
pub struct ApiError {
    /// The error code (decides the status).
    pub code: ErrorCode,
    /// A human sentence safe to show to the client.
    pub message: String,
    /// Structured details (`fields`, `required_permission`, `locked_by`, …).
    pub details: Option<serde_json::Value>,
    /// The internal cause, logged for 5xx and never sent.
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            source: None,
        }
    }

    /// Adds structured details.
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 422 with field errors (all of them at once).
    pub fn validation(fields: Vec<FieldError>) -> Self {
        let n = fields.len();
        Self::new(
            ErrorCode::ValidationFailed,
            if n == 1 {
                "the request has 1 invalid field".to_owned()
            } else {
                format!("the request has {n} invalid fields")
            },
        )
        .with_details(serde_json::json!({ "fields": fields }))
    }

    /// 404 for a resource the caller cannot see.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 500 (or 503 if the cause is an unreachable database), keeping the cause for
    /// the log only.
    pub fn internal(source: Box<dyn std::error::Error + Send + Sync>) -> Self {
        let unavailable = is_unavailable(source.as_ref());
        if unavailable {
            Self {
                source: Some(source),
                ..Self::new(
                    ErrorCode::ServiceUnavailable,
                    "the database is unavailable; retry shortly",
                )
            }
        } else {
            Self {
                source: Some(source),
                ..Self::new(ErrorCode::Internal, "an internal error occurred")
            }
        }
    }
}

/// Error responses are documented from each route's declared codes (see
/// [`crate::http::RouteDoc::errors`]), so the type itself adds nothing.
impl aide::OperationOutput for ApiError {
    type Inner = ();
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        if self.code.status().is_server_error() {
            match &self.source {
                Some(source) => {
                    tracing::error!(code = self.code.as_str(), error = %error_chain(source.as_ref()), "request failed")
                }
                None => {
                    tracing::error!(code = self.code.as_str(), message = %self.message, "request failed")
                }
            }
        }
        let body = ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code: self.code,
                message: self.message.clone(),
                details: self.details.clone(),
            },
            meta: Meta::current(),
        };
        let mut res = HttpResponse::build(self.code.status());
        if self.code == ErrorCode::ServiceUnavailable {
            res.insert_header(("Retry-After", "1"));
        }
        // A 429 says when to come back (`details.retry_after_secs`, whole seconds).
        if self.code == ErrorCode::RateLimited
            && let Some(secs) = self
                .details
                .as_ref()
                .and_then(|d| d.get("retry_after_secs"))
                .and_then(serde_json::Value::as_u64)
        {
            res.insert_header(("Retry-After", secs.to_string()));
        }
        res.json(body)
    }
}

/// `a: b: c` for an error and its sources.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// The error object of a failed response.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// Machine-readable code (decides the HTTP status).
    pub code: ErrorCode,
    /// Human sentence.
    pub message: String,
    /// Structured details, e.g. `{"fields": [...]}` for validation failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// A failed response.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    /// What went wrong.
    pub error: ErrorBody,
    /// Metadata.
    pub meta: Meta,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).expect("serialize");
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
        }
    }

    #[test]
    fn unavailable_storage_is_503_and_other_failures_500() {
        let down = ApiError::internal(Box::new(persistence::StorageError::Unavailable("x".into())));
        assert_eq!(down.code, ErrorCode::ServiceUnavailable);
        let bug = ApiError::internal(Box::new(persistence::StorageError::Query("x".into())));
        assert_eq!(bug.code, ErrorCode::Internal);
        // The permission engine's errors keep their kind through its cache.
        let load = |e| permissions_cache::CacheError::Load(e);
        let down = ApiError::internal(Box::new(load(permissions::LoadError::Unavailable(
            "x".into(),
        ))));
        assert_eq!(down.code, ErrorCode::ServiceUnavailable);
        let bug = ApiError::internal(Box::new(load(permissions::LoadError::Unexpected(
            "x".into(),
        ))));
        assert_eq!(bug.code, ErrorCode::Internal);
        let down = ApiError::internal(Box::new(permissions::UpdateSettingsError::Unavailable(
            "x".into(),
        )));
        assert_eq!(down.code, ErrorCode::ServiceUnavailable);
        // An audit append that lost a race for its chain (deadlock, lock timeout): the
        // unit of work may be retried, however deep the error is wrapped.
        let raced = tenancy::ports::StorageFailure(Box::new(audit::AppendAuditError::Conflict(
            audit::ChainId::Platform,
        )));
        assert_eq!(
            ApiError::internal(Box::new(raced)).code,
            ErrorCode::ServiceUnavailable
        );
    }
}
