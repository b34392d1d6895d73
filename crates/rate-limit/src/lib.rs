//! Rate limiting for the API: a small port with two adapters.
//!
//! # Decision logic (pure)
//! [`gcra::decide`] is the Generic Cell Rate Algorithm over several buckets at once
//! (a request's tier and its endpoint class: all charged or none), on integer
//! microseconds. [`Quota`] is `limit/period` (`100/1m`); [`Policy`] maps each [`Tier`]
//! (the caller's role in the path's org, an API key, a signed-in user elsewhere, an
//! anonymous client address) and [`RateClass`] (list, create, update, delete, search,
//! export, sign-in) to its quota and gives a request its [`Bucket`]s; [`Subject`] is whom
//! a request counts against (API key, else user, else client address, IPv6 by /64) and
//! [`bucket_key`] where its buckets live. [`BackoffPolicy`] is the sign-in back-off
//! (exponential after so many attempts), applied to attempts *reserved before* the
//! password is checked ([`RateLimiter::sign_in_begin`]), per address and per account —
//! or per device token, for a client that signed in to the account before
//! ([`SignInAs`]). [`client_ip`] honours `X-Forwarded-For` only
//! from [`IpNet`]s configured as trusted proxies.
//!
//! # Stores (the port [`RateStore`])
//! - [`RedisStore`]: shared by every instance. Each decision is **one Lua script** run
//!   with `EVALSHA` (`EVAL` on `NOSCRIPT`): it reads the buckets' TATs, applies the same
//!   arithmetic as [`gcra::decide`] and stores the advanced TATs only if every bucket had
//!   room, atomically on the server, so concurrent instances cannot both spend the last
//!   token. Keys expire as soon as their bucket is full again. One request's keys share a
//!   hash tag (`{prefix}rl:{<subject>}:<bucket>`).
//! - [`LocalStore`]: the same decisions in a sharded in-process map (stale buckets swept
//!   as shards grow).
//!
//! # The limiter
//! [`RateLimiter`] uses Redis while it answers within its time bound and the local store
//! otherwise: the first failure opens a circuit (logged once), a background probe pings
//! Redis every retry interval and closes it again. While open, each instance enforces the
//! quotas on its own (a client spreading requests over N instances gets up to N times
//! the budget for the outage). Time comes from a [`Clock`] ([`ManualClock`] in tests).

mod backoff;
mod clock;
pub mod gcra;
mod ip;
mod limiter;
mod local;
mod policy;
mod quota;
mod redis;
mod store;
#[cfg(feature = "test-support")]
pub mod testing;

pub use backoff::BackoffPolicy;
pub use clock::{Clock, ManualClock, SystemClock};
pub use gcra::{Decision, Status, ceil_secs};
pub use ip::{IpNet, IpNetError, client_ip};
pub use limiter::{Backend, LimiterSettings, LimiterStats, RateLimiter, SignInAs, SignInPermit};
pub use local::LocalStore;
pub use policy::{
    Bucket, Policy, RateClass, Subject, Tier, account_backoff_key, account_digest, bucket_key,
    device_backoff_key, ip_backoff_key,
};
pub use quota::{Quota, QuotaError};
pub use redis::{RedisSettings, RedisStore};
pub use store::{RateStore, StoreError};
