//! The change events over HTTP (issue #19, `shared/spec/events.md`): the events API
//! (`GET /orgs/{org_id}/events`), a cursor-paged read of the org's events the caller may
//! see. The catalog, who sees what, what an event shows and the cursor are the audit
//! domain's ([`audit::changes`]); the receiver is decided by the permission engine
//! ([`crate::authz::receiver`]).

use std::borrow::Cow;
use std::collections::BTreeSet;

use actix_web::HttpRequest;
use actix_web::web::Bytes;
use audit::{AuditLog, ChainId, ChangeEvent, ChangePageError, EventCursor, EventCursorError};
use garde::Validate;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use crate::auth::OrgMember;
use crate::http::paging::{MAX_LIMIT, page_limit};
use crate::http::{ApiError, ApiRoutes, ErrorCode, FieldError, Paged, Pagination, Query, RouteDoc};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    r.get(
        "/api/v2/orgs/{org_id}/events",
        list_events,
        RouteDoc::new(
            "list_events",
            "The org's change events you may see, oldest first, after a cursor",
            "events",
        )
        .description("Every committed change of the org, in the order it was committed, as far as you may see it: each type's audience is what the matching read requires (`type` lists them: admin-only events such as settings, grants and API keys reach admins only; member events reach those who may read the member directory, and the member themself), decided by the permission engine at each request. An event shows ids, the kind of change and the names of the changed fields (`data.changed`); values only for configuration (permission settings, roles, retention), never personal data or secrets. Page with `after` (or `cursor`): an event's `id` or the previous page's `meta.pagination.next_cursor`, which every page carries — a page shorter than `limit` means you are caught up, and an empty page returns the cursor you sent (keep polling with it). Without a cursor, reading starts at the oldest retained event. A cursor before the retained events (archived by the audit retention) answers 410 `CURSOR_EXPIRED`: resynchronise by reading the current state, then read on without a cursor. The same cursor resumes the stream (`GET …/stream`).")
        .rate_class(rate_limit::RateClass::List)
        .errors(&[ErrorCode::ValidationFailed, ErrorCode::CursorExpired]),
    );
    register_streams(r);
}

/// Paging and filtering of the events.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Read the events after this cursor: an event's `id`, or a page's
    /// `meta.pagination.next_cursor`. Absent: from the oldest retained event.
    #[garde(inner(length(max = 4096)))]
    #[schemars(length(max = 4096))]
    pub after: Option<String>,
    /// The same as `after` (the name every list takes); send one of them.
    #[garde(inner(length(max = 4096)))]
    #[schemars(length(max = 4096))]
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[garde(inner(range(min = 1, max = MAX_LIMIT)))]
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    pub limit: Option<u32>,
    /// Only these types, comma-separated (e.g. `member.added,member.removed`); the
    /// values of the events' `type`.
    #[garde(inner(length(max = 4096)))]
    #[schemars(length(max = 4096))]
    pub types: Option<String>,
}

/// The public name of an event type: one of the catalog's names.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(transparent)]
pub struct EventTypeName(pub &'static str);

impl JsonSchema for EventTypeName {
    fn schema_name() -> Cow<'static, str> {
        "EventType".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let one_of: Vec<serde_json::Value> = audit::publications()
            .iter()
            .map(|p| serde_json::json!({ "const": p.name, "description": p.description }))
            .collect();
        schemars::json_schema!({
            "type": "string",
            "description": "The catalog of change-event types (data in code: `audit::changes`).",
            "oneOf": one_of,
        })
    }
}

