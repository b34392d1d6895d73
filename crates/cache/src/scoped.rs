//! [`ScopedCache`]: a two-level cache of serializable values grouped in *scopes* (one per
//! tenant), where one call invalidates a whole scope on every instance.
//!
//! ```text
//! get_or_load(scope, key) ─▶ L1: moka, per instance ─▶ L2: Redis, shared ─▶ loader
//!                            (scope, key) → value,       {prefix}gen:{scope} = n,
//!                            stamped with a stripe epoch  {prefix}{scope}:{hash(key)}:g{n}
//! ```
//!
//! # Invalidation
//! [`ScopedCache::invalidate`] (call it *after* the write committed):
//! 1. increments each scope's L2 generation counter (one round trip for all; deferred to
//!    Redis's recovery while it fails), so no instance reads the old L2 values again;
//! 2. increments the scope's L1 stripe epoch here (read-your-writes on this instance);
//! 3. publishes `{name}:scope:{scope}:{origin}` on the [`InvalidationBus`]; every other
//!    instance's listener increments the stripe epoch on receipt (the writer's own
//!    message, `origin` being its id, is skipped: applying it again would retire values
//!    loaded after the write for nothing).
//!
//! Nothing is enumerated or deleted: an L1 entry counts only if it was loaded under the
//! current epoch of its scope's stripe (1 024 stripes by scope id; a stripe shared with
//! another scope costs that scope a reload, never a stale read), and an L2 value only
//! under the current counter. A loader reads the epoch and the counter *before* it loads,
//! and a writer bumps them *after* it commits, so whatever a reader accepts was loaded
//! after the last write that was invalidated before the read began.
//!
//! A lost counter is re-created at a random number, so values from its former life are
//! never found again. The L1 and L2 TTLs are per value ([`ScopedCache::get_or_load`]'s
//! `ttl`) and bound staleness when an invalidation message is lost.
//!
//! L2 keys hold a hash of the caller's key; each value records the full key and is used
//! only if it matches, so a hash collision costs a reload, never a wrong answer.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use uuid::Uuid;

use crate::generations::{GenerationSettings, Lookup, SharedGenerations};
use crate::{InvalidationBus, RedisError};

/// Number of L1 invalidation stripes (a power of two).
const STRIPES: usize = 1024;

/// How a [`ScopedCache`] is named, sized and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedSettings {
    /// The cache's name: bus messages are `{name}:scope:{scope}:{origin}`.
    pub name: String,
    /// Prefix of every Redis key (bump its version part when the value format changes).
    pub key_prefix: String,
    /// L1's byte budget (per instance): entries weigh their key, their value's JSON
    /// length and moka's bookkeeping ([`crate::weight`]). Default 64 MiB.
    pub l1_max_bytes: u64,
    /// Time bound of one Redis operation.
    pub redis_timeout: Duration,
    /// While Redis fails, how often the probe retries it.
    pub redis_retry_interval: Duration,
    /// How long [`ScopedCache::new`] waits for the first Redis connection.
    pub redis_connect_wait: Duration,
}

impl ScopedSettings {
    /// Production defaults for a cache called `name` with Redis keys under `key_prefix`:
    /// 64 MiB of L1, 75 ms per Redis operation, a probe every second.
    #[must_use]
    pub fn new(name: impl Into<String>, key_prefix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            key_prefix: key_prefix.into(),
            l1_max_bytes: 64 << 20,
            redis_timeout: Duration::from_millis(75),
            redis_retry_interval: Duration::from_secs(1),
            redis_connect_wait: Duration::from_secs(1),
        }
    }
}

/// Counts per layer since creation (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopedStats {
    /// Lookups answered from L1.
    pub l1_hits: u64,
    /// Lookups L1 could not answer.
    pub l1_misses: u64,
    /// Loads answered from Redis.
    pub l2_hits: u64,
    /// Loads Redis could not answer.
    pub l2_misses: u64,
    /// Loads that skipped Redis (circuit open).
    pub l2_skipped: u64,
    /// Loader runs (the source of truth was read).
    pub loads: u64,
    /// Scope invalidations applied to this instance's L1 (its own and received ones).
    pub invalidations_applied: u64,
    /// Failed or timed-out Redis operations.
    pub redis_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    l1_hits: AtomicU64,
    l1_misses: AtomicU64,
    l2_hits: AtomicU64,
    l2_misses: AtomicU64,
    l2_skipped: AtomicU64,
    loads: AtomicU64,
    invalidations_applied: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A value in L1: the stripe epoch read before it was loaded, its lifetime, the value.
