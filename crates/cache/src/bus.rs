use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fred::prelude::{
    Builder, ClientLike, Config, EventInterface, PubsubInterface, ReconnectPolicy,
};
use tokio::sync::broadcast;

use crate::{RedisCache, RedisError};

/// The Redis channel every instance listens on for cache invalidations.
pub const INVALIDATION_CHANNEL: &str = "ptoc:invalidate";

/// The first line of a Redis message names the bus that sent it (`bus:from:<id>`), so
/// the sender skips its own message when Redis hands it back: it delivered it here when
/// it was published. An instance of the release before reads the line as one more
/// message, which none of its subscribers knows, and ignores it.
const FROM: &str = "bus:from:";

tokio::task_local! {
    /// The messages held back for one Redis message by [`InvalidationBus::batched`].
    static BATCH: std::cell::RefCell<Vec<String>>;
}

/// Cache invalidations between instances: a message published by any instance reaches
/// every instance's subscribers (its own included, once), so each can evict its L1.
///
/// Without Redis it is an in-process broadcast (one instance: nothing else to tell).
/// With Redis, publishing also goes out on [`INVALIDATION_CHANNEL`]; a subscriber
/// connection (resubscribing by itself after reconnects) feeds the messages of other
/// instances into the local broadcast. Messages are idempotent eviction orders, so a
/// message received twice (from an instance of the release before, which does not
/// name itself) is harmless.
///
/// Publishes made inside [`InvalidationBus::batched`] reach this instance at once and the
/// others in one Redis message at the end: the messages joined by newlines (a message
/// holds none), which receivers split again. A batch of one is the message itself.
#[derive(Clone)]
pub struct InvalidationBus {
    local: broadcast::Sender<String>,
    /// This bus's first line on Redis (`bus:from:<id>`); its clones share it.
    from: Arc<str>,
    publisher: Option<RedisCache>,
    subscriber: Option<fred::clients::SubscriberClient>,
    warned: Arc<AtomicBool>,
}

impl std::fmt::Debug for InvalidationBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvalidationBus")
            .field("redis", &self.publisher.is_some())
            .finish()
    }
}

impl InvalidationBus {
    /// An in-process bus (no Redis).
    #[must_use]
    pub fn local_only() -> Self {
        let (local, _) = broadcast::channel(1024);
        Self {
            local,
            from: format!("{FROM}{}", uuid::Uuid::new_v4()).into(),
            publisher: None,
            subscriber: None,
            warned: Arc::default(),
        }
    }

