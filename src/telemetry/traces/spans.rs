//! Spans from a finished request: names and attributes follow the OpenTelemetry GenAI semantic
//! conventions (`gen_ai.*`), HTTP ones where they apply, and `switchyard.*` for the gateway's
//! own facts. Checked against opentelemetry-semantic-conventions 0.33 (names written out here,
//! so the crate is not a dependency). Prompt and completion content are never exported.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::SystemTime;

use bytes::Bytes;

use super::otlp::{Attributes, Kind, SpanHead, Spans, Value};
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

/// The GenAI operation of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Chat,
    Embeddings,
    TextCompletion,
    Rerank,
}

impl Operation {
    fn of(path: &str) -> Operation {
        let path = path.strip_prefix("/v1").unwrap_or(path);
        match path {
            "/embeddings" => Operation::Embeddings,
            "/completions" => Operation::TextCompletion,
            "/rerank" | "/v2/rerank" => Operation::Rerank,
            _ => Operation::Chat,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Embeddings => "embeddings",
            Operation::TextCompletion => "text_completion",
            Operation::Rerank => "rerank",
        }
    }
}

/// A deployment's span attributes, encoded the first time a span needs them and copied into
/// every span after: they are fixed for the deployment's life (a reload makes new
/// deployments), and writing them field by field was a third of what a span cost.
#[derive(Default)]
pub struct DeploymentAttributes {
    /// For the request span: provider, model group, deployment id.
    request: OnceLock<Box<[u8]>>,
    /// For an attempt span, by operation: the same, with the operation and requested model.
    attempt: [OnceLock<Box<[u8]>>; 3],
}

impl std::fmt::Debug for DeploymentAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeploymentAttributes")
    }
}

impl DeploymentAttributes {
    fn request(&self, deployment: &Deployment) -> &[u8] {
        self.request.get_or_init(|| {
            let mut attributes = Attributes::default();
            let provider = provider_name(&deployment.provider_name);
            attributes.str(SYSTEM, &provider);
            attributes.str(PROVIDER_NAME, &provider);
            attributes.str("switchyard.model_group", &deployment.model_name);
            attributes.str("switchyard.deployment_id", &deployment.id);
            attributes.into_bytes()
        })
    }

    fn attempt(&self, deployment: &Deployment, operation: Operation) -> &[u8] {
        self.attempt[operation as usize].get_or_init(|| {
            let mut attributes = Attributes::default();
            let provider = provider_name(&deployment.provider_name);
            attributes.str(OPERATION_NAME, operation.name());
            attributes.str(SYSTEM, &provider);
            attributes.str(PROVIDER_NAME, &provider);
            attributes.str(REQUEST_MODEL, &deployment.upstream.model);
            attributes.str("switchyard.model_group", &deployment.model_name);
            attributes.str("switchyard.deployment_id", &deployment.id);
            attributes.into_bytes()
        })
    }
}

/// Up to four distinct finish reasons, in choice order (OpenAI defines five; the well-known
/// ones are kept without a copy).
#[derive(Debug, Default)]
pub struct Reasons {
    list: [Cow<'static, str>; 4],
    len: usize,
}

impl Reasons {
    pub fn add(&mut self, reason: &str) {
        self.add_bytes(reason.as_bytes());
    }

    /// A reason as the answer's bytes: the well-known ones need no UTF-8 check, and others
    /// that are not UTF-8 are left out.
    pub fn add_bytes(&mut self, reason: &[u8]) {
        if self.len == self.list.len() || self.as_slice().iter().any(|r| r.as_bytes() == reason) {
            return;
        }
        self.list[self.len] = match reason {
            b"stop" => Cow::Borrowed("stop"),
            b"length" => Cow::Borrowed("length"),
            b"tool_calls" => Cow::Borrowed("tool_calls"),
            b"content_filter" => Cow::Borrowed("content_filter"),
            b"function_call" => Cow::Borrowed("function_call"),
            other => match std::str::from_utf8(other) {
                Ok(other) => Cow::Owned(other.to_owned()),
                Err(_) => return,
            },
        };
        self.len += 1;
    }

