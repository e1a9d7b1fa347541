//! The shared ledger: every instance pointing at one Redis holds one account per budget.
//!
//! A request's reservation is one Lua script (`RESERVE`, sent with EVALSHA) over all its budgets
//! (key, team, user, end user): it reads every account, applies the rules of the parent module
//! (refuse when spend has reached the budget; refuse while others are in flight when the worst
//! case does not fit; else admit), and reserves on all or on none, atomically, in one round
//! trip. Settling is one script too (`SETTLE`), sent from a spawned task, since it happens when
//! a request is finished and nothing waits for it.
//!
//! Keys, all under one hash tag (`{sy}` by default) so that Redis Cluster accepts the scripts,
//! which touch a request's key, team, user and end-user accounts together (the limiter's module
//! doc says what that costs):
//! - `<prefix>:<scope>:spend:<id>`, a hash: `w` the window start (ms; 0 for a budget that never
//!   resets), `s` the spend in that window, `r` the sum of the worst cases reserved;
//! - `<prefix>:<scope>:holds:<id>`, a sorted set of the reservations in flight, scored by when
//!   they expire. A member is `<instance>:<n>:<worst case>`, so the script that drops an expired
//!   one knows what to take off `r`; the number in flight is the set's size.
//!
//! Windows: the caller passes the window start, which every instance computes alike
//! (`Period::window`); a script that finds an older window stored starts the spend over. The
//! account of a budget with a duration expires (PEXPIREAT) [`RedisLedgerOptions::hold_ttl`]
//! plus an hour after its window ends; a lifetime budget's account never expires. A holds set
//! expires with its newest hold.
//!
//! Crashed instances: a reservation that is never settled (its instance died, or Redis was
//! unreachable when it finished) expires after [`RedisLedgerOptions::hold_ttl`] (15 minutes by
//! default): the next script touching the account drops it and its worst case stops counting.
//! Make the TTL longer than the longest request (a long stream included): a hold that expires
//! while its request still runs lets more in than the budget has left.
//!
//! Money: nano-dollars, integers. Lua numbers are doubles, exact below 2^53 nano-dollars (about
//! $9 million): every amount sent to a script is clamped below that, comparisons are made on
//! doubles, and spend and reservations are changed with HINCRBY (exact 64-bit integers in
//! Redis), so a sum is never rounded.
//!
//! Redis down or slow: a reservation waits at most [`RedisLedgerOptions::call_timeout`]; then
//! the request is answered by this instance's own [`Ledger`] (budgets hold per instance), the
//! ledger turns unhealthy, a warning is logged once for the outage, and later requests go to the
//! local ledger at once until a background probe finds Redis again. A local reservation is
//! settled locally. A settlement Redis does not take is logged and counted, and its cost is
//! added to the local ledger; its hold expires after the TTL. A settlement that timed out may
//! still have run: the request is then counted in both places, which errs on the side of the
//! budget. A reservation that timed out may have run too: its hold is taken back by a spawned
//! settlement of nothing (else it expires after the TTL). At shutdown the server waits a moment
//! for the settlements still on their way ([`RedisLedger::drain`]).
//! The local ledger is seeded from the spend logs like the shared one, so a fallback starts from
//! what the store knows.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult, Script};
use tracing::Instrument as _;

use super::{alert_if_crossed, BudgetCheck, BudgetError, Ledger, Reservation, Seed};
use crate::money::Nanos;
use crate::policy::limits::Scope;

/// Amounts sent to the scripts are clamped to this (2^53 − 1 nano-dollars, about $9 million),
/// so that Lua's doubles hold them exactly.
const AMOUNT_MAX: i64 = (1 << 53) - 1;

/// How long a window's account outlives its window, beyond the hold TTL: room for clock skew
/// between the instances (which compute windows) and Redis.
const ACCOUNT_GRACE_MS: i64 = 3_600_000;

/// Seeds sent in one script call: a round of seeding never blocks Redis for long.
const SEEDS_PER_CALL: usize = 100;

