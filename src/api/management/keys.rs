//! `/key/*`: virtual keys. A key is shown once, in the answer of `/key/generate` (or
//! `/key/regenerate`); the gateway stores only its SHA-256. Every route that names a key takes
//! the key or its hash (`token`), as LiteLLM's do.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Map, Value};

use super::{
    cached, counts, duration_ms, field, flag, iso, now, page, require, required, rest, strings,
    text, Body, Limits,
};
use crate::api::error::ApiError;
use crate::auth::{keys, Principal, Role};
use crate::pipeline::Caller;
use crate::state::AppState;
use crate::store::{Identities, KeyFilter, KeyRecord};

/// Fields of a key request this module reads; everything else is kept in `extra`.
const KNOWN: &[&str] = &[
    "key",
    "key_alias",
    "models",
    "duration",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "model_rpm_limit",
    "model_tpm_limit",
    "metadata",
    "tags",
    "team_id",
    "user_id",
    "allowed_routes",
    "blocked",
    "expires",
    "new_key",
    "token",
];

/// The key as LiteLLM shows it. `key` is the raw key right after it was made, else the hash.
pub fn key_json(record: &KeyRecord, raw_key: Option<&str>) -> Value {
    let mut out = Map::new();
    for (k, v) in &record.extra {
        out.insert(k.clone(), v.clone());
    }
    let fields = json!({
        "key": raw_key.unwrap_or(&record.token),
        "token": record.token,
        "key_name": record.key_name,
        "key_alias": record.key_alias,
        "models": record.models,
        "rpm_limit": record.rpm_limit,
        "tpm_limit": record.tpm_limit,
        "max_parallel_requests": record.max_parallel_requests,
        "model_rpm_limit": record.model_rpm_limit,
        "model_tpm_limit": record.model_tpm_limit,
        "metadata": record.metadata,
        "tags": record.tags,
        "team_id": record.team_id,
        "user_id": record.user_id,
        "allowed_routes": record.allowed_routes,
        "expires": record.expires.map(iso),
        "blocked": record.blocked,
        "created_by": record.created_by,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    });
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    Value::Object(out)
}

/// Applies the fields present in `body` to `record` (absent or null fields are left alone, as
/// LiteLLM's update does).
fn apply(record: &mut KeyRecord, body: &Map<String, Value>, now: i64) -> Result<(), ApiError> {
    if let Some(alias) = text(body, "key_alias")? {
        record.key_alias = Some(alias);
    }
    Limits {
        models: &mut record.models,
        rpm_limit: &mut record.rpm_limit,
        tpm_limit: &mut record.tpm_limit,
        max_parallel_requests: &mut record.max_parallel_requests,
        metadata: &mut record.metadata,
    }
    .apply(body)?;
    if let Some(limits) = counts(body, "model_rpm_limit")? {
        record.model_rpm_limit = limits;
    }
    if let Some(limits) = counts(body, "model_tpm_limit")? {
        record.model_tpm_limit = limits;
    }
    if let Some(tags) = strings(body, "tags")? {
        record.tags = tags;
    }
    if let Some(team) = text(body, "team_id")? {
        record.team_id = Some(team);
    }
    if let Some(user) = text(body, "user_id")? {
        record.user_id = Some(user);
    }
    if let Some(routes) = strings(body, "allowed_routes")? {
        record.allowed_routes = routes;
    }
    if let Some(blocked) = flag(body, "blocked")? {
        record.blocked = blocked;
    }
    if let Some(duration) = text(body, "duration")? {
        let ms = duration_ms(&duration).ok_or_else(|| {
            ApiError::bad_request(
                format!(
                    "`duration` must look like 30s, 30m, 30h, 30d, 2w or 1mo, got `{duration}`"
                ),
                Some("duration"),
            )
        })?;
        record.expires = Some(now + ms);
    }
    record.extra.extend(rest(body, KNOWN)?);
    Ok(())
}

fn who(principal: &Principal) -> Option<String> {
    match principal {
        Principal::Master | Principal::Open => Some("master_key".into()),
        Principal::Key(resolved) => resolved
            .key
            .user_id
            .clone()
            .or_else(|| Some(principal.label().into_owned())),
    }
}

