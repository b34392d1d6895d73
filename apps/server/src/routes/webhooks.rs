//! Webhooks (issue #19): an org's endpoints receive its change events, signed per
//! Standard Webhooks 1.0, at least once, retried with back-off for about three days.
//! Rules in the `webhooks` crate, storage and delivery in `webhooks-store`; the worker
//! is spawned at startup and woken by the after-commit dispatcher.
//!
//! Only the org's admins manage webhooks: an endpoint receives what an admin sees
//! (like API keys, an administrative capability the permission catalog does not make
//! configurable).

use actix_web::http::Method;
use garde::Validate;
use rate_limit::RateClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webhooks::{AddressError, EndpointUrl, EventFilter, FilterError};
use webhooks_store::{
    Attempt, ChangeError, Delivery, Endpoint, EndpointChanges, QueueError, StoreFailure,
};

use super::invitations::rfc3339;
use crate::auth::OrgMember;
use crate::http::{
    ApiError, ApiRoutes, Created, ErrorCode, FieldError, IfMatch, Json, NoContent, PageQuery,
    Paged, Path, Query, Reply, RouteDoc, Tagged,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "webhooks";
    macro_rules! signing_doc {
        () => {
            "Messages are `POST`ed as JSON `{type, timestamp, data}` (`data`: the change event as `GET …/events` shows it) with the Standard Webhooks headers `webhook-id` (the same on every attempt of a message: de-duplicate by it), `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256 of \"{id}.{timestamp}.{body}\">` under the secret's base64-decoded bytes after `whsec_`; during a rotation two space-separated signatures). A 2xx answer within 10 s delivers it; `410 Gone` disables the endpoint; anything else is retried after 5 s, 5 min, 30 min, 2 h, 5 h and 10 h six times (about 3 days), then the delivery has failed."
        };
    }
    r.post(
        "/api/v2/orgs/{org_id}/webhooks",
        create_webhook,
        RouteDoc::new(
            "create_webhook",
            "Register a webhook endpoint (its secret is shown only in this response)",
            TAG,
        )
        .description(concat!(
            "`url` must be `https` and its host a public address (private, loopback, link-local, CGNAT, unique-local and multicast addresses are refused with 422, and checked again on every delivery against what the name resolves to then); `events` names change-event types of the catalog (`GET …/events`; 422 for an unknown one). The endpoint receives the events committed after it was created. Audited `webhook.create`. ",
            signing_doc!()
        ))
        .org_admin()
        .secret_answer()
        .rate_class(RateClass::Create)
        .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/webhooks",
        list_webhooks,
        RouteDoc::new("list_webhooks", "The org's webhook endpoints (never their secrets)", TAG)
            .description("In id (creation) order, paginated (`limit`, `cursor`); `meta.pagination.total` counts them all.")
            .org_admin()
            .rate_class(RateClass::List)
            .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/webhooks/{webhook_id}",
        get_webhook,
        RouteDoc::new(
            "get_webhook",
            "One webhook endpoint (never its secret)",
            TAG,
        )
        .description("Carries an `ETag` with its version.")
        .org_admin()
        .errors(&[ErrorCode::NotFound]),
    );
    r.route(
        Method::PATCH,
        "/api/v2/orgs/{org_id}/webhooks/{webhook_id}",
        update_webhook,
        RouteDoc::new("update_webhook", "Change a webhook endpoint's URL, event types or enabled state", TAG)
            .description("Fields left out stay. `enabled: true` re-enables an endpoint (one disabled by a `410 Gone` too): it receives the events committed from then on (redeliver older ones by hand). Send the `version` you read (or `If-Match`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`. Audited `webhook.update`.")
            .org_admin()
            .rate_class(RateClass::Update)
            .errors(&[
                ErrorCode::NotFound,
                ErrorCode::ValidationFailed,
                ErrorCode::VersionMismatch,
                ErrorCode::PreconditionRequired,
            ]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/orgs/{org_id}/webhooks/{webhook_id}",
        delete_webhook,
        RouteDoc::new(
            "delete_webhook",
            "Delete a webhook endpoint and its deliveries",
            TAG,
        )
        .description("Answers 204; 404 for an unknown endpoint. Audited `webhook.delete`.")
        .org_admin()
        .rate_class(RateClass::Delete)
        .errors(&[ErrorCode::NotFound]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/webhooks/{webhook_id}/rotate-secret",
        rotate_secret,
        RouteDoc::new(
            "rotate_webhook_secret",
            "Replace a webhook endpoint's secret (the new one is shown only in this response)",
            TAG,
        )
        .description("For 24 hours messages carry two signatures, the new secret's and the previous one's (`previous_secret_expires_at`), so the receiver can switch without losing a message. Audited `webhook.secret_rotate` (never a secret).")
        .org_admin()
        .secret_answer()
        .rate_class(RateClass::Update)
        .errors(&[ErrorCode::NotFound]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/webhooks/{webhook_id}/ping",
        ping_webhook,
        RouteDoc::new("ping_webhook", "Send a test message to a webhook endpoint", TAG)
            .description("Queues a `webhook.ping` message (`data`: `{org_id, endpoint_id}`), signed and retried like any other, whatever the endpoint's event types; its delivery shows in `…/deliveries`. 409 when the endpoint is disabled. Audited `webhook.ping`.")
            .org_admin()
            .rate_class(RateClass::Create)
            .errors(&[ErrorCode::NotFound, ErrorCode::Conflict]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/webhooks/{webhook_id}/deliveries",
        list_deliveries,
        RouteDoc::new("list_webhook_deliveries", "A webhook endpoint's deliveries, newest first, with their attempts", TAG)
            .description("One delivery per message (event) to this endpoint: its `status` (`pending`, `sending`, `delivered`, `failed`), `attempts`, when the next is due, the last answer's status code and latency, the last error, and its newest attempts (up to 20). Cursor-paginated, with `total`.")
            .org_admin()
            .rate_class(RateClass::List)
            .errors(&[ErrorCode::NotFound, ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
        redeliver,
        RouteDoc::new("redeliver_webhook", "Send a delivery again now", TAG)
            .description("The same message (same `webhook-id` and body) is attempted again at once: a delivered or failed one once more, a pending one sooner. 409 when the endpoint is disabled. Audited `webhook.redeliver`. Answers the delivery.")
            .org_admin()
            .rate_class(RateClass::Update)
            .errors(&[ErrorCode::NotFound, ErrorCode::Conflict]),
    );
}

/// A new endpoint.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schemars(example = create_example())]
pub struct CreateWebhookBody {
    /// Where messages go: `https://…` (at most 2,048 characters).
    #[garde(length(min = 1, max = 2048))]
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// The change-event types it receives (1–100 names of the catalog, e.g.
    /// `member.added`).
    #[garde(length(min = 1, max = 100))]
    #[schemars(length(min = 1, max = 100))]
    pub events: Vec<String>,
}

fn create_example() -> serde_json::Value {
    serde_json::json!({"url": "https://example.org/hooks/pto", "events": ["member.added", "member.removed"]})
}

/// Changes to an endpoint (a field left out stays).
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookBody {
    /// The version you read (or `If-Match`); required.
    #[garde(skip)]
    pub version: Option<i64>,
    /// A new URL.
    #[garde(inner(length(min = 1, max = 2048)))]
    pub url: Option<String>,
    /// New event types.
    #[garde(inner(length(min = 1, max = 100)))]
    pub events: Option<Vec<String>>,
    /// Enable or disable it.
    #[garde(skip)]
    pub enabled: Option<bool>,
}

/// A webhook endpoint.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: Uuid,
    /// Where messages go.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Whether messages are sent.
    pub enabled: bool,
    /// Why it is disabled: `gone` (its receiver answered 410) or `manual`.
    pub disabled_reason: Option<String>,
    /// Until when the previous secret still signs too (RFC 3339), after a rotation.
    pub previous_secret_expires_at: Option<String>,
    /// Version.
    pub version: i64,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

fn view(e: Endpoint) -> WebhookView {
    let now = time::OffsetDateTime::now_utc();
    WebhookView {
        id: e.id,
        url: e.url,
        events: e.events,
        enabled: e.enabled,
        disabled_reason: e.disabled_reason,
        previous_secret_expires_at: e
            .previous_secret_until
            .filter(|until| *until > now)
            .map(rfc3339),
        version: e.version,
        created_at: rfc3339(e.created_at),
        updated_at: rfc3339(e.updated_at),
    }
}

/// A created endpoint with its secret (shown once).
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedWebhook {
    /// The endpoint.
    pub webhook: WebhookView,
    /// The signing secret, `whsec_<base64>`: verify messages with it. It cannot be
    /// shown again (rotate it if lost).
    pub secret: String,
}

/// A rotated secret (shown once).
#[derive(Debug, Serialize, JsonSchema)]
pub struct RotatedSecret {
    /// The endpoint.
    pub webhook: WebhookView,
    /// The new signing secret, `whsec_<base64>` (not shown again).
    pub secret: String,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AttemptView {
    /// When (RFC 3339).
    pub at: String,
    /// The receiver's status code (`null`: no answer).
    pub status_code: Option<u16>,
    /// How long it took, in milliseconds.
    pub latency_ms: u32,
    /// What went wrong.
    pub error: Option<String>,
}

/// One message to the endpoint.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeliveryView {
    /// Its id.
    pub id: Uuid,
    /// Its `webhook-id` header (the same on every attempt).
    pub message_id: String,
    /// The event type (`webhook.ping` for a test).
    pub event_type: String,
    /// `pending`, `sending`, `delivered` or `failed`.
    pub status: &'static str,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (RFC 3339; pending ones).
    pub next_attempt_at: Option<String>,
    /// The last answer's status code.
    pub last_status_code: Option<u16>,
    /// The last attempt's latency in milliseconds.
    pub last_latency_ms: Option<u32>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// The newest attempts (up to 20), newest first.
    pub attempt_log: Vec<AttemptView>,
}

fn attempt_view(a: Attempt) -> AttemptView {
    AttemptView {
        at: rfc3339(a.at),
        status_code: a.status_code,
        latency_ms: a.latency_ms,
        error: a.error,
    }
}

fn delivery_view(d: Delivery) -> DeliveryView {
    DeliveryView {
        id: d.id,
        message_id: webhooks::message_id(d.id),
        event_type: d.event_type,
        status: d.status.as_str(),
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at.map(rfc3339),
        last_status_code: d.last_status_code,
        last_latency_ms: d.last_latency_ms,
        last_error: d.last_error,
        created_at: rfc3339(d.created_at),
        attempt_log: d.attempt_log.into_iter().map(attempt_view).collect(),
    }
}

/// A queued test message.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PingView {
    /// The delivery's id (see `…/deliveries`).
    pub delivery_id: Uuid,
    /// Its `webhook-id` header.
    pub message_id: String,
}

/// Path of one endpoint.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct WebhookPath {
    /// Org id.
    #[allow(dead_code, reason = "documents the path parameter")]
    pub org_id: Uuid,
    /// Endpoint id.
    pub webhook_id: Uuid,
}

/// Path of one delivery.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeliveryPath {
    /// Org id.
    #[allow(dead_code, reason = "documents the path parameter")]
    pub org_id: Uuid,
    /// Endpoint id.
    pub webhook_id: Uuid,
    /// Delivery id.
    pub delivery_id: Uuid,
}

fn invalid(field: &str, code: &str, message: String) -> ApiError {
    ApiError::validation(vec![FieldError {
        field: field.into(),
        code: code.into(),
        message,
    }])
}

fn url_of(state: &State, raw: &str) -> Result<EndpointUrl, ApiError> {
    EndpointUrl::parse(raw, state.webhook_policy).map_err(|e| {
        let code = match e {
            AddressError::Malformed | AddressError::NoHost => "invalid_url",
            AddressError::TooLong => "too_long",
            AddressError::NotHttps => "https_required",
            AddressError::Credentials => "credentials_in_url",
            AddressError::NotPublic(_) => "address_not_allowed",
        };
        invalid("url", code, e.to_string())
    })
}

fn filter_of(names: &[String]) -> Result<EventFilter, ApiError> {
    EventFilter::parse(names).map_err(|e| {
        let code = match e {
            FilterError::Empty => "required",
            FilterError::TooMany => "too_many_items",
            FilterError::Unknown(_) => "unknown_event_type",
        };
        invalid("events", code, e.to_string())
    })
}

fn internal(e: StoreFailure) -> ApiError {
    ApiError::internal(e.0)
}

fn no_such() -> ApiError {
    ApiError::not_found("no such webhook endpoint")
}

fn change_error(e: ChangeError) -> ApiError {
    match e {
        ChangeError::NotFound => no_such(),
        ChangeError::VersionMismatch { current } => ApiError::new(
            ErrorCode::VersionMismatch,
            "the webhook endpoint changed since you read it",
        )
        .with_details(serde_json::json!({ "current_version": current })),
        ChangeError::Storage(e) => internal(e),
    }
}

fn queue_error(e: QueueError) -> ApiError {
    match e {
        QueueError::NotFound => ApiError::not_found("no such webhook endpoint or delivery"),
        QueueError::Disabled => ApiError::new(
            ErrorCode::Conflict,
            "the webhook endpoint is disabled; enable it first",
        )
        .with_details(serde_json::json!({ "reason": "disabled" })),
        QueueError::Storage(e) => internal(e),
    }
}

async fn create_webhook(
    state: State,
    member: OrgMember,
    Json(body): Json<CreateWebhookBody>,
) -> Result<Created<CreatedWebhook>, ApiError> {
    let url = url_of(&state, &body.url)?;
    let events = filter_of(&body.events)?;
    let org = member.org_id().as_uuid();
    let created_by = member.user_id().ok().map(|u| u.as_uuid());
    let (endpoint, secret) = state
        .webhooks
        .create(&member.audit_context(), org, created_by, &url, &events)
        .await
        .map_err(change_error)?;
    Ok(Created::at(
        format!("/api/v2/orgs/{org}/webhooks/{}", endpoint.id),
        CreatedWebhook {
            webhook: view(endpoint),
            secret: secret.expose(),
        },
    ))
}

async fn list_webhooks(
    state: State,
    member: OrgMember,
    Query(q): Query<PageQuery>,
) -> Result<Paged<WebhookView>, ApiError> {
    let limit = q.limit();
    let (rows, total) = state
        .webhooks
        .list(member.org_id().as_uuid(), q.cursor, u64::from(limit) + 1)
        .await
        .map_err(internal)?;
    Ok(Paged::from_overfetch(rows, limit, |e| e.id, Some(total)).map(view))
}

async fn get_webhook(
    state: State,
    member: OrgMember,
    Path(p): Path<WebhookPath>,
) -> Result<Tagged<WebhookView>, ApiError> {
    let endpoint = state
        .webhooks
        .get(member.org_id().as_uuid(), p.webhook_id)
        .await
        .map_err(internal)?
        .ok_or_else(no_such)?;
    Ok(Tagged {
        version: endpoint.version,
        data: view(endpoint),
    })
}

async fn update_webhook(
    state: State,
    member: OrgMember,
    Path(p): Path<WebhookPath>,
    if_match: IfMatch,
    Json(body): Json<UpdateWebhookBody>,
) -> Result<Tagged<WebhookView>, ApiError> {
    let version = super::common::required_version(body.version, if_match)?;
    let changes = EndpointChanges {
        url: body.url.as_deref().map(|u| url_of(&state, u)).transpose()?,
        events: body.events.as_deref().map(filter_of).transpose()?,
        enabled: body.enabled,
    };
    let endpoint = state
        .webhooks
        .update(
            &member.audit_context(),
            member.org_id().as_uuid(),
            p.webhook_id,
            version,
            &changes,
        )
        .await
        .map_err(change_error)?;
    Ok(Tagged {
        version: endpoint.version,
        data: view(endpoint),
    })
}

async fn delete_webhook(
    state: State,
    member: OrgMember,
    Path(p): Path<WebhookPath>,
) -> Result<NoContent, ApiError> {
    state
        .webhooks
        .delete(
            &member.audit_context(),
            member.org_id().as_uuid(),
            p.webhook_id,
        )
        .await
        .map_err(change_error)?;
    Ok(NoContent)
}

async fn rotate_secret(
    state: State,
    member: OrgMember,
    Path(p): Path<WebhookPath>,
) -> Result<Reply<RotatedSecret>, ApiError> {
    let (endpoint, secret) = state
        .webhooks
        .rotate_secret(
            &member.audit_context(),
            member.org_id().as_uuid(),
            p.webhook_id,
        )
        .await
        .map_err(change_error)?;
    Ok(Reply(RotatedSecret {
        webhook: view(endpoint),
        secret: secret.expose(),
    }))
}

async fn ping_webhook(
    state: State,
    member: OrgMember,
    Path(p): Path<WebhookPath>,
) -> Result<Created<PingView>, ApiError> {
    let org = member.org_id().as_uuid();
    let delivery = state
        .webhooks
        .ping(&member.audit_context(), org, p.webhook_id)
        .await
        .map_err(queue_error)?;
    Ok(Created::at(
        format!("/api/v2/orgs/{org}/webhooks/{}/deliveries", p.webhook_id),
        PingView {
            delivery_id: delivery,
            message_id: webhooks::message_id(delivery),
        },
    ))
}

async fn list_deliveries(
    state: State,
    member: OrgMember,
    Path(p): Path<WebhookPath>,
    Query(q): Query<PageQuery>,
) -> Result<Paged<DeliveryView>, ApiError> {
    let limit = q.limit();
    let (rows, total) = state
        .webhooks
        .deliveries(
            member.org_id().as_uuid(),
            p.webhook_id,
            q.cursor,
            u64::from(limit) + 1,
        )
        .await
        .map_err(internal)?
        .ok_or_else(no_such)?;
    Ok(Paged::from_overfetch(rows, limit, |d| d.id, Some(total)).map(delivery_view))
}

async fn redeliver(
    state: State,
    member: OrgMember,
    Path(p): Path<DeliveryPath>,
) -> Result<Reply<DeliveryView>, ApiError> {
    let org = member.org_id().as_uuid();
    state
        .webhooks
        .redeliver(&member.audit_context(), org, p.webhook_id, p.delivery_id)
        .await
        .map_err(queue_error)?;
    // The delivery as queued (read after the commit).
    state
        .webhooks
        .delivery(org, p.webhook_id, p.delivery_id)
        .await
        .map_err(internal)?
        .map(|d| Reply(delivery_view(d)))
        .ok_or_else(|| ApiError::not_found("no such webhook delivery"))
}
