//! Persistence of identities: virtual keys, teams, internal users and end users ("customers").
//! One [`Store`] trait, two implementations: SQLite (the embedded default) and PostgreSQL
//! (scaled out), both through sqlx with migrations (`migrations/sqlite`, `migrations/postgres`).
//!
//! The request path never awaits a store: identities are read from an in-memory cache that is
//! loaded at start and refreshed from [`Store::changes_since`] (and invalidated through Redis
//! when scaled out). Only management calls and the refresher await the store.
//!
//! Records use LiteLLM's field names, so the management API can return them as LiteLLM does.
//! Fields LiteLLM has and Switchyard does not interpret are kept in `extra` and returned as
//! they were sent. Times are Unix milliseconds.
//!
//! # Schema
//!
//! One table per kind, every name prefixed `switchyard_` so a PostgreSQL shared with LiteLLM
//! (`LiteLLM_...` tables) or another application cannot collide; applied migrations are
//! recorded in `switchyard_migrations`.
//!
//! | table | key | other real columns |
//! |---|---|---|
//! | `switchyard_keys` | `token` (the SHA-256 of the key) | `key_alias` UNIQUE (NULLs allowed), `key_name`, `team_id`, `user_id`, limits, `expires`, `blocked`, `created_by`, `created_at`, `updated_at` |
//! | `switchyard_teams` | `team_id` | `team_alias`, limits, `blocked`, `created_at`, `updated_at` |
//! | `switchyard_users` | `user_id` | `user_email`, `user_alias`, `user_role`, limits, `created_at`, `updated_at` |
//! | `switchyard_end_users` | `user_id` | `alias`, `blocked`, limits, `created_at`, `updated_at` |
//! | `switchyard_deletions` | (`kind`, `id`) | `deleted_at` |
//! | `switchyard_spend_logs` | `id` (made per row) | one column per [`SpendRow`] field; indexed by `started_at`, key, team, user, request id |
//! | `switchyard_spend_totals` | (`kind`, `id`) | `spend_nanos`: kept apart so spend never touches an identity's `updated_at` |
//!
//! - **Real columns** hold what is looked up, filtered, ordered or unique; `updated_at` (and
//!   `deleted_at`) are indexed, so polling `changes_since` every second reads an index range,
//!   not the tables. Limits are BIGINT (a `u64` past `i64::MAX` is stored as `i64::MAX`).
//! - **JSON columns** (TEXT on SQLite, JSONB on PostgreSQL) hold lists and maps nobody queries by
//!   SQL: `models`, `tags`, `allowed_routes`, `model_rpm_limit`, `model_tpm_limit`, `members`,
//!   `teams`, `metadata` and `extra`. Adding a LiteLLM field needs no migration; JSONB keeps a
//!   later `metadata @> ...` query possible. Values come back equal (object key order is not
//!   kept, as in any JSON map).
//! - **Deletions are tombstones**, not soft deletes: deleting removes the row and records
//!   (`kind`, `id`, `deleted_at`) in `switchyard_deletions`; writing the id again removes its
//!   tombstone, so an id is a live row or a tombstone, never both. Compared with a `deleted_at`
//!   column on every table, no query has to remember `WHERE deleted_at IS NULL`, a deleted key's
//!   alias is free again at once, and nothing of a deleted key but its hash stays behind.
//!   Tombstones older than 30 days are pruned on the next deletion: a cache that has not polled
//!   for that long reloads everything with [`Store::load_all`].
//! - **The store stamps `updated_at`** on every write, whatever the record says: with the
//!   process clock (never going backwards) on SQLite, with the server's clock
//!   (`switchyard_now_ms()`) on PostgreSQL, the one clock all instances share. A write commits a
//!   few milliseconds after its stamp, so pollers start their next window a little before the
//!   [`Changes::latest`] they saw (the window is inclusive; applying a change twice is harmless).
//!   `created_at` is stored as given.
//!
//! Strings must not contain NUL (U+0000): PostgreSQL refuses it in text and JSONB (the write
//! fails as [`StoreError::Unavailable`]), so the management API rejects it before the store.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::money::Nanos;
use crate::spend::{DailyRow, GroupBy, Owner, ReportRow, SpendFilter, SpendRow};

