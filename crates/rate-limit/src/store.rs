//! The port both stores implement: one atomic GCRA decision over several buckets, and
//! the sign-in back-off counters (reserved atomically before a password is checked).

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

    /// Reserves one sign-in attempt on every key at once, before the password is
    /// checked: when no key makes it wait, counts the attempt on each as a failure under
    /// its policy (see [`BackoffPolicy`]; [`RateStore::release`] refunds it) and answers
    /// `None`; otherwise counts nothing and answers the longest wait. Atomic: concurrent
    /// attempts beyond a key's free ones are refused, never all let through.
    fn reserve(
        &self,
        now_us: u64,
        keys: &[(String, BackoffPolicy)],
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send;

    /// Refunds one attempt reserved on each key (it turned out not to be a failure).
    fn release(
        &self,
        now_us: u64,
        keys: &[(String, BackoffPolicy)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the failures of `key`.
    fn reset(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}
