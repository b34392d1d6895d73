//! Personal data in audit events, sealed per data subject so that it can be erased
//! without breaking the hash chain ("crypto-shredding").
//!
//! # What is personal
//! * `old_value` / `new_value` of an event **about a person** — its entity is a user or
//!   member (`entity_type` `user` / `member`, the user id as `entity_id`) or an invitation
//!   (`invitation`, whose invitee may have no account yet): the snapshots hold names,
//!   e-mail addresses, phones, children. Their data subject is that person
//!   ([`subject_of_entity`]).
//! * `ip` / `user_agent`: the acting user's (an [`Actor::User`]); for an API key or the
//!   system they follow the event's subject, if it has one (a failed sign-in), else
//!   they stay in the clear (an integration's server address is not a person's).
//!
//! Identifiers (`actor`, `entity_id`, `org_id`) stay in the clear: they are random UUIDs
//! that point at rows erasure deletes, needed to filter and count the log, and they
//! identify nobody once the account is gone. `request_id`, actions and times are not
//! personal.
//!
//! # Sealed parts
//! The adapter encrypts each subject's fields of an event together, under that
//! subject's key for the event's chain, into a [`SealedPart`] (subject, field names,
//! ciphertext). The stored row keeps the part and leaves those fields empty. The event
//! hash commits to the **ciphertext** (canonical encoding v2, see [`crate::canonical`]),
//! never to the plaintext, so:
//! * verification needs no key: live and archived chains verify before and after any
//!   erasure;
//! * erasing a subject is deleting its key: every part sealed under it, in the database
//!   and in archive files alike, becomes unreadable, and nothing derived from the
//!   plaintext without the key (which would let someone confirm a guess) is kept.
//!
//! An *opened* event (plaintext restored by [`AuditEvent::open_part`], or the fields
//! marked [`ERASED`] by [`AuditEvent::erase_part`]) hashes exactly as the stored one: the
//! encoding skips every sealed field.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::canonical::canonical_json;
use crate::event::{Actor, AuditEvent, NewAuditEvent};
use crate::scope::{ChainId, ParseError, parse_canonical_uuid};

/// What an erased personal field reads as.
pub const ERASED: &str = "[erased]";

/// A person whose data an audit event holds: the unit of erasure.
///
/// Its string form (`user:<uuid>`, `invitation:<uuid>`) is how keys are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DataSubject {
    /// A user account (as a member of any org, or on the platform).
    User(Uuid),
    /// The invitee of an invitation (who may not have an account).
    Invitation(Uuid),
}

impl DataSubject {
    /// `"user"` or `"invitation"`.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Invitation(_) => "invitation",
        }
    }

    /// The user or invitation id.
    #[must_use]
    pub const fn id(&self) -> Uuid {
        match *self {
            Self::User(id) | Self::Invitation(id) => id,
        }
    }
}

impl fmt::Display for DataSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

impl FromStr for DataSubject {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseError::new("data subject", s);
        let (kind, id) = s.split_once(':').ok_or_else(bad)?;
        let id = parse_canonical_uuid(id).ok_or_else(bad)?;
        match kind {
            "user" => Ok(Self::User(id)),
            "invitation" => Ok(Self::Invitation(id)),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for DataSubject {
    type Error = ParseError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<DataSubject> for String {
    fn from(subject: DataSubject) -> Self {
        subject.to_string()
    }
}

/// The data subject an event's values are about, from its entity: `user` and `member`
/// entities (id = the user id) are users, `invitation` entities their invitee; anything
/// else is about no one.
#[must_use]
pub fn subject_of_entity(entity_type: &str, entity_id: &str) -> Option<DataSubject> {
    let id = parse_canonical_uuid(entity_id)?;
    match entity_type {
        "user" | "member" => Some(DataSubject::User(id)),
        "invitation" => Some(DataSubject::Invitation(id)),
        _ => None,
    }
}

/// A field of an event that may hold personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonalField {
    /// `old_value`.
    OldValue,
    /// `new_value`.
    NewValue,
    /// `ip`.
    Ip,
    /// `user_agent`.
    UserAgent,
}

impl PersonalField {
    /// Every personal field, in encoding order.
    pub const ALL: [Self; 4] = [Self::OldValue, Self::NewValue, Self::Ip, Self::UserAgent];

    /// The field's name (`old_value`, `new_value`, `ip`, `user_agent`).
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::OldValue => "old_value",
            Self::NewValue => "new_value",
            Self::Ip => "ip",
            Self::UserAgent => "user_agent",
        }
    }

