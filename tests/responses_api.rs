//! The gateway's Responses API (`POST /v1/responses`) through the real binary: forwarded
//! natively to OpenAI and Azure deployments, translated for Anthropic (tools, their outputs
//! sent back, `previous_response_id`), streams included; spend, key limits and fallbacks as on
//! every other surface; errors in OpenAI's shape.

mod common;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Proc) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4.1-mini
      api_base: {url}/v1
      api_key: sk-openai-upstream
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: azure-gpt
    litellm_params:
      model: azure/gpt-41-deployment
      api_base: {url}
      api_key: sk-azure-upstream
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5-20250929
      api_base: {url}/v1
      api_key: sk-ant-upstream
      input_cost_per_token: 0.000003
      output_cost_per_token: 0.000015
  - model_name: offline
    litellm_params:
      model: openai/anything
      mock_response: "Offline answer."
  - model_name: primary
    litellm_params:
      model: openai/gpt-4.1-mini
      api_base: http://127.0.0.1:9/v1
      api_key: sk-dead
router_settings:
  num_retries: 0
  fallbacks: [{{"primary": ["claude"]}}]
general_settings:
  master_key: {MASTER_KEY}
switchyard_spend: {{flush_interval_ms: 50}}
"#,
        url = mock.url
    )
}

fn start() -> (Proc, Proc) {
    let mock = mock_upstream(&[]);
    let gw = gateway(&config(&mock), &[]);
    (mock, gw)
}

async fn post(gw: &Proc, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/responses", gw.url))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn create(gw: &Proc, body: &Value) -> Value {
    let response = post(gw, MASTER_KEY, body).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// The events of a Responses stream, checking each `event:` name matches its `type` and the
/// sequence numbers count up from 0.
fn parse_events(body: &str) -> Vec<Value> {
    let events: Vec<Value> = body
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let name = event.lines().find_map(|l| l.strip_prefix("event: "));
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_else(|| panic!("no data in {event:?}"));
            let value: Value = serde_json::from_str(data).unwrap();
            assert_eq!(name, value["type"].as_str(), "{event}");
            value
        })
        .collect();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], i as u64, "{event}");
    }
    events
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().unwrap().iter())
        .filter_map(|part| part["text"].as_str())
        .collect()
}

fn weather_tool() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}])
}

#[tokio::test]
async fn openai_and_azure_deployments_get_the_request_natively_whole_and_streamed() {
    let (mock, gw) = start();
    let body = json!({"model": "gpt", "input": "Hello", "instructions": "Be brief",
                      "include": ["reasoning.encrypted_content"], "temperature": 1});
    let response = create(&gw, &body).await;
    assert_eq!(response["object"], "response");
    assert_eq!(response["model"], "gpt", "the client's alias");
    assert!(response["id"].as_str().unwrap().starts_with("resp_mock_"));
    assert_eq!(
        output_text(&response),
        "Hello from the Switchyard mock upstream."
    );
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/responses");
    assert_eq!(
        seen["headers"]["authorization"],
        "Bearer sk-openai-upstream"
    );
    let mut expected = body.clone();
    expected["model"] = json!("gpt-4.1-mini");
    assert_eq!(
        seen["body"], expected,
        "the body as sent, only `model` changed"
    );

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let response = post(&gw, MASTER_KEY, &streamed).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(!text.contains("[DONE]"), "{text}");
    let events = parse_events(&text);
    assert_eq!(events[0]["type"], "response.created");
    assert_eq!(events[0]["response"]["model"], "gpt");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    assert_eq!(
        output_text(&last["response"]),
        "Hello from the Switchyard mock upstream."
    );

    // The gateway's metadata (tags, feature) is read, and never sent upstream, as on chat.
    let response = create(
        &gw,
        &json!({"model": "azure-gpt", "input": "Hi", "metadata": {"tags": ["beta"]}}),
    )
    .await;
    assert_eq!(response["model"], "azure-gpt");
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/openai/responses");
    assert_eq!(seen["query"], "api-version=2025-04-01-preview");
    assert_eq!(seen["headers"]["api-key"], "sk-azure-upstream");
    assert_eq!(seen["body"]["model"], "gpt-41-deployment");
    assert!(seen["body"].get("metadata").is_none(), "{seen}");
}

