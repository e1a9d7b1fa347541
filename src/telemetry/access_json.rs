//! The access line as JSON, written directly: the same fields, names and order as the
//! `tracing` event of `access_line` under `tracing-subscriber`'s JSON formatter (flattened,
//! without target), but without the formatter's per-field visitor and `serde_json::Value`
//! building, which made the line cost about a fifth of a request's CPU
//! (bench/README.md, "Observability on"). Numbers and the timestamp are written digit by digit
//! (`core::fmt` costs a few hundred instructions a number); strings that need no escaping, as
//! almost all do, are copied, the rest go through serde_json's escaping.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::pipeline::Finished;

/// `,"name":` as one literal, so a field's name is one copy. Names are this file's own
/// literals: no escaping needed.
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}

/// The line, newline-terminated.
pub fn line(event: &Finished<'_>, now: SystemTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(768);
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(&mut out, now);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\"");
    let mut w = Fields(&mut out);
    w.str(key!("request_id"), event.request_id);
    w.str(key!("method"), event.method);
    w.str(key!("path"), event.path);
    w.int(key!("status"), u64::from(event.status));
    w.plain(key!("outcome"), event.outcome.name());
    w.float(key!("latency_ms"), event.latency.as_secs_f64() * 1000.0);
    if let Some(ttft) = event.time_to_first_token {
        w.float(key!("ttft_ms"), ttft.as_secs_f64() * 1000.0);
    }
    if let Some(principal) = event.principal {
        w.str(key!("caller"), &principal.label());
    }
    w.plain(key!("surface"), event.surface.name());
    if !event.requested_model.is_empty() {
        w.str(key!("requested_model"), event.requested_model);
    }
    if let Some(d) = event.deployment {
        w.str(key!("model_group"), &d.model_name);
        w.str(key!("deployment"), &d.id);
        w.str(key!("provider"), &d.provider_name);
        w.int(key!("attempts"), u64::from(event.attempts));
    }
    w.bool(key!("stream"), event.stream);
    if let Some(usage) = event.usage {
        w.int(key!("prompt_tokens"), usage.prompt_tokens);
        w.int(key!("completion_tokens"), usage.completion_tokens);
    }
    if let Some(cost) = event.cost {
        w.plain(key!("cost"), cost.total.decimal().as_str());
        w.plain(key!("cost_source"), cost.source.name());
    }
    if let Some(end_user) = event.end_user {
        w.str(key!("end_user"), end_user);
    }
    if let Some(feature) = event
        .metadata
        .and_then(|m| m.get("feature"))
        .and_then(|v| v.as_str())
    {
        w.str(key!("feature"), feature);
    }
    w.bool(key!("cache_hit"), event.cache_hit);
    out.extend_from_slice(b"}\n");
    out
}

/// Bytes a JSON string holds as they are: all but control characters, `"` and `\\` (a `&str`
/// is valid UTF-8, and JSON takes UTF-8 unescaped, as serde_json writes it).
static PLAIN: [bool; 256] = {
    let mut table = [true; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = false;
        b += 1;
    }
    table[b'"' as usize] = false;
    table[b'\\' as usize] = false;
    table
};

/// Whether `text` needs no escaping, eight bytes at a time: a byte below 0x20, a `"` or a `\\`
/// in a word is found with the usual "has a zero byte" / "has a byte less than" bit tricks,
/// which are exact as a yes/no.
fn is_plain(text: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let mut words = text.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        // "Has a byte less than 0x20", exact as a yes/no for any bytes.
        let control = x.wrapping_sub(LO * 0x20) & !x & HI;
        let quote = has_zero(x ^ (LO * u64::from(b'"')));
        let backslash = has_zero(x ^ (LO * u64::from(b'\\')));
        if control | quote | backslash != 0 {
            return false;
        }
    }
    words.remainder().iter().all(|&b| PLAIN[usize::from(b)])
}

/// Field writers, inlined: a key is a literal, so its copy has a constant size and needs no
/// `memcpy` call.
struct Fields<'a>(&'a mut Vec<u8>);

