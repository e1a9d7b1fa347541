//! The shared limiter: every instance pointing at one Redis enforces one set of limits.
//!
//! One Lua script (`ACQUIRE`, sent with EVALSHA) reads every bucket and slot of a request,
//! decides, and consumes all or nothing, atomically: one round trip per request, whatever the
//! number of checks. The time is Redis's own (`TIME`), so instances with skewed clocks agree.
//! Redis 7 replicates a script by its effects, so reading the clock before writing is allowed.
//!
//! Keys: `<prefix>:<scope>:<kind>:<id>` (a hash: `l` level, `t` time in ms), and
//! `<prefix>:<scope>:parallel:<id>` (a sorted set of leases). Every bucket key expires once its
//! level has drained (PEXPIRE), so idle ids leave nothing behind. The prefix carries one hash tag
//! (`{sy}` by default) so that every key lives in one Redis Cluster slot and the script, which
//! touches a request's key, team and user buckets together, is accepted by a cluster. The price:
//! all rate-limit traffic goes to the one shard that owns the slot. A request's buckets cannot be
//! spread by subject (a team bucket is shared by many keys), and a single shard serves well over
//! 100k scripts/s, far beyond what one gateway fleet asks of its limiter.
//!
//! Max parallel: a slot is a lease in a sorted set, scored by its expiry. Releasing removes the
//! lease (ZREM, on a spawned task, since `Drop` cannot wait); a lease that is never released,
//! because its instance crashed or Redis was unreachable at release time, expires after
//! [`RedisOptions::lease_ttl`] and stops counting. Make the TTL longer than the longest request
//! the gateway lets run (a streaming completion included): a lease that expires while its request
//! is still running lets one extra request in.
//!
//! Redis down: a call waits at most [`RedisOptions::call_timeout`]; on a timeout or an error the
//! request is answered by a [`LocalLimiter`] (limits then hold per instance), the limiter turns
//! unhealthy, a warning is logged once for the outage, and later requests go to the local limiter
//! at once, without waiting on Redis, until a background probe finds Redis again (the connection
//! manager reconnects by itself). A script that timed out may still have run in Redis: the request
//! is then counted twice, in Redis and locally, which errs on the side of the limit.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult, Script};

use super::{
    refusal, token_delta, Check, Denial, Grant, GuardInner, Kind, Limiter, LocalLimiter, Origin,
    Quota, Slot, SlotGuard, MAX_LIMIT,
};

/// Checks and consumes every bucket and slot of one request, all or nothing.
const ACQUIRE: &str = r#"
-- KEYS: n bucket keys, then m slot keys, all under one hash tag.
-- ARGV: n, m, lease member, lease ttl (ms), then limit and cost of each bucket, then max of each slot.
-- Returns {ok, the level of each bucket, the count in flight of each slot}: levels after consuming
-- when ok = 1, drained but unconsumed when ok = 0. Integers only, all below 2^53.
if redis.replicate_commands then redis.replicate_commands() end
local P = 60000
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])
local member, ttl = ARGV[3], tonumber(ARGV[4])
local out = {1}
for i = 1, n do
  local limit, cost = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
  local rate = math.max(limit, 1)
  local state = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = tonumber(state[1]) or 0
  local elapsed = math.max(now - (tonumber(state[2]) or now), 0)
  if elapsed * rate >= level then level = 0 else level = level - elapsed * rate end
  if cost > limit or level + cost * P > limit * P then out[1] = 0 end
  out[1 + i] = level
end
for j = 1, m do
  local key = KEYS[n + j]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local held = redis.call('ZCARD', key)
  if held >= tonumber(ARGV[4 + 2 * n + j]) then out[1] = 0 end
  out[1 + n + j] = held
end
if out[1] == 1 then
  for i = 1, n do
    local limit, cost = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
    if cost > 0 then
      local level = out[1 + i] + cost * P
      out[1 + i] = level
      redis.call('HSET', KEYS[i], 'l', string.format('%.0f', level), 't', string.format('%.0f', now))
      local empty_in = math.ceil(level / math.max(limit, 1))
      redis.call('PEXPIRE', KEYS[i], string.format('%.0f', empty_in + 1000))
    end
  end
  for j = 1, m do
    redis.call('ZADD', KEYS[n + j], string.format('%.0f', now + ttl), member)
    redis.call('PEXPIRE', KEYS[n + j], ttl)
  end
end
return out
"#;

