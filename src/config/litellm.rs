//! The LiteLLM `config.yaml` format as written on disk. Keys Switchyard implements are typed; every
//! other key lands in an `extra` map so it can be named in a start-up warning instead of being
//! silently ignored.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// Keys Switchyard does not implement: only their names are kept, to warn about them.
pub type ExtraKeys = BTreeMap<String, IgnoredAny>;

/// Unknown `litellm_params` keys keep their values too: they are part of the deployment's
/// identity (two deployments differing only in `vertex_project` are two deployments).
pub type ExtraParams = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub model_list: Vec<RawModel>,
    #[serde(default)]
    pub router_settings: RawRouterSettings,
    #[serde(default)]
    pub litellm_settings: RawLitellmSettings,
    #[serde(default)]
    pub general_settings: RawGeneralSettings,
    /// LiteLLM sets these as environment variables at start-up; Switchyard uses them to resolve
    /// `os.environ/NAME` references (they win over the process environment, as in LiteLLM).
    #[serde(default)]
    pub environment_variables: BTreeMap<String, String>,
    /// Switchyard's own routing keys (deadline, route rules); LiteLLM ignores unknown top-level
    /// keys, so a config carrying them still loads there.
    #[serde(default)]
    pub switchyard_routing: Option<RawSwitchyardRouting>,
    /// Switchyard's price file (LiteLLM's format) over the shipped price table.
    #[serde(default)]
    pub switchyard_prices: Option<RawSwitchyardPrices>,
    /// Switchyard's own spend-log keys (queue, batches, spill file).
    #[serde(default)]
    pub switchyard_spend: Option<RawSwitchyardSpend>,
    /// LiteLLM's per-callback settings (`callback_settings.<name>.callback_type: generic_api`
    /// makes a named webhook); values are read by the callback they configure.
    #[serde(default)]
    pub callback_settings: Option<BTreeMap<String, serde_json::Value>>,
    /// Switchyard's own callback delivery keys (queue, batches, retries).
    #[serde(default)]
    pub switchyard_callbacks: Option<RawSwitchyardCallbacks>,
    /// Switchyard's own metrics keys (tag labels and their cardinality cap).
    #[serde(default)]
    pub switchyard_metrics: Option<RawSwitchyardMetrics>,
    /// LiteLLM's guardrails (docs/guardrails.md), read by `guardrails/`.
    #[serde(default)]
    pub guardrails: Vec<crate::guardrails::RawGuardrail>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

