//! The scaled-out store: PostgreSQL, shared by every instance.
//!
//! JSON columns are JSONB: values are bound as text and cast (`$4::jsonb`), and read back as
//! text (`metadata::text`), so both backends encode and decode records with the same code
//! (`super::sql`). Writes are stamped by the server's clock (`switchyard_now_ms()`, created by
//! the first migration): instances may disagree about the time, the database does not.
//!
//! Tables live in the connection's `search_path` (normally `public`); to keep Switchyard in its
//! own schema of a shared database, add `?options=-c%20search_path%3Dswitchyard` to the URL.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::sql::{
    self, bind_end_user, bind_key, bind_team, bind_user, db_error, key_conflict, unavailable,
    EndUserCols, KeyCols, TeamCols, UserCols,
};
use crate::money::Nanos;
use crate::spend::{DailyRow, GroupBy, Owner, ReportRow, SpendFilter, SpendRow};

use super::{
    BoxFuture, Changes, EndUserRecord, Identities, KeyFilter, KeyRecord, Millis, Page, Store,
    StoreError, TeamRecord, UserRecord,
};

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_identities.sql",
        include_str!("../../migrations/postgres/0001_identities.sql"),
    ),
    (
        "0002_spend.sql",
        include_str!("../../migrations/postgres/0002_spend.sql"),
    ),
    (
        "0003_spend_keys.sql",
        include_str!("../../migrations/postgres/0003_spend_keys.sql"),
    ),
    (
        "0004_spend_call_type.sql",
        include_str!("../../migrations/postgres/0004_spend_call_type.sql"),
    ),
];

/// How long a management call waits for a pooled connection before answering 503, and how long
/// the first connection may take at start.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Management calls and one refresher per instance: a few connections are plenty, and many
/// instances must not exhaust the server's `max_connections`.
const MAX_CONNECTIONS: u32 = 5;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects (failing within a few seconds when the server does not answer) and applies the
    /// migrations the database has not seen. Instances starting together are serialised by
    /// sqlx's advisory lock. Errors never contain the URL's password.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let secrets = url_secrets(url);
        let redact = |message: String| redact(message, &secrets);
        let location = location(url);
        let options: PgConnectOptions = url.parse().map_err(|e| {
            StoreError::Unavailable(redact(format!("invalid PostgreSQL URL ({location}): {e}")))
        })?;
        let options = if options.get_application_name().is_none() {
            options.application_name("switchyard")
        } else {
            options
        };
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Unavailable(redact(format!(
                    "cannot connect to PostgreSQL at {location}: {e}"
                )))
            })?;
        sql::migrator(MIGRATIONS)
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(redact(format!("PostgreSQL {location}: {e}"))))?;
        Ok(PostgresStore { pool })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Deletes a row and leaves a tombstone, in one transaction.
    async fn delete(
        &self,
        table_sql: &'static str,
        kind: &'static str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let deleted = sqlx::query(table_sql)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected()
            > 0;
        if deleted {
            sqlx::query(
                "INSERT INTO switchyard_deletions (kind, id, deleted_at) \
                 VALUES ($1, $2, switchyard_now_ms()) \
                 ON CONFLICT (kind, id) DO UPDATE SET deleted_at = excluded.deleted_at",
            )
            .bind(kind)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            sqlx::query(
                "DELETE FROM switchyard_deletions WHERE deleted_at < switchyard_now_ms() - $1",
            )
            .bind(sql::TOMBSTONE_RETENTION_MS)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(deleted)
    }

    /// Records written at or after `since` and, if asked, the deletions since then, read in
    /// one REPEATABLE READ transaction (one snapshot), so an id shows up either written or
    /// deleted, never both.
    async fn snapshot(
        &self,
        since: Millis,
        with_deletions: bool,
    ) -> Result<(Identities, Vec<sql::Deletion>), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let keys = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM switchyard_keys WHERE updated_at >= $1"
        ))
        .bind(since)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let teams = sqlx::query(concat!(
            "SELECT ",
            team_columns!(),
            " FROM switchyard_teams WHERE updated_at >= $1"
        ))
        .bind(since)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let users = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM switchyard_users WHERE updated_at >= $1"
        ))
        .bind(since)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let end_users = sqlx::query(concat!(
            "SELECT ",
            end_user_columns!(),
            " FROM switchyard_end_users WHERE updated_at >= $1"
        ))
        .bind(since)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let deletions = if with_deletions {
            sqlx::query_as(
                "SELECT kind, id, deleted_at FROM switchyard_deletions WHERE deleted_at >= $1",
            )
            .bind(since)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?
        } else {
            Vec::new()
        };
        tx.commit().await.map_err(unavailable)?;
        let identities = Identities {
            keys: sql::rows(keys, sql::key_from_row)?,
            teams: sql::rows(teams, sql::team_from_row)?,
            users: sql::rows(users, sql::user_from_row)?,
            end_users: sql::rows(end_users, sql::end_user_from_row)?,
        };
        Ok((identities, deletions))
    }
}

