//! The worker on SQLite and (when `TEST_DATABASE_URL` is set) PostgreSQL, through a
//! scripted transport: a delivered attempt makes the endpoint's retries that wait because
//! the receiver was unreachable due at once; a retry after an answer to that message (a
//! 500), and another endpoint's retries, keep their schedule. Nothing sleeps: the worker
//! is driven with `drain`, and "not due yet" is read from the rows.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use audit::{Actor, AuditContext, RequestMeta};
use bytes::Bytes;
use test_support::{Backend, ScratchDb, TestEnv};
use uuid::Uuid;
use webhooks::{AddressPolicy, EndpointUrl, EventFilter, SignedHeaders};
use webhooks_store::transport::{Answer, SendError, SendFuture, Transport};
use webhooks_store::worker::{WebhookWorker, WorkerSettings};
use webhooks_store::{BoxError, DeliveryStatus, SeaOrmWebhooks, SecretSeal};

struct Env(ScratchDb);

impl TestEnv for Env {
    async fn open(backend: Backend) -> Option<Self> {
        Some(Self(ScratchDb::open(backend, "ptoc_whwake", 4).await?))
    }

    async fn finish(self) {
        self.0.finish().await;
    }
}

test_support::both_backends!(crate::Env; a_delivered_attempt_makes_the_endpoints_unreachable_retries_due);

/// Secrets kept as they are (the seal is the app's; not under test here).
struct PlainSeal;

impl SecretSeal for PlainSeal {
    fn seal(&self, _owner: &[u8], secret: &[u8]) -> Result<String, BoxError> {
        Ok(secret.iter().map(|b| format!("{b:02x}")).collect())
    }

    fn open(&self, _owner: &[u8], sealed: &str) -> Result<Vec<u8>, BoxError> {
        (0..sealed.len())
            .step_by(2)
            .map(|i| Ok(u8::from_str_radix(&sealed[i..i + 2], 16)?))
            .collect()
    }
}

/// How the receiver at a URL answers now.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// Connection refused.
    Down,
    Status(u16),
}

/// A transport answering per URL as scripted, counting what each message id received.
#[derive(Default)]
struct Scripted {
    replies: Mutex<HashMap<String, Reply>>,
    sent: Mutex<HashMap<String, usize>>,
}

impl Scripted {
    fn set(&self, url: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(url.to_owned(), reply);
    }

    fn sent(&self, delivery: Uuid) -> usize {
        let id = webhooks::message_id(delivery);
        self.sent.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

impl Transport for Scripted {
    fn send<'a>(&'a self, url: &'a str, headers: &'a SignedHeaders, _: Bytes) -> SendFuture<'a> {
        *self
            .sent
            .lock()
            .unwrap()
            .entry(headers.id.clone())
            .or_default() += 1;
        let reply = self.replies.lock().unwrap().get(url).copied();
        Box::pin(async move {
            match reply {
                Some(Reply::Status(status)) => Ok(Answer { status }),
                Some(Reply::Down) | None => Err(SendError::Connection("connection refused".into())),
            }
        })
    }
}

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
    let ctx = AuditContext {
        actor: Actor::System,
        request: RequestMeta::default(),
    };
    let (a_url, b_url) = ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b");
    let mut endpoints = Vec::new();
    for url in [a_url, b_url] {
        let url = EndpointUrl::parse(
            url,
            AddressPolicy {
                allow_loopback: true,
            },
        )
        .unwrap();
        let events = EventFilter::parse(&["role.updated"]).unwrap();
        let (endpoint, _) = store.create(&ctx, org, None, &url, &events).await.unwrap();
        endpoints.push(endpoint);
    }
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
