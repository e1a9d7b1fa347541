//! W3C Trace Context (`traceparent`, `tracestate`) and the sampling decision, both made once when
//! a request arrives: the decision must be known before the first upstream call, whose
//! `traceparent` carries it.

use axum::http::{HeaderMap, HeaderValue};
use opentelemetry::trace::{SpanId, TraceId};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The caller's span, from its `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

/// Parses a `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`). Versions above 00 are read as 00
/// (the spec's forward-compatibility rule); `ff`, all-zero ids and malformed values are ignored,
/// and the request then starts a new trace.
pub fn parse_traceparent(value: &str) -> Option<Parent> {
    let value = value.trim();
    let mut parts = value.split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let span_id = parts.next()?;
    let flags = parts.next()?;
    let rest = parts.next();
    if version.len() != 2 || !is_lower_hex(version) || version == "ff" {
        return None;
    }
    // Version 00 has exactly four fields; a later version may add more.
    if version == "00" && rest.is_some() {
        return None;
    }
    if trace_id.len() != 32 || span_id.len() != 16 || flags.len() != 2 {
        return None;
    }
    if !is_lower_hex(trace_id) || !is_lower_hex(span_id) || !is_lower_hex(flags) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(Parent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The `traceparent` of a span we made, written without `format!` (one per upstream attempt:
/// formatting the ids cost ~2,000 instructions), two hex digits per table lookup.
pub fn traceparent(trace_id: TraceId, span_id: SpanId, sampled: bool) -> HeaderValue {
    let mut text = *b"00-________________________________-________________-00";
    let mut hex = |at: usize, bytes: &[u8]| {
        for (i, byte) in bytes.iter().enumerate() {
            text[at + 2 * i..at + 2 * i + 2].copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
        }
    };
    hex(3, &trace_id.to_bytes());
    hex(36, &span_id.to_bytes());
    if sampled {
        text[54] = b'1';
    }
    // Hex digits and dashes only: always a valid header value.
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Each byte's two lowercase hex digits.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [HEX[i >> 4], HEX[i & 0x0f]];
        i += 1;
    }
    table
};

/// The caller's `traceparent` and `tracestate` (only with a valid parent: the spec says to drop
/// a `tracestate` that comes without one). A `tracestate` is passed on as it came (bounded to
/// the spec's 512 bytes) and exported in the span context when it parses.
pub fn from_headers(headers: &HeaderMap) -> (Option<Parent>, Option<HeaderValue>) {
    let parent = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    let state = parent.and_then(|_| {
        headers
            .get(TRACESTATE)
            .filter(|v| !v.is_empty() && v.len() <= 512 && v.to_str().is_ok())
            .cloned()
    });
    (parent, state)
}

/// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, the spec's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    /// Follow the caller's sampled flag; without a caller, the inner rule.
    ParentBased(Root),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

impl Sampler {
    /// Unknown names fall back to the spec's default (`parentbased_always_on`), with a warning.
    pub fn from_env(name: Option<&str>, arg: Option<&str>) -> Sampler {
        let ratio = || {
            arg.and_then(|a| a.trim().parse::<f64>().ok())
                .filter(|r| (0.0..=1.0).contains(r))
                .unwrap_or(1.0)
        };
        match name.map(str::trim).unwrap_or("") {
            "" | "parentbased_always_on" => Sampler::ParentBased(Root::AlwaysOn),
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::Ratio(ratio()),
            "parentbased_always_off" => Sampler::ParentBased(Root::AlwaysOff),
            "parentbased_traceidratio" => Sampler::ParentBased(Root::Ratio(ratio())),
            other => {
                tracing::warn!(
                    "OTEL_TRACES_SAMPLER `{other}` is not supported here; using parentbased_always_on"
                );
                Sampler::ParentBased(Root::AlwaysOn)
            }
        }
    }

    pub fn sample(self, trace_id: TraceId, parent: Option<&Parent>) -> bool {
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::Ratio(ratio) => by_ratio(trace_id, ratio),
            Sampler::ParentBased(root) => match parent {
                Some(parent) => parent.sampled,
                None => match root {
                    Root::AlwaysOn => true,
                    Root::AlwaysOff => false,
                    Root::Ratio(ratio) => by_ratio(trace_id, ratio),
                },
            },
        }
    }
}

/// The SDK's `TraceIdRatioBased` rule: the low 8 bytes of the trace id, shifted right once,
/// below `ratio · 2^63`. Deterministic per trace id, so every service sampling by ratio agrees.
fn by_ratio(trace_id: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..]);
    let x = u64::from_be_bytes(low) >> 1;
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    x < bound
}

/// A random, valid (non-zero) trace id.
pub fn new_trace_id() -> TraceId {
    TraceId::from_bytes(fastrand::u128(1..).to_be_bytes())
}

/// A random, valid (non-zero) span id.
pub fn new_span_id() -> SpanId {
    SpanId::from_bytes(fastrand::u64(1..).to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip_and_rejects() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = parse_traceparent(text).unwrap();
        assert_eq!(
            parent.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(parent.sampled);
        assert_eq!(
            traceparent(parent.trace_id, parent.span_id, true),
            HeaderValue::from_static(text)
        );
        let unsampled = parse_traceparent(&text.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled);
        // Future versions may carry more fields.
        assert!(parse_traceparent(&format!("cc{}-extra", &text[2..])).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn tracestate_only_with_a_parent() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=x"));
        assert_eq!(from_headers(&headers), (None, None));
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let (parent, state) = from_headers(&headers);
        assert!(parent.is_some());
        assert_eq!(state, Some(HeaderValue::from_static("vendor=x")));
    }

    #[test]
    fn samplers_follow_the_spec() {
        let parent = |sampled| Parent {
            trace_id: new_trace_id(),
            span_id: new_span_id(),
            sampled,
        };
        let default = Sampler::from_env(None, None);
        assert!(default.sample(new_trace_id(), None));
        assert!(!default.sample(new_trace_id(), Some(&parent(false))));
        assert!(!Sampler::from_env(Some("always_off"), None).sample(new_trace_id(), None));
        assert!(
            Sampler::from_env(Some("always_on"), None).sample(new_trace_id(), Some(&parent(false)))
        );
        let half = Sampler::from_env(Some("traceidratio"), Some("0.5"));
        assert_eq!(half, Sampler::Ratio(0.5));
        let kept = (0..4000)
            .filter(|_| half.sample(new_trace_id(), None))
            .count();
        assert!((1700..2300).contains(&kept), "{kept}");
        assert!(!Sampler::from_env(Some("traceidratio"), Some("0")).sample(new_trace_id(), None));
        assert_eq!(
            Sampler::from_env(Some("parentbased_traceidratio"), Some("bad")),
            Sampler::ParentBased(Root::Ratio(1.0))
        );
    }
}
