//! The adapter's private view of the two audit tables, and the exact conversion between
//! stored rows and domain events on both backends.
//!
//! # Storage formats
//! | column | PostgreSQL | SQLite |
//! |---|---|---|
//! | ids (`id`, `org_id`, `district_id`, `actor_id`) | `uuid` | 16-byte blob (as SeaORM binds UUIDs) |
//! | `occurred_at`, `updated_at` | `timestamptz` | fixed-width UTC text `YYYY-MM-DDTHH:MM:SS.ffffffZ` |
//! | `old_value`, `new_value` | `jsonb` | JSON text |
//! | `prev_hash`, `hash` | 64 lowercase hex characters | same |
//! | `sealed` (sealed personal fields, `NULL` when none) | `jsonb` array | JSON text |
//!
//! A field held by a sealed part is stored as `NULL` in its own column (the event is
//! stored *closed*, see [`audit::AuditEvent::closed`]); a row that has a value there
//! anyway is reported as corrupt rather than shown.
//!
//! SQLite compares text byte by byte, so times are written with exactly six fractional
//! digits and a `Z` suffix: lexicographic order is then chronological order, which the
//! keyset pagination and the range filters rely on. (The driver's own RFC 3339 encoding
//! trims trailing zeros, so `…:00.5Z` would sort before `…:00Z`.)

use std::fmt;

use audit::{
    Action, Actor, AuditEvent, Category, ChainId, ChangeType, Hash32, NewAuditEvent, SealedPart,
    TenantScope,
};
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{DbBackend, DeriveIden, QueryResult, Value};
use serde_json::Value as Json;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// `audit_events`.
#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum AuditEvents {
    Table,
    ChainId,
    Seq,
    Id,
    OrgId,
    DistrictId,
    ActorKind,
    ActorId,
    Action,
    Category,
    EntityType,
    EntityId,
    ChangeType,
    OldValue,
    NewValue,
    Ip,
    UserAgent,
    RequestId,
    OccurredAt,
    PrevHash,
    Hash,
    Sealed,
}

impl AuditEvents {
    /// Every column of a row, in the order [`event_from_row`] reads them.
    pub(crate) const COLUMNS: [Self; 21] = [
        Self::ChainId,
        Self::Seq,
        Self::Id,
        Self::OrgId,
        Self::DistrictId,
        Self::ActorKind,
        Self::ActorId,
        Self::Action,
        Self::Category,
        Self::EntityType,
        Self::EntityId,
        Self::ChangeType,
        Self::OldValue,
        Self::NewValue,
        Self::Ip,
        Self::UserAgent,
        Self::RequestId,
        Self::OccurredAt,
        Self::PrevHash,
        Self::Hash,
        Self::Sealed,
    ];
}

/// `audit_chain_heads`.
#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum AuditChainHeads {
    Table,
    ChainId,
    Seq,
    Hash,
    UpdatedAt,
}

/// Column limits of the migration (`varchar(n)`, in characters on PostgreSQL).
pub(crate) mod limits {
    pub(crate) const ENTITY_TYPE: usize = 64;
    pub(crate) const ENTITY_ID: usize = 128;
    pub(crate) const ACTION: usize = 100;
    pub(crate) const IP: usize = 64;
    pub(crate) const USER_AGENT: usize = 512;
    pub(crate) const REQUEST_ID: usize = 64;
}

const SQLITE_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Whether `at` can be stored in the fixed-width SQLite text form (years 1–9999).
pub(crate) fn storable_year(at: OffsetDateTime) -> bool {
    (1..=9999).contains(&at.to_offset(UtcOffset::UTC).year())
}

/// The fixed-width SQLite text form of `at` (UTC, six fractional digits). Times outside
/// the storable years map to strings below or above every stored time, so range bounds
/// keep their meaning.
pub(crate) fn sqlite_time_text(at: OffsetDateTime) -> String {
    let utc = at.to_offset(UtcOffset::UTC);
    if utc.year() < 1 {
        return "0".to_owned();
    }
    if utc.year() > 9999 {
        return ":".to_owned();
    }
    utc.format(SQLITE_TIME).unwrap_or_else(|_| ":".to_owned())
}

/// A time as a bind value for `backend`.
pub(crate) fn time_value(backend: DbBackend, at: OffsetDateTime) -> Value {
    match backend {
        DbBackend::Sqlite => Value::String(Some(sqlite_time_text(at))),
        _ => Value::TimeDateTimeWithTimeZone(Some(at.to_offset(UtcOffset::UTC))),
    }
}

/// A time as an SQL expression for `backend`.
pub(crate) fn time_expr(backend: DbBackend, at: OffsetDateTime) -> SimpleExpr {
    Expr::val(time_value(backend, at))
}

