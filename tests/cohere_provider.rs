//! Cohere deployments (`cohere/...`, `cohere_chat/...`: Chat v2, `/v2/embed`, `/v2/rerank`) and
//! the rerank surface (`POST /v1/rerank`, `/rerank`, `/v2/rerank` in Cohere's shape, routed to
//! Cohere or to an OpenAI-compatible server's `/rerank`), through the real binary against the
//! mock upstream.

mod common;

use common::*;
use serde_json::{json, Value};

const REPLY: &str = "Hello from the Switchyard mock upstream.";

fn config(mock: &Proc, backup: &Proc) -> String {
    format!(
        r#"
model_list:
  - model_name: command
    litellm_params:
      model: cohere/command-a-03-2025
      api_base: {url}
    model_info:
      id: cohere-command
  - model_name: command-chat
    litellm_params:
      model: cohere_chat/command-r-plus
      api_base: {url}/v2
      api_key: co-inline-key
  - model_name: cohere-embed
    litellm_params:
      model: cohere/embed-v4.0
      api_base: {url}
  - model_name: cohere-rerank
    litellm_params:
      model: cohere/rerank-v3.5
      api_base: {url}
    model_info:
      id: cohere-rerank
      input_cost_per_query: 0.002
  - model_name: vllm-rerank
    litellm_params:
      model: hosted_vllm/BAAI/bge-reranker-v2-m3
      api_base: {backup}/v1
    model_info:
      id: vllm-rerank
  - model_name: chat-only
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {backup}/v1
      api_key: sk-ant
  - model_name: cloud
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {backup}/v1
      api_key: sk-backup
    model_info:
      id: cloud
  - model_name: command-backup
    litellm_params:
      model: cohere/command-r
      api_base: {backup}
    model_info:
      id: cohere-backup
router_settings:
  fallbacks: [{{"command": ["cloud"]}}, {{"cloud": ["command-backup"]}}, {{"cohere-rerank": ["vllm-rerank"]}}]
general_settings:
  master_key: {MASTER_KEY}
"#,
        url = mock.url,
        backup = backup.url
    )
}

fn start() -> (Proc, Proc, Proc) {
    let mock = mock_upstream(&[]);
    let backup = mock_upstream(&[]);
    let gw = gateway(
        &config(&mock, &backup),
        &[("COHERE_API_KEY", "co-key-from-env")],
    );
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

fn chunks(body: &str) -> Vec<Value> {
    let events = sse_data(body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

fn rerank_body(model: &str) -> Value {
    json!({"model": model, "query": "What is the capital of the United States?",
           "documents": ["Carson City is the capital city of the American state of Nevada.",
                         "The Commonwealth of the Northern Mariana Islands is a group of islands.",
                         "Washington, D.C. is the capital of the United States."],
           "top_n": 2, "return_documents": true})
}

#[tokio::test]
async fn chat_stream_and_tools() {
    let (mock, _backup, gw) = start();
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "command", "max_tokens": 64, "top_p": 0.5, "stop": "END",
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Say hello"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-model-id"],
        "cohere-command"
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["model"], "command");
    assert_eq!(answer["choices"][0]["message"]["content"], REPLY);
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["completion_tokens"], 6);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v2/chat");
    assert_eq!(seen["headers"]["authorization"], "Bearer co-key-from-env");
    assert_eq!(
        seen["body"],
        json!({"model": "command-a-03-2025", "stream": false, "max_tokens": 64, "p": 0.5,
               "stop_sequences": ["END"],
               "messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Say hello"}]})
    );

    // cohere_chat/ is the same API; an api_base with /v2 works too.
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "command-chat", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "Say hello"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let chunks_seen = chunks(&response.text().await.unwrap());
    let text: String = chunks_seen
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, REPLY);
    assert_eq!(chunks_seen.last().unwrap()["usage"]["completion_tokens"], 6);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v2/chat");
    assert_eq!(seen["headers"]["authorization"], "Bearer co-inline-key");
    assert_eq!(seen["body"]["stream"], true);

    // Tools: a call, then its result answered.
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "command", "tools": weather_tool(), "tool_choice": "required",
                "messages": [{"role": "user", "content": "Weather in Rome?"}]}),
    )
    .await;
    let answer: Value = response.json().await.unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = choice["message"]["tool_calls"][0].clone();
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"mock\"}");
    assert_eq!(
        Mock(&mock).last_request().await["body"]["tool_choice"],
        "REQUIRED"
    );
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "command", "tools": weather_tool(),
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
        json!({"role": "tool", "tool_call_id": call["id"], "content": "22C"})
    );

    // Streamed tool call: arguments arrive in pieces.
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "command", "tools": weather_tool(), "stream": true,
                "messages": [{"role": "user", "content": "Weather in Rome?"}]}),
    )
    .await;
    let streamed = chunks(&response.text().await.unwrap());
    let arguments: String = streamed
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"city\":\"mock\"}");
    assert!(streamed
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}

