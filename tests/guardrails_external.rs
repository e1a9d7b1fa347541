//! External guardrails (`generic_guardrail_api`, `presidio` with a server) and the prompt-size
//! guardrail (`max_prompt_tokens`) through the real binary. The guardrail services are small
//! axum servers started by the test; the mock upstream's request log shows what went upstream.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use common::*;
use serde_json::{json, Value};

/// What the guardrail services were sent, by path.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, Value)>>>);

impl Seen {
    fn keys(&self, path_prefix: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.starts_with(path_prefix))
            .map(|(_, seen)| seen["x-api-key"].clone())
            .collect()
    }

    fn bodies(&self, path_prefix: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.starts_with(path_prefix))
            .map(|(_, seen)| seen["body"].clone())
            .collect()
    }
}

/// One server plays every service; the first path segment says how it behaves.
async fn service(
    State(seen): State<Seen>,
    uri: Uri,
    headers: axum::http::HeaderMap,
    text: String,
) -> Response {
    let path = uri.path().to_owned();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    // The request as the service saw it, with the key header it was sent.
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    seen.0.lock().unwrap().push((
        path.clone(),
        json!({"body": body.clone(), "x-api-key": key}),
    ));
    let json = |v: Value| axum::Json(v).into_response();
    let segment = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match segment {
        "allow" => json(json!({"action": "NONE"})),
        "block" => json(json!({"action": "BLOCKED", "blocked_reason": "talks about the launch"})),
        "rewrite" => {
            let texts: Vec<Value> = body["texts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|t| Value::from(t.as_str().unwrap_or("").replace("Falcon", "[project]")))
                .collect();
            json(json!({"action": "GUARDRAIL_INTERVENED", "texts": texts}))
        }
        "notjson" => "<html>502 Bad Gateway</html>".into_response(),
        "wrongcount" => json(json!({"action": "GUARDRAIL_INTERVENED", "texts": []})),
        "error" => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "huge" => {
            let filler = "x".repeat(20 * 1024 * 1024);
            json(json!({"action": "NONE", "filler": filler}))
        }
        "slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            json(json!({"action": "NONE"}))
        }
        "presidio" if path.ends_with("/analyze") => {
            let text = body["text"].as_str().unwrap_or("");
            let mut results = Vec::new();
            if let Some(start) = text.find("John Smith") {
                let start = text[..start].chars().count();
                results.push(json!({"entity_type": "PERSON", "start": start, "end": start + 10, "score": 0.85}));
            }
            if let Some(start) = text.find("Paris") {
                let start = text[..start].chars().count();
                results.push(json!({"entity_type": "LOCATION", "start": start, "end": start + 5, "score": 0.85}));
            }
            json(Value::from(results))
        }
        "presidio" if path.ends_with("/anonymize") => {
            let text = body["text"]
                .as_str()
                .unwrap_or("")
                .replace("John Smith", "<PERSON>");
            json(json!({"text": text, "items": [{"entity_type": "PERSON", "operator": "replace"}]}))
        }
        _ => (axum::http::StatusCode::NOT_FOUND, "no such service").into_response(),
    }
}

async fn start_services() -> (String, Seen) {
    let seen = Seen::default();
    let app = axum::Router::new()
        .fallback(service)
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// A port nothing listens on.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn config(mock: &Proc, services: &str, dead: &str) -> String {
    let generic = |name: &str, base: &str, extra: &str| {
        format!(
            "  - guardrail_name: {name}\n    litellm_params:\n      guardrail: generic_guardrail_api\n      mode: pre_call\n      api_base: {base}\n      api_key: os.environ/GUARD_KEY\n      timeout: 1\n{extra}"
        )
    };
    let mut guardrails = String::new();
    for segment in [
        "allow",
        "block",
        "rewrite",
        "notjson",
        "wrongcount",
        "error",
        "huge",
        "slow",
    ] {
        guardrails.push_str(&generic(
            &format!("ext-{segment}"),
            &format!("{services}/{segment}"),
            "",
        ));
    }
    guardrails.push_str(&generic("ext-down", dead, ""));
    guardrails.push_str(&generic(
        "ext-down-open",
        dead,
        "      unreachable_fallback: fail_open\n",
    ));
    guardrails.push_str(&generic(
        "ext-error-open",
        &format!("{services}/error"),
        "      fail_on_error: false\n",
    ));
    format!(
        r#"
model_list:
  - model_name: chat
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {mock}/v1
      api_key: sk-fake
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {mock}/v1
      api_key: sk-fake
general_settings:
  master_key: sk-test-master
guardrails:
{guardrails}  - guardrail_name: presidio-server
    litellm_params:
      guardrail: presidio
      mode: pre_call
      presidio_analyzer_api_base: {services}/presidio
      presidio_anonymizer_api_base: {services}/presidio/
      pii_entities_config:
        PERSON: MASK
        LOCATION: BLOCK
  - guardrail_name: presidio-broken
    litellm_params:
      guardrail: presidio
      mode: pre_call
      presidio_analyzer_api_base: {services}/notjson
      presidio_anonymizer_api_base: {services}/notjson
  - guardrail_name: presidio-slow
    litellm_params:
      guardrail: presidio
      mode: pre_call
      timeout: 0.5
      presidio_analyzer_api_base: {services}/slow
      presidio_anonymizer_api_base: {services}/slow
  - guardrail_name: prompt-size
    litellm_params:
      guardrail: max_prompt_tokens
      mode: pre_call
      max_prompt_tokens: 50
"#,
        mock = mock.url
    )
}

