//! `Idempotency-Key` on `POST` creates (`../shared/spec/api.md`, "Retries"): the
//! middleware every route answering 201 is wrapped in (by [`crate::http::ApiRoutes`]),
//! and its documentation.
//!
//! With the header, a request claims the key for its caller (API key, else user, else
//! client address) and route (method and path) in the [`IdempotencyStore`] (the
//! database: every instance agrees), with the SHA-256 of its body:
//! - the first request runs; a 2xx answer is kept 24 hours (status, `Location`, body),
//!   any other answer gives the key back so a retry runs;
//! - the same key and body again replays the kept answer (with `Idempotent-Replayed:
//!   true`) without running the write;
//! - the same key with another body is 422 `IDEMPOTENCY_KEY_REUSED`;
//! - the same key while the first request still runs is 409 `IDEMPOTENCY_KEY_IN_USE`.
//!
//! A route whose answer holds a secret shown once ([`RouteDoc::secret_answer`](super::RouteDoc::secret_answer))
//! keeps only its status and `Location`: a retry of a completed key is 409 `CONFLICT`
//! naming the `Location`, rather than the secret being stored.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode as HttpStatus;
use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use aide::generate::GenContext;
use aide::openapi::{Operation, ParameterData, ParameterSchemaOrContent, SchemaObject};
use futures_util::StreamExt;
use idempotency_store::{Claim, IdempotencyStore, Scope, StoredResponse};
use indexmap::IndexMap;
use rate_limit::Subject;
use sha2::Digest;

use super::body_limit::{declared_over, too_large};
use super::error::{ApiError, ErrorCode, FieldError};
use super::rate_limit::{CallerIdentity, RateLimits};

/// The request header.
pub const HEADER: &str = "Idempotency-Key";

/// The response header marking a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// What the middleware of one route needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The route's body cap (the body is read, within it, to digest it).
    pub body_limit: usize,
    /// Whether the answer may be kept (false: it holds a secret shown once).
    pub keep_answer: bool,
    /// Whether the route needs a signed-in caller: then a request without valid
    /// credentials goes on to its 401 before its key is judged or claimed.
    pub authenticated: bool,
}

/// What a key may be, for the document: printable ASCII, not starting or ending with a
/// space (HTTP trims those from a header value).
pub const KEY_PATTERN: &str = r"^[\x21-\x7E]([\x20-\x7E]*[\x21-\x7E])?$";

/// The store as the app registers it (`web::Data<dyn IdempotencyStore>`).
pub type Store = web::Data<dyn IdempotencyStore>;

