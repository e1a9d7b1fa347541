//! Rate limits: "may this request go, given every limit that applies to it?" — answered before the
//! upstream call, all or nothing, exactly, on one instance ([`LocalLimiter`]) or across many
//! sharing Redis ([`RedisLimiter`]).
//!
//! A request carries a list of [`Check`]s (requests or tokens per minute, for a key, team, user, end
//! user, key+model or deployment) and a list of [`Slot`]s (max parallel requests). [`Limiter::acquire`]
//! either consumes every check and takes every slot, answering a [`Grant`] (with what the OpenAI
//! `x-ratelimit-*` headers need), or consumes nothing and answers a [`Denial`] naming the limit that
//! tripped and when it will have room. Tokens are reserved from an estimate and corrected afterwards
//! with [`Limiter::reconcile`]. Slots are held by the grant's [`SlotGuard`] and released when it drops.
//!
//! # Algorithm: GCRA, with burst = the per-minute limit
//!
//! Each (scope, id, kind) is a GCRA bucket (the "virtual scheduling" leaky bucket): a limit of `L`
//! per minute admits a burst of `L` and then refills continuously at one unit every `60 s / L`
//! (rpm 10: ten at once, then one every 6 s). Why GCRA and not a sliding window:
//! - it is exact — a request fits or it does not, there is no approximation between two fixed windows
//!   as in the sliding-window-counter, and no per-request entry to store as in a sliding log (a log
//!   of a 1M-tpm limit would be a million entries);
//! - its state is two integers per bucket whatever the limit, so one Lua script can check and consume
//!   several buckets atomically in a handful of commands;
//! - there is no window edge where a client can spend twice its limit in a few seconds.
//!
//! The state is stored as `level` = (theoretical arrival time − `at`) × `L`, in units where one unit
//! of cost weighs [`PERIOD_MS`]: it drains by `L` per millisecond, a request of cost `c` adds
//! `c × 60000`, and it fits while `level ≤ L × 60000`. Everything is integer arithmetic on
//! milliseconds, identical in Rust and in Lua; [`MAX_LIMIT`] and [`LEVEL_MAX`] keep every value below
//! 2^53, so Lua's doubles stay exact. From the level follow the header values:
//! `remaining = ⌊(L × 60000 − level) / 60000⌋`, `reset` = time until the bucket is empty again
//! (`⌈level / L⌉` ms, OpenAI's "time until the limit resets to its initial state"), and a denied
//! request's `retry_after` = time until this request would fit.
//!
//! # Tokens
//!
//! A tokens check's cost is an estimate (prompt + max output tokens). After the answer the caller
//! calls [`Limiter::reconcile`] with the usage the provider reported: the difference is added (or
//! refunded, when negative) on every tokens check of the request. A check whose cost exceeds its
//! limit can never pass ([`Denial::can_never_pass`]).
//!
//! # Use
//!
//! ```
//! use switchyard::policy::limits::{Check, Kind, Limiter, LocalLimiter, Scope, Slot};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // Built once at start-up: `RedisLimiter::connect(url, RedisOptions::default()).await?` when scaled out.
//! let limiter: Box<dyn Limiter> = Box::new(LocalLimiter::new());
//! let checks = [
//!     Check::requests(Scope::Key, "key-token", 10),
//!     Check::tokens(Scope::Key, "key-token", 10_000, 1_200), // prompt + max output tokens
//!     Check::requests(Scope::Team, "team-1", 100),
//! ];
//! let slots = [Slot::new(Scope::Key, "key-token", 4)];
//! match limiter.acquire(&checks, &slots).await {
//!     Ok(grant) => {
//!         let requests = grant.tightest(Kind::Requests).unwrap(); // x-ratelimit-*-requests
//!         assert_eq!((requests.limit, requests.remaining), (10, 9));
//!         // ... call the upstream, keeping `grant` (its slots) alive until the response ends ...
//!         limiter.reconcile(&grant, &checks, 800); // the usage the provider reported
//!     }
//!     Err(denial) => panic!("429, retry-after {}: {denial}", denial.retry_after_secs()),
//! }
//! # }
//! ```

mod local;
mod redis;

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;

