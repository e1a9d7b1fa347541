//! The generic webhook (LiteLLM's `generic_api` callback): a batch is a JSON array of events
//! shaped like LiteLLM's `StandardLoggingPayload` (its field names where a field exists), so a
//! receiver written for LiteLLM reads them unchanged. Fields LiteLLM has and Switchyard does not
//! know are left out; Switchyard's own facts go in `switchyard`. Never the key (only its
//! hash, as LiteLLM logs it), never the prompt or the answer (`messages` and `response` are
//! `null`).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::Record;

pub fn encode(batch: &[Arc<Record>]) -> Bytes {
    let events: Vec<Value> = batch.iter().map(|r| event(r)).collect();
    Bytes::from(serde_json::to_vec(&events).unwrap_or_else(|_| b"[]".to_vec()))
}

/// `log_format: ndjson`: one event per line.
pub fn encode_ndjson(batch: &[Arc<Record>]) -> Bytes {
    let mut body = Vec::new();
    for record in batch {
        if serde_json::to_writer(&mut body, &event(record)).is_ok() {
            body.push(b'\n');
        }
    }
    Bytes::from(body)
}

/// `log_format: single`: the batch is one event (the sender sends batches of one).
pub fn encode_single(batch: &[Arc<Record>]) -> Bytes {
    let event = batch.first().map_or(Value::Null, |r| event(r));
    Bytes::from(serde_json::to_vec(&event).unwrap_or_default())
}

/// One `StandardLoggingPayload`-shaped event.
pub fn event(r: &Record) -> Value {
    let error_information = r.error_class().map(|class| {
        json!({
            "error_code": r.status.to_string(),
            "error_class": class,
            "llm_provider": r.provider,
            "error_message": r.error_message(),
        })
    });
    json!({
        "id": r.id,
        "trace_id": r.request_id,
        "litellm_call_id": r.request_id,
        "call_type": r.call_type,
        "stream": r.stream,
        "status": if r.success { "success" } else { "failure" },
        "response_cost": r.cost.as_usd(),
        "custom_llm_provider": r.provider,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": r.total_tokens,
        "startTime": r.start_time,
        "endTime": r.end_time,
        "completionStartTime": r.completion_start_time(),
        "response_time": r.latency.as_secs_f64(),
        "model": r.model(),
        "model_id": r.model_id,
        "model_group": r.model_group,
        "metadata": {
            "user_api_key_hash": r.key_hash,
            "user_api_key_alias": r.key_alias,
            "user_api_key_team_id": r.team_id,
            "user_api_key_team_alias": r.team_alias,
            "user_api_key_user_id": r.user_id,
            "user_api_key_end_user_id": r.end_user,
            "user_api_key_request_route": r.path,
            "team_id": r.team_id,
            "team_alias": r.team_alias,
            "requester_metadata": r.metadata,
        },
        "cache_hit": r.cache_hit,
        "request_tags": r.tags,
        "end_user": r.end_user,
        "messages": null,
        "response": null,
        "error_str": r.error_message(),
        "error_information": error_information,
        "model_parameters": {},
        "switchyard": {
            "request_id": r.request_id,
            "requested_model": r.requested_model,
            "status_code": r.status,
            "outcome": r.outcome.name(),
            "attempts": r.attempts,
            "response_cost": r.cost.to_string(),
            "cost_source": r.cost_source,
            "time_to_first_token_ms": r.time_to_first_token.map(|t| t.as_secs_f64() * 1000.0),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_log_formats() {
        let batch = [
            Arc::new(Record::sample("g", 200, 10)),
            Arc::new(Record::sample("g", 502, 10)),
        ];
        let array: Value = serde_json::from_slice(&encode(&batch)).unwrap();
        assert_eq!(array.as_array().unwrap().len(), 2);
        assert_eq!(array[0]["status"], "success");
        assert_eq!(array[1]["status"], "failure");
        assert_eq!(array[1]["error_information"]["error_code"], "502");
        let ndjson = encode_ndjson(&batch);
        let lines: Vec<Value> = std::str::from_utf8(&ndjson)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, array.as_array().unwrap().clone());
        let single: Value = serde_json::from_slice(&encode_single(&batch[..1])).unwrap();
        assert_eq!(single, array[0]);
    }
}
