//! The Redis rate limiter against the real Redis at 127.0.0.1:6379: exact across instances, and
//! still answering (from its local fallback, within its timeout) when Redis is gone.
//!
//! Each test uses its own random key prefix, so runs never collide. Without Redis the tests skip
//! with a message, unless `CI` is set: there they fail.

mod common;

use common::redis_proxy::{redis_is_up, Proxy};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::policy::limits::{
    Check, Grant, Kind, Limiter, RedisLimiter, RedisOptions, Scope, Slot, Tripped,
};
use tokio::task::JoinSet;

/// Options with a fresh key prefix; `patient` ones wait long enough on Redis that a loaded test
/// machine never falls back, for the tests that count exactly.
fn options(patient: bool) -> RedisOptions {
    let mut options = RedisOptions {
        key_prefix: format!("{{sy-test-{:016x}}}:rl", fastrand::u64(..)),
        ..RedisOptions::default()
    };
    if patient {
        options.call_timeout = Duration::from_secs(5);
    }
    options
}

async fn connect(url: &str, options: &RedisOptions) -> RedisLimiter {
    RedisLimiter::connect(url, options.clone())
        .await
        .expect("valid url and prefix")
}

fn granted(answer: Result<Grant, switchyard::policy::limits::Denial>) -> Grant {
    answer.unwrap_or_else(|denial| panic!("refused: {denial}"))
}

