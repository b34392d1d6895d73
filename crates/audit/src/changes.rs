//! The public change events (`shared/spec/events.md`): what the events API and the
//! stream show of the audit events, and to whom.
//!
//! * **The catalog** ([`EventType::publication`]): each recorded [`EventType`] that an
//!   org's members may follow has a public name (`member.added`,
//!   `permission.settings_changed`, …), a description, an [`Audience`] and a
//!   [`Values`] rule. Types without one (sign-ins, district and platform events) are not
//!   published. The match is exhaustive: a new type does not compile until it is
//!   classified.
//! * **Who may see it** ([`Receiver::may_see`]): the audience names what the matching
//!   REST read requires — the `admin` role (administrative capabilities are not
//!   configurable), a permission key of the catalog (plus, for events about a member,
//!   that member), or any member. The app fills a [`Receiver`] from the same permission
//!   engine as the REST guard; this module only combines.
//! * **What it shows** ([`ChangeEvent::of`]): ids, the kind of change and the names of
//!   the changed fields; the values themselves only for types whose values are not about
//!   a person and hold no secret ([`Values::Full`]).
//! * **The cursor** ([`EventCursor`]): opaque, ordered, bound to its org(s).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use permissions::{KeySet, PermissionKey};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::action::Action;
use crate::catalog::EventType;
use crate::event::{Actor, AuditEvent, ChangeType};
use crate::scope::ChainId;

/// Who may see an event of a type (besides being an active member of its org).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every active member of the org (what `GET /orgs/{id}` shows them).
    Members,
    /// Holders of the key (the permission the matching REST read requires).
    Holders(PermissionKey),
    /// Holders of the key, and the member the event is about (its subject).
    HoldersAndSubject(PermissionKey),
    /// The org's admins: settings, grants, API keys, the audit trail.
    Admins,
}

/// How much of an event's values its public form carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// The names of the changed fields only (values may be personal or secret).
    FieldNames,
    /// The names and the values before and after (configuration, not about a person).
    Full,
}

/// One entry of the public catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publication {
    /// The recorded type.
    pub kind: EventType,
    /// The public name, e.g. `member.added`.
    pub name: &'static str,
    /// What it means, for the API document.
    pub description: &'static str,
    /// Who may see it.
    pub audience: Audience,
    /// What of its values it shows.
    pub values: Values,
}

const fn publish(
    kind: EventType,
    name: &'static str,
    description: &'static str,
    audience: Audience,
    values: Values,
) -> Option<Publication> {
    Some(Publication {
        kind,
        name,
        description,
        audience,
        values,
    })
}

