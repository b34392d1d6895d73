//! The in-process store: bucket TATs in a sharded map, back-off counters in another.
//! Per instance only: it is the fallback while Redis is absent or down.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::backoff::BackoffPolicy;
use crate::gcra::{Decision, decide};
use crate::quota::Quota;
use crate::store::{RateStore, StoreError};

const SHARDS: usize = 64;
/// A shard sweeps out its full buckets when it grows past this many entries.
const SWEEP_AT: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u64,
    locked_until: u64,
    forget_at: u64,
}

/// One shard: bucket TATs, and the size at which it next sweeps out full buckets
/// (doubling with the live entries, so sweeps stay amortized O(1) per insert).
#[derive(Debug, Default)]
struct Shard {
    tats: HashMap<String, u64>,
    sweep_at: usize,
}

/// The in-process store.
#[derive(Debug)]
pub struct LocalStore {
    shards: Box<[Mutex<Shard>]>,
    failures: Mutex<HashMap<String, Failures>>,
    sweep_at: usize,
}

impl Default for LocalStore {
    fn default() -> Self {
        Self::with_sweep_threshold(SWEEP_AT)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn shard_of(key: &str) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl LocalStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose shards sweep from `entries` on.
    fn with_sweep_threshold(entries: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        tats: HashMap::new(),
                        sweep_at: entries,
                    })
                })
                .collect(),
            failures: Mutex::new(HashMap::new()),
            sweep_at: entries,
        }
    }

    /// [`RateStore::acquire`], synchronously: the shards of the keys are locked in index
    /// order (no deadlock), decided and updated together.
    #[must_use]
    pub fn acquire_now(&self, now_us: u64, keys: &[String], quotas: &[Quota]) -> Decision {
        let mut order: Vec<usize> = keys.iter().map(|k| shard_of(k)).collect();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<MutexGuard<'_, Shard>> =
            order.iter().map(|&i| lock(&self.shards[i])).collect();
        let slots: Vec<usize> = keys
            .iter()
            .map(|k| order.binary_search(&shard_of(k)).unwrap_or(0))
            .collect();
        let tats: Vec<Option<u64>> = keys
            .iter()
            .zip(&slots)
            .map(|(k, &g)| guards[g].tats.get(k).copied())
            .collect();
        let decision = decide(now_us, quotas, &tats);
        if decision.allowed {
            for ((key, &g), tat) in keys.iter().zip(&slots).zip(&decision.new_tats) {
                let shard = &mut *guards[g];
                if shard.tats.len() >= shard.sweep_at && !shard.tats.contains_key(key) {
                    shard.tats.retain(|_, t| *t > now_us);
                    shard.sweep_at = (shard.tats.len() * 2).max(self.sweep_at);
                }
                shard.tats.insert(key.clone(), *tat);
            }
        }
        decision
    }

    /// [`RateStore::reserve`] under the one lock of the back-off counters.
    pub(crate) fn reserve_now(
        &self,
        now_us: u64,
        keys: &[(String, BackoffPolicy)],
    ) -> Option<Duration> {
        let mut map = lock(&self.failures);
        if map.len() >= self.sweep_at {
            map.retain(|_, f| f.forget_at > now_us);
        }
        let wait = keys
            .iter()
            .filter_map(|(k, _)| map.get(k))
            .filter(|f| f.forget_at > now_us && f.locked_until > now_us)
            .map(|f| f.locked_until - now_us)
            .max();
        if let Some(wait) = wait {
            return Some(Duration::from_micros(wait));
        }
        for (key, policy) in keys {
            let entry = map.entry(key.clone()).or_insert(FORGOTTEN);
            if entry.forget_at <= now_us {
                *entry = FORGOTTEN;
            }
            entry.count += 1;
            let lock = policy.lockout(entry.count);
            if let Some(lock) = lock {
                entry.locked_until = now_us.saturating_add(micros(lock));
            }
            entry.forget_at = now_us
                .saturating_add(micros(policy.window))
                .saturating_add(lock.map_or(0, micros));
        }
        None
    }

    /// [`RateStore::release`] under the same lock: one attempt less on each key, and no
    /// wait once the count is back under the free attempts.
    pub(crate) fn release_now(&self, now_us: u64, keys: &[(String, BackoffPolicy)]) {
        let mut map = lock(&self.failures);
        for (key, policy) in keys {
            let Some(entry) = map.get_mut(key) else {
                continue;
            };
            entry.count = entry.count.saturating_sub(1);
            if entry.count == 0 || entry.forget_at <= now_us {
                map.remove(key);
            } else if policy.lockout(entry.count).is_none() {
                entry.locked_until = 0;
            }
        }
    }
}

