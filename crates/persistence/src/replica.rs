//! Replicas that know their lag: a background monitor measures how far the read
//! replica's replay is behind the primary, continuously, and takes the replica out of
//! the read path while it lags more than a threshold (back in once it has caught up
//! below half the threshold: hysteresis, so a lag hovering at the threshold does not
//! flap).
//!
//! Lag is measured by position, not by the replica's clock: each poll reads the
//! primary's current WAL position (`pg_current_wal_lsn()`) and the replica's replayed
//! position (`pg_last_wal_replay_lsn()`). A replica that has replayed everything the
//! primary had written is 0 behind, however long the primary has been idle (the
//! age of the last replayed transaction, `now() - pg_last_xact_replay_timestamp()`,
//! would grow on an idle primary). Otherwise the lag is how long ago the monitor first
//! saw the primary at a position the replica has still not replayed — accurate to
//! the poll interval, with no clocks compared between servers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

/// How the replica monitor behaves.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaPolicy {
    /// Above this lag, lag-tolerant reads go to the primary; they return to the replica
    /// once the lag is at most half of it.
    pub max_lag: Duration,
    /// How often the lag is measured.
    pub interval: Duration,
    /// Bound on each measurement (both servers); a replica that does not answer in time
    /// counts as unusable.
    pub timeout: Duration,
}

impl Default for ReplicaPolicy {
    fn default() -> Self {
        Self {
            max_lag: Duration::from_secs(5),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
        }
    }
}

/// What the monitor last saw, shared with every clone of the [`crate::Database`].
#[derive(Debug)]
pub(crate) struct ReplicaHealth {
    /// Whether lag-tolerant reads may use the replica.
    in_use: AtomicBool,
    /// The last measured lag in microseconds; `u64::MAX` when it could not be measured.
    lag_micros: AtomicU64,
    /// Whether a monitor runs (otherwise the lag is measured per scrape).
    monitored: AtomicBool,
}

impl Default for ReplicaHealth {
    fn default() -> Self {
        Self {
            in_use: AtomicBool::new(true),
            lag_micros: AtomicU64::new(0),
            monitored: AtomicBool::new(false),
        }
    }
}

impl ReplicaHealth {
    pub(crate) fn in_use(&self) -> bool {
        self.in_use.load(Ordering::Relaxed)
    }

    pub(crate) fn monitored(&self) -> bool {
        self.monitored.load(Ordering::Relaxed)
    }

    /// The last measured lag, `None` if the last measurement failed.
    pub(crate) fn lag(&self) -> Option<Duration> {
        match self.lag_micros.load(Ordering::Relaxed) {
            u64::MAX => None,
            m => Some(Duration::from_micros(m)),
        }
    }
}

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    /// Not a standby (e.g. a second primary): nothing to replay.
    NotInRecovery,
    /// The primary's write position and the replica's replay position (byte offsets).
    At { primary: u64, replayed: u64 },
}

/// The lag bookkeeping between polls: the primary positions seen and when, oldest
/// first, pruned as the replica replays them.
#[derive(Debug, Default)]
struct LagClock {
    pending: VecDeque<(Instant, u64)>,
}

/// Samples kept at most: enough for the oldest unreplayed one to decide the lag (newer
/// ones are dropped while full; the front is what matters).
const MAX_PENDING: usize = 4096;

impl LagClock {
    fn observe(&mut self, now: Instant, primary: u64, replayed: u64) -> Duration {
        while self
            .pending
            .front()
            .is_some_and(|(_, lsn)| *lsn <= replayed)
        {
            self.pending.pop_front();
        }
        if primary > replayed
            && self.pending.back().is_none_or(|(_, lsn)| *lsn < primary)
            && self.pending.len() < MAX_PENDING
        {
            self.pending.push_back((now, primary));
        }
        self.pending.front().map_or(Duration::ZERO, |(seen, _)| {
            now.saturating_duration_since(*seen)
        })
    }
}

/// The switch with hysteresis: out above `max`, back in at or below `max / 2`.
fn decide(in_use: bool, lag: Option<Duration>, max: Duration) -> bool {
    match lag {
        None => false,
        Some(lag) if in_use => lag <= max,
        Some(lag) => lag <= max / 2,
    }
}

fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

async fn text_of(conn: &DatabaseConnection, sql: &str) -> Result<Option<String>, DbErr> {
    let row = conn
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("replica position".into()))?;
    row.try_get::<Option<String>>("", "v")
}