impl EventType {
    /// The public form of this type, `None` if it is not published (account, sign-in,
    /// district and platform events: they are not an org's changes).
    #[must_use]
    #[allow(
        clippy::too_many_lines,
        reason = "one row per type: the catalog is the table"
    )]
    pub const fn publication(self) -> Option<Publication> {
        use Audience::{Admins, Holders, HoldersAndSubject, Members};
        use PermissionKey::{UsersInvite, UsersView};
        use Values::{FieldNames, Full};
        match self {
            Self::ApiKeyCreate => publish(
                self,
                "api_key.created",
                "An API key was created (never its token).",
                Admins,
                FieldNames,
            ),
            Self::ApiKeyRevoke => publish(
                self,
                "api_key.revoked",
                "An API key was revoked.",
                Admins,
                FieldNames,
            ),
            Self::AuditArchive => publish(
                self,
                "audit.archived",
                "Old audit events were moved to archive files; cursors before them expire.",
                Admins,
                FieldNames,
            ),
            Self::AuditRetentionUpdate => publish(
                self,
                "audit.retention_changed",
                "The org's audit retention period changed (`data.before/after.days`).",
                Admins,
                Full,
            ),
            Self::DataExport => publish(
                self,
                "data.exported",
                "Data of the org was exported.",
                Admins,
                FieldNames,
            ),
            Self::InvitationAccept => publish(
                self,
                "invitation.accepted",
                "An invitation was accepted (its member is `member.added`).",
                Holders(UsersInvite),
                FieldNames,
            ),
            Self::InvitationDecline => publish(
                self,
                "invitation.declined",
                "An invitation was declined.",
                Holders(UsersInvite),
                FieldNames,
            ),
            Self::InvitationResend => publish(
                self,
                "invitation.resent",
                "An invitation's e-mail was sent again.",
                Holders(UsersInvite),
                FieldNames,
            ),
            Self::InvitationRevoke => publish(
                self,
                "invitation.revoked",
                "A pending invitation was revoked.",
                Holders(UsersInvite),
                FieldNames,
            ),
            Self::MemberInvite => publish(
                self,
                "invitation.created",
                "Someone was invited to the org.",
                Holders(UsersInvite),
                FieldNames,
            ),
            Self::JobCancel => publish(
                self,
                "job.cancelled",
                "A background job was cancelled.",
                Holders(UsersView),
                Full,
            ),
            Self::MemberCreate => publish(
                self,
                "member.added",
                "A member was added (an invitation accepted, or the org's creator).",
                HoldersAndSubject(UsersView),
                FieldNames,
            ),
            Self::MemberErase => publish(
                self,
                "member.erased",
                "What the org held about a member was erased on their request.",
                HoldersAndSubject(UsersView),
                FieldNames,
            ),
            Self::MemberJoin => publish(
                self,
                "member.joined",
                "Someone joined with the org's sign-up code.",
                HoldersAndSubject(UsersView),
                FieldNames,
            ),
            Self::MemberLeave => publish(
                self,
                "member.left",
                "A member left the org.",
                HoldersAndSubject(UsersView),
                FieldNames,
            ),
            Self::MemberRemove => publish(
                self,
                "member.removed",
                "A member was removed (restorable).",
                HoldersAndSubject(UsersView),
                FieldNames,
            ),
            Self::MemberRestore => publish(
                self,
                "member.restored",
                "A removed member was restored.",
                HoldersAndSubject(UsersView),
                FieldNames,
            ),
            Self::MemberRoleChange => publish(
                self,
                "member.role_changed",
                "A member's role changed.",
                HoldersAndSubject(UsersView),
                FieldNames,
            ),
            Self::MemberTermEnd => publish(
                self,
                "member.term_ended",
                "An officer's term ended (back to volunteer).",
                HoldersAndSubject(UsersView),
                FieldNames,
            ),
            Self::MemberUpdate => publish(
                self,
                "member.updated",
                "A member's role, status, term, committee or profile changed (`data.changed` names the fields).",
                HoldersAndSubject(UsersView),
                FieldNames,
            ),
            Self::UserProfileUpdate => publish(
                self,
                "member.account_updated",
                "A member's account details (names, phone, e-mail) were changed in this org.",
                HoldersAndSubject(UsersView),
                FieldNames,
            ),
            Self::NotificationSend => publish(
                self,
                "notification.sent",
                "An announcement was sent to members (its kind, the audience's shape and the counts; never the message or the recipients).",
                Admins,
                Full,
            ),
            Self::OrgCreate => publish(
                self,
                "org.created",
                "The organization was created.",
                Members,
                FieldNames,
            ),
            Self::OrgUpdate => publish(
                self,
                "org.updated",
                "The organization's settings changed (`data.changed` names the fields).",
                Members,
                FieldNames,
            ),
            Self::OrgDelete => publish(
                self,
                "org.deleted",
                "The organization was deleted (archived).",
                Members,
                FieldNames,
            ),
            Self::OrgMove => publish(
                self,
                "org.moved",
                "The organization moved to another school.",
                Members,
                FieldNames,
            ),
            Self::OrgDistrictChange => publish(
                self,
                "org.district_changed",
                "The organization's district changed with its school's.",
                Members,
                FieldNames,
            ),
            Self::OrgSignupCodeRotate => publish(
                self,
                "org.signup_code_rotated",
                "The org's sign-up code was replaced (never the code).",
                Admins,
                FieldNames,
            ),
            Self::PermissionGrant => publish(
                self,
                "permission.granted",
                "A permission was granted to a member directly.",
                Admins,
                FieldNames,
            ),
            Self::PermissionRevoke => publish(
                self,
                "permission.revoked",
                "A member's direct grant was revoked.",
                Admins,
                FieldNames,
            ),
            Self::PermissionUpdate => publish(
                self,
                "permission.settings_changed",
                "A permission setting of the org changed (`subject.id` is the key; `data.before/after`: min_role, enabled, locked).",
                Admins,
                Full,
            ),
            Self::PermissionInheritedUpdate => publish(
                self,
                "permission.inherited_settings_changed",
                "A district, school or platform template changed a setting the org inherits.",
                Admins,
                Full,
            ),
            Self::RoleCreate => publish(
                self,
                "role.created",
                "A custom role was created.",
                Holders(UsersView),
                Full,
            ),
            Self::RoleUpdate => publish(
                self,
                "role.updated",
                "A custom role's name, rank, extra keys or maximum changed.",
                Holders(UsersView),
                Full,
            ),
            Self::RoleDelete => publish(
                self,
                "role.deleted",
                "A custom role was deleted.",
                Holders(UsersView),
                Full,
            ),
            Self::WebhookCreate => publish(
                self,
                "webhook.created",
                "A webhook endpoint was registered (its URL and event types; never its secret).",
                Admins,
                FieldNames,
            ),
            Self::WebhookUpdate => publish(
                self,
                "webhook.updated",
                "A webhook endpoint's URL, event types or enabled state changed (`data.changed` names the fields).",
                Admins,
                FieldNames,
            ),
            Self::WebhookDelete => publish(
                self,
                "webhook.deleted",
                "A webhook endpoint was deleted.",
                Admins,
                FieldNames,
            ),
            Self::WebhookDisable => publish(
                self,
                "webhook.disabled",
                "A webhook endpoint was disabled because its receiver answered `410 Gone`.",
                Admins,
                FieldNames,
            ),
            Self::WebhookSecretRotate => publish(
                self,
                "webhook.secret_rotated",
                "A webhook endpoint's signing secret was replaced (the previous one signs too for 24 hours; never a secret).",
                Admins,
                FieldNames,
            ),
            // Test messages and manual redeliveries change no endpoint: recorded, not
            // published (a ping must not trigger further webhooks).
            Self::WebhookPing
            | Self::WebhookRedeliver
            | Self::AuthEmailChange
            | Self::AuthEmailChangeRequest
            | Self::AuthEmailVerified
            | Self::AuthEmailVerificationSent
            | Self::AuthPasswordChange
            | Self::AuthPasswordReset
            | Self::AuthPasswordResetRequest
            | Self::AuthRecoveryCodeUse
            | Self::AuthRefreshReuse
            | Self::AuthRegister
            | Self::AuthSignIn
            | Self::AuthSignInChallenge
            | Self::AuthSignInFailed
            | Self::AuthSignOut
            | Self::AuthTokenRefresh
            | Self::AuthTwoFactorDisable
            | Self::AuthTwoFactorEnable
            | Self::AuthTwoFactorEnrol
            | Self::AuthTwoFactorFailed
            | Self::DistrictCreate
            | Self::DistrictDelete
            | Self::DistrictUpdate
            | Self::DistrictStaffAdd
            | Self::DistrictStaffChange
            | Self::DistrictStaffRemove
            | Self::PlatformAdminBootstrap
            | Self::SchoolCreate
            | Self::SchoolDelete
            | Self::SchoolMove
            | Self::SchoolUpdate
            | Self::UserErase => None,
        }
    }
}

