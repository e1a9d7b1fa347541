//! The in-process limiter: limits hold per instance (or for the whole gateway when it runs alone).
//!
//! State sits in 64 shards, each a `Mutex` over plain maps; a subject's buckets and slots hash to
//! one shard (the kind is not part of the shard hash), so a request limited on its key alone takes
//! one lock. To be all or nothing across several subjects, a request locks every shard it touches
//! at once, in ascending order (no deadlock), decides, commits, and unlocks: a few hundred
//! nanoseconds, never across an `.await`.
//!
//! Costs on the hot path: a request with no checks and no slots returns before reading the clock
//! and allocates nothing. Otherwise one `acquire` allocates the `Vec` of quotas it returns, plus the
//! trait's boxed future, plus, when it takes slots, the `Vec` its guard holds and the in-flight
//! counter's id if no other request of that subject is in flight; a subject's first request also
//! allocates its bucket's id. (A test with a counting allocator holds these numbers.) Idle buckets (drained to empty) are swept when a shard's map doubles,
//! so ids that stop sending (end users are client-controlled) leave nothing behind; slot counters
//! are removed when they reach zero.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use futures_util::future::BoxFuture;
use hashbrown::HashTable;

use super::{
    gcra, refusal, token_delta, Check, Denial, Grant, GuardInner, Kind, Limiter, Origin, Quota,
    Scope, Slot, SlotGuard,
};

const SHARDS: usize = 64;
/// A shard's maps are swept for idle buckets when one reaches this size, or twice its size after
/// the last sweep.
const SWEEP_MIN: usize = 1024;
/// How many subjects (checks and slots) a request hashes onto the stack; more (a request with
/// many subjects) spill into a `Vec`, which allocates only then.
const INLINE_SUBJECTS: usize = 16;

static SEED: OnceLock<u64> = OnceLock::new();

fn seed() -> u64 {
    *SEED.get_or_init(|| RandomState::new().hash_one(0x5eed_u64) | 1)
}

/// A subject's keyed hash: a multiply-rotate over 8-byte words, seeded once per process at
/// random. End-user ids come from clients, so placement must not be predictable (a fixed hash
/// would let a client flood one bucket list); SipHash, std's keyed hash, cost a few thousand
/// instructions per request here. Computed once per subject per request: it picks the shard
/// and is the key's hash in the shard's tables (which take the hash from the caller).
fn subject_hash(seed: u64, scope: Scope, id: &str) -> u64 {
    fn mix(state: u64, word: u64) -> u64 {
        (state ^ word)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29)
    }
    let bytes = id.as_bytes();
    // The length and the scope go in first: "a" and "a\0", or a team and a user with one id,
    // are different subjects.
    let mut state = mix(seed, (bytes.len() as u64) << 8 | scope.index() as u64);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        state = mix(state, u64::from_le_bytes(word.try_into().expect("8 bytes")));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        state = mix(state, u64::from_le_bytes(word));
    }
    state ^= state >> 33;
    state = state.wrapping_mul(0xff51_afd7_ed55_8ccd);
    state ^ (state >> 33)
}

/// The shard of a subject hash. `HashTable` places an entry by the low bits of the hash and tags
/// it with the top seven, so the shard comes from bits in between: within a shard, entries still
/// spread over every slot and tag.
fn shard_index(hash: u64) -> usize {
    (hash >> 40) as usize % SHARDS
}

/// The in-process [`Limiter`]. Cloning shares the state.
#[derive(Clone, Default)]
pub struct LocalLimiter {
    shared: Arc<Shared>,
}

struct Shared {
    shards: Box<[Mutex<Shard>]>,
    /// Random: end-user ids come from clients, so placement must not be predictable.
    seed: u64,
    epoch: Instant,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            seed: seed(),
            epoch: Instant::now(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// See the module doc of `limits`: (theoretical arrival time − `at_ms`) × limit.
    level: u64,
    at_ms: u64,
    /// When the level drains to zero: from then on the bucket is garbage.
    empty_at_ms: u64,
}

impl Bucket {
    fn new(level: u64, now_ms: u64, limit: u64) -> Self {
        Bucket {
            level,
            at_ms: now_ms,
            empty_at_ms: now_ms + gcra::reset_ms(level, limit),
        }
    }