struct Slot<V> {
    epoch: u64,
    ttl: Duration,
    value: Arc<V>,
    /// The value's heap size estimate (its JSON length), for the weigher.
    heap: usize,
}

impl<V> Clone for Slot<V> {
    fn clone(&self) -> Self {
        Self {
            epoch: self.epoch,
            ttl: self.ttl,
            value: self.value.clone(),
            heap: self.heap,
        }
    }
}

/// Each L1 value lives for the TTL it was stored with.
struct PerValueTtl;

impl<V> moka::Expiry<(Uuid, String), Slot<V>> for PerValueTtl {
    fn expire_after_create(
        &self,
        _key: &(Uuid, String),
        value: &Slot<V>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// A value in L2, with the full key it was stored under.
#[derive(Serialize, serde::Deserialize)]
struct Stored<K, T> {
    k: K,
    v: T,
}

struct Inner<V> {
    settings: ScopedSettings,
    /// This cache's id in the messages it publishes.
    origin: Uuid,
    l1: moka::future::Cache<(Uuid, String), Slot<V>>,
    l2: Option<SharedGenerations>,
    bus: InvalidationBus,
    epochs: Box<[AtomicU64]>,
    counters: Counters,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl<V> Drop for Inner<V> {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
        if let Some(l2) = &self.l2 {
            l2.shutdown();
        }
    }
}

/// A two-level cache of values grouped by scope; see the [module documentation](self).
/// Cheap to clone; clones share everything.
pub struct ScopedCache<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for ScopedCache<V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<V> std::fmt::Debug for ScopedCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedCache")
            .field("name", &self.inner.settings.name)
            .field("l2", &self.inner.l2)
            .finish_non_exhaustive()
    }
}

