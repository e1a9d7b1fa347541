//! `/metrics` through the real binary: after a known mix of requests (success, fallback, a 429
//! from a rate-limited key, an upstream failure, a stream, tag values past their cap) it shows
//! exactly the expected counts with the expected labels; LiteLLM's names appear only with
//! `callbacks: ["prometheus"]`; `require_auth_for_metrics_endpoint` guards it; no key ever
//! shows; and every metric the Grafana dashboard in docs/grafana/ queries exists.

mod common;
mod routing;

use std::collections::BTreeMap;

use common::*;
use routing::*;
use serde_json::{json, Value};

/// One sample of the exposition text.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (key, after) = rest.split_once("=\"").unwrap();
                    // Values escape `"` as `\"`: find the closing quote.
                    let mut end = 0;
                    let bytes = after.as_bytes();
                    while bytes[end] != b'"' {
                        end += if bytes[end] == b'\\' { 2 } else { 1 };
                    }
                    labels.insert(key.to_owned(), after[..end].replace("\\\"", "\""));
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (name.to_owned(), labels)
            }
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// The sum of every sample of `name` whose labels include `labels` (a missing label counts
/// as the empty value, as in Prometheus).
fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str).unwrap_or("") == *v)
        })
        .map(|s| s.value)
        .sum()
}

fn count(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> usize {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str).unwrap_or("") == *v)
        })
        .count()
}

