//! The response cache through the real binary and the mock upstream (docs/caching.md): the mock's
//! request counter proves what reached the upstream.

mod common;
mod routing;

use std::time::{Duration, Instant};

use common::redis_proxy::{redis_is_up, Proxy};
use common::*;
use routing::*;
use serde_json::{json, Value};

const PRICED: &str = ", input_cost_per_token: 0.001, output_cost_per_token: 0.002";

/// A gateway with the cache on (`cache_params` as YAML flow map entries) in front of `mock`.
fn cached_gateway(mock: &Proc, cache_params: &str) -> Proc {
    let yaml = config(
        &[entry("chat", "c1", mock, PRICED, "")],
        &format!("litellm_settings:\n  cache: true\n  cache_params: {{{cache_params}}}\n"),
    );
    gateway(&yaml, &[])
}

async fn upstream_calls(mock: &Proc) -> u64 {
    Mock(mock).stats().await["requests"].as_u64().unwrap()
}

async fn send(gw: &Proc, path: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client()
        .post(format!("{}{path}", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

/// Status, `x-switchyard-cache`, body.
async fn chat(gw: &Proc, body: &Value) -> (u16, String, Value) {
    let response = post(gw, body).await;
    let status = response.status().as_u16();
    let cache = header(&response, "x-switchyard-cache").to_owned();
    (status, cache, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_repeat_is_served_from_the_cache_with_headers_cost_zero_and_no_upstream_call() {
    let mock = mock_upstream(&[]);
    let gw = cached_gateway(&mock, "ttl: 60");
    let body = chat_body("chat");
    let first = post(&gw, &body).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-switchyard-cache"), "miss");
    assert!(nanos(header(&first, "x-litellm-response-cost")) > 0);
    let first: Value = first.json().await.unwrap();

    let second = post(&gw, &body).await;
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-switchyard-cache"), "hit");
    let key = header(&second, "x-litellm-cache-key").to_owned();
    assert_eq!(key.len(), 64, "{key}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(header(&second, "x-litellm-response-cost"), "0");
    assert_eq!(header(&second, "x-litellm-model-id"), "c1");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first, second, "the same answer, byte for byte");
    assert_eq!(
        upstream_calls(&mock).await,
        1,
        "the hit never reached the upstream"
    );

    // Spend: the hit is logged, with cost 0 and cache_hit.
    let rows = spend_rows(&gw, "", 2).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let hit = rows
        .iter()
        .find(|r| r["cache_hit"] == "True")
        .expect("a hit row");
    let miss = rows
        .iter()
        .find(|r| r["cache_hit"] == "False")
        .expect("a miss row");
    assert_eq!(hit["spend"].as_f64(), Some(0.0), "{hit}");
    assert!(miss["spend"].as_f64().unwrap() > 0.0, "{miss}");

    let text = metrics(&gw).await;
    assert_eq!(
        metric(&text, "switchyard_cache_lookups_total", "result=\"hit\""),
        1.0
    );
    assert_eq!(
        metric(&text, "switchyard_cache_lookups_total", "result=\"miss\""),
        1.0
    );
    assert_eq!(
        metric(&text, "switchyard_cache_hits_total", "deployment=\"c1\""),
        1.0
    );
}

#[tokio::test]
async fn the_key_ignores_user_and_metadata_but_not_temperature_or_messages() {
    let mock = mock_upstream(&[]);
    let gw = cached_gateway(&mock, "");
    let base = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2});
    assert_eq!(chat(&gw, &base).await.1, "miss");
    let mut same = base.clone();
    same["user"] = json!("someone-else");
    same["metadata"] = json!({"feature": "search", "tags": ["x"]});
    same["timeout"] = json!(30);
    assert_eq!(chat(&gw, &same).await.1, "hit");
    let mut warmer = base.clone();
    warmer["temperature"] = json!(0.9);
    assert_eq!(chat(&gw, &warmer).await.1, "miss");
    let mut other = base.clone();
    other["messages"][0]["content"] = json!("hi!");
    assert_eq!(chat(&gw, &other).await.1, "miss");
    let mut tools = base.clone();
    tools["tools"] =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    tools["tool_choice"] = json!("none");
    assert_eq!(chat(&gw, &tools).await.1, "miss");
    assert_eq!(upstream_calls(&mock).await, 4);
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let mock = mock_upstream(&[]);
    let gw = cached_gateway(&mock, "ttl: 1");
    let body = chat_body("chat");
    assert_eq!(chat(&gw, &body).await.1, "miss");
    assert_eq!(chat(&gw, &body).await.1, "hit");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(chat(&gw, &body).await.1, "miss", "expired");
    // A per-request TTL: stored for 1 s though the config says 1.
    let mut long = chat_body("chat");
    long["messages"][0]["content"] = json!("keep me");
    long["cache"] = json!({"ttl": 1});
    assert_eq!(chat(&gw, &long).await.1, "miss");
    assert_eq!(chat(&gw, &long).await.1, "hit");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(chat(&gw, &long).await.1, "miss");
    assert_eq!(upstream_calls(&mock).await, 4);
}

#[tokio::test]
async fn no_cache_no_store_s_maxage_and_the_cache_control_header() {
    let mock = mock_upstream(&[]);
    let gw = cached_gateway(&mock, "ttl: 600");
    let body = chat_body("chat");
    let with = |controls: Value| {
        let mut b = body.clone();
        b["cache"] = controls;
        b
    };
    // no-store: answered, not stored.
    assert_eq!(chat(&gw, &with(json!({"no-store": true}))).await.1, "miss");
    assert_eq!(chat(&gw, &body).await.1, "miss", "nothing was stored");
    assert_eq!(chat(&gw, &body).await.1, "hit");
    // no-cache: goes upstream although an entry exists (and refreshes it).
    assert_eq!(chat(&gw, &with(json!({"no-cache": true}))).await.1, "miss");
    // The `cache` object never reaches the upstream.
    let last = Mock(&mock).last_request().await;
    assert!(last["body"].get("cache").is_none(), "{last}");
    // s-maxage: only entries younger than that.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(chat(&gw, &with(json!({"s-maxage": 0}))).await.1, "miss");
    assert_eq!(chat(&gw, &with(json!({"s-maxage": 600}))).await.1, "hit");
    // The header says the same.
    let response = send(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("cache-control", "no-cache")],
    )
    .await;
    assert_eq!(header(&response, "x-switchyard-cache"), "miss");
    let response = send(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("cache-control", "max-age=3600")],
    )
    .await;
    assert_eq!(header(&response, "x-switchyard-cache"), "hit");
    assert_eq!(upstream_calls(&mock).await, 5);
}

#[tokio::test]
async fn namespaces_keep_entries_apart_in_memory() {
    let mock = mock_upstream(&[]);
    let gw = cached_gateway(&mock, "ttl: 600");
    let body = chat_body("chat");
    let in_ns = |ns: &str| {
        let mut b = body.clone();
        b["cache"] = json!({ "namespace": ns });
        b
    };
    assert_eq!(chat(&gw, &in_ns("team-a")).await.1, "miss");
    assert_eq!(chat(&gw, &in_ns("team-b")).await.1, "miss");
    assert_eq!(chat(&gw, &body).await.1, "miss", "no namespace is its own");
    let hit = post(&gw, &in_ns("team-a")).await;
    assert_eq!(header(&hit, "x-switchyard-cache"), "hit");
    let key = header(&hit, "x-litellm-cache-key");
    let digits = key.strip_prefix("team-a:").expect(key);
    assert_eq!(digits.len(), 64);
    assert!(digits.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    let other = post(&gw, &in_ns("team-b")).await;
    assert_eq!(header(&other, "x-switchyard-cache"), "hit");
    let other_key = header(&other, "x-litellm-cache-key");
    assert!(other_key.starts_with("team-b:"), "{other_key}");
    assert_ne!(
        &other_key["team-b:".len()..],
        digits,
        "the namespace is hashed"
    );
    assert_eq!(upstream_calls(&mock).await, 3);
}

#[tokio::test]
async fn hostile_cache_controls_are_clear_400s_or_ignored() {
    let mock = mock_upstream(&[]);
    let gw = cached_gateway(&mock, "");
    for (controls, param) in [
        (json!("yes"), "cache"),
        (json!([1]), "cache"),
        (json!({"ttl": -5}), "cache.ttl"),
        (json!({"ttl": "60"}), "cache.ttl"),
        (json!({"ttl": 1e308}), "cache.ttl"),
        (json!({"no-cache": 1}), "cache.no-cache"),
        (json!({"namespace": "../../etc passwd"}), "cache.namespace"),
    ] {
        let mut body = chat_body("chat");
        body["cache"] = controls.clone();
        let response = post(&gw, &body).await;
        assert_eq!(response.status(), 400, "{controls}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["param"], param, "{error}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
    // Header directives that do not parse are ignored; unknown `cache` keys too.
    for header_value in [
        "max-age=-1",
        "s-maxage=abc, =, ,,",
        "private, must-revalidate",
    ] {
        let response = send(
            &gw,
            "/v1/chat/completions",
            &chat_body("chat"),
            &[("cache-control", header_value)],
        )
        .await;
        assert_eq!(response.status(), 200, "{header_value}");
    }
    let mut body = chat_body("chat");
    body["cache"] = json!({"unknown": {"deep": [1, 2]}});
    assert_eq!(post(&gw, &body).await.status(), 200);
    assert_eq!(
        upstream_calls(&mock).await,
        1,
        "all of them shared one entry"
    );
}

/// Parses an SSE body into its JSON chunks; asserts it ends with `[DONE]`.
fn chunks(text: &str) -> Vec<Value> {
    let data = sse_data(text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[tokio::test]
async fn streams_are_stored_once_complete_and_replayed_as_sse() {
    let mock = mock_upstream(&["--reply", "one two three"]);
    let gw = cached_gateway(&mock, "");
    let mut stream = chat_body("chat");
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    let first = post(&gw, &stream).await;
    assert_eq!(header(&first, "x-switchyard-cache"), "miss");
    let first = chunks(&first.text().await.unwrap());
    assert_eq!(content(&first), "one two three");

    // The stream was stored: a stream request replays it, with its usage.
    let mut second = None;
    for _ in 0..50 {
        let response = post(&gw, &stream).await;
        if header(&response, "x-switchyard-cache") == "hit" {
            assert_eq!(header(&response, "content-type"), "text/event-stream");
            second = Some(response.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = chunks(&second.expect("the stream was cached"));
    assert_eq!(content(&second), "one two three");
    assert_eq!(second[0]["object"], "chat.completion.chunk");
    assert_eq!(second[0]["model"], "chat");
    let usage = second.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert!(second
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));

    // Without include_usage the usage chunk stays hidden; a whole request gets the whole answer.
    let mut quiet = chat_body("chat");
    quiet["stream"] = json!(true);
    let text = post(&gw, &quiet).await.text().await.unwrap();
    assert!(
        chunks(&text)
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null)),
        "{text}"
    );
    let (_, cache, whole) = chat(&gw, &chat_body("chat")).await;
    assert_eq!(cache, "hit");
    assert_eq!(whole["choices"][0]["message"]["content"], "one two three");
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(upstream_calls(&mock).await, 1);
}

#[tokio::test]
async fn a_stream_cut_short_is_not_stored() {
    let mock = mock_upstream(&["--fail-mid-stream-after", "3"]);
    let gw = cached_gateway(&mock, "");
    let mut stream = chat_body("chat");
    stream["stream"] = json!(true);
    for _ in 0..2 {
        let response = post(&gw, &stream).await;
        assert_eq!(header(&response, "x-switchyard-cache"), "miss");
        let _ = response.text().await;
    }
    assert_eq!(upstream_calls(&mock).await, 2);
}

#[tokio::test]
async fn completions_and_embeddings_are_cached_too() {
    let mock = mock_upstream(&[]);
    let gw = cached_gateway(&mock, "");
    for (path, body) in [
        (
            "/v1/completions",
            json!({"model": "chat", "prompt": "Say hello"}),
        ),
        (
            "/v1/embeddings",
            json!({"model": "chat", "input": ["a", "b"]}),
        ),
    ] {
        let first = send(&gw, path, &body, &[]).await;
        assert_eq!(first.status(), 200);
        assert_eq!(header(&first, "x-switchyard-cache"), "miss");
        let first: Value = first.json().await.unwrap();
        let second = send(&gw, path, &body, &[]).await;
        assert_eq!(header(&second, "x-switchyard-cache"), "hit", "{path}");
        assert_eq!(first, second.json::<Value>().await.unwrap());
    }
    assert_eq!(upstream_calls(&mock).await, 2);
}

#[tokio::test]
async fn default_off_caches_only_requests_that_opt_in() {
    let mock = mock_upstream(&[]);
    let gw = cached_gateway(
        &mock,
        "mode: default_off, supported_call_types: [acompletion]",
    );
    let body = chat_body("chat");
    assert_eq!(chat(&gw, &body).await.1, "", "not cached: no header");
    assert_eq!(chat(&gw, &body).await.1, "");
    let mut opted = body.clone();
    opted["cache"] = json!({"use-cache": true});
    assert_eq!(chat(&gw, &opted).await.1, "miss");
    assert_eq!(chat(&gw, &opted).await.1, "hit");
    // Embeddings are not in supported_call_types.
    let embed = json!({"model": "chat", "input": "a", "cache": {"use-cache": true}});
    let response = send(&gw, "/v1/embeddings", &embed, &[]).await;
    assert_eq!(header(&response, "x-switchyard-cache"), "");
    assert_eq!(upstream_calls(&mock).await, 4);
}

#[tokio::test]
async fn twenty_concurrent_identical_requests_make_one_upstream_call() {
    let mock = mock_upstream(&["--latency-ms", "400"]);
    let gw = cached_gateway(&mock, "");
    let body = chat_body("chat");
    let calls = (0..20).map(|_| {
        let body = body.clone();
        let gw = &gw;
        async move { chat(gw, &body).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    for (status, _, answer) in &answers {
        assert_eq!(*status, 200);
        assert_eq!(answer, &answers[0].2);
    }
    let misses = answers.iter().filter(|(_, c, _)| c == "miss").count();
    assert_eq!(misses, 1, "one leader");
    assert_eq!(upstream_calls(&mock).await, 1);
}

#[tokio::test]
async fn a_follower_never_waits_past_its_own_timeout() {
    let mock = mock_upstream(&["--latency-ms", "1500"]);
    let gw = cached_gateway(&mock, "");
    let body = chat_body("chat");
    let leader = {
        let body = body.clone();
        let gw = &gw;
        async move { chat(gw, &body).await }
    };
    let follower = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut body = body.clone();
        body["timeout"] = json!(0.5);
        let started = Instant::now();
        let response = post(&gw, &body).await;
        (response.status().as_u16(), started.elapsed())
    };
    let ((leader_status, _, _), (status, waited)) = tokio::join!(leader, follower);
    assert_eq!(leader_status, 200);
    // The follower's deadline passed while waiting: it went on alone and timed out as it would
    // have without the cache (504), well before the leader's answer.
    assert_eq!(status, 504);
    assert!(waited < Duration::from_millis(1_400), "{waited:?}");
}

fn unique_namespace(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}

#[tokio::test]
async fn the_redis_backend_is_shared_by_two_instances() {
    if !redis_is_up().await {
        return;
    }
    let mock = mock_upstream(&[]);
    let params = format!(
        "type: redis, host: 127.0.0.1, port: 6379, ttl: 60, timeout_ms: 3000, namespace: {}",
        unique_namespace("shared")
    );
    // (A patient Redis timeout: on a loaded CI machine a call can take longer than the default
    // 100 ms, and the cache would, correctly, be skipped.)
    let a = cached_gateway(&mock, &params);
    let b = cached_gateway(&mock, &params);
    let body = chat_body("chat");
    assert_eq!(chat(&a, &body).await.1, "miss");
    // The store is written by a spawned task: wait for it. b only reads while it waits
    // (no-store), and each of its misses goes upstream.
    let mut polling = body.clone();
    polling["cache"] = json!({"no-store": true});
    let (mut cache, mut misses) = (String::new(), 0);
    for _ in 0..50 {
        cache = chat(&b, &polling).await.1;
        if cache == "hit" {
            break;
        }
        misses += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        cache, "hit",
        "instance b answers from what instance a stored"
    );
    let response = post(&b, &body).await;
    let key = header(&response, "x-litellm-cache-key").to_owned();
    assert!(
        key.starts_with(&format!("{}:", unique_namespace("shared"))),
        "{key}"
    );
    assert_eq!(upstream_calls(&mock).await, 1 + misses);
}

#[tokio::test]
async fn redis_down_or_hanging_skips_the_cache_and_never_fails_a_request() {
    if !redis_is_up().await {
        return;
    }
    let mock = mock_upstream(&[]);
    let proxy = Proxy::start(0).await;
    let params = format!(
        "type: redis, url: '{}', timeout_ms: 100, namespace: {}",
        proxy.url(),
        unique_namespace("down")
    );
    let gw = cached_gateway(&mock, &params);
    let body = chat_body("chat");
    assert_eq!(chat(&gw, &body).await.0, 200);
    // Redis hangs: requests still answer, each within about the cache timeout.
    proxy
        .frozen
        .store(true, std::sync::atomic::Ordering::Relaxed);
    for i in 0..3 {
        // Fresh prompts: an answer still being stored would be handed on by coalescing.
        let mut body = body.clone();
        body["messages"][0]["content"] = json!(format!("frozen {i}"));
        let started = Instant::now();
        let (status, cache, _) = chat(&gw, &body).await;
        assert_eq!(status, 200);
        assert_eq!(cache, "miss");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // Redis gone.
    proxy
        .frozen
        .store(false, std::sync::atomic::Ordering::Relaxed);
    proxy.stop();
    for _ in 0..3 {
        assert_eq!(chat(&gw, &body).await.0, 200);
    }
    let text = metrics(&gw).await;
    assert!(
        metric(&text, "switchyard_cache_lookups_total", "result=\"error\"") >= 1.0,
        "{text}"
    );
}

/// An embeddings server whose vectors the test controls: `angle:N` embeds as the unit vector at
/// N degrees, so the cosine similarity of two prompts is cos(difference).
async fn angle_embedder() -> String {
    async fn embed(axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
        let text = body["input"].as_str().unwrap_or("");
        let degrees: f64 = text
            .split("angle:")
            .nth(1)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0.0);
        let r = degrees.to_radians();
        axum::Json(json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [r.cos(), r.sin()]}],
            "model": "angles",
            "usage": {"prompt_tokens": 1, "total_tokens": 1}
        }))
    }
    let app = axum::Router::new().route("/v1/embeddings", axum::routing::post(embed));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn semantic_hits_and_misses_around_the_threshold() {
    let mock = mock_upstream(&[]);
    let embedder = angle_embedder().await;
    let yaml = config(
        &[
            entry("chat", "c1", &mock, "", ""),
            format!(
                "  - model_name: embedder\n    litellm_params: {{model: openai/angles, api_base: '{embedder}/v1', api_key: k}}\n"
            ),
        ],
        "litellm_settings:\n  cache: true\n  cache_params: {type: redis-semantic, similarity_threshold: 0.95, redis_semantic_cache_embedding_model: embedder}\n",
    );
    let gw = gateway(&yaml, &[]);
    let ask = |prompt: &str, temperature: f64| json!({"model": "chat", "messages": [{"role": "user", "content": prompt}], "temperature": temperature});
    assert_eq!(chat(&gw, &ask("angle:0", 0.0)).await.1, "miss");
    // cos 10° = 0.985 ≥ 0.95: the stored answer, without an upstream call.
    let (status, cache, _) = chat(&gw, &ask("angle: 10", 0.0)).await;
    assert_eq!((status, cache.as_str()), (200, "hit"));
    assert_eq!(upstream_calls(&mock).await, 1);
    // cos 25° = 0.906 < 0.95: a miss.
    assert_eq!(chat(&gw, &ask("angle:25", 0.0)).await.1, "miss");
    // Similar prompt, other parameters: another scope, a miss.
    assert_eq!(chat(&gw, &ask("angle:1", 0.7)).await.1, "miss");
    assert_eq!(upstream_calls(&mock).await, 3);
    let text = metrics(&gw).await;
    assert_eq!(
        metric(
            &text,
            "switchyard_cache_lookups_total",
            "result=\"semantic_hit\""
        ),
        1.0
    );
}

/// Guardrails run before the cache (issue 11's order): the cache keys on the masked prompt, so
/// two prompts that differ only in a masked e-mail address share one entry (and the address never
/// reaches the upstream or the cache); a request with a post-call guardrail, whose answer is
/// un-masked per caller, neither reads nor fills the cache.
#[tokio::test]
async fn the_cache_keys_on_the_prompt_as_the_guardrails_left_it() {
    let mock = mock_upstream(&[]);
    let yaml = config(
        &[entry("chat", "c1", &mock, PRICED, "")],
        "litellm_settings:\n  cache: true\nguardrails:\n  - guardrail_name: mask-in\n    litellm_params: {guardrail: pii, mode: pre_call, default_on: true, pii_entities_config: {EMAIL_ADDRESS: MASK}}\n  - guardrail_name: mask-both\n    litellm_params: {guardrail: pii, mode: [pre_call, post_call], output_parse_pii: true, pii_entities_config: {EMAIL_ADDRESS: MASK}}\n",
    );
    let gw = gateway(&yaml, &[]);
    let ask = |email: &str| {
        let mut body = chat_body("chat");
        body["messages"] = json!([{"role": "user", "content": format!("Write to {email} today")}]);
        body
    };
    let (status, cache, _) = chat(&gw, &ask("ada@example.com")).await;
    assert_eq!((status, cache.as_str()), (200, "miss"));
    let (status, cache, _) = chat(&gw, &ask("grace@example.org")).await;
    assert_eq!(
        (status, cache.as_str()),
        (200, "hit"),
        "same masked prompt, same entry"
    );
    assert_eq!(upstream_calls(&mock).await, 1);

    // Asking for the post-call guardrail too: no cache either way.
    for _ in 0..2 {
        let mut body = ask("ada@example.com");
        body["guardrails"] = json!(["mask-both"]);
        let response = post(&gw, &body).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("x-switchyard-cache").is_none());
    }
    assert_eq!(upstream_calls(&mock).await, 3);
}

// ------------------------------------------------------------------------------------------
// Anthropic's /v1/messages
// ------------------------------------------------------------------------------------------

/// A gateway with the cache on and two groups reached through `/v1/messages`: `claude`, an
/// Anthropic deployment (the request forwarded natively), and `gpt`, an OpenAI one (the request
/// translated, the answer translated back).
fn messages_gateway(mock: &Proc, cache_params: &str) -> Proc {
    let yaml = config(
        &[
            format!(
                "  - model_name: claude\n    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: '{}/v1', api_key: sk-ant-fake{PRICED}}}\n    model_info: {{id: a1}}\n",
                mock.url
            ),
            entry("gpt", "g1", mock, PRICED, ""),
        ],
        &format!("litellm_settings:\n  cache: true\n  cache_params: {{{cache_params}}}\n"),
    );
    gateway(&yaml, &[])
}

fn message_body(model: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "system": "Be brief.",
           "messages": [{"role": "user", "content": "Say hello"}]})
}

async fn send_messages(gw: &Proc, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", MASTER_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

/// Status, `x-switchyard-cache`, body (JSON, or the SSE text as a string).
async fn message(gw: &Proc, body: &Value) -> (u16, String, Value) {
    let response = send_messages(gw, body, &[]).await;
    let status = response.status().as_u16();
    let cache = header(&response, "x-switchyard-cache").to_owned();
    let stream = header(&response, "content-type") == "text/event-stream";
    let text = response.text().await.unwrap();
    let value = if stream {
        Value::String(text)
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    (status, cache, value)
}

/// `(event name, data)` pairs of an Anthropic stream; every event's name is its type.
fn anthropic_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let name = event
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default()
                .to_owned();
            let data: Value = serde_json::from_str(
                event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap_or_else(|| panic!("no data in {event:?}")),
            )
            .unwrap();
            assert_eq!(data["type"], name.as_str(), "{event}");
            (name, data)
        })
        .collect()
}

/// The message a stream amounts to (as the SDKs accumulate it), checking the event order:
/// `message_start`, blocks opened and closed in turn, `message_delta`, `message_stop` last.
fn assemble_message(body: &str) -> Value {
    let events = anthropic_events(body);
    let names: Vec<&str> = events
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != "ping")
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(
        &names[names.len() - 2..],
        ["message_delta", "message_stop"],
        "{names:?}"
    );
    let mut message = Value::Null;
    let mut partial = String::new();
    for (name, data) in &events {
        match name.as_str() {
            "message_start" => message = data["message"].clone(),
            "content_block_start" => {
                let content = message["content"].as_array_mut().unwrap();
                assert_eq!(data["index"], content.len(), "blocks in order");
                content.push(data["content_block"].clone());
            }
            "content_block_delta" => {
                let block = &mut message["content"][data["index"].as_u64().unwrap() as usize];
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let text = block["text"].as_str().unwrap().to_owned();
                        block["text"] = json!(text + delta["text"].as_str().unwrap());
                    }
                    "input_json_delta" => partial.push_str(delta["partial_json"].as_str().unwrap()),
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" if !partial.is_empty() => {
                message["content"][data["index"].as_u64().unwrap() as usize]["input"] =
                    serde_json::from_str(&std::mem::take(&mut partial)).unwrap();
            }
            "message_delta" => {
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["usage"]["output_tokens"] = data["usage"]["output_tokens"].clone();
            }
            _ => {}
        }
    }
    message
}