/// What every script starts with: Redis's clock (so instances with skewed clocks agree on hold
/// expiry; Redis 7 replicates scripts by effects, so reading it before writing is allowed) and
/// the helpers.
macro_rules! prelude {
    () => {
        r#"
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function int(x) return string.format('%.0f', x) end
-- Drops the holds that expired (their request was never settled) and their worst cases; returns
-- how many are still in flight.
local function tidy(account, holds)
  local expired = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  if #expired > 0 then
    local released = 0
    for _, member in ipairs(expired) do
      released = released + (tonumber(string.match(member, ':(%d+)$')) or 0)
    end
    redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
    if released > 0 then redis.call('HINCRBY', account, 'r', int(-released)) end
  end
  local in_flight = redis.call('ZCARD', holds)
  -- Nothing in flight, nothing reserved (also heals a sum whose holds key vanished).
  if in_flight == 0 then redis.call('HDEL', account, 'r') end
  return in_flight
end
-- Moves the account to the window starting at `start` when it is in an older one (spend starts
-- over, reservations stay); returns the account's window.
local function roll(account, start)
  local stored = tonumber(redis.call('HGET', account, 'w'))
  local wanted = tonumber(start)
  if stored == nil or stored < wanted then
    redis.call('HSET', account, 'w', start, 's', '0')
    return wanted
  end
  return stored
end
local function expire(account, at)
  if at > 0 then redis.call('PEXPIREAT', account, int(at)) end
end
"#
    };
}

/// Reserves a request's worst case on every budget, or on none.
const RESERVE: &str = concat!(
    prelude!(),
    r#"
-- KEYS: per budget, its account then its holds.
-- ARGV: n, hold member, worst case, hold ttl (ms), then per budget: max, window start, expire at
-- (ms, 0 for never). Returns {0} when reserved; else {1 (spent >= max) or 2 (held by others),
-- the budget's index (from 1), spent, reserved, in flight}.
local n = tonumber(ARGV[1])
local member, worst, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4])
local w = tonumber(worst)
local windows = {}
for i = 1, n do
  local account, holds = KEYS[2 * i - 1], KEYS[2 * i]
  local max = tonumber(ARGV[2 + 3 * i])
  local in_flight = tidy(account, holds)
  windows[i] = roll(account, ARGV[3 + 3 * i])
  local state = redis.call('HMGET', account, 's', 'r')
  local spent = tonumber(state[1]) or 0
  local reserved = math.max(tonumber(state[2]) or 0, 0)
  if spent >= max then return {1, i, spent, reserved, in_flight} end
  if spent + reserved + w > max and in_flight > 0 then return {2, i, spent, reserved, in_flight} end
end
for i = 1, n do
  local account, holds = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('HINCRBY', account, 'r', worst)
  redis.call('ZADD', holds, int(now + ttl), member)
  -- The set goes when its newest hold expires (`tidy` then finds nothing in flight).
  redis.call('PEXPIRE', holds, int(ttl))
  -- An instance whose clock is behind must not cut short a newer window's account.
  if windows[i] == tonumber(ARGV[3 + 3 * i]) then expire(account, tonumber(ARGV[4 + 3 * i])) end
end
return {0}
"#
);

/// Replaces a reservation with what the request cost.
const SETTLE: &str = concat!(
    prelude!(),
    r#"
-- KEYS: per budget, its account then its holds.
-- ARGV: n, hold member, worst case, cost, then per budget: window start, expire at.
-- Returns per budget the spend before and after.
local n = tonumber(ARGV[1])
local member, worst, cost = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out = {}
for i = 1, n do
  local account, holds = KEYS[2 * i - 1], KEYS[2 * i]
  -- A hold an earlier `tidy` dropped (it expired) is no longer in the set: nothing to take off.
  if redis.call('ZREM', holds, member) == 1 and worst > 0 then
    redis.call('HINCRBY', account, 'r', int(-worst))
  end
  tidy(account, holds)
  local window = roll(account, ARGV[3 + 2 * i])
  local before = tonumber(redis.call('HGET', account, 's')) or 0
  local after = redis.call('HINCRBY', account, 's', cost)
  if window == tonumber(ARGV[3 + 2 * i]) then expire(account, tonumber(ARGV[4 + 2 * i])) end
  out[2 * i - 1] = before
  out[2 * i] = after
end
return out
"#
);

/// Raises accounts to the spend the store holds (never lowers them).
const SEED: &str = concat!(
    prelude!(),
    r#"
-- KEYS: accounts. ARGV: per account: window start, spent, expire at.
for i = 1, #KEYS do
  local account, start, spent = KEYS[i], ARGV[3 * i - 2], ARGV[3 * i - 1]
  if roll(account, start) == tonumber(start) then
    if (tonumber(redis.call('HGET', account, 's')) or 0) < tonumber(spent) then
      redis.call('HSET', account, 's', spent)
    end
    expire(account, tonumber(ARGV[3 * i]))
  end
end
return #KEYS
"#
);

