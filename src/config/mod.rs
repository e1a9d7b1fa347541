//! Typed configuration, loaded from a LiteLLM-format `config.yaml`.
//!
//! Loading happens in three steps: the YAML is deserialized into the raw LiteLLM shapes
//! (`litellm.rs`; type errors name the key path and line), `os.environ/NAME` references are
//! resolved (a missing variable names the variable and the model), and the result is validated
//! into [`Config`]. Unsupported keys become warnings, one per key.

mod cache;
mod callbacks;
mod litellm;
mod router;
mod secret;
mod storage;
mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use router::{
    FallbackRules, FallbackSettings, PerErrorClass, RouteRuleConfig, RouterSettings,
    RoutingStrategy,
};
pub use secret::Secret;
pub use storage::{Database, StorageSettings, DEFAULT_SQLITE_FILE};
pub use tls::{CaBundle, TlsSettings};

use crate::money::prices::{pico_from_usd, Price, PriceOverrides, PriceTable, Prices};
use litellm::{RawConfig, RawLitellmParams, RawModel};

/// The environment variable naming a price file, when the config does not
/// (`switchyard_prices.file` wins).
pub const PRICES_FILE_ENV: &str = "SWITCHYARD_PRICES_FILE";

/// LiteLLM's default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Default request body limit (10 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

const ENV_PREFIX: &str = "os.environ/";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Yaml(String),
    #[error("{location}: environment variable `{var}` is not set")]
    MissingEnv { location: String, var: String },
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
}

/// The validated configuration the gateway runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub deployments: Vec<DeploymentConfig>,
    /// Without a master key the gateway accepts every request (LiteLLM's behaviour); a warning says so.
    pub master_key: Option<Secret>,
    pub max_request_bytes: usize,
    /// Default per-request timeout when a deployment sets none.
    pub request_timeout: Duration,
    pub num_retries: u32,
    pub drop_params: bool,
    /// Strategy, cooldowns, fallbacks, deadline, health checks and route rules.
    pub router: RouterSettings,
    /// How upstream TLS certificates are checked (`ssl_verify`, `SSL_CERT_FILE`).
    pub tls: TlsSettings,
    /// The database for keys, teams and users; the Redis for shared counters.
    pub storage: StorageSettings,
    /// The shipped price table, with the price file (if any) over it.
    pub prices: Prices,
    /// The price file read, to name it in `switchyard check`.
    pub prices_file: Option<PathBuf>,
    /// The spend-log writer: queue, batches, spill file, retention.
    pub spend: crate::spend::SpendSettings,
    /// The status of a `budget_exceeded` refusal: `litellm_settings.budget_exceeded_status_code`,
    /// 429 by default.
    pub budget_exceeded_status: axum::http::StatusCode,
    /// `otel` is among `litellm_settings.callbacks` / `success_callback` / `failure_callback`:
    /// traces are exported (to the `OTEL_EXPORTER_OTLP_*` endpoint, else localhost).
    pub otel_callback: bool,
    /// Callbacks (webhook, Langfuse) and alerts (docs/callbacks.md).
    pub callbacks: crate::callbacks::CallbackSettings,
    /// What `/metrics` shows and who may read it.
    pub metrics: crate::telemetry::MetricsSettings,
    /// The top-level `guardrails:` list (docs/guardrails.md).
    pub guardrails: crate::guardrails::Guardrails,
    /// The response cache (`litellm_settings.cache: true`); `None` when off.
    pub cache: Option<crate::cache::CacheSettings>,
}

/// One entry of `model_list`: a deployment serving the alias `model_name`.
#[derive(Debug, Clone)]
pub struct DeploymentConfig {
    /// `model_info.id`, or a hash of the group name and `litellm_params` as written (see
    /// `stable_id`; identical entries get `-2`, `-3` ... in file order).
    pub id: String,
    /// The alias clients ask for; entries sharing it form a model group.
    pub model_name: String,
    /// The provider prefix of `litellm_params.model` (`openai`, `azure`, `groq` ...).
    pub provider: String,
    /// The model name sent upstream (after the provider prefix).
    pub upstream_model: String,
    pub api_base: Option<String>,
    pub api_key: Option<Secret>,
    pub api_version: Option<String>,
    pub timeout: Option<Duration>,
    pub stream_timeout: Option<Duration>,
    /// Retries after this deployment fails: `litellm_params.num_retries`, else `max_retries`;
    /// `None` falls back to the router's `num_retries`.
    pub max_retries: Option<u32>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// `None` when not set: simple-shuffle then weighs by `rpm`/`tpm`, or equally.
    pub weight: Option<f64>,
    pub order: Option<u32>,
    pub region: Option<String>,
    /// The fixed share of the group's traffic this deployment receives (`model_info.canary_share`).
    pub canary_share: Option<f64>,
    pub extra_headers: Vec<(String, Secret)>,
    pub mock_response: Option<String>,
    /// `litellm_params.additional_drop_params`.
    pub additional_drop_params: Vec<String>,
    /// `litellm_params.allowed_openai_params`.
    pub allowed_openai_params: Vec<String>,
    /// `litellm_params.use_in_pass_through`: its credentials serve its provider's pass-through
    /// route (`/openai/*`, `/vertex_ai/*` ...) before any unmarked deployment's.
    pub use_in_pass_through: bool,
    pub info: ModelInfo,
    /// What a token costs here: the price table's entry for the model (`base_model` when set)
    /// with the deployment's own prices over it; `None` when nothing prices it.
    pub price: Option<Arc<Price>>,
    /// The price table entry used, if any.
    pub price_entry: Option<String>,
    /// `litellm_params.max_budget` over `budget_duration`.
    pub budget: Option<crate::router::budget::DeploymentBudget>,
    /// LiteLLM's `aws_*` keys (Bedrock), resolved.
    pub aws: AwsParams,
    /// LiteLLM's `vertex_*` keys (Vertex AI), resolved.
    pub vertex: VertexParams,
}