/// The key of `headers`: `None` without the header, 422 naming it when it is not
/// 1–255 printable ASCII characters (or sent twice).
///
/// # Errors
/// `VALIDATION_FAILED` with the header as the field.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = |message: &str| {
        ApiError::validation(vec![FieldError {
            field: HEADER.to_owned(),
            code: "idempotency_key".to_owned(),
            message: message.to_owned(),
        }])
    };
    if values.next().is_some() {
        return Err(invalid("send one Idempotency-Key header, not several"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN {
        return Err(invalid(
            "the Idempotency-Key header must be 1 to 255 characters long",
        ));
    }
    if !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(invalid(
            "the Idempotency-Key header may hold only printable ASCII characters (a UUID is a good key)",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// Who the key belongs to: the caller's API key or user (`Ok`), else (no or invalid
/// credentials) the client address, as rate limiting counts them (`Err`).
async fn caller_of(req: &ServiceRequest) -> Result<String, String> {
    let http = req.request();
    if http
        .headers()
        .contains_key(actix_web::http::header::AUTHORIZATION)
        && let Some(identity) = http.app_data::<web::Data<CallerIdentity>>()
        && let Some((subject, _)) = identity.identify(http.clone()).await
    {
        return Ok(subject.key());
    }
    let ip = http
        .app_data::<web::Data<RateLimits>>()
        .map(|limits| limits.client_ip(http))
        .unwrap_or_else(|| http.peer_addr().map(|a| a.ip()));
    Err(Subject::ip(ip).key())
}

/// The body of `req`, read within `limit` (413 beyond), to be put back for the handler.
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<web::Bytes, ApiError> {
    if declared_over(req.request(), limit) {
        return Err(too_large(limit));
    }
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::new(
                ErrorCode::ValidationFailed,
                "the request body could not be read",
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The SHA-256 of `body`, in hex.
#[must_use]
pub fn body_hash(body: &[u8]) -> String {
    sha2::Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn refuse(req: ServiceRequest, error: ApiError) -> ServiceResponse<BoxBody> {
    req.error_response(error).map_into_boxed_body()
}

/// The kept answer, again.
fn replay(stored: StoredResponse) -> Result<HttpResponse, ApiError> {
    let status = HttpStatus::from_u16(stored.status)
        .map_err(|e| ApiError::internal(format!("a kept status: {e}").into()))?;
    let Some(body) = stored.body else {
        let mut error = ApiError::new(
            ErrorCode::Conflict,
            "this Idempotency-Key was used already, and its answer held a secret that is shown only once; the resource is at details.location",
        );
        if let Some(location) = stored.location {
            error = error.with_details(serde_json::json!({ "location": location }));
        }
        return Err(error);
    };
    let mut res = HttpResponse::build(status);
    res.insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((HeaderName::from_static(REPLAYED), "true"));
    if let Some(location) = stored.location
        && let Ok(value) = HeaderValue::from_str(&location)
    {
        res.insert_header((LOCATION, value));
    }
    Ok(res.body(body))
}

/// The middleware of a create: runs the request once per key (see the module docs).
pub async fn middleware(
    policy: Policy,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !req.headers().contains_key(HEADER) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    // Who asks comes first: without valid credentials a signed-in route answers its
    // 401, whatever the key holds.
    let caller = match caller_of(&req).await {
        Ok(caller) => caller,
        Err(_) if policy.authenticated => {
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
        Err(address) => address,
    };
    let key = match key_of(req.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => return Ok(next.call(req).await?.map_into_boxed_body()),
        Err(e) => return Ok(refuse(req, e)),
    };
    let Some(store) = req.app_data::<Store>().cloned() else {
        return Ok(refuse(
            req,
            ApiError::internal("idempotency key store missing from the app".into()),
        ));
    };
    let body = match read_body(&mut req, policy.body_limit).await {
        Ok(body) => body,
        Err(e) => return Ok(refuse(req, e)),
    };
    let scope = Scope {
        caller,
        route: format!("{} {}", req.method(), req.path()),
        key,
    };
    let claim = store
        .claim(&scope, &body_hash(&body), persistence::now_micros())
        .await;
    let attempt = match claim {
        Err(e) => return Ok(refuse(req, ApiError::internal(Box::new(e)))),
        Ok(Claim::Mismatch) => {
            return Ok(refuse(
                req,
                ApiError::new(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was used with a different request body; use a new key for a new request",
                ),
            ));
        }
        Ok(Claim::InFlight) => {
            return Ok(refuse(
                req,
                ApiError::new(
                    ErrorCode::IdempotencyKeyInUse,
                    "a request with this Idempotency-Key is still being processed; retry in a moment",
                ),
            ));
        }
        Ok(Claim::Replay(stored)) => {
            return Ok(match replay(stored) {
                Ok(res) => req.into_response(res).map_into_boxed_body(),
                Err(e) => refuse(req, e),
            });
        }
        Ok(Claim::Fresh(attempt)) => attempt,
    };
    req.set_payload(actix_web::dev::Payload::from(body));
    let release = |store: Store, attempt| async move {
        if let Err(e) = store.release(&attempt).await {
            tracing::warn!(error = %e, "releasing an idempotency key failed; it frees itself after its lease");
        }
    };
    let res = match next.call(req).await {
        Ok(res) => res,
        Err(e) => {
            release(store, attempt).await;
            return Err(e);
        }
    };
    if !res.status().is_success() {
        release(store, attempt).await;
        return Ok(res.map_into_boxed_body());
    }
    let (http_req, res) = res.into_parts();
    let status = res.status();
    let location = res
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (res, body) = res.into_parts();
    let Ok(bytes) = actix_web::body::to_bytes(body).await else {
        release(store, attempt).await;
        let res = HttpResponse::from_error(ApiError::internal(
            "the answer could not be read to keep it".into(),
        ));
        return Ok(ServiceResponse::new(http_req, res));
    };
    let kept = StoredResponse {
        status: status.as_u16(),
        location,
        body: policy
            .keep_answer
            .then(|| String::from_utf8(bytes.to_vec()).ok())
            .flatten(),
    };
    if let Err(e) = store.complete(&attempt, &kept).await {
        // The write happened: the key stays claimed (a retry is refused with 409 until
        // the claim's lease ends) rather than freed to run the write twice.
        tracing::warn!(error = %e, "keeping an idempotent answer failed");
    }
    let res = res.set_body(BoxBody::new(bytes));
    Ok(ServiceResponse::new(http_req, res))
}

/// Documents the header on a create (`keep_answer`: see [`Policy`]).
pub fn document(ctx: &mut GenContext, op: &mut Operation, keep_answer: bool) {
    let description = if keep_answer {
        "Makes a retry safe: 1–255 printable ASCII characters (a UUID is a good key), scoped to the caller and this route. The same key within 24 hours replays the first successful answer (status, body, `Location`; with `Idempotent-Replayed: true`) without creating again; with a different body it is 422 `IDEMPOTENCY_KEY_REUSED`; while the first request still runs, 409 `IDEMPOTENCY_KEY_IN_USE`. A failed attempt does not use the key up."
    } else {
        "Makes a retry safe: 1–255 printable ASCII characters (a UUID is a good key), scoped to the caller and this route. The answer holds a secret shown only once, so it is not kept: the same key within 24 hours after a success is 409 `CONFLICT` with the created resource's address in `details.location` (nothing is created again); with a different body it is 422 `IDEMPOTENCY_KEY_REUSED`; while the first request still runs, 409 `IDEMPOTENCY_KEY_IN_USE`. A failed attempt does not use the key up."
    };
    let schema = schemars::json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LEN,
        "pattern": KEY_PATTERN,
    });
    aide::operation::add_parameters(
        ctx,
        op,
        [aide::openapi::Parameter::Header {
            parameter_data: ParameterData {
                name: HEADER.to_owned(),
                description: Some(description.to_owned()),
                required: false,
                format: ParameterSchemaOrContent::Schema(SchemaObject {
                    json_schema: schema,
                    example: None,
                    external_docs: None,
                }),
                extensions: IndexMap::default(),
                deprecated: None,
                example: None,
                examples: IndexMap::default(),
                explode: None,
            },
            style: aide::openapi::HeaderStyle::Simple,
        }],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_static("idempotency-key"),
                HeaderValue::from_bytes(v).expect("a header value"),
            );
        }
        h
    }

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        assert_eq!(key_of(&headers(&[])).ok(), Some(None));
        assert_eq!(
            key_of(&headers(&[b"a b~!"])).ok(),
            Some(Some("a b~!".to_owned()))
        );
        let longest = "k".repeat(MAX_KEY_LEN);
        assert!(key_of(&headers(&[longest.as_bytes()])).is_ok());
        let too_long = "k".repeat(MAX_KEY_LEN + 1);
        for bad in [
            headers(&[too_long.as_bytes()]),
            headers(&[b""]),
            headers(&[b"caf\xc3\xa9"]),
            headers(&[b"tab\there"]),
            headers(&[b"one", b"two"]),
        ] {
            let e = key_of(&bad).expect_err("refused");
            assert_eq!(e.code, ErrorCode::ValidationFailed);
            let details = e.details.expect("details");
            assert_eq!(details["fields"][0]["field"], HEADER);
        }
    }

    #[test]
    fn the_body_hash_is_sha256_hex() {
        assert_eq!(
            body_hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
