//! Selection under each strategy: seeded draws, with bounds of about four standard deviations
//! so a correct implementation fails with probability below 1e-4 (and, being seeded, never).

use std::time::Duration;

use fastrand::Rng;

use super::*;

fn router(yaml: &str) -> Router {
    let loaded = crate::config::parse(yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    Router::build(&loaded.config, &|_| None).unwrap()
}

/// `model_list` entries of group `g`: `(id, extra litellm_params, extra model_info)`.
fn group_yaml(strategy: &str, entries: &[(&str, &str, &str)], settings: &str) -> String {
    let mut yaml = String::from("model_list:\n");
    for (id, params, info) in entries {
        yaml.push_str(&format!(
            "- model_name: g\n  litellm_params: {{model: openai/{id}, api_base: 'http://{id}'{params}}}\n  model_info: {{id: {id}{info}}}\n"
        ));
    }
    yaml.push_str(&format!(
        "router_settings:\n  routing_strategy: {strategy}\n{settings}"
    ));
    yaml
}

fn ctx(now_ms: u64) -> PickContext<'static> {
    PickContext {
        now_ms,
        stream: false,
        region: None,
        prompt_tokens: 0,
        exclude: &[],
    }
}

/// Picks `draws` times and counts picks per deployment id, in group order.
fn counts(r: &Router, draws: usize, ctx: &PickContext<'_>, seed: u64) -> Vec<(String, usize)> {
    let group = r.group("g").unwrap();
    let mut rng = Rng::with_seed(seed);
    let mut counts: Vec<(String, usize)> = group
        .deployments
        .iter()
        .map(|d| (d.id.clone(), 0))
        .collect();
    for _ in 0..draws {
        let picked = r.pick(group, ctx, &mut rng).unwrap();
        counts
            .iter_mut()
            .find(|(id, _)| *id == picked.deployment.id)
            .unwrap()
            .1 += 1;
    }
    counts
}

fn count_of(counts: &[(String, usize)], id: &str) -> usize {
    counts.iter().find(|(i, _)| i == id).unwrap().1
}

fn assert_share(counts: &[(String, usize)], id: &str, expected: f64, draws: usize) {
    let n = draws as f64;
    let sd = (n * expected * (1.0 - expected)).sqrt();
    let got = count_of(counts, id) as f64;
    assert!(
        (got - n * expected).abs() <= 4.0 * sd + 1.0,
        "{id}: {got} of {n}, expected {:.0} ± {:.0}: {counts:?}",
        n * expected,
        4.0 * sd
    );
}

const NOW: u64 = 1_700_000_000_000;

#[test]
fn simple_shuffle_follows_weights_then_rpm_then_equal() {
    let r = router(&group_yaml(
        "simple-shuffle",
        &[("a", ", weight: 9", ""), ("b", ", weight: 1", "")],
        "",
    ));
    let c = counts(&r, 10_000, &ctx(NOW), 7);
    assert_share(&c, "a", 0.9, 10_000);

    let r = router(&group_yaml(
        "simple-shuffle",
        &[("a", ", rpm: 300", ""), ("b", ", rpm: 100", "")],
        "",
    ));
    let c = counts(&r, 10_000, &ctx(NOW), 8);
    assert_share(&c, "a", 0.75, 10_000);

    let r = router(&group_yaml(
        "simple-shuffle",
        &[("a", "", ""), ("b", "", ""), ("c", "", "")],
        "",
    ));
    let c = counts(&r, 9_000, &ctx(NOW), 9);
    for id in ["a", "b", "c"] {
        assert_share(&c, id, 1.0 / 3.0, 9_000);
    }
}

