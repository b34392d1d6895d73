//! [`SharedGenerations`]: the Redis side of a two-level cache whose values are grouped in
//! *scopes* (one per tenant) and invalidated a whole scope at a time.
//!
//! Each scope has a generation counter (`{prefix}gen:{scope}`, no TTL); values live under
//! keys ending in `g{counter}` (with a TTL). Reading is one round trip (a script reads the
//! counter and the value under it); invalidating a scope is one `INCR`, after which the
//! old values are unreachable and expire by themselves. Every operation is time-bounded;
//! the first failure opens a circuit (callers then skip Redis), increments that failed
//! meanwhile are remembered and performed by [`SharedGenerations::recover`] before the
//! circuit closes again.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use fred::clients::Client;
use fred::prelude::{
    Builder, ClientLike, Config, Error as FredError, ErrorKind, Expiration, KeysInterface,
    LuaInterface, Options, ReconnectPolicy, Value,
};
use fred::types::scripts::Script;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::RedisError;

/// `KEYS[1]` = the generation counter, `ARGV[1]` = the value key without its generation.
/// Returns `{}` when the counter is missing, else `{counter, value or nil}`.
const LOOKUP: &str = r"
local g = redis.call('GET', KEYS[1])
if not g then return {} end
return {g, redis.call('GET', ARGV[1] .. g)}
";

/// `KEYS[1]` = the generation counter, `ARGV[1]` = the seed, `ARGV[2]` = a value key
/// without its generation. Creates the counter if it
/// is missing (deleting a table a previous life of the counter may have left under that
/// number) and returns the counter.
const SEED: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('DEL', ARGV[2] .. ARGV[1])
end
return redis.call('GET', KEYS[1])
";

/// `KEYS` = generation counters. Increments each one that exists (a missing one is
/// seeded from the database by the next reader, which is at least as fresh).
const BUMP: &str = r"
for _, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then redis.call('INCR', k) end
end
return #KEYS
";

/// A Lua script run by `EVALSHA`, falling back to `EVAL` (which caches it) on `NOSCRIPT`.
struct Lua {
    body: &'static str,
    sha: String,
}

impl Lua {
    fn new(body: &'static str) -> Self {
        Self {
            body,
            sha: Script::from_lua(body).sha1().to_string(),
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The generation counter does not exist (never seeded, or lost).
    NoCounter,
    /// The counter, and the value stored under it if any.
    Found {
        /// The scope's generation counter.
        counter: u64,
        /// The value stored under it, if any.
        value: Option<Vec<u8>>,
    },
}

/// Where and how [`SharedGenerations`] talks to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationSettings {
    /// Prefix of every key (`{prefix}gen:{scope}` and the callers' value keys).
    pub key_prefix: String,
    /// How long a stored value lives.
    pub ttl: Duration,
    /// Time bound of one operation (retries included); on expiry it counts as a failure.
    pub timeout: Duration,
    /// While Redis fails, how often the owner's probe should retry it.
    pub retry_interval: Duration,
    /// How long [`SharedGenerations::connect`] waits for the first connection.
    pub connect_wait: Duration,
}

/// Generation counters and generation-numbered values on one Redis (standalone, or a
/// primary: the scripts build value keys from arguments), behind a circuit breaker.
pub struct SharedGenerations {
    client: Client,
    options: Options,
    prefix: String,
    ttl: Duration,
    timeout: Duration,
    retry_interval: Duration,
    lookup: Lua,
    seed: Lua,
    bump: Lua,
    healthy: AtomicBool,
    /// Wakes the probe when Redis starts failing.
    wake: Arc<Notify>,
    /// Scopes whose generation bump failed while Redis was failing: bumped (and their
    /// invalidations re-published by the owner) on recovery, before values are read again.
    pending: Mutex<HashSet<Uuid>>,
    errors: AtomicU64,
}

impl std::fmt::Debug for SharedGenerations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedGenerations")
            .field("prefix", &self.prefix)
            .field("healthy", &self.usable())
            .finish_non_exhaustive()
    }
}

fn bytes_of(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Bytes(b) => Some(b.to_vec()),
        _ => None,
    }
}

fn u64_of(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(i) => u64::try_from(*i).ok(),
        other => std::str::from_utf8(&bytes_of(other)?).ok()?.parse().ok(),
    }
}

