//! The change events over HTTP (issue #19, `shared/spec/events.md`): the events API
//! (`GET /orgs/{org_id}/events`), a cursor-paged read of the org's events the caller may
//! see. The catalog, who sees what, what an event shows and the cursor are the audit
//! domain's ([`audit::changes`]); the receiver is decided by the permission engine
//! ([`crate::authz::receiver`]).

use std::borrow::Cow;
use std::collections::BTreeSet;

use audit::{ChainId, ChangeEvent, ChangePageError, EventCursor, EventCursorError};
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
    let receiver = crate::authz::receiver(&state.authz, &member).await?;
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
