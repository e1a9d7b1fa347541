//! Model groups and deployment selection. A model group is every `model_list` entry sharing a
//! `model_name`; a request names the group and the router picks the deployment, retries and
//! translates failures into [`RouteError`]. The router knows no provider's wire format.

mod dispatch;
mod retry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

pub use dispatch::{PassthroughStream, Served};

use crate::config::{Config, ConfigError, DeploymentConfig};
use crate::providers::{self, Provider, ProviderError, Upstream};

/// How a deployment answers.
pub enum Backend {
    /// Over HTTP, through a provider's translation.
    Http(Arc<dyn Provider>),
    /// In-process, with this text (`mock_response`).
    Mock(String),
}

pub struct Deployment {
    pub id: String,
    pub model_name: String,
    pub provider_name: String,
    pub backend: Backend,
    pub upstream: Upstream,
    /// Whole-request bound for non-streaming calls, and the idle bound between stream chunks.
    pub timeout: Duration,
    /// Bound on waiting for a stream's response head.
    pub stream_timeout: Duration,
    pub max_retries: Option<u32>,
    pub weight: f64,
}

pub struct ModelGroup {
    pub name: String,
    pub deployments: Vec<Arc<Deployment>>,
    total_weight: f64,
}

impl ModelGroup {
    /// Weighted random choice (LiteLLM's `simple-shuffle`); equal chances when no weight is set.
    /// `avoid` skips a deployment that just failed when the group has another.
    pub fn pick(&self, avoid: Option<&str>) -> &Arc<Deployment> {
        let candidates = || {
            self.deployments
                .iter()
                .filter(move |d| self.deployments.len() == 1 || Some(d.id.as_str()) != avoid)
        };
        let total: f64 = if avoid.is_some() {
            candidates().map(|d| d.weight).sum()
        } else {
            self.total_weight
        };
        if total <= 0.0 {
            let count = candidates().count();
            return candidates()
                .nth(fastrand::usize(..count.max(1)))
                .unwrap_or(&self.deployments[0]);
        }
        let mut point = fastrand::f64() * total;
        for deployment in candidates() {
            if point < deployment.weight {
                return deployment;
            }
            point -= deployment.weight;
        }
        candidates().next_back().unwrap_or(&self.deployments[0])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("model `{0}` is not served by this gateway")]
    UnknownModel(String),
    #[error(transparent)]
    Upstream(Box<UpstreamFailure>),
}

/// Every attempt failed; this is the last failure and where it happened.
#[derive(Debug, thiserror::Error)]
#[error("model group `{group}` failed after {attempts} attempt(s): {error}")]
pub struct UpstreamFailure {
    pub group: String,
    pub attempts: u32,
    pub deployment: String,
    pub error: ProviderError,
}

impl RouteError {
    pub fn upstream(group: &str, attempts: u32, deployment: &str, error: ProviderError) -> Self {
        RouteError::Upstream(Box::new(UpstreamFailure {
            group: group.to_owned(),
            attempts,
            deployment: deployment.to_owned(),
            error,
        }))
    }
}

pub struct Router {
    groups: HashMap<String, ModelGroup>,
    /// Group names in config order, for `/v1/models`.
    names: Vec<String>,
    num_retries: u32,
}

