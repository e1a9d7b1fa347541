//! Spans from a finished request: names and attributes follow the OpenTelemetry GenAI semantic
//! conventions (`gen_ai.*`), HTTP ones where they apply, and `switchyard.*` for the gateway's
//! own facts. Checked against opentelemetry-semantic-conventions 0.33 (names written out here,
//! so the crate is not a dependency). Prompt and completion content are never exported.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::{AttemptRecord, Details, RequestTrace};
use crate::pipeline::{Finished, Outcome};
use crate::router::Deployment;
use crate::schema::ChatAnswer;

pub const OPERATION_NAME: &str = "gen_ai.operation.name";
/// Deprecated in favour of `gen_ai.provider.name`, still what most backends read: both are set.
pub const SYSTEM: &str = "gen_ai.system";
pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const MAX_TOKENS: &str = "gen_ai.request.max_tokens";
pub const TEMPERATURE: &str = "gen_ai.request.temperature";
pub const FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
pub const STATUS_CODE: &str = "http.response.status_code";
pub const METHOD: &str = "http.request.method";
pub const URL_PATH: &str = "url.path";
pub const ERROR_TYPE: &str = "error.type";

/// The GenAI operation of a route (`chat`, `embeddings`, `text_completion`).
fn operation(path: &str) -> &'static str {
    let path = path.strip_prefix("/v1").unwrap_or(path);
    match path {
        "/embeddings" => "embeddings",
        "/completions" => "text_completion",
        _ => "chat",
    }
}

/// The semantic conventions' well-known provider names; other providers keep their config
/// prefix.
fn provider_name(provider: &str) -> Cow<'static, str> {
    match provider {
        "azure" | "azure_ai" => "azure.ai.openai".into(),
        "gemini" => "gcp.gemini".into(),
        "vertex_ai" => "gcp.vertex_ai".into(),
        "bedrock" => "aws.bedrock".into(),
        "mistral" => "mistral_ai".into(),
        "groq" => "groq".into(),
        "deepseek" => "deepseek".into(),
        "anthropic" => "anthropic".into(),
        "openai" => "openai".into(),
        other => other.to_owned().into(),
    }
}

fn string(key: &'static str, value: impl Into<StringValue>) -> KeyValue {
    KeyValue::new(key, Value::String(value.into()))
}

fn int(key: &'static str, value: u64) -> KeyValue {
    KeyValue::new(key, i64::try_from(value).unwrap_or(i64::MAX))
}

fn context(trace: &RequestTrace, span_id: SpanId) -> SpanContext {
    let state = trace
        .tracestate
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    SpanContext::new(trace.trace_id, span_id, TraceFlags::SAMPLED, false, state)
}

