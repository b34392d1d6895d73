use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Hit and miss counts of one cache layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from this layer.
    pub hits: u64,
    /// Lookups this layer could not answer.
    pub misses: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A bounded, TTL-limited in-process cache (L1) that counts its hits and misses.
///
/// Concurrent misses for the same key are coalesced: [`LocalCache::get_or_load`] runs
/// the loader once and every waiter receives its result.
#[derive(Clone)]
pub struct LocalCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    inner: moka::future::Cache<K, V>,
    counters: Arc<Counters>,
    budget: u64,
}

impl<K, V> std::fmt::Debug for LocalCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("entries", &self.inner.entry_count())
            .field("stats", &self.stats())
            .finish()
    }
}

impl<K, V> LocalCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of entries weighing at most `max_bytes` together, each kept for at most
    /// `ttl`, for keys and values without heap content: each entry weighs its inline
    /// size plus moka's bookkeeping ([`crate::weight::entry_bytes`]).
    #[must_use]
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        Self::with_weigher(max_bytes, ttl, |_, _| crate::weight::entry_bytes::<K, V>(0))
    }

    /// Like [`LocalCache::new`], with a weigher for entries that own heap memory.
    #[must_use]
    pub fn with_weigher(max_bytes: u64, ttl: Duration, weigher: fn(&K, &V) -> u32) -> Self {
        Self {
            inner: moka::future::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(weigher)
                .time_to_live(ttl)
                .build(),
            counters: Arc::default(),
            budget: max_bytes,
        }
    }

    /// The weight of the entries now (pending evictions applied first), in bytes.
    pub async fn bytes(&self) -> u64 {
        self.inner.run_pending_tasks().await;
        self.inner.weighted_size()
    }

    /// The byte budget.
    #[must_use]
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// The cached value, if present (counts a hit or a miss).
    pub async fn get(&self, key: &K) -> Option<V> {
        let found = self.inner.get(key).await;
        self.count(found.is_some());
        found
    }

    /// Stores a value.
    pub async fn insert(&self, key: K, value: V) {
        self.inner.insert(key, value).await;
    }

    /// Removes a value.
    pub async fn invalidate(&self, key: &K) {
        self.inner.invalidate(key).await;
    }

    /// Removes every value.
    pub fn invalidate_all(&self) {
        self.inner.invalidate_all();
    }

    /// The cached value, or the loader's result (stored if `Ok`). Concurrent callers
    /// for the same missing key share one loader run; errors are not cached.
    pub async fn get_or_load<E, F>(&self, key: K, load: F) -> Result<V, Arc<E>>
    where
        F: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let entry = self.inner.entry(key).or_try_insert_with(load).await?;
        self.count(!entry.is_fresh());
        Ok(entry.into_value())
    }

    /// Hit and miss counts since start.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
        }
    }

    fn count(&self, hit: bool) {
        let c = if hit {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn counts_hits_and_misses() {
        let c: LocalCache<u32, u32> = LocalCache::new(10_000, Duration::from_secs(60));
        assert_eq!(c.get(&1).await, None);
        c.insert(1, 7).await;
        assert_eq!(c.get(&1).await, Some(7));
        assert_eq!(c.stats(), CacheStats { hits: 1, misses: 1 });
    }

    #[tokio::test]
    async fn concurrent_misses_load_once() {
        let c: LocalCache<u32, u32> = LocalCache::new(10_000, Duration::from_secs(60));
        let loads = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                let loads = loads.clone();
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    c.get_or_load::<(), _>(5, async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        // Hold the load open until every task has queued behind it.
                        let _ = rx.wait_for(|go| *go).await;
                        Ok(42)
                    })
                    .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        tx.send_replace(true);
        for t in tasks {
            assert_eq!(t.await.ok().and_then(Result::ok), Some(42));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn never_holds_more_bytes_than_its_budget() {
        let budget = 50 * u64::from(crate::weight::entry_bytes::<u32, String>(100));
        let c: LocalCache<u32, String> =
            LocalCache::with_weigher(budget, Duration::from_secs(60), |_, v| {
                crate::weight::entry_bytes::<u32, String>(v.len())
            });
        for i in 0..1000 {
            c.insert(i, "x".repeat(100)).await;
            assert!(c.bytes().await <= budget, "over budget after {i} inserts");
        }
        assert!(c.bytes().await > budget / 2, "it does fill up");
        assert_eq!(c.budget(), budget);
    }
}
