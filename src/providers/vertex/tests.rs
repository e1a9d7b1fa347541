//! Vertex AI: the OAuth assertion, credentials reading, URLs, and the Gemini, Anthropic and
//! embeddings bodies as Vertex AI's REST reference has them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::auth::{assertion, key_pair_from_pem, GoogleKey, SCOPE};
use super::*;
use crate::providers::testing::{fixture, upstream};
use crate::providers::HttpProvider;
use crate::schema::{ChatRequest, PassthroughRequest};

fn private_pem() -> String {
    fixture("vertex/TEST-ONLY-service-account-key.pem")
}

fn service_account(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "sa-project",
        "private_key_id": "test-key-id",
        "private_key": private_pem(),
        "client_email": "gateway@sa-project.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    })
    .to_string()
}

fn chat(value: Value) -> ChatRequest {
    serde_json::from_value(value).unwrap()
}

fn b64_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn assertion_is_an_rs256_jwt_that_the_public_key_verifies() {
    let key = key_pair_from_pem(&private_pem()).unwrap();
    let jwt = assertion(
        "gateway@sa-project.iam.gserviceaccount.com",
        Some("test-key-id"),
        &key,
        "https://oauth2.googleapis.com/token",
        1_700_000_000,
    )
    .unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        b64_json(parts[0]),
        json!({"alg": "RS256", "typ": "JWT", "kid": "test-key-id"})
    );
    assert_eq!(
        b64_json(parts[1]),
        json!({
            "iss": "gateway@sa-project.iam.gserviceaccount.com",
            "scope": SCOPE,
            "aud": "https://oauth2.googleapis.com/token",
            "iat": 1_700_000_000u64,
            "exp": 1_700_003_600u64,
        })
    );
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let signed = format!("{}.{}", parts[0], parts[1]);
    // The public key as the committed fixture has it (PKCS#1 PEM, from `openssl rsa
    // -RSAPublicKey_out`), and as the key pair reports it: both verify.
    let public_pem = fixture("vertex/TEST-ONLY-service-account-key.pub.pem");
    let body: String = public_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let public_der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    assert_eq!(public_der, key.public().as_ref());
    let verifier = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &public_der,
    );
    verifier.verify(signed.as_bytes(), &signature).unwrap();
    // A changed claim no longer verifies.
    let forged = format!(
        "{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(b"{\"iss\":\"x\"}")
    );
    assert!(verifier.verify(forged.as_bytes(), &signature).is_err());
}

