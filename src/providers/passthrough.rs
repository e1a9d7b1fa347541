//! The provider pass-through routes' upstream side (`/openai/*`, `/anthropic/*`, `/gemini/*`,
//! `/cohere/*`, `/mistral/*`, `/vertex_ai/*`, `/bedrock/*`, as LiteLLM has them): where a
//! provider lives and with which key the gateway calls it, which of the caller's headers may go
//! on, and what usage an answer reports. Pure functions; `api/provider_passthrough.rs` sends,
//! signs and meters.
//!
//! Credentials follow LiteLLM (`pass_through_endpoints/llm_passthrough_endpoints.py`,
//! `passthrough_endpoint_router.py`): a deployment of that provider in `model_list` lends its
//! `api_key` and `api_base`; else `{PROVIDER}_API_KEY` and `{PROVIDER}_API_BASE` from the
//! environment; else the provider's public URL. Vertex AI and Bedrock have no static key: a
//! configured deployment lends its credentials (Google OAuth, AWS SigV4), see
//! [`vertex_target`] and [`bedrock_target`].

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use std::sync::Arc;

use crate::config::{DeploymentConfig, Secret};
use crate::providers::{Credentials, Upstream};
use crate::schema::Usage;

/// A provider with a pass-through route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassProvider {
    OpenAi,
    Anthropic,
    Gemini,
    Cohere,
    Mistral,
    VertexAi,
    Bedrock,
}

impl PassProvider {
    pub const ALL: [PassProvider; 7] = [
        PassProvider::OpenAi,
        PassProvider::Anthropic,
        PassProvider::Gemini,
        PassProvider::Cohere,
        PassProvider::Mistral,
        PassProvider::VertexAi,
        PassProvider::Bedrock,
    ];

    /// The route prefix, LiteLLM's provider name and the price table's.
    pub fn name(self) -> &'static str {
        match self {
            PassProvider::OpenAi => "openai",
            PassProvider::Anthropic => "anthropic",
            PassProvider::Gemini => "gemini",
            PassProvider::Cohere => "cohere",
            PassProvider::Mistral => "mistral",
            PassProvider::VertexAi => "vertex_ai",
            PassProvider::Bedrock => "bedrock",
        }
    }

    /// Deployment prefixes in `model_list` whose credentials this route may borrow.
    pub fn config_prefixes(self) -> &'static [&'static str] {
        match self {
            PassProvider::Cohere => &["cohere", "cohere_chat"],
            PassProvider::Gemini => &["gemini"],
            PassProvider::OpenAi => &["openai"],
            PassProvider::Anthropic => &["anthropic"],
            PassProvider::Mistral => &["mistral"],
            PassProvider::VertexAi => &["vertex_ai", "vertex_ai_beta"],
            PassProvider::Bedrock => &["bedrock"],
        }
    }

    /// Where LiteLLM sends this route when nothing else is configured.
    fn public_base(self) -> &'static str {
        match self {
            PassProvider::OpenAi => "https://api.openai.com",
            PassProvider::Anthropic => "https://api.anthropic.com",
            PassProvider::Gemini => "https://generativelanguage.googleapis.com",
            PassProvider::Cohere => "https://api.cohere.com",
            PassProvider::Mistral => "https://api.mistral.ai",
            PassProvider::VertexAi => "https://aiplatform.googleapis.com",
            PassProvider::Bedrock => "https://bedrock-runtime.us-west-2.amazonaws.com",
        }
    }

    fn env_prefix(self) -> &'static str {
        match self {
            PassProvider::OpenAi => "OPENAI",
            PassProvider::Anthropic => "ANTHROPIC",
            PassProvider::Gemini => "GEMINI",
            PassProvider::Cohere => "COHERE",
            PassProvider::Mistral => "MISTRAL",
            PassProvider::VertexAi => "VERTEXAI",
            PassProvider::Bedrock => "BEDROCK",
        }
    }

    /// The gateway's key in the header the provider reads.
    pub fn auth_header(self, key: &Secret) -> Option<(HeaderName, HeaderValue)> {
        let (name, value) = match self {
            PassProvider::Anthropic => ("x-api-key", key.expose().to_owned()),
            PassProvider::Gemini => ("x-goog-api-key", key.expose().to_owned()),
            _ => ("authorization", format!("Bearer {}", key.expose())),
        };
        let mut value = HeaderValue::from_str(&value).ok()?;
        value.set_sensitive(true);
        Some((HeaderName::from_static(name), value))
    }
}

