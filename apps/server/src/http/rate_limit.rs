//! Rate limiting at the edge: the middleware every registered route is wrapped in
//! (by [`crate::http::ApiRoutes`], from the route's [`crate::http::RouteDoc`]), the
//! sign-in back-off the login handler consults, and the `429 RATE_LIMITED` answer.
//!
//! A request counts against its API key, else its user, else its client address
//! ([`Subject`]), in the budget of its [`Tier`] (for routes under `/orgs/{org_id}`, the
//! caller's role in that org) and, when the route declares one, of its endpoint
//! [`RateClass`]: both buckets are charged together or not at all. Every limited
//! response carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (and
//! `RateLimit-Policy`) for the bucket closest to its limit; a refusal is 429
//! `RATE_LIMITED` with `Retry-After`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tracing::Instrument;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use rate_limit::{
    Backend, Clock, Decision, IpNet, LimiterSettings, LimiterStats, Policy, RateClass, RateLimiter,
    SignInAs, SignInPermit, StoreError, Subject, Tier, ceil_secs, client_ip,
};
use uuid::Uuid;

use super::{ApiError, ErrorCode};
use crate::config::RateLimitSettings;

/// What a route declares about its rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteRate {
    /// The caller's tier only.
    #[default]
    Tier,
    /// The caller's tier and this endpoint class.
    Class(RateClass),
    /// Not limited (liveness and readiness probes).
    Exempt,
}

type IdentifyFn =
    dyn Fn(HttpRequest) -> LocalBoxFuture<'static, Option<(Subject, Tier)>> + Send + Sync;

/// Who a request with credentials counts against, and in which tier: the app's
/// authentication, injected (registered as `web::Data<CallerIdentity>`). `None` (an
/// invalid credential, or no identity registered) counts as anonymous, per address.
#[derive(Clone)]
pub struct CallerIdentity(Arc<IdentifyFn>);

impl CallerIdentity {
    /// An identity from its lookup.
    pub fn new(
        identify: impl Fn(HttpRequest) -> LocalBoxFuture<'static, Option<(Subject, Tier)>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self(Arc::new(identify))
    }

    /// Who `req`'s credentials speak for (`None`: invalid credentials).
    pub async fn identify(&self, req: HttpRequest) -> Option<(Subject, Tier)> {
        (self.0)(req).await
    }
}

/// The rejection label of an e-mailed link refused for its recipient's sake.
pub const ACCOUNT_MAIL: &str = "account_mail";

/// How many e-mailed links one address may be sent an hour.
pub const ACCOUNT_MAIL_PER_HOUR: u32 = 5;

/// The rejection label of a sign-in refused by the back-off.
pub const SIGN_IN_BACKOFF: &str = "sign_in_backoff";

/// The limiter as the app uses it: the policy, the trusted proxies and the rejection
/// counters of this instance.
#[derive(Debug)]
pub struct RateLimits {
    enabled: bool,
    policy: Policy,
    trusted_proxies: Vec<IpNet>,
    limiter: RateLimiter,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
    sign_in_failures: std::sync::atomic::AtomicU64,
}

