//! Hit and miss counters of each layer.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts since the cache was created, per layer, for `/metrics`.
///
/// Every lookup of a compiled table or a member context counts once in L1 (a hit, or a
/// miss when absent or not fresh enough). Each L1 miss that had to load counts once in L2
/// (hit, miss, or skipped while Redis is unusable) and, when L2 could not answer, once in
/// `db_loads`. Misses that waited for a concurrent load of the same key (coalescing)
/// count as L1 misses only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheLayerStats {
    /// Lookups answered from the in-process L1.
    pub l1_hits: u64,
    /// Lookups L1 could not answer (absent, expired, evicted, or older than required).
    pub l1_misses: u64,
    /// Loads answered from Redis (L2).
    pub l2_hits: u64,
    /// Loads Redis could not answer (absent, or older than required).
    pub l2_misses: u64,
    /// Loads that skipped Redis because it was failing (circuit open).
    pub l2_skipped: u64,
    /// Loads from the database (a compiled table or a member context).
    pub db_loads: u64,
    /// Failed or timed-out Redis operations.
    pub redis_errors: u64,
    /// Invalidation messages applied to this instance's L1 (its own included).
    pub invalidations_applied: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) l1_hits: AtomicU64,
    pub(crate) l1_misses: AtomicU64,
    pub(crate) l2_hits: AtomicU64,
    pub(crate) l2_misses: AtomicU64,
    pub(crate) l2_skipped: AtomicU64,
    pub(crate) db_loads: AtomicU64,

    pub(crate) invalidations_applied: AtomicU64,
}

/// Adds one to `counter`.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CacheLayerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheLayerStats {
            l1_hits: get(&self.l1_hits),
            l1_misses: get(&self.l1_misses),
            l2_hits: get(&self.l2_hits),
            l2_misses: get(&self.l2_misses),
            l2_skipped: get(&self.l2_skipped),
            db_loads: get(&self.db_loads),
            redis_errors: 0,
            invalidations_applied: get(&self.invalidations_applied),
        }
    }
}