/// Corrects token reservations: adds a signed delta (tokens) to each bucket.
const RECONCILE: &str = r#"
-- KEYS: bucket keys. ARGV: limit and signed delta of each.
if redis.replicate_commands then redis.replicate_commands() end
local P, MAX = 60000, 4503599627370496
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
for i = 1, #KEYS do
  local limit, delta = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local rate = math.max(limit, 1)
  local state = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = tonumber(state[1]) or 0
  local elapsed = math.max(now - (tonumber(state[2]) or now), 0)
  if elapsed * rate >= level then level = 0 else level = level - elapsed * rate end
  level = math.min(math.max(level + delta * P, 0), MAX)
  if level == 0 then
    redis.call('DEL', KEYS[i])
  else
    redis.call('HSET', KEYS[i], 'l', string.format('%.0f', level), 't', string.format('%.0f', now))
    redis.call('PEXPIRE', KEYS[i], string.format('%.0f', math.ceil(level / rate) + 1000))
  end
end
return #KEYS
"#;

/// Settings of a [`RedisLimiter`].
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// Prepended to every key; must contain a hash tag (`{...}`), see the module doc.
    pub key_prefix: String,
    /// The longest a request waits on Redis before the local limiter answers it.
    pub call_timeout: Duration,
    /// The longest `connect`, a background probe, a slot release or a reconciliation waits.
    pub connect_timeout: Duration,
    /// How long a parallel-request slot counts if it is never released (crashed instance).
    pub lease_ttl: Duration,
    /// How often an unhealthy limiter checks whether Redis is back.
    pub probe_interval: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            key_prefix: "{sy}:rl".to_owned(),
            call_timeout: Duration::from_millis(75),
            connect_timeout: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(15 * 60),
            probe_interval: Duration::from_millis(500),
        }
    }
}

/// Why a [`RedisLimiter`] could not be made. An unreachable Redis is not one of them: the limiter
/// starts in fallback and connects when Redis comes.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid redis_url: {0}")]
    Url(#[source] RedisError),
    #[error("the redis rate limiter must be made on a tokio runtime")]
    NoRuntime,
    #[error("redis key prefix {0:?} needs a hash tag such as {{sy}}, so that Redis Cluster accepts the rate-limit script")]
    Prefix(String),
}

/// The Redis-backed [`Limiter`], with a [`LocalLimiter`] fallback. Cloning shares it.
#[derive(Clone)]
pub struct RedisLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    acquire: Script,
    reconcile: Script,
    options: RedisOptions,
    local: LocalLimiter,
    health: crate::policy::redis_health::RedisHealth,
    fallbacks: AtomicU64,
    /// Leases are `<instance>:<n>`: unique across instances without coordination.
    instance: u64,
    next_lease: AtomicU64,
    runtime: tokio::runtime::Handle,
}

enum Failure {
    Timeout(Duration),
    Redis(RedisError),
    Reply(usize),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout(after) => write!(f, "no answer within {after:?}"),
            Failure::Redis(error) => write!(f, "{error}"),
            Failure::Reply(len) => write!(f, "unexpected script reply of {len} values"),
        }
    }
}

pub(crate) fn has_hash_tag(prefix: &str) -> bool {
    prefix
        .find('{')
        .and_then(|open| prefix[open + 1..].find('}'))
        .is_some_and(|len| len > 0)
}

impl RedisLimiter {
    /// Makes a limiter on `url` (`redis://[:password@]host:port[/db]`). Must run on a tokio runtime.
    /// Waits at most `connect_timeout` for Redis; if Redis is unreachable, the limiter starts
    /// unhealthy, answering from its local fallback, and connects when Redis comes.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, ConnectError> {
        if !has_hash_tag(&options.key_prefix) {
            return Err(ConnectError::Prefix(options.key_prefix));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConnectError::NoRuntime)?;
        let client = redis::Client::open(url).map_err(ConnectError::Url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.connect_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn =
            ConnectionManager::new_lazy_with_config(client, config).map_err(ConnectError::Url)?;
        let inner = Arc::new(Inner {
            conn,
            acquire: Script::new(ACQUIRE),
            reconcile: Script::new(RECONCILE),
            options,
            local: LocalLimiter::new(),
            health: crate::policy::redis_health::RedisHealth::new("rate limits"),
            fallbacks: AtomicU64::new(0),
            instance: fastrand::u64(..),
            next_lease: AtomicU64::new(0),
            runtime,
        });
        if let Err(failure) = inner.load_scripts().await {
            inner.mark_down(failure);
        }
        Ok(RedisLimiter { inner })
    }