#[tokio::test]
async fn embeddings_through_v2_embed() {
    let (mock, _backup, gw) = start();
    let response = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "cohere-embed", "input": ["hello", "goodbye"], "input_type": "search_query"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);
    assert_eq!(answer["data"][0]["embedding"].as_array().unwrap().len(), 8);
    assert_eq!(answer["usage"]["prompt_tokens"], 2 + 2);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v2/embed");
    assert_eq!(
        seen["body"],
        json!({"model": "embed-v4.0", "texts": ["hello", "goodbye"], "input_type": "search_query",
               "embedding_types": ["float"]})
    );
}

#[tokio::test]
async fn rerank_surface_routes_to_cohere_and_compatible_servers() {
    let (mock, backup, gw) = start();
    for path in ["/v1/rerank", "/rerank", "/v2/rerank"] {
        let response = post(&gw, path, &rerank_body("cohere-rerank")).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["x-switchyard-model-id"], "cohere-rerank");
        let response_cost = response.headers()["x-litellm-response-cost"]
            .to_str()
            .unwrap()
            .to_owned();
        let answer: Value = response.json().await.unwrap();
        let results = answer["results"].as_array().unwrap();
        assert_eq!(results.len(), 2, "top_n");
        assert_eq!(results[0]["index"], 2, "the best match first: {answer}");
        assert_eq!(
            results[0]["document"]["text"],
            "Washington, D.C. is the capital of the United States."
        );
        assert!(
            results[0]["relevance_score"].as_f64().unwrap()
                > results[1]["relevance_score"].as_f64().unwrap()
        );
        // Priced per search (`model_info.input_cost_per_query`), as LiteLLM prices rerank.
        let cost: f64 = response_cost.parse().unwrap();
        assert!((cost - 0.002).abs() < 1e-9, "{path}: cost {cost}");
        assert_eq!(answer["meta"]["billed_units"]["search_units"], 1);
    }
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v2/rerank");
    assert_eq!(seen["headers"]["authorization"], "Bearer co-key-from-env");
    assert_eq!(seen["body"]["model"], "rerank-v3.5");
    assert!(
        seen["body"].get("return_documents").is_none(),
        "v2 has no such field"
    );

    // An OpenAI-compatible server's /rerank (vLLM, Jina) gets the body as sent.
    let response = post(&gw, "/v1/rerank", &rerank_body("vllm-rerank")).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["results"][0]["index"], 2);
    let seen = Mock(&backup).last_request().await;
    assert_eq!(seen["path"], "/v1/rerank");
    assert_eq!(seen["body"]["model"], "BAAI/bge-reranker-v2-m3");
    assert_eq!(seen["body"]["return_documents"], true);

    // Cohere fails: the rerank fallback answers.
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 503}))
        .await;
    let response = post(&gw, "/v1/rerank", &rerank_body("cohere-rerank")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-model-id"], "vllm-rerank");

    // Bad requests never reach an upstream; a deployment that cannot rerank says so.
    let before = Mock(&mock).requests().await.len();
    for (body, param) in [
        (
            json!({"model": "cohere-rerank", "documents": ["a"]}),
            "query",
        ),
        (
            json!({"model": "cohere-rerank", "query": "q", "documents": []}),
            "documents",
        ),
        (
            json!({"model": "cohere-rerank", "query": "q", "documents": ["a"], "top_n": 0}),
            "top_n",
        ),
    ] {
        let response = post(&gw, "/v1/rerank", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["param"], param, "{error}");
    }
    assert_eq!(Mock(&mock).requests().await.len(), before);
    let response = post(&gw, "/v1/rerank", &rerank_body("chat-only")).await;
    assert_eq!(response.status(), 400);

    // Authenticated like every model route.
    let response = client()
        .post(format!("{}/v1/rerank", gw.url))
        .json(&rerank_body("cohere-rerank"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn rerank_is_spend_logged() {
    let (_mock, _backup, gw) = start();
    let response = post(&gw, "/v1/rerank", &rerank_body("vllm-rerank")).await;
    assert_eq!(response.status(), 200);
    let rows = spend_rows(&gw, "", 1).await;
    let row = rows
        .iter()
        .find(|r| r.to_string().contains("vllm-rerank"))
        .unwrap_or_else(|| panic!("{rows:?}"));
    // The vLLM-style answer reports `usage.total_tokens`: counted as input tokens.
    let text = row.to_string();
    assert!(
        row["prompt_tokens"].as_i64().is_some_and(|n| n > 0)
            || row["usage"]["prompt_tokens"]
                .as_i64()
                .is_some_and(|n| n > 0),
        "{text}"
    );
}

#[tokio::test]
async fn cross_provider_fallbacks_both_ways() {
    let (mock, backup, gw) = start();
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 503}))
        .await;
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "command", "messages": [{"role": "user", "content": "Say hello"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-model-id"], "cloud");
    assert_eq!(
        Mock(&backup).last_request().await["path"],
        "/v1/chat/completions"
    );

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
    assert_eq!(response.headers()["x-switchyard-model-id"], "cohere-backup");
    let text: String = chunks(&response.text().await.unwrap())
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, REPLY);
    assert_eq!(Mock(&backup).last_request().await["path"], "/v2/chat");
}

/// A "Cohere" that answers `/v2/chat` with the hostile event stream named by the model.
async fn hostile_cohere() -> String {
    use axum::http::header::CONTENT_TYPE;
    async fn answer(body: axum::body::Bytes) -> impl axum::response::IntoResponse {
        let request: Value = serde_json::from_slice(&body).unwrap_or_default();
        let start = "event: message-start\ndata: {\"type\":\"message-start\",\"id\":\"x\"}\n\nevent: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"Hi\"}}}}\n\n";
        let payload: Vec<u8> = match request["model"].as_str().unwrap_or_default() {
            "garbage" => format!("{start}data: {{not json\n\n").into_bytes(),
            "cut" => start.as_bytes().to_vec(),
            "untyped" => format!("{start}data: {{\"delta\": {{}}}}\n\n").into_bytes(),
            "not-utf8" => [start.as_bytes(), b"data: \xff\xfe\n\n"].concat(),
            _ => b"data: {}\n\n".to_vec(),
        };
        ([(CONTENT_TYPE, "text/event-stream")], payload)
    }
    let app = axum::Router::new().route("/v2/chat", axum::routing::post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn hostile_event_streams_end_in_errors_and_the_gateway_keeps_serving() {
    let hostile = hostile_cohere().await;
    let mock = mock_upstream(&[]);
    let cases = ["garbage", "cut", "untyped", "not-utf8"];
    let mut models = String::new();
    for case in cases {
        models.push_str(&format!(
            "  - model_name: {case}\n    litellm_params:\n      model: cohere/{case}\n      api_base: {hostile}\n      api_key: k\n"
        ));
    }
    let gw = gateway(
        &format!(
            "model_list:\n{models}  - model_name: fine\n    litellm_params:\n      model: cohere/command\n      api_base: {}\n      api_key: k\nrouter_settings:\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
            mock.url
        ),
        &[],
    );
    for case in cases {
        let response = post(
            &gw,
            "/v1/chat/completions",
            &json!({"model": case, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        if status == 200 {
            let events = sse_data(&text);
            let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
            assert!(last["error"]["message"].is_string(), "{case}: {text}");
            assert!(!text.contains("[DONE]"), "{case}: {text}");
        } else {
            assert!(status >= 500, "{case}: {status} {text}");
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