#[tokio::test]
async fn anthropic_gets_it_translated_with_a_tool_call_and_its_output_sent_back() {
    let (mock, gw) = start();
    let first = create(
        &gw,
        &json!({"model": "claude", "instructions": "You are terse.",
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]}],
                "tools": weather_tool(), "max_output_tokens": 200,
                "metadata": {"feature": "weather"}}),
    )
    .await;
    assert_eq!(first["object"], "response");
    assert_eq!(first["metadata"], json!({"feature": "weather"}), "echoed");
    assert_eq!(first["status"], "completed");
    assert_eq!(first["model"], "claude");
    assert!(first["id"].as_str().unwrap().starts_with("resp_"));
    let call = &first["output"][0];
    assert_eq!(call["type"], "function_call", "{first:#}");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "mock"})
    );
    assert!(first["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(first["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/messages");
    assert_eq!(seen["body"]["system"], "You are terse.");
    assert_eq!(seen["body"]["max_tokens"], 200);
    assert_eq!(seen["body"]["tools"][0]["name"], "get_weather");

    // The call's output, sent back on top of the stored conversation.
    let second = create(
        &gw,
        &json!({"model": "claude", "previous_response_id": first["id"], "tools": weather_tool(),
                "input": [{"type": "function_call_output", "call_id": call["call_id"],
                           "output": "{\"temp\": 21}"}]}),
    )
    .await;
    assert_eq!(
        output_text(&second),
        "Hello from the Switchyard mock upstream."
    );
    assert_eq!(second["previous_response_id"], first["id"]);
    let seen = Mock(&mock).last_request().await;
    let messages = seen["body"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "history prepended: {messages:#?}");
    assert_eq!(messages[0]["role"], "user");
    assert!(
        messages[0].to_string().contains("Weather in Paris?"),
        "{messages:#?}"
    );
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    assert_eq!(messages[1]["content"][0]["id"], call["call_id"]);
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert!(
        seen["body"].get("system").is_none(),
        "instructions are not carried over"
    );

    // A third turn continues the second: the whole conversation again.
    let third = create(
        &gw,
        &json!({"model": "claude", "previous_response_id": second["id"], "input": "Thanks!"}),
    )
    .await;
    assert_eq!(third["status"], "completed");
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["body"]["messages"].as_array().unwrap().len(), 5);

    // Stored, readable and deletable by the same key.
    let url = format!("{}/v1/responses/{}", gw.url, third["id"].as_str().unwrap());
    let got: Value = client()
        .get(&url)
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["id"], third["id"]);
    let deleted = client()
        .delete(&url)
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let gone = client()
        .get(&url)
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not found"));
}

