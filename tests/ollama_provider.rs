//! Ollama deployments (`ollama_chat/...` → `/api/chat`, `ollama/...` → `/api/generate`,
//! embeddings → `/api/embed`) behind the OpenAI surface, through the real binary against the
//! mock upstream's Ollama endpoints (newline-delimited JSON streams).

mod common;

use common::*;
use serde_json::{json, Value};

const REPLY: &str = "Hello from the Switchyard mock upstream.";

fn config(mock: &Proc, backup: &Proc, settings: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: local
    litellm_params:
      model: ollama_chat/llama3.2
      api_base: {url}
    model_info:
      id: ollama-chat
  - model_name: local-generate
    litellm_params:
      model: ollama/llama3.2
      api_base: {url}
    model_info:
      id: ollama-generate
  - model_name: local-embed
    litellm_params:
      model: ollama/all-minilm
      api_base: {url}
    model_info:
      id: ollama-embed
      mode: embedding
  - model_name: cloud
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {backup}/v1
      api_key: sk-backup
    model_info:
      id: cloud
  - model_name: local-backup
    litellm_params:
      model: ollama_chat/qwen3
      api_base: {backup}
    model_info:
      id: ollama-backup
router_settings:
  fallbacks: [{{"local": ["cloud"]}}, {{"cloud": ["local-backup"]}}]
{settings}
general_settings:
  master_key: {MASTER_KEY}
"#,
        url = mock.url,
        backup = backup.url
    )
}

fn start(settings: &str) -> (Proc, Proc, Proc) {
    let mock = mock_upstream(&[]);
    let backup = mock_upstream(&[]);
    let gw = gateway(&config(&mock, &backup, settings), &[]);
    (mock, backup, gw)
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
                       "required": ["city"]}}}])
}

/// The chunks of an SSE answer, `[DONE]` checked and removed.
fn chunks(body: &str) -> Vec<Value> {
    let events = sse_data(body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[tokio::test]
async fn chat_maps_options_and_reads_usage() {
    let (mock, _backup, gw) = start("");
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "local", "max_tokens": 64, "temperature": 0.3, "stop": ["END"],
                "seed": 42, "response_format": {"type": "json_object"},
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": [
                                 {"type": "text", "text": "Say hello"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-model-id"], "ollama-chat");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "local");
    assert_eq!(answer["choices"][0]["message"]["content"], REPLY);
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["completion_tokens"], 6);
    assert_eq!(
        answer["usage"]["total_tokens"],
        answer["usage"]["prompt_tokens"].as_u64().unwrap() + 6
    );

    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/api/chat");
    assert!(
        seen["headers"].get("authorization").is_none(),
        "no key configured, none sent"
    );
    assert_eq!(
        seen["body"],
        json!({
            "model": "llama3.2",
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Say hello", "images": ["iVBORw0KGgo="]}],
            "stream": false,
            "format": "json",
            "options": {"temperature": 0.3, "num_predict": 64, "stop": ["END"], "seed": 42}
        })
    );
}

#[tokio::test]
async fn chat_streams_ndjson_as_sse() {
    let (mock, _backup, gw) = start("");
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "local", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "Say hello"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let chunks = chunks(&response.text().await.unwrap());
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, REPLY);
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 6);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/api/chat");
    assert_eq!(seen["body"]["stream"], true);

    // A stream cut before its `done` line is an error the client sees, not a short answer.
    Mock(&mock).set(json!({"fail_mid_stream_after": 2})).await;
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "local-generate", "stream": true,
                "messages": [{"role": "user", "content": "Say hello"}]}),
    )
    .await;
    let body = response.text().await.unwrap_or_default();
    assert!(!body.contains("[DONE]"), "{body}");
}

