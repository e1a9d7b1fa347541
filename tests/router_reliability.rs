//! The router keeps answering when upstreams fail: fallbacks, retries that honour
//! `retry-after`, timeouts on hung upstreams, cooldowns, stream failover and the deadline —
//! through the real binary against several mock upstreams.

mod common;
mod routing;

use std::time::{Duration, Instant};

use common::*;
use routing::*;
use serde_json::{json, Value};

fn fallback_config(a: &Proc, b: &Proc, primary_extra: &str, settings: &str) -> String {
    config(
        &[
            entry("primary", "a", a, primary_extra, ""),
            entry("backup", "b", b, "", ""),
            entry("other", "o", b, "", ""),
        ],
        &format!("router_settings:\n  fallbacks: [{{\"primary\": [\"backup\"]}}]\n{settings}"),
    )
}

#[tokio::test]
async fn primary_500_is_served_by_the_fallback_which_saw_the_request() {
    let (a, b) = (mock_upstream(&[]), mock_upstream(&[]));
    let gw = gateway(&fallback_config(&a, &b, "", ""), &[]);
    Mock(&a)
        .set(json!({"fail_next": 1, "error_status": 500}))
        .await;

    let response = post(&gw, &chat_body("primary")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-model-group"), "backup");
    assert_eq!(header(&response, "x-switchyard-model-id"), "b");
    assert_eq!(header(&response, "x-switchyard-attempts"), "2");
    assert_eq!(header(&response, "x-litellm-attempted-fallbacks"), "1");
    assert_eq!(header(&response, "x-switchyard-requested-model"), "primary");
    assert_eq!(
        header(&response, "x-switchyard-attempt-trail"),
        "primary/a=upstream_5xx, backup/b=ok"
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["model"], "backup", "the model group that answered");
    let seen = Mock(&b).last_request().await;
    assert_eq!(seen["body"]["model"], "b-upstream");
    assert_eq!(seen["body"]["messages"][0]["content"], "Say hello");
    assert_eq!(Mock(&a).requests().await.len(), 1);

    // A 400 is the request's fault: no fallback, no retry.
    Mock(&a)
        .set(json!({"fail_next": 1, "error_status": 400}))
        .await;
    let response = post(&gw, &chat_body("primary")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(Mock(&b).requests().await.len(), 1);

    // Per-request fallbacks replace the configured ones, and gateway controls never go upstream.
    Mock(&a)
        .set(json!({"fail_next": 1, "error_status": 503}))
        .await;
    let mut body = chat_body("primary");
    body["fallbacks"] = json!(["other"]);
    body["num_retries"] = json!(0);
    body["metadata"] = json!({"tier": "free", "tags": ["t"]});
    body["user"] = json!("end-user-1");
    let response = post(&gw, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-model-group"), "other");
    let seen = Mock(&b).last_request().await["body"].clone();
    for control in ["fallbacks", "num_retries", "metadata", "timeout"] {
        assert!(
            seen.get(control).is_none(),
            "{control} leaked upstream: {seen}"
        );
    }
    assert_eq!(
        seen["user"], "end-user-1",
        "OpenAI fields still pass through"
    );

    // LiteLLM's switch to exercise fallbacks on purpose: the primary is not even called.
    let before = Mock(&a).requests().await.len();
    let mut body = chat_body("primary");
    body["mock_testing_fallbacks"] = json!(true);
    let response = post(&gw, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-model-group"), "backup");
    assert_eq!(Mock(&a).requests().await.len(), before);

    // An unknown per-request fallback is refused up front.
    let mut body = chat_body("primary");
    body["fallbacks"] = json!(["nope"]);
    let response = post(&gw, &body).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["param"],
        "fallbacks[0]"
    );
}

#[tokio::test]
async fn rate_limit_retry_after_is_respected() {
    // One deployment: the retry waits what the upstream asked for.
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &config(
            &[entry("solo", "s", &mock, "", "")],
            "router_settings:\n  num_retries: 1\n",
        ),
        &[],
    );
    Mock(&mock)
        .set(json!({"fail_next": 1, "error_status": 429, "retry_after": 1}))
        .await;
    let started = Instant::now();
    let response = post(&gw, &chat_body("solo")).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-attempts"), "2");
    assert_eq!(header(&response, "x-litellm-attempted-retries"), "1");
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(3),
        "retried after {elapsed:?}"
    );
    assert_eq!(Mock(&mock).requests().await.len(), 2);

    // Two deployments: the rate-limited one cools down for its retry-after and the retry goes
    // to the other one at once.
    let (a, b) = (mock_upstream(&[]), mock_upstream(&[]));
    let gw = gateway(
        &config(
            &[
                entry("pair", "a", &a, ", order: 1", ""),
                entry("pair", "b", &b, ", order: 2", ""),
            ],
            "router_settings:\n  num_retries: 1\n",
        ),
        &[],
    );
    Mock(&a)
        .set(json!({"fail_next": 1, "error_status": 429, "retry_after": 30}))
        .await;
    let started = Instant::now();
    let response = post(&gw, &chat_body("pair")).await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(header(&response, "x-switchyard-model-id"), "b");
    let state = deployment_health(&gw, "a").await;
    assert_eq!(state["state"], "cooling_down", "{state}");
    assert_eq!(state["rate_limited"], true);
    assert!(
        state["cooldown_remaining_ms"].as_u64().unwrap() > 25_000,
        "{state}"
    );
    // While it cools down, order 2 serves directly.
    let response = post(&gw, &chat_body("pair")).await;
    assert_eq!(header(&response, "x-switchyard-model-id"), "b");
    assert_eq!(header(&response, "x-switchyard-attempts"), "1");
    assert_eq!(Mock(&a).requests().await.len(), 1);
}

#[tokio::test]
async fn hanging_primary_is_answered_within_its_timeout_plus_the_fallback() {
    let hung = mock_upstream(&["--hang"]);
    let backup = mock_upstream(&["--latency-ms", "200"]);
    let gw = gateway(
        &fallback_config(&hung, &backup, ", timeout: 0.5, stream_timeout: 0.5", ""),
        &[],
    );
    let started = Instant::now();
    let response = post(&gw, &chat_body("primary")).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-model-group"), "backup");
    assert!(
        elapsed >= Duration::from_millis(700) && elapsed < Duration::from_millis(2000),
        "0.5 s timeout + 0.2 s fallback, answered after {elapsed:?}"
    );
    assert_eq!(
        header(&response, "x-switchyard-attempt-trail"),
        "primary/a=timeout, backup/b=ok"
    );

    // The same for a stream: the hung primary never sent a byte, so the stream moves.
    let mut body = chat_body("primary");
    body["stream"] = json!(true);
    let started = Instant::now();
    let response = post(&gw, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-model-group"), "backup");
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn all_deployments_cooling_down_is_a_clear_error_in_bounded_time() {
    let (a, b) = (mock_upstream(&[]), mock_upstream(&[]));
    let gw = gateway(
        &config(
            &[entry("g", "a", &a, "", ""), entry("g", "b", &b, "", "")],
            "router_settings:\n  num_retries: 1\n  allowed_fails: 0\n  cooldown_time: 30\n",
        ),
        &[],
    );
    for mock in [&a, &b] {
        Mock(mock)
            .set(json!({"error_rate": 1.0, "error_status": 500}))
            .await;
    }
    let response = post(&gw, &chat_body("g")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(header(&response, "x-switchyard-attempts"), "2");
    let error: Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`g`") && message.contains("upstream_5xx"),
        "names the group and the last error class: {message}"
    );

    // Both are cooling down now: the next request is refused at once, saying why.
    let started = Instant::now();
    let response = post(&gw, &chat_body("g")).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), 503);
    let retry_after: u64 = header(&response, "retry-after").parse().unwrap();
    assert!((25..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(
        header(&response, "x-switchyard-attempt-trail"),
        "g=cooling_down"
    );
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "deployments_cooling_down");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`g`") && message.contains("cooling down"),
        "{message}"
    );
    assert_eq!(
        Mock(&a).requests().await.len() + Mock(&b).requests().await.len(),
        2,
        "no upstream was called"
    );
    let report = health(&gw).await;
    assert_eq!(report["unhealthy_count"], 2, "{report}");
    assert_eq!(report["unhealthy_endpoints"][0]["state"], "cooling_down");

    // When the cooldowns come from 429s, the answer is a 429.
    let (c, d) = (mock_upstream(&[]), mock_upstream(&[]));
    let gw = gateway(
        &config(
            &[entry("h", "c", &c, "", ""), entry("h", "d", &d, "", "")],
            "router_settings:\n  num_retries: 1\n",
        ),
        &[],
    );
    for mock in [&c, &d] {
        Mock(mock)
            .set(json!({"error_rate": 1.0, "error_status": 429, "retry_after": 20}))
            .await;
    }
    let response = post(&gw, &chat_body("h")).await;
    assert_eq!(response.status(), 429);
    let response = post(&gw, &chat_body("h")).await;
    assert_eq!(response.status(), 429);
    assert!(header(&response, "retry-after").parse::<u64>().unwrap() <= 20);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error");
    assert_eq!(error["error"]["code"], "deployments_cooling_down");
}

#[tokio::test]
async fn stream_fails_over_only_before_its_first_output() {
    let (a, b) = (mock_upstream(&[]), mock_upstream(&[]));
    let gw = gateway(&fallback_config(&a, &b, "", ""), &[]);
    let mut body = chat_body("primary");
    body["stream"] = json!(true);

    // The primary sends its role-only chunk, then dies: nothing visible reached the client yet.
    Mock(&a).set(json!({"fail_mid_stream_after": 1})).await;
    let response = post(&gw, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-model-group"), "backup");
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "Hello from the Switchyard mock upstream.");
    assert_eq!(
        events.iter().filter(|e| e.contains("\"role\"")).count(),
        1,
        "the dead primary's role chunk was never sent"
    );

    // After output reached the client, a failure ends the stream with an error event.
    Mock(&a).set(json!({"fail_mid_stream_after": 3})).await;
    let before = Mock(&b).requests().await.len();
    let response = post(&gw, &body).await;
    assert_eq!(header(&response, "x-switchyard-model-group"), "primary");
    let events = sse_data(&response.text().await.unwrap());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("primary"),
        "{last}"
    );
    assert_eq!(
        Mock(&b).requests().await.len(),
        before,
        "no failover after the first byte"
    );
}