struct Setup {
    mock: Proc,
    gw: Proc,
    seen: Seen,
}

async fn setup() -> Setup {
    let (services, seen) = start_services().await;
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &config(&mock, &services, &dead_url()),
        &[("GUARD_KEY", "guard-secret-1")],
    );
    Setup { mock, gw, seen }
}

async fn chat(gw: &Proc, guardrail: &str, messages: Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"model": "chat", "messages": messages, "guardrails": [guardrail]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn user(content: &str) -> Value {
    json!([{"role": "user", "content": content}])
}

async fn upstream_calls(mock: &Proc) -> usize {
    Mock(mock).requests().await.len()
}

#[tokio::test]
async fn a_webhook_allows_blocks_and_rewrites_what_goes_upstream() {
    let s = setup().await;
    let messages = json!([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Tell me about Falcon."},
    ]);
    // Allow: the service saw every text, in order, with LiteLLM's request shape and the key.
    let (status, body) = chat(&s.gw, "ext-allow", messages.clone()).await;
    assert_eq!(status, 200, "{body}");
    let sent = s.seen.bodies("/allow/beta/litellm_basic_guardrail_api");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["texts"],
        json!(["You are terse.", "Tell me about Falcon."])
    );
    assert_eq!(sent[0]["input_type"], "request");
    assert_eq!(sent[0]["model"], "chat");
    let upstream = Mock(&s.mock).last_request().await;
    assert_eq!(
        upstream["body"]["messages"][1]["content"],
        "Tell me about Falcon."
    );

    // Rewrite: the upstream sees the rewritten prompt, each text back in its place.
    let (status, body) = chat(&s.gw, "ext-rewrite", messages.clone()).await;
    assert_eq!(status, 200, "{body}");
    let upstream = Mock(&s.mock).last_request().await;
    assert_eq!(upstream["body"]["messages"][0]["content"], "You are terse.");
    assert_eq!(
        upstream["body"]["messages"][1]["content"],
        "Tell me about [project]."
    );

    // Block: LiteLLM's 400 naming the guardrail, and nothing goes upstream.
    let before = upstream_calls(&s.mock).await;
    let (status, body) = chat(&s.gw, "ext-block", messages.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "400");
    assert_eq!(
        body["error"]["provider_specific_fields"]["guardrail_name"],
        "ext-block"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("talks about the launch"), "{message}");
    assert!(message.contains("ext-block"), "{message}");
    assert_eq!(upstream_calls(&s.mock).await, before);

    // The metrics count each decision.
    let metrics = client()
        .get(format!("{}/metrics", s.gw.url))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"switchyard_guardrail_decisions_total{guardrail="ext-allow",mode="pre_call",outcome="passed"} 1"#,
        r#"switchyard_guardrail_decisions_total{guardrail="ext-rewrite",mode="pre_call",outcome="rewritten"} 1"#,
        r#"switchyard_guardrail_decisions_total{guardrail="ext-block",mode="pre_call",outcome="blocked"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

#[tokio::test]
async fn the_webhook_gets_the_api_key_header_and_the_anthropic_surface_is_guarded_too() {
    let s = setup().await;
    let response = client()
        .post(format!("{}/v1/messages", s.gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&json!({
            "model": "claude",
            "max_tokens": 50,
            "system": "About Falcon.",
            "messages": [{"role": "user", "content": "Is Falcon late?"}],
            "guardrails": ["ext-rewrite"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let upstream = Mock(&s.mock).last_request().await;
    let text = upstream["body"].to_string();
    assert!(!text.contains("Falcon"), "{text}");
    assert!(text.contains("About [project]."), "{text}");
    assert!(text.contains("Is [project] late?"), "{text}");
    // `api_key: os.environ/GUARD_KEY`, sent as LiteLLM sends it.
    assert_eq!(
        s.seen.keys("/rewrite/"),
        vec![Value::from("guard-secret-1")]
    );
}

#[tokio::test]
async fn a_failing_service_refuses_the_request_unless_it_fails_open() {
    let s = setup().await;
    let before = upstream_calls(&s.mock).await;
    // Closed (the default): down, an error status, not JSON, the wrong shape, too big, too slow.
    for name in [
        "ext-down",
        "ext-error",
        "ext-notjson",
        "ext-wrongcount",
        "ext-huge",
        "ext-slow",
    ] {
        let started = Instant::now();
        let (status, body) = chat(&s.gw, name, user("hello")).await;
        assert_eq!(status, 503, "{name}: {body}");
        assert_eq!(body["error"]["code"], "guardrail_unavailable", "{name}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(name), "{message}");
        // Neither the service's URL nor its key ever shows.
        assert!(!message.contains("127.0.0.1") && !message.contains("guard-secret"));
        // Bounded by the guardrail's timeout (1 s), not the service's 10 s.
        assert!(started.elapsed() < Duration::from_secs(5), "{name}");
    }
    assert_eq!(
        upstream_calls(&s.mock).await,
        before,
        "nothing went upstream"
    );
    // Open: the request goes on, unchecked.
    for name in ["ext-down-open", "ext-error-open"] {
        let (status, body) = chat(&s.gw, name, user("hello")).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    assert_eq!(upstream_calls(&s.mock).await, before + 2);
    let log = s.gw.stop();
    assert!(!log.contains("guard-secret-1"), "the key is never logged");
}

#[tokio::test]
async fn presidio_server_anonymizes_and_blocks_as_configured() {
    let s = setup().await;
    let (status, body) = chat(&s.gw, "presidio-server", user("Ask John Smith about it")).await;
    assert_eq!(status, 200, "{body}");
    let upstream = Mock(&s.mock).last_request().await;
    assert_eq!(
        upstream["body"]["messages"][0]["content"],
        "Ask <PERSON> about it"
    );
    let analyzed = s.seen.bodies("/presidio/analyze");
    assert_eq!(analyzed[0]["text"], "Ask John Smith about it");
    assert_eq!(analyzed[0]["language"], "en");
    assert_eq!(analyzed[0]["entities"], json!(["LOCATION", "PERSON"]));
    let anonymized = s.seen.bodies("/presidio/anonymize");
    assert_eq!(
        anonymized[0]["analyzer_results"][0]["entity_type"],
        "PERSON"
    );
    // No finding: no anonymizer call.
    let (status, _) = chat(&s.gw, "presidio-server", user("nothing here")).await;
    assert_eq!(status, 200);
    assert_eq!(s.seen.bodies("/presidio/anonymize").len(), 1);
    // A BLOCK entity refuses the prompt, naming the entity, never the value.
    let before = upstream_calls(&s.mock).await;
    let (status, body) = chat(&s.gw, "presidio-server", user("Meet in Paris")).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("LOCATION") && !message.contains("Paris"),
        "{message}"
    );
    assert_eq!(upstream_calls(&s.mock).await, before);
    // An analyzer that answers HTML, or too slowly: no verdict, fails closed.
    for name in ["presidio-broken", "presidio-slow"] {
        let started = Instant::now();
        let (status, body) = chat(&s.gw, name, user("Ask John Smith")).await;
        assert_eq!(status, 503, "{name}: {body}");
        assert_eq!(body["error"]["code"], "guardrail_unavailable");
        assert!(started.elapsed() < Duration::from_secs(5), "{name}");
    }
    assert_eq!(upstream_calls(&s.mock).await, before);
}

#[tokio::test]
async fn a_prompt_over_max_prompt_tokens_is_refused_before_it_costs_anything() {
    let s = setup().await;
    // 50 tokens at 4 characters a token: 200 characters pass, 201 do not.
    let (status, body) = chat(&s.gw, "prompt-size", user(&"a".repeat(200))).await;
    assert_eq!(status, 200, "{body}");
    let before = upstream_calls(&s.mock).await;
    let (status, body) = chat(
        &s.gw,
        "prompt-size",
        json!([
            {"role": "system", "content": "a".repeat(100)},
            {"role": "user", "content": "b".repeat(101)},
        ]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["provider_specific_fields"]["guardrail_name"],
        "prompt-size"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("51 tokens") && message.contains("50"),
        "{message}"
    );
    assert_eq!(upstream_calls(&s.mock).await, before);
}
