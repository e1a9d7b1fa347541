//! Budgets through the real binary: a key stops after the requests that spent its budget, with
//! LiteLLM's error; 50 requests at once on a $0.10 budget overshoot it by at most one request, on
//! one instance and on two sharing PostgreSQL and Redis.

mod common;
mod routing;

use common::pg::PgSchema;
use common::*;
use routing::*;
use serde_json::{json, Value};

/// A deployment with a price: a dollar a thousand prompt tokens, two a thousand completion ones.
fn priced_config() -> String {
    config(
        &[offline(
            "chat",
            "c1",
            "hello there from the budget test",
            "",
            ", input_cost_per_token: 0.001, output_cost_per_token: 0.002",
        )],
        "",
    )
}

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

/// One request: its status, its cost in nano-dollars (from `x-litellm-response-cost`), its body.
async fn spend(gw: &Proc, key: &str, body: &Value) -> (u16, i64, Value) {
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let cost = response
        .headers()
        .get("x-litellm-response-cost")
        .map(|v| nanos(v.to_str().unwrap()))
        .unwrap_or(0);
    (status, cost, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_key_stops_after_the_requests_that_spent_its_budget() {
    let gw = gateway(&priced_config(), &[]);
    let key = new_key(&gw, json!({"max_budget": 0.05})).await;
    let body = json!({"model": "chat", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]});
    let (mut spent, mut largest, mut answered) = (0, 0, 0);
    let refusal = loop {
        let (status, cost, body) = spend(&gw, &key, &body).await;
        if status != 200 {
            break (status, body);
        }
        assert!(cost > 0, "every answer has a cost");
        spent += cost;
        largest = largest.max(cost);
        answered += 1;
        assert!(answered < 1000, "the budget never stopped the key");
    };
    assert_eq!(refusal.0, 429, "{}", refusal.1);
    assert_eq!(
        refusal.1["error"]["type"], "budget_exceeded",
        "{}",
        refusal.1
    );
    let message = refusal.1["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Budget has been exceeded! Current cost: ")
            && message.ends_with(", Max budget: 0.05"),
        "{message}"
    );
    assert!(
        spent >= 50_000_000,
        "stopped before the budget was spent: {spent}"
    );
    assert!(
        spent < 50_000_000 + largest,
        "overshot by more than a request: {spent}"
    );
    // The master key is not bound by the key's budget.
    assert_eq!(post(&gw, &body).await.status(), 200);
}

#[tokio::test]
async fn fifty_requests_at_once_overshoot_a_budget_by_at_most_one_request() {
    // An upstream that takes 200 ms: the 50 requests are all in flight together.
    let mock = mock_upstream(&["--latency-ms", "200"]);
    let gw = gateway(
        &config(
            &[format!(
                "  - model_name: chat\n    litellm_params: {{model: openai/slow, api_base: {}/v1, api_key: sk-up}}\n    model_info: {{id: slow, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}\n",
                mock.url
            )],
            "",
        ),
        &[],
    );
    let key = new_key(&gw, json!({"max_budget": 0.10})).await;
    let body = json!({"model": "chat", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]});
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (url, key, body) = (gw.url.clone(), key.clone(), body.clone());
            tokio::spawn(async move {
                let response = client()
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let cost = response
                    .headers()
                    .get("x-litellm-response-cost")
                    .map(|v| nanos(v.to_str().unwrap()))
                    .unwrap_or(0);
                (response.status().as_u16(), cost)
            })
        })
        .collect();
    let (mut spent, mut largest, mut statuses) = (0, 0, Vec::new());
    for task in tasks {
        let (status, cost) = task.await.unwrap();
        statuses.push(status);
        if status == 200 {
            spent += cost;
            largest = largest.max(cost);
        }
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "nothing was refused: {statuses:?}");
    assert!(spent > 0);
    assert!(
        spent <= 100_000_000 + largest,
        "spent {spent} on a budget of 100000000 (largest request {largest})"
    );
}

#[tokio::test]
async fn a_key_without_a_budget_is_not_limited() {
    let gw = gateway(&priced_config(), &[]);
    let key = new_key(&gw, json!({"max_budget": null})).await;
    for _ in 0..3 {
        assert_eq!(spend(&gw, &key, &chat_body("chat")).await.0, 200);
    }
}

