//! Drives an in-process mock upstream over real HTTP.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use switchyard_mock::{MockArgs, DEFAULT_REPLY};

fn chat_body(stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Say hello"}]}
        ],
        "stream": stream,
        "temperature": 0.2
    })
}

/// "Be brief." (9 chars) + "Say hello" (9 chars) = 18 chars → ceil(18 / 4) = 5 prompt tokens.
const CHAT_PROMPT_TOKENS: u64 = 5;

fn reply_words() -> u64 {
    DEFAULT_REPLY.split_whitespace().count() as u64
}

#[tokio::test]
async fn chat_completion() {
    let mock = start_default().await;
    let response = post_json(mock.addr, "/v1/chat/completions", &chat_body(false)).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("x-request-id"), Some("req_mock_1"));
    let body = response.json();
    assert_eq!(body["id"], "chatcmpl-mock-1");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert!(body["created"].as_u64().is_some_and(|t| t > 1_600_000_000));
    assert!(body["system_fingerprint"].is_string());
    assert_eq!(body["choices"][0]["index"], 0);
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], DEFAULT_REPLY);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({
            "prompt_tokens": CHAT_PROMPT_TOKENS,
            "completion_tokens": reply_words(),
            "total_tokens": CHAT_PROMPT_TOKENS + reply_words()
        })
    );

    // The same answer without `/v1`, and at Azure's path, where the deployment names the model.
    let second = post_json(mock.addr, "/chat/completions", &chat_body(false)).await;
    assert_eq!(second.json()["id"], "chatcmpl-mock-2");
    let azure = post_json(
        mock.addr,
        "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21",
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(azure.status, 200);
    assert_eq!(azure.json()["model"], "my-gpt");
    assert_eq!(azure.json()["usage"]["prompt_tokens"], 1);
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let mock = start_default().await;
    let not_json = send(
        mock.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        Some("{not json"),
    )
    .await;
    assert_eq!(not_json.status, 400);
    let error = &not_json.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert!(error["message"].is_string());
    assert!(error.get("param").is_some() && error.get("code").is_some());

    let no_messages = post_json(mock.addr, "/v1/chat/completions", &json!({"model": "m"})).await;
    assert_eq!(no_messages.status, 400);
    assert_eq!(no_messages.json()["error"]["param"], "messages");

    let unknown = post_json(mock.addr, "/v1/nothing", &json!({})).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["code"], "unknown_url");

    let wrong_method = get(mock.addr, "/v1/chat/completions").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method.json()["error"]["type"],
        "invalid_request_error"
    );

    // All of these are visible in the log, with their status.
    let statuses: Vec<u64> = requests(mock.addr)
        .await
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(statuses, [400, 400, 404, 405]);
}

#[tokio::test]
async fn chat_stream_sequence_and_usage_chunk() {
    let mock = start_default().await;
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = post_json(mock.addr, "/v1/chat/completions", &body).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert!(response.complete);

    let data = response.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk JSON"))
        .collect();
    let words = reply_words() as usize;
    // role chunk + one per word + finish chunk + usage chunk
    assert_eq!(chunks.len(), 1 + words + 1 + 1);
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert_eq!(chunk["created"], chunks[0]["created"]);
        assert_eq!(chunk["model"], "gpt-4o-mini");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks[1..=words]
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .expect("content")
        })
        .collect();
    assert_eq!(text, DEFAULT_REPLY);
    let finish = &chunks[words + 1];
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = &chunks[words + 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], CHAT_PROMPT_TOKENS);
    assert_eq!(usage["usage"]["completion_tokens"], reply_words());

    // Without include_usage there is no usage chunk and no `usage` key.
    let plain = post_json(mock.addr, "/v1/chat/completions", &chat_body(true)).await;
    let data = plain.sse_data();
    assert_eq!(data.len(), 1 + words + 1 + 1);
    assert!(!data[words + 1].contains("usage"));

    let stats = wait_for_stats(mock.addr, |s| s["streams_completed"] == 2).await;
    assert_eq!(stats["streams_cancelled"], 0);
    assert_eq!(stats["in_flight"], 0);
    assert_eq!(requests(mock.addr).await[0]["stream"], true);
}

