//! One finished model request, as the callbacks see it: owned (it outlives the request), with
//! who called (alias, team, user, end user, the key's hash: never the key), what was served,
//! usage, cost, timing and status. Never the prompt or the answer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::money::Nanos;
use crate::pipeline::{Finished, Outcome};

#[derive(Debug, Clone)]
pub struct Record {
    /// Unique per event, made here (the request id may come from a client header, so two
    /// requests may share it). A batch sent again carries the same ids, so a receiver can
    /// de-duplicate on it.
    pub id: String,
    pub request_id: String,
    /// The route (`/v1/chat/completions`).
    pub path: String,
    /// LiteLLM's name for the route (`acompletion`, `aembedding` ...).
    pub call_type: &'static str,
    pub requested_model: String,
    pub model_group: Option<String>,
    pub model_id: Option<String>,
    pub provider: Option<String>,
    /// The model name sent upstream.
    pub upstream_model: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cost: Nanos,
    pub cost_source: &'static str,
    /// Unix seconds.
    pub start_time: f64,
    pub end_time: f64,
    pub latency: Duration,
    pub time_to_first_token: Option<Duration>,
    pub status: u16,
    pub outcome: Outcome,
    pub success: bool,
    pub stream: bool,
    pub cache_hit: bool,
    pub attempts: u32,
    pub key_hash: Option<String>,
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    pub team_alias: Option<String>,
    pub user_id: Option<String>,
    pub end_user: Option<String>,
    /// The request's `metadata` object, as the client sent it.
    pub metadata: Option<Map<String, Value>>,
    /// `metadata.tags` (strings only).
    pub tags: Vec<String>,
}

impl Record {
    /// The record of a finished model request; `None` for everything else (health, metrics,
    /// management routes, token counting).
    pub fn from_event(event: &Finished<'_>) -> Option<Record> {
        let call_type = crate::pipeline::call_type(event.path)?;
        let principal = event.principal;
        let key = principal.and_then(|p| p.key());
        let team = principal.and_then(|p| p.team());
        let deployment = event.deployment;
        let usage = event.usage;
        let end = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let start = end.saturating_sub(event.latency);
        let metadata = event.metadata.filter(|m| !m.is_empty()).cloned();
        let tags = metadata
            .as_ref()
            .and_then(|m| m.get("tags"))
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let prompt_tokens = usage.map_or(0, |u| u.prompt_tokens);
        let completion_tokens = usage.map_or(0, |u| u.completion_tokens);
        Some(Record {
            id: new_id(end),
            request_id: event.request_id.to_owned(),
            path: event.path.to_owned(),
            call_type,
            requested_model: event.requested_model.to_owned(),
            model_group: deployment.map(|d| d.model_name.clone()),
            model_id: deployment.map(|d| d.id.clone()),
            provider: deployment.map(|d| d.provider_name.clone()),
            upstream_model: deployment.map(|d| d.upstream.model.clone()),
            prompt_tokens,
            completion_tokens,
            total_tokens: usage.map_or(prompt_tokens + completion_tokens, |u| u.total_tokens),
            cost: event.cost.map_or(Nanos::ZERO, |c| c.total),
            cost_source: event.cost.map_or("none", |c| c.source.name()),
            start_time: start.as_secs_f64(),
            end_time: end.as_secs_f64(),
            latency: event.latency,
            time_to_first_token: event.time_to_first_token,
            status: event.status,
            outcome: event.outcome,
            success: event.status < 400 && event.outcome == Outcome::Answered,
            stream: event.stream,
            cache_hit: event.cache_hit,
            attempts: event.attempts,
            key_hash: key.map(|k| k.token.clone()),
            key_alias: key.and_then(|k| k.key_alias.clone()),
            team_id: key.and_then(|k| k.team_id.clone()),
            team_alias: team.and_then(|t| t.team_alias.clone()),
            user_id: key.and_then(|k| k.user_id.clone()),
            end_user: event.end_user.map(str::to_owned),
            metadata,
            tags,
        })
    }

    /// A record for tests.
    #[cfg(test)]
    pub fn sample(group: &str, status: u16, latency_ms: u64) -> Record {
        Record {
            id: format!("id-{}", fastrand::u64(..)),
            request_id: "r".into(),
            path: "/v1/chat/completions".into(),
            call_type: "acompletion",
            requested_model: group.into(),
            model_group: Some(group.into()),
            model_id: Some("d".into()),
            provider: Some("openai".into()),
            upstream_model: Some("m".into()),
            prompt_tokens: 1,
            completion_tokens: 1,
            total_tokens: 2,
            cost: Nanos::ZERO,
            cost_source: "none",
            start_time: 0.0,
            end_time: 0.0,
            latency: Duration::from_millis(latency_ms),
            time_to_first_token: None,
            status,
            outcome: if status < 400 {
                crate::pipeline::Outcome::Answered
            } else {
                crate::pipeline::Outcome::Failed
            },
            success: status < 400,
            stream: false,
            cache_hit: false,
            attempts: 1,
            key_hash: None,
            key_alias: None,
            team_id: None,
            team_alias: None,
            user_id: None,
            end_user: None,
            metadata: None,
            tags: Vec::new(),
        }
    }

    /// The model group that served, else the model asked for.
    pub fn group(&self) -> &str {
        self.model_group
            .as_deref()
            .unwrap_or(self.requested_model.as_str())
    }

    /// The model, as LiteLLM logs it: the upstream model when a deployment served.
    pub fn model(&self) -> &str {
        self.upstream_model
            .as_deref()
            .unwrap_or(self.requested_model.as_str())
    }

    /// When the first output reached the client (Unix seconds): the end for whole answers.
    pub fn completion_start_time(&self) -> f64 {
        match self.time_to_first_token {
            Some(ttft) => self.start_time + ttft.as_secs_f64(),
            None => self.end_time,
        }
    }

    /// LiteLLM's exception class for the status, for `error_information.error_class`.
    pub fn error_class(&self) -> Option<&'static str> {
        if self.success {
            return None;
        }
        Some(match (self.outcome, self.status) {
            (Outcome::Abandoned, _) => "ClientDisconnected",
            (Outcome::StreamFailed, _) => "MidStreamFallbackError",
            (_, 400 | 413 | 422) => "BadRequestError",
            (_, 401) => "AuthenticationError",
            (_, 403) => "PermissionDeniedError",
            (_, 404) => "NotFoundError",
            (_, 408 | 504) => "Timeout",
            (_, 429) => "RateLimitError",
            (_, 503) => "ServiceUnavailableError",
            (_, 500) => "InternalServerError",
            _ => "APIError",
        })
    }

    /// A short description of a failure (the event carries no error text, and an upstream's
    /// message may quote the prompt, so none is invented here).
    pub fn error_message(&self) -> Option<String> {
        self.error_class().map(|class| {
            format!(
                "{class}: {} ended with status {} ({})",
                self.path,
                self.status,
                self.outcome.name()
            )
        })
    }
}

/// Time-ordered and unique: milliseconds, then 64 random bits.
fn new_id(now: Duration) -> String {
    format!("{:012x}{:016x}", now.as_millis(), fastrand::u64(..))
}
