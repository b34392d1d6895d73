//! The body cap of each route: declared at registration (`RouteDoc::body_limit`),
//! recorded in the request for the extractors.

use actix_web::{HttpMessage, HttpRequest};

use super::error::{ApiError, ErrorCode};

/// The default cap on JSON request bodies.
pub const DEFAULT_JSON_LIMIT: usize = 64 * 1024;

/// The cap for routes declared as uploads (`RouteDoc::upload`): 20 MiB.
pub const UPLOAD_BODY_LIMIT: usize = 20 * 1024 * 1024;

/// The body cap of the route serving a request (set by the registration layer from
/// `RouteDoc::body_limit`; [`DEFAULT_JSON_LIMIT`] when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

impl BodyLimit {
    /// The cap for `req`.
    #[must_use]
    pub fn of(req: &HttpRequest) -> usize {
        req.extensions()
            .get::<Self>()
            .map_or(DEFAULT_JSON_LIMIT, |l| l.0)
    }
}

/// Route middleware: records the route's body cap for the extractors.
pub async fn with_body_limit(
    limit: BodyLimit,
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    req.extensions_mut().insert(limit);
    next.call(req).await
}

/// Whether `req` declares (`Content-Length`) a body larger than `limit`: refused before
/// a byte is read.
#[must_use]
pub fn declared_over(req: &HttpRequest, limit: usize) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
}

/// The 413 answer for a body over `limit`.
#[must_use]
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the body exceeds {limit} bytes"),
    )
    .with_details(serde_json::json!({ "limit_bytes": limit }))
}