/// `POST /key/generate`.
pub async fn generate(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let raw = match text(&body, "key")? {
        Some(custom) if custom.starts_with("sk-") && custom.len() >= 12 => custom,
        Some(_) => {
            return Err(ApiError::bad_request(
                "a custom `key` must start with `sk-` and have at least 12 characters",
                Some("key"),
            ))
        }
        None => keys::generate()
            .map_err(|_| ApiError::bad_request("the system random source failed", None))?,
    };
    let now = now();
    let mut record = KeyRecord {
        token: keys::hash(&raw),
        key_name: keys::abbreviate(&raw),
        created_by: who(&caller.principal),
        created_at: now,
        updated_at: now,
        ..KeyRecord::default()
    };
    apply(&mut record, &body, now)?;
    check_owner_exists(&state, &record)?;
    state.store.insert_key(&record).await?;
    let answer = key_json(&record, Some(&raw));
    cached(
        &state,
        Identities {
            keys: vec![record],
            ..Identities::default()
        },
        |_| {},
    );
    Ok(Json(answer))
}

/// A key's team and user must exist (LiteLLM refuses unknown teams too).
fn check_owner_exists(state: &AppState, record: &KeyRecord) -> Result<(), ApiError> {
    if let Some(team) = &record.team_id {
        if state.identities.team(team).is_none() {
            return Err(ApiError::bad_request(
                format!("team `{team}` does not exist; create it with /team/new first"),
                Some("team_id"),
            ));
        }
    }
    Ok(())
}

/// The stored key a request names (`key` as the key or its hash).
async fn find(state: &AppState, key_or_hash: &str) -> Result<KeyRecord, ApiError> {
    let token = keys::token_of(key_or_hash);
    state
        .store
        .key(&token)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("key {} not found", shown(key_or_hash))))
}

/// How a key named in a request may appear in an answer: its hash as given, or `sk-...abcd`.
fn shown(key_or_hash: &str) -> String {
    if keys::is_hash(key_or_hash) {
        key_or_hash.to_owned()
    } else {
        keys::abbreviate(key_or_hash)
    }
}

async fn write(state: &AppState, record: KeyRecord) -> Result<Value, ApiError> {
    state.store.update_key(&record).await?;
    let answer = key_json(&record, None);
    cached(
        state,
        Identities {
            keys: vec![record],
            ..Identities::default()
        },
        |_| {},
    );
    Ok(answer)
}

/// `POST /key/update`: answers `{"key": <as sent>, ...the updated key}`.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let key = required(&body, "key")?;
    let mut record = find(&state, &key).await?;
    let now = now();
    apply(&mut record, &body, now)?;
    record.updated_at = now.max(record.updated_at + 1);
    check_owner_exists(&state, &record)?;
    let mut answer = write(&state, record).await?;
    answer["key"] = Value::String(key);
    Ok(Json(answer))
}

async fn set_blocked(
    state: AppState,
    caller: Caller,
    body: Map<String, Value>,
    blocked: bool,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let key = required(&body, "key")?;
    let mut record = find(&state, &key).await?;
    record.blocked = blocked;
    record.updated_at = now().max(record.updated_at + 1);
    Ok(Json(write(&state, record).await?))
}

/// `POST /key/block`.
pub async fn block(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    set_blocked(state, caller, body, true).await
}

/// `POST /key/unblock`.
pub async fn unblock(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    set_blocked(state, caller, body, false).await
}

/// `POST /key/delete` with `{"keys": [...]}` (keys or hashes) or `{"key_aliases": [...]}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let by_key = strings(&body, "keys")?;
    let by_alias = strings(&body, "key_aliases")?;
    let (named, tokens) = match (by_key, by_alias) {
        (Some(keys), _) if !keys.is_empty() => {
            let tokens = keys.iter().map(|k| keys::token_of(k)).collect::<Vec<_>>();
            (keys, tokens)
        }
        (_, Some(aliases)) if !aliases.is_empty() => {
            let mut tokens = Vec::new();
            for alias in &aliases {
                let record =
                    state.store.key_by_alias(alias).await?.ok_or_else(|| {
                        ApiError::NotFound(format!("no key with alias `{alias}`"))
                    })?;
                tokens.push(record.token);
            }
            (aliases, tokens)
        }
        _ => {
            return Err(ApiError::bad_request(
                "At least one of 'keys' or 'key_aliases' must be provided.",
                Some("keys"),
            ))
        }
    };
    // Check all first, so a bad name deletes nothing.
    for (name, token) in named.iter().zip(&tokens) {
        if state.store.key(token).await?.is_none() {
            return Err(ApiError::NotFound(format!("key {} not found", shown(name))));
        }
    }
    for token in &tokens {
        state.store.delete_key(token).await?;
    }
    cached(&state, Identities::default(), |changes| {
        changes.deleted_keys = tokens.clone()
    });
    Ok(Json(json!({ "deleted_keys": named })))
}

