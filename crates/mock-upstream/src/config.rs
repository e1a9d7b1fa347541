//! Runtime configuration of the mock and the partial patch the control endpoint merges into it.
//!
//! The configuration is read on every request, so it is kept as an immutable `Arc` snapshot that a
//! patch replaces wholesale (see `state.rs`); a request that is already running keeps the snapshot
//! it started with.

use serde::{Deserialize, Deserializer, Serialize};

/// Injected errors must look like errors: a 1xx/2xx/3xx "error" would confuse every client.
pub const ERROR_STATUS_RANGE: std::ops::RangeInclusive<u16> = 400..=599;

/// The knobs that shape every answer. `fail_next` is not here: it is a counter that requests
/// decrement, so it lives in an atomic next to the other counters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuntimeConfig {
    pub latency_ms: u64,
    pub error_rate: f64,
    pub error_status: u16,
    pub retry_after: Option<u64>,
    pub hang: bool,
    pub chunk_delay_ms: u64,
    pub fail_mid_stream_after: Option<u64>,
    pub reply: String,
}

/// What `GET /__mock/config` shows: the config plus the remaining `fail_next` count.
#[derive(Debug, Serialize)]
pub struct ConfigView<'a> {
    #[serde(flatten)]
    pub config: &'a RuntimeConfig,
    pub fail_next: u64,
}

/// A partial update from `POST /__mock/config`.
///
/// Every field is `Option<Option<T>>` so that "absent" (leave alone) and `null` (clear) are
/// different things. `null` is only meaningful for the optional settings; for the others it is
/// rejected rather than silently ignored, because a test that sends `"hang": null` expecting the
/// hang to stop should fail loudly.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    #[serde(default, deserialize_with = "present")]
    pub latency_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub error_rate: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    pub error_status: Option<Option<u16>>,
    #[serde(default, deserialize_with = "present")]
    pub retry_after: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub hang: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    pub chunk_delay_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub fail_mid_stream_after: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub reply: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub fail_next: Option<Option<u64>>,
}

/// Marks a field that appeared in the JSON (even as `null`) as `Some(..)`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Why a patch was refused; `field` becomes the `param` of the error JSON.
#[derive(Debug, PartialEq)]
pub struct PatchError {
    pub field: &'static str,
    pub message: String,
}

impl PatchError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

pub fn validate_error_rate(rate: f64) -> Result<(), String> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(format!(
            "error_rate must be between 0.0 and 1.0, got {rate}"
        ))
    }
}

pub fn validate_error_status(status: u16) -> Result<(), String> {
    if ERROR_STATUS_RANGE.contains(&status) {
        Ok(())
    } else {
        Err(format!(
            "error_status must be between 400 and 599, got {status}"
        ))
    }
}

impl ConfigPatch {
    /// Checks the whole patch before anything is applied, so a bad patch changes nothing.
    pub fn validate(&self) -> Result<(), PatchError> {
        fn not_null<T>(field: &'static str, value: &Option<Option<T>>) -> Result<(), PatchError> {
            match value {
                Some(None) => Err(PatchError::new(
                    field,
                    format!("{field} cannot be null (only retry_after and fail_mid_stream_after can be cleared)"),
                )),
                _ => Ok(()),
            }
        }
        not_null("latency_ms", &self.latency_ms)?;
        not_null("error_rate", &self.error_rate)?;
        not_null("error_status", &self.error_status)?;
        not_null("hang", &self.hang)?;
        not_null("chunk_delay_ms", &self.chunk_delay_ms)?;
        not_null("reply", &self.reply)?;
        not_null("fail_next", &self.fail_next)?;
        if let Some(Some(rate)) = self.error_rate {
            validate_error_rate(rate).map_err(|m| PatchError::new("error_rate", m))?;
        }
        if let Some(Some(status)) = self.error_status {
            validate_error_status(status).map_err(|m| PatchError::new("error_status", m))?;
        }
        Ok(())
    }

