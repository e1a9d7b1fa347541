//! Helpers for the router's integration tests (`tests/router_*.rs`), on top of `tests/common`.

#![allow(dead_code)]

use serde_json::{json, Value};

use crate::common::{client, Proc, MASTER_KEY};

/// One `model_list` entry pointing at a mock upstream; `extra` adds `litellm_params` keys
/// (`", timeout: 0.5"`), `info` adds `model_info` keys.
pub fn entry(group: &str, id: &str, mock: &Proc, extra: &str, info: &str) -> String {
    format!(
        "  - model_name: {group}\n    litellm_params: {{model: openai/{id}-upstream, api_base: '{}/v1', api_key: sk-fake{extra}}}\n    model_info: {{id: {id}{info}}}\n",
        mock.url
    )
}

/// One `model_list` entry answering in-process with `reply`.
pub fn offline(group: &str, id: &str, reply: &str, extra: &str, info: &str) -> String {
    format!(
        "  - model_name: {group}\n    litellm_params: {{model: openai/{id}, mock_response: '{reply}'{extra}}}\n    model_info: {{id: {id}{info}}}\n"
    )
}

/// A whole config: the entries, then any other top-level YAML, then the master key.
pub fn config(entries: &[String], rest: &str) -> String {
    format!(
        "model_list:\n{}{rest}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        entries.concat()
    )
}

pub fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

pub async fn post(gw: &Proc, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub async fn health(gw: &Proc) -> Value {
    client()
        .get(format!("{}/health", gw.url))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The `/health` entry of one deployment.
pub async fn deployment_health(gw: &Proc, id: &str) -> Value {
    let report = health(gw).await;
    ["healthy_endpoints", "unhealthy_endpoints"]
        .iter()
        .flat_map(|key| report[*key].as_array().cloned().unwrap_or_default())
        .find(|d| d["deployment_id"] == id)
        .unwrap_or_else(|| panic!("{id} not in /health: {report}"))
}

pub async fn metrics(gw: &Proc) -> String {
    client()
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the first metrics line that starts with `prefix` and contains `needle`.
pub fn metric(text: &str, prefix: &str, needle: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix) && l.contains(needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {prefix} with {needle}"))
}
