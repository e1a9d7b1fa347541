//! Spend logs through the real binary: one row per model request (whole, stream, failed), on
//! SQLite and PostgreSQL; a PostgreSQL outage while requests keep flowing loses and duplicates
//! nothing; a full queue spills to the file, which is replayed; a hostile spill file is skipped
//! line by line; the reports and the spend totals (store level, with costs).

mod common;
mod routing;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pg::PgSchema;
use common::*;
use routing::*;
use serde_json::{json, Value};
use switchyard::spend::{GroupBy, Owner, SpendFilter, SpendRow};
use switchyard::store::{PostgresStore, SqliteStore, Store};

/// A count over the schema's spend log (`TABLE` in `sql` names it).
async fn count(schema: &PgSchema, sql: &str) -> i64 {
    let sql = sql.replace("TABLE", &format!("{}.switchyard_spend_logs", schema.name));
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .fetch_one(&schema.admin)
        .await
        .unwrap()
}

/// A TCP proxy to PostgreSQL the test can cut: while down, new connections are closed at once
/// and open ones are ended (as when the database host goes away).
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: &'static str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let accept_up = up.clone();
        let accept_gen = generation.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !accept_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = accept_gen.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            up,
            generation,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn spend_config(database: &str, spend: &str) -> String {
    format!(
        "model_list:\n{}{}  - model_name: broken\n    litellm_params: {{model: openai/x, api_base: 'http://127.0.0.1:9/v1', api_key: k}}\n    model_info: {{id: broken1}}\n{spend}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n{database}",
        offline("chat", "c1", "hello from chat", "", ""),
        offline("other", "o1", "hello from other", "", ""),
    )
}

