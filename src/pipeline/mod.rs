//! The one path every model request takes, whatever its surface (OpenAI or Anthropic, whole
//! or streamed, chat, completions, embeddings, messages, count_tokens):
//!
//! | # | stage | where |
//! |---|---|---|
//! | 1 | edge: request id, start time, access log for what never reached a model | `api/mod.rs` (`edge`) |
//! | 2 | authenticate: bearer key → [`Principal`](crate::auth::Principal) | `context.rs` (the [`RequestContext`] extractor) → `auth/` |
//! | 3 | parse and validate the body | `api/<surface>.rs`, `api/body.rs` |
//! | 4 | admit: gateway controls out of the body, prepare (templates), pre-call policy | [`RequestContext::admit`] → `policy/` |
//! | 5 | cache lookup | (issue 11) |
//! | 6 | route: groups, attempts, retries, fallbacks, cooldowns | `router/dispatch.rs` |
//! | 7 | call one deployment | `providers/` (the `Provider` trait) |
//! | 8 | post-call (guardrails on the answer) | (issue 11) |
//! | 9 | request finished: exactly one event | `context.rs` → `telemetry::request_finished` |
//!
//! Handlers in `api/` run stages 3 to 8 in this order and nothing else; the context carries
//! what every stage needs and emits the event at the end (from the stream body for streams).

mod context;
pub mod finished;

use std::time::Instant;

use axum::http::HeaderValue;

pub use context::{Caller, Reported, RequestContext};
pub use finished::{Finished, Outcome};

/// Which API a client speaks: it decides the error shape and the stream format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    OpenAi,
    Anthropic,
}

impl Surface {
    pub fn of_path(path: &str) -> Surface {
        let path = path.strip_prefix("/v1").unwrap_or(path);
        if path.starts_with("/messages") {
            Surface::Anthropic
        } else {
            Surface::OpenAi
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Surface::OpenAi => "openai",
            Surface::Anthropic => "anthropic",
        }
    }
}

/// What the edge middleware knows of a request before any handler runs.
#[derive(Clone)]
pub struct Edge {
    pub request_id: HeaderValue,
    pub started: Instant,
}

impl Edge {
    pub fn now() -> Edge {
        Edge {
            request_id: new_request_id(),
            started: Instant::now(),
        }
    }
}

/// 32 random hex digits.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    let bits = fastrand::u128(..);
    for (i, digit) in id.iter_mut().enumerate() {
        *digit = HEX[((bits >> (i * 4)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}
