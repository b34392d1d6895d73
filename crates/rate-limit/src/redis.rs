//! The shared store: bucket TATs and back-off counters in Redis, every decision one Lua
//! script (atomic on the server: no read-modify-write race between instances), run with
//! `EVALSHA` and loaded with `EVAL` on `NOSCRIPT`.

use std::time::Duration;

use fred::clients::Client;
use fred::prelude::{
    Builder, ClientLike, Config, Error as FredError, ErrorKind, LuaInterface, Options,
    ReconnectPolicy, Value,
};
use fred::types::scripts::Script;

use crate::backoff::BackoffPolicy;
use crate::gcra::{Decision, decide};
use crate::quota::Quota;
use crate::store::{RateStore, StoreError};

/// `KEYS[i]` = the TAT of bucket i (µs); `ARGV[1]` = now (µs), `ARGV[2i]`/`ARGV[2i+1]`
/// = bucket i's emission interval and capacity (µs). The arithmetic of
/// [`crate::gcra::decide`]: if every bucket has room, stores each advanced TAT (expiring
/// once it falls behind now). Returns `{allowed, tat_1, …, tat_n}` with the TATs as read
/// (`0`: none), from which the caller derives the headers with the same function.
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local read = {}
local allowed = 1
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  read[i] = tat
  if tat < now then tat = now end
  if tat + tonumber(ARGV[2 * i]) - now > tonumber(ARGV[2 * i + 1]) then allowed = 0 end
end
if allowed == 1 then
  for i, key in ipairs(KEYS) do
    local tat = read[i]
    if tat < now then tat = now end
    local new = tat + tonumber(ARGV[2 * i])
    redis.call('SET', key, string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
  end
end
local out = {allowed}
for i = 1, #read do out[i + 1] = string.format('%.0f', read[i]) end
return out
";

/// `KEYS[i]` = back-off hash of key i (`f` attempts counted, `u` next attempt not
/// before, µs); `ARGV[1]` = now (µs), then per key four numbers: free attempts, base
/// wait (µs), max wait (µs), window (ms). If no key makes the attempt wait, counts it on
/// every key and sets the wait of [`BackoffPolicy::lockout`]; the check and the count are
/// one script, so concurrent attempts cannot all pass the check. Returns `{1, 0}` when
/// reserved, `{0, wait µs}` when refused (nothing counted).
const RESERVE: &str = r"
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local u = tonumber(redis.call('HGET', key, 'u') or '0') or 0
  if u - now > wait then wait = u - now end
end
if wait > 0 then return {0, string.format('%.0f', wait)} end
for i, key in ipairs(KEYS) do
  local j = 4 * (i - 1) + 2
  local free, base, max, window = tonumber(ARGV[j]), tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3])
  local n = redis.call('HINCRBY', key, 'f', 1)
  local lock = 0
  if n >= free then
    local d = base * 2 ^ math.min(n - free, 40)
    if d > max then d = max end
    lock = now + d
    redis.call('HSET', key, 'u', string.format('%.0f', lock))
  end
  local keep = window
  if lock > now then keep = keep + math.ceil((lock - now) / 1000) end
  redis.call('PEXPIRE', key, keep)
end
return {1, 0}
";

/// `KEYS[i]` = back-off hash of key i; `ARGV[i]` = its free attempts. Refunds one
/// reserved attempt on each (a forgotten key stays forgotten) and lifts the wait once the
/// count is under the free attempts again.
const RELEASE: &str = r"
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('HGET', key, 'f') or '0') or 0
  if n > 0 then
    n = redis.call('HINCRBY', key, 'f', -1)
    if n <= 0 then
      redis.call('DEL', key)
    elseif n < tonumber(ARGV[i]) then
      redis.call('HDEL', key, 'u')
    end
  end
end
return 0
";

/// A Lua script run by `EVALSHA`, falling back to `EVAL` (which caches it) on
/// `NOSCRIPT`.
#[derive(Debug)]
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

/// How the Redis client behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisSettings {
    /// Time bound of one operation; on expiry it counts as a failure. Default 75 ms.
    pub timeout: Duration,
    /// How long [`RedisStore::connect`] waits for the first connection. Default 1 s.
    pub connect_wait: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(75),
            connect_wait: Duration::from_secs(1),
        }
    }
}

/// The Redis store (standalone, or a cluster: one request's keys share a hash tag).
#[derive(Debug)]
pub struct RedisStore {
    client: Client,
    options: Options,
    timeout: Duration,
    gcra: Lua,
    reserve: Lua,
    release: Lua,
}

fn parse_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(i) => u64::try_from(*i).ok(),
        Value::String(s) => s.parse().ok(),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::Null => Some(0),
        _ => None,
    }
}

