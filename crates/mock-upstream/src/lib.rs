//! Switchyard's mock upstream: a fake OpenAI, Anthropic, Gemini and Bedrock server with controllable
//! latency and faults, for integration tests, benchmarks and load tests that should not cost
//! money.
//!
//! It answers `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and `/v1/models` (also
//! without `/v1`, and at Azure OpenAI's `/openai/deployments/{deployment}/...` paths), Anthropic's
//! `/v1/messages`, and Gemini's `/v1beta/models/{model}:generateContent` /
//! `:streamGenerateContent`, Ollama's `/api/chat`, `/api/generate` and `/api/embed`, Cohere's
//! `/v2/chat`, `/v2/embed` and `/v2/rerank` (and `/v1/rerank`, `/rerank` as vLLM serves it),
//! Bedrock's `/model/{modelId}/converse` and `/converse-stream` (AWS event-stream frames),
//! with deterministic bodies (tool calls included), streams real SSE,
//! and injects latency, errors, hangs and broken streams on command. Everything is also adjustable while it runs through `/__mock/config`; see
//! `docs/mock-upstream.md`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(switchyard_mock::serve_on(listener, switchyard_mock::MockArgs::default()));
//! // ... point the gateway at http://{addr}/v1
//! # let _ = addr; Ok(()) }
//! ```

mod anthropic;
mod bedrock;
mod cohere;
mod config;
mod control;
mod embedding;
mod error;
mod faults;
mod gemini;
mod log;
mod ollama;
mod openai;
mod responses;
mod shapes;
mod state;
mod stream;
mod tokens;
mod tools;
mod vertex;

use std::io::{self, Write};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

use crate::config::RuntimeConfig;
use crate::state::AppState;

pub const DEFAULT_REPLY: &str = "Hello from the Switchyard mock upstream.";

/// Large enough for long prompts and big embedding batches; a body above it gets a 413.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Options of `switchyard mock-upstream` (and of the standalone `switchyard-mock-upstream`).
/// Everything but `host`, `port`, `seed` and `max_log` can be changed at runtime through
/// `POST /__mock/config`.
#[derive(clap::Args, Clone, Debug)]
pub struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on; 0 picks a free port (the real one is printed on start-up).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// Delay before answering each API request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,

    /// Probability (0.0 to 1.0) that an API request gets an injected error.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_error_rate)]
    pub error_rate: f64,

    /// HTTP status of injected errors (400 to 599).
    #[arg(long, value_name = "STATUS", default_value_t = 500, value_parser = parse_error_status)]
    pub error_status: u16,

    /// Send `retry-after: SECONDS` with injected errors.
    #[arg(long, value_name = "SECONDS")]
    pub retry_after: Option<u64>,

    /// Accept API requests and never answer them (until hang is switched off at runtime).
    #[arg(long)]
    pub hang: bool,

    /// Delay between the events of a streamed answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub chunk_delay_ms: u64,

    /// Cut every stream after N events: no finish chunk or [DONE], the connection is dropped.
    #[arg(long, value_name = "N")]
    pub fail_mid_stream_after: Option<u64>,

    /// The assistant's reply (streamed word by word).
    #[arg(long, value_name = "TEXT", default_value = DEFAULT_REPLY)]
    pub reply: String,

    /// Seed for error injection, so the same requests in the same order fail the same way.
    #[arg(long, value_name = "U64")]
    pub seed: Option<u64>,

    /// How many requests `/__mock/requests` keeps; 0 turns logging off (for benchmarks).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_log: usize,

    /// The service account's public key (PEM: `RSA PUBLIC KEY` or `PUBLIC KEY`) the token
    /// endpoint checks JWT signatures with; without it, only the claims are checked.
    #[arg(long, value_name = "PEM_FILE")]
    pub vertex_public_key: Option<std::path::PathBuf>,

    /// `expires_in` of the access tokens the token endpoint issues, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub token_expires_in: u64,
}

impl Default for MockArgs {
    /// The same values as the command-line defaults.
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8080,
            latency_ms: 0,
            error_rate: 0.0,
            error_status: 500,
            retry_after: None,
            hang: false,
            chunk_delay_ms: 0,
            fail_mid_stream_after: None,
            reply: DEFAULT_REPLY.to_owned(),
            seed: None,
            max_log: 1000,
            vertex_public_key: None,
            token_expires_in: 3600,
        }
    }
}

fn parse_error_rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value
        .parse()
        .map_err(|_| format!("not a number: {value}"))?;
    config::validate_error_rate(rate)?;
    Ok(rate)
}

fn parse_error_status(value: &str) -> Result<u16, String> {
    let status: u16 = value
        .parse()
        .map_err(|_| format!("not a status code: {value}"))?;
    config::validate_error_status(status)?;
    Ok(status)
}