#[test]
fn least_busy_picks_the_fewest_in_flight_and_breaks_ties_at_random() {
    let r = router(&group_yaml(
        "least-busy",
        &[("a", "", ""), ("b", "", ""), ("c", "", "")],
        "",
    ));
    let group = r.group("g").unwrap();
    for _ in 0..3 {
        group.deployments[0].stats.start();
    }
    group.deployments[2].stats.start();
    let c = counts(&r, 1_000, &ctx(NOW), 1);
    assert_eq!(count_of(&c, "b"), 1_000, "{c:?}");
    group.deployments[2].stats.finish();
    let c = counts(&r, 4_000, &ctx(NOW), 2);
    assert_eq!(count_of(&c, "a"), 0);
    assert_share(&c, "b", 0.5, 4_000);
    assert_share(&c, "c", 0.5, 4_000);
}

#[test]
fn latency_based_prefers_unmeasured_then_fastest_within_the_buffer() {
    let r = router(&group_yaml(
        "latency-based-routing",
        &[("a", "", ""), ("b", "", ""), ("c", "", "")],
        "",
    ));
    let group = r.group("g").unwrap();
    group.deployments[0]
        .stats
        .record_success(Duration::from_millis(100), false);
    group.deployments[1]
        .stats
        .record_success(Duration::from_millis(50), false);
    let c = counts(&r, 100, &ctx(NOW), 3);
    assert_eq!(count_of(&c, "c"), 100, "unmeasured is tried first: {c:?}");
    group.deployments[2]
        .stats
        .record_success(Duration::from_millis(200), false);
    let c = counts(&r, 100, &ctx(NOW), 3);
    assert_eq!(count_of(&c, "b"), 100, "{c:?}");
    // Streams go by time to first token.
    group.deployments[2]
        .stats
        .record_success(Duration::from_millis(5), true);
    group.deployments[1]
        .stats
        .record_success(Duration::from_millis(500), true);
    group.deployments[0]
        .stats
        .record_success(Duration::from_millis(500), true);
    let stream = PickContext {
        stream: true,
        ..ctx(NOW)
    };
    let c = counts(&r, 100, &stream, 3);
    assert_eq!(count_of(&c, "c"), 100, "{c:?}");

    // With a buffer of 100%, everything up to twice the fastest shares the traffic.
    let r = router(&group_yaml(
        "latency-based-routing",
        &[("a", "", ""), ("b", "", ""), ("c", "", "")],
        "  routing_strategy_args: {lowest_latency_buffer: 1.0}\n",
    ));
    let group = r.group("g").unwrap();
    for (i, ms) in [(0, 100), (1, 50), (2, 200)] {
        group.deployments[i]
            .stats
            .record_success(Duration::from_millis(ms), false);
    }
    let c = counts(&r, 4_000, &ctx(NOW), 4);
    assert_eq!(count_of(&c, "c"), 0);
    assert_share(&c, "a", 0.5, 4_000);
}

#[test]
fn usage_based_balances_tokens_and_respects_limits() {
    let r = router(&group_yaml(
        "usage-based-routing",
        &[("a", ", tpm: 100000", ""), ("b", ", rpm: 2", "")],
        "",
    ));
    let group = r.group("g").unwrap();
    r.usage.add(&group.deployments[0].id, NOW, 0, 5_000);
    r.usage.add(&group.deployments[1].id, NOW, 0, 10);
    let mut rng = Rng::with_seed(5);
    // b has the fewest tokens; each pick counts a request, and rpm 2 allows two.
    for _ in 0..2 {
        assert_eq!(
            r.pick(group, &ctx(NOW), &mut rng).unwrap().deployment.id,
            "b"
        );
        r.usage.add(&group.deployments[1].id, NOW, 1, 0);
    }
    assert_eq!(
        r.pick(group, &ctx(NOW), &mut rng).unwrap().deployment.id,
        "a"
    );
    // a's tpm cannot take a prompt that would exceed it.
    let big = PickContext {
        prompt_tokens: 96_000,
        ..ctx(NOW)
    };
    assert!(matches!(
        r.pick(group, &big, &mut rng),
        Err(NoPick::OverLimits { .. })
    ));
    // Next minute, everything resets.
    let next = ctx(NOW + 60_000);
    assert_eq!(r.pick(group, &next, &mut rng).unwrap().deployment.id, "a");
}

