//! What one routing decision costs: `Router::pick` on a model group of 50 deployments under each
//! strategy and with every selection step switched on, next to a one-deployment group (the plain
//! path), plus a whole in-process request through `Router::chat` to a `mock_response`
//! deployment (rules, deadline, attempt bookkeeping and report included).
//!
//!     cargo bench -p switchyard --bench routing            # every case
//!     cargo bench -p switchyard --bench routing -- request # cases whose name contains "request"
//!
//! No external harness: each case is timed over 200,000 decisions, five times, and the median
//! is printed. The target of issue 4 is under 5 µs per decision with 50 deployments.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastrand::Rng;
use switchyard::router::{
    CooldownPolicy, CooldownStore, FailureKind, LocalCooldowns, LocalUsage, PickContext,
    RequestOptions, Router,
};

const DECISIONS: u32 = 200_000;
const RUNS: usize = 5;
const TARGET: Duration = Duration::from_micros(5);

fn router(yaml: &str) -> Router {
    let loaded = switchyard::config::parse(yaml, &|_| None).expect("bench config");
    Router::build(&loaded.config, &|_| None).expect("bench router")
}

/// A group `g` of `n` deployments; `params(i)` and `info(i)` add keys to entry `i`.
fn group(
    n: usize,
    strategy: &str,
    settings: &str,
    params: impl Fn(usize) -> String,
    info: impl Fn(usize) -> String,
) -> String {
    let mut yaml = String::from("model_list:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "- model_name: g\n  litellm_params: {{model: openai/m{i}, api_base: 'http://10.0.0.{i}/v1'{}}}\n  model_info: {{id: d{i}{}}}\n",
            params(i),
            info(i)
        ));
    }
    yaml.push_str(&format!(
        "router_settings:\n  routing_strategy: {strategy}\n{settings}"
    ));
    yaml
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ctx(now_ms: u64) -> PickContext<'static> {
    PickContext {
        now_ms,
        stream: false,
        region: None,
        prompt_tokens: 500,
        exclude: &[],
    }
}

fn time_picks(router: &Router, ctx: &PickContext<'_>) -> Duration {
    let group = router.group("g").expect("group g");
    let mut rng = Rng::with_seed(42);
    for _ in 0..10_000 {
        black_box(router.pick(group, ctx, &mut rng).ok());
    }
    median(
        (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..DECISIONS {
                    black_box(router.pick(black_box(group), ctx, &mut rng).ok());
                }
                started.elapsed() / DECISIONS
            })
            .collect(),
    )
}

/// One decision on a single-deployment group: the plain path.
fn single() -> Duration {
    let r = router(&group(
        1,
        "simple-shuffle",
        "",
        |_| String::new(),
        |_| String::new(),
    ));
    time_picks(&r, &ctx(r.now_ms()))
}

/// One decision among 50 deployments with every strategy input populated.
fn fifty(strategy: &str) -> Duration {
    let r = router(&group(
        50,
        strategy,
        "",
        |i| format!(", weight: {}, rpm: 100000, tpm: 10000000", 1 + i % 7),
        |i| format!(", input_cost_per_token: 0.00000{}", 1 + i % 9),
    ));
    // (latency-based-routing: no deployment is measured, so all 50 tie and every one is scored
    // and sampled: that strategy's slowest path.)
    time_picks(&r, &ctx(r.now_ms()))
}

/// Every step at once: pre-call checks, regions, order tiers, a canary, and 20 of the 50
/// deployments cooling down.
fn all_steps() -> Duration {
    let cooldowns = Arc::new(LocalCooldowns::new(CooldownPolicy {
        allowed_fails: 0,
        per_class: Default::default(),
        cooldown: Duration::from_secs(600),
        disabled: false,
    }));
    let yaml = group(
        50,
        "latency-based-routing",
        "  enable_pre_call_checks: true\n  routing_strategy_args: {lowest_latency_buffer: 0.5}\n",
        |i| {
            format!(
                ", order: {}, region_name: {}, rpm: 100000",
                1 + i % 3,
                ["eu", "us"][i % 2]
            )
        },
        |i| {
            let canary = if i == 1 { ", canary_share: 0.05" } else { "" };
            format!(", max_input_tokens: {}{canary}", 1000 * (1 + i % 10))
        },
    );
    let loaded = switchyard::config::parse(&yaml, &|_| None).expect("bench config");
    let r = Router::build_with_stores(
        &loaded.config,
        &|_| None,
        cooldowns.clone(),
        Arc::new(LocalUsage::new()),
    )
    .expect("bench router");
    let now_ms = r.now_ms();
    for index in (0..50).step_by(5).chain((1..50).step_by(5)) {
        let id = &r.deployments()[index].id;
        cooldowns.record_failure(id, now_ms, FailureKind::ServerError, None);
    }
    let ctx = PickContext {
        stream: true,
        region: Some("eu"),
        prompt_tokens: 2_500,
        ..ctx(now_ms)
    };
    time_picks(&r, &ctx)
}

/// A whole request, in process: plan, attempt, bookkeeping, report, the mock answer itself.
fn whole_request() -> Duration {
    let offline = router(
        "model_list:\n- model_name: g\n  litellm_params: {model: openai/x, mock_response: 'hi'}\n",
    );
    let http = switchyard::providers::http::HttpClient::new().expect("http client");
    let request: switchyard::schema::ChatRequest =
        serde_json::from_str(r#"{"model":"g","messages":[{"role":"user","content":"Say hello"}]}"#)
            .expect("request");
    let options = RequestOptions::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut samples = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            for _ in 0..DECISIONS / 4 {
                black_box(offline.chat(&http, &request, &options).await.ok());
            }
            samples.push(started.elapsed() / (DECISIONS / 4));
        }
        median(samples)
    })
}

/// A case's name, what it times, and whether the 5 µs target applies to it.
type Case = (String, Box<dyn Fn() -> Duration>, bool);

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let strategies = [
        "simple-shuffle",
        "least-busy",
        "latency-based-routing",
        "usage-based-routing",
        "cost-based-routing",
    ];
    let mut cases: Vec<Case> = vec![(
        "1 deployment, simple-shuffle".into(),
        Box::new(single),
        true,
    )];
    for strategy in strategies {
        cases.push((
            format!("50 deployments, {strategy}"),
            Box::new(move || fifty(strategy)),
            true,
        ));
    }
    cases.push((
        "50 deployments, all steps (checks, region, order, canary, 20 cooling down)".into(),
        Box::new(all_steps),
        true,
    ));
    cases.push((
        "whole request via Router::chat to mock_response (reference)".into(),
        Box::new(whole_request),
        false,
    ));

    println!("| case | per decision | under 5 µs |");
    println!("|---|---:|---|");
    for (name, run, has_target) in cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let cost = run();
        let verdict = match (has_target, cost < TARGET) {
            (false, _) => "-",
            (true, true) => "yes",
            (true, false) => "NO",
        };
        println!(
            "| {name} | {:.0} ns | {verdict} |",
            cost.as_secs_f64() * 1e9
        );
    }
}
