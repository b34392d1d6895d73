//! Process-wide webhook delivery metrics, read by the server's `/metrics`: each settled
//! attempt counted by what it did to its delivery, and the duration of every attempt
//! (from sending the request to its answer, or to the error) as a histogram. Atomics,
//! like the job worker's failure counts: recording is a few relaxed additions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the attempt-duration buckets, in seconds (an attempt is bounded by
/// `WEBHOOK_TIMEOUT_MS`, 10 s by default; a timed-out one lands in the last bucket).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What a settled attempt did to its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered,
    /// It failed and will be tried again (back-off).
    Retried,
    /// It failed and no attempt is left (or a manual redelivery failed).
    Failed,
    /// The receiver answered 410 Gone: the delivery failed and its endpoint was
    /// disabled.
    Disabled,
}

impl Outcome {
    /// Every outcome, in the order of [`Snapshot::outcomes`].
    pub const ALL: [Self; 4] = [Self::Delivered, Self::Retried, Self::Failed, Self::Disabled];

    /// The label value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retried => "retried",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Delivered => 0,
            Self::Retried => 1,
            Self::Failed => 2,
            Self::Disabled => 3,
        }
    }
}

static OUTCOMES: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static DURATION_BUCKETS: [AtomicU64; BUCKETS.len()] = [const { AtomicU64::new(0) }; BUCKETS.len()];
static DURATION_COUNT: AtomicU64 = AtomicU64::new(0);
static DURATION_SUM_MICROS: AtomicU64 = AtomicU64::new(0);

/// Counts one settled attempt.
pub(crate) fn settled(outcome: Outcome) {
    OUTCOMES[outcome.index()].fetch_add(1, Ordering::Relaxed);
}

/// Records one attempt's duration.
pub(crate) fn attempted(elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    for (bound, n) in BUCKETS.iter().zip(&DURATION_BUCKETS) {
        if secs <= *bound {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
    DURATION_COUNT.fetch_add(1, Ordering::Relaxed);
    DURATION_SUM_MICROS.fetch_add(
        u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// The counters now.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Settled attempts by outcome (every outcome, zeros included).
    pub outcomes: [(Outcome, u64); 4],
    /// Attempts at or under each bound of [`BUCKETS`] (cumulative).
    pub buckets: [u64; BUCKETS.len()],
    /// Attempts.
    pub count: u64,
    /// Their total duration, in seconds.
    pub sum_secs: f64,
}

/// The counters of this process.
#[must_use]
pub fn snapshot() -> Snapshot {
    Snapshot {
        outcomes: Outcome::ALL.map(|o| (o, OUTCOMES[o.index()].load(Ordering::Relaxed))),
        buckets: std::array::from_fn(|i| DURATION_BUCKETS[i].load(Ordering::Relaxed)),
        count: DURATION_COUNT.load(Ordering::Relaxed),
        sum_secs: DURATION_SUM_MICROS.load(Ordering::Relaxed) as f64 / 1e6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_fill_cumulative_buckets_and_outcomes_count() {
        let before = snapshot();
        attempted(Duration::from_millis(30));
        settled(Outcome::Retried);
        let after = snapshot();
        assert_eq!(after.count, before.count + 1);
        // 30 ms: above 25 ms, within 50 ms and every bound after it.
        assert_eq!(after.buckets[2], before.buckets[2]);
        assert!(
            after.buckets[3..]
                .iter()
                .zip(&before.buckets[3..])
                .all(|(a, b)| *a == b + 1)
        );
        assert!(after.sum_secs >= before.sum_secs + 0.029);
        assert_eq!(after.outcomes[1].1, before.outcomes[1].1 + 1);
        assert_eq!(after.outcomes[1].0.as_str(), "retried");
    }
}