// The SELECT lists: JSONB read back as text, for the shared decoders.
macro_rules! key_columns {
    () => {
        "token, key_name, key_alias, models::text AS models, rpm_limit, tpm_limit, \
         max_parallel_requests, model_rpm_limit::text AS model_rpm_limit, \
         model_tpm_limit::text AS model_tpm_limit, metadata::text AS metadata, \
         tags::text AS tags, team_id, user_id, allowed_routes::text AS allowed_routes, expires, \
         blocked, created_by, created_at, updated_at, extra::text AS extra"
    };
}
macro_rules! team_columns {
    () => {
        "team_id, team_alias, models::text AS models, rpm_limit, tpm_limit, \
         max_parallel_requests, members::text AS members, metadata::text AS metadata, \
         tags::text AS tags, blocked, created_at, updated_at, extra::text AS extra"
    };
}
macro_rules! user_columns {
    () => {
        "user_id, user_email, user_alias, user_role, models::text AS models, rpm_limit, \
         tpm_limit, max_parallel_requests, teams::text AS teams, metadata::text AS metadata, \
         created_at, updated_at, extra::text AS extra"
    };
}
macro_rules! end_user_columns {
    () => {
        "user_id, alias, blocked, models::text AS models, rpm_limit, tpm_limit, \
         max_parallel_requests, metadata::text AS metadata, created_at, updated_at, \
         extra::text AS extra"
    };
}
use {end_user_columns, key_columns, team_columns, user_columns};

const INSERT_KEY: &str = "INSERT INTO switchyard_keys (token, key_name, key_alias, models, \
    rpm_limit, tpm_limit, max_parallel_requests, model_rpm_limit, model_tpm_limit, metadata, \
    tags, team_id, user_id, allowed_routes, expires, blocked, created_by, created_at, extra, \
    updated_at) \
    VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8::jsonb, $9::jsonb, $10::jsonb, $11::jsonb, \
    $12, $13, $14::jsonb, $15, $16, $17, $18, $19::jsonb, switchyard_now_ms())";

const UPDATE_KEY: &str = "UPDATE switchyard_keys SET key_name = $2, key_alias = $3, \
    models = $4::jsonb, rpm_limit = $5, tpm_limit = $6, max_parallel_requests = $7, \
    model_rpm_limit = $8::jsonb, model_tpm_limit = $9::jsonb, metadata = $10::jsonb, \
    tags = $11::jsonb, team_id = $12, \
    user_id = $13, allowed_routes = $14::jsonb, expires = $15, blocked = $16, created_by = $17, \
    created_at = $18, extra = $19::jsonb, updated_at = switchyard_now_ms() \
    WHERE token = $1";

const PUT_TEAM: &str = "INSERT INTO switchyard_teams (team_id, team_alias, models, rpm_limit, \
    tpm_limit, max_parallel_requests, members, metadata, tags, blocked, created_at, extra, \
    updated_at) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7::jsonb, $8::jsonb, $9::jsonb, $10, \
    $11, $12::jsonb, switchyard_now_ms()) \
    ON CONFLICT (team_id) DO UPDATE SET team_alias = excluded.team_alias, \
    models = excluded.models, rpm_limit = excluded.rpm_limit, tpm_limit = excluded.tpm_limit, \
    max_parallel_requests = excluded.max_parallel_requests, members = excluded.members, \
    metadata = excluded.metadata, tags = excluded.tags, blocked = excluded.blocked, \
    created_at = excluded.created_at, extra = excluded.extra, updated_at = excluded.updated_at";

