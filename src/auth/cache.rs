//! The in-memory view of every identity (keys, teams, users, end users): what authentication
//! and the policy stage read on the request path, so neither ever waits on the database.
//!
//! It is loaded from the store at start, updated at once by management calls made on this
//! instance, and refreshed from [`Store::changes_since`](crate::store::Store::changes_since)
//! every [`REFRESH_EVERY`] by a background task, so a key created, blocked or deleted on another
//! instance is seen here within that time. If the database is down, the cache keeps serving
//! what it has.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::store::{Changes, EndUserRecord, Identities, KeyRecord, Millis, TeamRecord, UserRecord};

/// How often other instances' changes are picked up.
pub const REFRESH_EVERY: Duration = Duration::from_millis(250);
/// Each refresh asks for changes from a little before the last one seen, so a write whose
/// timestamp was taken just before another instance's clock (or transaction commit) is not
/// missed. Applying a change twice is harmless.
const OVERLAP_MS: Millis = 5_000;
/// Deleted key hashes remembered, so a deleted key is told apart from an unknown one.
const MAX_REMEMBERED_DELETIONS: usize = 100_000;

/// Hashes a key's token by its first eight bytes. Tokens are SHA-256 digests in hex, so those
/// bytes are already uniformly random and no client can choose them (a client chooses the key,
/// not its digest): hashing all 64 characters with SipHash would cost a few hundred
/// instructions per request for nothing.
#[derive(Default)]
pub struct TokenHasher(u64);

impl std::hash::Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.0 == 0 {
            let mut head = [0u8; 8];
            let n = bytes.len().min(8);
            head[..n].copy_from_slice(&bytes[..n]);
            self.0 = u64::from_le_bytes(head) | 1;
        }
    }
}

type ByToken<V> = HashMap<String, V, std::hash::BuildHasherDefault<TokenHasher>>;

#[derive(Default)]
struct Maps {
    keys: ByToken<Arc<KeyRecord>>,
    /// key alias → token, for `/key/info?key_alias=` style lookups.
    aliases: HashMap<String, String>,
    deleted_keys: HashSet<String, std::hash::BuildHasherDefault<TokenHasher>>,
    teams: HashMap<String, Arc<TeamRecord>>,
    users: HashMap<String, Arc<UserRecord>>,
    end_users: HashMap<String, Arc<EndUserRecord>>,
    /// Up to where the store's changes were applied.
    latest: Millis,
}

/// A key as the request path sees it: the key and, resolved now, its team and user.
#[derive(Debug, Clone)]
pub struct ResolvedKey {
    pub key: Arc<KeyRecord>,
    pub team: Option<Arc<TeamRecord>>,
    pub user: Option<Arc<UserRecord>>,
}

/// What a token lookup found.
pub enum Lookup {
    Found(ResolvedKey),
    Deleted,
    Unknown,
}

#[derive(Default)]
pub struct IdentityCache {
    maps: RwLock<Maps>,
}