pub use local::LocalLimiter;
pub(crate) use redis::has_hash_tag;
pub use redis::{ConnectError, RedisLimiter, RedisOptions};

/// The period every limit is expressed per: one minute.
pub const PERIOD: Duration = Duration::from_secs(60);
const PERIOD_MS: u64 = 60_000;

/// Limits above this are clamped to it (10 billion per minute): with it, every bucket level fits in
/// 2^53 and the Redis script's Lua numbers (doubles) stay exact integers.
pub const MAX_LIMIT: u64 = 10_000_000_000;

/// Token debt a bucket may carry after reconciliation (2^52 units, about 75 million minutes of a
/// 1-per-minute limit): a bound that keeps the arithmetic exact, not a policy.
const LEVEL_MAX: u64 = 1 << 52;

/// How long a denial for a full parallel-request slot tells the client to wait: nothing predicts
/// when an in-flight request finishes, so this is a hint.
pub const PARALLEL_RETRY: Duration = Duration::from_secs(1);

/// Whose limit a check or slot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A virtual key; the id is the key's token (its hash), never the raw key.
    Key,
    Team,
    /// An internal user.
    User,
    /// A customer: the `user` field of a request.
    EndUser,
    /// A key's per-model limit (`model_rpm_limit`, `model_tpm_limit`); the id is
    /// [`key_model_id`]`(token, model)`.
    KeyModel,
    /// A deployment's `rpm`/`tpm` from `litellm_params`; the id is the deployment id.
    Deployment,
}

impl Scope {
    const COUNT: usize = 6;

    fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Team => "team",
            Scope::User => "user",
            Scope::EndUser => "end_user",
            Scope::KeyModel => "key_model",
            Scope::Deployment => "deployment",
        }
    }
}

/// The id of a [`Scope::KeyModel`] check. Build it once, when the key is loaded into the key cache,
/// so that building the checks of a request allocates nothing.
pub fn key_model_id(key_token: &str, model: &str) -> String {
    format!("{key_token}/{model}")
}

/// What a check counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Requests per minute; the cost is 1.
    Requests,
    /// Tokens per minute; the cost is the estimate (prompt + max output tokens).
    Tokens,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::Tokens => "tokens",
        }
    }
}

/// One per-minute limit that applies to a request. One check per (scope, id, kind) in a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check<'a> {
    pub scope: Scope,
    pub id: &'a str,
    pub kind: Kind,
    /// Allowed per minute (and the burst). 0 refuses every request with a cost.
    pub limit: u64,
    /// What this request consumes: 1 for requests, the token estimate for tokens.
    pub cost: u64,
}

impl<'a> Check<'a> {
    /// A requests-per-minute check of cost 1.
    pub fn requests(scope: Scope, id: &'a str, rpm: u64) -> Self {
        Check {
            scope,
            id,
            kind: Kind::Requests,
            limit: rpm,
            cost: 1,
        }
    }

    /// A tokens-per-minute check reserving `estimate` tokens.
    pub fn tokens(scope: Scope, id: &'a str, tpm: u64, estimate: u64) -> Self {
        Check {
            scope,
            id,
            kind: Kind::Tokens,
            limit: tpm,
            cost: estimate,
        }
    }

    fn clamped_limit(&self) -> u64 {
        self.limit.min(MAX_LIMIT)
    }
}

/// A max-parallel-requests limit: at most `max` requests of (scope, id) in flight at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot<'a> {
    pub scope: Scope,
    pub id: &'a str,
    pub max: u32,
}

impl<'a> Slot<'a> {
    pub fn new(scope: Scope, id: &'a str, max: u32) -> Self {
        Slot { scope, id, max }
    }
}

/// The state of one check, for the `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub scope: Scope,
    pub kind: Kind,
    pub limit: u64,
    /// Units still available right now (after this request, on a grant).
    pub remaining: u64,
    /// Time until the bucket is full again (OpenAI's `x-ratelimit-reset-*`).
    pub reset: Duration,
}

impl Quota {
    fn from_level(check: &Check<'_>, level: u64) -> Self {
        let limit = check.clamped_limit();
        Quota {
            scope: check.scope,
            kind: check.kind,
            limit: check.limit,
            remaining: gcra::remaining(level, limit),
            reset: Duration::from_millis(gcra::reset_ms(level, limit)),
        }
    }
}

