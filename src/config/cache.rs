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
            settings.calls = CallTypes {
                chat: false,
                completions: false,
                embeddings: false,
            };
            for name in types {
                match name.as_str() {
                    "completion" | "acompletion" => settings.calls.chat = true,
                    "text_completion" | "atext_completion" => settings.calls.completions = true,
                    "embedding" | "aembedding" => settings.calls.embeddings = true,
                    other => self.warn(format!(
                        "{AT}.supported_call_types: `{other}` is not cached by Switchyard \
                         (completion, text_completion and embedding are)"
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
            "local" | "memory" | "in-memory" => {
                let mut max_bytes = crate::cache::settings::DEFAULT_MAX_BYTES;
                if let Some(mb) = params.max_memory_mb {
                    if !(mb.is_finite() && mb > 0.0) {
                        return Err(invalid(
                            &format!("{AT}.max_memory_mb"),
                            format!("must be a positive number of MiB, got {mb}"),
                        ));
                    }
                    max_bytes = (mb * 1024.0 * 1024.0) as u64;
                }
                Backend::Memory { max_bytes }
            }
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
            other => {
                return Err(invalid(
                    &format!("{AT}.type"),
                    format!("`{other}` is not supported; use local (in memory) or redis"),
                ))
            }
        };
        Ok(Some(settings))
    }
}
