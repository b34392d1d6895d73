//! The worker on SQLite and (when `TEST_DATABASE_URL` is set) PostgreSQL, through a
//! scripted transport: a delivered attempt makes the endpoint's retries that wait because
//! the receiver was unreachable due at once; a retry after an answer to that message (a
//! 500), and another endpoint's retries, keep their schedule. Nothing sleeps: the worker
//! is driven with `drain`, and "not due yet" is read from the rows.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use uuid::Uuid;
use webhooks_store::worker::{WebhookWorker, WorkerSettings};
use webhooks_store::{DeliveryStatus, SeaOrmWebhooks};

mod common;

use common::{Env, PlainSeal, Reply, Scripted, endpoint, system};

test_support::both_backends!(crate::Env; a_delivered_attempt_makes_the_endpoints_unreachable_retries_due);

async fn a_delivered_attempt_makes_the_endpoints_unreachable_retries_due(env: &Env) {
    let db = &env.0;
    let org = Uuid::now_v7();
    db.org(org, None, None).await;
    let store = SeaOrmWebhooks::new(db.db.clone(), Arc::new(PlainSeal));
    let transport = Arc::new(Scripted::default());
    let worker = WebhookWorker::new(
        store.clone(),
        audit_store::SeaOrmAuditLog::new(db.db.clone()),
        transport.clone(),
        // One retry woken per success: the backlog follows in a chain.
        WorkerSettings {
            wake: 1,
            ..WorkerSettings::default()
        },
    );
    let ctx = system();
    let (a_url, b_url) = ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b");
    let endpoints = [
        endpoint(&store, org, a_url).await,
        endpoint(&store, org, b_url).await,
    ];
    let (a, b) = (&endpoints[0], &endpoints[1]);

    // Endpoint a answers one message 500 (the receiver is up and refused it) …
    transport.set(a_url, Reply::Status(500));
    let refused = store.ping(&ctx, org, a.id).await.unwrap();
    assert_eq!(worker.drain().await.unwrap().retried, 1);
    // … then goes down (two messages, no answer; one of them once more at the 5 s step,
    // here made due by hand) and answers 503 to a third.
    transport.set(a_url, Reply::Down);
    let down = [
        store.ping(&ctx, org, a.id).await.unwrap(),
        store.ping(&ctx, org, a.id).await.unwrap(),
    ];
    assert_eq!(worker.drain().await.unwrap().retried, 2);
    db.exec(
        "UPDATE webhook_deliveries SET due_ms = 0 WHERE id = ?",
        vec![down[1].into()],
    )
    .await;
    assert_eq!(worker.drain().await.unwrap().retried, 1);
    transport.set(a_url, Reply::Status(503));
    let unavailable = store.ping(&ctx, org, a.id).await.unwrap();
    assert_eq!(worker.drain().await.unwrap().retried, 1);
    // Endpoint b is down too.
    transport.set(b_url, Reply::Down);
    let other = store.ping(&ctx, org, b.id).await.unwrap();
    assert_eq!(worker.drain().await.unwrap().retried, 1);
    // Nothing is due: every retry waits for its next step.
    assert_eq!(worker.drain().await.unwrap().claimed, 0);
    for (endpoint, id) in [
        (a.id, refused),
        (a.id, down[0]),
        (a.id, down[1]),
        (a.id, unavailable),
        (b.id, other),
    ] {
        let d = store.delivery(org, endpoint, id).await.unwrap().unwrap();
        assert_eq!(d.status, DeliveryStatus::Pending, "{d:?}");
        assert!(
            d.next_attempt_at
                .is_some_and(|t| t > time::OffsetDateTime::now_utc()),
            "{d:?}"
        );
    }

    // a is back: the next message is delivered, and in the same drain the retries that
    // waited on a's being unreachable (no answer, 503) follow at once, each delivered
    // one waking the next.
    transport.set(a_url, Reply::Status(204));
    let fresh = store.ping(&ctx, org, a.id).await.unwrap();
    let pass = worker.drain().await.unwrap();
    assert_eq!(
        (pass.delivered, pass.retried, pass.failed),
        (4, 0, 0),
        "{pass:?}"
    );
    for (id, attempts) in [(fresh, 1), (down[0], 2), (down[1], 3), (unavailable, 2)] {
        let d = store.delivery(org, a.id, id).await.unwrap().unwrap();
        assert_eq!(d.status, DeliveryStatus::Delivered, "{d:?}");
        assert_eq!(d.attempts, attempts, "{d:?}");
        assert_eq!(transport.sent(id), attempts as usize, "{d:?}");
    }
    // The message a answered 500 to keeps its schedule; so does b's.
    for (endpoint, id) in [(a.id, refused), (b.id, other)] {
        let d = store.delivery(org, endpoint, id).await.unwrap().unwrap();
        assert_eq!(
            (d.status, d.attempts),
            (DeliveryStatus::Pending, 1),
            "{d:?}"
        );
        assert!(
            d.next_attempt_at
                .is_some_and(|t| t > time::OffsetDateTime::now_utc()),
            "{d:?}"
        );
        assert_eq!(transport.sent(id), 1);
    }
    // Delivered once each: nothing more is due.
    assert_eq!(worker.drain().await.unwrap().claimed, 0);
}