    pub fn as_slice(&self) -> &[Cow<'static, str>] {
        &self.list[..self.len]
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
        "mistral" | "codestral" => "mistral_ai".into(),
        "cohere" | "cohere_chat" => "cohere".into(),
        "ollama" | "ollama_chat" => "ollama".into(),
        "groq" => "groq".into(),
        "deepseek" => "deepseek".into(),
        "anthropic" => "anthropic".into(),
        "openai" => "openai".into(),
        other => other.to_owned().into(),
    }
}

/// The request span and one span per attempt, encoded into one [`Spans`].
pub fn build(event: &Finished<'_>, trace: &RequestTrace, details: &Details) -> Spans {
    let ended = SystemTime::now();
    // The earlier of the two: the trace is made at the edge, the latency is counted from the
    // request context; a span must start no later than its first attempt.
    let started = ended
        .checked_sub(event.latency)
        .map_or(trace.started, |s| s.min(trace.started));
    let operation = Operation::of(event.path);
    let trace_id = trace.trace_id.to_bytes();
    // Exported as the caller sent it (checked for size and visible ASCII at the edge).
    let trace_state = trace
        .tracestate
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let model: &str = event.requested_model;
    let name: &[&str] = if model.is_empty() {
        &[operation.name()]
    } else {
        &[operation.name(), " ", model]
    };
    // What a request span (~25 attributes) and its attempts take, so the buffer never grows.
    let mut spans = Spans::with_capacity(1024 + 512 * details.attempts.len());
    let mut span = spans.span(&SpanHead {
        trace_id,
        span_id: trace.span_id.to_bytes(),
        trace_state,
        parent_span_id: trace.parent.map(|p| p.to_bytes()),
        parent_is_remote: trace.parent.is_some(),
        name,
        kind: Kind::Server,
        start: started,
        end: ended,
    });
    span.str(OPERATION_NAME, operation.name());
    if !model.is_empty() {
        span.str(REQUEST_MODEL, model);
    }
    if let Some(deployment) = event.deployment.map(|d| &**d) {
        span.encoded(deployment.span_attributes.request(deployment));
        // Most upstreams name the model they were asked for: then no UTF-8 check is needed.
        let asked = deployment.upstream.model.as_str();
        let response_model = match details.response_model.as_deref() {
            Some(m) if m == asked.as_bytes() => asked,
            Some(m) => std::str::from_utf8(m).unwrap_or(asked),
            None => asked,
        };
        span.str(RESPONSE_MODEL, response_model);
        span.int("switchyard.attempts", event.attempts.into());
    }
    if let Some(usage) = event.usage {
        span.int(INPUT_TOKENS, usage.prompt_tokens);
        span.int(OUTPUT_TOKENS, usage.completion_tokens);
    }
    if let Some(max_tokens) = details.max_tokens {
        span.int(MAX_TOKENS, max_tokens);
    }
    if let Some(temperature) = details.temperature {
        span.attribute(TEMPERATURE, Value::Double(temperature));
    }
    let reasons = details.finish_reasons.as_slice();
    if !reasons.is_empty() {
        span.attribute(FINISH_REASONS, Value::Strs(reasons));
    }
    span.int(STATUS_CODE, event.status.into());
    span.str(METHOD, event.method);
    span.str(URL_PATH, event.path);
    span.str("switchyard.request_id", event.request_id);
    if let Some(principal) = event.principal {
        // The key's alias, else a prefix of its hash: never the key.
        span.str("switchyard.key_alias", &principal.label());
        if let Some(team) = principal.team() {
            span.str("switchyard.team_id", &team.team_id);
            if let Some(alias) = &team.team_alias {
                span.str("switchyard.team_alias", alias);
            }
        }
    }
    if let Some(user) = event.end_user {
        span.str("switchyard.end_user", user);
    }
    if let Some(cost) = event.cost {
        span.attribute("switchyard.cost_usd", Value::Double(cost.total.as_usd()));
    }
    span.attribute("switchyard.cache_hit", Value::Bool(event.cache_hit));
    span.attribute("switchyard.stream", Value::Bool(event.stream));
    span.str("switchyard.outcome", event.outcome.name());
    if let Some(ttft) = event.time_to_first_token {
        span.attribute(
            "switchyard.time_to_first_token_ms",
            Value::Double(ttft.as_secs_f64() * 1000.0),
        );
    }
    // HTTP server convention: 5xx (and a request that never completed) is an error; a 4xx is
    // the caller's, and leaves the status unset.
    let incomplete = matches!(
        event.outcome,
        Outcome::StreamFailed | Outcome::Panicked | Outcome::Abandoned
    );
    let status_text;
    let error_type: Option<&str> = if incomplete {
        Some(event.outcome.name())
    } else if event.status >= 400 {
        status_text = event.status.to_string();
        Some(status_text.as_str())
    } else {
        None
    };
    if let Some(error_type) = error_type {
        span.str(ERROR_TYPE, error_type);
    }
    let failed = event.status >= 500 || incomplete;
    span.finish(error_type.filter(|_| failed));
    for attempt in details.attempts.iter() {
        attempt_span(&mut spans, trace_id, trace_state, trace, attempt, operation);
    }
    spans
}

fn attempt_span(
    spans: &mut Spans,
    trace_id: [u8; 16],
    trace_state: &str,
    trace: &RequestTrace,
    attempt: &AttemptRecord,
    operation: Operation,
) {
    let deployment: &Deployment = &attempt.deployment;
    let mut span = spans.span(&SpanHead {
        trace_id,
        span_id: attempt.span_id.to_bytes(),
        trace_state,
        parent_span_id: Some(trace.span_id.to_bytes()),
        parent_is_remote: false,
        name: &[operation.name(), " ", &deployment.upstream.model],
        kind: Kind::Client,
        start: attempt.started,
        end: attempt.ended.max(attempt.started),
    });
    span.encoded(deployment.span_attributes.attempt(deployment, operation));
    span.int("switchyard.attempt", attempt.number.into());
    span.int("switchyard.retry", attempt.retry.into());
    if let Some(reason) = attempt.fallback_reason {
        span.str("switchyard.fallback_reason", reason);
    }
    match attempt.error {
        Some((class, status)) => {
            span.str(ERROR_TYPE, class);
            if let Some(status) = status {
                span.int(STATUS_CODE, status.into());
            }
            span.finish(Some(class));
        }
        None => span.finish(None),
    }
}

/// The upstream's model (raw answers only: a typed answer's model is already the alias), as a
/// slice of the body, and the distinct finish reasons, in choice order.
pub fn answer_details(answer: &ChatAnswer) -> (Option<Bytes>, Reasons) {
    let mut reasons = Reasons::default();
    let model = match answer {
        ChatAnswer::Raw(raw) => {
            finish_reasons(raw.body(), &mut |r| reasons.add_bytes(r));
            raw.upstream_model_bytes()
        }
        ChatAnswer::Typed(typed) => {
            for reason in typed
                .choices
                .iter()
                .filter_map(|c| c.finish_reason.as_deref())
            {
                reasons.add(reason);
            }
            None
        }
    };
    (model, reasons)
}

/// The `finish_reason` string values of an OpenAI answer body, found by a byte scan instead of
/// a second parse (the body was validated as JSON when it arrived; a parse cost as much as
/// building the spans). Inside a JSON string every `"` is escaped, so an unescaped
/// `"finish_reason"` followed by `:` is a key.
fn finish_reasons(body: &[u8], add: &mut impl FnMut(&[u8])) {
    const KEY: &[u8] = b"\"finish_reason\"";
    let mut at = 0;
    while let Some(found) = FINISH_REASON_KEY.find(&body[at..]) {
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
            add(&value[..end]);
        }
        at = i + 1 + end;
    }
}