/// The request span and one span per attempt.
pub fn build(
    event: &Finished<'_>,
    trace: &RequestTrace,
    details: &Details,
    scope: &InstrumentationScope,
) -> Vec<SpanData> {
    let ended = SystemTime::now();
    // The earlier of the two: the trace is made at the edge, the latency is counted from the
    // request context; a span must start no later than its first attempt.
    let started = ended
        .checked_sub(event.latency)
        .map_or(trace.started, |s| s.min(trace.started));
    let operation = operation(event.path);
    let deployment = event.deployment.map(|d| &**d);
    let mut attributes = Vec::with_capacity(24);
    attributes.push(string(OPERATION_NAME, operation));
    if !event.requested_model.is_empty() {
        attributes.push(string(REQUEST_MODEL, event.requested_model.to_owned()));
    }
    if let Some(deployment) = deployment {
        let provider = provider_name(&deployment.provider_name);
        attributes.push(string(SYSTEM, provider.clone()));
        attributes.push(string(PROVIDER_NAME, provider));
        let model = details
            .response_model
            .clone()
            .unwrap_or_else(|| deployment.upstream.model.clone());
        attributes.push(string(RESPONSE_MODEL, model));
        attributes.push(string(
            "switchyard.model_group",
            deployment.model_name.clone(),
        ));
        attributes.push(string("switchyard.deployment_id", deployment.id.clone()));
        attributes.push(int("switchyard.attempts", event.attempts.into()));
    }
    if let Some(usage) = event.usage {
        attributes.push(int(INPUT_TOKENS, usage.prompt_tokens));
        attributes.push(int(OUTPUT_TOKENS, usage.completion_tokens));
    }
    if let Some(max_tokens) = details.max_tokens {
        attributes.push(int(MAX_TOKENS, max_tokens));
    }
    if let Some(temperature) = details.temperature {
        attributes.push(KeyValue::new(TEMPERATURE, temperature));
    }
    if !details.finish_reasons.is_empty() {
        let reasons = details
            .finish_reasons
            .iter()
            .map(|r| StringValue::from(r.clone()))
            .collect();
        attributes.push(KeyValue::new(
            FINISH_REASONS,
            Value::Array(Array::String(reasons)),
        ));
    }
    attributes.push(int(STATUS_CODE, event.status.into()));
    attributes.push(string(METHOD, event.method.to_owned()));
    attributes.push(string(URL_PATH, event.path.to_owned()));
    attributes.push(string("switchyard.request_id", event.request_id.to_owned()));
    if let Some(principal) = event.principal {
        // The key's alias, else a prefix of its hash: never the key.
        attributes.push(string(
            "switchyard.key_alias",
            principal.label().into_owned(),
        ));
        if let Some(team) = principal.team() {
            attributes.push(string("switchyard.team_id", team.team_id.clone()));
            if let Some(alias) = &team.team_alias {
                attributes.push(string("switchyard.team_alias", alias.clone()));
            }
        }
    }
    if let Some(user) = event.end_user {
        attributes.push(string("switchyard.end_user", user.to_owned()));
    }
    if let Some(cost) = event.cost {
        attributes.push(KeyValue::new("switchyard.cost_usd", cost.total.as_usd()));
    }
    attributes.push(KeyValue::new("switchyard.cache_hit", event.cache_hit));
    attributes.push(KeyValue::new("switchyard.stream", event.stream));
    attributes.push(string("switchyard.outcome", event.outcome.name()));
    if let Some(ttft) = event.time_to_first_token {
        attributes.push(KeyValue::new(
            "switchyard.time_to_first_token_ms",
            ttft.as_secs_f64() * 1000.0,
        ));
    }
    // HTTP server convention: 5xx (and a request that never completed) is an error; a 4xx is
    // the caller's, and leaves the status unset.
    let failed = event.status >= 500
        || matches!(
            event.outcome,
            Outcome::StreamFailed | Outcome::Panicked | Outcome::Abandoned
        );
    let status = if failed {
        let error_type = match event.outcome {
            Outcome::StreamFailed | Outcome::Panicked | Outcome::Abandoned => {
                event.outcome.name().to_owned()
            }
            _ => event.status.to_string(),
        };
        attributes.push(string(ERROR_TYPE, error_type.clone()));
        Status::error(error_type)
    } else {
        if event.status >= 400 {
            attributes.push(string(ERROR_TYPE, event.status.to_string()));
        }
        Status::Unset
    };
    let name = if event.requested_model.is_empty() {
        Cow::Borrowed(operation)
    } else {
        Cow::Owned(format!("{operation} {}", event.requested_model))
    };
    let mut spans = Vec::with_capacity(1 + details.attempts.len());
    spans.push(SpanData {
        span_context: context(trace, trace.span_id),
        parent_span_id: trace.parent.unwrap_or(SpanId::INVALID),
        parent_span_is_remote: trace.parent.is_some(),
        span_kind: SpanKind::Server,
        name,
        start_time: started,
        end_time: ended,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    });
    for attempt in &details.attempts {
        spans.push(attempt_span(trace, attempt, operation, scope));
    }
    spans
}

