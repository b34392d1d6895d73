//! Sealing events into their tenant's hash chain.

use serde::{Deserialize, Serialize};

use crate::canonical::encode_event;
use crate::event::{AuditEvent, NewAuditEvent};
use crate::hash::Hash32;
use crate::personal::SealedPart;
use crate::scope::ChainId;

/// The last event of a chain: what the next event links to, and what digests anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChainHead {
    /// The chain.
    pub chain: ChainId,
    /// Sequence number of the last event.
    pub seq: u64,
    /// Hash of the last event.
    pub hash: Hash32,
}

/// Why an event could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The given head belongs to another chain than the event's scope.
    #[error("event belongs to chain {event} but the head given is of chain {head}")]
    ChainMismatch {
        /// The event's chain.
        event: ChainId,
        /// The head's chain.
        head: ChainId,
    },
    /// The chain reached `u64::MAX` events.
    #[error("chain {0} has no sequence numbers left")]
    SeqExhausted(ChainId),
    /// Sealed parts that list a field twice, or no field.
    #[error("sealed parts list a personal field twice or none")]
    InvalidParts,
}

/// Seals `new` into its chain after `prev` (`None` for the first event of the chain):
/// assigns `seq` (`prev.seq + 1`, or 1) and `prev_hash` (`prev.hash`, or
/// [`Hash32::GENESIS`]) and computes `hash = sha256(canonical_bytes)`.
///
/// Adapters call this with the chain head read under a per-chain lock, inside the
/// transaction that stores the event (see [`crate::AuditSink`]).
///
/// # Errors
/// [`SealError::ChainMismatch`] if `prev` is the head of another chain;
/// [`SealError::SeqExhausted`] if `prev.seq == u64::MAX`.
pub fn seal(new: NewAuditEvent, prev: Option<&ChainHead>) -> Result<AuditEvent, SealError> {
    seal_with_parts(new, Vec::new(), prev)
}

/// Seals `new` as [`seal`] does, with its personal fields sealed in `parts` (the
/// adapter's ciphertexts, see [`crate::personal`]): the hash covers the parts (canonical
/// encoding v2) and skips the fields they hold, whatever `new` still carries in them.
///
/// # Errors
/// As [`seal`]; [`SealError::InvalidParts`] if a field is listed twice or a part lists
/// no field.
pub fn seal_with_parts(
    new: NewAuditEvent,
    parts: Vec<SealedPart>,
    prev: Option<&ChainHead>,
) -> Result<AuditEvent, SealError> {
    let chain = new.chain();
    let mut seen = Vec::new();
    for part in &parts {
        if part.fields.is_empty() || part.fields.iter().any(|f| seen.contains(f)) {
            return Err(SealError::InvalidParts);
        }
        seen.extend_from_slice(&part.fields);
    }
    let (seq, prev_hash) = match prev {
        None => (1, Hash32::GENESIS),
        Some(head) if head.chain != chain => {
            return Err(SealError::ChainMismatch {
                event: chain,
                head: head.chain,
            });
        }
        Some(head) => (
            head.seq
                .checked_add(1)
                .ok_or(SealError::SeqExhausted(chain))?,
            head.hash,
        ),
    };
    let hash = Hash32::of(&encode_event(seq, &prev_hash, &new, &parts));
    Ok(AuditEvent {
        body: new,
        seq,
        prev_hash,
        hash,
        sealed: parts,
    })
}

/// Seals consecutive events of one chain, keeping its head.
///
/// For adapters that append several events in one transaction, for the in-memory test
/// doubles, and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBuilder {
    chain: ChainId,
    head: Option<ChainHead>,
}

impl ChainBuilder {
    /// A builder for an empty chain.
    #[must_use]
    pub const fn new(chain: ChainId) -> Self {
        Self { chain, head: None }
    }

    /// A builder continuing after `head`.
    #[must_use]
    pub const fn resume(head: ChainHead) -> Self {
        Self {
            chain: head.chain,
            head: Some(head),
        }
    }

    /// The chain being built.
    #[must_use]
    pub const fn chain(&self) -> ChainId {
        self.chain
    }

    /// The current head (`None` while the chain is empty).
    #[must_use]
    pub const fn head(&self) -> Option<&ChainHead> {
        self.head.as_ref()
    }

    /// Seals `new` as the next event and advances the head.
    ///
    /// # Errors
    /// [`SealError::ChainMismatch`] if `new` belongs to another chain;
    /// [`SealError::SeqExhausted`] if the chain is full.
    pub fn seal(&mut self, new: NewAuditEvent) -> Result<AuditEvent, SealError> {
        self.seal_with_parts(new, Vec::new())
    }

    /// Seals `new` with its personal fields in `parts` ([`seal_with_parts`]) as the next
    /// event and advances the head.
    ///
    /// # Errors
    /// As [`ChainBuilder::seal`] and [`seal_with_parts`].
    pub fn seal_with_parts(
        &mut self,
        new: NewAuditEvent,
        parts: Vec<SealedPart>,
    ) -> Result<AuditEvent, SealError> {
        if new.chain() != self.chain {
            return Err(SealError::ChainMismatch {
                event: new.chain(),
                head: self.chain,
            });
        }
        let event = seal_with_parts(new, parts, self.head.as_ref())?;
        self.head = Some(event.head());
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ORG, event_n};

    #[test]
    fn first_event_links_to_genesis() {
        let event = seal(event_n(ORG, 1), None).expect("seal");
        assert_eq!(event.seq, 1);
        assert_eq!(event.prev_hash, Hash32::GENESIS);
        assert_eq!(event.hash, event.compute_hash());
    }

    #[test]
    fn builder_links_consecutive_events() {
        let mut builder = ChainBuilder::new(ChainId::Org(ORG));
        let a = builder.seal(event_n(ORG, 1)).expect("seal");
        let b = builder.seal(event_n(ORG, 2)).expect("seal");
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(builder.head(), Some(&b.head()));
        let mut resumed = ChainBuilder::resume(b.head());
        assert_eq!(resumed.seal(event_n(ORG, 3)).expect("seal").seq, 3);
    }

    #[test]
    fn refuses_foreign_chain() {
        let other = uuid::Uuid::from_u128(99);
        let head = seal(event_n(ORG, 1), None).expect("seal").head();
        assert_eq!(
            seal(event_n(other, 2), Some(&head)),
            Err(SealError::ChainMismatch {
                event: ChainId::Org(other),
                head: ChainId::Org(ORG)
            })
        );
        let mut builder = ChainBuilder::new(ChainId::Org(ORG));
        assert!(builder.seal(event_n(other, 1)).is_err());
        assert_eq!(builder.head(), None);
    }

    #[test]
    fn refuses_seq_overflow() {
        let head = ChainHead {
            chain: ChainId::Org(ORG),
            seq: u64::MAX,
            hash: Hash32::GENESIS,
        };
        assert_eq!(
            seal(event_n(ORG, 1), Some(&head)),
            Err(SealError::SeqExhausted(ChainId::Org(ORG)))
        );
    }
}