impl<V> ScopedCache<V>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A cache with Redis at `redis_url` as L2 (`None`: L1 only), listening on `bus`.
    ///
    /// Subscribes to `bus` before returning and spawns its listener (and, with Redis, the
    /// recovery probe) on the current Tokio runtime. An unreachable Redis is not an error.
    ///
    /// # Errors
    /// [`RedisError::InvalidUrl`] when `redis_url` is not a Redis URL.
    pub async fn new(
        redis_url: Option<&str>,
        bus: InvalidationBus,
        settings: ScopedSettings,
    ) -> Result<Self, RedisError> {
        let l2 = match redis_url {
            Some(url) => Some(
                SharedGenerations::connect(
                    url,
                    &GenerationSettings {
                        key_prefix: settings.key_prefix.clone(),
                        ttl: Duration::from_secs(60),
                        timeout: settings.redis_timeout,
                        retry_interval: settings.redis_retry_interval,
                        connect_wait: settings.redis_connect_wait,
                    },
                )
                .await?,
            ),
            None => None,
        };
        let receiver = bus.subscribe();
        let inner = Arc::new(Inner {
            l1: moka::future::Cache::builder()
                .max_capacity(settings.l1_max_bytes)
                .weigher(|key: &(Uuid, String), slot: &Slot<V>| {
                    crate::weight::entry_bytes::<(Uuid, String), Slot<V>>(key.1.len() + slot.heap)
                })
                .expire_after(PerValueTtl)
                .build(),
            settings,
            origin: Uuid::new_v4(),
            l2,
            bus,
            epochs: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            counters: Counters::default(),
            tasks: Mutex::new(Vec::new()),
        });
        let mut tasks = vec![tokio::spawn(listen(Arc::downgrade(&inner), receiver)).abort_handle()];
        if let Some(l2) = &inner.l2 {
            let probe = crate::generations::probe(
                Arc::downgrade(&inner),
                |inner| inner.l2.as_ref(),
                l2.wake(),
                recovered,
            );
            tasks.push(tokio::spawn(probe).abort_handle());
        }
        *inner.tasks.lock().unwrap_or_else(PoisonError::into_inner) = tasks;
        Ok(Self { inner })
    }

    /// The value of `key` in `scope`: from L1, else L2, else `load` (whose result is
    /// kept in both for `ttl`; errors are not cached). A value loaded before the latest
    /// invalidation of `scope` that this instance has applied is never returned.
    ///
    /// # Errors
    /// The loader's error.
    pub async fn get_or_load<E, F>(
        &self,
        scope: Uuid,
        key: String,
        ttl: Duration,
        load: F,
    ) -> Result<Arc<V>, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let inner = &self.inner;
        // Epochs only grow: a slot stamped at least `start` was loaded after every
        // invalidation applied before this call.
        let start = inner.epoch(scope).load(Ordering::SeqCst);
        let l1_key = (scope, key);
        if let Some(slot) = inner.l1.get(&l1_key).await
            && slot.epoch >= start
        {
            bump(&inner.counters.l1_hits);
            return Ok(slot.value);
        }
        bump(&inner.counters.l1_misses);
        let (scope, key) = l1_key;
        let slot = inner.fetch(scope, &key, ttl, load).await?;
        if inner.epoch(scope).load(Ordering::SeqCst) == slot.epoch {
            inner.l1.insert((scope, key), slot.clone()).await;
        }
        Ok(slot.value)
    }

    /// Call after a committed write that changed what `scopes` hold: bumps their L2
    /// counters (one round trip), retires their L1 values here, and tells every other
    /// instance to do the same.
    pub async fn invalidate(&self, scopes: &[Uuid]) {
        if scopes.is_empty() {
            return;
        }
        let inner = &self.inner;
        if let Some(l2) = &inner.l2 {
            l2.bump_or_defer(scopes).await;
        }
        for &scope in scopes {
            inner.apply(Some(scope));
        }
        for &scope in scopes {
            inner.bus.publish(&inner.message(scope)).await;
        }
    }

    /// L1's weight now (pending evictions applied first) and its budget, in bytes.
    pub async fn l1_bytes(&self) -> (u64, u64) {
        self.inner.l1.run_pending_tasks().await;
        (
            self.inner.l1.weighted_size(),
            self.inner.settings.l1_max_bytes,
        )
    }

    /// Counts per layer since creation.
    #[must_use]
    pub fn stats(&self) -> ScopedStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ScopedStats {
            l1_hits: get(&c.l1_hits),
            l1_misses: get(&c.l1_misses),
            l2_hits: get(&c.l2_hits),
            l2_misses: get(&c.l2_misses),
            l2_skipped: get(&c.l2_skipped),
            loads: get(&c.loads),
            invalidations_applied: get(&c.invalidations_applied),
            redis_errors: self.inner.l2.as_ref().map_or(0, SharedGenerations::errors),
        }
    }

    /// The cache's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.settings.name
    }

    /// Whether Redis is configured and currently used (the circuit is closed).
    #[must_use]
    pub fn l2_available(&self) -> bool {
        self.inner
            .l2
            .as_ref()
            .is_some_and(SharedGenerations::usable)
    }
}

