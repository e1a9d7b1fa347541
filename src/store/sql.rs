//! What the SQLite and PostgreSQL stores share: embedded migrations, the mapping between
//! records and columns, and the mapping of sqlx errors to [`StoreError`].
//!
//! Both backends bind the same values (text, 64-bit integers, booleans; JSON as text, cast to
//! JSONB in PostgreSQL's SQL) and read rows through [`Cols`], so a record is encoded and decoded
//! by exactly one function whatever the database.

use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

use super::{
    Changes, EndUserRecord, Identities, KeyRecord, Millis, StoreError, TeamRecord, UserRecord,
};

/// The table that records applied migrations. Prefixed like every table of ours: a PostgreSQL
/// shared with LiteLLM (`LiteLLM_...`, `_prisma_migrations`) or another sqlx application
/// (`_sqlx_migrations`) must not collide.
pub(super) const MIGRATIONS_TABLE: &str = "switchyard_migrations";

/// How long a deletion stays visible to `changes_since`. A cache that has not polled for longer
/// must `load_all` again (the refresher does at start).
pub(super) const TOMBSTONE_RETENTION_MS: Millis = 30 * 24 * 60 * 60 * 1000;

/// The `kind` column of `switchyard_deletions`.
pub(super) const KIND_KEY: &str = "key";
pub(super) const KIND_TEAM: &str = "team";
pub(super) const KIND_USER: &str = "user";
pub(super) const KIND_END_USER: &str = "end_user";

