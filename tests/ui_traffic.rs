//! The dashboard through the real binary: `GET /ui/api/traffic` counts the model requests made
//! (successes and upstream failures, per model group and per deployment) with their error rate
//! and latency quantiles; it needs an admin or viewer key (401 without a key, 403 for a plain
//! key); the page and its files are served from the binary with a strict CSP.

mod common;
mod routing;

use common::*;
use routing::*;
use serde_json::{json, Value};

async fn traffic(gw: &Proc, key: Option<&str>, window: &str) -> (u16, Value) {
    let mut request = client().get(format!("{}/ui/api/traffic?window={window}", gw.url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no series {name} in {list}"))
}

async fn admin(gw: &Proc, path: &str, body: Value) -> Value {
    let response = client()
        .post(format!("{}{path}", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn traffic_counts_requests_and_errors_per_group_and_deployment() {
    let good = mock_upstream(&[]);
    let bad = mock_upstream(&[]);
    Mock(&bad)
        .set(json!({"error_rate": 1.0, "error_status": 500}))
        .await;
    let gw = gateway(
        &config(
            &[
                entry("good", "good-1", &good, "", ""),
                entry("bad", "bad-1", &bad, "", ""),
            ],
            "router_settings:\n  num_retries: 0\n  disable_cooldowns: true\n",
        ),
        &[],
    );

    for _ in 0..5 {
        let response = post(&gw, &chat_body("good")).await;
        assert_eq!(response.status(), 200);
    }
    for _ in 0..3 {
        let response = post(&gw, &chat_body("bad")).await;
        assert!(response.status().is_server_error(), "{}", response.status());
    }
    // A body that does not parse names no model: not the traffic of any group.
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"model": "good"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // Not model traffic: never a series.
    let _ = client()
        .get(format!("{}/health/liveliness", gw.url))
        .send()
        .await;

    for window in ["1h", "1d"] {
        let (status, body) = traffic(&gw, Some(MASTER_KEY), window).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["window"], window);
        assert_eq!(body["scope"], "this instance");
        let groups = &body["model_groups"];
        assert_eq!(groups.as_array().unwrap().len(), 2, "{groups}");
        let g = find(groups, "good");
        assert_eq!(
            (g["requests"].as_u64(), g["errors"].as_u64()),
            (Some(5), Some(0))
        );
        assert_eq!(g["error_rate"], 0.0);
        let p50 = g["p50_ms"].as_f64().unwrap();
        let p99 = g["p99_ms"].as_f64().unwrap();
        assert!(p50 > 0.0 && p50 <= p99 && p99 < 30_000.0, "{g}");
        let b = find(groups, "bad");
        assert_eq!(
            (b["requests"].as_u64(), b["errors"].as_u64()),
            (Some(3), Some(3))
        );
        assert_eq!(b["error_rate"], 1.0);
        let points = b["points"].as_array().unwrap();
        assert_eq!(points.len(), if window == "1h" { 60 } else { 288 });
        let summed: u64 = points.iter().map(|p| p["requests"].as_u64().unwrap()).sum();
        assert_eq!(summed, 3);
        let seconds = if window == "1h" { 3600.0 } else { 86_400.0 };
        assert!((b["rps"].as_f64().unwrap() - 3.0 / seconds).abs() < 1e-9);

        let deployments = &body["deployments"];
        let d = find(deployments, "good-1");
        assert_eq!(d["model_group"], "good");
        assert_eq!(d["provider"], "openai");
        assert_eq!(d["requests"], 5);
        let d = find(deployments, "bad-1");
        assert_eq!(
            (d["requests"].as_u64(), d["errors"].as_u64()),
            (Some(3), Some(3))
        );
    }

    let (status, body) = traffic(&gw, Some(MASTER_KEY), "1w").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "window");
}

#[tokio::test]
async fn traffic_needs_an_admin_or_viewer_key_and_the_page_is_served() {
    let gw = gateway(&config(&[offline("m", "m1", "hi", "", "")], ""), &[]);
    let (status, body) = traffic(&gw, None, "1h").await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = traffic(&gw, Some("sk-wrong"), "1h").await;
    assert_eq!(status, 401);

    let plain = admin(&gw, "/key/generate", json!({"key_alias": "plain"})).await;
    let (status, body) = traffic(&gw, plain["key"].as_str(), "1h").await;
    assert_eq!(status, 403, "{body}");

    admin(
        &gw,
        "/user/new",
        json!({"user_id": "viewer", "user_role": "proxy_admin_viewer"}),
    )
    .await;
    let viewer = admin(&gw, "/key/generate", json!({"user_id": "viewer"})).await;
    let (status, body) = traffic(&gw, viewer["key"].as_str(), "1h").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model_groups"], json!([]));

    // The page and its files need no key (they hold no data) and load nothing from elsewhere.
    for (path, kind) in [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let response = client()
            .get(format!("{}{path}", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
        let text = response.text().await.unwrap();
        assert!(!text.contains("http://") || path.ends_with(".js"), "{path}");
        assert!(
            !text.contains("https://"),
            "{path} loads something from elsewhere"
        );
        assert!(!text.contains(MASTER_KEY));
    }
}
