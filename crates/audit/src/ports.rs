//! Ports: what the audit domain needs from storage, in the domain's words.
//!
//! All are native async traits (`fn … -> impl Future<Output = …> + Send`); adapters
//! implement them with `async fn`.

use std::future::Future;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::chain::{ChainHead, SealError};
use crate::changes::Selection;
use crate::digest::SignedDigest;
use crate::event::{AuditEvent, NewAuditEvent};
use crate::personal::{DataSubject, EraseSubjectError, ErasureScope, SubjectErasure};
use crate::query::{
    AuditFilter, AuditStats, CategoryDayCount, InvalidTimeRange, Page, PageRequest, TimeRange,
};
use crate::scope::ChainId;

/// An adapter's underlying error (database, I/O), kept as the source of a port error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an event could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendAuditError {
    /// Another writer advanced the chain concurrently (e.g. a unique `(chain, seq)`
    /// violation); the caller's unit of work should be retried as a whole.
    #[error("audit chain {0} was appended to concurrently")]
    Conflict(ChainId),
    /// The event could not be sealed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The store failed.
    #[error("audit storage failed")]
    Storage(#[source] BoxError),
}

impl AppendAuditError {
    /// Whether retrying the caller's whole unit of work may succeed: another writer held
    /// or advanced the chain ([`AppendAuditError::Conflict`]: a serialization failure,
    /// a deadlock, a lock wait that timed out, a busy database). The edge answers it like
    /// an unavailable database (503 with `Retry-After`), not as a bug. Storage failures
    /// are classified by their source.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }
}

