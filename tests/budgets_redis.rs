//! The Redis budget ledger against the real Redis at 127.0.0.1:6379: all or nothing across a
//! request's budgets, the lone-request rule, windows, holds of a crashed instance that expire,
//! seeding after a Redis restart, two instances on one budget, and the local fallback when Redis
//! is gone.
//!
//! Each test uses its own random key prefix, so runs never collide. Without Redis the tests skip
//! with a message, unless `CI` is set: there they fail.

mod common;

use common::redis_proxy::{redis_is_up, Proxy};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::money::Nanos;
use switchyard::policy::budget::{
    BudgetCheck, BudgetError, Budgets, RedisLedger, RedisLedgerOptions, Reservation, Seed,
};
use switchyard::policy::limits::Scope;
use tokio::task::JoinSet;

const URL: &str = "redis://127.0.0.1:6379";

/// Options with a fresh key prefix; `patient` ones wait long enough on Redis that a loaded test
/// machine never falls back, for the tests that count exactly.
fn options(patient: bool) -> RedisLedgerOptions {
    let mut options = RedisLedgerOptions {
        key_prefix: format!("{{sy-test-{:016x}}}:budget", fastrand::u64(..)),
        ..RedisLedgerOptions::default()
    };
    if patient {
        options.call_timeout = Duration::from_secs(5);
    }
    options
}

async fn connect(url: &str, options: &RedisLedgerOptions) -> Budgets {
    Budgets::Redis(
        RedisLedger::connect(url, options.clone())
            .await
            .expect("valid url and prefix"),
    )
}

fn shared(budgets: &Budgets) -> &RedisLedger {
    match budgets {
        Budgets::Redis(ledger) => ledger,
        Budgets::Local(_) => unreachable!("made by `connect`"),
    }
}

fn check(scope: Scope, id: &'static str, max: i64) -> BudgetCheck<'static> {
    BudgetCheck {
        scope,
        id,
        max: Nanos(max),
        window_start: 0,
        window_end: 0,
        soft: None,
    }
}

/// Reads an account straight from Redis.
struct Peek {
    conn: redis::aio::MultiplexedConnection,
    prefix: String,
}

impl Peek {
    async fn new(options: &RedisLedgerOptions) -> Peek {
        let client = redis::Client::open(URL).expect("url");
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        Peek {
            conn,
            prefix: options.key_prefix.clone(),
        }
    }

    fn account(&self, scope: &str, id: &str) -> String {
        format!("{}:{scope}:spend:{id}", self.prefix)
    }

    fn holds(&self, scope: &str, id: &str) -> String {
        format!("{}:{scope}:holds:{id}", self.prefix)
    }

    async fn spent(&mut self, scope: &str, id: &str) -> i64 {
        let spent: Option<i64> = redis::cmd("HGET")
            .arg(self.account(scope, id))
            .arg("s")
            .query_async(&mut self.conn)
            .await
            .expect("hget");
        spent.unwrap_or(0)
    }

    async fn in_flight(&mut self, scope: &str, id: &str) -> i64 {
        redis::cmd("ZCARD")
            .arg(self.holds(scope, id))
            .query_async(&mut self.conn)
            .await
            .expect("zcard")
    }

    async fn pttl(&mut self, key: String) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut self.conn)
            .await
            .expect("pttl")
    }

    /// Waits until no reservation of the account is in flight (settlements are spawned), then
    /// returns its spend.
    async fn settled(&mut self, scope: &str, id: &str) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.in_flight(scope, id).await > 0 {
            assert!(Instant::now() < deadline, "settlements never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.spent(scope, id).await
    }

    /// What a Redis restart without persistence does to these accounts (and what a test does
    /// when it ends: lifetime accounts never expire); how many keys went.
    async fn forget_everything(&mut self) -> usize {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!(
                "{}:*",
                self.prefix.replace('{', "\\{").replace('}', "\\}")
            ))
            .query_async(&mut self.conn)
            .await
            .expect("keys");
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut self.conn)
                .await
                .expect("del");
        }
        keys.len()
    }
}

