//! Model groups, deployment selection and the reliability loop. A model group is every
//! `model_list` entry sharing a `model_name`; a request names a group (or a route rule chooses
//! one), and the router picks deployments, retries, cools deployments down, falls back to other
//! groups and reports what it did. The router knows no provider's wire format.
//!
//! | file | what it does |
//! |---|---|
//! | `dispatch.rs` | the request path: plan → groups → attempts → answer |
//! | `strategy.rs` | choosing one deployment (strategies, order, canary, region, pre-call checks) |
//! | `cooldown.rs` | cooldowns / circuit breaking, behind a store trait |
//! | `usage.rs` | requests and tokens per minute (`rpm`/`tpm`), behind a store trait |
//! | `stats.rs` | in-flight counts, latency averages, counters |
//! | `failure.rs` | what each kind of failure means (retry, cooldown, fallback) |
//! | `retry.rs` | how many retries, how long to wait |
//! | `fallback.rs` | which groups to fall back to |
//! | `rules.rs` | dynamic model selection (route rules) |
//! | `request.rs` | per-request controls from the body |
//! | `stream.rs` | reading a stream ahead before committing it; bookkeeping after |
//! | `health.rs` | background health checks, `/health` and the router's metrics |

pub mod budget;
mod clock;
mod cooldown;
mod dispatch;
mod failure;
mod fallback;
mod health;
pub mod keyed;
mod request;
mod retry;
mod rules;
mod stats;
mod strategy;
mod stream;
mod usage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{HeaderMap, HeaderName, HeaderValue};

pub use crate::providers::PassthroughStream;
pub use cooldown::{Availability, CooldownPolicy, CooldownStore, LocalCooldowns};
pub use dispatch::{passthrough_prompt_tokens, RouteReport, Served, TrailEntry};
pub use failure::FailureKind;
pub use request::{OptionsError, RequestOptions, CONTROL_FIELDS};
pub use stats::LiveStats;
pub use strategy::{NoPick, PickContext, Picked, Selector};
pub use stream::BoxStream;
pub use usage::{LocalUsage, UsageStore};

use crate::config::{Config, ConfigError, DeploymentConfig, RouterSettings};
use crate::providers::http::HttpClient;
use crate::providers::{self, Call, Provider, ProviderError, Upstream};
use clock::Clock;
use rules::Rules;

pub struct Deployment {
    /// Stable across restarts, instances and reloads (`model_info.id`, else a hash of the
    /// entry as written); keys cooldowns, usage counters and metrics.
    pub id: String,
    pub model_name: String,
    pub provider_name: String,
    /// How this deployment is called: a provider over HTTP, or the in-process mock.
    pub provider: Arc<dyn Provider>,
    pub upstream: Upstream,
    /// Whole-request bound for non-streaming calls, and the idle bound between stream chunks.
    pub timeout: Duration,
    /// Bound on a stream's time to first output (response head included).
    pub stream_timeout: Duration,
    pub max_retries: Option<u32>,
    /// simple-shuffle's weight: `weight`, else `rpm`/`tpm` when the group uses them.
    pub shuffle_weight: f64,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// `order` (1 is tried first); deployments without one come after all that have one.
    pub order: u32,
    pub region: Option<String>,
    pub canary_share: Option<f64>,
    /// Input plus output price per token, for cost-based-routing (infinite when unknown).
    pub cost_per_token: f64,
    /// `litellm_params.max_budget` over `budget_duration`: spent, the deployment sits out.
    pub budget: Option<budget::DeploymentBudget>,
    /// What a token costs (see `money::prices`), resolved when the config was built; `None`
    /// when nothing prices this deployment (its requests are recorded as unpriced, cost 0).
    pub price: Option<Arc<crate::money::prices::Price>>,
    pub max_input_tokens: Option<u64>,
    /// `model_info.mode` (`chat`, `embedding`, `completion`), which decides the health check.
    pub mode: Option<String>,
    /// Never cooled down: the only deployment of a group without fallbacks. As in LiteLLM,
    /// taking it out would refuse every request for the group; with a fallback, cooling it
    /// down is what makes failover fast, so it is not exempt then.
    pub cooldown_exempt: bool,
    /// Shared with this deployment's predecessor when a reload kept its id.
    pub stats: Arc<LiveStats>,
    /// `id` and `model_name` as response header values, built once instead of per response.
    pub id_header: HeaderValue,
    pub group_header: HeaderValue,
    /// Its trace span attributes, encoded once (see telemetry/traces/spans.rs).
    pub span_attributes: crate::telemetry::traces::DeploymentAttributes,
}