#[tokio::test]
async fn translated_streams_have_the_sdk_event_sequence() {
    let (mock, gw) = start();
    let response = post(
        &gw,
        MASTER_KEY,
        &json!({"model": "claude", "input": "Weather?", "tools": weather_tool(), "stream": true}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let events = parse_events(&response.text().await.unwrap());
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["model"], "claude");
    let call = &done["output"][0];
    assert_eq!(call["type"], "function_call");
    assert!(done["usage"]["output_tokens"].as_u64().unwrap() > 0);

    // The output sent back, streamed: text this time.
    let response = post(
        &gw,
        MASTER_KEY,
        &json!({"model": "claude", "previous_response_id": done["id"], "stream": true,
                "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]}),
    )
    .await;
    let events = parse_events(&response.text().await.unwrap());
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(
        events[10]["text"],
        "Hello from the Switchyard mock upstream."
    );
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["body"]["messages"].as_array().unwrap().len(), 3);

    // A stream cut mid-way ends with an `error` event numbered after the last one.
    Mock(&mock).set(json!({"fail_mid_stream_after": 4})).await;
    let response = post(
        &gw,
        MASTER_KEY,
        &json!({"model": "claude", "input": "Hi", "stream": true}),
    )
    .await;
    let events = parse_events(&response.text().await.unwrap());
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error", "{events:#?}");
    assert!(last["message"].as_str().is_some());
}

#[tokio::test]
async fn previous_response_ids_the_gateway_does_not_have_are_a_400_naming_them() {
    let (_mock, gw) = start();
    let response = post(
        &gw,
        MASTER_KEY,
        &json!({"model": "claude", "previous_response_id": "resp_nope", "input": "Hi"}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "previous_response_id");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resp_nope"),
        "{body}"
    );
    // What translation leaves out is named, not dropped silently.
    let response = post(
        &gw,
        MASTER_KEY,
        &json!({"model": "claude", "input": "Hi", "include": ["reasoning.encrypted_content"],
                "truncation": "auto"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-dropped-params"],
        "include, truncation"
    );
    // Another key cannot continue someone else's conversation.
    let first = create(&gw, &json!({"model": "offline", "input": "Hi"})).await;
    assert_eq!(output_text(&first), "Offline answer.");
    let key = new_key(&gw, json!({})).await;
    let response = post(
        &gw,
        &key,
        &json!({"model": "offline", "previous_response_id": first["id"], "input": "Hi"}),
    )
    .await;
    assert_eq!(response.status(), 400);
    // `store: false` is not kept.
    let unstored = create(
        &gw,
        &json!({"model": "offline", "input": "Hi", "store": false}),
    )
    .await;
    let response = post(
        &gw,
        MASTER_KEY,
        &json!({"model": "offline", "previous_response_id": unstored["id"], "input": "Hi"}),
    )
    .await;
    assert_eq!(response.status(), 400);
}

async fn new_key(gw: &Proc, body: Value) -> String {
    let response: Value = client()
        .post(format!("{}/key/generate", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn spend_is_recorded_and_a_keys_limits_and_models_apply() {
    let (_mock, gw) = start();
    let key = new_key(&gw, json!({"rpm_limit": 2, "models": ["gpt", "claude"]})).await;
    for model in ["gpt", "claude"] {
        let response = post(&gw, &key, &json!({"model": model, "input": "Hello there"})).await;
        assert_eq!(response.status(), 200, "{model}");
        assert!(response.headers().contains_key("x-switchyard-model-id"));
    }
    let limited = post(&gw, &key, &json!({"model": "gpt", "input": "again"})).await;
    assert_eq!(limited.status(), 429);
    let body: Value = limited.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");

    // LiteLLM's `llm_api_routes` includes this surface.
    let routed = new_key(&gw, json!({"allowed_routes": ["llm_api_routes"]})).await;
    let response = post(&gw, &routed, &json!({"model": "offline", "input": "Hi"})).await;
    assert_eq!(response.status(), 200);
    let id = response.json::<Value>().await.unwrap()["id"].clone();
    let got = client()
        .get(format!("{}/v1/responses/{}", gw.url, id.as_str().unwrap()))
        .bearer_auth(&routed)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let other = new_key(&gw, json!({"models": ["gpt"]})).await;
    let denied = post(&gw, &other, &json!({"model": "claude", "input": "Hi"})).await;
    assert_eq!(denied.status(), 403);

    let rows = spend_rows(&gw, "status=success", 3).await;
    let rows: Vec<&Value> = rows
        .iter()
        .filter(|r| r["status"] == "success" && r["model"] != "offline")
        .collect();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for row in &rows {
        assert!(row["spend"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["total_tokens"].as_u64().unwrap() > 0, "{row}");
    }
    // Streams are counted too.
    let response = post(
        &gw,
        MASTER_KEY,
        &json!({"model": "gpt", "input": "Hello", "stream": true}),
    )
    .await;
    response.text().await.unwrap();
    let rows = spend_rows(&gw, "", 6).await;
    assert!(
        rows.iter()
            .any(|r| r["stream"] == true && r["spend"].as_f64().unwrap() > 0.0),
        "{rows:#?}"
    );
}

#[tokio::test]
async fn a_failing_deployment_falls_back_to_another_group() {
    let (mock, gw) = start();
    let response = post(&gw, MASTER_KEY, &json!({"model": "primary", "input": "Hi"})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-requested-model"],
        "primary"
    );
    assert_eq!(response.headers()["x-litellm-attempted-fallbacks"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["model"], "claude");
    assert_eq!(Mock(&mock).last_request().await["path"], "/v1/messages");
    // Streamed, before the first byte.
    let response = post(
        &gw,
        MASTER_KEY,
        &json!({"model": "primary", "input": "Hi", "stream": true}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let events = parse_events(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap()["type"], "response.completed");
}

#[tokio::test]
async fn hostile_bodies_get_clear_400s_in_openais_shape() {
    let (_mock, gw) = start();
    let cases = [
        (json!({"model": "claude", "input": 3}), None),
        (json!({"model": "claude"}), Some("input")),
        (json!({"model": "", "input": "x"}), Some("model")),
        (json!({"model": "claude", "input": []}), Some("input")),
        (
            json!({"model": "claude", "input": "x", "tools": "nope"}),
            None,
        ),
        (
            json!({"model": "claude", "input": [{"type": "computer_call_output", "call_id": "c"}]}),
            Some("input[0].type"),
        ),
        (
            json!({"model": "claude", "input": "x", "tools": [{"type": "web_search_preview"}]}),
            Some("tools[0].type"),
        ),
    ];
    for (body, param) in cases {
        let response = post(&gw, MASTER_KEY, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
        if let Some(param) = param {
            assert_eq!(error["error"]["param"], param, "{body}: {error}");
        }
    }
    let response = post(&gw, MASTER_KEY, &json!({"model": "claude", "input": 3})).await;
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("a string or a list of input items"),
        "{error}"
    );
    let raw = client()
        .post(format!("{}/v1/responses", gw.url))
        .bearer_auth(MASTER_KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let huge =
        json!({"model": "claude", "input": vec![json!({"role": "user", "content": "x"}); 10_001]});
    let response = post(&gw, MASTER_KEY, &huge).await;
    assert_eq!(response.status(), 400);
    let unauthenticated = client()
        .post(format!("{}/responses", gw.url))
        .json(&json!({"model": "claude", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn native_upstream_errors_and_cut_streams_reach_the_client_in_openais_shape() {
    let (mock, gw) = start();
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 429, "retry_after": 2}))
        .await;
    let response = post(&gw, MASTER_KEY, &json!({"model": "gpt", "input": "Hi"})).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");

    // Cut after the fourth event: the client gets those four, then an `error` event.
    Mock(&mock)
        .set(json!({"fail_mid_stream_after": 4, "retry_after": null}))
        .await;
    let response = post(
        &gw,
        MASTER_KEY,
        &json!({"model": "gpt", "input": "Hi", "stream": true}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let events = parse_events(&response.text().await.unwrap());
    assert_eq!(events.len(), 5, "{events:#?}");
    assert_eq!(events[3]["type"], "response.content_part.added");
    assert_eq!(events[4]["type"], "error");
    assert_eq!(events[4]["sequence_number"], 4);
}

/// Pre-call guardrails read the input whichever way it goes; one that reads the answer (PII
/// given back) makes an OpenAI deployment's request translated, so no answer skips it.
#[tokio::test]
async fn guardrails_apply_to_the_input_and_the_answer() {
    let mock = mock_upstream(&[]);
    let yaml = format!(
        r#"{}
guardrails:
  - guardrail_name: pii-mask
    litellm_params:
      guardrail: pii
      mode: [pre_call, post_call]
      default_on: true
      output_parse_pii: true
      pii_entities_config: {{EMAIL_ADDRESS: MASK}}
  - guardrail_name: banned-words
    litellm_params:
      guardrail: litellm_content_filter
      mode: pre_call
      default_on: true
      blocked_words:
        - keyword: project falcon
          action: BLOCK
"#,
        config(&mock)
    );
    let gw = gateway(&yaml, &[]);
    Mock(&mock)
        .set(json!({"reply": "I will write to <EMAIL_ADDRESS_1> today."}))
        .await;
    for model in ["gpt", "claude"] {
        let response = create(
            &gw,
            &json!({"model": model, "instructions": "Be brief.",
                    "input": [{"role": "user", "content": [{"type": "input_text", "text": "Mail jane.doe@example.com please"}]}]}),
        )
        .await;
        assert_eq!(
            output_text(&response),
            "I will write to jane.doe@example.com today.",
            "{model}"
        );
        let seen = Mock(&mock).last_request().await;
        let sent = seen["body"].to_string();
        assert!(!sent.contains("jane.doe@example.com"), "{model}: {sent}");
        assert!(sent.contains("<EMAIL_ADDRESS_1>"), "{model}: {sent}");
        if model == "gpt" {
            assert_eq!(seen["path"], "/v1/chat/completions", "translated");
        }
    }
    let blocked = post(
        &gw,
        MASTER_KEY,
        &json!({"model": "gpt", "input": "Tell me about Project Falcon"}),
    )
    .await;
    assert_eq!(blocked.status(), 400);

    // A stored conversation holds the answer as the client got it (PII given back); continuing
    // it masks that again before it goes upstream.
    let first = create(
        &gw,
        &json!({"model": "claude", "input": "Mail jane.doe@example.com please"}),
    )
    .await;
    assert!(output_text(&first).contains("jane.doe@example.com"));
    create(
        &gw,
        &json!({"model": "claude", "previous_response_id": first["id"], "input": "Thanks"}),
    )
    .await;
    let sent = Mock(&mock).last_request().await["body"].to_string();
    assert!(!sent.contains("jane.doe@example.com"), "{sent}");
    assert!(sent.contains("Thanks"), "{sent}");
}

/// An id the upstream made goes upstream as it is; a conversation the gateway stored goes to a
/// native deployment as `input` items (the upstream has never seen that id).
#[tokio::test]
async fn previous_response_id_on_native_deployments() {
    let (mock, gw) = start();
    create(
        &gw,
        &json!({"model": "gpt", "previous_response_id": "resp_upstream_1", "input": "Go on"}),
    )
    .await;
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["body"]["previous_response_id"], "resp_upstream_1");
    assert_eq!(seen["body"]["input"], "Go on");

    let first = create(&gw, &json!({"model": "offline", "input": "Hi"})).await;
    create(
        &gw,
        &json!({"model": "gpt", "previous_response_id": first["id"], "input": "Go on"}),
    )
    .await;
    let seen = Mock(&mock).last_request().await;
    assert!(seen["body"].get("previous_response_id").is_none(), "{seen}");
    let input = seen["body"]["input"].as_array().unwrap();
    assert_eq!(input.len(), 3, "{input:#?}");
    assert_eq!(input[0]["role"], "user");
    assert_eq!(input[1]["role"], "assistant");
    assert_eq!(input[1]["content"][0]["text"], "Offline answer.");
    assert!(input[1].get("id").is_none(), "the gateway's ids stay here");
    assert_eq!(input[2]["content"], "Go on");
}
