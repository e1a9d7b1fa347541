//! `litellm_settings.cache` and `cache_params`, read into
//! [`CacheSettings`](crate::cache::CacheSettings) (docs/caching.md).

use std::time::Duration;

use super::litellm::{RawConfig, StringOrNumber};
use super::{invalid, storage, ConfigError, Secret, StorageSettings, Validator};
use crate::cache::settings::{
    check_namespace, ttl_seconds, Backend, CacheSettings, CallTypes, DEFAULT_REDIS_TIMEOUT,
};

const AT: &str = "litellm_settings.cache_params";

impl Validator<'_> {
    pub(super) fn cache(
        &mut self,
        raw: &RawConfig,
        storage: &StorageSettings,
    ) -> Result<Option<CacheSettings>, ConfigError> {
        let litellm = &raw.litellm_settings;
        if litellm.cache != Some(true) {
            if litellm.cache_params.is_some() {
                self.warn(
                    "litellm_settings.cache_params is set but litellm_settings.cache is not true: \
                     the response cache is off"
                        .into(),
                );
            }
            return Ok(None);
        }
        let mut settings = CacheSettings::default();
        let Some(params) = &litellm.cache_params else {
            return Ok(Some(settings));
        };
        self.unsupported(&format!("{AT}."), &params.extra);
        let text = |this: &Self, value: &Option<String>, key: &str| {
            value
                .as_deref()
                .map(|v| this.resolve(v, &format!("{AT}.{key}")))
                .transpose()
        };
        if let Some(ttl) = params.ttl {
            settings.ttl = ttl_seconds(ttl).ok_or_else(|| {
                invalid(
                    &format!("{AT}.ttl"),
                    format!("must be a number of seconds from 1 to 2592000 (30 days), got {ttl}"),
                )
            })?;
        }
        if let Some(namespace) = text(self, &params.namespace, "namespace")? {
            check_namespace(&namespace).map_err(|m| invalid(&format!("{AT}.namespace"), m))?;
            settings.namespace = Some(namespace);
        }
        settings.default_off = match params.mode.as_deref() {
            None | Some("default_on") => false,
            Some("default_off") => true,
            Some(other) => {
                return Err(invalid(
                    &format!("{AT}.mode"),
                    format!("must be default_on or default_off, got `{other}`"),
                ))
            }
        };
        if let Some(types) = &params.supported_call_types {
            settings.calls = CallTypes::NONE;
            for name in types {
                match name.as_str() {
                    "completion" | "acompletion" => settings.calls.chat = true,
                    "text_completion" | "atext_completion" => settings.calls.completions = true,
                    "embedding" | "aembedding" => settings.calls.embeddings = true,
                    "anthropic_messages" | "aanthropic_messages" => settings.calls.messages = true,
                    other => self.warn(format!(
                        "{AT}.supported_call_types: `{other}` is not cached by Switchyard \
                         (completion, text_completion, embedding and anthropic_messages are)"
                    )),
                }
            }
        }
        if let Some(kb) = params.max_entry_kb {
            if !(kb.is_finite() && kb > 0.0) {
                return Err(invalid(
                    &format!("{AT}.max_entry_kb"),
                    format!("must be a positive number of KiB, got {kb}"),
                ));
            }
            settings.max_entry_bytes = (kb * 1024.0) as usize;
        }
        let kind = params.kind.as_deref().unwrap_or("local");
        settings.backend = match kind {
            "local" | "memory" | "in-memory" => Backend::Memory {
                max_bytes: memory_bytes(params.max_memory_mb)?,
            },
            "redis" => {
                let url = match text(self, &params.url, "url")?.or(text(
                    self,
                    &params.redis_url,
                    "redis_url",
                )?) {
                    Some(url) => Some(url),
                    None => match text(self, &params.host, "host")? {
                        Some(host) => {
                            let port = match &params.port {
                                None => None,
                                Some(StringOrNumber::Number(n)) => u16::try_from(*n).ok(),
                                Some(StringOrNumber::Text(t)) => {
                                    self.resolve(t, &format!("{AT}.port"))?.trim().parse().ok()
                                }
                            };
                            if params.port.is_some() && port.is_none() {
                                return Err(invalid(
                                    &format!("{AT}.port"),
                                    "must be a port number (1 to 65535)".into(),
                                ));
                            }
                            let password = text(self, &params.password, "password")?;
                            Some(storage::redis_url(&host, port, password.as_deref()))
                        }
                        // LiteLLM's cache reads REDIS_HOST / REDIS_URL too: the Redis the
                        // limits use.
                        None => storage.redis_url.as_ref().map(|u| u.expose().to_owned()),
                    },
                };
                let Some(url) = url.filter(|u| !u.is_empty()) else {
                    return Err(invalid(
                        &format!("{AT}.type"),
                        "`redis` needs cache_params.host (or url), router_settings.redis_url or \
                         REDIS_HOST"
                            .into(),
                    ));
                };
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err(invalid(
                        &format!("{AT}.url"),
                        "must start with redis:// or rediss://".into(),
                    ));
                }
                let timeout = match params.timeout_ms {
                    Some(0) => {
                        return Err(invalid(
                            &format!("{AT}.timeout_ms"),
                            "must be at least 1".into(),
                        ))
                    }
                    Some(ms) => Duration::from_millis(ms),
                    None => DEFAULT_REDIS_TIMEOUT,
                };
                Backend::Redis {
                    url: Secret::new(url),
                    timeout,
                }
            }
            "redis-semantic" | "qdrant-semantic" | "semantic" => {
                let threshold = params.similarity_threshold.ok_or_else(|| {
                    invalid(
                        &format!("{AT}.similarity_threshold"),
                        format!("`{kind}` needs a similarity_threshold (0 to 1)"),
                    )
                })?;
                if !(threshold.is_finite() && threshold > 0.0 && threshold <= 1.0) {
                    return Err(invalid(
                        &format!("{AT}.similarity_threshold"),
                        format!("must be a number above 0 and at most 1, got {threshold}"),
                    ));
                }
                let embedding_model = params
                    .redis_semantic_cache_embedding_model
                    .clone()
                    .or_else(|| params.qdrant_semantic_cache_embedding_model.clone())
                    .filter(|m| !m.trim().is_empty())
                    .ok_or_else(|| {
                        invalid(
                            &format!("{AT}.redis_semantic_cache_embedding_model"),
                            format!("`{kind}` needs the model group that embeds prompts"),
                        )
                    })?;
                if params.host.is_some() || params.url.is_some() || params.redis_url.is_some() {
                    self.warn(format!(
                        "{AT}: the semantic cache is an index in this process; its host/url \
                         settings are ignored"
                    ));
                }
                let max_entries = match params.max_entries {
                    Some(0) => {
                        return Err(invalid(
                            &format!("{AT}.max_entries"),
                            "must be at least 1".into(),
                        ))
                    }
                    Some(n) => n,
                    None => crate::cache::settings::DEFAULT_SEMANTIC_ENTRIES,
                };
                Backend::Semantic {
                    max_bytes: memory_bytes(params.max_memory_mb)?,
                    embedding_model,
                    threshold,
                    max_entries,
                }
            }
            other => {
                return Err(invalid(
                    &format!("{AT}.type"),
                    format!(
                        "`{other}` is not supported; use local (in memory), redis, or \
                         redis-semantic / qdrant-semantic (an in-process index)"
                    ),
                ))
            }
        };
        Ok(Some(settings))
    }
}

