//! Who is calling: the master key, or a virtual key resolved from the in-memory identity cache
//! (`cache.rs`), never from the database. Key material (generation, hashing) is in `keys.rs`.

pub mod cache;
pub mod keys;
mod memo;

use std::sync::Arc;

use axum::http::HeaderMap;

pub use cache::{IdentityCache, Lookup, ResolvedKey};

use crate::config::Secret;
use crate::store::{KeyRecord, TeamRecord, UserRecord};

#[derive(Debug, Clone)]
pub enum Principal {
    /// Presented the master key.
    Master,
    /// No master key is configured, so the gateway is open (LiteLLM's behaviour without one).
    Open,
    /// Presented a virtual key.
    Key(ResolvedKey),
}

/// What a caller may do on the management routes (LiteLLM's user roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// A plain key: its own key, user and team may be read, nothing else.
    Member,
    /// `proxy_admin_viewer`: reads everything.
    Viewer,
    /// The master key and `proxy_admin` users: everything, config reload included.
    Admin,
}

impl Principal {
    /// Who called, as logs and metrics may name it: the key's alias, else the first 8 digits
    /// of its hash. Never the key itself.
    pub fn label(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Principal::Master => "master_key".into(),
            Principal::Open => "open".into(),
            Principal::Key(resolved) => match &resolved.key.key_alias {
                Some(alias) => alias.as_str().into(),
                None => format!(
                    "key:{}",
                    &resolved.key.token[..8.min(resolved.key.token.len())]
                )
                .into(),
            },
        }
    }

    pub fn role(&self) -> Role {
        match self {
            Principal::Master | Principal::Open => Role::Admin,
            Principal::Key(resolved) => {
                match resolved.user.as_deref().map(|u| u.user_role.as_str()) {
                    Some("proxy_admin") => Role::Admin,
                    Some("proxy_admin_viewer") => Role::Viewer,
                    _ => Role::Member,
                }
            }
        }
    }

    /// May change the gateway itself (reload its config, manage keys ...).
    pub fn is_admin(&self) -> bool {
        self.role() == Role::Admin
    }

    pub fn key(&self) -> Option<&Arc<KeyRecord>> {
        match self {
            Principal::Key(resolved) => Some(&resolved.key),
            _ => None,
        }
    }

    pub fn team(&self) -> Option<&Arc<TeamRecord>> {
        match self {
            Principal::Key(resolved) => resolved.team.as_ref(),
            _ => None,
        }
    }

    pub fn user(&self) -> Option<&Arc<UserRecord>> {
        match self {
            Principal::Key(resolved) => resolved.user.as_ref(),
            _ => None,
        }
    }
}

/// Why a key was refused. Messages show at most the key's last four characters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing API key: send it as `Authorization: Bearer <key>` (or an `x-api-key` / `api-key` header)")]
    Missing,
    #[error("invalid API key (ending in {0}): no such key")]
    Invalid(String),
    #[error("API key ending in {0} was deleted")]
    Deleted(String),
    #[error("API key ending in {0} is blocked")]
    Blocked(String),
    #[error("API key ending in {0} expired")]
    Expired(String),
    #[error("API key ending in {0}: its team is blocked")]
    TeamBlocked(String),
}

/// Checks the key from `Authorization: Bearer`, `x-api-key` or `api-key` (the headers the OpenAI,
/// Anthropic and Azure SDKs send): the master key, else a virtual key from the cache.
pub fn authenticate(
    headers: &HeaderMap,
    master_key: Option<&Secret>,
    identities: &IdentityCache,
    now_ms: i64,
) -> Result<Principal, AuthError> {
    let Some(master_key) = master_key else {
        return Ok(Principal::Open);
    };
    let presented = presented_key(headers).ok_or(AuthError::Missing)?;
    if constant_time_eq(presented.as_bytes(), master_key.expose().as_bytes()) {
        return Ok(Principal::Master);
    }
    // The lookup is by SHA-256 of the presented key: comparing digests in a hash map reveals
    // nothing useful about the key through timing.
    let tail = || keys::last_four(presented);
    let (token, remembered) = match memo::recall(presented) {
        Some(token) => (token, true),
        None => (keys::token(presented), false),
    };
    match identities.key(token.as_str()) {
        Lookup::Found(resolved) => {
            if !remembered {
                memo::remember(presented, &token);
            }
            if resolved.key.blocked {
                return Err(AuthError::Blocked(tail()));
            }
            if resolved.key.expires.is_some_and(|at| at <= now_ms) {
                return Err(AuthError::Expired(tail()));
            }
            if resolved.team.as_ref().is_some_and(|t| t.blocked) {
                return Err(AuthError::TeamBlocked(tail()));
            }
            Ok(Principal::Key(resolved))
        }
        Lookup::Deleted => Err(AuthError::Deleted(tail())),
        Lookup::Unknown => Err(AuthError::Invalid(tail())),
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

    fn auth(headers: &HeaderMap, master: Option<&Secret>) -> Result<Principal, AuthError> {
        authenticate(headers, master, &IdentityCache::new(), 0)
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
            assert!(matches!(auth(&h, Some(&key)), Ok(Principal::Master)));
        }
        assert_eq!(
            auth(&headers(&[]), Some(&key)).err(),
            Some(AuthError::Missing)
        );
        assert_eq!(
            auth(&headers(&[("authorization", "Bearer ")]), Some(&key)).err(),
            Some(AuthError::Missing)
        );
        assert_eq!(
            auth(
                &headers(&[("authorization", "Bearer sk-mastex")]),
                Some(&key)
            )
            .err(),
            Some(AuthError::Invalid("stex".into()))
        );
        assert_eq!(
            auth(&headers(&[("x-api-key", "sk-master-long")]), Some(&key)).err(),
            Some(AuthError::Invalid("long".into()))
        );
        assert!(matches!(auth(&headers(&[]), None), Ok(Principal::Open)));
    }
}
