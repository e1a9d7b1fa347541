//! The Anthropic and Gemini wire formats, and tool calls in all three formats.

mod common;

use common::*;
use serde_json::{json, Value};

const ANTHROPIC: &[(&str, &str)] = &[
    ("x-api-key", "sk-ant-fake"),
    ("anthropic-version", "2023-06-01"),
];
const GEMINI: &[(&str, &str)] = &[("x-goog-api-key", "gm-fake")];
const REPLY: &str = "Hello from the Switchyard mock upstream.";

async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> HttpResponse {
    send(addr, "POST", path, headers, Some(&body.to_string())).await
}

/// `(event, data)` pairs.
fn named_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_owned();
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("data line");
            (name, serde_json::from_str(data).expect("JSON data"))
        })
        .collect()
}

#[tokio::test]
async fn anthropic_message_and_usage() {
    let mock = start_default().await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "Be brief.",
                      "messages": [{"role": "user", "content": [{"type": "text", "text": "12345678"}]}]});
    let response = post(mock.addr, "/v1/messages", ANTHROPIC, &body).await;
    assert_eq!(response.status, 200);
    let message = response.json();
    assert_eq!(
        message,
        json!({"id": "msg_mock_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
               "content": [{"type": "text", "text": REPLY}], "stop_reason": "end_turn", "stop_sequence": null,
               "usage": {"input_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 6}})
    );
    let logged = &requests(mock.addr).await[0];
    assert_eq!(logged["path"], "/v1/messages");
    assert_eq!(logged["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(logged["body"], body);
}

#[tokio::test]
async fn anthropic_requirements_and_error_shape() {
    let mock = start_default().await;
    let body =
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let response = post(mock.addr, "/v1/messages", &[("x-api-key", "k")], &body).await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json()["error"],
        json!({"type": "invalid_request_error", "message": "anthropic-version: header is required"})
    );
    let response = post(
        mock.addr,
        "/v1/messages",
        &[("anthropic-version", "2023-06-01")],
        &body,
    )
    .await;
    assert_eq!(response.status, 401);
    assert_eq!(response.json()["error"]["type"], "authentication_error");
    let response = post(
        mock.addr,
        "/v1/messages",
        ANTHROPIC,
        &json!({"model": "m", "messages": []}),
    )
    .await;
    assert_eq!(response.status, 400);
    configure(
        mock.addr,
        json!({"fail_next": 1, "error_status": 529, "retry_after": 4}),
    )
    .await;
    let response = post(mock.addr, "/v1/messages", ANTHROPIC, &body).await;
    assert_eq!(response.status, 529);
    assert_eq!(response.header("retry-after"), Some("4"));
    let error = response.json();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "overloaded_error");
    assert!(error["request_id"]
        .as_str()
        .unwrap()
        .starts_with("req_mock_"));
}

#[tokio::test]
async fn anthropic_stream_sequence_and_tool_use() {
    let mock = start_default().await;
    let body = json!({"model": "m", "max_tokens": 10, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let response = post(mock.addr, "/v1/messages", ANTHROPIC, &body).await;
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    let events = named_events(&response.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let text: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, REPLY);
    assert!(events
        .iter()
        .all(|(name, data)| data["type"] == name.as_str()));
    assert_eq!(events[events.len() - 2].1["usage"]["output_tokens"], 6);

    let tools = json!([{"name": "lookup", "input_schema": {"type": "object", "properties": {"id": {"type": "integer"}}}}]);
    let body = json!({"model": "m", "max_tokens": 10, "stream": true, "tools": tools,
                      "messages": [{"role": "user", "content": "find 3"}]});
    let events = named_events(
        &post(mock.addr, "/v1/messages", ANTHROPIC, &body)
            .await
            .text(),
    );
    assert_eq!(events[1].1["content_block"]["type"], "tool_use");
    assert_eq!(events[1].1["content_block"]["name"], "lookup");
    let input: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&input).unwrap(),
        json!({"id": 1})
    );
    assert_eq!(
        events[events.len() - 2].1["delta"]["stop_reason"],
        "tool_use"
    );

    // After a tool result: text again. With tool_choice none: text.
    let body = json!({"model": "m", "max_tokens": 10, "tools": tools, "messages": [
        {"role": "user", "content": "find 3"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"id": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "found"}]}
    ]});
    assert_eq!(
        post(mock.addr, "/v1/messages", ANTHROPIC, &body)
            .await
            .json()["stop_reason"],
        "end_turn"
    );
    let body = json!({"model": "m", "max_tokens": 10, "tools": tools, "tool_choice": {"type": "none"},
                      "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(
        post(mock.addr, "/v1/messages", ANTHROPIC, &body)
            .await
            .json()["content"][0]["type"],
        "text"
    );
}

#[tokio::test]
async fn anthropic_cut_stream_never_sends_message_stop() {
    let mock = start_default().await;
    configure(mock.addr, json!({"fail_mid_stream_after": 100})).await;
    let body = json!({"model": "m", "max_tokens": 10, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let response = post(mock.addr, "/v1/messages", ANTHROPIC, &body).await;
    assert!(!response.complete);
    assert!(response.text().contains("message_delta"));
    assert!(!response.text().contains("message_stop"));
}

#[tokio::test]
async fn anthropic_count_tokens() {
    let mock = start_default().await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "Hello there, how are you?"}]});
    let response = post(mock.addr, "/v1/messages/count_tokens", ANTHROPIC, &body).await;
    assert_eq!(response.json(), json!({"input_tokens": 7}));
}

