//! Spend-log SQL shared by SQLite and PostgreSQL. The two differ in how JSON is bound and read
//! and how a report unnests tags; [`spend_queries!`] writes the functions once for each, with
//! those pieces as arguments. Every sum is taken by the database over integers (nano-dollars,
//! tokens) and cast to BIGINT (PostgreSQL's SUM of BIGINT is NUMERIC).

use super::sql::Cols;
use super::StoreError;
use crate::spend::SpendRow;

/// Rows per INSERT statement (a batch is several, in one transaction). Small statements keep
/// each step of the writer short: one statement of hundreds of rows (thousands of parameters
/// to encode, and for PostgreSQL to parse) took long enough, on a busy two-core machine, to
/// delay requests' Redis rate-limit calls past their 75 ms timeout
/// (tests/limits.rs `two_instances_...` went flaky); 50 rows measured no such effect.
pub(super) const INSERT_CHUNK: usize = 50;

pub(super) const COLUMNS: &str = "id, request_id, started_at, api_key, key_alias, team_id, \
    user_id, end_user, requested_model, model_group, deployment_id, provider, prompt_tokens, \
    completion_tokens, cached_tokens, cost_nanos, cost_source, latency_ms, ttft_ms, status, \
    outcome, stream, cache_hit, metadata";

/// The columns as PostgreSQL's SELECTs read them (JSONB as text).
pub(super) const PG_COLUMNS: &str = "id, request_id, started_at, api_key, key_alias, team_id, \
    user_id, end_user, requested_model, model_group, deployment_id, provider, prompt_tokens, \
    completion_tokens, cached_tokens, cost_nanos, cost_source, latency_ms, ttft_ms, status, \
    outcome, stream, cache_hit, metadata::text AS metadata";

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
        metadata,
    })
}

/// Writes the spend functions for one backend:
/// - `$db`: the sqlx database type;
/// - `$json_cast`: what follows a bound JSON text (`""` or `"::jsonb"`);
/// - `$select`: the column list as read back (JSON as text);
/// - `$tags`: the FROM clause that yields one row per tag as `t.value`;
/// - `$meta`, `$meta_end`: the expression of a metadata key around `$meta_bind(key)`.
macro_rules! spend_queries {
    ($db:ty, $json_cast:expr, $select:expr, $tags:expr, $meta:expr, $meta_end:expr, $meta_bind:expr) => {
        use $crate::spend::{DailyRow, GroupBy, Owner, ReportRow, SpendFilter, SpendRow};
        #[allow(unused_imports)]
        use $crate::store::spend_sql::{spend_from_row, COLUMNS, INSERT_CHUNK, PG_COLUMNS};

        /// Inserts the rows (ignoring ids already there) and adds the cost of those newly
        /// inserted to the totals, in one transaction. Returns how many rows were new.
        pub(super) async fn write_spend(
            pool: &sqlx::Pool<$db>,
            rows: &[SpendRow],
        ) -> Result<u64, StoreError> {
            if rows.is_empty() {
                return Ok(0);
            }
            let mut tx = pool.begin().await.map_err(unavailable)?;
            let mut inserted: std::collections::HashSet<String> = Default::default();
            for chunk in rows.chunks(INSERT_CHUNK) {
                let mut query = sqlx::QueryBuilder::<$db>::new(format!(
                    "INSERT INTO switchyard_spend_logs ({COLUMNS}) "
                ));
                query.push_values(chunk, |mut b, row| {
                    b.push_bind(row.id.clone())
                        .push_bind(row.request_id.clone())
                        .push_bind(row.started_at)
                        .push_bind(row.api_key.clone())
                        .push_bind(row.key_alias.clone())
                        .push_bind(row.team_id.clone())
                        .push_bind(row.user_id.clone())
                        .push_bind(row.end_user.clone())
                        .push_bind(row.requested_model.clone())
                        .push_bind(row.model_group.clone())
                        .push_bind(row.deployment_id.clone())
                        .push_bind(row.provider.clone())
                        .push_bind(row.prompt_tokens)
                        .push_bind(row.completion_tokens)
                        .push_bind(row.cached_tokens)
                        .push_bind(row.cost_nanos)
                        .push_bind(row.cost_source.clone())
                        .push_bind(row.latency_ms)
                        .push_bind(row.ttft_ms)
                        .push_bind(row.status)
                        .push_bind(row.outcome.clone())
                        .push_bind(row.stream)
                        .push_bind(row.cache_hit)
                        .push_bind(row.metadata_json())
                        .push_unseparated($json_cast);
                });
                query.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
                let ids: Vec<(String,)> = query
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                inserted.extend(ids.into_iter().map(|(id,)| id));
            }
            let totals =
                $crate::spend::totals(rows.iter().filter(|row| inserted.contains(&row.id)));
            for ((owner, id), nanos) in totals {
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
            Ok(inserted.len() as u64)
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
            type Daily = (
                i64,
                Option<String>,
                String,
                Option<String>,
                String,
                Option<String>,
                Option<String>,
                (i64, i64, i64, i64, i64, i64, i64),
            );
            let rows = query.build().fetch_all(pool).await.map_err(unavailable)?;
            rows.iter()
                .map(|row| {
                    use sqlx::Row as _;
                    let get = |i: usize| row.try_get::<i64, _>(i);
                    let daily: Result<Daily, sqlx::Error> = (|| {
                        Ok((
                            get(0)?,
                            row.try_get(1)?,
                            row.try_get(2)?,
                            row.try_get(3)?,
                            row.try_get(4)?,
                            row.try_get(5)?,
                            row.try_get(6)?,
                            (get(7)?, get(8)?, get(9)?, get(10)?, get(11)?, get(12)?, get(13)?),
                        ))
                    })();
                    let (day, model_group, requested_model, provider, api_key, key_alias, team_id, sums) =
                        daily.map_err(unavailable)?;
                    Ok(DailyRow {
                        day,
                        model_group,
                        requested_model,
                        provider,
                        api_key,
                        key_alias,
                        team_id,
                        spend_nanos: sums.0,
                        requests: sums.1,
                        failed: sums.2,
                        prompt_tokens: sums.3,
                        completion_tokens: sums.4,
                        cached_tokens: sums.5,
                        latency_ms: sums.6,
                    })
                })
                .collect()
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