/// Why a listing failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryAuditError {
    /// The filter's time range is empty by construction.
    #[error(transparent)]
    InvalidFilter(#[from] InvalidTimeRange),
    /// The store failed.
    #[error("audit storage failed")]
    Storage(#[source] BoxError),
}

/// Why reading one event failed.
#[derive(Debug, thiserror::Error)]
pub enum GetAuditError {
    /// The store failed.
    #[error("audit storage failed")]
    Storage(#[source] BoxError),
}

/// Why computing statistics failed.
#[derive(Debug, thiserror::Error)]
pub enum StatsAuditError {
    /// The store failed.
    #[error("audit storage failed")]
    Storage(#[source] BoxError),
}

/// Why reading a chain (head or events) failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainReadError {
    /// The store failed.
    #[error("audit storage failed")]
    Storage(#[source] BoxError),
}

/// Why storing or reading digests failed.
#[derive(Debug, thiserror::Error)]
pub enum DigestStoreError {
    /// The digest does not follow the latest stored digest (another digest was stored
    /// concurrently).
    #[error("digest does not follow the latest stored digest")]
    Conflict,
    /// The store failed.
    #[error("digest storage failed")]
    Storage(#[source] BoxError),
}

/// Writes audit events as part of the caller's unit of work.
///
/// A sink value is bound to one unit of work (the adapter hands out a sink tied to the
/// open database transaction). Adapters **must**:
///
/// * write the event in the **same database transaction** as the change it records, so
///   that the change and its audit event commit or roll back together;
/// * **serialise appends per chain** (e.g. lock the chain's head row with
///   `SELECT … FOR UPDATE`, or rely on a unique `(chain, seq)` index and report
///   [`AppendAuditError::Conflict`]), read the head, [`crate::seal`] the event after it and
///   store the event and the new head, so that sequence numbers have no gaps or forks.
#[cfg_attr(test, mockall::automock)]
pub trait AuditSink: Send + Sync {
    /// Seals `event` into its chain and stores it in the current unit of work.
    fn append(
        &self,
        event: NewAuditEvent,
    ) -> impl Future<Output = Result<AuditEvent, AppendAuditError>> + Send;
}

/// Erases a data subject's personal data from the audit trail by destroying the keys
/// its fields were sealed with ("crypto-shredding", see [`crate::personal`]).
///
/// Adapters **must** delete the subject's keys (for the chains in `scope`) so that no
/// copy remains that the store can read back, leave every event, digest and archive
/// untouched (they still verify), and make later reads show the subject's fields as
/// [`crate::ERASED`]. Events appended for the subject afterwards get a new key.
#[cfg_attr(test, mockall::automock)]
pub trait AuditErasure: Send + Sync {
    /// Erases `subject`'s personal fields in the chains of `scope`; the receipt lists
    /// the chains where there was something to erase.
    fn erase_subject(
        &self,
        subject: DataSubject,
        scope: ErasureScope,
    ) -> impl Future<Output = Result<SubjectErasure, EraseSubjectError>> + Send;
}

/// Reads the audit log. Every read is confined to one tenant's chain.
#[cfg_attr(test, mockall::automock)]
pub trait AuditLog: Send + Sync {
    /// Events matching `filter`, newest first by `(occurred_at, id)`, one page at a time
    /// (see [`Page::from_overfetch`]). Adapters reject invalid filters with
    /// [`QueryAuditError::InvalidFilter`] (see [`AuditFilter::validate`]).
    fn find(
        &self,
        filter: AuditFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<AuditEvent>, QueryAuditError>> + Send;

    /// One event of `tenant` by id; `None` if it doesn't exist in that tenant's log.
    fn get(
        &self,
        tenant: ChainId,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<AuditEvent>, GetAuditError>> + Send;

    /// Statistics of `tenant`'s events in `range` (as [`AuditStats::from_events`]).
    fn stats(
        &self,
        tenant: ChainId,
        range: TimeRange,
    ) -> impl Future<Output = Result<AuditStats, StatsAuditError>> + Send;

    /// Events matching `filter` counted per UTC day and category (as
    /// [`CategoryDayCount::from_events`]); callers bound `filter.from`/`filter.to`.
    fn daily(
        &self,
        filter: AuditFilter,
    ) -> impl Future<Output = Result<Vec<CategoryDayCount>, StatsAuditError>> + Send;

    /// The current head of `chain` (`None` while empty).
    fn chain_head(
        &self,
        chain: ChainId,
    ) -> impl Future<Output = Result<Option<ChainHead>, ChainReadError>> + Send;

    /// Up to `limit` events of `chain` with `seq >= from_seq`, ascending by `seq`, for
    /// verification ([`crate::ChainVerifier::next_seq`] gives the next `from_seq`).
    fn chain_events(
        &self,
        chain: ChainId,
        from_seq: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditEvent>, ChainReadError>> + Send;

    /// Up to `limit` events of `chain` with `after < seq <= upto` that `selection`
    /// selects ([`Selection::matches`]), ascending by `seq`, opened (personal fields
    /// readable): the change events one receiver is shown
    /// ([`crate::Receiver::selection`]).
    fn changes(
        &self,
        chain: ChainId,
        seqs: (u64, u64),
        selection: &Selection,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditEvent>, ChainReadError>> + Send;

    /// The last seq of `chain` moved to archive files (0 while none): the live chain,
    /// and every cursor still valid, starts after it.
    fn archived_through(
        &self,
        chain: ChainId,
    ) -> impl Future<Output = Result<u64, ChainReadError>> + Send;
}

/// Stores signed digests (append-only, linked by `previous_digest_hash`).
#[cfg_attr(test, mockall::automock)]
pub trait DigestStore: Send + Sync {
    /// The most recent digest (`None` before the first).
    fn latest(&self)
    -> impl Future<Output = Result<Option<SignedDigest>, DigestStoreError>> + Send;

    /// Stores `digest`, which must link to the latest stored digest
    /// ([`DigestStoreError::Conflict`] otherwise).
    fn append(
        &self,
        digest: SignedDigest,
    ) -> impl Future<Output = Result<(), DigestStoreError>> + Send;

    /// Up to `limit` digests created at or after `from` (all if `None`), oldest first.
    fn list(
        &self,
        from: Option<OffsetDateTime>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<SignedDigest>, DigestStoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ORG, chain_of, event_n};
    use crate::verify::ChainVerifier;

    /// A domain service as it would use the ports.
    async fn record_and_verify(
        sink: &impl AuditSink,
        log: &impl AuditLog,
    ) -> Result<bool, Box<dyn std::error::Error>> {
        let stored = sink.append(event_n(ORG, 1)).await?;
        let chain = stored.chain();
        let mut verifier = ChainVerifier::new(chain);
        loop {
            let batch = log.chain_events(chain, verifier.next_seq(), 100).await?;
            if batch.is_empty() {
                break;
            }
            for event in &batch {
                if verifier.push(event).is_err() {
                    return Ok(false);
                }
            }
        }
        Ok(verifier.finish().is_intact())
    }

    /// Polls a future that never waits (the mocks answer immediately).
    fn block_on<F: Future>(future: F) -> F::Output {
        use std::pin::pin;
        use std::task::{Context, Poll, Waker};
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    #[test]
    fn ports_are_mockable_and_composable() {
        let events = chain_of(ORG, 3);
        let mut sink = MockAuditSink::new();
        let first = events[0].clone();
        sink.expect_append()
            .times(1)
            .returning(move |_| Box::pin(std::future::ready(Ok(first.clone()))));
        let mut log = MockAuditLog::new();
        let stored = events.clone();
        log.expect_chain_events().returning(move |_, from, _| {
            let batch: Vec<_> = stored.iter().filter(|e| e.seq >= from).cloned().collect();
            Box::pin(std::future::ready(Ok(batch)))
        });
        assert!(block_on(record_and_verify(&sink, &log)).expect("ok"));
    }

    #[test]
    fn errors_keep_their_source() {
        let err = AppendAuditError::Storage("connection reset".into());
        assert_eq!(err.to_string(), "audit storage failed");
        assert_eq!(
            std::error::Error::source(&err).map(ToString::to_string),
            Some("connection reset".to_owned())
        );
    }
}