impl EventType {
    /// Whether an event of this type may change what someone of the org may see
    /// (settings, grants, roles, a member's role or membership, API keys): a stream
    /// decides its receiver again after one.
    #[must_use]
    pub const fn changes_rights(self) -> bool {
        matches!(
            self,
            Self::PermissionUpdate
                | Self::PermissionInheritedUpdate
                | Self::PermissionGrant
                | Self::PermissionRevoke
                | Self::RoleCreate
                | Self::RoleUpdate
                | Self::RoleDelete
                | Self::MemberUpdate
                | Self::MemberRoleChange
                | Self::MemberTermEnd
                | Self::MemberRemove
                | Self::MemberLeave
                | Self::MemberErase
                | Self::OrgDelete
                | Self::ApiKeyRevoke
        )
    }
}

/// The published types, in catalog order.
#[must_use]
pub fn publications() -> Vec<Publication> {
    EventType::ALL
        .iter()
        .filter_map(|t| t.publication())
        .collect()
}

/// The publication named `name` (`member.added`), if any.
#[must_use]
pub fn publication_named(name: &str) -> Option<Publication> {
    EventType::ALL
        .iter()
        .filter_map(|t| t.publication())
        .find(|p| p.name == name)
}

/// The keys some audience names: what a [`Receiver`] must be checked for.
#[must_use]
pub fn audience_keys() -> KeySet {
    publications()
        .iter()
        .filter_map(|p| match p.audience {
            Audience::Holders(key) | Audience::HoldersAndSubject(key) => Some(key),
            Audience::Members | Audience::Admins => None,
        })
        .collect()
}