const PUT_USER: &str = "INSERT INTO switchyard_users (user_id, user_email, user_alias, \
    user_role, models, rpm_limit, tpm_limit, max_parallel_requests, teams, metadata, \
    created_at, extra, updated_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9::jsonb, \
    $10::jsonb, $11, $12::jsonb, switchyard_now_ms()) \
    ON CONFLICT (user_id) DO UPDATE SET user_email = excluded.user_email, \
    user_alias = excluded.user_alias, user_role = excluded.user_role, models = excluded.models, \
    rpm_limit = excluded.rpm_limit, tpm_limit = excluded.tpm_limit, \
    max_parallel_requests = excluded.max_parallel_requests, teams = excluded.teams, \
    metadata = excluded.metadata, created_at = excluded.created_at, extra = excluded.extra, \
    updated_at = excluded.updated_at";

const PUT_END_USER: &str = "INSERT INTO switchyard_end_users (user_id, alias, blocked, models, \
    rpm_limit, tpm_limit, max_parallel_requests, metadata, created_at, extra, updated_at) \
    VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8::jsonb, $9, $10::jsonb, switchyard_now_ms()) \
    ON CONFLICT (user_id) DO UPDATE SET alias = excluded.alias, blocked = excluded.blocked, \
    models = excluded.models, rpm_limit = excluded.rpm_limit, tpm_limit = excluded.tpm_limit, \
    max_parallel_requests = excluded.max_parallel_requests, metadata = excluded.metadata, \
    created_at = excluded.created_at, extra = excluded.extra, updated_at = excluded.updated_at";

/// A [`KeyFilter`]: `$1` team, `$2` user, `$3` alias, each ignored when NULL.
macro_rules! key_filter {
    () => {
        "($1 IS NULL OR team_id = $1) AND ($2 IS NULL OR user_id = $2) \
         AND ($3 IS NULL OR key_alias = $3)"
    };
}

/// Writing an identity revives it: its tombstone goes, so an id is a row or a tombstone.
const CLEAR_TOMBSTONE: &str = "DELETE FROM switchyard_deletions WHERE kind = $1 AND id = $2";

impl PostgresStore {
    /// Runs a write and clears the identity's tombstone in one transaction.
    async fn write<'q>(
        &self,
        statement: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        kind: &'static str,
        id: &str,
        conflict: impl FnOnce(&str) -> String,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let written = statement
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error(e, conflict))?
            .rows_affected();
        sqlx::query(CLEAR_TOMBSTONE)
            .bind(kind)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(written)
    }
}

impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn insert_key<'a>(&'a self, key: &'a KeyRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let query = bind_key!(sqlx::query(INSERT_KEY), KeyCols::new(key)?);
            self.write(query, sql::KIND_KEY, &key.token, key_conflict(key))
                .await?;
            Ok(())
        })
    }

    fn update_key<'a>(&'a self, key: &'a KeyRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let query = bind_key!(sqlx::query(UPDATE_KEY), KeyCols::new(key)?);
            match self
                .write(query, sql::KIND_KEY, &key.token, key_conflict(key))
                .await?
            {
                0 => Err(StoreError::NotFound("key".into())),
                _ => Ok(()),
            }
        })
    }

    fn delete_key<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.delete(
            "DELETE FROM switchyard_keys WHERE token = $1",
            sql::KIND_KEY,
            token,
        ))
    }

    fn key<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<KeyRecord>, StoreError>> {
        Box::pin(async move {
            sqlx::query(concat!(
                "SELECT ",
                key_columns!(),
                " FROM switchyard_keys WHERE token = $1"
            ))
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .map(|row| sql::key_from_row(&row))
            .transpose()
        })
    }

    fn key_by_alias<'a>(
        &'a self,
        alias: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyRecord>, StoreError>> {
        Box::pin(async move {
            sqlx::query(concat!(
                "SELECT ",
                key_columns!(),
                " FROM switchyard_keys WHERE key_alias = $1"
            ))
            .bind(alias)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .map(|row| sql::key_from_row(&row))
            .transpose()
        })
    }

    fn list_keys<'a>(
        &'a self,
        filter: &'a KeyFilter,
        page: Page,
    ) -> BoxFuture<'a, Result<(Vec<KeyRecord>, u64), StoreError>> {
        Box::pin(async move {
            let (limit, offset) = sql::limit_offset(page);
            let (total,): (i64,) = sqlx::query_as(concat!(
                "SELECT COUNT(*) FROM switchyard_keys WHERE ",
                key_filter!()
            ))
            .bind(&filter.team_id)
            .bind(&filter.user_id)
            .bind(&filter.key_alias)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
            let rows = sqlx::query(concat!(
                "SELECT ",
                key_columns!(),
                " FROM switchyard_keys WHERE ",
                key_filter!(),
                " ORDER BY created_at DESC, token LIMIT $4 OFFSET $5"
            ))
            .bind(&filter.team_id)
            .bind(&filter.user_id)
            .bind(&filter.key_alias)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
            Ok((
                sql::rows(rows, sql::key_from_row)?,
                u64::try_from(total).unwrap_or(0),
            ))
        })
    }

    fn put_team<'a>(&'a self, team: &'a TeamRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let query = bind_team!(sqlx::query(PUT_TEAM), TeamCols::new(team)?);
            self.write(query, sql::KIND_TEAM, &team.team_id, |_| {
                format!("team `{}`", team.team_id)
            })
            .await?;
            Ok(())
        })
    }

    fn delete_team<'a>(&'a self, team_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.delete(
            "DELETE FROM switchyard_teams WHERE team_id = $1",
            sql::KIND_TEAM,
            team_id,
        ))
    }

    fn team<'a>(
        &'a self,
        team_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<TeamRecord>, StoreError>> {
        Box::pin(async move {
            sqlx::query(concat!(
                "SELECT ",
                team_columns!(),
                " FROM switchyard_teams WHERE team_id = $1"
            ))
            .bind(team_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .map(|row| sql::team_from_row(&row))
            .transpose()
        })
    }

    fn list_teams(&self) -> BoxFuture<'_, Result<Vec<TeamRecord>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                team_columns!(),
                " FROM switchyard_teams ORDER BY created_at, team_id"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
            sql::rows(rows, sql::team_from_row)
        })
    }

    fn put_user<'a>(&'a self, user: &'a UserRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let query = bind_user!(sqlx::query(PUT_USER), UserCols::new(user)?);
            self.write(query, sql::KIND_USER, &user.user_id, |_| {
                format!("user `{}`", user.user_id)
            })
            .await?;
            Ok(())
        })
    }

    fn delete_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.delete(
            "DELETE FROM switchyard_users WHERE user_id = $1",
            sql::KIND_USER,
            user_id,
        ))
    }

    fn user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        Box::pin(async move {
            sqlx::query(concat!(
                "SELECT ",
                user_columns!(),
                " FROM switchyard_users WHERE user_id = $1"
            ))
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .map(|row| sql::user_from_row(&row))
            .transpose()
        })
    }

    fn list_users(&self, page: Page) -> BoxFuture<'_, Result<(Vec<UserRecord>, u64), StoreError>> {
        Box::pin(async move {
            let (limit, offset) = sql::limit_offset(page);
            let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM switchyard_users")
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)?;
            let rows = sqlx::query(concat!(
                "SELECT ",
                user_columns!(),
                " FROM switchyard_users ORDER BY created_at, user_id LIMIT $1 OFFSET $2",
            ))
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
            Ok((
                sql::rows(rows, sql::user_from_row)?,
                u64::try_from(total).unwrap_or(0),
            ))
        })
    }

    fn put_end_user<'a>(
        &'a self,
        end_user: &'a EndUserRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let query = bind_end_user!(sqlx::query(PUT_END_USER), EndUserCols::new(end_user)?);
            self.write(query, sql::KIND_END_USER, &end_user.user_id, |_| {
                format!("end user `{}`", end_user.user_id)
            })
            .await?;
            Ok(())
        })
    }

    fn delete_end_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.delete(
            "DELETE FROM switchyard_end_users WHERE user_id = $1",
            sql::KIND_END_USER,
            user_id,
        ))
    }

    fn end_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<EndUserRecord>, StoreError>> {
        Box::pin(async move {
            sqlx::query(concat!(
                "SELECT ",
                end_user_columns!(),
                " FROM switchyard_end_users WHERE user_id = $1"
            ))
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .map(|row| sql::end_user_from_row(&row))
            .transpose()
        })
    }

    fn list_end_users(&self) -> BoxFuture<'_, Result<Vec<EndUserRecord>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                end_user_columns!(),
                " FROM switchyard_end_users ORDER BY created_at, user_id",
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
            sql::rows(rows, sql::end_user_from_row)
        })
    }

    fn load_all(&self) -> BoxFuture<'_, Result<Identities, StoreError>> {
        Box::pin(async move { Ok(self.snapshot(Millis::MIN, false).await?.0) })
    }

    fn changes_since(&self, since: Millis) -> BoxFuture<'_, Result<Changes, StoreError>> {
        Box::pin(async move {
            let (written, deletions) = self.snapshot(since, true).await?;
            Ok(sql::changes(since, written, deletions))
        })
    }

    fn write_spend<'a>(&'a self, rows: &'a [SpendRow]) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(spend::write_spend(&self.pool, rows))
    }

    fn spend_total<'a>(
        &'a self,
        owner: Owner,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Nanos, StoreError>> {
        Box::pin(async move { spend::spend_total(&self.pool, owner, id).await.map(Nanos) })
    }

    fn spend_logs<'a>(
        &'a self,
        filter: &'a SpendFilter,
    ) -> BoxFuture<'a, Result<Vec<SpendRow>, StoreError>> {
        Box::pin(spend::spend_logs(&self.pool, filter))
    }

    fn spend_report<'a>(
        &'a self,
        filter: &'a SpendFilter,
        by: &'a GroupBy,
    ) -> BoxFuture<'a, Result<Vec<ReportRow>, StoreError>> {
        Box::pin(spend::spend_report(&self.pool, filter, by))
    }

    fn spend_daily<'a>(
        &'a self,
        filter: &'a SpendFilter,
    ) -> BoxFuture<'a, Result<Vec<DailyRow>, StoreError>> {
        Box::pin(spend::spend_daily(&self.pool, filter))
    }

    fn delete_spend_before(&self, before: Millis) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(spend::delete_spend_before(&self.pool, before))
    }
}