/// An id with its kind: `{"type": "org", "id": …}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TypedRef {
    /// The kind (`org`; `user`, `api_key`, `system`; `member`, `permission_setting`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id (absent for `system`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// One change event.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangeEventView {
    /// The event's cursor (opaque): send it as `after` (or as the stream's
    /// `Last-Event-ID`) to read on after it.
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventTypeName,
    /// The tenant whose record it is: `{"type": "org", "id": …}`.
    pub tenant: TypedRef,
    /// When it happened (RFC 3339, UTC).
    pub occurred_at: String,
    /// Who did it: `{"type": "user"|"api_key", "id": …}` or `{"type": "system"}`.
    pub actor: TypedRef,
    /// The entity it happened to: `{"type": "member", "id": <user id>}`,
    /// `{"type": "permission_setting", "id": "budget.approve"}`, …
    pub subject: TypedRef,
    /// `change` (`create`, `update`, `delete`, `reset`, `none`), `changed` (the names of
    /// the fields that changed) and, for configuration only, `before` and `after`.
    pub data: serde_json::Value,
}

/// The public form of `event`, its id a cursor of `cursor` moved to it.
#[must_use]
pub fn view(event: ChangeEvent, cursor: &mut EventCursor) -> ChangeEventView {
    cursor.set(event.chain, event.seq);
    let tenant = match event.chain {
        ChainId::Org(id) => TypedRef {
            kind: "org".into(),
            id: Some(id.to_string()),
        },
        ChainId::District(id) => TypedRef {
            kind: "district".into(),
            id: Some(id.to_string()),
        },
        ChainId::Platform => TypedRef {
            kind: "platform".into(),
            id: None,
        },
    };
    ChangeEventView {
        id: cursor.encode(),
        kind: EventTypeName(event.publication.name),
        tenant,
        occurred_at: event.occurred_at.format(&Rfc3339).unwrap_or_default(),
        actor: TypedRef {
            kind: event.actor.kind().into(),
            id: event.actor.id().map(|id| id.to_string()),
        },
        subject: TypedRef {
            kind: event.subject_type,
            id: Some(event.subject_id),
        },
        data: event.data,
    }
}

fn invalid(field: &str, code: &str, message: impl ToString) -> ApiError {
    ApiError::validation(vec![FieldError {
        field: field.into(),
        code: code.into(),
        message: message.to_string(),
    }])
}

/// The cursor of a query (`after` or `cursor`), parsed; 422 naming the parameter for
/// one that is not an event cursor of this org's.
pub fn cursor_of(
    after: Option<String>,
    cursor: Option<String>,
) -> Result<Option<(&'static str, EventCursor)>, ApiError> {
    let (field, raw) = match (after, cursor) {
        (Some(a), Some(c)) if a != c => {
            return Err(invalid(
                "cursor",
                "conflict",
                "send the position as `after` or as `cursor`, not two different ones",
            ));
        }
        (Some(a), _) => ("after", a),
        (None, Some(c)) => ("cursor", c),
        (None, None) => return Ok(None),
    };
    raw.parse::<EventCursor>()
        .map(|c| Some((field, c)))
        .map_err(|e| invalid(field, "invalid_cursor", e))
}

/// The position a cursor holds in `chain`; 422 naming `field` for another org's.
pub fn position_in(field: &str, cursor: &EventCursor, chain: ChainId) -> Result<u64, ApiError> {
    cursor
        .seq_for(chain)
        .map_err(|e: EventCursorError| invalid(field, "invalid_cursor", e))
}

