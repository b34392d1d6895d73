//! Audit domain: tamper-evident audit and activity events, and the ports to store and
//! read them.
//!
//! # Events
//! A domain writes a [`NewAuditEvent`] (who, what, on which entity, old/new values,
//! request metadata, when) through an [`AuditSink`] in the same transaction as the change
//! it records. Audit events ([`Category::Audit`]) and user activity
//! ([`Category::Activity`]: sign-ins, exports, …) share one log.
//!
//! # Hash chains
//! Every tenant has one chain, identified by its [`ChainId`] (`org:<uuid>`,
//! `district:<uuid>` or `platform`). Sealing ([`seal`], [`ChainBuilder`]) gives each event
//! the next `seq` of its chain (1, 2, 3, … without gaps), the hash of the previous event
//! as `prev_hash` ([`Hash32::GENESIS`] for the first) and its own
//! `hash = SHA-256(canonical_bytes(event))`. Because the hash covers `seq`, `prev_hash`
//! and the chain id, editing, deleting, reordering, relinking or moving an event between
//! tenants breaks the chain at that point; [`verify_chain`] / [`ChainVerifier`] stream
//! over a chain in constant memory and report the first broken link ([`BrokenLink`]: the
//! event id, its seq and the [`BreakKind`]).
//!
//! # Canonical encoding (version 1)
//! [`canonical_bytes`] is a length-prefixed binary encoding of every field except `hash`,
//! in a fixed order, starting with the version tag `ptoc.audit.event.v1`; JSON values are
//! embedded as canonical JSON (sorted keys, no whitespace, normalised numbers), and the
//! time as whole microseconds since the epoch, so the hash survives a round trip through
//! PostgreSQL (`jsonb`, `timestamptz`) or SQLite. The exact layout is documented in
//! [`canonical`].
//!
//! # Personal data (encoding version 2)
//! The personal fields of an event about a person (its values; the acting user's IP and
//! user agent) are sealed per data subject ([`DataSubject`]) under that subject's key
//! by the adapter ([`SealedPart`]); the hash covers the ciphertexts, so erasing the key
//! ("crypto-shredding") makes them unreadable everywhere while every chain, digest and
//! archive still verifies. See [`personal`].
//!
//! # Signed digests
//! A chain alone proves internal consistency only: whoever can write the table can
//! recompute a whole chain. Periodically a [`Digest`] records the head of every chain,
//! links to the previous digest (`previous_digest_hash`) and is signed by a
//! [`DigestSigner`] whose key is kept outside the database (an Ed25519 adapter).
//! [`verify_against_digests`] checks the digest series and that the stored chain still
//! passes through every signed head, which catches rewritten chains
//! ([`BreakKind::AnchorMismatch`]) and truncation ([`BreakKind::Truncated`]).
//!
//! # Retention and archives
//! Events older than the [`RetentionPolicy`] (400 days by default) are moved to archive
//! files described by an [`ArchiveManifest`], signed with the digest key
//! ([`SignedManifest`]); verification of the remaining chain starts from the manifest's
//! cut head ([`ChainStart::After`]), so chains stay verifiable across archive
//! boundaries, and a cut that is not signed is reported ([`BreakKind::UntrustedCut`]).
//!
//! # Example
//! ```
//! use audit::{
//!     Action, Actor, BreakKind, ChainBuilder, ChangeType, NewAuditEvent, TenantScope,
//!     verify_chain,
//! };
//! use serde_json::json;
//! use uuid::Uuid;
//!
//! let org = TenantScope::org(Uuid::now_v7());
//! let admin = Actor::User(Uuid::now_v7());
//! let mut chain = ChainBuilder::new(org.chain_id());
//! let mut events = Vec::new();
//! for role in ["committee_lead", "board_member"] {
//!     let change = NewAuditEvent::audit(
//!         org,
//!         admin,
//!         Action::new("permission.update")?,
//!         "permission_setting",
//!         "budget.approve",
//!         ChangeType::Update,
//!     )
//!     .with_new_value(json!({ "min_role": role }));
//!     events.push(chain.seal(change)?);
//! }
//! assert!(verify_chain(&events, org.chain_id()).is_intact());
//!
//! // Someone edits the first event in the database…
//! events[0].body.new_value = Some(json!({ "min_role": "volunteer" }));
//! let broken = verify_chain(&events, org.chain_id()).first_break.expect("tampering");
//! assert_eq!((broken.seq, broken.event_id), (1, Some(events[0].id())));
//! assert!(matches!(broken.kind, BreakKind::HashMismatch { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod action;
pub mod canonical;
pub mod catalog;
mod chain;
pub mod changes;
mod digest;
mod event;
mod hash;
pub mod personal;
mod ports;
mod query;
mod retention;
mod scope;
mod verify;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testkit;

pub use action::{Action, ActionError};
pub use canonical::{EVENT_ENCODING_V1, EVENT_ENCODING_V2, canonical_bytes, canonical_json};
pub use catalog::{AfterCommit, EventType};
pub use chain::{ChainBuilder, ChainHead, SealError, seal, seal_with_parts};
pub use changes::{
    Audience, ChangeEvent, ChangePage, ChangePageError, EventCursor, EventCursorError, Publication,
    Receiver, Selection, Values, audience_keys, publication_named, publications, read_page,
};
pub use digest::{
    Anchor, DIGEST_ENCODING_V1, Digest, DigestError, DigestSigner, SignedDigest, anchors_for,
    verify_against_digests, verify_digest_series,
};
pub use event::{
    Actor, AuditContext, AuditEvent, Category, ChangeType, NewAuditEvent, RequestMeta,
    truncate_to_micros, unix_micros,
};
pub use hash::{Hash32, ParseHashError};
pub use personal::{
    DataSubject, ERASED, EraseSubjectError, ErasureScope, OpenPartError, PersonalField, SealedPart,
    SubjectErasure, personal_plan, subject_of_entity,
};
pub use ports::{
    AppendAuditError, AuditErasure, AuditLog, AuditSink, BoxError, ChainReadError, DigestStore,
    DigestStoreError, GetAuditError, QueryAuditError, StatsAuditError,
};
pub use query::{
    ActionCount, AuditCursor, AuditFilter, AuditStats, CategoryDayCount, CursorError, DayCount,
    InvalidTimeRange, Page, PageRequest, TimeRange,
};
pub use retention::{
    ARCHIVE_MANIFEST_ENCODING_V1, ArchiveManifest, InvalidRetention, ManifestError,
    RetentionPolicy, SignedManifest,
};
pub use scope::{ChainId, ParseError, TenantScope};
pub use verify::{BreakKind, BrokenLink, ChainStart, ChainVerifier, VerifyReport, verify_chain};
