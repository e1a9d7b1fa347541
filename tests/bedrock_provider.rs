//! A Bedrock deployment (Converse and ConverseStream, SigV4-signed) behind the OpenAI surface,
//! through the real binary against the mock upstream's Bedrock endpoints; its signature
//! checked against AWS's algorithm; fallbacks between Bedrock and OpenAI both ways.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName};
use common::*;
use serde_json::{json, Value};
use switchyard::config::Secret;
use switchyard::providers::bedrock::credentials::AwsKeys;
use switchyard::providers::bedrock::sigv4::{sign_request, Scope};

const MODEL: &str = "us.anthropic.claude-3-5-sonnet-20240620-v1:0";
const REPLY: &str = "Hello from the Switchyard mock upstream.";

fn bedrock_entry(name: &str, id: &str, endpoint: &str) -> String {
    format!(
        r#"
  - model_name: {name}
    litellm_params:
      model: bedrock/converse/{MODEL}
      aws_bedrock_runtime_endpoint: {endpoint}
      aws_access_key_id: os.environ/TEST_AWS_ACCESS_KEY_ID
      aws_secret_access_key: os.environ/TEST_AWS_SECRET_ACCESS_KEY
      aws_session_token: test-session-token
      aws_region_name: us-east-1
    model_info:
      id: {id}
"#
    )
}

const AWS_ENV: &[(&str, &str)] = &[
    ("TEST_AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
    (
        "TEST_AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    ),
];

fn start() -> (Proc, Proc) {
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &format!(
            "model_list:{}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
            bedrock_entry("claude", "bedrock-primary", &mock.url)
        ),
        AWS_ENV,
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
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}])
}

#[tokio::test]
async fn chat_reaches_converse_signed() {
    let (mock, gw) = start();
    let response = post(
        &gw,
        &json!({"model": "claude", "max_tokens": 64, "temperature": 0.3, "stop": ["END"],
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Say hello"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-model-id"],
        "bedrock-primary"
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["model"], "claude");
    assert_eq!(answer["choices"][0]["message"]["content"], REPLY);
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["completion_tokens"], 6);

    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["path"],
        "/model/us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    let authorization = seen["headers"]["authorization"].as_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && authorization.contains("/us-east-1/bedrock/aws4_request, SignedHeaders="),
        "{authorization}"
    );
    assert_eq!(
        seen["headers"]["x-amz-security-token"],
        "test-session-token"
    );
    assert_eq!(
        seen["body"],
        json!({
            "messages": [{"role": "user", "content": [{"text": "Say hello"}]}],
            "system": [{"text": "Be brief."}],
            "inferenceConfig": {"maxTokens": 64, "temperature": 0.3, "stopSequences": ["END"]}
        })
    );
    // The gateway's log never shows the secret.
    let log = gw.stop();
    assert!(!log.contains("wJalrXUtnFEMI"), "{log}");
}