/// Where a pass-through request goes, and with which key.
pub struct Target {
    pub base_url: String,
    pub api_key: Option<Secret>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The upstream of `provider`'s route: the first deployment of that provider marked
/// `use_in_pass_through` (LiteLLM's flag), else the first of that provider in the config (not a
/// `mock_response` one), lends its base and key; the environment fills what it lacks.
pub fn target(
    provider: PassProvider,
    deployments: &[DeploymentConfig],
    env: &dyn Fn(&str) -> Option<String>,
) -> Target {
    let of_provider = |d: &&DeploymentConfig| {
        d.mock_response.is_none() && provider.config_prefixes().contains(&d.provider.as_str())
    };
    let deployment = deployments
        .iter()
        .filter(of_provider)
        .find(|d| d.use_in_pass_through)
        .or_else(|| deployments.iter().find(of_provider));
    let prefix = provider.env_prefix();
    let non_empty = |v: String| (!v.trim().is_empty()).then_some(v);
    let base_url = deployment
        .and_then(|d| d.api_base.clone())
        .or_else(|| env(&format!("{prefix}_API_BASE")).and_then(non_empty))
        .unwrap_or_else(|| provider.public_base().to_owned());
    let api_key = deployment
        .and_then(|d| d.api_key.clone())
        .or_else(|| {
            env(&format!("{prefix}_API_KEY"))
                .and_then(non_empty)
                .map(Secret::new)
        })
        .or_else(|| {
            // LiteLLM takes GOOGLE_API_KEY for Gemini too.
            (provider == PassProvider::Gemini)
                .then(|| env("GOOGLE_API_KEY").and_then(non_empty).map(Secret::new))
                .flatten()
        });
    Target { base_url, api_key }
}

/// Where a Vertex AI or Bedrock pass-through request goes, and the credentials that sign it.
pub struct SignedTarget {
    /// The host (and any path prefix) the caller's path is appended to.
    pub base_url: String,
    pub credentials: Option<Arc<dyn Credentials>>,
    /// A static key instead (Vertex's express mode in `x-goog-api-key`, a Bedrock API key as
    /// a bearer token).
    pub api_key: Option<Secret>,
}

impl std::fmt::Debug for SignedTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedTarget")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The `{segment}` after `/{name}/` in a path (`projects`, `locations`).
fn segment_after<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let mut parts = path.split('/');
    parts.find(|part| *part == name)?;
    parts.next().filter(|s| !s.is_empty())
}

/// `/vertex_ai/{path}` (LiteLLM's `vertex_proxy_route`): the path is Vertex's REST path
/// (`/v1/projects/{project}/locations/{location}/...`). The configured Vertex AI deployment of
/// that project and location lends its credentials (else the first Vertex AI deployment).
/// The host is the path's location's (`{location}-aiplatform.googleapis.com`), or the
/// deployment's `api_base` when it has one. `None`: no Vertex AI deployment is configured.
pub fn vertex_target(deployments: &[(&str, &Upstream)], path: &str) -> Option<SignedTarget> {
    let project = segment_after(path, "projects");
    let location = segment_after(path, "locations");
    let vertex: Vec<&Upstream> = deployments
        .iter()
        .filter(|(provider, upstream)| {
            PassProvider::VertexAi.config_prefixes().contains(provider)
                && (upstream.credentials.is_some() || upstream.api_key.is_some())
        })
        .map(|(_, upstream)| *upstream)
        .collect();
    let wanted = match (project, location) {
        (Some(p), Some(l)) => Some(format!("/projects/{p}/locations/{l}")),
        _ => None,
    };
    let upstream = wanted
        .and_then(|wanted| {
            vertex
                .iter()
                .find(|u| u.base_url.ends_with(&wanted))
                .copied()
        })
        .or_else(|| vertex.first().copied())?;
    let host = crate::providers::vertex::host_of(&upstream.base_url);
    let base_url = match location {
        // Google's own host: the path's location decides the region (a location that is not a
        // Google Cloud name never becomes part of a host name).
        Some(location)
            if host.ends_with("aiplatform.googleapis.com")
                && crate::providers::vertex::valid_gcp_name(location) =>
        {
            crate::providers::vertex::location_host(location)
        }
        _ => host.to_owned(),
    };
    Some(SignedTarget {
        base_url,
        credentials: upstream.credentials.clone(),
        api_key: upstream.api_key.clone(),
    })
}

