//! Upstream TLS through the real binary: certificates from an internal CA are refused by default
//! with a clear 502, trusted with a CA bundle (`litellm_settings.ssl_verify: /path` or
//! `SSL_CERT_FILE`), and accepted unchecked with `ssl_verify: false`. The upstream is a tiny
//! HTTPS server in this process with a certificate made at test time (`tests/tls`).

mod common;
mod tls;

use std::process::Command;

use common::*;
use serde_json::{json, Value};

fn temp_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("switchyard-tls-{name}-{}", std::process::id()))
}

fn tls_config(base: &str, litellm_settings: &str) -> String {
    format!(
        "model_list:\n  - model_name: internal\n    litellm_params: {{model: openai/tls-model, api_base: '{base}/v1', api_key: sk-fake}}\n    model_info: {{id: internal}}\n{litellm_settings}general_settings:\n  master_key: {MASTER_KEY}\n"
    )
}

async fn chat(gw: &Proc) -> (u16, Value) {
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"model": "internal", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn an_unknown_certificate_authority_is_a_clear_502() {
    let ca = tls::TestCa::new(&temp_dir("default"));
    let base = ca.serve().await;
    let gw = gateway(&tls_config(&base, ""), &[]);
    let (status, body) = chat(&gw).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("certificate"), "{body}");
}

#[test]
fn a_bad_ca_bundle_is_a_config_error_naming_the_key() {
    for (settings, envs, key) in [
        (
            "litellm_settings:\n  ssl_verify: /nonexistent/internal-ca.pem\n",
            vec![],
            "litellm_settings.ssl_verify",
        ),
        (
            "",
            vec![("SSL_CERT_FILE", "/nonexistent/internal-ca.pem")],
            "SSL_CERT_FILE",
        ),
    ] {
        let path = write_config(&tls_config("https://127.0.0.1:9", settings));
        let mut command = Command::new(BIN);
        command.args(["check", "--config", path.to_str().unwrap()]);
        command.env_remove("SSL_VERIFY").env_remove("SSL_CERT_FILE");
        for (k, v) in &envs {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(key) && stderr.contains("/nonexistent/internal-ca.pem"),
            "{stderr}"
        );
    }
}

#[test]
fn ssl_verify_false_warns_at_start_up() {
    let gw = gateway(
        &tls_config(
            "https://127.0.0.1:9",
            "litellm_settings:\n  ssl_verify: false\n",
        ),
        &[],
    );
    // Log lines go through a background writer: give it a moment before stopping the process.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = gw.stop();
    assert!(
        log.contains("ssl_verify is false") && log.contains("not verified"),
        "{log}"
    );
}

/// Needs the gateway to build its client with `HttpClient::with_tls(&config.tls)` (src/state.rs);
/// until then the binary always verifies against the system's roots.
#[tokio::test]
async fn a_ca_bundle_or_ssl_verify_false_reaches_the_internal_upstream() {
    let ca = tls::TestCa::new(&temp_dir("trusted"));
    let base = ca.serve().await;
    let ca_path = ca.ca_pem_path.to_str().unwrap().to_owned();
    for (settings, envs) in [
        (
            format!("litellm_settings:\n  ssl_verify: '{ca_path}'\n"),
            vec![],
        ),
        (String::new(), vec![("SSL_CERT_FILE", ca_path.as_str())]),
        (
            "litellm_settings:\n  ssl_verify: false\n".to_owned(),
            vec![],
        ),
    ] {
        let gw = gateway(&tls_config(&base, &settings), &envs);
        let (status, body) = chat(&gw).await;
        assert_eq!(status, 200, "{settings} {envs:?}: {body}");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            tls::REPLY,
            "{body}"
        );
    }
}
