//! Response hardening on every response: security headers (`nosniff`, no referrer,
//! no framing, a deny-all CSP for API answers and a hash-pinned one for the docs page),
//! HSTS behind TLS, no `Server` banner, and CORS for the configured origins only.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use rate_limit::IpNet;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorCode};
use crate::config::{HttpSettings, MetricsAccess};

/// The CSP of every response but the docs page: nothing may load, nothing may frame it.
pub const API_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Methods a cross-origin caller may use.
const CORS_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
/// Request headers a cross-origin caller may send.
const CORS_REQUEST_HEADERS: &str =
    "authorization, content-type, if-match, idempotency-key, x-request-id, x-consistency-token";
/// Response headers a cross-origin caller may read.
const CORS_EXPOSED_HEADERS: &str = "x-request-id, x-response-time, etag, location, idempotent-replayed, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset, ratelimit-policy";
/// How long a browser may cache a preflight answer (seconds).
const CORS_MAX_AGE: &str = "600";
/// One year, with subdomains (the usual HSTS policy).
const HSTS_VALUE: &str = "max-age=31536000; includeSubDomains";

/// What the hardening middleware needs to know, built once at start-up.
#[derive(Debug, Clone)]
pub struct SecurityPolicy {
    hsts_always: bool,
    trusted_proxies: Vec<IpNet>,
    allowed_origins: Vec<String>,
    docs_csp: HeaderValue,
    metrics: MetricsAccess,
}

impl SecurityPolicy {
    /// The policy from the settings; `docs_html` is the docs page, whose inline scripts
    /// are pinned in its CSP by their SHA-256.
    #[must_use]
    pub fn new(http: &HttpSettings, trusted_proxies: &[IpNet], docs_html: &str) -> Self {
        let csp = docs_csp(docs_html);
        Self {
            hsts_always: http.hsts,
            trusted_proxies: trusted_proxies.to_vec(),
            allowed_origins: http.cors_allowed_origins.clone(),
            docs_csp: HeaderValue::from_str(&csp)
                .unwrap_or_else(|_| HeaderValue::from_static(API_CSP)),
            metrics: http.metrics.clone(),
        }
    }

    /// Who may read `GET /metrics`.
    #[must_use]
    pub fn metrics_access(&self) -> &MetricsAccess {
        &self.metrics
    }

    /// Whether the client's connection was HTTPS: our own TLS, or a trusted proxy's
    /// `X-Forwarded-Proto: https`.
    fn behind_tls(&self, req: &ServiceRequest) -> bool {
        // `connection_info().scheme()` would trust anyone's `X-Forwarded-Proto`.
        if self.hsts_always || req.app_config().secure() {
            return true;
        }
        let from_proxy = req
            .peer_addr()
            .is_some_and(|peer| self.trusted_proxies.iter().any(|n| n.contains(peer.ip())));
        from_proxy
            && req
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }

    /// The request's `Origin` if it is on the allow-list.
    fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?.to_ascii_lowercase();
        self.allowed_origins.contains(&text).then(|| origin.clone())
    }
}

/// The docs page's CSP: its inline scripts by hash (no `unsafe-inline`, no CDN),
/// styles inline (Scalar injects them at run time), fetches to this origin only.
#[must_use]
pub fn docs_csp(html: &str) -> String {
    let hashes: Vec<String> = inline_scripts(html)
        .map(|body| format!("'sha256-{}'", base64_std(&Sha256::digest(body.as_bytes()))))
        .collect();
    format!(
        "default-src 'none'; script-src {}; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes.join(" ")
    )
}

/// The text of every `<script …>…</script>` without a `src` attribute.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find("<script")?;
            let open_end = start + rest[start..].find('>')?;
            let attrs = &rest[start + "<script".len()..open_end];
            let body_start = open_end + 1;
            let body_end = body_start + rest[body_start..].find("</script>")?;
            let body = &rest[body_start..body_end];
            rest = &rest[body_end + "</script>".len()..];
            if !attrs.contains("src=") {
                return Some(body);
            }
        }
    })
}

/// Standard base64 with padding (CSP hash sources use it).
fn base64_std(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &'static str) {
    headers.insert(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    );
}

/// Adds the security headers to every response and answers CORS preflights.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(policy) = req.app_data::<web::Data<SecurityPolicy>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let origin = policy.allowed_origin(req.headers());
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let tls = policy.behind_tls(&req);
    let is_docs = req.path() == "/docs";
    let mut res = if preflight {
        let response = match &origin {
            Some(_) => HttpResponse::build(StatusCode::NO_CONTENT).finish(),
            None => ApiError::new(
                ErrorCode::PermissionDenied,
                "cross-origin requests from this origin are not allowed",
            )
            .error_response(),
        };
        req.into_response(response)
    } else {
        next.call(req).await?.map_into_boxed_body()
    };
    let headers = res.headers_mut();
    headers.remove(header::SERVER);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "x-frame-options", "DENY");
    set(headers, "cross-origin-opener-policy", "same-origin");
    if is_docs {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy.docs_csp.clone());
    } else {
        set(headers, "content-security-policy", API_CSP);
    }
    if tls {
        set(headers, "strict-transport-security", HSTS_VALUE);
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if preflight {
            set(headers, "access-control-allow-methods", CORS_METHODS);
            set(
                headers,
                "access-control-allow-headers",
                CORS_REQUEST_HEADERS,
            );
            set(headers, "access-control-max-age", CORS_MAX_AGE);
        } else {
            set(
                headers,
                "access-control-expose-headers",
                CORS_EXPOSED_HEADERS,
            );
        }
    }
    Ok(res)
}

/// Compares secrets in time independent of where they differ.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64_std(b""), "");
        assert_eq!(base64_std(b"f"), "Zg==");
        assert_eq!(base64_std(b"fo"), "Zm8=");
        assert_eq!(base64_std(b"foo"), "Zm9v");
        assert_eq!(base64_std(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_std(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn docs_csp_pins_every_inline_script_and_nothing_else() {
        let html = r#"<script src="/x.js"></script><script id="a"></script><script>
  alert(1)
</script>"#;
        let bodies: Vec<&str> = inline_scripts(html).collect();
        assert_eq!(bodies, ["", "\n  alert(1)\n"]);
        let csp = docs_csp(html);
        // SHA-256 of the empty string.
        assert!(
            csp.contains("'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"),
            "{csp}"
        );
        assert!(!csp.contains("script-src 'unsafe"), "{csp}");
        assert!(!csp.contains("http"), "no CDN: {csp}");
        assert_eq!(csp.matches("'sha256-").count(), 2);
    }
}
