//! [`CacheSettings`]: sizes, lifetimes, Redis time bounds and the key prefix.

use std::time::Duration;

/// The default prefix of every Redis key the cache writes.
pub const DEFAULT_KEY_PREFIX: &str = "ptoc:perm:v1:";

/// How the permission cache behaves. [`Default`] suits production; tests mostly change
/// [`key_prefix`](Self::key_prefix) (so parallel tests sharing one Redis never collide)
/// and the Redis time bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Prefix of every Redis key (`{prefix}gen:{org}`, `{prefix}org:{org}:g{n}`,
    /// `{prefix}member:{org}:{user}:g{n}`). Default [`DEFAULT_KEY_PREFIX`]. Bump its
    /// version part when the stored format changes incompatibly.
    pub key_prefix: String,
    /// Byte budget of the compiled org tables in L1 (per instance); an entry weighs the
    /// table's JSON length plus its inline size and moka's bookkeeping. Default 32 MiB.
    pub l1_org_bytes: u64,
    /// Byte budget of the member contexts in L1 (per instance), weighed likewise.
    /// Default 64 MiB.
    pub l1_member_bytes: u64,
    /// How long an L1 entry lives at most. This bounds staleness when an invalidation
    /// message was missed (Redis pub/sub down or the bus lagging). Default 60 s.
    pub l1_ttl: Duration,
    /// How long an L2 (Redis) value lives at most. Default 10 min.
    pub l2_ttl: Duration,
    /// Time bound of one Redis operation (a script or a `SET`, retries included). On
    /// expiry the operation counts as a Redis failure. Default 75 ms.
    pub redis_timeout: Duration,
    /// While Redis is failing, how often the background probe retries it (`PING`).
    /// Requests skip Redis meanwhile. Default 1 s.
    pub redis_retry_interval: Duration,
    /// How long [`PermissionCache::new`](crate::PermissionCache::new) waits for the
    /// first Redis connection before starting in degraded mode (L1 + database), the
    /// probe then keeps trying. Default 1 s.
    pub redis_connect_wait: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            l1_org_bytes: 32 << 20,
            l1_member_bytes: 64 << 20,
            l1_ttl: Duration::from_secs(60),
            l2_ttl: Duration::from_secs(600),
            redis_timeout: Duration::from_millis(75),
            redis_retry_interval: Duration::from_secs(1),
            redis_connect_wait: Duration::from_secs(1),
        }
    }
}

impl CacheSettings {
    /// The L2's Redis settings.
    #[must_use]
    pub(crate) fn generations(&self) -> cache::generations::GenerationSettings {
        cache::generations::GenerationSettings {
            key_prefix: self.key_prefix.clone(),
            ttl: self.l2_ttl,
            timeout: self.redis_timeout,
            retry_interval: self.redis_retry_interval,
            connect_wait: self.redis_connect_wait,
        }
    }

    /// These settings with `prefix` as the Redis key prefix.
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }
}