    fn value_of(self, body: &NewAuditEvent) -> Option<Value> {
        match self {
            Self::OldValue => body.old_value.clone(),
            Self::NewValue => body.new_value.clone(),
            Self::Ip => body.ip.clone().map(Value::String),
            Self::UserAgent => body.user_agent.clone().map(Value::String),
        }
    }

    fn is_present(self, body: &NewAuditEvent) -> bool {
        match self {
            Self::OldValue => body.old_value.is_some(),
            Self::NewValue => body.new_value.is_some(),
            Self::Ip => body.ip.is_some(),
            Self::UserAgent => body.user_agent.is_some(),
        }
    }

    /// Sets the field from its plaintext JSON form (a string for `ip` / `user_agent`).
    fn set(self, body: &mut NewAuditEvent, value: Option<Value>) -> Result<(), OpenPartError> {
        let text = |value: Option<Value>| match value {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(OpenPartError::Malformed(format!(
                "{} is not a string",
                self.as_str()
            ))),
        };
        match self {
            Self::OldValue => body.old_value = value,
            Self::NewValue => body.new_value = value,
            Self::Ip => body.ip = text(value)?,
            Self::UserAgent => body.user_agent = text(value)?,
        }
        Ok(())
    }
}

/// A subject's personal fields of one event, encrypted under the subject's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedPart {
    /// Whose key sealed it.
    pub subject: DataSubject,
    /// Which of the subject's keys (a subject erased and seen again gets a new key: the
    /// parts sealed under the erased one stay unreadable).
    pub key_id: Uuid,
    /// The fields it holds, in [`PersonalField::ALL`] order, none twice.
    pub fields: Vec<PersonalField>,
    /// The adapter's ciphertext (nonce, encrypted [`NewAuditEvent::personal_plaintext`]
    /// and tag), serialised as lowercase hex.
    #[serde(with = "hex_bytes")]
    pub ciphertext: Vec<u8>,
}

impl SealedPart {
    /// What the encryption authenticates besides the plaintext (AEAD associated data):
    /// the event id, its chain, the subject, the key id and the field names, so a part
    /// cannot be moved to another event, chain or subject undetected.
    #[must_use]
    pub fn associated_data(
        event_id: Uuid,
        chain: ChainId,
        subject: DataSubject,
        key_id: Uuid,
        fields: &[PersonalField],
    ) -> Vec<u8> {
        let names: Vec<&str> = fields.iter().map(PersonalField::as_str).collect();
        format!(
            "ptoc.audit.sealed.v1|{event_id}|{chain}|{subject}|{key_id}|{}",
            names.join(",")
        )
        .into_bytes()
    }
}

/// Which of an event's personal fields are sealed under whose key: one entry per
/// subject, fields in [`PersonalField::ALL`] order, only fields that are present. Empty
/// when the event holds nothing personal (it is then stored in the clear, encoding v1).
#[must_use]
pub fn personal_plan(body: &NewAuditEvent) -> Vec<(DataSubject, Vec<PersonalField>)> {
    let about = subject_of_entity(&body.entity_type, &body.entity_id);
    let by = match body.actor {
        Actor::User(id) => Some(DataSubject::User(id)),
        Actor::ApiKey(_) | Actor::System => about,
    };
    let mut plan: Vec<(DataSubject, Vec<PersonalField>)> = Vec::new();
    for field in PersonalField::ALL {
        if !field.is_present(body) {
            continue;
        }
        let subject = match field {
            PersonalField::OldValue | PersonalField::NewValue => about,
            PersonalField::Ip | PersonalField::UserAgent => by,
        };
        let Some(subject) = subject else { continue };
        match plan.iter_mut().find(|(s, _)| *s == subject) {
            Some((_, fields)) => fields.push(field),
            None => plan.push((subject, vec![field])),
        }
    }
    plan
}