#[test]
fn credentials_json_kinds_and_their_errors() {
    let key = GoogleKey::from_json(&service_account("http://127.0.0.1:9/token")).unwrap();
    assert_eq!(key.project_id(), Some("sa-project"));
    assert_eq!(key.token_uri(), "http://127.0.0.1:9/token");
    let shown = format!("{key:?}");
    assert!(
        !shown.contains("PRIVATE KEY") && !shown.contains("MII"),
        "{shown}"
    );

    let user = GoogleKey::from_json(
        r#"{"type":"authorized_user","client_id":"cid","client_secret":"csecret-value","refresh_token":"1//refresh-value","quota_project_id":"quota-p"}"#,
    )
    .unwrap();
    assert_eq!(user.token_uri(), auth::GOOGLE_TOKEN_URI);
    assert_eq!(user.project_id(), Some("quota-p"));
    let shown = format!("{user:?}");
    assert!(
        !shown.contains("csecret-value") && !shown.contains("refresh-value"),
        "{shown}"
    );

    let pem = private_pem();
    let mut broken: Value = serde_json::from_str(&service_account("https://x/token")).unwrap();
    broken["private_key"] = pem.replace("MII", "!!!").into();
    let err = GoogleKey::from_json(&broken.to_string()).unwrap_err();
    assert!(err.contains("private_key"), "{err}");
    assert!(
        !err.contains("!!!"),
        "the key never appears in the error: {err}"
    );
    broken["private_key"] = pem[..200].into();
    let err = GoogleKey::from_json(&broken.to_string()).unwrap_err();
    assert!(err.contains("private_key"), "{err}");
    broken["private_key"] = Value::Null;
    assert_eq!(
        GoogleKey::from_json(&broken.to_string()).unwrap_err(),
        "has no `private_key`"
    );
    let err = GoogleKey::from_json(r#"{"type":"external_account"}"#).unwrap_err();
    assert!(err.contains("service_account, authorized_user"), "{err}");
    let err = GoogleKey::from_json("not json at all").unwrap_err();
    assert!(!err.contains("not json"), "{err}");
    // Keys written with literal `\n` (hand-edited JSON) are read too.
    broken["private_key"] = pem.replace('\n', "\\n").into();
    assert!(GoogleKey::from_json(&broken.to_string()).is_ok());
}

#[test]
fn urls_for_each_location_and_model_kind() {
    let base = project_base(None, "v1", "my-proj", "us-central1");
    assert_eq!(
        base,
        "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1"
    );
    assert_eq!(
        project_base(None, "v1", "my-proj", "global"),
        "https://aiplatform.googleapis.com/v1/projects/my-proj/locations/global"
    );
    assert_eq!(
        project_base(
            Some("http://127.0.0.1:8080/"),
            "v1beta1",
            "p",
            "europe-west4"
        ),
        "http://127.0.0.1:8080/v1beta1/projects/p/locations/europe-west4"
    );
    assert_eq!(
        project_base(Some("https://proxy.example/v1"), "v1", "p", "us-east5"),
        "https://proxy.example/v1/projects/p/locations/us-east5"
    );
    assert_eq!(
        url(&base, Kind::Gemini, "gemini-2.0-flash", "generateContent"),
        format!("{base}/publishers/google/models/gemini-2.0-flash:generateContent")
    );
    assert_eq!(
        url(
            &base,
            Kind::of("gemini/gemini-2.0-flash"),
            "gemini/gemini-2.0-flash",
            "predict"
        ),
        format!("{base}/publishers/google/models/gemini-2.0-flash:predict")
    );
    assert_eq!(
        url(
            &base,
            Kind::of("claude-3-5-sonnet-v2@20241022"),
            "claude-3-5-sonnet-v2@20241022",
            "streamRawPredict"
        ),
        format!(
            "{base}/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:streamRawPredict"
        )
    );
    assert_eq!(Kind::of("text-embedding-004"), Kind::Gemini);
    assert_eq!(
        host_of("https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/l"),
        "https://us-central1-aiplatform.googleapis.com"
    );
    assert_eq!(
        host_of("http://127.0.0.1:9/prefix/v1beta1/projects/p/locations/l"),
        "http://127.0.0.1:9/prefix"
    );
}

fn vertex_upstream(model: &str) -> crate::providers::Upstream {
    let mut up = upstream(model);
    up.api_key = None;
    up.base_url = project_base(None, "v1", "my-proj", "us-central1");
    up
}

#[test]
fn gemini_on_vertex_is_the_gemini_body_at_the_vertex_url() {
    let provider = Vertex::new("vertex_ai", Kind::Gemini);
    let request = chat(json!({"model": "g", "max_tokens": 50, "temperature": 0.2,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}));
    let built = provider
        .chat_request(&vertex_upstream("gemini-2.0-flash"), &request)
        .unwrap();
    assert_eq!(
        built.url,
        "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
    );
    assert!(!built.headers.contains_key("x-goog-api-key"));
    let body: Value = serde_json::from_slice(&built.body).unwrap();
    let expected =
        gemini::request::to_gemini(&request, &mut Dropped::new("gemini", false)).unwrap();
    assert_eq!(body, serde_json::to_value(expected).unwrap());
    assert_eq!(body["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(body["contents"][0]["role"], "user");
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 50);

    let stream = chat(
        json!({"model": "g", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}),
    );
    let built = provider
        .chat_request(&vertex_upstream("gemini-2.0-flash"), &stream)
        .unwrap();
    assert!(built
        .url
        .ends_with("/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"));

    // Express mode: a deployment key goes in `x-goog-api-key`, never in the URL.
    let mut keyed = vertex_upstream("gemini-2.0-flash");
    keyed.api_key = Some(crate::config::Secret::new("express-key".into()));
    let built = provider.chat_request(&keyed, &request).unwrap();
    assert_eq!(built.headers["x-goog-api-key"], "express-key");
    assert!(!built.url.contains("express-key"));
}

#[test]
fn claude_on_vertex_is_anthropic_messages_with_the_vertex_version_and_no_model() {
    let provider = Vertex::new("vertex_ai", Kind::Anthropic);
    let request = chat(json!({"model": "c", "max_tokens": 100,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}));
    let up = vertex_upstream("claude-3-5-sonnet-v2@20241022");
    let built = provider.chat_request(&up, &request).unwrap();
    assert_eq!(
        built.url,
        "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict"
    );
    assert!(!built.headers.contains_key("x-api-key"));
    assert!(!built.headers.contains_key("anthropic-version"));
    let body: Value = serde_json::from_slice(&built.body).unwrap();
    assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
    assert!(body.get("model").is_none(), "{body}");
    assert_eq!(body["max_tokens"], 100);
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(body["messages"], json!([{"role": "user", "content": "Hi"}]));
    assert_eq!(body["tools"][0]["name"], "get_weather");
    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");

    let stream = chat(json!({"model": "c", "max_tokens": 10, "stream": true,
        "messages": [{"role": "user", "content": "Hi"}]}));
    let built = provider.chat_request(&up, &stream).unwrap();
    assert!(built.url.ends_with(":streamRawPredict"));
    let body: Value = serde_json::from_slice(&built.body).unwrap();
    assert_eq!(body["stream"], true);

    // A `/v1/messages` request goes natively, the same way.
    let native: crate::providers::anthropic::wire::MessagesRequest = serde_json::from_value(
        json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .unwrap();
    let built = provider
        .native_messages_request(
            &up,
            MessagesEndpoint::Create,
            &native,
            &ClientHeaders::default(),
        )
        .unwrap()
        .unwrap();
    assert!(built.url.ends_with(":rawPredict"));
    let body: Value = serde_json::from_slice(&built.body).unwrap();
    assert_eq!(
        body,
        json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 5,
               "messages": [{"role": "user", "content": "Hi"}]})
    );
    // Gemini deployments translate `/v1/messages` instead.
    assert!(Vertex::new("vertex_ai", Kind::Gemini)
        .native_messages_request(
            &up,
            MessagesEndpoint::Create,
            &native,
            &ClientHeaders::default()
        )
        .is_none());
}

#[test]
fn answers_and_errors_are_read_in_each_family_format() {
    let gemini = Vertex::new("vertex_ai", Kind::Gemini);
    let completion = gemini
        .chat_response(
            br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hello"}]},"finishReason":"STOP"}],
                "usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,"totalTokenCount":4},
                "modelVersion":"gemini-2.0-flash"}"#,
        )
        .unwrap();
    assert_eq!(
        completion.choices[0].message.content.as_deref(),
        Some("Hello")
    );
    let claude = Vertex::new("vertex_ai", Kind::Anthropic);
    let completion = claude
        .chat_response(
            br#"{"id":"msg_vrtx_01","type":"message","role":"assistant","model":"claude-3-5-sonnet-v2-20241022",
                "content":[{"type":"text","text":"Hi there"}],"stop_reason":"end_turn","stop_sequence":null,
                "usage":{"input_tokens":5,"output_tokens":3}}"#,
        )
        .unwrap();
    assert_eq!(
        completion.choices[0].message.content.as_deref(),
        Some("Hi there")
    );
    assert!(gemini.chat_response(b"{not json").is_err());

    let headers = HeaderMap::new();
    let google = br#"{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com","status":"RESOURCE_EXHAUSTED"}}"#;
    let err = claude.error_response(429, &headers, google);
    assert!(err.to_string().contains("Quota exceeded"), "{err}");
    let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
    let err = claude.error_response(400, &headers, anthropic);
    assert!(
        err.to_string().contains("max_tokens: Field required"),
        "{err}"
    );
}

