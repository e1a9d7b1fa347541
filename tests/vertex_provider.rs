//! Vertex AI deployments (Gemini, Claude, embeddings) through the real binary against the mock
//! upstream's Vertex paths and its OAuth token endpoint, which checks the service account's JWT
//! against the test public key (`tests/fixtures/vertex/TEST-ONLY-*`): one token for many calls,
//! a new one after expiry, fallbacks, and a clear refusal to start on bad credentials.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const REPLY: &str = "Hello from the Switchyard mock upstream.";
const PROJECT: &str = "test-project";

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/vertex/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A mock whose token endpoint checks signatures with the test public key.
fn vertex_mock(expires_in: u64) -> Proc {
    let key = fixture("TEST-ONLY-service-account-key.pub.pem");
    let expires = expires_in.to_string();
    mock_upstream(&["--vertex-public-key", &key, "--token-expires-in", &expires])
}

/// A service-account JSON file whose token endpoint is the mock's.
fn service_account_file(mock: &Proc, client_email: &str) -> PathBuf {
    let private_key =
        std::fs::read_to_string(fixture("TEST-ONLY-service-account-key.pem")).unwrap();
    let json = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "test-key-id",
        "private_key": private_key,
        "client_email": client_email,
        "client_id": "1234567890",
        "token_uri": format!("{}/token", mock.url),
    });
    let dir = write_config("").parent().unwrap().to_path_buf();
    let path = dir.join("service-account.json");
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

fn entry(
    name: &str,
    id: &str,
    model: &str,
    mock_url: &str,
    credentials: &std::path::Path,
) -> String {
    format!(
        r#"
  - model_name: {name}
    litellm_params:
      model: vertex_ai/{model}
      vertex_project: {PROJECT}
      vertex_location: us-central1
      vertex_credentials: {credentials}
      api_base: {mock_url}
    model_info:
      id: {id}"#,
        credentials = credentials.display()
    )
}

fn start(expires_in: u64) -> (Proc, Proc) {
    let mock = vertex_mock(expires_in);
    let sa = service_account_file(&mock, "gateway@test-project.iam.gserviceaccount.com");
    let gw = gateway(
        &format!(
            "model_list:{}{}{}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
            entry(
                "gemini",
                "vertex-gemini",
                "gemini-2.0-flash",
                &mock.url,
                &sa
            ),
            entry(
                "claude",
                "vertex-claude",
                "claude-3-5-sonnet-v2@20241022",
                &mock.url,
                &sa
            ),
            entry(
                "embed",
                "vertex-embed",
                "text-embedding-004",
                &mock.url,
                &sa
            ),
        ),
        &[],
    );
    (mock, gw)
}

async fn post(gw: &Proc, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn hello(model: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "Say hello"}]})
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}])
}