impl Router {
    /// Builds the groups from config; `env` resolves providers' default key variables.
    pub fn build(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Router, ConfigError> {
        let mut groups: HashMap<String, ModelGroup> = HashMap::new();
        let mut names = Vec::new();
        for (index, entry) in config.deployments.iter().enumerate() {
            let deployment = Arc::new(build_deployment(config, index, entry, env)?);
            let group = groups.entry(entry.model_name.clone()).or_insert_with(|| {
                names.push(entry.model_name.clone());
                ModelGroup {
                    name: entry.model_name.clone(),
                    deployments: Vec::new(),
                    total_weight: 0.0,
                }
            });
            group.total_weight += deployment.weight;
            group.deployments.push(deployment);
        }
        Ok(Router {
            groups,
            names,
            num_retries: config.num_retries,
        })
    }

    pub fn group(&self, name: &str) -> Result<&ModelGroup, RouteError> {
        self.groups
            .get(name)
            .ok_or_else(|| RouteError::UnknownModel(name.to_owned()))
    }

    pub fn model_names(&self) -> &[String] {
        &self.names
    }
}

fn build_deployment(
    config: &Config,
    index: usize,
    entry: &DeploymentConfig,
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
    let backend = match (&entry.mock_response, &spec) {
        (Some(reply), _) => Backend::Mock(reply.clone()),
        (None, Some(spec)) => Backend::Http(spec.provider.clone()),
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
    let base_url = match (&entry.api_base, spec.as_ref().and_then(|s| s.default_base)) {
        (Some(base), _) => base.clone(),
        (None, Some(default)) => default.to_owned(),
        (None, None) if entry.mock_response.is_some() => String::new(),
        (None, None) => {
            return Err(invalid(
                "litellm_params.api_base",
                format!("is required for provider `{}`", entry.provider),
            ))
        }
    };
    let api_key = entry.api_key.clone().or_else(|| {
        let var = spec.as_ref()?.key_env?;
        env(var).map(crate::config::Secret::new)
    });
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
    Ok(Deployment {
        id: entry.id.clone(),
        model_name: entry.model_name.clone(),
        provider_name: entry.provider.clone(),
        backend,
        upstream: Upstream {
            base_url,
            api_key,
            api_version: entry.api_version.clone(),
            model: entry.upstream_model.clone(),
            headers,
        },
        timeout,
        stream_timeout: entry.stream_timeout.unwrap_or(timeout),
        max_retries: entry.max_retries,
        weight: entry.weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(yaml: &str) -> Router {
        let loaded = crate::config::parse(yaml, &|_| None).unwrap();
        Router::build(&loaded.config, &|_| None).unwrap()
    }

    #[test]
    fn weighted_pick_follows_weights() {
        let r = router(
            "model_list:\n- model_name: g\n  litellm_params: {model: openai/a, api_base: 'http://x', weight: 9}\n- model_name: g\n  litellm_params: {model: openai/b, api_base: 'http://y', weight: 1}\n",
        );
        let group = r.group("g").unwrap();
        fastrand::seed(7);
        let heavy = (0..10_000)
            .filter(|_| group.pick(None).upstream.model == "a")
            .count();
        // 90% expected; 10,000 draws put 3 standard deviations at about ±0.9%.
        assert!(
            (8_800..=9_200).contains(&heavy),
            "heavy picked {heavy} times"
        );
        // Avoiding the heavy one leaves only the light one.
        let avoid = group.deployments[0].id.clone();
        assert!((0..100).all(|_| group.pick(Some(&avoid)).upstream.model == "b"));
    }

    #[test]
    fn unknown_provider_and_missing_base_are_named() {
        let loaded = crate::config::parse(
            "model_list:\n- model_name: c\n  litellm_params: {model: nosuch/x}\n",
            &|_| None,
        )
        .unwrap();
        let err = Router::build(&loaded.config, &|_| None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("model_list[0]") && err.contains("nosuch"),
            "{err}"
        );
        let loaded = crate::config::parse(
            "model_list:\n- model_name: v\n  litellm_params: {model: hosted_vllm/llama}\n",
            &|_| None,
        )
        .unwrap();
        let err = Router::build(&loaded.config, &|_| None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("api_base") && err.contains("hosted_vllm"),
            "{err}"
        );
    }

    #[test]
    fn provider_default_key_comes_from_env() {
        let loaded = crate::config::parse(
            "model_list:\n- model_name: g\n  litellm_params: {model: groq/llama}\n",
            &|_| None,
        )
        .unwrap();
        let r = Router::build(&loaded.config, &|name| {
            (name == "GROQ_API_KEY").then(|| "gsk".to_owned())
        })
        .unwrap();
        let d = &r.group("g").unwrap().deployments[0];
        assert_eq!(d.upstream.api_key.as_ref().unwrap().expose(), "gsk");
        assert_eq!(d.upstream.base_url, "https://api.groq.com/openai/v1");
    }
}
