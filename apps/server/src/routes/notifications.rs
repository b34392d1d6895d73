//! Notifications (issue #19): the caller's inbox (`/me/notifications`), their delivery
//! preferences (`/me/notification-preferences`) and an org's officers sending to its
//! members (`POST /orgs/{org_id}/notifications`). Rules in the `notifications` crate,
//! storage in `notifications-store`; the daily digest job is spawned at startup.

use actix_web::http::Method;
use garde::Validate;
use notifications::{
    Audience, Channel, Delivery, Kind, Notification, PreferenceError, Preferences,
};
use notifications_store::{Outgoing, SendError, SetPreferencesError};
use permissions::{BuiltinRole, PermissionKey};
use rate_limit::RateClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::invitations::rfc3339;
use super::members::RoleChoiceDto;
use crate::auth::{Caller, OrgMember};
use crate::http::{
    ApiError, ApiRoutes, Created, ErrorCode, FieldError, IfMatch, Json, NoContent, Paged, Path,
    Query, Reply, RouteDoc, Tagged,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "notifications";
    r.get(
        "/api/v2/me/notifications",
        list_notifications,
        RouteDoc::new("list_notifications", "Your notifications, newest first", TAG)
            .description("Your in-app inbox across every org (and the platform's own notices), newest first, cursor-paginated, with `total`. `unread=true` lists unread ones only. Kinds: `system`, `security`, `activity`, `announcement`. Only what your `in_app` preference delivers is here (security notices always are). `GET …/notifications/unread-count` answers the unread count alone.")
            .rate_class(RateClass::List)
            .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/me/notifications/unread-count",
        unread_count,
        RouteDoc::new(
            "unread_notification_count",
            "How many of your notifications are unread",
            TAG,
        )
        .description("`{unread, total}` of your in-app inbox."),
    );
    r.post(
        "/api/v2/me/notifications/read-all",
        mark_all_read,
        RouteDoc::new("mark_all_notifications_read", "Mark all your notifications read", TAG)
            .description("Marks every unread item of your inbox read; answers how many were marked (`marked`) and the unread count after (0).")
            .rate_class(RateClass::Update),
    );
    r.post(
        "/api/v2/me/notifications/{notification_id}/read",
        mark_read,
        RouteDoc::new("mark_notification_read", "Mark one of your notifications read", TAG)
            .description("Sets `read_at` (unchanged if it was read already) and answers the notification. 404 if it is not in your inbox.")
            .rate_class(RateClass::Update)
            .errors(&[ErrorCode::NotFound]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/me/notifications/{notification_id}",
        delete_notification,
        RouteDoc::new("delete_notification", "Delete one of your notifications", TAG)
            .description("Removes it from your inbox (and from your next daily digest). 204; 404 if it is not in your inbox.")
            .rate_class(RateClass::Delete)
            .errors(&[ErrorCode::NotFound]),
    );
    r.get(
        "/api/v2/me/notification-preferences",
        get_preferences,
        RouteDoc::new("get_notification_preferences", "How you want each kind of notification delivered", TAG)
            .description("Per kind (`system`, `security`, `activity`, `announcement`) and channel (`in_app`, `email`): `instant`, `daily_digest` (e-mail: one message a day with the day's items; in the inbox the same as `instant`) or `off`. `version` 0: never set (the defaults: everything `instant`, except activity e-mails in the daily digest). Carries an `ETag`.")
    );
    r.route(
        Method::PUT,
        "/api/v2/me/notification-preferences",
        put_preferences,
        RouteDoc::new("put_notification_preferences", "Set how you want each kind of notification delivered", TAG)
            .description("Replaces your preferences: a kind or channel left out takes its default. Security notices can't be turned off: `off` for `security` on any channel is 422 (`security_notices_required`). Send the `version` you read (or `If-Match`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`.")
            .rate_class(RateClass::Update)
            .errors(&[ErrorCode::VersionMismatch, ErrorCode::PreconditionRequired, ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/notifications",
        send_notification,
        RouteDoc::new("send_notification", "Send an announcement to members of the org", TAG)
            .description("Sends `{kind: \"announcement\", title, body}` to the org's active members named by `to`: `{members: [user ids]}`, `{roles: [built-in names or {custom_role_id}]}` (a built-in name matches members holding that built-in role), `{committees: [names]}` (ignoring case) or `{all: true}`. Recipients are resolved, their preferences applied (an inbox item; an e-mail now; an entry in their daily digest), and the e-mails queued in one transaction; audited `notification.send` with the counts (not the message). Answers the counts; `Location` is the send's audit record. Needs `communications.send` (board members and up by default).")
            .permission(PermissionKey::CommunicationsSend)
            .rate_class(RateClass::Create)
            .errors(&[ErrorCode::ValidationFailed, ErrorCode::PermissionDenied]),
    );
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KindDto {
    /// From the platform.
    System,
    /// About your account's safety (can't be turned off).
    Security,
    /// Something that concerns you happened.
    Activity,
    /// From an org's officers.
    Announcement,
}

impl From<Kind> for KindDto {
    fn from(k: Kind) -> Self {
        match k {
            Kind::System => Self::System,
            Kind::Security => Self::Security,
            Kind::Activity => Self::Activity,
            Kind::Announcement => Self::Announcement,
        }
    }
}

/// One notification in your inbox.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NotificationView {
    /// Its id.
    pub id: Uuid,
    /// The org it came from (`null`: the platform).
    pub org_id: Option<Uuid>,
    /// What it is about.
    pub kind: KindDto,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// Who sent it (`null`: the system).
    pub sender_id: Option<Uuid>,
    /// Whether you read it.
    pub read: bool,
    /// When you read it (RFC 3339).
    pub read_at: Option<String>,
    /// When it was sent (RFC 3339).
    pub created_at: String,
}

fn view(n: Notification) -> NotificationView {
    NotificationView {
        id: n.id,
        org_id: n.org_id,
        kind: n.kind.into(),
        title: n.title,
        body: n.body,
        sender_id: n.sender,
        read: n.read_at.is_some(),
        read_at: n.read_at.map(rfc3339),
        created_at: rfc3339(n.created_at),
    }
}

/// Which notifications, and a page of them.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// Only unread ones.
    #[garde(skip)]
    pub unread: Option<bool>,
    /// The `next_cursor` of the previous page.
    #[garde(skip)]
    pub cursor: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    #[garde(inner(range(min = 1, max = 200)))]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
}

async fn list_notifications(
    state: State,
    caller: Caller,
    Query(q): Query<InboxQuery>,
) -> Result<Paged<NotificationView>, ApiError> {
    let me = caller.user_id().as_uuid();
    let unread_only = q.unread.unwrap_or(false);
    let limit = crate::http::paging::page_limit(q.limit);
    let rows = state
        .notifications
        .list(me, unread_only, q.cursor, u64::from(limit) + 1)
        .await
        .map_err(internal)?;
    let counts = state.notifications.counts(me).await.map_err(internal)?;
    let total = if unread_only {
        counts.unread
    } else {
        counts.total
    };
    Ok(Paged::from_overfetch(rows, limit, |n| n.id, Some(total)).map(view))
}

/// Your inbox's counts.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UnreadView {
    /// Unread items.
    pub unread: u64,
    /// All items.
    pub total: u64,
}

async fn unread_count(state: State, caller: Caller) -> Result<Reply<UnreadView>, ApiError> {
    let c = state
        .notifications
        .counts(caller.user_id().as_uuid())
        .await
        .map_err(internal)?;
    Ok(Reply(UnreadView {
        unread: c.unread,
        total: c.total,
    }))
}

/// What marking all read did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MarkedView {
    /// Items marked read now.
    pub marked: u64,
    /// Unread items left.
    pub unread: u64,
}