    /// A bus that also spans instances through Redis at `url`, publishing with
    /// `publisher`. Waits up to `wait` for the subscriber connection; if Redis is down it
    /// keeps retrying in the background.
    pub async fn with_redis(
        url: &str,
        publisher: RedisCache,
        wait: Duration,
    ) -> Result<Self, RedisError> {
        let mut bus = Self {
            publisher: Some(publisher),
            ..Self::local_only()
        };
        let mut config =
            Config::from_url(url).map_err(|e| RedisError::InvalidUrl(e.to_string()))?;
        config.fail_fast = false;
        let subscriber = Builder::from_config(config)
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build_subscriber_client()
            .map_err(|e| RedisError::InvalidUrl(e.to_string()))?;
        let _connection = subscriber.connect();
        // Re-subscribes to the channel after every reconnect.
        let _resubscribe = subscriber.manage_subscriptions();
        let mut messages = subscriber.message_rx();
        let (local, from) = (bus.local.clone(), bus.from.clone());
        tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(message) => {
                        if let Some(text) = message.value.as_string() {
                            for line in received_lines(&text, &from) {
                                let _ = local.send(line.to_owned());
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(
                            missed = n,
                            "invalidation bus lagged; L1 TTLs bound staleness"
                        );
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        let ready = async {
            subscriber.wait_for_connect().await?;
            subscriber.subscribe(INVALIDATION_CHANNEL).await
        };
        if tokio::time::timeout(wait, ready)
            .await
            .ok()
            .and_then(Result::ok)
            .is_none()
        {
            tracing::warn!(
                "redis subscriber not connected yet; invalidations from other instances will arrive once it is"
            );
            // manage_subscriptions re-issues SUBSCRIBE once connected only for channels
            // already tracked, so record the subscription now (it is queued).
            let s = subscriber.clone();
            tokio::spawn(async move {
                loop {
                    if s.subscribe(INVALIDATION_CHANNEL).await.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
        bus.subscriber = Some(subscriber);
        Ok(bus)
    }

    /// A receiver of every invalidation published from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.local.subscribe()
    }

    /// Publishes an invalidation to every instance (this one synchronously). A Redis
    /// failure is logged once per outage and otherwise ignored: peers fall back on their
    /// L1 TTLs until Redis is back. Inside [`InvalidationBus::batched`] the Redis side
    /// waits for the end of the batch.
    pub async fn publish(&self, message: &str) {
        let _ = self.local.send(message.to_owned());
        if self.publisher.is_none() {
            return;
        }
        // A message with a newline would be split by receivers: it goes out alone (none
        // of this system's messages holds one).
        if !message.contains('\n')
            && BATCH
                .try_with(|batch| batch.borrow_mut().push(message.to_owned()))
                .is_ok()
        {
            return;
        }
        self.send_remote(message).await;
    }

    /// Runs `work`; the invalidations it publishes (on this task) reach this instance at
    /// once, as always, and the other instances in one Redis message when it is done:
    /// one round trip for a committed transaction's effects instead of one per cache.
    pub async fn batched<F: Future>(&self, work: F) -> F::Output {
        let (output, held) = BATCH
            .scope(std::cell::RefCell::new(Vec::new()), async {
                let output = work.await;
                (output, BATCH.with(|batch| batch.take()))
            })
            .await;
        if !held.is_empty() {
            self.send_remote(&held.join("\n")).await;
        }
        output
    }

    /// Sends `message` (one, or a batch joined by newlines) to the other instances, after
    /// the line that names this bus.
    async fn send_remote(&self, message: &str) {
        if let Some(redis) = &self.publisher {
            let message = format!("{}\n{message}", self.from);
            // Boxed: the client's future is large, and every publisher awaits this one.
            match Box::pin(redis.publish(INVALIDATION_CHANNEL, &message)).await {
                Ok(()) => {
                    if self.warned.swap(false, Ordering::Relaxed) {
                        tracing::info!("redis is reachable again; invalidations are shared");
                    }
                }
                Err(e) => {
                    if !self.warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "cannot publish invalidation to redis; peers rely on L1 TTLs until it is back");
                    }
                }
            }
        }
    }
}

/// The messages of a Redis message for this instance's subscribers: none if `from` (this
/// bus's line) sent it, else its lines (one message, or a batch: see
/// [`InvalidationBus::batched`]) after the sender's line, if any.
fn received_lines<'a>(text: &'a str, from: &str) -> impl Iterator<Item = &'a str> {
    let mut lines = text.split('\n').filter(|l| !l.is_empty()).peekable();
    let own = lines.peek() == Some(&from);
    if lines.peek().is_some_and(|l| l.starts_with(FROM)) {
        lines.next();
    }
    lines.filter(move |_| !own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_message_is_split_and_its_own_is_skipped() {
        fn lines<'a>(text: &'a str, own: &str) -> Vec<&'a str> {
            received_lines(text, own).collect()
        }
        let own = "bus:from:a";
        assert_eq!(lines("bus:from:b\nx:1\ny:2", own), ["x:1", "y:2"]);
        assert!(lines("bus:from:a\nx:1\ny:2", own).is_empty());
        // From an instance of the release before: no sender line.
        assert_eq!(lines("x:1", own), ["x:1"]);
        assert_eq!(lines("x:1\ny:2\n", own), ["x:1", "y:2"]);
        assert!(lines("", own).is_empty());
    }

    /// Publishes probes on `from` until `to` (another bus's receiver, so only Redis can
    /// bring them) has one: `to`'s bus is subscribed.
    async fn heard(from: &InvalidationBus, to: &mut broadcast::Receiver<String>) {
        let probe = format!("test:{}:probe", uuid::Uuid::new_v4());
        for _ in 0..100 {
            from.publish(&probe).await;
            let got = tokio::time::timeout(Duration::from_millis(200), async {
                while let Ok(m) = to.recv().await {
                    if m == probe {
                        return true;
                    }
                }
                false
            })
            .await;
            if got == Ok(true) {
                return;
            }
        }
        panic!("the other bus did not subscribe within 20 s");
    }

    fn drain(rx: &mut broadcast::Receiver<String>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[tokio::test]
    async fn batched_messages_reach_this_instance_at_once() {
        let bus = InvalidationBus::local_only();
        let mut rx = bus.subscribe();
        let seen = bus
            .batched(async {
                bus.publish("a:1").await;
                bus.publish("b:2").await;
                drain(&mut rx)
            })
            .await;
        assert_eq!(seen, ["a:1", "b:2"]);
        assert!(drain(&mut rx).is_empty());
    }

    /// With Redis: a batch is one message on the channel, and another instance's bus
    /// hands its parts to its subscribers one by one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_is_one_redis_message_split_by_receivers() {
        let Ok(url) = std::env::var("TEST_REDIS_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "TEST_REDIS_URL must be set under CI=true (Redis tests may not be skipped)"
            );
            return;
        };
        let wait = Duration::from_secs(2);
        let connect = || async {
            let publisher = RedisCache::connect(&url, wait).await.expect("redis url");
            InvalidationBus::with_redis(&url, publisher, wait)
                .await
                .expect("bus")
        };
        let (writer, peer) = (connect().await, connect().await);
        // A raw listener counts what crosses Redis.
        let raw = Builder::from_config(Config::from_url(&url).expect("url"))
            .build_subscriber_client()
            .expect("client");
        raw.init().await.expect("connect");
        let mut raw_rx = raw.message_rx();
        raw.subscribe(INVALIDATION_CHANNEL)
            .await
            .expect("subscribe");
        let mut peer_rx = peer.subscribe();
        let mut writer_rx = writer.subscribe();
        // Each bus's subscription may complete after `with_redis` returns (on a loaded
        // machine, after its wait): each hears the other before the test's messages.
        heard(&writer, &mut peer_rx).await;
        heard(&peer, &mut writer_rx).await;
        let tag = uuid::Uuid::new_v4();
        let sent: Vec<String> = (0..3).map(|i| format!("test:{tag}:{i}")).collect();
        writer
            .batched(async {
                for m in &sent {
                    writer.publish(m).await;
                }
            })
            .await;
        writer.publish(&format!("test:{tag}:alone")).await;
        let mut received = Vec::new();
        while received.len() < 4 {
            let m = tokio::time::timeout(Duration::from_secs(5), peer_rx.recv())
                .await
                .expect("the peer hears the batch")
                .expect("open");
            if m.contains(&tag.to_string()) {
                received.push(m);
            }
        }
        let mut expected = sent.clone();
        expected.push(format!("test:{tag}:alone"));
        assert_eq!(received, expected);
        let mut on_redis = Vec::new();
        while on_redis.len() < 2 {
            let m = tokio::time::timeout(Duration::from_secs(5), raw_rx.recv())
                .await
                .expect("redis carries the messages")
                .expect("open");
            if let Some(text) = m.value.as_string()
                && text.contains(&tag.to_string())
            {
                on_redis.push(text);
            }
        }
        let from = &writer.from;
        assert_eq!(
            on_redis,
            [
                format!("{from}\n{}", sent.join("\n")),
                format!("{from}\ntest:{tag}:alone")
            ]
        );
        // The writer's subscribers got each message once, when it was published: not
        // again when Redis handed them back. The peer's message, sent after, arrives at
        // the writer after the writer's own (one connection, in order).
        let sentinel = format!("test:{tag}:from-peer");
        peer.publish(&sentinel).await;
        let mut at_writer = Vec::new();
        while at_writer.last() != Some(&sentinel) {
            let m = tokio::time::timeout(Duration::from_secs(5), writer_rx.recv())
                .await
                .expect("the writer hears the peer")
                .expect("open");
            if m.contains(&tag.to_string()) {
                at_writer.push(m);
            }
        }
        expected.push(sentinel);
        assert_eq!(at_writer, expected);
        let _ = raw.quit().await;
    }
}