fn reserved(answer: Result<Reservation, BudgetError>) -> Reservation {
    let reservation = answer.unwrap_or_else(|error| panic!("refused: {error}"));
    assert!(
        matches!(reservation, Reservation::Redis(_)),
        "decided locally: {reservation:?}"
    );
    reservation
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing_across_a_requests_budgets() {
    if !redis_is_up().await {
        return;
    }
    let options = options(true);
    let budgets = connect(URL, &options).await;
    let mut peek = Peek::new(&options).await;
    let team = check(Scope::Team, "t", 10);
    let spend = reserved(budgets.reserve(&[team], Nanos(1)).await);
    budgets.settle(spend, Nanos(10));
    assert_eq!(peek.settled("team", "t").await, 10);

    let key = check(Scope::Key, "k", 1_000);
    let error = budgets.reserve(&[key, team], Nanos(1)).await.unwrap_err();
    assert_eq!(
        error,
        BudgetError::Exceeded {
            scope: Scope::Team,
            id: "t".into(),
            spent: Nanos(10),
            max: Nanos(10),
        }
    );
    assert_eq!(
        error.to_string(),
        "Budget has been exceeded! Current cost: 0.00000001, Max budget: 0.00000001"
    );
    // Nothing was reserved on the key: its whole budget fits one request, and that one is in
    // flight on its own (a second is refused because of it).
    assert_eq!(peek.in_flight("key", "k").await, 0);
    let whole = reserved(budgets.reserve(&[key], Nanos(1_000)).await);
    let busy = budgets.reserve(&[key], Nanos(1)).await.unwrap_err();
    assert!(
        matches!(
            busy,
            BudgetError::Reserved {
                in_flight: 1,
                reserved: Nanos(1_000),
                ..
            }
        ),
        "{busy:?}"
    );
    budgets.settle(whole, Nanos(0));
    assert_eq!(peek.settled("key", "k").await, 0);
    assert_eq!(shared(&budgets).fallbacks(), 0);
    peek.forget_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_request_may_exceed_what_is_left_but_not_while_others_are_in_flight() {
    if !redis_is_up().await {
        return;
    }
    let options = options(true);
    let budgets = connect(URL, &options).await;
    let mut peek = Peek::new(&options).await;
    let budget = [check(Scope::Key, "k", 100)];
    let first = reserved(budgets.reserve(&budget, Nanos(500)).await);
    let busy = budgets.reserve(&budget, Nanos(500)).await.unwrap_err();
    assert!(
        matches!(busy, BudgetError::Reserved { in_flight: 1, .. }),
        "{busy:?}"
    );
    budgets.settle(first, Nanos(40));
    assert_eq!(peek.settled("key", "k").await, 40);
    let second = reserved(budgets.reserve(&budget, Nanos(500)).await);
    budgets.settle(second, Nanos(70));
    assert_eq!(peek.settled("key", "k").await, 110);
    assert!(matches!(
        budgets.reserve(&budget, Nanos(1)).await,
        Err(BudgetError::Exceeded {
            spent: Nanos(110),
            ..
        })
    ));
    peek.forget_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_starts_over_in_a_new_window_and_old_windows_expire() {
    if !redis_is_up().await {
        return;
    }
    let options = options(true);
    let budgets = connect(URL, &options).await;
    let mut peek = Peek::new(&options).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 86_400_000;
    let today = BudgetCheck {
        window_start: now - 1_000,
        window_end: now - 1_000 + day,
        ..check(Scope::User, "u", 100)
    };
    let hold = reserved(budgets.reserve(&[today], Nanos(1)).await);
    budgets.settle(hold, Nanos(100));
    assert_eq!(peek.settled("user", "u").await, 100);
    assert!(budgets.reserve(&[today], Nanos(1)).await.is_err());
    // The account goes some time after its window ends (hold TTL plus an hour), not before.
    let ttl = peek.pttl(peek.account("user", "u")).await;
    let window_left = day - 1_000;
    assert!(ttl > window_left, "{ttl}");
    assert!(ttl <= window_left + 15 * 60_000 + 3_600_000, "{ttl}");

    // An instance whose clock says yesterday does not roll the account back.
    let yesterday = BudgetCheck {
        window_start: today.window_start - day,
        window_end: today.window_start,
        ..today
    };
    assert!(budgets.reserve(&[yesterday], Nanos(1)).await.is_err());
    let tomorrow = BudgetCheck {
        window_start: today.window_end,
        window_end: today.window_end + day,
        ..today
    };
    let hold = reserved(budgets.reserve(&[tomorrow], Nanos(1)).await);
    budgets.settle(hold, Nanos(7));
    assert_eq!(peek.settled("user", "u").await, 7);
    // A budget without a duration never expires; the set of its holds goes with the last hold.
    let lifetime = reserved(
        budgets
            .reserve(&[check(Scope::Key, "life", 100)], Nanos(1))
            .await,
    );
    let holds_ttl = peek.pttl(peek.holds("key", "life")).await;
    assert!(holds_ttl > 0 && holds_ttl <= 15 * 60_000, "{holds_ttl}");
    budgets.settle(lifetime, Nanos(1));
    assert_eq!(peek.settled("key", "life").await, 1);
    assert_eq!(peek.pttl(peek.account("key", "life")).await, -1);
    peek.forget_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holds_of_a_crashed_instance_stop_counting_after_their_ttl() {
    if !redis_is_up().await {
        return;
    }
    let options = options(true);
    let crashed = connect(
        URL,
        &RedisLedgerOptions {
            hold_ttl: Duration::from_millis(300),
            ..options.clone()
        },
    )
    .await;
    let budget = [check(Scope::Team, "t", 100)];
    // Reserved, then never settled: the instance died.
    let lost = reserved(crashed.reserve(&budget, Nanos(90)).await);
    std::mem::forget(lost);
    drop(crashed);

    let survivor = connect(URL, &options).await;
    let mut peek = Peek::new(&options).await;
    let busy = survivor.reserve(&budget, Nanos(50)).await.unwrap_err();
    assert!(
        matches!(
            busy,
            BudgetError::Reserved {
                reserved: Nanos(90),
                in_flight: 1,
                ..
            }
        ),
        "{busy:?}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The lost 90 no longer counts: two of 50 fit the budget of 100 together.
    let a = reserved(survivor.reserve(&budget, Nanos(50)).await);
    let b = reserved(survivor.reserve(&budget, Nanos(50)).await);
    assert!(matches!(
        survivor.reserve(&budget, Nanos(1)).await,
        Err(BudgetError::Reserved {
            in_flight: 2,
            reserved: Nanos(100),
            ..
        })
    ));
    survivor.settle(a, Nanos(20));
    survivor.settle(b, Nanos(20));
    assert_eq!(peek.settled("team", "t").await, 40);
    peek.forget_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_raises_never_lowers_and_a_restarted_redis_learns_again() {
    if !redis_is_up().await {
        return;
    }
    let options = options(true);
    let budgets = connect(URL, &options).await;
    let mut peek = Peek::new(&options).await;
    let seed = |spent| Seed {
        scope: Scope::Key,
        id: "k".into(),
        window: (0, 0),
        spent: Nanos(spent),
    };
    let hold = reserved(
        budgets
            .reserve(&[check(Scope::Key, "k", 100)], Nanos(1))
            .await,
    );
    budgets.settle(hold, Nanos(30));
    assert_eq!(peek.settled("key", "k").await, 30);
    shared(&budgets).seed(&[seed(20)]).await;
    assert_eq!(peek.spent("key", "k").await, 30, "a seed never lowers");
    // Redis restarts empty; the next round of seeding brings back what the logs say.
    assert!(peek.forget_everything().await > 0);
    shared(&budgets).seed(&[seed(100)]).await;
    assert_eq!(peek.spent("key", "k").await, 100);
    assert!(matches!(
        budgets
            .reserve(&[check(Scope::Key, "k", 100)], Nanos(1))
            .await,
        Err(BudgetError::Exceeded { .. })
    ));
    peek.forget_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_fifty_tasks_overshoot_a_budget_by_at_most_one_request() {
    if !redis_is_up().await {
        return;
    }
    // A $0.10 budget; each request's worst case is 3 cents, its real cost 2.5 cents.
    let options = options(true);
    let instances = [
        Arc::new(connect(URL, &options).await),
        Arc::new(connect(URL, &options).await),
    ];
    let mut peek = Peek::new(&options).await;
    let max = Nanos::from_usd(0.10);
    let (worst, cost) = (Nanos::from_usd(0.03), Nanos::from_usd(0.025));
    let start = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = JoinSet::new();
    for i in 0..50 {
        let budgets = Arc::clone(&instances[i % 2]);
        let start = Arc::clone(&start);
        tasks.spawn(async move {
            let budget = [check(Scope::Key, "shared", max.0)];
            start.wait().await;
            let mut admitted = 0;
            for _ in 0..400 {
                match budgets.reserve(&budget, worst).await {
                    Ok(hold) => {
                        admitted += 1;
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(1..5))).await;
                        budgets.settle(hold, cost);
                    }
                    Err(BudgetError::Exceeded { .. }) => return admitted,
                    Err(BudgetError::Reserved { .. }) => {
                        tokio::time::sleep(Duration::from_millis(2)).await
                    }
                }
            }
            panic!("the budget was never used up");
        });
    }
    let mut admitted = 0;
    while let Some(n) = tasks.join_next().await {
        admitted += n.expect("task");
    }
    let spent = peek.settled("key", "shared").await;
    assert!(spent <= max.0 + cost.0, "spent {spent} of {max}");
    assert!(spent >= max.0, "the budget was used up: {spent}");
    assert_eq!(spent, cost.0 * admitted);
    for budgets in &instances {
        assert_eq!(shared(budgets).fallbacks(), 0);
    }
    peek.forget_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_the_settlements_on_their_way() {
    if !redis_is_up().await {
        return;
    }
    let proxy = Proxy::start(0).await;
    let options = options(true);
    let budgets = connect(&proxy.url(), &options).await;
    let mut peek = Peek::new(&options).await;
    let budget = [check(Scope::Key, "k", 1_000_000)];
    let mut holds = Vec::new();
    for _ in 0..20 {
        holds.push(reserved(budgets.reserve(&budget, Nanos(10)).await));
    }
    // Redis is slow for a moment just as the last requests finish, at shutdown.
    proxy.frozen.store(true, Ordering::Relaxed);
    for hold in holds {
        budgets.settle(hold, Nanos(1));
    }
    let frozen = Arc::clone(&proxy.frozen);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        frozen.store(false, Ordering::Relaxed);
    });
    assert_eq!(peek.in_flight("key", "k").await, 20);
    let started = Instant::now();
    budgets.drain(Duration::from_secs(3)).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(peek.in_flight("key", "k").await, 0);
    assert_eq!(peek.spent("key", "k").await, 20);
    assert_eq!(budgets.settle_failures(), 0);
    proxy.stop();
    peek.forget_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_from_the_local_ledger_at_once() {
    // Nothing listens on port 1: connection refused.
    let started = Instant::now();
    let budgets = connect("redis://127.0.0.1:1", &options(false)).await;
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert!(!budgets.healthy());
    assert_eq!(shared(&budgets).outages(), 1);
    let budget = [check(Scope::Key, "k", 100)];
    for _ in 0..2 {
        let started = Instant::now();
        let hold = budgets.reserve(&budget, Nanos(10)).await.expect("fits");
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(matches!(hold, Reservation::Local(_)));
        budgets.settle(hold, Nanos(50));
    }
    // Budgets still hold, per instance; settled locally at once.
    assert_eq!(budgets.local().spent(Scope::Key, "k"), Nanos(100));
    assert!(matches!(
        budgets.reserve(&budget, Nanos(1)).await,
        Err(BudgetError::Exceeded { .. })
    ));
    assert_eq!(budgets.fallbacks(), 3);
    assert_eq!(shared(&budgets).outages(), 1, "one outage, reported once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_one_timeout_and_a_lost_settlement_counts_locally() {
    if !redis_is_up().await {
        return;
    }
    let proxy = Proxy::start(0).await;
    let options = RedisLedgerOptions {
        connect_timeout: Duration::from_millis(300),
        ..options(false)
    };
    let budgets = connect(&proxy.url(), &options).await;
    let budget = [check(Scope::Key, "k", 1_000)];
    let mut in_redis = None;
    // A loaded machine may take longer than the call timeout once; Redis is there.
    for _ in 0..20 {
        match budgets.reserve(&budget, Nanos(10)).await.expect("fits") {
            hold @ Reservation::Redis(_) => {
                in_redis = Some(hold);
                break;
            }
            local => {
                budgets.settle(local, Nanos(0));
                while !budgets.healthy() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    let in_redis = in_redis.expect("Redis answered");
    let fallbacks = budgets.fallbacks();

    proxy.frozen.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let hold = budgets.reserve(&budget, Nanos(10)).await.expect("fits");
    let waited = started.elapsed();
    assert!(matches!(hold, Reservation::Local(_)));
    assert!(waited >= options.call_timeout, "{waited:?}");
    assert!(waited < Duration::from_millis(250), "{waited:?}");
    assert!(!budgets.healthy());
    // While unhealthy, requests do not wait on Redis at all.
    for _ in 0..5 {
        let started = Instant::now();
        let local = budgets.reserve(&budget, Nanos(10)).await.expect("fits");
        assert!(matches!(local, Reservation::Local(_)));
        assert!(started.elapsed() < Duration::from_millis(20));
        budgets.settle(local, Nanos(0));
    }
    budgets.settle(hold, Nanos(0));
    assert_eq!(budgets.fallbacks(), fallbacks + 6);
    assert_eq!(shared(&budgets).outages(), 1);

    // The request reserved in Redis finishes while Redis hangs: its cost counts here.
    budgets.settle(in_redis, Nanos(123));
    let deadline = Instant::now() + Duration::from_secs(3);
    while budgets.settle_failures() == 0 {
        assert!(Instant::now() < deadline, "the settlement never gave up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(budgets.local().spent(Scope::Key, "k"), Nanos(123));

    proxy.frozen.store(false, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !budgets.healthy() {
        assert!(
            Instant::now() < deadline,
            "the ledger never saw Redis again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = reserved(budgets.reserve(&budget, Nanos(10)).await);
    budgets.settle(again, Nanos(0));
    proxy.stop();
    Peek::new(&options).await.forget_everything().await;
}

/// Everything logged, for the test that looks for the soft-budget alert.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn alerts(&self) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches("soft_budget_crossed")
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_budget_alert_fires_once_when_a_settlement_crosses_it() {
    if !redis_is_up().await {
        return;
    }
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The settlements run on the runtime's threads: the subscriber must be the global one (each
    // test is a process of its own under nextest; under `cargo test` the first one wins).
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("skipping: another test set the global subscriber first");
        return;
    }
    let options = options(true);
    let instances = [connect(URL, &options).await, connect(URL, &options).await];
    let mut peek = Peek::new(&options).await;
    let budget = [BudgetCheck {
        soft: Some(Nanos(50)),
        ..check(Scope::Key, "k", 100)
    }];
    for (i, cost) in [30, 30, 10].into_iter().enumerate() {
        let budgets = &instances[i % 2];
        let hold = reserved(budgets.reserve(&budget, Nanos(1)).await);
        budgets.settle(hold, Nanos(cost));
        peek.settled("key", "k").await;
        // The alert is logged when the script's answer is back, a moment after Redis settled.
        let deadline = Instant::now() + Duration::from_millis(300);
        while logs.alerts() < usize::from(i > 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(logs.alerts(), usize::from(i > 0), "after settlement {i}");
    }
    peek.forget_everything().await;
}
