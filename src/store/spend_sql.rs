//! Spend-log SQL shared by SQLite and PostgreSQL. The two differ in how JSON is bound and read
//! and how a report unnests tags; [`spend_queries!`] writes the functions once for each, with
//! those pieces as arguments. Every sum is taken by the database over integers (nano-dollars,
//! tokens) and cast to BIGINT (PostgreSQL's SUM of BIGINT is NUMERIC).

use super::sql::Cols;
use super::StoreError;
use crate::spend::SpendRow;

/// Rows per INSERT statement, at most, on PostgreSQL (a batch is several, in one transaction).
/// Small statements keep each step of the writer short: one statement of hundreds of rows
/// (thousands of parameters to encode, and for PostgreSQL to parse) took long enough, on a busy
/// two-core machine, to delay requests' Redis rate-limit calls past their 75 ms timeout
/// (tests/limits.rs `two_instances_...` went flaky); 50 rows measured no such effect.
pub(super) const PG_INSERT_CHUNK: usize = 64;

/// Rows per INSERT statement, at most, on SQLite (`sqlite_spend.rs`): a statement's own work
/// (its start and end, opening a cursor on the table and each index) is shared by its rows, and
/// one of 256 rows binds in place as fast as 256 of one. The writer runs off the request path.
pub(super) const SQLITE_INSERT_CHUNK: usize = 256;

/// The row counts an INSERT statement is written for, up to a backend's largest: a batch is cut
/// into the largest that fit (`n / max` statements of `max`, then at most one of each smaller
/// size), so the writer runs a few statements that the connection's statement cache keeps
/// prepared, never one made for this batch's size.
pub(super) const CHUNK_SIZES: [usize; 9] = [256, 128, 64, 32, 16, 8, 4, 2, 1];

/// Cuts `rows` into statements of [`CHUNK_SIZES`] rows, none larger than `max`.
pub(super) fn chunks<T>(mut rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = CHUNK_SIZES
            .into_iter()
            .find(|&size| size <= max && size <= rows.len())?;
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some(chunk)
    })
}