#[tokio::test]
async fn stream_chunks_are_sent_as_they_are_produced() {
    let mock = start(MockArgs {
        chunk_delay_ms: 150,
        ..MockArgs::default()
    })
    .await;
    let started = Instant::now();
    let mut connection = open(
        mock.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        Some(&chat_body(true).to_string()),
    )
    .await;
    let received = read_until(&mut connection, "\"role\":\"assistant\"").await;
    // The first chunk arrives long before the whole stream could have (7 gaps of 150 ms).
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert!(!String::from_utf8_lossy(&received).contains("[DONE]"));
}

#[tokio::test]
async fn fail_next_and_retry_after() {
    let mock = start_default().await;
    let config = configure(
        mock.addr,
        json!({"fail_next": 2, "error_status": 429, "retry_after": 7}),
    )
    .await;
    assert_eq!(config["fail_next"], 2);
    for _ in 0..2 {
        let response = post_json(mock.addr, "/v1/chat/completions", &chat_body(false)).await;
        assert_eq!(response.status, 429);
        assert_eq!(response.header("retry-after"), Some("7"));
        let error = &response.json()["error"];
        assert_eq!(error["type"], "rate_limit_error");
        assert_eq!(
            error["message"],
            "mock upstream injected error (status 429)"
        );
    }
    let third = post_json(mock.addr, "/v1/chat/completions", &chat_body(false)).await;
    assert_eq!(third.status, 200);
    assert_eq!(third.header("retry-after"), None);

    // 5xx errors are server errors; clearing retry_after with null drops the header.
    configure(
        mock.addr,
        json!({"fail_next": 1, "error_status": 503, "retry_after": null}),
    )
    .await;
    let response = post_json(mock.addr, "/v1/embeddings", &json!({"input": "x"})).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), None);
    assert_eq!(response.json()["error"]["type"], "server_error");

    let stats = stats(mock.addr).await;
    assert_eq!(stats["injected_errors"], 3);
    assert_eq!(stats["requests"], 4);
}

#[tokio::test]
async fn seeded_error_rate_is_deterministic() {
    async fn statuses(addr: std::net::SocketAddr) -> Vec<u16> {
        let mut out = Vec::new();
        for _ in 0..24 {
            out.push(
                post_json(addr, "/v1/chat/completions", &chat_body(false))
                    .await
                    .status,
            );
        }
        out
    }
    let args = MockArgs {
        error_rate: 0.5,
        error_status: 502,
        seed: Some(7),
        ..MockArgs::default()
    };
    let first = start(args.clone()).await;
    let second = start(args).await;
    let a = statuses(first.addr).await;
    let b = statuses(second.addr).await;
    assert_eq!(a, b);
    assert!(a.contains(&200) && a.contains(&502), "{a:?}");
    // A reset re-seeds: the same sequence again.
    assert_eq!(
        post_json(first.addr, "/__mock/reset", &json!({}))
            .await
            .status,
        200
    );
    assert_eq!(statuses(first.addr).await, a);
}

