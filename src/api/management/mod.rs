//! LiteLLM's management API: virtual keys (`keys.rs`), teams (`teams.rs`), internal users
//! (`users.rs`) and end users, LiteLLM's "customers" (`customers.rs`), with its request and
//! response shapes so scripts written for the LiteLLM proxy work unchanged.
//!
//! Every write goes to the store first, then into this instance's identity cache at once;
//! other instances pick it up from the store within a second (`auth/cache.rs`). Roles: the
//! master key and `proxy_admin` users may do everything, `proxy_admin_viewer` users may read
//! everything, a plain key may only read its own key, user and team.

mod customers;
mod keys;
mod teams;
mod users;

use axum::routing::{get, post};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::auth::{Principal, Role};
use crate::state::AppState;
use crate::store::{Changes, Identities, Millis, StoreError};

pub fn routes() -> axum::Router<AppState> {
    let customers = || {
        axum::Router::new()
            .route("/new", post(customers::new))
            .route("/update", post(customers::update))
            .route("/info", get(customers::info))
            .route("/list", get(customers::list))
            .route("/delete", post(customers::delete))
            .route("/block", post(customers::block))
            .route("/unblock", post(customers::unblock))
    };
    axum::Router::new()
        .route("/key/generate", post(keys::generate))
        .route("/key/update", post(keys::update))
        .route("/key/delete", post(keys::delete))
        .route("/key/regenerate", post(keys::regenerate))
        .route("/key/{key}/regenerate", post(keys::regenerate_path))
        .route("/key/block", post(keys::block))
        .route("/key/unblock", post(keys::unblock))
        .route("/key/info", get(keys::info))
        .route("/key/list", get(keys::list))
        .route("/team/new", post(teams::new))
        .route("/team/update", post(teams::update))
        .route("/team/info", get(teams::info))
        .route("/team/list", get(teams::list))
        .route("/team/delete", post(teams::delete))
        .route("/team/member_add", post(teams::member_add))
        .route("/team/member_delete", post(teams::member_delete))
        .route("/user/new", post(users::new))
        .route("/user/update", post(users::update))
        .route("/user/info", get(users::info))
        .route("/user/list", get(users::list))
        .route("/user/delete", post(users::delete))
        .nest("/customer", customers())
        .nest("/end_user", customers())
}

/// Refuses callers below `needed`.
fn require(principal: &Principal, needed: Role) -> Result<(), ApiError> {
    if principal.role() >= needed {
        return Ok(());
    }
    Err(ApiError::Forbidden(match needed {
        Role::Admin => {
            "only the master key or a proxy_admin user may call this management route".into()
        }
        _ => "this key may only read its own key, user and team".into(),
    }))
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) | StoreError::Migration(_) => {
                ApiError::StoreUnavailable(error.to_string())
            }
            StoreError::Conflict(what) => {
                ApiError::bad_request(format!("{what} already exists"), None)
            }
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
        }
    }
}

/// Applies a write to this instance's cache at once.
fn cached(state: &AppState, written: Identities, deleted: impl FnOnce(&mut Changes)) {
    let mut changes = Changes {
        written,
        ..Changes::default()
    };
    deleted(&mut changes);
    state.identities.apply(changes);
}

/// Sets `spend` (dollars, as LiteLLM shows it) on an identity's JSON from the spend totals.
async fn with_spend(
    state: &AppState,
    owner: crate::spend::Owner,
    id: &str,
    mut record: Value,
) -> Result<Value, ApiError> {
    let spend = state.store.spend_total(owner, id).await?;
    if let Value::Object(map) = &mut record {
        map.insert("spend".into(), Value::from(spend.as_usd()));
    }
    Ok(record)
}

fn now() -> Millis {
    crate::auth::cache::now_ms()
}

/// A management request's JSON object, read like every other body (bounded, any content type,
/// since `curl -d` sends a form type; errors are 400s that say what is wrong). An empty body is
/// an empty object, so a missing field is reported by name.
pub struct Body(pub Map<String, Value>);

