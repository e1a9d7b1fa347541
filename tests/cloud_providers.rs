//! The OpenAI-compatible clouds' differences, through the real binary against the mock
//! upstream: Mistral's parameter names, and the per-deployment `additional_drop_params` and
//! `allowed_openai_params` lists on any provider.

mod common;

use common::*;
use serde_json::{json, Value};

fn start(settings: &str) -> (Proc, Proc) {
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &format!(
            r#"
model_list:
  - model_name: mistral
    litellm_params:
      model: mistral/mistral-large-latest
      api_base: {url}/v1
  - model_name: deepinfra
    litellm_params:
      model: deepinfra/meta-llama/Llama-3.3-70B-Instruct
      api_base: {url}/v1
      additional_drop_params: ["temperature", "user"]
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {url}/v1
      api_key: sk-ant
      allowed_openai_params: ["seed"]
{settings}
general_settings:
  master_key: {MASTER_KEY}
"#,
            url = mock.url
        ),
        &[
            ("MISTRAL_API_KEY", "mistral-key"),
            ("DEEPINFRA_API_KEY", "di-key"),
        ],
    );
    (mock, gw)
}

async fn post(gw: &Proc, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn hello(model: &str, extra: Value) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

#[tokio::test]
async fn mistral_parameters_are_mapped() {
    let (mock, gw) = start("");
    let response = post(
        &gw,
        &hello(
            "mistral",
            json!({"seed": 7, "safe_prompt": true, "user": "u1",
                                 "tool_choice": "required",
                                 "tools": [{"type": "function", "function": {"name": "f"}}]}),
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-dropped-params"], "user");
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["headers"]["authorization"], "Bearer mistral-key");
    assert_eq!(seen["body"]["random_seed"], 7);
    assert!(seen["body"].get("seed").is_none());
    assert_eq!(seen["body"]["safe_prompt"], true);
    assert_eq!(seen["body"]["tool_choice"], "any");
    assert!(seen["body"].get("user").is_none());

    // A parameter Mistral does not take is refused, naming it...
    let response = post(&gw, &hello("mistral", json!({"logit_bias": {"42": 5}}))).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("logit_bias"),
        "{error}"
    );
}

#[tokio::test]
async fn mistral_unsupported_parameters_dropped_with_drop_params() {
    let (mock, gw) = start("litellm_settings:\n  drop_params: true\n");
    let response = post(&gw, &hello("mistral", json!({"logit_bias": {"42": 5}}))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-dropped-params"],
        "logit_bias"
    );
    let seen = Mock(&mock).last_request().await;
    assert!(seen["body"].get("logit_bias").is_none());
}

#[tokio::test]
async fn deployment_drop_and_allow_lists() {
    let (mock, gw) = start("");
    let response = post(
        &gw,
        &hello(
            "deepinfra",
            json!({"temperature": 0.2, "user": "u1", "top_p": 0.5}),
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-dropped-params"],
        "temperature, user"
    );
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["headers"]["authorization"], "Bearer di-key");
    assert_eq!(seen["body"]["model"], "meta-llama/Llama-3.3-70B-Instruct");
    assert!(seen["body"].get("temperature").is_none());
    assert!(seen["body"].get("user").is_none());
    assert_eq!(seen["body"]["top_p"], 0.5);

    // The drop list applies to embeddings too.
    let response = client()
        .post(format!("{}/v1/embeddings", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"model": "deepinfra", "input": "hi", "user": "u1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/embeddings");
    assert!(seen["body"].get("user").is_none(), "{seen}");
    assert_eq!(seen["body"]["input"], "hi");

    // Anthropic has no `seed`: refused by default, sent as is when the deployment allows it.
    let response = post(&gw, &hello("claude", json!({"seed": 3, "max_tokens": 10}))).await;
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("x-switchyard-dropped-params")
        .is_none());
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/messages");
    assert_eq!(seen["body"]["seed"], 3);
}

/// LiteLLM's per-request `allowed_openai_params`: the request names a parameter the provider
/// would refuse, it reaches the upstream as written, and the list itself never does (an OpenAI
/// upstream would refuse an unknown field). A list that is not names is a 400 naming it.
#[tokio::test]
async fn a_request_allows_a_parameter_for_itself() {
    let (mock, gw) = start("");
    let response = post(&gw, &hello("mistral", json!({"logit_bias": {"42": 5}}))).await;
    assert_eq!(response.status(), 400, "refused without the list");
    let response = post(
        &gw,
        &hello(
            "mistral",
            json!({"logit_bias": {"42": 5}, "allowed_openai_params": ["logit_bias"]}),
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["body"]["logit_bias"], json!({"42": 5}));
    assert!(seen["body"].get("allowed_openai_params").is_none());

    // Added to the deployment's own list (`seed` on the Claude deployment).
    let response = post(
        &gw,
        &hello(
            "claude",
            json!({"seed": 3, "logit_bias": {"1": 1}, "allowed_openai_params": ["logit_bias"]}),
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/messages");
    assert_eq!(seen["body"]["seed"], 3);
    assert_eq!(seen["body"]["logit_bias"], json!({"1": 1}));
    assert!(seen["body"].get("allowed_openai_params").is_none());

    let response = post(
        &gw,
        &hello("mistral", json!({"allowed_openai_params": "logit_bias"})),
    )
    .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed_openai_params"),
        "{error}"
    );
}
