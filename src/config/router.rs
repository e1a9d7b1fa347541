//! The router's part of the config: `router_settings` (LiteLLM's names and semantics), the
//! reliability keys LiteLLM also accepts under `litellm_settings`, the health-check keys of
//! `general_settings`, and Switchyard's own `switchyard_routing` block (deadline, route rules).
//! The router itself is in `src/router/`; this file only validates.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::litellm::{
    RawAllowedFailsPolicy, RawConfig, RawFallbacks, RawRetryPolicy, RawRouteRule,
};
use super::{invalid, seconds, ConfigError, DeploymentConfig, Validator};

/// LiteLLM's `allowed_fails` default: failures tolerated within a minute before a cooldown.
pub const DEFAULT_ALLOWED_FAILS: u32 = 3;
/// LiteLLM's `DEFAULT_COOLDOWN_TIME_SECONDS`.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(5);
/// LiteLLM's `max_fallbacks` default.
pub const DEFAULT_MAX_FALLBACKS: u32 = 5;
/// Default cap on a request's own `num_retries` (`switchyard_routing.max_request_retries`).
pub const DEFAULT_MAX_REQUEST_RETRIES: u32 = 5;

/// Total budget of one request when neither the request nor `switchyard_routing.deadline` sets
/// one: LiteLLM's default timeout, so nothing that worked before starts timing out.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);
/// LiteLLM's `health_check_interval` default.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingStrategy {
    SimpleShuffle,
    LeastBusy,
    LatencyBased,
    UsageBased,
    CostBased,
}

impl RoutingStrategy {
    pub const NAMES: &'static [&'static str] = &[
        "simple-shuffle",
        "least-busy",
        "latency-based-routing",
        "usage-based-routing",
        "usage-based-routing-v2",
        "cost-based-routing",
    ];

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "simple-shuffle" => RoutingStrategy::SimpleShuffle,
            "least-busy" => RoutingStrategy::LeastBusy,
            "latency-based-routing" => RoutingStrategy::LatencyBased,
            // v2 is LiteLLM's Redis-friendly rewrite of the same policy.
            "usage-based-routing" | "usage-based-routing-v2" => RoutingStrategy::UsageBased,
            "cost-based-routing" => RoutingStrategy::CostBased,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            RoutingStrategy::SimpleShuffle => "simple-shuffle",
            RoutingStrategy::LeastBusy => "least-busy",
            RoutingStrategy::LatencyBased => "latency-based-routing",
            RoutingStrategy::UsageBased => "usage-based-routing",
            RoutingStrategy::CostBased => "cost-based-routing",
        }
    }
}

/// A number per error class (LiteLLM's `RetryPolicy` / `AllowedFailsPolicy` fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerErrorClass {
    pub bad_request: Option<u32>,
    pub authentication: Option<u32>,
    pub timeout: Option<u32>,
    pub rate_limit: Option<u32>,
    pub content_policy: Option<u32>,
    pub internal_server: Option<u32>,
}

/// Fallback rules in config order: `(model group or "*", groups to try in order)`.
pub type FallbackRules = Vec<(String, Vec<String>)>;

#[derive(Debug, Clone, Default)]
pub struct FallbackSettings {
    /// Any failure that is not the request's own fault.
    pub generic: FallbackRules,
    pub context_window: FallbackRules,
    pub content_policy: FallbackRules,
    /// Used for a group with no entry (and no `*` entry) in `generic`.
    pub default: Vec<String>,
    pub max_fallbacks: u32,
}

/// One `switchyard_routing.route_rules[]` entry.
#[derive(Debug, Clone)]
pub struct RouteRuleConfig {
    pub name: String,
    /// The model clients ask for; `*` is any.
    pub model: String,
    pub route_to: String,
    pub min_prompt_tokens: Option<u64>,
    pub max_prompt_tokens: Option<u64>,
    /// Any of these (empty: no condition).
    pub tier: Vec<String>,
    /// All of these.
    pub tags: Vec<String>,
    /// Any of these.
    pub feature: Vec<String>,
    pub stream: Option<bool>,
    /// Each key's value must be one of the listed values.
    pub metadata: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone)]
