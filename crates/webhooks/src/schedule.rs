//! When a failed delivery is tried again: exponential back-off over about three days
//! (the schedule Svix uses, extended with 10-hour steps).

use std::time::Duration;

/// The wait before each attempt, the first immediate: 0, 5 s, 5 min, 30 min, 2 h, 5 h,
/// then 10 h six times — 12 attempts over 2 days 19 h 35 min.
pub const SCHEDULE: [Duration; 12] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The attempts a delivery gets before it has failed.
pub const MAX_ATTEMPTS: u32 = 12;

/// The wait after `attempts_made` failed attempts before the next one, `None` when that
/// was the last (the delivery has failed).
#[must_use]
pub fn next_delay(attempts_made: u32) -> Option<Duration> {
    SCHEDULE.get(usize::try_from(attempts_made).ok()?).copied()
}

/// What one attempt's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// 410 Gone: the receiver asks for no more; the endpoint is disabled.
    Gone,
    /// Anything else (or no answer): try again per the schedule.
    Retry,
}

/// The verdict on an HTTP status (`None`: no answer — refused, timed out).
#[must_use]
pub fn verdict(status: Option<u16>) -> Verdict {
    match status {
        Some(s) if (200..300).contains(&s) => Verdict::Delivered,
        Some(410) => Verdict::Gone,
        _ => Verdict::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_three_days_in_twelve_attempts() {
        let total: Duration = SCHEDULE.iter().sum();
        assert!(
            total > Duration::from_secs(2 * 86_400 + 12 * 3600),
            "{total:?}"
        );
        assert!(
            total < Duration::from_secs(3 * 86_400 + 12 * 3600),
            "{total:?}"
        );
        assert_eq!(next_delay(0), Some(Duration::ZERO));
        assert_eq!(next_delay(1), Some(Duration::from_secs(5)));
        assert_eq!(next_delay(2), Some(Duration::from_secs(300)));
        assert_eq!(
            next_delay(MAX_ATTEMPTS - 1),
            Some(Duration::from_secs(36_000))
        );
        assert_eq!(next_delay(MAX_ATTEMPTS), None);
        assert_eq!(SCHEDULE.len(), MAX_ATTEMPTS as usize);
        assert!(SCHEDULE.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(Some(200)), Verdict::Delivered);
        assert_eq!(verdict(Some(204)), Verdict::Delivered);
        assert_eq!(verdict(Some(410)), Verdict::Gone);
        assert_eq!(verdict(Some(404)), Verdict::Retry);
        assert_eq!(verdict(Some(500)), Verdict::Retry);
        assert_eq!(verdict(Some(301)), Verdict::Retry);
        assert_eq!(verdict(None), Verdict::Retry);
    }
}