/// Settings of a [`RedisLedger`].
#[derive(Clone, Debug)]
pub struct RedisLedgerOptions {
    /// Prepended to every key; must contain a hash tag (`{...}`), see the module doc.
    pub key_prefix: String,
    /// The longest a request waits on Redis before the local ledger answers it.
    pub call_timeout: Duration,
    /// The longest `connect`, a probe, a settlement or a round of seeding waits.
    pub connect_timeout: Duration,
    /// How long a reservation counts if it is never settled (crashed instance).
    pub hold_ttl: Duration,
    /// How often an unhealthy ledger checks whether Redis is back.
    pub probe_interval: Duration,
}

impl Default for RedisLedgerOptions {
    fn default() -> Self {
        RedisLedgerOptions {
            key_prefix: "{sy}:budget".to_owned(),
            call_timeout: Duration::from_millis(75),
            connect_timeout: Duration::from_secs(1),
            hold_ttl: Duration::from_secs(15 * 60),
            probe_interval: Duration::from_millis(500),
        }
    }
}

/// Why a [`RedisLedger`] could not be made. An unreachable Redis is not one of them: the ledger
/// starts in fallback and connects when Redis comes.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid redis_url: {0}")]
    Url(#[source] RedisError),
    #[error("the redis budget ledger must be made on a tokio runtime")]
    NoRuntime,
    #[error("redis key prefix {0:?} needs a hash tag such as {{sy}}, so that Redis Cluster accepts the budget scripts")]
    Prefix(String),
}

/// Why a call to Redis did not give an answer.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Redis(#[from] RedisError),
    #[error("unexpected script reply of {0} values")]
    Reply(usize),
}

/// Budgets shared through Redis, with a local [`Ledger`] fallback. Cloning shares it.
#[derive(Clone)]
pub struct RedisLedger {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    reserve: Script,
    settle: Script,
    seed: Script,
    options: RedisLedgerOptions,
    local: Ledger,
    health: crate::policy::redis_health::RedisHealth,
    fallbacks: AtomicU64,
    settle_failures: AtomicU64,
    /// Settlements spawned and not finished, for [`RedisLedger::drain`].
    settling: AtomicU64,
    settled: tokio::sync::Notify,
    /// Holds are `<instance>:<n>:<worst>`: unique across instances without coordination.
    instance: u64,
    next_hold: AtomicU64,
    runtime: tokio::runtime::Handle,
}

/// One budget of a Redis reservation.
#[derive(Debug)]
struct Subject {
    scope: Scope,
    id: Box<str>,
    window_start: i64,
    /// When the account expires (ms; 0 for never).
    expire_at: i64,
    soft: Option<Nanos>,
}

/// A reservation held in Redis; settled with [`Budgets::settle`](super::Budgets::settle).
#[derive(Debug)]
pub struct RedisReservation {
    member: String,
    worst: i64,
    subjects: Vec<Subject>,
}

impl RedisReservation {
    /// Adds the cost to a local ledger instead (Redis did not take the settlement).
    pub(super) fn charge_to(&self, ledger: &Ledger, cost: Nanos) {
        for subject in &self.subjects {
            ledger.charge(
                subject.scope,
                &subject.id,
                subject.window_start,
                subject.soft,
                cost,
            );
        }
    }
}

