//! Audit events: what a domain writes ([`NewAuditEvent`]) and what is stored
//! ([`AuditEvent`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::action::Action;
use crate::canonical;
use crate::chain::ChainHead;
use crate::hash::Hash32;
use crate::scope::{ChainId, ParseError, TenantScope, parse_canonical_uuid};

/// Who did it.
///
/// Serialised as `{"type": "user", "id": "…"}`, `{"type": "api_key", "id": "…"}` or
/// `{"type": "system"}`; its string form is `user:<uuid>`, `api_key:<uuid>` or `system`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// A signed-in user.
    User(Uuid),
    /// An integration authenticated with an API key.
    ApiKey(Uuid),
    /// The system itself (jobs, migrations, retention).
    System,
}

impl Actor {
    /// `"user"`, `"api_key"` or `"system"`.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::ApiKey(_) => "api_key",
            Self::System => "system",
        }
    }

    /// The user or API key id; `None` for [`Actor::System`].
    #[must_use]
    pub const fn id(&self) -> Option<Uuid> {
        match *self {
            Self::User(id) | Self::ApiKey(id) => Some(id),
            Self::System => None,
        }
    }

    /// Rebuilds an actor from its storage columns (`kind`, `id`).
    ///
    /// # Errors
    /// An unknown kind, or an id missing for a user/API key or present for the system.
    pub fn from_parts(kind: &str, id: Option<Uuid>) -> Result<Self, ParseError> {
        match (kind, id) {
            ("user", Some(id)) => Ok(Self::User(id)),
            ("api_key", Some(id)) => Ok(Self::ApiKey(id)),
            ("system", None) => Ok(Self::System),
            _ => Err(ParseError::new("actor", kind)),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id() {
            Some(id) => write!(f, "{}:{id}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

impl FromStr for Actor {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, id) = match s.split_once(':') {
            Some((kind, id)) => (
                kind,
                Some(parse_canonical_uuid(id).ok_or_else(|| ParseError::new("actor", s))?),
            ),
            None => (s, None),
        };
        Self::from_parts(kind, id).map_err(|_| ParseError::new("actor", s))
    }
}

/// The kind of change an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeType {
    /// Something was created.
    Create,
    /// Something was changed.
    Update,
    /// Something was deleted.
    Delete,
    /// Something was reset to inherited defaults.
    Reset,
    /// No data change (activity events such as a sign-in).
    None,
}

impl ChangeType {
    /// All change types.
    pub const ALL: [Self; 5] = [
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::Reset,
        Self::None,
    ];

    /// `CREATE`, `UPDATE`, `DELETE`, `RESET` or `NONE`.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Reset => "RESET",
            Self::None => "NONE",
        }
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChangeType {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| ParseError::new("change type", s))
    }
}

/// Which view of the shared log an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A change to data or configuration (the audit log proper).
    Audit,
    /// User activity: sign-ins, sign-outs, failed sign-ins, password and profile
    /// changes, exports (see [`crate::action::activity`]).
    Activity,
}

impl Category {
    /// `audit` or `activity`.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Activity => "activity",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "audit" => Ok(Self::Audit),
            "activity" => Ok(Self::Activity),
            _ => Err(ParseError::new("category", s)),
        }
    }
}

/// Request metadata the HTTP layer hands to domain services, copied into events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMeta {
    /// Client IP address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// The request id (`X-Request-Id`).
    pub request_id: Option<String>,
}

/// Normalises a timestamp to what the log stores: UTC, whole microseconds (the precision
/// PostgreSQL `timestamptz` keeps), so that it round-trips through any store unchanged.
#[must_use]
pub fn truncate_to_micros(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(UtcOffset::UTC);
    // `microsecond()` is always < 1_000_000, so this cannot fail.
    at.replace_microsecond(at.microsecond()).unwrap_or(at)
}

