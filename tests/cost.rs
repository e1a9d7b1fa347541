//! What requests cost, through the real binary against the mock upstream: the cost headers,
//! the cost in a stream's usage chunk, price overrides and files, and `POST /spend/calculate`.

mod common;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Proc, extra: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {url}/v1
      api_key: sk-mock
  - model_name: cheap
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {url}/v1
      api_key: sk-mock
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: renamed
    litellm_params:
      model: openai/our-mini-deployment
      api_base: {url}/v1
      api_key: sk-mock
    model_info:
      base_model: gpt-4o-mini
  - model_name: local
    litellm_params:
      model: openai/some-local-model
      api_base: {url}/v1
      api_key: sk-mock
  - model_name: embed
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: {url}/v1
      api_key: sk-mock
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5-20250929
      api_base: {url}/v1
      api_key: sk-ant
{extra}
general_settings:
  master_key: {MASTER_KEY}
"#,
        url = mock.url
    )
}

async fn post(gw: &Proc, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `prompt × input + completion × output` pico-dollars, rounded to the nano-dollar.
fn expected(usage: &Value, input_pico: u128, output_pico: u128) -> i64 {
    let prompt = usage["prompt_tokens"].as_u64().unwrap() as u128;
    let completion = usage["completion_tokens"].as_u64().unwrap() as u128;
    assert!(prompt > 0 && completion > 0, "{usage}");
    ((prompt * input_pico + completion * output_pico + 500) / 1000) as i64
}

fn cost_header(response: &reqwest::Response) -> i64 {
    let ours = response.headers()["x-switchyard-response-cost"]
        .to_str()
        .unwrap()
        .to_owned();
    let litellm = response.headers()["x-litellm-response-cost"]
        .to_str()
        .unwrap();
    assert_eq!(ours, litellm);
    nanos(&ours)
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Tell me about prices please"}]})
}

#[tokio::test]
async fn whole_answers_carry_their_cost_from_the_table_an_override_or_base_model() {
    let mock = mock_upstream(&[]);
    let gw = gateway(&config(&mock, ""), &[]);
    // gpt-4o-mini in the shipped table: $0.15 / $0.60 per million tokens.
    for model in ["mini", "renamed"] {
        let response = post(&gw, "/v1/chat/completions", &chat(model)).await;
        assert_eq!(response.status(), 200);
        let cost = cost_header(&response);
        let body: Value = response.json().await.unwrap();
        assert_eq!(cost, expected(&body["usage"], 150_000, 600_000), "{model}");
    }
    // The deployment's own prices win over the table.
    let response = post(&gw, "/v1/chat/completions", &chat("cheap")).await;
    let cost = cost_header(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(cost, expected(&body["usage"], 1_000_000, 2_000_000));
    // Nothing prices it: 0.
    let response = post(&gw, "/v1/chat/completions", &chat("local")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-response-cost"], "0");
    // Embeddings are priced too (input tokens only).
    let response = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "embed", "input": "some words to embed"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let cost = cost_header(&response);
    let body: Value = response.json().await.unwrap();
    let prompt = body["usage"]["prompt_tokens"].as_i64().unwrap();
    assert!(prompt > 0);
    assert_eq!(
        cost,
        prompt * 20,
        "text-embedding-3-small: $0.02 per million"
    );
    // An error costs nothing and carries no cost header.
    let response = post(&gw, "/v1/chat/completions", &chat("no-such-model")).await;
    assert!(response.status().is_client_error());
    assert!(response
        .headers()
        .get("x-switchyard-response-cost")
        .is_none());
}

#[tokio::test]
async fn a_stream_with_usage_has_its_cost_in_the_final_usage_chunk() {
    let mock = mock_upstream(&[]);
    let gw = gateway(&config(&mock, ""), &[]);
    let mut body = chat("mini");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let usage = chunks
        .iter()
        .rev()
        .find_map(|c| c.get("usage").filter(|u| !u.is_null()))
        .expect("a usage chunk");
    let cost = usage["cost"].as_f64().expect("usage.cost");
    let nanos = expected(usage, 150_000, 600_000);
    assert!(
        (cost - nanos as f64 / 1e9).abs() < 1e-15,
        "{cost} vs {nanos}"
    );
    // Without include_usage the client sees no usage chunk at all.
    body.as_object_mut().unwrap().remove("stream_options");
    let text = post(&gw, "/v1/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("\"cost\""), "{text}");
}

#[tokio::test]
async fn the_anthropic_surface_carries_the_cost_header() {
    let mock = mock_upstream(&[]);
    let gw = gateway(&config(&mock, ""), &[]);
    let response = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", MASTER_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude", "max_tokens": 50,
            "messages": [{"role": "user", "content": "Hello there"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cost = cost_header(&response);
    let body: Value = response.json().await.unwrap();
    let usage = &body["usage"];
    let usage = json!({
        "prompt_tokens": usage["input_tokens"],
        "completion_tokens": usage["output_tokens"],
    });
    // claude-sonnet-4-5: $3 / $15 per million tokens (no cache use here).
    assert_eq!(cost, expected(&usage, 3_000_000, 15_000_000));
}

#[tokio::test]
async fn spend_calculate_prices_a_prompt_or_a_completion() {
    let mock = mock_upstream(&[]);
    let gw = gateway(&config(&mock, ""), &[]);
    let cost = |body: Value| {
        let gw = &gw;
        async move {
            let response = post(gw, "/spend/calculate", &body).await;
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // A completion: its usage at the table price of its model.
    let (status, body) = cost(json!({"completion_response": {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}}}))
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        (body["cost"].as_f64().unwrap() - 8.55e-6).abs() < 1e-15,
        "{body}"
    );
    // A prompt for a model group: its deployment's price (here, the override), the prompt
    // estimated at four characters a token.
    let (status, body) =
        cost(json!({"model": "cheap", "messages": [{"role": "user", "content": "abcdefgh"}]}))
            .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        (body["cost"].as_f64().unwrap() - 2e-6).abs() < 1e-15,
        "{body}"
    );
    // A raw model name from the price table.
    let (status, body) = cost(json!({"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": "abcd"}]})).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        (body["cost"].as_f64().unwrap() - 3e-6).abs() < 1e-15,
        "{body}"
    );
    // Bad input: 400s that say what is wrong.
    for (input, says) in [
        (
            json!({"model": "nope-model", "messages": [{"role": "user", "content": "x"}]}),
            "nope-model",
        ),
        (
            json!({"model": "local", "messages": [{"role": "user", "content": "x"}]}),
            "has no price",
        ),
        (json!({"model": "mini"}), "messages"),
        (json!({}), "completion_response"),
        (
            json!({"completion_response": {"model": "gpt-4o-mini", "choices": []}}),
            "usage",
        ),
        (json!({"completion_response": 7}), "completion_response"),
    ] {
        let (status, body) = cost(input.clone()).await;
        assert_eq!(status, 400, "{input}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{input}: {message}");
    }
    // Authenticated like the model routes.
    let response = client()
        .post(format!("{}/spend/calculate", gw.url))
        .json(&json!({"model": "mini", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_price_file_replaces_shipped_prices_and_a_bad_one_is_refused() {
    let mock = mock_upstream(&[]);
    let dir = std::env::temp_dir().join(format!("switchyard-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prices.json");
    std::fs::write(
        &file,
        r#"{"gpt-4o-mini": {"litellm_provider": "openai", "input_cost_per_token": 0.00001, "output_cost_per_token": 0.00002}}"#,
    )
    .unwrap();
    let gw = gateway(
        &config(&mock, ""),
        &[("SWITCHYARD_PRICES_FILE", file.to_str().unwrap())],
    );
    let response = post(&gw, "/v1/chat/completions", &chat("mini")).await;
    let cost = cost_header(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(cost, expected(&body["usage"], 10_000_000, 20_000_000));

    std::fs::write(
        &file,
        r#"{"gpt-4o-mini": {"input_cost_per_token": "free"}}"#,
    )
    .unwrap();
    let path = write_config(&format!(
        "switchyard_prices:\n  file: {}\n{}",
        file.display(),
        config(&mock, "")
    ));
    let output = std::process::Command::new(BIN)
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("prices.json") && stderr.contains("entry `gpt-4o-mini`"),
        "{stderr}"
    );
}

/// The access line of `request_id` in a gateway's log (text format).
fn access_line(log: &str, request_id: &str) -> String {
    log.lines()
        .find(|l| {
            l.contains(" INFO request request_id=")
                && (l.contains(&format!("request_id=\"{request_id}\""))
                    || l.contains(&format!("request_id={request_id} ")))
        })
        .unwrap_or_else(|| panic!("no access line for {request_id}:\n{log}"))
        .to_owned()
}

#[tokio::test]
async fn a_streams_cost_is_settled_when_it_ends_reported_or_estimated() {
    let mock = mock_upstream(&[]);
    let gw = gateway(&config(&mock, ""), &[]);
    let stream = |request_id: &'static str| {
        let mut body = chat("mini");
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let gw = &gw;
        async move {
            client()
                .post(format!("{}/v1/chat/completions", gw.url))
                .bearer_auth(MASTER_KEY)
                .header("x-request-id", request_id)
                .json(&body)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let text = stream("cost-stream-whole").await;
    let usage: Value = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|c| c.get("usage").filter(|u| !u.is_null()).cloned())
        .expect("a usage chunk");
    let nanos = expected(&usage, 150_000, 600_000);
    // The upstream fails after two chunks: no usage came, so the cost is an estimate.
    Mock(&mock).set(json!({"fail_mid_stream_after": 2})).await;
    let cut = stream("cost-stream-cut").await;
    assert!(cut.contains("error"), "{cut}");
    let log = gw.shutdown();
    let whole = access_line(&log, "cost-stream-whole");
    let decimal = format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000);
    let decimal = decimal.trim_end_matches('0');
    assert!(
        whole.contains(&format!("cost={decimal} ")),
        "{decimal}: {whole}"
    );
    assert!(whole.contains("cost_source=\"reported\""), "{whole}");
    let cut = access_line(&log, "cost-stream-cut");
    assert!(cut.contains("cost_source=\"estimated\""), "{cut}");
    assert!(!cut.contains("cost=0 "), "{cut}");
}

#[tokio::test]
async fn a_reload_rereads_the_price_file() {
    let mock = mock_upstream(&[]);
    let dir = std::env::temp_dir().join(format!("switchyard-cost-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prices = dir.join("prices.json");
    let price_file = |input: &str| {
        std::fs::write(
            &prices,
            format!(r#"{{"gpt-4o-mini": {{"litellm_provider": "openai", "input_cost_per_token": {input}, "output_cost_per_token": 0}}}}"#),
        )
        .unwrap();
    };
    price_file("0.000001");
    // A relative path is relative to the config file.
    let config_path = dir.join("config.yaml");
    std::fs::write(
        &config_path,
        format!(
            "switchyard_prices:\n  file: prices.json\n{}",
            config(&mock, "")
        ),
    )
    .unwrap();
    let gw = serve_file(&config_path, &[], &[]);
    let prompt_cost = |pico: i64| {
        let gw = &gw;
        async move {
            let response = post(gw, "/v1/chat/completions", &chat("mini")).await;
            let cost = cost_header(&response);
            let body: Value = response.json().await.unwrap();
            let prompt = body["usage"]["prompt_tokens"].as_i64().unwrap();
            assert_eq!(cost, (prompt * pico + 500) / 1000);
        }
    };
    prompt_cost(1_000_000).await;
    price_file("0.000003");
    let reload = post(&gw, "/config/reload", &json!({})).await;
    assert_eq!(reload.status(), 200);
    let changes: Value = reload.json().await.unwrap();
    assert!(
        changes["changes"]["changed"].to_string().contains('"'),
        "the repriced deployment shows as changed: {changes}"
    );
    prompt_cost(3_000_000).await;
    // A broken file is refused and the running prices stay.
    std::fs::write(&prices, r#"{"gpt-4o-mini": []}"#).unwrap();
    let reload = post(&gw, "/config/reload", &json!({})).await;
    assert_eq!(reload.status(), 400);
    let error: Value = reload.json().await.unwrap();
    assert!(error.to_string().contains("entry `gpt-4o-mini`"), "{error}");
    prompt_cost(3_000_000).await;
}