/// Where a grant was decided; reconciliation goes to the same place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Local,
    Redis,
}

/// The request may go. Keep it (or at least its `slots`) until the response is finished.
#[derive(Debug)]
#[must_use = "dropping the grant releases its parallel-request slots"]
pub struct Grant {
    /// One per check, in the order of the checks.
    pub quotas: Vec<Quota>,
    /// The parallel-request slots taken; dropping it releases them.
    pub slots: SlotGuard,
    origin: Origin,
}

impl Grant {
    /// The grant for a request with no checks and no slots. Allocates nothing.
    pub fn empty() -> Self {
        Grant {
            quotas: Vec::new(),
            slots: SlotGuard::none(),
            origin: Origin::Local,
        }
    }

    /// The quota of the check with this scope and kind.
    pub fn quota(&self, scope: Scope, kind: Kind) -> Option<&Quota> {
        self.quotas
            .iter()
            .find(|q| q.scope == scope && q.kind == kind)
    }

    /// The quota of this kind with the least remaining (the longest reset on a tie): the one to
    /// advertise in the headers when several scopes limit the request.
    pub fn tightest(&self, kind: Kind) -> Option<&Quota> {
        tightest(&self.quotas, kind)
    }

    /// Whether the grant was decided by the local limiter (always, for [`LocalLimiter`]; while Redis is
    /// unreachable, for [`RedisLimiter`]).
    pub fn is_local(&self) -> bool {
        self.origin == Origin::Local
    }
}

fn tightest(quotas: &[Quota], kind: Kind) -> Option<&Quota> {
    quotas
        .iter()
        .filter(|q| q.kind == kind)
        .min_by(|a, b| a.remaining.cmp(&b.remaining).then(b.reset.cmp(&a.reset)))
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tripped {
    Requests,
    Tokens,
    Parallel,
}

impl From<Kind> for Tripped {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Requests => Tripped::Requests,
            Kind::Tokens => Tripped::Tokens,
        }
    }
}

/// The request may not go; nothing was consumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// Whose limit tripped.
    pub scope: Scope,
    pub id: String,
    pub tripped: Tripped,
    /// Its limit: per minute, or the max in flight for [`Tripped::Parallel`].
    pub limit: u64,
    /// What the request asked of it (the token estimate; 1 for requests and slots).
    pub cost: u64,
    /// When the request would fit (for `retry-after`); [`PARALLEL_RETRY`] for a full slot.
    pub retry_after: Duration,
    /// The state of every check, unconsumed, in the order of the checks (for the headers of the 429).
    pub quotas: Vec<Quota>,
}

impl Denial {
    /// The request costs more than the whole limit: it will never fit, however long the client waits.
    pub fn can_never_pass(&self) -> bool {
        self.cost > self.limit
    }

    /// `retry-after` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }

    /// See [`Grant::tightest`].
    pub fn tightest(&self, kind: Kind) -> Option<&Quota> {
        tightest(&self.quotas, kind)
    }

    fn rate(check: &Check<'_>, retry_after_ms: u64, quotas: Vec<Quota>) -> Self {
        Denial {
            scope: check.scope,
            id: check.id.to_owned(),
            tripped: check.kind.into(),
            limit: check.limit,
            cost: check.cost,
            retry_after: Duration::from_millis(retry_after_ms),
            quotas,
        }
    }

    /// A refusal no single check explains (the script saw a request that repeats a check or a
    /// slot): names the first check, or the first slot.
    fn unexplained(checks: &[Check<'_>], slots: &[Slot<'_>]) -> Self {
        match (checks.first(), slots.first()) {
            (Some(check), _) => Denial::rate(check, PERIOD_MS / check.limit.max(1), Vec::new()),
            (None, Some(slot)) => Denial::parallel(slot, Vec::new()),
            (None, None) => Denial::parallel(&Slot::new(Scope::Key, "", 0), Vec::new()),
        }
    }