pub struct RouterSettings {
    pub strategy: RoutingStrategy,
    pub lowest_latency_buffer: f64,
    /// Default `stream_timeout` of every deployment.
    pub stream_timeout: Option<Duration>,
    /// Minimum wait before retrying the same deployment.
    pub retry_after: Duration,
    pub retry_policy: PerErrorClass,
    pub model_group_retry_policy: BTreeMap<String, PerErrorClass>,
    pub allowed_fails: u32,
    pub allowed_fails_policy: PerErrorClass,
    pub cooldown_time: Duration,
    pub disable_cooldowns: bool,
    pub fallbacks: FallbackSettings,
    pub enable_pre_call_checks: bool,
    pub deadline: Duration,
    /// The most retries a request's `num_retries` may ask for (higher asks are lowered to it).
    pub max_request_retries: u32,
    pub background_health_checks: bool,
    pub health_check_interval: Duration,
    pub route_rules: Vec<RouteRuleConfig>,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            strategy: RoutingStrategy::SimpleShuffle,
            lowest_latency_buffer: 0.0,
            stream_timeout: None,
            retry_after: Duration::ZERO,
            retry_policy: PerErrorClass::default(),
            model_group_retry_policy: BTreeMap::new(),
            allowed_fails: DEFAULT_ALLOWED_FAILS,
            allowed_fails_policy: PerErrorClass::default(),
            cooldown_time: DEFAULT_COOLDOWN,
            disable_cooldowns: false,
            fallbacks: FallbackSettings {
                max_fallbacks: DEFAULT_MAX_FALLBACKS,
                ..FallbackSettings::default()
            },
            enable_pre_call_checks: false,
            deadline: DEFAULT_DEADLINE,
            max_request_retries: DEFAULT_MAX_REQUEST_RETRIES,
            background_health_checks: false,
            health_check_interval: DEFAULT_HEALTH_CHECK_INTERVAL,
            route_rules: Vec::new(),
        }
    }
}

