//! Signed digests: periodic, signed snapshots of every chain head (CloudTrail-style).
//!
//! A digest job records the current head of every chain, links the digest to the
//! previous one (`previous_digest_hash`) and signs its canonical bytes with a key the
//! database cannot forge (held by the signer adapter). Later, verification checks that
//! the stored chains still pass through every signed head: someone with write access to
//! the audit table can recompute a whole chain so that it is internally consistent, but
//! cannot make it match heads signed before the rewrite.
//!
//! # Digest encoding, version 1 ([`DIGEST_ENCODING_V1`])
//! With the primitives of [`crate::canonical`]: `str("ptoc.audit.digest.v1")`,
//! `i64(created_at in µs since the epoch)`, `fixed(previous_digest_hash)`,
//! `u64(number of heads)`, then per head, sorted by (chain id string, seq, hash):
//! `str(chain id)`, `u64(seq)`, `fixed(hash)`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::canonical::Encoder;
use crate::chain::ChainHead;
use crate::event::{AuditEvent, truncate_to_micros, unix_micros};
use crate::hash::Hash32;
use crate::scope::ChainId;
use crate::verify::{ChainStart, ChainVerifier, VerifyReport};

/// Version tag of the digest encoding (first field of [`Digest::canonical_bytes`]).
pub const DIGEST_ENCODING_V1: &str = "ptoc.audit.digest.v1";

/// Signs and verifies digest bytes. Port: the Ed25519 implementation lives in an adapter,
/// with a key kept outside the database.
#[cfg_attr(test, mockall::automock)]
pub trait DigestSigner: Send + Sync {
    /// Signs `bytes`.
    fn sign(&self, bytes: &[u8]) -> Vec<u8>;
    /// Whether `signature` is this key's valid signature of `bytes`.
    fn verify(&self, bytes: &[u8], signature: &[u8]) -> bool;
    /// Identifies the key (recorded with each signature, for rotation).
    fn key_id(&self) -> String;
}

/// A snapshot of chain heads, linked to the previous digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// When the snapshot was taken (UTC, microseconds).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The head of every chain at that time.
    pub heads: Vec<ChainHead>,
    /// [`Digest::hash`] of the previous digest ([`Hash32::GENESIS`] for the first).
    pub previous_digest_hash: Hash32,
}

impl Digest {
    /// A digest of `heads` taken at `created_at`, following `previous`.
    #[must_use]
    pub fn new(
        created_at: OffsetDateTime,
        heads: Vec<ChainHead>,
        previous: Option<&Digest>,
    ) -> Self {
        let mut digest = Self {
            created_at: truncate_to_micros(created_at),
            heads,
            previous_digest_hash: previous.map_or(Hash32::GENESIS, Digest::hash),
        };
        digest.heads.sort_by_cached_key(head_order);
        digest
    }

    /// The bytes that are hashed and signed (see the module documentation).
    #[must_use]
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut heads: Vec<_> = self.heads.iter().collect();
        heads.sort_by_cached_key(|h| head_order(h));
        let mut e = Encoder::new(DIGEST_ENCODING_V1);
        e.i64(unix_micros(self.created_at));
        e.fixed(self.previous_digest_hash.as_bytes());
        e.u64(heads.len() as u64);
        for head in heads {
            e.str(&head.chain.to_string());
            e.u64(head.seq);
            e.fixed(head.hash.as_bytes());
        }
        e.finish()
    }

    /// SHA-256 of the canonical bytes; the next digest links to it.
    #[must_use]
    pub fn hash(&self) -> Hash32 {
        Hash32::of(&self.canonical_bytes())
    }

    /// The recorded head of `chain`, if the digest has one.
    #[must_use]
    pub fn head(&self, chain: ChainId) -> Option<&ChainHead> {
        self.heads.iter().find(|h| h.chain == chain)
    }

    /// Signs the digest.
    #[must_use]
    pub fn sign(self, signer: &(impl DigestSigner + ?Sized)) -> SignedDigest {
        let signature = signer.sign(&self.canonical_bytes());
        SignedDigest {
            digest: self,
            key_id: signer.key_id(),
            signature,
        }
    }
}

fn head_order(head: &ChainHead) -> (String, u64, Hash32) {
    (head.chain.to_string(), head.seq, head.hash)
}

/// A digest with its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDigest {
    /// The digest.
    pub digest: Digest,
    /// The signing key ([`DigestSigner::key_id`]).
    pub key_id: String,
    /// Signature of [`Digest::canonical_bytes`] (hex in JSON).
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

