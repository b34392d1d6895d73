//! Retention: how long events stay in the live log, and manifests of archived segments.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::canonical::Encoder;
use crate::chain::ChainHead;
use crate::digest::DigestSigner;
use crate::event::{AuditEvent, truncate_to_micros, unix_micros};
use crate::hash::Hash32;
use crate::scope::ChainId;
use crate::verify::ChainStart;

/// An invalid retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "retention must be between {min} and {max} days, got {0}",
    min = RetentionPolicy::MIN_DAYS,
    max = RetentionPolicy::MAX_DAYS
)]
pub struct InvalidRetention(pub u32);

/// How many days events stay in the live log before they are archived.
///
/// Serialised as `{"days": 400}`; deserialisation validates the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RetentionRepr", into = "RetentionRepr")]
pub struct RetentionPolicy {
    days: u32,
}

#[derive(Serialize, Deserialize)]
struct RetentionRepr {
    days: u32,
}

impl RetentionPolicy {
    /// The default retention: 400 days (a school year plus a margin).
    pub const DEFAULT_DAYS: u32 = 400;
    /// The shortest allowed retention.
    pub const MIN_DAYS: u32 = 1;
    /// The longest allowed retention (100 years).
    pub const MAX_DAYS: u32 = 36_500;

    /// A policy keeping events for `days`.
    ///
    /// # Errors
    /// [`InvalidRetention`] outside `MIN_DAYS..=MAX_DAYS`.
    pub const fn new(days: u32) -> Result<Self, InvalidRetention> {
        if days < Self::MIN_DAYS || days > Self::MAX_DAYS {
            return Err(InvalidRetention(days));
        }
        Ok(Self { days })
    }

    /// The retention in days.
    #[must_use]
    pub const fn days(&self) -> u32 {
        self.days
    }

    /// Events that occurred strictly before this time are due for archiving.
    /// Never later than `now - days`; if that is not representable, nothing is due.
    #[must_use]
    pub fn cutoff(&self, now: OffsetDateTime) -> OffsetDateTime {
        now.checked_sub(Duration::days(i64::from(self.days)))
            .map_or(PrimitiveDateTime::MIN.assume_utc(), truncate_to_micros)
    }

    /// Whether an event that occurred at `occurred_at` is due for archiving at `now`.
    #[must_use]
    pub fn is_expired(&self, occurred_at: OffsetDateTime, now: OffsetDateTime) -> bool {
        occurred_at < self.cutoff(now)
    }
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            days: Self::DEFAULT_DAYS,
        }
    }
}

impl TryFrom<RetentionRepr> for RetentionPolicy {
    type Error = InvalidRetention;

    fn try_from(repr: RetentionRepr) -> Result<Self, Self::Error> {
        Self::new(repr.days)
    }
}

impl From<RetentionPolicy> for RetentionRepr {
    fn from(policy: RetentionPolicy) -> Self {
        Self { days: policy.days }
    }
}

/// Why a manifest is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The seq range is empty or starts at 0.
    #[error("archive seq range {first}..={last} is invalid")]
    BadRange {
        /// First seq.
        first: u64,
        /// Last seq.
        last: u64,
    },
    /// `event_count` doesn't match the seq range.
    #[error("archive holds {count} events but its seq range spans {span}")]
    CountMismatch {
        /// Recorded count.
        count: u64,
        /// Events in the range.
        span: u64,
    },
    /// A segment starting at seq 1 must link to genesis.
    #[error("archive starting at seq 1 must have a genesis prev_hash")]
    NotGenesis,
    /// The first and last events belong to different chains.
    #[error("archive spans chains {0} and {1}")]
    MixedChains(ChainId, ChainId),
    /// The segment does not continue the previous segment.
    #[error("archive does not continue the previous archive of chain {0}")]
    NotContinuous(ChainId),
}

