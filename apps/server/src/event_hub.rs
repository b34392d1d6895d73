//! Live change events for the streams (issue #19): one per-instance broadcast of every
//! committed org event, fed by the after-commit dispatcher (events committed here) and
//! by the invalidation bus (events committed on another instance).
//!
//! The dispatcher hands each committed transaction's events to [`EventHub::committed`]:
//! they are broadcast here at once, in their public form ([`audit::ChangeEvent`]: no
//! personal values), and announced on the bus as `events:{org}:{first}:{last}:{origin}`.
//! Other instances read that seq range once from the primary, open it and broadcast it
//! to their own streams; no event payload crosses Redis. Streams subscribe before they
//! read their backlog and de-duplicate by seq; a seq that arrives ahead of the next one
//! expected (transactions dispatched out of order, a message lost) makes the stream read
//! the missing range from the database, so delivery has no gap either way.
//!
//! The hub also carries **inbox changes** (whose unread notification count may have
//! changed: [`notifications::InboxObserver`], told by the notification store after its
//! commit): a second broadcast of user ids here, and `inbox:{origin}:{id},{id},…` on the
//! bus (at most [`INBOX_PER_MESSAGE`] ids a message) for the other instances. No count
//! crosses Redis: each `/me/stream` of a named user reads its count from the primary
//! when told, so the last signal always shows the latest count whatever the order in
//! which signals from several instances arrive.

use std::sync::Arc;

use audit::{AuditEvent, AuditLog, ChainId, ChangeEvent};
use cache::InvalidationBus;
use tokio::sync::broadcast;
use uuid::Uuid;

const PREFIX: &str = "events:";
const INBOX_PREFIX: &str = "inbox:";

/// Most user ids one bus message of inbox changes carries (a send to 10,000 members is
/// 20 messages of about 19 KB).
pub const INBOX_PER_MESSAGE: usize = 500;

/// How many inbox changes the broadcast keeps for its slowest stream: a stream further
/// behind reads its count again (it cannot know whether it missed its own user).
const INBOX_BUFFER: usize = 256;

/// How many live events the broadcast keeps for its slowest stream: a stream that falls
/// further behind (its client reads too slowly) is ended with a reason.
pub const BUFFER: usize = 1024;

/// One committed event of an org's chain, as streams receive it.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    /// The chain.
    pub chain: ChainId,
    /// Its seq.
    pub seq: u64,
    /// Its public form; `None` for a type that is not published.
    pub event: Option<ChangeEvent>,
    /// Its JSON after the `id` member (`,"type":…}`), rendered once by the first stream
    /// that sends it and shared by every other (only the cursor differs per stream).
    pub rendered: std::sync::OnceLock<Arc<str>>,
}

impl LiveEvent {
    fn new(chain: ChainId, seq: u64, event: Option<ChangeEvent>) -> Self {
        Self {
            chain,
            seq,
            event,
            rendered: std::sync::OnceLock::new(),
        }
    }
}

