//! `litellm_settings.success_callback` / `failure_callback` / `callbacks`, `callback_settings`,
//! `general_settings.alerting*` and `switchyard_callbacks`, read into
//! [`CallbackSettings`](crate::callbacks::CallbackSettings). Names and environment variables are
//! LiteLLM's (see docs/callbacks.md). A callback Switchyard does not know, or one whose
//! endpoint is not configured, is a start-up warning, never a failure.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::litellm::{ExtraKeys, RawConfig};
use super::{invalid, ConfigError, Secret, Validator};
use crate::callbacks::{
    AlertChannel, AlertChannelKind, AlertSettings, CallbackSettings, DeliverySettings, Destination,
    DestinationKind, LogFormat,
};

/// Callbacks other parts of Switchyard handle (`/metrics`, OpenTelemetry): no warning.
const HANDLED_ELSEWHERE: &[&str] = &["prometheus", "otel"];
/// LiteLLM's names for its generic API logger; `webhook` is Switchyard's alias.
const GENERIC_API: &[&str] = &["generic_api", "webhook", "custom_callback_api"];
const LANGFUSE_CLOUD: &str = "https://cloud.langfuse.com";

/// `callback_settings.<name>` of a `callback_type: generic_api` entry (LiteLLM's keys).
#[derive(Debug, Default, Deserialize)]
struct RawGenericApi {
    callback_type: Option<String>,
    endpoint: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    event_types: Option<Vec<String>>,
    log_format: Option<String>,
    max_retries: Option<u32>,
    /// Seconds before the first retry (LiteLLM's `retry_delay`).
    retry_delay: Option<f64>,
    /// Seconds.
    timeout: Option<f64>,
    #[serde(flatten)]
    extra: ExtraKeys,
}