fn streamed_text(body: &str) -> String {
    let events = sse_data(body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    events[..events.len() - 1]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

async fn token_requests(mock: &Proc) -> u64 {
    Mock(mock).stats().await["token_requests"].as_u64().unwrap()
}

fn model_requests(requests: &[Value]) -> Vec<&Value> {
    requests
        .iter()
        .filter(|r| r["path"].as_str().unwrap().contains("/projects/"))
        .collect()
}

#[tokio::test]
async fn gemini_claude_and_embeddings_on_vertex_share_one_token() {
    let (mock, gw) = start(3600);
    let base = format!("/v1/projects/{PROJECT}/locations/us-central1/publishers");

    // Gemini, whole.
    let response = post(&gw, "/v1/chat/completions", &hello("gemini")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-model-id"], "vertex-gemini");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], REPLY);
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["path"],
        format!("{base}/google/models/gemini-2.0-flash:generateContent")
    );
    let bearer = seen["headers"]["authorization"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(bearer.starts_with("Bearer ya29.mock-"), "{bearer}");
    assert!(seen["headers"].get("x-goog-api-key").is_none());
    assert_eq!(seen["body"]["contents"][0]["parts"][0]["text"], "Say hello");
    assert_eq!(seen["body"]["generationConfig"]["maxOutputTokens"], 64);

    // Gemini, streamed.
    let mut body = hello("gemini");
    body["stream"] = json!(true);
    let response = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(streamed_text(&response.text().await.unwrap()), REPLY);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["path"],
        format!("{base}/google/models/gemini-2.0-flash:streamGenerateContent")
    );
    assert_eq!(seen["query"], "alt=sse");

    // Gemini with tools.
    let mut body = hello("gemini");
    body["tools"] = weather_tool();
    let answer: Value = post(&gw, "/v1/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );

    // Claude, whole: Anthropic's Messages at rawPredict, Vertex's version, no model.
    let response = post(&gw, "/v1/chat/completions", &hello("claude")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-model-id"], "vertex-claude");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], REPLY);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["path"],
        format!("{base}/anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict")
    );
    assert_eq!(seen["body"]["anthropic_version"], "vertex-2023-10-16");
    assert!(seen["body"].get("model").is_none());
    assert_eq!(seen["headers"]["authorization"], bearer.as_str());

    // Claude, streamed, and with tools.
    let mut body = hello("claude");
    body["stream"] = json!(true);
    let response = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(streamed_text(&response.text().await.unwrap()), REPLY);
    assert!(Mock(&mock).last_request().await["path"]
        .as_str()
        .unwrap()
        .ends_with(":streamRawPredict"));
    let mut body = hello("claude");
    body["tools"] = weather_tool();
    let answer: Value = post(&gw, "/v1/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );

    // Claude through the Anthropic surface: forwarded natively.
    let response = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", MASTER_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude", "max_tokens": 32,
                      "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], REPLY);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["body"]["anthropic_version"], "vertex-2023-10-16");

    // Embeddings over :predict.
    let response = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "embed", "input": ["one", "two"], "dimensions": 8}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);
    assert_eq!(answer["data"][1]["embedding"].as_array().unwrap().len(), 8);
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["path"],
        format!("{base}/google/models/text-embedding-004:predict")
    );
    assert_eq!(seen["body"]["instances"][0]["content"], "one");

    // Eight calls, three deployments of one service account: one token request, one token.
    assert_eq!(token_requests(&mock).await, 1);
    let requests = Mock(&mock).requests().await;
    let calls = model_requests(&requests);
    assert_eq!(calls.len(), 8);
    assert!(calls
        .iter()
        .all(|r| r["headers"]["authorization"] == bearer.as_str()));
}

#[tokio::test]
async fn concurrent_first_calls_wait_for_one_token_and_expiry_fetches_another() {
    // Tokens live 2 s: refreshed after 1 s (half the lifetime, as it is under 10 min).
    let (mock, gw) = start(2);
    let body = hello("gemini");
    let calls = (0..12).map(|_| post(&gw, "/v1/chat/completions", &body));
    for response in futures_util::future::join_all(calls).await {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(token_requests(&mock).await, 1, "single flight");
    let first = Mock(&mock).last_request().await["headers"]["authorization"].clone();

    tokio::time::sleep(Duration::from_millis(1300)).await;
    for _ in 0..3 {
        assert_eq!(
            post(&gw, "/v1/chat/completions", &hello("claude"))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        token_requests(&mock).await,
        2,
        "refreshed once after expiry"
    );
    let second = Mock(&mock).last_request().await["headers"]["authorization"].clone();
    assert_ne!(first, second);
}

#[tokio::test]
async fn a_refused_token_is_a_clear_error_without_secrets() {
    let mock = vertex_mock(3600);
    // The mock refuses an `iss` that is not an email.
    let sa = service_account_file(&mock, "not-an-email");
    let gw = gateway(
        &format!(
            "model_list:{}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
            entry(
                "gemini",
                "vertex-gemini",
                "gemini-2.0-flash",
                &mock.url,
                &sa
            )
        ),
        &[],
    );
    let response = post(&gw, "/v1/chat/completions", &hello("gemini")).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(status == 401 || status == 502, "{status} {text}");
    assert!(text.contains("invalid_grant"), "{text}");
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains("MII"),
        "{text}"
    );
    assert!(model_requests(&Mock(&mock).requests().await).is_empty());
    // Callers waiting on a fetch that fails get its error, and so do those of the next second:
    // they do not each ask the token endpoint again (8 concurrent calls made 8 token
    // requests, one after another).
    let before = token_requests(&mock).await;
    let body = hello("gemini");
    let calls = (0..8).map(|_| post(&gw, "/v1/chat/completions", &body));
    for response in futures_util::future::join_all(calls).await {
        assert!(!response.status().is_success());
    }
    let asked = token_requests(&mock).await - before;
    assert!(asked <= 1, "{asked} token requests for 8 waiting calls");
    let log = gw.stop();
    assert!(
        !log.contains("PRIVATE KEY") && !log.contains("ya29."),
        "{log}"
    );
}

#[tokio::test]
async fn a_failing_vertex_deployment_falls_back_to_openai() {
    let mock = vertex_mock(3600);
    let openai = mock_upstream(&[]);
    let sa = service_account_file(&mock, "gateway@test-project.iam.gserviceaccount.com");
    let gw = gateway(
        &format!(
            r#"model_list:{vertex}
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {openai}/v1
      api_key: sk-openai-test
    model_info:
      id: openai-primary
router_settings:
  num_retries: 0
  fallbacks: [{{"gemini": ["gpt"]}}]
general_settings:
  master_key: {MASTER_KEY}
"#,
            vertex = entry(
                "gemini",
                "vertex-gemini",
                "gemini-2.0-flash",
                &mock.url,
                &sa
            ),
            openai = openai.url
        ),
        &[],
    );
    Mock(&mock)
        .set(json!({"error_rate": 1.0, "error_status": 503}))
        .await;
    for stream in [false, true] {
        let mut body = hello("gemini");
        body["stream"] = json!(stream);
        let response = post(&gw, "/v1/chat/completions", &body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["x-switchyard-model-id"],
            "openai-primary"
        );
    }
    let tried = model_requests(&Mock(&mock).requests().await).len();
    assert_eq!(tried, 2, "vertex was tried first each time");
}

#[tokio::test]
async fn bad_credentials_stop_the_start_with_a_clear_message() {
    let dir = write_config("").parent().unwrap().to_path_buf();
    let broken = dir.join("broken.json");
    std::fs::write(
        &broken,
        r#"{"type":"service_account","client_email":"a@b.c","private_key":"-----BEGIN PRIVATE KEY-----\nMIISECRETSECRET\n-----END PRIVATE KEY-----\n"}"#,
    )
    .unwrap();
    for (credentials, expected) in [
        (
            "/nonexistent/sa.json".to_owned(),
            "cannot read the credentials file",
        ),
        (broken.display().to_string(), "private_key"),
    ] {
        let path = write_config(&format!(
            r#"model_list:
  - model_name: gemini
    litellm_params:
      model: vertex_ai/gemini-2.0-flash
      vertex_project: p
      vertex_credentials: {credentials}
general_settings:
  master_key: {MASTER_KEY}
"#
        ));
        let output = std::process::Command::new(BIN)
            .args(["check", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "{text}");
        assert!(text.contains("model_name `gemini`"), "{text}");
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains("MIISECRET"), "{text}");
    }
    // No credentials at all.
    let path = write_config(&format!(
        "model_list:\n  - model_name: gemini\n    litellm_params:\n      model: vertex_ai/gemini-2.0-flash\n      vertex_project: p\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"
    ));
    let output = std::process::Command::new(BIN)
        .args(["check", "--config", path.to_str().unwrap()])
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env_remove("VERTEXAI_CREDENTIALS")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{text}");
}

/// `/vertex_ai/*` (LiteLLM's Vertex pass-through): the caller's virtual key is checked, the
/// request goes on with the configured deployment's OAuth token instead.
#[tokio::test]
async fn vertex_passthrough_uses_the_deployment_token() {
    let (mock, gw) = start(3600);
    let path = format!(
        "/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
    );
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]});
    let response = client()
        .post(format!("{}/vertex_ai{path}", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["candidates"][0]["content"]["parts"][0]["text"],
        REPLY
    );
    let seen = Mock(&mock).last_request().await;
    assert_eq!(seen["path"], path);
    let bearer = seen["headers"]["authorization"].as_str().unwrap();
    assert!(bearer.starts_with("Bearer ya29.mock-"), "{bearer}");
    assert!(!bearer.contains(MASTER_KEY));

    // Streamed (the query goes on), and Claude's rawPredict.
    let response = client()
        .post(format!(
            "{}/vertex_ai{}?alt=sse",
            gw.url,
            path.replace(":generateContent", ":streamGenerateContent")
        ))
        .bearer_auth(MASTER_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(response.text().await.unwrap().contains("finishReason"));
    let response = client()
        .post(format!(
            "{}/vertex_ai/v1/projects/{PROJECT}/locations/us-central1/publishers/anthropic/models/claude-3-5-haiku@20241022:rawPredict",
            gw.url
        ))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], REPLY);
    assert_eq!(token_requests(&mock).await, 1);

    // A wrong caller key never reaches the upstream.
    let before = Mock(&mock).requests().await.len();
    let response = client()
        .post(format!("{}/vertex_ai{path}", gw.url))
        .bearer_auth("sk-wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(Mock(&mock).requests().await.len(), before);
}

