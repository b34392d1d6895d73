//! Per-request context: the request id (echoed from a sane `X-Request-Id` or
//! generated), the `X-Response-Time` header, the request span and the access log line.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

use super::error::{ApiError, ErrorCode};

use super::context::{CONSISTENCY_TOKEN, REQUEST_ID, REQUEST_SPAN};
pub use super::context::{
    CONSISTENCY_TOKEN_HEADER, REQUEST_ID_HEADER, RESPONSE_TIME_HEADER, consistency_token,
    current_request_id, record_org, record_user,
};

/// A client-sent id is echoed only if it is short and plain (no log injection).
fn sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The longest URL (path and query string) served: 8 KiB, as common proxies allow.
/// Longer ones get a 414 in the envelope. (Past 64 KiB the HTTP parser refuses the
/// request line itself, before any middleware runs: the patched actix-http answers it,
/// also in the envelope; see vendor/README.md.)
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Outermost middleware: runs the request inside its context and span, adds the two
/// headers and logs one line; a URL over [`MAX_URI_BYTES`] is answered 414 here.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let start = Instant::now();
    let method = super::metrics::method_label(req.method().as_str());
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| sane(s))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let span = tracing::info_span!(
        crate::telemetry::REQUEST_SPAN,
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        org_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    let token = req
        .headers()
        .get(CONSISTENCY_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Writes, and reads asking for a version they wrote, are served by the primary;
    // lag-tolerant reads may go to the read replica (`persistence::routing`).
    let read_your_writes = token.is_some() || !req.method().is_safe();
    let too_long = req.path().len() + req.query_string().len() > MAX_URI_BYTES;
    let call = async move {
        if too_long {
            let err = ApiError::new(
                ErrorCode::UriTooLong,
                format!("the URL is longer than {MAX_URI_BYTES} bytes"),
            )
            .with_details(serde_json::json!({ "limit_bytes": MAX_URI_BYTES }));
            return Ok(req.error_response(err));
        }
        next.call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body)
    };
    let inner = persistence::routing::scope(read_your_writes, call.instrument(span.clone()));
    let result = REQUEST_ID
        .scope(
            id.clone(),
            CONSISTENCY_TOKEN.scope(token, REQUEST_SPAN.scope(span.clone(), inner)),
        )
        .await;
    // Handlers and extractors turn their errors into responses inside the scope;
    // an `Err` here can only come from inner middleware and is rendered by actix.
    let mut res = result?.map_into_boxed_body();
    let elapsed = start.elapsed();
    let status = res.status().as_u16();
    // The template its resource carries (`Api::configure`): no second walk of the route
    // table, as `match_pattern()` would do.
    let route = res
        .request()
        .app_data::<super::openapi::RouteTemplate>()
        .map_or("<unmatched>", |t| t.0);
    span.record("route", route);
    super::metrics::requests().observe(route, method, status, elapsed);
    span.record("status", status);
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}ms", elapsed.as_secs_f64() * 1e3)) {
        headers.insert(HeaderName::from_static(RESPONSE_TIME_HEADER), v);
    }
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "request completed"
        );
    });
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::sane;

    #[test]
    fn only_plain_ids_are_echoed() {
        assert!(sane("abc-123_x.y:z"));
        assert!(!sane(""));
        assert!(!sane(&"a".repeat(65)));
        assert!(!sane("a b"));
        assert!(!sane("a\nb"));
    }
}
