//! Starts the real gateway on the quick-start config and the backend in front of it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(mut command: Command) -> (Killed, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).expect("started");
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    (Killed(child), url)
}

fn workspace_bin(name: &str) -> std::path::PathBuf {
    // target/debug/deps/behind_gateway-xxxx → target/debug/<name>
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    path.pop();
    path.join(name)
}

#[tokio::test]
async fn chat_goes_through_the_gateway() {
    let gateway_bin = workspace_bin("switchyard");
    assert!(
        gateway_bin.exists(),
        "build the workspace first: {}",
        gateway_bin.display()
    );
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../quickstart.yaml");
    let mut gateway = Command::new(gateway_bin);
    gateway.args([
        "serve",
        "--config",
        config,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]);
    let (_gateway, gateway_url) = start(gateway);

    let mut backend = Command::new(env!("CARGO_BIN_EXE_chat-backend"));
    backend
        .env("SWITCHYARD_URL", &gateway_url)
        .env("SWITCHYARD_KEY", "sk-switchyard-quickstart")
        .env("CHAT_MODEL", "gpt-4o-mini")
        .env("CHAT_BACKEND_ADDR", "127.0.0.1:0");
    let (_backend, backend_url) = start(backend);

    let client = reqwest::Client::new();
    let answer: serde_json::Value = client
        .post(format!("{backend_url}/api/chat"))
        .json(&serde_json::json!({"message": "Hi!", "history": [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "reply"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["reply"],
        "Hello from Switchyard! This answer came from a mock deployment."
    );
    assert!(answer["served_by"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));

    // A wrong key at the gateway surfaces as a clean error, not a crash.
    let mut backend = Command::new(env!("CARGO_BIN_EXE_chat-backend"));
    backend
        .env("SWITCHYARD_URL", &gateway_url)
        .env("SWITCHYARD_KEY", "sk-wrong")
        .env("CHAT_BACKEND_ADDR", "127.0.0.1:0");
    let (_bad, bad_url) = start(backend);
    let response = client
        .post(format!("{bad_url}/api/chat"))
        .json(&serde_json::json!({"message": "Hi!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid API key")),
        "{body}"
    );
}
