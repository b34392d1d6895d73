//! The GCRA decision, pure: both stores run exactly this arithmetic (the Redis adapter in
//! Lua, on the same integers), so a decision does not depend on where it was taken.
//!
//! Each bucket keeps one number, its *theoretical arrival time* (TAT, microseconds since
//! the Unix epoch). A request costs one emission interval `T = period / limit`; it is
//! allowed when `max(TAT, now) + T - now ≤ limit · T` (the bucket may run at most one
//! period ahead), and then the TAT becomes `max(TAT, now) + T`. A request checks several
//! buckets at once (its tier and its endpoint class) and is allowed only if every one has
//! room; otherwise none of them is charged.

use std::time::Duration;

use crate::quota::Quota;

/// What the `RateLimit-*` headers say: the bucket closest to its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The bucket's limit (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Until the bucket is full again (`RateLimit-Reset`, in whole seconds rounded up).
    pub reset: Duration,
    /// Index of that bucket in the request's list.
    pub bucket: usize,
}

/// The outcome of one request against its buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed (every bucket had room).
    pub allowed: bool,
    /// For a refusal: how long until it would be allowed (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// The binding bucket: the refusing one with the longest wait, else the one with
    /// the fewest requests left. `None` when the request has no bucket.
    pub status: Option<Status>,
    /// The TATs to store when allowed (one per bucket), else the unchanged ones.
    pub new_tats: Vec<u64>,
}

impl Decision {
    /// A decision without any bucket: allowed, no headers.
    #[must_use]
    pub fn unlimited() -> Self {
        Self {
            allowed: true,
            retry_after: None,
            status: None,
            new_tats: Vec::new(),
        }
    }
}

/// Decides a request at `now_us` against `quotas[i]` whose stored TAT is `tats[i]`
/// (`None` or a time in the past: a full bucket). `tats` must be as long as `quotas`
/// (missing ones count as full).
#[must_use]
pub fn decide(now_us: u64, quotas: &[Quota], tats: &[Option<u64>]) -> Decision {
    if quotas.is_empty() {
        return Decision::unlimited();
    }
    let start: Vec<u64> = quotas
        .iter()
        .enumerate()
        .map(|(i, _)| tats.get(i).copied().flatten().unwrap_or(0).max(now_us))
        .collect();
    // The refusing bucket with the longest wait, if any.
    let mut refused: Option<(usize, u64)> = None;
    for (i, quota) in quotas.iter().enumerate() {
        let ahead = start[i] + quota.interval_us() - now_us;
        if ahead > quota.capacity_us() {
            let wait = ahead - quota.capacity_us();
            if refused.is_none_or(|(_, w)| wait > w) {
                refused = Some((i, wait));
            }
        }
    }
    if let Some((i, wait)) = refused {
        return Decision {
            allowed: false,
            retry_after: Some(Duration::from_micros(wait)),
            status: Some(Status {
                limit: quotas[i].limit(),
                remaining: 0,
                reset: Duration::from_micros(start[i] - now_us),
                bucket: i,
            }),
            new_tats: start,
        };
    }
    let new_tats: Vec<u64> = quotas
        .iter()
        .zip(&start)
        .map(|(quota, tat)| tat + quota.interval_us())
        .collect();
    let mut status: Option<Status> = None;
    for (i, quota) in quotas.iter().enumerate() {
        let ahead = new_tats[i] - now_us;
        let left = (quota.capacity_us() - ahead) / quota.interval_us();
        let remaining = u32::try_from(left).unwrap_or(u32::MAX).min(quota.limit());
        if status.is_none_or(|s| remaining < s.remaining) {
            status = Some(Status {
                limit: quota.limit(),
                remaining,
                reset: Duration::from_micros(ahead),
                bucket: i,
            });
        }
    }
    Decision {
        allowed: true,
        retry_after: None,
        status,
        new_tats,
    }
}