async fn mark_all_read(state: State, caller: Caller) -> Result<Reply<MarkedView>, ApiError> {
    let me = caller.user_id().as_uuid();
    let marked = state
        .notifications
        .mark_all_read(me)
        .await
        .map_err(internal)?;
    let unread = state
        .notifications
        .counts(me)
        .await
        .map_err(internal)?
        .unread;
    Ok(Reply(MarkedView { marked, unread }))
}

/// Path of one of your notifications.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NotificationPath {
    /// Notification id.
    pub notification_id: Uuid,
}

fn no_such() -> ApiError {
    ApiError::not_found("no such notification")
}

fn internal(e: notifications::StorageFailure) -> ApiError {
    ApiError::internal(Box::new(e))
}

async fn mark_read(
    state: State,
    caller: Caller,
    Path(p): Path<NotificationPath>,
) -> Result<Reply<NotificationView>, ApiError> {
    let n = state
        .notifications
        .mark_read(caller.user_id().as_uuid(), p.notification_id)
        .await
        .map_err(internal)?
        .ok_or_else(no_such)?;
    Ok(Reply(view(n)))
}

async fn delete_notification(
    state: State,
    caller: Caller,
    Path(p): Path<NotificationPath>,
) -> Result<NoContent, ApiError> {
    let deleted = state
        .notifications
        .delete(caller.user_id().as_uuid(), p.notification_id)
        .await
        .map_err(internal)?;
    if deleted {
        Ok(NoContent)
    } else {
        Err(no_such())
    }
}