#[derive(Debug, Deserialize)]
pub struct RawModel {
    pub model_name: String,
    pub litellm_params: RawLitellmParams,
    #[serde(default)]
    pub model_info: RawModelInfo,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

/// `Serialize` gives the params back as written (before `os.environ/` is resolved), which is
/// what a deployment's generated id hashes.
#[derive(Debug, Deserialize, Serialize)]
pub struct RawLitellmParams {
    pub model: String,
    pub api_base: Option<String>,
    pub api_key: Option<String>,
    pub api_version: Option<String>,
    /// Seconds; LiteLLM accepts fractions.
    pub timeout: Option<f64>,
    pub stream_timeout: Option<f64>,
    pub max_retries: Option<u32>,
    /// LiteLLM's router reads the deployment's retry budget from here (`max_retries` goes to the
    /// provider SDK there); it wins over `max_retries` when both are set.
    pub num_retries: Option<u32>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub weight: Option<f64>,
    pub order: Option<u32>,
    /// LiteLLM's deployment region (`eu`, `us-east-1` ...), used for region-aware routing.
    pub region_name: Option<String>,
    pub extra_headers: Option<BTreeMap<String, String>>,
    pub mock_response: Option<String>,
    /// Custom prices (dollars per token): they win over `model_info`'s and the price table's.
    /// Unset ones serialize as `null`, which the id hash skips, so ids are as before.
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    pub cache_read_input_token_cost: Option<f64>,
    pub cache_creation_input_token_cost: Option<f64>,
    /// Dollars per rerank call (LiteLLM's per-search price of Cohere-style rerank models).
    pub input_cost_per_query: Option<f64>,
    /// The model name the price table is searched for (an Azure deployment's real model).
    pub base_model: Option<String>,
    /// A deployment budget in dollars, over `budget_duration` (LiteLLM's provider budget routing).
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    /// LiteLLM: request parameters always removed before this deployment is called.
    pub additional_drop_params: Option<Vec<String>>,
    /// LiteLLM: parameters sent to this deployment even where its provider's translation would
    /// refuse or drop them.
    pub allowed_openai_params: Option<Vec<String>>,
    /// LiteLLM: this deployment lends its credentials to its provider's pass-through route.
    pub use_in_pass_through: Option<bool>,
    #[serde(flatten)]
    pub extra: ExtraParams,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawModelInfo {
    pub id: Option<String>,
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    pub cache_read_input_token_cost: Option<f64>,
    pub cache_creation_input_token_cost: Option<f64>,
    pub input_cost_per_query: Option<f64>,
    /// The model name the price table is searched for (LiteLLM's Azure convention).
    pub base_model: Option<String>,
    pub max_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    pub mode: Option<String>,
    /// Switchyard: the fixed share (0..1) of the group's traffic this deployment receives.
    /// `model_info` is free-form metadata in LiteLLM, so the key is harmless there.
    pub canary_share: Option<f64>,
    /// LiteLLM's model access groups: a key whose `models` names a group may use this model.
    #[serde(default)]
    pub access_groups: Vec<String>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

/// `[{"gpt-4o": ["claude-sonnet", "gpt-4o-mini"]}, {"*": ["gpt-4o-mini"]}]`: LiteLLM writes each
/// fallback rule as a one-key map.
pub type RawFallbacks = Vec<BTreeMap<String, Vec<String>>>;

#[derive(Debug, Default, Deserialize)]
pub struct RawRouterSettings {
    pub routing_strategy: Option<String>,
    pub routing_strategy_args: Option<RawStrategyArgs>,
    pub num_retries: Option<u32>,
    pub timeout: Option<f64>,
    pub stream_timeout: Option<f64>,
    /// Minimum seconds to wait before retrying the same deployment.
    pub retry_after: Option<f64>,
    pub retry_policy: Option<RawRetryPolicy>,
    pub model_group_retry_policy: Option<BTreeMap<String, RawRetryPolicy>>,
    pub allowed_fails: Option<u32>,
    pub allowed_fails_policy: Option<RawAllowedFailsPolicy>,
    pub cooldown_time: Option<f64>,
    pub disable_cooldowns: Option<bool>,
    pub fallbacks: Option<RawFallbacks>,
    pub context_window_fallbacks: Option<RawFallbacks>,
    pub content_policy_fallbacks: Option<RawFallbacks>,
    pub default_fallbacks: Option<Vec<String>>,
    pub max_fallbacks: Option<u32>,
    pub enable_pre_call_checks: Option<bool>,
    pub redis_url: Option<String>,
    pub redis_host: Option<String>,
    pub redis_port: Option<u16>,
    pub redis_password: Option<String>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawStrategyArgs {
    /// latency-based-routing: pick at random among deployments within this fraction of the
    /// fastest (0.5 = up to 50% slower), instead of always the fastest.
    pub lowest_latency_buffer: Option<f64>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

/// LiteLLM's `RetryPolicy`: retries per error class, overriding `num_retries`.
#[derive(Debug, Default, Clone, Deserialize)]
#[allow(non_snake_case)] // LiteLLM's key names
pub struct RawRetryPolicy {
    pub BadRequestErrorRetries: Option<u32>,
    pub AuthenticationErrorRetries: Option<u32>,
    pub TimeoutErrorRetries: Option<u32>,
    pub RateLimitErrorRetries: Option<u32>,
    pub ContentPolicyViolationErrorRetries: Option<u32>,
    pub InternalServerErrorRetries: Option<u32>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

/// LiteLLM's `AllowedFailsPolicy`: failures allowed per error class before a cooldown.
#[derive(Debug, Default, Clone, Deserialize)]
#[allow(non_snake_case)] // LiteLLM's key names
pub struct RawAllowedFailsPolicy {
    pub BadRequestErrorAllowedFails: Option<u32>,
    pub AuthenticationErrorAllowedFails: Option<u32>,
    pub TimeoutErrorAllowedFails: Option<u32>,
    pub RateLimitErrorAllowedFails: Option<u32>,
    pub ContentPolicyViolationErrorAllowedFails: Option<u32>,
    pub InternalServerErrorAllowedFails: Option<u32>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLitellmSettings {
    pub drop_params: Option<bool>,
    pub num_retries: Option<u32>,
    pub request_timeout: Option<f64>,
    // LiteLLM's proxy docs put these here as often as under router_settings; router_settings
    // wins when both are set.
    pub fallbacks: Option<RawFallbacks>,
    pub context_window_fallbacks: Option<RawFallbacks>,
    pub content_policy_fallbacks: Option<RawFallbacks>,
    pub default_fallbacks: Option<Vec<String>>,
    pub allowed_fails: Option<u32>,
    pub cooldown_time: Option<f64>,
    /// Upstream TLS: `true`, `false`, or the path of a CA bundle (LiteLLM's spellings).
    pub ssl_verify: Option<SslVerify>,
    /// The status of a `budget_exceeded` refusal (429 here; LiteLLM 1.110 answers 422).
    pub budget_exceeded_status_code: Option<u16>,
    /// LiteLLM's callbacks: `prometheus` in any of them turns on LiteLLM's metric names on
    /// `/metrics`, `otel` turns OpenTelemetry traces on (telemetry/traces); the callbacks
    /// module reads the rest and warns about unknown names.
    pub callbacks: Option<Vec<String>>,
    pub success_callback: Option<Vec<String>>,
    pub failure_callback: Option<Vec<String>>,
    /// `GET /metrics` needs the master key or an admin key.
    pub require_auth_for_metrics_endpoint: Option<bool>,
    /// The response cache (docs/caching.md): on with `cache: true`, shaped by `cache_params`.
    pub cache: Option<bool>,
    pub cache_params: Option<RawCacheParams>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

/// `litellm_settings.cache_params`, LiteLLM's keys (and `max_memory_mb`, `timeout_ms`,
/// `max_entry_kb`, Switchyard's). Unknown keys are warned about.
#[derive(Debug, Default, Deserialize)]
pub struct RawCacheParams {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub host: Option<String>,
    pub port: Option<StringOrNumber>,
    pub password: Option<String>,
    pub url: Option<String>,
    pub redis_url: Option<String>,
    pub ttl: Option<f64>,
    pub namespace: Option<String>,
    pub mode: Option<String>,
    pub supported_call_types: Option<Vec<String>>,
    pub max_memory_mb: Option<f64>,
    pub max_entry_kb: Option<f64>,
    pub timeout_ms: Option<u64>,
    pub similarity_threshold: Option<f64>,
    pub redis_semantic_cache_embedding_model: Option<String>,
    pub qdrant_semantic_cache_embedding_model: Option<String>,
    pub max_entries: Option<usize>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

/// `port: 6379`, `port: "6379"` or `port: os.environ/REDIS_PORT`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringOrNumber {
    Number(u64),
    Text(String),
}

/// `ssl_verify: false`, or `ssl_verify: /etc/ssl/internal-ca.pem` (a string `"false"` too).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SslVerify {
    Bool(bool),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
pub struct RawGeneralSettings {
    pub master_key: Option<String>,
    /// LiteLLM's name for the request body limit.
    pub max_request_size_mb: Option<f64>,
    pub background_health_checks: Option<bool>,
    /// Seconds between two rounds of background health checks.
    pub health_check_interval: Option<f64>,
    pub database_url: Option<String>,
    /// How long spend-log rows are kept (`7d`, `30d`); kept forever when absent.
    pub maximum_spend_logs_retention_period: Option<String>,
    /// `["slack"]`, `["webhook"]`: where alerts go (docs/callbacks.md).
    pub alerting: Option<Vec<String>>,
    /// Seconds: a request slower than this raises `llm_too_slow` (LiteLLM's default 300).
    pub alerting_threshold: Option<f64>,
    /// Which alerts are sent (LiteLLM's alert type names); all when absent.
    pub alert_types: Option<Vec<String>>,
    pub alerting_args: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

/// `switchyard_callbacks:` — how callback events and alerts are delivered (docs/callbacks.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwitchyardCallbacks {
    pub queue_size: Option<usize>,
    pub batch_size: Option<usize>,
    pub flush_interval_ms: Option<u64>,
    pub max_retries: Option<u32>,
    pub retry_delay_ms: Option<u64>,
    pub max_retry_delay_ms: Option<u64>,
    pub timeout_seconds: Option<f64>,
    pub shutdown_flush_seconds: Option<f64>,
}

/// `switchyard_spend:` — how spend-log rows reach the database (docs/spend-logs.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwitchyardSpend {
    /// Rows that may wait in memory for the writer.
    pub queue_size: Option<usize>,
    /// Rows per database transaction.
    pub batch_size: Option<usize>,
    /// Milliseconds the writer waits to fill a batch.
    pub flush_interval_ms: Option<u64>,
    /// Where rows go when the queue is full (relative paths are relative to the config file);
    /// `""` turns spilling off (such rows are dropped and counted).
    pub spill_file: Option<String>,
    /// Seconds a shutdown waits for the database before spilling what is queued.
    pub shutdown_flush_seconds: Option<f64>,
}

/// `switchyard_metrics:` — Switchyard's own keys, so unknown ones are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwitchyardMetrics {
    /// Keys of a request's `metadata` that become labels of the request series.
    #[serde(default)]
    pub tag_labels: Vec<String>,
    /// Distinct values kept per tag label; later ones are counted as `other`.
    pub max_label_values: Option<usize>,
}

/// `switchyard_routing:` — Switchyard's own keys, so unknown ones are errors, not warnings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwitchyardRouting {
    /// Seconds: the total budget of one request, retries and fallbacks included.
    pub deadline: Option<f64>,
    /// The most retries a request's own `num_retries` may ask for.
    pub max_request_retries: Option<u32>,
    #[serde(default)]
    pub route_rules: Vec<RawRouteRule>,
}

/// `switchyard_prices:` — where a price file in LiteLLM's format is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwitchyardPrices {
    /// A path (relative to the config file) or `os.environ/NAME`.
    pub file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteRule {
    pub name: String,
    /// The model clients ask for that this rule applies to; `*` is any.
    pub model: String,
    #[serde(default)]
    pub when: RawRuleConditions,
    /// The model group the request goes to when the rule matches.
    pub route_to: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleConditions {
    pub min_prompt_tokens: Option<u64>,
    pub max_prompt_tokens: Option<u64>,
    pub tier: Option<OneOrMany>,
    pub tags: Option<Vec<String>>,
    pub feature: Option<OneOrMany>,
    pub stream: Option<bool>,
    pub metadata: Option<BTreeMap<String, OneOrMany>>,
}

/// A string or a list of strings (any of them matches).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}
