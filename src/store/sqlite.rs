//! The embedded default: one SQLite file (WAL), created and migrated on open.
//!
//! JSON columns are TEXT. The write clock is this process's ([`super::sql::monotonic_now`]): a
//! SQLite file serves one gateway instance, so there is no other clock to agree with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

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
        include_str!("../../migrations/sqlite/0001_identities.sql"),
    ),
    (
        "0002_spend.sql",
        include_str!("../../migrations/sqlite/0002_spend.sql"),
    ),
    (
        "0003_spend_keys.sql",
        include_str!("../../migrations/sqlite/0003_spend_keys.sql"),
    ),
    (
        "0004_spend_call_type.sql",
        include_str!("../../migrations/sqlite/0004_spend_call_type.sql"),
    ),
];

/// Writers wait this long for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    pool: SqlitePool,
    /// The spend-log writer's own connection (`sqlite_spend.rs`): SQLite writes one
    /// transaction at a time anyway, and on one connection its INSERT statements are prepared
    /// (and held in memory) once.
    spend: super::sqlite_spend::SpendWriter,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens the file (creating it if missing; not its directory), switches it to WAL and
    /// applies the migrations it has not seen.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses no committed transaction on a process crash, only on
            // power loss, and spares an fsync per write.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot open the SQLite database {}: {e}",
                    path.display()
                ))
            })?;
        sql::migrator(MIGRATIONS)
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(format!("{}: {e}", path.display())))?;
        let spend = super::sqlite_spend::SpendWriter::open(path, BUSY_TIMEOUT)?;
        Ok(SqliteStore {
            pool,
            spend,
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection (tests reopen the file; the gateway just drops the store).
    pub async fn close(&self) {
        self.pool.close().await;
        self.spend.close();
    }

    /// Deletes a row and leaves a tombstone, in one transaction.
    async fn delete(
        &self,
        table_sql: &'static str,
        kind: &'static str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let now = sql::monotonic_now();
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
                "INSERT INTO switchyard_deletions (kind, id, deleted_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (kind, id) DO UPDATE SET deleted_at = excluded.deleted_at",
            )
            .bind(kind)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            sqlx::query("DELETE FROM switchyard_deletions WHERE deleted_at < ?1")
                .bind(now - sql::TOMBSTONE_RETENTION_MS)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(deleted)
    }

    /// Records written at or after `since` and, if asked, the deletions since then, read in
    /// one transaction: in WAL mode that is one snapshot, so an id shows up either written or
    /// deleted, never both.
    async fn snapshot(
        &self,
        since: Millis,
        with_deletions: bool,
    ) -> Result<(Identities, Vec<sql::Deletion>), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let keys = sqlx::query("SELECT * FROM switchyard_keys WHERE updated_at >= ?1")
            .bind(since)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
        let teams = sqlx::query("SELECT * FROM switchyard_teams WHERE updated_at >= ?1")
            .bind(since)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
        let users = sqlx::query("SELECT * FROM switchyard_users WHERE updated_at >= ?1")
            .bind(since)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
        let end_users = sqlx::query("SELECT * FROM switchyard_end_users WHERE updated_at >= ?1")
            .bind(since)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
        let deletions = if with_deletions {
            sqlx::query_as(
                "SELECT kind, id, deleted_at FROM switchyard_deletions WHERE deleted_at >= ?1",
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

const INSERT_KEY: &str = "INSERT INTO switchyard_keys (token, key_name, key_alias, models, \
    rpm_limit, tpm_limit, max_parallel_requests, model_rpm_limit, model_tpm_limit, metadata, \
    tags, team_id, user_id, allowed_routes, expires, blocked, created_by, created_at, extra, \
    updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)";

const UPDATE_KEY: &str = "UPDATE switchyard_keys SET key_name = ?2, key_alias = ?3, \
    models = ?4, rpm_limit = ?5, tpm_limit = ?6, max_parallel_requests = ?7, \
    model_rpm_limit = ?8, model_tpm_limit = ?9, metadata = ?10, tags = ?11, team_id = ?12, \
    user_id = ?13, allowed_routes = ?14, expires = ?15, blocked = ?16, created_by = ?17, \
    created_at = ?18, extra = ?19, updated_at = ?20 \
    WHERE token = ?1";

const PUT_TEAM: &str = "INSERT INTO switchyard_teams (team_id, team_alias, models, rpm_limit, \
    tpm_limit, max_parallel_requests, members, metadata, tags, blocked, created_at, extra, \
    updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
    ON CONFLICT (team_id) DO UPDATE SET team_alias = excluded.team_alias, \
    models = excluded.models, rpm_limit = excluded.rpm_limit, tpm_limit = excluded.tpm_limit, \
    max_parallel_requests = excluded.max_parallel_requests, members = excluded.members, \
    metadata = excluded.metadata, tags = excluded.tags, blocked = excluded.blocked, \
    created_at = excluded.created_at, extra = excluded.extra, updated_at = excluded.updated_at";

const PUT_USER: &str = "INSERT INTO switchyard_users (user_id, user_email, user_alias, \
    user_role, models, rpm_limit, tpm_limit, max_parallel_requests, teams, metadata, \
    created_at, extra, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
    ON CONFLICT (user_id) DO UPDATE SET user_email = excluded.user_email, \
    user_alias = excluded.user_alias, user_role = excluded.user_role, models = excluded.models, \
    rpm_limit = excluded.rpm_limit, tpm_limit = excluded.tpm_limit, \
    max_parallel_requests = excluded.max_parallel_requests, teams = excluded.teams, \
    metadata = excluded.metadata, created_at = excluded.created_at, extra = excluded.extra, \
    updated_at = excluded.updated_at";

const PUT_END_USER: &str = "INSERT INTO switchyard_end_users (user_id, alias, blocked, models, \
    rpm_limit, tpm_limit, max_parallel_requests, metadata, created_at, extra, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
    ON CONFLICT (user_id) DO UPDATE SET alias = excluded.alias, blocked = excluded.blocked, \
    models = excluded.models, rpm_limit = excluded.rpm_limit, tpm_limit = excluded.tpm_limit, \
    max_parallel_requests = excluded.max_parallel_requests, metadata = excluded.metadata, \
    created_at = excluded.created_at, extra = excluded.extra, updated_at = excluded.updated_at";

/// A [`KeyFilter`]: `?1` team, `?2` user, `?3` alias, each ignored when NULL.
macro_rules! key_filter {
    () => {
        "(?1 IS NULL OR team_id = ?1) AND (?2 IS NULL OR user_id = ?2) \
         AND (?3 IS NULL OR key_alias = ?3)"
    };
}

/// Writing an identity revives it: its tombstone goes, so an id is a row or a tombstone.
const CLEAR_TOMBSTONE: &str = "DELETE FROM switchyard_deletions WHERE kind = ?1 AND id = ?2";

impl SqliteStore {
    /// Runs a write and clears the identity's tombstone in one transaction.
    async fn write<'q>(
        &self,
        statement: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
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

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
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
            let query = query.bind(sql::monotonic_now());
            self.write(query, sql::KIND_KEY, &key.token, key_conflict(key))
                .await?;
            Ok(())
        })
    }

    fn update_key<'a>(&'a self, key: &'a KeyRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let query = bind_key!(sqlx::query(UPDATE_KEY), KeyCols::new(key)?);
            let query = query.bind(sql::monotonic_now());
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
            "DELETE FROM switchyard_keys WHERE token = ?1",
            sql::KIND_KEY,
            token,
        ))
    }

    fn key<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<KeyRecord>, StoreError>> {
        Box::pin(async move {
            sqlx::query("SELECT * FROM switchyard_keys WHERE token = ?1")
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
            sqlx::query("SELECT * FROM switchyard_keys WHERE key_alias = ?1")
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
                "SELECT * FROM switchyard_keys WHERE ",
                key_filter!(),
                " ORDER BY created_at DESC, token LIMIT ?4 OFFSET ?5"
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
            let query = query.bind(sql::monotonic_now());
            self.write(query, sql::KIND_TEAM, &team.team_id, |_| {
                format!("team `{}`", team.team_id)
            })
            .await?;
            Ok(())
        })
    }

    fn delete_team<'a>(&'a self, team_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.delete(
            "DELETE FROM switchyard_teams WHERE team_id = ?1",
            sql::KIND_TEAM,
            team_id,
        ))
    }

    fn team<'a>(
        &'a self,
        team_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<TeamRecord>, StoreError>> {
        Box::pin(async move {
            sqlx::query("SELECT * FROM switchyard_teams WHERE team_id = ?1")
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
            let rows = sqlx::query("SELECT * FROM switchyard_teams ORDER BY created_at, team_id")
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            sql::rows(rows, sql::team_from_row)
        })
    }

    fn put_user<'a>(&'a self, user: &'a UserRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let query = bind_user!(sqlx::query(PUT_USER), UserCols::new(user)?);
            let query = query.bind(sql::monotonic_now());
            self.write(query, sql::KIND_USER, &user.user_id, |_| {
                format!("user `{}`", user.user_id)
            })
            .await?;
            Ok(())
        })
    }

    fn delete_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.delete(
            "DELETE FROM switchyard_users WHERE user_id = ?1",
            sql::KIND_USER,
            user_id,
        ))
    }

    fn user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        Box::pin(async move {
            sqlx::query("SELECT * FROM switchyard_users WHERE user_id = ?1")
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
            let rows = sqlx::query(
                "SELECT * FROM switchyard_users ORDER BY created_at, user_id \
                 LIMIT ?1 OFFSET ?2",
            )
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
            let query = query.bind(sql::monotonic_now());
            self.write(query, sql::KIND_END_USER, &end_user.user_id, |_| {
                format!("end user `{}`", end_user.user_id)
            })
            .await?;
            Ok(())
        })
    }

    fn delete_end_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.delete(
            "DELETE FROM switchyard_end_users WHERE user_id = ?1",
            sql::KIND_END_USER,
            user_id,
        ))
    }

    fn end_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<EndUserRecord>, StoreError>> {
        Box::pin(async move {
            sqlx::query("SELECT * FROM switchyard_end_users WHERE user_id = ?1")
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
            let rows =
                sqlx::query("SELECT * FROM switchyard_end_users ORDER BY created_at, user_id")
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
        Box::pin(async move { super::sqlite_spend::blocking(|| self.spend.write(rows)) })
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

/// Spend-log queries (`spend_sql.rs`), written for this backend.
mod spend {
    use super::super::sql::unavailable;
    use super::super::StoreError;
    #[allow(unused_imports)]
    use super::*;
    super::super::spend_sql::spend_queries!(
        sqlx::Sqlite,
        super::super::spend_sql::SQLITE_INSERT_CHUNK,
        false,
        "",
        COLUMNS,
        "switchyard_spend_logs l, json_each(l.metadata, '$.tags') t",
        "CAST(json_extract(l.metadata, ",
        ") AS TEXT)",
        |key: &str| format!("$.\"{key}\"")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded() {
        sql::assert_embeds_every_migration("sqlite", MIGRATIONS);
    }
}
