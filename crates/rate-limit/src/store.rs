//! The port both stores implement: one atomic GCRA decision over several buckets, and
//! the sign-in back-off counters.

use std::future::Future;
use std::time::Duration;

use crate::backoff::BackoffPolicy;
use crate::gcra::Decision;
use crate::quota::Quota;

/// A store failed (only the Redis adapter can); the limiter then decides locally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate-limit store unavailable: {0}")]
pub struct StoreError(pub String);

/// Where bucket states and back-off counters live. Every operation is atomic per call.
pub trait RateStore: Send + Sync {
    /// Decides one request at `now_us` against the buckets `keys[i]` with `quotas[i]`
    /// (see [`crate::gcra::decide`]), charging all of them or none.
    fn acquire(
        &self,
        now_us: u64,
        keys: &[String],
        quotas: &[Quota],
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send;

    /// The longest remaining lock-out among `keys` (`None`: none is locked).
    fn locked(
        &self,
        now_us: u64,
        keys: &[String],
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send;

    /// Counts a failure on each key under its policy; the longest lock-out it caused.
    fn fail(
        &self,
        now_us: u64,
        keys: &[(String, BackoffPolicy)],
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send;

    /// Forgets the failures of `key`.
    fn reset(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}