impl RedisLedger {
    /// Makes a ledger on `url` (`redis://[:password@]host:port[/db]`). Must run on a tokio runtime.
    /// Waits at most `connect_timeout` for Redis; if Redis is unreachable, the ledger starts
    /// unhealthy, answering from its local fallback, and connects when Redis comes.
    pub async fn connect(url: &str, options: RedisLedgerOptions) -> Result<Self, ConnectError> {
        if !crate::policy::limits::has_hash_tag(&options.key_prefix) {
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
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
            seed: Script::new(SEED),
            options,
            local: Ledger::new(),
            health: crate::policy::redis_health::RedisHealth::new("budgets"),
            fallbacks: AtomicU64::new(0),
            settle_failures: AtomicU64::new(0),
            settling: AtomicU64::new(0),
            settled: tokio::sync::Notify::new(),
            instance: fastrand::u64(..),
            next_hold: AtomicU64::new(0),
            runtime,
        });
        if let Err(failure) = inner.load_scripts().await {
            inner.mark_down(failure);
        }
        Ok(RedisLedger { inner })
    }

    /// Reserves `worst` on every budget, or on none: in Redis, or (Redis unreachable or slower
    /// than the call timeout) in the local ledger.
    pub async fn reserve(
        &self,
        checks: &[BudgetCheck<'_>],
        worst: Nanos,
    ) -> Result<Reservation, BudgetError> {
        let inner = &self.inner;
        if !checks.is_empty() && inner.health.is_up() {
            let worst = worst.0.clamp(0, AMOUNT_MAX);
            let n = inner.next_hold.fetch_add(1, Ordering::Relaxed);
            let held = RedisReservation {
                member: format!("{:016x}:{n}:{worst}", inner.instance),
                worst,
                subjects: checks
                    .iter()
                    .map(|check| Subject {
                        scope: check.scope,
                        id: Box::from(check.id),
                        window_start: check.window_start,
                        expire_at: inner.expire_at(check.window_end),
                        soft: check.soft,
                    })
                    .collect(),
            };
            let call = inner.eval_reserve(checks, &held);
            let failure = match tokio::time::timeout(inner.options.call_timeout, call).await {
                Ok(Ok(reply)) => match refusal(checks, &reply) {
                    Ok(None) => return Ok(Reservation::Redis(held)),
                    Ok(Some(error)) => return Err(error),
                    Err(failure) => failure,
                },
                Ok(Err(error)) => Failure::Redis(error),
                Err(_) => {
                    // The script may still run: take its hold back (best effort) rather than
                    // let it count until it expires.
                    inner.release(held);
                    Failure::Timeout(inner.options.call_timeout)
                }
            };
            inner.mark_down(failure);
        }
        inner.fallbacks.fetch_add(1, Ordering::Relaxed);
        inner.local.reserve(checks, worst).map(Reservation::Local)
    }

    /// Replaces a Redis reservation with what the request cost, on a spawned task.
    pub(super) fn settle(&self, held: RedisReservation, cost: Nanos) {
        let inner = Arc::clone(&self.inner);
        inner.settling.fetch_add(1, Ordering::AcqRel);
        let settle = async move {
            let _done = Settling(&inner);
            let cost = Nanos(cost.0.clamp(0, AMOUNT_MAX));
            let timeout = inner.options.connect_timeout;
            let answer = tokio::time::timeout(timeout, inner.eval_settle(&held, cost)).await;
            let failure = match answer {
                Ok(Ok(reply)) if reply.len() == 2 * held.subjects.len() => {
                    for (subject, spend) in held.subjects.iter().zip(reply.chunks_exact(2)) {
                        alert_if_crossed(
                            subject.scope,
                            &subject.id,
                            subject.soft,
                            spend[0],
                            spend[1],
                        );
                    }
                    return;
                }
                Ok(Ok(reply)) => Failure::Reply(reply.len()),
                Ok(Err(error)) => Failure::Redis(error),
                Err(_) => Failure::Timeout(timeout),
            };
            inner.settle_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                error = %failure,
                cost = %cost,
                "budget settlement not taken by redis: its cost counts on this instance, its hold expires after the hold ttl"
            );
            held.charge_to(&inner.local, cost);
            if !matches!(failure, Failure::Reply(_)) {
                inner.mark_down(failure);
            }
        };
        // In the request's span, so the warnings and the soft-budget alert name the request.
        self.inner
            .runtime
            .spawn(settle.instrument(tracing::Span::current()));
    }

    /// Raises the shared accounts to what the store holds (never lowers them). Skipped while
    /// Redis is unreachable: the next round after it is back does it.
    pub async fn seed(&self, seeds: &[Seed]) {
        let inner = &self.inner;
        for chunk in seeds.chunks(SEEDS_PER_CALL) {
            if !inner.health.is_up() {
                return;
            }
            let mut call = inner.seed.prepare_invoke();
            for seed in chunk {
                call.key(inner.account_key(seed.scope, &seed.id));
            }
            for seed in chunk {
                call.arg(seed.window.0)
                    .arg(seed.spent.0.clamp(0, AMOUNT_MAX))
                    .arg(inner.expire_at(seed.window.1));
            }
            let mut conn = inner.conn.clone();
            let timeout = inner.options.connect_timeout;
            match tokio::time::timeout(timeout, call.invoke_async::<i64>(&mut conn)).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return inner.mark_down(Failure::Redis(error)),
                Err(_) => return inner.mark_down(Failure::Timeout(timeout)),
            }
        }
    }

    /// The fallback ledger (also seeded from the store).
    pub fn local(&self) -> &Ledger {
        &self.inner.local
    }

    /// False while Redis is unreachable and budgets hold per instance.
    pub fn healthy(&self) -> bool {
        self.inner.health.is_up()
    }

    /// Requests whose budgets were reserved in the local ledger because Redis was unreachable.
    pub fn fallbacks(&self) -> u64 {
        self.inner.fallbacks.load(Ordering::Relaxed)
    }

    /// How many times Redis became unreachable (each outage logged one warning).
    pub fn outages(&self) -> u64 {
        self.inner.health.outages()
    }

    /// Waits (at most `limit`) for the settlements still on their way to Redis: at shutdown, so
    /// that the last requests' reservations do not outlive the process until their TTL.
    pub async fn drain(&self, limit: Duration) {
        let inner = &self.inner;
        let all_settled = async {
            loop {
                let settled = inner.settled.notified();
                if inner.settling.load(Ordering::Acquire) == 0 {
                    return;
                }
                settled.await;
            }
        };
        if tokio::time::timeout(limit, all_settled).await.is_err() {
            tracing::warn!(
                unsettled = inner.settling.load(Ordering::Acquire),
                "budget settlements still on their way to redis at shutdown; their holds expire after the hold ttl"
            );
        }
    }

    /// Settlements Redis did not take (their cost went to the local ledger).
    pub fn settle_failures(&self) -> u64 {
        self.inner.settle_failures.load(Ordering::Relaxed)
    }
}