/// Whole microseconds since the Unix epoch (rounded towards the past).
#[must_use]
pub fn unix_micros(at: OffsetDateTime) -> i64 {
    let micros = at.unix_timestamp_nanos().div_euclid(1_000);
    // Every representable `OffsetDateTime` is within ±2^63 µs of the epoch.
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// An audit event as a domain writes it, before it is sealed into its chain.
///
/// Build one with [`NewAuditEvent::audit`] or [`NewAuditEvent::activity`] and the
/// `with_*` methods; hand it to an [`crate::AuditSink`] in the same unit of work as the
/// change it records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    /// Event id (UUID v7).
    pub id: Uuid,
    /// The tenant; decides the chain.
    #[serde(flatten)]
    pub scope: TenantScope,
    /// Who did it.
    pub actor: Actor,
    /// What happened.
    pub action: Action,
    /// Audit or activity.
    pub category: Category,
    /// Type of the entity acted on (e.g. `permission_setting`, `member`).
    pub entity_type: String,
    /// Id of the entity acted on (e.g. a permission key or a UUID).
    pub entity_id: String,
    /// Kind of change.
    pub change_type: ChangeType,
    /// The entity before the change.
    pub old_value: Option<Value>,
    /// The entity after the change.
    pub new_value: Option<Value>,
    /// Client IP address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// The request id, to correlate with logs and traces.
    pub request_id: Option<String>,
    /// When it happened: UTC, microsecond precision (see [`truncate_to_micros`]).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

impl NewAuditEvent {
    /// An audit event (a data or configuration change), happening now, with a fresh
    /// UUID v7 id.
    #[must_use]
    pub fn audit(
        scope: TenantScope,
        actor: Actor,
        action: Action,
        entity_type: impl Into<String>,
        entity_id: impl Into<String>,
        change_type: ChangeType,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            scope,
            actor,
            action,
            category: Category::Audit,
            entity_type: entity_type.into(),
            entity_id: entity_id.into(),
            change_type,
            old_value: None,
            new_value: None,
            ip: None,
            user_agent: None,
            request_id: None,
            occurred_at: truncate_to_micros(OffsetDateTime::now_utc()),
        }
    }

    /// An activity event ([`Category::Activity`], [`ChangeType::None`]), happening now.
    #[must_use]
    pub fn activity(
        scope: TenantScope,
        actor: Actor,
        action: Action,
        entity_type: impl Into<String>,
        entity_id: impl Into<String>,
    ) -> Self {
        Self {
            category: Category::Activity,
            ..Self::audit(
                scope,
                actor,
                action,
                entity_type,
                entity_id,
                ChangeType::None,
            )
        }
    }

    /// Sets the id (e.g. for idempotent retries).
    #[must_use]
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    /// Sets the value before the change.
    #[must_use]
    pub fn with_old_value(mut self, value: Value) -> Self {
        self.old_value = Some(value);
        self
    }

    /// Sets the value after the change.
    #[must_use]
    pub fn with_new_value(mut self, value: Value) -> Self {
        self.new_value = Some(value);
        self
    }

    /// Sets the client IP address.
    #[must_use]
    pub fn with_ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }

    /// Sets the client user agent.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Copies IP, user agent and request id from the request.
    #[must_use]
    pub fn with_request(mut self, meta: &RequestMeta) -> Self {
        self.ip.clone_from(&meta.ip);
        self.user_agent.clone_from(&meta.user_agent);
        self.request_id.clone_from(&meta.request_id);
        self
    }

    /// Sets when it happened (converted to UTC and truncated to microseconds).
    #[must_use]
    pub fn at(mut self, occurred_at: OffsetDateTime) -> Self {
        self.occurred_at = truncate_to_micros(occurred_at);
        self
    }

    /// The chain this event is sealed into.
    #[must_use]
    pub const fn chain(&self) -> ChainId {
        self.scope.chain_id()
    }
}

/// A stored audit event: a [`NewAuditEvent`] sealed into its tenant's hash chain.
///
/// Serialised flat: the fields of the body plus `seq`, `prev_hash`, `hash` and, when
/// personal fields are sealed, `sealed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The event as the domain wrote it.
    #[serde(flatten)]
    pub body: NewAuditEvent,
    /// Position in the chain, starting at 1, without gaps.
    pub seq: u64,
    /// Hash of the previous event of the chain ([`Hash32::GENESIS`] for `seq == 1`).
    pub prev_hash: Hash32,
    /// `sha256(canonical_bytes(self))`.
    pub hash: Hash32,
    /// The personal fields sealed per data subject (empty: nothing personal, encoding
    /// v1). The hash covers these ciphertexts, not the sealed fields of `body` (see
    /// [`crate::personal`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sealed: Vec<crate::personal::SealedPart>,
}

impl AuditEvent {
    /// The chain this event belongs to (derived from its scope).
    #[must_use]
    pub const fn chain(&self) -> ChainId {
        self.body.chain()
    }

