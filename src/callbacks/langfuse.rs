//! Langfuse: each finished request becomes a `trace-create` and a `generation-create` event of
//! Langfuse's public ingestion API (`POST {host}/api/public/ingestion`, basic auth
//! `public_key:secret_key`). Field use follows LiteLLM's Langfuse logger: the trace is named
//! `litellm-{call_type}` (or `metadata.trace_name`), its user is the end user (or
//! `metadata.trace_user_id`), its tags are `metadata.tags`; the generation carries the model,
//! usage, cost, timings, and `level: ERROR` when the request failed.
//!
//! Event ids are derived from the record's id, so a batch sent again is recognised by Langfuse
//! (it de-duplicates events on their id); the trace and generation ids make a resend an update
//! of the same objects.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::Record;

pub fn encode(batch: &[Arc<Record>]) -> Bytes {
    let mut events = Vec::with_capacity(batch.len() * 2);
    for record in batch {
        let [trace, generation] = events_of(record);
        events.push(trace);
        events.push(generation);
    }
    let body = json!({ "batch": events });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// Langfuse answers a batch with 207 and `{"successes": [...], "errors": [...]}`: an event it
/// rejected (a validation error) would be rejected again, so it is logged, not retried.
pub fn report_rejected(destination: &str, answer: &[u8]) {
    let Ok(answer) = serde_json::from_slice::<Value>(answer) else {
        return;
    };
    let Some(errors) = answer.get("errors").and_then(Value::as_array) else {
        return;
    };
    if let Some(first) = errors.first() {
        let status = first.get("status").and_then(serde_json::Value::as_u64);
        let message = first
            .get("message")
            .or_else(|| first.get("error"))
            .map(serde_json::Value::to_string)
            .unwrap_or_default();
        tracing::warn!(
            callback = destination,
            rejected = errors.len(),
            status,
            "langfuse rejected events of a batch: {message}"
        );
    }
}

/// RFC 3339 with milliseconds, UTC.
fn timestamp(unix_seconds: f64) -> String {
    let millis = (unix_seconds * 1000.0).round().max(0.0) as i64;
    let (days, ms_of_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    let (y, m, d) = crate::calendar::civil_from_days(days);
    let (h, rest) = (ms_of_day / 3_600_000, ms_of_day % 3_600_000);
    let (min, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z")
}

fn text<'a>(metadata: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    metadata?.get(key)?.as_str()
}

fn events_of(r: &Record) -> [Value; 2] {
    let metadata = r.metadata.as_ref();
    let trace_id = text(metadata, "trace_id")
        .or(text(metadata, "existing_trace_id"))
        .map_or_else(|| r.id.clone(), str::to_owned);
    let trace_name = text(metadata, "trace_name")
        .map_or_else(|| format!("litellm-{}", r.call_type), str::to_owned);
    let user = text(metadata, "trace_user_id").or(r.end_user.as_deref());
    let generation_name = match (text(metadata, "generation_name"), &r.key_alias) {
        (Some(name), _) => name.to_owned(),
        (None, Some(alias)) => format!("litellm:{alias}"),
        (None, None) => format!("litellm-{}", r.call_type),
    };
    let start = timestamp(r.start_time);
    let end = timestamp(r.end_time);
    let cost = r.cost.as_usd();
    // What Langfuse shows next to the generation; who called, never the key.
    let generation_metadata = json!({
        "request_id": r.request_id,
        "requested_model": r.requested_model,
        "model_group": r.model_group,
        "model_id": r.model_id,
        "custom_llm_provider": r.provider,
        "status_code": r.status,
        "outcome": r.outcome.name(),
        "attempts": r.attempts,
        "cache_hit": r.cache_hit,
        "stream": r.stream,
        "response_cost": r.cost.to_string(),
        "cost_source": r.cost_source,
        "user_api_key_hash": r.key_hash,
        "user_api_key_alias": r.key_alias,
        "user_api_key_team_id": r.team_id,
        "user_api_key_team_alias": r.team_alias,
        "user_api_key_user_id": r.user_id,
        "requester_metadata": r.metadata,
    });
    let trace = json!({
        "id": format!("{}-trace", r.id),
        "type": "trace-create",
        "timestamp": start,
        "body": {
            "id": trace_id,
            "timestamp": start,
            "name": trace_name,
            "userId": user,
            "sessionId": text(metadata, "session_id"),
            "tags": r.tags,
            "metadata": {
                "request_id": r.request_id,
                "user_api_key_alias": r.key_alias,
                "user_api_key_team_id": r.team_id,
            },
        },
    });
    let mut generation = json!({
        "id": r.id,
        "traceId": trace_id,
        "name": generation_name,
        "startTime": start,
        "endTime": end,
        "completionStartTime": timestamp(r.completion_start_time()),
        "model": r.model(),
        "modelParameters": {},
        "usage": {
            "input": r.prompt_tokens,
            "output": r.completion_tokens,
            "total": r.total_tokens,
            "unit": "TOKENS",
            "totalCost": cost,
        },
        "usageDetails": {
            "input": r.prompt_tokens,
            "output": r.completion_tokens,
            "total": r.total_tokens,
        },
        "costDetails": { "total": cost },
        "metadata": generation_metadata,
        "level": if r.success { "DEFAULT" } else { "ERROR" },
    });
    if let (Some(message), Value::Object(body)) = (r.error_message(), &mut generation) {
        body.insert("statusMessage".into(), Value::String(message));
    }
    let generation = json!({
        "id": format!("{}-generation", r.id),
        "type": "generation-create",
        "timestamp": end,
        "body": generation,
    });
    [trace, generation]
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(timestamp(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(1_765_101_296.789), "2025-12-07T09:54:56.789Z");
    }
}