/// What the reserve script answered: `None` reserved, or the refusal; a malformed reply is a
/// failure (the local ledger then answers).
fn refusal(checks: &[BudgetCheck<'_>], reply: &[i64]) -> Result<Option<BudgetError>, Failure> {
    let (kind, index, spent, reserved, in_flight) = match *reply {
        [0] => return Ok(None),
        [kind, index, spent, reserved, in_flight] => (kind, index, spent, reserved, in_flight),
        _ => return Err(Failure::Reply(reply.len())),
    };
    let check = usize::try_from(index - 1)
        .ok()
        .and_then(|i| checks.get(i))
        .ok_or(Failure::Reply(reply.len()))?;
    let (scope, id, max) = (check.scope, check.id.to_owned(), check.max);
    Ok(Some(match kind {
        1 => BudgetError::Exceeded {
            scope,
            id,
            spent: Nanos(spent),
            max,
        },
        2 => BudgetError::Reserved {
            scope,
            id,
            spent: Nanos(spent),
            reserved: Nanos(reserved),
            max,
            in_flight: u32::try_from(in_flight).unwrap_or(u32::MAX),
        },
        _ => return Err(Failure::Reply(reply.len())),
    }))
}

impl Inner {
    fn account_key(&self, scope: Scope, id: &str) -> String {
        format!("{}:{}:spend:{id}", self.options.key_prefix, scope.as_str())
    }

    fn holds_key(&self, scope: Scope, id: &str) -> String {
        format!("{}:{}:holds:{id}", self.options.key_prefix, scope.as_str())
    }

    /// When the account of a window ending at `window_end` may go (0, never, for a budget
    /// without a duration): once its window is over and every hold made in it has expired.
    fn expire_at(&self, window_end: i64) -> i64 {
        if window_end <= 0 {
            return 0;
        }
        let ttl = i64::try_from(self.options.hold_ttl.as_millis()).unwrap_or(i64::MAX);
        window_end
            .saturating_add(ttl)
            .saturating_add(ACCOUNT_GRACE_MS)
    }

    fn hold_ttl_ms(&self) -> u64 {
        u64::try_from(self.options.hold_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, AMOUNT_MAX as u64)
    }

    /// Loads the scripts (EVALSHA then never needs a second round trip) — also the health probe.
    async fn load_scripts(&self) -> Result<(), Failure> {
        let mut conn = self.conn.clone();
        let load = async {
            self.reserve.load_async(&mut conn).await?;
            self.settle.load_async(&mut conn).await?;
            self.seed.load_async(&mut conn).await
        };
        match tokio::time::timeout(self.options.connect_timeout, load).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(Failure::Redis(error)),
            Err(_) => Err(Failure::Timeout(self.options.connect_timeout)),
        }
    }

    async fn eval_reserve(
        &self,
        checks: &[BudgetCheck<'_>],
        held: &RedisReservation,
    ) -> RedisResult<Vec<i64>> {
        let mut call = self.reserve.prepare_invoke();
        for check in checks {
            call.key(self.account_key(check.scope, check.id))
                .key(self.holds_key(check.scope, check.id));
        }
        call.arg(checks.len())
            .arg(&held.member)
            .arg(held.worst)
            .arg(self.hold_ttl_ms());
        for (check, subject) in checks.iter().zip(&held.subjects) {
            call.arg(check.max.0.clamp(0, AMOUNT_MAX))
                .arg(check.window_start)
                .arg(subject.expire_at);
        }
        let mut conn = self.conn.clone();
        call.invoke_async(&mut conn).await
    }

    async fn eval_settle(&self, held: &RedisReservation, cost: Nanos) -> RedisResult<Vec<i64>> {
        let mut call = self.settle.prepare_invoke();
        for subject in &held.subjects {
            call.key(self.account_key(subject.scope, &subject.id))
                .key(self.holds_key(subject.scope, &subject.id));
        }
        call.arg(held.subjects.len())
            .arg(&held.member)
            .arg(held.worst)
            .arg(cost.0);
        for subject in &held.subjects {
            call.arg(subject.window_start).arg(subject.expire_at);
        }
        let mut conn = self.conn.clone();
        call.invoke_async(&mut conn).await
    }

    /// Takes back a reservation whose request will not be served from it (a settlement of
    /// nothing), on a spawned task; if that fails too, the hold expires after the TTL.
    fn release(self: &Arc<Self>, held: RedisReservation) {
        let inner = Arc::clone(self);
        self.runtime.spawn(async move {
            let timeout = inner.options.connect_timeout;
            let released =
                tokio::time::timeout(timeout, inner.eval_settle(&held, Nanos::ZERO)).await;
            if !matches!(released, Ok(Ok(_))) {
                tracing::debug!(
                    hold = %held.member,
                    "could not take back a budget reservation; it expires after the hold ttl"
                );
            }
        });
    }

    /// Records a failed call: the first one of an outage warns and starts the probe.
    fn mark_down(self: &Arc<Self>, failure: Failure) {
        if self.health.mark_down(&failure) {
            self.runtime.spawn(probe(Arc::downgrade(self)));
        }
    }
}

/// Counts a settlement as finished when dropped, whichever way it ended.
struct Settling<'a>(&'a Inner);

