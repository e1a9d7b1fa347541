//! The provider pass-through routes (`/openai/*`, `/anthropic/*`, `/gemini/*`, `/cohere/*`,
//! `/mistral/*`) and LiteLLM's model info routes (`/model/info`, `/v1/model/info`,
//! `/model_group/info`), through the real binary against the mock upstream.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn config(mock: &Proc) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {url}/v1
      api_key: sk-gateway-openai
    model_info:
      id: gpt-1
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {url}
      api_key: sk-gateway-anthropic
      aws_secret_access_key: sk-never-shown
    model_info:
      id: claude-1
      max_tokens: 8192
switchyard_spend: {{flush_interval_ms: 50}}
general_settings:
  master_key: {MASTER_KEY}
"#,
        url = mock.url
    )
}

fn start() -> (Proc, Proc) {
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &config(&mock),
        &[
            ("GEMINI_API_BASE", mock.url.as_str()),
            ("GEMINI_API_KEY", "sk-gateway-gemini"),
            // Nothing listens on port 9.
            ("COHERE_API_BASE", "http://127.0.0.1:9"),
            ("COHERE_API_KEY", "sk-gateway-cohere"),
        ],
    );
    (mock, gw)
}

async fn new_key(gw: &Proc, models: Value) -> String {
    let response: Value = client()
        .post(format!("{}/key/generate", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"models": models, "key_alias": "team-tool"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["key"].as_str().unwrap().to_owned()
}

fn chat_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 50,
           "messages": [{"role": "user", "content": "Say hello"}]})
}