/// Why a sealed part's plaintext could not be put back into its event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenPartError {
    /// There is no part at this index.
    #[error("the event has no sealed part {0}")]
    NoSuchPart(usize),
    /// The plaintext is not the JSON object of the part's fields.
    #[error("sealed part plaintext is malformed: {0}")]
    Malformed(String),
}

impl NewAuditEvent {
    /// The plaintext a sealed part encrypts: the canonical JSON object of `fields` (all
    /// present, as [`personal_plan`] lists them; an absent one would read back as the
    /// JSON value `null`).
    #[must_use]
    pub fn personal_plaintext(&self, fields: &[PersonalField]) -> Vec<u8> {
        let object: Map<String, Value> = fields
            .iter()
            .map(|f| {
                (
                    f.as_str().to_owned(),
                    f.value_of(self).unwrap_or(Value::Null),
                )
            })
            .collect();
        canonical_json(&Value::Object(object)).into_bytes()
    }
}

impl AuditEvent {
    /// Whether `field` is held by one of the sealed parts (its body value is then
    /// plaintext put back by [`AuditEvent::open_part`], [`ERASED`], or absent, and the
    /// hash does not cover it).
    #[must_use]
    pub fn is_sealed(&self, field: PersonalField) -> bool {
        self.sealed.iter().any(|p| p.fields.contains(&field))
    }

    /// Puts the decrypted plaintext of sealed part `index` back into the body.
    ///
    /// # Errors
    /// No such part, or a plaintext that is not the object of the part's fields.
    pub fn open_part(&mut self, index: usize, plaintext: &[u8]) -> Result<(), OpenPartError> {
        let fields = self
            .sealed
            .get(index)
            .ok_or(OpenPartError::NoSuchPart(index))?
            .fields
            .clone();
        let mut object = match serde_json::from_slice::<Value>(plaintext) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err(OpenPartError::Malformed("not an object".to_owned())),
            Err(e) => return Err(OpenPartError::Malformed(e.to_string())),
        };
        for field in fields {
            let value = object
                .remove(field.as_str())
                .ok_or_else(|| OpenPartError::Malformed(format!("{} missing", field.as_str())))?;
            // A sealed field is always present (`null` is the JSON value `null`).
            field.set(&mut self.body, Some(value))?;
        }
        Ok(())
    }

    /// Marks the fields of sealed part `index` as [`ERASED`] (its key is gone).
    ///
    /// # Errors
    /// No such part.
    pub fn erase_part(&mut self, index: usize) -> Result<(), OpenPartError> {
        let fields = self
            .sealed
            .get(index)
            .ok_or(OpenPartError::NoSuchPart(index))?
            .fields
            .clone();
        for field in fields {
            field.set(&mut self.body, Some(Value::String(ERASED.to_owned())))?;
        }
        Ok(())
    }

    /// Empties every sealed field of the body: the form in which the event is stored
    /// and archived (its hash is unchanged).
    #[must_use]
    pub fn closed(mut self) -> Self {
        for field in PersonalField::ALL {
            if self.is_sealed(field) {
                // Setting `None` never fails.
                let _ = field.set(&mut self.body, None);
            }
        }
        self
    }
}

/// Where an erasure applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "chain", rename_all = "snake_case")]
pub enum ErasureScope {
    /// Every chain (an account deleted by its owner).
    Everywhere,
    /// One chain (an org admin erasing a member of that org).
    Chain(ChainId),
}

/// What an erasure did: the receipt's audit part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectErasure {
    /// Whose data.
    pub subject: DataSubject,
    /// The chains whose key for the subject was deleted (sorted): every personal field
    /// of the subject in those chains, live or archived, is now unreadable.
    pub chains: Vec<ChainId>,
}

/// Why an erasure failed (nothing was erased: the caller rolls back).
#[derive(Debug, thiserror::Error)]
pub enum EraseSubjectError {
    /// The store failed.
    #[error("audit key store failed")]
    Storage(#[source] crate::BoxError),
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}