#[tokio::test]
async fn the_deadline_caps_retries_and_fallbacks() {
    let hung = mock_upstream(&["--hang"]);
    let backup = mock_upstream(&[]);
    let gw = gateway(
        &fallback_config(&hung, &backup, ", timeout: 5", "  num_retries: 3\n"),
        &[],
    );
    let mut body = chat_body("primary");
    body["timeout"] = json!(1);
    let started = Instant::now();
    let response = post(&gw, &body).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 504);
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_millis(2500),
        "{elapsed:?}"
    );
    assert_eq!(
        header(&response, "x-switchyard-attempt-trail"),
        "primary/a=timeout, backup=deadline"
    );
    assert_eq!(
        Mock(&hung).requests().await.len(),
        1,
        "no retry past the deadline"
    );
    assert!(Mock(&backup).requests().await.is_empty());

    // The configured deadline applies when the request sets none.
    let gw = gateway(
        &fallback_config(
            &hung,
            &backup,
            ", timeout: 5",
            "switchyard_routing:\n  deadline: 0.5\n",
        ),
        &[],
    );
    let started = Instant::now();
    let response = post(&gw, &chat_body("primary")).await;
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn context_window_fallbacks_take_prompts_too_long_for_the_group() {
    let (small, big) = (mock_upstream(&[]), mock_upstream(&[]));
    let gw = gateway(
        &config(
            &[
                entry("small", "s", &small, "", ", max_input_tokens: 10"),
                entry("big", "b", &big, "", ", max_input_tokens: 100000"),
            ],
            "router_settings:\n  enable_pre_call_checks: true\n  context_window_fallbacks: [{\"small\": [\"big\"]}]\n",
        ),
        &[],
    );
    let response = post(&gw, &chat_body("small")).await;
    assert_eq!(header(&response, "x-switchyard-model-group"), "small");
    let long =
        json!({"model": "small", "messages": [{"role": "user", "content": "word ".repeat(40)}]});
    let response = post(&gw, &long).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-model-group"), "big");
    assert_eq!(
        header(&response, "x-switchyard-attempt-trail"),
        "small=context_window, big/b=ok"
    );
    assert_eq!(
        Mock(&small).requests().await.len(),
        1,
        "the long prompt never went to small"
    );

    // Without a fallback, the client learns it in OpenAI's terms.
    let mut long = long;
    long["model"] = json!("big");
    long["messages"][0]["content"] = json!("word ".repeat(100_000));
    let response = post(&gw, &long).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn cross_vendor_fallback_translates_to_the_fallback_provider() {
    let (openai, anthropic) = (mock_upstream(&[]), mock_upstream(&[]));
    let claude = format!(
        "  - model_name: claude\n    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: '{}/v1', api_key: sk-ant-fake}}\n    model_info: {{id: claude-1}}\n",
        anthropic.url
    );
    let gw = gateway(
        &config(
            &[entry("gpt", "g", &openai, "", ""), claude],
            "router_settings:\n  fallbacks: [{\"gpt\": [\"claude\"]}]\n",
        ),
        &[],
    );
    Mock(&openai)
        .set(json!({"fail_next": 2, "error_status": 503}))
        .await;
    let response = post(&gw, &chat_body("gpt")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-model-group"), "claude");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["object"], "chat.completion",
        "OpenAI shape from an Anthropic upstream"
    );
    assert_eq!(answer["model"], "claude");
    assert!(!answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
    let seen = Mock(&anthropic).last_request().await;
    assert_eq!(
        seen["path"], "/v1/messages",
        "the fallback spoke Anthropic: {seen}"
    );
    assert_eq!(seen["body"]["model"], "claude-sonnet-4-5");
    assert_eq!(seen["body"]["messages"][0]["content"], "Say hello");

    // A stream too: the OpenAI primary fails before its first output, Anthropic streams.
    let mut body = chat_body("gpt");
    body["stream"] = json!(true);
    let response = post(&gw, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-model-group"), "claude");
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
}

#[tokio::test]
async fn deployment_num_retries_overrides_the_router_num_retries() {
    // LiteLLM reads a deployment's retry budget from `litellm_params.num_retries`. Before it was
    // honoured, `timeout: 2, num_retries: 0` under `router_settings.num_retries: 2` took three
    // timeouts (6 s) to fail or to reach its fallback.
    let hung = mock_upstream(&["--hang"]);
    let backup = mock_upstream(&[]);
    let flaky = mock_upstream(&[]);
    let no_retry = ", timeout: 1, num_retries: 0";
    let gw = gateway(
        &config(
            &[
                entry("alone", "alone", &hung, no_retry, ""),
                entry("primary", "p", &hung, no_retry, ""),
                entry("backup", "b", &backup, "", ""),
                entry("control", "c", &flaky, "", ""),
            ],
            "router_settings:\n  num_retries: 2\n  retry_after: 0\n  fallbacks: [{\"primary\": [\"backup\"]}]\n",
        ),
        &[],
    );

    let started = Instant::now();
    let response = post(&gw, &chat_body("alone")).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 504);
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_millis(1900),
        "one 1 s attempt, no retry: {elapsed:?}"
    );
    assert_eq!(
        header(&response, "x-switchyard-attempt-trail"),
        "alone/alone=timeout"
    );

    let started = Instant::now();
    let response = post(&gw, &chat_body("primary")).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-model-group"), "backup");
    assert!(
        elapsed < Duration::from_millis(1900),
        "the fallback answers after one timeout: {elapsed:?}"
    );
    assert_eq!(
        header(&response, "x-switchyard-attempt-trail"),
        "primary/p=timeout, backup/b=ok"
    );
    assert_eq!(Mock(&hung).requests().await.len(), 2, "one attempt each");

    // The router's num_retries still applies to a deployment that sets none.
    Mock(&flaky)
        .set(json!({"fail_next": 2, "error_status": 503}))
        .await;
    let response = post(&gw, &chat_body("control")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-attempts"), "3");
}
