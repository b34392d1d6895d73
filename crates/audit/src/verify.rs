//! Streaming verification of a chain: finds the first broken link.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chain::ChainHead;
use crate::digest::Anchor;
use crate::event::AuditEvent;
use crate::hash::Hash32;
use crate::scope::ChainId;

/// Where verification of a chain starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStart {
    /// From the first event of the chain (`seq` 1, `prev_hash` [`Hash32::GENESIS`]).
    Genesis(ChainId),
    /// After a trusted head, e.g. the head at an archive cut
    /// ([`crate::ArchiveManifest::cut`]): the first event must have
    /// `seq == head.seq + 1` and `prev_hash == head.hash`.
    After(ChainHead),
}

impl ChainStart {
    /// The chain being verified.
    #[must_use]
    pub const fn chain(&self) -> ChainId {
        match self {
            Self::Genesis(chain) => *chain,
            Self::After(head) => head.chain,
        }
    }

    /// The head verification starts after (`None` from genesis).
    #[must_use]
    pub const fn head(&self) -> Option<ChainHead> {
        match self {
            Self::Genesis(_) => None,
            Self::After(head) => Some(*head),
        }
    }
}

impl From<ChainHead> for ChainStart {
    fn from(head: ChainHead) -> Self {
        Self::After(head)
    }
}

impl From<ChainId> for ChainStart {
    fn from(chain: ChainId) -> Self {
        Self::Genesis(chain)
    }
}

/// Why a link is broken, and what that means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum BreakKind {
    /// The event belongs to another tenant's chain (moved or copied between tenants).
    WrongChain {
        /// The chain being verified.
        expected: ChainId,
        /// The event's chain.
        found: ChainId,
    },
    /// The event's `seq` is higher than expected: the events from `expected` up to
    /// `seq - 1` are missing (deleted), or the stream is out of order.
    SeqGap {
        /// The seq that should have come next.
        expected: u64,
    },
    /// The event's `seq` is lower than expected: an event was duplicated, inserted or
    /// the stream is out of order.
    SeqRegression {
        /// The seq that should have come next.
        expected: u64,
    },
    /// The stored hash doesn't match the content: the event was edited after sealing.
    HashMismatch {
        /// The hash stored in the event.
        stored: Hash32,
        /// The hash of its current content.
        computed: Hash32,
    },
    /// The event is intact but doesn't link to its predecessor: the chain was relinked
    /// (the event or its predecessor was rewritten and rehashed).
    PrevHashMismatch {
        /// Hash of the verified predecessor (or of the start head / genesis).
        expected: Hash32,
        /// The event's `prev_hash`.
        found: Hash32,
    },
    /// The chain is internally consistent but the event's hash (or the start head's)
    /// differs from the one a signed digest recorded at this seq: the chain was rewritten
    /// (recomputed) up to here.
    AnchorMismatch {
        /// Hash recorded by the digest.
        anchored: Hash32,
        /// Hash of the digest that recorded it.
        digest: Hash32,
    },
    /// The stored chain ends before a seq recorded by a signed digest: events at the end
    /// were deleted (truncation).
    Truncated {
        /// Hash recorded by the digest at this seq.
        anchored: Hash32,
        /// Hash of the digest that recorded it.
        digest: Hash32,
    },
    /// The archive cut the live chain starts from is not signed by the digest key: the
    /// record of what was archived was forged or altered (e.g. to hide deleted events).
    UntrustedCut,
}

impl BreakKind {
    /// Stable machine-readable code (`hash_mismatch`, `seq_gap`, …).
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::WrongChain { .. } => "wrong_chain",
            Self::SeqGap { .. } => "seq_gap",
            Self::SeqRegression { .. } => "seq_regression",
            Self::HashMismatch { .. } => "hash_mismatch",
            Self::PrevHashMismatch { .. } => "prev_hash_mismatch",
            Self::AnchorMismatch { .. } => "anchor_mismatch",
            Self::Truncated { .. } => "truncated",
            Self::UntrustedCut => "untrusted_cut",
        }
    }
}

impl fmt::Display for BreakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongChain { expected, found } => {
                write!(f, "event of chain {found} found in chain {expected}")
            }
            Self::SeqGap { expected } => {
                write!(f, "sequence gap: expected seq {expected} (events deleted)")
            }
            Self::SeqRegression { expected } => write!(
                f,
                "sequence went backwards: expected seq {expected} (events duplicated or reordered)"
            ),
            Self::HashMismatch { .. } => f.write_str("content does not match its hash (edited)"),
            Self::PrevHashMismatch { .. } => {
                f.write_str("does not link to the previous event (chain relinked)")
            }
            Self::AnchorMismatch { digest, .. } => {
                write!(f, "differs from signed digest {digest} (chain rewritten)")
            }
            Self::Truncated { digest, .. } => write!(
                f,
                "missing although signed digest {digest} recorded it (chain truncated)"
            ),
            Self::UntrustedCut => f.write_str(
                "the archive cut is not signed by the digest key (archive record forged)",
            ),
        }
    }
}