impl<V> Inner<V>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn epoch(&self, scope: Uuid) -> &AtomicU64 {
        // The low bits of the id (random in v4 and v7 ids).
        let stripe = usize::try_from(scope.as_u64_pair().1 % STRIPES as u64).unwrap_or(0);
        &self.epochs[stripe]
    }

    fn message(&self, scope: Uuid) -> String {
        format!("{}:scope:{scope}:{}", self.settings.name, self.origin)
    }

    /// The scope a bus message retires, unless it is not this cache's kind of message or
    /// this very cache sent it.
    fn parse(&self, message: &str) -> Option<Uuid> {
        let rest = message
            .strip_prefix(self.settings.name.as_str())?
            .strip_prefix(":scope:")?;
        let (scope, origin) = rest.split_once(':')?;
        let origin = Uuid::parse_str(origin).ok()?;
        if origin == self.origin {
            return None;
        }
        Uuid::parse_str(scope).ok()
    }

    /// Retires the L1 values of `scope` (`None`: of every scope).
    fn apply(&self, scope: Option<Uuid>) {
        match scope {
            Some(scope) => {
                self.epoch(scope).fetch_add(1, Ordering::SeqCst);
            }
            None => {
                for epoch in &self.epochs {
                    epoch.fetch_add(1, Ordering::SeqCst);
                }
                self.l1.invalidate_all();
            }
        }
        bump(&self.counters.invalidations_applied);
    }

    fn l2_base(&self, scope: Uuid, key: &str) -> String {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        format!(
            "{}{scope}:{:016x}:g",
            self.settings.key_prefix,
            hasher.finish()
        )
    }

    /// Loads a slot from L2 or the loader, stamped with the epoch read before.
    async fn fetch<E, F>(
        &self,
        scope: Uuid,
        key: &str,
        ttl: Duration,
        load: F,
    ) -> Result<Slot<V>, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let epoch = self.epoch(scope).load(Ordering::SeqCst);
        let mut store_under = None;
        let l2 = self.l2.as_ref();
        if let Some(l2) = l2 {
            if l2.usable() {
                let base = self.l2_base(scope, key);
                match l2.lookup(scope, base.clone()).await {
                    Some(Lookup::Found { counter, value }) => {
                        if let Some((stored, heap)) = value
                            .as_deref()
                            .and_then(|bytes| {
                                serde_json::from_slice::<Stored<String, V>>(bytes)
                                    .ok()
                                    .map(|stored| (stored, bytes.len()))
                            })
                            .filter(|(stored, _)| stored.k == key)
                        {
                            bump(&self.counters.l2_hits);
                            return Ok(Slot {
                                epoch,
                                ttl,
                                value: Arc::new(stored.v),
                                heap,
                            });
                        }
                        bump(&self.counters.l2_misses);
                        store_under = Some((base, counter));
                    }
                    Some(Lookup::NoCounter) => {
                        bump(&self.counters.l2_misses);
                        // A fresh random start: values of a lost counter stay unreachable.
                        let seed = Uuid::new_v4().as_u64_pair().0 >> 12;
                        store_under = l2
                            .seed(scope, seed, base.clone())
                            .await
                            .map(|counter| (base, counter));
                    }
                    None => bump(&self.counters.l2_skipped),
                }
            } else {
                bump(&self.counters.l2_skipped);
            }
        }
        bump(&self.counters.loads);
        let value = load.await?;
        let heap = if let (Some((base, counter)), Some(l2)) = (store_under, l2) {
            let stored = Stored { k: key, v: &value };
            match serde_json::to_string(&stored) {
                Ok(json) => {
                    let heap = json.len();
                    l2.store_for(format!("{base}{counter}"), json, ttl).await;
                    heap
                }
                Err(_) => crate::weight::json_len(&value),
            }
        } else {
            crate::weight::json_len(&value)
        };
        Ok(Slot {
            epoch,
            ttl,
            value: Arc::new(value),
            heap,
        })
    }
}

