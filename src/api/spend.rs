//! LiteLLM's spend reports: `/spend/logs`, `/spend/tags`, `/spend/keys`, `/spend/users` and
//! `/global/spend/report`, read from the spend log (`spend/`). Admins and viewers only. Sums
//! are integers taken by the database (nano-dollars); `spend` fields are those in dollars.
//! `?format=csv` answers `text/csv` instead of JSON.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::management::iso;
use crate::auth::Role;
use crate::money::Nanos;
use crate::pipeline::Caller;
use crate::spend::{GroupBy, ReportRow, SpendFilter, SpendRow};
use crate::state::AppState;

type Params = Query<Map<String, Value>>;

pub(super) fn param<'a>(query: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    query
        .get(name)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

pub(super) fn viewer(caller: &Caller) -> Result<(), ApiError> {
    if caller.principal.role() >= Role::Viewer {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only the master key, proxy_admin or proxy_admin_viewer users may read spend reports"
                .into(),
        ))
    }
}

/// The filter of a report's query string. `start_date` and `end_date` are days (`2026-12-01`,
/// `end_date` inclusive), ISO times (`2026-12-01T10:00:00Z`) or Unix milliseconds.
fn filter(query: &Map<String, Value>) -> Result<SpendFilter, ApiError> {
    let date = |name: &str, end: bool| -> Result<Option<i64>, ApiError> {
        param(query, name)
            .map(|text| {
                parse_time(text, end).ok_or_else(|| {
                    ApiError::bad_request(
                        format!("`{name}` must be a date (2026-12-01), an ISO time or Unix milliseconds"),
                        Some(name),
                    )
                })
            })
            .transpose()
    };
    let limit =
        match param(query, "limit") {
            None => None,
            Some(text) => Some(text.parse::<u32>().map_err(|_| {
                ApiError::bad_request("`limit` must be a whole number", Some("limit"))
            })?),
        };
    Ok(SpendFilter {
        api_key: param(query, "api_key").map(crate::auth::keys::token_of),
        user_id: param(query, "user_id").map(str::to_owned),
        team_id: param(query, "team_id").map(str::to_owned),
        end_user: param(query, "end_user")
            .or_else(|| param(query, "customer_id"))
            .map(str::to_owned),
        request_id: param(query, "request_id").map(str::to_owned),
        model_group: param(query, "model").map(str::to_owned),
        start: date("start_date", false)?,
        end: date("end_date", true)?,
        limit: Some(limit.unwrap_or(1000).min(100_000)),
    })
}

/// A day, an ISO time (UTC, `Z` or no zone) or Unix milliseconds, as Unix milliseconds. A day
/// used as an end means the end of that day.
pub fn parse_time(text: &str, end: bool) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.len() > 8 {
        return text.parse().ok();
    }
    let (day, time) = match text.split_once(['T', ' ']) {
        Some((day, time)) => (day, Some(time)),
        None => (text, None),
    };
    let mut parts = day.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let mday: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&mday) {
        return None;
    }
    let days = days_from_civil(year, month, mday);
    let Some(time) = time else {
        return Some((days + i64::from(end)) * 86_400_000);
    };
    let time = time.trim_end_matches('Z').trim_end_matches("+00:00");
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut hms = hms.split(':');
    let hour: i64 = hms.next()?.parse().ok()?;
    let minute: i64 = hms.next().unwrap_or("0").parse().ok()?;
    let second: i64 = hms.next().unwrap_or("0").parse().ok()?;
    let millis: i64 = if frac.is_empty() {
        0
    } else {
        format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?
    };
    Some(days * 86_400_000 + hour * 3_600_000 + minute * 60_000 + second * 1000 + millis)
}

/// Howard Hinnant's days_from_civil.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(super) fn wants_csv(query: &Map<String, Value>) -> bool {
    param(query, "format").is_some_and(|f| f.eq_ignore_ascii_case("csv"))
}