/// The `types` filter: catalog names, 422 for any other.
pub fn types_of(raw: Option<&str>) -> Result<Option<BTreeSet<&'static str>>, ApiError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let mut wanted = BTreeSet::new();
    let mut unknown = Vec::new();
    for name in raw.split(',').map(str::trim) {
        match audit::publication_named(name) {
            Some(p) => {
                wanted.insert(p.name);
            }
            None => unknown.push(name.to_owned()),
        }
    }
    if !unknown.is_empty() {
        return Err(invalid(
            "types",
            "unknown_event_type",
            format!(
                "not an event type: {} (the `type` values of the API document are)",
                unknown
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(Some(wanted))
}

/// 410 `CURSOR_EXPIRED`, saying how to resynchronise.
pub fn expired(floor: u64) -> ApiError {
    ApiError::new(
        ErrorCode::CursorExpired,
        "the events after this cursor are past the retention period and were archived: read the current state again, then read on without a cursor",
    )
    .with_details(serde_json::json!({
        "reason": "archived",
        "resync": "read the resources you follow again, then read events without `after` (from the oldest retained event)",
        "oldest_retained_after": floor,
    }))
}

/// A page error as the API answers it.
pub fn page_error(e: ChangePageError) -> ApiError {
    match e {
        ChangePageError::Expired { floor } => expired(floor),
        ChangePageError::Storage(e) => ApiError::internal(Box::new(e)),
    }
}

async fn list_events(
    state: State,
    member: OrgMember,
    Query(q): Query<EventsQuery>,
) -> Result<Paged<ChangeEventView>, ApiError> {
    let chain = ChainId::Org(member.org_id().as_uuid());
    let cursor = cursor_of(q.after, q.cursor)?;
    let after = cursor
        .as_ref()
        .map(|(field, c)| position_in(field, c, chain))
        .transpose()?;
    let wanted = types_of(q.types.as_deref())?;
    let limit = page_limit(q.limit);
    let receiver = crate::authz::receiver(
        &state.authz,
        member.org_id().as_uuid(),
        crate::authz::Follower::of(&member),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("no such organization"))?;
    let selection = receiver.selection(wanted.as_ref());
    let page = audit::read_page(&state.audit_log, chain, after, &selection, limit)
        .await
        .map_err(page_error)?;
    // Ids and the next cursor keep the other orgs' positions of a cursor that has them.
    let mut position = cursor.map(|(_, c)| c).unwrap_or_default();
    let items: Vec<ChangeEventView> = page
        .events
        .into_iter()
        .map(|e| view(e, &mut position))
        .collect();
    position.set(chain, page.next);
    Ok(Paged {
        items,
        pagination: Pagination {
            limit,
            next_cursor: Some(position.encode()),
            total: None,
        },
    })
}

/// Where a stream starts and what it shows.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Resume after this cursor (an event's `id`); the `Last-Event-ID` header wins.
    /// Absent: from the oldest retained event.
    #[garde(inner(length(max = 4096)))]
    #[schemars(length(max = 4096))]
    pub after: Option<String>,
    /// Only these types, comma-separated, as for the events API.
    #[garde(inner(length(max = 4096)))]
    #[schemars(length(max = 4096))]
    pub types: Option<String>,
}

pub(super) fn register_streams(r: &mut ApiRoutes) {
    const STREAM: &str = "`text/event-stream`: each event the caller may see (as `GET …/events` shows it) in a `data:` line, its cursor in `id:`. Reconnecting with `Last-Event-ID` (or `?after=`) resumes after that event with no gap and no duplicate, on any instance: the backlog is read from the database after live events are subscribed to, and both are de-duplicated by position. Who sees what is re-evaluated every second with the permission engine. An idle stream sends a comment (`: heartbeat`) at least every 15 s. The stream ends with an `event: end` whose data names the reason (`session_ended` — within a second of the session's revocation or the token's expiry —, `access_ended`, `slow_consumer`: the client read too slowly and fell more than 1,024 events behind; `cursor_expired`): reconnect with the last `id` (after signing in again for `session_ended`). A cursor before the retained events answers 410 `CURSOR_EXPIRED`.";
    r.get(
        "/api/v2/orgs/{org_id}/stream",
        org_stream,
        RouteDoc::new(
            "org_event_stream",
            "The org's change events, live (server-sent events)",
            "events",
        )
        .description(STREAM)
        .errors(&[ErrorCode::ValidationFailed, ErrorCode::CursorExpired]),
    );
    r.get(
        "/api/v2/me/stream",
        my_stream,
        RouteDoc::new("my_event_stream", "Your orgs' change events and your unread count, live (server-sent events)", "events")
            .description("The events of every org you are an active member of, each as its org's stream shows it; one cursor holds a position per org. An org you join (or are added to, or restored in) while the stream is open is followed from the event that made you a member on, with no gap; an org you leave (or are removed from) stops at the event that ended your membership. Your unread notification count comes as `event: unread` with `data: {\"unread\": N}` (no `id:`, so it does not move your position): once when the stream opens, then whenever it changes — a notification delivered to your inbox, one read, all read, one deleted — whichever instance made the change. Otherwise as `GET /orgs/{org_id}/stream`.")
            .errors(&[ErrorCode::ValidationFailed, ErrorCode::CursorExpired]),
    );
}

/// What a stream keeps of its request: the `Last-Event-ID` header, the bearer token and
/// the path's org (what the token is verified for).
#[derive(Debug, Clone)]
pub struct StreamRequest {
    last_event_id: Result<Option<String>, ()>,
    token: String,
    token_org: Option<uuid::Uuid>,
}

impl actix_web::FromRequest for StreamRequest {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let last_event_id = req
            .headers()
            .get("last-event-id")
            .map(|v| v.to_str().map(str::to_owned).map_err(|_| ()))
            .transpose();
        std::future::ready(Ok(Self {
            last_event_id,
            token: bearer_of(req).unwrap_or_default(),
            token_org: req
                .match_info()
                .get("org_id")
                .and_then(|s| uuid::Uuid::parse_str(s).ok()),
        }))
    }
}

impl aide::OperationInput for StreamRequest {}

/// The position a stream resumes from: `Last-Event-ID`, else `?after=`.
fn resume_cursor(
    req: &StreamRequest,
    after: Option<String>,
) -> Result<Option<(&'static str, EventCursor)>, ApiError> {
    let header = req
        .last_event_id
        .clone()
        .map_err(|()| invalid("Last-Event-ID", "invalid_cursor", "not an event cursor"))?;
    match (header, after) {
        (Some(h), _) if !h.is_empty() => h
            .parse::<EventCursor>()
            .map(|c| Some(("Last-Event-ID", c)))
            .map_err(|e| invalid("Last-Event-ID", "invalid_cursor", e)),
        (_, after) => cursor_of(after, None),
    }
}

async fn org_stream(
    req: StreamRequest,
    state: State,
    member: OrgMember,
    Query(q): Query<StreamQuery>,
) -> Result<EventStream, ApiError> {
    let org = member.org_id().as_uuid();
    let chain = ChainId::Org(org);
    let cursor = resume_cursor(&req, q.after)?;
    let after = cursor
        .as_ref()
        .map(|(field, c)| position_in(field, c, chain))
        .transpose()?;
    let wanted = types_of(q.types.as_deref())?;
    open_stream(
        &req,
        state,
        crate::authz::Follower::of(&member),
        vec![(org, after)],
        cursor.map(|(_, c)| c).unwrap_or_default(),
        wanted,
        None,
    )
    .await
}

async fn my_stream(
    req: StreamRequest,
    state: State,
    caller: crate::auth::Caller,
    Query(q): Query<StreamQuery>,
) -> Result<EventStream, ApiError> {
    use tenancy::ports::OrgRepository;
    let cursor = resume_cursor(&req, q.after)?;
    let wanted = types_of(q.types.as_deref())?;
    let user = caller.user_id();
    let orgs: Vec<(uuid::Uuid, Option<u64>)> = state
        .orgs
        .memberships_of(user)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?
        .iter()
        .map(|(org, _)| {
            let id = org.id.as_uuid();
            let at = cursor
                .as_ref()
                .and_then(|(_, c)| c.seq_in(ChainId::Org(id)));
            (id, at)
        })
        .collect();
    open_stream(
        &req,
        state,
        crate::authz::Follower::User(user.as_uuid()),
        orgs,
        cursor.map(|(_, c)| c).unwrap_or_default(),
        wanted,
        Some(user.as_uuid()),
    )
    .await
}

/// One org a stream follows.
struct Followed {
    org: uuid::Uuid,
    chain: ChainId,
    /// The last seq handled (shown or skipped).
    pos: u64,
    selection: audit::Selection,
}

/// What `/me/stream` keeps to push its user's unread notification count.
struct Inbox {
    user: uuid::Uuid,
    /// The users whose inboxes changed (the event hub's second broadcast).
    changes: tokio::sync::broadcast::Receiver<std::sync::Arc<[uuid::Uuid]>>,
    /// The count last sent.
    sent: Option<u64>,
}

/// A stream's state between two frames.
struct Streaming {
    state: actix_web::web::Data<crate::state::AppState>,
    who: crate::authz::Follower,
    /// The caller's token as verified when the stream opened: every second its expiry
    /// and its session's (or API key's) liveness are checked again, without hashing or
    /// verifying it again.
    verified: std::sync::Arc<credentials::VerifiedToken>,
    /// One stream per org: its end ends the stream (`/me/stream` drops the org, and
    /// follows orgs the user joins).
    single: bool,
    /// `/me/stream`: the user's unread count.
    inbox: Option<Inbox>,
    wanted: Option<BTreeSet<&'static str>>,
    follows: Vec<Followed>,
    cursor: EventCursor,
    live: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::event_hub::LiveEvent>>,
    frames: std::collections::VecDeque<Bytes>,
    /// Follows whose backlog is still to be read.
    behind: Vec<usize>,
    tick: tokio::time::Interval,
    heartbeat: std::time::Duration,
    last_frame: tokio::time::Instant,
    done: bool,
    /// Counts the stream in `ptoc_streams_open` while it lives.
    _open: crate::http::metrics::StreamGuard,
}

/// How many events a stream reads from the database at a time.
const STREAM_PAGE: u32 = 200;

fn bearer_of(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

async fn open_stream(
    req: &StreamRequest,
    state: State,
    who: crate::authz::Follower,
    orgs: Vec<(uuid::Uuid, Option<u64>)>,
    cursor: EventCursor,
    wanted: Option<BTreeSet<&'static str>>,
    inbox_of: Option<uuid::Uuid>,
) -> Result<EventStream, ApiError> {
    // `/me/stream` (the user's own stream, with their inbox) follows orgs as the user
    // joins and leaves them; an org's stream ends with the membership.
    let single = inbox_of.is_none();
    // Subscribe before reading anything: what commits from now on is either in the
    // backlog read below or arrives live (or both: de-duplicated by seq).
    let live = state.events.subscribe();
    let inbox = inbox_of.map(|user| Inbox {
        user,
        changes: state.events.subscribe_inbox(),
        sent: None,
    });
    let mut follows = Vec::new();
    for (org, after) in orgs {
        let chain = ChainId::Org(org);
        let Some(receiver) = crate::authz::receiver(&state.authz, org, who).await? else {
            continue;
        };
        let floor = persistence::routing::scope(true, state.audit_log.archived_through(chain))
            .await
            .map_err(|e| ApiError::internal(Box::new(e)))?;
        let pos = match after {
            Some(at) if at < floor => return Err(expired(floor)),
            Some(at) => at,
            None => floor,
        };
        follows.push(Followed {
            org,
            chain,
            pos,
            selection: receiver.selection(wanted.as_ref()),
        });
    }
    if single && follows.is_empty() {
        return Err(ApiError::not_found("no such organization"));
    }
    let heartbeat = state.stream_heartbeat;
    let mut tick = tokio::time::interval(heartbeat.min(std::time::Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let behind = (0..follows.len()).collect();
    // The route's extractor verified the token; this is a cache hit.
    let verified = state
        .auth
        .authenticate(&req.token, req.token_org)
        .await?
        .verified;
    let open = state.open_streams.opened();
    let mut streaming = Streaming {
        state: state.0,
        who,
        verified,
        single,
        inbox,
        wanted,
        follows,
        cursor,
        live,
        frames: std::collections::VecDeque::from([Bytes::from_static(
            b"retry: 2000\n: stream open\n\n",
        )]),
        behind,
        tick,
        heartbeat,
        last_frame: tokio::time::Instant::now(),
        done: false,
        _open: open,
    };
    // The unread count once at the start (read after subscribing to its changes).
    streaming.push_unread().await;
    Ok(EventStream(Box::pin(futures_util::stream::unfold(
        streaming,
        |mut s| async move {
            let frame = s.next_frame().await?;
            Some((Ok::<_, std::convert::Infallible>(frame), s))
        },
    ))))
}

/// `event: unread` with `data: {"unread": N}`: no `id:`, so the client's position stays.
fn unread_frame(unread: u64) -> Bytes {
    Bytes::from(format!(
        "event: unread\ndata: {}\n\n",
        serde_json::json!({ "unread": unread })
    ))
}

/// Whether the next inbox change concerns the stream's user (a lagging receiver may
/// have missed it: yes); never ready without an inbox.
async fn inbox_changed(inbox: &mut Option<Inbox>) -> bool {
    let Some(inbox) = inbox else {
        return std::future::pending().await;
    };
    match inbox.changes.recv().await {
        Ok(users) => users.contains(&inbox.user),
        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
        Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending().await,
    }
}

/// The JSON of `event`'s view after its `id` member (`,"type":…}`): the view is
/// rendered with an empty id, which is then cut off. The id (a hex cursor) needs no
/// escaping, so `{"id":"<cursor>"` + the tail is the view's JSON.
fn render_tail(event: ChangeEvent) -> String {
    const EMPTY_ID: &str = "{\"id\":\"\"";
    let mut scratch = EventCursor::default();
    let mut v = view(event, &mut scratch);
    v.id = String::new();
    let json = serde_json::to_string(&v).unwrap_or_default();
    json.strip_prefix(EMPTY_ID)
        .map_or(json.clone(), str::to_owned)
}

fn end_frame(reason: &str) -> Bytes {
    Bytes::from(format!(
        "event: end\ndata: {}\n\n",
        serde_json::json!({ "reason": reason })
    ))
}

impl Streaming {
    /// The next frame to send; `None` when the stream is over.
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.frames.pop_front() {
                self.last_frame = tokio::time::Instant::now();
                return Some(frame);
            }
            if self.done {
                return None;
            }
            if let Some(i) = self.behind.first().copied() {
                // The backlog, a page at a time (at most one page is held).
                match Box::pin(self.read_from_db(i, None)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        self.behind.remove(0);
                    }
                    Err(reason) => self.end(reason),
                }
                continue;
            }
            // The work an event or a tick starts is boxed: the future every idle stream
            // holds stays small (it is as large as the largest state it may reach).
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(live) => Box::pin(self.on_live(&live)).await,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        self.end("slow_consumer");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => self.end("shutdown"),
                },
                mine = inbox_changed(&mut self.inbox) => if mine {
                    Box::pin(self.push_unread()).await;
                },
                _ = self.tick.tick() => Box::pin(self.on_tick()).await,
            }
        }
    }

    /// Reads the user's unread count from the primary and queues an `unread` frame if
    /// it is not the count last sent (`/me/stream` only). A failed read is logged and
    /// skipped: the next change reads again.
    async fn push_unread(&mut self) {
        use notifications::UnreadCount;
        let Some(inbox) = &mut self.inbox else {
            return;
        };
        let read =
            persistence::routing::scope(true, self.state.notifications.unread_count(inbox.user))
                .await;
        match read {
            Ok(unread) if inbox.sent != Some(unread) => {
                inbox.sent = Some(unread);
                self.frames.push_back(unread_frame(unread));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "a stream could not read its unread count"),
        }
    }

    fn end(&mut self, reason: &str) {
        self.frames.push_back(end_frame(reason));
        self.done = true;
    }

    /// Reads the next page of follow `i` from the primary (up to `until` when given);
    /// `Ok(true)` when there may be more to read.
    async fn read_from_db(&mut self, i: usize, until: Option<u64>) -> Result<bool, &'static str> {
        let f = &self.follows[i];
        let page = persistence::routing::scope(
            true,
            audit::read_page(
                &self.state.audit_log,
                f.chain,
                Some(f.pos),
                &f.selection,
                STREAM_PAGE,
            ),
        )
        .await;
        let page = match page {
            Ok(page) => page,
            Err(ChangePageError::Expired { .. }) => return Err("cursor_expired"),
            Err(ChangePageError::Storage(e)) => {
                tracing::warn!(error = %e, "an event stream could not read its events");
                return Err("unavailable");
            }
        };
        let moved = page.next > f.pos;
        let full = page.events.len() >= STREAM_PAGE as usize;
        for event in page.events {
            self.push_event(event);
        }
        let f = &mut self.follows[i];
        f.pos = f.pos.max(page.next);
        Ok(moved && (full || until.is_some_and(|u| f.pos < u)))
    }

    fn push_event(&mut self, event: ChangeEvent) {
        let view = view(event, &mut self.cursor);
        let data = serde_json::to_string(&view).unwrap_or_default();
        self.frames
            .push_back(Bytes::from(format!("id: {}\ndata: {data}\n\n", view.id)));
    }

    /// Queues a live event: its JSON is rendered once for every stream (the first to send
    /// it renders it); only the cursor is this stream's.
    fn push_live(&mut self, live: &crate::event_hub::LiveEvent, event: &ChangeEvent) {
        let tail = live
            .rendered
            .get_or_init(|| render_tail(event.clone()).into());
        self.cursor.set(live.chain, live.seq);
        let id = self.cursor.encode();
        self.frames.push_back(Bytes::from(format!(
            "id: {id}\ndata: {{\"id\":\"{id}\"{tail}\n\n"
        )));
    }

    async fn on_live(&mut self, live: &crate::event_hub::LiveEvent) {
        let followed = self.follows.iter().position(|f| f.chain == live.chain);
        let Some(i) = (match followed {
            Some(i) => Some(i),
            None => self.follow_joined(live).await,
        }) else {
            return;
        };
        let pos = self.follows[i].pos;
        if live.seq <= pos {
            return; // Already read from the backlog (or a repeat).
        }
        if live.seq > pos + 1 {
            // Something came before it that this stream has not seen: read the gap
            // (and the event itself) from the database, in order.
            loop {
                match self.read_from_db(i, Some(live.seq)).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(reason) => return self.end(reason),
                }
            }
            if self.follows[i].pos >= live.seq {
                return;
            }
            // Not readable yet (a lagging read): keep the order, take it from here.
        }
        self.follows[i].pos = live.seq;
        if let Some(event) = &live.event
            && self.follows[i].selection.admits(event)
        {
            self.push_live(live, event);
        }
        // Rights may have changed with it: decide again before the next event (the
        // dispatcher retired the permission caches before it broadcast the event).
        if live
            .event
            .as_ref()
            .is_some_and(|e| e.publication.kind.changes_rights())
        {
            self.decide_again().await;
        }
    }

    /// `/me/stream`: an event about the user as a member of an org the stream does not
    /// follow (they joined, were added or restored) makes the stream follow the org if
    /// they are now an active member, from that event on (it is handled next, like any
    /// live event). The dispatcher retired the permission caches before it broadcast
    /// the event, so the membership is seen. Returns the new follow's index.
    async fn follow_joined(&mut self, live: &crate::event_hub::LiveEvent) -> Option<usize> {
        let crate::authz::Follower::User(me) = self.who else {
            return None;
        };
        if self.single || self.done {
            return None;
        }
        let ChainId::Org(org) = live.chain else {
            return None;
        };
        let event = live.event.as_ref()?;
        if event.subject_type != "member" || event.subject_id != me.to_string() {
            return None;
        }
        let receiver = match crate::authz::receiver(&self.state.authz, org, self.who).await {
            Ok(receiver) => receiver?,
            Err(e) => {
                tracing::warn!(error = ?e, %org, "a stream could not decide whether to follow a joined org");
                return None;
            }
        };
        let pos = live.seq.saturating_sub(1);
        // The cursor names the org from here: a reconnect resumes it at the join.
        self.cursor.set(live.chain, pos);
        self.follows.push(Followed {
            org,
            chain: live.chain,
            pos,
            selection: receiver.selection(self.wanted.as_ref()),
        });
        Some(self.follows.len() - 1)
    }

    /// Decides again who sees what in each followed org; ends the stream (or drops the
    /// org, on `/me/stream`) where the follower is no longer an active member.
    async fn decide_again(&mut self) {
        let mut i = 0;
        while i < self.follows.len() {
            let org = self.follows[i].org;
            match crate::authz::receiver(&self.state.authz, org, self.who).await {
                Ok(Some(receiver)) => {
                    self.follows[i].selection = receiver.selection(self.wanted.as_ref());
                    i += 1;
                }
                Ok(None) if self.single => return self.end("access_ended"),
                Ok(None) => {
                    self.follows.remove(i);
                    self.behind.retain(|b| *b != i);
                    for b in &mut self.behind {
                        if *b > i {
                            *b -= 1;
                        }
                    }
                }
                Err(_) => i += 1,
            }
        }
    }

    async fn on_tick(&mut self) {
        // The session (or API key) must still be valid: revocations reach every
        // instance's credential cache.
        if self.state.auth.recheck(&self.verified).await.is_err() {
            return self.end("session_ended");
        }
        // Who sees what, again (from the permission engine's cache).
        self.decide_again().await;

        if self.done {
            return;
        }
        if self.last_frame.elapsed() >= self.heartbeat {
            self.frames
                .push_back(Bytes::from_static(b": heartbeat\n\n"));
        }
    }
}

