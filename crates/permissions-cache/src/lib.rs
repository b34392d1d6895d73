//! The caching adapter in front of the permission store: answers
//! [`permissions::check`] from memory, with every write effective on the next request
//! on every instance.
//!
//! # Layers
//! ```text
//! request ─▶ L1: moka, per instance ─▶ L2: Redis, shared (fred) ─▶ database (SeaOrmPermissionStore)
//!            compiled tables by org      generation-numbered keys     compile_org / load_member
//!            member contexts by (org, user)
//! ```
//! [`PermissionCache`] caches two things: an org's [`permissions::CompiledOrg`] (its 28
//! resolved settings, stamped with the org's `permissions_version` as *generation*) and
//! a member's [`permissions::MemberContext`] (or the fact that the user is not a member).
//! A warm [`PermissionCache::check`] is two moka lookups, two `Arc` clones and
//! [`permissions::check`]: no I/O, and no allocation (moka records each read in a
//! preallocated bounded buffer; its housekeeping runs amortized, inline every so many
//! reads). See `examples/warm_check.rs` for its cost. A miss goes to L2, then to the
//! database, and fills the layers it passed. Concurrent misses of one key load once (moka's
//! per-key compute lock: the first caller loads, the others find its result).
//!
//! # Keys and generations
//! With the default prefix `ptoc:perm:v1:` ([`CacheSettings::key_prefix`]):
//!
//! | key | value |
//! |---|---|
//! | `ptoc:perm:v1:gen:{org}` | the org's L2 generation counter (no TTL) |
//! | `ptoc:perm:v1:org:{org}:g{n}` | compiled table, `{"v":1,"o":…}` (L2 TTL) |
//! | `ptoc:perm:v1:member:{org}:{user}:g{n}` | member, `{"v":1,"g":<org generation>,"m":…\|null}` (L2 TTL) |
//!
//! A read is **one round trip** (a Lua script reads the counter `n` and the value under
//! `g{n}`). Invalidating an org is **one `INCR`** of its counter: the old values become
//! unreachable and expire by themselves, and nothing is ever found by a `KEYS`/`SCAN`.
//! A district or school template change bumps the `permissions_version` of every org
//! below it and the store returns those orgs; [`PermissionCache::org_changed`] then
//! increments all their counters in one script call (one round trip).
//!
//! A loader reads the counter *before* loading from the database and stores under the
//! number it read; a writer commits *before* incrementing. So a value stored under the
//! current number was loaded after the last increment, hence after the last write. A
//! missing counter (never used, or lost) is seeded from the org's `permissions_version`
//! (read from the database before the table is loaded, with `SET NX`, deleting any table a
//! former counter may have left under that number). Counters have no TTL: run Redis with
//! a `volatile-*` eviction policy (or none) so they are not evicted.
//!
//! Member contexts are not part of the compiled table, and membership or role changes
//! (another store) do not bump `permissions_version`; [`PermissionCache::member_changed`]
//! increments the org's counter all the same (the org's L2 member contexts and table are
//! reloaded once) and evicts that member everywhere.
//!
//! # Invalidation flow
//! A write happens in the store, then the caller hands its result to the cache:
//!
//! 1. `org_changed(&orgs)` (settings save, template change, grant, revoke, custom role) or
//!    `member_changed(org, user)` (membership, role, suspension, user status);
//! 2. the cache increments the L2 counters (one round trip);
//! 3. it evicts its own L1 at once (read-your-writes on this instance);
//! 4. it publishes `perm:org:<org>` / `perm:member:<org>:<user>` on the
//!    [`cache::InvalidationBus`] (Redis channel `ptoc:invalidate`); every instance's
//!    listener (spawned by [`PermissionCache::new`]) evicts its L1 on receipt.
//!
//! Evicting an org's table also retires its member contexts in L1, without enumerating
//! them: each L1 entry records the *epoch* of its org's stripe (1 024 stripes by org id)
//! read before it was loaded, every eviction increments that epoch first, and a member
//! entry counts only if its epoch is at least its org table's and its recorded org
//! generation at least the table's generation. A load that raced with an eviction sees
//! the epoch moved and drops its result from L1 (its caller still gets it).
//!
//! # Read-your-writes
//! Every permission write returns the org's new `permissions_version`: that is the
//! consistency token. A request that sends it back passes it as `min_generation`; a
//! cached table (L1 or L2) with a lower generation is a miss and the table is loaded from
//! the database, and member contexts recorded under an older org generation are reloaded
//! too. (Membership changes have no token: the writer's instance evicts at once, other
//! instances on receipt of the message.)
//!
//! # Failure behaviour
//! Redis is never required for correctness. Every Redis operation is time-bounded
//! ([`CacheSettings::redis_timeout`], default 75 ms) and fails fast while disconnected.
//! The first failure opens a circuit: it is logged once, requests skip Redis (counted as
//! `l2_skipped`) and use L1 and the database, and a background probe pings Redis every
//! [`CacheSettings::redis_retry_interval`]. Counter increments that failed meanwhile are
//! remembered; on recovery the probe performs them (before L2 is read again), re-publishes
//! their invalidations, evicts the whole L1 (messages from other instances may have been
//! missed), closes the circuit and logs the recovery once. When pub/sub messages are lost
//! anyway (another instance's Redis connection broke, the bus lagged — which evicts the
//! whole L1), [`CacheSettings::l1_ttl`] bounds the staleness; [`CacheSettings::l2_ttl`]
//! bounds it if an instance died before it could perform a deferred increment. Database
//! failures are returned as [`CacheError::Load`] and are never cached.
//!
//! L2 targets a standalone Redis (or a primary with replicas): the scripts derive value
//! keys from the counter they read.
//!
//! # Behind the domain's port
//! [`PermissionCache::port`] wraps a [`permissions::PermissionStore`] (the request's audited
//! SeaORM store) into a [`CachedPermissionStore`]: members come from the cache and a
//! successful settings save calls `org_changed` before returning its new version, so a
//! [`permissions::PermissionService`] over it invalidates as part of every write.
//!
//! # Metrics
//! [`PermissionCache::stats`] returns per-layer counters ([`CacheLayerStats`]): L1 hits
//! and misses, L2 hits, misses and skips, database loads, Redis errors, invalidations
//! applied.

mod codec;
mod error;

mod message;
mod permission_cache;
mod port;
mod settings;
mod stats;

pub use error::CacheError;
pub use message::Invalidation;
pub use permission_cache::PermissionCache;
pub use port::CachedPermissionStore;
pub use settings::{CacheSettings, DEFAULT_KEY_PREFIX};
pub use stats::CacheLayerStats;