/// LiteLLM's `vertex_*` `litellm_params` (Vertex AI), with `os.environ/` resolved. What is not
/// set here comes from the environment (`providers/vertex/mod.rs`).
#[derive(Debug, Clone, Default)]
pub struct VertexParams {
    /// `vertex_project` (or `vertex_ai_project`).
    pub project: Option<String>,
    /// `vertex_location` (or `vertex_ai_location`).
    pub location: Option<String>,
    /// `vertex_credentials` (or `vertex_ai_credentials`): a path to a credentials JSON file, or
    /// the JSON itself (a string, or a YAML mapping written back as JSON).
    pub credentials: Option<Secret>,
}

/// The `vertex_*` keys [`VertexParams`] reads (LiteLLM's names and their `vertex_ai_` aliases).
const VERTEX_KEYS: &[&str] = &[
    "vertex_project",
    "vertex_ai_project",
    "vertex_location",
    "vertex_ai_location",
    "vertex_credentials",
    "vertex_ai_credentials",
];

/// LiteLLM's `aws_*` `litellm_params` (Bedrock), with `os.environ/` resolved. What is not set
/// here comes from the environment and the shared AWS files (`providers/bedrock/credentials.rs`).
#[derive(Debug, Clone, Default)]
pub struct AwsParams {
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    pub region_name: Option<String>,
    pub profile_name: Option<String>,
    /// The role ARN assumed with `web_identity_token`.
    pub role_name: Option<String>,
    pub session_name: Option<String>,
    pub web_identity_token: Option<Secret>,
    pub sts_endpoint: Option<String>,
    /// The Bedrock runtime base URL (a VPC endpoint, or a mock).
    pub bedrock_runtime_endpoint: Option<String>,
}

/// The `aws_*` keys [`AwsParams`] reads.
const AWS_KEYS: &[&str] = &[
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region_name",
    "aws_profile_name",
    "aws_role_name",
    "aws_session_name",
    "aws_web_identity_token",
    "aws_sts_endpoint",
    "aws_bedrock_runtime_endpoint",
];

#[derive(Debug, Clone, Default)]
pub struct ModelInfo {
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    pub max_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    pub mode: Option<String>,
    /// `model_info.access_groups`: names a key's `models` may use for this model group.
    pub access_groups: Vec<String>,
}

/// A config plus the warnings to print once at start-up.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Reads and validates a config file, resolving `os.environ/` from the process environment.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut loaded = parse_source(&text, &path.display().to_string(), &|name| {
        std::env::var(name).ok()
    })?;
    // A relative SQLite path (or spill file) is relative to the config file, not to where the
    // gateway started.
    if let Database::Sqlite(file) = &mut loaded.config.storage.database {
        if file.is_relative() {
            if let Some(dir) = path.parent() {
                *file = dir.join(&*file);
            }
        }
    }
    if let Some(file) = &mut loaded.config.spend.spill_file {
        if file.is_relative() {
            if let Some(dir) = path.parent() {
                *file = dir.join(&*file);
            }
        }
    }
    Ok(loaded)
}

/// Parses config text; `env` looks up environment variables (injected for tests).
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
    parse_source(text, "config.yaml", env)
}

/// [`parse`], with `source` (the file's path) named in YAML error snippets.
fn parse_source(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let raw: RawConfig = match deserialize_yaml(text, source) {
        Ok(raw) => raw,
        // An empty file is an empty config, not an error of the YAML parser.
        Err(_) if text.trim().is_empty() => RawConfig::default(),
        Err(message) => return Err(ConfigError::Yaml(message)),
    };
    let mut raw = raw;
    let config_env = std::mem::take(&mut raw.environment_variables);
    let mut validator = Validator::new(&config_env, env);
    validator.config_dir = Path::new(source)
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(Path::to_path_buf);
    validator.run(raw)
}

/// Deserializes the YAML. An error names the key path (`model_list[0].litellm_params.timeout`),
/// the line and column, and shows the offending lines (`source` names the file there). YAML merge
/// keys (`<<: *defaults`) and anchors are expanded, as LiteLLM (PyYAML) does; duplicate keys are
/// errors.
fn deserialize_yaml(text: &str, source: &str) -> Result<RawConfig, String> {
    let mut path = String::new();
    let result = serde_saphyr::with_deserializer_from_str(text, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            path = err.path().to_string();
            err.into_inner()
        })
    });
    result.map_err(|err| {
        let rendered = err.render_with_options(serde_saphyr::render_options! {
            source_name: Some(source),
        });
        // The snippet renderer titles its report `error: `; our caller already says it is one.
        let rendered = rendered.strip_prefix("error: ").unwrap_or(&rendered);
        // serde_path_to_error writes `?` for a position it cannot name (a map key); cut the path
        // there rather than print a `?`.
        let known = path.split('?').next().unwrap_or("").trim_end_matches('.');
        if known.is_empty() || known == "." {
            rendered.to_owned()
        } else {
            format!("{known}: {rendered}")
        }
    })
}