    fn level_at(&self, now_ms: u64, limit: u64) -> u64 {
        gcra::drain(self.level, now_ms.saturating_sub(self.at_ms), limit)
    }
}

/// A bucket with its subject: the hash is kept so the table never rehashes an id.
struct BucketEntry {
    hash: u64,
    id: Box<str>,
    bucket: Bucket,
}

/// Requests in flight for a subject. `Arc` id so a guard holds it without copying.
struct InFlight {
    hash: u64,
    id: Arc<str>,
    count: u32,
}

#[derive(Default)]
struct Shard {
    /// One table per (scope, kind).
    buckets: [HashTable<BucketEntry>; Scope::COUNT * 2],
    /// One table per scope: requests in flight.
    in_flight: [HashTable<InFlight>; Scope::COUNT],
    sweep_at: usize,
}

fn bucket_index(scope: Scope, kind: Kind) -> usize {
    scope.index() * 2 + kind as usize
}

impl Shard {
    fn bucket_mut(&mut self, index: usize, hash: u64, id: &str) -> Option<&mut Bucket> {
        self.buckets[index]
            .find_mut(hash, |e| e.hash == hash && &*e.id == id)
            .map(|e| &mut e.bucket)
    }

    fn bucket(&self, index: usize, hash: u64, id: &str) -> Option<&Bucket> {
        self.buckets[index]
            .find(hash, |e| e.hash == hash && &*e.id == id)
            .map(|e| &e.bucket)
    }

    /// Inserts a bucket that is not there yet.
    fn insert(&mut self, index: usize, hash: u64, id: &str, bucket: Bucket) {
        if self.buckets[index].len() >= self.sweep_at.max(SWEEP_MIN) {
            let now_ms = bucket.at_ms;
            let mut largest = 0;
            for table in &mut self.buckets {
                table.retain(|e| e.bucket.empty_at_ms > now_ms);
                largest = largest.max(table.len());
            }
            self.sweep_at = largest * 2;
        }
        let entry = BucketEntry {
            hash,
            id: Box::from(id),
            bucket,
        };
        self.buckets[index].insert_unique(hash, entry, |e| e.hash);
    }

