//! LiteLLM's daily activity: `GET /user/daily/activity` and `/team/daily/activity`, the shape
//! its admin UI's usage page reads (`SpendAnalyticsPaginatedResponse`): one entry per UTC day
//! with its sums and their breakdown by model, model group, provider and key, and the totals.
//! Built from the spend log, grouped by the database (`Store::spend_daily`). `?format=csv`
//! answers one line per day, model group, provider and key instead.
//!
//! A viewer or admin reads anyone's activity; any other key reads its own user's only (LiteLLM's
//! rule: a non-admin must name its own `user_id`, or none).

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::spend::{csv, param, parse_time, viewer, wants_csv};
use crate::auth::{Principal, Role};
use crate::money::Nanos;
use crate::pipeline::Caller;
use crate::spend::{DailyRow, SpendFilter};
use crate::state::AppState;

type Params = Query<Map<String, Value>>;

/// LiteLLM's `SpendMetrics`, summed in integers.
#[derive(Debug, Default, Clone, Copy)]
struct Metrics {
    spend_nanos: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    requests: i64,
    failed: i64,
    latency_ms: i64,
}

impl Metrics {
    fn add(&mut self, row: &DailyRow) {
        self.spend_nanos = self.spend_nanos.saturating_add(row.spend_nanos);
        self.prompt_tokens = self.prompt_tokens.saturating_add(row.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(row.completion_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(row.cached_tokens);
        self.requests = self.requests.saturating_add(row.requests);
        self.failed = self.failed.saturating_add(row.failed);
        self.latency_ms = self.latency_ms.saturating_add(row.latency_ms);
    }

    fn json(&self) -> Value {
        json!({
            "spend": Nanos(self.spend_nanos).as_usd(),
            "spend_nanos": self.spend_nanos,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cache_read_input_tokens": self.cached_tokens,
            "cache_creation_input_tokens": 0,
            "total_tokens": self.prompt_tokens.saturating_add(self.completion_tokens),
            "successful_requests": self.requests - self.failed,
            "failed_requests": self.failed,
            "api_requests": self.requests,
            "total_response_time_ms": self.latency_ms,
            "timed_requests": self.requests,
        })
    }

    fn totals(&self, page: usize, total_pages: usize) -> Value {
        json!({
            "total_spend": Nanos(self.spend_nanos).as_usd(),
            "total_spend_nanos": self.spend_nanos,
            "total_prompt_tokens": self.prompt_tokens,
            "total_completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens.saturating_add(self.completion_tokens),
            "total_api_requests": self.requests,
            "total_successful_requests": self.requests - self.failed,
            "total_failed_requests": self.failed,
            "total_cache_read_input_tokens": self.cached_tokens,
            "total_cache_creation_input_tokens": 0,
            "total_response_time_ms": self.latency_ms,
            "total_timed_requests": self.requests,
            "page": page,
            "total_pages": total_pages,
            "has_more": page < total_pages,
        })
    }
}

/// One day: its metrics and their breakdowns.
#[derive(Default)]
struct Day {
    metrics: Metrics,
    models: BTreeMap<String, Metrics>,
    model_groups: BTreeMap<String, Metrics>,
    providers: BTreeMap<String, Metrics>,
    /// key hash → (metrics, alias, team)
    api_keys: BTreeMap<String, (Metrics, Option<String>, Option<String>)>,
}

impl Day {
    fn json(&self, day: i64) -> Value {
        let plain = |map: &BTreeMap<String, Metrics>| -> Value {
            map.iter()
                .map(|(name, m)| {
                    (
                        name.clone(),
                        json!({"metrics": m.json(), "metadata": {}, "api_key_breakdown": {}}),
                    )
                })
                .collect::<Map<String, Value>>()
                .into()
        };
        let keys: Map<String, Value> = self
            .api_keys
            .iter()
            .map(|(hash, (m, alias, team))| {
                (
                    hash.clone(),
                    json!({"metrics": m.json(), "metadata": {"key_alias": alias, "team_id": team}}),
                )
            })
            .collect();
        json!({
            "date": date(day),
            "metrics": self.metrics.json(),
            "breakdown": {
                "models": plain(&self.models),
                "model_groups": plain(&self.model_groups),
                "providers": plain(&self.providers),
                "api_keys": keys,
                "mcp_servers": {},
                "endpoints": {},
                "entities": {},
            },
        })
    }
}

/// `YYYY-MM-DD` of a day number.
fn date(day: i64) -> String {
    let (year, month, mday) = crate::calendar::civil_from_days(day);
    format!("{year:04}-{month:02}-{mday:02}")
}

/// The master key's rows carry no key hash; LiteLLM reports such spend as unattributed.
fn key_name(hash: &str) -> String {
    if hash.is_empty() {
        "unattributed".to_owned()
    } else {
        hash.to_owned()
    }
}

fn number(
    query: &Map<String, Value>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match param(query, name) {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    format!("`{name}` must be a whole number from 1 to {max}"),
                    Some(name),
                )
            }),
    }
}