#[tokio::test]
async fn hang_never_answers_until_switched_off() {
    let mock = start(MockArgs {
        hang: true,
        ..MockArgs::default()
    })
    .await;
    let body = chat_body(false).to_string();
    let hung = tokio::time::timeout(
        Duration::from_millis(300),
        send(mock.addr, "POST", "/v1/chat/completions", &[], Some(&body)),
    )
    .await;
    assert!(hung.is_err(), "a hanging mock answered: {hung:?}");
    wait_for_stats(mock.addr, |s| s["in_flight"] == 0).await;

    // A request held by the hang is released when hang is switched off.
    let addr = mock.addr;
    let waiting =
        tokio::spawn(
            async move { send(addr, "POST", "/v1/chat/completions", &[], Some(&body)).await },
        );
    wait_for_stats(mock.addr, |s| s["in_flight"] == 1).await;
    configure(mock.addr, json!({"hang": false})).await;
    let released = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("released in time")
        .expect("task");
    assert_eq!(released.status, 200);
    // The log shows the first request never got an answer.
    let statuses: Vec<u64> = requests(mock.addr)
        .await
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(statuses, [0, 200]);
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let mock = start(MockArgs {
        latency_ms: 200,
        ..MockArgs::default()
    })
    .await;
    let started = Instant::now();
    let response = post_json(mock.addr, "/v1/chat/completions", &chat_body(false)).await;
    assert_eq!(response.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn fail_mid_stream_truncates_the_stream() {
    let mock = start(MockArgs {
        fail_mid_stream_after: Some(3),
        ..MockArgs::default()
    })
    .await;
    let response = post_json(mock.addr, "/v1/chat/completions", &chat_body(true)).await;
    assert_eq!(response.status, 200);
    assert!(
        !response.complete,
        "the chunked body must end without its terminating chunk"
    );
    let data = response.sse_data();
    assert_eq!(data.len(), 3, "{data:?}");
    assert!(data.iter().all(|d| d != "[DONE]"));
    assert!(data[0].contains("\"role\":\"assistant\""));

    let stats = wait_for_stats(mock.addr, |s| s["streams_aborted"] == 1).await;
    assert_eq!(stats["streams_completed"], 0);
    assert_eq!(stats["streams_cancelled"], 0);
    let log = requests(mock.addr).await;
    assert_eq!(log[0]["stream_aborted"], true);
    assert_eq!(log[0]["stream_cancelled"], false);

    // Larger than the stream: everything but [DONE] is sent, then the cut.
    configure(mock.addr, json!({"fail_mid_stream_after": 1000})).await;
    let response = post_json(
        mock.addr,
        "/v1/completions",
        &json!({"prompt": "hi", "stream": true}),
    )
    .await;
    assert!(!response.complete);
    let data = response.sse_data();
    assert_eq!(data.len(), reply_words() as usize + 1);
    assert!(data.iter().all(|d| d != "[DONE]"));

    // Cleared with null: streams complete again.
    configure(mock.addr, json!({"fail_mid_stream_after": null})).await;
    let response = post_json(mock.addr, "/v1/chat/completions", &chat_body(true)).await;
    assert!(response.complete);
    assert_eq!(
        response.sse_data().last().map(String::as_str),
        Some("[DONE]")
    );
}

#[tokio::test]
async fn cancelled_stream_is_recorded() {
    let mock = start(MockArgs {
        chunk_delay_ms: 100,
        ..MockArgs::default()
    })
    .await;
    let mut connection = open(
        mock.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        Some(&chat_body(true).to_string()),
    )
    .await;
    read_until(&mut connection, "\"role\":\"assistant\"").await;
    drop(connection);

    let stats = wait_for_stats(mock.addr, |s| s["streams_cancelled"] == 1).await;
    assert_eq!(stats["streams_completed"], 0);
    assert_eq!(stats["in_flight"], 0);
    let log = requests(mock.addr).await;
    assert_eq!(log[0]["stream"], true);
    assert_eq!(log[0]["stream_cancelled"], true);
    assert_eq!(log[0]["status"], 200);
}

#[tokio::test]
async fn log_records_headers_and_body() {
    let mock = start_default().await;
    let body = chat_body(false).to_string();
    let response = send(
        mock.addr,
        "POST",
        "/openai/deployments/prod/chat/completions?api-version=2024-10-21",
        &[("Api-Key", "fake-azure-key"), ("X-Trace", "abc")],
        Some(&body),
    )
    .await;
    assert_eq!(response.status, 200);

    let log = requests(mock.addr).await;
    assert_eq!(log.len(), 1);
    let entry = &log[0];
    assert_eq!(entry["id"], 1);
    assert_eq!(entry["method"], "POST");
    assert_eq!(entry["path"], "/openai/deployments/prod/chat/completions");
    assert_eq!(entry["query"], "api-version=2024-10-21");
    assert_eq!(entry["headers"]["api-key"], "fake-azure-key");
    assert_eq!(entry["headers"]["x-trace"], "abc");
    assert_eq!(entry["headers"]["content-type"], "application/json");
    assert_eq!(entry["body"], chat_body(false));
    assert_eq!(entry["stream"], false);
    assert_eq!(entry["stream_cancelled"], false);
    assert_eq!(entry["status"], 200);

    // Control requests are not logged; DELETE clears the log.
    get(mock.addr, "/__mock/stats").await;
    assert_eq!(requests(mock.addr).await.len(), 1);
    assert_eq!(
        send(mock.addr, "DELETE", "/__mock/requests", &[], None)
            .await
            .status,
        204
    );
    assert!(requests(mock.addr).await.is_empty());
}

#[tokio::test]
async fn logging_can_be_turned_off() {
    let mock = start(MockArgs {
        max_log: 0,
        ..MockArgs::default()
    })
    .await;
    for _ in 0..3 {
        let response = post_json(mock.addr, "/v1/chat/completions", &chat_body(false)).await;
        assert_eq!(response.status, 200);
    }
    assert!(requests(mock.addr).await.is_empty());
    assert_eq!(stats(mock.addr).await["requests"], 3);
}

#[tokio::test]
async fn log_keeps_the_newest_entries() {
    let mock = start(MockArgs {
        max_log: 2,
        ..MockArgs::default()
    })
    .await;
    for _ in 0..3 {
        post_json(mock.addr, "/v1/chat/completions", &chat_body(false)).await;
    }
    let ids: Vec<u64> = requests(mock.addr)
        .await
        .iter()
        .filter_map(|r| r["id"].as_u64())
        .collect();
    assert_eq!(ids, [2, 3]);
}

#[tokio::test]
async fn text_completions() {
    let mock = start_default().await;
    let response = post_json(
        mock.addr,
        "/v1/completions",
        &json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello please"}),
    )
    .await;
    assert_eq!(response.status, 200);
    let body = response.json();
    assert_eq!(body["id"], "cmpl-mock-1");
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["text"], DEFAULT_REPLY);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 4);

    let stream = post_json(
        mock.addr,
        "/openai/deployments/instruct/completions?api-version=2024-10-21",
        &json!({"prompt": ["a", "b"], "stream": true}),
    )
    .await;
    let data = stream.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk JSON"))
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, DEFAULT_REPLY);
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    assert!(chunks.iter().all(|c| c["model"] == "instruct"));
    assert_eq!(
        chunks.last().expect("finish chunk")["choices"][0]["finish_reason"],
        "stop"
    );

    let missing = post_json(mock.addr, "/completions", &json!({"model": "m"})).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["error"]["param"], "prompt");
}

