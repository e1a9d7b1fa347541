//! A Gemini deployment behind the OpenAI surface (and the Anthropic one), through the real
//! binary against the mock upstream's Gemini endpoint.

mod common;

use common::*;
use serde_json::{json, Value};

fn start(settings: &str) -> (Proc, Proc) {
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &format!(
            r#"
model_list:
  - model_name: gemini
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_base: {url}/v1beta
    model_info:
      id: gemini-primary
{settings}
general_settings:
  master_key: {MASTER_KEY}
"#,
            url = mock.url
        ),
        &[("GEMINI_API_KEY", "gm-key-from-env")],
    );
    (mock, gw)
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

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"], "additionalProperties": false}}}])
}

#[tokio::test]
async fn chat_reaches_generate_content() {
    let (mock, gw) = start("");
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini", "max_tokens": 64, "temperature": 0.3, "stop": ["END"],
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Say hello"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-model-id"],
        "gemini-primary"
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["model"], "gemini");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello from the Switchyard mock upstream."
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["completion_tokens"], 6);

    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["path"],
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        seen["query"],
        Value::Null,
        "the key is never put in the URL"
    );
    assert_eq!(seen["headers"]["x-goog-api-key"], "gm-key-from-env");
    assert!(seen["headers"].get("authorization").is_none());
    assert_eq!(
        seen["body"],
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "generationConfig": {"temperature": 0.3, "maxOutputTokens": 64, "stopSequences": ["END"]}
        })
    );
}

#[tokio::test]
async fn streams_and_function_calls() {
    let (mock, gw) = start("");
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "Say hello"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from the Switchyard mock upstream.");
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 6);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["path"],
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(seen["query"], "alt=sse");
    assert_eq!(seen["stream"], true);

    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini", "tools": weather_tool(), "tool_choice": "required",
                "messages": [{"role": "user", "content": "Weather in Rome?"}]}),
    )
    .await;
    let answer: Value = response.json().await.unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "mock"})
    );
    let sent = Mock(&mock).last_request().await["body"].clone();
    assert_eq!(
        sent["tools"],
        json!([{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema":
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}]}])
    );
    assert_eq!(
        sent["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );

    // The result goes back as a functionResponse named after the call.
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini", "tools": weather_tool(), "messages": [
            {"role": "user", "content": "Weather in Rome?"},
            choice["message"].clone(),
            {"role": "tool", "tool_call_id": call["id"], "content": "{\"temp\": 21}"}
        ]}),
    )
    .await;
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello from the Switchyard mock upstream."
    );
    let sent = Mock(&mock).last_request().await["body"].clone();
    assert_eq!(
        sent["contents"][1],
        json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "mock"}}}]})
    );
    assert_eq!(
        sent["contents"][2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}]})
    );
}

#[tokio::test]
async fn google_errors_and_cut_streams() {
    let (mock, gw) = start("");
    let hello = json!({"model": "gemini", "messages": [{"role": "user", "content": "hi"}]});
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 429, "retry_after": 2}))
        .await;
    let response = post(&gw, "/v1/chat/completions", &hello).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "RESOURCE_EXHAUSTED");

    // The last event (the one with finishReason) never comes: an error, not a silent end.
    Mock(&mock)
        .set(json!({"fail_mid_stream_after": 2, "retry_after": null}))
        .await;
    let mut body = hello.clone();
    body["stream"] = json!(true);
    let text = post(&gw, "/v1/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("[DONE]"), "{text}");
    let events = sse_data(&text);
    let error: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(error["error"].is_object(), "{error}");
}

#[tokio::test]
async fn gemini_behind_the_anthropic_surface() {
    let (mock, gw) = start("litellm_settings:\n  drop_params: true\n");
    let response = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", MASTER_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "gemini", "max_tokens": 99, "top_k": 7,
                      "thinking": {"type": "enabled", "budget_tokens": 1024},
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-dropped-params"],
        "thinking"
    );
    let message: Value = response.json().await.unwrap();
    assert_eq!(
        message["content"][0]["text"],
        "Hello from the Switchyard mock upstream."
    );
    let sent = Mock(&mock).last_request().await["body"].clone();
    assert_eq!(
        sent["generationConfig"],
        json!({"topK": 7, "maxOutputTokens": 99})
    );
}