impl axum::extract::FromRequest<AppState> for Body {
    type Rejection = axum::response::Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let limit = state.snapshot().max_request_bytes;
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge { limit }.into_response())?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Map::new()));
        }
        let body = super::body::parse_json::<Map<String, Value>>(&bytes)
            .map_err(IntoResponse::into_response)?;
        // PostgreSQL refuses NUL in text and JSON: a clear 400 here, not a 503 from the store.
        if body.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) {
            return Err(ApiError::bad_request(
                "strings in a management request may not contain NUL (\\u0000) characters",
                None,
            )
            .into_response());
        }
        Ok(Body(body))
    }
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn text(body: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match field(body, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(
            format!("`{name}` must be a string"),
            Some(name),
        )),
    }
}

/// A string field the request cannot do without: a 400 naming it when absent.
fn required(body: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    text(body, name)?
        .ok_or_else(|| ApiError::bad_request(format!("`{name}` is required"), Some(name)))
}

/// A non-empty list of ids the request cannot do without (`team_ids`, `user_ids`).
fn required_ids(body: &Map<String, Value>, name: &str) -> Result<Vec<String>, ApiError> {
    strings(body, name)?
        .filter(|ids| !ids.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("`{name}` is required"), Some(name)))
}

fn count(body: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiError> {
    match field(body, name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!("`{name}` must be a whole number ≥ 0"), Some(name))
            }),
    }
}

fn strings(body: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    match field(body, name) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!("`{name}` must be a list of strings"), Some(name))
            }),
        Some(_) => Err(ApiError::bad_request(
            format!("`{name}` must be a list of strings"),
            Some(name),
        )),
    }
}

fn object(body: &Map<String, Value>, name: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    match field(body, name) {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map.clone())),
        Some(_) => Err(ApiError::bad_request(
            format!("`{name}` must be an object"),
            Some(name),
        )),
    }
}

fn counts(
    body: &Map<String, Value>,
    name: &str,
) -> Result<Option<std::collections::BTreeMap<String, u64>>, ApiError> {
    let Some(map) = object(body, name)? else {
        return Ok(None);
    };
    map.into_iter()
        .map(|(k, v)| {
            v.as_u64().map(|n| (k.clone(), n)).ok_or_else(|| {
                ApiError::bad_request(
                    format!("`{name}.{k}` must be a whole number ≥ 0"),
                    Some(name),
                )
            })
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

fn flag(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match field(body, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::bad_request(
            format!("`{name}` must be true or false"),
            Some(name),
        )),
    }
}

/// The access and limit fields every identity has (`models`, `rpm_limit`, `tpm_limit`,
/// `max_parallel_requests`, `metadata`), applied where the body sets them.
struct Limits<'a> {
    models: &'a mut Vec<String>,
    rpm_limit: &'a mut Option<u64>,
    tpm_limit: &'a mut Option<u64>,
    max_parallel_requests: &'a mut Option<u64>,
    metadata: &'a mut Map<String, Value>,
}

impl Limits<'_> {
    fn apply(self, body: &Map<String, Value>) -> Result<(), ApiError> {
        if let Some(models) = strings(body, "models")? {
            *self.models = models;
        }
        for (name, slot) in [
            ("rpm_limit", self.rpm_limit),
            ("tpm_limit", self.tpm_limit),
            ("max_parallel_requests", self.max_parallel_requests),
        ] {
            if let Some(n) = count(body, name)? {
                *slot = Some(n);
            }
        }
        if let Some(metadata) = object(body, "metadata")? {
            *self.metadata = metadata;
        }
        Ok(())
    }
}

/// Which identities a delete names.
#[derive(Clone, Copy)]
enum Kind {
    Team,
    User,
    EndUser,
}

