//! The access line as JSON, written directly: the same fields, names and order as the
//! `tracing` event of `access_line` under `tracing-subscriber`'s JSON formatter (flattened,
//! without target), but without the formatter's per-field visitor and `serde_json::Value`
//! building, which made the line cost about a fifth of a request's CPU
//! (bench/README.md, "Observability on"). Strings go through serde_json's escaping.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::pipeline::Finished;

/// The line, newline-terminated.
pub fn line(event: &Finished<'_>, now: SystemTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(&mut out, now);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\"");
    let mut w = Fields(&mut out);
    w.str("request_id", event.request_id);
    w.str("method", event.method);
    w.str("path", event.path);
    w.int("status", u64::from(event.status));
    w.str("outcome", event.outcome.name());
    w.float("latency_ms", event.latency.as_secs_f64() * 1000.0);
    if let Some(ttft) = event.time_to_first_token {
        w.float("ttft_ms", ttft.as_secs_f64() * 1000.0);
    }
    if let Some(principal) = event.principal {
        w.str("caller", &principal.label());
    }
    w.str("surface", event.surface.name());
    if !event.requested_model.is_empty() {
        w.str("requested_model", event.requested_model);
    }
    if let Some(d) = event.deployment {
        w.str("model_group", &d.model_name);
        w.str("deployment", &d.id);
        w.str("provider", &d.provider_name);
        w.int("attempts", u64::from(event.attempts));
    }
    w.bool("stream", event.stream);
    if let Some(usage) = event.usage {
        w.int("prompt_tokens", usage.prompt_tokens);
        w.int("completion_tokens", usage.completion_tokens);
    }
    if let Some(cost) = event.cost {
        w.str("cost", &cost.total.to_string());
        w.str("cost_source", cost.source.name());
    }
    if let Some(end_user) = event.end_user {
        w.str("end_user", end_user);
    }
    if let Some(feature) = event
        .metadata
        .and_then(|m| m.get("feature"))
        .and_then(|v| v.as_str())
    {
        w.str("feature", feature);
    }
    w.bool("cache_hit", event.cache_hit);
    out.extend_from_slice(b"}\n");
    out
}

struct Fields<'a>(&'a mut Vec<u8>);

impl Fields<'_> {
    fn key(&mut self, name: &str) {
        // Field names are this file's own literals: no escaping needed.
        self.0.extend_from_slice(b",\"");
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    fn str(&mut self, name: &str, value: &str) {
        self.key(name);
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.0, value);
    }

    fn int(&mut self, name: &str, value: u64) {
        self.key(name);
        let _ = write!(self.0, "{value}");
    }

    fn float(&mut self, name: &str, value: f64) {
        self.key(name);
        if value.is_finite() {
            let _ = serde_json::to_writer(&mut *self.0, &value);
        } else {
            self.0.extend_from_slice(b"null");
        }
    }

    fn bool(&mut self, name: &str, value: bool) {
        self.key(name);
        self.0
            .extend_from_slice(if value { b"true" } else { b"false" });
    }
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber writes it: `2026-12-07T11:33:27.389357Z`.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (year, month, day) = crate::calendar::civil_from_days(secs.div_euclid(86_400));
    let rest = secs.rem_euclid(86_400);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_micros()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let at = UNIX_EPOCH + std::time::Duration::from_micros(1_765_107_207_389_357);
        let mut out = Vec::new();
        timestamp(&mut out, at);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2025-12-07T11:33:27.389357Z"
        );
    }
}
