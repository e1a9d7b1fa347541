//! The one path every model request takes, whatever its surface (OpenAI or Anthropic, whole
//! or streamed, chat, completions, embeddings, messages, count_tokens, responses):
//!
//! | # | stage | where |
//! |---|---|---|
//! | 1 | edge: request id, start time, access log for what never reached a model | `api/mod.rs` (`edge`) |
//! | 2 | authenticate: bearer key → [`Principal`](crate::auth::Principal) | `context.rs` (the [`RequestContext`] extractor) → `auth/` |
//! | 3 | parse and validate the body | `api/<surface>.rs`, `api/body.rs` |
//! | 4 | admit: gateway controls out of the body, prepare (templates), pre-call policy; then pre-call guardrails on the prompt as it will be sent (built in, the size limit, then external services over HTTP) | [`RequestContext::admit`] → `policy/`; `guardrails::select` + `guardrails::pre_call` |
//! | 5 | cache lookup, keyed on the prompt as the guardrails left it: a hit answers here (cost 0, replayed as SSE for a stream); a miss is coalesced and stored when its answer is complete; skipped with a post-call guardrail | `cache/` (`ResponseCache::lookup`), rendered by `api/cached.rs` |
//! | 6 | route: groups, attempts, retries, fallbacks, cooldowns | `router/dispatch.rs` |
//! | 7 | call one deployment | `providers/` (the `Provider` trait) |
//! | 8 | post-call: guardrails on the answer (whole; a stream through a bounded carry window), masked values given back | `Run::post_call_*`, `guardrails/stream.rs` |
//! | 9 | request finished: exactly one event | `context.rs` → `telemetry::request_finished` |
//!
//! Handlers in `api/` run stages 3 to 8 in this order and nothing else; the context carries
//! what every stage needs and emits the event at the end (from the stream body for streams).

mod context;
pub mod finished;

use std::time::Instant;

use axum::http::HeaderValue;

pub use context::{Caller, Reported, RequestContext};
pub use finished::{call_type, Finished, Outcome};

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

/// 32 hex digits: the time in milliseconds (12 digits), then 80 random bits. As unique as a
/// random id, and ordered by time, so the spend log's request-id index grows at its end (random
/// ids land all over it, and as it grows past the database's cache each insert reads a page).
pub fn new_request_id() -> HeaderValue {
    request_id_at(crate::auth::cache::now_ms())
}

fn request_id_at(now_ms: i64) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const RANDOM_BITS: u32 = 80;
    let time = u128::try_from(now_ms).unwrap_or(0) & 0xffff_ffff_ffff;
    let bits = (time << RANDOM_BITS) | (fastrand::u128(..) >> (128 - RANDOM_BITS));
    let mut id = [0u8; 32];
    for (i, digit) in id.iter_mut().rev().enumerate() {
        *digit = HEX[((bits >> (i * 4)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_hex_and_sort_by_time() {
        let a = request_id_at(1_764_644_645_678);
        let b = request_id_at(1_764_644_645_679);
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(a.starts_with("019add046b2e"), "{a}");
        assert!(a < b);
        assert_ne!(request_id_at(1), request_id_at(1));
    }
}
