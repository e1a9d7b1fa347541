//! A tiny HTTP/1.1 client over plain TCP, and a handle on an in-process mock.
//!
//! Plain TCP rather than an HTTP client library: the tests need to see exactly how a response
//! ended (a chunked body cut before its terminating chunk, a connection that never answers), which
//! client libraries deliberately hide.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use switchyard_mock::MockArgs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Upper bound for anything that should answer promptly, so a broken server fails the test
/// instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Mock {
    pub addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(args: MockArgs) -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(switchyard_mock::serve_on(listener, args));
    Mock { addr, task }
}

pub async fn start_default() -> Mock {
    start(MockArgs::default()).await
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// False when a chunked body ended without its terminating chunk (or a sized body was short).
    pub complete: bool,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        sse_data(&self.text())
    }
}

pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        head.push_str("content-type: application/json\r\n");
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Sends a request and returns the connection, for tests that read the answer themselves.
pub async fn open(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(&request_bytes(addr, method, path, headers, body))
        .await
        .expect("write request");
    stream
}

/// Sends a request and reads the whole answer (until the server closes the connection).
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    let mut stream = open(addr, method, path, headers, body).await;
    let mut raw = Vec::new();
    // A reset connection (an aborted stream) is an answer too: keep what arrived before it.
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
        .await
        .expect("server answered in time");
    parse_response(&raw)
}

pub async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    send(addr, "GET", path, &[], None).await
}

pub async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> HttpResponse {
    send(addr, "POST", path, &[], Some(&body.to_string())).await
}

pub fn parse_response(raw: &[u8]) -> HttpResponse {
    let head_end = find(raw, b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "no complete response head in {:?}",
            String::from_utf8_lossy(raw)
        )
    });
    let head = std::str::from_utf8(&raw[..head_end]).expect("head is UTF-8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[head_end + 4..];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let (body, complete) = if header("transfer-encoding").as_deref() == Some("chunked") {
        dechunk(rest)
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        (
            rest[..length.min(rest.len())].to_vec(),
            rest.len() >= length,
        )
    } else {
        (rest.to_vec(), true)
    };
    HttpResponse {
        status,
        headers,
        body,
        complete,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a chunked body; `complete` says whether the terminating zero-size chunk arrived.
pub fn dechunk(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return (body, false);
        };
        let size = std::str::from_utf8(&data[..line_end])
            .ok()
            .and_then(|line| line.split(';').next())
            .and_then(|hex| usize::from_str_radix(hex.trim(), 16).ok());
        let Some(size) = size else {
            return (body, false);
        };
        data = &data[line_end + 2..];
        if size == 0 {
            return (body, true);
        }
        if data.len() < size + 2 {
            body.extend_from_slice(&data[..size.min(data.len())]);
            return (body, false);
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Reads from `stream` until the received bytes contain `needle`; returns them.
pub async fn read_until(stream: &mut TcpStream, needle: &str) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        while find(&received, needle.as_bytes()).is_none() {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "connection closed before {needle:?} arrived");
            received.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("needle arrived in time");
    received
}

pub async fn stats(addr: SocketAddr) -> Value {
    get(addr, "/__mock/stats").await.json()
}

pub async fn requests(addr: SocketAddr) -> Vec<Value> {
    match get(addr, "/__mock/requests").await.json() {
        Value::Array(entries) => entries,
        other => panic!("request log is not an array: {other}"),
    }
}

pub async fn configure(addr: SocketAddr, patch: Value) -> Value {
    let response = post_json(addr, "/__mock/config", &patch).await;
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

/// Polls `/__mock/stats` until `check` holds (things recorded from a `Drop` land a moment later).
pub async fn wait_for_stats(addr: SocketAddr, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let stats = stats(addr).await;
        if check(&stats) {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stats never matched: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