/// Builds the migrator from migration files embedded with `include_str!`, named as sqlx names
/// them (`0001_identities.sql`: version 1, description "identities"), with the checksum sqlx
/// computes, so the `sqlx` CLI and `sqlx::migrate!` see the same migrations.
///
/// Not `sqlx::migrate!` itself: that needs sqlx's `macros` feature, which builds a second copy of
/// sqlx (and of the bundled SQLite C library) for the proc-macro, for one directory listing.
pub(super) fn migrator(files: &[(&'static str, &'static str)]) -> Migrator {
    let migrations = files
        .iter()
        .map(|&(name, sql)| {
            let (version, description) = parse_migration_name(name);
            Migration::new(
                version,
                Cow::Owned(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// `0001_identities.sql` → (1, "identities"). The names are ours and checked by a test, so a
/// malformed one is a bug caught before release, not input.
fn parse_migration_name(name: &str) -> (i64, String) {
    let stem = name.strip_suffix(".sql").unwrap_or(name);
    let (version, description) = stem.split_once('_').unwrap_or((stem, ""));
    let version = version.parse().unwrap_or_else(|_| {
        panic!("migration file {name} must start with a number and an underscore")
    });
    (version, description.replace('_', " "))
}

/// The clock stamped on writes (`updated_at`, `deleted_at`) by the SQLite store: wall-clock
/// milliseconds that never go backwards within the process, so a clock step back cannot hide a
/// write from a cache that polls `changes_since`. (PostgreSQL stamps with the server's clock,
/// the one clock every instance shares.)
pub(super) fn monotonic_now() -> Millis {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let previous = LAST.fetch_max(wall, Ordering::Relaxed);
    wall.max(previous)
}

// ------------------------------------------------------------------------------------ errors

/// A failed statement: a unique violation is a [`StoreError::Conflict`] described by
/// `conflict`, anything else means the database failed.
pub(super) fn db_error(error: sqlx::Error, conflict: impl FnOnce(&str) -> String) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // PostgreSQL names the constraint; SQLite names the column in the message.
            let what = db.constraint().unwrap_or_else(|| db.message());
            StoreError::Conflict(conflict(what))
        }
        _ => unavailable(error),
    }
}

pub(super) fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// The conflict of a key insert or update: its alias or its token.
pub(super) fn key_conflict(key: &KeyRecord) -> impl FnOnce(&str) -> String + '_ {
    move |what| match &key.key_alias {
        Some(alias) if what.contains("key_alias") => format!("a key with alias `{alias}`"),
        _ => "a key with this token".to_owned(),
    }
}

// ------------------------------------------------------------------------------- encoding

fn json(value: &impl Serialize) -> Result<String, StoreError> {
    // Records hold strings, integers and JSON values only: this cannot fail, but a failure
    // must not take the process down.
    serde_json::to_string(value)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode a record as JSON: {e}")))
}

/// Limits are `u64` in records and BIGINT in SQL; anything past `i64::MAX` (9.2e18 requests a
/// minute) means "unlimited" as much as the exact value would, so it saturates.
fn limit(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn unlimit(value: Option<i64>) -> Option<u64> {
    value.map(|v| u64::try_from(v).unwrap_or(0))
}

/// A key as bound to SQL, in the column order of the INSERT and UPDATE statements:
/// `token, key_name, key_alias, models, rpm_limit, tpm_limit, max_parallel_requests,
/// model_rpm_limit, model_tpm_limit, metadata, tags, team_id, user_id, allowed_routes, expires,
/// blocked, created_by, created_at, extra` (then `updated_at`, stamped by the store).
pub(super) struct KeyCols {
    pub token: String,
    pub key_name: String,
    pub key_alias: Option<String>,
    pub models: String,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub model_rpm_limit: String,
    pub model_tpm_limit: String,
    pub metadata: String,
    pub tags: String,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub allowed_routes: String,
    pub expires: Option<i64>,
    pub blocked: bool,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub extra: String,
}

impl KeyCols {
    pub fn new(key: &KeyRecord) -> Result<KeyCols, StoreError> {
        Ok(KeyCols {
            token: key.token.clone(),
            key_name: key.key_name.clone(),
            key_alias: key.key_alias.clone(),
            models: json(&key.models)?,
            rpm_limit: limit(key.rpm_limit),
            tpm_limit: limit(key.tpm_limit),
            max_parallel_requests: limit(key.max_parallel_requests),
            model_rpm_limit: json(&key.model_rpm_limit)?,
            model_tpm_limit: json(&key.model_tpm_limit)?,
            metadata: json(&key.metadata)?,
            tags: json(&key.tags)?,
            team_id: key.team_id.clone(),
            user_id: key.user_id.clone(),
            allowed_routes: json(&key.allowed_routes)?,
            expires: key.expires,
            blocked: key.blocked,
            created_by: key.created_by.clone(),
            created_at: key.created_at,
            extra: json(&key.extra)?,
        })
    }
}

/// `team_id, team_alias, models, rpm_limit, tpm_limit, max_parallel_requests, members,
/// metadata, tags, blocked, created_at, extra` (then `updated_at`).
pub(super) struct TeamCols {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub models: String,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub members: String,
    pub metadata: String,
    pub tags: String,
    pub blocked: bool,
    pub created_at: i64,
    pub extra: String,
}

impl TeamCols {
    pub fn new(team: &TeamRecord) -> Result<TeamCols, StoreError> {
        Ok(TeamCols {
            team_id: team.team_id.clone(),
            team_alias: team.team_alias.clone(),
            models: json(&team.models)?,
            rpm_limit: limit(team.rpm_limit),
            tpm_limit: limit(team.tpm_limit),
            max_parallel_requests: limit(team.max_parallel_requests),
            members: json(&team.members)?,
            metadata: json(&team.metadata)?,
            tags: json(&team.tags)?,
            blocked: team.blocked,
            created_at: team.created_at,
            extra: json(&team.extra)?,
        })
    }
}

/// `user_id, user_email, user_alias, user_role, models, rpm_limit, tpm_limit,
/// max_parallel_requests, teams, metadata, created_at, extra` (then `updated_at`).
pub(super) struct UserCols {
    pub user_id: String,
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    pub user_role: String,
    pub models: String,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub teams: String,
    pub metadata: String,
    pub created_at: i64,
    pub extra: String,
}

impl UserCols {
    pub fn new(user: &UserRecord) -> Result<UserCols, StoreError> {
        Ok(UserCols {
            user_id: user.user_id.clone(),
            user_email: user.user_email.clone(),
            user_alias: user.user_alias.clone(),
            user_role: user.user_role.clone(),
            models: json(&user.models)?,
            rpm_limit: limit(user.rpm_limit),
            tpm_limit: limit(user.tpm_limit),
            max_parallel_requests: limit(user.max_parallel_requests),
            teams: json(&user.teams)?,
            metadata: json(&user.metadata)?,
            created_at: user.created_at,
            extra: json(&user.extra)?,
        })
    }
}

/// `user_id, alias, blocked, models, rpm_limit, tpm_limit, max_parallel_requests, metadata,
/// created_at, extra` (then `updated_at`).
pub(super) struct EndUserCols {
    pub user_id: String,
    pub alias: Option<String>,
    pub blocked: bool,
    pub models: String,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub metadata: String,
    pub created_at: i64,
    pub extra: String,
}

impl EndUserCols {
    pub fn new(end_user: &EndUserRecord) -> Result<EndUserCols, StoreError> {
        Ok(EndUserCols {
            user_id: end_user.user_id.clone(),
            alias: end_user.alias.clone(),
            blocked: end_user.blocked,
            models: json(&end_user.models)?,
            rpm_limit: limit(end_user.rpm_limit),
            tpm_limit: limit(end_user.tpm_limit),
            max_parallel_requests: limit(end_user.max_parallel_requests),
            metadata: json(&end_user.metadata)?,
            created_at: end_user.created_at,
            extra: json(&end_user.extra)?,
        })
    }
}

/// Binds the columns of a `*Cols` value in its documented order. One macro for both
/// backends: the bind chains are the same, only the query types differ.
macro_rules! bind_cols {
    ($query:expr, $cols:expr, [$($field:ident),* $(,)?]) => {{
        let cols = $cols;
        $query$(.bind(cols.$field))*
    }};
}
pub(super) use bind_cols;

macro_rules! bind_key {
    ($query:expr, $cols:expr) => {
        $crate::store::sql::bind_cols!(
            $query,
            $cols,
            [
                token,
                key_name,
                key_alias,
                models,
                rpm_limit,
                tpm_limit,
                max_parallel_requests,
                model_rpm_limit,
                model_tpm_limit,
                metadata,
                tags,
                team_id,
                user_id,
                allowed_routes,
                expires,
                blocked,
                created_by,
                created_at,
                extra,
            ]
        )
    };
}
pub(super) use bind_key;

macro_rules! bind_team {
    ($query:expr, $cols:expr) => {
        $crate::store::sql::bind_cols!(
            $query,
            $cols,
            [
                team_id,
                team_alias,
                models,
                rpm_limit,
                tpm_limit,
                max_parallel_requests,
                members,
                metadata,
                tags,
                blocked,
                created_at,
                extra,
            ]
        )
    };
}
pub(super) use bind_team;

macro_rules! bind_user {
    ($query:expr, $cols:expr) => {
        $crate::store::sql::bind_cols!(
            $query,
            $cols,
            [
                user_id,
                user_email,
                user_alias,
                user_role,
                models,
                rpm_limit,
                tpm_limit,
                max_parallel_requests,
                teams,
                metadata,
                created_at,
                extra,
            ]
        )
    };
}
pub(super) use bind_user;

macro_rules! bind_end_user {
    ($query:expr, $cols:expr) => {
        $crate::store::sql::bind_cols!(
            $query,
            $cols,
            [
                user_id,
                alias,
                blocked,
                models,
                rpm_limit,
                tpm_limit,
                max_parallel_requests,
                metadata,
                created_at,
                extra,
            ]
        )
    };
}
pub(super) use bind_end_user;

// ------------------------------------------------------------------------------- decoding

/// Reading a row by column name, the same way for both backends. JSON columns are read as text
/// (PostgreSQL's SELECTs cast JSONB to text).
pub(super) trait Cols {
    fn text(&self, col: &str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn flag(&self, col: &str) -> Result<bool, StoreError>;

    fn json<T: DeserializeOwned>(&self, col: &str) -> Result<T, StoreError> {
        let text = self.text(col)?;
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Unavailable(format!("column {col} holds invalid JSON: {e}")))
    }
}

macro_rules! impl_cols {
    ($row:ty) => {
        impl Cols for $row {
            fn text(&self, col: &str) -> Result<String, StoreError> {
                sqlx::Row::try_get(self, col).map_err(unavailable)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
                sqlx::Row::try_get(self, col).map_err(unavailable)
            }
            fn int(&self, col: &str) -> Result<i64, StoreError> {
                sqlx::Row::try_get(self, col).map_err(unavailable)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
                sqlx::Row::try_get(self, col).map_err(unavailable)
            }
            fn flag(&self, col: &str) -> Result<bool, StoreError> {
                sqlx::Row::try_get(self, col).map_err(unavailable)
            }
        }
    };
}
impl_cols!(sqlx::sqlite::SqliteRow);
impl_cols!(sqlx::postgres::PgRow);

pub(super) fn key_from_row(row: &impl Cols) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        token: row.text("token")?,
        key_name: row.text("key_name")?,
        key_alias: row.opt_text("key_alias")?,
        models: row.json("models")?,
        rpm_limit: unlimit(row.opt_int("rpm_limit")?),
        tpm_limit: unlimit(row.opt_int("tpm_limit")?),
        max_parallel_requests: unlimit(row.opt_int("max_parallel_requests")?),
        model_rpm_limit: row.json("model_rpm_limit")?,
        model_tpm_limit: row.json("model_tpm_limit")?,
        metadata: row.json("metadata")?,
        tags: row.json("tags")?,
        team_id: row.opt_text("team_id")?,
        user_id: row.opt_text("user_id")?,
        allowed_routes: row.json("allowed_routes")?,
        expires: row.opt_int("expires")?,
        blocked: row.flag("blocked")?,
        created_by: row.opt_text("created_by")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        extra: row.json("extra")?,
    })
}

