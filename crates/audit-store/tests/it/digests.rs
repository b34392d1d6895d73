//! (d) Signed digests catch a chain rewritten wholesale by SQL, and truncation.

use audit::{
    BreakKind, ChainBuilder, ChainId, DigestError, DigestSigner, DigestStore, DigestStoreError,
    SignedDigest, TenantScope, verify_digest_series,
};
use audit_store::{
    Ed25519DigestSigner, FileDigestStore, KeySource, VerifyDbError, verify_chain_in_db,
    write_digest,
};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::atomicity::NoSigner;
use crate::harness::{TestDb, append_n, load_chain};

/// Rewrites `chain` in the database from scratch after editing event `edit_seq`:
/// recomputed hashes, relinked, head row updated — internally consistent.
async fn rewrite_chain(db: &TestDb, chain: ChainId, edit_seq: u64) {
    let events = load_chain(&db.log(), chain).await;
    let mut builder = ChainBuilder::new(chain);
    let conn = db.db.primary();
    for e in &events {
        let mut body = e.body.clone();
        if e.seq == edit_seq {
            body.entity_id = "rewritten".to_owned();
        }
        let forged = builder.seal(body).unwrap();
        let update = Query::update()
            .table(Alias::new("audit_events"))
            .value(Alias::new("entity_id"), forged.body.entity_id.clone())
            .value(Alias::new("prev_hash"), forged.prev_hash.to_hex())
            .value(Alias::new("hash"), forged.hash.to_hex())
            .and_where(Expr::col(Alias::new("chain_id")).eq(chain.to_string()))
            .and_where(Expr::col(Alias::new("seq")).eq(i64::try_from(e.seq).unwrap()))
            .to_owned();
        assert_eq!(conn.execute(&update).await.unwrap().rows_affected(), 1);
    }
    let head = builder.head().unwrap();
    let update = Query::update()
        .table(Alias::new("audit_chain_heads"))
        .value(Alias::new("hash"), head.hash.to_hex())
        .and_where(Expr::col(Alias::new("chain_id")).eq(chain.to_string()))
        .to_owned();
    conn.execute(&update).await.unwrap();
}

pub async fn rewritten_chain_fails_against_earlier_digest(db: &TestDb) {
    let signer = Ed25519DigestSigner::generate().unwrap();
    let store = FileDigestStore::in_data_dir(&db.dir).unwrap();
    let scope = TenantScope::org(Uuid::now_v7());
    let chain = scope.chain_id();
    let other = TenantScope::PLATFORM;

    append_n(&db.db, scope, 8).await;
    append_n(&db.db, other, 2).await;
    let t0 = OffsetDateTime::now_utc();
    let d1 = write_digest(&db.db, &store, &signer, t0).await.unwrap();
    assert_eq!(d1.digest.head(chain).map(|h| h.seq), Some(8));
    assert_eq!(d1.digest.heads.len(), 2);
    append_n(&db.db, scope, 4).await;
    let d2 = write_digest(&db.db, &store, &signer, t0 + time::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(d2.digest.previous_digest_hash, d1.digest.hash());
    assert_eq!(d2.digest.head(chain).map(|h| h.seq), Some(12));

    let digests = store.list(None, 1000).await.unwrap();
    assert_eq!(digests, [d1.clone(), d2.clone()]);
    assert_eq!(store.latest().await.unwrap(), Some(d2.clone()));
    verify_digest_series(&digests, &signer).unwrap();

    let report = verify_chain_in_db(&db.db, chain, &digests, &signer)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.anchors_confirmed, 2);

    let original = load_chain(&db.log(), chain).await;
    rewrite_chain(db, chain, 3).await;
    let forged = load_chain(&db.log(), chain).await;

    // Internally consistent: plain verification passes…
    let plain = verify_chain_in_db(&db.db, chain, &[], &NoSigner)
        .await
        .unwrap();
    assert!(plain.is_intact(), "{plain:?}");
    // …but not against the digests signed before the rewrite.
    let report = verify_chain_in_db(&db.db, chain, &digests, &signer)
        .await
        .unwrap();
    let broken = report.first_break.expect("rewrite detected");
    assert_eq!(broken.seq, 8);
    assert_eq!(broken.event_id, Some(forged[7].id()));
    assert_eq!(
        broken.kind,
        BreakKind::AnchorMismatch {
            anchored: original[7].hash,
            digest: d1.digest.hash(),
        }
    );
    // The untouched chain still verifies against the same digests.
    let platform = verify_chain_in_db(&db.db, other.chain_id(), &digests, &signer)
        .await
        .unwrap();
    assert!(platform.is_intact(), "{platform:?}");
    assert_eq!(platform.anchors_confirmed, 1);

    // A forged digest line is rejected as a whole.
    let mut tampered = digests.clone();
    tampered[1].digest.heads[0].seq += 1;
    assert!(matches!(
        verify_chain_in_db(&db.db, chain, &tampered, &signer).await,
        Err(VerifyDbError::Digests(DigestError::BadSignature { .. }))
    ));
}

