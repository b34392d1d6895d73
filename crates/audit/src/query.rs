//! Reading the log: filters, cursor pagination and statistics.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::action::Action;
use crate::event::{Actor, AuditEvent, Category, ChangeType, truncate_to_micros, unix_micros};
use crate::scope::ChainId;

/// A time range whose start is after its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("time range starts ({from}) after it ends ({to})")]
pub struct InvalidTimeRange {
    /// Start of the range.
    pub from: OffsetDateTime,
    /// End of the range.
    pub to: OffsetDateTime,
}

/// A half-open time range `[from, to)`, in UTC microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeRange {
    #[serde(with = "time::serde::rfc3339")]
    from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    to: OffsetDateTime,
}

impl TimeRange {
    /// The range `[from, to)`.
    ///
    /// # Errors
    /// [`InvalidTimeRange`] if `from > to`.
    pub fn new(from: OffsetDateTime, to: OffsetDateTime) -> Result<Self, InvalidTimeRange> {
        let (from, to) = (truncate_to_micros(from), truncate_to_micros(to));
        if from > to {
            return Err(InvalidTimeRange { from, to });
        }
        Ok(Self { from, to })
    }

    /// Inclusive start.
    #[must_use]
    pub const fn from(&self) -> OffsetDateTime {
        self.from
    }

    /// Exclusive end.
    #[must_use]
    pub const fn to(&self) -> OffsetDateTime {
        self.to
    }

    /// Whether `at` is in the range.
    #[must_use]
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        self.from <= at && at < self.to
    }
}

/// Which events to list. Every set criterion must match (AND).
///
/// The tenant is a chain: one query never crosses tenants. Build with
/// [`AuditFilter::new`] and struct update syntax:
/// `AuditFilter { category: Some(Category::Activity), ..AuditFilter::new(chain) }`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditFilter {
    /// The tenant whose log is read.
    pub tenant: ChainId,
    /// Only events by this actor.
    pub actor: Option<Actor>,
    /// Only this action.
    pub action: Option<Action>,
    /// Only this entity type.
    pub entity_type: Option<String>,
    /// Only this entity id.
    pub entity_id: Option<String>,
    /// Only this change type.
    pub change_type: Option<ChangeType>,
    /// Only audit or only activity events.
    pub category: Option<Category>,
    /// Only events at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Only events before this time.
    pub to: Option<OffsetDateTime>,
}

impl AuditFilter {
    /// All events of `tenant`.
    #[must_use]
    pub const fn new(tenant: ChainId) -> Self {
        Self {
            tenant,
            actor: None,
            action: None,
            entity_type: None,
            entity_id: None,
            change_type: None,
            category: None,
            from: None,
            to: None,
        }
    }

    /// Checks the filter is satisfiable as a range.
    ///
    /// # Errors
    /// [`InvalidTimeRange`] if `from > to`.
    pub fn validate(&self) -> Result<(), InvalidTimeRange> {
        match (self.from, self.to) {
            (Some(from), Some(to)) if from > to => Err(InvalidTimeRange { from, to }),
            _ => Ok(()),
        }
    }

    /// Whether `event` matches (the reference semantics adapters implement in SQL).
    #[must_use]
    pub fn matches(&self, event: &AuditEvent) -> bool {
        let e = &event.body;
        event.chain() == self.tenant
            && self.actor.is_none_or(|a| a == e.actor)
            && self.action.as_ref().is_none_or(|a| *a == e.action)
            && self
                .entity_type
                .as_ref()
                .is_none_or(|t| *t == e.entity_type)
            && self.entity_id.as_ref().is_none_or(|i| *i == e.entity_id)
            && self.change_type.is_none_or(|c| c == e.change_type)
            && self.category.is_none_or(|c| c == e.category)
            && self.from.is_none_or(|from| e.occurred_at >= from)
            && self.to.is_none_or(|to| e.occurred_at < to)
    }
}

/// Why a cursor string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor this service produced (wrong length or characters).
    #[error("malformed cursor")]
    Malformed,
    /// A cursor of an unknown format version.
    #[error("unsupported cursor version {0}")]
    UnsupportedVersion(u8),
    /// The cursor's time is not representable.
    #[error("cursor time out of range")]
    OutOfRange,
}

/// Opaque position in a listing ordered newest first by `(occurred_at, id)`.
///
/// Encoded as 50 lowercase hex characters (URL-safe): version byte `1`, the time in µs
/// since the epoch (8 bytes big-endian), the event id (16 bytes). Decoding validates all
/// of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AuditCursor {
    occurred_at: OffsetDateTime,
    id: Uuid,
}

impl AuditCursor {
    const VERSION: u8 = 1;
    const LEN: usize = 25;