fn attempt_span(
    trace: &RequestTrace,
    attempt: &AttemptRecord,
    operation: &'static str,
    scope: &InstrumentationScope,
) -> SpanData {
    let deployment: &Deployment = &attempt.deployment;
    let provider = provider_name(&deployment.provider_name);
    let mut attributes = Vec::with_capacity(12);
    attributes.push(string(OPERATION_NAME, operation));
    attributes.push(string(SYSTEM, provider.clone()));
    attributes.push(string(PROVIDER_NAME, provider));
    attributes.push(string(REQUEST_MODEL, deployment.upstream.model.clone()));
    attributes.push(string(
        "switchyard.model_group",
        deployment.model_name.clone(),
    ));
    attributes.push(string("switchyard.deployment_id", deployment.id.clone()));
    attributes.push(int("switchyard.attempt", attempt.number.into()));
    attributes.push(int("switchyard.retry", attempt.retry.into()));
    if let Some(reason) = attempt.fallback_reason {
        attributes.push(string("switchyard.fallback_reason", reason));
    }
    let status = match attempt.error {
        Some((class, status)) => {
            attributes.push(string(ERROR_TYPE, class));
            if let Some(status) = status {
                attributes.push(int(STATUS_CODE, status.into()));
            }
            Status::error(class)
        }
        None => Status::Unset,
    };
    SpanData {
        span_context: context(trace, attempt.span_id),
        parent_span_id: trace.span_id,
        parent_span_is_remote: false,
        span_kind: SpanKind::Client,
        name: Cow::Owned(format!("{operation} {}", deployment.upstream.model)),
        start_time: attempt.started,
        end_time: attempt.ended.max(attempt.started),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

/// The upstream's model (raw answers only: a typed answer's model is already the alias) and
/// the distinct finish reasons, in choice order.
pub fn answer_details(answer: &ChatAnswer) -> (Option<String>, Vec<String>) {
    let mut distinct: Vec<String> = Vec::new();
    let mut add = |reason: &str| {
        if !distinct.iter().any(|r| r == reason) {
            distinct.push(reason.to_owned());
        }
    };
    let model = match answer {
        ChatAnswer::Raw(raw) => {
            finish_reasons(raw.body(), &mut add);
            raw.upstream_model().map(str::to_owned)
        }
        ChatAnswer::Typed(typed) => {
            for reason in typed
                .choices
                .iter()
                .filter_map(|c| c.finish_reason.as_deref())
            {
                add(reason);
            }
            None
        }
    };
    (model, distinct)
}

/// The `finish_reason` string values of an OpenAI answer body, found by a byte scan instead of
/// a second parse (the body was validated as JSON when it arrived; a parse cost as much as
/// building the spans). Inside a JSON string every `"` is escaped, so an unescaped
/// `"finish_reason"` followed by `:` is a key.
fn finish_reasons(body: &[u8], add: &mut impl FnMut(&str)) {
    const KEY: &[u8] = b"\"finish_reason\"";
    let mut at = 0;
    while let Some(found) = find(&body[at..], KEY) {
        let mut i = at + found + KEY.len();
        at = i;
        let skip = |i: &mut usize| {
            while body.get(*i).is_some_and(|b| b.is_ascii_whitespace()) {
                *i += 1;
            }
        };
        skip(&mut i);
        if body.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        skip(&mut i);
        if body.get(i) != Some(&b'"') {
            continue; // null
        }
        let value = &body[i + 1..];
        let Some(end) = value.iter().position(|b| *b == b'"' || *b == b'\\') else {
            return;
        };
        if value[end] == b'"' {
            if let Ok(reason) = std::str::from_utf8(&value[..end]) {
                add(reason);
            }
        }
        at = i + 1 + end;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut from = 0;
    while let Some(offset) = haystack[from..].iter().position(|b| *b == first) {
        let start = from + offset;
        if haystack[start..].starts_with(needle) {
            return Some(start);
        }
        from = start + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_are_keys_not_content() {
        let body = br#"{"choices":[{"index":0,"message":{"content":"say \"finish_reason\": \"x\""},"finish_reason" : "stop"},{"index":1,"finish_reason":"length"},{"index":2,"finish_reason":null},{"index":3,"finish_reason":"stop"}],"model":"m"}"#;
        let mut found = Vec::new();
        finish_reasons(body, &mut |r| found.push(r.to_owned()));
        assert_eq!(found, ["stop", "length", "stop"]);
        let raw = crate::schema::RawCompletion::parse(bytes::Bytes::from_static(body)).unwrap();
        let (model, reasons) = answer_details(&ChatAnswer::Raw(raw));
        assert_eq!(model.as_deref(), Some("m"));
        assert_eq!(reasons, ["stop", "length"]);
    }
}