/// `authorized_user` credentials (what `gcloud auth application-default login` writes), given
/// through GOOGLE_APPLICATION_CREDENTIALS: a refresh-token grant, the project from the
/// environment.
#[tokio::test]
async fn authorized_user_credentials_from_the_environment() {
    let mock = vertex_mock(3600);
    let dir = write_config("").parent().unwrap().to_path_buf();
    let adc = dir.join("application_default_credentials.json");
    std::fs::write(
        &adc,
        json!({"type": "authorized_user", "client_id": "cid.apps.googleusercontent.com",
               "client_secret": "test-client-secret", "refresh_token": "1//test-refresh-token",
               "token_uri": format!("{}/token", mock.url)})
        .to_string(),
    )
    .unwrap();
    let gw = gateway(
        &format!(
            "model_list:\n  - model_name: gemini\n    litellm_params:\n      model: vertex_ai/gemini-2.0-flash\n      api_base: {}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
            mock.url
        ),
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", adc.to_str().unwrap()),
            ("VERTEXAI_PROJECT", "env-project"),
            ("VERTEXAI_LOCATION", "europe-west4"),
        ],
    );
    let response = post(&gw, "/v1/chat/completions", &hello("gemini")).await;
    assert_eq!(response.status(), 200);
    let seen = Mock(&mock).last_request().await;
    assert_eq!(
        seen["path"],
        "/v1/projects/env-project/locations/europe-west4/publishers/google/models/gemini-2.0-flash:generateContent"
    );
    assert!(seen["headers"]["authorization"]
        .as_str()
        .unwrap()
        .starts_with("Bearer ya29.mock-"));
    assert_eq!(token_requests(&mock).await, 1);
}