/// The first place a chain stops being trustworthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenLink {
    /// The `seq` of the offending event, as stored. For [`BreakKind::Truncated`] the
    /// missing anchored seq; for an [`BreakKind::AnchorMismatch`] of the start head, the
    /// start head's seq.
    pub seq: u64,
    /// The offending event. `None` only when no stored event is at fault:
    /// [`BreakKind::Truncated`], or a start head that disagrees with a digest.
    pub event_id: Option<Uuid>,
    /// What is wrong.
    pub kind: BreakKind,
}

impl BrokenLink {
    /// The first seq at which the chain is no longer intact: the expected seq for
    /// sequence breaks (the first missing or displaced position), else [`BrokenLink::seq`].
    #[must_use]
    pub const fn position(&self) -> u64 {
        match self.kind {
            BreakKind::SeqGap { expected } | BreakKind::SeqRegression { expected } => expected,
            _ => self.seq,
        }
    }
}

impl fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.event_id {
            Some(id) => write!(f, "event {id} (seq {}): {}", self.seq, self.kind),
            None => write!(f, "seq {}: {}", self.seq, self.kind),
        }
    }
}

/// Outcome of verifying a chain (or a segment of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The chain verified.
    pub chain: ChainId,
    /// The head verification started after (`None`: from genesis).
    pub start: Option<ChainHead>,
    /// Number of events that passed every check.
    pub checked: u64,
    /// The last verified head (the start head if no event passed).
    pub head: Option<ChainHead>,
    /// Number of digest anchors that matched.
    pub anchors_confirmed: u64,
    /// The first broken link, if any. Nothing after it is checked.
    pub first_break: Option<BrokenLink>,
}

impl VerifyReport {
    /// Whether no break was found.
    #[must_use]
    pub const fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Verifies a chain one event at a time, in constant memory (plus one entry per digest
/// anchor), so it can consume pages from an async store.
///
/// Feed events in ascending `seq` with [`ChainVerifier::push`] (fetch them from
/// [`ChainVerifier::next_seq`] on), then call [`ChainVerifier::finish`].
///
/// Checks, in order, for each event: chain, seq, hash of the content, link to the
/// predecessor, then the digest anchor at that seq (if any).
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    start: ChainStart,
    head: Option<ChainHead>,
    checked: u64,
    anchors: BTreeMap<u64, Anchor>,
    anchors_confirmed: u64,
    first_break: Option<BrokenLink>,
}

impl ChainVerifier {
    /// A verifier starting at `start`.
    #[must_use]
    pub fn new(start: impl Into<ChainStart>) -> Self {
        let start = start.into();
        Self {
            start,
            head: start.head(),
            checked: 0,
            anchors: BTreeMap::new(),
            anchors_confirmed: 0,
            first_break: None,
        }
    }

    /// Adds heads recorded by signed digests that the stored chain must still match.
    /// Anchors of other chains and anchors before the start head are ignored; an anchor at
    /// the start head is checked against it immediately.
    #[must_use]
    pub fn with_anchors(mut self, anchors: impl IntoIterator<Item = Anchor>) -> Self {
        let chain = self.start.chain();
        let start_seq = self.start.head().map_or(0, |h| h.seq);
        for anchor in anchors.into_iter().filter(|a| a.head.chain == chain) {
            if anchor.head.seq > start_seq {
                self.anchors.insert(anchor.head.seq, anchor);
            } else if let Some(start) = self.start.head().filter(|h| h.seq == anchor.head.seq) {
                self.check_anchor(&anchor, start.hash, None);
            }
        }
        self
    }

    /// The seq the next pushed event must have.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.head.map_or(1, |h| h.seq.saturating_add(1))
    }

    /// Whether a break has been found.
    #[must_use]
    pub const fn is_broken(&self) -> bool {
        self.first_break.is_some()
    }

