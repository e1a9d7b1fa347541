//! Per-request cache controls: LiteLLM's `cache` body object (`no-cache`, `no-store`, `ttl`,
//! `s-maxage`, `use-cache`, `namespace`) and the HTTP `Cache-Control` request header
//! (`no-cache`, `no-store`, `max-age=N`, `s-maxage=N`). The body object wins where both speak.
//!
//! Hostile input: a `cache` that is not an object, or a known key of the wrong type or out of
//! range, is a 400 naming the key; unknown keys are ignored (as LiteLLM does). A `Cache-Control`
//! header is advisory by nature: directives that do not parse are ignored, never an error.

use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;

use super::settings::{check_namespace, ttl_seconds};
use crate::schema::Extra;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Controls {
    /// Do not answer from the cache (the answer is still stored).
    pub no_cache: bool,
    /// Do not store the answer.
    pub no_store: bool,
    /// Store the answer for this long instead of the configured TTL.
    pub ttl: Option<Duration>,
    /// Accept only an entry stored at most this long ago.
    pub max_age: Option<Duration>,
    /// Opt in when the cache is `mode: default_off`.
    pub use_cache: bool,
    /// This request's namespace instead of the configured one.
    pub namespace: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("`{param}` {message}")]
pub struct ControlError {
    pub param: String,
    pub message: String,
}

fn error(param: &str, message: &str) -> ControlError {
    ControlError {
        param: param.to_owned(),
        message: message.to_owned(),
    }
}

/// Longest header looked at: anything longer is not a real `Cache-Control`.
const MAX_HEADER: usize = 256;

impl Controls {
    /// Takes `cache` out of the body (it is the gateway's, never sent upstream) and reads the
    /// `Cache-Control` header.
    pub fn take_from(extra: &mut Extra, headers: &HeaderMap) -> Result<Controls, ControlError> {
        let mut controls = Controls::default();
        if let Some(header) = headers
            .get(axum::http::header::CACHE_CONTROL)
            .filter(|v| v.len() <= MAX_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            controls.read_header(header);
        }
        match extra.remove("cache") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in &map {
                    // The parameter's name is only spelled out for an error.
                    let param = |message: &str| error(&format!("cache.{key}"), message);
                    match key.as_str() {
                        "no-cache" => controls.no_cache = flag(value).map_err(param)?,
                        "no-store" => controls.no_store = flag(value).map_err(param)?,
                        "use-cache" => controls.use_cache = flag(value).map_err(param)?,
                        "ttl" => controls.ttl = Some(seconds(value).map_err(param)?),
                        "s-maxage" | "s-max-age" => {
                            controls.max_age = Some(age(value).map_err(param)?)
                        }
                        "namespace" => {
                            let ns = value.as_str().ok_or_else(|| param("must be a string"))?;
                            check_namespace(ns).map_err(|m| param(&m))?;
                            controls.namespace = Some(ns.to_owned());
                        }
                        _ => {}
                    }
                }
            }
            Some(_) => return Err(error("cache", "must be an object")),
        }
        Ok(controls)
    }

    fn read_header(&mut self, header: &str) {
        for directive in header.split(',') {
            let directive = directive.trim();
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (directive, None),
            };
            let secs = || value.and_then(|v| v.parse::<u64>().ok());
            if name.eq_ignore_ascii_case("no-cache") {
                self.no_cache = true;
            } else if name.eq_ignore_ascii_case("no-store") {
                self.no_store = true;
            } else if name.eq_ignore_ascii_case("max-age") || name.eq_ignore_ascii_case("s-maxage")
            {
                if let Some(secs) = secs() {
                    // `max-age=0` is "revalidate": for a cache without revalidation, no-cache.
                    self.max_age = Some(Duration::from_secs(secs.min(u32::MAX as u64)));
                }
            }
        }
    }
}

fn flag(value: &Value) -> Result<bool, &'static str> {
    value.as_bool().ok_or("must be true or false")
}

fn seconds(value: &Value) -> Result<Duration, &'static str> {
    value
        .as_f64()
        .and_then(ttl_seconds)
        .ok_or("must be a number of seconds from 1 to 2592000 (30 days)")
}

fn age(value: &Value) -> Result<Duration, &'static str> {
    value
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= u32::MAX as f64)
        .map(Duration::from_secs_f64)
        .ok_or("must be a number of seconds ≥ 0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(body: Value, header: Option<&str>) -> Result<Controls, ControlError> {
        let mut extra = body.as_object().cloned().unwrap();
        let mut headers = HeaderMap::new();
        if let Some(h) = header {
            headers.insert("cache-control", h.parse().unwrap());
        }
        let controls = Controls::take_from(&mut extra, &headers)?;
        assert!(!extra.contains_key("cache"), "`cache` is never forwarded");
        Ok(controls)
    }

    #[test]
    fn reads_litellm_body_controls() {
        let c = read(
            json!({"cache": {"no-cache": true, "no-store": true, "ttl": 60, "s-maxage": 5, "namespace": "a.b", "unknown": [1]}}),
            None,
        )
        .unwrap();
        assert!(c.no_cache && c.no_store);
        assert_eq!(c.ttl, Some(Duration::from_secs(60)));
        assert_eq!(c.max_age, Some(Duration::from_secs(5)));
        assert_eq!(c.namespace.as_deref(), Some("a.b"));
        assert_eq!(
            read(json!({"cache": null}), None).unwrap(),
            Controls::default()
        );
    }

    #[test]
    fn hostile_body_controls_are_named_400s() {
        for (body, param) in [
            (json!({"cache": "yes"}), "cache"),
            (json!({"cache": [true]}), "cache"),
            (json!({"cache": {"no-cache": "true"}}), "cache.no-cache"),
            (json!({"cache": {"ttl": -1}}), "cache.ttl"),
            (json!({"cache": {"ttl": 0}}), "cache.ttl"),
            (json!({"cache": {"ttl": 1e300}}), "cache.ttl"),
            (json!({"cache": {"ttl": "60"}}), "cache.ttl"),
            (json!({"cache": {"s-maxage": -5}}), "cache.s-maxage"),
            (json!({"cache": {"namespace": "a b"}}), "cache.namespace"),
            (
                json!({"cache": {"namespace": "x".repeat(65)}}),
                "cache.namespace",
            ),
            (json!({"cache": {"namespace": 7}}), "cache.namespace"),
        ] {
            let err = read(body.clone(), None).unwrap_err();
            assert_eq!(err.param, param, "{body}");
        }
    }

    #[test]
    fn reads_the_header_and_ignores_what_does_not_parse() {
        let c = read(json!({}), Some("no-cache, No-Store, max-age=30")).unwrap();
        assert!(c.no_cache && c.no_store);
        assert_eq!(c.max_age, Some(Duration::from_secs(30)));
        let c = read(json!({}), Some("max-age=-1, s-maxage=abc, ,,=,private")).unwrap();
        assert_eq!(c, Controls::default());
        let c = read(json!({}), Some(&"no-cache,".repeat(100))).unwrap();
        assert_eq!(c, Controls::default(), "an overlong header is ignored");
        let c = read(json!({"cache": {"s-maxage": 10}}), Some("max-age=99")).unwrap();
        assert_eq!(c.max_age, Some(Duration::from_secs(10)), "the body wins");
    }
}