/// The mock's token endpoint is a real check: a JWT signed with the test key passes, the same
/// claims with a forged signature or a wrong audience do not, and a token it did not issue (or
/// that expired) is refused on the model paths.
#[tokio::test]
async fn the_mock_token_endpoint_checks_signature_and_claims() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use switchyard::providers::vertex::auth::{assertion, key_pair_from_pem};

    let mock = vertex_mock(1);
    let key = key_pair_from_pem(
        &std::fs::read_to_string(fixture("TEST-ONLY-service-account-key.pem")).unwrap(),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token_uri = format!("{}/token", mock.url);
    let ask = |jwt: String| {
        let token_uri = token_uri.clone();
        async move {
            let response = client()
                .post(&token_uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}"
                ))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let email = "gateway@test-project.iam.gserviceaccount.com";
    let good = assertion(email, None, &key, &token_uri, now).unwrap();
    let (status, answer) = ask(good.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 1);
    let token = answer["access_token"].as_str().unwrap().to_owned();

    // Same header and claims, another signature.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[2] = URL_SAFE_NO_PAD.encode([7u8; 256]);
    let (status, answer) = ask(parts.join(".")).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"], "invalid_grant");
    assert_eq!(answer["error_description"], "Invalid JWT Signature.");
    // A wrong audience, or an assertion from long ago.
    let (status, _) =
        ask(assertion(email, None, &key, "https://elsewhere.example/x", now).unwrap()).await;
    assert_eq!(status, 400);
    let (status, _) = ask(assertion(email, None, &key, &token_uri, now - 7200).unwrap()).await;
    assert_eq!(status, 400);

    let call = |bearer: String| {
        let url = format!(
            "{}/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent",
            mock.url
        );
        async move {
            client()
                .post(url)
                .bearer_auth(bearer)
                .json(&json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(call(token.clone()).await, 200);
    assert_eq!(call("ya29.not-issued".into()).await, 401);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(call(token).await, 401, "expired");
}
