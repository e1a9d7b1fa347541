//! Hostile request bodies get clear, OpenAI-shaped 4xx answers, and the gateway keeps serving.

mod common;

use common::*;
use serde_json::{json, Value};

const CONFIG: &str = r#"
model_list:
  - model_name: offline
    litellm_params:
      model: openai/x
      mock_response: "still here"
general_settings:
  master_key: sk-test-master
  max_request_size_mb: 1
"#;

async fn send(gw: &Proc, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER_KEY)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, value)
}

fn valid() -> Vec<u8> {
    json!({"model": "offline", "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn hostile_bodies_then_a_valid_request() {
    let gw = gateway(CONFIG, &[]);
    let huge_string = format!(
        r#"{{"model":"offline","messages":[{{"role":"user","content":"{}"#,
        "a".repeat(900_000)
    );
    let deep = format!(
        r#"{{"model":"offline","messages":{}{}}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        (
            "truncated JSON",
            br#"{"model":"offline","messages":[{"role":"us"#.to_vec(),
            400,
            None,
        ),
        ("not JSON", b"hello there".to_vec(), 400, None),
        ("empty body", Vec::new(), 400, None),
        ("JSON array", b"[1,2,3]".to_vec(), 400, None),
        (
            "invalid UTF-8",
            b"{\"model\":\"off\xff\xfeline\",\"messages\":[]}".to_vec(),
            400,
            None,
        ),
        ("deep nesting", deep.into_bytes(), 400, None),
        (
            "missing messages",
            br#"{"model":"offline"}"#.to_vec(),
            400,
            Some("messages"),
        ),
        (
            "wrong type",
            br#"{"model":"offline","messages":"hi"}"#.to_vec(),
            400,
            Some("messages"),
        ),
        (
            "wrong role",
            br#"{"model":"offline","messages":[{"role":"wizard","content":"x"}]}"#.to_vec(),
            400,
            Some("messages[0].role"),
        ),
        (
            "model not a string",
            br#"{"model":["offline"],"messages":[]}"#.to_vec(),
            400,
            Some("model"),
        ),
        (
            "empty messages",
            br#"{"model":"offline","messages":[]}"#.to_vec(),
            400,
            Some("messages"),
        ),
        (
            "unterminated 900 KB string",
            huge_string.into_bytes(),
            400,
            None,
        ),
    ];
    for (name, body, status, param) in cases {
        let (got, error) = send(&gw, "application/json", body).await;
        assert_eq!(got, status, "{name}: {error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}: {error}"
        );
        assert!(
            error["error"].get("type").is_some() && error["error"].get("code").is_some(),
            "{name}: {error}"
        );
        if let Some(param) = param {
            assert_eq!(error["error"]["param"], param, "{name}");
        }
    }

    // A body announced over the 1 MiB limit is refused from its headers alone, before it is read.
    assert_eq!(announce_oversized_body(&gw).await, 413);

    // Content type is not held against a JSON body (curl -d sends a form type).
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
    ] {
        let (status, answer) = send(&gw, content_type, valid()).await;
        assert_eq!(status, 200, "{content_type}: {answer}");
    }
    let (status, _) = send(
        &gw,
        "multipart/form-data; boundary=x",
        b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--".to_vec(),
    )
    .await;
    assert_eq!(status, 400);

    // Still serving.
    let (status, answer) = send(&gw, "application/json", valid()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["choices"][0]["message"]["content"], "still here");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let gw = gateway(CONFIG, &[]);
    let response = client()
        .get(format!("{}/v1/nothing-here", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.json::<Value>().await.unwrap()["error"]["message"].is_string());
    let response = client()
        .get(format!("{}/v1/chat/completions", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(response.json::<Value>().await.unwrap()["error"]["message"].is_string());
}

/// Sends only the head of a request announcing a 2 MiB body, then reads the answer.
async fn announce_oversized_body(gw: &Proc) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = gw.url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"model\":",
        2 * 1024 * 1024
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut buf))
            .await
            .expect("answered without waiting for the body")
            .unwrap();
        assert!(n > 0, "connection closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let status_line = String::from_utf8_lossy(&answer);
    status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}