pub(super) fn team_from_row(row: &impl Cols) -> Result<TeamRecord, StoreError> {
    Ok(TeamRecord {
        team_id: row.text("team_id")?,
        team_alias: row.opt_text("team_alias")?,
        models: row.json("models")?,
        rpm_limit: unlimit(row.opt_int("rpm_limit")?),
        tpm_limit: unlimit(row.opt_int("tpm_limit")?),
        max_parallel_requests: unlimit(row.opt_int("max_parallel_requests")?),
        members: row.json("members")?,
        metadata: row.json("metadata")?,
        tags: row.json("tags")?,
        blocked: row.flag("blocked")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        extra: row.json("extra")?,
    })
}

pub(super) fn user_from_row(row: &impl Cols) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        user_id: row.text("user_id")?,
        user_email: row.opt_text("user_email")?,
        user_alias: row.opt_text("user_alias")?,
        user_role: row.text("user_role")?,
        models: row.json("models")?,
        rpm_limit: unlimit(row.opt_int("rpm_limit")?),
        tpm_limit: unlimit(row.opt_int("tpm_limit")?),
        max_parallel_requests: unlimit(row.opt_int("max_parallel_requests")?),
        teams: row.json("teams")?,
        metadata: row.json("metadata")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        extra: row.json("extra")?,
    })
}

