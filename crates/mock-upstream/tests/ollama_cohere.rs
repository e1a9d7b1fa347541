//! Ollama's native wire format (NDJSON streams) and Cohere's v2 API, as the mock speaks them.

mod common;

use common::*;
use serde_json::{json, Value};

const REPLY: &str = "Hello from the Switchyard mock upstream.";
const COHERE_KEY: &[(&str, &str)] = &[("authorization", "Bearer co-fake")];

async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> HttpResponse {
    send(addr, "POST", path, headers, Some(&body.to_string())).await
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("one JSON value per line"))
        .collect()
}

#[tokio::test]
async fn ollama_chat_whole_and_streamed() {
    let mock = start_default().await;
    let body = json!({"model": "llama3.2", "stream": false,
                      "messages": [{"role": "user", "content": "12345678"}]});
    let response = post(mock.addr, "/api/chat", &[], &body).await;
    assert_eq!(response.status, 200);
    let answer = response.json();
    assert_eq!(answer["model"], "llama3.2");
    assert_eq!(
        answer["message"],
        json!({"role": "assistant", "content": REPLY})
    );
    assert_eq!(answer["done"], true);
    assert_eq!(answer["done_reason"], "stop");
    assert_eq!(
        (&answer["prompt_eval_count"], &answer["eval_count"]),
        (&json!(2), &json!(6))
    );

    // Like Ollama, a request without `stream` is streamed, as NDJSON.
    let body = json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]});
    let response = post(mock.addr, "/api/chat", &[], &body).await;
    assert_eq!(
        response.header("content-type"),
        Some("application/x-ndjson")
    );
    let lines = lines(&response.text());
    let text: String = lines
        .iter()
        .filter_map(|l| l["message"]["content"].as_str())
        .collect();
    assert_eq!(text, REPLY);
    assert!(lines[..lines.len() - 1].iter().all(|l| l["done"] == false));
    let last = lines.last().unwrap();
    assert_eq!(
        (&last["done"], &last["eval_count"]),
        (&json!(true), &json!(6))
    );
}

#[tokio::test]
async fn ollama_tools_generate_embed_and_errors() {
    let mock = start_default().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let body = json!({"model": "m", "stream": false, "tools": tools,
                      "messages": [{"role": "user", "content": "weather?"}]});
    let answer = post(mock.addr, "/api/chat", &[], &body).await.json();
    assert_eq!(
        answer["message"]["tool_calls"][0]["function"]["arguments"],
        json!({"city": "mock"})
    );
    let body = json!({"model": "m", "stream": false, "tools": tools,
                      "messages": [{"role": "user", "content": "weather?"},
                                   {"role": "tool", "content": "sunny", "tool_name": "get_weather"}]});
    let answer = post(mock.addr, "/api/chat", &[], &body).await.json();
    assert_eq!(answer["message"]["content"], REPLY);

    let body = json!({"model": "m", "stream": false, "prompt": "Why?", "system": "Be brief."});
    let answer = post(mock.addr, "/api/generate", &[], &body).await.json();
    assert_eq!(answer["response"], REPLY);
    assert!(answer.get("message").is_none());

    let body = json!({"model": "all-minilm", "input": ["a", "b"], "dimensions": 4});
    let answer = post(mock.addr, "/api/embed", &[], &body).await.json();
    assert_eq!(answer["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(answer["embeddings"][0].as_array().unwrap().len(), 4);
    assert_eq!(answer["prompt_eval_count"], 2);

    configure(mock.addr, json!({"fail_next": 1, "error_status": 503})).await;
    let response = post(
        mock.addr,
        "/api/chat",
        &[],
        &json!({"model": "m", "messages": []}),
    )
    .await;
    assert_eq!(response.status, 503);
    assert!(response.json()["error"].is_string());
    let response = post(mock.addr, "/api/chat", &[], &json!({"messages": []})).await;
    assert_eq!(response.status, 400);
    assert!(response.json()["error"].is_string());
}

#[tokio::test]
async fn cohere_chat_needs_a_key_and_streams_named_events() {
    let mock = start_default().await;
    let body = json!({"model": "command-a", "messages": [{"role": "user", "content": "hi"}]});
    let response = post(mock.addr, "/v2/chat", &[], &body).await;
    assert_eq!(response.status, 401);
    assert_eq!(response.json(), json!({"message": "no api key supplied"}));

    let answer = post(mock.addr, "/v2/chat", COHERE_KEY, &body).await.json();
    assert_eq!(answer["finish_reason"], "COMPLETE");
    assert_eq!(
        answer["message"]["content"],
        json!([{"type": "text", "text": REPLY}])
    );
    assert_eq!(answer["usage"]["tokens"]["output_tokens"], 6);

    let mut streamed = body.clone();
    streamed["stream"] = true.into();
    let response = post(mock.addr, "/v2/chat", COHERE_KEY, &streamed).await;
    let text = response.text();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message-start"));
    assert_eq!(names.last(), Some(&"message-end"));
    assert!(names.contains(&"content-delta"));

    let tools = json!([{"type": "function", "function": {"name": "f",
        "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}}}}]);
    let mut with_tools = streamed.clone();
    with_tools["tools"] = tools.clone();
    let text = post(mock.addr, "/v2/chat", COHERE_KEY, &with_tools)
        .await
        .text();
    assert!(text.contains("event: tool-call-start") && text.contains("TOOL_CALL"));
    let mut forbidden = body.clone();
    forbidden["tools"] = tools;
    forbidden["tool_choice"] = "NONE".into();
    let answer = post(mock.addr, "/v2/chat", COHERE_KEY, &forbidden)
        .await
        .json();
    assert_eq!(answer["finish_reason"], "COMPLETE");
}

#[tokio::test]
async fn cohere_embed_and_rerank() {
    let mock = start_default().await;
    let body = json!({"model": "embed-v4.0", "texts": ["hello"]});
    let response = post(mock.addr, "/v2/embed", COHERE_KEY, &body).await;
    assert_eq!(response.status, 400, "input_type is required");
    let body = json!({"model": "embed-v4.0", "texts": ["hello"], "input_type": "search_query"});
    let answer = post(mock.addr, "/v2/embed", COHERE_KEY, &body).await.json();
    assert_eq!(
        answer["embeddings"]["float"][0].as_array().unwrap().len(),
        8
    );
    assert_eq!(answer["meta"]["billed_units"]["input_tokens"], 2);

    let body = json!({"model": "rerank-v3.5", "query": "capital of France", "top_n": 2,
                      "return_documents": true,
                      "documents": ["Berlin is in Germany", "Paris is the capital of France",
                                    {"text": "France has a capital"}]});
    let answer = post(mock.addr, "/v2/rerank", COHERE_KEY, &body)
        .await
        .json();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["index"], 1);
    assert_eq!(results[1]["index"], 2);
    assert!(
        results[0].get("document").is_none(),
        "v2 returns no documents"
    );
    assert_eq!(answer["meta"]["billed_units"]["search_units"], 1);

    // vLLM's and Jina's path: no key, documents and usage in the answer.
    let answer = post(mock.addr, "/v1/rerank", &[], &body).await.json();
    assert_eq!(
        answer["results"][0]["document"]["text"],
        "Paris is the capital of France"
    );
    assert!(answer["usage"]["total_tokens"].as_u64().unwrap() > 0);
}