#[tokio::test]
async fn tools_round_trip() {
    let (mock, _backup, gw) = start("");
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "local", "tools": weather_tool(),
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
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["body"]["tools"], weather_tool());

    // The tool's result goes back with the function's name; the model then answers.
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "local", "tools": weather_tool(),
                "messages": [{"role": "user", "content": "Weather in Rome?"},
                             {"role": "assistant", "content": null, "tool_calls": [call]},
                             {"role": "tool", "tool_call_id": call["id"], "content": "22C"}]}),
    )
    .await;
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], REPLY);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["body"]["messages"][2],
        json!({"role": "tool", "content": "22C", "tool_name": "get_weather"})
    );
    assert_eq!(
        seen["body"]["messages"][1]["tool_calls"][0]["function"]["arguments"],
        json!({"city": "mock"})
    );

    // Streamed: the call arrives whole, then `tool_calls` as the finish reason.
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "local", "tools": weather_tool(), "stream": true,
                "messages": [{"role": "user", "content": "Weather in Rome?"}]}),
    )
    .await;
    let chunks = chunks(&response.text().await.unwrap());
    let call = chunks
        .iter()
        .find_map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]
                .as_object()
                .cloned()
        })
        .expect("a tool call chunk");
    assert_eq!(call["function"]["name"], "get_weather");
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}

#[tokio::test]
async fn generate_api_for_ollama_prefix() {
    let (mock, _backup, gw) = start("");
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "local-generate",
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Why is the sky blue?"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], REPLY);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/api/generate");
    assert_eq!(
        seen["body"],
        json!({"model": "llama3.2", "prompt": "Why is the sky blue?", "system": "Be brief.",
               "stream": false})
    );
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "local-generate", "stream": true,
                "messages": [{"role": "user", "content": "Say hello"}]}),
    )
    .await;
    let text: String = chunks(&response.text().await.unwrap())
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, REPLY);

    // /api/generate has no tools: refused with a 400 naming the parameter.
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "local-generate", "tools": weather_tool(),
                "messages": [{"role": "user", "content": "Weather?"}]}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`tools`"),
        "{error}"
    );
}

#[tokio::test]
async fn embeddings_through_api_embed() {
    let (mock, _backup, gw) = start("");
    let response = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "local-embed", "input": ["first text", "second"]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], "local-embed");
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);
    assert_eq!(answer["data"][1]["index"], 1);
    assert_eq!(answer["data"][0]["embedding"].as_array().unwrap().len(), 8);
    assert_eq!(answer["usage"]["prompt_tokens"], 3 + 2);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/api/embed");
    assert_eq!(
        seen["body"],
        json!({"model": "all-minilm", "input": ["first text", "second"]})
    );

    // The OpenAI SDKs ask for base64 by default.
    let response = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "local-embed", "input": "x", "encoding_format": "base64"}),
    )
    .await;
    let answer: Value = response.json().await.unwrap();
    let encoded = answer["data"][0]["embedding"].as_str().unwrap();
    assert_eq!(encoded.len(), 44, "8 f32 = 32 bytes, base64 with padding");
}

#[tokio::test]
async fn upstream_errors_are_openai_shaped() {
    let (mock, _backup, gw) = start("");
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 400}))
        .await;
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "local", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"]["message"].is_string(), "{error}");
}

