//! A [`Store`] in memory: for unit tests, and for a gateway built in code without a database.
//! It keeps the same contract as the SQL stores (conflicts, paging newest first, tombstones).

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    keys: HashMap<String, KeyRecord>,
    teams: HashMap<String, TeamRecord>,
    users: HashMap<String, UserRecord>,
    end_users: HashMap<String, EndUserRecord>,
    /// (kind, id, deleted_at)
    tombstones: Vec<(&'static str, String, Millis)>,
    spend_rows: Vec<SpendRow>,
    spend_ids: std::collections::HashSet<String>,
    spend_totals: HashMap<(Owner, String), i64>,
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

fn now() -> Millis {
    crate::auth::cache::now_ms()
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        ready(Ok(()))
    }

    fn insert_key<'a>(&'a self, key: &'a KeyRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut inner = self.lock();
        let alias_taken = key.key_alias.is_some()
            && inner
                .keys
                .values()
                .any(|k| k.key_alias == key.key_alias && k.token != key.token);
        if inner.keys.contains_key(&key.token) || alias_taken {
            return ready(Err(StoreError::Conflict(
                "a key with this value or alias".into(),
            )));
        }
        inner.keys.insert(key.token.clone(), key.clone());
        ready(Ok(()))
    }

    fn update_key<'a>(&'a self, key: &'a KeyRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut inner = self.lock();
        if !inner.keys.contains_key(&key.token) {
            return ready(Err(StoreError::NotFound("key".into())));
        }
        if key.key_alias.is_some()
            && inner
                .keys
                .values()
                .any(|k| k.key_alias == key.key_alias && k.token != key.token)
        {
            return ready(Err(StoreError::Conflict("a key with this alias".into())));
        }
        inner.keys.insert(key.token.clone(), key.clone());
        ready(Ok(()))
    }

    fn delete_key<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut inner = self.lock();
        let deleted = inner.keys.remove(token).is_some();
        if deleted {
            inner.tombstones.push(("key", token.to_owned(), now()));
        }
        ready(Ok(deleted))
    }

    fn key<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<KeyRecord>, StoreError>> {
        ready(Ok(self.lock().keys.get(token).cloned()))
    }

    fn key_by_alias<'a>(
        &'a self,
        alias: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyRecord>, StoreError>> {
        let inner = self.lock();
        ready(Ok(inner
            .keys
            .values()
            .find(|k| k.key_alias.as_deref() == Some(alias))
            .cloned()))
    }

    fn list_keys<'a>(
        &'a self,
        filter: &'a KeyFilter,
        page: Page,
    ) -> BoxFuture<'a, Result<(Vec<KeyRecord>, u64), StoreError>> {
        let inner = self.lock();
        let mut keys: Vec<KeyRecord> = inner
            .keys
            .values()
            .filter(|k| filter.team_id.is_none() || k.team_id == filter.team_id)
            .filter(|k| filter.user_id.is_none() || k.user_id == filter.user_id)
            .filter(|k| filter.key_alias.is_none() || k.key_alias == filter.key_alias)
            .cloned()
            .collect();
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.token.cmp(&b.token)));
        let total = keys.len() as u64;
        let start = (page.number.max(1) as usize - 1) * page.size as usize;
        let keys = keys
            .into_iter()
            .skip(start)
            .take(page.size as usize)
            .collect();
        ready(Ok((keys, total)))
    }

    fn put_team<'a>(&'a self, team: &'a TeamRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        self.lock().teams.insert(team.team_id.clone(), team.clone());
        ready(Ok(()))
    }

    fn delete_team<'a>(&'a self, team_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut inner = self.lock();
        let deleted = inner.teams.remove(team_id).is_some();
        if deleted {
            inner.tombstones.push(("team", team_id.to_owned(), now()));
        }
        ready(Ok(deleted))
    }

    fn team<'a>(
        &'a self,
        team_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<TeamRecord>, StoreError>> {
        ready(Ok(self.lock().teams.get(team_id).cloned()))
    }

    fn list_teams(&self) -> BoxFuture<'_, Result<Vec<TeamRecord>, StoreError>> {
        let mut teams: Vec<TeamRecord> = self.lock().teams.values().cloned().collect();
        teams.sort_by(|a, b| {
            (a.created_at.cmp(&b.created_at)).then_with(|| a.team_id.cmp(&b.team_id))
        });
        ready(Ok(teams))
    }

    fn put_user<'a>(&'a self, user: &'a UserRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        self.lock().users.insert(user.user_id.clone(), user.clone());
        ready(Ok(()))
    }

    fn delete_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut inner = self.lock();
        let deleted = inner.users.remove(user_id).is_some();
        if deleted {
            inner.tombstones.push(("user", user_id.to_owned(), now()));
        }
        ready(Ok(deleted))
    }

    fn user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        ready(Ok(self.lock().users.get(user_id).cloned()))
    }

    fn list_users(&self, page: Page) -> BoxFuture<'_, Result<(Vec<UserRecord>, u64), StoreError>> {
        let mut users: Vec<UserRecord> = self.lock().users.values().cloned().collect();
        users.sort_by(|a, b| {
            (a.created_at.cmp(&b.created_at)).then_with(|| a.user_id.cmp(&b.user_id))
        });
        let total = users.len() as u64;
        let start = (page.number.max(1) as usize - 1) * page.size as usize;
        let users = users
            .into_iter()
            .skip(start)
            .take(page.size as usize)
            .collect();
        ready(Ok((users, total)))
    }

    fn put_end_user<'a>(
        &'a self,
        end_user: &'a EndUserRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.lock()
            .end_users
            .insert(end_user.user_id.clone(), end_user.clone());
        ready(Ok(()))
    }

    fn delete_end_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut inner = self.lock();
        let deleted = inner.end_users.remove(user_id).is_some();
        if deleted {
            inner
                .tombstones
                .push(("end_user", user_id.to_owned(), now()));
        }
        ready(Ok(deleted))
    }

    fn end_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<EndUserRecord>, StoreError>> {
        ready(Ok(self.lock().end_users.get(user_id).cloned()))
    }

    fn list_end_users(&self) -> BoxFuture<'_, Result<Vec<EndUserRecord>, StoreError>> {
        let mut end_users: Vec<EndUserRecord> = self.lock().end_users.values().cloned().collect();
        end_users.sort_by(|a, b| {
            (a.created_at.cmp(&b.created_at)).then_with(|| a.user_id.cmp(&b.user_id))
        });
        ready(Ok(end_users))
    }

    fn load_all(&self) -> BoxFuture<'_, Result<Identities, StoreError>> {
        let inner = self.lock();
        ready(Ok(Identities {
            keys: inner.keys.values().cloned().collect(),
            teams: inner.teams.values().cloned().collect(),
            users: inner.users.values().cloned().collect(),
            end_users: inner.end_users.values().cloned().collect(),
        }))
    }

    fn changes_since(&self, since: Millis) -> BoxFuture<'_, Result<Changes, StoreError>> {
        let inner = self.lock();
        let mut changes = Changes::default();
        changes.written.keys = inner
            .keys
            .values()
            .filter(|k| k.updated_at >= since)
            .cloned()
            .collect();
        changes.written.teams = inner
            .teams
            .values()
            .filter(|t| t.updated_at >= since)
            .cloned()
            .collect();
        changes.written.users = inner
            .users
            .values()
            .filter(|u| u.updated_at >= since)
            .cloned()
            .collect();
        changes.written.end_users = inner
            .end_users
            .values()
            .filter(|u| u.updated_at >= since)
            .cloned()
            .collect();
        let mut latest = since;
        for (kind, id, at) in &inner.tombstones {
            if *at < since {
                continue;
            }
            latest = latest.max(*at);
            let list = match *kind {
                "key" => &mut changes.deleted_keys,
                "team" => &mut changes.deleted_teams,
                "user" => &mut changes.deleted_users,
                _ => &mut changes.deleted_end_users,
            };
            list.push(id.clone());
        }
        let written = &changes.written;
        latest = written
            .keys
            .iter()
            .map(|k| k.updated_at)
            .chain(written.teams.iter().map(|t| t.updated_at))
            .chain(written.users.iter().map(|u| u.updated_at))
            .chain(written.end_users.iter().map(|u| u.updated_at))
            .fold(latest, Millis::max);
        changes.latest = latest;
        ready(Ok(changes))
    }

    fn write_spend<'a>(&'a self, rows: &'a [SpendRow]) -> BoxFuture<'a, Result<u64, StoreError>> {
        let mut inner = self.lock();
        let new: Vec<&SpendRow> = rows
            .iter()
            .filter(|row| inner.spend_ids.insert(row.id.clone()))
            .collect();
        for ((owner, id), nanos) in crate::spend::totals(new.iter().copied()) {
            let total = inner
                .spend_totals
                .entry((owner, id.to_owned()))
                .or_default();
            *total = total.saturating_add(nanos);
        }
        let count = new.len() as u64;
        let new: Vec<SpendRow> = new.into_iter().cloned().collect();
        inner.spend_rows.extend(new);
        ready(Ok(count))
    }

    fn spend_total<'a>(
        &'a self,
        owner: Owner,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Nanos, StoreError>> {
        let total = self
            .lock()
            .spend_totals
            .get(&(owner, id.to_owned()))
            .copied()
            .unwrap_or(0);
        ready(Ok(Nanos(total)))
    }

    fn spend_logs<'a>(
        &'a self,
        filter: &'a SpendFilter,
    ) -> BoxFuture<'a, Result<Vec<SpendRow>, StoreError>> {
        let inner = self.lock();
        let mut rows: Vec<SpendRow> = inner
            .spend_rows
            .iter()
            .filter(|row| filter.matches(row))
            .cloned()
            .collect();
        rows.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
        rows.truncate(filter.limit.unwrap_or(1000) as usize);
        ready(Ok(rows))
    }

    fn spend_report<'a>(
        &'a self,
        filter: &'a SpendFilter,
        by: &'a GroupBy,
    ) -> BoxFuture<'a, Result<Vec<ReportRow>, StoreError>> {
        let inner = self.lock();
        let rows = inner.spend_rows.iter().filter(|row| filter.matches(row));
        ready(Ok(crate::spend::group_rows(rows, by)))
    }

    fn spend_daily<'a>(
        &'a self,
        filter: &'a SpendFilter,
    ) -> BoxFuture<'a, Result<Vec<DailyRow>, StoreError>> {
        let inner = self.lock();
        let rows = inner.spend_rows.iter().filter(|row| filter.matches(row));
        ready(Ok(crate::spend::daily_rows(rows)))
    }

    fn delete_spend_before(&self, before: Millis) -> BoxFuture<'_, Result<u64, StoreError>> {
        let mut inner = self.lock();
        let len = inner.spend_rows.len();
        inner.spend_rows.retain(|row| row.started_at >= before);
        ready(Ok((len - inner.spend_rows.len()) as u64))
    }
}
