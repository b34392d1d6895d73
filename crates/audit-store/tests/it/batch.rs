//! Batched appends (`append_events`): the same chains as one-by-one appends, in fewer
//! statements; an invalid event refuses the whole batch before any write.

use audit::{AppendAuditError, AuditLog, ChainVerifier, NewAuditEvent, TenantScope};
use audit_store::{AuditedTx, InvalidEvent, append_events, verify_chain_in_db};
use uuid::Uuid;

use crate::atomicity::NoSigner;
use crate::harness::{TestDb, append_n, event, load_chain};

fn events(scope: TenantScope, from: usize, n: usize) -> Vec<NewAuditEvent> {
    (from..from + n)
        .map(|i| {
            event(scope, "member.add", &format!("m{i}"))
                .with_new_value(serde_json::json!({ "i": i }))
        })
        .collect()
}

pub async fn a_batch_continues_each_chain_in_the_given_order(db: &TestDb) {
    let a = TenantScope::org(Uuid::now_v7());
    let b = TenantScope::org(Uuid::now_v7());
    append_n(&db.db, a, 3).await;

    // 600 events of `a` (more than one multi-row insert) interleaved with 5 of a new
    // chain `b`.
    let mut batch = events(a, 0, 600);
    for (k, e) in events(b, 0, 5).into_iter().enumerate() {
        batch.insert(k * 100, e);
    }
    let ids: Vec<Uuid> = batch.iter().map(|e| e.id).collect();
    let tx = AuditedTx::begin(&db.db).await.unwrap();
    let sealed = append_events(tx.conn(), batch).await.unwrap();
    tx.commit_unaudited("the test appends directly")
        .await
        .unwrap();

    assert_eq!(
        sealed.iter().map(|e| e.id()).collect::<Vec<_>>(),
        ids,
        "sealed events come back in the order given"
    );
    let of = |scope: TenantScope| -> Vec<_> {
        sealed
            .iter()
            .filter(|e| e.chain() == scope.chain_id())
            .cloned()
            .collect()
    };
    let (in_a, in_b) = (of(a), of(b));
    assert_eq!(
        in_a.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (4..=603).collect::<Vec<u64>>()
    );
    assert_eq!(
        in_b.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=5).collect::<Vec<u64>>()
    );

    let log = db.log();
    for (scope, batched, before) in [(a, &in_a, 3), (b, &in_b, 0)] {
        let stored = load_chain(&log, scope.chain_id()).await;
        assert_eq!(&stored[before..], &batched[..], "stored exactly as sealed");
        let mut verifier = ChainVerifier::new(scope.chain_id());
        for e in &stored {
            verifier.push(e).expect("chain intact");
        }
        let report = verifier.finish();
        assert_eq!(log.chain_head(scope.chain_id()).await.unwrap(), report.head);
        let streamed = verify_chain_in_db(&db.db, scope.chain_id(), &[], &NoSigner)
            .await
            .unwrap();
        assert!(streamed.is_intact(), "{streamed:?}");
    }

    // A later single append continues after the batch.
    let next = append_n(&db.db, a, 1).await;
    assert_eq!(next[0].seq, 604);
    assert_eq!(Some(next[0].prev_hash), in_a.last().map(|e| e.hash));
}

pub async fn an_invalid_event_refuses_the_whole_batch(db: &TestDb) {
    let a = TenantScope::org(Uuid::now_v7());
    append_n(&db.db, a, 2).await;
    let mut batch = events(a, 0, 10);
    batch[7].entity_id = "x".repeat(129);
    let tx = AuditedTx::begin(&db.db).await.unwrap();
    let err = append_events(tx.conn(), batch).await.unwrap_err();
    let AppendAuditError::Storage(cause) = &err else {
        panic!("expected a refused event, got {err:?}");
    };
    assert_eq!(
        cause.downcast_ref::<InvalidEvent>(),
        Some(&InvalidEvent::TooLong {
            field: "entity_id",
            max: 128
        })
    );
    // Nothing was written: even committing the transaction stores no event.
    tx.commit_unaudited("nothing to record").await.unwrap();
    assert_eq!(load_chain(&db.log(), a.chain_id()).await.len(), 2);
}

crate::both_backends!(
    a_batch_continues_each_chain_in_the_given_order,
    an_invalid_event_refuses_the_whole_batch
);
