//! `/customer/*` (and the same routes under `/end_user/*`): end users, the `user` field of a
//! request. A blocked end user is refused; an end user's models and limits apply to its
//! requests whatever key they come with.

use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Map, Value};

use super::{
    cached, delete_all, flag, iso, now, require, required, required_ids, rest, text, Body, Kind,
    Limits,
};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::pipeline::Caller;
use crate::state::AppState;
use crate::store::{EndUserRecord, Identities};

const KNOWN: &[&str] = &[
    "user_id",
    "alias",
    "blocked",
    "models",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "metadata",
];

pub fn end_user_json(end_user: &EndUserRecord) -> Value {
    let mut out = end_user.extra.clone();
    if let Value::Object(fields) = json!({
        "user_id": end_user.user_id,
        "alias": end_user.alias,
        "blocked": end_user.blocked,
        "models": end_user.models,
        "rpm_limit": end_user.rpm_limit,
        "tpm_limit": end_user.tpm_limit,
        "max_parallel_requests": end_user.max_parallel_requests,
        "metadata": end_user.metadata,
        "created_at": iso(end_user.created_at),
        "updated_at": iso(end_user.updated_at),
    }) {
        out.extend(fields);
    }
    Value::Object(out)
}

fn apply(end_user: &mut EndUserRecord, body: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(alias) = text(body, "alias")? {
        end_user.alias = Some(alias);
    }
    if let Some(blocked) = flag(body, "blocked")? {
        end_user.blocked = blocked;
    }
    Limits {
        models: &mut end_user.models,
        rpm_limit: &mut end_user.rpm_limit,
        tpm_limit: &mut end_user.tpm_limit,
        max_parallel_requests: &mut end_user.max_parallel_requests,
        metadata: &mut end_user.metadata,
    }
    .apply(body)?;
    end_user.extra.extend(rest(body, KNOWN)?);
    Ok(())
}

async fn save(state: &AppState, end_user: EndUserRecord) -> Result<Value, ApiError> {
    state.store.put_end_user(&end_user).await?;
    let answer = end_user_json(&end_user);
    cached(
        state,
        Identities {
            end_users: vec![end_user],
            ..Identities::default()
        },
        |_| {},
    );
    Ok(answer)
}

async fn find(state: &AppState, user_id: &str) -> Result<EndUserRecord, ApiError> {
    state
        .store
        .end_user(user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("end user `{user_id}` not found")))
}

pub async fn new(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let user_id = required(&body, "user_id")?;
    if state.store.end_user(&user_id).await?.is_some() {
        return Err(ApiError::bad_request(
            format!("end user `{user_id}` already exists"),
            Some("user_id"),
        ));
    }
    let now = now();
    let mut end_user = EndUserRecord {
        user_id,
        created_at: now,
        updated_at: now,
        ..EndUserRecord::default()
    };
    apply(&mut end_user, &body)?;
    Ok(Json(save(&state, end_user).await?))
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let mut end_user = find(&state, &required(&body, "user_id")?).await?;
    apply(&mut end_user, &body)?;
    end_user.updated_at = now().max(end_user.updated_at + 1);
    Ok(Json(save(&state, end_user).await?))
}

/// `GET /customer/info?end_user_id=` (LiteLLM's parameter; `user_id` works too).
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Viewer)?;
    let id = query
        .get("end_user_id")
        .or_else(|| query.get("user_id"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| ApiError::bad_request("`end_user_id` is required", Some("end_user_id")))?;
    let end_user = end_user_json(&find(&state, id).await?);
    Ok(Json(
        super::with_spend(&state, crate::spend::Owner::EndUser, id, end_user).await?,
    ))
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Viewer)?;
    let all = state.store.list_end_users().await?;
    Ok(Json(Value::Array(all.iter().map(end_user_json).collect())))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    Ok(Json(delete_all(&state, &body, Kind::EndUser).await?))
}

async fn set_blocked(
    state: AppState,
    caller: Caller,
    body: Map<String, Value>,
    blocked: bool,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let ids = required_ids(&body, "user_ids")?;
    let mut updated = Vec::new();
    for id in &ids {
        // LiteLLM blocks end users it has not seen yet too: they are made, blocked.
        let now = now();
        let mut end_user = state.store.end_user(id).await?.unwrap_or(EndUserRecord {
            user_id: id.clone(),
            created_at: now,
            ..EndUserRecord::default()
        });
        end_user.blocked = blocked;
        end_user.updated_at = now.max(end_user.updated_at + 1);
        updated.push(save(&state, end_user).await?);
    }
    Ok(Json(
        json!({"blocked_users": if blocked { ids.clone() } else { Vec::new() }, "updated": updated}),
    ))
}

pub async fn block(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    set_blocked(state, caller, body, true).await
}

pub async fn unblock(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    set_blocked(state, caller, body, false).await
}