impl SignedDigest {
    /// Checks key id and signature.
    ///
    /// # Errors
    /// [`DigestError::UnknownKey`] or [`DigestError::BadSignature`].
    pub fn verify_signature(
        &self,
        signer: &(impl DigestSigner + ?Sized),
    ) -> Result<(), DigestError> {
        if self.key_id != signer.key_id() {
            return Err(DigestError::UnknownKey {
                digest: self.digest.hash(),
                key_id: self.key_id.clone(),
            });
        }
        if !signer.verify(&self.digest.canonical_bytes(), &self.signature) {
            return Err(DigestError::BadSignature {
                digest: self.digest.hash(),
            });
        }
        Ok(())
    }
}

/// Why a series of signed digests cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Signed with another key than the verifier's.
    #[error("digest {digest} is signed with unknown key {key_id:?}")]
    UnknownKey {
        /// The digest's hash.
        digest: Hash32,
        /// Its key id.
        key_id: String,
    },
    /// The signature does not verify: the digest was altered or forged.
    #[error("digest {digest} has an invalid signature")]
    BadSignature {
        /// The digest's hash.
        digest: Hash32,
    },
    /// The digest does not link to the digest before it (one removed or replaced).
    #[error("digest {digest} links to {found}, expected {expected}")]
    BrokenSeries {
        /// The digest's hash.
        digest: Hash32,
        /// Hash of the digest before it.
        expected: Hash32,
        /// Its `previous_digest_hash`.
        found: Hash32,
    },
    /// The digest is older than the digest before it.
    #[error("digest {digest} is older than its predecessor")]
    OutOfOrder {
        /// The digest's hash.
        digest: Hash32,
    },
    /// Two digests record different hashes for the same chain position.
    #[error("digests disagree on the head of chain {chain} at seq {seq}")]
    ConflictingAnchors {
        /// The chain.
        chain: ChainId,
        /// The position.
        seq: u64,
    },
}

/// A chain head recorded by a signed digest: the stored chain must pass through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The recorded head.
    pub head: ChainHead,
    /// Hash of the digest that recorded it.
    pub digest: Hash32,
}

/// Verifies a consecutive series of signed digests (oldest first): every signature, the
/// `previous_digest_hash` links between neighbours, and non-decreasing times. The first
/// digest's own link is not checked, so a series may start mid-history.
///
/// # Errors
/// The first problem found.
pub fn verify_digest_series(
    digests: &[SignedDigest],
    signer: &(impl DigestSigner + ?Sized),
) -> Result<(), DigestError> {
    let mut previous: Option<&Digest> = None;
    for signed in digests {
        signed.verify_signature(signer)?;
        let digest = &signed.digest;
        if let Some(previous) = previous {
            let expected = previous.hash();
            if digest.previous_digest_hash != expected {
                return Err(DigestError::BrokenSeries {
                    digest: digest.hash(),
                    expected,
                    found: digest.previous_digest_hash,
                });
            }
            if digest.created_at < previous.created_at {
                return Err(DigestError::OutOfOrder {
                    digest: digest.hash(),
                });
            }
        }
        previous = Some(digest);
    }
    Ok(())
}

/// The anchors the digests record for `chain`, by ascending seq (one per seq).
///
/// # Errors
/// [`DigestError::ConflictingAnchors`] if two digests disagree about one position.
pub fn anchors_for(chain: ChainId, digests: &[SignedDigest]) -> Result<Vec<Anchor>, DigestError> {
    let mut anchors = BTreeMap::new();
    for signed in digests {
        let digest = signed.digest.hash();
        for head in signed.digest.heads.iter().filter(|h| h.chain == chain) {
            let anchor = Anchor {
                head: *head,
                digest,
            };
            if let Some(existing) = anchors.insert(head.seq, anchor)
                && existing.head.hash != head.hash
            {
                return Err(DigestError::ConflictingAnchors {
                    chain,
                    seq: head.seq,
                });
            }
        }
    }
    Ok(anchors.into_values().collect())
}