struct Validator<'a> {
    config_env: &'a BTreeMap<String, String>,
    env: &'a dyn Fn(&str) -> Option<String>,
    warnings: Vec<String>,
    /// Unsupported keys already warned about, so 50 models with the same key give one warning.
    warned: BTreeSet<String>,
    /// Relative paths in the config (the price file) are relative to this.
    config_dir: Option<PathBuf>,
    prices: Prices,
}

impl<'a> Validator<'a> {
    fn new(
        config_env: &'a BTreeMap<String, String>,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> Self {
        Validator {
            config_env,
            env,
            warnings: Vec::new(),
            warned: BTreeSet::new(),
            config_dir: None,
            prices: Prices::shipped(),
        }
    }

    fn run(mut self, mut raw: RawConfig) -> Result<Loaded, ConfigError> {
        self.unsupported("", &raw.extra);
        self.unsupported("router_settings.", &raw.router_settings.extra);
        self.unsupported("litellm_settings.", &raw.litellm_settings.extra);
        self.unsupported("general_settings.", &raw.general_settings.extra);
        let master_key = match &raw.general_settings.master_key {
            Some(value) => Some(Secret::new(
                self.resolve(value, "general_settings.master_key")?,
            )),
            None => {
                self.warn("general_settings.master_key is not set: every request is accepted without a key".into());
                None
            }
        };
        let max_request_bytes = match raw.general_settings.max_request_size_mb {
            Some(mb) if mb > 0.0 && mb.is_finite() => (mb * 1024.0 * 1024.0) as usize,
            Some(mb) => {
                return Err(invalid(
                    "general_settings.max_request_size_mb",
                    format!("must be a positive number of MiB, got {mb}"),
                ))
            }
            None => DEFAULT_MAX_REQUEST_BYTES,
        };
        let request_timeout = match raw
            .router_settings
            .timeout
            .or(raw.litellm_settings.request_timeout)
        {
            Some(secs) => seconds(secs, "router_settings.timeout")?,
            None => DEFAULT_TIMEOUT,
        };

        let prices_file = self.prices(&mut raw)?;
        let mut deployments = Vec::with_capacity(raw.model_list.len());
        let mut ids = BTreeMap::new();
        // How often each generated id was seen so far: identical entries get `-2`, `-3` ...
        let mut generated: BTreeMap<String, u32> = BTreeMap::new();
        for (index, model) in std::mem::take(&mut raw.model_list).into_iter().enumerate() {
            let id = match &model.model_info.id {
                Some(id) => id.clone(),
                None => {
                    let hash = stable_id(&model.model_name, &model.litellm_params);
                    let seen = generated.entry(hash.clone()).or_insert(0);
                    *seen += 1;
                    match *seen {
                        1 => hash,
                        n => format!("{hash}-{n}"),
                    }
                }
            };
            let deployment = self.deployment(index, id, model)?;
            if let Some(previous) = ids.insert(deployment.id.clone(), index) {
                return Err(invalid(
                    &format!("model_list[{index}].model_info.id"),
                    format!(
                        "id `{}` is already used by model_list[{previous}]",
                        deployment.id
                    ),
                ));
            }
            deployments.push(deployment);
        }
        if deployments.is_empty() {
            self.warn("model_list is empty: the gateway will answer 404 to every model".into());
        }
        let router = self.router_settings(&mut raw, &deployments)?;
        let tls = self.tls(raw.litellm_settings.ssl_verify.take())?;
        let storage = self.storage(&raw)?;
        let spend = self.spend(&raw)?;
        let callbacks = self.callbacks(&raw)?;
        let metrics = self.metrics(&raw)?;
        let cache = self.cache(&raw, &storage)?;
        let otel_callback = otel_in(&raw.litellm_settings);
        for (i, guardrail) in raw.guardrails.iter_mut().enumerate() {
            for (key, value) in guardrail.litellm_params.resolvable_mut() {
                *value = self.resolve(value, &format!("guardrails[{i}].litellm_params.{key}"))?;
            }
        }
        let guardrails = crate::guardrails::Guardrails::from_raw(
            std::mem::take(&mut raw.guardrails),
            &mut |warning| self.warnings.push(warning),
        )
        .map_err(|(location, message)| invalid(&location, message))?;
        let budget_exceeded_status = match raw.litellm_settings.budget_exceeded_status_code {
            None => axum::http::StatusCode::TOO_MANY_REQUESTS,
            Some(code @ 400..=599) => axum::http::StatusCode::from_u16(code).map_err(|e| {
                invalid(
                    "litellm_settings.budget_exceeded_status_code",
                    e.to_string(),
                )
            })?,
            Some(code) => {
                return Err(invalid(
                    "litellm_settings.budget_exceeded_status_code",
                    format!("must be an error status (400 to 599), got {code}"),
                ))
            }
        };

        Ok(Loaded {
            config: Config {
                deployments,
                master_key,
                max_request_bytes,
                request_timeout,
                num_retries: raw
                    .router_settings
                    .num_retries
                    .or(raw.litellm_settings.num_retries)
                    .unwrap_or(0),
                drop_params: raw.litellm_settings.drop_params.unwrap_or(false),
                router,
                tls,
                storage,
                prices: self.prices.clone(),
                prices_file,
                spend,
                budget_exceeded_status,
                otel_callback,
                callbacks,
                metrics,
                guardrails,
                cache,
            },
            warnings: self.warnings,
        })
    }

