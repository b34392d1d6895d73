//! (b) Concurrent appenders never fork a chain.

use std::collections::BTreeSet;
use std::time::Instant;

use audit::{AppendAuditError, AuditLog, ChainVerifier, TenantScope};
use audit_store::{AuditedTx, verify_chain_in_db};
use persistence::Backend;
use uuid::Uuid;

use crate::atomicity::NoSigner;
use crate::harness::{TestDb, event, load_chain};

pub async fn concurrent_appends_leave_one_unbroken_chain(db: &TestDb) {
    let (tasks, per_task) = match db.backend() {
        Backend::Postgres => (8_usize, 200_usize),
        Backend::Sqlite => (4, 25),
    };
    let scope = TenantScope::org(Uuid::now_v7());
    let other = TenantScope::org(Uuid::now_v7());
    let chain = scope.chain_id();
    let started = Instant::now();

    let mut handles = Vec::new();
    for task in 0..tasks {
        let database = db.db.clone();
        handles.push(tokio::spawn(async move {
            let mut committed = Vec::new();
            let mut rolled_back = Vec::new();
            let mut retries = 0_u32;
            for i in 0..per_task {
                // Every 10th unit of work rolls back after recording; every 7th also
                // appends to a second chain in the same transaction.
                loop {
                    let tx = AuditedTx::begin(&database).await.expect("begin");
                    let new = event(scope, "permission.update", &format!("t{task}.{i}"))
                        .with_new_value(serde_json::json!({ "task": task, "i": i }));
                    let id = new.id;
                    match tx.record(new).await {
                        Ok(_) => {}
                        Err(AppendAuditError::Conflict(_)) => {
                            retries += 1;
                            continue;
                        }
                        Err(e) => panic!("append failed: {e:?}"),
                    }
                    if i % 7 == 3 {
                        tx.record(event(other, "permission.update", "side"))
                            .await
                            .expect("second chain");
                    }
                    if i % 10 == 9 {
                        drop(tx);
                        rolled_back.push(id);
                    } else {
                        tx.commit().await.expect("commit");
                        committed.push(id);
                    }
                    break;
                }
            }
            (committed, rolled_back, retries)
        }));
    }
    let mut committed = BTreeSet::new();
    let mut rolled_back = BTreeSet::new();
    let mut retries = 0;
    for handle in handles {
        let (c, r, n) = handle.await.expect("task");
        committed.extend(c);
        rolled_back.extend(r);
        retries += n;
    }
    let elapsed = started.elapsed();

    let log = db.log();
    let events = load_chain(&log, chain).await;
    let stored: Vec<Uuid> = events.iter().map(|e| e.id()).collect();
    let stored_set: BTreeSet<Uuid> = stored.iter().copied().collect();
    assert_eq!(stored.len(), stored_set.len(), "no event stored twice");
    assert_eq!(
        stored_set, committed,
        "exactly the committed appends are stored"
    );
    assert!(stored_set.is_disjoint(&rolled_back));
    let expected_len = tasks * per_task - tasks * (per_task / 10);
    assert_eq!(events.len(), expected_len);

    // One unbroken chain: seq 1..=n without gaps, every link verified.
    let mut verifier = ChainVerifier::new(chain);
    for e in &events {
        verifier.push(e).expect("chain intact");
    }
    let report = verifier.finish();
    assert_eq!(report.checked, expected_len as u64);
    assert_eq!(log.chain_head(chain).await.unwrap(), report.head);
    let streamed = verify_chain_in_db(&db.db, chain, &[], &NoSigner)
        .await
        .unwrap();
    assert!(streamed.is_intact(), "{streamed:?}");
    assert_eq!(streamed.head, report.head);
    let side = verify_chain_in_db(&db.db, other.chain_id(), &[], &NoSigner)
        .await
        .unwrap();
    assert!(side.is_intact(), "{side:?}");

    eprintln!(
        "[{}] {tasks} tasks x {per_task} appends ({} committed, {} rolled back, {retries} conflict retries) in {:.2?} ({:.0} tx/s)",
        db.backend().as_str(),
        committed.len(),
        rolled_back.len(),
        elapsed,
        (tasks * per_task) as f64 / elapsed.as_secs_f64()
    );
}

crate::both_backends!(concurrent_appends_leave_one_unbroken_chain);