async fn admin_get(gw: &Proc, path: &str) -> Value {
    let response = client()
        .get(format!("{}{path}", gw.url))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

async fn admin_post(gw: &Proc, path: &str, body: Value) -> Value {
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

async fn chat_as(gw: &Proc, key: &str, body: Value) -> (u16, String) {
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Whole, stream, failing upstream, unknown model: one row each with the right fields; a
/// `/models` call and management calls make none.
async fn every_model_request_makes_one_row(database: &str) {
    let gw = gateway(
        &spend_config(database, "switchyard_spend: {flush_interval_ms: 50}"),
        &[],
    );
    admin_post(&gw, "/team/new", json!({"team_id": "team-search"})).await;
    let key = admin_post(
        &gw,
        "/key/generate",
        json!({"team_id": "team-search", "key_alias": "search-svc"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let meta = |feature: &str| json!({"feature": feature, "tags": ["prod", feature]});
    let mut body = chat_body("chat");
    body["metadata"] = meta("search");
    body["user"] = json!("cust-1");
    assert_eq!(chat_as(&gw, &key, body.clone()).await.0, 200);
    body["model"] = json!("other");
    body["metadata"] = meta("summarize");
    assert_eq!(chat_as(&gw, &key, body.clone()).await.0, 200);
    let mut stream = chat_body("chat");
    stream["stream"] = json!(true);
    stream["metadata"] = meta("search");
    let (status, text) = chat_as(&gw, &key, stream).await;
    assert_eq!(status, 200);
    assert!(text.contains("[DONE]"), "{text}");
    let mut broken = chat_body("broken");
    broken["metadata"] = meta("search");
    let (status, _) = chat_as(&gw, &key, broken).await;
    assert!(status >= 500, "{status}");
    let (status, _) = chat_as(&gw, &key, chat_body("no-such-model")).await;
    assert_eq!(status, 404);
    // Not model requests: no rows.
    let models = client()
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    admin_get(&gw, "/health/readiness").await;

    let rows = spend_rows(&gw, "team_id=team-search", 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = admin_get(&gw, "/spend/logs").await;
    assert_eq!(all.as_array().unwrap().len(), 5, "{all:#}");
    assert_eq!(rows.len(), 5, "{rows:?}");
    let hash = rows[0]["api_key"].as_str().unwrap().to_owned();
    assert_eq!(hash.len(), 64);
    assert!(!hash.contains(&key));
    for row in &rows {
        assert_eq!(row["api_key"], hash.as_str());
        assert_eq!(row["team_id"], "team-search");
        assert_eq!(row["key_alias"], "search-svc");
        // `chat` is an unpriced mock model; `other` is `openai/o1`, priced by the shipped table.
        let spend = row["spend"].as_f64().unwrap();
        if row["model"] == "other" {
            assert!(spend > 0.0, "{row}");
        } else {
            assert_eq!(spend, 0.0, "{row}");
        }
        assert!(row.get("messages").is_none() && row.get("response").is_none());
    }
    let by_model = |model: &str, stream: bool| {
        rows.iter()
            .find(|r| r["model"] == model && r["stream"] == stream)
            .unwrap_or_else(|| panic!("no row for {model} stream={stream}: {rows:?}"))
            .clone()
    };
    let whole = by_model("chat", false);
    assert_eq!(whole["http_status"], 200);
    assert_eq!(whole["status"], "success");
    assert_eq!(whole["model_group"], "chat");
    assert_eq!(whole["model_id"], "c1");
    assert_eq!(whole["end_user"], "cust-1");
    assert_eq!(whole["metadata"]["feature"], "search");
    assert!(whole["prompt_tokens"].as_i64().unwrap() > 0, "{whole}");
    assert!(whole["completion_tokens"].as_i64().unwrap() > 0, "{whole}");
    assert_eq!(whole["cost_source"], "unpriced");
    assert_eq!(by_model("other", false)["cost_source"], "reported");
    let streamed = by_model("chat", true);
    assert_eq!(streamed["http_status"], 200);
    assert!(
        streamed["completion_tokens"].as_i64().unwrap() > 0,
        "{streamed}"
    );
    assert!(streamed["ttft_ms"].is_i64(), "{streamed}");
    assert_eq!(by_model("other", false)["metadata"]["feature"], "summarize");
    let failed = by_model("broken", false);
    assert!(failed["http_status"].as_i64().unwrap() >= 500);
    assert_eq!(failed["status"], "failure");
    assert_eq!(failed["model_id"], "broken1");
    let unknown = by_model("no-such-model", false);
    assert_eq!(unknown["http_status"], 404);

    // Filters: a raw key or its hash; a request id.
    assert_eq!(spend_rows(&gw, &format!("api_key={key}"), 5).await.len(), 5);
    let one = whole["request_id"].as_str().unwrap();
    assert_eq!(
        spend_rows(&gw, &format!("request_id={one}"), 1).await.len(),
        1
    );

    // Reports.
    let report = admin_get(&gw, "/global/spend/report?group_by=feature").await;
    let search = report
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "search")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(search["requests"], 3, "{report:#}");
    let tags = admin_get(&gw, "/spend/tags").await;
    let prod = tags
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["individual_request_tag"] == "prod")
        .unwrap_or_else(|| panic!("{tags:#}"));
    assert_eq!(prod["log_count"], 4, "{tags:#}");
    let teams = admin_get(&gw, "/global/spend/report?group_by=team").await;
    assert_eq!(teams[0]["group"], "team-search", "{teams:#}");
    assert_eq!(teams[0]["requests"], 5, "{teams:#}");
    let csv = client()
        .get(format!(
            "{}/global/spend/report?group_by=model&format=csv",
            gw.url
        ))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("group,spend,requests,"), "{csv}");
    assert!(csv.contains("\nchat,0,2,"), "{csv}");
    // Only admins and viewers read reports.
    let refused = client()
        .get(format!("{}/spend/logs", gw.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    // Spend shows in the info routes.
    // ... and is the sum of the rows' costs.
    let logged: f64 = rows.iter().map(|r| r["spend"].as_f64().unwrap()).sum();
    assert!(logged > 0.0);
    let info = admin_get(&gw, &format!("/key/info?key={key}")).await;
    let key_spend = info["info"]["spend"].as_f64().unwrap();
    assert!(
        (key_spend - logged).abs() < 1e-9,
        "{key_spend} vs {logged}: {info}"
    );
    let team = admin_get(&gw, "/team/info?team_id=team-search").await;
    let team_spend = team["team_info"]["spend"].as_f64().unwrap();
    assert!(
        (team_spend - logged).abs() < 1e-9,
        "{team_spend} vs {logged}: {team}"
    );
    let metrics = client()
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchyard_spend_rows_written_total 5"),
        "{metrics}"
    );
    assert!(metrics.contains("switchyard_spend_rows_dropped_total 0"));
}

#[tokio::test]
async fn every_model_request_makes_one_row_on_sqlite() {
    every_model_request_makes_one_row("").await;
}

#[tokio::test]
async fn every_model_request_makes_one_row_on_postgres() {
    let schema = PgSchema::new("sy_spend").await;
    let url = schema.url_via("127.0.0.1:5432");
    every_model_request_makes_one_row(&format!("  database_url: \"{url}\"\n")).await;
    schema.drop_schema().await;
}

/// PostgreSQL unreachable for ~10 s while requests keep flowing: every request is served, and
/// once it is back the rows equal the requests, with no duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_loses_and_duplicates_no_row() {
    let schema = PgSchema::new("sy_spend").await;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let url = schema.url_via(&format!("127.0.0.1:{}", proxy.port));
    let gw = gateway(
        &spend_config(
            &format!("  database_url: \"{url}\"\n"),
            "switchyard_spend: {flush_interval_ms: 50, queue_size: 20, batch_size: 5}",
        ),
        &[],
    );
    let key = admin_post(&gw, "/key/generate", json!({"key_alias": "outage"})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut sent = 0;
    let mut send = |n: usize| {
        let gw_url = gw.url.clone();
        let key = key.clone();
        sent += n;
        async move {
            for _ in 0..n {
                let response = client()
                    .post(format!("{gw_url}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "metadata": {"feature": "outage"}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    send(10).await;
    proxy.cut();
    let down_since = Instant::now();
    while down_since.elapsed() < Duration::from_secs(10) {
        send(10).await;
    }
    let ready: Value = client()
        .get(format!("{}/health/readiness", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(ready["spend_logs"]["writer"], "ok", "{ready}");
    proxy.restore();
    send(10).await;
    let until = Instant::now() + Duration::from_secs(30);
    let mut rows = 0;
    while Instant::now() < until {
        rows = count(&schema, "SELECT COUNT(*) FROM TABLE").await;
        if rows >= sent as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(&schema, "SELECT COUNT(*) FROM TABLE").await,
        sent as i64,
        "rows {rows}"
    );
    assert_eq!(
        count(&schema, "SELECT COUNT(DISTINCT request_id) FROM TABLE").await,
        sent as i64
    );
    let metrics = client()
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchyard_spend_rows_dropped_total 0"),
        "{metrics}"
    );
    // The queue (20) could not hold ~10 s of requests: some were spilled, then replayed.
    let spilled = metric(&metrics, "switchyard_spend_rows_spilled_total");
    assert!(spilled > 0, "{metrics}");
    assert_eq!(
        metric(&metrics, "switchyard_spend_rows_replayed_total"),
        spilled
    );
    drop(gw);
    schema.drop_schema().await;
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// A spill file left by an earlier run, with garbage and a cut line in it: its rows are
/// replayed at start, the bad lines skipped and counted.
#[tokio::test]
async fn a_hostile_spill_file_is_replayed_line_by_line() {
    let dir = std::env::temp_dir().join(format!("sy-spill-{:x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let spill = dir.join("spill.jsonl");
    let good = |id: &str| serde_json::to_string(&row(id, "k1", 7)).unwrap();
    let text = format!(
        "{}\nnot json\n{{\"id\":1}}\n\n{}\n{}",
        good("left-1"),
        good("left-2"),
        &good("left-3")[..20]
    );
    std::fs::write(&spill, text).unwrap();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        spend_config(
            "",
            &format!(
                "switchyard_spend: {{flush_interval_ms: 50, spill_file: '{}'}}",
                spill.display()
            ),
        ),
    )
    .unwrap();
    let gw = serve_file(&config, &[], &[]);
    let rows = spend_rows(&gw, "", 2).await;
    let mut ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["left-1", "left-2"]);
    let metrics = client()
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&metrics, "switchyard_spend_spill_bad_lines_total"),
        3
    );
    assert_eq!(metric(&metrics, "switchyard_spend_rows_replayed_total"), 2);
    assert!(!spill.exists());
    drop(gw);
    let _ = std::fs::remove_dir_all(dir);
}

fn row(id: &str, key: &str, cost: i64) -> SpendRow {
    SpendRow {
        id: id.into(),
        request_id: format!("req-{id}"),
        started_at: 1_764_644_645_678,
        api_key: key.into(),
        key_alias: None,
        team_id: Some("team-a".into()),
        user_id: Some("user-a".into()),
        end_user: Some("cust-a".into()),
        requested_model: "chat".into(),
        model_group: Some("chat".into()),
        deployment_id: Some("c1".into()),
        provider: Some("openai".into()),
        prompt_tokens: 10,
        completion_tokens: 5,
        cached_tokens: 2,
        cost_nanos: cost,
        cost_source: "reported".into(),
        latency_ms: 12,
        ttft_ms: Some(3),
        status: 200,
        outcome: "answered".into(),
        stream: false,
        cache_hit: false,
        call_type: None,
        metadata: serde_json::from_value(json!({"feature": "search", "tags": ["a", "b"]})).ok(),
    }
}

/// The store's half: a retried batch adds no row and no spend twice; totals per owner; sums
/// and groups taken by the database; retention.
async fn store_contract(store: &dyn Store) {
    let mut batch = vec![
        row("r1", "k1", 1_000),
        row("r2", "k1", 2_500),
        row("r3", "k2", 1),
    ];
    // Read back as written (`r1 == batch[0]` below), with and without a call type.
    batch[0].call_type = Some("aembedding".into());
    assert_eq!(store.write_spend(&batch).await.unwrap(), 3);
    // Retried (its commit's answer was lost): nothing new.
    assert_eq!(store.write_spend(&batch).await.unwrap(), 0);
    let mut more = row("r4", "k2", 4);
    more.metadata = None;
    more.started_at = 1_000;
    more.team_id = None;
    assert_eq!(
        store.write_spend(&[batch[0].clone(), more]).await.unwrap(),
        1
    );
    assert_eq!(store.spend_total(Owner::Key, "k1").await.unwrap().0, 3_500);
    assert_eq!(store.spend_total(Owner::Key, "k2").await.unwrap().0, 5);
    assert_eq!(
        store.spend_total(Owner::Team, "team-a").await.unwrap().0,
        3_501
    );
    assert_eq!(
        store.spend_total(Owner::User, "user-a").await.unwrap().0,
        3_505
    );
    assert_eq!(
        store.spend_total(Owner::EndUser, "cust-a").await.unwrap().0,
        3_505
    );
    assert_eq!(store.spend_total(Owner::Team, "nobody").await.unwrap().0, 0);

    let all = SpendFilter::default();
    let logs = store.spend_logs(&all).await.unwrap();
    assert_eq!(logs.len(), 4);
    assert_eq!(
        logs[0].metadata,
        batch[0].metadata.clone().filter(|_| logs[0].id != "r4")
    );
    let r1 = logs.iter().find(|r| r.id == "r1").unwrap();
    assert_eq!(r1, &batch[0]);
    let by_key = SpendFilter {
        api_key: Some("k2".into()),
        ..SpendFilter::default()
    };
    assert_eq!(store.spend_logs(&by_key).await.unwrap().len(), 2);
    let recent = SpendFilter {
        start: Some(2_000),
        ..SpendFilter::default()
    };
    assert_eq!(store.spend_logs(&recent).await.unwrap().len(), 3);

    let report = store
        .spend_report(&all, &GroupBy::parse("key").unwrap())
        .await
        .unwrap();
    assert_eq!(report[0].group.as_deref(), Some("k1"));
    assert_eq!(report[0].spend_nanos, 3_500);
    assert_eq!(report[0].requests, 2);
    assert_eq!(report[0].prompt_tokens, 20);
    let tags = store.spend_report(&all, &GroupBy::Tag).await.unwrap();
    let a = tags
        .iter()
        .find(|g| g.group.as_deref() == Some("a"))
        .unwrap();
    assert_eq!((a.requests, a.spend_nanos), (3, 3_501));
    let feature = store
        .spend_report(&all, &GroupBy::parse("feature").unwrap())
        .await
        .unwrap();
    assert_eq!(feature.len(), 2, "{feature:?}");
    assert_eq!(feature[0].group.as_deref(), Some("search"));
    assert_eq!(feature[1].group, None);
    let teams = store
        .spend_report(&all, &GroupBy::parse("team").unwrap())
        .await
        .unwrap();
    assert_eq!(teams[0].spend_nanos, 3_501);

    // Daily sums (LiteLLM's /user/daily/activity): one day per group of model, provider and key.
    let daily = store.spend_daily(&all).await.unwrap();
    assert_eq!(daily.len(), 3, "{daily:?}");
    assert_eq!(daily[0].day, 0, "1970-01-01 comes first");
    let k1 = daily.iter().find(|d| d.api_key == "k1").unwrap();
    assert_eq!(k1.day, 1_764_644_645_678 / 86_400_000);
    assert_eq!((k1.requests, k1.spend_nanos, k1.failed), (2, 3_500, 0));
    assert_eq!(
        (k1.prompt_tokens, k1.completion_tokens, k1.cached_tokens),
        (20, 10, 4)
    );
    assert_eq!(k1.latency_ms, 24);
    assert_eq!(k1.model_group.as_deref(), Some("chat"));
    assert_eq!(k1.team_id.as_deref(), Some("team-a"));
    let of_team = SpendFilter {
        team_id: Some("team-a".into()),
        model_group: Some("chat".into()),
        ..SpendFilter::default()
    };
    let team_days = store.spend_daily(&of_team).await.unwrap();
    assert_eq!(team_days.iter().map(|d| d.requests).sum::<i64>(), 3);
    let other_model = SpendFilter {
        model_group: Some("nope".into()),
        ..SpendFilter::default()
    };
    assert!(store.spend_daily(&other_model).await.unwrap().is_empty());

    assert_eq!(store.delete_spend_before(2_000).await.unwrap(), 1);
    assert_eq!(store.spend_logs(&all).await.unwrap().len(), 3);
    // Deleting old rows keeps the totals.
    assert_eq!(store.spend_total(Owner::Key, "k2").await.unwrap().0, 5);
}

#[tokio::test]
async fn spend_store_contract_on_sqlite() {
    let path = std::env::temp_dir().join(format!("sy-spend-{:x}.db", fastrand::u64(..)));
    let store = SqliteStore::open(&path).await.unwrap();
    store_contract(&store).await;
    store.close().await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn spend_store_contract_on_postgres() {
    let schema = PgSchema::new("sy_spend").await;
    let store = PostgresStore::connect(&schema.url_via("127.0.0.1:5432"))
        .await
        .unwrap();
    store_contract(&store).await;
    store.close().await;
    schema.drop_schema().await;
}

#[tokio::test]
async fn spend_store_contract_in_memory() {
    store_contract(&switchyard::store::memory::MemoryStore::new()).await;
}

/// A graceful shutdown writes what is queued; `switchyard spend report` then reads the same
/// groups from the database the config names.
#[tokio::test]
async fn shutdown_flushes_and_the_cli_reports_by_feature() {
    let path = write_config(&spend_config(
        "",
        "switchyard_spend: {flush_interval_ms: 60000, batch_size: 1000}",
    ));
    let gw = serve_file(&path, &[], &[]);
    for feature in ["search", "search", "summarize"] {
        let mut body = chat_body("chat");
        body["metadata"] = json!({"feature": feature});
        assert_eq!(chat_as(&gw, MASTER_KEY, body).await.0, 200);
    }
    // The writer waits up to a minute to fill its batch: only the shutdown writes these rows.
    let log = gw.shutdown();
    assert!(!log.contains("spilled"), "{log}");
    let out = std::process::Command::new(BIN)
        .args([
            "spend",
            "report",
            "--group-by",
            "feature",
            "--since",
            "7d",
            "--config",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("feature "), "{stdout}");
    assert!(
        lines[1].starts_with("search ") && lines[1].contains(" 2 "),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("summarize ") && lines[2].contains(" 1 "),
        "{stdout}"
    );
    let csv = std::process::Command::new(BIN)
        .args([
            "spend",
            "report",
            "--group-by",
            "model",
            "--csv",
            "--config",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(
        csv.starts_with("model,spend,requests,prompt_tokens,completion_tokens\nchat,0,3,"),
        "{csv}"
    );
}

/// A shutdown while the database is down spills what is queued; the next start replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_with_the_database_down_spills_and_the_next_start_replays() {
    let schema = PgSchema::new("sy_spend").await;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let url = schema.url_via(&format!("127.0.0.1:{}", proxy.port));
    let path = write_config(&spend_config(
        &format!("  database_url: \"{url}\"\n"),
        "switchyard_spend: {flush_interval_ms: 50, shutdown_flush_seconds: 1}",
    ));
    let spill = path.parent().unwrap().join("switchyard-spend-spill.jsonl");
    let gw = serve_file(&path, &[], &[]);
    proxy.cut();
    for _ in 0..5 {
        assert_eq!(chat_as(&gw, MASTER_KEY, chat_body("chat")).await.0, 200);
    }
    let log = tokio::task::spawn_blocking(move || gw.shutdown())
        .await
        .unwrap();
    let spilled = std::fs::read_to_string(&spill).unwrap_or_default();
    assert_eq!(spilled.lines().count(), 5, "{log}");
    proxy.restore();
    let gw = serve_file(&path, &[], &[]);
    let until = Instant::now() + Duration::from_secs(15);
    while count(&schema, "SELECT COUNT(*) FROM TABLE").await < 5 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&schema, "SELECT COUNT(*) FROM TABLE").await, 5);
    assert!(!spill.exists());
    drop(gw);
    schema.drop_schema().await;
}

/// `maximum_spend_logs_retention_period`: rows older than the period are deleted (here: an old
/// row replayed from the spill file at start), recent ones kept.
#[tokio::test]
async fn retention_deletes_old_rows() {
    let dir = std::env::temp_dir().join(format!("sy-retention-{:x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let spill = dir.join("switchyard-spend-spill.jsonl");
    let mut old = row("old", "k1", 1);
    old.started_at = 1_000;
    let mut recent = row("recent", "k1", 1);
    recent.started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    std::fs::write(
        &spill,
        format!(
            "{}\n{}\n",
            serde_json::to_string(&old).unwrap(),
            serde_json::to_string(&recent).unwrap()
        ),
    )
    .unwrap();
    let config = dir.join("config.yaml");
    let yaml = spend_config("", "switchyard_spend: {flush_interval_ms: 50}").replace(
        "general_settings:\n",
        "general_settings:\n  maximum_spend_logs_retention_period: 7d\n",
    );
    std::fs::write(&config, yaml).unwrap();
    let gw = serve_file(&config, &[], &[]);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = admin_get(&gw, "/spend/logs").await;
        let ids: Vec<&str> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        if ids == ["recent"] {
            break;
        }
        assert!(Instant::now() < until, "{ids:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(gw);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn key_team_and_user_spend_are_the_sum_of_the_cost_headers() {
    let gw = gateway(
        &config(
            &[offline(
                "priced",
                "p1",
                "a priced answer of a few words",
                "",
                ", input_cost_per_token: 0.0000013, output_cost_per_token: 0.0000071",
            )],
            "switchyard_spend: {flush_interval_ms: 50}\n",
        ),
        &[],
    );
    admin_post(&gw, "/team/new", json!({"team_id": "t-sum"})).await;
    admin_post(&gw, "/user/new", json!({"user_id": "u-sum"})).await;
    let key = admin_post(
        &gw,
        "/key/generate",
        json!({"team_id": "t-sum", "user_id": "u-sum"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut total = 0;
    for n in 0..6 {
        let mut body = chat_body("priced");
        body["messages"][0]["content"] = json!("word ".repeat(1 + n * 7));
        let response = client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let header = response.headers()["x-litellm-response-cost"]
            .to_str()
            .unwrap();
        assert_eq!(
            header,
            response.headers()["x-switchyard-response-cost"]
                .to_str()
                .unwrap()
        );
        total += nanos(header);
    }
    // A stream's cost is in its final usage chunk.
    let mut stream = chat_body("priced");
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    let (status, text) = chat_as(&gw, &key, stream).await;
    assert_eq!(status, 200);
    let usage: Value = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|chunk| chunk["usage"].is_object())
        .expect("a usage chunk")["usage"]
        .clone();
    let stream_cost = usage["cost"].as_f64().expect("usage.cost");
    total += (stream_cost * 1e9).round() as i64;
    assert!(total > 0);

    spend_rows(&gw, "team_id=t-sum", 7).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spend_of = |v: &Value| (v.as_f64().unwrap() * 1e9).round() as i64;
    let key_info = admin_get(&gw, &format!("/key/info?key={key}")).await;
    assert_eq!(spend_of(&key_info["info"]["spend"]), total, "{key_info}");
    let team = admin_get(&gw, "/team/info?team_id=t-sum").await;
    assert_eq!(spend_of(&team["team_info"]["spend"]), total, "{team}");
    let user = admin_get(&gw, "/user/info?user_id=u-sum").await;
    let user_spend = user["user_info"]["spend"]
        .as_f64()
        .or_else(|| user["spend"].as_f64())
        .unwrap_or_else(|| panic!("no spend in {user}"));
    assert_eq!((user_spend * 1e9).round() as i64, total, "{user}");
}

/// The migrations a gateway applied before spend rows were keyed by (started_at, id): 0001 and
/// 0002, read from the same files the store embeds (so their checksums match when it opens).
fn migrator_before_0003(dir: &str) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dir);
    let migrations = [
        (1, "identities", "0001_identities.sql"),
        (2, "spend", "0002_spend.sql"),
    ]
    .into_iter()
    .map(|(version, description, file)| {
        let sql = std::fs::read_to_string(root.join(file)).unwrap();
        sqlx::migrate::Migration::new(
            version,
            description.into(),
            sqlx::migrate::MigrationType::Simple,
            sqlx::AssertSqlSafe(sql).into_sql_str(),
            false,
        )
    })
    .collect();
    let mut migrator = sqlx::migrate::Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name("switchyard_migrations");
    migrator
}

/// Rows as an older gateway wrote them: three keys (one the master key's ''), rows with and
/// without team, user, end user and metadata, over a range of times.
fn rows_before_0003() -> Vec<SpendRow> {
    (0..150)
        .map(|i| {
            let key = ["k1", "k2", ""][i % 3];
            let mut row = row(&format!("{i:012x}{:016x}", i * 7919), key, 1_000 + i as i64);
            row.started_at = 1_700_000_000_000 + i as i64 * 60_000;
            row.team_id = (i % 2 == 0).then(|| format!("team-{}", i % 4));
            row.user_id = (i % 5 != 0).then(|| "user-a".to_owned());
            row.end_user = (i % 3 == 1).then(|| "cust-a".to_owned());
            if i % 7 == 0 {
                row.metadata = None;
            }
            row
        })
        .collect()
}

/// Inserts `rows` into the 0002 table with plain SQL (`json_cast` after the metadata).
async fn insert_before_0003<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    json_cast: &str,
    rows: &[SpendRow],
) where
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<&'a str>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<i64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> bool: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    let placeholders: Vec<String> = (1..=24).map(|n| format!("${n}")).collect();
    let sql = format!(
        "INSERT INTO switchyard_spend_logs (id, request_id, started_at, api_key, key_alias, \
         team_id, user_id, end_user, requested_model, model_group, deployment_id, provider, \
         prompt_tokens, completion_tokens, cached_tokens, cost_nanos, cost_source, latency_ms, \
         ttft_ms, status, outcome, stream, cache_hit, metadata) VALUES ({}{json_cast})",
        placeholders.join(", ")
    );
    for row in rows {
        sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(row.id.as_str())
            .bind(row.request_id.as_str())
            .bind(row.started_at)
            .bind(row.api_key.as_str())
            .bind(row.key_alias.as_deref())
            .bind(row.team_id.as_deref())
            .bind(row.user_id.as_deref())
            .bind(row.end_user.as_deref())
            .bind(row.requested_model.as_str())
            .bind(row.model_group.as_deref())
            .bind(row.deployment_id.as_deref())
            .bind(row.provider.as_deref())
            .bind(row.prompt_tokens)
            .bind(row.completion_tokens)
            .bind(row.cached_tokens)
            .bind(row.cost_nanos)
            .bind(row.cost_source.as_str())
            .bind(row.latency_ms)
            .bind(row.ttft_ms)
            .bind(row.status)
            .bind(row.outcome.as_str())
            .bind(row.stream)
            .bind(row.cache_hit)
            .bind(row.metadata_json())
            .execute(pool)
            .await
            .unwrap();
    }
}

/// After migration 0003 the store holds every row written before it, unchanged; every filter
/// and report finds them; a replay of rows written before the upgrade (a spill file from the
/// old version) adds nothing; new rows still go in.
async fn rows_survive_0003(store: &dyn Store, before: &[SpendRow]) {
    let all = SpendFilter {
        limit: Some(10_000),
        ..SpendFilter::default()
    };
    let mut logs = store.spend_logs(&all).await.unwrap();
    assert_eq!(logs.len(), before.len());
    // Newest first, as before.
    assert!(logs.windows(2).all(|w| w[0].started_at >= w[1].started_at));
    logs.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = before.to_vec();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(logs, expected);

    let count = |filter: SpendFilter| async move {
        store
            .spend_logs(&SpendFilter {
                limit: Some(10_000),
                ..filter
            })
            .await
            .unwrap()
            .len()
    };
    let expect = |keep: &dyn Fn(&SpendRow) -> bool| before.iter().filter(|r| keep(r)).count();
    assert_eq!(
        count(SpendFilter {
            api_key: Some("k1".into()),
            ..SpendFilter::default()
        })
        .await,
        expect(&|r| r.api_key == "k1")
    );
    assert_eq!(
        count(SpendFilter {
            team_id: Some("team-2".into()),
            start: Some(1_700_000_000_000 + 20 * 60_000),
            ..SpendFilter::default()
        })
        .await,
        expect(&|r| {
            r.team_id.as_deref() == Some("team-2")
                && r.started_at >= 1_700_000_000_000 + 20 * 60_000
        })
    );
    assert_eq!(
        count(SpendFilter {
            user_id: Some("user-a".into()),
            ..SpendFilter::default()
        })
        .await,
        expect(&|r| r.user_id.as_deref() == Some("user-a"))
    );
    assert_eq!(
        count(SpendFilter {
            end_user: Some("cust-a".into()),
            ..SpendFilter::default()
        })
        .await,
        expect(&|r| r.end_user.as_deref() == Some("cust-a"))
    );
    assert_eq!(
        count(SpendFilter {
            request_id: Some(before[42].request_id.clone()),
            ..SpendFilter::default()
        })
        .await,
        1
    );
    assert_eq!(
        count(SpendFilter {
            start: Some(1_700_000_000_000 + 100 * 60_000),
            end: Some(1_700_000_000_000 + 110 * 60_000),
            ..SpendFilter::default()
        })
        .await,
        10
    );

    let by_key = store
        .spend_report(&SpendFilter::default(), &GroupBy::parse("key").unwrap())
        .await
        .unwrap();
    let k1 = by_key
        .iter()
        .find(|g| g.group.as_deref() == Some("k1"))
        .unwrap();
    assert_eq!(k1.requests as usize, expect(&|r| r.api_key == "k1"));
    assert_eq!(
        k1.spend_nanos,
        before
            .iter()
            .filter(|r| r.api_key == "k1")
            .map(|r| r.cost_nanos)
            .sum::<i64>()
    );
    let by_team = store
        .spend_report(&SpendFilter::default(), &GroupBy::parse("team").unwrap())
        .await
        .unwrap();
    assert_eq!(
        by_team.iter().map(|g| g.requests).sum::<i64>() as usize,
        before.len()
    );
    let tags = store
        .spend_report(&SpendFilter::default(), &GroupBy::Tag)
        .await
        .unwrap();
    let a = tags
        .iter()
        .find(|g| g.group.as_deref() == Some("a"))
        .unwrap();
    assert_eq!(a.requests as usize, expect(&|r| r.metadata.is_some()));

    // A spill file written by the old version, replayed by the new one: nothing new, no spend
    // added twice.
    let total = store.spend_total(Owner::Key, "k1").await.unwrap().0;
    assert_eq!(store.write_spend(&before[..70]).await.unwrap(), 0);
    assert_eq!(store.spend_total(Owner::Key, "k1").await.unwrap().0, total);
    let mut fresh = row("fresh-1", "k1", 5);
    fresh.started_at = before[0].started_at;
    assert_eq!(
        store
            .write_spend(&[before[1].clone(), fresh.clone(), before[2].clone()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.spend_total(Owner::Key, "k1").await.unwrap().0,
        total + 5
    );
    assert_eq!(
        store.spend_logs(&all).await.unwrap().len(),
        before.len() + 1
    );
}

#[tokio::test]
async fn migration_0003_keeps_every_row_on_sqlite() {
    let path = std::env::temp_dir().join(format!("sy-spend-0003-{:x}.db", fastrand::u64(..)));
    let before = rows_before_0003();
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        migrator_before_0003("sqlite").run(&pool).await.unwrap();
        insert_before_0003(&pool, "", &before).await;
        pool.close().await;
    }
    let store = SqliteStore::open(&path).await.unwrap();
    rows_survive_0003(&store, &before).await;
    store.close().await;

    // Every filter of the reports still reads an index (SQLite takes a partial index for
    // `col = ?`, which implies `col IS NOT NULL`).
    let pool =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
            .await
            .unwrap();
    for (filter, index) in [
        (
            "l.api_key = ?1 AND l.started_at >= ?2",
            "switchyard_spend_logs_api_key",
        ),
        (
            "l.team_id = ?1 AND l.started_at >= ?2",
            "switchyard_spend_logs_team_id",
        ),
        (
            "l.user_id = ?1 AND l.started_at >= ?2",
            "switchyard_spend_logs_user_id",
        ),
        (
            "l.end_user = ?1 AND l.started_at >= ?2",
            "switchyard_spend_logs_end_user",
        ),
        (
            "l.request_id = ?1 AND l.started_at >= ?2",
            "switchyard_spend_logs_request_id",
        ),
        (
            "l.started_at >= ?1 AND l.started_at < ?2",
            "sqlite_autoindex_switchyard_spend_logs",
        ),
    ] {
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN SELECT SUM(l.cost_nanos) FROM switchyard_spend_logs l WHERE {filter}"
        )))
        .bind("x")
        .bind(1_i64)
        .fetch_all(&pool)
        .await
        .unwrap();
        let plan: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
        assert!(
            plan.iter().any(|step| step.contains(index)),
            "{filter}: {plan:?}"
        );
    }
    pool.close().await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn migration_0003_keeps_every_row_on_postgres() {
    let schema = PgSchema::new("sy_spend").await;
    let before = rows_before_0003();
    {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&schema.url_via("127.0.0.1:5432"))
            .await
            .unwrap();
        migrator_before_0003("postgres").run(&pool).await.unwrap();
        insert_before_0003(&pool, "::jsonb", &before).await;
        pool.close().await;
    }
    let store = PostgresStore::connect(&schema.url_via("127.0.0.1:5432"))
        .await
        .unwrap();
    rows_survive_0003(&store, &before).await;
    store.close().await;

    // Every filter of the reports can read an index (sequential scans switched off, as the
    // table is too small for the planner to prefer an index on its own).
    let mut tx = schema.admin.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL search_path = {}",
        schema.name
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    for (filter, index) in [
        (
            "l.api_key = $1 AND l.started_at >= $2",
            "switchyard_spend_logs_api_key",
        ),
        (
            "l.team_id = $1 AND l.started_at >= $2",
            "switchyard_spend_logs_team_id",
        ),
        (
            "l.user_id = $1 AND l.started_at >= $2",
            "switchyard_spend_logs_user_id",
        ),
        (
            "l.end_user = $1 AND l.started_at >= $2",
            "switchyard_spend_logs_end_user",
        ),
        (
            "l.request_id = $1 AND l.started_at >= $2",
            "switchyard_spend_logs_request_id",
        ),
        (
            "l.started_at >= $2 AND l.started_at < $2 + length($1)",
            "switchyard_spend_logs_pkey",
        ),
    ] {
        let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN SELECT SUM(l.cost_nanos) FROM switchyard_spend_logs l WHERE {filter}"
        )))
        .bind("x")
        .bind(1_i64)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        let plan: Vec<&str> = plan.iter().map(|p| p.0.as_str()).collect();
        assert!(
            plan.iter().any(|step| step.contains(index)),
            "{filter}: {plan:?}"
        );
    }
    tx.rollback().await.unwrap();
    schema.drop_schema().await;
}

/// A full batch waiting wakes the writer: with an interval far longer than the test, the rows of
/// a full batch are written at once, and fewer rows wait for the interval.
#[tokio::test]
async fn a_full_batch_is_written_before_the_interval() {
    let store: Arc<dyn Store> = Arc::new(switchyard::store::memory::MemoryStore::new());
    let log = switchyard::spend::SpendLog::new(switchyard::spend::SpendSettings {
        queue_size: 100,
        batch_size: 4,
        flush_interval: Duration::from_secs(600),
        spill_file: None,
        ..switchyard::spend::SpendSettings::default()
    });
    log.start(store.clone());
    let rows = |range: std::ops::Range<usize>| range.map(|i| row(&format!("w{i}"), "k1", 1));
    let written = || async {
        store
            .spend_logs(&SpendFilter::default())
            .await
            .unwrap()
            .len()
    };
    // The writer's first look (IDLE_TICK, 1 s) has passed and found nothing.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for row in rows(0..3) {
        log.push(row);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(written().await, 0, "three rows wait for the interval");
    for row in rows(3..4) {
        log.push(row);
    }
    // Well before the writer's next look (about 2 s after it started).
    let deadline = Instant::now() + Duration::from_millis(300);
    while written().await < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        written().await,
        4,
        "the fourth row filled the batch and woke the writer"
    );
    log.shutdown().await;
}

/// Each row says which route it was, with LiteLLM's `call_type` names: a chat completion, a
/// streamed one, an embeddings call and a Responses API call (LiteLLM's SpendLogs column).
#[tokio::test]
async fn rows_name_their_route_as_litellm_does() {
    let mock = mock_upstream(&[]);
    let gw = gateway(
        &format!(
            "model_list:\n  - model_name: gpt\n    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{}/v1', api_key: k}}\nswitchyard_spend: {{flush_interval_ms: 50}}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
            mock.url
        ),
        &[],
    );
    let post = |path: &str, body: Value| {
        let url = format!("{}{path}", gw.url);
        async move {
            let response = client()
                .post(url)
                .bearer_auth(MASTER_KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }
    };
    post("/v1/chat/completions", chat_body("gpt")).await;
    let mut stream = chat_body("gpt");
    stream["stream"] = json!(true);
    post("/v1/chat/completions", stream).await;
    post("/v1/embeddings", json!({"model": "gpt", "input": "hi"})).await;
    post("/v1/responses", json!({"model": "gpt", "input": "hi"})).await;
    let rows = spend_rows(&gw, "", 4).await;
    let mut call_types: Vec<&str> = rows
        .iter()
        .map(|r| r["call_type"].as_str().unwrap())
        .collect();
    call_types.sort();
    assert_eq!(
        call_types,
        [
            "acompletion",
            "acompletion_stream",
            "aembedding",
            "aresponses"
        ]
    );
}