    fn held(&self, scope: Scope, hash: u64, id: &str) -> u32 {
        self.in_flight[scope.index()]
            .find(hash, |e| e.hash == hash && &*e.id == id)
            .map_or(0, |e| e.count)
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Nothing panics while a shard is locked; should it, the counters are still consistent.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn hash(&self, scope: Scope, id: &str) -> u64 {
        subject_hash(self.seed, scope, id)
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        lock(&self.shards[shard_index(hash)])
    }

    /// Hashes every subject of a request once (checks first, then slots), on the stack when
    /// there are few, and hands the hashes to `f`.
    fn with_hashes<R>(
        &self,
        checks: &[Check<'_>],
        slots: &[Slot<'_>],
        f: impl FnOnce(&[u64]) -> R,
    ) -> R {
        let subjects = checks
            .iter()
            .map(|c| (c.scope, c.id))
            .chain(slots.iter().map(|s| (s.scope, s.id)));
        let count = checks.len() + slots.len();
        if count <= INLINE_SUBJECTS {
            let mut hashes = [0u64; INLINE_SUBJECTS];
            for (hash, (scope, id)) in hashes.iter_mut().zip(subjects) {
                *hash = self.hash(scope, id);
            }
            f(&hashes[..count])
        } else {
            let hashes: Vec<u64> = subjects.map(|(scope, id)| self.hash(scope, id)).collect();
            f(&hashes)
        }
    }
}

/// How many locked shards a request keeps inline; more spill into a `Vec`.
const INLINE_SHARDS: usize = 8;

/// Every shard a request touches, locked in ascending order.
struct Locked<'a> {
    /// The shards a request touches, locked in ascending index order (so two requests never
    /// wait on each other in a cycle), with their index. A request touches a few shards: a short
    /// list searched linearly is cheaper to make, move and drop than a slot for each of the 64.
    inline: [Option<(usize, MutexGuard<'a, Shard>)>; INLINE_SHARDS],
    spill: Vec<(usize, MutexGuard<'a, Shard>)>,
}

impl<'a> Locked<'a> {
    fn new(shared: &'a Shared, hashes: &[u64]) -> Self {
        let mut wanted = 0u64;
        for &hash in hashes {
            wanted |= 1 << shard_index(hash);
        }
        let mut locked = Locked {
            inline: Default::default(),
            spill: Vec::new(),
        };
        let mut count = 0;
        while wanted != 0 {
            let index = wanted.trailing_zeros() as usize;
            let guard = (index, lock(&shared.shards[index]));
            if count < INLINE_SHARDS {
                locked.inline[count] = Some(guard);
            } else {
                locked.spill.push(guard);
            }
            count += 1;
            wanted &= wanted - 1;
        }
        locked
    }

    fn shard(&self, hash: u64) -> &Shard {
        let index = shard_index(hash);
        self.inline
            .iter()
            .flatten()
            .chain(self.spill.iter())
            .find(|(i, _)| *i == index)
            .map(|(_, guard)| &**guard)
            .expect("every shard of the request is locked")
    }

    fn shard_mut(&mut self, hash: u64) -> &mut Shard {
        let index = shard_index(hash);
        self.inline
            .iter_mut()
            .flatten()
            .chain(self.spill.iter_mut())
            .find(|(i, _)| *i == index)
            .map(|(_, guard)| &mut **guard)
            .expect("every shard of the request is locked")
    }

    fn level(&self, check: &Check<'_>, hash: u64, now_ms: u64) -> u64 {
        let limit = check.clamped_limit();
        self.shard(hash)
            .bucket(bucket_index(check.scope, check.kind), hash, check.id)
            .map_or(0, |b| b.level_at(now_ms, limit))
    }

    fn held(&self, slot: &Slot<'_>, hash: u64) -> u64 {
        u64::from(self.shard(hash).held(slot.scope, hash, slot.id))
    }

    /// Consumes the check (it fits) and answers its level afterwards.
    fn consume(&mut self, check: &Check<'_>, hash: u64, now_ms: u64) -> u64 {
        let limit = check.clamped_limit();
        let index = bucket_index(check.scope, check.kind);
        let shard = self.shard_mut(hash);
        if let Some(bucket) = shard.bucket_mut(index, hash, check.id) {
            let level = gcra::consume(bucket.level_at(now_ms, limit), check.cost);
            *bucket = Bucket::new(level, now_ms, limit);
            return level;
        }
        let level = gcra::consume(0, check.cost);
        if level > 0 {
            shard.insert(index, hash, check.id, Bucket::new(level, now_ms, limit));
        }
        level
    }

    fn take(&mut self, slot: &Slot<'_>, hash: u64) -> Held {
        let table = &mut self.shard_mut(hash).in_flight[slot.scope.index()];
        let id = match table.find_mut(hash, |e| e.hash == hash && &*e.id == slot.id) {
            Some(entry) => {
                entry.count += 1;
                Arc::clone(&entry.id)
            }
            None => {
                let id: Arc<str> = Arc::from(slot.id);
                let entry = InFlight {
                    hash,
                    id: Arc::clone(&id),
                    count: 1,
                };
                table.insert_unique(hash, entry, |e| e.hash);
                id
            }
        };
        Held {
            scope: slot.scope,
            hash,
            id,
        }
    }
}

impl LocalLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// [`Limiter::acquire`], without the future: the local limiter never waits.
    pub fn try_acquire(&self, checks: &[Check<'_>], slots: &[Slot<'_>]) -> Result<Grant, Denial> {
        if checks.is_empty() && slots.is_empty() {
            return Ok(Grant::empty());
        }
        self.acquire_at(checks, slots, self.shared.now_ms())
    }

    fn acquire_at(
        &self,
        checks: &[Check<'_>],
        slots: &[Slot<'_>],
        now_ms: u64,
    ) -> Result<Grant, Denial> {
        self.shared.with_hashes(checks, slots, |hashes| {
            let (check_hashes, slot_hashes) = hashes.split_at(checks.len());
            let mut locked = Locked::new(&self.shared, hashes);
            if let Some(denial) = refusal(
                checks,
                |i| locked.level(&checks[i], check_hashes[i], now_ms),
                slots,
                |j| locked.held(&slots[j], slot_hashes[j]),
            ) {
                return Err(denial);
            }
            let mut quotas = Vec::with_capacity(checks.len());
            for (check, &hash) in checks.iter().zip(check_hashes) {
                let level = locked.consume(check, hash, now_ms);
                quotas.push(Quota::from_level(check, level));
            }
            let slots = if slots.is_empty() {
                SlotGuard::none()
            } else {
                let held = slots
                    .iter()
                    .zip(slot_hashes)
                    .map(|(slot, &hash)| locked.take(slot, hash))
                    .collect();
                SlotGuard(GuardInner::Local(LocalSlots {
                    shared: Arc::clone(&self.shared),
                    held,
                }))
            };
            Ok(Grant {
                quotas,
                slots,
                origin: Origin::Local,
            })
        })
    }

    /// [`Limiter::reconcile`]: applied at once.
    pub fn reconcile_tokens(&self, checks: &[Check<'_>], actual_tokens: u64) {
        self.reconcile_at(checks, actual_tokens, self.shared.now_ms());
    }

    fn reconcile_at(&self, checks: &[Check<'_>], actual_tokens: u64, now_ms: u64) {
        for check in checks.iter().filter(|c| c.kind == Kind::Tokens) {
            let delta = token_delta(actual_tokens, check.cost);
            if delta == 0 {
                continue;
            }
            let limit = check.clamped_limit();
            let index = bucket_index(check.scope, check.kind);
            let hash = self.shared.hash(check.scope, check.id);
            let mut shard = self.shared.shard(hash);
            if let Some(bucket) = shard.bucket_mut(index, hash, check.id) {
                let level = gcra::adjust(bucket.level_at(now_ms, limit), delta);
                *bucket = Bucket::new(level, now_ms, limit);
            } else if delta > 0 {
                let level = gcra::adjust(0, delta);
                shard.insert(index, hash, check.id, Bucket::new(level, now_ms, limit));
            }
        }
    }
}

impl Limiter for LocalLimiter {
    fn acquire<'a>(
        &'a self,
        checks: &'a [Check<'a>],
        slots: &'a [Slot<'a>],
    ) -> BoxFuture<'a, Result<Grant, Denial>> {
        Box::pin(std::future::ready(self.try_acquire(checks, slots)))
    }

    fn acquire_now(
        &self,
        checks: &[Check<'_>],
        slots: &[Slot<'_>],
    ) -> Option<Result<Grant, Denial>> {
        Some(self.try_acquire(checks, slots))
    }

    fn reconcile(&self, _grant: &Grant, checks: &[Check<'_>], actual_tokens: u64) {
        self.reconcile_tokens(checks, actual_tokens);
    }
}

impl fmt::Debug for LocalLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalLimiter")
            .field("shards", &SHARDS)
            .finish()
    }
}

/// One parallel-request slot a guard holds.
#[derive(Debug)]
struct Held {
    scope: Scope,
    hash: u64,
    id: Arc<str>,
}

/// Parallel-request slots taken on a [`LocalLimiter`]; released on drop.
pub(crate) struct LocalSlots {
    shared: Arc<Shared>,
    held: Vec<Held>,
}

impl LocalSlots {
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

impl Drop for LocalSlots {
    fn drop(&mut self) {
        for held in &self.held {
            let mut shard = self.shared.shard(held.hash);
            let table = &mut shard.in_flight[held.scope.index()];
            let found = table.find_entry(held.hash, |e| {
                e.hash == held.hash && Arc::ptr_eq(&e.id, &held.id)
            });
            if let Ok(mut entry) = found {
                entry.get_mut().count -= 1;
                if entry.get().count == 0 {
                    entry.remove();
                }
            }
        }
    }
}

impl fmt::Debug for LocalSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSlots")
            .field("held", &self.held)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::time::Duration;

    use super::*;
    use crate::policy::limits::{Tripped, PARALLEL_RETRY};

    /// Counts this thread's allocations, to hold the hot path to what the module doc claims.
    struct Counting;

    thread_local! {
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let before = ALLOCATIONS.with(Cell::get);
        let value = f();
        (value, ALLOCATIONS.with(Cell::get) - before)
    }

    fn granted(answer: Result<Grant, Denial>) -> Grant {
        answer.unwrap_or_else(|denial| panic!("refused: {denial}"))
    }

    /// Asserts a grant, and drops it.
    fn passes(answer: Result<Grant, Denial>) {
        drop(granted(answer));
    }

    fn refused(answer: Result<Grant, Denial>) -> Denial {
        match answer {
            Ok(grant) => panic!("granted: {grant:?}"),
            Err(denial) => denial,
        }
    }

    const SECOND: u64 = 1000;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn rpm_10_lets_exactly_10_of_30_concurrent_requests_through() {
        let limiter: Arc<dyn Limiter> = Arc::new(LocalLimiter::new());
        let start = Arc::new(tokio::sync::Barrier::new(30));
        let tasks: Vec<_> = (0..30)
            .map(|_| {
                let (limiter, start) = (Arc::clone(&limiter), Arc::clone(&start));
                tokio::spawn(async move {
                    let checks = [Check::requests(Scope::Key, "k", 10)];
                    start.wait().await;
                    limiter.acquire(&checks, &[]).await.is_ok()
                })
            })
            .collect();
        let mut passed = 0;
        for task in tasks {
            passed += usize::from(task.await.expect("task"));
        }
        assert_eq!(passed, 10);
    }

    #[test]
    fn exact_under_contention_from_many_threads() {
        // Eight threads, 4000 attempts on three shared buckets at one instant: exactly the limit
        // of the tightest passes, and every bucket counted exactly those.
        let limiter = LocalLimiter::new();
        let passed: usize = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|t| {
                    let limiter = &limiter;
                    scope.spawn(move || {
                        let user = if t % 2 == 0 { "u-even" } else { "u-odd" };
                        let checks = [
                            Check::requests(Scope::Key, "k", 1000),
                            Check::requests(Scope::Team, "t", 100),
                            Check::requests(Scope::User, user, 1000),
                        ];
                        (0..500)
                            .filter(|_| limiter.acquire_at(&checks, &[], 0).is_ok())
                            .count()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().expect("thread")).sum()
        });
        assert_eq!(passed, 100);
        let key = [Check::requests(Scope::Key, "k", 1000)];
        assert_eq!(
            granted(limiter.acquire_at(&key, &[], 0)).quotas[0].remaining,
            899
        );
    }

    #[test]
    fn all_or_nothing_the_key_is_not_charged_when_the_team_refuses() {
        let limiter = LocalLimiter::new();
        let both = [
            Check::requests(Scope::Key, "k", 10),
            Check::requests(Scope::Team, "t", 1),
        ];
        passes(limiter.acquire_at(&both, &[], 0));
        let denial = refused(limiter.acquire_at(&both, &[], 0));
        assert_eq!(denial.scope, Scope::Team);
        assert_eq!(denial.id, "t");
        assert_eq!(denial.tripped, Tripped::Requests);
        assert_eq!(denial.limit, 1);
        assert_eq!(denial.retry_after, Duration::from_secs(60));
        assert_eq!(denial.quotas[0].remaining, 9, "the key was not charged");
        assert_eq!(denial.quotas[1].remaining, 0);
        let key_only = granted(limiter.acquire_at(&both[..1], &[], 0));
        assert_eq!(key_only.quotas[0].remaining, 8);

        // A full slot refuses without charging the checks either.
        let slot = [Slot::new(Scope::Key, "k", 0)];
        let denial = refused(limiter.acquire_at(&both[..1], &slot, 0));
        assert_eq!(denial.tripped, Tripped::Parallel);
        assert_eq!(denial.quotas[0].remaining, 8);
    }

    #[test]
    fn tokens_are_reserved_and_a_refund_lets_the_next_request_through() {
        let limiter = LocalLimiter::new();
        let estimate = [Check::tokens(Scope::Key, "k", 1000, 600)];
        let grant = granted(limiter.acquire_at(&estimate, &[], 0));
        assert_eq!(grant.quotas[0].remaining, 400);
        let denial = refused(limiter.acquire_at(&estimate, &[], 0));
        assert_eq!(denial.tripped, Tripped::Tokens);
        // 200 tokens short, refilling at 1000 a minute: 12 s.
        assert_eq!(denial.retry_after, Duration::from_secs(12));
        assert!(!denial.can_never_pass());

        // The provider reported 100 tokens: 500 come back.
        limiter.reconcile_at(&estimate, 100, 0);
        let grant = granted(limiter.acquire_at(&estimate, &[], 0));
        assert_eq!(grant.quotas[0].remaining, 300);
        // The second used 900: 300 more are charged, nothing is left.
        limiter.reconcile_at(&estimate, 900, 0);
        let peek = [Check::tokens(Scope::Key, "k", 1000, 0)];
        assert_eq!(
            granted(limiter.acquire_at(&peek, &[], 0)).quotas[0].remaining,
            0
        );

        let too_big = [Check::tokens(Scope::Key, "other", 1000, 1001)];
        assert!(refused(limiter.acquire_at(&too_big, &[], 0)).can_never_pass());
    }

    #[test]
    fn reconcile_only_touches_tokens_checks() {
        let limiter = LocalLimiter::new();
        let checks = [
            Check::requests(Scope::Key, "k", 10),
            Check::tokens(Scope::Key, "k", 1000, 100),
        ];
        passes(limiter.acquire_at(&checks, &[], 0));
        limiter.reconcile_at(&checks, 0, 0);
        let peek = [
            Check::requests(Scope::Key, "k", 10),
            Check::tokens(Scope::Key, "k", 1000, 0),
        ];
        let grant = granted(limiter.acquire_at(&peek, &[], 0));
        assert_eq!(grant.quotas[0].remaining, 8);
        assert_eq!(grant.quotas[1].remaining, 1000);
    }

    #[test]
    fn max_parallel_slots_are_released_when_the_guard_drops() {
        let limiter = LocalLimiter::new();
        let slot = [Slot::new(Scope::Key, "k", 2)];
        let first = granted(limiter.try_acquire(&[], &slot));
        let second = granted(limiter.try_acquire(&[], &slot));
        assert_eq!(first.slots.len(), 1);
        let denial = refused(limiter.try_acquire(&[], &slot));
        assert_eq!(denial.tripped, Tripped::Parallel);
        assert_eq!((denial.scope, denial.limit), (Scope::Key, 2));
        assert_eq!(denial.retry_after, PARALLEL_RETRY);
        drop(first);
        let third = granted(limiter.try_acquire(&[], &slot));
        drop((second, third));
        let shard = limiter.shared.shard(limiter.shared.hash(Scope::Key, "k"));
        assert!(shard.in_flight[Scope::Key.index()].is_empty(), "no garbage");
    }

    #[test]
    fn remaining_and_reset_follow_the_algorithm() {
        let limiter = LocalLimiter::new();
        let rpm = [Check::requests(Scope::Key, "k", 10)];
        for _ in 0..2 {
            passes(limiter.acquire_at(&rpm, &[], 0));
        }
        let quota = granted(limiter.acquire_at(&rpm, &[], 0)).quotas[0];
        assert_eq!((quota.limit, quota.remaining), (10, 7));
        assert_eq!(quota.reset, Duration::from_secs(18));
        // 6 s later one request has drained and this one takes its place.
        let quota = granted(limiter.acquire_at(&rpm, &[], 6 * SECOND)).quotas[0];
        assert_eq!((quota.remaining, quota.reset), (7, Duration::from_secs(18)));
        // A minute after that, the bucket is full again.
        let quota = granted(limiter.acquire_at(&rpm, &[], 66 * SECOND)).quotas[0];
        assert_eq!((quota.remaining, quota.reset), (9, Duration::from_secs(6)));

        let tpm = [Check::tokens(Scope::Team, "t", 1000, 250)];
        let quota = granted(limiter.acquire_at(&tpm, &[], 0)).quotas[0];
        assert_eq!(
            (quota.remaining, quota.reset),
            (750, Duration::from_secs(15))
        );
    }

    #[test]
    fn refill_is_one_request_every_six_seconds_for_rpm_10() {
        let limiter = LocalLimiter::new();
        let rpm = [Check::requests(Scope::Key, "k", 10)];
        let passed = (0..30)
            .filter(|_| limiter.acquire_at(&rpm, &[], 0).is_ok())
            .count();
        assert_eq!(passed, 10);
        let denial = refused(limiter.acquire_at(&rpm, &[], 5_999));
        assert_eq!(denial.retry_after, Duration::from_millis(1));
        passes(limiter.acquire_at(&rpm, &[], 6 * SECOND));
        refused(limiter.acquire_at(&rpm, &[], 6 * SECOND));
    }

    #[test]
    fn the_tightest_limit_wins_and_is_named() {
        let limiter = LocalLimiter::new();
        let checks = [
            Check::requests(Scope::Key, "k", 100),
            Check::requests(Scope::Team, "t", 2),
            Check::requests(Scope::User, "u", 5),
        ];
        let grant = granted(limiter.acquire_at(&checks, &[], 0));
        let tightest = grant.tightest(Kind::Requests).expect("a requests quota");
        assert_eq!((tightest.scope, tightest.remaining), (Scope::Team, 1));
        passes(limiter.acquire_at(&checks, &[], 0));
        let denial = refused(limiter.acquire_at(&checks, &[], 0));
        assert_eq!(
            (denial.scope, denial.id.as_str(), denial.limit),
            (Scope::Team, "t", 2)
        );
        assert_eq!(denial.retry_after, Duration::from_secs(30));

        // When two refuse, the one with the longer wait is named: it is what holds the request.
        let checks = [
            Check::requests(Scope::Team, "t2", 2),
            Check::requests(Scope::Key, "k2", 1),
        ];
        passes(limiter.acquire_at(&checks, &[], 0));
        passes(limiter.acquire_at(&checks[..1], &[], 0));
        let denial = refused(limiter.acquire_at(&checks, &[], 0));
        assert_eq!((denial.scope, denial.limit), (Scope::Key, 1));
        assert_eq!(denial.retry_after, Duration::from_secs(60));
    }

    #[test]
    fn ids_of_different_scopes_do_not_share_a_bucket() {
        let limiter = LocalLimiter::new();
        passes(limiter.acquire_at(&[Check::requests(Scope::Key, "x", 1)], &[], 0));
        passes(limiter.acquire_at(&[Check::requests(Scope::Team, "x", 1)], &[], 0));
        passes(limiter.acquire_at(&[Check::tokens(Scope::Key, "x", 1, 1)], &[], 0));
    }

    #[test]
    fn subjects_spread_over_every_shard_and_scopes_and_lengths_separate_them() {
        let seed = seed();
        let mut shards = [0usize; SHARDS];
        for n in 0..SHARDS * 32 {
            shards[shard_index(subject_hash(seed, Scope::EndUser, &format!("user-{n}")))] += 1;
        }
        // 32 a shard on average; a shard choice built from the wrong bits leaves many empty.
        assert!(shards.iter().all(|&n| n > 8), "{shards:?}");
        assert_ne!(
            subject_hash(seed, Scope::Key, "x"),
            subject_hash(seed, Scope::Team, "x")
        );
        assert_ne!(
            subject_hash(seed, Scope::Key, "a"),
            subject_hash(seed, Scope::Key, "a\0")
        );
    }

    #[test]
    fn idle_buckets_are_swept() {
        let mut shard = Shard::default();
        for n in 0..SWEEP_MIN {
            let id = n.to_string();
            let hash = subject_hash(seed(), Scope::Key, &id);
            shard.insert(0, hash, &id, Bucket::new(60_000, 0, 1));
        }
        assert_eq!(shard.buckets[0].len(), SWEEP_MIN);
        // A minute later every one of them has drained: inserting one more sweeps them away.
        let hash = subject_hash(seed(), Scope::Key, "new");
        shard.insert(0, hash, "new", Bucket::new(60_000, 60_001, 1));
        assert_eq!(shard.buckets[0].len(), 1);
    }

    #[test]
    fn the_hot_path_allocates_what_the_doc_says() {
        let limiter = LocalLimiter::new();
        let checks = [
            Check::requests(Scope::Key, "k", 1000),
            Check::tokens(Scope::Key, "k", 100_000, 100),
            Check::requests(Scope::Team, "t", 1000),
        ];
        let slot = [Slot::new(Scope::Key, "k", 10)];
        let (_, none) = allocations(|| limiter.try_acquire(&[], &[]));
        assert_eq!(none, 0, "no limits, no allocation");
        // Warm up: a subject's first request allocates its entries.
        drop(granted(limiter.try_acquire(&checks, &slot)));
        let (grant, warm) = allocations(|| limiter.try_acquire(&checks, &[]));
        assert_eq!(warm, 1, "the quotas");
        let (_, dropped) = allocations(|| drop(grant));
        assert_eq!(dropped, 0);
        let (grant, boxed) = allocations(|| {
            let limiter: &dyn Limiter = &limiter;
            futures_util::FutureExt::now_or_never(limiter.acquire(&checks, &[]))
        });
        assert!(matches!(grant, Some(Ok(_))));
        assert_eq!(boxed, 2, "the quotas and the boxed future");
        let (first, with_slot) = allocations(|| limiter.try_acquire(&checks, &slot));
        assert_eq!(
            with_slot, 3,
            "the quotas, the slots held, the in-flight counter's id"
        );
        let (second, with_slot) = allocations(|| limiter.try_acquire(&checks, &slot));
        assert_eq!(with_slot, 2, "the quotas, the slots held");
        let (_, released) = allocations(|| drop((first, second)));
        assert_eq!(released, 0);
    }

    #[test]
    fn a_request_touching_more_shards_than_kept_inline_still_locks_them_all() {
        let limiter = LocalLimiter::new();
        let ids: Vec<String> = (0..40).map(|i| format!("subject-{i}")).collect();
        let checks: Vec<Check<'_>> = ids
            .iter()
            .map(|id| Check::requests(Scope::EndUser, id, 1))
            .collect();
        let grant = limiter
            .try_acquire(&checks, &[])
            .expect("every bucket has room");
        assert_eq!(grant.quotas.len(), 40);
        assert!(
            limiter.try_acquire(&checks, &[]).is_err(),
            "every bucket is full now"
        );
    }
}
