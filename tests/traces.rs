//! OpenTelemetry traces through the real binary: a test OTLP receiver (HTTP/protobuf and gRPC)
//! gets a SERVER span per request and a CLIENT span per attempt, in the client's trace, with
//! GenAI attributes; the upstream sees each attempt's `traceparent`; a dead collector costs
//! counted spans, not requests.

mod common;
mod routing;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use routing::*;
use serde_json::{json, Value};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const SPAN_KIND_SERVER: i32 = 2;
const SPAN_KIND_CLIENT: i32 = 3;

/// What the receiver got: every export request, decoded.
#[derive(Clone, Default)]
struct Received(
    Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    /// Exports that came over gRPC.
    Arc<std::sync::atomic::AtomicUsize>,
    /// The `x-collector-key` header of each HTTP export.
    Arc<Mutex<Vec<String>>>,
);

impl Received {
    fn spans(&self) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        for request in self.0.lock().unwrap().iter() {
            for resource in &request.resource_spans {
                let service = resource
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                    .and_then(|a| a.value.as_ref())
                    .and_then(|v| match &v.value {
                        Some(Any::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        out.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        out
    }

    /// The spans of one trace, waiting (at most 15 s) until there are at least `count`.
    async fn trace(&self, trace_id: &str, count: usize) -> Vec<Span> {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            let spans: Vec<Span> = self
                .spans()
                .into_iter()
                .map(|(_, s)| s)
                .filter(|s| hex(&s.trace_id) == trace_id)
                .collect();
            if spans.len() >= count || Instant::now() >= until {
                assert!(
                    spans.len() >= count,
                    "trace {trace_id}: {} spans, expected {count}",
                    spans.len()
                );
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Any> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(Any::StringValue(s)) => s.clone(),
        other => panic!("{key} on `{}`: {other:?}", span.name),
    }
}

fn int(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(Any::IntValue(i)) => *i,
        other => panic!("{key} on `{}`: {other:?}", span.name),
    }
}

fn one(spans: &[Span], kind: i32) -> &Span {
    let matching: Vec<&Span> = spans.iter().filter(|s| s.kind == kind).collect();
    assert_eq!(matching.len(), 1, "{spans:#?}");
    matching[0]
}

fn attempts(spans: &[Span]) -> Vec<&Span> {
    let mut out: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SPAN_KIND_CLIENT)
        .collect();
    out.sort_by_key(|s| int(s, "switchyard.attempt"));
    out
}

/// No attribute anywhere carries a key.
fn assert_no_secret(spans: &[(String, Span)]) {
    for (_, span) in spans {
        for attribute in &span.attributes {
            let value = format!("{:?}", attribute.value);
            for secret in [MASTER_KEY, "sk-fake"] {
                assert!(
                    !value.contains(secret),
                    "{} = {value} on `{}`",
                    attribute.key,
                    span.name
                );
            }
        }
    }
}

async fn otlp_http(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> Response {
    let key = headers
        .get("x-collector-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    received.2.lock().unwrap().push(key);
    let request = ExportTraceServiceRequest::decode(body).expect("protobuf export request");
    received.0.lock().unwrap().push(request);
    Response::builder()
        .header("content-type", "application/x-protobuf")
        .body(Body::empty())
        .unwrap()
}

/// gRPC over HTTP/2 without TLS (axum serves h2c): a length-prefixed message in, an empty
/// `ExportTraceServiceResponse` and `grpc-status: 0` trailers out.
async fn otlp_grpc(State(received): State<Received>, body: Bytes) -> Response {
    assert!(body.len() >= 5 && body[0] == 0, "uncompressed gRPC frame");
    let request = ExportTraceServiceRequest::decode(&body[5..]).expect("protobuf export request");
    received.0.lock().unwrap().push(request);
    received
        .1
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = futures_util::stream::iter([
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from_static(&[0; 5]))),
        Ok(hyper::body::Frame::trailers(trailers)),
    ]);
    Response::builder()
        .header("content-type", "application/grpc")
        .body(Body::new(http_body_util::StreamBody::new(frames)))
        .unwrap()
}

/// Starts a receiver on a free port: its base URL and what it receives.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(otlp_http))
        .route(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            axum::routing::post(otlp_grpc),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

async fn post_traced(gw: &Proc, body: &Value, trace: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .header("traceparent", traceparent(trace, CLIENT_SPAN))
        .header("tracestate", "vendor=opaque")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// An `api_base` nobody listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn spans_continue_the_client_trace_with_genai_attributes_over_http() {
    let (otlp, received) = receiver().await;
    let (a, b) = (mock_upstream(&[]), mock_upstream(&[]));
    let dead = format!(
        "  - model_name: primary\n    litellm_params: {{model: openai/dead-upstream, api_base: 'http://127.0.0.1:{}/v1', api_key: sk-fake}}\n    model_info: {{id: dead}}\n",
        closed_port()
    );
    let yaml = config(
        &[
            entry("direct", "a", &a, "", ""),
            dead,
            entry("backup", "b", &b, "", ""),
        ],
        "router_settings:\n  fallbacks: [{\"primary\": [\"backup\"]}]\n",
    );
    let gw = gateway(
        &yaml,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "switchyard-test"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=secret-123"),
        ],
    );

    // 1. A plain answer, in the client's trace.
    let mut body = chat_body("direct");
    body["max_tokens"] = json!(50);
    body["temperature"] = json!(0.5);
    let response = post_traced(&gw, &body, CLIENT_TRACE).await;
    assert_eq!(response.status(), 200);
    let request_id = header(&response, "x-request-id").to_owned();
    let answer: Value = response.json().await.unwrap();
    let seen = Mock(&a).last_request().await;
    let upstream_parent = seen["headers"]["traceparent"].as_str().unwrap().to_owned();
    assert_eq!(seen["headers"]["tracestate"], "vendor=opaque");

    let spans = received.trace(CLIENT_TRACE, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let server = one(&spans, SPAN_KIND_SERVER);
    let attempt = one(&spans, SPAN_KIND_CLIENT);
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN);
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(
        upstream_parent,
        format!("00-{CLIENT_TRACE}-{}-01", hex(&attempt.span_id)),
        "the upstream's parent is the attempt span, in the client's trace"
    );
    assert_eq!(server.name, "chat direct");
    assert_eq!(text(server, "gen_ai.operation.name"), "chat");
    assert_eq!(text(server, "gen_ai.provider.name"), "openai");
    assert_eq!(text(server, "gen_ai.system"), "openai");
    assert_eq!(text(server, "gen_ai.request.model"), "direct");
    assert_eq!(text(server, "gen_ai.response.model"), "a-upstream");
    assert_eq!(
        int(server, "gen_ai.usage.input_tokens"),
        answer["usage"]["prompt_tokens"].as_i64().unwrap()
    );
    assert_eq!(
        int(server, "gen_ai.usage.output_tokens"),
        answer["usage"]["completion_tokens"].as_i64().unwrap()
    );
    assert_eq!(int(server, "gen_ai.request.max_tokens"), 50);
    assert_eq!(
        attr(server, "gen_ai.request.temperature"),
        Some(&Any::DoubleValue(0.5))
    );
    match attr(server, "gen_ai.response.finish_reasons") {
        Some(Any::ArrayValue(reasons)) => assert_eq!(
            reasons.values[0].value,
            Some(Any::StringValue(
                answer["choices"][0]["finish_reason"]
                    .as_str()
                    .unwrap()
                    .into()
            ))
        ),
        other => panic!("finish reasons: {other:?}"),
    }
    assert_eq!(int(server, "http.response.status_code"), 200);
    assert_eq!(text(server, "switchyard.model_group"), "direct");
    assert_eq!(text(server, "switchyard.deployment_id"), "a");
    assert_eq!(text(server, "switchyard.request_id"), request_id);
    assert_eq!(text(server, "switchyard.key_alias"), "master_key");
    assert!(attr(server, "switchyard.cost_usd").is_some());
    assert_eq!(
        attr(server, "switchyard.cache_hit"),
        Some(&Any::BoolValue(false))
    );
    assert!(attr(server, "error.type").is_none());
    assert_eq!(attempt.name, "chat a-upstream");
    assert_eq!(text(attempt, "switchyard.deployment_id"), "a");
    assert_eq!(int(attempt, "switchyard.attempt"), 1);
    assert_eq!(int(attempt, "switchyard.retry"), 0);
    assert!(attr(attempt, "switchyard.fallback_reason").is_none());
    assert!(server.start_time_unix_nano <= attempt.start_time_unix_nano);
    assert!(attempt.end_time_unix_nano <= server.end_time_unix_nano);

    // 2. A fallback: the dead deployment, then the backup group, two attempts under one span.
    let fallback_trace = "0af7651916cd43dd8448eb211c80319c";
    let response = post_traced(&gw, &chat_body("primary"), fallback_trace).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-switchyard-attempts"), "2");
    let spans = received.trace(fallback_trace, 3).await;
    let server = one(&spans, SPAN_KIND_SERVER);
    assert_eq!(text(server, "gen_ai.request.model"), "primary");
    assert_eq!(text(server, "switchyard.model_group"), "backup");
    assert_eq!(int(server, "switchyard.attempts"), 2);
    let tried = attempts(&spans);
    assert_eq!(tried.len(), 2);
    assert!(tried.iter().all(|s| s.parent_span_id == server.span_id));
    assert_eq!(text(tried[0], "switchyard.deployment_id"), "dead");
    assert_eq!(text(tried[0], "error.type"), "connect_error");
    assert_eq!(
        tried[0].status.as_ref().map(|s| s.code),
        Some(2),
        "an error status"
    );
    assert_eq!(text(tried[1], "switchyard.deployment_id"), "b");
    assert_eq!(text(tried[1], "switchyard.model_group"), "backup");
    assert_eq!(
        text(tried[1], "switchyard.fallback_reason"),
        "connect_error"
    );
    assert!(attr(tried[1], "error.type").is_none());
    let seen = Mock(&b).last_request().await;
    assert_eq!(
        seen["headers"]["traceparent"],
        format!("00-{fallback_trace}-{}-01", hex(&tried[1].span_id))
    );

    // 3. A stream: tokens from the stream's usage, the attempt under the request span.
    let stream_trace = "11111111111111111111111111111111";
    let mut body = chat_body("direct");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = post_traced(&gw, &body, stream_trace).await;
    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.unwrap());
    let usage = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find_map(|e| e.get("usage").filter(|u| u.is_object()).cloned())
        .expect("a usage chunk");
    let spans = received.trace(stream_trace, 2).await;
    let server = one(&spans, SPAN_KIND_SERVER);
    let attempt = one(&spans, SPAN_KIND_CLIENT);
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(
        attr(server, "switchyard.stream"),
        Some(&Any::BoolValue(true))
    );
    assert_eq!(
        int(server, "gen_ai.usage.output_tokens"),
        usage["completion_tokens"].as_i64().unwrap()
    );
    assert!(attr(server, "gen_ai.response.finish_reasons").is_some());
    assert!(attr(server, "switchyard.time_to_first_token_ms").is_some());

    // 4. Without a traceparent, a new trace; the upstream still gets one.
    let response = post(&gw, &chat_body("direct")).await;
    assert_eq!(response.status(), 200);
    let seen = Mock(&a).last_request().await;
    let fresh = seen["headers"]["traceparent"].as_str().unwrap().to_owned();
    assert!(!fresh.contains(CLIENT_TRACE), "{fresh}");
    let spans = received.trace(&fresh[3..35], 2).await;
    assert!(one(&spans, SPAN_KIND_SERVER).parent_span_id.is_empty());

    // 5. A client that did not sample: the upstream gets the trace, unsampled; nothing is
    // exported (parentbased_always_on follows the caller).
    let unsampled_trace = "22222222222222222222222222222222";
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .header(
            "traceparent",
            format!("00-{unsampled_trace}-{CLIENT_SPAN}-00"),
        )
        .json(&chat_body("direct"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = Mock(&a).last_request().await;
    let propagated = seen["headers"]["traceparent"].as_str().unwrap().to_owned();
    assert!(
        propagated.starts_with(&format!("00-{unsampled_trace}-")) && propagated.ends_with("-00"),
        "{propagated}"
    );
    // A sampled request after it, once exported, shows the batcher has passed it by.
    let after = "33333333333333333333333333333333";
    assert_eq!(
        post_traced(&gw, &chat_body("direct"), after).await.status(),
        200
    );
    received.trace(after, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(received
        .spans()
        .iter()
        .all(|(_, s)| hex(&s.trace_id) != unsampled_trace));

    let all = received.spans();
    assert!(all.iter().all(|(service, _)| service == "switchyard-test"));
    assert_eq!(received.1.load(std::sync::atomic::Ordering::Relaxed), 0);
    // OTEL_EXPORTER_OTLP_HEADERS reach the collector.
    assert!(received.2.lock().unwrap().iter().all(|k| k == "secret-123"));
    assert_no_secret(&all);
    let metrics = metrics(&gw).await;
    assert!(
        metrics.contains("switchyard_trace_spans_dropped_total 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_grpc_exporter_reaches_a_grpc_receiver() {
    let (otlp, received) = receiver().await;
    let a = mock_upstream(&[]);
    let gw = gateway(
        &config(&[entry("direct", "a", &a, "", "")], ""),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let response = post_traced(&gw, &chat_body("direct"), CLIENT_TRACE).await;
    assert_eq!(response.status(), 200);
    let spans = received.trace(CLIENT_TRACE, 2).await;
    let server = one(&spans, SPAN_KIND_SERVER);
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN);
    assert_eq!(text(server, "gen_ai.request.model"), "direct");
    assert_eq!(one(&spans, SPAN_KIND_CLIENT).parent_span_id, server.span_id);
    assert!(received
        .spans()
        .iter()
        .all(|(service, _)| service == "switchyard"));
    assert_eq!(
        received.1.load(std::sync::atomic::Ordering::Relaxed),
        received.0.lock().unwrap().len(),
        "every export came over gRPC"
    );
}

#[tokio::test]
async fn a_dead_collector_costs_counted_spans_not_requests() {
    let a = mock_upstream(&[]);
    // Enabled by LiteLLM's callback; the endpoint is a port nobody listens on.
    let yaml = config(
        &[entry("direct", "a", &a, "", "")],
        "litellm_settings:\n  callbacks: [\"otel\"]\n",
    );
    let endpoint = format!("http://127.0.0.1:{}/v1/traces", closed_port());
    let gw = gateway(
        &yaml,
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    for _ in 0..5 {
        let started = Instant::now();
        let response = post_traced(&gw, &chat_body("direct"), CLIENT_TRACE).await;
        assert_eq!(response.status(), 200);
        // Milliseconds normally; the bound leaves room for a loaded test machine, and is far
        // below the export timeout a blocked request would wait out.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // Five requests, two spans each: all lost, all counted.
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = metrics(&gw).await;
        let dropped: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("switchyard_trace_spans_dropped_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if dropped >= 10 {
            assert!(metrics.contains("switchyard_trace_spans_exported_total 0"));
            break;
        }
        assert!(Instant::now() < until, "dropped {dropped}: {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A graceful stop flushes the log (a kill could lose its last lines).
    let log = gw.shutdown();
    assert!(log.contains("trace export failed"), "{log}");
}