/// Who receives events, as the permission engine sees them now: an active member (or
/// an API key) of the org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receiver {
    /// The member's user id (`None` for an API key: it is no one's subject).
    pub user: Option<Uuid>,
    /// Whether they are an active admin of the org (never an API key).
    pub admin: bool,
    /// Which of the [`audience_keys`] they hold now (checked by the engine).
    pub holds: KeySet,
}

impl Receiver {
    /// Whether they may see an event of `publication` whose subject id is `subject_id`.
    #[must_use]
    pub fn may_see(&self, publication: &Publication, subject_id: &str) -> bool {
        match publication.audience {
            Audience::Members => true,
            Audience::Admins => self.admin,
            Audience::Holders(key) => self.holds.contains(key),
            Audience::HoldersAndSubject(key) => {
                self.holds.contains(key) || self.is_subject(subject_id)
            }
        }
    }

    fn is_subject(&self, subject_id: &str) -> bool {
        self.user
            .is_some_and(|me| Uuid::parse_str(subject_id).is_ok_and(|s| s == me))
    }

    /// The store query for this receiver: the published types among `wanted` (all when
    /// `None`) they see whole, and those they see only about themselves.
    #[must_use]
    pub fn selection(&self, wanted: Option<&BTreeSet<&'static str>>) -> Selection {
        let mut selection = Selection::default();
        for p in publications() {
            if wanted.is_some_and(|w| !w.contains(p.name)) {
                continue;
            }
            let (all, own) = match p.audience {
                Audience::Members => (true, false),
                Audience::Admins => (self.admin, false),
                Audience::Holders(key) => (self.holds.contains(key), false),
                Audience::HoldersAndSubject(key) => (self.holds.contains(key), self.user.is_some()),
            };
            if all {
                selection.everyone.push(p.kind.action());
            } else if own {
                selection.own.push(p.kind.action());
            }
        }
        selection.own_entity = self.user.map(|u| u.to_string());
        selection
    }
}

/// Which events of a chain a receiver is shown: actions seen whole, and actions seen
/// only when their entity is the receiver (`own_entity`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Actions shown whatever their entity.
    pub everyone: Vec<Action>,
    /// Actions shown when their entity id is `own_entity`.
    pub own: Vec<Action>,
    /// The receiver's user id, as entity ids spell it.
    pub own_entity: Option<String>,
}

impl Selection {
    /// Whether `event` is selected (the reference semantics stores implement in SQL).
    #[must_use]
    pub fn matches(&self, event: &AuditEvent) -> bool {
        let action = &event.body.action;
        self.everyone.contains(action)
            || (self.own.contains(action)
                && self
                    .own_entity
                    .as_ref()
                    .is_some_and(|me| *me == event.body.entity_id))
    }

    /// Whether a public event (a live one) is selected: the same rule as
    /// [`Selection::matches`].
    #[must_use]
    pub fn admits(&self, event: &ChangeEvent) -> bool {
        let action = event.publication.kind.action();
        self.everyone.contains(&action)
            || (self.own.contains(&action)
                && self
                    .own_entity
                    .as_ref()
                    .is_some_and(|me| *me == event.subject_id))
    }

    /// Whether nothing can match.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.everyone.is_empty() && (self.own.is_empty() || self.own_entity.is_none())
    }
}