impl IdentityCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The key with this hash, its team and user.
    pub fn key(&self, token: &str) -> Lookup {
        let maps = self.read();
        match maps.keys.get(token) {
            Some(key) => Lookup::Found(ResolvedKey {
                team: key
                    .team_id
                    .as_ref()
                    .and_then(|id| maps.teams.get(id).cloned()),
                user: key
                    .user_id
                    .as_ref()
                    .and_then(|id| maps.users.get(id).cloned()),
                key: key.clone(),
            }),
            None if maps.deleted_keys.contains(token) => Lookup::Deleted,
            None => Lookup::Unknown,
        }
    }

    pub fn key_by_alias(&self, alias: &str) -> Option<Arc<KeyRecord>> {
        let maps = self.read();
        let token = maps.aliases.get(alias)?;
        maps.keys.get(token).cloned()
    }

    pub fn team(&self, team_id: &str) -> Option<Arc<TeamRecord>> {
        self.read().teams.get(team_id).cloned()
    }

    pub fn user(&self, user_id: &str) -> Option<Arc<UserRecord>> {
        self.read().users.get(user_id).cloned()
    }

    pub fn end_user(&self, user_id: &str) -> Option<Arc<EndUserRecord>> {
        self.read().end_users.get(user_id).cloned()
    }

    /// Every key, team, user and end user with a `max_budget`: (scope, id, its LiteLLM fields,
    /// created at). For the budget ledger's seeding, off the request path.
    pub fn budgeted(
        &self,
    ) -> Vec<(
        crate::policy::limits::Scope,
        String,
        serde_json::Map<String, serde_json::Value>,
        Millis,
    )> {
        use crate::policy::limits::Scope;
        let maps = self.read();
        let has =
            |extra: &serde_json::Map<String, serde_json::Value>| extra.contains_key("max_budget");
        let mut out = Vec::new();
        out.extend(
            maps.keys
                .values()
                .filter(|k| has(&k.extra))
                .map(|k| (Scope::Key, k.token.clone(), k.extra.clone(), k.created_at)),
        );
        out.extend(maps.teams.values().filter(|t| has(&t.extra)).map(|t| {
            (
                Scope::Team,
                t.team_id.clone(),
                t.extra.clone(),
                t.created_at,
            )
        }));
        out.extend(maps.users.values().filter(|u| has(&u.extra)).map(|u| {
            (
                Scope::User,
                u.user_id.clone(),
                u.extra.clone(),
                u.created_at,
            )
        }));
        out.extend(maps.end_users.values().filter(|e| has(&e.extra)).map(|e| {
            (
                Scope::EndUser,
                e.user_id.clone(),
                e.extra.clone(),
                e.created_at,
            )
        }));
        out
    }

    /// Every key and team with an `rpm_limit` or `tpm_limit`, at most `cap` of them (for the
    /// rate-limit headroom gauges, off the request path).
    pub fn rate_limited(&self, cap: usize) -> (Vec<Arc<KeyRecord>>, Vec<Arc<TeamRecord>>) {
        let maps = self.read();
        let keys: Vec<_> = maps
            .keys
            .values()
            .filter(|k| k.rpm_limit.is_some() || k.tpm_limit.is_some())
            .take(cap)
            .cloned()
            .collect();
        let teams = maps
            .teams
            .values()
            .filter(|t| t.rpm_limit.is_some() || t.tpm_limit.is_some())
            .take(cap.saturating_sub(keys.len()))
            .cloned()
            .collect();
        (keys, teams)
    }

    /// Whether any end user is configured (most gateways have none: skip the lookup).
    pub fn has_end_users(&self) -> bool {
        !self.read().end_users.is_empty()
    }

    /// Replaces everything with the store's full contents.
    pub fn load(&self, all: Identities, latest: Millis) {
        let mut maps = Maps::default();
        Self::write_all(&mut maps, all);
        maps.latest = latest;
        *self.write() = maps;
    }

    /// Applies a change set from the store (or from a management call made here).
    pub fn apply(&self, changes: Changes) {
        let mut maps = self.write();
        for token in &changes.deleted_keys {
            if let Some(key) = maps.keys.remove(token) {
                if let Some(alias) = &key.key_alias {
                    maps.aliases.remove(alias);
                }
            }
            if maps.deleted_keys.len() >= MAX_REMEMBERED_DELETIONS {
                maps.deleted_keys.clear();
            }
            maps.deleted_keys.insert(token.clone());
        }
        for id in &changes.deleted_teams {
            maps.teams.remove(id);
        }
        for id in &changes.deleted_users {
            maps.users.remove(id);
        }
        for id in &changes.deleted_end_users {
            maps.end_users.remove(id);
        }
        Self::write_all(&mut maps, changes.written);
        maps.latest = maps.latest.max(changes.latest);
    }

    fn write_all(maps: &mut Maps, all: Identities) {
        for key in all.keys {
            Self::put_key(maps, key);
        }
        for team in all.teams {
            maps.teams.insert(team.team_id.clone(), Arc::new(team));
        }
        for user in all.users {
            maps.users.insert(user.user_id.clone(), Arc::new(user));
        }
        for end_user in all.end_users {
            maps.end_users
                .insert(end_user.user_id.clone(), Arc::new(end_user));
        }
    }

    fn put_key(maps: &mut Maps, key: KeyRecord) {
        // The last record applied wins. Update times are not compared: they come from different
        // clocks (this instance's for its own writes, the database's for others'), and a skewed
        // clock must not make a remote block or revocation look older than a local write. A
        // refresh that raced a local write and carried the older copy is corrected by the next
        // refresh, whose window overlaps (so within REFRESH_EVERY).
        if let Some(existing) = maps.keys.get(&key.token) {
            if let Some(alias) = &existing.key_alias {
                maps.aliases.remove(alias);
            }
        }
        maps.deleted_keys.remove(&key.token);
        if let Some(alias) = &key.key_alias {
            maps.aliases.insert(alias.clone(), key.token.clone());
        }
        maps.keys.insert(key.token.clone(), Arc::new(key));
    }

    /// Where the next refresh starts.
    pub fn refresh_from(&self) -> Millis {
        (self.read().latest - OVERLAP_MS).max(0)
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Loads the cache from `store`, then applies the store's changes every [`REFRESH_EVERY`],
/// forever. A failing store is logged once per outage and counted as unhealthy; the cache keeps
/// serving what it has.
pub async fn keep_fresh(
    cache: std::sync::Arc<IdentityCache>,
    store: std::sync::Arc<dyn crate::store::Store>,
    healthy: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let mut since = 0;
    loop {
        match store.changes_since(since).await {
            Ok(changes) => {
                if !healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(store = store.kind(), "identity store reachable");
                }
                cache.apply(changes);
                since = cache.refresh_from();
            }
            Err(err) => {
                if healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        store = store.kind(),
                        "identity store unreachable; serving cached keys: {err}"
                    );
                }
            }
        }
        tokio::time::sleep(REFRESH_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(token: &str, alias: Option<&str>, updated_at: Millis) -> KeyRecord {
        KeyRecord {
            token: token.into(),
            key_alias: alias.map(str::to_owned),
            team_id: Some("t1".into()),
            updated_at,
            ..KeyRecord::default()
        }
    }

    #[test]
    fn keys_resolve_with_their_team_and_deletions_are_remembered() {
        let cache = IdentityCache::new();
        cache.load(
            Identities {
                keys: vec![key("h1", Some("app"), 10)],
                teams: vec![TeamRecord {
                    team_id: "t1".into(),
                    ..TeamRecord::default()
                }],
                ..Identities::default()
            },
            10,
        );
        let Lookup::Found(found) = cache.key("h1") else {
            panic!("h1 is cached")
        };
        assert_eq!(found.team.unwrap().team_id, "t1");
        assert!(cache.key_by_alias("app").is_some());
        assert!(matches!(cache.key("nope"), Lookup::Unknown));

        cache.apply(Changes {
            deleted_keys: vec!["h1".into()],
            latest: 20,
            ..Changes::default()
        });
        assert!(matches!(cache.key("h1"), Lookup::Deleted));
        assert!(cache.key_by_alias("app").is_none());
        assert_eq!(cache.refresh_from(), 0);

        // The last record applied wins, whatever clock stamped it: a block written by another
        // instance whose clock is behind is not ignored.
        cache.apply(Changes {
            written: Identities {
                keys: vec![key("h2", None, 50)],
                ..Identities::default()
            },
            latest: 50,
            ..Changes::default()
        });
        cache.apply(Changes {
            written: Identities {
                keys: vec![KeyRecord {
                    blocked: true,
                    ..key("h2", None, 40)
                }],
                ..Identities::default()
            },
            latest: 40,
            ..Changes::default()
        });
        let Lookup::Found(found) = cache.key("h2") else {
            panic!()
        };
        assert!(found.key.blocked);
    }
}
