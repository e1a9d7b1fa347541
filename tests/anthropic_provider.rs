//! The OpenAI surface in front of an Anthropic deployment, through the real binary against the
//! mock upstream's Anthropic endpoint: what the client gets, and what "Anthropic" saw.

mod common;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Proc, settings: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5-20250929
      api_base: {url}/v1
      api_key: os.environ/ANTHROPIC_TEST_KEY
    model_info:
      id: claude-primary
  - model_name: claude-capped
    litellm_params:
      model: anthropic/claude-haiku-4-5
      api_base: {url}
      api_key: sk-ant-capped
    model_info:
      max_tokens: 777
{settings}
general_settings:
  master_key: {MASTER_KEY}
"#,
        url = mock.url
    )
}

fn start(settings: &str) -> (Proc, Proc) {
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &config(&mock, settings),
        &[("ANTHROPIC_TEST_KEY", "sk-ant-test-key")],
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

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
        }, "required": ["city", "unit"]}
    }}])
}

fn parse_chunks(body: &str) -> Vec<Value> {
    let events = sse_data(body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[tokio::test]
async fn chat_is_translated_both_ways() {
    let (mock, gw) = start("");
    let response = post(
        &gw,
        &json!({
            "model": "claude",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Say hello"},
                {"role": "user", "content": "and wave"}
            ],
            "stop": "END",
            "temperature": 0.2,
            "user": "user-7"
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-model-id"],
        "claude-primary"
    );
    assert!(response
        .headers()
        .get("x-switchyard-dropped-params")
        .is_none());
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "claude");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello from the Switchyard mock upstream."
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let usage = &answer["usage"];
    assert_eq!(usage["completion_tokens"], 6);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + 6
    );

    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/messages");
    assert_eq!(seen["headers"]["x-api-key"], "sk-ant-test-key");
    assert_eq!(seen["headers"]["anthropic-version"], "2023-06-01");
    assert!(seen["headers"].get("authorization").is_none());
    assert_eq!(
        seen["body"],
        json!({
            "model": "claude-sonnet-4-5-20250929",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Say hello"},
                {"type": "text", "text": "and wave"}
            ]}],
            "max_tokens": 4096,
            "system": "Be brief.",
            "stop_sequences": ["END"],
            "temperature": 0.2,
            "metadata": {"user_id": "user-7"}
        })
    );
}

#[tokio::test]
async fn max_tokens_from_the_model_info_and_api_base_without_v1() {
    let (mock, gw) = start("");
    let response = post(
        &gw,
        &json!({"model": "claude-capped", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/messages");
    assert_eq!(seen["body"]["max_tokens"], 777);
}

#[tokio::test]
async fn tool_calls_whole_and_streamed() {
    let (mock, gw) = start("");
    let response = post(
        &gw,
        &json!({"model": "claude", "messages": [{"role": "user", "content": "Weather in Paris?"}],
                "tools": weather_tool(), "tool_choice": "required", "parallel_tool_calls": false}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "mock", "unit": "celsius"}));
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["body"]["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(seen["body"]["tools"][0]["name"], "get_weather");
    assert_eq!(
        seen["body"]["tools"][0]["input_schema"]["required"],
        json!(["city", "unit"])
    );

    // The follow-up turn carries the call and its result back as tool_use / tool_result.
    let call_id = call["id"].as_str().unwrap().to_owned();
    let response = post(
        &gw,
        &json!({"model": "claude", "stream": true, "stream_options": {"include_usage": true},
        "tools": weather_tool(),
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            choice["message"].clone(),
            {"role": "tool", "tool_call_id": call_id, "content": "18 degrees"}
        ]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let chunks = parse_chunks(&response.text().await.unwrap());
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from the Switchyard mock upstream.");
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));
    assert!(
        chunks.last().unwrap()["usage"]["prompt_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["stream"], true);
    assert_eq!(
        seen["body"]["messages"][1]["content"][0],
        json!({"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "mock", "unit": "celsius"}})
    );
    assert_eq!(
        seen["body"]["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": call_id, "content": "18 degrees"})
    );

    // A streamed tool call arrives as argument pieces; no usage chunk unless asked for.
    let response = post(
        &gw,
        &json!({"model": "claude", "stream": true, "tools": weather_tool(),
                "messages": [{"role": "user", "content": "Weather?"}]}),
    )
    .await;
    let chunks = parse_chunks(&response.text().await.unwrap());
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let pieces: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert_eq!(
        pieces.len(),
        3,
        "start, then two argument pieces: {pieces:?}"
    );
    assert_eq!(pieces[0][0]["function"]["name"], "get_weather");
    let arguments: String = pieces
        .iter()
        .filter_map(|p| p[0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "mock", "unit": "celsius"})
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn anthropic_errors_keep_their_class() {
    let (mock, gw) = start("router_settings:\n  num_retries: 1\n");
    let hello = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]});
    // Overloaded (529) is retried, then reported as an upstream 5xx.
    Mock(&mock)
        .set(json!({"fail_next": 2, "error_status": 529}))
        .await;
    let response = post(&gw, &hello).await;
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["x-switchyard-attempts"], "2");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("529"),
        "{body}"
    );
    // Once: the retry succeeds.
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 529}))
        .await;
    assert_eq!(post(&gw, &hello).await.status(), 200);
    // A rate limit keeps its status, type and retry-after.
    Mock(&mock)
        .set(json!({"fail_next": 5, "error_status": 429, "retry_after": 1}))
        .await;
    let response = post(&gw, &hello).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // A bad request is not retried.
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 400, "retry_after": null}))
        .await;
    let before = Mock(&mock).requests().await.len();
    let response = post(&gw, &hello).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-switchyard-attempts"], "1");
    assert_eq!(Mock(&mock).requests().await.len(), before + 1);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event() {
    let (mock, gw) = start("");
    Mock(&mock).set(json!({"fail_mid_stream_after": 4})).await;
    let text = post(
        &gw,
        &json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .text()
    .await
    .unwrap();
    let events = sse_data(&text);
    assert!(!text.contains("[DONE]"), "{text}");
    let error: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(error["error"]["message"].is_string(), "{error}");
}

#[tokio::test]
async fn parameters_anthropic_cannot_take() {
    let hello = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}],
                       "seed": 42, "store": true});
    // Refused, naming the parameter, before anything is sent.
    let (mock, gw) = start("");
    let response = post(&gw, &hello).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`seed`") && message.contains("drop_params"),
        "{message}"
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(Mock(&mock).requests().await.is_empty());
    drop((mock, gw));

    // With drop_params: dropped, and named in a header.
    let (mock, gw) = start("litellm_settings:\n  drop_params: true\n");
    let response = post(&gw, &hello).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-dropped-params"],
        "seed, store"
    );
    let seen = Mock(&mock).last_request().await;
    assert!(seen["body"].get("seed").is_none() && seen["body"].get("store").is_none());
}