impl MockArgs {
    /// The runtime part of the arguments, checked (a `MockArgs` built in code skips clap's
    /// parsers).
    fn runtime_config(&self) -> io::Result<RuntimeConfig> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
        config::validate_error_rate(self.error_rate).map_err(invalid)?;
        config::validate_error_status(self.error_status).map_err(invalid)?;
        Ok(RuntimeConfig {
            latency_ms: self.latency_ms,
            error_rate: self.error_rate,
            error_status: self.error_status,
            retry_after: self.retry_after,
            hang: self.hang,
            chunk_delay_ms: self.chunk_delay_ms,
            fail_mid_stream_after: self.fail_mid_stream_after,
            reply: self.reply.clone(),
        })
    }
}

/// Binds `--host`/`--port`, prints `mock-upstream listening on http://IP:PORT` (one line on
/// stdout, flushed, with the real port) and serves until the process ends.
pub async fn serve(args: MockArgs) -> io::Result<()> {
    // Check the arguments before binding, so a bad flag does not look like a started server.
    args.runtime_config()?;
    let listener = TcpListener::bind((args.host.as_str(), args.port)).await?;
    let addr = listener.local_addr()?;
    {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "mock-upstream listening on http://{addr}")?;
        stdout.flush()?;
    }
    serve_on(listener, args).await
}

/// Serves on an already bound listener (tests bind `127.0.0.1:0`). `host` and `port` are ignored;
/// nothing is printed.
pub async fn serve_on(listener: TcpListener, args: MockArgs) -> io::Result<()> {
    let public_key = args
        .vertex_public_key
        .as_deref()
        .map(vertex::TokenIssuer::read_public_key)
        .transpose()?;
    let tokens = vertex::TokenIssuer::new(public_key, args.token_expires_in.clamp(1, 86_400 * 365));
    let state = AppState::with_tokens(args.runtime_config()?, args.seed, args.max_log, tokens);
    // Streams are many small writes; without TCP_NODELAY, Nagle's algorithm holds chunks back.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("could not set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, router(state)).await
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/chat/completions", post(openai::chat_completions))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(openai::azure_chat_completions),
        )
        .route("/v1/completions", post(openai::completions))
        .route("/completions", post(openai::completions))
        .route(
            "/openai/deployments/{deployment}/completions",
            post(openai::azure_completions),
        )
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/embeddings", post(openai::embeddings))
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(openai::azure_embeddings),
        )
        .route("/v1/responses", post(responses::responses))
        .route("/responses", post(responses::responses))
        .route("/openai/responses", post(responses::responses))
        .route("/v1/models", get(openai::list_models))
        .route("/models", get(openai::list_models))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1beta/models/{model}", post(gemini::generate))
        .route(
            "/v1/models/{model}",
            get(openai::get_model).post(gemini::generate),
        )
        .route("/models/{model}", get(openai::get_model))
        .route("/model/{model}/{method}", post(bedrock::converse))
        .route("/token", post(vertex::token))
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{target}",
            post(vertex::model),
        )
        .route(
            "/v1beta1/projects/{project}/locations/{location}/publishers/{publisher}/models/{target}",
            post(vertex::model),
        )
        .route("/api/chat", post(ollama::chat))
        .route("/api/generate", post(ollama::generate))
        .route("/api/embed", post(ollama::embed))
        .route("/v2/chat", post(cohere::chat))
        .route("/v2/embed", post(cohere::embed))
        .route("/v2/rerank", post(cohere::rerank_v2))
        .route("/v1/rerank", post(cohere::rerank_compatible))
        .route("/rerank", post(cohere::rerank_compatible))
        .route(
            "/__mock/config",
            get(control::get_config)
                .post(control::patch_config)
                .patch(control::patch_config),
        )
        .route(
            "/__mock/requests",
            get(control::get_requests).delete(control::clear_requests),
        )
        .route("/__mock/stats", get(control::get_stats))
        .route("/__mock/reset", post(control::reset))
        .fallback(openai::unknown_route)
        .method_not_allowed_fallback(openai::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: MockArgs,
    }

    #[test]
    fn default_matches_the_command_line_defaults() {
        let parsed = Cli::try_parse_from(["mock"]).expect("no flags parse").args;
        let default = MockArgs::default();
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
    }

    #[test]
    fn flags_parse_and_are_validated() {
        let args = Cli::try_parse_from([
            "mock",
            "--port",
            "0",
            "--error-rate",
            "0.25",
            "--error-status",
            "429",
            "--retry-after",
            "2",
            "--fail-mid-stream-after",
            "3",
            "--reply",
            "hi there",
            "--seed",
            "42",
            "--max-log",
            "0",
            "--hang",
        ])
        .expect("valid flags parse")
        .args;
        assert_eq!(args.port, 0);
        assert_eq!(args.error_rate, 0.25);
        assert_eq!(args.error_status, 429);
        assert_eq!(args.retry_after, Some(2));
        assert_eq!(args.fail_mid_stream_after, Some(3));
        assert_eq!(args.reply, "hi there");
        assert_eq!(args.seed, Some(42));
        assert_eq!(args.max_log, 0);
        assert!(args.hang);
        assert!(Cli::try_parse_from(["mock", "--error-rate", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["mock", "--error-status", "200"]).is_err());
    }

    #[test]
    fn invalid_args_built_in_code_are_refused() {
        let args = MockArgs {
            error_rate: f64::NAN,
            ..MockArgs::default()
        };
        assert!(args.runtime_config().is_err());
    }
}
