//! Callbacks and alerts through the real binary: a receiver started by the test (axum on
//! 127.0.0.1:0) records every POST. The generic webhook gets one event per request, exactly
//! once by id even when the receiver fails the first delivery; a dead receiver costs requests
//! nothing and its events are counted as dropped; Langfuse gets traces and generations with
//! basic auth; Slack gets one alert per soft budget crossed and per deployment cooled down.

mod common;
mod routing;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use common::*;
use routing::*;
use serde_json::{json, Value};

/// One POST the receiver saw.
#[derive(Debug, Clone)]
struct Post {
    path: String,
    authorization: Option<String>,
    text: String,
    body: Value,
    /// Whether the receiver answered 2xx (a refused POST is not delivered).
    accepted: bool,
}

#[derive(Clone, Default)]
struct Receiver {
    posts: Arc<Mutex<Vec<Post>>>,
    /// The first this many POSTs are answered 500.
    fail_first: Arc<Mutex<usize>>,
}

impl Receiver {
    async fn start(fail_first: usize) -> (String, Receiver) {
        let receiver = Receiver {
            fail_first: Arc::new(Mutex::new(fail_first)),
            ..Receiver::default()
        };
        let app = axum::Router::new()
            .fallback(record)
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, receiver)
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<Post> {
        self.posts().into_iter().filter(|p| p.accepted).collect()
    }