// ------------------------------------------------------------------- keeping the password out

/// The secrets of a PostgreSQL URL: the password of its user info and of a `password=`
/// parameter, each as written and percent-decoded.
fn url_secrets(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    // The last `@` ends the user info: an unencoded `@` or `/` in a password stays in it.
    if let Some((user_info, _)) = before_query.rsplit_once('@') {
        if let Some((_, password)) = user_info.split_once(':') {
            secrets.push(password.to_owned());
        }
    }
    for pair in query.split('&') {
        if let Some(password) = pair.strip_prefix("password=") {
            secrets.push(password.to_owned());
        }
    }
    let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn redact(mut message: String, secrets: &[String]) -> String {
    for secret in secrets {
        message = message.replace(secret.as_str(), "****");
    }
    message
}

/// Where the URL points, for messages: host, port and database, no user info, no parameters.
fn location(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let before_query = rest.split_once('?').map_or(rest, |(before, _)| before);
    let host = before_query
        .rsplit_once('@')
        .map_or(before_query, |(_, host)| host);
    host.to_owned()
}

/// Spend-log queries (`spend_sql.rs`), written for this backend.
mod spend {
    use super::super::sql::unavailable;
    use super::super::StoreError;
    #[allow(unused_imports)]
    use super::*;
    super::super::spend_sql::spend_queries!(
        sqlx::Postgres,
        super::super::spend_sql::PG_INSERT_CHUNK,
        true,
        "::jsonb",
        PG_COLUMNS,
        "switchyard_spend_logs l CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(l.metadata -> 'tags') = 'array' THEN l.metadata -> 'tags' ELSE '[]'::jsonb END) AS t(value)",
        "(l.metadata ->> ",
        ")",
        |key: &str| key.to_owned()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded() {
        sql::assert_embeds_every_migration("postgres", MIGRATIONS);
    }

    #[test]
    fn passwords_are_found_wherever_the_url_carries_them() {
        assert_eq!(
            url_secrets("postgresql://app:s3cret@db:5432/gw"),
            ["s3cret"]
        );
        assert_eq!(url_secrets("postgres://app@db/gw"), Vec::<String>::new());
        assert_eq!(
            url_secrets("postgres://db/gw?user=a&password=p%40ss"),
            ["p%40ss", "p@ss"]
        );
        assert_eq!(url_secrets("postgres://u:a@b/c@db/gw"), ["a@b/c"]);
        let secrets = url_secrets("postgresql://app:p%23w@db/gw");
        assert_eq!(
            redact("bad p%23w and p#w".into(), &secrets),
            "bad **** and ****"
        );
        assert_eq!(
            location("postgresql://app:pw@db:5432/gw?sslmode=require"),
            "db:5432/gw"
        );
    }
}