    /// Checks the next event.
    ///
    /// # Errors
    /// The first broken link, for this event or (once broken) for an earlier one.
    pub fn push(&mut self, event: &AuditEvent) -> Result<(), BrokenLink> {
        if let Some(broken) = self.first_break {
            return Err(broken);
        }
        let expected_chain = self.start.chain();
        let expected_seq = self.next_seq();
        let expected_prev = self.head.map_or(Hash32::GENESIS, |h| h.hash);
        let kind = if event.chain() != expected_chain {
            Some(BreakKind::WrongChain {
                expected: expected_chain,
                found: event.chain(),
            })
        } else if event.seq > expected_seq {
            Some(BreakKind::SeqGap {
                expected: expected_seq,
            })
        } else if event.seq < expected_seq {
            Some(BreakKind::SeqRegression {
                expected: expected_seq,
            })
        } else {
            let computed = event.compute_hash();
            if computed != event.hash {
                Some(BreakKind::HashMismatch {
                    stored: event.hash,
                    computed,
                })
            } else if event.prev_hash != expected_prev {
                Some(BreakKind::PrevHashMismatch {
                    expected: expected_prev,
                    found: event.prev_hash,
                })
            } else {
                None
            }
        };
        if let Some(kind) = kind {
            return Err(self.fail(event.seq, Some(event.id()), kind));
        }
        if let Some(anchor) = self.anchors.remove(&event.seq) {
            self.check_anchor(&anchor, event.hash, Some(event.id()));
            if let Some(broken) = self.first_break {
                return Err(broken);
            }
        }
        self.checked += 1;
        self.head = Some(event.head());
        Ok(())
    }

    fn check_anchor(&mut self, anchor: &Anchor, found: Hash32, event_id: Option<Uuid>) {
        if anchor.head.hash == found {
            self.anchors_confirmed += 1;
        } else {
            self.fail(
                anchor.head.seq,
                event_id,
                BreakKind::AnchorMismatch {
                    anchored: anchor.head.hash,
                    digest: anchor.digest,
                },
            );
        }
    }

    fn fail(&mut self, seq: u64, event_id: Option<Uuid>, kind: BreakKind) -> BrokenLink {
        *self.first_break.get_or_insert(BrokenLink {
            seq,
            event_id,
            kind,
        })
    }

    /// Ends verification. An anchor beyond the last verified event means the stored
    /// chain was truncated.
    #[must_use]
    pub fn finish(mut self) -> VerifyReport {
        if let Some((_, anchor)) = self.anchors.pop_first() {
            self.fail(
                anchor.head.seq,
                None,
                BreakKind::Truncated {
                    anchored: anchor.head.hash,
                    digest: anchor.digest,
                },
            );
        }
        VerifyReport {
            chain: self.start.chain(),
            start: self.start.head(),
            checked: self.checked,
            head: self.head,
            anchors_confirmed: self.anchors_confirmed,
            first_break: self.first_break,
        }
    }
}