/// A virtual key's request goes to OpenAI with the gateway's key (the mock sees it, never the
/// caller's), body and query as sent, the answer comes back as the upstream made it, and a
/// spend row records the usage it reported.
#[tokio::test]
async fn openai_requests_go_with_the_gateways_key_and_make_a_spend_row() {
    let (mock, gw) = start();
    let key = new_key(&gw, json!(["gpt"])).await;
    let response = client()
        .post(format!("{}/openai/v1/chat/completions?trace=on", gw.url))
        .bearer_auth(&key)
        .header("x-api-key", &key)
        .header("openai-beta", "assistants=v2")
        .json(&chat_body("gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["usage"]["prompt_tokens"], 3);

    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/chat/completions");
    assert_eq!(seen["query"], "trace=on");
    assert_eq!(seen["headers"]["authorization"], "Bearer sk-gateway-openai");
    assert_eq!(seen["headers"]["openai-beta"], "assistants=v2");
    assert!(seen["headers"].get("x-api-key").is_none(), "{seen}");
    assert!(
        !seen.to_string().contains(&key),
        "the caller's key went upstream: {seen}"
    );
    assert_eq!(seen["body"], chat_body("gpt-4o-mini", false));

    let rows = spend_rows(&gw, "", 1).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["model"], "gpt-4o-mini");
    assert_eq!(row["prompt_tokens"], 3, "{row}");
    assert_eq!(row["completion_tokens"], 6, "{row}");
    assert_eq!(row["key_alias"], "team-tool");
    assert_eq!(row["custom_llm_provider"], "openai");
    assert_eq!(row["http_status"], 200);
    // gpt-4o-mini is in the shipped price table.
    assert_eq!(row["cost_source"], "reported", "{row}");
    assert!(row["spend_nanos"].as_i64().unwrap() > 0, "{row}");
}

/// A wrong key is refused before anything reaches the provider.
#[tokio::test]
async fn an_invalid_key_is_refused_before_anything_is_forwarded() {
    let (mock, gw) = start();
    for (name, value) in [
        ("authorization", "Bearer sk-wrong"),
        ("x-api-key", "sk-wrong"),
    ] {
        let response = client()
            .post(format!("{}/anthropic/v1/messages", gw.url))
            .header(name, value)
            .json(&chat_body("claude-sonnet-4-5", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
    let response = client()
        .get(format!("{}/openai/v1/models", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(Mock(&mock).requests().await.is_empty());
}

/// An Anthropic stream passes through event by event as the upstream sends it (the first
/// events arrive long before the last), with `x-api-key` set to the gateway's key; its usage
/// (from `message_start` and `message_delta`) makes the spend row.
#[tokio::test]
async fn a_stream_passes_through_as_it_arrives() {
    let (mock, gw) = start();
    Mock(&mock).set(json!({"chunk_delay_ms": 150})).await;
    let started = Instant::now();
    let mut response = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", MASTER_KEY)
        .json(&chat_body("claude-sonnet-4-5", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut text = String::new();
    let mut first_at = None;
    while let Some(chunk) = response.chunk().await.unwrap() {
        first_at.get_or_insert_with(|| started.elapsed());
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let ended_at = started.elapsed();
    let first_at = first_at.unwrap();
    assert!(
        ended_at - first_at >= Duration::from_millis(450),
        "first bytes at {first_at:?}, end at {ended_at:?}: the stream was buffered"
    );
    assert!(text.contains("event: message_start"), "{text}");
    assert!(text.contains("event: message_stop"), "{text}");

    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/messages");
    assert_eq!(seen["headers"]["x-api-key"], "sk-gateway-anthropic");
    assert_eq!(seen["headers"]["anthropic-version"], "2023-06-01");
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");

    let rows = spend_rows(&gw, "", 1).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["call_type"], "pass_through_endpoint");
    assert!(
        rows[0]["prompt_tokens"].as_i64().unwrap() > 0,
        "{}",
        rows[0]
    );
    assert!(
        rows[0]["completion_tokens"].as_i64().unwrap() > 0,
        "{}",
        rows[0]
    );
    assert!(rows[0]["ttft_ms"].is_number());
}

/// Gemini: the key goes in `x-goog-api-key` from `GEMINI_API_KEY`, to `GEMINI_API_BASE`; a
/// `key=` in the caller's query is not passed on.
#[tokio::test]
async fn gemini_uses_the_environments_key_and_base() {
    let (mock, gw) = start();
    let response = client()
        .post(format!(
            "{}/gemini/v1beta/models/gemini-2.5-flash:generateContent?key=sk-caller-secret",
            gw.url
        ))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["candidates"].is_array(), "{body}");
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["path"],
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(seen["headers"]["x-goog-api-key"], "sk-gateway-gemini");
    assert!(!seen.to_string().contains("sk-caller-secret"), "{seen}");
    assert!(!seen.to_string().contains(MASTER_KEY), "{seen}");
    let rows = spend_rows(&gw, "", 1).await;
    assert_eq!(rows[0]["model"], "gemini-2.5-flash");
}

/// The upstream's errors come back as it sent them; an upstream that cannot be reached is a 502
/// in the gateway's error shape; a path that climbs out of the base is refused.
#[tokio::test]
async fn upstream_errors_pass_back_and_an_unreachable_upstream_is_a_502() {
    let (mock, gw) = start();
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 429, "retry_after": 7}))
        .await;
    let response = client()
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&chat_body("gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_object(), "{body}");

    let response = client()
        .post(format!("{}/cohere/v2/chat", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"model": "command-a", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "upstream_error");
    assert!(!body.to_string().contains("sk-gateway"), "{body}");

    // Sent raw: an HTTP client would resolve the dot segments itself.
    for path in ["/openai/v1/../admin", "/openai/v1/%2e%2e/admin"] {
        let head = raw_get(&gw, path).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{path}: {head}");
    }
    assert_eq!(Mock(&mock).requests().await.len(), 1);
}

/// A GET sent byte for byte as written; the answer's first line.
async fn raw_get(gw: &Proc, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = gw.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {MASTER_KEY}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// `/model/info` shows every deployment the caller may use without any secret; a key limited
/// to one group sees that group only; `/model_group/info` merges a group's deployments.
#[tokio::test]
async fn model_info_lists_what_the_caller_may_use_without_secrets() {
    let (_mock, gw) = start();
    let get = |path: &'static str, key: String| {
        let url = format!("{}{path}", gw.url);
        async move {
            let response = client().get(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    for path in ["/model/info", "/v1/model/info"] {
        let all = get(path, MASTER_KEY.into()).await;
        let text = all.to_string();
        assert!(
            !text.contains("sk-gateway") && !text.contains("sk-never-shown"),
            "{text}"
        );
        let data = all["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{all}");
        assert_eq!(data[0]["model_name"], "gpt");
        assert_eq!(data[0]["litellm_params"]["model"], "openai/gpt-4o-mini");
        assert_eq!(data[0]["model_info"]["id"], "gpt-1");
        assert_eq!(data[0]["model_info"]["db_model"], false);
        assert!(
            data[0]["model_info"]["input_cost_per_token"]
                .as_f64()
                .unwrap()
                > 0.0
        );
        assert_eq!(data[1]["model_info"]["max_tokens"], 8192);
    }
    let one = get("/model/info?litellm_model_id=claude-1", MASTER_KEY.into()).await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    assert_eq!(one["data"][0]["model_name"], "claude");

    let key = new_key(&gw, json!(["gpt"])).await;
    let limited = get("/model/info", key.clone()).await;
    let names: Vec<&str> = limited["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["model_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gpt"]);

    let groups = get("/model_group/info", key).await;
    let data = groups["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{groups}");
    assert_eq!(data[0]["model_group"], "gpt");
    assert_eq!(data[0]["providers"], json!(["openai"]));
    assert_eq!(data[0]["mode"], "chat");
    assert_eq!(data[0]["supports_function_calling"], true);
    let claude = get("/model_group/info?model_group=claude", MASTER_KEY.into()).await;
    assert_eq!(claude["data"][0]["max_output_tokens"], 8192);

    let response = client()
        .get(format!("{}/model/info", gw.url))
        .bearer_auth("sk-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

/// A pass-through call is charged to the key's budget; once it is spent, the next call is
/// refused before anything is sent.
#[tokio::test]
async fn a_spent_key_budget_refuses_pass_through_calls() {
    let (mock, gw) = start();
    let response: Value = client()
        .post(format!("{}/key/generate", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"max_budget": 0.000001}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = response["key"].as_str().unwrap().to_owned();
    let call = || {
        client()
            .post(format!("{}/openai/v1/chat/completions", gw.url))
            .bearer_auth(&key)
            .json(&chat_body("gpt-4o-mini", false))
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    // The charge lands when the answer's body has ended on the gateway's side.
    let until = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let response = call().await.unwrap();
        if response.status() != 200 || Instant::now() > until {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "budget_exceeded", "{body}");
    let sent = Mock(&mock).requests().await.len();
    assert!(call().await.unwrap().status() == 429);
    assert_eq!(Mock(&mock).requests().await.len(), sent);
}

/// An upstream stream that goes quiet for longer than the request timeout is cut (the caller's
/// connection is not held forever), and its row says the stream failed.
#[tokio::test]
async fn a_stream_that_goes_quiet_is_cut_after_the_request_timeout() {
    let mock = mock_upstream(&[]);
    let yaml = config(&mock).replace(
        "general_settings:",
        "router_settings:\n  timeout: 1\ngeneral_settings:",
    );
    let gw = gateway(&yaml, &[]);
    Mock(&mock).set(json!({"chunk_delay_ms": 2500})).await;
    let started = Instant::now();
    let mut response = client()
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&chat_body("gpt-4o-mini", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let ended = loop {
        match response.chunk().await {
            Ok(Some(_)) => continue,
            Ok(None) => break "ended",
            Err(_) => break "cut",
        }
    };
    assert_eq!(ended, "cut");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let rows = spend_rows(&gw, "", 1).await;
    assert_eq!(rows[0]["outcome"], "stream_failed", "{}", rows[0]);
}

/// LiteLLM's `use_in_pass_through: true`: the marked deployment lends its key and base to its
/// provider's route even when another deployment of that provider comes first in the config.
#[tokio::test]
async fn the_deployment_marked_use_in_pass_through_lends_its_key() {
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &format!(
            r#"
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:9/v1
      api_key: sk-chat-only
  - model_name: gpt-tools
    litellm_params:
      model: openai/gpt-4o
      api_base: {url}/v1
      api_key: sk-for-pass-through
      use_in_pass_through: true
general_settings:
  master_key: {MASTER_KEY}
"#,
            url = mock.url
        ),
        &[],
    );
    let response = client()
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&chat_body("gpt-4o", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["headers"]["authorization"],
        "Bearer sk-for-pass-through"
    );
    // The flag changes nothing on the model routes.
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&chat_body("gpt-tools", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    gw.stop();
}
