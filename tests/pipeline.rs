//! The request pipeline through the real binary: every request is reported exactly once, by
//! the finished event (seen here in the access log and the metrics), with the caller named but
//! never its key; streams report when they end or when the client leaves; a simulated failure
//! leaves deployment health alone; SIGTERM drains a stream in flight.

mod common;
mod routing;

use std::time::{Duration, Instant};

use common::*;
use routing::*;
use serde_json::{json, Value};

/// The access lines of a gateway's log (`RUST_LOG=info`, text format).
fn access_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" INFO request request_id="))
        .collect()
}

fn line_for<'a>(log: &'a str, request_id: &str) -> &'a str {
    let lines: Vec<&str> = access_lines(log)
        .into_iter()
        .filter(|l| {
            l.contains(&format!("request_id=\"{request_id}\""))
                || l.contains(&format!("request_id={request_id}"))
        })
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one finished event for {request_id}:\n{log}"
    );
    lines[0]
}

#[tokio::test]
async fn the_finished_event_names_the_caller_and_what_served_never_the_key() {
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &config(&[entry("chat", "d1", &mock, "", "")], ""),
        &[("RUST_LOG", "info")],
    );
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .header("x-request-id", "req-whole-1")
        .json(&json!({
            "model": "chat",
            "messages": [{"role": "user", "content": "hi"}],
            "user": "end-user-7",
            "metadata": {"feature": "web_chat"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-request-id"), "req-whole-1");

    // A refused key is reported too, by the edge, with no caller.
    let refused = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth("sk-wrong-key-123")
        .header("x-request-id", "req-refused-1")
        .json(&chat_body("chat"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // An unknown model: reported by the pipeline (caller known), no deployment.
    let unknown = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .header("x-request-id", "req-unknown-1")
        .json(&chat_body("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let text = metrics(&gw).await;
    let log = gw.shutdown();
    assert!(
        !log.contains(MASTER_KEY),
        "the master key leaked into the log"
    );
    assert!(!log.contains("sk-wrong-key-123"), "a presented key leaked");
    assert!(!log.contains("sk-fake"), "the upstream key leaked");

    let whole = line_for(&log, "req-whole-1");
    for needle in [
        "caller=\"master_key\"",
        "model_group=\"chat\"",
        "deployment=\"d1\"",
        "status=200",
        "outcome=\"answered\"",
        "end_user=\"end-user-7\"",
        "feature=\"web_chat\"",
        "prompt_tokens=",
        "attempts=1",
    ] {
        assert!(whole.contains(needle), "{needle} missing in: {whole}");
    }
    let refused = line_for(&log, "req-refused-1");
    assert!(refused.contains("status=401"), "{refused}");
    assert!(!refused.contains("caller="), "{refused}");
    let unknown = line_for(&log, "req-unknown-1");
    assert!(
        unknown.contains("status=404") && unknown.contains("caller=\"master_key\""),
        "{unknown}"
    );
    assert!(!unknown.contains("deployment="), "{unknown}");

    assert_eq!(
        metric(&text, "switchyard_requests_total", "status_class=\"2xx\""),
        1.0
    );
    assert_eq!(
        metric(&text, "switchyard_rejected_total", "status=\"401\""),
        1.0
    );
    assert_eq!(
        metric(&text, "switchyard_rejected_total", "status=\"404\""),
        1.0
    );
}

#[tokio::test]
async fn a_stream_reports_at_its_end_and_when_the_client_leaves() {
    let mock = mock_upstream(&["--chunk-delay-ms", "200"]);
    let gw = gateway(
        &config(&[entry("chat", "d1", &mock, "", "")], ""),
        &[("RUST_LOG", "info")],
    );
    // A whole stream: reported once it ended, with usage and time to first token.
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .header("x-request-id", "req-stream-done")
        .json(&json!({"model": "chat", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"));

    // An abandoned stream: the client reads the head and one chunk, then goes away.
    let mut response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .header("x-request-id", "req-stream-left")
        .json(&json!({"model": "chat", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap();
    assert!(first.is_some());
    drop(response);
    // The gateway notices on its next write.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let text = metrics(&gw).await;
    let log = gw.shutdown();
    let done = line_for(&log, "req-stream-done");
    for needle in [
        "outcome=\"answered\"",
        "stream=true",
        "ttft_ms=",
        "completion_tokens=",
        "deployment=\"d1\"",
    ] {
        assert!(done.contains(needle), "{needle} missing in: {done}");
    }
    let left = line_for(&log, "req-stream-left");
    for needle in [
        "outcome=\"abandoned\"",
        "status=499",
        "stream=true",
        "deployment=\"d1\"",
        "caller=\"master_key\"",
    ] {
        assert!(left.contains(needle), "{needle} missing in: {left}");
    }
    assert_eq!(
        metric(
            &text,
            "switchyard_streams_cancelled_total",
            "deployment=\"d1\""
        ),
        1.0
    );
}

#[tokio::test]
async fn mock_testing_fallbacks_leaves_deployment_health_untouched() {
    let (a, b) = (mock_upstream(&[]), mock_upstream(&[]));
    let gw = gateway(
        &config(
            &[
                entry("primary", "a", &a, "", ""),
                entry("backup", "b", &b, "", ""),
            ],
            "router_settings:\n  allowed_fails: 0\n  fallbacks: [{\"primary\": [\"backup\"]}]\n",
        ),
        &[],
    );
    for _ in 0..3 {
        let mut body = chat_body("primary");
        body["mock_testing_fallbacks"] = json!(true);
        let response = post(&gw, &body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-switchyard-model-group"), "backup");
    }
    assert!(
        Mock(&a).requests().await.is_empty(),
        "the primary was never called"
    );
    let primary = deployment_health(&gw, "a").await;
    assert_eq!(primary["state"], "healthy", "{primary}");
    assert_eq!(primary["recent_failures"], 0, "{primary}");
    // And it still serves at once.
    let response = post(&gw, &chat_body("primary")).await;
    assert_eq!(header(&response, "x-switchyard-model-id"), "a");
}

#[tokio::test]
async fn client_routing_controls_pass_the_policy_stage() {
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &config(
            &[entry("chat", "d1", &mock, "", "")],
            "switchyard_routing:\n  max_request_retries: 1\n",
        ),
        &[],
    );
    // An unknown fallback group is a 400 naming it.
    let mut body = chat_body("chat");
    body["fallbacks"] = json!(["chat", "ghost"]);
    let response = post(&gw, &body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "fallbacks[1]");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ghost"));

    // num_retries above the cap is lowered to it: 1 retry, so 2 calls, not 11.
    Mock(&mock)
        .set(json!({"fail_next": 5, "error_status": 500}))
        .await;
    let mut body = chat_body("chat");
    body["num_retries"] = json!(10);
    let response = post(&gw, &body).await;
    assert_eq!(response.status(), 502);
    assert_eq!(header(&response, "x-switchyard-attempts"), "2");
    assert_eq!(Mock(&mock).requests().await.len(), 2);
}

/// A gateway in front of a mock that waits `chunk_delay_ms` between stream events, and a
/// stream request in flight against it (its whole body, once it ends).
fn stream_in_flight(
    chunk_delay_ms: &str,
    drain: &str,
) -> (Proc, Proc, tokio::task::JoinHandle<String>) {
    let mock = mock_upstream(&["--chunk-delay-ms", chunk_delay_ms]);
    let path = write_config(&config(&[entry("chat", "d1", &mock, "", "")], ""));
    let gw = serve_file(&path, &["--drain-timeout", drain], &[]);
    let url = gw.url.clone();
    let stream = tokio::spawn(async move {
        let response = client()
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(MASTER_KEY)
            .json(&json!({"model": "chat", "stream": true,
                "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    });
    (mock, gw, stream)
}

/// A SIGTERM or SIGHUP sent the moment the gateway says it listens reaches its handlers: SIGTERM
/// is a graceful shutdown (logged, exit 0, the log flushed), SIGHUP a reload, never the default
/// action of killing the process.
#[test]
fn signals_sent_right_after_start_are_handled() {
    let path = write_config(&config(&[offline("chat", "c1", "hi", "", "")], ""));
    for round in 0..5 {
        let gw = serve_file(&path, &[], &[]);
        gw.signal("HUP");
        let mut gw = gw;
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            gw.wait_exit(Duration::from_millis(10)).is_none(),
            "round {round}: SIGHUP killed the gateway"
        );
        gw.signal("TERM");
        let status = gw
            .wait_exit(Duration::from_secs(10))
            .expect("exits after SIGTERM");
        assert!(status.success(), "round {round}: {status:?}");
        let log = gw.stop();
        assert!(log.contains("shutting down"), "round {round}:\n{log}");
        assert!(log.contains("SIGHUP: reloading"), "round {round}:\n{log}");
    }
}

#[tokio::test]
async fn sigterm_drains_a_stream_in_flight_then_exits() {
    // A stream that takes about 1.5 s: SIGTERM arrives in the middle, the drain lets it end.
    let (_mock, mut gw, stream) = stream_in_flight("150", "10");
    tokio::time::sleep(Duration::from_millis(400)).await;
    gw.signal("TERM");
    let body = stream.await.unwrap();
    assert!(
        body.ends_with("data: [DONE]\n\n"),
        "the stream finished: {body}"
    );
    assert!(!body.contains("\"error\""), "{body}");
    let status = gw
        .wait_exit(Duration::from_secs(5))
        .expect("exits once drained");
    assert!(status.success(), "{status:?}");

    // With a drain time shorter than the stream, the stream is cut with an error event.
    let (_slow, mut gw, stream) = stream_in_flight("1000", "0.5");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    gw.signal("TERM");
    let body = stream.await.unwrap();
    assert!(
        body.contains("shutting down"),
        "cut with an error event: {body}"
    );
    assert!(!body.contains("[DONE]"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        gw.wait_exit(Duration::from_secs(8)).is_some(),
        "exits after the cut"
    );
}