impl Validator<'_> {
    pub(super) fn callbacks(&mut self, raw: &RawConfig) -> Result<CallbackSettings, ConfigError> {
        let delivery = self.delivery(raw)?;
        let mut settings = CallbackSettings {
            destinations: Vec::new(),
            alerting: self.alerting(raw)?,
            delivery,
        };
        // Name → (success, failure, the key that named it first), in the order written.
        let mut wanted: Vec<(String, bool, bool, &'static str)> = Vec::new();
        let litellm = &raw.litellm_settings;
        for (list, key, success, failure) in [
            (&litellm.success_callback, "success_callback", true, false),
            (&litellm.failure_callback, "failure_callback", false, true),
            (&litellm.callbacks, "callbacks", true, true),
        ] {
            for name in list.iter().flatten() {
                match wanted.iter_mut().find(|(n, ..)| n == name) {
                    Some(entry) => {
                        entry.1 |= success;
                        entry.2 |= failure;
                    }
                    None => wanted.push((name.clone(), success, failure, key)),
                }
            }
        }
        let callback_settings = raw.callback_settings.clone().unwrap_or_default();
        for (name, on_success, on_failure, key) in wanted {
            let own = callback_settings.get(&name);
            let generic = own
                .and_then(|v| v.get("callback_type"))
                .and_then(Value::as_str)
                == Some("generic_api");
            let destination = if HANDLED_ELSEWHERE.contains(&name.as_str()) {
                continue;
            } else if GENERIC_API.contains(&name.as_str()) || generic {
                self.generic_api(&name, own, key, &settings.delivery)?
            } else if name == "langfuse" {
                self.langfuse(key, &settings.delivery)?
            } else {
                self.warn(format!(
                    "litellm_settings.{key}: callback `{name}` is not supported by Switchyard and is ignored (supported: generic_api/webhook, langfuse, prometheus, otel)"
                ));
                continue;
            };
            if let Some(mut destination) = destination {
                destination.on_success &= on_success;
                destination.on_failure &= on_failure;
                settings.destinations.push(destination);
            }
        }
        Ok(settings)
    }

    fn delivery(&self, raw: &RawConfig) -> Result<DeliverySettings, ConfigError> {
        let mut delivery = DeliverySettings::default();
        let Some(own) = &raw.switchyard_callbacks else {
            return Ok(delivery);
        };
        let at_least_one = |value: Option<usize>, key: &str, default: usize| match value {
            None => Ok(default),
            Some(0) => Err(invalid(
                &format!("switchyard_callbacks.{key}"),
                "must be at least 1".to_owned(),
            )),
            Some(n) => Ok(n),
        };
        delivery.queue_size = at_least_one(own.queue_size, "queue_size", delivery.queue_size)?;
        delivery.batch_size = at_least_one(own.batch_size, "batch_size", delivery.batch_size)?;
        if let Some(ms) = own.flush_interval_ms {
            delivery.flush_interval = Duration::from_millis(ms);
        }
        if let Some(n) = own.max_retries {
            delivery.max_retries = n;
        }
        if let Some(ms) = own.retry_delay_ms {
            delivery.retry_delay = Duration::from_millis(ms);
        }
        if let Some(ms) = own.max_retry_delay_ms {
            delivery.max_retry_delay = Duration::from_millis(ms);
        }
        if let Some(secs) = own.timeout_seconds {
            delivery.timeout = super::seconds(secs, "switchyard_callbacks.timeout_seconds")?;
        }
        if let Some(secs) = own.shutdown_flush_seconds {
            if !(secs >= 0.0 && secs.is_finite()) {
                return Err(invalid(
                    "switchyard_callbacks.shutdown_flush_seconds",
                    format!("must be a number of seconds ≥ 0, got {secs}"),
                ));
            }
            delivery.shutdown_flush = Duration::from_secs_f64(secs);
        }
        Ok(delivery)
    }

    /// LiteLLM's generic API logger: `callback_settings.<name>` (endpoint, headers ...), else
    /// `GENERIC_LOGGER_ENDPOINT` and `GENERIC_LOGGER_HEADERS` (`k1=v1,k2=v2`).
    fn generic_api(
        &mut self,
        name: &str,
        own: Option<&Value>,
        key: &str,
        delivery: &DeliverySettings,
    ) -> Result<Option<Destination>, ConfigError> {
        let location = format!("callback_settings.{name}");
        let own: RawGenericApi = match own {
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|err| invalid(&location, err.to_string()))?,
            None => RawGenericApi::default(),
        };
        self.unsupported(&format!("{location}."), &own.extra);
        if let Some(kind) = own.callback_type.as_deref().filter(|k| *k != "generic_api") {
            self.warn(format!(
                "{location}.callback_type `{kind}` is not supported; `{name}` is sent as generic_api"
            ));
        }
        let mut headers: Vec<(String, Secret)> = Vec::new();
        if let Some(env) = self.env_var("GENERIC_LOGGER_HEADERS") {
            for item in env.split(',') {
                if let Some((k, v)) = item.split_once('=') {
                    headers.push((k.trim().to_owned(), Secret::new(v.trim().to_owned())));
                }
            }
        }
        for (header, value) in &own.headers {
            let value = self.resolve(value, &format!("{location}.headers.{header}"))?;
            headers.retain(|(h, _)| !h.eq_ignore_ascii_case(header));
            headers.push((header.clone(), Secret::new(value)));
        }
        let endpoint = match &own.endpoint {
            Some(endpoint) => Some(self.resolve(endpoint, &format!("{location}.endpoint"))?),
            None => self.env_var("GENERIC_LOGGER_ENDPOINT"),
        };
        let Some(url) = endpoint.filter(|e| !e.is_empty()) else {
            self.warn(format!(
                "litellm_settings.{key}: callback `{name}` has no endpoint (set GENERIC_LOGGER_ENDPOINT or {location}.endpoint); it is disabled"
            ));
            return Ok(None);
        };
        http_url(&url, &format!("{location}.endpoint"))?;
        let log_format = match own.log_format.as_deref() {
            None | Some("json_array") => LogFormat::JsonArray,
            Some("ndjson") => LogFormat::Ndjson,
            Some("single") => LogFormat::Single,
            Some(other) => {
                return Err(invalid(
                    &format!("{location}.log_format"),
                    format!("must be json_array, ndjson or single, got `{other}`"),
                ))
            }
        };
        let (mut on_success, mut on_failure) = (true, true);
        if let Some(types) = &own.event_types {
            on_success = types.iter().any(|t| t == "llm_api_success");
            on_failure = types.iter().any(|t| t == "llm_api_failure");
        }
        let retry_delay = match own.retry_delay {
            Some(secs) if secs >= 0.0 && secs.is_finite() => Duration::from_secs_f64(secs),
            Some(secs) => {
                return Err(invalid(
                    &format!("{location}.retry_delay"),
                    format!("must be a number of seconds ≥ 0, got {secs}"),
                ))
            }
            None => delivery.retry_delay,
        };
        let timeout = own
            .timeout
            .map(|secs| super::seconds(secs, &format!("{location}.timeout")))
            .transpose()?
            .unwrap_or(delivery.timeout);
        Ok(Some(Destination {
            name: name.to_owned(),
            kind: DestinationKind::Webhook(log_format),
            url,
            headers,
            on_success,
            on_failure,
            max_retries: own.max_retries.unwrap_or(delivery.max_retries),
            retry_delay,
            timeout,
        }))
    }

    /// Langfuse, configured as LiteLLM reads it: `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY`,
    /// `LANGFUSE_HOST` (else `LANGFUSE_BASE_URL`, else Langfuse Cloud).
    fn langfuse(
        &mut self,
        key: &str,
        delivery: &DeliverySettings,
    ) -> Result<Option<Destination>, ConfigError> {
        let public = self
            .env_var("LANGFUSE_PUBLIC_KEY")
            .filter(|v| !v.is_empty());
        let secret = self
            .env_var("LANGFUSE_SECRET_KEY")
            .filter(|v| !v.is_empty());
        let (Some(public), Some(secret)) = (public, secret) else {
            self.warn(format!(
                "litellm_settings.{key}: callback `langfuse` needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY; it is disabled"
            ));
            return Ok(None);
        };
        let host = self
            .env_var("LANGFUSE_HOST")
            .or_else(|| self.env_var("LANGFUSE_BASE_URL"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| LANGFUSE_CLOUD.to_owned());
        let host = host.trim_end_matches('/');
        // LiteLLM accepts a host without a scheme and assumes https.
        let host = if host.starts_with("http://") || host.starts_with("https://") {
            host.to_owned()
        } else {
            format!("https://{host}")
        };
        let url = format!("{host}/api/public/ingestion");
        http_url(&url, "LANGFUSE_HOST")?;
        let credentials = base64(format!("{public}:{secret}").as_bytes());
        Ok(Some(Destination {
            name: "langfuse".to_owned(),
            kind: DestinationKind::Langfuse,
            url,
            headers: vec![(
                "authorization".to_owned(),
                Secret::new(format!("Basic {credentials}")),
            )],
            on_success: true,
            on_failure: true,
            max_retries: delivery.max_retries,
            retry_delay: delivery.retry_delay,
            timeout: delivery.timeout,
        }))
    }

    /// `general_settings.alerting`, `alerting_threshold`, `alert_types`, `alerting_args`.
    fn alerting(&mut self, raw: &RawConfig) -> Result<Option<AlertSettings>, ConfigError> {
        let general = &raw.general_settings;
        let Some(channels) = &general.alerting else {
            return Ok(None);
        };
        let mut settings = AlertSettings::default();
        let args = general.alerting_args.clone().unwrap_or_default();
        let arg_text = |this: &Self, name: &str| -> Result<Option<String>, ConfigError> {
            match args.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => this
                    .resolve(text, &format!("general_settings.alerting_args.{name}"))
                    .map(Some),
                Some(_) => Err(invalid(
                    &format!("general_settings.alerting_args.{name}"),
                    "must be a URL".into(),
                )),
            }
        };
        for channel in channels {
            let (kind, url) = match channel.as_str() {
                "slack" => (
                    AlertChannelKind::Slack,
                    match arg_text(self, "slack_webhook_url")? {
                        Some(url) => Some(url),
                        None => self
                            .env_var("SLACK_WEBHOOK_URL")
                            .or_else(|| self.env_var("ALERTING_WEBHOOK_URL")),
                    },
                ),
                "webhook" => (
                    AlertChannelKind::Webhook,
                    match arg_text(self, "webhook_url")? {
                        Some(url) => Some(url),
                        None => self.env_var("WEBHOOK_URL"),
                    },
                ),
                other => {
                    self.warn(format!(
                        "general_settings.alerting: `{other}` is not supported by Switchyard and is ignored (supported: slack, webhook)"
                    ));
                    continue;
                }
            };
            let Some(url) = url.filter(|u| !u.is_empty()) else {
                self.warn(format!(
                    "general_settings.alerting: `{channel}` needs {}; its alerts are only logged",
                    if channel == "slack" {
                        "SLACK_WEBHOOK_URL"
                    } else {
                        "WEBHOOK_URL"
                    }
                ));
                continue;
            };
            http_url(&url, &format!("general_settings.alerting ({channel})"))?;
            settings.channels.push(AlertChannel {
                kind,
                url: Secret::new(url),
            });
        }
        if let Some(types) = &general.alert_types {
            for name in types {
                if !crate::callbacks::ALERT_TYPES.contains(&name.as_str()) {
                    self.warn(format!(
                        "general_settings.alert_types: Switchyard raises no `{name}` alerts (it raises {})",
                        crate::callbacks::ALERT_TYPES.join(", ")
                    ));
                }
            }
            settings.alert_types = Some(types.clone());
        }
        if let Some(secs) = general.alerting_threshold {
            settings.slow_request = super::seconds(secs, "general_settings.alerting_threshold")?;
        }
        settings.p95_latency = Some(settings.slow_request);
        let number = |name: &str| -> Result<Option<f64>, ConfigError> {
            match args.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value
                    .as_f64()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .map(Some)
                    .ok_or_else(|| {
                        invalid(
                            &format!("general_settings.alerting_args.{name}"),
                            format!("must be a number ≥ 0, got {value}"),
                        )
                    }),
            }
        };
        let secs = |v: f64| Duration::from_secs_f64(v);
        if let Some(v) = number("alert_dedupe_window")? {
            settings.dedupe_window = secs(v);
            settings.budget_dedupe_window = secs(v);
        }
        if let Some(v) = number("budget_alert_ttl")? {
            settings.budget_dedupe_window = secs(v);
        }
        if let Some(v) = number("error_rate_window")? {
            settings.window = secs(v.max(1.0));
        }
        if let Some(v) = number("error_rate_min_requests")? {
            settings.min_requests = v as u64;
        }
        if let Some(v) = number("error_rate_threshold")? {
            if v > 1.0 {
                return Err(invalid(
                    "general_settings.alerting_args.error_rate_threshold",
                    format!("is a share of requests between 0 and 1, got {v}"),
                ));
            }
            settings.error_rate = v;
        }
        if let Some(v) = number("p95_latency_threshold")? {
            settings.p95_latency = (v > 0.0).then(|| secs(v));
        }
        const OURS: &[&str] = &[
            "slack_webhook_url",
            "webhook_url",
            "alert_dedupe_window",
            "budget_alert_ttl",
            "error_rate_window",
            "error_rate_min_requests",
            "error_rate_threshold",
            "p95_latency_threshold",
        ];
        let unknown: BTreeMap<String, ()> = args
            .keys()
            .filter(|k| !OURS.contains(&k.as_str()))
            .map(|k| (k.clone(), ()))
            .collect();
        self.unsupported("general_settings.alerting_args.", &unknown);
        Ok(Some(settings))
    }
}