impl Validator<'_> {
    /// Validates the router keys. Runs after `model_list`, so names of model groups in
    /// fallbacks and route rules can be checked against the groups that exist.
    pub(super) fn router_settings(
        &mut self,
        raw: &mut RawConfig,
        deployments: &[DeploymentConfig],
    ) -> Result<RouterSettings, ConfigError> {
        let groups: BTreeSet<&str> = deployments.iter().map(|d| d.model_name.as_str()).collect();
        let router = &mut raw.router_settings;
        let litellm = &mut raw.litellm_settings;
        let mut settings = RouterSettings::default();

        if let Some(name) = &router.routing_strategy {
            settings.strategy = RoutingStrategy::parse(name).ok_or_else(|| {
                invalid(
                    "router_settings.routing_strategy",
                    format!(
                        "`{name}` is not a routing strategy (one of: {})",
                        RoutingStrategy::NAMES.join(", ")
                    ),
                )
            })?;
        }
        if let Some(args) = &router.routing_strategy_args {
            self.unsupported("router_settings.routing_strategy_args.", &args.extra);
            if let Some(buffer) = args.lowest_latency_buffer {
                if !(buffer.is_finite() && buffer >= 0.0) {
                    return Err(invalid(
                        "router_settings.routing_strategy_args.lowest_latency_buffer",
                        format!("must be >= 0, got {buffer}"),
                    ));
                }
                settings.lowest_latency_buffer = buffer;
            }
        }
        settings.stream_timeout = router
            .stream_timeout
            .map(|s| seconds(s, "router_settings.stream_timeout"))
            .transpose()?;
        if let Some(wait) = router.retry_after {
            if !(wait.is_finite() && (0.0..1e6).contains(&wait)) {
                return Err(invalid(
                    "router_settings.retry_after",
                    format!("must be a number of seconds >= 0, got {wait}"),
                ));
            }
            settings.retry_after = Duration::from_secs_f64(wait);
        }
        if let Some(policy) = &router.retry_policy {
            settings.retry_policy = self.retry_policy(policy, "router_settings.retry_policy");
        }
        for (group, policy) in router.model_group_retry_policy.iter().flatten() {
            let key = format!("router_settings.model_group_retry_policy.{group}");
            if !groups.contains(group.as_str()) {
                return Err(invalid(
                    &key,
                    format!("model group `{group}` is not in model_list"),
                ));
            }
            let policy = self.retry_policy(policy, &key);
            settings
                .model_group_retry_policy
                .insert(group.clone(), policy);
        }
        if let Some(fails) = router.allowed_fails.or(litellm.allowed_fails) {
            settings.allowed_fails = fails;
        }
        if let Some(policy) = &router.allowed_fails_policy {
            settings.allowed_fails_policy = self.allowed_fails_policy(policy);
        }
        if let Some(secs) = router.cooldown_time.or(litellm.cooldown_time) {
            settings.cooldown_time = seconds(secs, "router_settings.cooldown_time")?;
        }
        settings.disable_cooldowns = router.disable_cooldowns.unwrap_or(false);
        settings.enable_pre_call_checks = router.enable_pre_call_checks.unwrap_or(false);

        let fallbacks = &mut settings.fallbacks;
        let pick = |a: &mut Option<RawFallbacks>, b: &mut Option<RawFallbacks>, key: &str| match (
            a.take(),
            b.take(),
        ) {
            (Some(rules), _) => Some((rules, format!("router_settings.{key}"))),
            (None, Some(rules)) => Some((rules, format!("litellm_settings.{key}"))),
            (None, None) => None,
        };
        if let Some((rules, key)) = pick(&mut router.fallbacks, &mut litellm.fallbacks, "fallbacks")
        {
            fallbacks.generic = fallback_rules(rules, &key, &groups)?;
        }
        if let Some((rules, key)) = pick(
            &mut router.context_window_fallbacks,
            &mut litellm.context_window_fallbacks,
            "context_window_fallbacks",
        ) {
            fallbacks.context_window = fallback_rules(rules, &key, &groups)?;
        }
        if let Some((rules, key)) = pick(
            &mut router.content_policy_fallbacks,
            &mut litellm.content_policy_fallbacks,
            "content_policy_fallbacks",
        ) {
            fallbacks.content_policy = fallback_rules(rules, &key, &groups)?;
        }
        let (default, key) = match (
            router.default_fallbacks.take(),
            litellm.default_fallbacks.take(),
        ) {
            (Some(list), _) => (list, "router_settings.default_fallbacks"),
            (None, Some(list)) => (list, "litellm_settings.default_fallbacks"),
            (None, None) => (Vec::new(), ""),
        };
        for (i, target) in default.iter().enumerate() {
            known_group(target, &format!("{key}[{i}]"), &groups)?;
        }
        fallbacks.default = default;
        if let Some(max) = router.max_fallbacks {
            fallbacks.max_fallbacks = max;
        }

        let general = &raw.general_settings;
        settings.background_health_checks = general.background_health_checks.unwrap_or(false);
        if let Some(secs) = general.health_check_interval {
            settings.health_check_interval =
                seconds(secs, "general_settings.health_check_interval")?;
        }

        if let Some(routing) = raw.switchyard_routing.take() {
            if let Some(secs) = routing.deadline {
                settings.deadline = seconds(secs, "switchyard_routing.deadline")?;
            }
            if let Some(max) = routing.max_request_retries {
                settings.max_request_retries = max;
            }
            let mut names = BTreeSet::new();
            for (i, rule) in routing.route_rules.into_iter().enumerate() {
                let rule = route_rule(rule, i, &groups)?;
                if !names.insert(rule.name.clone()) {
                    return Err(invalid(
                        &format!("switchyard_routing.route_rules[{i}].name"),
                        format!("`{}` is already used by another rule", rule.name),
                    ));
                }
                settings.route_rules.push(rule);
            }
        }
        self.check_weights(deployments, settings.strategy);
        Ok(settings)
    }

    fn retry_policy(&mut self, raw: &RawRetryPolicy, key: &str) -> PerErrorClass {
        self.unsupported(&format!("{key}."), &raw.extra);
        if raw.BadRequestErrorRetries.is_some_and(|n| n > 0)
            || raw
                .ContentPolicyViolationErrorRetries
                .is_some_and(|n| n > 0)
        {
            self.warn(format!(
                "{key}: BadRequestErrorRetries and ContentPolicyViolationErrorRetries are ignored: \
                 a request the upstream refused as invalid is never retried (it falls back instead)"
            ));
        }
        PerErrorClass {
            bad_request: raw.BadRequestErrorRetries,
            authentication: raw.AuthenticationErrorRetries,
            timeout: raw.TimeoutErrorRetries,
            rate_limit: raw.RateLimitErrorRetries,
            content_policy: raw.ContentPolicyViolationErrorRetries,
            internal_server: raw.InternalServerErrorRetries,
        }
    }

    fn allowed_fails_policy(&mut self, raw: &RawAllowedFailsPolicy) -> PerErrorClass {
        self.unsupported("router_settings.allowed_fails_policy.", &raw.extra);
        PerErrorClass {
            bad_request: raw.BadRequestErrorAllowedFails,
            authentication: raw.AuthenticationErrorAllowedFails,
            timeout: raw.TimeoutErrorAllowedFails,
            rate_limit: raw.RateLimitErrorAllowedFails,
            content_policy: raw.ContentPolicyViolationErrorAllowedFails,
            internal_server: raw.InternalServerErrorAllowedFails,
        }
    }

    /// simple-shuffle weighs by `rpm` (or `tpm`) when no deployment of a group sets `weight`,
    /// and then, as in LiteLLM, a deployment without one gets no traffic while the others are
    /// healthy. That is easy to do by accident, so it is said once at start-up.
    fn check_weights(&mut self, deployments: &[DeploymentConfig], strategy: RoutingStrategy) {
        if strategy != RoutingStrategy::SimpleShuffle {
            return;
        }
        let mut groups: BTreeMap<&str, Vec<&DeploymentConfig>> = BTreeMap::new();
        for d in deployments {
            groups.entry(&d.model_name).or_default().push(d);
        }
        for (group, members) in groups {
            if members.iter().any(|d| d.weight.is_some()) {
                continue;
            }
            let by = if members.iter().any(|d| d.rpm.is_some()) {
                "rpm"
            } else if members.iter().any(|d| d.tpm.is_some()) {
                "tpm"
            } else {
                continue;
            };
            for d in &members {
                let missing = match by {
                    "rpm" => d.rpm.is_none(),
                    _ => d.tpm.is_none(),
                };
                if missing {
                    self.warn(format!(
                        "model group `{group}`: simple-shuffle weighs deployments by {by}, and \
                         deployment `{}` sets none, so it only gets traffic when the others are \
                         cooling down (set `weight` to choose shares explicitly)",
                        d.id
                    ));
                }
            }
        }
    }
}

