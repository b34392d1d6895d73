//! Verifying stored chains page by page, against signed digests.

use audit::{
    AuditEvent, AuditLog, BoxError, BreakKind, BrokenLink, ChainId, ChainStart, ChainVerifier,
    DigestError, DigestSigner, SignedDigest, VerifyReport, anchors_for, verify_digest_series,
};
use persistence::Database;

use crate::log::{all_chain_heads, chain_events};
use crate::retention::{StoredCut, latest_cut};
use crate::schema::CorruptRow;

/// How many events verification fetches per page.
pub const VERIFY_PAGE_SIZE: u32 = 500;

/// Why a stored chain could not be verified (as opposed to being found broken, which is
/// a [`VerifyReport`] with a `first_break`).
#[derive(Debug, thiserror::Error)]
pub enum VerifyDbError {
    /// The signed digests themselves cannot be trusted (bad signature, unknown key,
    /// broken digest series, conflicting anchors).
    #[error(transparent)]
    Digests(#[from] DigestError),
    /// A stored event cannot even be decoded (a column holds an impossible value): the
    /// chain is **not intact** at this row, which was edited outside the adapter.
    #[error("chain is broken: {0}")]
    CorruptRow(CorruptRow),
    /// Reading the chain failed.
    #[error("reading the chain failed")]
    Storage(#[source] BoxError),
}

impl VerifyDbError {
    fn from_read(err: BoxError) -> Self {
        match err.downcast::<CorruptRow>() {
            Ok(corrupt) => Self::CorruptRow(*corrupt),
            Err(other) => Self::Storage(other),
        }
    }
}

fn verifier_for(
    start: ChainStart,
    digests: &[SignedDigest],
    signer: &(impl DigestSigner + ?Sized),
) -> Result<ChainVerifier, DigestError> {
    verify_digest_series(digests, signer)?;
    let anchors = anchors_for(start.chain(), digests)?;
    Ok(ChainVerifier::new(start).with_anchors(anchors))
}

/// Pushes one page; `Ok(true)` when verification should go on.
fn push_page(verifier: &mut ChainVerifier, page: &[AuditEvent], page_size: u32) -> bool {
    for event in page {
        if verifier.push(event).is_err() {
            return false;
        }
    }
    u32::try_from(page.len()).is_ok_and(|n| n >= page_size)
}

/// Verifies the stored chain from `start` (a [`audit::ChainId`] for the whole chain, or
/// an archive cut head), streaming it from the **primary** database in pages of
/// [`VERIFY_PAGE_SIZE`] through the domain's [`ChainVerifier`] (constant memory), and
/// checks it against the heads recorded by the signed `digests` (oldest first; pass an
/// empty slice to check internal consistency only).
///
/// Reads the primary rather than a replica: a lagging replica would look truncated
/// against a recent digest.
///
/// # Errors
/// [`VerifyDbError`] if the digests are untrustworthy, a row is undecodable (the chain
/// is broken there) or the database fails. A chain that decodes but does not verify is
/// an `Ok` report with [`VerifyReport::first_break`] set.
pub async fn verify_chain_in_db(
    db: &Database,
    start: impl Into<ChainStart>,
    digests: &[SignedDigest],
    signer: &(impl DigestSigner + ?Sized),
) -> Result<VerifyReport, VerifyDbError> {
    let start = start.into();
    let mut verifier = verifier_for(start, digests, signer)?;
    loop {
        let page = chain_events(
            db.primary(),
            start.chain(),
            verifier.next_seq(),
            VERIFY_PAGE_SIZE,
        )
        .await
        .map_err(VerifyDbError::from_read)?;
        if !push_page(&mut verifier, &page, VERIFY_PAGE_SIZE) {
            break;
        }
    }
    Ok(verifier.finish())
}

/// [`verify_chain_in_db`] over any [`AuditLog`] (e.g. a [`crate::SeaOrmAuditLog`], which
/// reads the replica if one is configured), with a chosen page size.
///
/// # Errors
/// As [`verify_chain_in_db`].
pub async fn verify_chain_in_log(
    log: &impl AuditLog,
    start: impl Into<ChainStart>,
    digests: &[SignedDigest],
    signer: &(impl DigestSigner + ?Sized),
    page_size: u32,
) -> Result<VerifyReport, VerifyDbError> {
    let start = start.into();
    let page_size = page_size.max(1);
    let mut verifier = verifier_for(start, digests, signer)?;
    loop {
        let page = log
            .chain_events(start.chain(), verifier.next_seq(), page_size)
            .await
            .map_err(|audit::ChainReadError::Storage(e)| VerifyDbError::from_read(e))?;
        if !push_page(&mut verifier, &page, page_size) {
            break;
        }
    }
    Ok(verifier.finish())
}

/// Verifies the live part of `chain`: from its latest recorded archive cut (whose signed
/// manifest must verify with `signer`, else the report's first break is
/// [`audit::BreakKind::UntrustedCut`]), or from genesis when nothing was archived.
/// Digest anchors at or before the cut are not checked (those events are archived; see
/// [`crate::verify_archive_dir`]); an anchor at the cut itself must match it.
///
/// # Errors
/// As [`verify_chain_in_db`].
pub async fn verify_live_chain(
    db: &Database,
    chain: ChainId,
    digests: &[SignedDigest],
    signer: &(impl DigestSigner + ?Sized),
) -> Result<VerifyReport, VerifyDbError> {
    let cut = latest_cut(db.primary(), chain)
        .await
        .map_err(VerifyDbError::from_read)?;
    match cut {
        None => verify_chain_in_db(db, chain, digests, signer).await,
        Some(StoredCut {
            manifest: Some(m), ..
        }) if m.is_signed_by(signer)
            && m.manifest.chain == chain
            && m.manifest.validate().is_ok() =>
        {
            verify_chain_in_db(db, m.manifest.cut(), digests, signer).await
        }
        Some(stored) => Ok(VerifyReport {
            chain,
            start: None,
            checked: 0,
            head: None,
            anchors_confirmed: 0,
            first_break: Some(BrokenLink {
                seq: stored.last_seq,
                event_id: None,
                kind: BreakKind::UntrustedCut,
            }),
        }),
    }
}

/// The verification of one chain by [`verify_all_chains`].
#[derive(Debug)]
pub struct ChainVerification {
    /// The chain.
    pub chain: ChainId,
    /// Its report, or why it could not be verified.
    pub outcome: Result<VerifyReport, VerifyDbError>,
}

impl ChainVerification {
    /// Whether the chain verified without a break.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.outcome.as_ref().is_ok_and(VerifyReport::is_intact)
    }
}

/// [`verify_live_chain`] for every chain with events (or only `only`), in chain order:
/// what `cargo xtask audit verify` runs.
///
/// # Errors
/// If the list of chains cannot be read.
pub async fn verify_all_chains(
    db: &Database,
    digests: &[SignedDigest],
    signer: &(impl DigestSigner + ?Sized),
    only: Option<ChainId>,
) -> Result<Vec<ChainVerification>, BoxError> {
    let chains: Vec<ChainId> = match only {
        Some(chain) => vec![chain],
        None => all_chain_heads(db.primary())
            .await?
            .into_iter()
            .map(|h| h.chain)
            .collect(),
    };
    let mut out = Vec::with_capacity(chains.len());
    for chain in chains {
        let outcome = verify_live_chain(db, chain, digests, signer).await;
        out.push(ChainVerification { chain, outcome });
    }
    Ok(out)
}