    /// How many times Redis became unreachable (each outage logged one warning).
    pub fn outages(&self) -> u64 {
        self.inner.health.outages()
    }
}

impl Inner {
    fn bucket_key(&self, check: &Check<'_>) -> String {
        let (prefix, scope) = (&self.options.key_prefix, check.scope.as_str());
        format!("{prefix}:{scope}:{}:{}", check.kind.as_str(), check.id)
    }

    fn slot_key(&self, slot: &Slot<'_>) -> String {
        let (prefix, scope) = (&self.options.key_prefix, slot.scope.as_str());
        format!("{prefix}:{scope}:parallel:{}", slot.id)
    }

    /// Loads both scripts (EVALSHA then never needs a second round trip) — also the health probe.
    async fn load_scripts(&self) -> Result<(), Failure> {
        let mut conn = self.conn.clone();
        let load = async {
            self.acquire.load_async(&mut conn).await?;
            self.reconcile.load_async(&mut conn).await
        };
        match tokio::time::timeout(self.options.connect_timeout, load).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(Failure::Redis(error)),
            Err(_) => Err(Failure::Timeout(self.options.connect_timeout)),
        }
    }

    async fn acquire(
        self: &Arc<Self>,
        checks: &[Check<'_>],
        slots: &[Slot<'_>],
    ) -> Result<Grant, Denial> {
        if checks.is_empty() && slots.is_empty() {
            return Ok(Grant::empty());
        }
        if self.health.is_up() {
            let slot_keys: Vec<String> = slots.iter().map(|s| self.slot_key(s)).collect();
            let member = if slots.is_empty() {
                String::new()
            } else {
                let n = self.next_lease.fetch_add(1, Ordering::Relaxed);
                format!("{:016x}:{n}", self.instance)
            };
            let call = self.eval_acquire(checks, slots, &slot_keys, &member);
            let failure = match tokio::time::timeout(self.options.call_timeout, call).await {
                Ok(Ok(reply)) if reply.len() == 1 + checks.len() + slots.len() => {
                    return self.decide(checks, slots, &reply, slot_keys, member);
                }
                Ok(Ok(reply)) => Failure::Reply(reply.len()),
                Ok(Err(error)) => Failure::Redis(error),
                Err(_) => Failure::Timeout(self.options.call_timeout),
            };
            self.mark_down(failure);
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.local.try_acquire(checks, slots)
    }

    async fn eval_acquire(
        &self,
        checks: &[Check<'_>],
        slots: &[Slot<'_>],
        slot_keys: &[String],
        member: &str,
    ) -> RedisResult<Vec<u64>> {
        let mut call = self.acquire.prepare_invoke();
        for check in checks {
            call.key(self.bucket_key(check));
        }
        for key in slot_keys {
            call.key(key);
        }
        let ttl_ms = self.options.lease_ttl.as_millis().max(1) as u64;
        call.arg(checks.len())
            .arg(slots.len())
            .arg(member)
            .arg(ttl_ms);
        for check in checks {
            // A cost above the limit is refused whatever its size; clamping keeps Lua exact.
            call.arg(check.clamped_limit())
                .arg(check.cost.min(MAX_LIMIT + 1));
        }
        for slot in slots {
            call.arg(slot.max);
        }
        let mut conn = self.conn.clone();
        call.invoke_async(&mut conn).await
    }

    fn decide(
        self: &Arc<Self>,
        checks: &[Check<'_>],
        slots: &[Slot<'_>],
        reply: &[u64],
        slot_keys: Vec<String>,
        member: String,
    ) -> Result<Grant, Denial> {
        let levels = &reply[1..1 + checks.len()];
        if reply[0] == 0 {
            let held = &reply[1 + checks.len()..];
            // The script and `refusal` apply the same test to the same numbers, so `None` means a
            // request that repeats a check or a slot; the script's answer stands.
            return Err(refusal(checks, |i| levels[i], slots, |j| held[j])
                .unwrap_or_else(|| Denial::unexplained(checks, slots)));
        }
        let quotas = checks
            .iter()
            .zip(levels)
            .map(|(check, &level)| Quota::from_level(check, level))
            .collect();
        let slots = if slot_keys.is_empty() {
            SlotGuard::none()
        } else {
            SlotGuard(GuardInner::Redis(RedisLease {
                inner: Arc::clone(self),
                keys: slot_keys,
                member,
            }))
        };
        Ok(Grant {
            quotas,
            slots,
            origin: Origin::Redis,
        })
    }

    /// Records a failed call: the first one of an outage warns and starts the probe.
    fn mark_down(self: &Arc<Self>, failure: Failure) {
        if self.health.mark_down(&failure) {
            self.runtime.spawn(probe(Arc::downgrade(self)));
        }
    }
}

/// Waits until Redis answers again, then turns the limiter healthy. Ends when the limiter is dropped.
async fn probe(inner: Weak<Inner>) {
    loop {
        let Some(interval) = inner.upgrade().map(|i| i.options.probe_interval) else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(limiter) = inner.upgrade() else {
            return;
        };
        if limiter.load_scripts().await.is_ok() {
            limiter
                .health
                .mark_up(limiter.fallbacks.load(Ordering::Relaxed));
            return;
        }
    }
}

impl Limiter for RedisLimiter {
    fn acquire<'a>(
        &'a self,
        checks: &'a [Check<'a>],
        slots: &'a [Slot<'a>],
    ) -> BoxFuture<'a, Result<Grant, Denial>> {
        Box::pin(self.inner.acquire(checks, slots))
    }

    fn reconcile(&self, grant: &Grant, checks: &[Check<'_>], actual_tokens: u64) {
        if grant.origin == Origin::Local {
            return self.inner.local.reconcile_tokens(checks, actual_tokens);
        }
        let corrections: Vec<(String, u64, i64)> = checks
            .iter()
            .filter(|check| check.kind == Kind::Tokens)
            .map(|check| {
                let delta = token_delta(actual_tokens, check.cost);
                let delta = delta.clamp(-(MAX_LIMIT as i64), MAX_LIMIT as i64);
                (self.inner.bucket_key(check), check.clamped_limit(), delta)
            })
            .filter(|(_, _, delta)| *delta != 0)
            .collect();
        if corrections.is_empty() {
            return;
        }
        let inner = Arc::clone(&self.inner);
        self.inner.runtime.spawn(async move {
            let mut call = inner.reconcile.prepare_invoke();
            for (key, limit, delta) in &corrections {
                call.key(key).arg(limit).arg(delta);
            }
            let mut conn = inner.conn.clone();
            let answer = tokio::time::timeout(
                inner.options.connect_timeout,
                call.invoke_async::<u64>(&mut conn),
            )
            .await;
            match answer {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => inner.mark_down(Failure::Redis(error)),
                Err(_) => inner.mark_down(Failure::Timeout(inner.options.connect_timeout)),
            }
        });
    }

    fn healthy(&self) -> bool {
        self.inner.health.is_up()
    }

    fn fallbacks(&self) -> u64 {
        self.inner.fallbacks.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("key_prefix", &self.inner.options.key_prefix)
            .field("healthy", &self.healthy())
            .field("fallbacks", &self.fallbacks())
            .finish()
    }
}

/// Parallel-request slots taken in Redis; released on drop by a spawned ZREM.
pub(crate) struct RedisLease {
    inner: Arc<Inner>,
    keys: Vec<String>,
    member: String,
}

impl RedisLease {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

impl Drop for RedisLease {
    fn drop(&mut self) {
        let inner = Arc::clone(&self.inner);
        let keys = std::mem::take(&mut self.keys);
        let member = std::mem::take(&mut self.member);
        self.inner.runtime.spawn(async move {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("ZREM").arg(key).arg(&member).ignore();
            }
            let mut conn = inner.conn.clone();
            let timeout = inner.options.connect_timeout;
            let released = tokio::time::timeout(timeout, pipe.query_async::<()>(&mut conn)).await;
            if !matches!(released, Ok(Ok(()))) {
                tracing::debug!(
                    lease = %member,
                    "could not release a parallel-request slot; it expires after lease_ttl"
                );
            }
        });
    }
}

impl fmt::Debug for RedisLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLease")
            .field("keys", &self.keys)
            .field("member", &self.member)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::has_hash_tag;

    #[test]
    fn the_prefix_needs_a_hash_tag() {
        assert!(has_hash_tag("{sy}:rl"));
        assert!(has_hash_tag("app:{sy}"));
        assert!(!has_hash_tag("sy:rl"));
        assert!(!has_hash_tag("{}:rl"));
        assert!(!has_hash_tag("}{"));
    }
}