/// Version tag of the archive manifest encoding (first field of
/// [`ArchiveManifest::canonical_bytes`]).
pub const ARCHIVE_MANIFEST_ENCODING_V1: &str = "ptoc.audit.archive.v1";

/// An [`ArchiveManifest`] with the digest key's signature: what is written beside the
/// archive file and recorded in the database as the chain's cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedManifest {
    /// The manifest.
    pub manifest: ArchiveManifest,
    /// The signing key ([`DigestSigner::key_id`]).
    pub key_id: String,
    /// Signature of [`ArchiveManifest::canonical_bytes`] (hex in JSON).
    #[serde(with = "crate::digest::hex_bytes")]
    pub signature: Vec<u8>,
}

impl SignedManifest {
    /// Whether `signer`'s key signed exactly this manifest.
    #[must_use]
    pub fn is_signed_by(&self, signer: &(impl DigestSigner + ?Sized)) -> bool {
        self.key_id == signer.key_id()
            && signer.verify(&self.manifest.canonical_bytes(), &self.signature)
    }
}

/// Describes one archived, contiguous segment of a chain (a file moved out of the live
/// log). The live chain (or the next segment) is verified from [`ArchiveManifest::cut`];
/// the segment itself from [`ArchiveManifest::start`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveManifest {
    /// The chain.
    pub chain: ChainId,
    /// Seq of the first archived event.
    pub first_seq: u64,
    /// Seq of the last archived event.
    pub last_seq: u64,
    /// `prev_hash` of the first archived event (links to the previous segment;
    /// [`Hash32::GENESIS`] when `first_seq == 1`).
    pub prev_hash: Hash32,
    /// Hash of the last archived event: the chain head at the cut.
    pub head_hash: Hash32,
    /// Number of events in the file (`last_seq - first_seq + 1`).
    pub event_count: u64,
    /// Name of the archive file.
    pub file_name: String,
    /// SHA-256 of the archive file's bytes.
    pub file_sha256: Hash32,
    /// When the archive was written.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl ArchiveManifest {
    /// The manifest of the segment from `first` to `last` (both included).
    ///
    /// # Errors
    /// [`ManifestError`] if the events are of different chains or out of order.
    pub fn new(
        first: &AuditEvent,
        last: &AuditEvent,
        file_sha256: Hash32,
        created_at: OffsetDateTime,
    ) -> Result<Self, ManifestError> {
        if first.chain() != last.chain() {
            return Err(ManifestError::MixedChains(first.chain(), last.chain()));
        }
        if first.seq > last.seq {
            return Err(ManifestError::BadRange {
                first: first.seq,
                last: last.seq,
            });
        }
        let manifest = Self {
            chain: first.chain(),
            first_seq: first.seq,
            last_seq: last.seq,
            prev_hash: first.prev_hash,
            head_hash: last.hash,
            event_count: last.seq - first.seq + 1,
            file_name: Self::file_name_for(first.chain(), first.seq, last.seq),
            file_sha256,
            created_at: truncate_to_micros(created_at),
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// The conventional file name of a segment (gzip-compressed JSON Lines), e.g.
    /// `audit_org-<uuid>_00000000000000000001-00000000000000000400.jsonl.gz`.
    #[must_use]
    pub fn file_name_for(chain: ChainId, first_seq: u64, last_seq: u64) -> String {
        let chain = chain.to_string().replace(':', "-");
        format!("audit_{chain}_{first_seq:020}-{last_seq:020}.jsonl.gz")
    }

    /// The file name of this manifest beside its archive file (`<file_name>.manifest.json`).
    #[must_use]
    pub fn manifest_file_name(&self) -> String {
        format!("{}.manifest.json", self.file_name)
    }

    /// The bytes that are signed ([`ARCHIVE_MANIFEST_ENCODING_V1`]): with the primitives
    /// of [`crate::canonical`], `str(tag)`, `str(chain id)`, `u64(first_seq)`,
    /// `u64(last_seq)`, `fixed(prev_hash)`, `fixed(head_hash)`, `u64(event_count)`,
    /// `str(file_name)`, `fixed(file_sha256)`, `i64(created_at in µs)`.
    #[must_use]
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new(ARCHIVE_MANIFEST_ENCODING_V1);
        e.str(&self.chain.to_string());
        e.u64(self.first_seq);
        e.u64(self.last_seq);
        e.fixed(self.prev_hash.as_bytes());
        e.fixed(self.head_hash.as_bytes());
        e.u64(self.event_count);
        e.str(&self.file_name);
        e.fixed(self.file_sha256.as_bytes());
        e.i64(unix_micros(self.created_at));
        e.finish()
    }

    /// Signs the manifest with the digest key, so that a cut recorded in the database
    /// cannot be forged by someone who can only write the database.
    #[must_use]
    pub fn sign(self, signer: &(impl DigestSigner + ?Sized)) -> SignedManifest {
        let signature = signer.sign(&self.canonical_bytes());
        SignedManifest {
            manifest: self,
            key_id: signer.key_id(),
            signature,
        }
    }

    /// Checks internal consistency.
    ///
    /// # Errors
    /// The first inconsistency found.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.first_seq == 0 || self.first_seq > self.last_seq {
            return Err(ManifestError::BadRange {
                first: self.first_seq,
                last: self.last_seq,
            });
        }
        let span = self.last_seq - self.first_seq + 1;
        if self.event_count != span {
            return Err(ManifestError::CountMismatch {
                count: self.event_count,
                span,
            });
        }
        if self.first_seq == 1 && !self.prev_hash.is_genesis() {
            return Err(ManifestError::NotGenesis);
        }
        Ok(())
    }

    /// Checks that this segment directly continues `previous`.
    ///
    /// # Errors
    /// [`ManifestError::NotContinuous`] otherwise.
    pub fn follows(&self, previous: &Self) -> Result<(), ManifestError> {
        let continuous = self.chain == previous.chain
            && Some(self.first_seq) == previous.last_seq.checked_add(1)
            && self.prev_hash == previous.head_hash;
        if continuous {
            Ok(())
        } else {
            Err(ManifestError::NotContinuous(self.chain))
        }
    }

    /// The chain head at the cut: where verification of what follows starts.
    #[must_use]
    pub const fn cut(&self) -> ChainHead {
        ChainHead {
            chain: self.chain,
            seq: self.last_seq,
            hash: self.head_hash,
        }
    }

    /// Where verification of the archived events themselves starts.
    #[must_use]
    pub const fn start(&self) -> ChainStart {
        if self.first_seq <= 1 {
            ChainStart::Genesis(self.chain)
        } else {
            ChainStart::After(ChainHead {
                chain: self.chain,
                seq: self.first_seq - 1,
                hash: self.prev_hash,
            })
        }
    }

    /// Whether `file` is the archived file (its SHA-256 matches).
    #[must_use]
    pub fn matches_file(&self, file: &[u8]) -> bool {
        Hash32::of(file) == self.file_sha256
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ORG, chain_of};
    use crate::verify::verify_chain;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00.5 UTC);

    #[test]
    fn default_is_400_days() {
        let policy = RetentionPolicy::default();
        assert_eq!(policy.days(), 400);
        assert_eq!(policy.cutoff(NOW), datetime!(2025-01-25 12:00:00.5 UTC));
        assert!(policy.is_expired(datetime!(2025-01-25 12:00:00.499999 UTC), NOW));
        assert!(!policy.is_expired(datetime!(2025-01-25 12:00:00.5 UTC), NOW));
    }

    #[test]
    fn retention_is_validated() {
        assert_eq!(RetentionPolicy::new(0), Err(InvalidRetention(0)));
        assert!(RetentionPolicy::new(RetentionPolicy::MAX_DAYS + 1).is_err());
        let policy = RetentionPolicy::new(30).expect("valid");
        let json = serde_json::to_string(&policy).expect("serialize");
        assert_eq!(json, r#"{"days":30}"#);
        assert_eq!(
            serde_json::from_str::<RetentionPolicy>(&json).expect("parse"),
            policy
        );
        assert!(serde_json::from_str::<RetentionPolicy>(r#"{"days":0}"#).is_err());
        let ancient = datetime!(-9999-01-01 0:00 UTC);
        let max = RetentionPolicy::new(RetentionPolicy::MAX_DAYS).expect("valid");
        assert_eq!(max.cutoff(ancient), PrimitiveDateTime::MIN.assume_utc());
    }

    #[test]
    fn manifests_chain_segments_and_anchor_verification() {
        let events = chain_of(ORG, 10);
        let file = b"archived bytes";
        let first =
            ArchiveManifest::new(&events[0], &events[3], Hash32::of(file), NOW).expect("manifest");
        let second =
            ArchiveManifest::new(&events[4], &events[6], Hash32::of(b"2"), NOW).expect("manifest");
        assert_eq!((first.event_count, second.event_count), (4, 3));
        assert!(first.matches_file(file));
        assert_eq!(second.follows(&first), Ok(()));
        assert!(first.follows(&second).is_err());
        assert!(
            first
                .file_name
                .starts_with(&format!("audit_org-{ORG}_00000000000000000001-"))
        );

        assert!(verify_chain(&events[..4], first.start()).is_intact());
        assert!(verify_chain(&events[4..7], second.start()).is_intact());
        assert!(verify_chain(&events[7..], second.cut()).is_intact());

        let json = serde_json::to_string(&second).expect("serialize");
        assert_eq!(
            serde_json::from_str::<ArchiveManifest>(&json).expect("parse"),
            second
        );
    }

    #[test]
    fn signed_manifests_detect_any_change() {
        let events = chain_of(ORG, 3);
        let manifest =
            ArchiveManifest::new(&events[0], &events[2], Hash32::of(b"f"), NOW).expect("manifest");
        assert!(manifest.file_name.ends_with(".jsonl.gz"));
        assert_eq!(
            manifest.manifest_file_name(),
            format!("{}.manifest.json", manifest.file_name)
        );
        let signer = crate::testkit::FakeSigner::new(b"k");
        let signed = manifest.clone().sign(&signer);
        assert!(signed.is_signed_by(&signer));
        let json = serde_json::to_string(&signed).expect("serialize");
        let parsed: SignedManifest = serde_json::from_str(&json).expect("parse");
        assert!(parsed.is_signed_by(&signer));
        let mut forged = signed.clone();
        forged.manifest.head_hash = Hash32::of(b"other");
        assert!(!forged.is_signed_by(&signer));
        let mut other_key = signed;
        other_key.key_id = "another".into();
        assert!(!other_key.is_signed_by(&signer));
    }

    #[test]
    fn inconsistent_manifests_are_rejected() {
        let events = chain_of(ORG, 5);
        assert!(matches!(
            ArchiveManifest::new(&events[3], &events[1], Hash32::GENESIS, NOW),
            Err(ManifestError::BadRange { .. })
        ));
        let other = chain_of(uuid::Uuid::from_u128(5), 2);
        assert!(matches!(
            ArchiveManifest::new(&events[0], &other[1], Hash32::GENESIS, NOW),
            Err(ManifestError::MixedChains(..))
        ));
        let mut m =
            ArchiveManifest::new(&events[0], &events[1], Hash32::GENESIS, NOW).expect("manifest");
        m.event_count = 3;
        assert!(matches!(
            m.validate(),
            Err(ManifestError::CountMismatch { .. })
        ));
        m.event_count = 2;
        m.prev_hash = Hash32::of(b"x");
        assert_eq!(m.validate(), Err(ManifestError::NotGenesis));
    }
}