#[tokio::test]
async fn cross_provider_fallbacks_both_ways() {
    let (mock, backup, gw) = start("");
    // Ollama fails: the OpenAI deployment answers.
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 503}))
        .await;
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "local", "messages": [{"role": "user", "content": "Say hello"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-model-id"], "cloud");
    assert_eq!(response.headers()["x-litellm-attempted-fallbacks"], "1");
    let seen = Mock(&backup).last_request().await;
    assert_eq!(seen["path"], "/v1/chat/completions");

    // OpenAI fails: an Ollama deployment answers, streamed.
    Mock(&backup)
        .set(json!({"fail_next": 1, "error_status": 500}))
        .await;
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "cloud", "stream": true,
                "messages": [{"role": "user", "content": "Say hello"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-model-id"], "ollama-backup");
    let text: String = chunks(&response.text().await.unwrap())
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, REPLY);
    let seen = Mock(&backup).last_request().await;
    assert_eq!(seen["path"], "/api/chat");
    assert_eq!(seen["body"]["model"], "qwen3");
}

/// An "Ollama" that answers `/api/chat` with the hostile body named by the request's model.
async fn hostile_ollama() -> String {
    use axum::http::header::CONTENT_TYPE;
    async fn answer(body: axum::body::Bytes) -> impl axum::response::IntoResponse {
        let request: Value = serde_json::from_slice(&body).unwrap_or_default();
        let first = br#"{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}"#;
        let payload: Vec<u8> = match request["model"].as_str().unwrap_or_default() {
            "garbage-first" => b"{not json\n".to_vec(),
            "garbage-later" => [&first[..], b"\n{\"done\": \"soon\"}\n"].concat(),
            "cut" => [&first[..], b"\n"].concat(),
            "not-utf8" => [&first[..], b"\n\xff\xfe\xfd\n"].concat(),
            "error-line" => [&first[..], b"\n{\"error\":\"model runner crashed\"}\n"].concat(),
            "endless-line" => vec![b'x'; 9 * 1024 * 1024],
            "array" => b"[1,2,3]\n".to_vec(),
            _ => b"{}".to_vec(),
        };
        ([(CONTENT_TYPE, "application/x-ndjson")], payload)
    }
    let app = axum::Router::new().route("/api/chat", axum::routing::post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn hostile_ndjson_upstreams_end_in_errors_and_the_gateway_keeps_serving() {
    let hostile = hostile_ollama().await;
    let mock = mock_upstream(&[]);
    let cases = [
        "garbage-first",
        "garbage-later",
        "cut",
        "not-utf8",
        "error-line",
        "endless-line",
        "array",
    ];
    let mut models = String::new();
    for case in cases {
        models.push_str(&format!(
            "  - model_name: {case}\n    litellm_params:\n      model: ollama_chat/{case}\n      api_base: {hostile}\n"
        ));
    }
    let gw = gateway(
        &format!(
            "model_list:\n{models}  - model_name: fine\n    litellm_params:\n      model: ollama_chat/llama3.2\n      api_base: {}\nrouter_settings:\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
            mock.url
        ),
        &[],
    );
    for case in cases {
        for stream in [true, false] {
            let response = post(
                &gw,
                "/v1/chat/completions",
                &json!({"model": case, "stream": stream,
                        "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            if status == 200 && stream {
                // Output had started: the stream ends with an error event, never [DONE].
                let events = sse_data(&text);
                let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
                assert!(last["error"]["message"].is_string(), "{case}: {text}");
                assert!(!text.contains("[DONE]"), "{case}: {text}");
            } else {
                assert!(status >= 500, "{case} stream={stream}: {status} {text}");
                let error: Value = serde_json::from_str(&text).unwrap();
                assert!(error["error"]["message"].is_string(), "{case}: {text}");
            }
        }
    }
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "fine", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn anthropic_surface_reaches_ollama_translated() {
    let (mock, _backup, gw) = start("");
    let body = json!({"model": "local", "max_tokens": 50, "system": "Be brief.",
                      "messages": [{"role": "user", "content": "Say hello"}]});
    let response = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", MASTER_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["content"][0]["text"], REPLY);
    assert_eq!(message["usage"]["output_tokens"], 6);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/api/chat");
    assert_eq!(seen["body"]["options"]["num_predict"], 50);
    assert_eq!(
        seen["body"]["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
}

#[tokio::test]
async fn legacy_completions_over_api_generate() {
    let (mock, _backup, gw) = start("");
    let response = post(
        &gw,
        "/v1/completions",
        &json!({"model": "local-generate", "prompt": "Say hello", "max_tokens": 16, "stop": "\n"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["model"], "local-generate");
    assert_eq!(answer["choices"][0]["text"], REPLY);
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["completion_tokens"], 6);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/api/generate");
    assert_eq!(
        seen["body"],
        json!({"model": "llama3.2", "prompt": "Say hello", "stream": false,
               "options": {"num_predict": 16, "stop": ["\n"]}})
    );

    let response = post(
        &gw,
        "/v1/completions",
        &json!({"model": "local-generate", "prompt": "Say hello", "stream": true}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, REPLY);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
}