impl Deployment {
    /// What an attempt against this deployment needs; `stream_timeout` overrides the
    /// deployment's bound on a stream's first output (a request's `stream_timeout`).
    pub fn call<'a>(&'a self, http: &'a HttpClient, stream_timeout: Option<Duration>) -> Call<'a> {
        Call {
            http,
            upstream: &self.upstream,
            timeout: self.timeout,
            first_output_timeout: stream_timeout.unwrap_or(self.stream_timeout),
        }
    }

    /// Answers in-process (`mock_response`) rather than over the network.
    pub fn is_mock(&self) -> bool {
        self.provider.name() == providers::mock::NAME
    }
}

/// Names only: a deployment's upstream carries its key.
impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("id", &self.id)
            .field("model_name", &self.model_name)
            .field("provider", &self.provider_name)
            .finish_non_exhaustive()
    }
}

pub struct ModelGroup {
    pub name: String,
    pub deployments: Vec<Arc<Deployment>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("model `{0}` is not served by this gateway")]
    UnknownModel(String),
    #[error("`{param}` {message}")]
    InvalidOptions { param: String, message: String },
    #[error(transparent)]
    Upstream(Box<UpstreamFailure>),
    #[error(transparent)]
    Unavailable(Box<Unavailable>),
}

/// Every attempt failed; this is the last upstream failure and where it happened.
#[derive(Debug, thiserror::Error)]
#[error("model group `{group}` failed after {attempts} attempt(s): {error}")]
pub struct UpstreamFailure {
    /// The model group the request was for (the one a route rule chose, if any).
    pub group: String,
    pub attempts: u32,
    pub deployment: String,
    pub error: ProviderError,
    pub report: RouteReport,
}

/// No deployment could even be tried.
#[derive(Debug, thiserror::Error)]
#[error("model group `{group}` has no available deployment: {reason:?}")]
pub struct Unavailable {
    pub group: String,
    pub reason: NoPick,
    /// When this was decided, to turn the reason's timestamps into a `retry-after`.
    pub now_ms: u64,
    pub report: RouteReport,
}

impl Unavailable {
    /// How long until trying again makes sense.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.reason {
            NoPick::CoolingDown { until_ms, .. } => {
                Some(Duration::from_millis(until_ms.saturating_sub(self.now_ms)))
            }
            NoPick::OverLimits { reset_in_ms } | NoPick::OverBudget { reset_in_ms } => {
                Some(Duration::from_millis(reset_in_ms))
            }
            NoPick::ContextWindow { .. } | NoPick::AllTried => None,
        }
    }
}

impl RouteError {
    pub fn upstream(group: &str, attempts: u32, deployment: &str, error: ProviderError) -> Self {
        RouteError::Upstream(Box::new(UpstreamFailure {
            group: group.to_owned(),
            attempts,
            deployment: deployment.to_owned(),
            error,
            report: RouteReport::default(),
        }))
    }

    /// How the request was routed before it failed, when it got that far.
    pub fn report(&self) -> Option<&RouteReport> {
        match self {
            RouteError::Upstream(failure) => Some(&failure.report),
            RouteError::Unavailable(unavailable) => Some(&unavailable.report),
            RouteError::UnknownModel(_) | RouteError::InvalidOptions { .. } => None,
        }
    }
}

pub struct Router {
    groups: HashMap<String, ModelGroup>,
    /// Every deployment, by index.
    deployments: Vec<Arc<Deployment>>,
    /// Group names in config order, then route-rule aliases, for `/v1/models`.
    names: Vec<String>,
    settings: RouterSettings,
    num_retries: u32,
    selector: Selector,
    rules: Rules,
    cooldowns: Arc<dyn CooldownStore>,
    usage: Arc<dyn UsageStore>,
    clock: Clock,
    /// Access group → the model groups in it (`model_info.access_groups`).
    access_groups: HashMap<String, Vec<String>>,
    /// Some routing decision needs the prompt's token estimate (pre-call checks, usage-based
    /// routing, `tpm` limits); otherwise it is never computed.
    needs_prompt_tokens: bool,
}