impl SharedGenerations {
    /// A client for `url` that connects (and reconnects) in the background. Waits up to
    /// `settings.connect_wait` for the first connection; without one it starts with the
    /// circuit open (the owner's probe takes over).
    ///
    /// # Errors
    /// [`RedisError::InvalidUrl`] when `url` is not a Redis URL.
    pub async fn connect(url: &str, settings: &GenerationSettings) -> Result<Self, RedisError> {
        let mut config =
            Config::from_url(url).map_err(|e| RedisError::InvalidUrl(e.to_string()))?;
        // Keep retrying the first connection too (the default gives up on it).
        config.fail_fast = false;
        let timeout = settings.timeout;
        let client = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(1);
                c.internal_command_timeout = Duration::from_secs(1);
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build()
            .map_err(|e| RedisError::InvalidUrl(e.to_string()))?;
        let _connection = client.connect();
        let l2 = Self {
            client,
            options: Options {
                timeout: Some(timeout),
                max_attempts: Some(1),
                fail_fast: true,
                ..Options::default()
            },
            prefix: settings.key_prefix.clone(),
            ttl: settings.ttl,
            timeout,
            retry_interval: settings.retry_interval,
            lookup: Lua::new(LOOKUP),
            seed: Lua::new(SEED),
            bump: Lua::new(BUMP),
            healthy: AtomicBool::new(true),
            wake: Arc::new(Notify::new()),
            pending: Mutex::new(HashSet::new()),
            errors: AtomicU64::new(0),
        };
        let connected = tokio::time::timeout(settings.connect_wait, l2.client.wait_for_connect())
            .await
            .ok()
            .and_then(Result::ok)
            .is_some();
        if !connected {
            l2.failed("connect", &"no connection yet");
        }
        Ok(l2)
    }

