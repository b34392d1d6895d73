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
use crate::policy::{Bucket, Subject, account_backoff_key, bucket_key, ip_backoff_key};
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

    /// The back-off keys of an account and a client address with their policies.
    fn sign_in_keys(
        &self,
        email: &str,
        ip: Option<IpAddr>,
        account: BackoffPolicy,
        by_ip: BackoffPolicy,
    ) -> [(String, BackoffPolicy); 2] {
        [
            (account_backoff_key(&self.inner.prefix, email), account),
            (ip_backoff_key(&self.inner.prefix, ip), by_ip),
        ]
    }

    /// How long sign-ins for `email` from `ip` stay refused (`None`: allowed).
    pub async fn sign_in_locked(&self, email: &str, ip: Option<IpAddr>) -> Option<Duration> {
        let now = self.inner.clock.now_us();
        let keys = [
            account_backoff_key(&self.inner.prefix, email),
            ip_backoff_key(&self.inner.prefix, ip),
        ];
        if let Some(redis) = self.redis() {
            match redis.locked(now, &keys).await {
                Ok(locked) => return locked,
                Err(e) => self.inner.failed("sign_in_locked", &e),
            }
        }
        self.inner.local.locked(now, &keys).await.ok().flatten()
    }

    /// Counts a failed sign-in against the account and the address; the lock-out it
    /// caused (`None`: still free).
    pub async fn sign_in_failed(
        &self,
        email: &str,
        ip: Option<IpAddr>,
        account: BackoffPolicy,
        by_ip: BackoffPolicy,
    ) -> Option<Duration> {
        let now = self.inner.clock.now_us();
        let keys = self.sign_in_keys(email, ip, account, by_ip);
        if let Some(redis) = self.redis() {
            match redis.fail(now, &keys).await {
                Ok(locked) => return locked,
                Err(e) => self.inner.failed("sign_in_failed", &e),
            }
        }
        self.inner.local.fail(now, &keys).await.ok().flatten()
    }

    /// A successful sign-in: the account's failures are forgotten (the address's are
    /// not: one good account must not launder an address's failures on others).
    pub async fn sign_in_succeeded(&self, email: &str) {
        let key = account_backoff_key(&self.inner.prefix, email);
        if let Some(redis) = self.redis()
            && let Err(e) = redis.reset(&key).await
        {
            self.inner.failed("sign_in_succeeded", &e);
        }
        // Locally too: failures counted during an outage must not outlive a success.
        let _ = self.inner.local.reset(&key).await;
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
