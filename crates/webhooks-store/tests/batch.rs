//! A claimed batch on SQLite and (when `TEST_DATABASE_URL` is set) PostgreSQL: its
//! attempts are recorded per org in one transaction, each only by the worker holding
//! the delivery's lease (one lost meanwhile is left to its new holder, the rest of the
//! batch recorded); a delivery keeps only its newest attempts. Nothing sleeps.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use uuid::Uuid;
use webhooks_store::worker::{ATTEMPTS_KEPT, WebhookWorker, WorkerSettings};
use webhooks_store::{DeliveryStatus, SeaOrmWebhooks};

mod common;

use common::{Env, PlainSeal, Reply, Scripted, endpoint, system};

test_support::both_backends!(crate::Env;
    a_batch_over_two_orgs_records_each_attempt_once_and_leaves_a_lost_lease_alone,
    a_delivery_keeps_its_newest_attempts);

fn worker(
    env: &Env,
    store: &SeaOrmWebhooks,
    transport: Arc<Scripted>,
) -> WebhookWorker<audit_store::SeaOrmAuditLog> {
    WebhookWorker::new(
        store.clone(),
        audit_store::SeaOrmAuditLog::new(env.0.db.clone()),
        transport,
        WorkerSettings::default(),
    )
}

async fn a_batch_over_two_orgs_records_each_attempt_once_and_leaves_a_lost_lease_alone(env: &Env) {
    let db = &env.0;
    let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
    db.org(one, None, None).await;
    db.org(two, None, None).await;
    let store = SeaOrmWebhooks::new(db.db.clone(), Arc::new(PlainSeal));
    let transport = Arc::new(Scripted::default());
    let worker = worker(env, &store, transport.clone());
    let (a_url, b_url, c_url) = (
        "http://127.0.0.1:9/a",
        "http://127.0.0.1:9/b",
        "http://127.0.0.1:9/c",
    );
    let (a, b) = (
        endpoint(&store, one, a_url).await,
        endpoint(&store, one, b_url).await,
    );
    let c = endpoint(&store, two, c_url).await;
    transport.set(a_url, Reply::Status(204));
    transport.set(b_url, Reply::Status(500));
    transport.set(c_url, Reply::Status(200));
    let ctx = system();
    let mut sent = Vec::new();
    for (org, endpoint, n) in [(one, a.id, 3), (one, b.id, 2), (two, c.id, 2)] {
        for _ in 0..n {
            sent.push((
                org,
                endpoint,
                store.ping(&ctx, org, endpoint).await.unwrap(),
            ));
        }
    }
    // While a's first message is sent, its lease passes to another worker.
    let stolen = sent[0].2;
    transport.steal_lease(stolen, &db.db);

    let pass = worker.run_once().await.unwrap();
    assert_eq!(pass.claimed, 7, "{pass:?}");
    assert_eq!(
        (pass.delivered, pass.retried, pass.failed),
        (4, 2, 0),
        "one batch: a's two (not the stolen one) and c's two delivered, b's two to retry: {pass:?}"
    );
    for &(org, endpoint, id) in &sent {
        let d = store.delivery(org, endpoint, id).await.unwrap().unwrap();
        assert_eq!(transport.sent(id), 1, "{d:?}");
        if id == stolen {
            // Its new holder records it: nothing here.
            assert_eq!(d.status, DeliveryStatus::Sending, "{d:?}");
            assert!(d.attempt_log.is_empty(), "{d:?}");
            continue;
        }
        let (status, code) = if endpoint == b.id {
            (DeliveryStatus::Pending, 500)
        } else if endpoint == a.id {
            (DeliveryStatus::Delivered, 204)
        } else {
            (DeliveryStatus::Delivered, 200)
        };
        assert_eq!(d.status, status, "{d:?}");
        assert_eq!(d.attempt_log.len(), 1, "{d:?}");
        assert_eq!(d.attempt_log[0].status_code, Some(code), "{d:?}");
    }
    assert_eq!(
        db.count("SELECT count(*) AS n FROM webhook_attempts", vec![])
            .await,
        6
    );
    // Nothing else is due: b's retries wait for their next step, the stolen one for its
    // holder's lease.
    assert_eq!(worker.drain().await.unwrap().claimed, 0);
}

async fn a_delivery_keeps_its_newest_attempts(env: &Env) {
    let db = &env.0;
    let org = Uuid::now_v7();
    db.org(org, None, None).await;
    let store = SeaOrmWebhooks::new(db.db.clone(), Arc::new(PlainSeal));
    let transport = Arc::new(Scripted::default());
    let worker = worker(env, &store, transport.clone());
    let url = "http://127.0.0.1:9/kept";
    let e = endpoint(&store, org, url).await;
    transport.set(url, Reply::Status(500));
    let id = store.ping(&system(), org, e.id).await.unwrap();
    // As if redelivered by hand many times: 30 attempts made, the newest 20 kept.
    db.exec(
        "UPDATE webhook_deliveries SET attempts = 30 WHERE id = ?",
        vec![id.into()],
    )
    .await;
    let mut old = Vec::new();
    for _ in 0..ATTEMPTS_KEPT {
        let attempt = Uuid::now_v7();
        old.push(attempt);
        db.exec(
            "INSERT INTO webhook_attempts (org_id, id, delivery_id, attempted_at, status_code, \
             latency_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![
                org.into(),
                attempt.into(),
                id.into(),
                persistence::now_micros().into(),
                503_i32.into(),
                1_i32.into(),
                Option::<String>::None.into(),
            ],
        )
        .await;
    }
    let pass = worker.run_once().await.unwrap();
    assert_eq!(pass.claimed, 1, "{pass:?}");
    let kept = db
        .rows(
            "SELECT id, status_code FROM webhook_attempts WHERE delivery_id = ? ORDER BY id",
            vec![id.into()],
        )
        .await;
    let kept: Vec<(Uuid, i32)> = kept
        .iter()
        .map(|r| {
            (
                r.try_get("", "id").unwrap(),
                r.try_get("", "status_code").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kept.len(),
        usize::try_from(ATTEMPTS_KEPT).unwrap(),
        "{kept:?}"
    );
    // The oldest went; the new attempt (the 500) is the newest kept.
    assert!(!kept.iter().any(|(a, _)| *a == old[0]), "{kept:?}");
    assert_eq!(kept[0].0, old[1], "{kept:?}");
    assert_eq!(kept.last().map(|k| k.1), Some(500), "{kept:?}");
}