    /// The cursor after `event`: the next page starts with the event that follows it.
    #[must_use]
    pub fn after(event: &AuditEvent) -> Self {
        Self::new(event.body.occurred_at, event.id())
    }

    /// A cursor at `(occurred_at, id)`.
    #[must_use]
    pub fn new(occurred_at: OffsetDateTime, id: Uuid) -> Self {
        Self {
            occurred_at: truncate_to_micros(occurred_at),
            id,
        }
    }

    /// Time of the last event of the previous page.
    #[must_use]
    pub const fn occurred_at(&self) -> OffsetDateTime {
        self.occurred_at
    }

    /// Id of the last event of the previous page.
    #[must_use]
    pub const fn id(&self) -> Uuid {
        self.id
    }

    /// Whether `event` comes after the cursor in newest-first order, i.e.
    /// `(occurred_at, id) < (cursor.occurred_at, cursor.id)`.
    #[must_use]
    pub fn admits(&self, event: &AuditEvent) -> bool {
        (event.body.occurred_at, event.id()) < (self.occurred_at, self.id)
    }

    /// The URL-safe string form.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; Self::LEN];
        bytes[0] = Self::VERSION;
        bytes[1..9].copy_from_slice(&unix_micros(self.occurred_at).to_be_bytes());
        bytes[9..].copy_from_slice(self.id.as_bytes());
        hex::encode(bytes)
    }

    /// Parses the string form.
    ///
    /// # Errors
    /// [`CursorError`] if `s` is not a valid cursor.
    pub fn decode(s: &str) -> Result<Self, CursorError> {
        if s.len() != Self::LEN * 2 {
            return Err(CursorError::Malformed);
        }
        let mut bytes = [0u8; Self::LEN];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| CursorError::Malformed)?;
        if bytes[0] != Self::VERSION {
            return Err(CursorError::UnsupportedVersion(bytes[0]));
        }
        let mut micros = [0u8; 8];
        micros.copy_from_slice(&bytes[1..9]);
        let nanos = i128::from(i64::from_be_bytes(micros)) * 1_000;
        let occurred_at = OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|_| CursorError::OutOfRange)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[9..]);
        Ok(Self {
            occurred_at,
            id: Uuid::from_bytes(id),
        })
    }
}

impl fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl FromStr for AuditCursor {
    type Err = CursorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::decode(s)
    }
}

impl TryFrom<String> for AuditCursor {
    type Error = CursorError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::decode(&value)
    }
}

impl From<AuditCursor> for String {
    fn from(cursor: AuditCursor) -> Self {
        cursor.encode()
    }
}

/// Which page to return: at most `limit` events after `cursor` (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    limit: u32,
    cursor: Option<AuditCursor>,
}

impl PageRequest {
    /// Page size when none is asked for.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Largest page size.
    pub const MAX_LIMIT: u32 = 200;

    /// A page of `limit` events (clamped to `1..=MAX_LIMIT`) after `cursor`.
    #[must_use]
    pub fn new(limit: u32, cursor: Option<AuditCursor>) -> Self {
        Self {
            limit: limit.clamp(1, Self::MAX_LIMIT),
            cursor,
        }
    }

    /// The first page, of `limit` events.
    #[must_use]
    pub fn first(limit: u32) -> Self {
        Self::new(limit, None)
    }

    /// The page size.
    #[must_use]
    pub const fn limit(&self) -> u32 {
        self.limit
    }

    /// Where the page starts (`None`: the newest event).
    #[must_use]
    pub const fn cursor(&self) -> Option<AuditCursor> {
        self.cursor
    }

    /// How many rows an adapter should fetch to know whether another page follows
    /// (`limit + 1`; see [`Page::from_overfetch`]).
    #[must_use]
    pub const fn fetch_limit(&self) -> u32 {
        self.limit + 1
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::first(Self::DEFAULT_LIMIT)
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Cursor of the next page; `None` on the last page.
    pub next_cursor: Option<AuditCursor>,
    /// Total number of matching items, where cheap to count.
    pub total: Option<u64>,
}

impl Page<AuditEvent> {
    /// Builds a page from up to [`PageRequest::fetch_limit`] events (newest first): if
    /// more than `limit` came back, the extra one is dropped and a next cursor is set.
    #[must_use]
    pub fn from_overfetch(
        mut items: Vec<AuditEvent>,
        page: &PageRequest,
        total: Option<u64>,
    ) -> Self {
        let limit = usize::try_from(page.limit()).unwrap_or(usize::MAX);
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(AuditCursor::after)
        } else {
            None
        };
        Self {
            items,
            next_cursor,
            total,
        }
    }
}

/// Number of events of one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionCount {
    /// The action.
    pub action: Action,
    /// Number of events.
    pub count: u64,
}

time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

/// Number of events on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCount {
    /// The day (UTC), `YYYY-MM-DD` in JSON.
    #[serde(with = "iso_date")]
    pub day: Date,
    /// Number of events.
    pub count: u64,
}

