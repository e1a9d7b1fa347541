//! What the router knows about its deployments, for people and probes: optional background
//! health checks (`general_settings.background_health_checks`), the `GET /health` report and
//! the router's Prometheus series (copied into the recorder at scrape time). No secret is ever part of it: base URLs lose their query
//! string and credentials, keys and headers are never read here.

use std::time::Duration;

use serde_json::{json, Value};

use super::cooldown::Availability;
use super::stats::HealthCheck;
use super::{Deployment, Router};
use crate::providers::http::HttpClient;
use crate::providers::{self, Call, PassthroughEndpoint, ProviderError};

/// A health check never waits longer than this, whatever the deployment's timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// A deployment's state as `/health` and `/metrics` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Healthy,
    HalfOpen,
    CoolingDown,
    Unhealthy,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::HalfOpen => "half_open",
            State::CoolingDown => "cooling_down",
            State::Unhealthy => "unhealthy",
        }
    }

    fn gauge(self) -> u8 {
        match self {
            State::Healthy => 0,
            State::HalfOpen => 1,
            State::CoolingDown => 2,
            State::Unhealthy => 3,
        }
    }
}

impl Router {
    /// Whether `general_settings.background_health_checks` is on.
    pub fn health_checks_enabled(&self) -> bool {
        self.settings.background_health_checks
    }

    pub fn health_check_interval(&self) -> Duration {
        self.settings.health_check_interval
    }

    /// Checks every deployment once. A deployment that fails its check leaves the rotation
    /// until a later check passes (the server runs this every `health_check_interval`, on the
    /// config current at that time).
    pub async fn check_all(&self, http: &HttpClient) {
        let checks = self.deployments.iter().map(|d| self.check(http, d));
        futures_util::future::join_all(checks).await;
    }

    /// One health check: the smallest real request the deployment's mode allows.
    async fn check(&self, http: &HttpClient, deployment: &Deployment) {
        let limit = deployment.timeout.min(CHECK_TIMEOUT);
        let check = match deployment.mode.as_deref() {
            Some("embedding") => {
                providers::HealthCheck::Passthrough(PassthroughEndpoint::Embeddings)
            }
            Some("completion") => {
                providers::HealthCheck::Passthrough(PassthroughEndpoint::Completions)
            }
            Some("rerank") => providers::HealthCheck::Passthrough(PassthroughEndpoint::Rerank),
            _ => providers::HealthCheck::Chat,
        };
        let call = Call {
            timeout: limit,
            first_output_timeout: limit,
            ..deployment.call(http, None)
        };
        let call = deployment.provider.health_check(call, check);
        let result = tokio::time::timeout(limit, call)
            .await
            .unwrap_or(Err(ProviderError::Timeout(limit)));
        let was_unhealthy = deployment.stats.failed_health_check();
        deployment
            .stats
            .set_health(result.is_ok(), self.clock.now_ms());
        match result {
            Err(error) => tracing::warn!(
                model_group = %deployment.model_name,
                deployment = %deployment.id,
                error_class = error.class(),
                "health check failed; deployment out of rotation: {error}"
            ),
            Ok(()) if was_unhealthy => tracing::info!(
                model_group = %deployment.model_name,
                deployment = %deployment.id,
                "health check passed; deployment back in rotation"
            ),
            Ok(()) => {}
        }
    }

    pub fn state_of(&self, deployment: &Deployment, now_ms: u64) -> State {
        match self.cooldowns.availability(&deployment.id, now_ms) {
            Availability::CoolingDown { .. } => State::CoolingDown,
            Availability::HalfOpen | Availability::Probing => State::HalfOpen,
            Availability::Available if deployment.stats.failed_health_check() => State::Unhealthy,
            Availability::Available => State::Healthy,
        }
    }

    /// The `GET /health` body: every deployment (of `model`, when given) with its state.
    /// The `healthy_endpoints` / `unhealthy_endpoints` split is LiteLLM's shape.
    pub fn health_report(&self, model: Option<&str>) -> Value {
        let now_ms = self.clock.now_ms();
        let mut healthy = Vec::new();
        let mut unhealthy = Vec::new();
        for deployment in &self.deployments {
            if model.is_some_and(|m| m != deployment.model_name) {
                continue;
            }
            let state = self.state_of(deployment, now_ms);
            let entry = self.describe(deployment, state, now_ms);
            if state == State::Healthy {
                healthy.push(entry);
            } else {
                unhealthy.push(entry);
            }
        }
        json!({
            "healthy_count": healthy.len(),
            "unhealthy_count": unhealthy.len(),
            "healthy_endpoints": healthy,
            "unhealthy_endpoints": unhealthy,
            "routing_strategy": self.settings.strategy.name(),
            "background_health_checks": {
                "enabled": self.settings.background_health_checks,
                "interval_seconds": self.settings.health_check_interval.as_secs_f64(),
            },
        })
    }

