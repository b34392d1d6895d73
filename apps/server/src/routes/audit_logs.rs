//! The audit trail over HTTP (admins only): filtered, cursor-paginated events, one
//! event, statistics, and verification of the tenant's hash chain against the signed
//! digests.

use audit::{
    Action, Actor, AuditCursor, AuditEvent, AuditFilter, Category, ChainId, ChangeType,
    PageRequest, TimeRange,
};
use audit::{AuditLog, DigestStore};
use garde::Validate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::auth::OrgMember;
use crate::http::{
    ApiError, ApiRoutes, FieldError, Paged, Pagination, Path, Query, Reply, RouteDoc, State,
};

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "audit";
    // Literal paths first: actix matches resources in registration order.
    r.get(
        "/api/v2/orgs/{org_id}/audit-logs/verify",
        verify,
        RouteDoc::new("verify_audit_log", "Verify the org's hash chain and its signed digests", TAG)
            .description("Walks the whole chain (constant memory) and reports the first broken link: an edited, deleted, reordered or rewritten event.")
            .org_admin(),
    );
    r.get(
        "/api/v2/orgs/{org_id}/audit-logs/stats",
        stats,
        RouteDoc::new(
            "audit_log_stats",
            "Counts per action and per day over a time range",
            TAG,
        )
        .org_admin(),
    );
    r.get(
        "/api/v2/orgs/{org_id}/audit-logs",
        list,
        RouteDoc::new(
            "list_audit_logs",
            "The org's audit and activity events, newest first",
            TAG,
        )
        .org_admin(),
    );
    r.get(
        "/api/v2/orgs/{org_id}/audit-logs/{event_id}",
        get_one,
        RouteDoc::new("get_audit_log", "One audit event", TAG).org_admin(),
    );
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// An audit event as the API shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditEventView {
    /// Event id.
    pub id: Uuid,
    /// Position in the org's chain.
    pub seq: u64,
    /// What happened, e.g. `permission.update`.
    pub action: String,
    /// `audit` or `activity`.
    pub category: &'static str,
    /// `CREATE`, `UPDATE`, `DELETE`, `RESET` or `NONE`.
    pub change_type: &'static str,
    /// Who: `user:<id>`, `api_key:<id>` or `system`.
    pub actor: String,
    /// Entity type.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: String,
    /// Before.
    pub old_value: Option<serde_json::Value>,
    /// After.
    pub new_value: Option<serde_json::Value>,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// When (RFC 3339).
    pub occurred_at: String,
    /// This event's hash (hex).
    pub hash: String,
    /// The previous event's hash (hex).
    pub prev_hash: String,
}

fn view(e: AuditEvent) -> AuditEventView {
    AuditEventView {
        id: e.body.id,
        seq: e.seq,
        action: e.body.action.to_string(),
        category: e.body.category.as_str(),
        change_type: e.body.change_type.as_str(),
        actor: e.body.actor.to_string(),
        entity_type: e.body.entity_type,
        entity_id: e.body.entity_id,
        old_value: e.body.old_value,
        new_value: e.body.new_value,
        ip: e.body.ip,
        user_agent: e.body.user_agent,
        request_id: e.body.request_id,
        occurred_at: rfc3339(e.body.occurred_at),
        hash: e.hash.to_string(),
        prev_hash: e.prev_hash.to_string(),
    }
}

/// Filters and paging.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only events by this actor (`user:<id>`, `api_key:<id>`, `system`).
    #[garde(skip)]
    pub actor: Option<String>,
    /// Only this action, e.g. `member.update`.
    #[garde(skip)]
    pub action: Option<String>,
    /// Only this entity type.
    #[garde(inner(length(max = 64)))]
    pub entity_type: Option<String>,
    /// Only this entity id.
    #[garde(inner(length(max = 128)))]
    pub entity_id: Option<String>,
    /// Only this change type.
    #[garde(skip)]
    pub change_type: Option<String>,
    /// `audit` or `activity`.
    #[garde(skip)]
    pub category: Option<String>,
    /// From (inclusive, RFC 3339).
    #[garde(skip)]
    pub from: Option<String>,
    /// To (exclusive, RFC 3339).
    #[garde(skip)]
    pub to: Option<String>,
    /// The `next_cursor` of the previous page.
    #[garde(skip)]
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[garde(inner(range(min = 1, max = 200)))]
    pub limit: Option<u32>,
}

fn bad(field: &str, message: impl ToString) -> ApiError {
    ApiError::validation(vec![FieldError {
        field: field.into(),
        code: "invalid".into(),
        message: message.to_string(),
    }])
}

fn parse_opt<T: std::str::FromStr>(field: &str, raw: Option<&str>) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    raw.map(|s| s.parse::<T>().map_err(|e| bad(field, e)))
        .transpose()
}