pub(super) fn end_user_from_row(row: &impl Cols) -> Result<EndUserRecord, StoreError> {
    Ok(EndUserRecord {
        user_id: row.text("user_id")?,
        alias: row.opt_text("alias")?,
        blocked: row.flag("blocked")?,
        models: row.json("models")?,
        rpm_limit: unlimit(row.opt_int("rpm_limit")?),
        tpm_limit: unlimit(row.opt_int("tpm_limit")?),
        max_parallel_requests: unlimit(row.opt_int("max_parallel_requests")?),
        metadata: row.json("metadata")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        extra: row.json("extra")?,
    })
}

/// A row of `switchyard_deletions`: kind, id, deleted_at.
pub(super) type Deletion = (String, String, Millis);

/// Assembles [`Changes`]: `latest` is the newest change time seen, or `since` when nothing
/// changed, so a poller's window never moves backwards.
pub(super) fn changes(since: Millis, written: Identities, deletions: Vec<Deletion>) -> Changes {
    let mut latest = since;
    let written_times = written.keys.iter().map(|r| r.updated_at);
    let written_times = written_times
        .chain(written.teams.iter().map(|r| r.updated_at))
        .chain(written.users.iter().map(|r| r.updated_at))
        .chain(written.end_users.iter().map(|r| r.updated_at));
    for time in written_times {
        latest = latest.max(time);
    }
    let mut changes = Changes {
        written,
        ..Changes::default()
    };
    for (kind, id, deleted_at) in deletions {
        latest = latest.max(deleted_at);
        match kind.as_str() {
            KIND_KEY => changes.deleted_keys.push(id),
            KIND_TEAM => changes.deleted_teams.push(id),
            KIND_USER => changes.deleted_users.push(id),
            KIND_END_USER => changes.deleted_end_users.push(id),
            // A kind written by a newer Switchyard sharing the database: not ours to apply.
            _ => {}
        }
    }
    changes.latest = latest;
    changes
}

