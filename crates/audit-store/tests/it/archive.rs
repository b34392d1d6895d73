//! (e) Retention archiving: archive + verify round trip across the cut, resumability,
//! tampering with archived lines or with the recorded cut, and `verify_all_chains`.

use std::io::{Read, Write};

use audit::{AuditEvent, BreakKind, ChainId, DigestStore, TenantScope};
use audit_store::{
    ArchiveHalt, ArchiveOptions, ArchiveProblem, AuditedTx, Ed25519DigestSigner, FileDigestStore,
    archive_chain, archive_record_count, verify_all_chains, verify_archive_dir, verify_live_chain,
    write_digest,
};
use sea_orm::ConnectionTrait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::harness::{TestDb, event, load_chain};

/// Appends one event per time, in order, each in its own audited transaction.
async fn append_at(db: &TestDb, scope: TenantScope, times: &[OffsetDateTime]) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for (i, at) in times.iter().enumerate() {
        let tx = AuditedTx::begin(&db.db).await.unwrap();
        let mut e = event(scope, "test.event", &format!("e{i}"));
        e.occurred_at = *at;
        out.push(tx.record(e).await.unwrap());
        tx.commit().await.unwrap();
    }
    out
}

async fn live_rows(db: &TestDb, chain: ChainId) -> i64 {
    let row = db
        .db
        .primary()
        .query_one_raw(sea_orm::Statement::from_string(
            db.db.primary().get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM audit_events WHERE chain_id = '{chain}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub async fn archive_round_trip_resumes_and_verifies_across_the_cut(db: &TestDb) {
    let signer = Ed25519DigestSigner::generate().unwrap();
    let digests = FileDigestStore::in_data_dir(&db.dir).unwrap();
    let dir = db.dir.join("archive");
    let now = OffsetDateTime::now_utc();
    let scope = TenantScope::org(Uuid::now_v7());
    let chain = scope.chain_id();
    let old: Vec<_> = (0..10)
        .map(|i| now - Duration::days(500) + Duration::minutes(i))
        .collect();
    let recent: Vec<_> = (0..5)
        .map(|i| now - Duration::days(3) + Duration::minutes(i))
        .collect();
    let archived = append_at(db, scope, &old[..6]).await;
    // A digest anchoring seq 6, which is going to be archived…
    write_digest(&db.db, &digests, &signer, now).await.unwrap();
    let archived = [archived, append_at(db, scope, &old[6..]).await].concat();
    append_at(db, scope, &recent).await;
    // …and one anchoring the head.
    write_digest(&db.db, &digests, &signer, now).await.unwrap();
    let cutoff = now - Duration::days(400);
    let mut options = ArchiveOptions::at(now);
    options.delete_batch = 3;

    // Interrupted after writing the files: nothing recorded or deleted yet.
    options.halt = Some(ArchiveHalt::AfterFiles);
    let o = archive_chain(&db.db, &dir, &signer, chain, cutoff, options)
        .await
        .unwrap();
    let written = o.written_only.expect("segment written");
    assert!(o.recorded.is_empty());
    assert_eq!(
        (written.manifest.first_seq, written.manifest.last_seq),
        (1, 10)
    );
    assert_eq!(written.manifest.head_hash, archived[9].hash);
    assert_eq!(live_rows(db, chain).await, 15);
    assert_eq!(files_in(&dir).len(), 2);

    // Re-run, interrupted after one deletion batch: the orphan is adopted, not rewritten.
    options.halt = Some(ArchiveHalt::AfterBatches(1));
    let o = archive_chain(&db.db, &dir, &signer, chain, cutoff, options)
        .await
        .unwrap();
    assert_eq!(o.recorded, vec![written.clone()]);
    assert_eq!(o.rows_deleted, 3);
    assert_eq!(
        live_rows(db, chain).await,
        15 + 1 - 3,
        "one audit.archive event"
    );
    let all = digests.list(None, u32::MAX).await.unwrap();
    let report = verify_live_chain(&db.db, chain, &all, &signer)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.start.map(|h| h.seq), Some(10));
    assert_eq!(report.checked, 6);

    // Completed; then re-running is a no-op (no loss, no duplicate file or record).
    options.halt = None;
    let o = archive_chain(&db.db, &dir, &signer, chain, cutoff, options)
        .await
        .unwrap();
    assert!(o.recorded.is_empty());
    assert_eq!(o.rows_deleted, 7);
    for _ in 0..2 {
        let o = archive_chain(&db.db, &dir, &signer, chain, cutoff, options)
            .await
            .unwrap();
        assert!(o.recorded.is_empty() && o.written_only.is_none());
        assert_eq!(o.rows_deleted, 0);
    }
    assert_eq!(live_rows(db, chain).await, 6);
    assert_eq!(files_in(&dir).len(), 2);
    assert_eq!(archive_record_count(&db.db).await.unwrap(), 1);
    let live = load_chain(&db.log(), chain).await;
    assert_eq!(live.first().map(|e| e.seq), Some(11));
    let marker = live.last().unwrap();
    assert_eq!(marker.body.action.as_str(), "audit.archive");
    assert_eq!(marker.body.new_value.as_ref().unwrap()["last_seq"], 10);

    // Live chain verifies from the cut, with digests that anchor archived seqs.
    write_digest(&db.db, &digests, &signer, now).await.unwrap();
    let all = digests.list(None, u32::MAX).await.unwrap();
    let report = verify_live_chain(&db.db, chain, &all, &signer)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.checked, report.anchors_confirmed), (6, 2));
    // The archive verifies against its manifest.
    let v = verify_archive_dir(&dir, &signer).unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.chains.len(), 1);
    assert_eq!(v.chains[0].events, 10);
    assert_eq!(v.chains[0].cut, Some(archived[9].head()));
    assert_eq!(v.chains[0].cut, report.start);

    // Tampering with one archived line (recompressed) is detected at that event.
    let file = dir.join(&written.manifest.file_name);
    let original = std::fs::read(&file).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(original.as_slice())
        .read_to_string(&mut text)
        .unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10);
    lines[2]["entity_id"] = "someone-else".into();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for l in &lines {
        writeln!(gz, "{l}").unwrap();
    }
    std::fs::write(&file, gz.finish().unwrap()).unwrap();
    let v = verify_archive_dir(&dir, &signer).unwrap();
    match &v.chains[0].problem {
        Some(ArchiveProblem::Broken { link, .. }) => {
            assert_eq!((link.seq, link.event_id), (3, Some(archived[2].id())));
            assert!(matches!(link.kind, BreakKind::HashMismatch { .. }));
        }
        other => panic!("expected a broken link, got {other:?}"),
    }
    // Bytes changed without changing any event (re-compressed) fail the file hash.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(&file, gz.finish().unwrap()).unwrap();
    let v = verify_archive_dir(&dir, &signer).unwrap();
    assert!(
        matches!(v.chains[0].problem, Some(ArchiveProblem::FileHash { .. })),
        "{v:?}"
    );
    std::fs::write(&file, &original).unwrap();
    assert!(verify_archive_dir(&dir, &signer).unwrap().is_intact());

    // A cut forged in the database (not signed by the key) is reported, not trusted.
    db.db
        .primary()
        .execute_unprepared(&format!(
            "UPDATE audit_archives SET manifest = replace(manifest, '\"key_id\"', '\"key_id_x\"') WHERE chain_id = '{chain}'"
        ))
        .await
        .unwrap();
    let report = verify_live_chain(&db.db, chain, &all, &signer)
        .await
        .unwrap();
    let broken = report.first_break.expect("untrusted cut");
    assert_eq!((broken.seq, broken.kind), (10, BreakKind::UntrustedCut));
}

