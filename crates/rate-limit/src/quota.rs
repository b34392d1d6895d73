//! [`Quota`]: so many requests per period, written `100/1m`.

use std::fmt;
use std::time::Duration;

/// The longest period a quota may have.
const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// At most `limit` requests per `period`, in a burst or spread out (GCRA: a request
/// is allowed while the bucket's theoretical arrival time is at most `period` ahead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: u32,
    period: Duration,
}

/// A quota that cannot be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// Not of the form `<requests>/<period>`.
    #[error(
        "{0:?} is not a quota: expected <requests>/<period>, e.g. 100/1m or 5/5m (units s, m, h), or off"
    )]
    Syntax(String),
    /// The limit is zero or the period outside 1 s ..= 24 h.
    #[error("{0:?} is out of range: 1 to 1000000 requests per 1s to 24h")]
    Range(String),
}

impl Quota {
    /// `limit` requests per `period`.
    ///
    /// # Errors
    /// [`QuotaError::Range`] unless `1 ≤ limit ≤ 1 000 000` and `1 s ≤ period ≤ 24 h`.
    pub fn new(limit: u32, period: Duration) -> Result<Self, QuotaError> {
        if !(1..=1_000_000).contains(&limit)
            || period < Duration::from_secs(1)
            || period > MAX_PERIOD
        {
            return Err(QuotaError::Range(format!("{limit}/{}s", period.as_secs())));
        }
        Ok(Self { limit, period })
    }

    /// Parses `100/1m`, `5/5m`, `1000/15m`, `10/30s`, `100/h` (a bare unit means one of
    /// it); `off` (or `none`, `0`) is `None`: no limit.
    ///
    /// # Errors
    /// [`QuotaError`] naming what was expected.
    pub fn parse(text: &str) -> Result<Option<Self>, QuotaError> {
        let text = text.trim();
        if matches!(text.to_ascii_lowercase().as_str(), "off" | "none" | "0") {
            return Ok(None);
        }
        let syntax = || QuotaError::Syntax(text.to_owned());
        let (limit, period) = text.split_once('/').ok_or_else(syntax)?;
        let limit: u32 = limit.trim().parse().map_err(|_| syntax())?;
        let period = period.trim();
        let unit_at = period
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(syntax)?;
        let (count, unit) = period.split_at(unit_at);
        let count: u64 = if count.is_empty() {
            1
        } else {
            count.parse().map_err(|_| syntax())?
        };
        let unit_secs = match unit {
            "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            _ => return Err(syntax()),
        };
        let secs = count.checked_mul(unit_secs).ok_or_else(syntax)?;
        Self::new(limit, Duration::from_secs(secs))
            .map(Some)
            .map_err(|_| QuotaError::Range(text.to_owned()))
    }

    /// A built-in default (in range by construction: checked by the policy's tests).
    pub(crate) const fn per_secs(limit: u32, secs: u64) -> Self {
        Self {
            limit,
            period: Duration::from_secs(secs),
        }
    }

    /// Requests allowed per period.
    #[must_use]
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The period.
    #[must_use]
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The emission interval in microseconds: one request's share of the period,
    /// rounded up.
    #[must_use]
    pub fn interval_us(&self) -> u64 {
        let period = u64::try_from(self.period.as_micros()).unwrap_or(u64::MAX);
        period.div_ceil(u64::from(self.limit))
    }

    /// How far ahead of now the theoretical arrival time may run, in microseconds:
    /// `limit` intervals (a full burst).
    #[must_use]
    pub fn capacity_us(&self) -> u64 {
        self.interval_us().saturating_mul(u64::from(self.limit))
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.period.as_secs();
        if secs.is_multiple_of(3600) {
            write!(f, "{}/{}h", self.limit, secs / 3600)
        } else if secs.is_multiple_of(60) {
            write!(f, "{}/{}m", self.limit, secs / 60)
        } else {
            write!(f, "{}/{}s", self.limit, secs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let q = |s| Quota::parse(s).expect("valid").expect("a quota");
        assert_eq!(
            q("100/1m"),
            Quota::new(100, Duration::from_secs(60)).expect("ok")
        );
        assert_eq!(q("5/5m").period(), Duration::from_secs(300));
        assert_eq!(q(" 1000 / 15m ").limit(), 1000);
        assert_eq!(q("10/30s").period(), Duration::from_secs(30));
        assert_eq!(q("100/h").period(), Duration::from_secs(3600));
        assert_eq!(q("7/2min").period(), Duration::from_secs(120));
        for off in ["off", "OFF", "none", "0"] {
            assert_eq!(Quota::parse(off), Ok(None));
        }
    }

    #[test]
    fn rejects_bad_quotas_with_the_expected_form() {
        for bad in ["100", "x/1m", "100/1d", "100/", "/1m", "-1/1m", "100/m5"] {
            let err = Quota::parse(bad).expect_err(bad);
            assert!(matches!(err, QuotaError::Syntax(_)), "{bad}: {err}");
            assert!(err.to_string().contains("e.g. 100/1m"), "{err}");
        }
        for bad in ["0/1m", "100/0s", "100/25h", "2000000/1h"] {
            assert!(
                matches!(Quota::parse(bad), Err(QuotaError::Range(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["100/1m", "5/5m", "1000/15m", "10/30s", "50/2h"] {
            let quota = Quota::parse(text).expect("valid").expect("a quota");
            assert_eq!(quota.to_string(), text);
        }
    }

    #[test]
    fn interval_and_capacity() {
        let q = Quota::new(100, Duration::from_secs(60)).expect("ok");
        assert_eq!(q.interval_us(), 600_000);
        assert_eq!(q.capacity_us(), 60_000_000);
        // Rounded up, so `limit` intervals never undershoot the period.
        let q = Quota::new(7, Duration::from_secs(1)).expect("ok");
        assert_eq!(q.interval_us(), 142_858);
        assert!(q.capacity_us() >= 1_000_000);
    }
}
