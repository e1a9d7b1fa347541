//! Dynamic model selection (route rules) and region-aware routing, through the real binary.
//! The YAML here is the example of docs/routing.md.

mod common;
mod routing;

use common::*;
use routing::*;
use serde_json::{json, Value};

const RULES: &str = r#"
switchyard_routing:
  route_rules:
    - name: long-prompts
      model: auto
      when: {min_prompt_tokens: 2000}
      route_to: long-context
    - name: free-short
      model: auto
      when: {tier: free, max_prompt_tokens: 500}
      route_to: cheap
    - name: batch-summaries
      model: auto
      when: {feature: summarize, tags: [batch]}
      route_to: cheap
    - name: default
      model: auto
      route_to: standard
"#;

fn ask(content: &str, metadata: Value) -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": content}], "metadata": metadata})
}

#[tokio::test]
async fn route_rules_choose_the_group_and_say_which_rule() {
    let gw = gateway(
        &config(
            &[
                offline("cheap", "cheap-1", "cheap", "", ""),
                offline("standard", "standard-1", "standard", "", ""),
                offline("long-context", "long-1", "long", "", ""),
            ],
            RULES,
        ),
        &[],
    );
    for (body, group, rule) in [
        (ask("hi", json!({"tier": "free"})), "cheap", "free-short"),
        (
            ask(&"word ".repeat(2_000), json!({"tier": "free"})),
            "long-context",
            "long-prompts",
        ),
        (ask("hi", json!({"tier": "pro"})), "standard", "default"),
        (
            ask(
                "hi",
                json!({"feature": "summarize", "tags": ["batch", "nightly"]}),
            ),
            "cheap",
            "batch-summaries",
        ),
        (
            ask("hi", json!({"feature": "summarize"})),
            "standard",
            "default",
        ),
    ] {
        let response = post(&gw, &body).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(
            header(&response, "x-switchyard-model-group"),
            group,
            "{body}"
        );
        assert_eq!(header(&response, "x-switchyard-route-rule"), rule, "{body}");
        assert_eq!(header(&response, "x-switchyard-requested-model"), "auto");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["model"], group);
    }
    // A real group name is routed as before, without a rule.
    let response = post(&gw, &chat_body("cheap")).await;
    assert_eq!(header(&response, "x-switchyard-route-rule"), "");
    // `auto` is listed as a model and the matches are counted.
    let models: Value = client()
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(models["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "auto"));
    let text = metrics(&gw).await;
    assert_eq!(
        metric(
            &text,
            "switchyard_route_rule_matches_total",
            "rule=\"default\""
        ),
        2.0
    );
}

#[tokio::test]
async fn a_preferred_region_is_used_while_it_has_a_deployment() {
    let gw = gateway(
        &config(
            &[
                offline("chat", "eu-1", "eu", ", region_name: eu", ""),
                offline("chat", "us-1", "us", ", region_name: us", ""),
            ],
            "",
        ),
        &[],
    );
    let mut body = chat_body("chat");
    body["metadata"] = json!({"region": "eu"});
    for _ in 0..20 {
        let response = post(&gw, &body).await;
        assert_eq!(header(&response, "x-switchyard-model-id"), "eu-1");
    }
    body["metadata"] = json!({"region": "ap"});
    let response = post(&gw, &body).await;
    assert_eq!(
        response.status(),
        200,
        "no deployment in the region: any other"
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let response = post(&gw, &chat_body("chat")).await;
        seen.insert(header(&response, "x-switchyard-model-id").to_owned());
    }
    assert_eq!(seen.len(), 2, "without a preference both serve: {seen:?}");
}