    /// Whether requests may use Redis (the circuit is closed).
    #[must_use]
    pub fn usable(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Failed or timed-out operations since start.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Notified when the circuit opens: the owner's probe waits on it, then calls
    /// [`Self::ping`] every [`Self::retry_interval`] and [`Self::recover`] once it works.
    #[must_use]
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// How often the owner's probe should retry a failing Redis.
    #[must_use]
    pub fn retry_interval(&self) -> Duration {
        self.retry_interval
    }

    /// The key prefix (callers build their value keys under it).
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Records a failure: counts it, opens the circuit, logs once per outage and wakes
    /// the probe.
    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                operation = what,
                error = %error,
                prefix = %self.prefix,
                "redis unavailable; the cache continues on L1 and the database until it is back"
            );
            self.wake.notify_one();
        }
    }

    fn gen_key(&self, scope: Uuid) -> String {
        format!("{}gen:{scope}", self.prefix)
    }

    /// Runs `script` within the time bound.
    async fn run(
        &self,
        script: &Lua,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Value, FredError> {
        let client = self.client.with_options(&self.options);
        let call = async {
            match client
                .evalsha::<Value, _, _, _>(script.sha.as_str(), keys.clone(), args.clone())
                .await
            {
                Err(e) if e.details().starts_with("NOSCRIPT") => {
                    client.eval::<Value, _, _, _>(script.body, keys, args).await
                }
                result => result,
            }
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(FredError::new(
                    ErrorKind::Timeout,
                    "redis time bound exceeded",
                ))
            })
    }

    /// One round trip: the scope's generation counter and the value under
    /// `base{counter}`. `None` when Redis failed.
    pub async fn lookup(&self, scope: Uuid, base: String) -> Option<Lookup> {
        match self
            .run(&self.lookup, vec![self.gen_key(scope)], vec![base])
            .await
        {
            Ok(Value::Array(items)) => match items.as_slice() {
                [] => Some(Lookup::NoCounter),
                [counter, rest @ ..] => match u64_of(counter) {
                    Some(counter) => Some(Lookup::Found {
                        counter,
                        value: rest.first().and_then(bytes_of),
                    }),
                    None => {
                        self.failed("lookup", &"malformed generation counter");
                        None
                    }
                },
            },
            Ok(Value::Null) => Some(Lookup::NoCounter),
            Ok(other) => {
                self.failed("lookup", &format!("unexpected reply {other:?}"));
                None
            }
            Err(e) => {
                self.failed("lookup", &e);
                None
            }
        }
    }

    /// Creates the scope's counter at `seed` unless it exists (deleting a value a former
    /// life of the counter may have left under `base{seed}`); the counter to store under.
    /// `None` when Redis failed.
    pub async fn seed(&self, scope: Uuid, seed: u64, base: String) -> Option<u64> {
        let args = vec![seed.to_string(), base];
        match self.run(&self.seed, vec![self.gen_key(scope)], args).await {
            Ok(value) => u64_of(&value).or_else(|| {
                self.failed("seed", &"malformed generation counter");
                None
            }),
            Err(e) => {
                self.failed("seed", &e);
                None
            }
        }
    }

    /// Stores `value` under `key` for the configured TTL.
    pub async fn store(&self, key: String, value: String) {
        self.store_for(key, value, self.ttl).await;
    }

    /// Stores `value` under `key` for `ttl` (at least a second).
    pub async fn store_for(&self, key: String, value: String, ttl: Duration) {
        let ttl = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let client = self.client.with_options(&self.options);
        let call = client.set::<(), _, _>(key, value, Some(Expiration::EX(ttl)), None, false);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.failed("store", &e),
            Err(_) => self.failed("store", &"redis time bound exceeded"),
        }
    }

    /// Increments the counters of `scopes` in one round trip; whether it worked.
    async fn bump(&self, scopes: &[Uuid]) -> bool {
        let keys = scopes.iter().map(|scope| self.gen_key(*scope)).collect();
        match self.run(&self.bump, keys, Vec::<String>::new()).await {
            Ok(_) => true,
            Err(e) => {
                self.failed("bump", &e);
                false
            }
        }
    }

    /// Bumps the counters of `orgs` (scopes) now, or (Redis failing) remembers them for
    /// the recovery. Returns whether the bump happened now.
    pub async fn bump_or_defer(&self, orgs: &[Uuid]) -> bool {
        loop {
            if self.usable() && self.bump(orgs).await {
                return true;
            }
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            // The recovery flips `healthy` only under this lock with nothing pending, so
            // either it sees these orgs or we see it healthy and bump ourselves.
            if !self.usable() {
                pending.extend(orgs.iter().copied());
                return false;
            }
        }
    }

    /// Round-trips a `PING` within the time bound.
    pub async fn ping(&self) -> bool {
        let client = self.client.with_options(&self.options);
        matches!(
            tokio::time::timeout(self.timeout, client.ping::<String>(None)).await,
            Ok(Ok(_))
        )
    }

    /// After a successful probe: bumps the deferred scopes, then closes the circuit (only
    /// once nothing is pending). Returns the scopes bumped (to re-publish), or `None` when
    /// Redis failed again.
    pub async fn recover(&self) -> Option<Vec<Uuid>> {
        let mut flushed = Vec::new();
        loop {
            let batch: Vec<Uuid> = {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                if pending.is_empty() {
                    self.healthy.store(true, Ordering::Release);
                    return Some(flushed);
                }
                pending.drain().collect()
            };
            if !self.bump(&batch).await {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                pending.extend(batch);
                return None;
            }
            flushed.extend(batch);
        }
    }

    /// Closes the connection (best effort, in the background).
    pub fn shutdown(&self) {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            handle.spawn(async move {
                let _ = client.quit().await;
            });
        }
    }
}

/// The recovery probe of a cache that owns a [`SharedGenerations`] (`l2` finds it in the
/// owner): each time the circuit opens, retries Redis every retry interval until a `PING`
/// works and the deferred bumps are done, then calls `recovered` with the owner and the
/// scopes bumped (to retire its L1 and re-publish them). Ends when the owner is dropped.
pub async fn probe<T, F>(
    owner: Weak<T>,
    l2: for<'a> fn(&'a T) -> Option<&'a SharedGenerations>,
    wake: Arc<Notify>,
    recovered: impl Fn(Arc<T>, Vec<Uuid>) -> F,
) where
    F: Future<Output = ()>,
{
    loop {
        wake.notified().await;
        loop {
            let Some(interval) = owner
                .upgrade()
                .and_then(|o| l2(&o).map(SharedGenerations::retry_interval))
            else {
                return;
            };
            tokio::time::sleep(interval).await;
            let Some(strong) = owner.upgrade() else {
                return;
            };
            let Some(generations) = l2(&strong) else {
                return;
            };
            if !generations.ping().await {
                continue;
            }
            let Some(flushed) = generations.recover().await else {
                continue;
            };
            recovered(strong, flushed).await;
            break;
        }
    }
}
