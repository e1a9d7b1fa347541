//! Redis for the tests that need it: whether it answers (a skip locally, a failure in CI), and a
//! TCP proxy in front of it that a test can freeze (Redis hangs) or stop (Redis is gone).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub const REDIS: &str = "127.0.0.1:6379";

pub async fn redis_is_up() -> bool {
    let up = matches!(
        tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(REDIS)).await,
        Ok(Ok(_))
    );
    if !up {
        assert!(
            std::env::var_os("CI").is_none(),
            "Redis at {REDIS} is unreachable, and CI is set: these tests must run"
        );
        eprintln!("skipping: Redis at {REDIS} is unreachable (set CI to make this a failure)");
    }
    up
}

/// A TCP proxy in front of Redis that a test can freeze (Redis hangs) or stop (Redis is gone).
pub struct Proxy {
    pub port: u16,
    pub frozen: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(port: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&frozen);
        let task = tokio::spawn(async move {
            // Dropped with the accept loop: every connection closes when the proxy stops.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(REDIS).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                connections.spawn(pump(client_read, server_write, Arc::clone(&flag)));
                connections.spawn(pump(server_read, client_write, Arc::clone(&flag)));
            }
        });
        Proxy { port, frozen, task }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(self) -> u16 {
        self.task.abort();
        self.port
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
