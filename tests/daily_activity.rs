//! LiteLLM's `/user/daily/activity` and `/team/daily/activity` through the real binary: the
//! day's sums equal the cost headers of the requests made, broken down by model group, provider
//! and key; a plain key sees its own user's activity only; CSV; bad dates are a clear 400.

mod common;
mod routing;

use std::time::{Duration, Instant};

use common::*;
use routing::*;
use serde_json::{json, Value};

async fn get(gw: &Proc, key: &str, path: &str) -> (u16, String) {
    let response = client()
        .get(format!("{}{path}", gw.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

async fn admin(gw: &Proc, method: reqwest::Method, path: &str, body: Value) -> Value {
    let response = client()
        .request(method, format!("{}{path}", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// A chat request; returns its cost in nano-dollars.
async fn chat(gw: &Proc, key: &str, model: &str) -> i64 {
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(&chat_body(model))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    nanos(
        response.headers()["x-litellm-response-cost"]
            .to_str()
            .unwrap(),
    )
}

fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn usd_nanos(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) * 1e9).round() as i64
}

#[tokio::test]
async fn the_days_sums_are_the_cost_headers_broken_down_by_model_and_key() {
    let gw = gateway(
        &config(
            &[
                offline(
                    "cheap",
                    "c1",
                    "a cheap answer",
                    "",
                    ", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002",
                ),
                offline(
                    "dear",
                    "d1",
                    "a dear answer of more words",
                    "",
                    ", input_cost_per_token: 0.00001, output_cost_per_token: 0.00003",
                ),
            ],
            "switchyard_spend: {flush_interval_ms: 50}\n",
        ),
        &[],
    );
    admin(
        &gw,
        reqwest::Method::POST,
        "/user/new",
        json!({"user_id": "u-day"}),
    )
    .await;
    admin(
        &gw,
        reqwest::Method::POST,
        "/team/new",
        json!({"team_id": "t-day"}),
    )
    .await;
    let made = admin(
        &gw,
        reqwest::Method::POST,
        "/key/generate",
        json!({"user_id": "u-day", "team_id": "t-day", "key_alias": "day-key"}),
    )
    .await;
    let key = made["key"].as_str().unwrap().to_owned();
    let (mut cheap, mut dear, mut master) = (0, 0, 0);
    for _ in 0..3 {
        cheap += chat(&gw, &key, "cheap").await;
    }
    dear += chat(&gw, &key, "dear").await;
    master += chat(&gw, MASTER_KEY, "cheap").await;
    assert!(cheap > 0 && dear > cheap / 3 && master > 0);

    let day = today();
    let path = format!("/user/daily/activity?start_date={day}&end_date={day}");
    // Rows are written off the request path: wait until all five are counted.
    let until = Instant::now() + Duration::from_secs(15);
    let all = loop {
        let (status, text) = get(&gw, MASTER_KEY, &path).await;
        assert_eq!(status, 200, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        if body["metadata"]["total_api_requests"] == 5 || Instant::now() > until {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(all["metadata"]["total_api_requests"], 5, "{all}");
    assert_eq!(
        usd_nanos(&all["metadata"]["total_spend"]),
        cheap + dear + master
    );
    assert_eq!(
        all["metadata"]["total_spend_nanos"],
        cheap + dear + master,
        "nano-dollar sums are exact"
    );
    let results = all["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{all}");
    assert_eq!(results[0]["date"], day.as_str());
    let breakdown = &results[0]["breakdown"];
    assert_eq!(
        breakdown["model_groups"]["cheap"]["metrics"]["spend_nanos"],
        cheap + master
    );
    assert_eq!(
        breakdown["model_groups"]["dear"]["metrics"]["api_requests"],
        1
    );
    assert_eq!(
        breakdown["providers"]["openai"]["metrics"]["api_requests"],
        5
    );
    let token = made["token"]
        .as_str()
        .or_else(|| made["key_name"].as_str())
        .map(str::to_owned);
    let keys = breakdown["api_keys"].as_object().unwrap();
    let (hash, entry) = keys
        .iter()
        .find(|(_, v)| v["metadata"]["key_alias"] == "day-key")
        .unwrap_or_else(|| panic!("the key's entry: {breakdown}"));
    if let Some(token) = token.filter(|t| t.len() == 64) {
        assert_eq!(hash, &token);
    }
    assert_eq!(entry["metadata"]["team_id"], "t-day");
    assert_eq!(entry["metrics"]["spend_nanos"], cheap + dear);
    assert_eq!(
        keys["unattributed"]["metrics"]["spend_nanos"], master,
        "the master key's spend is unattributed"
    );

    // One user: the key's requests only; a model filter narrows to one group.
    let (_, text) = get(&gw, MASTER_KEY, &format!("{path}&user_id=u-day")).await;
    let mine: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(mine["metadata"]["total_api_requests"], 4, "{mine}");
    let (_, text) = get(&gw, MASTER_KEY, &format!("{path}&model=dear")).await;
    let dear_only: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dear_only["metadata"]["total_spend_nanos"], dear);

    // The plain key reads its own user's activity, and no one else's.
    let (status, text) = get(&gw, &key, &path).await;
    assert_eq!(status, 200, "{text}");
    let own: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(own["metadata"]["total_api_requests"], 4, "{own}");
    let (status, _) = get(&gw, &key, &format!("{path}&user_id=someone-else")).await;
    assert_eq!(status, 403);
    let (status, _) = get(
        &gw,
        &key,
        &format!("/team/daily/activity?start_date={day}&end_date={day}"),
    )
    .await;
    assert_eq!(status, 403, "teams are for viewers and admins");

    // The team view, and CSV: one line per day, group, provider and key.
    let (status, text) = get(
        &gw,
        MASTER_KEY,
        &format!("/team/daily/activity?start_date={day}&end_date={day}&team_ids=t-day"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let team: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(team["metadata"]["total_spend_nanos"], cheap + dear);
    let (status, text) = get(&gw, MASTER_KEY, &format!("{path}&format=csv")).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("date,model_group,model,provider,api_key,"),
        "{text}"
    );
    assert_eq!(
        lines.len(),
        4,
        "cheap by key, cheap by master, dear by key: {text}"
    );
    assert!(
        lines.iter().any(|l| l.contains(",day-key,t-day,")),
        "{text}"
    );

    // An empty range is empty, not an error; a missing or malformed date is a 400 naming it.
    let (status, text) = get(
        &gw,
        MASTER_KEY,
        "/user/daily/activity?start_date=2001-01-01&end_date=2001-01-02",
    )
    .await;
    assert_eq!(status, 200);
    let empty: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(empty["results"], json!([]));
    assert_eq!(empty["metadata"]["total_api_requests"], 0);
    for (query, param) in [
        ("start_date=2026-01-01", "end_date"),
        ("start_date=yesterday&end_date=2026-01-01", "start_date"),
        (
            "start_date=2026-01-01&end_date=2026-01-02&page_size=0",
            "page_size",
        ),
    ] {
        let (status, text) = get(&gw, MASTER_KEY, &format!("/user/daily/activity?{query}")).await;
        assert_eq!(status, 400, "{query}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["error"]["param"], param, "{text}");
    }
}
