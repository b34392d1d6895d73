//! The audit trail over HTTP: filtered, cursor-paginated events, one event, a streamed
//! CSV export, statistics and verification of the tenant's hash chain against the signed
//! digests (admins only), plus the activity feed (admins, or a member for themselves).

use actix_web::body::BoxBody;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, Responder};
use aide::generate::GenContext;
use aide::openapi::{MediaType, Operation, Response, StatusCode};
use audit::{
    Action, Actor, AuditCursor, AuditEvent, AuditFilter, Category, ChainId, ChangeType,
    PageRequest, TimeRange,
};
use audit::{AuditLog, DigestStore};
use futures_util::stream::{self, BoxStream, StreamExt};
use garde::Validate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use actix_web::http::Method;
use audit::RetentionPolicy;
use time::{Date, Duration};

use super::districts::visible_district;
use tenancy::ports::AuditContext;

use crate::auth::{Caller, OrgMember};
use crate::http::{
    ApiError, ApiRoutes, ErrorCode, FieldError, Fresh, IfMatch, Json, Paged, Pagination, Path,
    Query, Reply, RouteDoc, Tagged,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "audit";
    // Literal paths first: actix matches resources in registration order.
    r.get(
        "/api/v2/orgs/{org_id}/audit-logs/retention",
        get_retention,
        RouteDoc::new("get_audit_retention", "The org's audit retention period", TAG)
            .description("Events older than this many days are moved to archive files by `cargo xtask audit archive` (default 400).")
            .org_admin(),
    );
    r.route(
        Method::PUT,
        "/api/v2/orgs/{org_id}/audit-logs/retention",
        set_retention,
        RouteDoc::new("set_audit_retention", "Change the org's audit retention period", TAG)
            .description("1–36,500 days; audited (`audit.retention_update`). Takes effect at the next archive run. Send the `version` you read (or `If-Match`; 0 while never set): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`.")
            .org_admin()
            .errors(&[
                ErrorCode::ValidationFailed,
                ErrorCode::PreconditionRequired,
                ErrorCode::VersionMismatch,
            ]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/audit-logs/verify",
        verify,
        RouteDoc::new("verify_audit_log", "Verify the org's hash chain and its signed digests", TAG)
            .description("Walks the whole chain (constant memory) and reports the first broken link: an edited, deleted, reordered or rewritten event.")
            .org_admin(),
    );
    r.get(
        "/api/v2/orgs/{org_id}/audit-logs/export",
        export,
        RouteDoc::new("export_audit_logs", "Export the org's events as CSV", TAG)
            .description("Same filters as the list; streamed page by page (constant memory), newest first. The export itself is recorded as a `data.export` activity event.")
            .org_admin()
            .rate_class(rate_limit::RateClass::Export),
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
    r.get(
        "/api/v2/orgs/{org_id}/activities/daily",
        daily_activities,
        RouteDoc::new("daily_activities", "Per-day timeline: event counts per UTC day and category", TAG)
            .description("Days `from`..=`to` (UTC dates, at most 366 days; default the last 30). Days without events are omitted. Same visibility as the activity feed: admins see everyone (or `user_id`), members only themselves.")
            .errors(&[ErrorCode::PermissionDenied]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/activities",
        activities,
        RouteDoc::new("list_activities", "Activity events, or one user's events, newest first", TAG)
            .description("Without `user_id`, an admin sees the org's activity events and a member their own events. With `user_id`, every event that user did (activity and audit); members may only ask for themselves.")
            .errors(&[ErrorCode::PermissionDenied]),
    );
    const DISTRICT: &str = "The district's own chain (district-level events: schools, staff, templates); its staff and platform admins, 404 for anyone else.";
    r.get(
        "/api/v2/districts/{district_id}/audit-logs/verify",
        district_verify,
        RouteDoc::new(
            "verify_district_audit_log",
            "Verify the district's hash chain and its signed digests",
            TAG,
        )
        .description(DISTRICT)
        .errors(&[ErrorCode::NotFound]),
    );
    r.get(
        "/api/v2/districts/{district_id}/audit-logs/export",
        district_export,
        RouteDoc::new(
            "export_district_audit_logs",
            "Export the district's events as CSV",
            TAG,
        )
        .description(DISTRICT)
        .errors(&[ErrorCode::NotFound, ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/districts/{district_id}/audit-logs/stats",
        district_stats,
        RouteDoc::new(
            "district_audit_log_stats",
            "Counts per action and per day of the district's events",
            TAG,
        )
        .description(DISTRICT)
        .errors(&[ErrorCode::NotFound, ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/districts/{district_id}/audit-logs",
        district_list,
        RouteDoc::new(
            "list_district_audit_logs",
            "The district's audit and activity events, newest first",
            TAG,
        )
        .description(DISTRICT)
        .errors(&[ErrorCode::NotFound, ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/districts/{district_id}/audit-logs/{event_id}",
        district_get_one,
        RouteDoc::new(
            "get_district_audit_log",
            "One event of the district's chain",
            TAG,
        )
        .description(DISTRICT)
        .errors(&[ErrorCode::NotFound]),
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
    #[garde(inner(length(chars, max = 64)))]
    #[schemars(length(max = 64))]
    pub entity_type: Option<String>,
    /// Only this entity id.
    #[garde(inner(length(chars, max = 128)))]
    #[schemars(length(max = 128))]
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
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
}

impl AuditQuery {
    /// Splits into the filters and the paging (cursor, limit).
    fn split(self) -> (ExportQuery, Option<String>, Option<u32>) {
        let filters = ExportQuery {
            actor: self.actor,
            action: self.action,
            entity_type: self.entity_type,
            entity_id: self.entity_id,
            change_type: self.change_type,
            category: self.category,
            from: self.from,
            to: self.to,
        };
        (filters, self.cursor, self.limit)
    }
}

/// The list's filters, without paging: what the CSV export accepts.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Only events by this actor (`user:<id>`, `api_key:<id>`, `system`).
    #[garde(skip)]
    pub actor: Option<String>,
    /// Only this action, e.g. `member.update`.
    #[garde(skip)]
    pub action: Option<String>,
    /// Only this entity type.
    #[garde(inner(length(chars, max = 64)))]
    #[schemars(length(max = 64))]
    pub entity_type: Option<String>,
    /// Only this entity id.
    #[garde(inner(length(chars, max = 128)))]
    #[schemars(length(max = 128))]
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
}

impl ExportQuery {
    /// The store filter over `chain`; 422 for an unparsable criterion.
    fn filter(self, chain: ChainId) -> Result<AuditFilter, ApiError> {
        let mut filter = AuditFilter::new(chain);
        filter.actor = parse_opt::<Actor>("actor", self.actor.as_deref())?;
        filter.action = parse_opt::<Action>("action", self.action.as_deref())?;
        filter.entity_type = self.entity_type;
        filter.entity_id = self.entity_id;
        filter.change_type = parse_opt::<ChangeType>("change_type", self.change_type.as_deref())?;
        filter.category = parse_opt::<Category>("category", self.category.as_deref())?;
        filter.from = parse_time("from", self.from.as_deref())?;
        filter.to = parse_time("to", self.to.as_deref())?;
        filter.validate().map_err(|e| bad("from", e))?;
        Ok(filter)
    }
}

fn bad(field: &str, message: impl ToString) -> ApiError {
    ApiError::validation(vec![FieldError {
        field: field.into(),
        code: "invalid_value".into(),
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
    list_in(&state, chain(&member), q).await
}

async fn list_in(
    state: &State,
    chain: ChainId,
    q: AuditQuery,
) -> Result<Paged<AuditEventView>, ApiError> {
    let (filters, cursor, limit) = q.split();
    let filter = filters.filter(chain)?;
    page_of(state, filter, cursor.as_deref(), limit).await
}

/// One page of `filter`, as the list and the activity feed answer.
async fn page_of(
    state: &State,
    filter: AuditFilter,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<Paged<AuditEventView>, ApiError> {
    let cursor = parse_opt::<AuditCursor>("cursor", cursor)?;
    let limit = limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
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
) -> Result<Fresh<AuditEventView>, ApiError> {
    get_in(&state, chain(&member), p.event_id).await
}

async fn get_in(
    state: &State,
    chain: ChainId,
    event_id: Uuid,
) -> Result<Fresh<AuditEventView>, ApiError> {
    let event = state
        .audit_log
        .get(chain, event_id)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?
        .ok_or_else(|| ApiError::not_found("no such audit event"))?;
    Ok(Fresh(view(event)))
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
    stats_in(&state, chain(&member), q).await
}

async fn stats_in(
    state: &State,
    chain: ChainId,
    q: RangeQuery,
) -> Result<Reply<StatsView>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let from = parse_time("from", q.from.as_deref())?.unwrap_or(now - time::Duration::days(30));
    let to = parse_time("to", q.to.as_deref())?.unwrap_or(now);
    let range = TimeRange::new(from, to).map_err(|e| bad("from", e))?;
    let s = state
        .audit_log
        .stats(chain, range)
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
    verify_in(&state, chain(&member)).await
}

/// Verifies the live chain from its archive cut (if any) against the signed digests.
async fn verify_in(state: &State, chain: ChainId) -> Result<Reply<VerifyView>, ApiError> {
    let digests = state
        .audit_digests
        .list(None, u32::MAX)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    let report = audit_store::verify_live_chain(&state.db, chain, &digests, &state.audit_signer)
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

/// Events per store query while exporting (the largest page the store serves).
const EXPORT_PAGE: u32 = PageRequest::MAX_LIMIT;

/// The export's columns, in order.
const CSV_HEADER: &str = "id,seq,occurred_at,actor,action,category,change_type,entity_type,entity_id,ip,request_id,old_value,new_value\r\n";

/// Appends one event as a CSV row with the project's CSV writer (RFC 4180, CRLF, and
/// the formula guard: a value an actor chose cannot run as a spreadsheet formula); JSON
/// values are written compact.
fn push_row(buf: &mut String, e: &AuditEvent) {
    let json = |v: &Option<serde_json::Value>| v.as_ref().map(ToString::to_string);
    let b = &e.body;
    let fields = [
        Some(b.id.to_string()),
        Some(e.seq.to_string()),
        Some(rfc3339(b.occurred_at)),
        Some(b.actor.to_string()),
        Some(b.action.to_string()),
        Some(b.category.as_str().to_owned()),
        Some(b.change_type.as_str().to_owned()),
        Some(b.entity_type.clone()),
        Some(b.entity_id.clone()),
        b.ip.clone(),
        b.request_id.clone(),
        json(&b.old_value),
        json(&b.new_value),
    ];
    sheets::csv::push_line(buf, &fields.map(Option::unwrap_or_default));
}

/// The CSV body: the header, then one chunk per page of `filter`, following
/// `next_cursor`, so that at most one page is in memory at a time. Public so that the
/// export benchmark (`cargo xtask bench`) measures exactly what the route streams.
pub fn csv_stream(
    log: audit_store::SeaOrmAuditLog,
    filter: AuditFilter,
) -> BoxStream<'static, Result<Bytes, audit::QueryAuditError>> {
    let header = stream::once(async { Ok(Bytes::from_static(CSV_HEADER.as_bytes())) });
    // State: `Some(cursor)` while there is a page to read, `None` when done.
    let pages = stream::unfold(Some(None), move |next: Option<Option<AuditCursor>>| {
        let (log, filter) = (log.clone(), filter.clone());
        async move {
            let cursor = next?;
            match log
                .find(filter, PageRequest::new(EXPORT_PAGE, cursor))
                .await
            {
                Ok(page) => {
                    let mut buf = String::new();
                    for e in &page.items {
                        push_row(&mut buf, e);
                    }
                    Some((Ok(Bytes::from(buf)), page.next_cursor.map(Some)))
                }
                // The status line is already sent: end the body with the error.
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    header.chain(pages).boxed()
}

/// A streamed CSV attachment (`text/csv; charset=utf-8`).
pub struct CsvExport {
    filename: String,
    body: BoxStream<'static, Result<Bytes, audit::QueryAuditError>>,
}

impl std::fmt::Debug for CsvExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvExport")
            .field("filename", &self.filename)
            .finish_non_exhaustive()
    }
}

impl Responder for CsvExport {
    type Body = BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                actix_web::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", self.filename),
            ))
            .streaming(self.body)
    }
}

impl aide::OperationOutput for CsvExport {
    type Inner = ();
    fn inferred_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        vec![(
            Some(StatusCode::Code(200)),
            Response {
                description: "CSV (RFC 4180), one header row then one row per event".to_owned(),
                content: indexmap::IndexMap::from_iter([(
                    "text/csv".to_owned(),
                    MediaType::default(),
                )]),
                ..Default::default()
            },
        )]
    }
}

/// Records the export (`data.export`, committed on its own) and streams the CSV.
async fn export(
    state: State,
    member: OrgMember,
    Query(q): Query<ExportQuery>,
) -> Result<CsvExport, ApiError> {
    let org = member.org_id().as_uuid();
    export_in(&state, ChainId::Org(org), member.audit_context(), q).await
}

/// Records the export in `chain` (`data.export`, committed on its own) and streams it.
async fn export_in(
    state: &State,
    chain: ChainId,
    ctx: AuditContext,
    q: ExportQuery,
) -> Result<CsvExport, ApiError> {
    let filter = q.filter(chain)?;
    let (scope, tenant) = match chain {
        ChainId::Org(id) => (audit::TenantScope::org(id), id),
        ChainId::District(id) => (audit::TenantScope::district(id), id),
        ChainId::Platform => (audit::TenantScope::PLATFORM, Uuid::nil()),
    };
    let event = audit::NewAuditEvent::activity(
        scope,
        ctx.actor,
        audit::action::activity::DATA_EXPORT,
        "audit_log",
        tenant.to_string(),
    )
    .with_request(&ctx.request);
    audit_store::AuditedTx::record_alone(&state.db, event)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    let filename = match chain {
        ChainId::District(id) => format!("audit-district-{id}.csv"),
        _ => format!("audit-{tenant}.csv"),
    };
    Ok(CsvExport {
        filename,
        body: csv_stream(state.audit_log.clone(), filter),
    })
}

/// The activity feed's query.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// Only this user's events (activity and audit); members may only name themselves.
    #[garde(skip)]
    pub user_id: Option<Uuid>,
    /// The `next_cursor` of the previous page.
    #[garde(skip)]
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[garde(inner(range(min = 1, max = 200)))]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
}

/// Activity events (admins), or everything one user did: an admin may name anyone, a
/// member only themselves (the default for a member); 403 otherwise.
async fn activities(
    state: State,
    member: OrgMember,
    Query(q): Query<ActivityQuery>,
) -> Result<Paged<AuditEventView>, ApiError> {
    let mut filter = AuditFilter::new(chain(&member));
    let user = visible_user(&member, q.user_id)?;
    match user {
        Some(id) => filter.actor = Some(Actor::User(id)),
        None => filter.category = Some(Category::Activity),
    }
    page_of(&state, filter, q.cursor.as_deref(), q.limit).await
}

// ---------------------------------------------------------------------------------------
// Per-day activity timeline

/// The timeline's query.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct DailyQuery {
    /// First day (UTC date `YYYY-MM-DD`, inclusive); default 29 days before `to`.
    #[garde(skip)]
    pub from: Option<String>,
    /// Last day (UTC date `YYYY-MM-DD`, inclusive); default today.
    #[garde(skip)]
    pub to: Option<String>,
    /// Only this user's events; members may only name themselves (their default).
    #[garde(skip)]
    pub user_id: Option<Uuid>,
}

/// Events of one UTC day.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DayView {
    /// The day (`YYYY-MM-DD`, UTC).
    pub day: String,
    /// Audit events (changes).
    pub audit: u64,
    /// Activity events (sign-ins, exports, …).
    pub activity: u64,
    /// Both.
    pub total: u64,
}

/// The per-day timeline.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DailyView {
    /// First day covered.
    pub from: String,
    /// Last day covered.
    pub to: String,
    /// The user whose events are counted (absent: everyone's).
    pub user_id: Option<Uuid>,
    /// Days with at least one event, oldest first (days without events are omitted).
    pub days: Vec<DayView>,
}

/// The longest timeline served, in days.
pub const MAX_TIMELINE_DAYS: i64 = 366;

fn parse_date(field: &str, raw: Option<&str>) -> Result<Option<Date>, ApiError> {
    raw.map(|s| {
        Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|e| bad(field, format!("expected YYYY-MM-DD: {e}")))
    })
    .transpose()
}

/// Who the caller may ask about: everyone or anyone (admins), else only themselves.
fn visible_user(member: &OrgMember, asked: Option<Uuid>) -> Result<Option<Uuid>, ApiError> {
    match asked {
        None if member.is_admin() => Ok(None),
        None => Ok(Some(member.user_id()?.as_uuid())),
        Some(id) if member.is_admin() || member.user_id()?.as_uuid() == id => Ok(Some(id)),
        Some(_) => Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "only admins may read another member's activities",
        )),
    }
}

async fn daily_activities(
    state: State,
    member: OrgMember,
    Query(q): Query<DailyQuery>,
) -> Result<Reply<DailyView>, ApiError> {
    let user = visible_user(&member, q.user_id)?;
    let today = OffsetDateTime::now_utc().date();
    let to = parse_date("to", q.to.as_deref())?.unwrap_or(today);
    let from = match parse_date("from", q.from.as_deref())? {
        Some(from) => from,
        None => to.checked_sub(Duration::days(29)).unwrap_or(to),
    };
    if from > to {
        return Err(bad("from", "from is after to"));
    }
    if (to - from).whole_days() >= MAX_TIMELINE_DAYS {
        return Err(bad(
            "from",
            format!("at most {MAX_TIMELINE_DAYS} days per request"),
        ));
    }
    let mut filter = AuditFilter::new(chain(&member));
    filter.from = Some(from.midnight().assume_utc());
    filter.to = to.next_day().map(|d| d.midnight().assume_utc());
    filter.actor = user.map(Actor::User);
    let days = state
        .audit_log
        .daily(filter)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    Ok(Reply(DailyView {
        from: from.to_string(),
        to: to.to_string(),
        user_id: user,
        days: days
            .into_iter()
            .map(|d| DayView {
                day: d.day.to_string(),
                audit: d.audit,
                activity: d.activity,
                total: d.total(),
            })
            .collect(),
    }))
}

// ---------------------------------------------------------------------------------------
// Retention

/// The org's retention period.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RetentionView {
    /// Days events stay in the live log before `cargo xtask audit archive` moves them to
    /// archive files.
    pub days: u32,
    /// The default (400).
    pub default_days: u32,
    /// Version of the setting (0: never set, the default applies), for `PUT`.
    pub version: i64,
}

/// A new retention period.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// Days, 1–36,500.
    #[garde(range(min = 1, max = 36_500))]
    pub days: u32,
    /// The version you read (or send `If-Match`); required.
    #[garde(skip)]
    pub version: Option<i64>,
}

fn retention_view(policy: RetentionPolicy, version: i64) -> RetentionView {
    RetentionView {
        days: policy.days(),
        default_days: RetentionPolicy::DEFAULT_DAYS,
        version,
    }
}

async fn get_retention(state: State, member: OrgMember) -> Result<Tagged<RetentionView>, ApiError> {
    let (policy, version) =
        audit_store::versioned_retention_of(state.db.primary(), member.org_id().as_uuid())
            .await
            .map_err(ApiError::internal)?;
    Ok(Tagged {
        data: retention_view(policy, version),
        version,
    })
}

async fn set_retention(
    state: State,
    member: OrgMember,
    if_match: IfMatch,
    Json(body): Json<RetentionBody>,
) -> Result<Reply<RetentionView>, ApiError> {
    let expected = super::common::required_version(body.version, if_match)?;
    let policy = RetentionPolicy::new(body.days).map_err(|e| bad("days", e))?;
    let ctx = member.audit_context();
    let (_, version) = audit_store::set_retention(
        &state.db,
        member.org_id().as_uuid(),
        policy,
        expected,
        ctx.actor,
        &ctx.request,
    )
    .await
    .map_err(|e| match e {
        audit_store::SetRetentionError::VersionMismatch { current } => ApiError::new(
            ErrorCode::VersionMismatch,
            "the retention period changed since you read it",
        )
        .with_details(serde_json::json!({ "current_version": current })),
        other => ApiError::internal(Box::new(other)),
    })?;
    Ok(Reply(retention_view(policy, version)))
}

// ---------------------------------------------------------------------------------------
// The district's chain

/// Path of a district.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DistrictAuditPath {
    /// District id.
    pub district_id: Uuid,
}

