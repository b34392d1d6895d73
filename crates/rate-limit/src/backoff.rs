//! Sign-in back-off, pure: how long a key (an account, a client address) is locked out
//! after so many failed sign-ins.

use std::time::Duration;

/// Exponential back-off over *attempts*, counted before the password is verified (an
/// attempt is reserved as a failure and refunded if it was not one): the first
/// `free_failures` attempts go through at once; reserving attempt number
/// `free_failures + k` (k ≥ 0) makes the next one wait `base · 2^k`, at most `max`.
/// So a burst gets exactly `free_failures` password checks, and after them one check
/// per (doubling) interval. Failures are forgotten `window` after the last one (an
/// account's at once on a success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Attempts allowed before the first wait.
    pub free_failures: u32,
    /// The first wait.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// How long failures are remembered after the last one.
    pub window: Duration,
}

impl BackoffPolicy {
    /// The wait before the next attempt once `failures` attempts are counted (`None`:
    /// the next one may go at once).
    #[must_use]
    pub fn lockout(&self, failures: u64) -> Option<Duration> {
        let over = failures.checked_sub(u64::from(self.free_failures))?;
        let doublings = u32::try_from(over).unwrap_or(u32::MAX).min(40);
        let base = u64::try_from(self.base.as_micros()).unwrap_or(u64::MAX);
        let lock = base.saturating_mul(1u64 << doublings);
        Some(Duration::from_micros(lock).min(self.max))
    }

    /// The four numbers the Redis script needs (free failures, base µs, max µs, window
    /// ms).
    pub(crate) fn script_args(&self) -> [String; 4] {
        [
            self.free_failures.to_string(),
            self.base.as_micros().to_string(),
            self.max.as_micros().to_string(),
            self.window.as_millis().to_string(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_after_the_free_failures_up_to_the_cap() {
        let policy = BackoffPolicy {
            free_failures: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
            window: Duration::from_secs(900),
        };
        let locks: Vec<Option<u64>> = (0..=9)
            .map(|n| policy.lockout(n).map(|d| d.as_secs()))
            .collect();
        // Three attempts at once; the third makes the fourth wait 1 s, then 2, 4, 8, 10.
        assert_eq!(
            locks,
            [
                None,
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(10),
                Some(10),
                Some(10)
            ]
        );
        assert_eq!(policy.lockout(u64::MAX), Some(Duration::from_secs(10)));
    }
}