fn numbers(value: Value) -> Result<Vec<u64>, StoreError> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| parse_u64(v).ok_or_else(|| StoreError(format!("unexpected reply {v:?}"))))
            .collect(),
        other => Err(StoreError(format!("unexpected reply {other:?}"))),
    }
}

impl RedisStore {
    /// A client for `url` that connects (and reconnects) in the background. Returns
    /// whether the first connection came up within `settings.connect_wait` too.
    ///
    /// # Errors
    /// [`StoreError`] when `url` is not a Redis URL.
    pub async fn connect(url: &str, settings: RedisSettings) -> Result<(Self, bool), StoreError> {
        if !url
            .split_once("://")
            .is_some_and(|(scheme, _)| scheme.starts_with("redis"))
        {
            return Err(StoreError(
                "invalid redis url: expected redis:// or rediss://".into(),
            ));
        }
        let mut config =
            Config::from_url(url).map_err(|e| StoreError(format!("invalid redis url: {e}")))?;
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
            .map_err(|e| StoreError(format!("invalid redis url: {e}")))?;
        let _connection = client.connect();
        let connected = tokio::time::timeout(settings.connect_wait, client.wait_for_connect())
            .await
            .ok()
            .and_then(Result::ok)
            .is_some();
        let store = Self {
            client,
            options: Options {
                timeout: Some(timeout),
                max_attempts: Some(1),
                fail_fast: true,
                ..Options::default()
            },
            timeout,
            gcra: Lua::new(GCRA),
            reserve: Lua::new(RESERVE),
            release: Lua::new(RELEASE),
        };
        Ok((store, connected))
    }

    /// Runs `script` within the time bound.
    async fn run(
        &self,
        script: &Lua,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Value, StoreError> {
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
            .map_err(|e| StoreError(e.to_string()))
    }

    /// Round-trips a `PING` within the time bound.
    pub async fn ping(&self) -> bool {
        let client = self.client.with_options(&self.options);
        matches!(
            tokio::time::timeout(self.timeout, client.ping::<String>(None)).await,
            Ok(Ok(_))
        )
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

impl RateStore for RedisStore {
    async fn acquire(
        &self,
        now_us: u64,
        keys: &[String],
        quotas: &[Quota],
    ) -> Result<Decision, StoreError> {
        if keys.is_empty() {
            return Ok(Decision::unlimited());
        }
        let mut args = Vec::with_capacity(1 + 2 * quotas.len());
        args.push(now_us.to_string());
        for quota in quotas {
            args.push(quota.interval_us().to_string());
            args.push(quota.capacity_us().to_string());
        }
        let reply = numbers(self.run(&self.gcra, keys.to_vec(), args).await?)?;
        let Some((&allowed, read)) = reply.split_first() else {
            return Err(StoreError("empty reply".into()));
        };
        if read.len() != keys.len() {
            return Err(StoreError(format!(
                "{} TATs for {} keys",
                read.len(),
                keys.len()
            )));
        }
        let tats: Vec<Option<u64>> = read.iter().map(|&t| (t > 0).then_some(t)).collect();
        let mut decision = decide(now_us, quotas, &tats);
        if decision.allowed != (allowed == 1) {
            // Same integers, same arithmetic: cannot happen; the server's word counts.
            tracing::warn!("rate-limit script and local arithmetic disagree");
            decision.allowed = allowed == 1;
        }
        Ok(decision)
    }

    async fn reserve(
        &self,
        now_us: u64,
        keys: &[(String, BackoffPolicy)],
    ) -> Result<Option<Duration>, StoreError> {
        if keys.is_empty() {
            return Ok(None);
        }
        let mut args = vec![now_us.to_string()];
        for (_, policy) in keys {
            args.extend(policy.script_args());
        }
        let names = keys.iter().map(|(k, _)| k.clone()).collect();
        match numbers(self.run(&self.reserve, names, args).await?)?.as_slice() {
            [1, _] => Ok(None),
            [0, wait] => Ok(Some(Duration::from_micros((*wait).max(1)))),
            other => Err(StoreError(format!("unexpected reply {other:?}"))),
        }
    }

    async fn release(
        &self,
        _now_us: u64,
        keys: &[(String, BackoffPolicy)],
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let names = keys.iter().map(|(k, _)| k.clone()).collect();
        let args = keys
            .iter()
            .map(|(_, p)| p.free_failures.to_string())
            .collect();
        self.run(&self.release, names, args).await.map(|_| ())
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        use fred::prelude::KeysInterface;
        let client = self.client.with_options(&self.options);
        tokio::time::timeout(self.timeout, client.del::<i64, _>(key))
            .await
            .map_err(|_| StoreError("redis time bound exceeded".into()))?
            .map(|_| ())
            .map_err(|e| StoreError(e.to_string()))
    }
}