/// One spend-log row as LiteLLM's `SpendLogs` names its fields, with Switchyard's own after.
fn row_json(row: &SpendRow) -> Value {
    let end = row.started_at + row.latency_ms;
    json!({
        "request_id": row.request_id,
        "call_type": match (row.call_type.as_deref(), row.stream) {
            // Rows from before the column: every one was a chat completion then.
            (None | Some("acompletion"), true) => "acompletion_stream",
            (None, false) => "acompletion",
            (Some(call_type), _) => call_type,
        },
        "api_key": row.api_key,
        "spend": Nanos(row.cost_nanos).as_usd(),
        "total_tokens": row.prompt_tokens.saturating_add(row.completion_tokens),
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "startTime": iso(row.started_at),
        "endTime": iso(end),
        "completionStartTime": row.ttft_ms.map(|t| iso(row.started_at + t)),
        "model": row.requested_model,
        "model_id": row.deployment_id,
        "model_group": row.model_group,
        "custom_llm_provider": row.provider,
        "user": row.user_id,
        "team_id": row.team_id,
        "end_user": row.end_user,
        "metadata": row.metadata.clone().unwrap_or_default(),
        "cache_hit": if row.cache_hit { "True" } else { "False" },
        "status": if (200..400).contains(&row.status) { "success" } else { "failure" },
        "request_tags": row.metadata.as_ref().and_then(|m| m.get("tags")).cloned().unwrap_or(json!([])),
        "id": row.id,
        "key_alias": row.key_alias,
        "spend_nanos": row.cost_nanos,
        "cost_source": row.cost_source,
        "cached_tokens": row.cached_tokens,
        "latency_ms": row.latency_ms,
        "ttft_ms": row.ttft_ms,
        "http_status": row.status,
        "outcome": row.outcome,
        "stream": row.stream,
    })
}

fn csv_field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

pub(super) fn csv(header_line: &str, rows: impl IntoIterator<Item = Vec<String>>) -> Response {
    let mut out = String::from(header_line);
    out.push('\n');
    for row in rows {
        for (i, field) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, field);
        }
        out.push('\n');
    }
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response()
}

/// `GET /spend/logs?api_key=&user_id=&team_id=&request_id=&start_date=&end_date=&limit=`.
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Params,
) -> Result<Response, ApiError> {
    viewer(&caller)?;
    let rows = state.store.spend_logs(&filter(&query)?).await?;
    if wants_csv(&query) {
        let header = "id,request_id,start_time,api_key,key_alias,team_id,user_id,end_user,model,model_group,provider,prompt_tokens,completion_tokens,cached_tokens,spend,cost_source,latency_ms,status,outcome,stream,cache_hit,metadata";
        return Ok(csv(
            header,
            rows.iter().map(|r| {
                vec![
                    r.id.clone(),
                    r.request_id.clone(),
                    iso(r.started_at),
                    r.api_key.clone(),
                    r.key_alias.clone().unwrap_or_default(),
                    r.team_id.clone().unwrap_or_default(),
                    r.user_id.clone().unwrap_or_default(),
                    r.end_user.clone().unwrap_or_default(),
                    r.requested_model.clone(),
                    r.model_group.clone().unwrap_or_default(),
                    r.provider.clone().unwrap_or_default(),
                    r.prompt_tokens.to_string(),
                    r.completion_tokens.to_string(),
                    r.cached_tokens.to_string(),
                    Nanos(r.cost_nanos).to_string(),
                    r.cost_source.clone(),
                    r.latency_ms.to_string(),
                    r.status.to_string(),
                    r.outcome.clone(),
                    r.stream.to_string(),
                    r.cache_hit.to_string(),
                    r.metadata_json().unwrap_or_default(),
                ]
            }),
        ));
    }
    Ok(Json(Value::Array(rows.iter().map(row_json).collect())).into_response())
}