    /// Waits (at most 15 s) until `done` holds for the accepted posts.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Post]) -> bool) -> Vec<Post> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let accepted = self.accepted();
            if done(&accepted) {
                return accepted;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; posts: {:#?}",
                self.posts()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn record(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    text: String,
) -> StatusCode {
    let fail = {
        let mut left = receiver.fail_first.lock().unwrap();
        let fail = *left > 0;
        *left = left.saturating_sub(1);
        fail
    };
    receiver.posts.lock().unwrap().push(Post {
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
        accepted: !fail,
    });
    if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// Fast delivery for tests: small flush interval and retry delays.
const FAST_DELIVERY: &str =
    "switchyard_callbacks:\n  flush_interval_ms: 200\n  retry_delay_ms: 100\n  max_retries: 3\n  shutdown_flush_seconds: 1\n";

async fn new_key(gw: &Proc, body: Value) -> String {
    let response = client()
        .post(format!("{}/key/generate", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.unwrap();
    body["key"].as_str().unwrap().to_owned()
}

async fn chat(gw: &Proc, key: &str, body: &Value) -> (u16, String, i64, String) {
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let request_id = header(&response, "x-request-id").to_owned();
    let cost = response
        .headers()
        .get("x-litellm-response-cost")
        .map(|v| nanos(v.to_str().unwrap()))
        .unwrap_or(0);
    let text = response.text().await.unwrap();
    (status, request_id, cost, text)
}

/// Every event of every accepted webhook POST, by `litellm_call_id` (the request id).
fn events_by_request(posts: &[Post]) -> HashMap<String, Vec<Value>> {
    let mut by_request: HashMap<String, Vec<Value>> = HashMap::new();
    for post in posts {
        for event in post.body.as_array().expect("a JSON array") {
            let id = event["litellm_call_id"].as_str().unwrap().to_owned();
            by_request.entry(id).or_default().push(event.clone());
        }
    }
    by_request
}

fn event_ids(post: &Post) -> Vec<String> {
    post.body
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_webhook_gets_every_request_once_even_when_the_first_delivery_fails() {
    let (receiver_url, receiver) = Receiver::start(1).await;
    let mock = mock_upstream(&[]);
    let broken = mock_upstream(&[]);
    Mock(&broken)
        .set(json!({"fail_next": 100, "error_status": 500}))
        .await;
    let yaml = config(
        &[
            entry(
                "chat",
                "c1",
                &mock,
                "",
                ", input_cost_per_token: 0.001, output_cost_per_token: 0.002",
            ),
            entry("broken", "b1", &broken, "", ""),
        ],
        &format!(
            "litellm_settings:\n  callbacks: [generic_api, prometheus, otel, made_up_callback]\n{FAST_DELIVERY}callback_settings:\n  generic_api:\n    callback_type: generic_api\n    endpoint: {receiver_url}/hook\n    headers:\n      Authorization: os.environ/HOOK_TOKEN\n"
        ),
    );
    let gw = gateway(&yaml, &[("HOOK_TOKEN", "Bearer hook-secret")]);
    let key = new_key(&gw, json!({"key_alias": "checkout-key"})).await;

    let mut requests = Vec::new();
    let tagged = json!({"model": "chat", "messages": [{"role": "user", "content": "Say hello"}],
        "user": "customer-7", "metadata": {"tags": ["checkout"], "feature": "summary"}});
    let (status, id, cost, _) = chat(&gw, &key, &tagged).await;
    assert_eq!(status, 200);
    assert!(cost > 0);
    requests.push(("success", id, cost));
    let stream = json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Say hello"}]});
    let (status, id, _, text) = chat(&gw, &key, &stream).await;
    assert_eq!(status, 200, "{text}");
    requests.push(("stream", id, 0));
    let (status, id, _, _) = chat(&gw, &key, &chat_body("broken")).await;
    assert_eq!(status, 502);
    requests.push(("upstream_failure", id, 0));
    let (status, id, _, _) = chat(&gw, "sk-not-a-real-key", &chat_body("chat")).await;
    assert_eq!(status, 401);
    requests.push(("unauthorized", id, 0));

    let accepted = receiver
        .wait_for("4 events", |posts| {
            events_by_request(posts)
                .values()
                .map(Vec::len)
                .sum::<usize>()
                >= 4
        })
        .await;
    // Nothing else arrives later (no duplicate delivery).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let posts = receiver.posts();
    let accepted_now = receiver.accepted();
    assert_eq!(accepted_now.len(), accepted.len(), "{posts:#?}");

    // The first POST was refused; the same events (same ids) came again and were accepted.
    assert!(!posts[0].accepted);
    let accepted_ids: Vec<String> = accepted.iter().flat_map(event_ids).collect();
    let unique: HashSet<&String> = accepted_ids.iter().collect();
    assert_eq!(unique.len(), accepted_ids.len(), "an id accepted twice");
    for id in event_ids(&posts[0]) {
        assert!(
            unique.contains(&id),
            "event {id} of the failed POST never delivered"
        );
    }
    for post in &posts {
        assert_eq!(post.path, "/hook");
        assert_eq!(post.authorization.as_deref(), Some("Bearer hook-secret"));
        // Never a raw key, never the prompt.
        assert!(!post.text.contains(&key), "raw key in {}", post.text);
        assert!(!post.text.contains(MASTER_KEY));
        assert!(!post.text.contains("sk-not-a-real-key"));
        assert!(!post.text.contains("Say hello"));
    }

    let by_request = events_by_request(&accepted);
    assert_eq!(by_request.len(), 4, "{by_request:#?}");
    for (what, request_id, cost) in &requests {
        let events = &by_request[request_id];
        assert_eq!(events.len(), 1, "{what}: {events:#?}");
        let event = &events[0];
        assert_eq!(event["call_type"], "acompletion", "{what}");
        assert_eq!(event["trace_id"], request_id.as_str());
        match *what {
            "success" => {
                assert_eq!(event["status"], "success");
                assert_eq!(event["model_group"], "chat");
                assert_eq!(event["model_id"], "c1");
                assert_eq!(event["custom_llm_provider"], "openai");
                assert_eq!(event["model"], "c1-upstream");
                assert_eq!(event["stream"], false);
                assert!(event["prompt_tokens"].as_u64().unwrap() > 0);
                assert_eq!(
                    event["total_tokens"].as_u64().unwrap(),
                    event["prompt_tokens"].as_u64().unwrap()
                        + event["completion_tokens"].as_u64().unwrap()
                );
                assert_eq!(
                    (event["response_cost"].as_f64().unwrap() * 1e9).round() as i64,
                    *cost
                );
                assert_eq!(event["metadata"]["user_api_key_alias"], "checkout-key");
                assert!(
                    event["metadata"]["user_api_key_hash"]
                        .as_str()
                        .unwrap()
                        .len()
                        >= 32
                );
                assert_eq!(event["metadata"]["user_api_key_end_user_id"], "customer-7");
                assert_eq!(event["end_user"], "customer-7");
                assert_eq!(event["request_tags"], json!(["checkout"]));
                assert_eq!(
                    event["metadata"]["requester_metadata"]["feature"],
                    "summary"
                );
                assert!(event["endTime"].as_f64().unwrap() >= event["startTime"].as_f64().unwrap());
                assert!(event["error_information"].is_null());
                assert!(event["messages"].is_null() && event["response"].is_null());
            }
            "stream" => {
                assert_eq!(event["status"], "success");
                assert_eq!(event["stream"], true);
                assert_eq!(event["model_group"], "chat");
            }
            "upstream_failure" => {
                assert_eq!(event["status"], "failure");
                assert_eq!(event["model_group"], "broken");
                assert_eq!(event["error_information"]["error_code"], "502");
                assert_eq!(event["switchyard"]["status_code"], 502);
            }
            "unauthorized" => {
                assert_eq!(event["status"], "failure");
                assert_eq!(
                    event["error_information"]["error_class"],
                    "AuthenticationError"
                );
                assert!(event["metadata"]["user_api_key_hash"].is_null());
            }
            _ => unreachable!(),
        }
    }
    let log = gw.shutdown();
    assert!(
        log.contains("callback `made_up_callback` is not supported"),
        "{log}"
    );
    assert!(!log.contains("`prometheus` is not supported"));
    assert!(!log.contains("hook-secret"), "a header value was logged");
}

#[tokio::test]
async fn a_dead_receiver_costs_requests_nothing_and_its_events_are_counted_as_dropped() {
    // A port nothing listens on: every POST fails to connect.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    // A listener that never answers: every POST runs into its timeout.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let yaml = config(
        &[offline("chat", "c1", "hello", "", "")],
        &format!(
            "litellm_settings:\n  success_callback: [generic_api, hanging]\nswitchyard_callbacks:\n  flush_interval_ms: 100\n  retry_delay_ms: 50\n  max_retries: 2\ncallback_settings:\n  hanging:\n    callback_type: generic_api\n    endpoint: http://{}/hook\n    timeout: 0.4\n    max_retries: 1\n",
            hanging.local_addr().unwrap()
        ),
    );
    let gw = gateway(
        &yaml,
        &[("GENERIC_LOGGER_ENDPOINT", &format!("http://{dead}/hook"))],
    );
    for _ in 0..5 {
        let started = Instant::now();
        let (status, ..) = chat(&gw, MASTER_KEY, &chat_body("chat")).await;
        assert_eq!(status, 200);
        // Far below the hanging receiver's 0.4 s timeout: nothing on the request path waits.
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }
    // The dead one: three tries (50 ms, then 100 ms apart). The hanging one: two tries of
    // 0.4 s each. Then the batches are given up.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let log = gw.shutdown();
    assert!(
        log.contains("callback batch dropped after its retries"),
        "{log}"
    );
    assert!(log.contains("callback=\"generic_api\""), "{log}");
    assert!(log.contains("callback=\"hanging\""), "{log}");
    assert!(log.contains("attempts=3"), "{log}");
    assert!(log.contains("attempts=2"), "{log}");
    assert!(log.contains("dropped_total=10"), "{log}");
    drop(hanging);
}

#[tokio::test]
async fn langfuse_gets_a_trace_and_a_generation_per_request_with_basic_auth() {
    let (receiver_url, receiver) = Receiver::start(0).await;
    let yaml = config(
        &[offline(
            "chat",
            "c1",
            "hello there from langfuse",
            "",
            ", input_cost_per_token: 0.001, output_cost_per_token: 0.002",
        )],
        &format!("litellm_settings:\n  success_callback: [langfuse]\n  failure_callback: [langfuse]\n{FAST_DELIVERY}"),
    );
    let gw = gateway(
        &yaml,
        &[
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-test"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-test"),
            ("LANGFUSE_HOST", &receiver_url),
        ],
    );
    let body = json!({"model": "chat", "user": "customer-9", "metadata": {"tags": ["beta"]},
        "messages": [{"role": "user", "content": "Say hello"}]});
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cost = nanos(header(&response, "x-litellm-response-cost"));
    assert!(cost > 0);
    let answer: Value = response.json().await.unwrap();

    let posts = receiver
        .wait_for("a langfuse batch", |posts| !posts.is_empty())
        .await;
    let post = &posts[0];
    assert_eq!(post.path, "/api/public/ingestion");
    // base64("pk-lf-test:sk-lf-test")
    assert_eq!(
        post.authorization.as_deref(),
        Some("Basic cGstbGYtdGVzdDpzay1sZi10ZXN0")
    );
    let batch = post.body["batch"].as_array().unwrap();
    assert_eq!(batch.len(), 2, "{batch:#?}");
    let trace = batch.iter().find(|e| e["type"] == "trace-create").unwrap();
    let generation = batch
        .iter()
        .find(|e| e["type"] == "generation-create")
        .unwrap();
    assert_ne!(trace["id"], generation["id"]);
    assert!(trace["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(trace["body"]["name"], "litellm-acompletion");
    assert_eq!(trace["body"]["userId"], "customer-9");
    assert_eq!(trace["body"]["tags"], json!(["beta"]));
    let g = &generation["body"];
    assert_eq!(g["traceId"], trace["body"]["id"]);
    assert_eq!(g["model"], "c1");
    assert_eq!(g["level"], "DEFAULT");
    assert_eq!(g["usage"]["input"], answer["usage"]["prompt_tokens"]);
    assert_eq!(g["usage"]["output"], answer["usage"]["completion_tokens"]);
    assert_eq!(g["usageDetails"]["input"], answer["usage"]["prompt_tokens"]);
    assert_eq!(
        (g["costDetails"]["total"].as_f64().unwrap() * 1e9).round() as i64,
        cost
    );
    assert_eq!(
        g["metadata"]["response_cost"].as_str().map(nanos),
        Some(cost)
    );
    for field in ["startTime", "endTime", "completionStartTime"] {
        assert!(g[field].as_str().unwrap().ends_with('Z'), "{field}");
    }
    assert!(!post.text.contains("sk-lf-test") && !post.text.contains(MASTER_KEY));
    gw.shutdown();
}

#[tokio::test]
async fn slack_gets_one_alert_per_soft_budget_crossed_and_per_deployment_cooled_down() {
    let (receiver_url, receiver) = Receiver::start(0).await;
    let (a, b) = (mock_upstream(&[]), mock_upstream(&[]));
    let yaml = config(
        &[
            entry("pair", "a", &a, ", order: 1", ""),
            entry("pair", "b", &b, ", order: 2", ""),
            offline(
                "chat",
                "c1",
                "hello there from the alert test",
                "",
                ", input_cost_per_token: 0.001, output_cost_per_token: 0.002",
            ),
        ],
        &format!("router_settings:\n  num_retries: 1\n{FAST_DELIVERY}"),
    );
    // general_settings is written by `config`; the alerting keys go with it.
    let yaml = yaml.replace(
        "general_settings:\n",
        "general_settings:\n  alerting: [slack, webhook]\n  alert_types: [budget_alerts, cooldown_deployment]\n",
    );
    let gw = gateway(
        &yaml,
        &[
            ("SLACK_WEBHOOK_URL", &format!("{receiver_url}/slack")),
            ("WEBHOOK_URL", &format!("{receiver_url}/alerts")),
        ],
    );

    // A soft budget far below one request's cost: the first request crosses it.
    let key = new_key(
        &gw,
        json!({"key_alias": "alerted-key", "max_budget": 100, "soft_budget": 0.000001}),
    )
    .await;
    for _ in 0..3 {
        let (status, ..) = chat(&gw, &key, &chat_body("chat")).await;
        assert_eq!(status, 200);
    }
    // Deployment `a` answers 429 with a 1 s retry-after: it cools down, `b` answers. After the
    // cooldown it fails its probe the same way: cooled down again, but within the window the
    // alert is not sent twice.
    for round in 0..2 {
        Mock(&a)
            .set(json!({"fail_next": 1, "error_status": 429, "retry_after": 1}))
            .await;
        let response = post(&gw, &chat_body("pair")).await;
        assert_eq!(response.status(), 200, "round {round}");
        assert_eq!(header(&response, "x-switchyard-model-id"), "b");
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }
    assert_eq!(Mock(&a).requests().await.len(), 2, "the probe went to a");

    let alerts = receiver
        .wait_for("two alerts on each channel", |posts| posts.len() >= 4)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let alerts_now = receiver.accepted();
    assert_eq!(alerts_now.len(), 4, "{alerts_now:#?}");
    let (slack, webhook): (Vec<Post>, Vec<Post>) =
        alerts.into_iter().partition(|p| p.path == "/slack");
    assert_eq!(webhook.len(), 2, "{webhook:#?}");
    for post in &webhook {
        assert_eq!(post.path, "/alerts");
        let body = &post.body;
        assert!(body["text"].is_string());
        assert!(body["timestamp"].as_f64().is_some());
        match body["alert_type"].as_str().unwrap() {
            "budget_alerts" => {
                assert_eq!(body["fields"]["scope"], "key");
                assert!(body["fields"]["spend"].as_f64().unwrap() > 0.000001);
            }
            "cooldown_deployment" => {
                assert_eq!(body["fields"]["model_group"], "pair");
                assert_eq!(body["fields"]["model_id"], "a");
            }
            other => panic!("unexpected alert type {other}"),
        }
        assert!(!post.text.contains(&key) && !post.text.contains("sk-fake"));
    }
    let texts: Vec<&str> = slack
        .iter()
        .map(|p| {
            assert_eq!(p.path, "/slack");
            // Slack's shape: one `text` field.
            assert_eq!(p.body.as_object().unwrap().len(), 1, "{}", p.text);
            p.body["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.starts_with("Soft budget crossed"))
            .count(),
        1,
        "{texts:?}"
    );
    let cooled: Vec<&&str> = texts
        .iter()
        .filter(|t| t.starts_with("Deployment cooled down"))
        .collect();
    assert_eq!(cooled.len(), 1, "{texts:?}");
    assert!(cooled[0].contains("`a`") && cooled[0].contains("`pair`"));
    for text in &texts {
        assert!(!text.contains(&key) && !text.contains("sk-fake"), "{text}");
    }
    let log = gw.shutdown();
    // The log line stays.
    assert!(log.contains("soft_budget_crossed"), "{log}");
}
