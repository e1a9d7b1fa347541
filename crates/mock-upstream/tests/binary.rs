//! The standalone binary prints exactly one line with the real port, then serves.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::*;

/// Kills the child even when an assertion fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_prints_its_address_and_serves() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_switchyard-mock-upstream"))
            .args(["--port", "0", "--reply", "from the binary"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the binary"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = lines_rx
        .recv_timeout(PATIENCE)
        .expect("a line within the timeout")
        .expect("readable line");
    let url = line
        .strip_prefix("mock-upstream listening on http://")
        .unwrap_or_else(|| panic!("unexpected start-up line: {line:?}"));
    let addr: std::net::SocketAddr = url.parse().expect("IP:PORT");
    assert_ne!(addr.port(), 0);

    let response = post_json(
        addr,
        "/v1/chat/completions",
        &serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json()["choices"][0]["message"]["content"],
        "from the binary"
    );
    // Nothing else was printed.
    assert!(lines_rx.try_recv().is_err());
}

#[test]
fn binary_rejects_invalid_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard-mock-upstream"))
        .args(["--port", "0", "--error-rate", "3"])
        .output()
        .expect("run the binary");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
}
