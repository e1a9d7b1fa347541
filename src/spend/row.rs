//! One spend-log row, built from the request-finished event.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::pipeline::Finished;

/// What one model request was, who made it and what it cost. Never the prompt or the answer:
/// only the request's `metadata` object (tags such as `feature`) is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpendRow {
    /// Unique per row, made here: the request id may come from a client header, so it is not a
    /// key (two requests may share one).
    pub id: String,
    pub request_id: String,
    /// Unix milliseconds when the request arrived.
    pub started_at: i64,
    /// The SHA-256 of the virtual key; empty for the master key or an open gateway.
    pub api_key: String,
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub end_user: Option<String>,
    /// What the client asked for.
    pub requested_model: String,
    /// The model group that served (after aliases, rules and fallbacks).
    pub model_group: Option<String>,
    pub deployment_id: Option<String>,
    pub provider: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cost_nanos: i64,
    /// `reported`, `estimated`, `cache_hit`, `unpriced`, or `none` when nothing was priced.
    pub cost_source: String,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub status: i64,
    pub outcome: String,
    pub stream: bool,
    pub cache_hit: bool,
    /// LiteLLM's name for the route (`acompletion`, `aembedding`, `aresponses` ...), or
    /// `pass_through_endpoint`; `None` on rows written before the column existed (and spilled
    /// rows from then).
    #[serde(default)]
    pub call_type: Option<String>,
    /// The request's `metadata` object, as the client sent it.
    pub metadata: Option<Map<String, Value>>,
}

/// Routes whose events make no row although they carry a caller: counting tokens calls no
/// model and costs nothing.
const NOT_LOGGED: &[&str] = &["/messages/count_tokens", "/v1/messages/count_tokens"];

impl SpendRow {
    /// The row of a finished request, or `None` for requests that never reached a model route:
    /// events without a caller (health, metrics, management, requests refused before the key
    /// was known) and token counting.
    pub fn from_event(event: &Finished<'_>, now_ms: i64) -> Option<SpendRow> {
        let principal = event.principal?;
        if NOT_LOGGED.contains(&event.path) {
            return None;
        }
        let key = principal.key();
        let deployment = event.deployment;
        let usage = event.usage;
        let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let cached_tokens = usage
            .and_then(|u| u.extra.get("prompt_tokens_details"))
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .map_or(0, tokens);
        let millis = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Some(SpendRow {
            id: new_id(now_ms),
            request_id: event.request_id.to_owned(),
            started_at: now_ms.saturating_sub(millis(event.latency)),
            api_key: key.map(|k| k.token.clone()).unwrap_or_default(),
            key_alias: key.and_then(|k| k.key_alias.clone()),
            team_id: key.and_then(|k| k.team_id.clone()),
            user_id: key.and_then(|k| k.user_id.clone()),
            end_user: event.end_user.map(str::to_owned),
            requested_model: event.requested_model.to_owned(),
            model_group: deployment.map(|d| d.model_name.clone()),
            deployment_id: deployment.map(|d| d.id.clone()),
            provider: deployment
                .map(|d| d.provider_name.clone())
                .or_else(|| event.passthrough_provider.map(str::to_owned)),
            prompt_tokens: usage.map_or(0, |u| tokens(u.prompt_tokens)),
            completion_tokens: usage.map_or(0, |u| tokens(u.completion_tokens)),
            cached_tokens,
            cost_nanos: event.cost.map_or(0, |c| c.total.0),
            cost_source: event.cost.map_or("none", |c| c.source.name()).to_owned(),
            latency_ms: millis(event.latency),
            ttft_ms: event.time_to_first_token.map(millis),
            status: i64::from(event.status),
            outcome: event.outcome.name().to_owned(),
            stream: event.stream,
            cache_hit: event.cache_hit,
            call_type: match event.passthrough_provider {
                Some(_) => Some("pass_through_endpoint".to_owned()),
                None => crate::pipeline::call_type(event.path).map(str::to_owned),
            },
            metadata: event.metadata.filter(|m| !m.is_empty()).cloned(),
        })
    }