#[tokio::test]
async fn embeddings_are_deterministic_unit_vectors() {
    let mock = start_default().await;
    let request = json!({"model": "text-embedding-3-small", "input": ["hello", "world", "hello"]});
    let first = post_json(mock.addr, "/v1/embeddings", &request).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let body = first.json();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "text-embedding-3-small");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 6, "total_tokens": 6})
    );
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 3);
    let vector = |i: usize| -> Vec<f64> {
        assert_eq!(data[i]["object"], "embedding");
        assert_eq!(data[i]["index"], i);
        data[i]["embedding"]
            .as_array()
            .expect("floats")
            .iter()
            .filter_map(Value::as_f64)
            .collect()
    };
    assert_eq!(vector(0).len(), 8);
    assert_eq!(vector(0), vector(2));
    assert_ne!(vector(0), vector(1));
    let norm: f64 = vector(1).iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);

    // Same input on a fresh request (and a fresh server): same vector.
    let again = post_json(mock.addr, "/embeddings", &request).await.json();
    assert_eq!(again["data"], body["data"]);

    let sized = post_json(
        mock.addr,
        "/openai/deployments/emb/embeddings?api-version=2024-10-21",
        &json!({"input": [[1, 2, 3]], "dimensions": 32, "encoding_format": "base64"}),
    )
    .await
    .json();
    assert_eq!(sized["model"], "emb");
    assert_eq!(sized["usage"]["prompt_tokens"], 3);
    let encoded = sized["data"][0]["embedding"]
        .as_str()
        .expect("base64 string");
    let decoded = decode_f32_base64(encoded);
    assert_eq!(decoded.len(), 32);
    // The base64 form carries the same vector as the float form.
    let floats = post_json(
        mock.addr,
        "/v1/embeddings",
        &json!({"input": [[1, 2, 3]], "dimensions": 32}),
    )
    .await
    .json();
    let floats: Vec<f32> = floats["data"][0]["embedding"]
        .as_array()
        .expect("floats")
        .iter()
        .filter_map(Value::as_f64)
        .map(|v| v as f32)
        .collect();
    assert_eq!(decoded, floats);

    let missing = post_json(mock.addr, "/v1/embeddings", &json!({"model": "m"})).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["error"]["param"], "input");
    let bad_dims = post_json(
        mock.addr,
        "/v1/embeddings",
        &json!({"input": "x", "dimensions": 0}),
    )
    .await;
    assert_eq!(bad_dims.status, 400);
    assert_eq!(bad_dims.json()["error"]["param"], "dimensions");
}

