//! The tutorial's web backend, as an application should use Switchyard: it speaks the OpenAI API to
//! one internal endpoint and names a model *alias*. Which provider answers, retries, fallbacks, keys
//! and budgets are the gateway's business, so switching providers never touches this code.
//!
//! ```sh
//! SWITCHYARD_URL=http://127.0.0.1:4000 SWITCHYARD_KEY=sk-switchyard-quickstart \
//!   CHAT_MODEL=gpt-4o-mini cargo run -p chat-backend
//! curl -s localhost:3000/api/chat -H 'content-type: application/json' -d '{"message":"Hi!"}'
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone)]
struct App {
    http: reqwest::Client,
    gateway: String,
    key: String,
    model: String,
}

#[derive(Deserialize)]
struct ChatIn {
    message: String,
    /// Earlier turns, oldest first, as `{"role": "user"|"assistant", "content": "..."}`.
    #[serde(default)]
    history: Vec<Turn>,
}

#[derive(Deserialize, Serialize)]
struct Turn {
    role: String,
    content: String,
}

#[derive(Serialize)]
struct ChatOut {
    reply: String,
    /// Which deployment answered, from the gateway's response header: useful in logs.
    served_by: Option<String>,
}

async fn chat(
    State(app): State<App>,
    Json(input): Json<ChatIn>,
) -> Result<Json<ChatOut>, (StatusCode, Json<Value>)> {
    if input.message.trim().is_empty() {
        return Err(fail(StatusCode::BAD_REQUEST, "message must not be empty"));
    }
    let mut messages = vec![json!({"role": "system", "content": "You are a helpful assistant."})];
    messages.extend(
        input
            .history
            .iter()
            .map(|t| json!({"role": t.role, "content": t.content})),
    );
    messages.push(json!({"role": "user", "content": input.message}));
    let response = app
        .http
        .post(format!("{}/v1/chat/completions", app.gateway))
        .bearer_auth(&app.key)
        .json(&json!({"model": app.model, "messages": messages}))
        .send()
        .await
        .map_err(|_| fail(StatusCode::BAD_GATEWAY, "the AI gateway is unreachable"))?;
    let status = response.status();
    let served_by = response
        .headers()
        .get("x-switchyard-model-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.map_err(|_| {
        fail(
            StatusCode::BAD_GATEWAY,
            "the AI gateway sent an unreadable answer",
        )
    })?;
    if !status.is_success() {
        // The gateway's errors are OpenAI-shaped; pass the message on, keep the status class.
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("the AI gateway refused the request");
        let status = if status.is_client_error() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::BAD_GATEWAY
        };
        return Err(fail(status, message));
    }
    let reply = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok(Json(ChatOut { reply, served_by }))
}

fn fail(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (status, Json(json!({"error": message})))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let app = App {
        http: reqwest::Client::builder()
            // The gateway enforces upstream timeouts; this only guards against the gateway itself.
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(std::io::Error::other)?,
        gateway: env("SWITCHYARD_URL", "http://127.0.0.1:4000")
            .trim_end_matches('/')
            .to_owned(),
        key: env("SWITCHYARD_KEY", "sk-switchyard-quickstart"),
        model: env("CHAT_MODEL", "gpt-4o-mini"),
    };
    let addr: SocketAddr = env("CHAT_BACKEND_ADDR", "127.0.0.1:3000")
        .parse()
        .map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "chat-backend listening on http://{}",
        listener.local_addr()?
    );
    let router = Router::new().route("/api/chat", post(chat)).with_state(app);
    axum::serve(listener, router).await
}
