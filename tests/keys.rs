//! Virtual keys through the real binary: LiteLLM's management API shapes, model access (key,
//! team, access groups, end users), roles, and every way a key stops working.

mod common;
mod routing;

use std::time::Duration;

use common::*;
use routing::*;
use serde_json::{json, Value};

fn gateway_config() -> String {
    config(
        &[
            offline(
                "chat",
                "c1",
                "hello from chat",
                "",
                ", access_groups: [beta]",
            ),
            offline("other", "o1", "hello from other", "", ""),
            offline(
                "beta-only",
                "b1",
                "hello from beta",
                "",
                ", access_groups: [beta]",
            ),
        ],
        "",
    )
}

async fn admin(gw: &Proc, path: &str, body: Value) -> (u16, Value) {
    call(gw, MASTER_KEY, path, Some(body)).await
}

async fn call(gw: &Proc, key: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = client();
    let request = match body {
        Some(body) => client.post(format!("{}{path}", gw.url)).json(&body),
        None => client.get(format!("{}{path}", gw.url)),
    };
    let response = request.bearer_auth(key).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn chat_with(gw: &Proc, key: &str, body: Value) -> (u16, Value) {
    call(gw, key, "/v1/chat/completions", Some(body)).await
}

#[tokio::test]
async fn a_scoped_key_reaches_its_models_and_nothing_else() {
    let gw = gateway(&gateway_config(), &[]);
    let (status, made) = admin(
        &gw,
        "/key/generate",
        json!({"models": ["chat"], "key_alias": "web-app", "metadata": {"owner": "web"}, "rpm_limit": 100}),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-") && key.len() >= 35, "{key}");
    assert_eq!(made["key_alias"], "web-app");
    assert_eq!(made["token"].as_str().unwrap().len(), 64);
    assert!(made["key_name"]
        .as_str()
        .unwrap()
        .ends_with(&key[key.len() - 4..]));
    assert_eq!(made["rpm_limit"], 100);

    let (status, answer) = chat_with(&gw, &key, chat_body("chat")).await;
    assert_eq!(status, 200, "{answer}");
    let (status, error) = chat_with(&gw, &key, chat_body("other")).await;
    assert_eq!(status, 403, "{error}");
    assert_eq!(error["error"]["type"], "key_model_access_denied");
    assert!(
        error["error"]["message"].as_str().unwrap().contains("chat"),
        "{error}"
    );

    // A fallback the key may not use is refused, naming it.
    let mut body = chat_body("chat");
    body["fallbacks"] = json!(["other"]);
    let (status, error) = chat_with(&gw, &key, body).await;
    assert_eq!(status, 403, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fallbacks[0]"),
        "{error}"
    );

    // /v1/models still answers; the management routes do not, but its own key info does.
    let (status, _) = call(&gw, &key, "/key/generate", Some(json!({}))).await;
    assert_eq!(status, 403);
    let (status, _) = call(&gw, &key, "/config/reload", Some(json!({}))).await;
    assert_eq!(status, 403);
    let (status, _) = call(&gw, &key, "/key/list", None).await;
    assert_eq!(status, 403);
    let (status, info) = call(&gw, &key, "/key/info", None).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["info"]["key_alias"], "web-app");
    assert_eq!(info["info"]["metadata"]["owner"], "web");
    let (_, other) = admin(&gw, "/key/generate", json!({})).await;
    let other_key = other["key"].as_str().unwrap();
    let (status, _) = call(&gw, &key, &format!("/key/info?key={other_key}"), None).await;
    assert_eq!(status, 403);

    // The master key lists keys by hash (LiteLLM's default) or as objects.
    let (status, listed) = call(&gw, MASTER_KEY, "/key/list", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["total_count"], 2);
    assert!(listed["keys"].as_array().unwrap().contains(&made["token"]));
    let (_, full) = call(
        &gw,
        MASTER_KEY,
        "/key/list?return_full_object=true&key_alias=web-app",
        None,
    )
    .await;
    assert_eq!(full["keys"][0]["key_alias"], "web-app");

    let log = gw.shutdown();
    assert!(!log.contains(&key), "the virtual key leaked into the log");
    assert!(
        log.contains("caller=\"web-app\""),
        "the access line names the alias"
    );
}

#[tokio::test]
async fn every_way_a_key_stops_working_says_which() {
    let gw = gateway(&gateway_config(), &[]);
    let (status, error) = chat_with(&gw, "sk-not-a-real-key-9876", chat_body("chat")).await;
    assert_eq!(status, 401);
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("9876") && !message.contains("not-a-real"),
        "{message}"
    );

    let (_, made) = admin(&gw, "/key/generate", json!({})).await;
    let key = made["key"].as_str().unwrap().to_owned();

    let (status, blocked) = admin(&gw, "/key/block", json!({"key": key})).await;
    assert_eq!((status, &blocked["blocked"]), (200, &json!(true)));
    let (status, error) = chat_with(&gw, &key, chat_body("chat")).await;
    assert_eq!(status, 401);
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("blocked"), "{message}");
    assert!(
        message.contains(&key[key.len() - 4..]),
        "names the last four: {message}"
    );
    assert!(
        !message.contains(&key[3..key.len() - 4]),
        "never more: {message}"
    );
    admin(&gw, "/key/unblock", json!({"key": made["token"]})).await;
    assert_eq!(chat_with(&gw, &key, chat_body("chat")).await.0, 200);

    // Regenerated: the old key is gone, the new one works with the same settings.
    let (status, fresh) = admin(&gw, "/key/regenerate", json!({"key": key})).await;
    assert_eq!(status, 200, "{fresh}");
    let new_key = fresh["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(chat_with(&gw, &key, chat_body("chat")).await.0, 401);
    assert_eq!(chat_with(&gw, &new_key, chat_body("chat")).await.0, 200);

    let (status, deleted) = admin(&gw, "/key/delete", json!({"keys": [new_key]})).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["deleted_keys"], json!([new_key]));
    let (status, error) = chat_with(&gw, &new_key, chat_body("chat")).await;
    assert_eq!(status, 401);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deleted"),
        "{error}"
    );

    let (_, short) = admin(&gw, "/key/generate", json!({"duration": "1s"})).await;
    assert!(short["expires"].is_string(), "{short}");
    let short_key = short["key"].as_str().unwrap();
    assert_eq!(chat_with(&gw, short_key, chat_body("chat")).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, error) = chat_with(&gw, short_key, chat_body("chat")).await;
    assert_eq!(status, 401);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{error}"
    );

    // Deleting an unknown key deletes nothing and says so.
    let (status, _) = admin(&gw, "/key/delete", json!({"keys": ["sk-nope-nope-nope"]})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn teams_access_groups_end_users_and_routes() {
    let gw = gateway(&gateway_config(), &[]);
    let (status, team) = admin(
        &gw,
        "/team/new",
        json!({"team_alias": "research", "models": ["beta"], "members_with_roles": [{"role": "admin", "user_id": "u1"}]}),
    )
    .await;
    assert_eq!(status, 200, "{team}");
    let team_id = team["team_id"].as_str().unwrap().to_owned();
    let (_, made) = admin(
        &gw,
        "/key/generate",
        json!({"team_id": team_id, "models": ["all-team-models"]}),
    )
    .await;
    let key = made["key"].as_str().unwrap().to_owned();
    // The team's access group `beta` holds `chat` and `beta-only`, not `other`.
    assert_eq!(chat_with(&gw, &key, chat_body("beta-only")).await.0, 200);
    assert_eq!(chat_with(&gw, &key, chat_body("chat")).await.0, 200);
    let (status, error) = chat_with(&gw, &key, chat_body("other")).await;
    assert_eq!(status, 403);
    assert_eq!(error["error"]["type"], "team_model_access_denied");
    let (status, info) = call(&gw, &key, "/team/info", None).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["team_info"]["team_alias"], "research");
    assert_eq!(info["keys"].as_array().unwrap().len(), 1);

    // A blocked team blocks its keys.
    admin(
        &gw,
        "/team/update",
        json!({"team_id": team_id, "blocked": true}),
    )
    .await;
    assert_eq!(chat_with(&gw, &key, chat_body("chat")).await.0, 401);
    admin(
        &gw,
        "/team/update",
        json!({"team_id": team_id, "blocked": false}),
    )
    .await;

    // End users: blocked, or limited to some models, whatever key they come with.
    admin(
        &gw,
        "/customer/new",
        json!({"user_id": "cust-1", "models": ["chat"]}),
    )
    .await;
    let mut body = chat_body("beta-only");
    body["user"] = json!("cust-1");
    let (status, error) = chat_with(&gw, MASTER_KEY, body).await;
    assert_eq!(status, 403);
    assert_eq!(error["error"]["type"], "end_user_model_access_denied");
    admin(&gw, "/end_user/block", json!({"user_ids": ["cust-1"]})).await;
    let mut body = chat_body("chat");
    body["user"] = json!("cust-1");
    assert_eq!(chat_with(&gw, MASTER_KEY, body).await.0, 403);
    let (status, customer) = call(&gw, MASTER_KEY, "/customer/info?end_user_id=cust-1", None).await;
    assert_eq!((status, &customer["blocked"]), (200, &json!(true)));

    // allowed_routes: this key may only call the LLM routes.
    let (_, limited) = admin(
        &gw,
        "/key/generate",
        json!({"allowed_routes": ["llm_api_routes"]}),
    )
    .await;
    let limited = limited["key"].as_str().unwrap();
    assert_eq!(chat_with(&gw, limited, chat_body("chat")).await.0, 200);
    assert_eq!(call(&gw, limited, "/key/info", None).await.0, 403);

    // Users: a proxy_admin user's key manages; a viewer's key reads but cannot write.
    let (status, admin_user) = admin(
        &gw,
        "/user/new",
        json!({"user_id": "ops", "user_role": "proxy_admin"}),
    )
    .await;
    assert_eq!(status, 200, "{admin_user}");
    let ops_key = admin_user["key"].as_str().unwrap();
    assert_eq!(
        call(&gw, ops_key, "/key/generate", Some(json!({}))).await.0,
        200
    );
    let (_, viewer) = admin(
        &gw,
        "/user/new",
        json!({"user_id": "audit", "user_role": "proxy_admin_viewer"}),
    )
    .await;
    let viewer_key = viewer["key"].as_str().unwrap();
    assert_eq!(call(&gw, viewer_key, "/key/list", None).await.0, 200);
    assert_eq!(
        call(&gw, viewer_key, "/key/generate", Some(json!({})))
            .await
            .0,
        403
    );
    let (status, me) = call(&gw, viewer_key, "/user/info", None).await;
    assert_eq!(
        (status, &me["user_info"]["user_role"]),
        (200, &json!("proxy_admin_viewer"))
    );

    // `curl -d` sends a form content type: the JSON is read all the same.
    let response = client()
        .post(format!("{}/key/generate", gw.url))
        .bearer_auth(MASTER_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"models": ["chat"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, error) = call(&gw, MASTER_KEY, "/key/update", Some(json!({}))).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["param"], "key");

    // Hostile management input is a clear 400, and the gateway keeps serving.
    let (status, error) = admin(
        &gw,
        "/key/generate",
        json!({"rpm_limit": "lots", "models": "chat"}),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    let (status, _) = admin(&gw, "/key/generate", json!({"duration": "forever"})).await;
    assert_eq!(status, 400);
    let (status, error) = admin(&gw, "/key/generate", json!({"metadata": {"note": "a\0b"}})).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("NUL"));
    assert_eq!(chat_with(&gw, MASTER_KEY, chat_body("chat")).await.0, 200);
}

#[tokio::test]
async fn keys_survive_a_restart_in_the_default_sqlite_file() {
    let path = write_config(&gateway_config());
    let gw = serve_file(&path, &[], &[]);
    let (_, made) = admin(
        &gw,
        "/key/generate",
        json!({"key_alias": "kept", "models": ["chat"]}),
    )
    .await;
    let key = made["key"].as_str().unwrap().to_owned();
    drop(gw.shutdown());
    assert!(
        path.parent().unwrap().join("switchyard.db").exists(),
        "the default database sits next to the config"
    );
    let gw = serve_file(&path, &[], &[]);
    assert_eq!(chat_with(&gw, &key, chat_body("chat")).await.0, 200);
    assert_eq!(chat_with(&gw, &key, chat_body("other")).await.0, 403);
    let (status, ready) = call(&gw, MASTER_KEY, "/health/readiness", None).await;
    assert_eq!(
        (status, &ready["db"], &ready["db_kind"]),
        (200, &json!("connected"), &json!("sqlite"))
    );
}
