use time::OffsetDateTime;

/// The current time truncated to microseconds, the precision both backends store, so
/// a value written and read back compares equal.
#[must_use]
pub fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}