mod spend_sql;
mod sql;

pub mod memory;
pub mod postgres;
pub mod sqlite;
mod sqlite_spend;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Unix time in milliseconds.
pub type Millis = i64;

/// A virtual key. The key itself is never stored: `token` is its SHA-256 (hex), LiteLLM's
/// `hash_token`, and `key_name` shows its first characters and last four (`sk-...abcd`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct KeyRecord {
    pub token: String,
    pub key_name: String,
    pub key_alias: Option<String>,
    /// Model groups or access groups this key may call; empty means every model the key's team
    /// (or, without a team, the gateway) allows.
    pub models: Vec<String>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u64>,
    pub model_rpm_limit: BTreeMap<String, u64>,
    pub model_tpm_limit: BTreeMap<String, u64>,
    pub metadata: Map<String, Value>,
    pub tags: Vec<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    /// Route patterns this key may call (LiteLLM's `allowed_routes`); empty means the defaults.
    pub allowed_routes: Vec<String>,
    pub expires: Option<Millis>,
    pub blocked: bool,
    pub created_by: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// LiteLLM fields kept as sent (`aliases`, `config`, `permissions`, budgets until the money
    /// issue reads them ...).
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TeamMember {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    /// `admin` or `user`.
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TeamRecord {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub models: Vec<String>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u64>,
    pub members: Vec<TeamMember>,
    pub metadata: Map<String, Value>,
    pub tags: Vec<String>,
    pub blocked: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct UserRecord {
    pub user_id: String,
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    /// `proxy_admin`, `proxy_admin_viewer`, `internal_user` or `internal_user_viewer`.
    pub user_role: String,
    pub models: Vec<String>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u64>,
    pub teams: Vec<String>,
    pub metadata: Map<String, Value>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub extra: Map<String, Value>,
}

/// An end user: the `user` field of a request (LiteLLM's "customer").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EndUserRecord {
    pub user_id: String,
    pub alias: Option<String>,
    pub blocked: bool,
    pub models: Vec<String>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u64>,
    pub metadata: Map<String, Value>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub extra: Map<String, Value>,
}

/// Everything the store holds, for the cache's first load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identities {
    pub keys: Vec<KeyRecord>,
    pub teams: Vec<TeamRecord>,
    pub users: Vec<UserRecord>,
    pub end_users: Vec<EndUserRecord>,
}

/// What changed after a point in time: records written (inserted or updated) and ids deleted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub written: Identities,
    pub deleted_keys: Vec<String>,
    pub deleted_teams: Vec<String>,
    pub deleted_users: Vec<String>,
    pub deleted_end_users: Vec<String>,
    /// The latest change time seen (the next `changes_since` starts a little before it).
    pub latest: Millis,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or failed; management calls answer 503.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A unique value is taken (a key alias, a team id ...).
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("database migration failed: {0}")]
    Migration(String),
}

/// Filters of the list calls; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub key_alias: Option<String>,
}

/// A page of a list: 1-based page number and its size.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub number: u32,
    pub size: u32,
}