/// `/bedrock/{path}` (LiteLLM's `bedrock_proxy_route`): the path is the Bedrock runtime's
/// (`/model/{modelId}/converse` ...). The first Bedrock deployment lends its endpoint and its
/// credentials (SigV4, or its Bedrock API key); `None` when there is none.
pub fn bedrock_target(deployments: &[(&str, &Upstream)]) -> Option<SignedTarget> {
    let (_, upstream) = deployments.iter().find(|(provider, upstream)| {
        *provider == "bedrock" && (upstream.credentials.is_some() || upstream.api_key.is_some())
    })?;
    Some(SignedTarget {
        base_url: upstream.base_url.trim_end_matches('/').to_owned(),
        credentials: upstream.credentials.clone(),
        api_key: upstream.api_key.clone(),
    })
}

/// Why a pass-through path is refused before anything is sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("the pass-through path may not contain `.` or `..` segments")]
    DotSegment,
}

/// `base` joined with the caller's `path` (what followed `/{provider}`, starting with `/`) and
/// `query`. A base ending in a version segment the path repeats (`http://h/v1` and
/// `/v1/chat/completions`: a deployment's `api_base` usually carries its `/v1`) is not doubled.
/// Dot segments are refused, so a path cannot climb above the configured base (LiteLLM guards
/// the same way).
pub fn upstream_url(base: &str, path: &str, query: Option<&str>) -> Result<String, PathError> {
    for segment in path.split('/') {
        let decoded = segment.replace("%2e", ".").replace("%2E", ".");
        if decoded == "." || decoded == ".." {
            return Err(PathError::DotSegment);
        }
    }
    let mut base = base.trim_end_matches('/');
    if let Some((head, last)) = base.rsplit_once('/') {
        let is_version = last.len() >= 2
            && last.starts_with('v')
            && last[1..].starts_with(|c: char| c.is_ascii_digit());
        let repeated = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(last))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if is_version && repeated && head.contains("://") {
            base = head;
        }
    }
    let mut url = format!("{base}{path}");
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

