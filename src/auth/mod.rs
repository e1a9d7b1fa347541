//! Who is calling. For now there is one credential, the master key; virtual keys arrive with the
//! key-management issue and will resolve here from an in-memory cache, never from the database.

use axum::http::HeaderMap;

use crate::config::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// Presented the master key.
    Master,
    /// No master key is configured, so the gateway is open (LiteLLM's behaviour without one).
    Open,
}

impl Principal {
    /// Who called, as logs and metrics may name it: never the key itself.
    pub fn label(&self) -> &'static str {
        match self {
            Principal::Master => "master_key",
            Principal::Open => "open",
        }
    }

    /// May change the gateway itself (reload its config ...).
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Master | Principal::Open)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing API key: send it as `Authorization: Bearer <key>` (or an `x-api-key` / `api-key` header)")]
    Missing,
    #[error("invalid API key")]
    Invalid,
}

/// Checks the key from `Authorization: Bearer`, `x-api-key` or `api-key` (the headers the OpenAI,
/// Anthropic and Azure SDKs send).
pub fn authenticate(
    headers: &HeaderMap,
    master_key: Option<&Secret>,
) -> Result<Principal, AuthError> {
    let Some(master_key) = master_key else {
        return Ok(Principal::Open);
    };
    let presented = presented_key(headers).ok_or(AuthError::Missing)?;
    if constant_time_eq(presented.as_bytes(), master_key.expose().as_bytes()) {
        Ok(Principal::Master)
    } else {
        Err(AuthError::Invalid)
    }
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?.trim();
        let key = match value.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => key.trim(),
            None if value.eq_ignore_ascii_case("bearer") => "",
            _ => value,
        };
        return (!key.is_empty()).then_some(key);
    }
    ["x-api-key", "api-key"]
        .iter()
        .find_map(|name| headers.get(*name)?.to_str().ok())
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

/// Compares without an early exit, so response time does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn accepts_the_three_header_forms() {
        let key = Secret::new("sk-master".into());
        for h in [
            headers(&[("authorization", "Bearer sk-master")]),
            headers(&[("authorization", "bearer  sk-master ")]),
            headers(&[("x-api-key", "sk-master")]),
            headers(&[("api-key", "sk-master")]),
        ] {
            assert_eq!(authenticate(&h, Some(&key)), Ok(Principal::Master));
        }
        assert_eq!(
            authenticate(&headers(&[]), Some(&key)),
            Err(AuthError::Missing)
        );
        assert_eq!(
            authenticate(&headers(&[("authorization", "Bearer ")]), Some(&key)),
            Err(AuthError::Missing)
        );
        assert_eq!(
            authenticate(
                &headers(&[("authorization", "Bearer sk-mastex")]),
                Some(&key)
            ),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            authenticate(&headers(&[("x-api-key", "sk-master-long")]), Some(&key)),
            Err(AuthError::Invalid)
        );
        assert_eq!(authenticate(&headers(&[]), None), Ok(Principal::Open));
    }
}