    fn deployment(
        &mut self,
        index: usize,
        id: String,
        model: RawModel,
    ) -> Result<DeploymentConfig, ConfigError> {
        let RawModel {
            model_name,
            litellm_params: params,
            model_info: info,
            extra,
        } = model;
        let at = |key: &str| format!("model_list[{index}] (model_name `{model_name}`): {key}");
        self.unsupported("model_list[].", &extra);
        let aws_values: BTreeMap<String, serde_json::Value> = AWS_KEYS
            .iter()
            .filter_map(|key| Some(((*key).to_owned(), params.extra.get(*key)?.clone())))
            .collect();
        let vertex_values: BTreeMap<String, serde_json::Value> = VERTEX_KEYS
            .iter()
            .filter_map(|key| Some(((*key).to_owned(), params.extra.get(*key)?.clone())))
            .collect();
        let other_params: BTreeMap<String, ()> = params
            .extra
            .keys()
            .filter(|key| !AWS_KEYS.contains(&key.as_str()) && !VERTEX_KEYS.contains(&key.as_str()))
            .map(|key| (key.clone(), ()))
            .collect();
        self.unsupported("model_list[].litellm_params.", &other_params);
        self.unsupported("model_list[].model_info.", &info.extra);

        if model_name.trim().is_empty() {
            return Err(invalid(
                &format!("model_list[{index}].model_name"),
                "must not be empty".into(),
            ));
        }
        let model = self.resolve(&params.model, &at("litellm_params.model"))?;
        let (provider, upstream_model) = match model.split_once('/') {
            Some((provider, rest)) if !provider.is_empty() && !rest.is_empty() => {
                (provider.to_ascii_lowercase(), rest.to_owned())
            }
            // LiteLLM infers the provider of a bare model name; OpenAI is its default.
            None if !model.is_empty() => ("openai".to_owned(), model.clone()),
            _ => {
                return Err(invalid(
                    &at("litellm_params.model"),
                    format!("`{model}` is not of the form <provider>/<model>"),
                ))
            }
        };
        let opt = |this: &mut Self,
                   value: &Option<String>,
                   key: &str|
         -> Result<Option<String>, ConfigError> {
            value
                .as_deref()
                .map(|v| this.resolve(v, &at(key)))
                .transpose()
        };
        let api_base = opt(self, &params.api_base, "litellm_params.api_base")?
            .map(|base| base.trim_end_matches('/').to_owned());
        if let Some(base) = &api_base {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err(invalid(
                    &at("litellm_params.api_base"),
                    format!("`{base}` must start with http:// or https://"),
                ));
            }
        }
        let api_key = opt(self, &params.api_key, "litellm_params.api_key")?.map(Secret::new);
        let api_version = opt(self, &params.api_version, "litellm_params.api_version")?;
        let mock_response = opt(self, &params.mock_response, "litellm_params.mock_response")?;
        let mut extra_headers = Vec::new();
        for (name, value) in params.extra_headers.iter().flatten() {
            let value =
                self.resolve(value, &at(&format!("litellm_params.extra_headers.{name}")))?;
            if axum::http::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || axum::http::header::HeaderValue::from_str(&value).is_err()
            {
                return Err(invalid(
                    &at(&format!("litellm_params.extra_headers.{name}")),
                    "is not a valid HTTP header".into(),
                ));
            }
            extra_headers.push((name.to_ascii_lowercase(), Secret::new(value)));
        }
        if let Some(weight) = params.weight {
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(invalid(
                    &at("litellm_params.weight"),
                    format!("must be >= 0, got {weight}"),
                ));
            }
        }
        if let Some(share) = info.canary_share {
            if !(share.is_finite() && share > 0.0 && share < 1.0) {
                return Err(invalid(
                    &at("model_info.canary_share"),
                    format!("must be a fraction between 0 and 1 (0.1 = 10%), got {share}"),
                ));
            }
        }
        if provider != "bedrock" {
            // Only Bedrock reads them.
            self.unsupported("model_list[].litellm_params.", &aws_values);
        }
        let aws = self.aws_params(&aws_values, &at)?;
        if !provider.starts_with("vertex_ai") {
            self.unsupported("model_list[].litellm_params.", &vertex_values);
        }
        let vertex = self.vertex_params(&vertex_values, &at)?;
        let (price, price_entry) = self.price(&params, &info, &provider, &upstream_model, &at)?;
        let budget = match (params.max_budget, &params.budget_duration) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(invalid(
                    &at("litellm_params.budget_duration"),
                    "needs a max_budget to apply to".into(),
                ))
            }
            (Some(max), duration) => {
                if !(max.is_finite() && max >= 0.0) {
                    return Err(invalid(
                        &at("litellm_params.max_budget"),
                        format!("must be a non-negative number of dollars, got {max}"),
                    ));
                }
                let period = duration
                    .as_deref()
                    .map(crate::policy::budget::Period::parse)
                    .transpose()
                    .map_err(|e| invalid(&at("litellm_params.budget_duration"), e))?;
                Some(crate::router::budget::DeploymentBudget {
                    max: crate::money::Nanos::from_usd(max),
                    period,
                })
            }
        };
        Ok(DeploymentConfig {
            aws,
            vertex,
            budget,
            price,
            price_entry,
            id,
            provider,
            upstream_model,
            api_base,
            api_key,
            api_version,
            timeout: params
                .timeout
                .map(|s| seconds(s, &at("litellm_params.timeout")))
                .transpose()?,
            stream_timeout: params
                .stream_timeout
                .map(|s| seconds(s, &at("litellm_params.stream_timeout")))
                .transpose()?,
            max_retries: self.retries(&params, &at),
            rpm: params.rpm,
            tpm: params.tpm,
            weight: params.weight,
            order: params.order,
            region: params.region_name.clone(),
            canary_share: info.canary_share,
            extra_headers,
            mock_response,
            additional_drop_params: params.additional_drop_params.clone().unwrap_or_default(),
            allowed_openai_params: params.allowed_openai_params.clone().unwrap_or_default(),
            use_in_pass_through: params.use_in_pass_through.unwrap_or(false),
            info: ModelInfo {
                input_cost_per_token: info.input_cost_per_token,
                output_cost_per_token: info.output_cost_per_token,
                max_tokens: info.max_tokens,
                max_input_tokens: info.max_input_tokens,
                mode: info.mode.clone(),
                access_groups: info.access_groups.clone(),
            },
            model_name,
        })
    }

    /// Reads the price file (`switchyard_prices.file`, else `SWITCHYARD_PRICES_FILE`) over the
    /// shipped table. A file that does not parse is an error naming the file and the entry.
    fn prices(&mut self, raw: &mut RawConfig) -> Result<Option<PathBuf>, ConfigError> {
        const KEY: &str = "switchyard_prices.file";
        let path = match raw.switchyard_prices.take().and_then(|p| p.file) {
            Some(file) => self.resolve(&file, KEY)?,
            None => match self.env_var(PRICES_FILE_ENV) {
                Some(file) if !file.is_empty() => file,
                _ => return Ok(None),
            },
        };
        let mut path = PathBuf::from(path);
        if path.is_relative() {
            if let Some(dir) = &self.config_dir {
                path = dir.join(path);
            }
        }
        let location = format!("{KEY} ({})", path.display());
        let text = std::fs::read_to_string(&path)
            .map_err(|err| invalid(&location, format!("cannot read the price file: {err}")))?;
        let table = PriceTable::parse(&text).map_err(|err| invalid(&location, err.to_string()))?;
        self.prices = Prices::with_overlay(table);
        Ok(Some(path))
    }

    /// A deployment's price: its own prices (`litellm_params` first, then `model_info`) over
    /// the table's entry for `base_model` (either place), else for the model it calls.
    fn price(
        &mut self,
        params: &RawLitellmParams,
        info: &litellm::RawModelInfo,
        provider: &str,
        upstream_model: &str,
        at: &dyn Fn(&str) -> String,
    ) -> Result<(Option<Arc<Price>>, Option<String>), ConfigError> {
        let pico = |params_value: Option<f64>, info_value: Option<f64>, key: &str| {
            let (value, place) = match (params_value, info_value) {
                (Some(v), _) => (v, "litellm_params"),
                (None, Some(v)) => (v, "model_info"),
                (None, None) => return Ok(None),
            };
            pico_from_usd(value)
                .map(Some)
                .map_err(|message| invalid(&at(&format!("{place}.{key}")), message))
        };
        let overrides = PriceOverrides {
            input_per_token: pico(
                params.input_cost_per_token,
                info.input_cost_per_token,
                "input_cost_per_token",
            )?,
            output_per_token: pico(
                params.output_cost_per_token,
                info.output_cost_per_token,
                "output_cost_per_token",
            )?,
            cache_read_per_token: pico(
                params.cache_read_input_token_cost,
                info.cache_read_input_token_cost,
                "cache_read_input_token_cost",
            )?,
            cache_creation_per_token: pico(
                params.cache_creation_input_token_cost,
                info.cache_creation_input_token_cost,
                "cache_creation_input_token_cost",
            )?,
            per_query: pico(
                params.input_cost_per_query,
                info.input_cost_per_query,
                "input_cost_per_query",
            )?,
        };
        let base_model = match params.base_model.as_deref().or(info.base_model.as_deref()) {
            Some(name) => Some(self.resolve(name, &at("model_info.base_model"))?),
            None => None,
        };
        let model = base_model.as_deref().unwrap_or(upstream_model);
        // LiteLLM's route markers (Bedrock's `converse/`, Vertex's `gemini/`) are not part of
        // the model's name in the price table; Vertex's beta API is priced as Vertex.
        let (provider, model) = match provider {
            "bedrock" => (provider, model.strip_prefix("converse/").unwrap_or(model)),
            "vertex_ai" | "vertex_ai_beta" => {
                ("vertex_ai", model.strip_prefix("gemini/").unwrap_or(model))
            }
            _ => (provider, model),
        };
        Ok(match self.prices.resolve(provider, model, &overrides) {
            Some(resolved) => (Some(resolved.price), resolved.entry),
            None => (None, None),
        })
    }

    /// The deployment's retry budget: `litellm_params.num_retries`, else `max_retries`. LiteLLM's
    /// router uses `num_retries` of the deployment that failed as the retry count, while its
    /// `max_retries` only reaches the provider SDK (and is forced to 0 for router calls), so
    /// `num_retries` is the one that matches LiteLLM's behaviour when both are set.
    fn retries(&mut self, params: &RawLitellmParams, at: &dyn Fn(&str) -> String) -> Option<u32> {
        if let (Some(num), Some(max)) = (params.num_retries, params.max_retries) {
            if num != max {
                self.warn(format!(
                    "{}: both num_retries ({num}) and max_retries ({max}) are set; num_retries is used",
                    at("litellm_params")
                ));
            }
        }
        params.num_retries.or(params.max_retries)
    }

    /// An environment variable as LiteLLM sees it: `environment_variables:` first (LiteLLM
    /// exports them at start-up), then the process environment.
    /// `switchyard_metrics:` and LiteLLM's metrics keys (`callbacks: ["prometheus"]`,
    /// `require_auth_for_metrics_endpoint`).
    fn metrics(
        &mut self,
        raw: &RawConfig,
    ) -> Result<crate::telemetry::MetricsSettings, ConfigError> {
        let mut metrics = crate::telemetry::MetricsSettings::default();
        let litellm = &raw.litellm_settings;
        // Callback names are checked (and unknown ones warned about) by `callbacks()`.
        metrics.litellm_names = [
            &litellm.callbacks,
            &litellm.success_callback,
            &litellm.failure_callback,
        ]
        .into_iter()
        .flatten()
        .flatten()
        .any(|name| name == "prometheus");
        metrics.require_auth = litellm.require_auth_for_metrics_endpoint.unwrap_or(false);
        let Some(own) = &raw.switchyard_metrics else {
            return Ok(metrics);
        };
        for (i, label) in own.tag_labels.iter().enumerate() {
            let location = format!("switchyard_metrics.tag_labels[{i}]");
            if let Err(problem) = crate::telemetry::check_tag_label(label) {
                return Err(invalid(&location, problem));
            }
            if metrics.tag_labels.contains(label) {
                return Err(invalid(&location, format!("`{label}` is listed twice")));
            }
            metrics.tag_labels.push(label.clone());
        }
        if let Some(max) = own.max_label_values {
            if max == 0 {
                return Err(invalid(
                    "switchyard_metrics.max_label_values",
                    "must be at least 1".to_owned(),
                ));
            }
            metrics.max_label_values = max;
        }
        Ok(metrics)
    }

    fn spend(&self, raw: &RawConfig) -> Result<crate::spend::SpendSettings, ConfigError> {
        let mut spend = crate::spend::SpendSettings::default();
        if let Some(period) = &raw.general_settings.maximum_spend_logs_retention_period {
            let key = "general_settings.maximum_spend_logs_retention_period";
            let ms = crate::api::management::duration_ms(period)
                .filter(|ms| *ms > 0)
                .ok_or_else(|| {
                    invalid(
                        key,
                        format!("must be a duration such as 7d or 30d, got `{period}`"),
                    )
                })?;
            spend.retention = Some(Duration::from_millis(ms.unsigned_abs()));
        }
        let Some(own) = &raw.switchyard_spend else {
            return Ok(spend);
        };
        let positive = |value: Option<usize>, key: &str, default: usize| match value {
            None => Ok(default),
            Some(0) => Err(invalid(
                &format!("switchyard_spend.{key}"),
                "must be at least 1".to_owned(),
            )),
            Some(n) => Ok(n),
        };
        spend.queue_size = positive(own.queue_size, "queue_size", spend.queue_size)?;
        spend.batch_size = positive(own.batch_size, "batch_size", spend.batch_size)?;
        if let Some(ms) = own.flush_interval_ms {
            spend.flush_interval = Duration::from_millis(ms.max(1));
        }
        if let Some(file) = &own.spill_file {
            spend.spill_file = (!file.is_empty()).then(|| std::path::PathBuf::from(file));
        }
        if let Some(secs) = own.shutdown_flush_seconds {
            if !(secs >= 0.0 && secs.is_finite()) {
                return Err(invalid(
                    "switchyard_spend.shutdown_flush_seconds",
                    format!("must be a number of seconds ≥ 0, got {secs}"),
                ));
            }
            spend.shutdown_flush = Duration::from_secs_f64(secs);
        }
        Ok(spend)
    }

    fn storage(&self, raw: &RawConfig) -> Result<StorageSettings, ConfigError> {
        let mut storage = StorageSettings::default();
        let url = match &raw.general_settings.database_url {
            Some(value) => Some(self.resolve(value, "general_settings.database_url")?),
            None => self.env_var("DATABASE_URL"),
        };
        if let Some(url) = url.filter(|u| !u.is_empty()) {
            storage.database = Database::from_url(&url)
                .map_err(|message| invalid("general_settings.database_url", message))?;
        }
        let router = &raw.router_settings;
        let text = |value: &Option<String>, key: &str| -> Result<Option<String>, ConfigError> {
            value
                .as_deref()
                .map(|v| self.resolve(v, &format!("router_settings.{key}")))
                .transpose()
        };
        let url = match text(&router.redis_url, "redis_url")? {
            Some(url) => Some(url),
            None => match text(&router.redis_host, "redis_host")? {
                Some(host) => {
                    let password = text(&router.redis_password, "redis_password")?;
                    Some(storage::redis_url(
                        &host,
                        router.redis_port,
                        password.as_deref(),
                    ))
                }
                None => self.env_var("REDIS_URL").or_else(|| {
                    let host = self.env_var("REDIS_HOST")?;
                    let port = self.env_var("REDIS_PORT").and_then(|p| p.parse().ok());
                    let password = self.env_var("REDIS_PASSWORD");
                    Some(storage::redis_url(&host, port, password.as_deref()))
                }),
            },
        };
        if let Some(url) = &url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid(
                    "router_settings.redis_url",
                    "must start with redis:// or rediss://".into(),
                ));
            }
        }
        storage.redis_url = url.filter(|u| !u.is_empty()).map(Secret::new);
        Ok(storage)
    }

    fn env_var(&self, name: &str) -> Option<String> {
        self.config_env
            .get(name)
            .cloned()
            .or_else(|| (self.env)(name))
    }

    /// The `aws_*` keys of one deployment, each a string (or `os.environ/NAME`).
    fn aws_params(
        &self,
        values: &BTreeMap<String, serde_json::Value>,
        at: &dyn Fn(&str) -> String,
    ) -> Result<AwsParams, ConfigError> {
        let get = |key: &str| -> Result<Option<String>, ConfigError> {
            let location = at(&format!("litellm_params.{key}"));
            match values.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(value)) => self.resolve(value, &location).map(Some),
                Some(_) => Err(ConfigError::Invalid {
                    location,
                    message: "must be a string".into(),
                }),
            }
        };
        let secret = |key: &str| get(key).map(|v| v.map(Secret::new));
        let endpoint =
            get("aws_bedrock_runtime_endpoint")?.map(|base| base.trim_end_matches('/').to_owned());
        for (key, url) in [
            ("aws_bedrock_runtime_endpoint", &endpoint),
            ("aws_sts_endpoint", &get("aws_sts_endpoint")?),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        location: at(&format!("litellm_params.{key}")),
                        message: format!("`{url}` must start with http:// or https://"),
                    });
                }
            }
        }
        Ok(AwsParams {
            access_key_id: secret("aws_access_key_id")?,
            secret_access_key: secret("aws_secret_access_key")?,
            session_token: secret("aws_session_token")?,
            region_name: get("aws_region_name")?,
            profile_name: get("aws_profile_name")?,
            role_name: get("aws_role_name")?,
            session_name: get("aws_session_name")?,
            web_identity_token: secret("aws_web_identity_token")?,
            sts_endpoint: get("aws_sts_endpoint")?,
            bedrock_runtime_endpoint: endpoint,
        })
    }

    /// The `vertex_*` keys of one deployment: strings (or `os.environ/NAME`); the credentials
    /// may also be a mapping (the credentials JSON written as YAML).
    fn vertex_params(
        &self,
        values: &BTreeMap<String, serde_json::Value>,
        at: &dyn Fn(&str) -> String,
    ) -> Result<VertexParams, ConfigError> {
        let get = |keys: [&str; 2]| -> Result<Option<String>, ConfigError> {
            for key in keys {
                let location = at(&format!("litellm_params.{key}"));
                match values.get(key) {
                    None | Some(serde_json::Value::Null) => continue,
                    Some(serde_json::Value::String(value)) => {
                        return self.resolve(value, &location).map(Some)
                    }
                    Some(serde_json::Value::Object(map)) if key.ends_with("credentials") => {
                        return Ok(Some(serde_json::Value::Object(map.clone()).to_string()))
                    }
                    Some(_) => {
                        return Err(ConfigError::Invalid {
                            location,
                            message: "must be a string".into(),
                        })
                    }
                }
            }
            Ok(None)
        };
        Ok(VertexParams {
            project: get(["vertex_project", "vertex_ai_project"])?,
            location: get(["vertex_location", "vertex_ai_location"])?,
            credentials: get(["vertex_credentials", "vertex_ai_credentials"])?.map(Secret::new),
        })
    }

    /// Resolves `os.environ/NAME`; any other string is returned as is.
    fn resolve(&self, value: &str, location: &str) -> Result<String, ConfigError> {
        let Some(var) = value.strip_prefix(ENV_PREFIX) else {
            return Ok(value.to_owned());
        };
        self.env_var(var).ok_or_else(|| ConfigError::MissingEnv {
            location: location.to_owned(),
            var: var.to_owned(),
        })
    }

    fn unsupported<V>(&mut self, prefix: &str, extra: &BTreeMap<String, V>) {
        for key in extra.keys() {
            let full = format!("{prefix}{key}");
            if self.warned.insert(full.clone()) {
                self.warnings.push(format!(
                    "config key `{full}` is not supported yet and is ignored"
                ));
            }
        }
    }

    /// Whether any callback list names OpenTelemetry; other callbacks are not supported yet and
    /// are named in a warning.
    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }
}

