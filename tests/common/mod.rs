//! Starts the real `switchyard` binary (gateway and mock upstream) on loopback ports the OS picks,
//! and stops them when the test ends.

#![allow(dead_code)]

pub mod pg;
pub mod redis_proxy;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
pub const MASTER_KEY: &str = "sk-test-master";

/// A child process that is killed when dropped.
pub struct Proc {
    child: Child,
    pub url: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Sends a signal (`TERM`, `HUP` ...) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits at most `limit` for the process to exit on its own; its exit status if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process gracefully (SIGTERM: it drains and flushes its log), and returns
    /// everything it wrote to stderr.
    pub fn shutdown(mut self) -> String {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(15));
        self.stop()
    }

    /// Kills the process and returns everything it wrote to stderr (its log).
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

/// Spawns `switchyard ARGS` and waits (at most 30 s) for its `... listening on URL` line.
pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Proc {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn switchyard");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining so the child never blocks on a full pipe.
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
    let Some(url) = line
        .trim()
        .split(" listening on ")
        .nth(1)
        .map(str::to_owned)
    else {
        let _ = child.kill();
        let _ = child.wait();
        let log = stderr.join().unwrap_or_default();
        panic!(
            "`switchyard {}` did not start; stdout: {line:?}\nstderr:\n{log}",
            args.join(" ")
        );
    };
    Proc {
        child,
        url: url.replace("0.0.0.0", "127.0.0.1"),
        stderr: Some(stderr),
    }
}

pub fn mock_upstream(extra_args: &[&str]) -> Proc {
    let mut args = vec!["mock-upstream", "--port", "0"];
    args.extend_from_slice(extra_args);
    spawn(&args, &[])
}

/// Writes `yaml` to a fresh temporary file.
pub fn write_config(yaml: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchyard-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    // A directory left by an earlier run whose process had the same id would hand this test
    // its SQLite database, spend rows included: start empty.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

pub fn gateway(yaml: &str, envs: &[(&str, &str)]) -> Proc {
    serve_file(&write_config(yaml), &[], envs)
}

/// `switchyard serve` on a config file (which a test may rewrite, for reloads), with extra
/// arguments (`--drain-timeout 1`).
pub fn serve_file(path: &std::path::Path, extra_args: &[&str], envs: &[(&str, &str)]) -> Proc {
    let mut args = vec![
        "serve",
        "--config",
        path.to_str().unwrap(),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ];
    args.extend_from_slice(extra_args);
    spawn(&args, envs)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Talks to a mock upstream's control endpoint.
pub struct Mock<'a>(pub &'a Proc);

impl Mock<'_> {
    pub async fn set(&self, patch: Value) {
        let response = client()
            .post(format!("{}/__mock/config", self.0.url))
            .json(&patch)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "mock config: {}",
            response.text().await.unwrap()
        );
    }

    pub async fn requests(&self) -> Vec<Value> {
        let value: Value = client()
            .get(format!("{}/__mock/requests", self.0.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        value.as_array().cloned().unwrap_or_default()
    }

    pub async fn last_request(&self) -> Value {
        self.requests()
            .await
            .pop()
            .expect("the mock received a request")
    }

    pub async fn stats(&self) -> Value {
        client()
            .get(format!("{}/__mock/stats", self.0.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Splits an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

/// A cost header's exact decimal dollars (`0.000035`) as nano-dollars.
pub fn nanos(text: &str) -> i64 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    assert!(frac.len() <= 9, "more than nano-dollar precision: {text}");
    whole.parse::<i64>().unwrap() * 1_000_000_000 + format!("{frac:0<9}").parse::<i64>().unwrap()
}

/// Polls `/spend/logs?{query}` (with the master key) until it holds at least `n` rows, or 15 s
/// pass, and returns the rows it holds then: spend rows are written in the background.
pub async fn spend_rows(gw: &Proc, query: &str, n: usize) -> Vec<Value> {
    let until = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows: Value = client()
            .get(format!("{}/spend/logs?{query}", gw.url))
            .bearer_auth(MASTER_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rows = rows.as_array().cloned().unwrap_or_default();
        if rows.len() >= n || std::time::Instant::now() > until {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