/// An event as the events API and the stream show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// The chain (the tenant) it belongs to.
    pub chain: ChainId,
    /// Its position in the chain.
    pub seq: u64,
    /// The public type.
    pub publication: Publication,
    /// When it happened.
    pub occurred_at: OffsetDateTime,
    /// Who did it.
    pub actor: Actor,
    /// The entity's type (`member`, `permission_setting`, …).
    pub subject_type: String,
    /// The entity's id.
    pub subject_id: String,
    /// `{change, changed[, before, after]}`.
    pub data: Value,
}

impl ChangeEvent {
    /// The public form of `event` (opened: its values readable), `None` when its type is
    /// not published.
    #[must_use]
    pub fn of(event: &AuditEvent) -> Option<Self> {
        let publication = EventType::of(&event.body.action)?.publication()?;
        Some(Self {
            chain: event.chain(),
            seq: event.seq,
            publication,
            occurred_at: event.body.occurred_at,
            actor: event.body.actor,
            subject_type: event.body.entity_type.clone(),
            subject_id: event.body.entity_id.clone(),
            data: data_of(event, publication.values),
        })
    }

    /// Whether `receiver` may see it.
    #[must_use]
    pub fn visible_to(&self, receiver: &Receiver) -> bool {
        receiver.may_see(&self.publication, &self.subject_id)
    }
}

/// `{change, changed[, before, after]}` of an event.
fn data_of(event: &AuditEvent, values: Values) -> Value {
    let b = &event.body;
    let change = b.change_type.as_str().to_ascii_lowercase();
    let changed = changed_fields(b.change_type, b.old_value.as_ref(), b.new_value.as_ref());
    let mut data = Map::new();
    data.insert("change".into(), Value::String(change));
    data.insert(
        "changed".into(),
        Value::Array(changed.into_iter().map(Value::String).collect()),
    );
    if values == Values::Full {
        data.insert("before".into(), b.old_value.clone().unwrap_or(Value::Null));
        data.insert("after".into(), b.new_value.clone().unwrap_or(Value::Null));
    }
    Value::Object(data)
}

/// The top-level fields that differ between two object snapshots (sorted); every field
/// of the one snapshot a create or delete has. Nothing for values that are not objects
/// (erased ones among them).
#[must_use]
pub fn changed_fields(change: ChangeType, old: Option<&Value>, new: Option<&Value>) -> Vec<String> {
    fn object<'v>(
        v: Option<&'v Value>,
        empty: &'v Map<String, Value>,
    ) -> Option<&'v Map<String, Value>> {
        match v {
            Some(Value::Object(m)) => Some(m),
            None | Some(Value::Null) => Some(empty),
            Some(_) => None,
        }
    }
    let empty = Map::new();
    let (Some(old), Some(new)) = (object(old, &empty), object(new, &empty)) else {
        return Vec::new();
    };
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| match change {
            ChangeType::Create | ChangeType::Delete => true,
            _ => old.get(*k) != new.get(*k),
        })
        .cloned()
        .collect()
}

/// Why a cursor string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventCursorError {
    /// Not a cursor this service produced.
    #[error("not an event cursor")]
    Malformed,
    /// A cursor of an unknown format version.
    #[error("unsupported cursor version {0}")]
    UnsupportedVersion(u8),
    /// A cursor of other orgs' events.
    #[error("this cursor belongs to another organization's events")]
    OtherTenant,
}

/// A position in one or more orgs' events: per org, the seq of the last event read.
///
/// Encoded as lowercase hex: version byte `1`, then per org a 4-byte tag (the first
/// bytes of SHA-256 of the chain id, so a cursor names no org) and the seq (8 bytes,
/// big-endian). Positions compare by seq, so cursors order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventCursor {
    positions: Vec<([u8; 4], u64)>,
}

impl EventCursor {
    const VERSION: u8 = 1;

    /// A cursor at `seq` of `chain`.
    #[must_use]
    pub fn at(chain: ChainId, seq: u64) -> Self {
        let mut cursor = Self::default();
        cursor.set(chain, seq);
        cursor
    }

    fn tag(chain: ChainId) -> [u8; 4] {
        let digest = Sha256::digest(format!("ptoc.events.v1:{chain}").as_bytes());
        let mut tag = [0; 4];
        tag.copy_from_slice(&digest[..4]);
        tag
    }

