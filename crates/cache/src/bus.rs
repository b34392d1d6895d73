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

/// Cache invalidations between instances: a message published by any instance reaches
/// every instance's subscribers (its own included), so each can evict its L1.
///
/// Without Redis it is an in-process broadcast (one instance: nothing else to tell).
/// With Redis, publishing also goes out on [`INVALIDATION_CHANNEL`]; a subscriber
/// connection (resubscribing by itself after reconnects) feeds received messages into
/// the local broadcast. Messages are idempotent eviction orders, so receiving one's own
/// message twice is harmless.
#[derive(Clone)]
pub struct InvalidationBus {
    local: broadcast::Sender<String>,
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
        let local = bus.local.clone();
        tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(message) => {
                        if let Some(text) = message.value.as_string() {
                            let _ = local.send(text);
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
    /// L1 TTLs until Redis is back.
    pub async fn publish(&self, message: &str) {
        let _ = self.local.send(message.to_owned());
        if let Some(redis) = &self.publisher {
            match redis.publish(INVALIDATION_CHANNEL, message).await {
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