    /// The metadata as JSON text (for the store), `None` without metadata.
    pub fn metadata_json(&self) -> Option<String> {
        self.metadata
            .as_ref()
            .map(|m| serde_json::to_string(m).unwrap_or_else(|_| "{}".into()))
    }
}

/// Time-ordered and unique: milliseconds, then 64 random bits (a row id sorts by when it was
/// made, which keeps the primary-key index append-mostly).
fn new_id(now_ms: i64) -> String {
    format!("{:012x}{:016x}", now_ms.max(0), fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Principal;
    use crate::money::{Cost, CostSource, Nanos};
    use crate::pipeline::{Outcome, Surface};
    use crate::schema::Usage;
    use std::time::Duration;

    fn event<'a>(
        path: &'a str,
        principal: Option<&'a Principal>,
        usage: Option<&'a Usage>,
        metadata: Option<&'a Map<String, Value>>,
    ) -> Finished<'a> {
        Finished {
            request_id: "req-1",
            method: "POST",
            path,
            principal,
            surface: Surface::OpenAi,
            requested_model: "gpt",
            deployment: None,
            passthrough_provider: None,
            attempts: 1,
            usage,
            status: 200,
            outcome: Outcome::Answered,
            stream: true,
            latency: Duration::from_millis(250),
            time_to_first_token: Some(Duration::from_millis(40)),
            end_user: Some("cust"),
            metadata,
            cache_hit: false,
            cost: Some(Cost {
                total: Nanos(1234),
                source: CostSource::Reported,
            }),
            trace: None,
            upstream_latency: None,
            rejection: None,
        }
    }

    #[test]
    fn a_row_holds_the_event_without_prompts() {
        let usage: Usage = serde_json::from_value(serde_json::json!({
            "prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14,
            "prompt_tokens_details": {"cached_tokens": 6}
        }))
        .unwrap();
        let metadata: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"feature": "search"})).unwrap();
        let principal = Principal::Master;
        let row = SpendRow::from_event(
            &event(
                "/v1/chat/completions",
                Some(&principal),
                Some(&usage),
                Some(&metadata),
            ),
            10_000,
        )
        .unwrap();
        assert_eq!(row.started_at, 9_750);
        assert_eq!(
            (row.prompt_tokens, row.completion_tokens, row.cached_tokens),
            (10, 4, 6)
        );
        assert_eq!(
            (row.cost_nanos, row.cost_source.as_str()),
            (1234, "reported")
        );
        assert_eq!((row.latency_ms, row.ttft_ms), (250, Some(40)));
        assert_eq!(row.api_key, "");
        assert_eq!(row.end_user.as_deref(), Some("cust"));
        assert_eq!(row.metadata.as_ref(), Some(&metadata));
        assert!(row.stream);
        assert_eq!(row.outcome, "answered");

        let mut unpriced = event("/chat/completions", Some(&principal), None, None);
        unpriced.cost = None;
        let row = SpendRow::from_event(&unpriced, 10_000).unwrap();
        assert_eq!((row.cost_nanos, row.cost_source.as_str()), (0, "none"));
        assert_eq!(row.prompt_tokens, 0);
    }

    #[test]
    fn requests_without_a_caller_or_a_model_make_no_row() {
        let principal = Principal::Master;
        assert!(SpendRow::from_event(&event("/key/generate", None, None, None), 1).is_none());
        assert!(SpendRow::from_event(
            &event("/v1/messages/count_tokens", Some(&principal), None, None),
            1
        )
        .is_none());
    }

    #[test]
    fn ids_are_unique_and_sort_by_time() {
        let a = new_id(1_000);
        let b = new_id(2_000);
        assert!(a < b);
        assert_ne!(new_id(1_000), new_id(1_000));
        assert_eq!(a.len(), 28);
    }
}