/// Fires `n` requests of one key at once across `limiters` (round robin) and counts the grants.
async fn storm(limiters: &[RedisLimiter], n: usize, rpm: u64) -> usize {
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let limiter = limiters[i % limiters.len()].clone();
        let start = Arc::clone(&start);
        tasks.spawn(async move {
            let checks = [Check::requests(Scope::Key, "storm", rpm)];
            start.wait().await;
            limiter.acquire(&checks, &[]).await.is_ok()
        });
    }
    let mut passed = 0;
    while let Some(ok) = tasks.join_next().await {
        passed += usize::from(ok.expect("task"));
    }
    passed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_10_lets_exactly_10_of_30_concurrent_requests_through() {
    if !redis_is_up().await {
        return;
    }
    let limiter = connect("redis://127.0.0.1:6379", &options(true)).await;
    assert_eq!(storm(std::slice::from_ref(&limiter), 30, 10).await, 10);
    assert!(limiter.healthy());
    assert_eq!(limiter.fallbacks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_limit_exactly() {
    if !redis_is_up().await {
        return;
    }
    // Two limiters, two connections: what two gateway instances have.
    let options = options(true);
    let a = connect("redis://127.0.0.1:6379", &options).await;
    let b = connect("redis://127.0.0.1:6379", &options).await;
    assert_eq!(storm(&[a.clone(), b.clone()], 200, 50).await, 50);
    assert_eq!((a.fallbacks(), b.fallbacks()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing_with_the_same_numbers_as_the_local_limiter() {
    if !redis_is_up().await {
        return;
    }
    let limiter = connect("redis://127.0.0.1:6379", &options(true)).await;
    let both = [
        Check::requests(Scope::Key, "k", 10),
        Check::requests(Scope::Team, "t", 1),
    ];
    let grant = granted(limiter.acquire(&both, &[]).await);
    assert!(!grant.is_local());
    let denial = limiter
        .acquire(&both, &[])
        .await
        .expect_err("the team is full");
    assert_eq!((denial.scope, denial.id.as_str()), (Scope::Team, "t"));
    assert_eq!((denial.tripped, denial.limit), (Tripped::Requests, 1));
    assert!(denial.retry_after > Duration::from_secs(59));
    assert!(denial.retry_after <= Duration::from_secs(60));
    assert_eq!(denial.quotas[0].remaining, 9, "the key was not charged");

    // rpm 10 after three requests: 7 left, full again in 18 s (less the few ms that passed).
    let key = [Check::requests(Scope::Key, "k", 10)];
    drop(granted(limiter.acquire(&key, &[]).await));
    let quota = granted(limiter.acquire(&key, &[]).await).quotas[0];
    assert_eq!((quota.limit, quota.remaining), (10, 7));
    assert!(quota.reset > Duration::from_millis(17_500), "{quota:?}");
    assert!(quota.reset <= Duration::from_secs(18), "{quota:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_reserved_and_reconciled() {
    if !redis_is_up().await {
        return;
    }
    let limiter = connect("redis://127.0.0.1:6379", &options(true)).await;
    let estimate = [Check::tokens(Scope::Key, "k", 1000, 600)];
    let grant = granted(limiter.acquire(&estimate, &[]).await);
    assert_eq!(
        grant.quota(Scope::Key, Kind::Tokens).map(|q| q.remaining),
        Some(400)
    );
    let denial = limiter.acquire(&estimate, &[]).await.expect_err("400 left");
    assert_eq!(denial.tripped, Tripped::Tokens);

    // The provider reported 100: the refund lets the next request through (reconcile is fire and
    // forget, so wait for it).
    limiter.reconcile(&grant, &estimate, 100);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match limiter.acquire(&estimate, &[]).await {
            Ok(grant) => {
                assert!(grant.quotas[0].remaining >= 300);
                break;
            }
            Err(denial) if Instant::now() < deadline => {
                let _ = denial;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(denial) => panic!("the refund never arrived: {denial}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_parallel_holds_across_instances_and_frees_on_drop() {
    if !redis_is_up().await {
        return;
    }
    let options = options(true);
    let a = connect("redis://127.0.0.1:6379", &options).await;
    let b = connect("redis://127.0.0.1:6379", &options).await;
    let slot = [Slot::new(Scope::Key, "k", 3)];
    let a1 = granted(a.acquire(&[], &slot).await);
    let _a2 = granted(a.acquire(&[], &slot).await);
    let b1 = granted(b.acquire(&[], &slot).await);
    assert_eq!(b1.slots.len(), 1);
    for limiter in [&a, &b] {
        let denial = limiter
            .acquire(&[], &slot)
            .await
            .expect_err("three in flight");
        assert_eq!((denial.tripped, denial.limit), (Tripped::Parallel, 3));
    }
    drop(b1);
    let deadline = Instant::now() + Duration::from_secs(2);
    let a3 = loop {
        match a.acquire(&[], &slot).await {
            Ok(grant) => break grant,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(denial) => panic!("the slot was never released: {denial}"),
        }
    };
    drop((a1, a3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_when_their_bucket_drains() {
    if !redis_is_up().await {
        return;
    }
    let options = options(true);
    let limiter = connect("redis://127.0.0.1:6379", &options).await;
    let checks = [Check::requests(Scope::Key, "k", 10)];
    let slot = [Slot::new(Scope::Key, "k", 1)];
    let grant = granted(limiter.acquire(&checks, &slot).await);

    let client = redis::Client::open("redis://127.0.0.1:6379").expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let prefix = &options.key_prefix;
    let bucket: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}:key:requests:k"))
        .query_async(&mut conn)
        .await
        .expect("pttl");
    // One request of rpm 10 drains in 6 s (plus a second of slack).
    assert!((6_000..=7_000).contains(&bucket), "bucket ttl {bucket}");
    let leases: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}:key:parallel:k"))
        .query_async(&mut conn)
        .await
        .expect("pttl");
    assert!(leases > 0 && leases <= 15 * 60 * 1000, "lease ttl {leases}");
    drop(grant);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_from_the_local_limiter_at_once() {
    // Nothing listens on port 1: connection refused.
    let started = Instant::now();
    let limiter = connect("redis://127.0.0.1:1", &options(false)).await;
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert!(!limiter.healthy());
    assert_eq!(limiter.outages(), 1);

    let checks = [Check::requests(Scope::Key, "k", 2)];
    for _ in 0..2 {
        let started = Instant::now();
        let grant = granted(limiter.acquire(&checks, &[]).await);
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(grant.is_local());
    }
    // Limits still hold, per instance.
    let denial = limiter.acquire(&checks, &[]).await.expect_err("rpm 2");
    assert_eq!(denial.scope, Scope::Key);
    assert_eq!(limiter.fallbacks(), 3);
    assert_eq!(limiter.outages(), 1, "one outage, reported once");
}

async fn wait_until_healthy(limiter: &RedisLimiter) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !limiter.healthy() {
        assert!(
            Instant::now() < deadline,
            "the limiter never saw Redis again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_one_timeout_then_nothing_and_is_found_again() {
    if !redis_is_up().await {
        return;
    }
    let proxy = Proxy::start(0).await;
    let options = options(false);
    let limiter = connect(&proxy.url(), &options).await;
    let checks = [Check::requests(Scope::Key, "k", 100)];
    assert!(!granted(limiter.acquire(&checks, &[]).await).is_local());

    proxy.frozen.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let grant = granted(limiter.acquire(&checks, &[]).await);
    let waited = started.elapsed();
    assert!(grant.is_local());
    assert!(waited >= options.call_timeout, "{waited:?}");
    assert!(waited < Duration::from_millis(200), "{waited:?}");
    assert!(!limiter.healthy());
    // While unhealthy, requests do not wait on Redis at all.
    for _ in 0..5 {
        let started = Instant::now();
        assert!(granted(limiter.acquire(&checks, &[]).await).is_local());
        assert!(started.elapsed() < Duration::from_millis(20));
    }
    assert_eq!(limiter.outages(), 1);
    assert_eq!(limiter.fallbacks(), 6);

    proxy.frozen.store(false, Ordering::Relaxed);
    wait_until_healthy(&limiter).await;
    assert!(!granted(limiter.acquire(&checks, &[]).await).is_local());
    proxy.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_redis_is_reconnected_when_it_returns() {
    if !redis_is_up().await {
        return;
    }
    let proxy = Proxy::start(0).await;
    let limiter = connect(&proxy.url(), &options(false)).await;
    let checks = [Check::requests(Scope::Key, "k", 100)];
    assert!(!granted(limiter.acquire(&checks, &[]).await).is_local());

    let port = proxy.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    assert!(granted(limiter.acquire(&checks, &[]).await).is_local());
    assert!(started.elapsed() < Duration::from_millis(200));
    assert!(!limiter.healthy());

    let proxy = Proxy::start(port).await;
    wait_until_healthy(&limiter).await;
    assert!(!granted(limiter.acquire(&checks, &[]).await).is_local());
    assert_eq!(limiter.outages(), 1);
    proxy.stop();
}