#[tokio::test]
async fn budget_fields_that_cannot_apply_are_refused_naming_the_field() {
    let gw = gateway(&priced_config(), &[]);
    for (body, field) in [
        (json!({"max_budget": "ten"}), "max_budget"),
        (json!({"max_budget": -1}), "max_budget"),
        (json!({"soft_budget": true}), "soft_budget"),
        (
            json!({"max_budget": 1, "budget_duration": "1y"}),
            "budget_duration",
        ),
        (
            json!({"max_budget": 1, "budget_duration": 30}),
            "budget_duration",
        ),
    ] {
        for path in ["/key/generate", "/team/new", "/customer/new"] {
            let mut body = body.clone();
            if path == "/customer/new" {
                body["user_id"] = json!("c-1");
            }
            let response = client()
                .post(format!("{}{path}", gw.url))
                .bearer_auth(MASTER_KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{path} {body}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["param"], field, "{path} {error}");
        }
    }
}

#[tokio::test]
async fn a_restart_remembers_what_a_budget_spent() {
    let path = write_config(&format!(
        "{}switchyard_spend: {{flush_interval_ms: 50}}\n",
        priced_config()
    ));
    let gw = serve_file(&path, &[], &[]);
    let key = new_key(&gw, json!({"max_budget": 0.05, "budget_duration": "30d"})).await;
    let body = json!({"model": "chat", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]});
    let mut answered = 0;
    while spend(&gw, &key, &body).await.0 == 200 {
        answered += 1;
        assert!(answered < 1000, "the budget never stopped the key");
    }
    // Every answered request's row is in the store before the gateway goes away.
    spend_rows(&gw, "", answered + 1).await;
    drop(gw);
    let gw = serve_file(&path, &[], &[]);
    let (status, _, error) = spend(&gw, &key, &body).await;
    assert_eq!(status, 429, "a restart forgot the spend: {error}");
    assert_eq!(error["error"]["type"], "budget_exceeded");
}

/// Spends a key's budget: returns the refusal (status, body) after at least one answer.
async fn spend_until_refused(gw: &Proc, key: &str, body: &Value) -> (u16, Value) {
    for answered in 0.. {
        let (status, _, reply) = spend(gw, key, body).await;
        if status != 200 {
            assert!(answered > 0, "refused before spending: {status} {reply}");
            return (status, reply);
        }
        assert!(answered < 1000, "the budget never stopped the key");
    }
    unreachable!()
}

#[tokio::test]
async fn a_budget_starts_over_when_its_window_ends_and_the_refusal_status_is_configurable() {
    // LiteLLM 1.110 answers a spent budget with 422; a config that asks for it gets it.
    let yaml = priced_config().replace(
        "general_settings:",
        "litellm_settings:\n  budget_exceeded_status_code: 422\ngeneral_settings:",
    );
    let gw = gateway(&yaml, &[]);
    let key = new_key(&gw, json!({"max_budget": 0.05, "budget_duration": "4s"})).await;
    let body = json!({"model": "chat", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]});
    let (status, refusal) = spend_until_refused(&gw, &key, &body).await;
    assert_eq!(status, 422, "{refusal}");
    assert_eq!(refusal["error"]["type"], "budget_exceeded", "{refusal}");
    // Within the window it stays refused; in the next window it answers again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, cost, reply) = spend(&gw, &key, &body).await;
        if status == 200 {
            assert!(cost > 0, "{reply}");
            break;
        }
        assert_eq!(status, 422, "{reply}");
        assert!(
            std::time::Instant::now() < deadline,
            "the budget did not start over after its 4 s window"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The new window spends down to a refusal again.
    let (status, _) = spend_until_refused(&gw, &key, &body).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn an_error_status_is_required_for_budget_refusals() {
    let yaml = priced_config().replace(
        "general_settings:",
        "litellm_settings:\n  budget_exceeded_status_code: 200\ngeneral_settings:",
    );
    let path = write_config(&yaml);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("litellm_settings.budget_exceeded_status_code"),
        "{text}"
    );
}