fn known_group(name: &str, key: &str, groups: &BTreeSet<&str>) -> Result<(), ConfigError> {
    if groups.contains(name) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("model group `{name}` is not in model_list"),
        ))
    }
}

fn fallback_rules(
    raw: RawFallbacks,
    key: &str,
    groups: &BTreeSet<&str>,
) -> Result<FallbackRules, ConfigError> {
    let mut rules = Vec::with_capacity(raw.len());
    for (i, entry) in raw.into_iter().enumerate() {
        if entry.len() != 1 {
            return Err(invalid(
                &format!("{key}[{i}]"),
                format!(
                    "each entry maps one model group to its fallbacks, like {{\"gpt-4o\": [\"gpt-4o-mini\"]}}; this one has {} keys",
                    entry.len()
                ),
            ));
        }
        for (from, to) in entry {
            if from != "*" {
                known_group(&from, &format!("{key}[{i}]"), groups)?;
            }
            for (j, target) in to.iter().enumerate() {
                known_group(target, &format!("{key}[{i}].{from}[{j}]"), groups)?;
            }
            rules.push((from, to));
        }
    }
    Ok(rules)
}

fn route_rule(
    raw: RawRouteRule,
    index: usize,
    groups: &BTreeSet<&str>,
) -> Result<RouteRuleConfig, ConfigError> {
    let at = |key: &str| format!("switchyard_routing.route_rules[{index}].{key}");
    if raw.name.trim().is_empty() {
        return Err(invalid(&at("name"), "must not be empty".into()));
    }
    if raw.model.trim().is_empty() {
        return Err(invalid(
            &at("model"),
            "must not be empty (use `*` for any model)".into(),
        ));
    }
    known_group(&raw.route_to, &at("route_to"), groups)?;
    let when = raw.when;
    if let (Some(min), Some(max)) = (when.min_prompt_tokens, when.max_prompt_tokens) {
        if min > max {
            return Err(invalid(
                &at("when"),
                format!("min_prompt_tokens ({min}) is larger than max_prompt_tokens ({max})"),
            ));
        }
    }
    Ok(RouteRuleConfig {
        name: raw.name,
        model: raw.model,
        route_to: raw.route_to,
        min_prompt_tokens: when.min_prompt_tokens,
        max_prompt_tokens: when.max_prompt_tokens,
        tier: when.tier.map(|t| t.into_vec()).unwrap_or_default(),
        tags: when.tags.unwrap_or_default(),
        feature: when.feature.map(|f| f.into_vec()).unwrap_or_default(),
        stream: when.stream,
        metadata: when
            .metadata
            .into_iter()
            .flatten()
            .map(|(key, values)| (key, values.into_vec()))
            .collect(),
    })
}