/// An optional JSON value as a bind value for `backend` (`jsonb` on PostgreSQL, text on
/// SQLite). `None` is SQL `NULL`; `Some(Json::Null)` is the JSON literal `null`.
pub(crate) fn json_value(backend: DbBackend, value: Option<&Json>) -> Value {
    json_owned(backend, value.cloned())
}

/// As [`json_value`], taking the value.
pub(crate) fn json_owned(backend: DbBackend, value: Option<Json>) -> Value {
    match backend {
        DbBackend::Sqlite => Value::String(value.map(|v| v.to_string())),
        _ => Value::Json(value.map(Box::new)),
    }
}

/// A stored row that cannot be turned back into a domain value: the table was edited
/// outside the adapter (or is corrupt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit row {location} is unreadable: column {column}: {detail}")]
pub struct CorruptRow {
    /// Where the row is (`chain_id`/`seq`, or the event id when known).
    pub location: RowLocation,
    /// The offending column.
    pub column: &'static str,
    /// What is wrong with it.
    pub detail: String,
}

/// Identifies a stored row in error reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowLocation {
    /// The row's `chain_id` column, if readable.
    pub chain_id: Option<String>,
    /// The row's `seq` column, if readable.
    pub seq: Option<i64>,
    /// The row's `id` column, if readable.
    pub id: Option<Uuid>,
}

impl fmt::Display for RowLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chain = self.chain_id.as_deref().unwrap_or("?");
        match (self.seq, self.id) {
            (Some(seq), Some(id)) => write!(f, "{chain}#{seq} ({id})"),
            (Some(seq), None) => write!(f, "{chain}#{seq}"),
            (None, Some(id)) => write!(f, "{chain} ({id})"),
            (None, None) => f.write_str(chain),
        }
    }
}

struct RowReader<'a> {
    row: &'a QueryResult,
    backend: DbBackend,
    location: RowLocation,
}

impl RowReader<'_> {
    fn corrupt(&self, column: &'static str, detail: impl fmt::Display) -> CorruptRow {
        CorruptRow {
            location: self.location.clone(),
            column,
            detail: detail.to_string(),
        }
    }

    fn get<T: sea_orm::TryGetable>(&self, column: &'static str) -> Result<T, CorruptRow> {
        self.row
            .try_get::<T>("", column)
            .map_err(|e| self.corrupt(column, e))
    }

    fn time(&self, column: &'static str) -> Result<OffsetDateTime, CorruptRow> {
        match self.backend {
            DbBackend::Sqlite => {
                let text: String = self.get(column)?;
                OffsetDateTime::parse(&text, &Rfc3339)
                    .map(|t| t.to_offset(UtcOffset::UTC))
                    .map_err(|e| self.corrupt(column, format!("{e}: {text:?}")))
            }
            _ => Ok(self
                .get::<OffsetDateTime>(column)?
                .to_offset(UtcOffset::UTC)),
        }
    }

    fn json(&self, column: &'static str) -> Result<Option<Json>, CorruptRow> {
        match self.backend {
            DbBackend::Sqlite => self
                .get::<Option<String>>(column)?
                .map(|text| serde_json::from_str(&text).map_err(|e| self.corrupt(column, e)))
                .transpose(),
            _ => self.get(column),
        }
    }

    fn hash(&self, column: &'static str) -> Result<Hash32, CorruptRow> {
        let text: String = self.get(column)?;
        // Only the canonical (lowercase) form is accepted: the stored text is what a
        // reader sees, and two spellings of one hash must not both verify.
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(self.corrupt(column, "hash is not lowercase hex"));
        }
        text.parse().map_err(|e| self.corrupt(column, e))
    }

    fn seq(&self) -> Result<u64, CorruptRow> {
        let seq: i64 = self.get("seq")?;
        u64::try_from(seq).map_err(|_| self.corrupt("seq", format!("negative seq {seq}")))
    }
}