    /// The position in `chain`, `None` if the cursor has none there.
    #[must_use]
    pub fn seq_in(&self, chain: ChainId) -> Option<u64> {
        let tag = Self::tag(chain);
        self.positions
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, s)| *s)
    }

    /// The position in `chain`, refusing a cursor of other chains.
    ///
    /// # Errors
    /// [`EventCursorError::OtherTenant`].
    pub fn seq_for(&self, chain: ChainId) -> Result<u64, EventCursorError> {
        self.seq_in(chain).ok_or(EventCursorError::OtherTenant)
    }

    /// Moves the position in `chain` to `seq`.
    pub fn set(&mut self, chain: ChainId, seq: u64) {
        let tag = Self::tag(chain);
        match self.positions.iter_mut().find(|(t, _)| *t == tag) {
            Some(p) => p.1 = seq,
            None => self.positions.push((tag, seq)),
        }
    }

    /// The encoded form.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(1 + self.positions.len() * 12);
        bytes.push(Self::VERSION);
        for (tag, seq) in &self.positions {
            bytes.extend_from_slice(tag);
            bytes.extend_from_slice(&seq.to_be_bytes());
        }
        hex::encode(bytes)
    }
}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl FromStr for EventCursor {
    type Err = EventCursorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > 2 + 24 * 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(EventCursorError::Malformed);
        }
        let bytes = hex::decode(s).map_err(|_| EventCursorError::Malformed)?;
        let (&version, rest) = bytes.split_first().ok_or(EventCursorError::Malformed)?;
        if version != Self::VERSION {
            return Err(EventCursorError::UnsupportedVersion(version));
        }
        if rest.is_empty() || rest.len() % 12 != 0 {
            return Err(EventCursorError::Malformed);
        }
        let mut positions: Vec<([u8; 4], u64)> = Vec::new();
        for chunk in rest.chunks_exact(12) {
            let (tag, seq) = chunk.split_at(4);
            let tag: [u8; 4] = tag.try_into().map_err(|_| EventCursorError::Malformed)?;
            let seq = u64::from_be_bytes(seq.try_into().map_err(|_| EventCursorError::Malformed)?);
            if positions.iter().any(|(t, _)| *t == tag) {
                return Err(EventCursorError::Malformed);
            }
            positions.push((tag, seq));
        }
        Ok(Self { positions })
    }
}

/// One page of a receiver's change events.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePage {
    /// The events, in chain order.
    pub events: Vec<ChangeEvent>,
    /// The seq the next page starts after: the last event's when the page is full,
    /// else the chain's head when it was read (events the receiver may not see are
    /// skipped too), else the cursor itself (caught up: nothing new).
    pub next: u64,
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChangePageError {
    /// The cursor points before the retained events: they were archived.
    #[error("the events after this cursor were archived (the retained events start after {floor})")]
    Expired {
        /// The last archived seq.
        floor: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] crate::ChainReadError),
}

