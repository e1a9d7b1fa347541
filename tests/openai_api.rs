//! The OpenAI-compatible surface, through the real binary against the mock upstream.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn config(mock: &Proc, extra: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini-2024-07-18
      api_base: {url}/v1
      api_key: os.environ/MOCK_UPSTREAM_KEY
    model_info:
      id: mock-primary
  - model_name: text-embedding-3-small
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: {url}/v1
      api_key: sk-embed
  - model_name: gpt-3.5-turbo-instruct
    litellm_params:
      model: openai/gpt-3.5-turbo-instruct
      api_base: {url}/v1
      api_key: sk-instruct
  - model_name: offline
    litellm_params:
      model: openai/anything
      mock_response: "Offline answer."
{extra}
general_settings:
  master_key: {MASTER_KEY}
"#,
        url = mock.url
    )
}

fn start(extra_models: &str) -> (Proc, Proc) {
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &config(&mock, extra_models),
        &[("MOCK_UPSTREAM_KEY", "sk-upstream-from-env")],
    );
    (mock, gw)
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
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

#[tokio::test]
async fn chat_completion_is_routed_rewritten_and_passed_through() {
    let (mock, gw) = start("");
    let mut body = chat_body("gpt-4o-mini");
    body["seed"] = json!(42);
    body["x_custom_field"] = json!({"nested": [1, 2]});
    body["messages"][0]["x_message_field"] = json!(true);
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .header("x-request-id", "req-abc-123")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-abc-123");
    assert_eq!(response.headers()["x-switchyard-model-id"], "mock-primary");
    assert_eq!(
        response.headers()["x-switchyard-model-group"],
        "gpt-4o-mini"
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["model"], "gpt-4o-mini",
        "clients see the alias they asked for"
    );
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello from the Switchyard mock upstream."
    );
    assert!(answer["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/chat/completions");
    assert_eq!(
        seen["headers"]["authorization"],
        "Bearer sk-upstream-from-env"
    );
    assert_eq!(seen["body"]["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(seen["body"]["seed"], 42);
    assert_eq!(seen["body"]["x_custom_field"], json!({"nested": [1, 2]}));
    assert_eq!(seen["body"]["messages"][0]["x_message_field"], true);

    // Without a request id the gateway makes one; paths without /v1 work too.
    let response = post(&gw, "/chat/completions", &chat_body("gpt-4o-mini")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["x-request-id"].len() >= 16);
}

#[tokio::test]
async fn stream_is_forwarded_with_usage_when_asked() {
    let (mock, gw) = start("");
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
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
    assert!(chunks.iter().all(|c| c["model"] == "gpt-4o-mini"));
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    let completion_tokens = usage_chunk["usage"]["completion_tokens"].as_u64().unwrap();
    assert_eq!(completion_tokens, 6);

    // Without include_usage the client gets no usage chunk, but the gateway still asked for it
    // upstream and counted the tokens.
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);
    let events = sse_data(
        &post(&gw, "/v1/chat/completions", &body)
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(
        events.iter().all(|e| !e.contains("\"usage\"")),
        "{events:?}"
    );
    assert_eq!(
        Mock(&mock).last_request().await["body"]["stream_options"]["include_usage"],
        true
    );
    let metrics = client()
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("switchyard_tokens_total")
                && l.contains("mock-primary")
                && l.contains("completion")
        })
        .unwrap();
    assert!(
        line.ends_with(" 12"),
        "both streams' completion tokens counted: {line}"
    );
}

#[tokio::test]
async fn stream_chunks_are_not_buffered() {
    let (mock, gw) = start("");
    Mock(&mock).set(json!({"chunk_delay_ms": 300})).await;
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);
    let started = Instant::now();
    let mut response = post(&gw, "/v1/chat/completions", &body).await;
    let first = response.chunk().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    while response.chunk().await.unwrap().is_some() {}
    let total = started.elapsed();
    // 6 words + role + finish + usage chunks at 300 ms each: ~2.4 s in all. A buffering gateway
    // would deliver the first byte only at the end.
    assert!(total >= Duration::from_millis(1800), "total {total:?}");
    assert!(
        first_at + Duration::from_millis(1200) < total,
        "first chunk at {first_at:?} of {total:?}"
    );
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let (mock, gw) = start("");
    Mock(&mock).set(json!({"chunk_delay_ms": 200})).await;
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);
    let mut response = post(&gw, "/v1/chat/completions", &body).await;
    let _ = response.chunk().await.unwrap();
    drop(response);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = Mock(&mock).stats().await;
        if stats["streams_cancelled"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "upstream never saw the cancel: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = client()
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics
        .lines()
        .any(|l| l.starts_with("switchyard_streams_cancelled_total")
            && l.contains("mock-primary")
            && l.ends_with(" 1")));
}