impl RateLimits {
    /// Limits as `settings` say, shared through Redis at `redis_url` when given.
    ///
    /// # Errors
    /// [`StoreError`] when `redis_url` is not a Redis URL.
    pub async fn new(
        settings: &RateLimitSettings,
        redis_url: Option<&str>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let limiter = if settings.enabled {
            RateLimiter::new(
                redis_url,
                LimiterSettings {
                    key_prefix: settings.key_prefix.clone(),
                    redis: rate_limit::RedisSettings {
                        timeout: settings.redis_timeout,
                        ..rate_limit::RedisSettings::default()
                    },
                    ..LimiterSettings::default()
                },
                clock,
            )
            .await?
        } else {
            RateLimiter::local()
        };
        Ok(Self {
            enabled: settings.enabled,
            policy: settings.policy.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            limiter,
            rejections: Mutex::new(BTreeMap::new()),
            sign_in_failures: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Whether requests are limited at all.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The limiter (backend state, health counters, probe).
    #[must_use]
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// The store deciding now.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.limiter.backend()
    }

    /// The limiter's health counters.
    #[must_use]
    pub fn stats(&self) -> LimiterStats {
        self.limiter.stats()
    }

    /// Requests refused so far, by endpoint class or tier (and [`SIGN_IN_BACKOFF`]).
    #[must_use]
    pub fn rejections(&self) -> Vec<(&'static str, u64)> {
        self.rejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    /// Sign-in attempts refused by the back-off so far (the account, device token or
    /// client address had used its free attempts): the lock-outs, a security signal.
    #[must_use]
    pub fn lockouts(&self) -> u64 {
        self.rejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(SIGN_IN_BACKOFF)
            .copied()
            .unwrap_or(0)
    }

    /// Wrong passwords or codes so far (sign-in, second factor, re-authentication).
    #[must_use]
    pub fn sign_in_failures(&self) -> u64 {
        self.sign_in_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn rejected(&self, label: &'static str) {
        *self
            .rejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(label)
            .or_default() += 1;
    }

    /// The client address of `req`: the peer, or (behind a trusted proxy) the address
    /// `X-Forwarded-For` names.
    #[must_use]
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        client_ip(
            req.peer_addr().map(|a| a.ip()),
            forwarded,
            &self.trusted_proxies,
        )
    }

    /// Reserves a sign-in attempt for `email` (or, with `device`, the id of a valid
    /// device token for it) from `ip` before the password is checked; see
    /// [`RateLimiter::sign_in_begin`]. A permit that counts nothing when rate limiting
    /// is off.
    ///
    /// # Errors
    /// How long to wait when the account (or device token) or the address backs off.
    pub async fn sign_in_begin(
        &self,
        email: &str,
        device: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<SignInPermit, Duration> {
        if !self.enabled {
            return Ok(SignInPermit::unlimited());
        }
        let who = device.map_or(SignInAs::Account(email), SignInAs::Device);
        let begun = self
            .limiter
            .sign_in_begin(who, ip, self.policy.sign_in_account, self.policy.sign_in_ip)
            .await;
        if begun.is_err() {
            self.rejected(SIGN_IN_BACKOFF);
        }
        begun
    }

    /// Charges one e-mailed link (password reset, address verification, address
    /// change) to the address it goes to: [`ACCOUNT_MAIL_PER_HOUR`] an hour, however
    /// many clients ask, so nobody floods someone's inbox through us. Free when rate
    /// limiting is off.
    ///
    /// # Errors
    /// How long to wait.
    pub async fn account_mail(&self, email: &str) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        let Ok(quota) = rate_limit::Quota::new(ACCOUNT_MAIL_PER_HOUR, Duration::from_secs(3600))
        else {
            return Ok(());
        };
        let bucket = rate_limit::Bucket {
            name: "account_mail".to_owned(),
            quota,
            label: ACCOUNT_MAIL,
        };
        let subject = Subject::Account(rate_limit::account_digest(email));
        let decision = self.limiter.acquire(&subject, &[bucket]).await;
        if decision.allowed {
            Ok(())
        } else {
            self.rejected(ACCOUNT_MAIL);
            Err(decision.retry_after.unwrap_or(Duration::from_secs(60)))
        }
    }

    /// The attempt was a wrong password: it stays counted.
    pub fn sign_in_failed(&self, permit: SignInPermit) {
        self.sign_in_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.limiter.sign_in_failed(permit);
    }

    /// The attempt signed in: the account's (or device token's) failures are
    /// forgotten, the address's reservation refunded.
    pub async fn sign_in_succeeded(&self, permit: SignInPermit) {
        self.limiter.sign_in_succeeded(permit).await;
    }

    /// The attempt ended in an internal error: refunded.
    pub async fn sign_in_abandoned(&self, permit: SignInPermit) {
        self.limiter.sign_in_abandoned(permit).await;
    }

    /// Who `req` counts against, and in which tier.
    async fn caller(&self, req: &HttpRequest) -> (Subject, Tier) {
        let anonymous = || (Subject::ip(self.client_ip(req)), Tier::Anonymous);
        if !req
            .headers()
            .contains_key(actix_web::http::header::AUTHORIZATION)
        {
            return anonymous();
        }
        // Verified once per request: the result waits in the extensions for the
        // extractors. An invalid credential counts as anonymous (per address).
        let Some(identify) = req.app_data::<web::Data<CallerIdentity>>().cloned() else {
            return anonymous();
        };
        match (identify.0)(req.clone()).await {
            Some(found) => found,
            None => anonymous(),
        }
    }
}

/// The org of the path (`{org_id}`), if any.
#[must_use]
pub fn org_of(req: &HttpRequest) -> Option<Uuid> {
    req.match_info()
        .get("org_id")
        .and_then(|s| Uuid::parse_str(s).ok())
}
/// 429 `RATE_LIMITED`, retry after `wait` (whole seconds, at least 1).
#[must_use]
pub fn rate_limited(wait: Duration, message: &str) -> ApiError {
    let secs = ceil_secs(wait).max(1);
    ApiError::new(ErrorCode::RateLimited, message)
        .with_details(serde_json::json!({ "retry_after_secs": secs }))
}

/// Sets the `RateLimit-*` headers of `decision`.
fn set_headers(headers: &mut HeaderMap, decision: &Decision, policy: Option<(u32, u64)>) {
    let Some(status) = decision.status else {
        return;
    };
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("ratelimit-limit", status.limit.to_string());
    set("ratelimit-remaining", status.remaining.to_string());
    set("ratelimit-reset", ceil_secs(status.reset).to_string());
    if let Some((limit, window)) = policy {
        set("ratelimit-policy", format!("{limit};w={window}"));
    }
}

/// The middleware of one route: decides the request against its buckets; refuses it
/// with 429 or passes it on, adding the `RateLimit-*` headers either way.
pub async fn middleware(
    rate: RouteRate,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let class = match rate {
        RouteRate::Exempt => return Ok(next.call(req).await?.map_into_boxed_body()),
        RouteRate::Tier => None,
        RouteRate::Class(class) => Some(class),
    };
    let Some(limits) = req.app_data::<web::Data<RateLimits>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if !limits.enabled {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let (subject, buckets, decision) = async {
        let (subject, tier) = if class == Some(RateClass::SignIn) {
            // Sign-in attempts count per address, whoever claims to be calling.
            (
                Subject::ip(limits.client_ip(req.request())),
                Tier::Anonymous,
            )
        } else {
            limits.caller(req.request()).await
        };
        let buckets = limits.policy.buckets(tier, class);
        let decision = limits.limiter.acquire(&subject, &buckets).await;
        (subject, buckets, decision)
    }
    .instrument(tracing::debug_span!("rate_limit"))
    .await;
    let binding = decision
        .status
        .and_then(|s| buckets.get(s.bucket))
        .map(|b| (b.label, b.quota));
    let policy = binding.map(|(_, q)| (q.limit(), q.period().as_secs()));
    if !decision.allowed {
        let label = binding.map_or("unknown", |(label, _)| label);
        limits.rejected(label);
        tracing::info!(limit = label, subject = %subject.key(), "rate limited");
        let wait = decision.retry_after.unwrap_or(Duration::from_secs(1));
        let error = rate_limited(
            wait,
            &format!("too many requests ({label} limit); retry after the time in Retry-After"),
        );
        let mut res = req.error_response(error);
        set_headers(res.headers_mut(), &decision, policy);
        return Ok(res.map_into_boxed_body());
    }
    req.extensions_mut()
        .insert(ClientIp(limits.client_ip(req.request())));
    let mut res = next.call(req).await?.map_into_boxed_body();
    set_headers(res.headers_mut(), &decision, policy);
    Ok(res)
}

/// The client address of the request (the peer, or behind a trusted proxy the address
/// `X-Forwarded-For` names): an extractor for handlers that count per address.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ip = req.extensions().get::<ClientIp>().copied().or_else(|| {
            req.app_data::<web::Data<RateLimits>>()
                .map(|limits| ClientIp(limits.client_ip(req)))
        });
        std::future::ready(Ok(ip.unwrap_or(ClientIp(req.peer_addr().map(|a| a.ip())))))
    }
}

impl aide::OperationInput for ClientIp {}