/// Up to `limit` events of `chain` after `after` (absent: from the oldest retained)
/// that `selection` selects, with the position to read on from.
///
/// No gap, no duplicate: the head is read first and only events up to it are read,
/// so a short page's `next` (the head) covers every event committed before it; the
/// retention floor is checked again after the read, so events archived meanwhile are
/// answered [`ChangePageError::Expired`], never skipped. A cursor ahead of the head (a
/// lagging replica) reads nothing and keeps its position.
///
/// # Errors
/// [`ChangePageError`].
pub async fn read_page<L: crate::AuditLog>(
    log: &L,
    chain: ChainId,
    after: Option<u64>,
    selection: &Selection,
    limit: u32,
) -> Result<ChangePage, ChangePageError> {
    let mut floor = log.archived_through(chain).await?;
    loop {
        let from = after.unwrap_or(floor);
        if from < floor {
            return Err(ChangePageError::Expired { floor });
        }
        let head = log.chain_head(chain).await?.map_or(0, |h| h.seq);
        let events = log.changes(chain, (from, head), selection, limit).await?;
        let now = log.archived_through(chain).await?;
        if now > from {
            if after.is_some() {
                return Err(ChangePageError::Expired { floor: now });
            }
            // Archived while reading from the start: start again from the new floor.
            floor = now;
            continue;
        }
        let full = u32::try_from(events.len()).is_ok_and(|n| n >= limit) && limit > 0;
        let next = match events.last() {
            Some(last) if full => last.seq,
            _ => head.max(from),
        };
        return Ok(ChangePage {
            events: events.iter().filter_map(ChangeEvent::of).collect(),
            next,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AuditContext, RequestMeta};
    use crate::scope::TenantScope;
    use serde_json::json;

    fn event(
        kind: EventType,
        entity: (&str, String),
        values: (Option<Value>, Option<Value>),
    ) -> AuditEvent {
        let ctx = AuditContext {
            actor: Actor::User(Uuid::now_v7()),
            request: RequestMeta::default(),
        };
        let new = ctx.change(
            TenantScope::org(Uuid::now_v7()),
            kind,
            entity,
            ChangeType::Update,
            values,
        );
        crate::seal(new, None).expect("seal")
    }

    fn volunteer(user: Uuid) -> Receiver {
        Receiver {
            user: Some(user),
            admin: false,
            holds: KeySet::new(),
        }
    }

    #[test]
    fn names_are_unique_dotted_and_documented() {
        let mut seen = BTreeSet::new();
        for p in publications() {
            assert!(seen.insert(p.name), "{} twice", p.name);
            let (noun, verb) = p.name.split_once('.').expect("noun.verb");
            assert!(!noun.is_empty() && !verb.is_empty() && !verb.contains('.'));
            assert!(
                p.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
            );
            assert!(p.description.ends_with('.'), "{}", p.name);
            assert_eq!(publication_named(p.name), Some(p));
            assert_eq!(p.kind.publication(), Some(p));
        }
        assert_eq!(
            EventType::MemberCreate.publication().map(|p| p.name),
            Some("member.added")
        );
        assert_eq!(
            EventType::PermissionUpdate.publication().map(|p| p.name),
            Some("permission.settings_changed")
        );
        assert_eq!(EventType::AuthSignIn.publication(), None);
        assert_eq!(publication_named("auth.sign_in"), None);
    }

    #[test]
    fn admin_only_events_reach_admins_only_and_member_events_their_subject() {
        let me = Uuid::now_v7();
        let settings = EventType::PermissionUpdate
            .publication()
            .expect("published");
        let grant = EventType::PermissionGrant.publication().expect("published");
        let member = EventType::MemberUpdate.publication().expect("published");
        let org = EventType::OrgUpdate.publication().expect("published");
        let v = volunteer(me);
        assert!(!v.may_see(&settings, "budget.approve"));
        assert!(!v.may_see(&grant, &format!("{me}:budget.approve")));
        assert!(v.may_see(&member, &me.to_string()), "their own change");
        assert!(!v.may_see(&member, &Uuid::now_v7().to_string()));
        assert!(v.may_see(&org, "x"));
        let viewer = Receiver {
            holds: [PermissionKey::UsersView].into_iter().collect(),
            ..v
        };
        assert!(viewer.may_see(&member, &Uuid::now_v7().to_string()));
        assert!(!viewer.may_see(&settings, "budget.approve"));
        let admin = Receiver {
            admin: true,
            ..viewer
        };
        assert!(admin.may_see(&settings, "budget.approve"));
        // An API key is no one's subject, and never an admin.
        let key = Receiver {
            user: None,
            admin: false,
            holds: KeySet::new(),
        };
        assert!(!key.may_see(&member, &me.to_string()));
        assert!(!key.may_see(&settings, "budget.approve"));
        assert_eq!(
            audience_keys(),
            [PermissionKey::UsersView, PermissionKey::UsersInvite]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn a_selection_matches_exactly_what_the_receiver_may_see() {
        let me = Uuid::now_v7();
        let events = [
            event(
                EventType::PermissionUpdate,
                ("permission_setting", "budget.approve".into()),
                (None, None),
            ),
            event(
                EventType::MemberUpdate,
                ("member", me.to_string()),
                (None, None),
            ),
            event(
                EventType::MemberUpdate,
                ("member", Uuid::now_v7().to_string()),
                (None, None),
            ),
            event(
                EventType::OrgUpdate,
                ("organization", Uuid::now_v7().to_string()),
                (None, None),
            ),
            event(
                EventType::AuthSignIn,
                ("user", me.to_string()),
                (None, None),
            ),
        ];
        for receiver in [
            volunteer(me),
            Receiver {
                admin: true,
                holds: audience_keys(),
                user: Some(me),
            },
            Receiver {
                user: None,
                admin: false,
                holds: audience_keys(),
            },
        ] {
            let selection = receiver.selection(None);
            for e in &events {
                let expected = ChangeEvent::of(e).is_some_and(|c| c.visible_to(&receiver));
                assert_eq!(
                    ChangeEvent::of(e).is_some_and(|c| selection.admits(&c)),
                    expected
                );
                assert_eq!(
                    selection.matches(e),
                    expected,
                    "{receiver:?} {}",
                    e.body.action
                );
            }
        }
        let only: BTreeSet<&str> = ["org.updated"].into_iter().collect();
        let s = volunteer(me).selection(Some(&only));
        assert_eq!(s.everyone, vec![EventType::OrgUpdate.action()]);
        assert!(s.own.is_empty());
        let admins_only: BTreeSet<&str> = ["permission.settings_changed"].into_iter().collect();
        assert!(volunteer(me).selection(Some(&admins_only)).is_empty());
    }

    #[test]
    fn data_names_changed_fields_and_shows_values_only_of_configuration() {
        let member = event(
            EventType::MemberUpdate,
            ("member", Uuid::now_v7().to_string()),
            (
                Some(json!({"role": "volunteer", "phone": "555", "committee": "x"})),
                Some(json!({"role": "admin", "phone": "556", "committee": "x"})),
            ),
        );
        let c = ChangeEvent::of(&member).expect("published");
        assert_eq!(
            c.data,
            json!({"change": "update", "changed": ["phone", "role"]})
        );
        assert!(!c.data.to_string().contains("555"));
        let setting = event(
            EventType::PermissionUpdate,
            ("permission_setting", "budget.approve".into()),
            (
                Some(json!({"min_role": "admin", "enabled": true})),
                Some(json!({"min_role": "board_member", "enabled": true})),
            ),
        );
        let c = ChangeEvent::of(&setting).expect("published");
        assert_eq!(c.data["changed"], json!(["min_role"]));
        assert_eq!(c.data["after"]["min_role"], "board_member");
        let erased = event(
            EventType::MemberUpdate,
            ("member", Uuid::now_v7().to_string()),
            (Some(json!(crate::ERASED)), Some(json!(crate::ERASED))),
        );
        assert_eq!(
            ChangeEvent::of(&erased).expect("published").data["changed"],
            json!([])
        );
        assert_eq!(
            changed_fields(ChangeType::Create, None, Some(&json!({"b": 1, "a": 2}))),
            vec!["a", "b"]
        );
    }

    #[test]
    fn cursors_round_trip_order_and_stay_in_their_org() {
        let (a, b) = (ChainId::Org(Uuid::now_v7()), ChainId::Org(Uuid::now_v7()));
        let c = EventCursor::at(a, 41);
        let parsed: EventCursor = c.encode().parse().expect("parses");
        assert_eq!(parsed, c);
        assert_eq!(parsed.seq_for(a), Ok(41));
        assert_eq!(parsed.seq_for(b), Err(EventCursorError::OtherTenant));
        assert!(!c.encode().contains(&a.to_string()[4..12]), "names no org");
        let mut both = c.clone();
        both.set(b, 7);
        both.set(a, 42);
        let both: EventCursor = both.encode().parse().expect("parses");
        assert_eq!((both.seq_in(a), both.seq_in(b)), (Some(42), Some(7)));
        for bad in [
            "",
            "zz",
            "01",
            "02aabbccdd0000000000000001",
            "01AABBCCDD0000000000000001",
            "01aabbccdd00000000000001",
        ] {
            assert!(bad.parse::<EventCursor>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "02aabbccdd0000000000000001".parse::<EventCursor>(),
            Err(EventCursorError::UnsupportedVersion(2))
        );
    }
}