/// `POST /key/regenerate` (`{"key": ...}`) and `POST /key/{key}/regenerate`: a new key with the
/// same settings (and any given in the body); the old one stops working at once.
pub async fn regenerate(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let key = required(&body, "key")?;
    regenerate_key(state, caller, key, body).await
}

pub async fn regenerate_path(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    regenerate_key(state, caller, key, body).await
}

async fn regenerate_key(
    state: AppState,
    caller: Caller,
    key: String,
    mut body: Map<String, Value>,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let old = find(&state, &key).await?;
    let raw = match text(&body, "new_key")? {
        Some(custom) if custom.starts_with("sk-") && custom.len() >= 12 => custom,
        Some(_) => {
            return Err(ApiError::bad_request(
                "`new_key` must start with `sk-` and have at least 12 characters",
                Some("new_key"),
            ))
        }
        None => keys::generate()
            .map_err(|_| ApiError::bad_request("the system random source failed", None))?,
    };
    body.remove("key");
    let now = now();
    let mut record = KeyRecord {
        token: keys::hash(&raw),
        key_name: keys::abbreviate(&raw),
        created_at: now,
        updated_at: now,
        ..old.clone()
    };
    // The alias moves to the new key: take it off the old one first.
    state.store.delete_key(&old.token).await?;
    apply(&mut record, &body, now)?;
    state.store.insert_key(&record).await?;
    let answer = key_json(&record, Some(&raw));
    cached(
        &state,
        Identities {
            keys: vec![record],
            ..Identities::default()
        },
        |changes| changes.deleted_keys = vec![old.token.clone()],
    );
    Ok(Json(answer))
}

/// `GET /key/info?key=...`: any key for admins and viewers; a plain key reads only itself
/// (and may leave `key` out).
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let asked = query.get("key").and_then(|v| v.as_str()).map(str::to_owned);
    let own = caller.principal.key().cloned();
    let record: Arc<KeyRecord> = match (&asked, &own) {
        (Some(key), _) if caller.principal.role() >= Role::Viewer => {
            Arc::new(find(&state, key).await?)
        }
        (Some(key), Some(own)) if keys::token_of(key) == own.token => own.clone(),
        (None, Some(own)) => own.clone(),
        (None, None) => {
            return Err(ApiError::bad_request("`key` is required", Some("key")));
        }
        _ => {
            return Err(ApiError::Forbidden(
                "a key may only read its own /key/info".into(),
            ))
        }
    };
    let shown_key = asked.unwrap_or_else(|| record.token.clone());
    let mut info = key_json(&record, None);
    if let Value::Object(map) = &mut info {
        map.remove("key");
    }
    let info = super::with_spend(&state, crate::spend::Owner::Key, &record.token, info).await?;
    Ok(Json(json!({ "key": shown_key, "info": info })))
}

/// `GET /key/list?page=1&size=100&team_id=&user_id=&key_alias=&return_full_object=true`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Viewer)?;
    let param = |name: &str| query.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let filter = KeyFilter {
        team_id: param("team_id"),
        user_id: param("user_id"),
        key_alias: param("key_alias"),
    };
    let page = page(&query);
    let (records, total) = state.store.list_keys(&filter, page).await?;
    let full = field(&query, "return_full_object")
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
    let keys: Vec<Value> = records
        .iter()
        .map(|r| {
            if full {
                key_json(r, None)
            } else {
                Value::String(r.token.clone())
            }
        })
        .collect();
    let size = u64::from(page.size);
    Ok(Json(json!({
        "keys": keys,
        "total_count": total,
        "current_page": page.number,
        "total_pages": total.div_ceil(size),
    })))
}