impl LocalStore {
    /// Forgets the attempts counted on `key`.
    pub(crate) fn forget(&self, key: &str) {
        lock(&self.failures).remove(key);
    }
}

const FORGOTTEN: Failures = Failures {
    count: 0,
    locked_until: 0,
    forget_at: 0,
};

impl RateStore for LocalStore {
    async fn acquire(
        &self,
        now_us: u64,
        keys: &[String],
        quotas: &[Quota],
    ) -> Result<Decision, StoreError> {
        Ok(self.acquire_now(now_us, keys, quotas))
    }

    async fn reserve(
        &self,
        now_us: u64,
        keys: &[(String, BackoffPolicy)],
    ) -> Result<Option<Duration>, StoreError> {
        Ok(self.reserve_now(now_us, keys))
    }

    async fn release(
        &self,
        now_us: u64,
        keys: &[(String, BackoffPolicy)],
    ) -> Result<(), StoreError> {
        self.release_now(now_us, keys);
        Ok(())
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        self.forget(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000;
    const NOW: u64 = 1_700_000_000 * SEC;

    fn quota(limit: u32, secs: u64) -> Quota {
        Quota::new(limit, Duration::from_secs(secs)).expect("valid")
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn buckets_are_per_key_and_all_or_nothing() {
        let store = LocalStore::new();
        let (tier, class) = (quota(3, 60), quota(1, 60));
        let a = keys(&["a:tier", "a:class"]);
        let d = store.acquire(NOW, &a, &[tier, class]).await.expect("local");
        assert!(d.allowed);
        let d = store.acquire(NOW, &a, &[tier, class]).await.expect("local");
        assert!(!d.allowed, "the class bucket is empty");
        // The refusal did not charge the tier: two more tier-only requests pass.
        let t = keys(&["a:tier"]);
        for left in [1, 0] {
            let d = store.acquire(NOW, &t, &[tier]).await.expect("local");
            assert_eq!(d.status.map(|s| s.remaining), Some(left));
        }
        assert!(
            !store
                .acquire(NOW, &t, &[tier])
                .await
                .expect("local")
                .allowed
        );
        // Another subject is untouched.
        let b = keys(&["b:tier"]);
        assert!(
            store
                .acquire(NOW, &b, &[tier])
                .await
                .expect("local")
                .allowed
        );
        // Time refills.
        assert!(
            store
                .acquire(NOW + 20 * SEC, &t, &[tier])
                .await
                .expect("local")
                .allowed
        );
    }

    #[test]
    fn full_buckets_are_swept_as_shards_grow() {
        let store = LocalStore::with_sweep_threshold(4);
        let q = quota(10, 1);
        let n = SHARDS * 16;
        for i in 0..n {
            let _ = store.acquire_now(NOW, &[format!("s{i}")], &[q]);
        }
        let total =
            |store: &LocalStore| -> usize { store.shards.iter().map(|s| lock(s).tats.len()).sum() };
        assert_eq!(total(&store), n, "nothing is full yet");
        // A second later every bucket is full again: new subjects sweep them out.
        for i in 0..n {
            let d = store.acquire_now(NOW + 10 * SEC, &[format!("t{i}")], &[q]);
            assert!(d.allowed);
        }
        let after = total(&store);
        assert!(after < 2 * n, "stale buckets were swept: {after}");
        // A swept bucket is simply full: its subject still gets the whole quota.
        let d = store.acquire_now(NOW + 10 * SEC, &["s0".to_owned()], &[q]);
        assert_eq!(d.status.map(|s| s.remaining), Some(9));
    }

    fn backoff(free: u32) -> BackoffPolicy {
        BackoffPolicy {
            free_failures: free,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            window: Duration::from_secs(900),
        }
    }

    #[tokio::test]
    async fn attempts_are_reserved_then_wait_exponentially_and_reset() {
        let store = LocalStore::new();
        let k = vec![("acct".to_owned(), backoff(2))];
        let reserve = |at| store.reserve(at, &k);
        assert_eq!(reserve(NOW).await.expect("local"), None);
        assert_eq!(reserve(NOW).await.expect("local"), None);
        // Two attempts counted: the third waits 1 s after the second, then 2 s, …
        assert_eq!(
            reserve(NOW).await.expect("local"),
            Some(Duration::from_secs(1))
        );
        assert_eq!(reserve(NOW + SEC).await.expect("local"), None);
        assert_eq!(
            reserve(NOW + 2 * SEC).await.expect("local"),
            Some(Duration::from_secs(1))
        );
        assert_eq!(reserve(NOW + 3 * SEC).await.expect("local"), None);
        assert_eq!(
            reserve(NOW + 3 * SEC).await.expect("local"),
            Some(Duration::from_secs(4))
        );
        store.reset("acct").await.expect("local");
        assert_eq!(reserve(NOW + 4 * SEC).await.expect("local"), None);
        // Failures are forgotten a window after the last one.
        assert_eq!(reserve(NOW + 4 * SEC).await.expect("local"), None);
        let later = NOW + 4 * SEC + 901 * SEC;
        assert_eq!(reserve(later).await.expect("local"), None);
        assert_eq!(reserve(later).await.expect("local"), None);
    }

    #[tokio::test]
    async fn a_release_refunds_the_attempt_and_its_wait() {
        let store = LocalStore::new();
        let k = vec![("ip".to_owned(), backoff(2))];
        assert_eq!(store.reserve(NOW, &k).await.expect("local"), None);
        assert_eq!(store.reserve(NOW, &k).await.expect("local"), None);
        // The second attempt was not a failure: refunded, no wait for the third.
        store.release(NOW, &k).await.expect("local");
        assert_eq!(store.reserve(NOW, &k).await.expect("local"), None);
        assert!(store.reserve(NOW, &k).await.expect("local").is_some());
    }

    #[tokio::test]
    async fn a_waiting_key_refuses_the_attempt_on_every_key() {
        let store = LocalStore::new();
        let ip = ("ip".to_owned(), backoff(1));
        let a = ("acct:a".to_owned(), backoff(5));
        let b = ("acct:b".to_owned(), backoff(5));
        assert_eq!(
            store
                .reserve(NOW, &[a.clone(), ip.clone()])
                .await
                .expect("local"),
            None
        );
        // The address must wait: nothing is counted on account b either.
        assert!(
            store
                .reserve(NOW, &[b.clone(), ip.clone()])
                .await
                .expect("local")
                .is_some()
        );
        for _ in 0..5 {
            assert_eq!(
                store
                    .reserve(NOW, std::slice::from_ref(&b))
                    .await
                    .expect("local"),
                None
            );
        }
        assert!(store.reserve(NOW, &[b]).await.expect("local").is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_attempts_get_at_most_the_free_ones() {
        let store = std::sync::Arc::new(LocalStore::new());
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(40));
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    let keys = [
                        ("acct".to_owned(), backoff(5)),
                        (format!("ip:{}", i % 4), backoff(20)),
                    ];
                    barrier.wait().await;
                    store.reserve(NOW, &keys).await.expect("local").is_none()
                })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            admitted += usize::from(t.await.expect("task"));
        }
        assert_eq!(admitted, 5, "only the free attempts are let through");
    }
}