/// The `"finish_reason"` searcher, built once: building one per call cost more than the scan.
static FINISH_REASON_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"finish_reason\""));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_bounded_and_in_order() {
        let mut reasons = Reasons::default();
        for r in [
            "length",
            "stop",
            "length",
            "weird",
            "tool_calls",
            "content_filter",
            "x",
        ] {
            reasons.add(r);
        }
        assert_eq!(
            reasons.as_slice(),
            ["length", "stop", "weird", "tool_calls"]
        );
    }

    #[test]
    fn finish_reasons_are_keys_not_content() {
        let body = br#"{"choices":[{"index":0,"message":{"content":"say \"finish_reason\": \"x\""},"finish_reason" : "stop"},{"index":1,"finish_reason":"length"},{"index":2,"finish_reason":null},{"index":3,"finish_reason":"stop"}],"model":"m"}"#;
        let mut found = Vec::new();
        finish_reasons(body, &mut |r| {
            found.push(String::from_utf8_lossy(r).into_owned())
        });
        assert_eq!(found, ["stop", "length", "stop"]);
        let raw = crate::schema::RawCompletion::parse(bytes::Bytes::from_static(body)).unwrap();
        let (model, reasons) = answer_details(&ChatAnswer::Raw(raw));
        assert_eq!(model.as_deref(), Some(&b"m"[..]));
        assert_eq!(reasons.as_slice(), ["stop", "length"]);
    }
}