async fn position(
    primary: &DatabaseConnection,
    replica: &DatabaseConnection,
) -> Result<Position, DbErr> {
    // The replica first: a primary position read afterwards is at least as new, so a
    // replica that has caught up is never reported behind.
    let replayed = text_of(
        replica,
        "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END AS v",
    )
    .await?;
    let Some(replayed) = replayed else {
        return Ok(Position::NotInRecovery);
    };
    let current = text_of(primary, "SELECT pg_current_wal_lsn()::text AS v")
        .await?
        .unwrap_or_default();
    match (parse_lsn(&current), parse_lsn(&replayed)) {
        (Some(primary), Some(replayed)) => Ok(Position::At { primary, replayed }),
        _ => Err(DbErr::Custom(format!(
            "unreadable WAL positions {current:?} / {replayed:?}"
        ))),
    }
}

/// Starts the monitor task (on the current tokio runtime). It ends when the last
/// [`crate::Database`] sharing `health` is dropped.
pub(crate) fn spawn(
    primary: DatabaseConnection,
    replica: DatabaseConnection,
    health: &Arc<ReplicaHealth>,
    policy: ReplicaPolicy,
) {
    health.monitored.store(true, Ordering::Relaxed);
    let weak: Weak<ReplicaHealth> = Arc::downgrade(health);
    tokio::spawn(async move {
        let mut clock = LagClock::default();
        let mut ticker = tokio::time::interval(policy.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(health) = weak.upgrade() else { return };
            let measured = tokio::time::timeout(policy.timeout, position(&primary, &replica)).await;
            let lag = match measured {
                Ok(Ok(Position::NotInRecovery)) => Some(Duration::ZERO),
                Ok(Ok(Position::At { primary, replayed })) => {
                    Some(clock.observe(Instant::now(), primary, replayed))
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "replica lag not measured");
                    None
                }
                Err(_) => {
                    tracing::debug!("replica lag not measured in time");
                    None
                }
            };
            health.lag_micros.store(
                lag.map_or(u64::MAX, |l| {
                    u64::try_from(l.as_micros()).unwrap_or(u64::MAX - 1)
                }),
                Ordering::Relaxed,
            );
            let was = health.in_use();
            let now = decide(was, lag, policy.max_lag);
            if now != was {
                health.in_use.store(now, Ordering::Relaxed);
                let lag_ms = lag.map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX));
                let max_lag_ms = u64::try_from(policy.max_lag.as_millis()).unwrap_or(u64::MAX);
                if now {
                    tracing::info!(
                        lag_ms,
                        max_lag_ms,
                        "replica caught up: lag-tolerant reads use the replica again"
                    );
                } else {
                    tracing::warn!(
                        lag_ms,
                        max_lag_ms,
                        "replica lagging or unreachable: lag-tolerant reads go to the primary"
                    );
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_as_byte_offsets() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("1/A"), Some((1 << 32) | 10));
        assert_eq!(parse_lsn("nope"), None);
    }

    #[test]
    fn a_caught_up_replica_has_no_lag_however_idle_the_primary() {
        let mut clock = LagClock::default();
        let t0 = Instant::now();
        assert_eq!(clock.observe(t0, 100, 100), Duration::ZERO);
        assert_eq!(
            clock.observe(t0 + Duration::from_secs(3600), 100, 100),
            Duration::ZERO
        );
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_position_not_yet_replayed() {
        let mut clock = LagClock::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(clock.observe(t0, 200, 100), Duration::ZERO);
        assert_eq!(clock.observe(t0 + s(1), 300, 100), s(1));
        assert_eq!(clock.observe(t0 + s(2), 300, 150), s(2));
        // 200 replayed: the oldest pending is 300, first seen at t0 + 1 s.
        assert_eq!(clock.observe(t0 + s(3), 300, 250), s(2));
        assert_eq!(clock.observe(t0 + s(4), 300, 300), Duration::ZERO);
    }

    #[test]
    fn the_switch_has_hysteresis() {
        let max = Duration::from_millis(1000);
        let ms = Duration::from_millis;
        assert!(decide(true, Some(ms(1000)), max));
        assert!(!decide(true, Some(ms(1001)), max));
        assert!(!decide(false, Some(ms(900)), max), "not back until half");
        assert!(decide(false, Some(ms(500)), max));
        assert!(!decide(true, None, max), "unmeasurable: out");
    }
}