#[tokio::test]
async fn streams_and_tool_calls() {
    let (mock, gw) = start();
    let response = post(
        &gw,
        &json!({"model": "claude", "stream": true, "stream_options": {"include_usage": true},
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
    assert_eq!(text, REPLY);
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 6);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["path"],
        "/model/us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    );
    assert_eq!(
        seen["headers"]["accept"],
        "application/vnd.amazon.eventstream"
    );
    assert_eq!(seen["stream"], true);

    // A forced tool call, streamed: id and name first, then the input in pieces.
    let response = post(
        &gw,
        &json!({"model": "claude", "stream": true, "tools": weather_tool(), "tool_choice": "required",
                "messages": [{"role": "user", "content": "Weather in Rome?"}]}),
    )
    .await;
    let events = sse_data(&response.text().await.unwrap());
    let mut arguments = String::new();
    let mut name = None;
    let mut finish = None;
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).unwrap();
        let choice = &chunk["choices"][0];
        if let Some(call) = choice["delta"]["tool_calls"].get(0) {
            if let Some(n) = call["function"]["name"].as_str() {
                name = Some(n.to_owned());
            }
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = Some(reason.to_owned());
        }
    }
    assert_eq!(name.as_deref(), Some("get_weather"));
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "mock"})
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));

    // Not streamed, then the result goes back as a toolResult.
    let response = post(
        &gw,
        &json!({"model": "claude", "tools": weather_tool(), "tool_choice": "required",
                "messages": [{"role": "user", "content": "Weather in Rome?"}]}),
    )
    .await;
    let answer: Value = response.json().await.unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = choice["message"]["tool_calls"][0].clone();
    assert_eq!(call["function"]["name"], "get_weather");
    let sent = Mock(&mock).last_request().await["body"].clone();
    assert_eq!(sent["toolConfig"]["toolChoice"], json!({"any": {}}));
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );

    let response = post(
        &gw,
        &json!({"model": "claude", "tools": weather_tool(), "messages": [
            {"role": "user", "content": "Weather in Rome?"},
            choice["message"].clone(),
            {"role": "tool", "tool_call_id": call["id"], "content": "{\"temp\": 21}"}
        ]}),
    )
    .await;
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], REPLY);
    let sent = Mock(&mock).last_request().await["body"].clone();
    assert_eq!(
        sent["messages"][1]["content"][0]["toolUse"]["name"],
        "get_weather"
    );
    assert_eq!(
        sent["messages"][2]["content"][0],
        json!({"toolResult": {"toolUseId": call["id"], "content": [{"json": {"temp": 21}}]}})
    );
}

#[tokio::test]
async fn aws_errors_and_cut_streams() {
    let (mock, gw) = start();
    let hello = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]});
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 429, "retry_after": 2}))
        .await;
    let response = post(&gw, &hello).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "ThrottlingException");

    // messageStop never comes: an error, not a silent end.
    Mock(&mock)
        .set(json!({"fail_mid_stream_after": 2, "retry_after": null}))
        .await;
    let mut body = hello.clone();
    body["stream"] = json!(true);
    let text = post(&gw, &body).await.text().await.unwrap();
    assert!(!text.contains("[DONE]"), "{text}");
    let events = sse_data(&text);
    let error: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(error["error"].is_object(), "{error}");
}