pub(super) fn rows<R, T>(
    rows: Vec<R>,
    decode: impl Fn(&R) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(decode).collect()
}

/// `LIMIT` and `OFFSET` of a 1-based page (page 0 is read as page 1).
pub(super) fn limit_offset(page: super::Page) -> (i64, i64) {
    let size = i64::from(page.size);
    let offset = i64::from(page.number.max(1) - 1) * size;
    (size, offset)
}

/// Fails when a file in `migrations/<dir>` is missing from an embedded list (or the reverse):
/// without `sqlx::migrate!` nothing else would notice a migration that was never shipped.
#[cfg(test)]
pub(super) fn assert_embeds_every_migration(dir: &str, embedded: &[(&str, &str)]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dir);
    let mut on_disk: Vec<String> = std::fs::read_dir(&path)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let listed: Vec<String> = embedded.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "migrations/{dir} and its embedded list differ"
    );
    for (name, sql) in embedded {
        let file = std::fs::read_to_string(path.join(name)).unwrap();
        assert_eq!(&file, sql, "{name}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_names_parse_like_sqlx() {
        assert_eq!(
            parse_migration_name("0001_identities.sql"),
            (1, "identities".into())
        );
        assert_eq!(
            parse_migration_name("0012_spend_logs_index.sql"),
            (12, "spend logs index".into())
        );
    }

    #[test]
    fn limits_saturate_instead_of_wrapping() {
        assert_eq!(limit(Some(u64::MAX)), Some(i64::MAX));
        assert_eq!(limit(Some(10)), Some(10));
        assert_eq!(unlimit(Some(-1)), Some(0));
    }

    #[test]
    fn the_store_clock_never_goes_back() {
        let a = monotonic_now();
        let b = monotonic_now();
        assert!(b >= a && a > 1_600_000_000_000);
    }

    #[test]
    fn pages_are_one_based() {
        let page = |number, size| limit_offset(super::super::Page { number, size });
        assert_eq!(page(1, 10), (10, 0));
        assert_eq!(page(3, 10), (10, 20));
        assert_eq!(page(0, 10), (10, 0));
    }
}
