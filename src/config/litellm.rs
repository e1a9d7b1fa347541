//! The LiteLLM `config.yaml` format as written on disk. Keys Switchyard implements are typed; every
//! other key lands in an `extra` map so it can be named in a start-up warning instead of being
//! silently ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

pub type ExtraKeys = BTreeMap<String, Value>;

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

#[derive(Debug, Deserialize)]
pub struct RawLitellmParams {
    pub model: String,
    pub api_base: Option<String>,
    pub api_key: Option<String>,
    pub api_version: Option<String>,
    /// Seconds; LiteLLM accepts fractions.
    pub timeout: Option<f64>,
    pub stream_timeout: Option<f64>,
    pub max_retries: Option<u32>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub weight: Option<f64>,
    pub order: Option<u32>,
    pub extra_headers: Option<BTreeMap<String, String>>,
    pub mock_response: Option<String>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawModelInfo {
    pub id: Option<String>,
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    pub max_tokens: Option<u64>,
    pub mode: Option<String>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRouterSettings {
    pub routing_strategy: Option<String>,
    pub num_retries: Option<u32>,
    pub timeout: Option<f64>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLitellmSettings {
    pub drop_params: Option<bool>,
    pub num_retries: Option<u32>,
    pub request_timeout: Option<f64>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawGeneralSettings {
    pub master_key: Option<String>,
    /// LiteLLM's name for the request body limit.
    pub max_request_size_mb: Option<f64>,
    #[serde(flatten)]
    pub extra: ExtraKeys,
}