/// Whole seconds, rounded up (what `Retry-After` and `RateLimit-Reset` carry).
#[must_use]
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000;
    const NOW: u64 = 1_700_000_000 * SEC;

    fn quota(limit: u32, secs: u64) -> Quota {
        Quota::new(limit, Duration::from_secs(secs)).expect("valid quota")
    }

    /// Runs `n` requests at `now` against one bucket, threading its TAT; the decisions.
    fn run(q: Quota, tat: &mut Option<u64>, now: u64, n: usize) -> Vec<Decision> {
        (0..n)
            .map(|_| {
                let d = decide(now, &[q], &[*tat]);
                if d.allowed {
                    *tat = Some(d.new_tats[0]);
                }
                d
            })
            .collect()
    }

    #[test]
    fn a_full_bucket_allows_a_burst_of_limit_then_refuses() {
        let q = quota(5, 60);
        let mut tat = None;
        let ds = run(q, &mut tat, NOW, 6);
        let remaining: Vec<u32> = ds[..5]
            .iter()
            .map(|d| d.status.expect("status").remaining)
            .collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0]);
        assert!(ds[..5].iter().all(|d| d.allowed));
        let refused = &ds[5];
        assert!(!refused.allowed);
        // One interval (12 s) until a slot frees up; a full minute until the bucket is full.
        assert_eq!(refused.retry_after, Some(Duration::from_secs(12)));
        let status = refused.status.expect("status");
        assert_eq!((status.limit, status.remaining), (5, 0));
        assert_eq!(status.reset, Duration::from_secs(60));
    }

    #[test]
    fn refills_one_request_per_interval() {
        let q = quota(5, 60);
        let mut tat = None;
        let _ = run(q, &mut tat, NOW, 5);
        // 11.9 s later: still refused, 0.1 s to wait.
        let d = decide(NOW + 11_900_000, &[q], &[tat]);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_millis(100)));
        // 12 s later: one request, and it is the last.
        let d = decide(NOW + 12 * SEC, &[q], &[tat]);
        assert!(d.allowed);
        assert_eq!(d.status.expect("status").remaining, 0);
        // After a whole idle period the bucket is full again.
        let d = decide(NOW + 120 * SEC, &[q], &[tat]);
        assert_eq!(d.status.expect("status").remaining, 4);
        assert_eq!(d.new_tats[0], NOW + 132 * SEC);
    }

    #[test]
    fn several_buckets_are_all_or_nothing() {
        let tier = quota(100, 900);
        let class = quota(2, 60);
        let mut tats = [None, None];
        for expected_left in [1, 0] {
            let d = decide(NOW, &[tier, class], &tats);
            assert!(d.allowed);
            let s = d.status.expect("status");
            // The class bucket binds: fewest left.
            assert_eq!((s.bucket, s.limit, s.remaining), (1, 2, expected_left));
            tats = [Some(d.new_tats[0]), Some(d.new_tats[1])];
        }
        let before = tats;
        let d = decide(NOW, &[tier, class], &tats);
        assert!(!d.allowed);
        assert_eq!(d.status.expect("status").bucket, 1);
        assert_eq!(d.retry_after, Some(Duration::from_secs(30)));
        // The refusal charges neither bucket.
        assert_eq!(
            d.new_tats,
            vec![before[0].unwrap_or(NOW), before[1].unwrap_or(NOW)]
        );
    }

    #[test]
    fn the_longest_wait_is_reported() {
        let short = quota(1, 10);
        let long = quota(1, 60);
        let d = decide(
            NOW,
            &[short, long],
            &[Some(NOW + 10 * SEC), Some(NOW + 60 * SEC)],
        );
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_secs(60)));
        assert_eq!(d.status.expect("status").bucket, 1);
    }

    #[test]
    fn a_stale_tat_counts_as_a_full_bucket_and_no_bucket_is_unlimited() {
        let q = quota(3, 60);
        let d = decide(NOW, &[q], &[Some(NOW - 3600 * SEC)]);
        assert_eq!(d.status.expect("status").remaining, 2);
        assert_eq!(decide(NOW, &[], &[]), Decision::unlimited());
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::from_millis(2001)), 3);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }
}