/// `otel` (or `opentelemetry`) among LiteLLM's callback lists turns traces on; the callbacks
/// module checks the names and warns about unknown ones.
fn otel_in(settings: &litellm::RawLitellmSettings) -> bool {
    [
        &settings.callbacks,
        &settings.success_callback,
        &settings.failure_callback,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .any(|name| {
        matches!(
            name.trim().to_ascii_lowercase().as_str(),
            "otel" | "opentelemetry"
        )
    })
}

fn invalid(location: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        location: location.to_owned(),
        message,
    }
}

fn seconds(secs: f64, location: &str) -> Result<Duration, ConfigError> {
    if secs.is_finite() && secs > 0.0 && secs < 1e9 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(invalid(
            location,
            format!("must be a positive number of seconds, got {secs}"),
        ))
    }
}

/// The id of a deployment without `model_info.id`: FNV-1a 64 over the model group name and the
/// entry's `litellm_params` as written in the file, in a canonical encoding (keys sorted, absent
/// and `null` keys alike, `30` and `30.0` alike). An `os.environ/NAME` reference is hashed as
/// written, so rotating the secret keeps the id; the entry's position is not hashed, so inserting
/// another deployment keeps it too. Stable across runs, instances and Switchyard versions, so
/// cooldowns, counters, metrics and response headers name the same deployment everywhere.
fn stable_id(model_name: &str, params: &RawLitellmParams) -> String {
    let mut hash = Fnv1a::default();
    hash.write_str(model_name);
    // Serializing these types cannot fail (string keys only); `Null` would still hash stably.
    let params = serde_json::to_value(params).unwrap_or(serde_json::Value::Null);
    hash.write_value(&params);
    format!("{:016x}", hash.0)
}