    /// The event id.
    #[must_use]
    pub const fn id(&self) -> Uuid {
        self.body.id
    }

    /// The chain head this event forms.
    #[must_use]
    pub const fn head(&self) -> ChainHead {
        ChainHead {
            chain: self.chain(),
            seq: self.seq,
            hash: self.hash,
        }
    }

    /// Recomputes the hash from the content (compare with [`AuditEvent::hash`]).
    #[must_use]
    pub fn compute_hash(&self) -> Hash32 {
        Hash32::of(&canonical::canonical_bytes(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::activity;
    use time::macros::datetime;

    #[test]
    fn truncates_to_utc_microseconds() {
        let at = datetime!(2025-03-01 10:00:00.123456789 +02:00);
        let t = truncate_to_micros(at);
        assert_eq!(t, datetime!(2025-03-01 08:00:00.123456 UTC));
        assert_eq!(t.offset(), UtcOffset::UTC);
        assert_eq!(unix_micros(t), 1_740_816_000_123_456);
        let before_epoch = datetime!(1969-12-31 23:59:59.9999999 UTC);
        assert_eq!(unix_micros(before_epoch), -1);
        assert_eq!(
            truncate_to_micros(before_epoch),
            datetime!(1969-12-31 23:59:59.999999 UTC)
        );
    }

    #[test]
    fn builders_normalise() {
        let org = Uuid::now_v7();
        let e = NewAuditEvent::activity(
            TenantScope::org(org),
            Actor::System,
            activity::SIGN_IN,
            "user",
            "u1",
        )
        .at(datetime!(2025-01-01 00:00:00.000000999 UTC))
        .with_request(&RequestMeta {
            ip: Some("10.0.0.1".into()),
            user_agent: None,
            request_id: Some("req-1".into()),
        });
        assert_eq!(e.category, Category::Activity);
        assert_eq!(e.change_type, ChangeType::None);
        assert_eq!(e.occurred_at, datetime!(2025-01-01 00:00:00 UTC));
        assert_eq!(e.ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(e.chain(), ChainId::Org(org));
        assert_eq!(e.id.get_version_num(), 7);
    }

    #[test]
    fn actor_forms() {
        let id = Uuid::from_u128(7);
        for actor in [Actor::User(id), Actor::ApiKey(id), Actor::System] {
            assert_eq!(actor.to_string().parse::<Actor>(), Ok(actor));
            assert_eq!(Actor::from_parts(actor.kind(), actor.id()), Ok(actor));
            let json = serde_json::to_value(actor).expect("serialize");
            assert_eq!(serde_json::from_value::<Actor>(json).expect("parse"), actor);
        }
        assert_eq!(
            serde_json::to_value(Actor::ApiKey(id)).expect("serialize"),
            serde_json::json!({"type": "api_key", "id": id})
        );
        assert!(
            "system:00000000-0000-0000-0000-000000000007"
                .parse::<Actor>()
                .is_err()
        );
        assert!(Actor::from_parts("user", None).is_err());
        assert!("robot".parse::<Actor>().is_err());
    }

    #[test]
    fn enums_round_trip() {
        for c in ChangeType::ALL {
            assert_eq!(c.as_str().parse::<ChangeType>(), Ok(c));
            assert_eq!(
                serde_json::to_string(&c).expect("serialize"),
                format!("\"{c}\"")
            );
        }
        for c in [Category::Audit, Category::Activity] {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        }
        assert!("update".parse::<ChangeType>().is_err());
    }
}

/// Who is making a change and from where: written to the audit event of every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext {
    /// The acting user, API key or system.
    pub actor: Actor,
    /// Client IP, user agent and request id.
    pub request: RequestMeta,
}

impl AuditContext {
    /// The audit event of a change made in this context: `what` happened to `entity`
    /// (type, id) in `scope`, with the entity's values before and after.
    #[must_use]
    pub fn change(
        &self,
        scope: crate::TenantScope,
        what: crate::EventType,
        entity: (&str, String),
        change: ChangeType,
        values: (Option<Value>, Option<Value>),
    ) -> NewAuditEvent {
        let mut event =
            NewAuditEvent::audit(scope, self.actor, what.action(), entity.0, entity.1, change)
                .with_request(&self.request);
        event.old_value = values.0;
        event.new_value = values.1;
        event
    }
}