/// The query string without `key=` (a Gemini caller may put its gateway key there, as LiteLLM
/// allows; the gateway's own key goes in a header instead).
pub fn query_without_key(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("key"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Hop-by-hop headers (RFC 9110 7.6.1), never forwarded in either direction.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The caller's credentials for the gateway, in every header a client may send them in.
const CALLER_CREDENTIALS: &[&str] = &[
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-litellm-api-key",
    "cookie",
];

fn named_in_connection(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The caller's headers as they may go upstream: without hop-by-hop headers, the caller's own
/// credentials, `host` and `content-length` (the client sets both for the new request) and
/// `accept-encoding` (an uncompressed answer lets the gateway read its usage).
pub fn request_headers(caller: &HeaderMap) -> HeaderMap {
    let listed = named_in_connection(caller);
    let mut out = HeaderMap::with_capacity(caller.len());
    for (name, value) in caller {
        let name_str = name.as_str();
        if HOP_BY_HOP.contains(&name_str)
            || CALLER_CREDENTIALS.contains(&name_str)
            || matches!(name_str, "host" | "content-length" | "accept-encoding")
            || listed.iter().any(|l| l == name_str)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The upstream's response headers as they may go to the caller: without hop-by-hop headers.
pub fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    let listed = named_in_connection(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len() + 4);
    for (name, value) in upstream {
        let name_str = name.as_str();
        if HOP_BY_HOP.contains(&name_str) || listed.iter().any(|l| l == name_str) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The model a pass-through request is for: the body's `model`, else Gemini's
/// `models/{model}:{method}` path segment.
pub fn request_model(path: &str, body: &[u8]) -> Option<String> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(model) = value.get("model").and_then(Value::as_str) {
            return Some(model.to_owned());
        }
    }
    if let Some(after) = path.split("/models/").nth(1) {
        let model = after.split([':', '/']).next()?;
        return (!model.is_empty()).then(|| model.to_owned());
    }
    // Bedrock's `/model/{modelId}/{operation}`, the id percent-encoded.
    let after = path.split("/model/").nth(1)?;
    let model = after
        .split('/')
        .next()?
        .replace("%3A", ":")
        .replace("%3a", ":");
    (!model.is_empty()).then_some(model)
}

/// Largest answer (or SSE line) kept to read usage from; a larger one goes unmetered.
const MAX_METERED_BYTES: usize = 8 * 1024 * 1024;

/// Reads the usage an upstream answer reports, chunk by chunk as it is forwarded: a whole JSON
/// answer's `usage`, or every SSE `data:` event's (OpenAI's last chunk, Anthropic's
/// `message_start` and `message_delta`, Gemini's `usageMetadata`, Cohere's `usage.tokens`).
/// Counts seen more than once keep their largest value: Anthropic repeats its running totals.
#[derive(Debug)]
pub struct UsageMeter {
    sse: bool,
    /// The whole body (JSON), or the current unfinished line (SSE).
    pending: Vec<u8>,
    overflowed: bool,
    tokens: Option<(u64, u64)>,
    cache_read: u64,
    cache_creation: u64,
    model: Option<String>,
}

impl UsageMeter {
    pub fn new(content_type: &str) -> UsageMeter {
        UsageMeter {
            sse: content_type.starts_with("text/event-stream"),
            pending: Vec::new(),
            overflowed: false,
            tokens: None,
            cache_read: 0,
            cache_creation: 0,
            model: None,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.sse {
            if !self.overflowed && self.pending.len() + chunk.len() <= MAX_METERED_BYTES {
                self.pending.extend_from_slice(chunk);
            } else {
                self.overflowed = true;
                self.pending = Vec::new();
            }
            return;
        }
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            if self.overflowed {
                self.overflowed = false;
            } else {
                self.pending.extend_from_slice(&rest[..end]);
                let line = std::mem::take(&mut self.pending);
                self.sse_line(&line);
            }
            rest = &rest[end + 1..];
        }
        if self.overflowed || self.pending.len() + rest.len() > MAX_METERED_BYTES {
            // An overlong line is skipped up to its end.
            self.overflowed = true;
            self.pending.clear();
        } else {
            self.pending.extend_from_slice(rest);
        }
    }

    fn sse_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if let Ok(value) = serde_json::from_slice::<Value>(data.trim_ascii()) {
            self.read(&value);
        }
    }

    /// Called once the body is over: the usage seen, and the model the answer names.
    pub fn finish(mut self) -> (Option<Usage>, Option<String>) {
        if self.sse {
            let line = std::mem::take(&mut self.pending);
            if !self.overflowed {
                self.sse_line(&line);
            }
        } else if !self.overflowed {
            if let Ok(value) = serde_json::from_slice::<Value>(&self.pending) {
                self.read(&value);
            }
        }
        let usage = self.tokens.map(|(prompt, completion)| {
            let mut usage = Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                total_tokens: prompt + completion,
                extra: Default::default(),
            };
            if self.cache_read > 0 {
                usage
                    .extra
                    .insert("cache_read_input_tokens".into(), self.cache_read.into());
            }
            if self.cache_creation > 0 {
                usage.extra.insert(
                    "cache_creation_input_tokens".into(),
                    self.cache_creation.into(),
                );
            }
            usage
        });
        (usage, self.model)
    }

    fn read(&mut self, value: &Value) {
        if self.model.is_none() {
            self.model = value
                .get("model")
                .or_else(|| value.pointer("/message/model"))
                .or_else(|| value.get("modelVersion"))
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        let candidates = [
            value.get("usage"),
            value.pointer("/message/usage"),
            value.pointer("/delta/usage"),
            value.get("usageMetadata"),
        ];
        for usage in candidates.into_iter().flatten() {
            let usage = usage.get("tokens").unwrap_or(usage);
            let count = |names: &[&str]| names.iter().find_map(|n| usage.get(*n)?.as_u64());
            let prompt = count(&[
                "prompt_tokens",
                "input_tokens",
                "promptTokenCount",
                "inputTokens",
            ]);
            let completion = count(&[
                "completion_tokens",
                "output_tokens",
                "candidatesTokenCount",
                "outputTokens",
            ]);
            if prompt.is_none() && completion.is_none() {
                continue;
            }
            let (p, c) = self.tokens.unwrap_or((0, 0));
            self.tokens = Some((p.max(prompt.unwrap_or(0)), c.max(completion.unwrap_or(0))));
            if let Some(n) = count(&["cache_read_input_tokens"]) {
                self.cache_read = self.cache_read.max(n);
            }
            if let Some(n) = count(&["cache_creation_input_tokens"]) {
                self.cache_creation = self.cache_creation.max(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployments(yaml: &str) -> Vec<DeploymentConfig> {
        crate::config::parse(yaml, &|_| None)
            .unwrap()
            .config
            .deployments
    }

    #[test]
    fn a_deployment_lends_its_key_and_base_else_the_environment() {
        let list = deployments(
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/gpt-4o, mock_response: hi}\n  - model_name: a\n    litellm_params: {model: openai/gpt-4o, api_key: sk-dep, api_base: 'http://h:1/v1'}\n",
        );
        let env = |name: &str| match name {
            "OPENAI_API_KEY" => Some("sk-env".to_owned()),
            "ANTHROPIC_API_KEY" => Some("sk-ant-env".to_owned()),
            "ANTHROPIC_API_BASE" => Some("http://anthropic.local".to_owned()),
            _ => None,
        };
        let openai = target(PassProvider::OpenAi, &list, &env);
        assert_eq!(openai.base_url, "http://h:1/v1");
        assert_eq!(openai.api_key.unwrap().expose(), "sk-dep");
        let anthropic = target(PassProvider::Anthropic, &list, &env);
        assert_eq!(anthropic.base_url, "http://anthropic.local");
        assert_eq!(anthropic.api_key.unwrap().expose(), "sk-ant-env");
        let mistral = target(PassProvider::Mistral, &list, &env);
        assert_eq!(mistral.base_url, "https://api.mistral.ai");
        assert!(mistral.api_key.is_none());
        assert!(!format!(
            "{openai:?}",
            openai = target(PassProvider::OpenAi, &list, &env)
        )
        .contains("sk-"));
    }

    #[test]
    fn urls_join_without_doubling_the_version_or_climbing_out() {
        let url = |base, path, query| upstream_url(base, path, query);
        assert_eq!(
            url("http://h/v1", "/v1/chat/completions", None).unwrap(),
            "http://h/v1/chat/completions"
        );
        assert_eq!(
            url("https://api.openai.com/", "/v1/models", Some("a=1")).unwrap(),
            "https://api.openai.com/v1/models?a=1"
        );
        assert_eq!(
            url("http://h/v1beta", "/v1beta/models/g:generateContent", None).unwrap(),
            "http://h/v1beta/models/g:generateContent"
        );
        assert_eq!(
            url("http://h/prefix", "/v2/chat", None).unwrap(),
            "http://h/prefix/v2/chat"
        );
        assert_eq!(
            url("http://h/v1", "/v10/x", None).unwrap(),
            "http://h/v1/v10/x"
        );
        for bad in ["/../admin", "/v1/./x", "/%2e%2E/x", "/a/.."] {
            assert_eq!(
                url("http://h/v1", bad, None),
                Err(PathError::DotSegment),
                "{bad}"
            );
        }
        assert_eq!(
            query_without_key("key=sk-1&alt=sse&keyx=2"),
            "alt=sse&keyx=2"
        );
        assert_eq!(query_without_key("key=sk-1"), "");
    }

    #[test]
    fn caller_credentials_and_hop_by_hop_headers_stay_behind() {
        let mut caller = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer sk-caller"),
            ("x-api-key", "sk-caller"),
            ("api-key", "sk-caller"),
            ("x-goog-api-key", "sk-caller"),
            ("cookie", "session=1"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("host", "gateway"),
            ("content-length", "3"),
            ("accept-encoding", "gzip"),
            ("anthropic-version", "2023-06-01"),
            ("openai-beta", "assistants=v2"),
            ("content-type", "application/json"),
        ] {
            caller.append(name, HeaderValue::from_static(value));
        }
        let out = request_headers(&caller);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["anthropic-version", "openai-beta", "content-type"]);
        let mut upstream = HeaderMap::new();
        upstream.append("connection", HeaderValue::from_static("close"));
        upstream.append("transfer-encoding", HeaderValue::from_static("chunked"));
        upstream.append("x-request-id", HeaderValue::from_static("req_1"));
        let out = response_headers(&upstream);
        assert_eq!(out.len(), 1);
        assert!(out.contains_key("x-request-id"));
    }

    #[test]
    fn keys_go_in_each_providers_header() {
        let key = Secret::new("sk-gw".into());
        let header = |p: PassProvider| {
            let (name, value) = p.auth_header(&key).unwrap();
            (name.to_string(), value.to_str().unwrap().to_owned())
        };
        assert_eq!(
            header(PassProvider::OpenAi),
            ("authorization".into(), "Bearer sk-gw".into())
        );
        assert_eq!(
            header(PassProvider::Anthropic),
            ("x-api-key".into(), "sk-gw".into())
        );
        assert_eq!(
            header(PassProvider::Gemini),
            ("x-goog-api-key".into(), "sk-gw".into())
        );
        assert!(PassProvider::OpenAi
            .auth_header(&Secret::new("bad\nkey".into()))
            .is_none());
    }

    #[test]
    fn the_model_comes_from_the_body_else_geminis_path() {
        assert_eq!(
            request_model("/v1/chat/completions", br#"{"model":"gpt-4o"}"#).as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(
            request_model("/v1beta/models/gemini-2.5-flash:generateContent", b"{}").as_deref(),
            Some("gemini-2.5-flash")
        );
        assert_eq!(request_model("/v1/files", b"not json"), None);
    }

    fn meter(content_type: &str, chunks: &[&[u8]]) -> (Option<Usage>, Option<String>) {
        let mut meter = UsageMeter::new(content_type);
        for chunk in chunks {
            meter.feed(chunk);
        }
        meter.finish()
    }

    #[test]
    fn usage_is_read_from_whole_answers_of_each_shape() {
        let (usage, model) = meter(
            "application/json",
            &[
                br#"{"model":"gpt-4o","usage":{"prompt_tokens":3,"#,
                br#""completion_tokens":6}}"#,
            ],
        );
        let usage = usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (3, 6));
        assert_eq!(model.as_deref(), Some("gpt-4o"));
        let (usage, _) = meter(
            "application/json",
            &[br#"{"usage":{"input_tokens":10,"output_tokens":2,"cache_read_input_tokens":4}}"#],
        );
        let usage = usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (10, 2));
        assert_eq!(usage.extra["cache_read_input_tokens"], 4);
        let (usage, _) = meter(
            "application/json",
            &[br#"{"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":7}}"#],
        );
        assert_eq!(usage.unwrap().completion_tokens, 7);
        let (usage, _) = meter(
            "application/json",
            &[br#"{"usage":{"billed_units":{},"tokens":{"input_tokens":8,"output_tokens":9}}}"#],
        );
        assert_eq!(usage.unwrap().prompt_tokens, 8);
        assert!(meter("application/json", &[b"{\"id\":1}"]).0.is_none());
    }

    #[test]
    fn usage_is_read_from_streams_split_anywhere() {
        let anthropic = "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\r\n\r\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30}}\n\n";
        for split in 0..anthropic.len() {
            let (a, b) = anthropic.as_bytes().split_at(split);
            let (usage, model) = meter("text/event-stream", &[a, b]);
            let usage = usage.unwrap();
            assert_eq!(
                (usage.prompt_tokens, usage.completion_tokens),
                (12, 30),
                "{split}"
            );
            assert_eq!(model.as_deref(), Some("claude"));
        }
        let openai = b"data: {\"choices\":[]}\n\ndata: {\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":4}}\n\ndata: [DONE]";
        assert_eq!(
            meter("text/event-stream", &[openai])
                .0
                .unwrap()
                .total_tokens,
            6
        );
    }

    #[test]
    fn hostile_bodies_are_not_metered_and_do_not_grow_memory() {
        let big = vec![b'x'; MAX_METERED_BYTES + 1];
        assert!(meter(
            "application/json",
            &[&big, br#"{"usage":{"prompt_tokens":1}}"#]
        )
        .0
        .is_none());
        // An overlong SSE line is skipped; the next line still counts.
        let (usage, _) = meter(
            "text/event-stream",
            &[
                b"data: ",
                &big,
                b"\ndata: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n",
            ],
        );
        assert_eq!(usage.unwrap().total_tokens, 2);
        for junk in [
            &b"data: {\"usage\": 5}\n"[..],
            b"data: {{{\n",
            b"\xff\xfe\n",
            b"data: {\"usage\":{\"prompt_tokens\":-1}}\n",
        ] {
            assert!(meter("text/event-stream", &[junk]).0.is_none());
        }
    }
}