impl Drop for Settling<'_> {
    fn drop(&mut self) {
        if self.0.settling.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.settled.notify_waiters();
        }
    }
}

/// Waits until Redis answers again, then turns the ledger healthy. Ends when the ledger is dropped.
async fn probe(inner: Weak<Inner>) {
    loop {
        let Some(interval) = inner.upgrade().map(|i| i.options.probe_interval) else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(ledger) = inner.upgrade() else {
            return;
        };
        if ledger.load_scripts().await.is_ok() {
            ledger
                .health
                .mark_up(ledger.fallbacks.load(Ordering::Relaxed));
            return;
        }
    }
}

impl fmt::Debug for RedisLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLedger")
            .field("key_prefix", &self.inner.options.key_prefix)
            .field("healthy", &self.healthy())
            .field("fallbacks", &self.fallbacks())
            .field("settle_failures", &self.settle_failures())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(scope: Scope, id: &'static str) -> BudgetCheck<'static> {
        BudgetCheck {
            scope,
            id,
            max: Nanos(100),
            window_start: 0,
            window_end: 0,
            soft: None,
        }
    }

    #[test]
    fn script_replies_become_the_local_ledgers_errors() {
        let checks = [check(Scope::Key, "k"), check(Scope::Team, "t")];
        assert!(matches!(refusal(&checks, &[0]), Ok(None)));
        let exceeded = refusal(&checks, &[1, 2, 120, 0, 0]).unwrap().unwrap();
        assert_eq!(
            exceeded,
            BudgetError::Exceeded {
                scope: Scope::Team,
                id: "t".into(),
                spent: Nanos(120),
                max: Nanos(100),
            }
        );
        let held = refusal(&checks, &[2, 1, 50, 40, 3]).unwrap().unwrap();
        assert!(matches!(
            held,
            BudgetError::Reserved {
                scope: Scope::Key,
                in_flight: 3,
                ..
            }
        ));
        for bad in [
            &[][..],
            &[1, 3, 0, 0, 0],
            &[1, 0, 0, 0, 0],
            &[2, 1],
            &[3, 1, 0, 0, 0],
        ] {
            assert!(refusal(&checks, bad).is_err(), "{bad:?}");
        }
    }
}
