//! `/user/*`: internal users. A user's role decides what its keys may do on the management
//! routes (`proxy_admin`, `proxy_admin_viewer`, `internal_user`, `internal_user_viewer`); its
//! models and limits apply to its keys. `/user/new` also makes a key for the user unless
//! `auto_create_key: false`, as LiteLLM does.

use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Map, Value};

use super::teams::new_id;
use super::{
    cached, delete_all, flag, iso, now, page, require, required, rest, strings, text, Body, Kind,
    Limits,
};
use crate::api::error::ApiError;
use crate::auth::{keys, Role};
use crate::pipeline::Caller;
use crate::state::AppState;
use crate::store::{Identities, KeyFilter, KeyRecord, Page, UserRecord};

const ROLES: &[&str] = &[
    "proxy_admin",
    "proxy_admin_viewer",
    "internal_user",
    "internal_user_viewer",
];

const KNOWN: &[&str] = &[
    "user_id",
    "user_email",
    "user_alias",
    "user_role",
    "models",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "teams",
    "metadata",
    "auto_create_key",
    "key_alias",
    "duration",
    "send_invite_email",
];

pub fn user_json(user: &UserRecord) -> Value {
    let mut out = user.extra.clone();
    if let Value::Object(fields) = json!({
        "user_id": user.user_id,
        "user_email": user.user_email,
        "user_alias": user.user_alias,
        "user_role": user.user_role,
        "models": user.models,
        "rpm_limit": user.rpm_limit,
        "tpm_limit": user.tpm_limit,
        "max_parallel_requests": user.max_parallel_requests,
        "teams": user.teams,
        "metadata": user.metadata,
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
    }) {
        out.extend(fields);
    }
    Value::Object(out)
}

fn apply(user: &mut UserRecord, body: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(email) = text(body, "user_email")? {
        user.user_email = Some(email);
    }
    if let Some(alias) = text(body, "user_alias")? {
        user.user_alias = Some(alias);
    }
    if let Some(role) = text(body, "user_role")? {
        if !ROLES.contains(&role.as_str()) {
            return Err(ApiError::bad_request(
                format!("`user_role` must be one of {}", ROLES.join(", ")),
                Some("user_role"),
            ));
        }
        user.user_role = role;
    }
    Limits {
        models: &mut user.models,
        rpm_limit: &mut user.rpm_limit,
        tpm_limit: &mut user.tpm_limit,
        max_parallel_requests: &mut user.max_parallel_requests,
        metadata: &mut user.metadata,
    }
    .apply(body)?;
    if let Some(teams) = strings(body, "teams")? {
        user.teams = teams;
    }
    user.extra.extend(rest(body, KNOWN)?);
    Ok(())
}

async fn find(state: &AppState, user_id: &str) -> Result<UserRecord, ApiError> {
    state
        .store
        .user(user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user `{user_id}` not found")))
}

/// `POST /user/new`.
pub async fn new(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let user_id = text(&body, "user_id")?.unwrap_or_else(new_id);
    if state.store.user(&user_id).await?.is_some() {
        return Err(ApiError::bad_request(
            format!("user `{user_id}` already exists"),
            Some("user_id"),
        ));
    }
    let now = now();
    let mut user = UserRecord {
        user_id: user_id.clone(),
        user_role: "internal_user".into(),
        created_at: now,
        updated_at: now,
        ..UserRecord::default()
    };
    apply(&mut user, &body)?;
    state.store.put_user(&user).await?;
    let mut answer = user_json(&user);
    let mut written = Identities {
        users: vec![user],
        ..Identities::default()
    };
    if flag(&body, "auto_create_key")? != Some(false) {
        let raw = keys::generate()
            .map_err(|_| ApiError::bad_request("the system random source failed", None))?;
        let mut key = KeyRecord {
            token: keys::hash(&raw),
            key_name: keys::abbreviate(&raw),
            key_alias: text(&body, "key_alias")?,
            user_id: Some(user_id),
            created_by: Some(caller.principal.label().into_owned()),
            created_at: now,
            updated_at: now,
            ..KeyRecord::default()
        };
        if let Some(duration) = text(&body, "duration")? {
            key.expires = super::duration_ms(&duration).map(|ms| now + ms);
        }
        state.store.insert_key(&key).await?;
        answer["key"] = Value::String(raw);
        answer["token"] = Value::String(key.token.clone());
        written.keys.push(key);
    }
    cached(&state, written, |_| {});
    Ok(Json(answer))
}

/// `POST /user/update`.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let user_id = required(&body, "user_id")?;
    let mut user = find(&state, &user_id).await?;
    apply(&mut user, &body)?;
    user.updated_at = now().max(user.updated_at + 1);
    state.store.put_user(&user).await?;
    let answer = user_json(&user);
    cached(
        &state,
        Identities {
            users: vec![user],
            ..Identities::default()
        },
        |_| {},
    );
    Ok(Json(json!({"user_id": user_id, "data": answer})))
}

/// `GET /user/info?user_id=`: any user for admins and viewers; a key reads its own user.
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let asked = query
        .get("user_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let own = caller.principal.key().and_then(|k| k.user_id.clone());
    let user_id = match (asked, own) {
        (Some(id), _) if caller.principal.role() >= Role::Viewer => id,
        (Some(id), Some(own)) if id == own => id,
        (None, Some(own)) => own,
        (None, None) => {
            return Err(ApiError::bad_request(
                "`user_id` is required",
                Some("user_id"),
            ))
        }
        _ => {
            return Err(ApiError::Forbidden(
                "a key may only read its own user".into(),
            ))
        }
    };
    let user = find(&state, &user_id).await?;
    let filter = KeyFilter {
        user_id: Some(user_id.clone()),
        ..KeyFilter::default()
    };
    let (keys, _) = state
        .store
        .list_keys(
            &filter,
            Page {
                number: 1,
                size: 1000,
            },
        )
        .await?;
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| super::keys::key_json(k, None))
        .collect();
    let mut teams = Vec::new();
    for team_id in &user.teams {
        if let Some(team) = state.store.team(team_id).await? {
            teams.push(super::teams::team_json(&team));
        }
    }
    let user_info = super::with_spend(
        &state,
        crate::spend::Owner::User,
        &user_id,
        user_json(&user),
    )
    .await?;
    Ok(Json(
        json!({"user_id": user_id, "user_info": user_info, "keys": keys, "teams": teams}),
    ))
}

/// `GET /user/list?page=1&page_size=25`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Viewer)?;
    let page = page(&query);
    let (users, total) = state.store.list_users(page).await?;
    let size = u64::from(page.size);
    Ok(Json(json!({
        "users": users.iter().map(user_json).collect::<Vec<_>>(),
        "total": total,
        "page": page.number,
        "page_size": page.size,
        "total_pages": total.div_ceil(size),
    })))
}

/// `POST /user/delete` with `{"user_ids": [...]}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    Ok(Json(delete_all(&state, &body, Kind::User).await?))
}