/// Path of one event of a district.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DistrictEventPath {
    /// District id.
    pub district_id: Uuid,
    /// Event id.
    pub event_id: Uuid,
}

/// The district's chain, if the caller is its staff or a platform admin; 404 otherwise.
async fn district_chain(state: &State, caller: &Caller, id: Uuid) -> Result<ChainId, ApiError> {
    let (_, district) = visible_district(state, caller, id).await?;
    Ok(ChainId::District(district.id.as_uuid()))
}

async fn district_list(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictAuditPath>,
    Query(q): Query<AuditQuery>,
) -> Result<Paged<AuditEventView>, ApiError> {
    let chain = district_chain(&state, &caller, p.district_id).await?;
    list_in(&state, chain, q).await
}

async fn district_get_one(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictEventPath>,
) -> Result<Fresh<AuditEventView>, ApiError> {
    let chain = district_chain(&state, &caller, p.district_id).await?;
    get_in(&state, chain, p.event_id).await
}

async fn district_stats(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictAuditPath>,
    Query(q): Query<RangeQuery>,
) -> Result<Reply<StatsView>, ApiError> {
    let chain = district_chain(&state, &caller, p.district_id).await?;
    stats_in(&state, chain, q).await
}

async fn district_verify(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictAuditPath>,
) -> Result<Reply<VerifyView>, ApiError> {
    let chain = district_chain(&state, &caller, p.district_id).await?;
    verify_in(&state, chain).await
}

async fn district_export(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictAuditPath>,
    Query(q): Query<ExportQuery>,
) -> Result<CsvExport, ApiError> {
    let chain = district_chain(&state, &caller, p.district_id).await?;
    export_in(&state, chain, caller.audit_context(), q).await
}