/// Verifies `events` (ascending `seq`) from `start` like [`crate::verify_chain`], and
/// checks that the chain still passes through every head the signed `digests` recorded
/// for it. A chain rewritten and recomputed after a digest was signed is reported as
/// [`crate::BreakKind::AnchorMismatch`] at the first anchored seq at or after the
/// rewrite; a chain cut short as [`crate::BreakKind::Truncated`].
///
/// Anchors before `start` (archived events) are skipped; an anchor at the start head is
/// checked against it, so archive cuts are covered as well.
///
/// # Errors
/// [`DigestError`] if the digests themselves cannot be trusted (see
/// [`verify_digest_series`], [`anchors_for`]).
pub fn verify_against_digests<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
    start: impl Into<ChainStart>,
    digests: &[SignedDigest],
    signer: &(impl DigestSigner + ?Sized),
) -> Result<VerifyReport, DigestError> {
    let start = start.into();
    verify_digest_series(digests, signer)?;
    let anchors = anchors_for(start.chain(), digests)?;
    let mut verifier = ChainVerifier::new(start).with_anchors(anchors);
    for event in events {
        if verifier.push(event).is_err() {
            break;
        }
    }
    Ok(verifier.finish())
}

pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(deserializer)?;
        hex::decode(s).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ChainBuilder;
    use crate::testkit::{FakeSigner, ORG, chain_of};
    use crate::verify::BreakKind;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-06-01 00:00 UTC);

    fn genesis() -> ChainStart {
        ChainStart::Genesis(ChainId::Org(ORG))
    }

    fn digest_at(
        events: &[AuditEvent],
        previous: Option<&Digest>,
        signer: &FakeSigner,
    ) -> SignedDigest {
        let heads = events.last().map(AuditEvent::head).into_iter().collect();
        Digest::new(
            T0 + time::Duration::hours(events.len() as i64),
            heads,
            previous,
        )
        .sign(signer)
    }

    /// Recomputes the whole chain from scratch after editing one event: internally
    /// consistent, so plain verification passes.
    fn rewrite(events: &[AuditEvent], edit_index: usize) -> Vec<AuditEvent> {
        let mut builder = ChainBuilder::new(ChainId::Org(ORG));
        events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut body = e.body.clone();
                if i == edit_index {
                    body.entity_id = "rewritten".into();
                }
                builder.seal(body).expect("seal")
            })
            .collect()
    }

    #[test]
    fn digest_encoding_is_order_independent_and_linked() {
        let a = ChainHead {
            chain: ChainId::Org(ORG),
            seq: 3,
            hash: Hash32::of(b"a"),
        };
        let b = ChainHead {
            chain: ChainId::Platform,
            seq: 9,
            hash: Hash32::of(b"b"),
        };
        let d1 = Digest::new(T0, vec![a, b], None);
        let d2 = Digest {
            heads: vec![b, a],
            ..d1.clone()
        };
        assert_eq!(d1.canonical_bytes(), d2.canonical_bytes());
        assert!(d1.canonical_bytes().starts_with(&[0, 0, 0, 0, 0, 0, 0, 20]));
        assert_eq!(d1.previous_digest_hash, Hash32::GENESIS);
        let next = Digest::new(T0, vec![a], Some(&d1));
        assert_eq!(next.previous_digest_hash, d1.hash());
        assert_eq!(d1.head(ChainId::Platform), Some(&b));
        let changed = Digest {
            created_at: T0 + time::Duration::microseconds(1),
            ..d1.clone()
        };
        assert_ne!(changed.hash(), d1.hash());
    }

    #[test]
    fn signed_digest_round_trips_and_verifies() {
        let signer = FakeSigner::new(b"k1");
        let signed = digest_at(&chain_of(ORG, 3), None, &signer);
        assert_eq!(signed.key_id, "fake:k1");
        let json = serde_json::to_string(&signed).expect("serialize");
        let back: SignedDigest = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, signed);
        assert_eq!(back.verify_signature(&signer), Ok(()));

        let mut tampered = signed.clone();
        tampered.digest.heads[0].seq = 2;
        assert!(matches!(
            tampered.verify_signature(&signer),
            Err(DigestError::BadSignature { .. })
        ));
        let other = FakeSigner::new(b"k2");
        assert!(matches!(
            signed.verify_signature(&other),
            Err(DigestError::UnknownKey { .. })
        ));
    }

    #[test]
    fn forged_recomputed_chain_fails_against_earlier_digest() {
        let signer = FakeSigner::new(b"secret");
        let events = chain_of(ORG, 8);
        let d1 = digest_at(&events[..3], None, &signer);
        let d2 = digest_at(&events[..6], Some(&d1.digest), &signer);
        let digests = [d1, d2];

        let report =
            verify_against_digests(&events, genesis(), &digests, &signer).expect("digests");
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.anchors_confirmed, 2);

        // The attacker edits event 5 and recomputes the chain from scratch.
        let forged = rewrite(&events, 4);
        assert!(crate::verify_chain(&forged, genesis()).is_intact());
        let report =
            verify_against_digests(&forged, genesis(), &digests, &signer).expect("digests");
        let broken = report.first_break.expect("break");
        assert_eq!(broken.seq, 6);
        assert_eq!(broken.event_id, Some(forged[5].id()));
        assert_eq!(
            broken.kind,
            BreakKind::AnchorMismatch {
                anchored: events[5].hash,
                digest: digests[1].digest.hash(),
            }
        );
        assert_ne!(forged[5].hash, events[5].hash);
        assert_eq!(report.anchors_confirmed, 1);
    }

    #[test]
    fn truncated_chain_fails_against_digest() {
        let signer = FakeSigner::new(b"secret");
        let events = chain_of(ORG, 6);
        let digests = [digest_at(&events, None, &signer)];
        let report =
            verify_against_digests(&events[..4], genesis(), &digests, &signer).expect("digests");
        let broken = report.first_break.expect("break");
        assert_eq!((broken.seq, broken.event_id), (6, None));
        assert!(
            matches!(broken.kind, BreakKind::Truncated { anchored, .. } if anchored == events[5].hash)
        );
    }

    #[test]
    fn anchors_work_across_an_archive_cut() {
        let signer = FakeSigner::new(b"secret");
        let events = chain_of(ORG, 9);
        let d1 = digest_at(&events[..2], None, &signer);
        let d2 = digest_at(&events[..4], Some(&d1.digest), &signer);
        let d3 = digest_at(&events[..7], Some(&d2.digest), &signer);
        let digests = [d1, d2, d3];
        let cut = events[3].head();

        let report = verify_against_digests(&events[4..], cut, &digests, &signer).expect("digests");
        assert!(report.is_intact(), "{report:?}");
        // The anchor at seq 4 is the cut itself; the one at seq 2 is archived.
        assert_eq!(report.anchors_confirmed, 2);

        // A cut head that disagrees with a digest (forged archive) is caught up front.
        let forged_cut = ChainHead {
            hash: Hash32::of(b"forged"),
            ..cut
        };
        let broken = verify_against_digests(&events[4..], forged_cut, &digests, &signer)
            .expect("digests")
            .first_break
            .expect("break");
        assert_eq!((broken.seq, broken.event_id), (4, None));
        assert!(matches!(broken.kind, BreakKind::AnchorMismatch { .. }));
    }

    #[test]
    fn untrustworthy_digest_series_is_an_error() {
        let signer = FakeSigner::new(b"secret");
        let events = chain_of(ORG, 4);
        let d1 = digest_at(&events[..2], None, &signer);
        let d2 = digest_at(&events, Some(&d1.digest), &signer);
        let unlinked = digest_at(&events, None, &signer);
        assert!(matches!(
            verify_digest_series(&[d1.clone(), unlinked], &signer),
            Err(DigestError::BrokenSeries { .. })
        ));
        let older = Digest::new(T0 - time::Duration::days(1), vec![], Some(&d2.digest));
        assert!(matches!(
            verify_digest_series(&[d2.clone(), older.sign(&signer)], &signer),
            Err(DigestError::OutOfOrder { .. })
        ));
        let mut forged = d2.clone();
        forged.digest.heads[0].hash = Hash32::of(b"x");
        assert!(matches!(
            verify_against_digests(&events, genesis(), &[d1.clone(), forged], &signer),
            Err(DigestError::BadSignature { .. })
        ));
        // Two validly signed digests that disagree.
        let other = rewrite(&events, 0);
        let conflicting = Digest::new(
            T0 + time::Duration::days(1),
            vec![other[3].head()],
            Some(&d2.digest),
        )
        .sign(&signer);
        assert_eq!(
            verify_against_digests(&events, genesis(), &[d1, d2, conflicting], &signer),
            Err(DigestError::ConflictingAnchors {
                chain: ChainId::Org(ORG),
                seq: 4
            })
        );
    }

    #[test]
    fn mocked_signer_is_consulted() {
        let mut signer = MockDigestSigner::new();
        signer.expect_key_id().return_const("mock".to_owned());
        signer.expect_sign().returning(|bytes| bytes[..4].to_vec());
        signer
            .expect_verify()
            .returning(|_, sig| sig == [0, 0, 0, 0]);
        let signed = Digest::new(T0, vec![], None).sign(&signer);
        assert_eq!(signed.signature, [0, 0, 0, 0]);
        assert_eq!(verify_digest_series(&[signed], &signer), Ok(()));
    }
}