/// Verifies `events` (ascending `seq`) from `start` and reports the first broken link.
///
/// Streams: stops at the first break and keeps no events in memory. Without digests this
/// proves internal consistency only; a chain recomputed from scratch, or cut short at the
/// end, passes. Use [`crate::verify_against_digests`] to detect those.
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
    start: impl Into<ChainStart>,
) -> VerifyReport {
    let mut verifier = ChainVerifier::new(start);
    for event in events {
        if verifier.push(event).is_err() {
            break;
        }
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::seal;
    use crate::testkit::{ORG, chain_of, event_n};
    use serde_json::json;

    fn genesis() -> ChainStart {
        ChainStart::Genesis(ChainId::Org(ORG))
    }

    #[test]
    fn intact_chain_verifies() {
        let events = chain_of(ORG, 10);
        let report = verify_chain(&events, genesis());
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.checked, 10);
        assert_eq!(report.head, events.last().map(AuditEvent::head));
        assert!(verify_chain(&[], genesis()).is_intact());
    }

    #[test]
    fn detects_edited_event_exactly() {
        let mut events = chain_of(ORG, 10);
        events[4].body.new_value = Some(json!({"min_role": "volunteer"}));
        let report = verify_chain(&events, genesis());
        let broken = report.first_break.expect("break");
        assert_eq!(broken.seq, 5);
        assert_eq!(broken.event_id, Some(events[4].id()));
        assert!(
            matches!(broken.kind, BreakKind::HashMismatch { stored, .. } if stored == events[4].hash)
        );
        assert_eq!(report.checked, 4);
        assert_eq!(report.head, Some(events[3].head()));
    }

    #[test]
    fn detects_deleted_event_as_gap() {
        let mut events = chain_of(ORG, 10);
        events.remove(6);
        let broken = verify_chain(&events, genesis()).first_break.expect("break");
        assert_eq!(broken.kind, BreakKind::SeqGap { expected: 7 });
        assert_eq!((broken.seq, broken.position()), (8, 7));
        assert_eq!(broken.event_id, Some(events[6].id()));
    }

    #[test]
    fn detects_deleted_first_event() {
        let events = chain_of(ORG, 3);
        let broken = verify_chain(&events[1..], genesis())
            .first_break
            .expect("break");
        assert_eq!(broken.kind, BreakKind::SeqGap { expected: 1 });
    }

    #[test]
    fn detects_reordering() {
        let mut events = chain_of(ORG, 6);
        events.swap(2, 3);
        let broken = verify_chain(&events, genesis()).first_break.expect("break");
        assert_eq!(broken.kind, BreakKind::SeqGap { expected: 3 });
        assert_eq!(broken.event_id, Some(events[2].id()));

        // Swapping the seq numbers instead edits both events.
        let mut events = chain_of(ORG, 6);
        events[2].seq = 4;
        events[3].seq = 3;
        events.swap(2, 3);
        let broken = verify_chain(&events, genesis()).first_break.expect("break");
        assert!(matches!(broken.kind, BreakKind::HashMismatch { .. }));
        assert_eq!(broken.seq, 3);
    }

    #[test]
    fn detects_duplicate() {
        let mut events = chain_of(ORG, 4);
        events.insert(2, events[1].clone());
        let broken = verify_chain(&events, genesis()).first_break.expect("break");
        assert_eq!(broken.kind, BreakKind::SeqRegression { expected: 3 });
    }

    #[test]
    fn detects_relinked_event() {
        // Event 3 replaced by a freshly sealed event (valid hash) linking elsewhere.
        let mut events = chain_of(ORG, 5);
        let forged_prev = events[0].head();
        let mut forged = seal(event_n(ORG, 100), Some(&forged_prev)).expect("seal");
        forged.seq = 3;
        forged.hash = forged.compute_hash();
        events[2] = forged;
        let broken = verify_chain(&events, genesis()).first_break.expect("break");
        assert_eq!(broken.seq, 3);
        assert_eq!(
            broken.kind,
            BreakKind::PrevHashMismatch {
                expected: events[1].hash,
                found: events[0].hash
            }
        );
    }

    #[test]
    fn detects_rehashed_edit_at_successor() {
        let mut events = chain_of(ORG, 5);
        events[1].body.entity_id = "forged".into();
        events[1].hash = events[1].compute_hash();
        let broken = verify_chain(&events, genesis()).first_break.expect("break");
        assert_eq!(broken.seq, 3);
        assert!(matches!(broken.kind, BreakKind::PrevHashMismatch { .. }));
    }

    #[test]
    fn detects_event_from_another_chain() {
        let other = uuid::Uuid::from_u128(42);
        let mut events = chain_of(ORG, 3);
        events[1] = chain_of(other, 2).remove(1);
        let broken = verify_chain(&events, genesis()).first_break.expect("break");
        assert_eq!(
            broken.kind,
            BreakKind::WrongChain {
                expected: ChainId::Org(ORG),
                found: ChainId::Org(other)
            }
        );
        assert_eq!(broken.seq, 2);
    }

    #[test]
    fn verifies_across_an_archive_cut() {
        let events = chain_of(ORG, 10);
        let (archived, live) = events.split_at(4);
        let archive = verify_chain(archived, genesis());
        assert!(archive.is_intact());
        let cut = archive.head.expect("head");
        let report = verify_chain(live, cut);
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.start, Some(cut));
        assert_eq!(
            (report.checked, report.head),
            (6, events.last().map(AuditEvent::head))
        );

        // A wrong cut head (e.g. a forged archive manifest) breaks the first live link.
        let wrong = ChainHead {
            hash: Hash32::of(b"forged"),
            ..cut
        };
        let broken = verify_chain(live, wrong).first_break.expect("break");
        assert_eq!(broken.seq, 5);
        assert!(matches!(broken.kind, BreakKind::PrevHashMismatch { .. }));
        // Live events that overlap the cut are out of sequence.
        let broken = verify_chain(&events[3..], cut).first_break.expect("break");
        assert_eq!(broken.kind, BreakKind::SeqRegression { expected: 5 });
    }

    #[test]
    fn push_keeps_reporting_the_first_break() {
        let mut events = chain_of(ORG, 4);
        events[1].body.action = crate::Action::from_static("forged.action");
        let mut verifier = ChainVerifier::new(genesis());
        assert_eq!(verifier.next_seq(), 1);
        assert!(verifier.push(&events[0]).is_ok());
        let first = verifier.push(&events[1]).expect_err("break");
        assert_eq!(verifier.push(&events[2]), Err(first));
        assert!(verifier.is_broken());
        assert_eq!(verifier.finish().first_break, Some(first));
    }

    #[test]
    fn report_serialises_with_reason_codes() {
        let mut events = chain_of(ORG, 2);
        events.remove(0);
        let report = verify_chain(&events, genesis());
        let json = serde_json::to_value(&report).expect("serialize");
        assert_eq!(json["first_break"]["kind"]["reason"], "seq_gap");
        assert_eq!(json["chain"], ChainId::Org(ORG).to_string());
        let kind = report.first_break.expect("break").kind;
        assert_eq!(kind.code(), "seq_gap");
        assert!(kind.to_string().contains("deleted"));
    }
}