#[test]
fn cost_based_picks_the_cheapest_known_price() {
    let r = router(&group_yaml(
        "cost-based-routing",
        &[
            (
                "a",
                "",
                ", input_cost_per_token: 0.00001, output_cost_per_token: 0.00003",
            ),
            (
                "b",
                "",
                ", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002",
            ),
            ("c", "", ""),
        ],
        "",
    ));
    let c = counts(&r, 200, &ctx(NOW), 6);
    assert_eq!(count_of(&c, "b"), 200, "{c:?}");
}

#[test]
fn cost_based_uses_the_price_table_and_base_model() {
    // gpt-4o ($2.50/$10 per million) against gpt-4o-mini ($0.15/$0.60), priced from the table;
    // `my-deployment` is gpt-4o-mini by `base_model`; a model the table lacks is never cheapest.
    let r = router(&group_yaml(
        "cost-based-routing",
        &[
            ("gpt-4o", "", ""),
            ("my-deployment", "", ", base_model: gpt-4o-mini"),
            ("not-in-any-table", "", ""),
        ],
        "",
    ));
    let costs: Vec<f64> = r.deployments().iter().map(|d| d.cost_per_token).collect();
    assert_eq!(costs[0], 12.5e-6);
    assert_eq!(costs[1], 0.75e-6);
    assert!(costs[2].is_infinite());
    let c = counts(&r, 200, &ctx(NOW), 7);
    assert_eq!(count_of(&c, "my-deployment"), 200, "{c:?}");
}

#[test]
fn order_one_before_order_two_until_it_cools_down() {
    let r = router(&group_yaml(
        "simple-shuffle",
        &[
            ("a", ", order: 2", ""),
            ("b", ", order: 1", ""),
            ("c", "", ""),
        ],
        "  cooldown_time: 5\n",
    ));
    let c = counts(&r, 500, &ctx(NOW), 7);
    assert_eq!(count_of(&c, "b"), 500, "{c:?}");
    let group = r.group("g").unwrap();
    r.cooldowns.record_failure(
        &group.deployments[1].id,
        NOW,
        FailureKind::RateLimited,
        None,
    );
    let c = counts(&r, 500, &ctx(NOW + 1), 7);
    assert_eq!(
        count_of(&c, "a"),
        500,
        "order 2 while order 1 cools down: {c:?}"
    );
    // After the cooldown, order 1 is probed by exactly one request, then serves again.
    let later = NOW + 5_001;
    let mut rng = Rng::with_seed(1);
    let probe = r.pick(group, &ctx(later), &mut rng).unwrap();
    assert_eq!(probe.deployment.id, "b");
    assert!(probe.probe);
    let during = r.pick(group, &ctx(later), &mut rng).unwrap();
    assert_eq!(
        during.deployment.id, "a",
        "the probe is out: others use order 2"
    );
    r.cooldowns
        .record_success(&group.deployments[1].id, later + 1);
    let c = counts(&r, 100, &ctx(later + 2), 7);
    assert_eq!(count_of(&c, "b"), 100, "{c:?}");
}

#[test]
fn canary_takes_its_share() {
    let r = router(&group_yaml(
        "simple-shuffle",
        &[
            ("stable", "", ""),
            ("stable2", "", ""),
            ("new", "", ", canary_share: 0.1"),
        ],
        "",
    ));
    let group = r.group("g").unwrap();
    let mut rng = Rng::with_seed(11);
    let draws = 20_000;
    let mut canary = 0;
    for _ in 0..draws {
        let picked = r.pick(group, &ctx(NOW), &mut rng).unwrap();
        assert_eq!(picked.canary, picked.deployment.id == "new");
        canary += usize::from(picked.canary);
    }
    let c = vec![("new".to_owned(), canary)];
    assert_share(&c, "new", 0.1, draws);
    // Without the regular deployments, the canary takes everything.
    let exclude = [group.deployments[0].clone(), group.deployments[1].clone()];
    let only = PickContext {
        exclude: &exclude,
        ..ctx(NOW)
    };
    assert_eq!(r.pick(group, &only, &mut rng).unwrap().deployment.id, "new");
}

