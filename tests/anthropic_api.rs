//! The gateway's Anthropic surface (`POST /v1/messages`, `/v1/messages/count_tokens`) through
//! the real binary: forwarded natively to an Anthropic deployment, translated for an OpenAI one
//! and for an offline one, streams included, errors in Anthropic's shape.

mod common;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Proc) -> String {
    format!(
        r#"
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5-20250929
      api_base: {url}/v1
      api_key: sk-ant-upstream
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {url}/v1
      api_key: sk-openai-upstream
  - model_name: offline
    litellm_params:
      model: openai/anything
      mock_response: "Offline answer."
  - model_name: azure-gpt
    litellm_params:
      model: azure/gpt-4o-deployment
      api_base: {url}
      api_key: sk-azure-upstream
general_settings:
  master_key: {MASTER_KEY}
"#,
        url = mock.url
    )
}

fn start() -> (Proc, Proc) {
    let mock = mock_upstream(&[]);
    let gw = gateway(&config(&mock), &[]);
    (mock, gw)
}

async fn messages(gw: &Proc, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", gw.url))
        .header("x-api-key", MASTER_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "token-efficient-tools-2025-02-19")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn tools() -> Value {
    json!([{"name": "get_weather", "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

/// `(event name, data)` pairs of an Anthropic stream.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let name = event
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default()
                .to_owned();
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_else(|| panic!("no data in {event:?}"));
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

/// Rebuilds the message from its events, checking each event's name matches its type.
fn assemble(events: &[(String, Value)]) -> Value {
    let mut message = Value::Null;
    let mut partial: Vec<String> = Vec::new();
    for (name, data) in events {
        assert_eq!(data["type"], name.as_str(), "event name matches its type");
        match name.as_str() {
            "message_start" => message = data["message"].clone(),
            "content_block_start" => {
                message["content"]
                    .as_array_mut()
                    .unwrap()
                    .push(data["content_block"].clone());
                partial.push(String::new());
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap() as usize;
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let text = message["content"][index]["text"]
                            .as_str()
                            .unwrap()
                            .to_owned();
                        message["content"][index]["text"] =
                            (text + delta["text"].as_str().unwrap()).into();
                    }
                    "input_json_delta" => {
                        partial[index].push_str(delta["partial_json"].as_str().unwrap())
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap() as usize;
                if !partial[index].is_empty() {
                    message["content"][index]["input"] =
                        serde_json::from_str(&partial[index]).unwrap();
                }
            }
            "message_delta" => {
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["usage"]["output_tokens"] = data["usage"]["output_tokens"].clone();
            }
            "message_stop" | "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    message
}

#[tokio::test]
async fn anthropic_deployments_get_the_request_natively() {
    let (mock, gw) = start();
    let body = json!({
        "model": "claude",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "top_k": 5,
        "metadata": {"user_id": "u-1"},
        "some_future_field": {"kept": true}
    });
    let response = messages(&gw, "/v1/messages", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-model-group"], "claude");
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["model"], "claude", "the client sees its alias");
    assert_eq!(
        message["content"][0]["text"],
        "Hello from the Switchyard mock upstream."
    );
    assert_eq!(message["stop_reason"], "end_turn");

    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/messages");
    let mut expected = body.clone();
    expected["model"] = "claude-sonnet-4-5-20250929".into();
    assert_eq!(
        seen["body"], expected,
        "forwarded as sent, only the model rewritten"
    );
    assert_eq!(seen["headers"]["x-api-key"], "sk-ant-upstream");
    assert_eq!(seen["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(
        seen["headers"]["anthropic-beta"],
        "token-efficient-tools-2025-02-19"
    );
    assert!(!seen["headers"].to_string().contains(MASTER_KEY));
}

#[tokio::test]
async fn native_streams_and_tools() {
    let (mock, gw) = start();
    let response = messages(
        &gw,
        "/v1/messages",
        &json!({"model": "claude", "max_tokens": 100, "stream": true, "tools": tools(),
                "messages": [{"role": "user", "content": "Weather in Oslo?"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = events(&response.text().await.unwrap());
    assert_eq!(events.first().unwrap().0, "message_start");
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert!(
        events.iter().any(|(name, _)| name == "ping"),
        "pings pass through"
    );
    let message = assemble(&events);
    assert_eq!(message["model"], "claude");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["content"][0]["type"], "tool_use");
    assert_eq!(message["content"][0]["input"], json!({"city": "mock"}));
    assert_eq!(Mock(&mock).last_request().await["stream"], true);
}

#[tokio::test]
async fn openai_deployments_get_it_translated() {
    let (mock, gw) = start();
    let response = messages(
        &gw,
        "/v1/messages",
        &json!({"model": "gpt", "max_tokens": 300, "system": "Be brief.",
                "messages": [{"role": "user", "content": "Weather in Oslo?"}],
                "tools": tools(), "tool_choice": {"type": "tool", "name": "get_weather"},
                "stop_sequences": ["###"], "metadata": {"user_id": "u-9"}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["model"], "gpt");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["stop_reason"], "tool_use");
    let call = &message["content"][0];
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({"city": "mock"}));
    assert!(message["usage"]["input_tokens"].as_u64().unwrap() > 0);

    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/chat/completions");
    assert_eq!(
        seen["headers"]["authorization"],
        "Bearer sk-openai-upstream"
    );
    let sent = &seen["body"];
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Oslo?"}])
    );
    assert_eq!(
        sent["max_tokens"], 300,
        "an OpenAI-compatible server at its own api_base gets max_tokens"
    );
    assert_eq!(sent["stop"], json!(["###"]));
    assert_eq!(sent["user"], "u-9");
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );

    // The tool result goes back as a tool message; the answer is text.
    let id = call["id"].as_str().unwrap();
    let response = messages(
        &gw,
        "/v1/messages",
        &json!({"model": "gpt", "max_tokens": 300, "tools": tools(), "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "-3C"}]}
        ]}),
    )
    .await;
    let message: Value = response.json().await.unwrap();
    assert_eq!(
        message["content"][0]["text"],
        "Hello from the Switchyard mock upstream."
    );
    assert_eq!(message["stop_reason"], "end_turn");
    let sent = Mock(&mock).last_request().await["body"].clone();
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], id);
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "tool_call_id": id, "content": "-3C"})
    );
}

#[tokio::test]
async fn azure_gets_openai_s_current_parameter_names() {
    let (mock, gw) = start();
    let response = messages(
        &gw,
        "/v1/messages",
        &json!({"model": "azure-gpt", "max_tokens": 300, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["path"],
        "/openai/deployments/gpt-4o-deployment/chat/completions"
    );
    assert_eq!(seen["body"]["max_completion_tokens"], 300);
    assert!(seen["body"].get("max_tokens").is_none());
    // top_k has no place at OpenAI proper: refused, naming it.
    let response = messages(
        &gw,
        "/v1/messages",
        &json!({"model": "azure-gpt", "max_tokens": 300, "top_k": 5,
                "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("top_k"));
}

#[tokio::test]
async fn translated_streams_are_anthropic_events() {
    let (mock, gw) = start();
    for (model, expected_stop) in [("gpt", "end_turn"), ("offline", "end_turn")] {
        let response = messages(
            &gw,
            "/v1/messages",
            &json!({"model": model, "max_tokens": 50, "stream": true,
                    "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
        assert_eq!(response.status(), 200);
        let events = events(&response.text().await.unwrap());
        let message = assemble(&events);
        assert_eq!(message["model"], model);
        assert_eq!(message["stop_reason"], expected_stop);
        let text = message["content"][0]["text"].as_str().unwrap();
        assert!(text == "Hello from the Switchyard mock upstream." || text == "Offline answer.");
        assert_eq!(events.last().unwrap().0, "message_stop");
        let delta = &events[events.len() - 2].1;
        assert!(
            delta["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{delta}"
        );
    }
    // The OpenAI upstream was asked for a stream with usage.
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["body"]["stream"], true);
    assert_eq!(seen["body"]["stream_options"]["include_usage"], true);
    // Tool calls stream as tool_use blocks with input_json_delta pieces.
    let response = messages(
        &gw,
        "/v1/messages",
        &json!({"model": "gpt", "max_tokens": 50, "stream": true, "tools": tools(),
                "messages": [{"role": "user", "content": "Weather?"}]}),
    )
    .await;
    let events = events(&response.text().await.unwrap());
    let json_pieces = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .count();
    assert_eq!(json_pieces, 2);
    let message = assemble(&events);
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["content"][0]["input"], json!({"city": "mock"}));
}

#[tokio::test]
async fn count_tokens_native_and_estimated() {
    let (mock, gw) = start();
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "Hello there, how are you?"}]});
    let response = messages(&gw, "/v1/messages/count_tokens", &body).await;
    assert_eq!(response.status(), 200);
    let count: Value = response.json().await.unwrap();
    assert_eq!(count["input_tokens"], 7);
    assert_eq!(
        Mock(&mock).last_request().await["path"],
        "/v1/messages/count_tokens"
    );
    let before = Mock(&mock).requests().await.len();
    let mut body = body;
    body["model"] = "gpt".into();
    let count: Value = messages(&gw, "/v1/messages/count_tokens", &body)
        .await
        .json()
        .await
        .unwrap();
    assert!(count["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        Mock(&mock).requests().await.len(),
        before,
        "estimated locally"
    );
}

#[tokio::test]
async fn errors_are_anthropic_shaped() {
    let (mock, gw) = start();
    let check = |status: u16, kind: &'static str| {
        move |response: reqwest::Response| async move {
            assert_eq!(response.status(), status);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["type"], "error", "{body}");
            assert_eq!(body["error"]["type"], kind, "{body}");
            assert!(body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
            body
        }
    };
    let hello = json!({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let unauthenticated = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", "sk-wrong")
        .json(&hello)
        .send()
        .await
        .unwrap();
    check(401, "authentication_error")(unauthenticated).await;
    let mut unknown = hello.clone();
    unknown["model"] = "nope".into();
    check(404, "not_found_error")(messages(&gw, "/v1/messages", &unknown).await).await;
    let mut no_max = hello.clone();
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let body =
        check(400, "invalid_request_error")(messages(&gw, "/v1/messages", &no_max).await).await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_tokens"));
    check(400, "invalid_request_error")(messages(&gw, "/v1/messages", &json!({"model": 5})).await)
        .await;
    // Upstream errors keep Anthropic's type.
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 429, "retry_after": 3}))
        .await;
    let response = messages(&gw, "/v1/messages", &hello).await;
    assert_eq!(response.headers()["retry-after"], "3");
    check(429, "rate_limit_error")(response).await;
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 529, "retry_after": null}))
        .await;
    check(502, "overloaded_error")(messages(&gw, "/v1/messages", &hello).await).await;
    // A translated deployment's failure is Anthropic-shaped too.
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 503}))
        .await;
    let mut gpt = hello.clone();
    gpt["model"] = "gpt".into();
    check(502, "api_error")(messages(&gw, "/v1/messages", &gpt).await).await;
    // Thinking cannot be translated for OpenAI without drop_params.
    gpt["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let body = check(400, "invalid_request_error")(messages(&gw, "/v1/messages", &gpt).await).await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("thinking"));
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_an_error_event() {
    let (mock, gw) = start();
    // Cut before any text: nothing reached the client yet, so it is an ordinary failed
    // attempt, answered with an error status (after failover, had there been another
    // deployment).
    Mock(&mock).set(json!({"fail_mid_stream_after": 2})).await;
    let response = messages(
        &gw,
        "/v1/messages",
        &json!({"model": "claude", "max_tokens": 10, "stream": true,
                "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    // Cut after text went out: the stream ends with an error event.
    Mock(&mock).set(json!({"fail_mid_stream_after": 5})).await;
    for model in ["claude", "gpt"] {
        let text = messages(
            &gw,
            "/v1/messages",
            &json!({"model": model, "max_tokens": 10, "stream": true,
                    "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .text()
        .await
        .unwrap();
        let events = events(&text);
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "error", "{model}: {text}");
        assert_eq!(data["type"], "error");
        assert!(!events.iter().any(|(n, _)| n == "message_stop"), "{model}");
    }
}

/// LiteLLM's rule for `/v1/messages`: `metadata` is Anthropic's (sent upstream; `user_id` is the
/// end user) and the gateway's request metadata comes as `litellm_metadata` (read, never sent).
#[tokio::test]
async fn end_user_and_tags_come_from_metadata_user_id_and_litellm_metadata() {
    let (mock, gw) = start();
    for model in ["claude", "gpt"] {
        let body = json!({
            "model": model,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Hello"}],
            "metadata": {"user_id": "u-7"},
            "litellm_metadata": {"feature": "support_chat", "tags": ["beta"]}
        });
        let response = messages(&gw, "/v1/messages", &body).await;
        assert_eq!(response.status(), 200, "{model}");
        let seen = Mock(&mock).last_request().await;
        let sent = seen["body"].to_string();
        assert!(
            !sent.contains("litellm_metadata") && !sent.contains("support_chat"),
            "{model}: {sent}"
        );
        if model == "claude" {
            assert_eq!(seen["body"]["metadata"], json!({"user_id": "u-7"}));
        }
    }
    let rows = spend_rows(&gw, "", 2).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert_eq!(row["end_user"], "u-7", "{row}");
        assert_eq!(row["metadata"]["feature"], "support_chat", "{row}");
        assert!(
            row.to_string().contains("beta"),
            "the tag is recorded: {row}"
        );
    }
}