#[tokio::test]
async fn messages_repeat_is_a_hit_for_native_and_translated_deployments() {
    let mock = mock_upstream(&[]);
    let gw = messages_gateway(&mock, "ttl: 60");
    for (n, (model, id)) in [("claude", "a1"), ("gpt", "g1")].into_iter().enumerate() {
        let body = message_body(model);
        let first = send_messages(&gw, &body, &[]).await;
        assert_eq!(first.status(), 200, "{model}");
        assert_eq!(header(&first, "x-switchyard-cache"), "miss");
        assert!(nanos(header(&first, "x-litellm-response-cost")) > 0);
        let first: Value = first.json().await.unwrap();
        assert_eq!(first["type"], "message", "{first}");

        let second = send_messages(&gw, &body, &[]).await;
        assert_eq!(second.status(), 200);
        assert_eq!(header(&second, "x-switchyard-cache"), "hit", "{model}");
        let key = header(&second, "x-litellm-cache-key").to_owned();
        assert_eq!(key.len(), 64, "{key}");
        assert_eq!(header(&second, "x-litellm-response-cost"), "0");
        assert_eq!(header(&second, "x-litellm-model-id"), id);
        assert_eq!(header(&second, "content-type"), "application/json");
        let second: Value = second.json().await.unwrap();
        assert_eq!(first, second, "the same message, byte for byte");
        assert_eq!(second["model"], model);
        assert_eq!(
            upstream_calls(&mock).await,
            n as u64 + 1,
            "the hit never reached the upstream"
        );
    }
    // The upstream saw the native and the translated form once each.
    let paths: Vec<String> = Mock(&mock)
        .requests()
        .await
        .iter()
        .map(|r| r["path"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(paths, ["/v1/messages", "/v1/chat/completions"], "{paths:?}");

    // Spend: the hits are logged with cost 0 and cache_hit.
    let rows = spend_rows(&gw, "", 4).await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    let hits: Vec<&Value> = rows.iter().filter(|r| r["cache_hit"] == "True").collect();
    assert_eq!(hits.len(), 2, "{rows:?}");
    for hit in hits {
        assert_eq!(hit["spend"].as_f64(), Some(0.0), "{hit}");
        assert!(hit["total_tokens"].as_u64().unwrap_or(0) > 0, "{hit}");
    }
    for miss in rows.iter().filter(|r| r["cache_hit"] == "False") {
        assert!(miss["spend"].as_f64().unwrap() > 0.0, "{miss}");
    }
    let text = metrics(&gw).await;
    assert_eq!(
        metric(&text, "switchyard_cache_lookups_total", "result=\"hit\""),
        2.0
    );
    assert_eq!(
        metric(&text, "switchyard_cache_hits_total", "deployment=\"a1\""),
        1.0
    );
    assert_eq!(
        metric(&text, "switchyard_cache_hits_total", "deployment=\"g1\""),
        1.0
    );
}

#[tokio::test]
async fn messages_streams_replay_whole_entries_and_whole_requests_hit_streamed_ones() {
    let mock = mock_upstream(&["--reply", "one two three"]);
    let gw = messages_gateway(&mock, "");
    let mut calls = 0;
    for model in ["claude", "gpt"] {
        // A whole answer stored, replayed to a stream request.
        let whole = message_body(model);
        let (_, cache, first) = message(&gw, &whole).await;
        assert_eq!(cache, "miss");
        let mut stream = whole.clone();
        stream["stream"] = json!(true);
        let response = send_messages(&gw, &stream, &[]).await;
        assert_eq!(header(&response, "x-switchyard-cache"), "hit", "{model}");
        assert_eq!(header(&response, "content-type"), "text/event-stream");
        let replayed = assemble_message(&response.text().await.unwrap());
        assert_eq!(
            replayed, first,
            "{model}: the stream amounts to the stored message"
        );
        assert_eq!(replayed["content"][0]["text"], "one two three");
        assert_eq!(replayed["stop_reason"], "end_turn");
        calls += 1;

        // A streamed answer (with a tool call: input_json_delta pieces) stored once complete,
        // served whole and replayed.
        let mut tools = stream.clone();
        tools["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
        tools["tool_choice"] = json!({"type": "any"});
        let (_, cache, text) = message(&gw, &tools).await;
        assert_eq!(cache, "miss");
        let streamed = assemble_message(text.as_str().unwrap());
        assert_eq!(streamed["content"][0]["type"], "tool_use", "{streamed}");
        calls += 1;
        let mut whole_tools = tools.clone();
        whole_tools.as_object_mut().unwrap().remove("stream");
        let (_, cache, stored) = message(&gw, &whole_tools).await;
        assert_eq!(cache, "hit", "{model}: the stream was stored");
        assert_eq!(stored["content"], streamed["content"]);
        assert_eq!(stored["stop_reason"], "tool_use");
        assert_eq!(stored["model"], model);
        assert!(
            stored["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{stored}"
        );
        let (_, cache, again) = message(&gw, &tools).await;
        assert_eq!(cache, "hit");
        assert_eq!(
            assemble_message(again.as_str().unwrap())["content"],
            stored["content"]
        );
        assert_eq!(upstream_calls(&mock).await, calls, "{model}");
    }
}

#[tokio::test]
async fn a_messages_stream_cut_short_is_not_stored() {
    // Cut after the first text deltas (before them a failure is not yet a stream's: the
    // router would fail over or answer 502).
    let mock = mock_upstream(&["--fail-mid-stream-after", "5"]);
    let gw = messages_gateway(&mock, "");
    for model in ["claude", "gpt"] {
        let mut stream = message_body(model);
        stream["stream"] = json!(true);
        for _ in 0..2 {
            let (status, cache, text) = message(&gw, &stream).await;
            assert_eq!((status, cache.as_str()), (200, "miss"), "{model}");
            let events = anthropic_events(text.as_str().unwrap());
            assert_eq!(events.last().unwrap().0, "error", "{model}: cut short");
        }
    }
    assert_eq!(upstream_calls(&mock).await, 4);
}

#[tokio::test]
async fn the_messages_key_follows_what_changes_the_answer_and_the_controls() {
    let mock = mock_upstream(&[]);
    let gw = messages_gateway(&mock, "");
    let base = message_body("claude");
    assert_eq!(message(&gw, &base).await.1, "miss");
    // metadata (Anthropic's user id) and stream do not change the answer.
    let mut same = base.clone();
    same["metadata"] = json!({"user_id": "someone-else"});
    assert_eq!(message(&gw, &same).await.1, "hit");
    // Another system prompt, max_tokens, temperature: other answers.
    for (field, value) in [
        ("system", json!("Be verbose.")),
        ("max_tokens", json!(65)),
        ("temperature", json!(0.5)),
    ] {
        let mut other = base.clone();
        other[field] = value;
        assert_eq!(message(&gw, &other).await.1, "miss", "{field}");
    }
    // no-cache in the body and in the header; the `cache` object is never forwarded.
    let mut fresh = base.clone();
    fresh["cache"] = json!({"no-cache": true});
    assert_eq!(message(&gw, &fresh).await.1, "miss");
    let last = Mock(&mock).last_request().await;
    assert!(last["body"].get("cache").is_none(), "{last}");
    let response = send_messages(&gw, &base, &[("cache-control", "no-cache")]).await;
    assert_eq!(header(&response, "x-switchyard-cache"), "miss");
    assert_eq!(message(&gw, &base).await.1, "hit");
    // A hostile `cache` is an Anthropic-shaped 400 naming the field.
    let mut hostile = base.clone();
    hostile["cache"] = json!({"ttl": "60"});
    let response = send_messages(&gw, &hostile, &[]).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cache.ttl"),
        "{error}"
    );
    assert_eq!(upstream_calls(&mock).await, 6);
}

#[tokio::test]
async fn chat_and_messages_never_share_an_entry() {
    let mock = mock_upstream(&[]);
    let gw = messages_gateway(&mock, "");
    let prompt = json!([{"role": "user", "content": "Say hello"}]);
    let anthropic = json!({"model": "gpt", "max_tokens": 64, "messages": prompt});
    assert_eq!(message(&gw, &anthropic).await.1, "miss");
    assert_eq!(message(&gw, &anthropic).await.1, "hit");
    let openai = json!({"model": "gpt", "max_tokens": 64, "messages": prompt});
    let (_, cache, answer) = chat(&gw, &openai).await;
    assert_eq!(cache, "miss", "a chat request never reads a messages entry");
    assert_eq!(answer["object"], "chat.completion");
    let (_, cache, answer) = chat(&gw, &openai).await;
    assert_eq!(cache, "hit");
    assert_eq!(answer["object"], "chat.completion");
    let (_, cache, answer) = message(&gw, &anthropic).await;
    assert_eq!(cache, "hit");
    assert_eq!(answer["type"], "message");
    assert_eq!(upstream_calls(&mock).await, 2);
}

#[tokio::test]
async fn concurrent_identical_messages_requests_make_one_upstream_call() {
    let mock = mock_upstream(&["--latency-ms", "400"]);
    let gw = messages_gateway(&mock, "");
    let body = message_body("claude");
    let calls = (0..10).map(|_| {
        let body = body.clone();
        let gw = &gw;
        async move { message(gw, &body).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    for (status, _, answer) in &answers {
        assert_eq!(*status, 200);
        assert_eq!(answer, &answers[0].2);
    }
    assert_eq!(answers.iter().filter(|(_, c, _)| c == "miss").count(), 1);
    assert_eq!(upstream_calls(&mock).await, 1);
}

#[tokio::test]
async fn supported_call_types_without_anthropic_messages_leaves_messages_uncached() {
    let mock = mock_upstream(&[]);
    let gw = messages_gateway(&mock, "supported_call_types: [acompletion]");
    let body = message_body("claude");
    for _ in 0..2 {
        assert_eq!(message(&gw, &body).await.1, "", "not cached: no header");
    }
    assert_eq!(upstream_calls(&mock).await, 2);
    let gw = messages_gateway(&mock, "supported_call_types: [aanthropic_messages]");
    assert_eq!(message(&gw, &body).await.1, "miss");
    assert_eq!(message(&gw, &body).await.1, "hit");
    assert_eq!(
        chat(&gw, &chat_body("gpt")).await.1,
        "",
        "chat is not listed"
    );
}

#[tokio::test]
async fn a_messages_request_with_a_post_call_guardrail_neither_reads_nor_fills_the_cache() {
    let mock = mock_upstream(&[]);
    let yaml = config(
        &[entry("gpt", "g1", &mock, "", "")],
        "litellm_settings:\n  cache: true\nguardrails:\n  - guardrail_name: mask-both\n    litellm_params: {guardrail: pii, mode: [pre_call, post_call], output_parse_pii: true, pii_entities_config: {EMAIL_ADDRESS: MASK}}\n",
    );
    let gw = gateway(&yaml, &[]);
    let plain = message_body("gpt");
    assert_eq!(message(&gw, &plain).await.1, "miss");
    let mut guarded = plain.clone();
    guarded["guardrails"] = json!(["mask-both"]);
    for _ in 0..2 {
        let (status, cache, _) = message(&gw, &guarded).await;
        assert_eq!((status, cache.as_str()), (200, ""), "no cache either way");
    }
    assert_eq!(message(&gw, &plain).await.1, "hit");
    assert_eq!(upstream_calls(&mock).await, 3);
}