#[test]
fn preferred_region_first_others_when_it_has_none() {
    let r = router(&group_yaml(
        "simple-shuffle",
        &[
            ("us1", ", region_name: us", ""),
            ("eu1", ", region_name: eu", ""),
            ("eu2", ", region_name: eu", ""),
        ],
        "",
    ));
    let eu = PickContext {
        region: Some("eu"),
        ..ctx(NOW)
    };
    let c = counts(&r, 1_000, &eu, 12);
    assert_eq!(count_of(&c, "us1"), 0, "{c:?}");
    let group = r.group("g").unwrap();
    for i in [1, 2] {
        r.cooldowns.record_failure(
            &group.deployments[i].id,
            NOW,
            FailureKind::RateLimited,
            None,
        );
    }
    let c = counts(&r, 100, &eu, 12);
    assert_eq!(count_of(&c, "us1"), 100, "eu is cooling down: {c:?}");
    let ap = PickContext {
        region: Some("ap"),
        ..ctx(NOW)
    };
    assert!(r.pick(group, &ap, &mut Rng::with_seed(1)).is_ok());
}

#[test]
fn all_cooling_down_and_pre_call_checks_say_why() {
    let r = router(&group_yaml(
        "simple-shuffle",
        &[
            ("a", "", ", max_input_tokens: 1000"),
            ("b", "", ", max_input_tokens: 8000"),
        ],
        "  enable_pre_call_checks: true\n  cooldown_time: 30\n",
    ));
    let group = r.group("g").unwrap();
    let long = PickContext {
        prompt_tokens: 4_000,
        ..ctx(NOW)
    };
    let c = counts(&r, 100, &long, 13);
    assert_eq!(count_of(&c, "b"), 100, "only b fits: {c:?}");
    let huge = PickContext {
        prompt_tokens: 9_000,
        ..ctx(NOW)
    };
    assert_eq!(
        r.pick(group, &huge, &mut Rng::with_seed(1)).unwrap_err(),
        NoPick::ContextWindow {
            prompt_tokens: 9_000,
            largest: 8_000
        }
    );
    r.cooldowns.record_failure(
        &group.deployments[0].id,
        NOW,
        FailureKind::RateLimited,
        Some(Duration::from_secs(2)),
    );
    for _ in 0..4 {
        r.cooldowns.record_failure(
            &group.deployments[1].id,
            NOW,
            FailureKind::ServerError,
            None,
        );
    }
    assert_eq!(
        r.pick(group, &ctx(NOW + 1), &mut Rng::with_seed(1))
            .unwrap_err(),
        NoPick::CoolingDown {
            until_ms: NOW + 2_000,
            rate_limited: false,
            deployments: 2
        }
    );
}

#[test]
fn failed_health_checks_sit_out_unless_nothing_else_is_left() {
    let r = router(&group_yaml(
        "simple-shuffle",
        &[("a", "", ""), ("b", "", "")],
        "",
    ));
    let group = r.group("g").unwrap();
    group.deployments[0].stats.set_health(false, NOW);
    let c = counts(&r, 200, &ctx(NOW), 14);
    assert_eq!(count_of(&c, "b"), 200);
    group.deployments[1].stats.set_health(false, NOW);
    let c = counts(&r, 200, &ctx(NOW), 14);
    assert_eq!(count_of(&c, "a") + count_of(&c, "b"), 200);
}

#[test]
fn unknown_provider_and_missing_base_are_named() {
    let loaded = crate::config::parse(
        "model_list:\n- model_name: c\n  litellm_params: {model: nosuch/x}\n",
        &|_| None,
    )
    .unwrap();
    let err = Router::build(&loaded.config, &|_| None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model_list[0]") && err.contains("nosuch"),
        "{err}"
    );
    let loaded = crate::config::parse(
        "model_list:\n- model_name: v\n  litellm_params: {model: hosted_vllm/llama}\n",
        &|_| None,
    )
    .unwrap();
    let err = Router::build(&loaded.config, &|_| None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("api_base") && err.contains("hosted_vllm"),
        "{err}"
    );
}

