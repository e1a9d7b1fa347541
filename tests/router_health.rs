//! `GET /health` and background health checks, through the real binary.

mod common;
mod routing;

use std::time::{Duration, Instant};

use common::*;
use routing::*;
use serde_json::{json, Value};

async fn wait_for(gw: &Proc, id: &str, healthy: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = deployment_health(gw, id).await;
        if state["health_check"]["healthy"] == healthy {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never became healthy={healthy}: {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn background_checks_take_deployments_out_and_back_in() {
    let sick = mock_upstream(&["--error-rate", "1", "--error-status", "503"]);
    let well = mock_upstream(&[]);
    let gw = gateway(
        &config(
            &[
                entry("g", "sick", &sick, "", ""),
                entry("g", "well", &well, "", ""),
                offline("offline", "offline-1", "hi", "", ""),
            ],
            "",
        )
        .replace(
            "general_settings:\n",
            "general_settings:\n  background_health_checks: true\n  health_check_interval: 0.3\n",
        ),
        &[],
    );
    let state = wait_for(&gw, "sick", false).await;
    assert_eq!(state["state"], "unhealthy", "{state}");
    for _ in 0..20 {
        let response = post(&gw, &chat_body("g")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-switchyard-model-id"), "well");
    }
    Mock(&sick).set(json!({"error_rate": 0.0})).await;
    let state = wait_for(&gw, "sick", true).await;
    assert_eq!(state["state"], "healthy", "{state}");
    let mut served_by_sick = 0;
    for _ in 0..40 {
        let response = post(&gw, &chat_body("g")).await;
        served_by_sick += usize::from(header(&response, "x-switchyard-model-id") == "sick");
    }
    assert!(served_by_sick > 0, "back in rotation");
    // The health check itself was a real request to the upstream.
    let checks = Mock(&well).requests().await;
    assert!(
        checks.iter().any(|r| r["body"]["max_tokens"] == 1),
        "{checks:?}"
    );
}

#[tokio::test]
async fn health_reports_every_deployment_without_secrets() {
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &config(
            &[
                entry("g", "a", &mock, ", rpm: 100, region_name: eu, order: 1", ""),
                offline("offline", "offline-1", "hi", "", ""),
            ],
            "",
        ),
        &[],
    );
    let response = client()
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "like LiteLLM, /health needs a key");
    assert_eq!(post(&gw, &chat_body("g")).await.status(), 200);

    let report = health(&gw).await;
    assert_eq!(report["healthy_count"], 2, "{report}");
    assert_eq!(report["unhealthy_count"], 0);
    assert_eq!(report["routing_strategy"], "simple-shuffle");
    let a = deployment_health(&gw, "a").await;
    assert_eq!(a["model_group"], "g");
    assert_eq!(a["state"], "healthy");
    assert_eq!(a["api_base"], format!("{}/v1", mock.url));
    assert_eq!(a["rpm"], json!({"used": 1, "limit": 100}));
    assert_eq!(a["region"], "eu");
    assert_eq!(a["order"], 1);
    assert_eq!(a["successes"], 1);
    assert!(a["latency_ms"].as_f64().unwrap() > 0.0);
    let offline = deployment_health(&gw, "offline-1").await;
    assert_eq!(offline["api_base"], "mock_response");
    let text = report.to_string();
    assert!(
        !text.contains("sk-fake") && !text.contains(MASTER_KEY),
        "{text}"
    );

    let only_g = client()
        .get(format!("{}/health?model=g", gw.url))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(only_g["healthy_count"], 1);

    let text = metrics(&gw).await;
    assert_eq!(
        metric(&text, "switchyard_deployment_state", "deployment=\"a\""),
        0.0
    );
    assert_eq!(
        metric(
            &text,
            "switchyard_deployment_routed_total",
            "deployment=\"a\""
        ),
        1.0
    );
}
