//! The request-finished event: emitted exactly once per request, when the answer is complete,
//! failed, or the client went away. Metrics, the access log and the spend log consume it
//! (callbacks will); none of them is called from a handler.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Principal;
use crate::router::Deployment;
use crate::schema::Usage;

use super::Surface;

/// How the request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer was sent in full (`status` is its HTTP status).
    Answered,
    /// An error response was sent (`status` says which).
    Failed,
    /// A stream that had started failed mid-way (the client got an error event).
    StreamFailed,
    /// The client went away before the answer was complete.
    Abandoned,
    /// A handler panicked; the client got a 500.
    Panicked,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Failed => "failed",
            Outcome::StreamFailed => "stream_failed",
            Outcome::Abandoned => "abandoned",
            Outcome::Panicked => "panicked",
        }
    }
}

/// LiteLLM's `call_type` of a model route (what its spend logs and callbacks call it); `None` for
/// routes that are not model calls.
pub fn call_type(path: &str) -> Option<&'static str> {
    let bare = path.strip_prefix("/v1").unwrap_or(path);
    Some(match bare {
        "/chat/completions" => "acompletion",
        "/completions" => "atext_completion",
        "/embeddings" => "aembedding",
        "/rerank" | "/v2/rerank" => "arerank",
        "/messages" => "anthropic_messages",
        "/responses" => "aresponses",
        _ => return None,
    })
}

/// Everything known about one finished request.
#[derive(Debug)]
pub struct Finished<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// Who called; `None` when the request was refused before authentication succeeded.
    pub principal: Option<&'a Principal>,
    pub surface: Surface,
    /// The model the client asked for (empty before the body was read).
    pub requested_model: &'a str,
    /// The deployment that answered (its group is the group that served: aliases, route rules
    /// and fallbacks make it differ from `requested_model`).
    pub deployment: Option<&'a Arc<Deployment>>,
    /// The provider a call went to without a deployment (a pass-through route: `openai` ...).
    pub passthrough_provider: Option<&'static str>,
    pub attempts: u32,
    pub usage: Option<&'a Usage>,
    pub status: u16,
    pub outcome: Outcome,
    pub stream: bool,
    pub latency: Duration,
    /// Time to the first byte of output a stream sent.
    pub time_to_first_token: Option<Duration>,
    /// The end user (`user` in the body).
    pub end_user: Option<&'a str>,
    /// The request's `metadata` object (`feature`, `tags` ...), as the client sent it.
    pub metadata: Option<&'a serde_json::Map<String, serde_json::Value>>,
    pub cache_hit: bool,
    /// What the request cost; `None` when nothing was priced (refused before routing).
    pub cost: Option<crate::money::Cost>,
    /// The request's trace, when traces are on (model requests only).
    pub trace: Option<&'a crate::telemetry::traces::RequestTrace>,
    /// The successful attempt's time at the upstream (for a stream: until its first output).
    pub upstream_latency: Option<Duration>,
    /// Why the request was refused, when no deployment answered it (`None`: derive it from
    /// the status).
    pub rejection: Option<crate::telemetry::Rejection>,
}
