//! Rate limits through the real binary: exact under concurrency, all-or-nothing across key,
//! team and end user, tokens reserved and reconciled, parallel requests, OpenAI's headers — on
//! one instance, and on two sharing PostgreSQL and Redis.

mod common;
mod routing;

use std::time::Duration;

use common::pg::postgres_url;
use common::*;
use routing::*;
use serde_json::{json, Value};

async fn admin(gw: &Proc, path: &str, body: Value) -> Value {
    let response = client()
        .post(format!("{}{path}", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn new_key(gw: &Proc, body: Value) -> String {
    admin(gw, "/key/generate", body).await["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn chat(url: &str, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Sends `n` requests at once, spread over `urls`; the statuses.
async fn burst(urls: &[String], key: &str, body: Value, n: usize) -> Vec<u16> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (url, key, body) = (urls[i % urls.len()].clone(), key.to_owned(), body.clone());
            tokio::spawn(async move { chat(&url, &key, &body).await.status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

fn offline_config() -> String {
    config(&[offline("chat", "c1", "hello there", "", "")], "")
}

#[tokio::test]
async fn rpm_limit_10_lets_exactly_10_of_30_concurrent_through() {
    let gw = gateway(&offline_config(), &[]);
    let key = new_key(&gw, json!({"rpm_limit": 10})).await;
    let statuses = burst(std::slice::from_ref(&gw.url), &key, chat_body("chat"), 30).await;
    assert_eq!(count(&statuses, 200), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 20, "{statuses:?}");

    // The 429 is OpenAI-shaped, names the limit, and carries the reset headers.
    let response = chat(&gw.url, &key, &chat_body("chat")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "x-ratelimit-limit-requests"), "10");
    assert_eq!(header(&response, "x-ratelimit-remaining-requests"), "0");
    assert!(!header(&response, "x-ratelimit-reset-requests").is_empty());
    let retry: u64 = header(&response, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("10 requests per minute"));

    // Another key is not affected; successful answers carry the key's headers.
    let other = new_key(&gw, json!({"rpm_limit": 5, "tpm_limit": 1000})).await;
    let response = chat(&gw.url, &other, &chat_body("chat")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ratelimit-limit-requests"), "5");
    assert_eq!(header(&response, "x-ratelimit-remaining-requests"), "4");
    assert_eq!(header(&response, "x-ratelimit-limit-tokens"), "1000");
}

#[tokio::test]
async fn team_and_end_user_limits_hold_and_nothing_is_taken_when_one_trips() {
    let gw = gateway(&offline_config(), &[]);
    let team = admin(&gw, "/team/new", json!({"rpm_limit": 3})).await;
    let key = new_key(&gw, json!({"team_id": team["team_id"], "rpm_limit": 100})).await;
    let statuses = burst(std::slice::from_ref(&gw.url), &key, chat_body("chat"), 6).await;
    assert_eq!(
        count(&statuses, 200),
        3,
        "the team's 3 rpm is the tightest: {statuses:?}"
    );
    let response = chat(&gw.url, &key, &chat_body("chat")).await;
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"].as_str().unwrap().contains("team"),
        "{error}"
    );

    admin(
        &gw,
        "/customer/new",
        json!({"user_id": "cust-9", "rpm_limit": 2}),
    )
    .await;
    let free = new_key(&gw, json!({})).await;
    let mut body = chat_body("chat");
    body["user"] = json!("cust-9");
    let statuses = burst(std::slice::from_ref(&gw.url), &free, body, 5).await;
    assert_eq!(count(&statuses, 200), 2, "{statuses:?}");
    // Other end users of the same key are not limited by cust-9's limit.
    let mut body = chat_body("chat");
    body["user"] = json!("cust-10");
    assert_eq!(chat(&gw.url, &free, &body).await.status(), 200);
}

#[tokio::test]
async fn tokens_are_reserved_then_reconciled_with_reported_usage() {
    // The mock answers 3 completion tokens; the prompt is about 250 tokens (1000 bytes).
    let gw = gateway(&offline_config(), &[]);
    let key = new_key(&gw, json!({"tpm_limit": 600})).await;
    let long = "x".repeat(1000);
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": long}]});
    // Reserved ~250 each: 2 fit, the third does not (600 - 2*253 < 250).
    assert_eq!(chat(&gw.url, &key, &body).await.status(), 200);
    assert_eq!(chat(&gw.url, &key, &body).await.status(), 200);
    let response = chat(&gw.url, &key, &body).await;
    assert_eq!(response.status(), 429);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens per minute"),
        "{error}"
    );
    // A small request still fits: what was reserved beyond the reported usage was given back.
    let small = chat(&gw.url, &key, &chat_body("chat")).await;
    assert_eq!(small.status(), 200);
}

#[tokio::test]
async fn max_parallel_requests_counts_requests_in_flight() {
    let mock = mock_upstream(&["--latency-ms", "400"]);
    let gw = gateway(&config(&[entry("slow", "s1", &mock, "", "")], ""), &[]);
    let key = new_key(&gw, json!({"max_parallel_requests": 2})).await;
    let statuses = burst(std::slice::from_ref(&gw.url), &key, chat_body("slow"), 5).await;
    assert_eq!(count(&statuses, 200), 2, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 3, "{statuses:?}");
    // Once they finished, the slots are free again.
    assert_eq!(chat(&gw.url, &key, &chat_body("slow")).await.status(), 200);
}

#[tokio::test]
async fn two_instances_sharing_postgres_and_redis_hold_one_limit_and_one_revocation() {
    // A schema of its own, so runs never see each other's keys.
    let schema = format!("sy_two_{}", std::process::id());
    let url = format!("{}?options=-c%20search_path%3D{schema}", postgres_url());
    let setup = std::process::Command::new("psql")
        .args([
            &postgres_url(),
            "-c",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        ])
        .output()
        .expect("psql");
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let yaml = format!(
        "model_list:\n{}router_settings:\n  redis_url: redis://127.0.0.1:6379\ngeneral_settings:\n  master_key: {MASTER_KEY}\n  database_url: \"{url}\"\n",
        offline("chat", "c1", "hello", "", "")
    );
    // This test is about the shared count, not the fallback: on a loaded CI machine a Redis
    // call can take longer than the default 75 ms, and the limits would (correctly) fall back
    // to each instance.
    let patient = [("SWITCHYARD_REDIS_LIMIT_TIMEOUT_MS", "3000")];
    let a = gateway(&yaml, &patient);
    let b = gateway(&yaml, &patient);
    let key = new_key(&a, json!({"rpm_limit": 50})).await;
    // b learns of the key within a second.
    let until = std::time::Instant::now() + Duration::from_secs(2);
    while chat(&b.url, &key, &chat_body("chat")).await.status() == 401 {
        assert!(
            std::time::Instant::now() < until,
            "instance b never saw the key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One request already went through b: 49 more fit, across both instances.
    let statuses = burst(
        &[a.url.clone(), b.url.clone()],
        &key,
        chat_body("chat"),
        200,
    )
    .await;
    assert_eq!(count(&statuses, 200), 49, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 151);

    // Rate-limit headroom on /metrics is the fleet's: 20 requests through a, read on b, whose
    // own (unused) fallback buckets would say 60. The bucket refills one a second meanwhile.
    let watched = new_key(&a, json!({"rpm_limit": 60, "key_alias": "watched"})).await;
    let until = std::time::Instant::now() + Duration::from_secs(2);
    while chat(&b.url, &watched, &chat_body("chat")).await.status() == 401 {
        assert!(std::time::Instant::now() < until, "b never saw the key");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..19 {
        assert_eq!(
            chat(&a.url, &watched, &chat_body("chat")).await.status(),
            200
        );
    }
    let text = client()
        .get(format!("{}/metrics", b.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let left: f64 = text
        .lines()
        .find(|l| {
            l.starts_with("switchyard_key_rate_limit_remaining_requests{key_alias=\"watched\"}")
        })
        .and_then(|l| l.rsplit_once(' '))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or_else(|| panic!("no headroom gauge for the key:\n{text}"));
    assert!((40.0..=45.0).contains(&left), "{left}");

    // Deleted on a, refused by b within one second.
    admin(&a, "/key/delete", json!({"keys": [key]})).await;
    let deleted = std::time::Instant::now();
    loop {
        let status = chat(&b.url, &key, &chat_body("chat")).await.status();
        if status == 401 {
            break;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(1),
            "b still accepted the deleted key"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::process::Command::new("psql")
        .args([
            &postgres_url(),
            "-c",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        ])
        .output();
}

#[tokio::test]
async fn a_database_outage_keeps_cached_keys_working_and_management_answers_503() {
    let schema = format!("sy_down_{}", std::process::id());
    let psql = |sql: String| {
        let out = std::process::Command::new("psql")
            .args([&postgres_url(), "-c", &sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ));
    let url = format!("{}?options=-c%20search_path%3D{schema}", postgres_url());
    let yaml = format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER_KEY}\n  database_url: \"{url}\"\n",
        offline("chat", "c1", "hello", "", "")
    );
    let gw = gateway(&yaml, &[]);
    let key = new_key(&gw, json!({"models": ["chat"]})).await;
    // The database loses its tables (as good as down for the gateway's queries).
    psql(format!("DROP SCHEMA {schema} CASCADE"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(chat(&gw.url, &key, &chat_body("chat")).await.status(), 200);
    let response = client()
        .post(format!("{}/key/generate", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert!(
        !error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("postgresql://"),
        "{error}"
    );
    let ready: Value = client()
        .get(format!("{}/health/readiness", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["db"], "unreachable", "{ready}");
}