fn parse_time(field: &str, raw: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    raw.map(|s| OffsetDateTime::parse(s, &Rfc3339).map_err(|e| bad(field, e)))
        .transpose()
}

fn chain(member: &OrgMember) -> ChainId {
    ChainId::Org(member.org_id().as_uuid())
}

async fn list(
    state: State,
    member: OrgMember,
    Query(q): Query<AuditQuery>,
) -> Result<Paged<AuditEventView>, ApiError> {
    let mut filter = AuditFilter::new(chain(&member));
    filter.actor = parse_opt::<Actor>("actor", q.actor.as_deref())?;
    filter.action = parse_opt::<Action>("action", q.action.as_deref())?;
    filter.entity_type = q.entity_type;
    filter.entity_id = q.entity_id;
    filter.change_type = parse_opt::<ChangeType>("change_type", q.change_type.as_deref())?;
    filter.category = parse_opt::<Category>("category", q.category.as_deref())?;
    filter.from = parse_time("from", q.from.as_deref())?;
    filter.to = parse_time("to", q.to.as_deref())?;
    filter.validate().map_err(|e| bad("from", e))?;
    let cursor = parse_opt::<AuditCursor>("cursor", q.cursor.as_deref())?;
    let limit = q.limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
    let page = state
        .audit_log
        .find(filter, PageRequest::new(limit, cursor))
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    Ok(Paged {
        items: page.items.into_iter().map(view).collect(),
        pagination: Pagination {
            limit,
            next_cursor: page.next_cursor.map(|c| c.encode()),
            total: page.total,
        },
    })
}

/// Path of one event.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EventPath {
    /// Org id.
    #[allow(dead_code, reason = "documents the path parameter")]
    pub org_id: Uuid,
    /// Event id.
    pub event_id: Uuid,
}

async fn get_one(
    state: State,
    member: OrgMember,
    Path(p): Path<EventPath>,
) -> Result<Reply<AuditEventView>, ApiError> {
    let event = state
        .audit_log
        .get(chain(&member), p.event_id)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?
        .ok_or_else(|| ApiError::not_found("no such audit event"))?;
    Ok(Reply(view(event)))
}

/// A time range.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// From (inclusive, RFC 3339); default 30 days ago.
    #[garde(skip)]
    pub from: Option<String>,
    /// To (exclusive, RFC 3339); default now.
    #[garde(skip)]
    pub to: Option<String>,
}

/// Statistics.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StatsView {
    /// Events in the range.
    pub total: u64,
    /// Counts per action.
    pub per_action: Vec<Count>,
    /// Counts per UTC day (`YYYY-MM-DD`).
    pub per_day: Vec<Count>,
}

/// A labelled count.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Count {
    /// The action, or the day (`YYYY-MM-DD`).
    pub label: String,
    /// How many events.
    pub count: u64,
}

async fn stats(
    state: State,
    member: OrgMember,
    Query(q): Query<RangeQuery>,
) -> Result<Reply<StatsView>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let from = parse_time("from", q.from.as_deref())?.unwrap_or(now - time::Duration::days(30));
    let to = parse_time("to", q.to.as_deref())?.unwrap_or(now);
    let range = TimeRange::new(from, to).map_err(|e| bad("from", e))?;
    let s = state
        .audit_log
        .stats(chain(&member), range)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    Ok(Reply(StatsView {
        total: s.total,
        per_action: s
            .per_action
            .into_iter()
            .map(|a| Count {
                label: a.action.to_string(),
                count: a.count,
            })
            .collect(),
        per_day: s
            .per_day
            .into_iter()
            .map(|d| Count {
                label: d.day.to_string(),
                count: d.count,
            })
            .collect(),
    }))
}

/// A verification report.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyView {
    /// Whether the chain is intact (and agrees with every signed digest).
    pub intact: bool,
    /// Events checked.
    pub checked: u64,
    /// Digest anchors confirmed.
    pub anchors_confirmed: u64,
    /// The first broken link, if any: `{seq, event_id, kind}`.
    pub first_break: Option<serde_json::Value>,
}

async fn verify(state: State, member: OrgMember) -> Result<Reply<VerifyView>, ApiError> {
    let digests = state
        .audit_digests
        .list(None, u32::MAX)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    let report =
        audit_store::verify_chain_in_db(&state.db, chain(&member), &digests, &state.audit_signer)
            .await
            .map_err(|e| ApiError::internal(Box::new(e)))?;
    Ok(Reply(VerifyView {
        intact: report.is_intact(),
        checked: report.checked,
        anchors_confirmed: report.anchors_confirmed,
        first_break: report.first_break.map(|b| {
            serde_json::json!({"seq": b.seq, "event_id": b.event_id, "kind": b.kind.code(), "reason": b.kind.to_string()})
        }),
    }))
}