#[test]
fn embeddings_map_to_predict_and_back() {
    let request: PassthroughRequest = serde_json::from_value(json!({
        "model": "emb", "input": ["first", "second"], "dimensions": 256,
        "task_type": "RETRIEVAL_DOCUMENT"}))
    .unwrap();
    assert_eq!(
        embed::to_predict(&request).unwrap(),
        json!({"instances": [
                {"content": "first", "task_type": "RETRIEVAL_DOCUMENT"},
                {"content": "second", "task_type": "RETRIEVAL_DOCUMENT"}],
               "parameters": {"outputDimensionality": 256}})
    );
    let provider = Vertex::new("vertex_ai", Kind::Gemini);
    let built = provider
        .passthrough_request(
            &vertex_upstream("text-embedding-004"),
            PassthroughEndpoint::Embeddings,
            &request,
        )
        .unwrap();
    assert!(built
        .url
        .ends_with("/publishers/google/models/text-embedding-004:predict"));
    // The answer shape of Vertex AI's text embeddings reference.
    let answer = br#"{"predictions":[
        {"embeddings":{"statistics":{"truncated":false,"token_count":2},"values":[0.5,-0.25]}},
        {"embeddings":{"statistics":{"truncated":false,"token_count":3},"values":[0.125,1]}}],
        "metadata":{"billableCharacterCount":11}}"#;
    let response = provider
        .passthrough_response(PassthroughEndpoint::Embeddings, &request, answer)
        .unwrap();
    let value = serde_json::to_value(&response).unwrap();
    assert_eq!(value["object"], "list");
    assert_eq!(value["data"][1]["index"], 1);
    assert_eq!(value["data"][1]["embedding"], json!([0.125, 1.0]));
    assert_eq!(
        value["usage"],
        json!({"prompt_tokens": 5, "total_tokens": 5})
    );
    assert_eq!(response.usage().unwrap().prompt_tokens, 5);

    for bad in [json!([1, 2, 3]), json!([]), json!(42)] {
        let request: PassthroughRequest =
            serde_json::from_value(json!({"model": "emb", "input": bad})).unwrap();
        assert!(embed::to_predict(&request).is_err());
    }
    assert!(embed::from_predict(&request, "emb", b"{\"predictions\": 3}").is_err());
    assert!(provider
        .passthrough_request(
            &vertex_upstream("gemini-2.0-flash"),
            PassthroughEndpoint::Completions,
            &request
        )
        .is_err());
}