fn http_url(url: &str, location: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(invalid(
            location,
            "must start with http:// or https://".into(),
        ))
    }
}

/// Standard base64 with padding (the basic-auth header).
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::callbacks::{AlertChannelKind, DestinationKind, LogFormat};
    use crate::config::{parse, Loaded};

    fn load(yaml: &str, env: &[(&str, &str)]) -> Loaded {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse(yaml, &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    #[test]
    fn callback_lists_decide_which_events_each_destination_gets() {
        let loaded = load(
            "litellm_settings:\n  success_callback: [generic_api, langfuse, prometheus]\n  failure_callback: [langfuse, otel, sentry]\n",
            &[
                ("GENERIC_LOGGER_ENDPOINT", "http://hook.test/in"),
                ("GENERIC_LOGGER_HEADERS", "Authorization=Bearer t, X-Team = a=b"),
                ("LANGFUSE_PUBLIC_KEY", "pk"),
                ("LANGFUSE_SECRET_KEY", "sk"),
                ("LANGFUSE_HOST", "langfuse.internal/"),
            ],
        );
        let destinations = &loaded.config.callbacks.destinations;
        assert_eq!(destinations.len(), 2);
        let hook = &destinations[0];
        assert_eq!(hook.kind, DestinationKind::Webhook(LogFormat::JsonArray));
        assert_eq!(hook.url, "http://hook.test/in");
        assert!(hook.on_success && !hook.on_failure);
        let headers: Vec<(&str, &str)> = hook
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(headers, [("Authorization", "Bearer t"), ("X-Team", "a=b")]);
        let langfuse = &destinations[1];
        assert_eq!(langfuse.kind, DestinationKind::Langfuse);
        assert_eq!(
            langfuse.url,
            "https://langfuse.internal/api/public/ingestion"
        );
        assert!(langfuse.on_success && langfuse.on_failure);
        assert_eq!(langfuse.headers[0].1.expose(), "Basic cGs6c2s=");
        // Only the unknown callback is warned about.
        let callback_warnings: Vec<&String> = loaded
            .warnings
            .iter()
            .filter(|w| w.contains("callback"))
            .collect();
        assert_eq!(callback_warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(callback_warnings[0].contains("`sentry`"));
    }

    #[test]
    fn callback_settings_make_named_webhooks_and_missing_endpoints_warn() {
        let loaded = load(
            "litellm_settings:\n  callbacks: [audit, generic_api, langfuse]\ncallback_settings:\n  audit:\n    callback_type: generic_api\n    endpoint: os.environ/AUDIT_URL\n    headers: {x-token: os.environ/AUDIT_TOKEN}\n    event_types: [llm_api_failure]\n    log_format: ndjson\n    max_retries: 1\n    retry_delay: 0.5\n    timeout: 2\n",
            &[("AUDIT_URL", "https://audit.test/events"), ("AUDIT_TOKEN", "tok")],
        );
        let destinations = &loaded.config.callbacks.destinations;
        assert_eq!(destinations.len(), 1, "{:?}", loaded.warnings);
        let audit = &destinations[0];
        assert_eq!(audit.name, "audit");
        assert_eq!(audit.url, "https://audit.test/events");
        assert!(!audit.on_success && audit.on_failure);
        assert_eq!(audit.kind, DestinationKind::Webhook(LogFormat::Ndjson));
        assert_eq!(audit.max_retries, 1);
        assert_eq!(audit.retry_delay, Duration::from_millis(500));
        assert_eq!(audit.timeout, Duration::from_secs(2));
        assert_eq!(audit.headers[0].1.expose(), "tok");
        let joined = loaded.warnings.join("\n");
        assert!(joined.contains("`generic_api` has no endpoint"), "{joined}");
        assert!(
            joined.contains("`langfuse` needs LANGFUSE_PUBLIC_KEY"),
            "{joined}"
        );
        assert!(!joined.contains("tok"));
    }

    #[test]
    fn alerting_reads_litellm_keys_and_documents_its_defaults() {
        let loaded = load(
            "general_settings:\n  alerting: [slack, webhook, email]\n  alerting_threshold: 30\n  alert_types: [budget_alerts, daily_reports]\n  alerting_args:\n    budget_alert_ttl: 3600\n    error_rate_threshold: 0.2\n    daily_report_frequency: 60\n",
            &[
                ("SLACK_WEBHOOK_URL", "https://hooks.slack.test/T/B/x"),
                ("WEBHOOK_URL", "http://alerts.test/in"),
            ],
        );
        let alerting = loaded.config.callbacks.alerting.as_ref().unwrap();
        let kinds: Vec<AlertChannelKind> = alerting.channels.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [AlertChannelKind::Slack, AlertChannelKind::Webhook]);
        assert_eq!(alerting.slow_request, Duration::from_secs(30));
        assert_eq!(alerting.p95_latency, Some(Duration::from_secs(30)));
        assert_eq!(alerting.budget_dedupe_window, Duration::from_secs(3600));
        assert_eq!(alerting.dedupe_window, Duration::from_secs(300));
        assert_eq!(alerting.window, Duration::from_secs(60));
        assert_eq!(alerting.min_requests, 10);
        assert!((alerting.error_rate - 0.2).abs() < 1e-9);
        assert!(alerting.enabled("budget_alerts") && !alerting.enabled("cooldown_deployment"));
        let joined = loaded.warnings.join("\n");
        assert!(joined.contains("`email` is not supported"), "{joined}");
        assert!(joined.contains("no `daily_reports` alerts"), "{joined}");
        assert!(
            joined.contains("alerting_args.daily_report_frequency"),
            "{joined}"
        );
        assert!(!joined.contains("hooks.slack.test"), "{joined}");
        // The Slack URL is a credential: never in the config's debug rendering.
        assert!(!format!("{:?}", loaded.config).contains("hooks.slack.test"));
    }

    /// Every YAML example of docs/callbacks.md loads (with its variables set).
    #[test]
    fn the_documented_examples_load() {
        let doc = include_str!("../../docs/callbacks.md");
        let env = [
            (
                "GENERIC_LOGGER_ENDPOINT",
                "https://logs.example.com/switchyard",
            ),
            ("AUDIT_URL", "https://audit.example.com"),
            ("AUDIT_TOKEN", "Bearer t"),
            (
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T/B/x",
            ),
            ("WEBHOOK_URL", "https://alerts.example.com"),
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-1"),
        ];
        let mut examples = 0;
        for block in doc.split("```yaml\n").skip(1) {
            let yaml = block.split("```").next().unwrap_or_default();
            let loaded = load(yaml, &env);
            let unsupported: Vec<&String> = loaded
                .warnings
                .iter()
                .filter(|w| w.contains("not supported") || w.contains("is disabled"))
                .collect();
            assert!(unsupported.is_empty(), "{yaml}\n{unsupported:?}");
            examples += 1;
        }
        assert!(examples >= 5, "{examples}");
    }

    #[test]
    fn no_callbacks_configured_means_nothing_to_do() {
        let loaded = load("model_list: []\n", &[]);
        assert!(loaded.config.callbacks.destinations.is_empty());
        assert!(loaded.config.callbacks.alerting.is_none());
    }

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(super::base64(b"pk-lf:sk-lf"), "cGstbGY6c2stbGY=");
    }
}