    fn parallel(slot: &Slot<'_>, quotas: Vec<Quota>) -> Self {
        Denial {
            scope: slot.scope,
            id: slot.id.to_owned(),
            tripped: Tripped::Parallel,
            limit: u64::from(slot.max),
            cost: 1,
            retry_after: PARALLEL_RETRY,
            quotas,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scope, id, limit) = (self.scope.as_str(), &self.id, self.limit);
        match self.tripped {
            Tripped::Parallel => write!(
                f,
                "Max parallel requests reached for {scope} '{id}': {limit} in flight"
            )?,
            Tripped::Requests | Tripped::Tokens => {
                let unit = if self.tripped == Tripped::Requests {
                    "requests"
                } else {
                    "tokens"
                };
                write!(
                    f,
                    "Rate limit reached for {scope} '{id}': {limit} {unit} per minute"
                )?;
                if self.can_never_pass() {
                    return write!(f, "; this request needs {} and can never fit", self.cost);
                }
            }
        }
        write!(f, "; retry after {}", format_duration(self.retry_after))
    }
}

/// Decides, for every check and slot of a request, whether it may go.
///
/// Implementations answer quickly: [`LocalLimiter`] without waiting at all, [`RedisLimiter`] within
/// one Redis round trip bounded by a short timeout (then from its local fallback).
pub trait Limiter: Send + Sync {
    /// Consumes every check and takes every slot, or nothing. A request with no checks and no slots
    /// is granted; callers that know a principal has no limits can skip the call ([`Grant::empty`]).
    fn acquire<'a>(
        &'a self,
        checks: &'a [Check<'a>],
        slots: &'a [Slot<'a>],
    ) -> BoxFuture<'a, Result<Grant, Denial>>;

    /// [`Limiter::acquire`] answered at once, for a limiter that never waits (the local one):
    /// `None` means "await `acquire`". Saves the boxed future on the common path.
    fn acquire_now(
        &self,
        checks: &[Check<'_>],
        slots: &[Slot<'_>],
    ) -> Option<Result<Grant, Denial>> {
        let _ = (checks, slots);
        None
    }

    /// Corrects the token reservations of a granted request with the usage the provider reported:
    /// adds `actual_tokens − check.cost` on every [`Kind::Tokens`] check (a refund when negative).
    /// Fire and forget: never blocks, never fails.
    fn reconcile(&self, grant: &Grant, checks: &[Check<'_>], actual_tokens: u64);

    /// False while the shared store is unreachable and limits hold per instance.
    fn healthy(&self) -> bool {
        true
    }

    /// How many requests were answered by the local fallback because the shared store was
    /// unreachable (a counter, for metrics).
    fn fallbacks(&self) -> u64 {
        0
    }
}

/// Holds the parallel-request slots of a grant; dropping it releases them (for Redis, on a spawned
/// task: `Drop` cannot wait).
#[derive(Debug, Default)]
pub struct SlotGuard(GuardInner);

#[derive(Debug, Default)]
enum GuardInner {
    #[default]
    None,
    Local(local::LocalSlots),
    Redis(redis::RedisLease),
}

impl SlotGuard {
    /// A guard holding nothing.
    pub fn none() -> Self {
        SlotGuard(GuardInner::None)
    }

    /// How many slots this guard holds.
    pub fn len(&self) -> usize {
        match &self.0 {
            GuardInner::None => 0,
            GuardInner::Local(slots) => slots.len(),
            GuardInner::Redis(lease) => lease.len(),
        }
    }

    /// Whether this guard holds no slot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Formats a duration as OpenAI does in `x-ratelimit-reset-*` (Go's style): `250ms`, `6s`,
/// `1.5s`, `1m30s`, `2h0m0s`.
pub fn format_duration(d: Duration) -> String {
    DurationText::new(d).as_str().to_owned()
}

/// [`format_duration`] on the stack. Written by hand: this runs twice per limited request (the
/// reset headers), and `format!` cost several hundred instructions each time.
pub struct DurationText {
    bytes: [u8; 48],
    len: usize,
}

impl DurationText {
    pub fn new(d: Duration) -> Self {
        let mut out = DurationText {
            bytes: [0; 48],
            len: 0,
        };
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if ms < 1000 {
            out.number(ms, 1);
            out.push(b"ms");
            return out;
        }
        let (hours, minutes) = (ms / 3_600_000, ms / 60_000 % 60);
        let (secs, millis) = (ms / 1000 % 60, ms % 1000);
        if hours > 0 {
            out.number(hours, 1);
            out.push(b"h");
        }
        if hours > 0 || minutes > 0 {
            out.number(minutes, 1);
            out.push(b"m");
        }
        out.number(secs, 1);
        if millis != 0 {
            // Three digits, trailing zeros dropped: 1.5s, 1.25s, 1.125s.
            let (mut frac, mut width) = (millis, 3);
            while frac % 10 == 0 {
                frac /= 10;
                width -= 1;
            }
            out.push(b".");
            out.number(frac, width);
        }
        out.push(b"s");
        out
    }

    fn push(&mut self, text: &[u8]) {
        self.bytes[self.len..self.len + text.len()].copy_from_slice(text);
        self.len += text.len();
    }

    /// At most 20 digits a number; the longest text (u64::MAX ms, "5124095576030h25m51.615s")
    /// is 24 bytes.
    fn number(&mut self, mut n: u64, width: usize) {
        let mut digits = [b'0'; 20];
        let mut i = digits.len();
        while n > 0 || digits.len() - i < width.max(1) {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.push(&digits[i..]);
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and letters are written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// Which check or slot refused a request, given each check's (drained, unconsumed) level and each
/// slot's count in flight. Shared by both limiters so that the same state gives the same answer:
/// the check that needs the longest wait is named (a smaller limit wins a tie); a full slot is named
/// only when every check fits, since a rate limit's wait is the one that can be predicted.
fn refusal(
    checks: &[Check<'_>],
    level_of: impl Fn(usize) -> u64,
    slots: &[Slot<'_>],
    held_of: impl Fn(usize) -> u64,
) -> Option<Denial> {
    let mut worst: Option<(usize, u64)> = None;
    for (i, check) in checks.iter().enumerate() {
        if let Some(wait) = gcra::wait_ms(level_of(i), check.clamped_limit(), check.cost) {
            let tighter = match worst {
                None => true,
                Some((j, worst_wait)) => {
                    wait > worst_wait || (wait == worst_wait && check.limit < checks[j].limit)
                }
            };
            if tighter {
                worst = Some((i, wait));
            }
        }
    }
    let full = || {
        slots
            .iter()
            .enumerate()
            .find(|(j, s)| held_of(*j) >= u64::from(s.max))
    };
    if worst.is_none() && full().is_none() {
        return None;
    }
    let quotas = checks
        .iter()
        .enumerate()
        .map(|(i, check)| Quota::from_level(check, level_of(i)))
        .collect();
    Some(match worst {
        Some((i, wait)) => Denial::rate(&checks[i], wait, quotas),
        None => match full() {
            Some((_, slot)) => Denial::parallel(slot, quotas),
            None => unreachable!("checked above"),
        },
    })
}

/// The GCRA arithmetic, in integers (see the module doc). The Lua script in `redis.rs` mirrors
/// `drain` and the fit test; everything else is computed in Rust from the levels it returns.
mod gcra {
    use super::{LEVEL_MAX, MAX_LIMIT, PERIOD_MS};

    /// The level after `elapsed_ms` of draining at `limit` per millisecond.
    pub fn drain(level: u64, elapsed_ms: u64, limit: u64) -> u64 {
        let rate = limit.max(1);
        if elapsed_ms >= level.div_ceil(rate) {
            0
        } else {
            level - elapsed_ms * rate
        }
    }

    pub fn capacity(limit: u64) -> u64 {
        limit * PERIOD_MS
    }

    /// The level after consuming `cost`; only call when it fits.
    pub fn consume(level: u64, cost: u64) -> u64 {
        level + cost * PERIOD_MS
    }

    pub fn remaining(level: u64, limit: u64) -> u64 {
        capacity(limit).saturating_sub(level) / PERIOD_MS
    }

    pub fn reset_ms(level: u64, limit: u64) -> u64 {
        level.div_ceil(limit.max(1))
    }

    /// `None` when `cost` fits now; otherwise how long until it would (a full period when it never
    /// can).
    pub fn wait_ms(level: u64, limit: u64, cost: u64) -> Option<u64> {
        if cost > limit {
            return Some(PERIOD_MS);
        }
        let after = consume(level, cost);
        let capacity = capacity(limit);
        (after > capacity).then(|| (after - capacity).div_ceil(limit.max(1)))
    }

    /// The level after correcting a reservation by `delta` units (a refund when negative).
    pub fn adjust(level: u64, delta: i64) -> u64 {
        let units = delta.unsigned_abs().min(MAX_LIMIT) * PERIOD_MS;
        if delta >= 0 {
            (level + units).min(LEVEL_MAX)
        } else {
            level.saturating_sub(units)
        }
    }
}

/// `actual − estimated`, saturated into an `i64`.
fn token_delta(actual: u64, estimated: u64) -> i64 {
    if actual >= estimated {
        i64::try_from(actual - estimated).unwrap_or(i64::MAX)
    } else {
        i64::try_from(estimated - actual).map_or(i64::MIN, |d| -d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_rpm_10_is_a_burst_of_10_then_one_every_6_seconds() {
        let limit = 10;
        let mut level = 0;
        for _ in 0..10 {
            assert_eq!(gcra::wait_ms(level, limit, 1), None);
            level = gcra::consume(level, 1);
        }
        assert_eq!(gcra::remaining(level, limit), 0);
        assert_eq!(gcra::reset_ms(level, limit), 60_000);
        assert_eq!(gcra::wait_ms(level, limit, 1), Some(6_000));
        let later = gcra::drain(level, 5_999, limit);
        assert_eq!(gcra::wait_ms(later, limit, 1), Some(1));
        let later = gcra::drain(level, 6_000, limit);
        assert_eq!(gcra::wait_ms(later, limit, 1), None);
        assert_eq!(gcra::remaining(later, limit), 1);
        assert_eq!(gcra::drain(level, 60_000, limit), 0);
        assert_eq!(gcra::drain(level, u64::MAX, limit), 0);
    }

    #[test]
    fn gcra_edges() {
        // A limit of 0 refuses anything with a cost, and a cost of 0 always fits.
        assert_eq!(gcra::wait_ms(0, 0, 1), Some(PERIOD_MS));
        assert_eq!(gcra::wait_ms(0, 0, 0), None);
        // A cost above the limit never fits.
        assert_eq!(gcra::wait_ms(0, 100, 101), Some(PERIOD_MS));
        assert_eq!(gcra::wait_ms(0, 100, 100), None);
        // Extremes stay in range.
        let full = gcra::consume(0, MAX_LIMIT);
        assert_eq!(full, gcra::capacity(MAX_LIMIT));
        assert!(full < LEVEL_MAX);
        assert_eq!(gcra::adjust(full, i64::MAX), 2 * full);
        assert_eq!(gcra::adjust(LEVEL_MAX - 1, i64::MAX), LEVEL_MAX);
        assert_eq!(gcra::adjust(full, i64::MIN), 0);
    }

    #[test]
    fn token_delta_saturates() {
        assert_eq!(token_delta(10, 3), 7);
        assert_eq!(token_delta(3, 10), -7);
        assert_eq!(token_delta(u64::MAX, 0), i64::MAX);
        assert_eq!(token_delta(0, u64::MAX), i64::MIN);
    }

    #[test]
    fn durations_render_like_openai() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(6)), "6s");
        assert_eq!(format_duration(Duration::from_millis(1_500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(6_857)), "6.857s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(format_duration(Duration::MAX), "5124095576030h25m51.615s");
        assert_eq!(format_duration(Duration::ZERO), "0ms");
    }

    #[test]
    fn denial_messages_name_the_limit() {
        let check = Check::requests(Scope::Team, "t1", 2);
        let denial = Denial::rate(&check, 6_000, Vec::new());
        assert_eq!(
            denial.to_string(),
            "Rate limit reached for team 't1': 2 requests per minute; retry after 6s"
        );
        assert_eq!(denial.retry_after_secs(), 6);
        let check = Check::tokens(Scope::Key, "k", 100, 500);
        let denial = Denial::rate(&check, PERIOD_MS, Vec::new());
        assert!(denial.can_never_pass());
        assert!(denial.to_string().contains("can never fit"), "{denial}");
    }
}
