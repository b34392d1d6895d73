//! The Redis L2: generation counters, values, the circuit breaker and deferred bumps.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fred::clients::Client;
use fred::prelude::{
    Builder, ClientLike, Config, Error as FredError, ErrorKind, Expiration, KeysInterface,
    LuaInterface, Options, ReconnectPolicy, Value,
};
use fred::types::scripts::Script;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::CacheError;
use crate::settings::CacheSettings;
use crate::stats::{Counters, bump};

/// `KEYS[1]` = the generation counter, `ARGV[1]` = the value key without its generation.
/// Returns `{}` when the counter is missing, else `{counter, value or nil}`.
const LOOKUP: &str = r"
local g = redis.call('GET', KEYS[1])
if not g then return {} end
return {g, redis.call('GET', ARGV[1] .. g)}
";

/// `KEYS[1]` = the generation counter, `ARGV[1]` = the seed (the org's database version),
/// `ARGV[2]` = the compiled table's key without its generation. Creates the counter if it
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
pub(crate) enum Lookup {
    /// The generation counter does not exist (never seeded, or lost).
    NoCounter,
    /// The counter, and the value stored under it if any.
    Found {
        counter: u64,
        value: Option<Vec<u8>>,
    },
}

/// The shared L2 on one Redis (standalone; the scripts build value keys from arguments).
pub(crate) struct L2 {
    client: Client,
    options: Options,
    prefix: String,
    ttl: Duration,
    timeout: Duration,
    pub(crate) retry_interval: Duration,
    lookup: Lua,
    seed: Lua,
    bump: Lua,
    healthy: AtomicBool,
    /// Wakes the probe when Redis starts failing.
    pub(crate) wake: Arc<Notify>,
    /// Orgs whose generation bump failed while Redis was failing: bumped (and their
    /// invalidations re-published) on recovery, before L2 is read again.
    pending: Mutex<HashSet<Uuid>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for L2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2")
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

impl L2 {
    /// A client for `url` that connects (and reconnects) in the background. Waits up to
    /// `settings.redis_connect_wait` for the first connection; without one it starts
    /// unhealthy (the probe takes over).
    pub(crate) async fn connect(
        url: &str,
        settings: &CacheSettings,
        counters: Arc<Counters>,
    ) -> Result<Self, CacheError> {
        let mut config =
            Config::from_url(url).map_err(|e| CacheError::InvalidRedisUrl(e.to_string()))?;
        // Keep retrying the first connection too (the default gives up on it).
        config.fail_fast = false;
        let timeout = settings.redis_timeout;
        let client = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(1);
                c.internal_command_timeout = Duration::from_secs(1);
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build()
            .map_err(|e| CacheError::InvalidRedisUrl(e.to_string()))?;
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
            ttl: settings.l2_ttl,
            timeout,
            retry_interval: settings.redis_retry_interval,
            lookup: Lua::new(LOOKUP),
            seed: Lua::new(SEED),
            bump: Lua::new(BUMP),
            healthy: AtomicBool::new(true),
            wake: Arc::new(Notify::new()),
            pending: Mutex::new(HashSet::new()),
            counters,
        };
        let connected =
            tokio::time::timeout(settings.redis_connect_wait, l2.client.wait_for_connect())
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
    pub(crate) fn usable(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Records a failure: counts it, opens the circuit, logs once per outage and wakes
    /// the probe.
    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        bump(&self.counters.redis_errors);
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                operation = what,
                error = %error,
                "redis unavailable; permission cache continues on L1 and the database until it is back"
            );
            self.wake.notify_one();
        }
    }

    fn gen_key(&self, org: Uuid) -> String {
        format!("{}gen:{org}", self.prefix)
    }

    /// The key of `org`'s compiled table without its generation suffix.
    pub(crate) fn org_base(&self, org: Uuid) -> String {
        format!("{}org:{org}:g", self.prefix)
    }

    /// The key of a member context without its generation suffix.
    pub(crate) fn member_base(&self, org: Uuid, user: Uuid) -> String {
        format!("{}member:{org}:{user}:g", self.prefix)
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

    /// One round trip: the org's generation counter and the value under `base{counter}`.
    /// `None` when Redis failed.
    pub(crate) async fn lookup(&self, org: Uuid, base: String) -> Option<Lookup> {
        match self
            .run(&self.lookup, vec![self.gen_key(org)], vec![base])
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

    /// Creates the org's counter from `version` unless it exists; the counter to store
    /// under. `None` when Redis failed.
    pub(crate) async fn seed(&self, org: Uuid, version: u64) -> Option<u64> {
        let args = vec![version.to_string(), self.org_base(org)];
        match self.run(&self.seed, vec![self.gen_key(org)], args).await {
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

    /// Stores `value` under `key` for the L2 TTL.
    pub(crate) async fn store(&self, key: String, value: String) {
        let ttl = i64::try_from(self.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let client = self.client.with_options(&self.options);
        let call = client.set::<(), _, _>(key, value, Some(Expiration::EX(ttl)), None, false);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.failed("store", &e),
            Err(_) => self.failed("store", &"redis time bound exceeded"),
        }
    }

    /// Increments the counters of `orgs` in one round trip; whether it worked.
    pub(crate) async fn bump(&self, orgs: &[Uuid]) -> bool {
        let keys = orgs.iter().map(|org| self.gen_key(*org)).collect();
        match self.run(&self.bump, keys, Vec::<String>::new()).await {
            Ok(_) => true,
            Err(e) => {
                self.failed("bump", &e);
                false
            }
        }
    }

    /// Bumps `orgs` now, or (Redis failing) remembers them for the recovery. Returns
    /// whether the bump happened now.
    pub(crate) async fn bump_or_defer(&self, orgs: &[Uuid]) -> bool {
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
    pub(crate) async fn ping(&self) -> bool {
        let client = self.client.with_options(&self.options);
        matches!(
            tokio::time::timeout(self.timeout, client.ping::<String>(None)).await,
            Ok(Ok(_))
        )
    }

    /// After a successful probe: bumps the deferred orgs, then closes the circuit (only
    /// once nothing is pending). Returns the orgs bumped (to re-publish), or `None` when
    /// Redis failed again.
    pub(crate) async fn recover(&self) -> Option<Vec<Uuid>> {
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
    pub(crate) fn shutdown(&self) {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            handle.spawn(async move {
                let _ = client.quit().await;
            });
        }
    }
}