/// The filter: a date range is required (`start_date`, `end_date`, days, both inclusive).
fn filter(query: &Map<String, Value>) -> Result<SpendFilter, ApiError> {
    let day = |name: &str, end: bool| -> Result<i64, ApiError> {
        let text = param(query, name).ok_or_else(|| {
            ApiError::bad_request("Please provide start_date and end_date", Some(name))
        })?;
        parse_time(text, end).ok_or_else(|| {
            ApiError::bad_request(
                format!("`{name}` must be a date such as 2026-12-01"),
                Some(name),
            )
        })
    };
    Ok(SpendFilter {
        start: Some(day("start_date", false)?),
        end: Some(day("end_date", true)?),
        api_key: param(query, "api_key").map(crate::auth::keys::token_of),
        model_group: param(query, "model").map(str::to_owned),
        ..SpendFilter::default()
    })
}

/// Who may read whose activity: viewers anyone's, other keys their own user's only.
fn scope_to_caller(caller: &Caller, wanted: Option<&str>) -> Result<Option<String>, ApiError> {
    if caller.principal.role() >= Role::Viewer {
        return Ok(wanted.map(str::to_owned));
    }
    let own = match &caller.principal {
        Principal::Key(resolved) => resolved.key.user_id.clone(),
        _ => None,
    };
    match (own, wanted) {
        (Some(own), None) => Ok(Some(own)),
        (Some(own), Some(wanted)) if own == wanted => Ok(Some(own)),
        _ => Err(ApiError::Forbidden(
            "a key may read the daily activity of its own user_id only".into(),
        )),
    }
}

/// `GET /user/daily/activity?start_date=&end_date=&user_id=&model=&api_key=&page=&page_size=`.
pub async fn user(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Params,
) -> Result<Response, ApiError> {
    let mut filter = filter(&query)?;
    filter.user_id = scope_to_caller(&caller, param(&query, "user_id"))?;
    activity(&state, &query, &filter).await
}

/// `GET /team/daily/activity?start_date=&end_date=&team_ids=&model=&api_key=&page=&page_size=`
/// (one team in `team_ids`, or all teams). Viewers and admins only.
pub async fn team(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Params,
) -> Result<Response, ApiError> {
    viewer(&caller)?;
    let mut filter = filter(&query)?;
    if let Some(teams) = param(&query, "team_ids").or_else(|| param(&query, "team_id")) {
        if teams.contains(',') {
            return Err(ApiError::bad_request(
                "`team_ids` takes one team here; ask once per team",
                Some("team_ids"),
            ));
        }
        filter.team_id = Some(teams.to_owned());
    }
    activity(&state, &query, &filter).await
}

async fn activity(
    state: &AppState,
    query: &Map<String, Value>,
    filter: &SpendFilter,
) -> Result<Response, ApiError> {
    let page = number(query, "page", 1, usize::MAX)?;
    let page_size = number(query, "page_size", 50, 1000)?;
    let rows = state.store.spend_daily(filter).await?;
    if wants_csv(query) {
        let header = "date,model_group,model,provider,api_key,key_alias,team_id,spend,api_requests,failed_requests,prompt_tokens,completion_tokens,cache_read_input_tokens,total_response_time_ms";
        return Ok(csv(
            header,
            rows.iter().map(|r| {
                vec![
                    date(r.day),
                    r.model_group.clone().unwrap_or_default(),
                    r.requested_model.clone(),
                    r.provider.clone().unwrap_or_default(),
                    key_name(&r.api_key),
                    r.key_alias.clone().unwrap_or_default(),
                    r.team_id.clone().unwrap_or_default(),
                    Nanos(r.spend_nanos).to_string(),
                    r.requests.to_string(),
                    r.failed.to_string(),
                    r.prompt_tokens.to_string(),
                    r.completion_tokens.to_string(),
                    r.cached_tokens.to_string(),
                    r.latency_ms.to_string(),
                ]
            }),
        ));
    }
    let mut days: BTreeMap<i64, Day> = BTreeMap::new();
    let mut total = Metrics::default();
    for row in &rows {
        total.add(row);
        let day = days.entry(row.day).or_default();
        day.metrics.add(row);
        day.models
            .entry(row.requested_model.clone())
            .or_default()
            .add(row);
        if let Some(group) = &row.model_group {
            day.model_groups.entry(group.clone()).or_default().add(row);
        }
        if let Some(provider) = &row.provider {
            day.providers.entry(provider.clone()).or_default().add(row);
        }
        let key = day
            .api_keys
            .entry(key_name(&row.api_key))
            .or_insert_with(|| {
                (
                    Metrics::default(),
                    row.key_alias.clone(),
                    row.team_id.clone(),
                )
            });
        key.0.add(row);
    }
    let total_pages = days.len().div_ceil(page_size).max(1);
    let results: Vec<Value> = days
        .iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|(day, sums)| sums.json(*day))
        .collect();
    Ok(
        Json(json!({"results": results, "metadata": total.totals(page, total_pages)}))
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_print_as_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(20_429), "2025-12-07");
    }
}
