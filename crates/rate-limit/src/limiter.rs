//! [`RateLimiter`]: Redis when configured and healthy, the in-process store otherwise,
//! switching back by itself.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::backoff::BackoffPolicy;
use crate::clock::{Clock, SystemClock};
use crate::gcra::Decision;
use crate::local::LocalStore;
use crate::policy::{
    Bucket, Subject, account_backoff_key, bucket_key, device_backoff_key, ip_backoff_key,
};
use crate::redis::{RedisSettings, RedisStore};
use crate::store::{RateStore, StoreError};

/// Which store decides right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The shared Redis: one budget across instances.
    Redis,
    /// This process only (Redis not configured, or down).
    Local,
}

impl Backend {
    /// `redis` or `local`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Local => "local",
        }
    }
}

/// Whose attempts a sign-in is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInAs<'a> {
    /// The account with this e-mail, from a client not known to it: everyone who does
    /// not hold a device token for the account shares this budget.
    Account(&'a str),
    /// A device token for the account (its id, already verified by the caller): a
    /// client that signed in to this account before. It has a budget of its own, so
    /// others' failures on the account do not lock it out.
    Device(&'a str),
}

/// A reserved sign-in attempt (see [`RateLimiter::sign_in_begin`]). Dropping it leaves
/// the attempt counted as a failure (a client that disconnects mid-check, too).
#[derive(Debug)]
#[must_use = "report the outcome: sign_in_succeeded, sign_in_failed or sign_in_abandoned"]
pub struct SignInPermit {
    /// The account's (or device token's) key, then the address's, with their policies.
    keys: Vec<(String, BackoffPolicy)>,
    /// Where the attempt was reserved.
    backend: Backend,
}

impl SignInPermit {
    /// A permit that counted nothing (rate limiting off).
    pub fn unlimited() -> Self {
        Self {
            keys: Vec::new(),
            backend: Backend::Local,
        }
    }
}

/// How the limiter behaves.
#[derive(Debug, Clone)]
pub struct LimiterSettings {
    /// Prefix of every Redis key (`{prefix}rl:{<subject>}:<bucket>`, `{prefix}bo:…`).
    /// Default `ptoc:rl:v1:`; tests use a unique one.
    pub key_prefix: String,
    /// The Redis client's time bounds.
    pub redis: RedisSettings,
    /// While Redis is failing, how often the background probe pings it. Default 1 s.
    pub retry_interval: Duration,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        Self {
            key_prefix: "ptoc:rl:v1:".to_owned(),
            redis: RedisSettings::default(),
            retry_interval: Duration::from_secs(1),
        }
    }
}

/// Counters of the limiter's own health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimiterStats {
    /// Redis operations that failed (each made the limiter fall back).
    pub redis_errors: u64,
    /// Decisions taken by the in-process store while Redis was configured.
    pub local_decisions: u64,
}

#[derive(Debug)]
struct Inner {
    local: LocalStore,
    redis: Option<RedisStore>,
    healthy: AtomicBool,
    wake: Arc<Notify>,
    probe: Mutex<Option<AbortHandle>>,
    clock: Arc<dyn Clock>,
    prefix: String,
    retry_interval: Duration,
    redis_errors: AtomicU64,
    local_decisions: AtomicU64,
}

/// The rate limiter of one instance. Cheap to clone.
///
/// With Redis, every decision is one script call there (shared budget); a failed or slow
/// call (beyond [`RedisSettings::timeout`]) opens the circuit: that request and the
/// following ones are decided by the in-process store, and a background probe pings
/// Redis every [`LimiterSettings::retry_interval`]; the first answer closes the circuit
/// (logged once each way). Requests are never failed because of Redis.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