/// A grouped report as JSON objects (`name` is the group's field) or CSV.
fn grouped(query: &Map<String, Value>, name: &str, rows: &[ReportRow]) -> Response {
    if wants_csv(query) {
        let header = format!("{name},spend,requests,prompt_tokens,completion_tokens,total_tokens");
        return csv(
            &header,
            rows.iter().map(|r| {
                vec![
                    r.group.clone().unwrap_or_default(),
                    Nanos(r.spend_nanos).to_string(),
                    r.requests.to_string(),
                    r.prompt_tokens.to_string(),
                    r.completion_tokens.to_string(),
                    r.prompt_tokens
                        .saturating_add(r.completion_tokens)
                        .to_string(),
                ]
            }),
        );
    }
    let items = rows
        .iter()
        .map(|r| {
            let mut item = Map::new();
            item.insert(name.to_owned(), json!(r.group));
            item.insert("spend".into(), json!(Nanos(r.spend_nanos).as_usd()));
            item.insert("spend_nanos".into(), json!(r.spend_nanos));
            item.insert("requests".into(), json!(r.requests));
            item.insert("prompt_tokens".into(), json!(r.prompt_tokens));
            item.insert("completion_tokens".into(), json!(r.completion_tokens));
            item.insert(
                "total_tokens".into(),
                json!(r.prompt_tokens.saturating_add(r.completion_tokens)),
            );
            Value::Object(item)
        })
        .collect();
    Json(Value::Array(items)).into_response()
}

async fn report(
    state: &AppState,
    caller: &Caller,
    query: &Map<String, Value>,
    by: GroupBy,
    name: &str,
) -> Result<Response, ApiError> {
    viewer(caller)?;
    let rows = state.store.spend_report(&filter(query)?, &by).await?;
    Ok(grouped(query, name, &rows))
}

/// `GET /spend/tags`: spend per entry of the requests' `metadata.tags` (LiteLLM's
/// `individual_request_tag` and `log_count` fields are there too).
pub async fn tags(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Params,
) -> Result<Response, ApiError> {
    viewer(&caller)?;
    let rows = state
        .store
        .spend_report(&filter(&query)?, &GroupBy::Tag)
        .await?;
    if wants_csv(&query) {
        return Ok(grouped(&query, "tag", &rows));
    }
    let items = rows
        .iter()
        .map(|r| {
            json!({
                "individual_request_tag": r.group,
                "log_count": r.requests,
                "total_spend": Nanos(r.spend_nanos).as_usd(),
                "spend_nanos": r.spend_nanos,
            })
        })
        .collect();
    Ok(Json(Value::Array(items)).into_response())
}

/// `GET /spend/keys`: spend per key (its SHA-256, as LiteLLM's `token`).
pub async fn keys(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Params,
) -> Result<Response, ApiError> {
    report(&state, &caller, &query, GroupBy::Column("api_key"), "token").await
}

/// `GET /spend/users`: spend per internal user.
pub async fn users(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Params,
) -> Result<Response, ApiError> {
    report(
        &state,
        &caller,
        &query,
        GroupBy::Column("user_id"),
        "user_id",
    )
    .await
}

/// `GET /global/spend/report?start_date=&end_date=&group_by=team|key|user|end_user|customer|
/// model|provider|tag|<metadata key>`: one object per group (default `team`).
pub async fn global_report(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Params,
) -> Result<Response, ApiError> {
    let name = param(&query, "group_by").unwrap_or("team").to_owned();
    let by = GroupBy::parse(&name).map_err(|m| ApiError::bad_request(m, Some("group_by")))?;
    report(&state, &caller, &query, by, "group").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("1970-01-02", false), Some(86_400_000));
        assert_eq!(parse_time("1970-01-01", true), Some(86_400_000));
        assert_eq!(
            parse_time("2025-12-02T03:04:05.678Z", false),
            Some(1_764_644_645_678)
        );
        assert_eq!(parse_time("1764644645678", false), Some(1_764_644_645_678));
        assert_eq!(parse_time("yesterday", false), None);
        assert_eq!(parse_time("2025-13-01", false), None);
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut out = String::new();
        csv_field(&mut out, "a,\"b\"");
        assert_eq!(out, "\"a,\"\"b\"\"\"");
    }
}