/// FNV-1a 64: tiny, dependency-free and fully specified, so an id computed today is the id
/// computed by any later build. Collisions only matter within one config.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Length-prefixed, so `("ab", "c")` and `("a", "bc")` differ.
    fn write_str(&mut self, text: &str) {
        self.write(&(text.len() as u64).to_le_bytes());
        self.write(text.as_bytes());
    }

    /// A type tag, then the value; maps in sorted key order without their `null` entries (an
    /// option written as `~` is the option left out).
    fn write_value(&mut self, value: &serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::Null => self.write(b"n"),
            Value::Bool(b) => self.write(if *b { b"t" } else { b"f" }),
            Value::Number(number) => {
                // Integral numbers hash the same however they were typed (`30`, `30.0`).
                let float = number.as_f64().unwrap_or(f64::NAN);
                if let Some(int) = number.as_i64() {
                    self.write(b"i");
                    self.write_str(&int.to_string());
                } else if let Some(int) = number.as_u64() {
                    self.write(b"i");
                    self.write_str(&int.to_string());
                } else if float.fract() == 0.0 && float.abs() < 9.0e15 {
                    self.write(b"i");
                    self.write_str(&(float as i64).to_string());
                } else {
                    self.write(b"d");
                    self.write_str(&float.to_string());
                }
            }
            Value::String(text) => {
                self.write(b"s");
                self.write_str(text);
            }
            Value::Array(items) => {
                self.write(b"[");
                self.write(&(items.len() as u64).to_le_bytes());
                for item in items {
                    self.write_value(item);
                }
            }
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> =
                    map.iter().filter(|(_, v)| !v.is_null()).collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                self.write(b"{");
                self.write(&(entries.len() as u64).to_le_bytes());
                for (key, value) in entries {
                    self.write_str(key);
                    self.write_value(value);
                }
            }
        }
    }
}

