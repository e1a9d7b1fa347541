//! The JSON access log through the real binary: one valid JSON line per request with the fields
//! operators query (request id, caller by alias, model group, status, latency, tokens, cost,
//! feature), whatever the client put in its metadata, and never the key.

mod common;
mod routing;

use common::*;
use routing::*;
use serde_json::{json, Value};

#[tokio::test]
async fn every_request_is_one_json_line_without_the_key() {
    let yaml = config(
        &[offline(
            "chat",
            "c1",
            "hello from the log test",
            "",
            ", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002",
        )],
        "",
    );
    let path = write_config(&yaml);
    let gw = serve_file(&path, &[], &[("SWITCHYARD_JSON_LOGS", "true")]);
    let made: Value = client()
        .post(format!("{}/key/generate", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"key_alias": "log-key"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = made["key"].as_str().unwrap().to_owned();
    // A feature value that would break a hand-made JSON line: quotes, a newline, a backslash,
    // a control character and non-ASCII.
    let hostile = "fe\"at\nure\\ \u{1} é 🚂";
    let mut body = chat_body("chat");
    body["metadata"] = json!({"feature": hostile});
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let cost = response.headers()["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .to_owned();
    let refused = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth("sk-not-a-key")
        .json(&chat_body("chat"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let log = gw.shutdown();
    assert!(!log.contains(&key), "the key is in the log");
    assert!(!log.contains(MASTER_KEY), "the master key is in the log");
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    let ok = access
        .iter()
        .find(|l| l["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no access line for {request_id}: {access:?}"));
    assert_eq!(ok["level"], "INFO");
    assert!(ok["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["outcome"], "answered");
    assert_eq!(ok["caller"], "log-key");
    assert_eq!(ok["model_group"], "chat");
    assert_eq!(ok["deployment"], "c1");
    assert_eq!(ok["provider"], "openai");
    assert_eq!(ok["attempts"], 1);
    assert_eq!(ok["stream"], false);
    assert!(ok["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(ok["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(ok["cost"], cost.as_str());
    assert_eq!(ok["feature"], hostile, "the feature comes back as sent");
    assert_eq!(ok["cache_hit"], false);
    let denied = access
        .iter()
        .find(|l| l["status"] == 401)
        .expect("the refused request is logged too");
    assert!(denied.get("model_group").is_none());
}

/// A line logged while a request is served (here: the warning for a failed attempt before the
/// fallback answers) names the request and the caller, in JSON and in text; a line logged
/// outside any request does not.
#[tokio::test]
async fn lines_logged_while_serving_a_request_name_it() {
    let unroutable = "  - model_name: broken\n    litellm_params: {model: openai/x, api_base: 'http://127.0.0.1:9/v1', api_key: sk-fake}\n    model_info: {id: d-broken}\n";
    let yaml = config(
        &[offline("chat", "c1", "hello", "", ""), unroutable.into()],
        "router_settings:\n  disable_cooldowns: true\n  fallbacks: [{broken: [chat]}]\n",
    );
    let path = write_config(&yaml);
    for json_logs in ["true", "false"] {
        let gw = serve_file(&path, &[], &[("SWITCHYARD_JSON_LOGS", json_logs)]);
        let response = client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(MASTER_KEY)
            .json(&chat_body("broken"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let log = gw.shutdown();
        let warning = log
            .lines()
            .find(|l| l.contains("WARN") && l.contains("d-broken"))
            .unwrap_or_else(|| panic!("no warning for the failed attempt:\n{log}"));
        if json_logs == "true" {
            let line: Value = serde_json::from_str(warning).unwrap();
            assert_eq!(line["request_id"], request_id.as_str(), "{warning}");
            assert_eq!(line["caller"], "master_key");
            assert_eq!(line["deployment"], "d-broken");
        } else {
            assert!(
                warning.ends_with(&format!("request_id={request_id} caller=\"master_key\"")),
                "{warning}"
            );
        }
        let startup = log
            .lines()
            .find(|l| l.contains("switchyard serving"))
            .unwrap_or_else(|| panic!("no start-up line:\n{log}"));
        assert!(!startup.contains("request_id"), "{startup}");
    }
}