impl RateLimiter {
    /// A limiter on Redis at `redis_url` (`None`: in-process only) reading time from
    /// `clock`. Spawns the probe on the current Tokio runtime. An unreachable Redis is
    /// not an error: the limiter starts on the local store and switches when it answers.
    ///
    /// # Errors
    /// [`StoreError`] when `redis_url` is not a Redis URL.
    ///
    /// # Panics
    /// With a Redis URL, outside a Tokio runtime.
    pub async fn new(
        redis_url: Option<&str>,
        settings: LimiterSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let (redis, connected) = match redis_url {
            Some(url) => {
                let (store, connected) = RedisStore::connect(url, settings.redis).await?;
                (Some(store), connected)
            }
            None => (None, false),
        };
        let inner = Arc::new(Inner {
            local: LocalStore::new(),
            redis,
            healthy: AtomicBool::new(connected),
            wake: Arc::new(Notify::new()),
            probe: Mutex::new(None),
            clock,
            prefix: settings.key_prefix,
            retry_interval: settings.retry_interval,
            redis_errors: AtomicU64::new(0),
            local_decisions: AtomicU64::new(0),
        });
        if inner.redis.is_some() {
            if !connected {
                tracing::warn!("redis not reachable yet; rate limits are per instance until it is");
                inner.wake.notify_one();
            }
            let task = tokio::spawn(probe(Arc::downgrade(&inner), inner.wake.clone()));
            *inner.probe.lock().unwrap_or_else(PoisonError::into_inner) = Some(task.abort_handle());
        }
        Ok(Self { inner })
    }

    /// An in-process limiter (no Redis) on the system clock.
    #[must_use]
    pub fn local() -> Self {
        Self {
            inner: Arc::new(Inner {
                local: LocalStore::new(),
                redis: None,
                healthy: AtomicBool::new(false),
                wake: Arc::new(Notify::new()),
                probe: Mutex::new(None),
                clock: Arc::new(SystemClock),
                prefix: String::new(),
                retry_interval: Duration::from_secs(1),
                redis_errors: AtomicU64::new(0),
                local_decisions: AtomicU64::new(0),
            }),
        }
    }

    /// The store deciding now.
    #[must_use]
    pub fn backend(&self) -> Backend {
        if self.redis().is_some() {
            Backend::Redis
        } else {
            Backend::Local
        }
    }

    /// Whether Redis is configured at all.
    #[must_use]
    pub fn has_redis(&self) -> bool {
        self.inner.redis.is_some()
    }

    /// The limiter's health counters.
    #[must_use]
    pub fn stats(&self) -> LimiterStats {
        LimiterStats {
            redis_errors: self.inner.redis_errors.load(Ordering::Relaxed),
            local_decisions: self.inner.local_decisions.load(Ordering::Relaxed),
        }
    }

    /// Pings Redis now and closes the circuit if it answers (the probe does this on its
    /// own every retry interval); whether Redis is in use afterwards.
    pub async fn probe_now(&self) -> bool {
        self.inner.probe_once().await
    }

    fn redis(&self) -> Option<&RedisStore> {
        self.inner
            .redis
            .as_ref()
            .filter(|_| self.inner.healthy.load(Ordering::Acquire))
    }

    /// Decides one request of `subject` against `buckets` (all charged, or none).
    pub async fn acquire(&self, subject: &Subject, buckets: &[Bucket]) -> Decision {
        if buckets.is_empty() {
            return Decision::unlimited();
        }
        let now = self.inner.clock.now_us();
        let keys: Vec<String> = buckets
            .iter()
            .map(|b| bucket_key(&self.inner.prefix, subject, &b.name))
            .collect();
        let quotas: Vec<_> = buckets.iter().map(|b| b.quota).collect();
        if let Some(redis) = self.redis() {
            match redis.acquire(now, &keys, &quotas).await {
                Ok(decision) => return decision,
                Err(e) => self.inner.failed("acquire", &e),
            }
        }
        self.count_local();
        self.inner.local.acquire_now(now, &keys, &quotas)
    }