/// Events of one UTC day, per category (the per-day activity timeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryDayCount {
    /// The day (UTC), `YYYY-MM-DD` in JSON.
    #[serde(with = "iso_date")]
    pub day: Date,
    /// Audit events (changes).
    pub audit: u64,
    /// Activity events (sign-ins, exports, …).
    pub activity: u64,
}

impl CategoryDayCount {
    /// Both categories together.
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.audit + self.activity
    }

    /// Counts the events matching `filter` per UTC day and category, oldest day first;
    /// days without a matching event are omitted (the reference semantics; adapters
    /// compute the same with `GROUP BY`).
    #[must_use]
    pub fn from_events<'a>(
        filter: &AuditFilter,
        events: impl IntoIterator<Item = &'a AuditEvent>,
    ) -> Vec<Self> {
        let mut days: BTreeMap<Date, Self> = BTreeMap::new();
        for event in events.into_iter().filter(|e| filter.matches(e)) {
            let day = event.body.occurred_at.to_offset(UtcOffset::UTC).date();
            let entry = days.entry(day).or_insert(Self {
                day,
                audit: 0,
                activity: 0,
            });
            match event.body.category {
                Category::Audit => entry.audit += 1,
                Category::Activity => entry.activity += 1,
            }
        }
        days.into_values().collect()
    }
}

/// Aggregates of a tenant's log over a time range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStats {
    /// The range covered.
    pub range: TimeRange,
    /// Number of events in the range.
    pub total: u64,
    /// Per action, most frequent first (ties by action name).
    pub per_action: Vec<ActionCount>,
    /// Per UTC day, oldest first; days without events are omitted.
    pub per_day: Vec<DayCount>,
}