/// How a channel delivers a kind.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryDto {
    /// At once.
    Instant,
    /// E-mail: in one message a day; in-app: the same as `instant`.
    DailyDigest,
    /// Not on this channel.
    Off,
}

impl From<Delivery> for DeliveryDto {
    fn from(d: Delivery) -> Self {
        match d {
            Delivery::Instant => Self::Instant,
            Delivery::DailyDigest => Self::DailyDigest,
            Delivery::Off => Self::Off,
        }
    }
}

impl From<DeliveryDto> for Delivery {
    fn from(d: DeliveryDto) -> Self {
        match d {
            DeliveryDto::Instant => Self::Instant,
            DeliveryDto::DailyDigest => Self::DailyDigest,
            DeliveryDto::Off => Self::Off,
        }
    }
}

/// One kind's delivery on each channel.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChannelsView {
    /// In the inbox.
    pub in_app: DeliveryDto,
    /// By e-mail.
    pub email: DeliveryDto,
}

/// Your notification preferences.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PreferencesView {
    /// Platform notices.
    pub system: ChannelsView,
    /// Security notices (never `off`).
    pub security: ChannelsView,
    /// Activity.
    pub activity: ChannelsView,
    /// Announcements from your orgs.
    pub announcement: ChannelsView,
    /// Version (0: never set).
    pub version: i64,
}

fn preferences_view(p: &Preferences, version: i64) -> PreferencesView {
    let of = |k: Kind| ChannelsView {
        in_app: p.get(k, Channel::InApp).into(),
        email: p.get(k, Channel::Email).into(),
    };
    PreferencesView {
        system: of(Kind::System),
        security: of(Kind::Security),
        activity: of(Kind::Activity),
        announcement: of(Kind::Announcement),
        version,
    }
}

async fn get_preferences(
    state: State,
    caller: Caller,
) -> Result<Tagged<PreferencesView>, ApiError> {
    let (p, version) = state
        .notifications
        .preferences(caller.user_id().as_uuid())
        .await
        .map_err(internal)?;
    Ok(Tagged {
        data: preferences_view(&p, version),
        version,
    })
}

/// One kind's choices (a channel left out: its default).
#[derive(Debug, Default, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ChannelsBody {
    /// In the inbox.
    #[garde(skip)]
    pub in_app: Option<DeliveryDto>,
    /// By e-mail.
    #[garde(skip)]
    pub email: Option<DeliveryDto>,
}

/// Your preferences (a kind left out: its defaults).
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PreferencesBody {
    /// The version you read (or `If-Match`; 0 before your first change); required.
    #[garde(skip)]
    pub version: Option<i64>,
    /// Platform notices.
    #[garde(dive)]
    pub system: Option<ChannelsBody>,
    /// Security notices (`off` is refused).
    #[garde(dive)]
    pub security: Option<ChannelsBody>,
    /// Activity.
    #[garde(dive)]
    pub activity: Option<ChannelsBody>,
    /// Announcements.
    #[garde(dive)]
    pub announcement: Option<ChannelsBody>,
}

fn refused(e: PreferenceError) -> ApiError {
    let PreferenceError::SecurityLocked(channel) = e;
    ApiError::validation(vec![FieldError {
        field: format!("security.{}", channel.as_str()),
        code: e.code().into(),
        message: e.to_string(),
    }])
}

async fn put_preferences(
    state: State,
    caller: Caller,
    if_match: IfMatch,
    Json(body): Json<PreferencesBody>,
) -> Result<Reply<PreferencesView>, ApiError> {
    let version = super::common::required_version(body.version, if_match)?;
    let mut choices = Vec::new();
    for (kind, channels) in [
        (Kind::System, &body.system),
        (Kind::Security, &body.security),
        (Kind::Activity, &body.activity),
        (Kind::Announcement, &body.announcement),
    ] {
        let Some(c) = channels else { continue };
        for (channel, d) in [(Channel::InApp, c.in_app), (Channel::Email, c.email)] {
            if let Some(d) = d {
                choices.push((kind, channel, Delivery::from(d)));
            }
        }
    }
    let (p, version) = state
        .notifications
        .set_preferences(caller.user_id().as_uuid(), version, &choices)
        .await
        .map_err(|e| match e {
            SetPreferencesError::VersionMismatch { current } => ApiError::new(
                ErrorCode::VersionMismatch,
                "your notification preferences changed since you read them",
            )
            .with_details(serde_json::json!({ "current_version": current })),
            SetPreferencesError::Refused(e) => refused(e),
            SetPreferencesError::Storage(e) => internal(e),
        })?;
    Ok(Reply(preferences_view(&p, version)))
}