#[tokio::test]
async fn a_deployment_that_spent_its_budget_sits_out_until_its_window_ends() {
    let price = ", input_cost_per_token: 0.001, output_cost_per_token: 0.002";
    let gw = gateway(
        &config(
            &[
                offline(
                    "chat",
                    "first",
                    "from the first",
                    ", order: 1, max_budget: 0.05, budget_duration: 1d",
                    price,
                ),
                offline("chat", "second", "from the second", ", order: 2", price),
                offline(
                    "solo",
                    "only",
                    "from the only one",
                    ", max_budget: 0.03",
                    price,
                ),
            ],
            "",
        ),
        &[],
    );
    let body = json!({"model": "chat", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]});
    let served_by = |response: &reqwest::Response| {
        response.headers()["x-litellm-model-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    // The first deployment (order 1) serves until its budget is spent, then the second does.
    let mut first_spent = 0;
    let mut switched = false;
    for _ in 0..20 {
        let response = post(&gw, &body).await;
        assert_eq!(response.status(), 200);
        let cost = nanos(
            response.headers()["x-litellm-response-cost"]
                .to_str()
                .unwrap(),
        );
        match served_by(&response).as_str() {
            "first" => {
                assert!(
                    !switched,
                    "the first served again after its budget was spent"
                );
                assert!(first_spent < 50_000_000, "served past its budget");
                first_spent += cost;
            }
            "second" => switched = true,
            other => panic!("served by {other}"),
        }
    }
    assert!(switched && first_spent >= 50_000_000, "spent {first_spent}");

    // A group whose only deployment spent its budget is refused, saying so.
    let solo = json!({"model": "solo", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]});
    let refusal = loop {
        let response = post(&gw, &solo).await;
        if response.status() != 200 {
            break response;
        }
    };
    assert_eq!(refusal.status(), 429);
    assert!(refusal.headers().contains_key("retry-after"));
    let error: Value = refusal.json().await.unwrap();
    assert_eq!(
        error["error"]["code"], "deployment_budget_exceeded",
        "{error}"
    );
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_budget"),
        "{error}"
    );
}

#[tokio::test]
async fn a_deployment_budget_without_a_max_is_refused_at_load() {
    let yaml = config(
        &[offline("chat", "c1", "x", ", budget_duration: 1d", "")],
        "",
    );
    let path = write_config(&yaml);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("litellm_params.budget_duration"), "{text}");
}

#[tokio::test]
async fn a_restart_remembers_what_a_deployment_spent() {
    let price = ", input_cost_per_token: 0.001, output_cost_per_token: 0.002";
    let path = write_config(&config(
        &[offline(
            "solo",
            "only",
            "from the only one",
            ", max_budget: 0.03, budget_duration: 30d",
            price,
        )],
        "switchyard_spend: {flush_interval_ms: 50}\n",
    ));
    let gw = serve_file(&path, &[], &[]);
    let body = json!({"model": "solo", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]});
    let mut answered = 0;
    while post(&gw, &body).await.status() == 200 {
        answered += 1;
        assert!(answered < 1000, "the budget never took the deployment out");
    }
    spend_rows(&gw, "", answered + 1).await;
    drop(gw);
    let gw = serve_file(&path, &[], &[]);
    let response = post(&gw, &body).await;
    assert_eq!(
        response.status(),
        429,
        "a restart forgot the deployment's spend"
    );
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "deployment_budget_exceeded");
}

/// The request ids of the spend-log rows in the schema, one per row.
async fn logged_request_ids(schema: &PgSchema) -> Vec<String> {
    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
        "SELECT request_id FROM {}.switchyard_spend_logs",
        schema.name
    )))
    .fetch_all(&schema.admin)
    .await
    .unwrap()
}

/// One answer of a [`wave`]: the request id sent, the status, the cost header, the body.
struct Answer {
    request_id: String,
    status: u16,
    cost: i64,
    body: Value,
}

impl Answer {
    fn is_exceeded(&self) -> bool {
        self.status == 429
            && self.body["error"]["type"] == "budget_exceeded"
            && self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Budget has been exceeded! "))
    }
}