    /// Reserves a sign-in attempt for `who` from `ip` **before** the password is checked
    /// (counted as a failure until the outcome says otherwise): on the account's key (or
    /// the device token's, see [`SignInAs`]) under `account`, and on the address's under
    /// `by_ip`, both at once or neither. `Err(wait)`: refused, retry after `wait` — a
    /// concurrent burst gets only the free attempts, the rest are refused without a
    /// password check. Pass the permit to [`RateLimiter::sign_in_succeeded`],
    /// [`RateLimiter::sign_in_failed`] or [`RateLimiter::sign_in_abandoned`].
    ///
    /// # Errors
    /// The wait when a key is backing off.
    pub async fn sign_in_begin(
        &self,
        who: SignInAs<'_>,
        ip: Option<IpAddr>,
        account: BackoffPolicy,
        by_ip: BackoffPolicy,
    ) -> Result<SignInPermit, Duration> {
        let prefix = &self.inner.prefix;
        let first = match who {
            SignInAs::Account(email) => account_backoff_key(prefix, email),
            SignInAs::Device(device) => device_backoff_key(prefix, device),
        };
        let keys = vec![(first, account), (ip_backoff_key(prefix, ip), by_ip)];
        let now = self.inner.clock.now_us();
        if let Some(redis) = self.redis() {
            match redis.reserve(now, &keys).await {
                Ok(None) => {
                    return Ok(SignInPermit {
                        keys,
                        backend: Backend::Redis,
                    });
                }
                Ok(Some(wait)) => return Err(wait),
                Err(e) => self.inner.failed("sign_in_begin", &e),
            }
        }
        self.count_local();
        match self.inner.local.reserve_now(now, &keys) {
            None => Ok(SignInPermit {
                keys,
                backend: Backend::Local,
            }),
            Some(wait) => Err(wait),
        }
    }

    /// The attempt of `permit` signed in: its account's (or device token's) attempts
    /// are forgotten, and its reservation on the address is refunded (the address's
    /// earlier failures stay: one good account must not launder an address's failures
    /// on others).
    pub async fn sign_in_succeeded(&self, permit: SignInPermit) {
        let [(first, _), ip] = permit.keys.as_slice() else {
            return;
        };
        let now = self.inner.clock.now_us();
        let ip = std::slice::from_ref(ip);
        if permit.backend == Backend::Redis
            && let Some(redis) = self.redis()
        {
            let (reset, released) = tokio::join!(redis.reset(first), redis.release(now, ip));
            if let Err(e) = reset.and(released) {
                self.inner.failed("sign_in_succeeded", &e);
            }
        } else if permit.backend == Backend::Local {
            self.inner.local.release_now(now, ip);
        }
        // Locally too: failures counted during an outage must not outlive a success.
        self.inner.local.forget(first);
    }

    /// The attempt of `permit` was a wrong password: it stays counted.
    pub fn sign_in_failed(&self, permit: SignInPermit) {
        drop(permit);
    }

    /// The attempt of `permit` ended without an answer on the password (an internal
    /// error): its reservation is refunded on every key.
    pub async fn sign_in_abandoned(&self, permit: SignInPermit) {
        if permit.keys.is_empty() {
            return;
        }
        let now = self.inner.clock.now_us();
        if permit.backend == Backend::Redis
            && let Some(redis) = self.redis()
        {
            if let Err(e) = redis.release(now, &permit.keys).await {
                self.inner.failed("sign_in_abandoned", &e);
            }
        } else if permit.backend == Backend::Local {
            self.inner.local.release_now(now, &permit.keys);
        }
    }

    fn count_local(&self) {
        if self.inner.redis.is_some() {
            self.inner.local_decisions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Inner {
    /// Records a Redis failure: counts it, opens the circuit (logged once per outage)
    /// and wakes the probe.
    fn failed(&self, operation: &str, error: &StoreError) {
        self.redis_errors.fetch_add(1, Ordering::Relaxed);
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                operation,
                error = %error,
                "redis unavailable; rate limits are per instance until it is back"
            );
            self.wake.notify_one();
        }
    }

    async fn probe_once(&self) -> bool {
        let Some(redis) = &self.redis else {
            return false;
        };
        if self.healthy.load(Ordering::Acquire) {
            return true;
        }
        if !redis.ping().await {
            return false;
        }
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::info!("redis is reachable again; rate limits are shared again");
        }
        true
    }
}

/// While Redis fails, pings it every retry interval until it answers.
async fn probe(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        // Waits for a failure holding only the `Notify`: the limiter can be dropped
        // meanwhile (its `Drop` aborts this task).
        wake.notified().await;
        let Some(interval) = inner.upgrade().map(|i| i.retry_interval) else {
            return;
        };
        loop {
            tokio::time::sleep(interval).await;
            let Some(strong) = inner.upgrade() else {
                return;
            };
            if strong.probe_once().await {
                break;
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self
            .probe
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        if let Some(redis) = &self.redis {
            redis.shutdown();
        }
    }
}