/// Deletes every id named in `body[field]`, or none if one is unknown; answers
/// `{"<answer>": [ids]}`.
async fn delete_all(
    state: &AppState,
    body: &Map<String, Value>,
    kind: Kind,
) -> Result<Value, ApiError> {
    let (field, answer, what) = match kind {
        Kind::Team => ("team_ids", "deleted_teams", "team"),
        Kind::User => ("user_ids", "deleted_users", "user"),
        Kind::EndUser => ("user_ids", "deleted_end_users", "end user"),
    };
    let ids = required_ids(body, field)?;
    for id in &ids {
        let exists = match kind {
            Kind::Team => state.store.team(id).await?.is_some(),
            Kind::User => state.store.user(id).await?.is_some(),
            Kind::EndUser => state.store.end_user(id).await?.is_some(),
        };
        if !exists {
            return Err(ApiError::NotFound(format!("{what} `{id}` not found")));
        }
    }
    for id in &ids {
        match kind {
            Kind::Team => state.store.delete_team(id).await?,
            Kind::User => state.store.delete_user(id).await?,
            Kind::EndUser => state.store.delete_end_user(id).await?,
        };
    }
    cached(state, Identities::default(), |changes| {
        let list = match kind {
            Kind::Team => &mut changes.deleted_teams,
            Kind::User => &mut changes.deleted_users,
            Kind::EndUser => &mut changes.deleted_end_users,
        };
        list.clone_from(&ids);
    });
    let mut out = Map::new();
    out.insert(answer.into(), Value::from(ids));
    Ok(Value::Object(out))
}

/// The fields of `body` a handler did not read, kept as LiteLLM sent them.
fn rest(body: &Map<String, Value>, known: &[&str]) -> Result<Map<String, Value>, ApiError> {
    check_budget(body)?;
    Ok(body
        .iter()
        .filter(|(k, v)| !known.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

/// The budget fields (kept in `extra`, read by `policy::budget`) must mean something: a budget
/// that silently does not apply is worse than a 400.
fn check_budget(body: &Map<String, Value>) -> Result<(), ApiError> {
    for field in ["max_budget", "soft_budget"] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(value) if value.as_f64().is_some_and(|v| v >= 0.0 && v.is_finite()) => {}
            Some(value) => {
                return Err(ApiError::bad_request(
                    format!("`{field}` must be a number of dollars, 0 or more, got {value}"),
                    Some(field),
                ))
            }
        }
    }
    match body.get("budget_duration") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(text)) => crate::policy::budget::Period::parse(text)
            .map(|_| ())
            .map_err(|problem| {
                ApiError::bad_request(
                    format!("`budget_duration` {problem}"),
                    Some("budget_duration"),
                )
            }),
        Some(value) => Err(ApiError::bad_request(
            format!("`budget_duration` must be a string such as \"30d\" or \"1mo\", got {value}"),
            Some("budget_duration"),
        )),
    }
}

/// Unix milliseconds as LiteLLM's ISO-8601 timestamps (`2026-12-02T03:04:05.678000Z`).
pub fn iso(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = crate::calendar::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// LiteLLM's durations: `30s`, `30m`, `30h`, `30d`, `2w`, `1mo` (30 days).
pub fn duration_ms(text: &str) -> Option<Millis> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "mo" => 30 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

fn page(query: &Map<String, Value>) -> crate::store::Page {
    let number = |name: &str, default: u32| {
        query
            .get(name)
            .and_then(|v| {
                v.as_str()
                    .and_then(|s| s.parse().ok())
                    .or(v.as_u64().map(|n| n as u32))
            })
            .unwrap_or(default)
    };
    crate::store::Page {
        number: number("page", 1).max(1),
        size: number("size", number("page_size", 100)).clamp(1, 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps_and_durations() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso(1_764_644_645_678), "2025-12-02T03:04:05.678000Z");
        assert_eq!(duration_ms("30s"), Some(30_000));
        assert_eq!(duration_ms("2h"), Some(7_200_000));
        assert_eq!(duration_ms("1mo"), Some(2_592_000_000));
        assert_eq!(duration_ms("x"), None);
        assert_eq!(duration_ms("10y"), None);
    }
}