async fn admin(gw: &Proc, path: &str, body: Value) -> Value {
    let response = client()
        .post(format!("{}{path}", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{path}");
    response.json().await.unwrap()
}

async fn chat_as(gw: &Proc, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn with_feature(model: &str, feature: Option<&str>) -> Value {
    let mut body = chat_body(model);
    if let Some(feature) = feature {
        body["metadata"] = json!({"feature": feature});
    }
    body
}

fn cost_of(response: &reqwest::Response) -> f64 {
    nanos(header(response, "x-litellm-response-cost")) as f64 / 1e9
}

const PRICED: &str = ", input_cost_per_token: 0.001, output_cost_per_token: 0.002";

#[tokio::test]
async fn a_known_mix_of_requests_shows_exact_counts_and_labels() {
    let mock = mock_upstream(&[]);
    let unroutable = "  - model_name: {group}\n    litellm_params: {model: openai/x, api_base: 'http://127.0.0.1:9/v1', api_key: sk-fake}\n    model_info: {id: {id}}\n";
    let yaml = config(
        &[
            entry("chat", "d1", &mock, PRICED, ""),
            unroutable
                .replace("{group}", "broken")
                .replace("{id}", "d-broken"),
            unroutable.replace("{group}", "dead").replace("{id}", "d-dead"),
        ],
        "router_settings:\n  num_retries: 1\n  disable_cooldowns: true\n  fallbacks: [{broken: [chat]}]\nswitchyard_metrics:\n  tag_labels: [feature]\n  max_label_values: 2\n",
    );
    let gw = gateway(&yaml, &[]);

    // 1. A success, 2. a fallback from `broken` to `chat` (two failed attempts first).
    let first = post(&gw, &with_feature("chat", Some("search"))).await;
    assert_eq!(first.status(), 200);
    let fallback = post(&gw, &with_feature("broken", Some("search"))).await;
    assert_eq!(fallback.status(), 200);
    let search_cost = cost_of(&first) + cost_of(&fallback);
    assert!(search_cost > 0.0);
    // 3. An upstream failure (nothing listens there): 502 after two attempts.
    let dead = post(&gw, &with_feature("dead", None)).await;
    assert_eq!(dead.status(), 502);
    // 4. A key allowed one request a minute: the second is a 429.
    let limited = admin(
        &gw,
        "/key/generate",
        json!({"rpm_limit": 1, "key_alias": "limited"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        chat_as(&gw, &limited, &with_feature("chat", None))
            .await
            .status(),
        200
    );
    assert_eq!(
        chat_as(&gw, &limited, &with_feature("chat", None))
            .await
            .status(),
        429
    );
    // A key without an alias is named by 8 digits of its hash.
    let plain = admin(&gw, "/key/generate", json!({})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        chat_as(&gw, &plain, &with_feature("chat", None))
            .await
            .status(),
        200
    );
    // 5. A stream.
    let mut stream = with_feature("chat", Some("writer"));
    stream["stream"] = json!(true);
    let response = post(&gw, &stream).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("[DONE]"));
    // 6. A third feature value, past `max_label_values: 2`: folded into `other`.
    assert_eq!(
        post(&gw, &with_feature("chat", Some("extra")))
            .await
            .status(),
        200
    );
    // 7. An unknown model.
    assert_eq!(post(&gw, &chat_body("nope")).await.status(), 404);

    let text = metrics(&gw).await;
    let s = parse(&text);
    let requests = "switchyard_requests_total";
    let d1 = [
        ("model_group", "chat"),
        ("deployment", "d1"),
        ("provider", "openai"),
    ];
    let ok = |extra: &[(&'static str, &'static str)]| {
        let mut labels = d1.to_vec();
        labels.push(("status_class", "2xx"));
        labels.extend_from_slice(extra);
        sum(&s, requests, &labels)
    };
    assert_eq!(ok(&[]), 6.0, "{text}");
    assert_eq!(
        ok(&[
            ("key_alias", "master_key"),
            ("team", ""),
            ("feature", "search")
        ]),
        2.0
    );
    assert_eq!(
        ok(&[("key_alias", "master_key"), ("feature", "writer")]),
        1.0
    );
    assert_eq!(
        ok(&[("key_alias", "master_key"), ("feature", "other")]),
        1.0
    );
    assert_eq!(ok(&[("feature", "extra")]), 0.0, "folded, never a label");
    assert_eq!(ok(&[("key_alias", "limited"), ("feature", "")]), 1.0);
    assert_eq!(
        sum(
            &s,
            requests,
            &[
                ("deployment", "d-dead"),
                ("model_group", "dead"),
                ("status_class", "5xx")
            ]
        ),
        1.0
    );
    assert_eq!(sum(&s, requests, &[("status_class", "4xx")]), 0.0);
    assert_eq!(sum(&s, requests, &[]), 7.0);
    let plain_alias: Vec<&str> = s
        .iter()
        .filter(|x| x.name == requests)
        .filter_map(|x| x.labels.get("key_alias"))
        .map(String::as_str)
        .filter(|a| a.starts_with("key:"))
        .collect();
    assert!(
        !plain_alias.is_empty() && plain_alias.iter().all(|a| a.len() == 12),
        "{plain_alias:?}"
    );

    // Refused before routing, by reason; the rate limit by its scope.
    let rejected = "switchyard_rejected_total";
    assert_eq!(
        sum(&s, rejected, &[("reason", "rate_limit"), ("status", "429")]),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            rejected,
            &[("reason", "unknown_model"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(sum(&s, rejected, &[]), 2.0);
    assert_eq!(
        sum(
            &s,
            "switchyard_rate_limit_rejections_total",
            &[("scope", "key")]
        ),
        1.0
    );

    // Attempts: two failed on each unroutable deployment, one retry in each group, one
    // fallback from `broken` to `chat`.
    let errors = "switchyard_upstream_errors_total";
    for id in ["d-broken", "d-dead"] {
        assert_eq!(
            sum(
                &s,
                errors,
                &[("deployment", id), ("error_class", "connect_error")]
            ),
            2.0,
            "{id}"
        );
    }
    assert_eq!(sum(&s, errors, &[]), 4.0);
    assert_eq!(
        sum(&s, "switchyard_retries_total", &[("model_group", "broken")]),
        1.0
    );
    assert_eq!(
        sum(&s, "switchyard_retries_total", &[("model_group", "dead")]),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "switchyard_fallbacks_total",
            &[("from", "broken"), ("to", "chat")]
        ),
        1.0
    );
    assert_eq!(sum(&s, "switchyard_fallbacks_total", &[]), 1.0);

    // Tokens and cost, by feature.
    assert!(sum(&s, "switchyard_tokens_total", &[("kind", "prompt")]) > 0.0);
    let cost = sum(&s, "switchyard_cost_usd_total", &[("feature", "search")]);
    assert!((cost - search_cost).abs() < 1e-9, "{cost} vs {search_cost}");

    // Histograms: real buckets (le), sum and count; streams have a time to first token, whole
    // answers an upstream time and an overhead.
    let duration = "switchyard_request_duration_seconds";
    assert_eq!(sum(&s, &format!("{duration}_count"), &d1), 6.0);
    assert_eq!(
        sum(
            &s,
            &format!("{duration}_bucket"),
            &[("deployment", "d1"), ("le", "+Inf")]
        ),
        6.0
    );
    assert!(sum(&s, &format!("{duration}_sum"), &d1) > 0.0);
    assert_eq!(
        count(&s, &format!("{duration}_bucket"), &[("deployment", "d1")]),
        23,
        "22 buckets and +Inf"
    );
    assert_eq!(
        count(
            &s,
            &format!("{duration}_bucket"),
            &[("deployment", "d1"), ("le", "0.00005")]
        ),
        1
    );
    assert_eq!(
        sum(&s, "switchyard_time_to_first_token_seconds_count", &d1),
        1.0
    );
    assert_eq!(
        sum(&s, "switchyard_upstream_duration_seconds_count", &d1),
        5.0
    );
    assert_eq!(
        sum(&s, "switchyard_gateway_overhead_seconds_count", &d1),
        5.0
    );
    assert_eq!(sum(&s, "switchyard_requests_in_flight", &[]), 0.0);

    // Series kept from before: the router's and the writers'.
    assert_eq!(
        sum(
            &s,
            "switchyard_deployment_served_total",
            &[("deployment", "d1")]
        ),
        6.0
    );
    assert_eq!(sum(&s, "switchyard_log_lines_dropped_total", &[]), 0.0);
    assert_eq!(sum(&s, "switchyard_spend_rows_dropped_total", &[]), 0.0);
    assert_eq!(sum(&s, "switchyard_rate_limit_store_up", &[]), 1.0);
    // Rate-limit headroom at scrape time: `limited` (rpm 1) spent its one request a minute;
    // the scrape itself takes nothing (a second scrape reads the same).
    let headroom = |s: &[Sample]| {
        sum(
            s,
            "switchyard_key_rate_limit_remaining_requests",
            &[("key_alias", "limited")],
        )
    };
    assert_eq!(
        count(&s, "switchyard_key_rate_limit_remaining_requests", &[]),
        1
    );
    assert_eq!(headroom(&s), 0.0);
    assert_eq!(headroom(&parse(&metrics(&gw).await)), 0.0);

    // No LiteLLM names without the switch; never a key.
    assert!(!text.contains("litellm_"), "{text}");
    assert!(!text.contains(&limited), "the key leaked");
    assert!(!text.contains(&plain), "the key leaked");
    assert!(!text.contains(MASTER_KEY), "the master key leaked");
    assert!(!text.contains("sk-fake"), "the upstream key leaked");

    // Every metric the Grafana dashboard queries exists now.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/grafana/switchyard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 4, "{exprs:?}");
    let names: std::collections::BTreeSet<&str> = s.iter().map(|s| s.name.as_str()).collect();
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(
                names.contains(name.as_str()),
                "{name} (in `{expr}`) not in /metrics"
            );
        }
    }
}

fn collect_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The metric names a PromQL expression uses (ours and LiteLLM's).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = ["switchyard_", "litellm_"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn litellm_names_with_the_switch_and_a_key_to_read_them() {
    let mock = mock_upstream(&[]);
    let yaml = config(
        &[entry("chat", "d1", &mock, PRICED, "")],
        "litellm_settings:\n  callbacks: [\"prometheus\"]\n  require_auth_for_metrics_endpoint: true\n",
    );
    let gw = gateway(&yaml, &[]);
    let team = admin(
        &gw,
        "/team/new",
        json!({"team_alias": "research", "max_budget": 20}),
    )
    .await;
    let team_id = team["team_id"].as_str().unwrap().to_owned();
    let key = admin(
        &gw,
        "/key/generate",
        json!({"key_alias": "budgeted", "max_budget": 10, "team_id": team_id}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = chat_as(&gw, &key, &chat_body("chat")).await;
    assert_eq!(response.status(), 200);
    let cost = cost_of(&response);
    assert!(cost > 0.0);
    // A key whose budget is spent before it starts: refused, counted by the budget's scope.
    let broke = admin(
        &gw,
        "/key/generate",
        json!({"key_alias": "broke", "max_budget": 0}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(chat_as(&gw, &broke, &chat_body("chat")).await.status(), 429);

    // Without a key: 401; with a key that is not an admin's: 403.
    let url = format!("{}/metrics", gw.url);
    assert_eq!(client().get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        client()
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let response = client()
        .get(&url)
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains(&key), "the key leaked");
    assert!(!text.contains(MASTER_KEY));
    let s = parse(&text);

    let caller = [
        ("api_key_alias", "budgeted"),
        ("team", team_id.as_str()),
        ("team_alias", "research"),
        ("requested_model", "chat"),
        ("model_id", "d1"),
        ("api_provider", "openai"),
    ];
    assert_eq!(
        sum(&s, "litellm_requests_metric_total", &caller),
        1.0,
        "{text}"
    );
    let spend = sum(&s, "litellm_spend_metric_total", &caller);
    assert!((spend - cost).abs() < 1e-9, "{spend} vs {cost}");
    let total = sum(&s, "litellm_total_tokens_metric_total", &caller);
    assert!(total > 0.0);
    assert_eq!(
        total,
        sum(&s, "litellm_input_tokens_metric_total", &caller)
            + sum(&s, "litellm_output_tokens_metric_total", &caller)
    );
    assert_eq!(
        sum(
            &s,
            "litellm_deployment_success_responses_total",
            &[("model_id", "d1"), ("model_group", "chat")]
        ),
        1.0
    );
    assert_eq!(
        sum(&s, "litellm_request_total_latency_metric_count", &caller),
        1.0
    );
    assert_eq!(
        sum(&s, "litellm_llm_api_latency_metric_count", &caller),
        1.0
    );
    // LiteLLM's bucket layout on its histograms.
    assert_eq!(
        count(
            &s,
            "litellm_request_total_latency_metric_bucket",
            &[("model_id", "d1"), ("le", "420")]
        ),
        1
    );
    assert_eq!(
        sum(
            &s,
            "litellm_proxy_total_requests_metric_total",
            &[("status_code", "200"), ("api_key_alias", "budgeted")]
        ),
        1.0
    );
    assert_eq!(
        sum(&s, "litellm_deployment_state", &[("model_id", "d1")]),
        0.0
    );
    assert_eq!(
        count(&s, "litellm_deployment_state", &[("model_id", "d1")]),
        1
    );

    assert_eq!(
        sum(
            &s,
            "switchyard_budget_rejections_total",
            &[("scope", "key")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "switchyard_rejected_total",
            &[("reason", "budget"), ("status", "429")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "litellm_proxy_failed_requests_metric_total",
            &[("api_key_alias", "broke"), ("exception_status", "429")]
        ),
        1.0
    );
    assert!(!text.contains(&broke), "the key leaked");

    // Budgets left, at scrape time, in both namings.
    let key_left = sum(
        &s,
        "litellm_remaining_api_key_budget_metric",
        &[("api_key_alias", "budgeted")],
    );
    assert!((key_left - (10.0 - cost)).abs() < 1e-9, "{key_left}");
    let ours = sum(
        &s,
        "switchyard_key_budget_remaining_usd",
        &[("key_alias", "budgeted")],
    );
    assert!((ours - key_left).abs() < 1e-12);
    let team_left = sum(
        &s,
        "litellm_remaining_team_budget_metric",
        &[("team", team_id.as_str()), ("team_alias", "research")],
    );
    assert!((team_left - (20.0 - cost)).abs() < 1e-9, "{team_left}");
    assert_eq!(
        sum(
            &s,
            "litellm_team_max_budget_metric",
            &[("team", team_id.as_str())]
        ),
        20.0
    );
}

#[tokio::test]
async fn cooldowns_and_failed_attempts_are_counted_in_both_namings() {
    let mock = mock_upstream(&[
        "--error-rate",
        "1",
        "--error-status",
        "429",
        "--retry-after",
        "1",
    ]);
    let backup = mock_upstream(&[]);
    // Two deployments: a group's only one is never cooled down.
    let yaml = config(
        &[
            entry("chat", "d1", &mock, ", order: 1", ""),
            entry("chat", "d2", &backup, ", order: 2", ""),
        ],
        "router_settings:\n  num_retries: 0\nlitellm_settings:\n  callbacks: [\"prometheus\"]\n",
    );
    let gw = gateway(&yaml, &[]);
    // The upstream's 429 cools d1 down for its retry-after (1 s).
    post(&gw, &chat_body("chat")).await;
    let s = parse(&metrics(&gw).await);
    let d1 = [("deployment", "d1"), ("model_group", "chat")];
    let transitions = "switchyard_cooldown_transitions_total";
    let with = |extra: (&'static str, &'static str)| {
        let mut labels = d1.to_vec();
        labels.push(extra);
        labels
    };
    assert_eq!(sum(&s, transitions, &with(("transition", "opened"))), 1.0);
    assert_eq!(sum(&s, transitions, &with(("transition", "closed"))), 0.0);
    assert_eq!(
        sum(
            &s,
            "switchyard_upstream_errors_total",
            &with(("error_class", "rate_limited"))
        ),
        1.0
    );
    assert_eq!(sum(&s, "switchyard_deployment_state", &d1), 2.0);
    assert_eq!(
        sum(
            &s,
            "litellm_deployment_cooled_down_total",
            &[("model_id", "d1"), ("exception_status", "429")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "litellm_deployment_failure_responses_total",
            &[
                ("model_id", "d1"),
                ("exception_status", "429"),
                ("exception_class", "rate_limited")
            ]
        ),
        1.0
    );
    assert_eq!(
        sum(&s, "litellm_deployment_state", &[("model_id", "d1")]),
        2.0
    );

    // Once the upstream answers again, the probe after the cooldown closes it.
    Mock(&mock).set(json!({"error_rate": 0.0})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(post(&gw, &chat_body("chat")).await.status(), 200);
    let s = parse(&metrics(&gw).await);
    assert_eq!(sum(&s, transitions, &with(("transition", "closed"))), 1.0);
    assert_eq!(sum(&s, "switchyard_deployment_state", &d1), 0.0);
}