/// The per-instance broadcast of committed org events. Cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<LiveEvent>>,
    inbox: broadcast::Sender<Arc<[Uuid]>>,
    bus: InvalidationBus,
    origin: Uuid,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl EventHub {
    /// A hub announcing on `bus`, and listening to it for other instances' events, read
    /// with `log` (on the primary). Must be called inside a Tokio runtime.
    #[must_use]
    pub fn new(bus: InvalidationBus, log: audit_store::SeaOrmAuditLog) -> Self {
        let (tx, _) = broadcast::channel(BUFFER);
        let (inbox, _) = broadcast::channel(INBOX_BUFFER);
        let hub = Self {
            tx,
            inbox,
            bus,
            origin: Uuid::new_v4(),
        };
        let mut messages = hub.bus.subscribe();
        let listener = hub.clone();
        tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(message) => {
                        if let Some((chain, first, last)) = listener.parse(&message) {
                            listener.fetch_and_send(&log, chain, first, last).await;
                        } else if let Some(users) = listener.parse_inbox(&message) {
                            let _ = listener.inbox.send(users);
                        }
                    }
                    // Streams find what they missed by its seq (they read the gap).
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        hub
    }

    /// A receiver of every org event committed from now on (here or, with Redis, on any
    /// instance).
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.tx.subscribe()
    }

    /// A receiver of the users whose inboxes changed from now on (here or, with Redis,
    /// on any instance); a lagging receiver should assume its users are among them.
    #[must_use]
    pub fn subscribe_inbox(&self) -> broadcast::Receiver<Arc<[Uuid]>> {
        self.inbox.subscribe()
    }

    /// Tells this instance's streams and (over the bus) every other instance's that the
    /// inboxes of `users` changed.
    pub async fn inbox_changed(&self, users: &[Uuid]) {
        if users.is_empty() {
            return;
        }
        // No receiver: no stream is open here.
        let _ = self.inbox.send(users.into());
        for chunk in users.chunks(INBOX_PER_MESSAGE) {
            let ids: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
            self.bus
                .publish(&format!("{INBOX_PREFIX}{}:{}", self.origin, ids.join(",")))
                .await;
        }
    }

    fn parse_inbox(&self, message: &str) -> Option<Arc<[Uuid]>> {
        let (origin, ids) = message.strip_prefix(INBOX_PREFIX)?.split_once(':')?;
        if Uuid::parse_str(origin).ok()? == self.origin {
            return None;
        }
        ids.split(',')
            .map(|id| Uuid::parse_str(id).ok())
            .collect::<Option<Vec<Uuid>>>()
            .map(Into::into)
    }

    /// Broadcasts a committed transaction's org events here and announces them to the
    /// other instances.
    pub async fn committed(&self, events: &[AuditEvent]) {
        let mut ranges: Vec<(Uuid, u64, u64)> = Vec::new();
        for e in events {
            let ChainId::Org(org) = e.chain() else {
                continue;
            };
            self.send(LiveEvent::new(e.chain(), e.seq, ChangeEvent::of(e)));
            match ranges.iter_mut().find(|(o, _, _)| *o == org) {
                Some(range) => {
                    range.1 = range.1.min(e.seq);
                    range.2 = range.2.max(e.seq);
                }
                None => ranges.push((org, e.seq, e.seq)),
            }
        }
        for (org, first, last) in ranges {
            self.bus
                .publish(&format!("{PREFIX}{org}:{first}:{last}:{}", self.origin))
                .await;
        }
    }

    fn send(&self, event: LiveEvent) {
        // No receiver: no stream is open here.
        let _ = self.tx.send(Arc::new(event));
    }

    fn parse(&self, message: &str) -> Option<(ChainId, u64, u64)> {
        let mut parts = message.strip_prefix(PREFIX)?.split(':');
        let org = Uuid::parse_str(parts.next()?).ok()?;
        let first: u64 = parts.next()?.parse().ok()?;
        let last: u64 = parts.next()?.parse().ok()?;
        let origin = Uuid::parse_str(parts.next()?).ok()?;
        (origin != self.origin && first <= last).then_some((ChainId::Org(org), first, last))
    }

    async fn fetch_and_send(
        &self,
        log: &audit_store::SeaOrmAuditLog,
        chain: ChainId,
        first: u64,
        last: u64,
    ) {
        let count = u32::try_from(last - first + 1).unwrap_or(u32::MAX);
        let read = persistence::routing::scope(true, async {
            let mut events = log.chain_events(chain, first, count).await?;
            audit_store::open_events(log.database().primary(), &mut events)
                .await
                .map_err(audit::ChainReadError::Storage)?;
            Ok::<_, audit::ChainReadError>(events)
        })
        .await;
        match read {
            Ok(events) => {
                for e in events.iter().filter(|e| e.seq <= last) {
                    self.send(LiveEvent::new(chain, e.seq, ChangeEvent::of(e)));
                }
            }
            // The streams of this instance read the range themselves when the next
            // event of the org shows the gap.
            Err(e) => {
                tracing::warn!(error = %e, %chain, "could not read another instance's events")
            }
        }
    }
}

impl notifications::InboxObserver for EventHub {
    fn inbox_changed<'a>(
        &'a self,
        users: &'a [Uuid],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(EventHub::inbox_changed(self, users))
    }
}
