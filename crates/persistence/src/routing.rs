//! Read routing per unit of work (an HTTP request): whether its lag-tolerant reads may
//! go to the read replica. A request that writes, or that asks to see its own earlier
//! write (a consistency token), reads from the primary; so does everything after the
//! first write of a request.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

tokio::task_local! {
    static PRIMARY_ONLY: AtomicBool;
}

/// Runs `work` as one unit: with `primary_only`, every read goes to the primary;
/// otherwise reads may use the replica until the unit writes ([`mark_written`]).
pub async fn scope<F: Future>(primary_only: bool, work: F) -> F::Output {
    PRIMARY_ONLY
        .scope(AtomicBool::new(primary_only), work)
        .await
}

/// Notes that the current unit of work wrote: its later reads see the write (primary).
pub fn mark_written() {
    let _ = PRIMARY_ONLY.try_with(|f| f.store(true, Ordering::Relaxed));
}

/// Whether the current unit of work must read from the primary (false outside a
/// [`scope`]: background work tolerates lag unless it says otherwise).
#[must_use]
pub fn primary_only() -> bool {
    PRIMARY_ONLY
        .try_with(|f| f.load(Ordering::Relaxed))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_unit_reads_the_primary_after_it_writes() {
        assert!(!primary_only(), "outside a unit of work");
        scope(false, async {
            assert!(!primary_only());
            mark_written();
            assert!(primary_only());
        })
        .await;
        scope(true, async { assert!(primary_only()) }).await;
        // Units do not leak into each other.
        scope(false, async { assert!(!primary_only()) }).await;
    }
}