pub async fn verify_all_chains_names_the_edited_row(db: &TestDb) {
    let signer = Ed25519DigestSigner::generate().unwrap();
    let now = OffsetDateTime::now_utc();
    let intact = TenantScope::org(Uuid::now_v7());
    let edited = TenantScope::district(Uuid::now_v7());
    append_at(db, intact, &[now, now]).await;
    let events = append_at(db, edited, &[now, now, now, now]).await;
    let reports = verify_all_chains(&db.db, &[], &signer, None).await.unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.is_intact()));
    db.db
        .primary()
        .execute_unprepared(&format!(
            "UPDATE audit_events SET entity_id = 'forged' WHERE chain_id = '{}' AND seq = 3",
            edited.chain_id()
        ))
        .await
        .unwrap();
    let reports = verify_all_chains(&db.db, &[], &signer, None).await.unwrap();
    let by_chain = |c: ChainId| reports.iter().find(|r| r.chain == c).unwrap();
    assert!(by_chain(intact.chain_id()).is_intact());
    let broken = by_chain(edited.chain_id());
    assert!(!broken.is_intact());
    let link = broken.outcome.as_ref().unwrap().first_break.unwrap();
    assert_eq!((link.seq, link.event_id), (3, Some(events[2].id())));
    assert!(matches!(link.kind, BreakKind::HashMismatch { .. }));
    // One chain only.
    let only = verify_all_chains(&db.db, &[], &signer, Some(intact.chain_id()))
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    assert!(only[0].is_intact());
}

crate::both_backends!(
    archive_round_trip_resumes_and_verifies_across_the_cut,
    verify_all_chains_names_the_edited_row,
);
