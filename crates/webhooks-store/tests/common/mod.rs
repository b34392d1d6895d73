//! What the worker tests share: a scratch database, a seal that keeps secrets as they
//! are, and a transport answering as scripted.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Mutex;

use audit::{Actor, AuditContext, RequestMeta};
use bytes::Bytes;
use persistence::Database;
use sea_orm::ConnectionTrait;
use test_support::{Backend, ScratchDb, TestEnv};
use uuid::Uuid;
use webhooks::{AddressPolicy, EndpointUrl, EventFilter, SignedHeaders};
use webhooks_store::transport::{Answer, SendError, SendFuture, Transport};
use webhooks_store::{BoxError, Endpoint, SeaOrmWebhooks, SecretSeal};

pub struct Env(pub ScratchDb);

impl TestEnv for Env {
    async fn open(backend: Backend) -> Option<Self> {
        Some(Self(ScratchDb::open(backend, "ptoc_whwork", 4).await?))
    }

    async fn finish(self) {
        self.0.finish().await;
    }
}

/// Secrets kept as they are (the seal is the app's; not under test here).
pub struct PlainSeal;

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

/// The system acting (what the tests' writes are audited as).
pub fn system() -> AuditContext {
    AuditContext {
        actor: Actor::System,
        request: RequestMeta::default(),
    }
}

/// Registers an endpoint of `org` for `role.updated` at `url` (loopback allowed).
pub async fn endpoint(store: &SeaOrmWebhooks, org: Uuid, url: &str) -> Endpoint {
    let url = EndpointUrl::parse(
        url,
        AddressPolicy {
            allow_loopback: true,
        },
    )
    .unwrap();
    let events = EventFilter::parse(&["role.updated"]).unwrap();
    store
        .create(&system(), org, None, &url, &events)
        .await
        .unwrap()
        .0
}

/// How the receiver at a URL answers now.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// Connection refused.
    Down,
    Status(u16),
}

/// A transport answering per URL as scripted, counting what each message id received;
/// optionally, while sending one message, handing its delivery's lease to another
/// worker (as if this worker's lease had run out meanwhile).
#[derive(Default)]
pub struct Scripted {
    replies: Mutex<HashMap<String, Reply>>,
    sent: Mutex<HashMap<String, usize>>,
    steal: Mutex<Option<(String, Uuid, Database)>>,
}

impl Scripted {
    pub fn set(&self, url: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(url.to_owned(), reply);
    }

    pub fn sent(&self, delivery: Uuid) -> usize {
        let id = webhooks::message_id(delivery);
        self.sent.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    /// While delivery `id` is sent, another worker takes its lease.
    pub fn steal_lease(&self, id: Uuid, db: &Database) {
        *self.steal.lock().unwrap() = Some((webhooks::message_id(id), id, db.clone()));
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
        let steal = {
            let mut steal = self.steal.lock().unwrap();
            match steal.as_ref() {
                Some((message, ..)) if *message == headers.id => steal.take(),
                _ => None,
            }
        };
        Box::pin(async move {
            if let Some((_, id, db)) = steal {
                let conn = db.primary();
                conn.execute_raw(persistence::statement(
                    conn.get_database_backend(),
                    "UPDATE webhook_deliveries SET lease_owner = 'another-worker' WHERE id = ?",
                    vec![id.into()],
                ))
                .await
                .unwrap();
            }
            match reply {
                Some(Reply::Status(status)) => Ok(Answer { status }),
                Some(Reply::Down) | None => Err(SendError::Connection("connection refused".into())),
            }
        })
    }
}