    /// Merges the patch into `config`. Call [`ConfigPatch::validate`] first; fields that would
    /// not validate are skipped here rather than applied.
    pub fn apply_to(&self, config: &mut RuntimeConfig) {
        if let Some(Some(v)) = self.latency_ms {
            config.latency_ms = v;
        }
        if let Some(Some(v)) = self.error_rate {
            if validate_error_rate(v).is_ok() {
                config.error_rate = v;
            }
        }
        if let Some(Some(v)) = self.error_status {
            if validate_error_status(v).is_ok() {
                config.error_status = v;
            }
        }
        if let Some(v) = self.retry_after {
            config.retry_after = v;
        }
        if let Some(Some(v)) = self.hang {
            config.hang = v;
        }
        if let Some(Some(v)) = self.chunk_delay_ms {
            config.chunk_delay_ms = v;
        }
        if let Some(v) = self.fail_mid_stream_after {
            config.fail_mid_stream_after = v;
        }
        if let Some(Some(v)) = &self.reply {
            config.reply.clone_from(v);
        }
    }

    /// The new `fail_next` count, if the patch sets one.
    pub fn fail_next(&self) -> Option<u64> {
        self.fail_next.flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RuntimeConfig {
        RuntimeConfig {
            latency_ms: 0,
            error_rate: 0.0,
            error_status: 500,
            retry_after: Some(3),
            hang: false,
            chunk_delay_ms: 0,
            fail_mid_stream_after: None,
            reply: "hi".into(),
        }
    }

    fn patch(json: &str) -> ConfigPatch {
        serde_json::from_str(json).expect("test patch parses")
    }

    #[test]
    fn absent_fields_are_left_alone() {
        let mut config = base();
        let p = patch(r#"{"latency_ms": 25}"#);
        p.validate().expect("valid");
        p.apply_to(&mut config);
        assert_eq!(
            config,
            RuntimeConfig {
                latency_ms: 25,
                ..base()
            }
        );
    }

    #[test]
    fn null_clears_optional_fields() {
        let mut config = RuntimeConfig {
            fail_mid_stream_after: Some(2),
            ..base()
        };
        let p = patch(r#"{"retry_after": null, "fail_mid_stream_after": null}"#);
        p.validate().expect("valid");
        p.apply_to(&mut config);
        assert_eq!(config.retry_after, None);
        assert_eq!(config.fail_mid_stream_after, None);
    }

    #[test]
    fn every_field_merges() {
        let mut config = base();
        let p = patch(
            r#"{"latency_ms":1,"error_rate":0.5,"error_status":429,"retry_after":9,"hang":true,
                "chunk_delay_ms":7,"fail_mid_stream_after":4,"reply":"bye","fail_next":2}"#,
        );
        p.validate().expect("valid");
        p.apply_to(&mut config);
        assert_eq!(
            config,
            RuntimeConfig {
                latency_ms: 1,
                error_rate: 0.5,
                error_status: 429,
                retry_after: Some(9),
                hang: true,
                chunk_delay_ms: 7,
                fail_mid_stream_after: Some(4),
                reply: "bye".into(),
            }
        );
        assert_eq!(p.fail_next(), Some(2));
    }

    #[test]
    fn null_on_required_field_is_rejected() {
        let err = patch(r#"{"hang": null}"#).validate().unwrap_err();
        assert_eq!(err.field, "hang");
    }

    #[test]
    fn out_of_range_values_are_rejected_and_not_applied() {
        for (json, field) in [
            (r#"{"error_rate": 1.5}"#, "error_rate"),
            (r#"{"error_rate": -0.1}"#, "error_rate"),
            (r#"{"error_status": 200}"#, "error_status"),
            (r#"{"error_status": 600}"#, "error_status"),
        ] {
            let p = patch(json);
            assert_eq!(p.validate().unwrap_err().field, field, "{json}");
            let mut config = base();
            p.apply_to(&mut config);
            assert_eq!(config, base(), "{json}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<ConfigPatch>(r#"{"latency": 5}"#).is_err());
    }

    #[test]
    fn view_flattens_fail_next() {
        let config = base();
        let json = serde_json::to_value(ConfigView {
            config: &config,
            fail_next: 3,
        })
        .expect("serializes");
        assert_eq!(json["fail_next"], 3);
        assert_eq!(json["retry_after"], 3);
        assert_eq!(json["fail_mid_stream_after"], serde_json::Value::Null);
        assert_eq!(json["reply"], "hi");
    }
}