/// What a test upstream received.
#[derive(Clone, Default)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// An upstream that records the raw request (the mock's log re-serialises bodies) and
/// answers a Converse response.
async fn recording_upstream() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let store = seen.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let store = store.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            *store.lock().unwrap() = Seen {
                path: parts.uri.path().to_owned(),
                headers: parts.headers,
                body: body.to_vec(),
            };
            axum::Json(json!({
                "output": {"message": {"role": "assistant", "content": [{"text": "signed"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}
            }))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// `20261207T183600Z` as a time.
fn amz_date(text: &str) -> std::time::SystemTime {
    let n = |range: std::ops::Range<usize>| text[range].parse::<u64>().unwrap();
    let (year, month, day) = (n(0..4) as i64, n(4..6) as i64, n(6..8) as i64);
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    UNIX_EPOCH
        + Duration::from_secs(days as u64 * 86_400 + n(9..11) * 3600 + n(11..13) * 60 + n(13..15))
}

#[tokio::test]
async fn the_signature_verifies_with_the_secret() {
    let (upstream, seen) = recording_upstream().await;
    let gw = gateway(
        &format!(
            "model_list:{}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
            bedrock_entry("claude", "bedrock-primary", &upstream)
        ),
        AWS_ENV,
    );
    let response = post(
        &gw,
        &json!({"model": "claude", "messages": [{"role": "user", "content": "sign me"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let seen = seen.lock().unwrap().clone();
    assert_signed(&seen, "POST", &seen.path);
    // And a different secret gives a different signature.
    assert_ne!(
        resign(&seen, "POST", &seen.path, "not-the-secret"),
        seen.headers["authorization"].to_str().unwrap()
    );
}

fn fallback_config(bedrock_mock: &Proc, openai_mock: &Proc) -> String {
    format!(
        r#"model_list:{bedrock}
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {openai}/v1
      api_key: sk-openai-test
    model_info:
      id: openai-primary
router_settings:
  num_retries: 0
  fallbacks: [{{"claude": ["gpt"]}}, {{"gpt": ["claude"]}}]
general_settings:
  master_key: {MASTER_KEY}
"#,
        bedrock = bedrock_entry("claude", "bedrock-primary", &bedrock_mock.url),
        openai = openai_mock.url
    )
}

#[tokio::test]
async fn fallbacks_between_bedrock_and_openai() {
    let bedrock_mock = mock_upstream(&[]);
    let openai_mock = mock_upstream(&[]);
    let gw = gateway(&fallback_config(&bedrock_mock, &openai_mock), AWS_ENV);
    let hello =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});

    // Bedrock fails → the OpenAI deployment answers.
    Mock(&bedrock_mock)
        .set(json!({"error_rate": 1.0, "error_status": 503}))
        .await;
    let response = post(&gw, &hello("claude")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-model-id"],
        "openai-primary"
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], REPLY);
    let tried = Mock(&bedrock_mock).requests().await;
    assert!(tried
        .iter()
        .any(|r| r["path"].as_str().unwrap().ends_with("/converse")));

    // And the reverse, streamed: OpenAI fails → Bedrock answers.
    Mock(&bedrock_mock).set(json!({"error_rate": 0.0})).await;
    Mock(&openai_mock)
        .set(json!({"error_rate": 1.0, "error_status": 500}))
        .await;
    let response = post(&gw, &hello("gpt")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-model-id"],
        "bedrock-primary"
    );
    let mut body = hello("gpt");
    body["stream"] = json!(true);
    let response = post(&gw, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-model-id"],
        "bedrock-primary"
    );
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let text: String = events[..events.len() - 1]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, REPLY);
}

#[tokio::test]
async fn missing_credentials_stop_the_start_with_a_clear_message() {
    let path = write_config(&format!(
        r#"model_list:
  - model_name: claude
    litellm_params:
      model: bedrock/{MODEL}
general_settings:
  master_key: {MASTER_KEY}
"#
    ));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "--config", path.to_str().unwrap()])
        .env("HOME", "/nonexistent")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_BEARER_TOKEN_BEDROCK")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env_remove("AWS_CONFIG_FILE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("no AWS credentials found"), "{text}");
}

/// An upstream that answers every stream with `body` as its event stream.
async fn hostile_upstream(body: Vec<u8>) -> String {
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                [("content-type", "application/vnd.amazon.eventstream")],
                body,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn hostile_event_streams_end_with_an_error_not_a_crash() {
    use switchyard::providers::eventstream::encode_event;
    let start = encode_event("messageStart", r#"{"role":"assistant"}"#);
    let delta = encode_event(
        "contentBlockDelta",
        r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
    );
    // Some good output first, so the client already has bytes when the stream breaks.
    let mut good = start.clone();
    good.extend(&delta);
    let mut bad_crc = good.clone();
    let mut corrupted = delta.clone();
    let at = corrupted.len() - 8;
    corrupted[at] ^= 0x20;
    bad_crc.extend(corrupted);
    // A prelude announcing 4 GiB (its own CRC valid): refused, never buffered.
    let mut huge = good.clone();
    let prelude = [0xffu8, 0xff, 0xff, 0xff, 0, 0, 0, 0];
    let crc = crc32(&prelude);
    huge.extend(prelude);
    huge.extend(crc.to_be_bytes());
    huge.extend(vec![0u8; 4096]);
    let mut truncated = good.clone();
    truncated.extend(&delta[..delta.len() / 2]);

    for (name, body) in [
        ("bad crc", bad_crc),
        ("huge", huge),
        ("truncated", truncated),
    ] {
        let upstream = hostile_upstream(body).await;
        let gw = gateway(
            &format!(
                "model_list:{}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
                bedrock_entry("claude", "bedrock-primary", &upstream)
            ),
            AWS_ENV,
        );
        let response = post(
            &gw,
            &json!({"model": "claude", "stream": true,
                    "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        let text = response.text().await.unwrap();
        assert!(!text.contains("[DONE]"), "{name}: {text}");
        assert!(text.contains("\"Hi\""), "{name}: {text}");
        let events = sse_data(&text);
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert!(last["error"].is_object(), "{name}: {text}");
        // The gateway still serves.
        let health = client()
            .get(format!("{}/health/liveliness", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "{name}");
    }
}

/// CRC-32 (IEEE), bit by bit: the test's own, independent of the gateway's.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn anthropic_surface_and_cost_on_bedrock() {
    let (mock, gw) = start();
    let response = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", MASTER_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude", "max_tokens": 99,
                      "system": "Be brief.",
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Priced from the table's `us.anthropic...` entry (the `converse/` marker is not the name).
    let cost: f64 = response.headers()["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cost > 0.0, "{cost}");
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], REPLY);
    assert_eq!(message["stop_reason"], "end_turn");
    let sent = Mock(&mock).last_request().await["body"].clone();
    assert_eq!(sent["system"], json!([{"text": "Be brief."}]));
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 99);
}

/// Embeddings on Bedrock through `InvokeModel`: Titan v2 takes one text a call, so a list of
/// five inputs is five signed calls whose vectors come back in input order with their token
/// counts added and priced; Cohere on Bedrock takes the list in one call. An embedding model
/// asked to chat, or a chat model asked to embed, gets a clear error.
#[tokio::test]
async fn titan_and_cohere_embeddings_through_invoke() {
    let mock = mock_upstream(&[]);
    let entry = |name: &str, model: &str| {
        format!(
            r#"
  - model_name: {name}
    litellm_params:
      model: bedrock/{model}
      aws_bedrock_runtime_endpoint: {}
      aws_access_key_id: os.environ/TEST_AWS_ACCESS_KEY_ID
      aws_secret_access_key: os.environ/TEST_AWS_SECRET_ACCESS_KEY
      aws_region_name: us-east-1
      input_cost_per_token: 0.0000001
"#,
            mock.url
        )
    };
    let gw = gateway(
        &format!(
            "model_list:{}{}{}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
            entry("titan", "amazon.titan-embed-text-v2:0"),
            entry("cohere-embed", "cohere.embed-english-v3"),
            bedrock_entry("claude", "bedrock-primary", &mock.url)
        ),
        AWS_ENV,
    );
    let embed = |body: Value| {
        let url = format!("{}/v1/embeddings", gw.url);
        async move {
            client()
                .post(url)
                .bearer_auth(MASTER_KEY)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let inputs = ["one", "two", "three", "four", "five"];
    let response = embed(json!({"model": "titan", "input": inputs, "dimensions": 256})).await;
    assert_eq!(response.status(), 200);
    let cost: f64 = response.headers()["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    let data = answer["data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["embedding"].as_array().unwrap().len(), 256);
    }
    let tokens = answer["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(tokens >= 5, "{answer}");
    assert!(
        (cost - tokens as f64 * 1e-7).abs() < 1e-12,
        "{cost} for {tokens}"
    );
    let calls = Mock(&mock).requests().await;
    assert_eq!(calls.len(), 5, "one call per text");
    let mut sent: Vec<String> = calls
        .iter()
        .map(|c| {
            assert_eq!(c["path"], "/model/amazon.titan-embed-text-v2%3A0/invoke");
            assert!(c["headers"]["authorization"]
                .as_str()
                .unwrap()
                .starts_with("AWS4-HMAC-SHA256"));
            assert_eq!(c["body"]["dimensions"], 256);
            c["body"]["inputText"].as_str().unwrap().to_owned()
        })
        .collect();
    sent.sort();
    let mut expected: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(sent, expected);
    // In input order: the third vector is the one "three" gets alone.
    let alone: Value = embed(json!({"model": "titan", "input": "three", "dimensions": 256}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alone["data"][0]["embedding"], data[2]["embedding"]);

    let response =
        embed(json!({"model": "cohere-embed", "input": ["a", "b"], "encoding_format": "base64"}))
            .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);
    assert!(answer["data"][1]["embedding"].is_string(), "base64");
    let last = Mock(&mock).last_request().await;
    assert_eq!(last["path"], "/model/cohere.embed-english-v3/invoke");
    assert_eq!(
        last["body"],
        json!({"texts": ["a", "b"], "input_type": "search_document"})
    );

    // Token ids are not text; a chat model has no embeddings here.
    let response = embed(json!({"model": "titan", "input": [[1, 2, 3]]})).await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("input"), "{text}");
    let response = embed(json!({"model": "claude", "input": "x"})).await;
    assert!(response.status().is_client_error(), "{}", response.status());
    gw.stop();
}

/// The `authorization` a recorded request gets when signed again with `secret` (its signed
/// headers, date and body as recorded; the signer adds host, x-amz-date and the token itself).
fn resign(seen: &Seen, method: &str, path_and_query: &str, secret: &str) -> String {
    let got = seen.headers["authorization"].to_str().unwrap();
    let signed: Vec<&str> = got
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .split(';')
        .collect();
    let mut headers = HeaderMap::new();
    for name in &signed {
        if !matches!(*name, "host" | "x-amz-date" | "x-amz-security-token") {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                seen.headers[*name].clone(),
            );
        }
    }
    let host = seen.headers["host"].to_str().unwrap();
    let keys = AwsKeys {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new(secret.into()),
        session_token: Some(Secret::new("test-session-token".into())),
        expires_at: None,
    };
    let date = seen.headers["x-amz-date"].to_str().unwrap();
    sign_request(
        method,
        &format!("http://{host}{path_and_query}"),
        &mut headers,
        &seen.body,
        &keys,
        &Scope {
            region: "us-east-1",
            service: "bedrock",
            time: amz_date(date),
        },
    )
    .unwrap();
    headers["authorization"].to_str().unwrap().to_owned()
}

/// Recomputes the SigV4 signature of a recorded request with the test secret.
fn assert_signed(seen: &Seen, method: &str, path_and_query: &str) {
    let got = seen.headers["authorization"].to_str().unwrap();
    assert!(
        got.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{got}"
    );
    assert_eq!(
        resign(
            seen,
            method,
            path_and_query,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        ),
        got
    );
}

/// `/bedrock/*` (LiteLLM's Bedrock pass-through): the Bedrock deployment's endpoint and AWS
/// credentials sign the caller's request; the caller's own key never goes upstream.
#[tokio::test]
async fn bedrock_passthrough_is_signed_with_the_deployment_credentials() {
    let (upstream, seen) = recording_upstream().await;
    let gw = gateway(
        &format!(
            "model_list:{}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
            bedrock_entry("claude", "bedrock-primary", &upstream)
        ),
        AWS_ENV,
    );
    let path = "/model/us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse";
    let response = client()
        .post(format!("{}/bedrock{path}", gw.url))
        .bearer_auth(MASTER_KEY)
        .header("x-caller-header", "kept")
        .json(&json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["output"]["message"]["content"][0]["text"], "signed");
    let recorded = seen.lock().unwrap().clone();
    assert_eq!(recorded.path, path);
    assert_eq!(recorded.headers["x-caller-header"], "kept");
    assert!(!recorded.headers["authorization"]
        .to_str()
        .unwrap()
        .contains(MASTER_KEY));
    assert_signed(&recorded, "POST", path);

    // A GET is signed as a GET.
    let response = client()
        .get(format!("{}/bedrock/foundation-models", gw.url))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let recorded = seen.lock().unwrap().clone();
    assert_signed(&recorded, "GET", "/foundation-models");

    // A wrong caller key is refused before anything is sent.
    let response = client()
        .post(format!("{}/bedrock{path}", gw.url))
        .bearer_auth("sk-wrong")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