/// Rebuilds a domain event from a full `audit_events` row.
///
/// The event's scope comes from `org_id`/`district_id` (its chain derives from them); a
/// row whose `chain_id` column disagrees is still returned, so that the verifier reports
/// it as [`audit::BreakKind::WrongChain`].
pub(crate) fn event_from_row(
    row: &QueryResult,
    backend: DbBackend,
) -> Result<AuditEvent, CorruptRow> {
    let mut r = RowReader {
        row,
        backend,
        location: RowLocation::default(),
    };
    r.location.chain_id = r.get::<String>("chain_id").ok();
    r.location.seq = r.get::<i64>("seq").ok();
    r.location.id = r.get::<Uuid>("id").ok();

    let id: Uuid = r.get("id")?;
    let seq = r.seq()?;
    let scope = TenantScope {
        org_id: r.get("org_id")?,
        district_id: r.get("district_id")?,
    };
    let actor_kind: String = r.get("actor_kind")?;
    let actor = Actor::from_parts(&actor_kind, r.get("actor_id")?)
        .map_err(|e| r.corrupt("actor_kind", e))?;
    let action = Action::new(r.get::<String>("action")?).map_err(|e| r.corrupt("action", e))?;
    let category: Category = r
        .get::<String>("category")?
        .parse()
        .map_err(|e| r.corrupt("category", e))?;
    let change_type: ChangeType = r
        .get::<String>("change_type")?
        .parse()
        .map_err(|e| r.corrupt("change_type", e))?;
    // Read as text (see `log::select_events`) and parsed into the parts directly.
    let sealed: Vec<SealedPart> = r
        .get::<Option<String>>("sealed")?
        .map(|text| serde_json::from_str(&text).map_err(|e| r.corrupt("sealed", e)))
        .transpose()?
        .unwrap_or_default();
    let body = NewAuditEvent {
        id,
        scope,
        actor,
        action,
        category,
        entity_type: r.get("entity_type")?,
        entity_id: r.get("entity_id")?,
        change_type,
        old_value: r.json("old_value")?,
        new_value: r.json("new_value")?,
        ip: r.get("ip")?,
        user_agent: r.get("user_agent")?,
        request_id: r.get("request_id")?,
        occurred_at: r.time("occurred_at")?,
    };
    let event = AuditEvent {
        body,
        seq,
        prev_hash: r.hash("prev_hash")?,
        hash: r.hash("hash")?,
        sealed,
    };
    if event.stores_a_sealed_field() {
        return Err(r.corrupt("sealed", "a sealed field also has a stored value"));
    }
    Ok(event)
}

/// A row of `audit_chain_heads`: `(chain_id, seq, hash)`.
pub(crate) struct HeadRow {
    pub(crate) chain_id: String,
    pub(crate) seq: u64,
    pub(crate) hash: Hash32,
}

/// Reads `chain_id`, `seq` and `hash` of a head row (or of a `RETURNING` clause, where
/// `chain_id` may be absent and is then taken from `chain`).
pub(crate) fn head_from_row(
    row: &QueryResult,
    backend: DbBackend,
    chain: Option<ChainId>,
) -> Result<HeadRow, CorruptRow> {
    let mut r = RowReader {
        row,
        backend,
        location: RowLocation::default(),
    };
    let chain_id = match chain {
        Some(chain) => chain.to_string(),
        None => r.get("chain_id")?,
    };
    r.location.chain_id = Some(chain_id.clone());
    Ok(HeadRow {
        seq: r.seq()?,
        hash: r.hash("hash")?,
        chain_id,
    })
}

/// The `chain_id` column of a head row as a domain chain id.
pub(crate) fn parse_chain(chain_id: &str) -> Result<ChainId, CorruptRow> {
    chain_id.parse().map_err(|e: audit::ParseError| CorruptRow {
        location: RowLocation {
            chain_id: Some(chain_id.to_owned()),
            ..RowLocation::default()
        },
        column: "chain_id",
        detail: e.to_string(),
    })
}

/// `seq` as stored (`bigint`).
pub(crate) fn seq_value(seq: u64) -> Option<i64> {
    i64::try_from(seq).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sqlite_text_sorts_chronologically() {
        let times = [
            datetime!(1999-12-31 23:59:59.999999 UTC),
            datetime!(2025-01-01 00:00:00 UTC),
            datetime!(2025-01-01 00:00:00.000001 UTC),
            datetime!(2025-01-01 00:00:00.5 UTC),
            datetime!(2025-01-01 00:00:01 UTC),
            datetime!(2025-01-01 03:00:01 +02:00),
        ];
        let texts: Vec<_> = times.iter().map(|t| sqlite_time_text(*t)).collect();
        assert_eq!(texts[1], "2025-01-01T00:00:00.000000Z");
        assert_eq!(texts[5], "2025-01-01T01:00:01.000000Z");
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(sorted, texts);
        for (t, text) in times.iter().zip(&texts) {
            let back = OffsetDateTime::parse(text, &Rfc3339).expect("parse");
            assert_eq!(back, *t);
        }
        assert!(sqlite_time_text(datetime!(-0001-01-01 0:00 UTC)) < texts[0]);
        assert!(sqlite_time_text(datetime!(+9999-12-31 23:59:59.999999 UTC)) > texts[4]);
    }
}