#[tokio::test]
async fn upstream_dying_mid_stream_ends_with_an_error_event() {
    let (mock, gw) = start("");
    Mock(&mock).set(json!({"fail_mid_stream_after": 2})).await;
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);
    let response = tokio::time::timeout(Duration::from_secs(10), async {
        post(&gw, "/v1/chat/completions", &body)
            .await
            .text()
            .await
            .unwrap()
    })
    .await
    .expect("the stream ends instead of hanging");
    let events = sse_data(&response);
    assert_eq!(events.len(), 3, "two chunks then the error: {events:?}");
    let error: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-4o-mini"),
        "{error}"
    );
    assert!(!response.contains("[DONE]"));
}

#[tokio::test]
async fn auth_errors_are_401_and_every_key_header_works() {
    let (_mock, gw) = start("");
    let url = format!("{}/v1/chat/completions", gw.url);
    let body = chat_body("offline");
    let no_key = client().post(&url).json(&body).send().await.unwrap();
    assert_eq!(no_key.status(), 401);
    let error: Value = no_key.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key");
    let wrong = client()
        .post(&url)
        .bearer_auth("sk-wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(!wrong.text().await.unwrap().contains(MASTER_KEY));
    for header in ["x-api-key", "api-key"] {
        let ok = client()
            .post(&url)
            .header(header, MASTER_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{header}");
    }
    let models = client()
        .get(format!("{}/v1/models", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 401);
}

#[tokio::test]
async fn unknown_model_is_404_and_models_are_listed() {
    let (_mock, gw) = start("");
    let response = post(&gw, "/v1/chat/completions", &chat_body("gpt-5-imaginary")).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "model_not_found");
    assert_eq!(error["error"]["param"], "model");
    let text = error.to_string();
    assert!(
        !text.contains("sk-") && !text.contains("127.0.0.1"),
        "no secrets or upstreams: {text}"
    );

    let list: Value = client()
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "gpt-4o-mini",
            "text-embedding-3-small",
            "gpt-3.5-turbo-instruct",
            "offline"
        ]
    );
    let one = client()
        .get(format!("{}/models/gpt-4o-mini", gw.url))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<Value>().await.unwrap()["id"], "gpt-4o-mini");
    let missing = client()
        .get(format!("{}/v1/models/nope", gw.url))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn upstream_errors_keep_their_class_and_message() {
    let (mock, gw) = start("");
    let control = Mock(&mock);

    control
        .set(json!({"fail_next": 1, "error_status": 500}))
        .await;
    let response = post(&gw, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("gpt-4o-mini")
            && message.contains("500")
            && message.contains("mock upstream injected error"),
        "{message}"
    );
    assert!(!message.contains("sk-upstream-from-env"));

    control
        .set(json!({"fail_next": 1, "error_status": 429, "retry_after": 7}))
        .await;
    let response = post(&gw, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );

    control
        .set(json!({"fail_next": 1, "error_status": 400, "retry_after": null}))
        .await;
    let response = post(&gw, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["message"],
        "mock upstream injected error (status 400)"
    );

    // An upstream 401/403/404 is the gateway's configuration (its provider key, its deployment),
    // not the client's key: the client gets a 502 that says so, never an "invalid API key".
    for status in [401, 403, 404] {
        control
            .set(json!({"fail_next": 1, "error_status": status}))
            .await;
        let response = post(&gw, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
        assert_eq!(response.status(), 502, "upstream {status}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "upstream_error");
        assert!(error["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&status.to_string()));
    }

    // The gateway keeps serving.
    assert_eq!(
        post(&gw, "/v1/chat/completions", &chat_body("gpt-4o-mini"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn hung_upstream_is_a_504_within_the_timeout() {
    let mock = mock_upstream(&["--hang"]);
    let yaml = format!(
        "model_list:\n  - model_name: slow\n    litellm_params:\n      model: openai/slow\n      api_base: {}/v1\n      timeout: 0.5\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        mock.url
    );
    let gw = gateway(&yaml, &[]);
    let started = Instant::now();
    let response = post(&gw, "/v1/chat/completions", &chat_body("slow")).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 504);
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "timeout_error");

    let mut body = chat_body("slow");
    body["stream"] = json!(true);
    let started = Instant::now();
    let response = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn unreachable_upstream_is_a_502() {
    // Port 9 (discard) on loopback is closed: connection refused.
    let yaml = format!(
        "model_list:\n  - model_name: down\n    litellm_params:\n      model: openai/x\n      api_base: http://127.0.0.1:9/v1\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"
    );
    let gw = gateway(&yaml, &[]);
    let response = post(&gw, "/v1/chat/completions", &chat_body("down")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "connect_error"
    );
}

#[tokio::test]
async fn retries_reach_a_healthy_answer() {
    let mock = mock_upstream(&[]);
    let yaml = format!(
        "model_list:\n  - model_name: flaky\n    litellm_params:\n      model: openai/x\n      api_base: {}/v1\n      max_retries: 2\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        mock.url
    );
    let gw = gateway(&yaml, &[]);
    Mock(&mock)
        .set(json!({"fail_next": 2, "error_status": 503}))
        .await;
    let response = post(&gw, "/v1/chat/completions", &chat_body("flaky")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-attempts"], "3");
    // A 400 is never retried.
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 400}))
        .await;
    let before = Mock(&mock).requests().await.len();
    let response = post(&gw, "/v1/chat/completions", &chat_body("flaky")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(Mock(&mock).requests().await.len(), before + 1);
}

#[tokio::test]
async fn completions_and_embeddings_pass_through() {
    let (mock, gw) = start("");
    let response = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": ["one", "two"], "dimensions": 4, "encoding_format": "float"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["model"], "text-embedding-3-small");
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);
    assert_eq!(answer["data"][0]["embedding"].as_array().unwrap().len(), 4);
    assert!(
        answer["usage"].get("completion_tokens").is_none(),
        "usage passes through as sent"
    );
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], "/v1/embeddings");
    assert_eq!(seen["body"]["dimensions"], 4);
    assert_eq!(seen["headers"]["authorization"], "Bearer sk-embed");

    let response = post(
        &gw,
        "/v1/completions",
        &json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Once", "max_tokens": 5}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["model"], "gpt-3.5-turbo-instruct");
    assert_eq!(Mock(&mock).last_request().await["body"]["max_tokens"], 5);

    let response = post(
        &gw,
        "/completions",
        &json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Once", "stream": true}),
    )
    .await;
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(events.len() > 2);
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["model"], "gpt-3.5-turbo-instruct");

    let missing = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small"}),
    )
    .await;
    assert_eq!(missing.status(), 400);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["param"],
        "input"
    );
}

#[tokio::test]
async fn mock_response_deployments_answer_offline() {
    let (mock, gw) = start("");
    let answer: Value = post(&gw, "/v1/chat/completions", &chat_body("offline"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Offline answer."
    );
    assert_eq!(answer["model"], "offline");
    let mut body = chat_body("offline");
    body["stream"] = json!(true);
    let events = sse_data(
        &post(&gw, "/v1/chat/completions", &body)
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(
        Mock(&mock).requests().await.is_empty(),
        "no upstream was called"
    );
}

#[tokio::test]
async fn azure_deployments_use_the_deployment_url_and_api_key_header() {
    let mock = mock_upstream(&[]);
    let yaml = format!(
        "model_list:\n  - model_name: azure-gpt\n    litellm_params:\n      model: azure/my-gpt4o-deployment\n      api_base: {}\n      api_version: \"2024-06-01\"\n      api_key: azure-secret\n      extra_headers:\n        x-team: search\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        mock.url
    );
    let gw = gateway(&yaml, &[]);
    let response = post(&gw, "/v1/chat/completions", &chat_body("azure-gpt")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["model"],
        "azure-gpt"
    );
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["path"],
        "/openai/deployments/my-gpt4o-deployment/chat/completions"
    );
    assert_eq!(seen["query"], "api-version=2024-06-01");
    assert_eq!(seen["headers"]["api-key"], "azure-secret");
    assert_eq!(seen["headers"]["x-team"], "search");
    assert!(seen["headers"].get("authorization").is_none());
}

#[tokio::test]
async fn health_endpoints_answer_without_a_key() {
    let (_mock, gw) = start("");
    let live = client()
        .get(format!("{}/health/liveliness", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let ready: Value = client()
        .get(format!("{}/health/readiness", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "healthy");
}

#[tokio::test]
async fn every_request_gets_an_access_log_line_without_secrets() {
    let (_mock, gw) = start("");
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .header("x-request-id", "log-line-probe-1")
        .json(&chat_body("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let metrics = client()
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchyard_log_lines_dropped_total 0"),
        "{metrics}"
    );
    // Lines go through the background writer; give it a moment before stopping the process.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.stop();
    let line = log
        .lines()
        .find(|l| l.contains("log-line-probe-1"))
        .unwrap_or_else(|| panic!("no access-log line in:\n{log}"));
    assert!(
        line.contains("status=200") && line.contains("mock-primary"),
        "{line}"
    );
    assert!(!log.contains(MASTER_KEY) && !log.contains("sk-upstream-from-env"));
}