impl Router {
    /// Builds the groups from config with in-process cooldown and usage stores; `env` resolves
    /// providers' default key variables.
    pub fn build(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Router, ConfigError> {
        let cooldowns = Arc::new(LocalCooldowns::new(cooldown_policy(&config.router)));
        let usage = Arc::new(LocalUsage::new());
        Router::build_with_stores(config, env, cooldowns, usage)
    }

    /// The router for a reloaded config. It keeps this router's stores, and every deployment
    /// whose id did not change keeps its cooldown, usage counters and live statistics; state of
    /// removed deployments is dropped. `self` keeps serving the requests already in flight.
    pub fn reload(
        &self,
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Router, ConfigError> {
        let next = Router::assemble(
            config,
            env,
            self.cooldowns.clone(),
            self.usage.clone(),
            Some(self),
        )?;
        next.cooldowns.set_policy(cooldown_policy(&config.router));
        let kept: std::collections::HashSet<&str> =
            next.deployments.iter().map(|d| d.id.as_str()).collect();
        next.cooldowns.retain(&|id| kept.contains(id));
        next.usage.retain(&|id| kept.contains(id));
        Ok(next)
    }

    /// [`Router::build`] with the given stores (a shared implementation, or a test's).
    pub fn build_with_stores(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
        cooldowns: Arc<dyn CooldownStore>,
        usage: Arc<dyn UsageStore>,
    ) -> Result<Router, ConfigError> {
        Router::assemble(config, env, cooldowns, usage, None)
    }

    fn assemble(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
        cooldowns: Arc<dyn CooldownStore>,
        usage: Arc<dyn UsageStore>,
        previous: Option<&Router>,
    ) -> Result<Router, ConfigError> {
        let previous_stats: HashMap<&str, &Arc<LiveStats>> = previous
            .map(|router| {
                router
                    .deployments
                    .iter()
                    .map(|d| (d.id.as_str(), &d.stats))
                    .collect()
            })
            .unwrap_or_default();
        let mut groups: HashMap<String, ModelGroup> = HashMap::new();
        let mut names = Vec::new();
        let mut deployments = Vec::with_capacity(config.deployments.len());
        for (index, entry) in config.deployments.iter().enumerate() {
            let weight = shuffle_weight(config, entry);
            let mut deployment = build_deployment(config, index, entry, weight, env)?;
            deployment.cooldown_exempt = is_only_way_to_serve(config, entry);
            if let Some(stats) = previous_stats.get(entry.id.as_str()) {
                deployment.stats = Arc::clone(stats);
            }
            let deployment = Arc::new(deployment);
            deployments.push(deployment.clone());
            groups
                .entry(entry.model_name.clone())
                .or_insert_with(|| {
                    names.push(entry.model_name.clone());
                    ModelGroup {
                        name: entry.model_name.clone(),
                        deployments: Vec::new(),
                    }
                })
                .deployments
                .push(deployment);
        }
        let rules = Rules::new(&config.router.route_rules);
        for alias in rules.aliases() {
            if !names.iter().any(|n| n == alias) {
                names.push(alias.to_owned());
            }
        }
        let mut access_groups: HashMap<String, Vec<String>> = HashMap::new();
        for entry in &config.deployments {
            for access_group in &entry.info.access_groups {
                let members = access_groups.entry(access_group.clone()).or_default();
                if !members.contains(&entry.model_name) {
                    members.push(entry.model_name.clone());
                }
            }
        }
        let settings = config.router.clone();
        let strategy = settings.strategy;
        let needs_prompt_tokens = settings.enable_pre_call_checks
            || strategy == crate::config::RoutingStrategy::UsageBased
            || deployments.iter().any(|d| d.tpm.is_some());
        Ok(Router {
            groups,
            deployments,
            names,
            selector: Selector {
                strategy,
                lowest_latency_buffer: settings.lowest_latency_buffer,
                pre_call_checks: settings.enable_pre_call_checks,
            },
            num_retries: config.num_retries,
            settings,
            rules,
            cooldowns,
            usage,
            clock: Clock::new(),
            access_groups,
            needs_prompt_tokens,
        })
    }

    pub fn group(&self, name: &str) -> Result<&ModelGroup, RouteError> {
        self.groups
            .get(name)
            .ok_or_else(|| RouteError::UnknownModel(name.to_owned()))
    }

    /// Model groups and route-rule aliases, in config order.
    pub fn model_names(&self) -> &[String] {
        &self.names
    }

    /// Whether `name` is a model clients may ask for (a group or a route rule's alias).
    pub fn serves(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    pub fn deployments(&self) -> &[Arc<Deployment>] {
        &self.deployments
    }

    /// Chooses a deployment of `group` the way an attempt would, with its side effects
    /// (counters, probe claims). For benchmarks and diagnostics.
    pub fn pick(
        &self,
        group: &ModelGroup,
        ctx: &PickContext<'_>,
        rng: &mut fastrand::Rng,
    ) -> Result<Picked, NoPick> {
        self.selector.pick(
            group,
            self.cooldowns.as_ref(),
            self.usage.as_ref(),
            ctx,
            rng,
        )
    }

    /// The model groups an access group stands for (empty if it names none).
    pub fn access_group(&self, name: &str) -> &[String] {
        self.access_groups.get(name).map_or(&[], Vec::as_slice)
    }

    pub fn settings(&self) -> &RouterSettings {
        &self.settings
    }

    /// The most retries a request's own `num_retries` may ask for.
    pub fn max_request_retries(&self) -> u32 {
        self.settings.max_request_retries
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn log_transition(
        &self,
        deployment: &Deployment,
        transition: cooldown::Transition,
        error: Option<&ProviderError>,
    ) {
        let status = match error {
            Some(ProviderError::Status { status, .. }) => Some(*status),
            _ => None,
        };
        crate::telemetry::cooldown_transition(
            deployment,
            matches!(transition, cooldown::Transition::Opened { .. }),
            status,
        );
        match transition {
            cooldown::Transition::Opened { until_ms } => {
                let cooldown_ms = until_ms.saturating_sub(self.clock.now_ms());
                tracing::warn!(
                    model_group = %deployment.model_name,
                    deployment = %deployment.id,
                    cooldown_ms,
                    error_class = error.map(ProviderError::class),
                    "deployment cooling down"
                );
                crate::callbacks::raise_alert(crate::callbacks::Alert::DeploymentCooledDown {
                    model_group: deployment.model_name.clone(),
                    deployment: deployment.id.clone(),
                    cooldown: std::time::Duration::from_millis(cooldown_ms),
                    error_class: error.map(ProviderError::class),
                });
            }
            cooldown::Transition::Closed => tracing::info!(
                model_group = %deployment.model_name,
                deployment = %deployment.id,
                "deployment healthy again after its probe succeeded"
            ),
        }
    }
}

fn cooldown_policy(settings: &RouterSettings) -> CooldownPolicy {
    CooldownPolicy {
        allowed_fails: settings.allowed_fails,
        per_class: settings.allowed_fails_policy,
        cooldown: settings.cooldown_time,
        disabled: settings.disable_cooldowns,
    }
}

/// The group has this one deployment and no configured fallback to turn to.
fn is_only_way_to_serve(config: &Config, entry: &DeploymentConfig) -> bool {
    let alone = config
        .deployments
        .iter()
        .filter(|d| d.model_name == entry.model_name)
        .count()
        == 1;
    let fallbacks = &config.router.fallbacks;
    let has_fallback = !fallbacks.default.is_empty()
        || [
            &fallbacks.generic,
            &fallbacks.context_window,
            &fallbacks.content_policy,
        ]
        .iter()
        .any(|rules| {
            rules
                .iter()
                .any(|(from, to)| (from == &entry.model_name || from == "*") && !to.is_empty())
        });
    alone && !has_fallback
}

/// simple-shuffle's weights, as LiteLLM chooses them: `weight` when any deployment of the group
/// sets one (Switchyard's default weight is 1), else `rpm`, else `tpm` (a deployment without
/// the value gets 0), else equal.
fn shuffle_weight(config: &Config, entry: &DeploymentConfig) -> f64 {
    let group = || {
        config
            .deployments
            .iter()
            .filter(|d| d.model_name == entry.model_name)
    };
    if group().any(|d| d.weight.is_some()) {
        entry.weight.unwrap_or(1.0)
    } else if group().any(|d| d.rpm.is_some()) {
        entry.rpm.unwrap_or(0) as f64
    } else if group().any(|d| d.tpm.is_some()) {
        entry.tpm.unwrap_or(0) as f64
    } else {
        1.0
    }
}

fn build_deployment(
    config: &Config,
    index: usize,
    entry: &DeploymentConfig,
    shuffle_weight: f64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Deployment, ConfigError> {
    let at = |key: &str| {
        format!(
            "model_list[{index}] (model_name `{}`): {key}",
            entry.model_name
        )
    };
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        location: at(key),
        message,
    };
    let spec = providers::lookup(&entry.provider);
    let provider: Arc<dyn Provider> = match (&entry.mock_response, &spec) {
        (Some(reply), _) => Arc::new(providers::mock::MockProvider::new(reply.clone())),
        (None, Some(spec)) => spec.provider.clone(),
        (None, None) => {
            return Err(invalid(
                "litellm_params.model",
                format!(
                    "provider `{}` is not supported (supported: {})",
                    entry.provider,
                    providers::KNOWN_PREFIXES.join(", ")
                ),
            ))
        }
    };
    let api_key = entry.api_key.clone().or_else(|| {
        let vars = spec.as_ref()?.key_env;
        vars.iter()
            .find_map(|var| env(var))
            .map(crate::config::Secret::new)
    });
    // Credentials and a region-dependent base URL (Bedrock), built once here.
    let prepared = match (&entry.mock_response, spec.as_ref().and_then(|s| s.prepare)) {
        (None, Some(prepare)) => prepare(entry, api_key.is_some(), env)
            .map_err(|message| invalid("litellm_params", message))?,
        _ => providers::Prepared::default(),
    };
    let provider = prepared.provider.unwrap_or(provider);
    let default_base = prepared
        .default_base
        .or_else(|| spec.as_ref()?.default_base.map(str::to_owned));
    let base_url = match (prepared.base_url, &entry.api_base, default_base) {
        // The provider built the whole base from `api_base` itself (Vertex AI).
        (Some(whole), _, _) => whole,
        (None, Some(base), _) => base.clone(),
        (None, None, Some(default)) => default,
        (None, None, None) if entry.mock_response.is_some() => String::new(),
        (None, None, None) => {
            return Err(invalid(
                "litellm_params.api_base",
                format!("is required for provider `{}`", entry.provider),
            ))
        }
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &entry.extra_headers {
        let (Ok(name), Ok(mut value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.expose()),
        ) else {
            return Err(invalid(
                &format!("litellm_params.extra_headers.{name}"),
                "is not a valid HTTP header".into(),
            ));
        };
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let timeout = entry.timeout.unwrap_or(config.request_timeout);
    let cost_per_token = match (
        &entry.price,
        entry.info.input_cost_per_token,
        entry.info.output_cost_per_token,
    ) {
        (Some(price), _, _) => price.per_token_usd(),
        (None, None, None) => f64::INFINITY,
        (None, input, output) => input.unwrap_or(0.0) + output.unwrap_or(0.0),
    };
    let header_value = |key: &str, value: &str| {
        HeaderValue::from_str(value).map_err(|_| {
            invalid(
                key,
                format!("`{value}` cannot be sent in a response header"),
            )
        })
    };
    let id_header = header_value("model_info.id", &entry.id)?;
    let group_header = header_value("model_name", &entry.model_name)?;
    Ok(Deployment {
        id_header,
        group_header,
        id: entry.id.clone(),
        model_name: entry.model_name.clone(),
        provider_name: entry.provider.clone(),
        provider,
        upstream: Upstream {
            base_url,
            api_key,
            api_version: entry.api_version.clone(),
            model: entry.upstream_model.clone(),
            headers,
            drop_params: config.drop_params,
            additional_drop_params: entry.additional_drop_params.clone(),
            allowed_openai_params: entry.allowed_openai_params.clone(),
            max_output_tokens: entry.info.max_tokens,
            credentials: prepared.credentials,
        },
        timeout,
        stream_timeout: entry
            .stream_timeout
            .or(config.router.stream_timeout)
            .unwrap_or(timeout),
        max_retries: entry.max_retries,
        shuffle_weight,
        rpm: entry.rpm,
        tpm: entry.tpm,
        order: entry.order.unwrap_or(u32::MAX),
        region: entry.region.clone(),
        canary_share: entry.canary_share,
        cost_per_token,
        budget: entry.budget,
        price: entry.price.clone(),
        max_input_tokens: entry.info.max_input_tokens,
        mode: entry.info.mode.clone(),
        cooldown_exempt: false,
        stats: Arc::default(),
        span_attributes: Default::default(),
    })
}

#[cfg(test)]
mod tests;
