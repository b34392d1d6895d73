use std::time::Duration;

use fred::prelude::{Builder, ClientLike, Config, ReconnectPolicy};

/// A failure talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL is not a valid Redis URL.
    #[error("invalid REDIS_URL: {0}")]
    InvalidUrl(String),
    /// Redis is unreachable or answered with an error.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
}

/// The shared L2 cache and invalidation bus: a Redis client that reconnects by itself.
#[derive(Clone)]
pub struct RedisCache {
    client: fred::clients::Client,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("connected", &self.client.is_connected())
            .finish()
    }
}

impl RedisCache {
    /// Builds a client and starts connecting in the background. Waits up to
    /// `wait` for the first connection; if Redis is not up by then the client keeps
    /// retrying on its own and the cache works in degraded (L1-only) mode meanwhile.
    pub async fn connect(url: &str, wait: Duration) -> Result<Self, RedisError> {
        let mut config =
            Config::from_url(url).map_err(|e| RedisError::InvalidUrl(e.to_string()))?;
        // Keep retrying the first connection too: an instance that starts while Redis is
        // down must join the shared cache once it is back.
        config.fail_fast = false;
        let client = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
            })
            .with_performance_config(|p| {
                p.default_command_timeout = Duration::from_millis(500);
            })
            // Retry forever, 50 ms doubling up to 2 s between attempts.
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build()
            .map_err(|e| RedisError::InvalidUrl(e.to_string()))?;
        // Spawns the connection task; it survives failures thanks to the policy.
        let _task = client.connect();
        if tokio::time::timeout(wait, client.wait_for_connect())
            .await
            .ok()
            .and_then(Result::ok)
            .is_none()
        {
            tracing::warn!("redis not reachable yet; running on L1 and the database until it is");
        }
        Ok(Self { client })
    }

    /// Round-trips a `PING`.
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.client
            .ping::<String>(None)
            .await
            .map(|_| ())
            .map_err(|e| RedisError::Unavailable(e.to_string()))
    }

    /// Publishes `message` on `channel`.
    pub async fn publish(&self, channel: &str, message: &str) -> Result<(), RedisError> {
        use fred::prelude::PubsubInterface;
        self.client
            .publish::<i64, _, _>(channel, message)
            .await
            .map(|_| ())
            .map_err(|e| RedisError::Unavailable(e.to_string()))
    }

    /// Closes the connection.
    pub async fn shutdown(&self) {
        let _ = self.client.quit().await;
    }
}