#[test]
fn provider_default_key_comes_from_env() {
    let loaded = crate::config::parse(
        "model_list:\n- model_name: g\n  litellm_params: {model: groq/llama}\n",
        &|_| None,
    )
    .unwrap();
    let r = Router::build(&loaded.config, &|name| {
        (name == "GROQ_API_KEY").then(|| "gsk".to_owned())
    })
    .unwrap();
    let d = &r.group("g").unwrap().deployments[0];
    assert_eq!(d.upstream.api_key.as_ref().unwrap().expose(), "gsk");
    assert_eq!(d.upstream.base_url, "https://api.groq.com/openai/v1");
}

#[test]
fn route_rule_aliases_are_listed_and_secrets_stay_out_of_health() {
    let r = router(
        "model_list:\n- model_name: cheap\n  litellm_params: {model: openai/a, api_base: 'https://u:pw@x.example/v1?key=sk-secret', api_key: sk-secret}\nswitchyard_routing:\n  route_rules:\n  - {name: all, model: auto, route_to: cheap}\n",
    );
    assert_eq!(r.model_names(), ["cheap", "auto"]);
    assert!(r.serves("auto") && !r.serves("other"));
    let report = r.health_report(None).to_string();
    assert!(
        !report.contains("sk-secret") && !report.contains("pw@"),
        "{report}"
    );
    assert!(report.contains("https://x.example/v1"), "{report}");
    // A recorder of the test's own: unit tests never install the process's global one.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || r.publish_metrics());
    let metrics = handle.render();
    assert!(!metrics.contains("sk-secret"), "{metrics}");
    assert!(
        metrics.contains("switchyard_route_rule_matches_total{rule=\"all\",route_to=\"cheap\"} 0")
    );
}

#[test]
fn a_single_deployment_goes_through_the_same_steps() {
    let r = router(&group_yaml(
        "usage-based-routing",
        &[(
            "only",
            ", rpm: 1",
            ", max_input_tokens: 100, canary_share: 0.5",
        )],
        "  enable_pre_call_checks: true\n",
    ));
    let group = r.group("g").unwrap();
    let only = group.deployments[0].clone();
    let mut rng = Rng::with_seed(1);
    let picked = r.pick(group, &ctx(NOW), &mut rng).unwrap();
    assert!(picked.canary && !picked.probe);
    let long = PickContext {
        prompt_tokens: 101,
        ..ctx(NOW)
    };
    assert!(matches!(
        r.pick(group, &long, &mut rng),
        Err(NoPick::ContextWindow { largest: 100, .. })
    ));
    let tried = [only.clone()];
    let again = PickContext {
        exclude: &tried,
        ..ctx(NOW)
    };
    assert_eq!(
        r.pick(group, &again, &mut rng).unwrap_err(),
        NoPick::AllTried
    );
    r.usage.add(&only.id, NOW, 1, 0);
    assert!(matches!(
        r.pick(group, &ctx(NOW), &mut rng),
        Err(NoPick::OverLimits { .. })
    ));
    let later = NOW + 60_000;
    r.cooldowns.record_failure(
        &only.id,
        later,
        FailureKind::RateLimited,
        Some(Duration::from_secs(1)),
    );
    assert_eq!(
        r.pick(group, &ctx(later + 1), &mut rng).unwrap_err(),
        NoPick::CoolingDown {
            until_ms: later + 1_000,
            rate_limited: true,
            deployments: 1
        }
    );
    let probe = r.pick(group, &ctx(later + 1_000), &mut rng).unwrap();
    assert!(probe.probe);
    assert!(matches!(
        r.pick(group, &ctx(later + 1_001), &mut rng),
        Err(NoPick::CoolingDown { deployments: 1, .. })
    ));
}
