//! Hot reload through the real binary: `POST /config/reload` and SIGHUP swap the config while
//! traffic flows, with no failed request; kept deployments keep their cooldowns; a broken
//! file is refused with the message `switchyard check` prints and the old config keeps serving.

mod common;
mod routing;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use routing::*;
use serde_json::{json, Value};

async fn reload(gw: &Proc, key: &str) -> reqwest::Response {
    client()
        .post(format!("{}/config/reload", gw.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// Which deployments answer `group`, over `n` requests.
async fn served_by(gw: &Proc, group: &str, n: usize) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for _ in 0..n {
        let response = post(gw, &chat_body(group)).await;
        assert_eq!(response.status(), 200);
        ids.insert(header(&response, "x-switchyard-model-id").to_owned());
    }
    ids
}

#[tokio::test]
async fn reload_adds_removes_and_changes_deployments_while_traffic_flows() {
    let (a, b, c) = (mock_upstream(&[]), mock_upstream(&[]), mock_upstream(&[]));
    let flaky = mock_upstream(&[]);
    let settings = "router_settings:\n  allowed_fails: 0\n  cooldown_time: 60\n  num_retries: 1\n";
    let v1 = config(
        &[
            entry("chat", "a", &a, "", ""),
            entry("chat", "b", &b, "", ""),
            entry("flaky", "f1", &flaky, "", ""),
            entry("flaky", "f2", &b, "", ""),
        ],
        settings,
    );
    let path = write_config(&v1);
    let gw = serve_file(&path, &[], &[]);
    assert_eq!(
        served_by(&gw, "chat", 40).await,
        BTreeSet::from(["a".into(), "b".into()])
    );

    // Put f1 in cooldown: it fails, the retry goes to f2.
    Mock(&flaky)
        .set(json!({"fail_next": 100, "error_status": 500}))
        .await;
    let until = Instant::now() + Duration::from_secs(10);
    while deployment_health(&gw, "f1").await["state"] != "cooling_down" {
        assert!(Instant::now() < until, "f1 never cooled down");
        assert_eq!(post(&gw, &chat_body("flaky")).await.status(), 200);
    }

    // Traffic that runs through every reload below: not one request may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, sent, failed, url) =
            (stop.clone(), sent.clone(), failed.clone(), gw.url.clone());
        tokio::spawn(async move {
            let client = client();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let response = client
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(MASTER_KEY)
                    .json(&chat_body("chat"))
                    .send()
                    .await;
                sent.fetch_add(1, Ordering::Relaxed);
                if !matches!(&response, Ok(r) if r.status() == 200) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // v2: c added, b removed, a's weight changed (its id is model_info.id, so it is kept).
    let v2 = config(
        &[
            entry("chat", "a", &a, ", weight: 3", ""),
            entry("chat", "c", &c, "", ""),
            entry("flaky", "f1", &flaky, "", ""),
            entry("flaky", "f2", &b, "", ""),
        ],
        settings,
    );
    std::fs::write(&path, v2).unwrap();
    // Only the master key may reload.
    assert_eq!(reload(&gw, "sk-not-the-master").await.status(), 401);
    let response = reload(&gw, MASTER_KEY).await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["changes"]["added"], json!(["c"]), "{report}");
    assert_eq!(report["changes"]["removed"], json!(["b"]), "{report}");
    assert_eq!(report["changes"]["changed"], json!(["a"]), "{report}");
    assert_eq!(report["changes"]["unchanged"], 2, "{report}");
    assert_eq!(
        served_by(&gw, "chat", 80).await,
        BTreeSet::from(["a".into(), "c".into()])
    );
    // The kept deployment kept its cooldown.
    assert_eq!(deployment_health(&gw, "f1").await["state"], "cooling_down");

    // A broken file is refused with `switchyard check`'s message; the old config serves on.
    std::fs::write(
        &path,
        "model_list:\n  - model_name: chat\n    litellm_params: {model: nope/x}\n",
    )
    .unwrap();
    let checked = Command::new(BIN)
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!checked.status.success());
    let check_message = String::from_utf8_lossy(&checked.stderr);
    let check_message = check_message.trim().trim_start_matches("error: ");
    let response = reload(&gw, MASTER_KEY).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(check_message),
        "{message} / {check_message}"
    );
    assert_eq!(
        served_by(&gw, "chat", 80).await,
        BTreeSet::from(["a".into(), "c".into()])
    );

    // SIGHUP reloads too: a new group appears.
    let v3 = config(
        &[
            entry("chat", "a", &a, ", weight: 3", ""),
            entry("chat", "c", &c, "", ""),
            offline("fresh", "n1", "new here", "", ""),
        ],
        settings,
    );
    std::fs::write(&path, v3).unwrap();
    gw.signal("HUP");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let response = post(&gw, &chat_body("fresh")).await;
        if response.status() == 200 {
            break;
        }
        assert!(Instant::now() < until, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(
        sent > 20,
        "traffic flowed during the reloads ({sent} requests)"
    );
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during the reloads"
    );
}