impl Config {
    /// A human-readable summary for `switchyard check`, secrets masked.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let mut groups: BTreeMap<&str, Vec<&DeploymentConfig>> = BTreeMap::new();
        for d in &self.deployments {
            groups.entry(&d.model_name).or_default().push(d);
        }
        let _ = writeln!(
            out,
            "master_key: {}",
            self.master_key
                .as_ref()
                .map_or("(none: no auth)".to_owned(), Secret::masked)
        );
        let _ = writeln!(out, "max_request_size: {} bytes", self.max_request_bytes);
        let _ = writeln!(
            out,
            "default timeout: {:?}, num_retries: {}",
            self.request_timeout, self.num_retries
        );
        let _ = writeln!(
            out,
            "upstream TLS: {}",
            match (&self.tls.verify, &self.tls.ca_bundle) {
                (false, _) => "certificates NOT verified (ssl_verify: false)".to_owned(),
                (true, None) => "system roots".to_owned(),
                (true, Some(bundle)) => format!(
                    "system roots + CA bundle {} (from {})",
                    bundle.path.display(),
                    bundle.key
                ),
            }
        );
        let router = &self.router;
        let _ = writeln!(
            out,
            "routing: {}, deadline {:?}, allowed_fails {}, cooldown {:?}{}, {} fallback rule(s), {} route rule(s)",
            router.strategy.name(),
            router.deadline,
            router.allowed_fails,
            router.cooldown_time,
            if router.disable_cooldowns { " (disabled)" } else { "" },
            router.fallbacks.generic.len()
                + router.fallbacks.context_window.len()
                + router.fallbacks.content_policy.len(),
            router.route_rules.len()
        );
        let _ = writeln!(
            out,
            "prices: {}{}",
            crate::money::prices::SHIPPED_SOURCE,
            self.prices_file
                .as_ref()
                .map_or(String::new(), |file| format!(
                    ", under {} ({} entries)",
                    file.display(),
                    self.prices.overlay_len()
                ))
        );
        let _ = writeln!(out, "{}", self.callbacks.describe());
        let _ = writeln!(
            out,
            "{} model group(s), {} deployment(s):",
            groups.len(),
            self.deployments.len()
        );
        for (name, deployments) in groups {
            let _ = writeln!(out, "  {name}");
            for d in deployments {
                let target = match (&d.mock_response, &d.api_base) {
                    (Some(_), _) => "mock_response (in-process)".to_owned(),
                    (None, Some(base)) => base.clone(),
                    (None, None) => "(provider default)".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "    - id {} -> {}/{} at {} key {} weight {} price {}",
                    d.id,
                    d.provider,
                    d.upstream_model,
                    target,
                    d.api_key
                        .as_ref()
                        .map_or("(none)".to_owned(), Secret::masked),
                    d.weight.map_or("default".to_owned(), |w| w.to_string()),
                    describe_price(d)
                );
            }
        }
        out
    }
}

/// `$0.15/$0.6 per 1M tokens (gpt-4o-mini)`, `none (cost 0)`.
fn describe_price(d: &DeploymentConfig) -> String {
    let Some(price) = &d.price else {
        return "none (cost 0)".to_owned();
    };
    // A pico-dollar per token is a nano-dollar per thousand tokens: ×1000 per million.
    let per_million = |pico: u64| {
        let nanos = i64::try_from(u128::from(pico) * 1000).unwrap_or(i64::MAX);
        crate::money::Nanos(nanos).to_string()
    };
    format!(
        "${}/${} per 1M tokens ({})",
        per_million(price.input_per_token),
        per_million(price.output_per_token),
        d.price_entry.as_deref().unwrap_or("own prices")
    )
}

#[cfg(test)]
mod tests;