/// A `text/event-stream` response.
pub struct EventStream(
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>>>>,
);

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl actix_web::Responder for EventStream {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> actix_web::HttpResponse {
        actix_web::HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
            .insert_header(("x-accel-buffering", "no"))
            // Never compressed, whatever the client accepts: a deflate state per open
            // stream costs hundreds of KiB (10,000 streams would need gigabytes), every
            // frame is flushed on its own so little would be saved, and compressing
            // secret-bearing frames beside others' data is what BREACH exploits.
            .insert_header((
                actix_web::http::header::CONTENT_ENCODING,
                actix_web::http::header::ContentEncoding::Identity,
            ))
            .streaming(self.0)
    }
}

impl aide::OperationOutput for EventStream {
    type Inner = ();
    fn inferred_responses(
        _: &mut aide::generate::GenContext,
        _: &mut aide::openapi::Operation,
    ) -> Vec<(Option<aide::openapi::StatusCode>, aide::openapi::Response)> {
        vec![(
            Some(aide::openapi::StatusCode::Code(200)),
            aide::openapi::Response {
                description: "Server-sent events: `id: <cursor>` and `data: <ChangeEventView JSON>` per event, `: heartbeat` comments, on `/me/stream` `event: unread` with `data: {\"unread\": N}` (no `id:`), a final `event: end` with `data: {\"reason\": …}`".to_owned(),
                content: indexmap::IndexMap::from_iter([(
                    "text/event-stream".to_owned(),
                    aide::openapi::MediaType::default(),
                )]),
                ..Default::default()
            },
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<F, Fut>(_: F) -> usize
    where
        F: FnOnce(&'static mut Streaming) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn a_live_frame_is_the_views_json_with_this_streams_cursor() {
        let org = uuid::Uuid::now_v7();
        let event = ChangeEvent {
            chain: ChainId::Org(org),
            seq: 7,
            publication: audit::publication_named("org.updated").expect("published"),
            occurred_at: time::OffsetDateTime::now_utc(),
            actor: audit::Actor::System,
            subject_type: "org".into(),
            subject_id: org.to_string(),
            data: serde_json::json!({"change": "update", "changed": ["name"], "note": "a \"quoted\" name"}),
        };
        let mut cursor = EventCursor::default();
        let whole = serde_json::to_value(view(event.clone(), &mut cursor)).expect("json");
        let tail = render_tail(event);
        let id = cursor.encode();
        let joined: serde_json::Value =
            serde_json::from_str(&format!("{{\"id\":\"{id}\"{tail}")).expect("valid JSON");
        assert_eq!(joined, whole);
        assert_eq!(joined["id"], id.as_str());
    }

    #[test]
    fn an_idle_stream_holds_little() {
        let next = future_size(Streaming::next_frame);
        let state = std::mem::size_of::<Streaming>();
        eprintln!("next_frame future {next} B, Streaming {state} B");
        assert!(next + state < 1024, "{next} + {state}");
    }
}