fn deployment(yaml_params: &str) -> crate::config::DeploymentConfig {
    let yaml = format!("model_list:\n- model_name: v\n  litellm_params:\n{yaml_params}");
    let loaded = crate::config::parse(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        loaded.warnings.iter().all(|w| !w.contains("vertex_")),
        "{:?}",
        loaded.warnings
    );
    loaded.config.deployments[0].clone()
}

#[test]
fn prepare_reads_project_location_and_credentials_as_litellm_does() {
    let dir = std::env::temp_dir().join(format!("switchyard-vertex-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sa.json");
    std::fs::write(&file, service_account("http://127.0.0.1:9/token")).unwrap();

    // A file path; the project from the credentials; LiteLLM's default location.
    let d = deployment(&format!(
        "    model: vertex_ai/gemini-2.0-flash\n    vertex_credentials: {}\n",
        file.display()
    ));
    let prepared = prepare(&d, false, &|_| None).unwrap();
    assert_eq!(
        prepared.base_url.as_deref(),
        Some("https://us-central1-aiplatform.googleapis.com/v1/projects/sa-project/locations/us-central1")
    );
    assert!(prepared.credentials.is_some());
    assert_eq!(prepared.provider.as_ref().unwrap().name(), "vertex_ai");

    // Inline JSON (a YAML mapping), params over the environment, api_base as the host.
    let inline: Value = serde_json::from_str(&service_account("http://127.0.0.1:9/token")).unwrap();
    let d = deployment(&format!(
        "    model: vertex_ai_beta/claude-3-5-haiku@20241022\n    vertex_project: p1\n    vertex_location: europe-west1\n    api_base: http://127.0.0.1:9\n    vertex_credentials: {inline}\n"
    ));
    let env = |name: &str| match name {
        "VERTEXAI_PROJECT" => Some("env-project".to_owned()),
        "VERTEXAI_LOCATION" => Some("asia-east1".to_owned()),
        _ => None,
    };
    let prepared = prepare(&d, false, &env).unwrap();
    assert_eq!(
        prepared.base_url.as_deref(),
        Some("http://127.0.0.1:9/v1beta1/projects/p1/locations/europe-west1")
    );
    assert_eq!(prepared.provider.as_ref().unwrap().name(), "vertex_ai_beta");

    // The environment: VERTEXAI_* over the credentials' project; GOOGLE_APPLICATION_CREDENTIALS.
    let d = deployment("    model: vertex_ai/text-embedding-004\n");
    let path = file.display().to_string();
    let env = |name: &str| match name {
        "VERTEXAI_PROJECT" => Some("env-project".to_owned()),
        "VERTEXAI_LOCATION" => Some("global".to_owned()),
        "GOOGLE_APPLICATION_CREDENTIALS" => Some(path.clone()),
        _ => None,
    };
    let prepared = prepare(&d, false, &env).unwrap();
    assert_eq!(
        prepared.base_url.as_deref(),
        Some("https://aiplatform.googleapis.com/v1/projects/env-project/locations/global")
    );

    // No credentials: an error that says what to set; with an api_key (express mode), none
    // needed.
    let err = prepare(&d, false, &|_| None).err().unwrap();
    assert!(
        err.contains("vertex_credentials") && err.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{err}"
    );
    let err = prepare(&d, true, &|_| None).err().unwrap();
    assert!(err.contains("vertex_project"), "{err}");
    let d = deployment("    model: vertex_ai/gemini-2.0-flash\n    vertex_project: p\n");
    assert!(prepare(&d, true, &|_| None).unwrap().credentials.is_none());
    for unsupported in [
        "vertex_ai/meta/llama-3.1-405b-instruct-maas",
        "vertex_ai/1234567890",
    ] {
        let d = deployment(&format!(
            "    model: {unsupported}\n    vertex_project: p\n"
        ));
        let err = prepare(&d, true, &|_| None).err().unwrap();
        assert!(err.contains("not supported"), "{err}");
    }

    // Unreadable and invalid credentials: errors naming the problem, never the key.
    let d = deployment(
        "    model: vertex_ai/gemini-2.0-flash\n    vertex_credentials: /nonexistent/sa.json\n",
    );
    let err = prepare(&d, false, &|_| None).err().unwrap();
    assert!(
        err.contains("/nonexistent/sa.json") && err.contains("cannot read"),
        "{err}"
    );
    let mut bad: Value = serde_json::from_str(&service_account("http://x/token")).unwrap();
    bad["private_key"] =
        "-----BEGIN PRIVATE KEY-----\nMIIBroken\n-----END PRIVATE KEY-----\n".into();
    std::fs::write(&file, bad.to_string()).unwrap();
    let d = deployment(&format!(
        "    model: vertex_ai/gemini-2.0-flash\n    vertex_credentials: {}\n",
        file.display()
    ));
    let err = prepare(&d, false, &|_| None).err().unwrap();
    assert!(
        err.contains("private_key") && !err.contains("MIIBroken"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn vertex_models_are_priced_from_the_table() {
    for (model, entry) in [
        ("vertex_ai/gemini-2.0-flash", "gemini-2.0-flash"),
        ("vertex_ai/gemini/gemini-2.0-flash", "gemini-2.0-flash"),
        ("vertex_ai_beta/gemini-2.0-flash", "gemini-2.0-flash"),
        (
            "vertex_ai/claude-sonnet-4-5@20250929",
            "vertex_ai/claude-sonnet-4-5@20250929",
        ),
        ("vertex_ai/text-embedding-004", "text-embedding-004"),
    ] {
        let d = deployment(&format!("    model: {model}\n"));
        assert!(d.price.is_some(), "{model}");
        let found = d.price_entry.unwrap();
        assert!(
            found == entry || found == format!("vertex_ai/{entry}"),
            "{model}: {found}"
        );
    }
}

/// A token endpoint on loopback that answers `answer` (status, body) and counts its calls.
async fn token_endpoint(
    status: u16,
    answer: fn(&str) -> String,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().fallback(move |body: String| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                answer(&body),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

#[tokio::test]
async fn token_errors_never_echo_secrets_and_odd_lifetimes_do_not_panic() {
    use std::sync::atomic::Ordering;
    // An endpoint that echoes the whole form (refresh token, client secret) in its error.
    let (url, _) = token_endpoint(400, |body| {
        json!({"error": "invalid_grant", "error_description": body}).to_string()
    })
    .await;
    let user = format!(
        r#"{{"type":"authorized_user","client_id":"cid","client_secret":"csecret-value-1","refresh_token":"1//refresh-value-2","token_uri":"{url}"}}"#
    );
    let credentials = load_credentials(&user, "test").unwrap();
    let err = credentials.bearer().await.unwrap_err().to_string();
    assert!(err.contains("invalid_grant"), "{err}");
    assert!(
        !err.contains("csecret-value-1") && !err.contains("refresh-value-2"),
        "{err}"
    );
    // The same for a service account's assertion.
    let (url, _) = token_endpoint(401, |body| {
        json!({"error": "invalid_client", "error_description": body}).to_string()
    })
    .await;
    let credentials = load_credentials(&service_account(&url), "test").unwrap();
    let err = credentials.bearer().await.unwrap_err().to_string();
    assert!(err.contains("invalid_client"), "{err}");
    assert!(!err.contains("eyJ"), "no JWT in the error: {err}");

    // A lifetime that would overflow the clock is bounded; the token is then reused.
    let (url, calls) = token_endpoint(200, |_| {
        r#"{"access_token":"ya29.long","expires_in":18446744073709551615,"token_type":"Bearer"}"#
            .to_owned()
    })
    .await;
    let credentials =
        load_credentials(&service_account(&url).replace("gateway@", "long@"), "t").unwrap();
    for _ in 0..3 {
        assert_eq!(credentials.bearer().await.unwrap(), "Bearer ya29.long");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // No access token, or not JSON: clear errors.
    let (url, _) = token_endpoint(200, |_| "<html>".to_owned()).await;
    let credentials =
        load_credentials(&service_account(&url).replace("gateway@", "html@"), "t").unwrap();
    let err = credentials.bearer().await.unwrap_err().to_string();
    assert!(err.contains("without an access_token"), "{err}");
}
