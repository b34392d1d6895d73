//! Webhooks (issue #19, `shared/spec/events.md`): an org's endpoints receive its change
//! events, signed per Standard Webhooks 1.0, at least once, with exponential back-off
//! for about three days.
//!
//! Pure rules, no I/O: [`signing`] (secrets, signatures, rotation), [`address`] (where a
//! webhook may go: https, no private addresses), [`schedule`] (retries and what an answer
//! means) and, here, the event-type filter and the message body.

pub mod address;
pub mod schedule;
pub mod signing;

use std::collections::BTreeSet;

use audit::ChainId;
use audit::changes::{ChangeEvent, EventCursor, publication_named};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use address::{AddressError, AddressPolicy, EndpointUrl, check_ip};
pub use schedule::{MAX_ATTEMPTS, Verdict, next_delay, verdict};
pub use signing::{Secret, SecretError, SignedHeaders, SigningKeys, message_id};

/// The type of the test message `POST …/webhooks/{id}/ping` sends (not a change event:
/// sent whatever the endpoint's filter).
pub const PING: &str = "webhook.ping";

/// Most event types one endpoint may name.
pub const MAX_EVENT_TYPES: usize = 100;

/// Why an event-type filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// No type named.
    #[error("name at least one event type")]
    Empty,
    /// More than [`MAX_EVENT_TYPES`].
    #[error("at most {MAX_EVENT_TYPES} event types")]
    TooMany,
    /// A name that is not a published change-event type.
    #[error("{0:?} is not an event type of the catalog")]
    Unknown(String),
}

/// The event types an endpoint receives: published names of the catalog
/// (`audit::changes`), e.g. `member.added`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter(BTreeSet<&'static str>);

impl EventFilter {
    /// Parses the names (duplicates collapse).
    ///
    /// # Errors
    /// [`FilterError`] (an unknown name is named).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, FilterError> {
        if names.is_empty() {
            return Err(FilterError::Empty);
        }
        if names.len() > MAX_EVENT_TYPES {
            return Err(FilterError::TooMany);
        }
        names
            .iter()
            .map(|n| {
                publication_named(n.as_ref())
                    .map(|p| p.name)
                    .ok_or_else(|| FilterError::Unknown(n.as_ref().to_owned()))
            })
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    /// The names, sorted.
    #[must_use]
    pub fn names(&self) -> &BTreeSet<&'static str> {
        &self.0
    }

    /// Whether an event of public type `name` passes.
    #[must_use]
    pub fn admits(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

/// The body of a webhook message for a change event: `{type, timestamp, data}` (Standard
/// Webhooks' payload shape), `data` the event as the events API shows it (`id` is its
/// cursor, usable with `GET …/events?after=`).
#[must_use]
pub fn event_body(event: &ChangeEvent) -> Value {
    let mut cursor = EventCursor::default();
    cursor.set(event.chain, event.seq);
    let tenant = match event.chain {
        ChainId::Org(id) => json!({"type": "org", "id": id}),
        ChainId::District(id) => json!({"type": "district", "id": id}),
        ChainId::Platform => json!({"type": "platform"}),
    };
    let occurred_at = event.occurred_at.format(&Rfc3339).unwrap_or_default();
    let mut actor = json!({"type": event.actor.kind()});
    if let Some(id) = event.actor.id() {
        actor["id"] = Value::String(id.to_string());
    }
    json!({
        "type": event.publication.name,
        "timestamp": occurred_at,
        "data": {
            "id": cursor.encode(),
            "type": event.publication.name,
            "tenant": tenant,
            "occurred_at": occurred_at,
            "actor": actor,
            "subject": {"type": event.subject_type, "id": event.subject_id},
            "data": event.data,
        }
    })
}

/// The body of a test message to endpoint `endpoint` of `org` at `now`.
#[must_use]
pub fn ping_body(org: uuid::Uuid, endpoint: uuid::Uuid, now: OffsetDateTime) -> Value {
    json!({
        "type": PING,
        "timestamp": now.format(&Rfc3339).unwrap_or_default(),
        "data": {"org_id": org, "endpoint_id": endpoint},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_name_catalog_types_only() {
        let f = EventFilter::parse(&["member.added", "member.added", "role.created"]).expect("ok");
        assert_eq!(f.names().len(), 2);
        assert!(f.admits("member.added"));
        assert!(!f.admits("member.removed"));
        assert_eq!(
            EventFilter::parse(&["member.add"]),
            Err(FilterError::Unknown("member.add".into()))
        );
        // Recorded but unpublished types (sign-ins) are not in the public catalog.
        assert!(EventFilter::parse(&["auth.sign_in"]).is_err());
        assert!(EventFilter::parse(&[PING]).is_err());
        assert_eq!(EventFilter::parse::<&str>(&[]), Err(FilterError::Empty));
    }

    #[test]
    fn a_ping_names_its_type() {
        let body = ping_body(
            uuid::Uuid::nil(),
            uuid::Uuid::nil(),
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(body["type"], PING);
        assert_eq!(body["timestamp"], "1970-01-01T00:00:00Z");
    }
}