/// Standard base64 of little-endian f32s, as OpenAI's `encoding_format: "base64"`.
fn decode_f32_base64(encoded: &str) -> Vec<f32> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in encoded.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("base64 alphabet") as u32;
        acc = (acc << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
        }
    }
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[tokio::test]
async fn models_lists_builtin_and_seen_models() {
    let mock = start_default().await;
    post_json(mock.addr, "/v1/chat/completions", &chat_body(false)).await;
    let models = get(mock.addr, "/v1/models").await;
    assert_eq!(models.status, 200);
    let body = models.json();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&"mock-gpt"));
    assert!(ids.contains(&"gpt-4o-mini"));
    assert_eq!(body["data"][0]["object"], "model");
    let one = get(mock.addr, "/models/anything").await.json();
    assert_eq!(one["id"], "anything");
}

#[tokio::test]
async fn control_endpoint_patches_validates_and_resets() {
    let mock = start(MockArgs {
        reply: "start-up reply".into(),
        ..MockArgs::default()
    })
    .await;
    let initial = get(mock.addr, "/__mock/config").await.json();
    assert_eq!(
        initial,
        json!({
            "latency_ms": 0, "error_rate": 0.0, "error_status": 500, "retry_after": null,
            "hang": false, "chunk_delay_ms": 0, "fail_mid_stream_after": null,
            "reply": "start-up reply", "fail_next": 0
        })
    );

    let patched = configure(
        mock.addr,
        json!({"reply": "patched reply", "latency_ms": 5}),
    )
    .await;
    assert_eq!(patched["reply"], "patched reply");
    assert_eq!(patched["latency_ms"], 5);
    assert_eq!(patched["error_status"], 500);
    let answer = post_json(mock.addr, "/v1/chat/completions", &chat_body(false)).await;
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "patched reply"
    );

    // Invalid patches are refused whole, with the offending field as `param`.
    for (patch, param) in [
        (json!({"error_rate": 2.0, "latency_ms": 9}), "error_rate"),
        (json!({"error_status": 200}), "error_status"),
        (json!({"hang": null}), "hang"),
    ] {
        let response = post_json(mock.addr, "/__mock/config", &patch).await;
        assert_eq!(response.status, 400, "{patch}");
        assert_eq!(response.json()["error"]["param"], param);
    }
    let unknown = post_json(mock.addr, "/__mock/config", &json!({"latency": 1})).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("latency")));
    assert_eq!(
        get(mock.addr, "/__mock/config").await.json()["latency_ms"],
        5
    );

    let reset = post_json(mock.addr, "/__mock/reset", &json!({})).await;
    assert_eq!(reset.status, 200);
    assert_eq!(reset.json(), initial);
    assert!(requests(mock.addr).await.is_empty());
    assert_eq!(
        stats(mock.addr).await,
        json!({"requests": 0, "in_flight": 0, "streams_cancelled": 0,
               "streams_completed": 0, "streams_aborted": 0, "injected_errors": 0, "token_requests": 0})
    );
    // Ids keep counting after a reset, so they never collide with earlier responses.
    let after = post_json(mock.addr, "/v1/chat/completions", &chat_body(false)).await;
    assert_eq!(after.json()["id"], "chatcmpl-mock-2");
}

#[tokio::test]
async fn responses_api_whole_streamed_and_with_a_tool() {
    let mock = start_default().await;
    // "Be brief." (9) + "Say hello" (9) = 18 chars → 5 input tokens.
    let body = json!({"model": "gpt-4.1", "instructions": "Be brief.", "input": "Say hello"});
    let response = post_json(mock.addr, "/v1/responses", &body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let answer = response.json();
    assert_eq!(answer["id"], "resp_mock_1");
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["model"], "gpt-4.1");
    assert_eq!(answer["output"][0]["content"][0]["text"], DEFAULT_REPLY);
    assert_eq!(answer["usage"]["input_tokens"], 5);
    assert_eq!(answer["usage"]["output_tokens"], reply_words());

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let response = post_json(mock.addr, "/responses", &streamed).await;
    // Named events (`event: <type>` then `data: ...`), as OpenAI sends them.
    let events: Vec<Value> = response
        .text()
        .split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["type"], "response.created");
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], i as u64);
    }
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, DEFAULT_REPLY);

    let tool = json!({"model": "gpt-4.1", "input": "Weather?", "tools": [{"type": "function",
        "name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}]});
    let call = post_json(
        mock.addr,
        "/openai/responses?api-version=2025-04-01-preview",
        &tool,
    )
    .await
    .json();
    assert_eq!(call["output"][0]["type"], "function_call");
    assert_eq!(call["output"][0]["arguments"], "{\"city\":\"mock\"}");
    let missing = post_json(mock.addr, "/v1/responses", &json!({"model": "m"})).await;
    assert_eq!(missing.status, 400);
}