/// Every write stamps `updated_at` with the store's clock (see the module docs); every read of
/// a missing record is `Ok(None)` or `Ok(false)`, not an error.
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgresql`, for `/health/readiness`.
    fn kind(&self) -> &'static str;
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Inserts a new key: [`StoreError::Conflict`] if its token or alias is taken.
    fn insert_key<'a>(&'a self, key: &'a KeyRecord) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Replaces an existing key (by token): [`StoreError::NotFound`] if there is none.
    fn update_key<'a>(&'a self, key: &'a KeyRecord) -> BoxFuture<'a, Result<(), StoreError>>;
    /// `true` if a key was deleted.
    fn delete_key<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn key<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<KeyRecord>, StoreError>>;
    fn key_by_alias<'a>(
        &'a self,
        alias: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyRecord>, StoreError>>;
    /// A page of keys (newest first; equal times by token) and the total matching the filter.
    fn list_keys<'a>(
        &'a self,
        filter: &'a KeyFilter,
        page: Page,
    ) -> BoxFuture<'a, Result<(Vec<KeyRecord>, u64), StoreError>>;

    /// Inserts or replaces (by `team_id`).
    fn put_team<'a>(&'a self, team: &'a TeamRecord) -> BoxFuture<'a, Result<(), StoreError>>;
    fn delete_team<'a>(&'a self, team_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn team<'a>(
        &'a self,
        team_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<TeamRecord>, StoreError>>;
    /// Every team, oldest first (equal times by id).
    fn list_teams(&self) -> BoxFuture<'_, Result<Vec<TeamRecord>, StoreError>>;

    fn put_user<'a>(&'a self, user: &'a UserRecord) -> BoxFuture<'a, Result<(), StoreError>>;
    fn delete_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>>;
    /// A page of users (oldest first, equal times by id) and the total.
    fn list_users(&self, page: Page) -> BoxFuture<'_, Result<(Vec<UserRecord>, u64), StoreError>>;

    fn put_end_user<'a>(
        &'a self,
        end_user: &'a EndUserRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn delete_end_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn end_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<EndUserRecord>, StoreError>>;
    /// Every end user, oldest first (equal times by id).
    fn list_end_users(&self) -> BoxFuture<'_, Result<Vec<EndUserRecord>, StoreError>>;

    /// Everything, for the cache's first load.
    fn load_all(&self) -> BoxFuture<'_, Result<Identities, StoreError>>;
    /// Records written and ids deleted at or after `since` (inclusive: callers overlap their
    /// windows, applying a change twice is harmless).
    fn changes_since(&self, since: Millis) -> BoxFuture<'_, Result<Changes, StoreError>>;

    /// Writes spend-log rows in one transaction: rows whose id is already stored are skipped
    /// (a retried batch adds nothing twice), and the cost of each new row is added to the
    /// spend totals of its key, team, user and end user. Returns how many rows were new.
    fn write_spend<'a>(&'a self, rows: &'a [SpendRow]) -> BoxFuture<'a, Result<u64, StoreError>>;
    /// The spend of one key (by token), team, user or end user, in nano-dollars (0 if none).
    fn spend_total<'a>(
        &'a self,
        owner: Owner,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Nanos, StoreError>>;
    /// Rows matching the filter, newest first, at most `filter.limit` (default 1000).
    fn spend_logs<'a>(
        &'a self,
        filter: &'a SpendFilter,
    ) -> BoxFuture<'a, Result<Vec<SpendRow>, StoreError>>;
    /// Sums of the matching rows per group, largest spend first.
    fn spend_report<'a>(
        &'a self,
        filter: &'a SpendFilter,
        by: &'a GroupBy,
    ) -> BoxFuture<'a, Result<Vec<ReportRow>, StoreError>>;
    /// Sums of the matching rows per UTC day, model group, requested model, provider and key,
    /// oldest day first.
    fn spend_daily<'a>(
        &'a self,
        filter: &'a SpendFilter,
    ) -> BoxFuture<'a, Result<Vec<DailyRow>, StoreError>>;
    /// Deletes rows that started before `before` (retention); returns how many.
    fn delete_spend_before(&self, before: Millis) -> BoxFuture<'_, Result<u64, StoreError>>;
}

/// Opens the configured database (creating and migrating it as needed): the SQLite file, or a
/// pool to the PostgreSQL URL.
pub async fn open(
    database: &crate::config::Database,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    Ok(match database {
        crate::config::Database::Sqlite(path) => {
            std::sync::Arc::new(SqliteStore::open(path).await?)
        }
        crate::config::Database::Postgres(url) => {
            std::sync::Arc::new(PostgresStore::connect(url.expose()).await?)
        }
    })
}