/// What an org may send (announcements only: the platform sends the other kinds).
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SendKindDto {
    /// An announcement to members.
    #[default]
    Announcement,
}

/// Who gets it: exactly one of `members`, `roles`, `committees`, `all`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AudienceDto {
    /// These members (user ids).
    Members(Vec<Uuid>),
    /// Members holding these roles.
    Roles(Vec<RoleChoiceDto>),
    /// Members of these committees.
    Committees(Vec<String>),
    /// Every active member (`true`).
    All(bool),
}

/// An announcement to send.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// `announcement` (the default).
    #[garde(skip)]
    #[serde(default)]
    pub kind: SendKindDto,
    /// Title, 1–200 characters.
    #[garde(length(chars, min = 1, max = 200))]
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// Text, 1–5,000 characters.
    #[garde(length(chars, min = 1, max = 5000))]
    #[schemars(length(min = 1, max = 5000))]
    pub body: String,
    /// The recipients.
    #[garde(skip)]
    pub to: AudienceDto,
}

/// What a send did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SentView {
    /// The send's id (its audit record's `entity_id`).
    pub id: Uuid,
    /// `announcement`.
    pub kind: KindDto,
    /// Active members it went to.
    pub recipients: u64,
    /// Inbox items created.
    pub in_app: u64,
    /// E-mails queued now.
    pub emailed: u64,
    /// Items waiting for their recipient's daily digest.
    pub digest: u64,
}

/// Most recipients or names one send may list.
const MAX_LISTED: usize = 1000;

fn audience(to: AudienceDto) -> Result<Audience, ApiError> {
    let bad = |message: &str| {
        ApiError::validation(vec![FieldError {
            field: "to".into(),
            code: "invalid_value".into(),
            message: message.into(),
        }])
    };
    let len = match &to {
        AudienceDto::Members(v) => v.len(),
        AudienceDto::Roles(v) => v.len(),
        AudienceDto::Committees(v) => v.len(),
        AudienceDto::All(_) => 1,
    };
    if len == 0 {
        return Err(bad("name at least one recipient"));
    }
    if len > MAX_LISTED {
        return Err(bad("name at most 1,000 recipients, roles or committees"));
    }
    Ok(match to {
        AudienceDto::Members(ids) => Audience::Members(ids),
        AudienceDto::Roles(roles) => {
            let (mut builtin, mut custom) = (Vec::new(), Vec::new());
            for r in roles {
                match r {
                    RoleChoiceDto::Builtin(b) => {
                        builtin.push(BuiltinRole::from(b).as_str().to_owned());
                    }
                    RoleChoiceDto::Custom { custom_role_id } => custom.push(custom_role_id),
                }
            }
            Audience::Roles { builtin, custom }
        }
        AudienceDto::Committees(names) => {
            if names
                .iter()
                .any(|n| n.trim().is_empty() || n.chars().count() > 100)
            {
                return Err(bad("a committee name is 1–100 characters"));
            }
            Audience::Committees(names.into_iter().map(|n| n.trim().to_owned()).collect())
        }
        AudienceDto::All(true) => Audience::All,
        AudienceDto::All(false) => return Err(bad("`all` must be true")),
    })
}

async fn send_notification(
    state: State,
    member: OrgMember,
    Json(body): Json<SendBody>,
) -> Result<Created<SentView>, ApiError> {
    let to = audience(body.to)?;
    let SendKindDto::Announcement = body.kind;
    let sender = member.user_id()?.as_uuid();
    let org = member.org_id().as_uuid();
    let (id, outcome) = state
        .notifications
        .send_to_org(
            &member.audit_context(),
            org,
            sender,
            &Outgoing {
                kind: Kind::Announcement,
                title: body.title,
                body: body.body,
            },
            &to,
        )
        .await
        .map_err(|e| match e {
            SendError::NotFound => ApiError::not_found("no such org"),
            SendError::Storage(e) => internal(e),
        })?;
    Ok(Created::at(
        format!("/api/v2/orgs/{org}/audit-logs?entity_type=notification&entity_id={id}"),
        SentView {
            id,
            kind: KindDto::Announcement,
            recipients: outcome.recipients,
            in_app: outcome.in_app,
            emailed: outcome.emailed,
            digest: outcome.digest,
        },
    ))
}
