//! What one routing decision costs: `Router::pick` on a model group of 50 deployments under each
//! strategy and with every selection step switched on, next to a one-deployment group (the plain
//! path), plus a whole in-process request through `Router::chat` to a `mock_response`
//! deployment (rules, deadline, attempt bookkeeping and report included).
//!
//!     cargo bench -p switchyard --bench routing
//!
//! No external harness: each case is timed over 200,000 decisions, five times, and the median
//! is printed. The target of issue 4 is under 5 µs per decision with 50 deployments.

use std::hint::black_box;
use std::time::{Duration, Instant};

use std::sync::Arc;

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

fn main() {
    let now = Router::now_ms;
    let none = |_| String::new();
    let mut rows: Vec<(String, Duration)> = Vec::new();

    let single = router(&group(1, "simple-shuffle", "", none, none));
    let ctx = PickContext {
        now_ms: now(&single),
        stream: false,
        region: None,
        prompt_tokens: 0,
        exclude: &[],
    };
    rows.push((
        "1 deployment, simple-shuffle".into(),
        time_picks(&single, &ctx),
    ));

    for strategy in [
        "simple-shuffle",
        "least-busy",
        "latency-based-routing",
        "usage-based-routing",
        "cost-based-routing",
    ] {
        let r = router(&group(
            50,
            strategy,
            "",
            |i| format!(", weight: {}, rpm: 100000, tpm: 10000000", 1 + i % 7),
            |i| format!(", input_cost_per_token: 0.00000{}", 1 + i % 9),
        ));
        // (latency-based-routing: no deployment is measured yet, so all 50 tie and every one
        // is scored and sampled: the slowest path of that strategy.)
        let ctx = PickContext {
            now_ms: r.now_ms(),
            prompt_tokens: 500,
            ..ctx
        };
        rows.push((format!("50 deployments, {strategy}"), time_picks(&r, &ctx)));
    }

    // Every step at once: pre-call checks, regions, order tiers, a canary, and 20 of the 50
    // deployments cooling down.
    let cooldowns = Arc::new(LocalCooldowns::new(
        50,
        CooldownPolicy {
            allowed_fails: 0,
            per_class: Default::default(),
            cooldown: Duration::from_secs(600),
            disabled: false,
        },
    ));
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
        Arc::new(LocalUsage::new(50)),
    )
    .expect("bench router");
    let now_ms = r.now_ms();
    for index in (0..50).step_by(5).chain((1..50).step_by(5)) {
        cooldowns.record_failure(index, now_ms, FailureKind::ServerError, None);
    }
    let ctx = PickContext {
        now_ms,
        stream: true,
        region: Some("eu"),
        prompt_tokens: 2_500,
        exclude: &[],
    };
    rows.push((
        "50 deployments, all steps (checks, region, order, canary)".into(),
        time_picks(&r, &ctx),
    ));

    // A whole request, in process: rules, plan, attempt, report, the mock answer itself.
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
    let per_request = runtime.block_on(async {
        let mut samples = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            for _ in 0..DECISIONS / 4 {
                black_box(offline.chat(&http, &request, &options).await.ok());
            }
            samples.push(started.elapsed() / (DECISIONS / 4));
        }
        median(samples)
    });

    println!("| case | per decision | under 5 µs |");
    println!("|---|---:|---|");
    for (case, cost) in &rows {
        println!(
            "| {case} | {:.0} ns | {} |",
            cost.as_secs_f64() * 1e9,
            if *cost < TARGET { "yes" } else { "NO" }
        );
    }
    println!(
        "| whole request via Router::chat to mock_response (reference) | {:.0} ns | - |",
        per_request.as_secs_f64() * 1e9
    );
}