#[tokio::test]
async fn gemini_generate_and_stream() {
    let mock = start_default().await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "12345678"}]}]});
    let response = post(
        mock.addr,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        GEMINI,
        &body,
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json(),
        json!({"candidates": [{"content": {"parts": [{"text": REPLY}], "role": "model"}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 6, "totalTokenCount": 8},
               "modelVersion": "gemini-2.5-flash", "responseId": "mock-1"})
    );
    let response = post(
        mock.addr,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        GEMINI,
        &body,
    )
    .await;
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert!(
        response.text().contains("\r\n\r\n"),
        "Gemini frames events with CRLF"
    );
    let pieces: Vec<Value> = response
        .text()
        .split("\r\n\r\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(pieces.len(), 6);
    let text: String = pieces
        .iter()
        .filter_map(|p| p["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(text, REPLY);
    assert!(pieces[..5]
        .iter()
        .all(|p| p["candidates"][0].get("finishReason").is_none()));
    assert_eq!(pieces[5]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(pieces[5]["usageMetadata"]["candidatesTokenCount"], 6);
    // Without alt=sse: one JSON array; under /v1 too.
    let response = post(
        mock.addr,
        "/v1/models/gemini-2.0-flash:streamGenerateContent",
        GEMINI,
        &body,
    )
    .await;
    assert_eq!(response.json().as_array().unwrap().len(), 6);
    let log = requests(mock.addr).await;
    assert_eq!(log[1]["stream"], true);
    assert_eq!(log[1]["query"], "alt=sse");
    // GET on /v1/models/{model} is still OpenAI's model lookup.
    assert_eq!(
        get(mock.addr, "/v1/models/gpt-4o").await.json()["object"],
        "model"
    );
}

#[tokio::test]
async fn gemini_requirements_errors_and_function_calls() {
    let mock = start_default().await;
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let response = post(mock.addr, path, &[], &body).await;
    assert_eq!(response.status, 403);
    assert_eq!(response.json()["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(
        post(mock.addr, &format!("{path}?key=gm"), &[], &body)
            .await
            .status,
        200
    );
    let response = post(mock.addr, path, GEMINI, &json!({"contents": []})).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"]["status"], "INVALID_ARGUMENT");
    let response = post(
        mock.addr,
        "/v1beta/models/gemini-2.5-flash:embedContent",
        GEMINI,
        &body,
    )
    .await;
    assert_eq!(response.status, 404);
    configure(mock.addr, json!({"fail_next": 1, "error_status": 429})).await;
    let response = post(mock.addr, path, GEMINI, &body).await;
    assert_eq!(response.status, 429);
    assert_eq!(
        response.json(),
        json!({"error": {"code": 429, "message": "mock upstream injected error (status 429)", "status": "RESOURCE_EXHAUSTED"}})
    );

    let tools = json!([{"functionDeclarations": [
        {"name": "a", "parametersJsonSchema": {"type": "object", "properties": {"q": {"type": "string"}}}},
        {"name": "b", "parameters": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}}}
    ]}]);
    let call = |config: Value| {
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "go"}]}], "tools": tools, "toolConfig": config});
        async move {
            post(mock.addr, path, GEMINI, &body).await.json()["candidates"][0]["content"]["parts"]
                [0]
            .clone()
        }
    };
    assert_eq!(
        call(Value::Null).await,
        json!({"functionCall": {"name": "a", "args": {"q": "mock"}}})
    );
    assert_eq!(
        call(json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["b"]}}))
            .await,
        json!({"functionCall": {"name": "b", "args": {"n": 1}}})
    );
    assert_eq!(
        call(json!({"functionCallingConfig": {"mode": "NONE"}})).await,
        json!({"text": REPLY})
    );
    let answered = json!({"contents": [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "a", "response": {"ok": true}}}]}
    ], "tools": tools});
    let response = post(mock.addr, path, GEMINI, &answered).await.json();
    assert_eq!(
        response["candidates"][0]["content"]["parts"][0]["text"],
        REPLY
    );
}

#[tokio::test]
async fn openai_tool_calls_whole_and_streamed() {
    let mock = start_default().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let body = json!({"model": "gpt-4o", "tools": tools, "messages": [{"role": "user", "content": "weather?"}]});
    let answer = post(mock.addr, "/v1/chat/completions", &[], &body)
        .await
        .json();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(choice["message"]["tool_calls"][0]["id"], "call_mock_1");
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"mock"}"#
    );

    let mut body = body;
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = post(mock.addr, "/v1/chat/completions", &[], &body).await;
    let events = response.sse_data();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, r#"{"city":"mock"}"#);
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "tool_calls"
    );
    assert!(
        chunks.last().unwrap()["usage"]["prompt_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Answering a tool result, or told not to call: text.
    let body = json!({"model": "gpt-4o", "tools": tools, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "sunny"}]});
    let answer = post(mock.addr, "/v1/chat/completions", &[], &body)
        .await
        .json();
    assert_eq!(answer["choices"][0]["message"]["content"], REPLY);
    let body = json!({"model": "gpt-4o", "tools": tools, "tool_choice": "none",
                      "messages": [{"role": "user", "content": "weather?"}]});
    let answer = post(mock.addr, "/v1/chat/completions", &[], &body)
        .await
        .json();
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
}