    fn describe(&self, deployment: &Deployment, state: State, now_ms: u64) -> Value {
        let stats = &deployment.stats;
        let cooldown = self.cooldowns.snapshot(&deployment.id, now_ms);
        let (cooldown_remaining_ms, rate_limited) = match cooldown.availability {
            Availability::CoolingDown {
                until_ms,
                rate_limited,
            } => (until_ms.saturating_sub(now_ms), rate_limited),
            _ => (0, false),
        };
        let seconds_ago = |at_ms: u64| now_ms.saturating_sub(at_ms) as f64 / 1000.0;
        let usage = self.usage.current(&deployment.id, now_ms);
        let (check, checked_at) = stats.health_check();
        json!({
            "model_group": deployment.model_name,
            "deployment_id": deployment.id,
            "provider": deployment.provider_name,
            "model": deployment.upstream.model,
            "api_base": deployment.public_base(),
            "state": state.name(),
            "cooldown_remaining_ms": cooldown_remaining_ms,
            "rate_limited": rate_limited,
            "recent_failures": cooldown.recent_failures,
            "cooldowns_total": cooldown.cooldowns,
            "in_flight": stats.in_flight(),
            "latency_ms": stats.latency().map(|l| l.as_secs_f64() * 1000.0),
            "ttft_ms": stats.ttft().map(|l| l.as_secs_f64() * 1000.0),
            "picks": stats.picks(),
            "successes": stats.successes(),
            "failures": stats.failures(),
            "last_error": stats.last_error().map(|(class, status, at_ms)| json!({
                "class": class,
                "status": status,
                "seconds_ago": seconds_ago(at_ms),
            })),
            "health_check": match check {
                HealthCheck::NotRun => Value::Null,
                HealthCheck::Healthy | HealthCheck::Unhealthy => json!({
                    "healthy": check == HealthCheck::Healthy,
                    "seconds_ago": seconds_ago(checked_at),
                }),
            },
            "rpm": {"used": usage.requests, "limit": deployment.rpm},
            "tpm": {"used": usage.tokens, "limit": deployment.tpm},
            "order": (deployment.order != u32::MAX).then_some(deployment.order),
            "region": deployment.region,
            "canary_share": deployment.canary_share,
        })
    }

    /// Copies the router's state into the metrics recorder (when `/metrics` is scraped): each
    /// deployment's state, cooldowns, attempts and moving averages, and the route rules' matches.
    pub fn publish_metrics(&self) {
        use metrics::{counter, gauge, Label};
        let now_ms = self.clock.now_ms();
        let litellm = crate::telemetry::litellm_names();
        for d in &self.deployments {
            let labels = vec![
                Label::new("model_group", d.model_name.clone()),
                Label::new("deployment", d.id.clone()),
                Label::new("provider", d.provider_name.clone()),
                Label::new(
                    "canary",
                    if d.canary_share.is_some() {
                        "true"
                    } else {
                        "false"
                    },
                ),
            ];
            let state = self.state_of(d, now_ms);
            gauge!("switchyard_deployment_state", labels.clone()).set(f64::from(state.gauge()));
            counter!("switchyard_deployment_cooldowns_total", labels.clone())
                .absolute(self.cooldowns.snapshot(&d.id, now_ms).cooldowns);
            gauge!("switchyard_deployment_in_flight", labels.clone())
                .set(f64::from(d.stats.in_flight()));
            counter!("switchyard_deployment_routed_total", labels.clone())
                .absolute(d.stats.picks());
            counter!("switchyard_deployment_served_total", labels.clone())
                .absolute(d.stats.successes());
            counter!("switchyard_deployment_failures_total", labels.clone())
                .absolute(d.stats.failures());
            counter!(
                "switchyard_deployment_fallback_served_total",
                labels.clone()
            )
            .absolute(d.stats.fallback_served());
            gauge!("switchyard_deployment_latency_seconds", labels.clone())
                .set(d.stats.latency().map_or(0.0, |l| l.as_secs_f64()));
            gauge!("switchyard_deployment_ttft_seconds", labels)
                .set(d.stats.ttft().map_or(0.0, |l| l.as_secs_f64()));
            if litellm {
                // LiteLLM: 0 healthy, 1 partial outage, 2 complete outage.
                let value = match state {
                    State::Healthy => 0.0,
                    State::HalfOpen => 1.0,
                    State::CoolingDown | State::Unhealthy => 2.0,
                };
                gauge!(
                    "litellm_deployment_state",
                    "litellm_model_name" => d.upstream.model.clone(),
                    "model_id" => d.id.clone(),
                    "api_base" => d.public_base(),
                    "api_provider" => d.provider_name.clone()
                )
                .set(value);
            }
        }
        for rule in self.rules.iter() {
            counter!(
                "switchyard_route_rule_matches_total",
                "rule" => rule.name().to_owned(),
                "route_to" => rule.config.route_to.clone()
            )
            .absolute(rule.matched());
        }
    }
}

impl Deployment {
    /// Where the deployment sends requests, safe to show: no credentials, no query string.
    pub fn public_base(&self) -> String {
        if self.is_mock() {
            "mock_response".to_owned()
        } else {
            public_base(&self.upstream.base_url)
        }
    }
}

/// `scheme://host[:port]/path` without credentials or query (where some providers carry keys).
fn public_base(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or("");
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let rest = match rest.split_once('/') {
                Some((authority, path)) => {
                    let host = authority.rsplit('@').next().unwrap_or(authority);
                    format!("{host}/{path}")
                }
                None => rest.rsplit('@').next().unwrap_or(rest).to_owned(),
            };
            format!("{scheme}://{rest}")
        }
        None => without_query.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_lose_credentials_and_query() {
        assert_eq!(
            public_base("https://user:pw@api.example.com:8443/v1?key=sk-1#x"),
            "https://api.example.com:8443/v1"
        );
        assert_eq!(
            public_base("http://127.0.0.1:9/v1"),
            "http://127.0.0.1:9/v1"
        );
        assert_eq!(public_base("https://k@host"), "https://host");
    }
}