/// The INSERT of `n` rows, each row's JSON parameter followed by `json_cast`. A row whose
/// (started_at, id) is already there is skipped: the same row again, from a retried batch or a
/// replayed spill file. With `returning`, the statement answers the ids it inserted.
///
/// Placeholders are `$1`, `$2`... when `numbered` (PostgreSQL), else `?` (SQLite): SQLite looks
/// a named parameter up in a list, once when it parses and once per bind, so a statement of
/// 1,536 `$N` costs millions of instructions to prepare and to bind where `?` costs nothing.
pub(super) fn insert_sql(n: usize, numbered: bool, json_cast: &str, returning: bool) -> String {
    const PER_ROW: usize = 25;
    let mut sql = format!("INSERT INTO switchyard_spend_logs ({COLUMNS}) VALUES ");
    for row in 0..n {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 1..=PER_ROW {
            if column > 1 {
                sql.push_str(", ");
            }
            if numbered {
                sql.push('$');
                sql.push_str(&(row * PER_ROW + column).to_string());
            } else {
                sql.push('?');
            }
        }
        sql.push_str(json_cast);
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (started_at, id) DO NOTHING");
    if returning {
        sql.push_str(" RETURNING id");
    }
    sql
}

/// `metadata` is last: the JSON cast follows the last parameter of a row ([`insert_sql`]).
pub(super) const COLUMNS: &str = "id, request_id, started_at, api_key, key_alias, team_id, \
    user_id, end_user, requested_model, model_group, deployment_id, provider, prompt_tokens, \
    completion_tokens, cached_tokens, cost_nanos, cost_source, latency_ms, ttft_ms, status, \
    outcome, stream, cache_hit, call_type, metadata";

/// The columns as PostgreSQL's SELECTs read them (JSONB as text).
pub(super) const PG_COLUMNS: &str = "id, request_id, started_at, api_key, key_alias, team_id, \
    user_id, end_user, requested_model, model_group, deployment_id, provider, prompt_tokens, \
    completion_tokens, cached_tokens, cost_nanos, cost_source, latency_ms, ttft_ms, status, \
    outcome, stream, cache_hit, call_type, metadata::text AS metadata";

pub(super) fn spend_from_row(row: &impl Cols) -> Result<SpendRow, StoreError> {
    let metadata = match row.opt_text("metadata")? {
        None => None,
        Some(text) => serde_json::from_str(&text).ok(),
    };
    Ok(SpendRow {
        id: row.text("id")?,
        request_id: row.text("request_id")?,
        started_at: row.int("started_at")?,
        api_key: row.text("api_key")?,
        key_alias: row.opt_text("key_alias")?,
        team_id: row.opt_text("team_id")?,
        user_id: row.opt_text("user_id")?,
        end_user: row.opt_text("end_user")?,
        requested_model: row.text("requested_model")?,
        model_group: row.opt_text("model_group")?,
        deployment_id: row.opt_text("deployment_id")?,
        provider: row.opt_text("provider")?,
        prompt_tokens: row.int("prompt_tokens")?,
        completion_tokens: row.int("completion_tokens")?,
        cached_tokens: row.int("cached_tokens")?,
        cost_nanos: row.int("cost_nanos")?,
        cost_source: row.text("cost_source")?,
        latency_ms: row.int("latency_ms")?,
        ttft_ms: row.opt_int("ttft_ms")?,
        status: row.int("status")?,
        outcome: row.text("outcome")?,
        stream: row.flag("stream")?,
        cache_hit: row.flag("cache_hit")?,
        call_type: row.opt_text("call_type")?,
        metadata,
    })
}

/// Writes the spend functions for one backend:
/// - `$db`: the sqlx database type;
/// - `$max_chunk`: the most rows one INSERT statement takes;
/// - `$numbered`: whether the INSERT's placeholders are `$N` (else `?`, see [`insert_sql`]);
/// - `$json_cast`: what follows a bound JSON text (`""` or `"::jsonb"`);
/// - `$select`: the column list as read back (JSON as text);
/// - `$tags`: the FROM clause that yields one row per tag as `t.value`;
/// - `$meta`, `$meta_end`: the expression of a metadata key around `$meta_bind(key)`.
macro_rules! spend_queries {
    ($db:ty, $max_chunk:expr, $numbered:expr, $json_cast:expr, $select:expr, $tags:expr, $meta:expr, $meta_end:expr, $meta_bind:expr) => {
        use $crate::spend::{DailyRow, GroupBy, Owner, ReportRow, SpendFilter, SpendRow};
        #[allow(unused_imports)]
        use $crate::store::spend_sql::{
            chunks, insert_sql, spend_from_row, CHUNK_SIZES, COLUMNS, PG_COLUMNS,
        };

        /// The INSERT statements, written once per process: `[returning][size index]`.
        fn insert_statement(rows: usize, returning: bool) -> &'static str {
            static SQL: std::sync::OnceLock<[Vec<String>; 2]> = std::sync::OnceLock::new();
            let sql = SQL.get_or_init(|| {
                [false, true].map(|returning| {
                    CHUNK_SIZES
                        .iter()
                        .filter(|&&n| n <= $max_chunk)
                        .map(|&n| insert_sql(n, $numbered, $json_cast, returning))
                        .collect()
                })
            });
            let size = CHUNK_SIZES
                .iter()
                .filter(|&&n| n <= $max_chunk)
                .position(|&n| n == rows)
                .unwrap_or(0);
            &sql[usize::from(returning)][size]
        }

        /// The INSERT statements of the common path (no RETURNING), one per size, for a
        /// connection to prepare when it opens.
        #[allow(dead_code)]
        pub(super) fn insert_statements() -> impl Iterator<Item = &'static str> {
            CHUNK_SIZES
                .iter()
                .filter(|&&n| n <= $max_chunk)
                .map(|&n| insert_statement(n, false))
        }

        /// One INSERT of `rows` (a size of [`CHUNK_SIZES`]), its parameters bound by reference.
        // SQLite writes spend rows through its C API instead (`sqlite_spend.rs`).
        #[allow(dead_code)]
        fn insert<'q>(
            rows: &'q [SpendRow],
            returning: bool,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
            let mut query = sqlx::query::<$db>(insert_statement(rows.len(), returning));
            for row in rows {
                query = query
                    .bind(row.id.as_str())
                    .bind(row.request_id.as_str())
                    .bind(row.started_at)
                    .bind(row.api_key.as_str())
                    .bind(row.key_alias.as_deref())
                    .bind(row.team_id.as_deref())
                    .bind(row.user_id.as_deref())
                    .bind(row.end_user.as_deref())
                    .bind(row.requested_model.as_str())
                    .bind(row.model_group.as_deref())
                    .bind(row.deployment_id.as_deref())
                    .bind(row.provider.as_deref())
                    .bind(row.prompt_tokens)
                    .bind(row.completion_tokens)
                    .bind(row.cached_tokens)
                    .bind(row.cost_nanos)
                    .bind(row.cost_source.as_str())
                    .bind(row.latency_ms)
                    .bind(row.ttft_ms)
                    .bind(row.status)
                    .bind(row.outcome.as_str())
                    .bind(row.stream)
                    .bind(row.cache_hit)
                    .bind(row.call_type.as_deref())
                    .bind(row.metadata_json());
            }
            query
        }

        /// Inserts the rows (skipping those already there) and adds the cost of those newly
        /// inserted to the totals, in one transaction. Returns how many rows were new.
        ///
        /// Nearly every batch is all new, and an INSERT's count of rows says so without
        /// returning ids: that is the fast path. When a statement inserted fewer rows than it
        /// had (a retried batch, a replayed spill file), the transaction is rolled back and the
        /// batch written again with `RETURNING id`, so only new rows add to the totals.
        #[allow(dead_code)]
        pub(super) async fn write_spend(
            pool: &sqlx::Pool<$db>,
            rows: &[SpendRow],
        ) -> Result<u64, StoreError> {
            if rows.is_empty() {
                return Ok(0);
            }
            let mut tx = pool.begin().await.map_err(unavailable)?;
            let mut all_new = true;
            for chunk in chunks(rows, $max_chunk) {
                let result = insert(chunk, false)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                if result.rows_affected() != chunk.len() as u64 {
                    all_new = false;
                    break;
                }
            }
            let new_rows: Vec<&SpendRow> = if all_new {
                rows.iter().collect()
            } else {
                tx.rollback().await.map_err(unavailable)?;
                tx = pool.begin().await.map_err(unavailable)?;
                let mut inserted: std::collections::HashMap<String, usize> = Default::default();
                for chunk in chunks(rows, $max_chunk) {
                    let ids = insert(chunk, true)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                    for id in ids {
                        let id: String = sqlx::Row::try_get(&id, 0).map_err(unavailable)?;
                        *inserted.entry(id).or_default() += 1;
                    }
                }
                // A row listed twice in the batch is inserted (and counted) once.
                rows.iter()
                    .filter(|row| match inserted.get_mut(&row.id) {
                        Some(n) if *n > 0 => {
                            *n -= 1;
                            true
                        }
                        _ => false,
                    })
                    .collect()
            };
            for ((owner, id), nanos) in $crate::spend::totals(new_rows.iter().copied()) {
                sqlx::query::<$db>(
                    "INSERT INTO switchyard_spend_totals (kind, id, spend_nanos) \
                     VALUES ($1, $2, $3) ON CONFLICT (kind, id) DO UPDATE \
                     SET spend_nanos = switchyard_spend_totals.spend_nanos + excluded.spend_nanos",
                )
                .bind(owner.name())
                .bind(id)
                .bind(nanos)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            }
            tx.commit().await.map_err(unavailable)?;
            Ok(new_rows.len() as u64)
        }

        pub(super) async fn spend_total(
            pool: &sqlx::Pool<$db>,
            owner: Owner,
            id: &str,
        ) -> Result<i64, StoreError> {
            let total: Option<(i64,)> = sqlx::query_as::<$db, (i64,)>(
                "SELECT spend_nanos FROM switchyard_spend_totals WHERE kind = $1 AND id = $2",
            )
            .bind(owner.name())
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
            Ok(total.map_or(0, |(n,)| n))
        }

        fn push_filter(query: &mut sqlx::QueryBuilder<$db>, filter: &SpendFilter) {
            query.push(" WHERE 1 = 1");
            let columns = [
                ("l.api_key", &filter.api_key),
                ("l.user_id", &filter.user_id),
                ("l.team_id", &filter.team_id),
                ("l.end_user", &filter.end_user),
                ("l.request_id", &filter.request_id),
                ("l.model_group", &filter.model_group),
            ];
            for (column, value) in columns {
                if let Some(value) = value {
                    query.push(format!(" AND {column} = "));
                    query.push_bind(value.clone());
                }
            }
            if let Some(start) = filter.start {
                query.push(" AND l.started_at >= ");
                query.push_bind(start);
            }
            if let Some(end) = filter.end {
                query.push(" AND l.started_at < ");
                query.push_bind(end);
            }
        }

        pub(super) async fn spend_logs(
            pool: &sqlx::Pool<$db>,
            filter: &SpendFilter,
        ) -> Result<Vec<SpendRow>, StoreError> {
            let mut query = sqlx::QueryBuilder::<$db>::new(format!(
                "SELECT {} FROM switchyard_spend_logs l",
                $select
            ));
            push_filter(&mut query, filter);
            query.push(" ORDER BY l.started_at DESC, l.id DESC LIMIT ");
            query.push_bind(i64::from(filter.limit.unwrap_or(1000)));
            let rows = query
                .build()
                .fetch_all(pool)
                .await
                .map_err(unavailable)?;
            rows.iter().map(spend_from_row).collect()
        }

        pub(super) async fn spend_report(
            pool: &sqlx::Pool<$db>,
            filter: &SpendFilter,
            by: &GroupBy,
        ) -> Result<Vec<ReportRow>, StoreError> {
            let mut query = sqlx::QueryBuilder::<$db>::new("SELECT ");
            let from = match by {
                GroupBy::Column(column) => {
                    query.push(format!("l.{column}"));
                    "switchyard_spend_logs l"
                }
                GroupBy::Tag => {
                    query.push("t.value");
                    $tags
                }
                GroupBy::Metadata(key) => {
                    query.push($meta);
                    query.push_bind($meta_bind(key));
                    query.push($meta_end);
                    "switchyard_spend_logs l"
                }
            };
            query.push(
                " AS grp, CAST(COALESCE(SUM(l.cost_nanos), 0) AS BIGINT) AS spend_nanos, \
                 CAST(COUNT(*) AS BIGINT) AS requests, \
                 CAST(COALESCE(SUM(l.prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
                 CAST(COALESCE(SUM(l.completion_tokens), 0) AS BIGINT) AS completion_tokens \
                 FROM ",
            );
            query.push(from);
            push_filter(&mut query, filter);
            query.push(" GROUP BY 1");
            let rows: Vec<(Option<String>, i64, i64, i64, i64)> = query
                .build_query_as()
                .fetch_all(pool)
                .await
                .map_err(unavailable)?;
            let mut out: Vec<ReportRow> = rows
                .into_iter()
                .map(|(group, spend_nanos, requests, prompt_tokens, completion_tokens)| {
                    ReportRow {
                        // The master key's rows have an empty key hash: no key.
                        group: group.filter(|g| !g.is_empty() || !matches!(by, GroupBy::Column("api_key"))),
                        spend_nanos,
                        requests,
                        prompt_tokens,
                        completion_tokens,
                    }
                })
                .collect();
            $crate::spend::sort_report(&mut out);
            Ok(out)
        }

        pub(super) async fn spend_daily(
            pool: &sqlx::Pool<$db>,
            filter: &SpendFilter,
        ) -> Result<Vec<DailyRow>, StoreError> {
            let mut query = sqlx::QueryBuilder::<$db>::new(
                "SELECT CAST(l.started_at / 86400000 AS BIGINT) AS day, l.model_group, \
                 l.requested_model, l.provider, l.api_key, l.key_alias, l.team_id, \
                 CAST(COALESCE(SUM(l.cost_nanos), 0) AS BIGINT), CAST(COUNT(*) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN l.status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(l.prompt_tokens), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(l.completion_tokens), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(l.cached_tokens), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(l.latency_ms), 0) AS BIGINT) \
                 FROM switchyard_spend_logs l",
            );
            push_filter(&mut query, filter);
            query.push(" GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1");
            #[allow(clippy::type_complexity)]
            let rows: Vec<(
                i64,
                Option<String>,
                String,
                Option<String>,
                String,
                Option<String>,
                Option<String>,
                i64,
                i64,
                i64,
                i64,
                i64,
                i64,
                i64,
            )> = query
                .build_query_as()
                .fetch_all(pool)
                .await
                .map_err(unavailable)?;
            Ok(rows
                .into_iter()
                .map(|r| DailyRow {
                    day: r.0,
                    model_group: r.1,
                    requested_model: r.2,
                    provider: r.3,
                    api_key: r.4,
                    key_alias: r.5,
                    team_id: r.6,
                    spend_nanos: r.7,
                    requests: r.8,
                    failed: r.9,
                    prompt_tokens: r.10,
                    completion_tokens: r.11,
                    cached_tokens: r.12,
                    latency_ms: r.13,
                })
                .collect())
        }

        pub(super) async fn delete_spend_before(
            pool: &sqlx::Pool<$db>,
            before: i64,
        ) -> Result<u64, StoreError> {
            sqlx::query::<$db>("DELETE FROM switchyard_spend_logs WHERE started_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
                .map_err(unavailable)
        }
    };
}
pub(super) use spend_queries;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_cut_into_the_fixed_statement_sizes() {
        let sizes = |n: usize, max: usize| {
            let rows = vec![0u8; n];
            chunks(&rows, max).map(<[u8]>::len).collect::<Vec<_>>()
        };
        assert_eq!(sizes(0, 64), Vec::<usize>::new());
        assert_eq!(sizes(1, 64), [1]);
        assert_eq!(sizes(37, 64), [32, 4, 1]);
        assert_eq!(sizes(500, 64), [64, 64, 64, 64, 64, 64, 64, 32, 16, 4]);
        assert_eq!(sizes(512, SQLITE_INSERT_CHUNK), [256, 256]);
        for max in [PG_INSERT_CHUNK, SQLITE_INSERT_CHUNK] {
            for n in 0..700 {
                let cut = sizes(n, max);
                assert_eq!(cut.iter().sum::<usize>(), n);
                assert!(cut
                    .iter()
                    .all(|&size| CHUNK_SIZES.contains(&size) && size <= max));
            }
        }
    }

    #[test]
    fn inserts_use_anonymous_placeholders_on_sqlite_and_numbered_ones_on_postgres() {
        let sqlite = insert_sql(2, false, "", false);
        assert_eq!(sqlite.matches('?').count(), 50);
        assert!(!sqlite.contains('$'));
        assert!(sqlite.ends_with("ON CONFLICT (started_at, id) DO NOTHING"));
        let postgres = insert_sql(2, true, "::jsonb", true);
        assert!(postgres.contains("$25::jsonb), ($26, "));
        assert!(postgres.contains("$50::jsonb) ON CONFLICT"));
        assert!(postgres.ends_with("DO NOTHING RETURNING id"));
    }
}