impl Fields<'_> {
    #[inline(always)]
    fn key(&mut self, key: &'static str) {
        self.0.extend_from_slice(key.as_bytes());
    }

    /// A string this gateway wrote (a name from its own code, digits): nothing to escape.
    #[inline(always)]
    fn plain(&mut self, key: &'static str, value: &str) {
        debug_assert!(value.bytes().all(|b| PLAIN[usize::from(b)]));
        self.key(key);
        self.0.push(b'"');
        self.0.extend_from_slice(value.as_bytes());
        self.0.push(b'"');
    }

    #[inline(always)]
    fn str(&mut self, key: &'static str, value: &str) {
        self.key(key);
        if is_plain(value.as_bytes()) {
            self.0.push(b'"');
            self.0.extend_from_slice(value.as_bytes());
            self.0.push(b'"');
        } else {
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *self.0, value);
        }
    }

    #[inline(always)]
    fn int(&mut self, key: &'static str, value: u64) {
        self.key(key);
        // serde_json writes integers with `itoa`.
        let _ = serde_json::to_writer(&mut *self.0, &value);
    }

    #[inline(always)]
    fn float(&mut self, key: &'static str, value: f64) {
        self.key(key);
        if value.is_finite() {
            let _ = serde_json::to_writer(&mut *self.0, &value);
        } else {
            self.0.extend_from_slice(b"null");
        }
    }

    #[inline(always)]
    fn bool(&mut self, key: &'static str, value: bool) {
        self.key(key);
        self.0
            .extend_from_slice(if value { b"true" } else { b"false" });
    }
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber writes it: `2026-12-07T11:33:27.389357Z`.
/// Written into a fixed-size array, then appended with one copy of constant size.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (year, month, day) = crate::calendar::civil_from_days(secs.div_euclid(86_400));
    let rest = secs.rem_euclid(86_400);
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    digits(&mut text[0..4], year.clamp(0, 9999) as u32);
    digits(&mut text[5..7], month as u32);
    digits(&mut text[8..10], day as u32);
    digits(&mut text[11..13], (rest / 3600) as u32);
    digits(&mut text[14..16], (rest % 3600 / 60) as u32);
    digits(&mut text[17..19], (rest % 60) as u32);
    digits(&mut text[20..26], since.subsec_micros());
    out.extend_from_slice(&text);
}

/// `value` in exactly as many decimal digits as `slot` holds, zero-padded (higher digits
/// dropped).
fn digits(slot: &mut [u8], mut value: u32) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
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
        let mut out = Vec::new();
        timestamp(&mut out, UNIX_EPOCH);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    /// The word-at-a-time test agrees with the byte table on every byte in every position.
    #[test]
    fn the_word_test_agrees_with_the_table() {
        for b in 0..=255u8 {
            for at in 0..16 {
                let mut text = [b'a'; 16];
                text[at] = b;
                let expected = text.iter().all(|&c| PLAIN[usize::from(c)]);
                assert_eq!(is_plain(&text), expected, "byte {b:#x} at {at}");
                // Next to bytes that borrow or carry.
                text = [0xff; 16];
                text[at] = b;
                let expected = text.iter().all(|&c| PLAIN[usize::from(c)]);
                assert_eq!(is_plain(&text), expected, "byte {b:#x} at {at} among 0xff");
                text = [0x20; 16];
                text[at] = b;
                let expected = text.iter().all(|&c| PLAIN[usize::from(c)]);
                assert_eq!(is_plain(&text), expected, "byte {b:#x} at {at} among 0x20");
            }
        }
    }

    /// Plain strings are copied, the rest escaped: either way the line is JSON that reads back
    /// the same string.
    #[test]
    fn strings_read_back_as_written() {
        for value in [
            "plain-alias_1",
            "",
            "quo\"te",
            "back\\slash",
            "tab\there",
            "é 🚂",
            "\u{7f}",
        ] {
            let mut out = Vec::new();
            Fields(&mut out).str(key!("k"), value);
            let text = String::from_utf8(out).unwrap();
            let parsed: serde_json::Value =
                serde_json::from_str(&format!("{{{}}}", &text[1..])).unwrap();
            assert_eq!(parsed["k"], value, "{text}");
        }
    }
}