/// `n` requests at once, spread over `urls`, each with a request id of its own.
async fn wave(urls: &[String], key: &str, body: &Value, n: usize) -> Vec<Answer> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (url, key, body) = (urls[i % urls.len()].clone(), key.to_owned(), body.clone());
            let request_id = format!("budget-{:016x}", fastrand::u64(..));
            tokio::spawn(async move {
                let response = client()
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .header("x-request-id", &request_id)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let cost = response
                    .headers()
                    .get("x-litellm-response-cost")
                    .map(|v| nanos(v.to_str().unwrap()))
                    .unwrap_or(0);
                let body = response.json().await.unwrap_or(Value::Null);
                Answer {
                    request_id,
                    status,
                    cost,
                    body,
                }
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_postgres_and_redis_hold_one_budget() {
    use std::time::{Duration, Instant};

    let schema = PgSchema::new("sy_budget").await;
    // An upstream that takes 200 ms: the requests of a wave are all in flight together.
    let mock = mock_upstream(&["--latency-ms", "200"]);
    let yaml = format!(
        "model_list:\n  - model_name: chat\n    litellm_params: {{model: openai/slow, api_base: {}/v1, api_key: sk-up}}\n    model_info: {{id: slow, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}\nrouter_settings:\n  redis_url: redis://127.0.0.1:6379\nswitchyard_spend: {{flush_interval_ms: 50}}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n  database_url: \"{}\"\n",
        mock.url,
        schema.url()
    );
    // This test is about the shared account, not the fallback: on a loaded machine a Redis call
    // can take longer than the default 75 ms, and budgets would (correctly) fall back.
    let patient = [("SWITCHYARD_REDIS_LIMIT_TIMEOUT_MS", "3000")];
    let a = gateway(&yaml, &patient);
    let b = gateway(&yaml, &patient);
    let key = new_key(&a, json!({"max_budget": 0.10})).await;
    // b learns of the key (asked with a call that spends nothing).
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let models = client()
            .get(format!("{}/v1/models", b.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        if models.status() == 200 {
            break;
        }
        assert!(Instant::now() < until, "instance b never saw the key");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let urls = [a.url.clone(), b.url.clone()];
    let body = json!({"model": "chat", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]});
    let mut answers = wave(&urls, &key, &body, 50).await;
    assert!(
        answers.iter().any(|a| a.status == 429),
        "nothing of 50 at once was refused"
    );
    // Then smaller waves until the budget is spent: every request of a wave refused as exceeded.
    let mut spent_up = false;
    for _ in 0..30 {
        let next = wave(&urls, &key, &body, 10).await;
        spent_up = next.iter().all(Answer::is_exceeded);
        answers.extend(next);
        if spent_up {
            break;
        }
    }
    assert!(spent_up, "the budget was never used up");
    // Later requests are refused on both instances.
    for url in &urls {
        let later = wave(std::slice::from_ref(url), &key, &body, 1).await;
        assert!(later[0].is_exceeded(), "{url}: {}", later[0].body);
        answers.extend(later);
    }
    assert!(
        answers.iter().all(|a| a.status == 200 || a.status == 429),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let served: Vec<&Answer> = answers.iter().filter(|a| a.status == 200).collect();
    let spent: i64 = served.iter().map(|a| a.cost).sum();
    let largest = served.iter().map(|a| a.cost).max().unwrap_or(0);
    assert!(served.iter().all(|a| a.cost > 0), "every answer has a cost");
    assert!(
        spent <= 100_000_000 + largest,
        "spent {spent} on a budget of 100000000 (largest request {largest})"
    );
    assert!(
        spent >= 100_000_000,
        "refused before the budget was spent: {spent}"
    );
    // Every budget was decided in Redis, none by an instance alone.
    for gw in [&a, &b] {
        let metrics = metrics(gw).await;
        assert!(
            metrics.contains("switchyard_budget_store_up 1")
                && metrics.contains("switchyard_budget_local_fallbacks_total 0")
                && metrics.contains("switchyard_budget_settle_failures_total 0"),
            "{metrics}"
        );
    }

    // Every request, served or refused, is one row, written by the instance that answered it.
    let until = Instant::now() + Duration::from_secs(15);
    while logged_request_ids(&schema).await.len() < answers.len() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut logged = logged_request_ids(&schema).await;
    logged.sort();
    let mut sent: Vec<String> = answers.iter().map(|a| a.request_id.clone()).collect();
    sent.sort();
    assert_eq!(logged, sent, "one row per request, each request once");

    // Redis restarts empty: within a round of seeding (5 s) the instances raise the account to
    // what the spend logs say, and the key is refused again.
    let tokens: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT api_key FROM {}.switchyard_spend_logs",
        schema.name
    )))
    .fetch_all(&schema.admin)
    .await
    .unwrap();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let account = format!("{{sy}}:budget:key:spend:{}", tokens[0]);
    let mut redis = redis::Client::open("redis://127.0.0.1:6379")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deleted: i64 = redis::cmd("DEL")
        .arg(&account)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the key's account is {account}");
    let until = Instant::now() + Duration::from_secs(8);
    loop {
        let seeded: Option<i64> = redis::cmd("HGET")
            .arg(&account)
            .arg("s")
            .query_async(&mut redis)
            .await
            .unwrap();
        if seeded == Some(spent) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the account was not seeded again: {seeded:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for url in &urls {
        let later = wave(std::slice::from_ref(url), &key, &body, 1).await;
        assert!(later[0].is_exceeded(), "{url}: {}", later[0].body);
    }
    drop((a, b));
    // A lifetime budget's account never expires: the test takes it away.
    let _: i64 = redis::cmd("DEL")
        .arg(&account)
        .query_async(&mut redis)
        .await
        .unwrap();
    schema.drop_schema().await;
}
