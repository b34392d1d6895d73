//! Two-level cache adapter: a `moka` in-process L1 in front of an optional shared Redis
//! L2 (via `fred`).
//!
//! The L2 is optional (the embedded default runs without Redis) and never required for
//! correctness: when Redis is unreachable, callers fall back to L1 and the database,
//! and the client reconnects by itself in the background.

mod bus;
pub mod generations;
mod local;
mod redis;
pub mod scoped;
pub mod weight;

pub use bus::{INVALIDATION_CHANNEL, InvalidationBus};
pub use local::{CacheStats, LocalCache};
pub use redis::{RedisCache, RedisError};
pub use scoped::{ScopedCache, ScopedSettings, ScopedStats};
pub use weight::CacheBytes;