impl AuditStats {
    /// Computes the statistics of the `events` inside `range` (the reference semantics;
    /// adapters compute the same with `GROUP BY`).
    #[must_use]
    pub fn from_events<'a>(
        range: TimeRange,
        events: impl IntoIterator<Item = &'a AuditEvent>,
    ) -> Self {
        let mut total = 0;
        let mut per_action: BTreeMap<&Action, u64> = BTreeMap::new();
        let mut per_day: BTreeMap<Date, u64> = BTreeMap::new();
        for event in events
            .into_iter()
            .filter(|e| range.contains(e.body.occurred_at))
        {
            total += 1;
            *per_action.entry(&event.body.action).or_default() += 1;
            let day = event.body.occurred_at.to_offset(UtcOffset::UTC).date();
            *per_day.entry(day).or_default() += 1;
        }
        let mut per_action: Vec<_> = per_action
            .into_iter()
            .map(|(action, count)| ActionCount {
                action: action.clone(),
                count,
            })
            .collect();
        per_action.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.action.cmp(&b.action)));
        Self {
            range,
            total,
            per_action,
            per_day: per_day
                .into_iter()
                .map(|(day, count)| DayCount { day, count })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ORG, chain_of};
    use time::macros::{date, datetime};

    #[test]
    fn cursor_round_trips() {
        let cursor = AuditCursor::new(datetime!(2025-02-03 04:05:06.789012 UTC), Uuid::now_v7());
        let s = cursor.encode();
        assert_eq!(s.len(), 50);
        assert!(s.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(AuditCursor::decode(&s), Ok(cursor));
        let json = serde_json::to_string(&cursor).expect("serialize");
        assert_eq!(
            serde_json::from_str::<AuditCursor>(&json).expect("parse"),
            cursor
        );
        let before_epoch = AuditCursor::new(datetime!(1960-01-01 0:00 UTC), Uuid::nil());
        assert_eq!(before_epoch.to_string().parse(), Ok(before_epoch));
    }

    #[test]
    fn cursor_decode_validates() {
        let good = AuditCursor::new(datetime!(2025-01-01 0:00 UTC), Uuid::nil()).encode();
        assert_eq!(AuditCursor::decode(""), Err(CursorError::Malformed));
        assert_eq!(AuditCursor::decode(&good[2..]), Err(CursorError::Malformed));
        assert_eq!(
            AuditCursor::decode(&format!("zz{}", &good[2..])),
            Err(CursorError::Malformed)
        );
        assert_eq!(
            AuditCursor::decode(&format!("02{}", &good[2..])),
            Err(CursorError::UnsupportedVersion(2))
        );
        let far = format!("017fffffffffffffff{}", &good[18..]);
        assert_eq!(AuditCursor::decode(&far), Err(CursorError::OutOfRange));
        assert!(serde_json::from_str::<AuditCursor>("\"nope\"").is_err());
    }

    #[test]
    fn pages_walk_the_log_newest_first() {
        let mut events = chain_of(ORG, 7);
        events.reverse();
        let filter = AuditFilter::new(ChainId::Org(ORG));
        let mut page = PageRequest::first(3);
        let mut seen = Vec::new();
        loop {
            let rows: Vec<_> = events
                .iter()
                .filter(|e| filter.matches(e) && page.cursor().is_none_or(|c| c.admits(e)))
                .take(page.fetch_limit() as usize)
                .cloned()
                .collect();
            let result = Page::from_overfetch(rows, &page, None);
            seen.extend(result.items.iter().map(|e| e.seq));
            match result.next_cursor {
                Some(cursor) => page = PageRequest::new(3, Some(cursor)),
                None => break,
            }
        }
        assert_eq!(seen, [7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn page_request_clamps() {
        assert_eq!(PageRequest::first(0).limit(), 1);
        assert_eq!(PageRequest::first(10_000).limit(), PageRequest::MAX_LIMIT);
        assert_eq!(PageRequest::default().limit(), PageRequest::DEFAULT_LIMIT);
    }

    #[test]
    fn filter_matches_every_criterion() {
        let events = chain_of(ORG, 4);
        let e = &events[1];
        let all = AuditFilter::new(ChainId::Org(ORG));
        assert!(events.iter().all(|e| all.matches(e)));
        assert!(!AuditFilter::new(ChainId::Platform).matches(e));
        let exact = AuditFilter {
            actor: Some(e.body.actor),
            action: Some(e.body.action.clone()),
            entity_type: Some(e.body.entity_type.clone()),
            entity_id: Some(e.body.entity_id.clone()),
            change_type: Some(e.body.change_type),
            category: Some(e.body.category),
            from: Some(e.body.occurred_at),
            to: Some(e.body.occurred_at + time::Duration::microseconds(1)),
            ..all.clone()
        };
        assert_eq!(exact.validate(), Ok(()));
        let hits: Vec<_> = events
            .iter()
            .filter(|e| exact.matches(e))
            .map(|e| e.seq)
            .collect();
        assert_eq!(hits, [2]);
        let upto = AuditFilter {
            to: Some(e.body.occurred_at),
            ..all.clone()
        };
        assert!(!upto.matches(e), "`to` is exclusive");
        let reversed = AuditFilter {
            from: exact.to,
            to: exact.from,
            ..all
        };
        assert!(reversed.validate().is_err());
    }

    #[test]
    fn stats_count_per_action_and_day() {
        let events = chain_of(ORG, 30);
        let range = TimeRange::new(
            datetime!(2025-01-01 0:00 UTC),
            datetime!(2025-01-02 0:00 UTC),
        )
        .expect("range");
        let stats = AuditStats::from_events(range, &events);
        let in_range = events
            .iter()
            .filter(|e| range.contains(e.body.occurred_at))
            .count();
        assert_eq!(stats.total, in_range as u64);
        assert_eq!(
            stats.per_action.iter().map(|a| a.count).sum::<u64>(),
            stats.total
        );
        assert!(
            stats
                .per_action
                .windows(2)
                .all(|w| w[0].count >= w[1].count)
        );
        assert_eq!(
            stats.per_day,
            [DayCount {
                day: date!(2025 - 01 - 01),
                count: stats.total
            }]
        );
        let json = serde_json::to_value(&stats).expect("serialize");
        assert_eq!(json["per_day"][0]["day"], "2025-01-01");
        assert!(TimeRange::new(range.to(), range.from()).is_err());
    }

    #[test]
    fn daily_counts_split_categories_per_utc_day() {
        use crate::testkit::T0;
        let mut events = chain_of(ORG, 6);
        // Two days: 23:30 and 00:30 fall on different UTC days.
        let times = [
            T0 - time::Duration::minutes(30),
            T0 - time::Duration::minutes(30),
            T0 + time::Duration::minutes(30),
            T0 + time::Duration::minutes(30),
            T0 + time::Duration::minutes(30),
            T0 + time::Duration::days(3),
        ];
        for (i, (e, t)) in events.iter_mut().zip(times).enumerate() {
            e.body.occurred_at = t;
            if i % 2 == 1 {
                e.body.category = Category::Activity;
            }
        }
        let filter = AuditFilter {
            to: Some(T0 + time::Duration::days(2)),
            ..AuditFilter::new(ChainId::Org(ORG))
        };
        let days = CategoryDayCount::from_events(&filter, &events);
        assert_eq!(
            days,
            [
                CategoryDayCount {
                    day: date!(2024 - 12 - 31),
                    audit: 1,
                    activity: 1
                },
                CategoryDayCount {
                    day: date!(2025 - 01 - 01),
                    audit: 2,
                    activity: 1
                },
            ]
        );
        assert_eq!(days[1].total(), 3);
        let json = serde_json::to_value(days[0]).expect("serialize");
        assert_eq!(json["day"], "2024-12-31");
    }
}