fn memory_bytes(mb: Option<f64>) -> Result<u64, ConfigError> {
    match mb {
        None => Ok(crate::cache::settings::DEFAULT_MAX_BYTES),
        Some(mb) if mb.is_finite() && mb > 0.0 => Ok((mb * 1024.0 * 1024.0) as u64),
        Some(mb) => Err(invalid(
            &format!("{AT}.max_memory_mb"),
            format!("must be a positive number of MiB, got {mb}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::cache::settings::{Backend, CallTypes, DEFAULT_TTL};
    use crate::config::parse;
    use std::time::Duration;

    const MODELS: &str = "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, mock_response: hi}\n";

    fn load(settings: &str, env: &[(&str, &str)]) -> Result<crate::config::Loaded, String> {
        let yaml = format!("{MODELS}litellm_settings:\n{settings}");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&yaml, &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn off_unless_cache_is_true_and_memory_by_default() {
        let loaded = load("  cache_params: {ttl: 5}\n", &[]).unwrap();
        assert!(loaded.config.cache.is_none());
        assert!(loaded.warnings.iter().any(|w| w.contains("cache_params")));
        let loaded = load("  cache: true\n", &[]).unwrap();
        let cache = loaded.config.cache.unwrap();
        assert_eq!(cache.ttl, DEFAULT_TTL);
        assert!(matches!(cache.backend, Backend::Memory { .. }));
        assert_eq!(cache.calls, CallTypes::ALL);
    }

    #[test]
    fn reads_litellm_cache_params() {
        let loaded = load(
            "  cache: true\n  cache_params:\n    type: redis\n    host: os.environ/RH\n    port: '6380'\n    password: os.environ/RP\n    ttl: 120\n    namespace: prod.gw\n    mode: default_off\n    supported_call_types: [acompletion, aembedding, atranscription]\n    unknown_key: 0.8\n",
            &[("RH", "redis.internal"), ("RP", "s3cret")],
        )
        .unwrap();
        let cache = loaded.config.cache.unwrap();
        assert_eq!(cache.ttl, Duration::from_secs(120));
        assert_eq!(cache.namespace.as_deref(), Some("prod.gw"));
        assert!(cache.default_off);
        assert_eq!(
            cache.calls,
            CallTypes {
                chat: true,
                embeddings: true,
                ..CallTypes::NONE
            }
        );
        let Backend::Redis { url, .. } = &cache.backend else {
            panic!("redis")
        };
        assert!(
            url.expose().contains("redis.internal:6380"),
            "{}",
            url.expose()
        );
        assert!(loaded.warnings.iter().any(|w| w.contains("atranscription")));
        assert!(loaded.warnings.iter().any(|w| w.contains("unknown_key")));
        assert!(loaded.warnings.iter().all(|w| !w.contains("s3cret")));
    }

    #[test]
    fn anthropic_messages_is_its_own_call_type() {
        for name in ["anthropic_messages", "aanthropic_messages"] {
            let loaded = load(
                &format!("  cache: true\n  cache_params: {{supported_call_types: [{name}]}}\n"),
                &[],
            )
            .unwrap();
            let calls = loaded.config.cache.unwrap().calls;
            assert_eq!(
                calls,
                CallTypes {
                    messages: true,
                    ..CallTypes::NONE
                }
            );
            assert!(
                loaded
                    .warnings
                    .iter()
                    .all(|w| !w.contains("supported_call_types")),
                "{:?}",
                loaded.warnings
            );
        }
    }

    #[test]
    fn hostile_cache_params_are_errors_naming_the_key() {
        for (params, key) in [
            ("{ttl: -1}", "cache_params.ttl"),
            ("{ttl: .nan}", "cache_params.ttl"),
            ("{mode: sometimes}", "cache_params.mode"),
            ("{type: s3}", "cache_params.type"),
            ("{type: redis}", "cache_params.type"),
            ("{type: redis, host: h, port: 99999}", "cache_params.port"),
            ("{type: redis, url: 'http://x'}", "cache_params.url"),
            ("{namespace: 'a b'}", "cache_params.namespace"),
            ("{max_memory_mb: 0}", "cache_params.max_memory_mb"),
            (
                "{type: redis, host: h, timeout_ms: 0}",
                "cache_params.timeout_ms",
            ),
        ] {
            let err = load(&format!("  cache: true\n  cache_params: {params}\n"), &[]).unwrap_err();
            assert!(err.contains(key), "{params}: {err}");
        }
        let err = load("  cache: true\n  cache_params: [1]\n", &[]).unwrap_err();
        assert!(err.contains("cache_params"), "{err}");
    }
}