pub async fn truncated_chain_fails_against_digest(db: &TestDb) {
    let signer = Ed25519DigestSigner::generate().unwrap();
    let store = FileDigestStore::open(db.dir.join("digests")).unwrap();
    let scope = TenantScope::district(Uuid::now_v7());
    let chain = scope.chain_id();
    let events = append_n(&db.db, scope, 6).await;
    let digest = write_digest(&db.db, &store, &signer, OffsetDateTime::now_utc())
        .await
        .unwrap();
    db.db
        .primary()
        .execute_unprepared(&format!(
            "DELETE FROM audit_events WHERE chain_id = '{chain}' AND seq > 4"
        ))
        .await
        .unwrap();
    let broken = verify_chain_in_db(&db.db, chain, &[digest], &signer)
        .await
        .unwrap()
        .first_break
        .expect("truncation detected");
    assert_eq!((broken.seq, broken.event_id), (6, None));
    assert!(
        matches!(broken.kind, BreakKind::Truncated { anchored, .. } if anchored == events[5].hash)
    );
}

pub async fn digest_store_is_append_only_and_linked(db: &TestDb) {
    let signer = Ed25519DigestSigner::generate().unwrap();
    let store = FileDigestStore::open(db.dir.join("linked")).unwrap();
    append_n(&db.db, TenantScope::org(Uuid::now_v7()), 1).await;
    let now = OffsetDateTime::now_utc();
    let d1 = write_digest(&db.db, &store, &signer, now).await.unwrap();
    // A digest that does not follow the latest one is refused.
    let stray = audit::Digest::new(now, d1.digest.heads.clone(), None).sign(&signer);
    assert!(matches!(
        store.append(stray).await,
        Err(DigestStoreError::Conflict)
    ));
    // A clock that went backwards does not break the series.
    let d2 = write_digest(&db.db, &store, &signer, now - time::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(d2.digest.created_at, d1.digest.created_at);
    let all = store.list(None, 10).await.unwrap();
    verify_digest_series(&all, &signer).unwrap();
    assert_eq!(
        store
            .list(Some(now + time::Duration::seconds(1)), 10)
            .await
            .unwrap(),
        []
    );
    assert_eq!(store.list(None, 1).await.unwrap(), [d1]);

    let text = std::fs::read_to_string(store.path()).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.ends_with('\n'));
    let parsed: SignedDigest = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(parsed, d2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn signing_key_is_created_once_and_reloaded() {
    let dir = std::env::temp_dir().join(format!("ptoc-as-key-{}", Uuid::now_v7().simple()));
    let path = dir.join("keys").join("audit-digest.pem");
    let (a, source_a) = Ed25519DigestSigner::load_or_create(&path).unwrap();
    let (b, source_b) = Ed25519DigestSigner::load_or_create(&path).unwrap();
    assert_eq!(
        (source_a, source_b),
        (KeySource::Generated, KeySource::Stored)
    );
    assert_eq!(a.key_id(), b.key_id());
    assert_eq!(a.key_id(), format!("ed25519:{}", a.public_key_hex()));
    let sig = a.sign(b"digest bytes");
    assert_eq!(sig.len(), 64);
    assert!(b.verify(b"digest bytes", &sig));
    assert!(!b.verify(b"other bytes", &sig));
    assert!(!b.verify(b"digest bytes", &sig[..63]));
    let other = Ed25519DigestSigner::generate().unwrap();
    assert_ne!(other.key_id(), a.key_id());
    assert!(!other.verify(b"digest bytes", &sig));
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(
        Ed25519DigestSigner::from_pem(&pem).unwrap().key_id(),
        a.key_id()
    );
    assert!(Ed25519DigestSigner::from_pem("garbage").is_err());
    assert!(!format!("{a:?}").contains(&pem));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

crate::both_backends!(
    rewritten_chain_fails_against_earlier_digest,
    truncated_chain_fails_against_digest,
    digest_store_is_append_only_and_linked,
);