/// Applies the bus's messages for this cache (until the cache is dropped).
async fn listen<V>(inner: Weak<Inner<V>>, mut messages: broadcast::Receiver<String>)
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    loop {
        let received = messages.recv().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match received {
            Ok(text) => {
                if let Some(scope) = inner.parse(&text) {
                    inner.apply(Some(scope));
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    cache = %inner.settings.name,
                    missed,
                    "cache missed invalidations; retiring its whole L1"
                );
                inner.apply(None);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Once Redis is back (see [`crate::generations::probe`]): retires the whole L1 (messages
/// may have been missed) and re-publishes the deferred invalidations.
async fn recovered<V>(inner: Arc<Inner<V>>, flushed: Vec<Uuid>)
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    inner.apply(None);
    for scope in flushed {
        inner.bus.publish(&inner.message(scope)).await;
    }
    tracing::info!(cache = %inner.settings.name, "redis is reachable again; the cache uses L2 again");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn settings() -> ScopedSettings {
        ScopedSettings::new("t", format!("test:{}:", Uuid::new_v4().simple()))
    }

    async fn read(cache: &ScopedCache<u32>, scope: Uuid, key: &str, value: u32) -> u32 {
        let got = cache
            .get_or_load::<Infallible, _>(scope, key.to_owned(), Duration::from_secs(60), async {
                Ok(value)
            })
            .await;
        got.map_or(0, |v| *v)
    }

    #[tokio::test]
    async fn a_scope_invalidation_retires_its_values_only() {
        let cache = ScopedCache::new(None, InvalidationBus::local_only(), settings())
            .await
            .expect("no redis url");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(read(&cache, a, "k", 1).await, 1);
        assert_eq!(read(&cache, b, "k", 10).await, 10);
        // Cached: the loader's new answer is not asked for.
        assert_eq!(read(&cache, a, "k", 2).await, 1);
        cache.invalidate(&[a]).await;
        assert_eq!(read(&cache, a, "k", 3).await, 3);
        let stats = cache.stats();
        assert_eq!((stats.l1_hits, stats.loads), (1, 3));
        // `b` shares a stripe with `a` only by chance; either way it answers correctly.
        let b_now = read(&cache, b, "k", 11).await;
        let same_stripe = a.as_u64_pair().1 % STRIPES as u64 == b.as_u64_pair().1 % STRIPES as u64;
        assert_eq!(b_now, if same_stripe { 11 } else { 10 });
    }

    #[tokio::test]
    async fn a_load_that_raced_an_invalidation_is_not_kept() {
        let cache: ScopedCache<u32> =
            ScopedCache::new(None, InvalidationBus::local_only(), settings())
                .await
                .expect("no redis url");
        let scope = Uuid::new_v4();
        let racing = cache.clone();
        // The write commits and is invalidated while the load is reading older state.
        let got = cache
            .get_or_load::<Infallible, _>(
                scope,
                "k".into(),
                Duration::from_secs(60),
                Box::pin(async {
                    racing.invalidate(&[scope]).await;
                    Ok(1)
                }),
            )
            .await
            .map_or(0, |v| *v);
        assert_eq!(
            got, 1,
            "the caller that started before the write gets its load"
        );
        assert_eq!(
            read(&cache, scope, "k", 2).await,
            2,
            "the next read reloads"
        );
    }

    #[tokio::test]
    async fn invalidations_reach_other_instances_over_the_bus() {
        let bus = InvalidationBus::local_only();
        let s = settings();
        let one: ScopedCache<u32> = ScopedCache::new(None, bus.clone(), s.clone())
            .await
            .expect("no redis url");
        let two: ScopedCache<u32> = ScopedCache::new(None, bus.clone(), s)
            .await
            .expect("no redis url");
        let scope = Uuid::new_v4();
        assert_eq!(read(&two, scope, "k", 1).await, 1);
        let mut applied = bus.subscribe();
        one.invalidate(&[scope]).await;
        // The message is on the bus; let `two`'s listener run, then check it applied it.
        let _ = applied.recv().await;
        for _ in 0..100 {
            if two.stats().invalidations_applied > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(read(&two, scope, "k", 2).await, 2);
    }

    #[tokio::test]
    async fn messages_name_their_scope_and_origin_and_foreign_ones_are_ignored() {
        let cache: ScopedCache<u32> =
            ScopedCache::new(None, InvalidationBus::local_only(), settings())
                .await
                .expect("no redis url");
        let inner = &cache.inner;
        let scope = Uuid::new_v4();
        let other = Uuid::new_v4();
        assert_eq!(inner.parse(&inner.message(scope)), None, "its own message");
        assert_eq!(
            inner.parse(&format!("t:scope:{scope}:{other}")),
            Some(scope)
        );
        for foreign in [
            format!("u:scope:{scope}:{other}"),
            format!("t:scope:{scope}"),
            format!("t:scope:nope:{other}"),
            format!("perm:org:{scope}"),
            String::new(),
        ] {
            assert_eq!(inner.parse(&foreign), None, "{foreign}");
        }
    }

    #[tokio::test]
    async fn loader_errors_are_not_cached() {
        let cache: ScopedCache<u32> =
            ScopedCache::new(None, InvalidationBus::local_only(), settings())
                .await
                .expect("no redis url");
        let scope = Uuid::new_v4();
        let failed = cache
            .get_or_load(scope, "k".into(), Duration::from_secs(60), async {
                Err("down")
            })
            .await;
        assert_eq!(failed.err(), Some("down"));
        assert_eq!(read(&cache, scope, "k", 5).await, 5);
    }

    #[tokio::test]
    async fn l1_never_holds_more_bytes_than_its_budget() {
        let mut s = settings();
        s.l1_max_bytes = 20_000;
        let cache: ScopedCache<String> = ScopedCache::new(None, InvalidationBus::local_only(), s)
            .await
            .expect("no redis url");
        let scope = Uuid::new_v4();
        for i in 0..500 {
            cache
                .get_or_load::<Infallible, _>(
                    scope,
                    format!("page-{i}"),
                    Duration::from_secs(60),
                    async { Ok("x".repeat(200)) },
                )
                .await
                .expect("loads");
            let (bytes, budget) = cache.l1_bytes().await;
            assert!(bytes <= budget, "{bytes} > {budget} after {i} loads");
        }
        let (bytes, _) = cache.l1_bytes().await;
        // Each entry weighs its key, the value's JSON (202 bytes) and the overhead.
        assert!(bytes > 10_000, "it does fill up: {bytes}");
    }
}
