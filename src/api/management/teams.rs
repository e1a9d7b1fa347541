//! `/team/*`: teams own keys; a team's models and limits apply to every key in it.

use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Map, Value};

use super::{
    cached, delete_all, flag, iso, now, require, required, rest, strings, text, Body, Kind, Limits,
};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::pipeline::Caller;
use crate::state::AppState;
use crate::store::{Identities, KeyFilter, Page, TeamMember, TeamRecord};

const KNOWN: &[&str] = &[
    "team_id",
    "team_alias",
    "models",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "members_with_roles",
    "members",
    "metadata",
    "tags",
    "blocked",
];

pub fn team_json(team: &TeamRecord) -> Value {
    let mut out = team.extra.clone();
    let members: Vec<Value> = team
        .members
        .iter()
        .map(|m| json!({"user_id": m.user_id, "user_email": m.user_email, "role": m.role}))
        .collect();
    if let Value::Object(fields) = json!({
        "team_id": team.team_id,
        "team_alias": team.team_alias,
        "models": team.models,
        "rpm_limit": team.rpm_limit,
        "tpm_limit": team.tpm_limit,
        "max_parallel_requests": team.max_parallel_requests,
        "members_with_roles": members,
        "metadata": team.metadata,
        "tags": team.tags,
        "blocked": team.blocked,
        "created_at": iso(team.created_at),
        "updated_at": iso(team.updated_at),
    }) {
        out.extend(fields);
    }
    Value::Object(out)
}

fn members(value: &Value) -> Result<Vec<TeamMember>, ApiError> {
    let items = match value {
        Value::Array(items) => items.clone(),
        Value::Object(_) => vec![value.clone()],
        _ => {
            return Err(ApiError::bad_request(
                "`member` must be an object or a list of {role, user_id, user_email}",
                Some("member"),
            ))
        }
    };
    items
        .iter()
        .map(|item| {
            let get = |k: &str| item.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            let member = TeamMember {
                user_id: get("user_id"),
                user_email: get("user_email"),
                role: get("role").unwrap_or_else(|| "user".into()),
            };
            if member.user_id.is_none() && member.user_email.is_none() {
                return Err(ApiError::bad_request(
                    "a member needs a `user_id` or a `user_email`",
                    Some("member"),
                ));
            }
            if member.role != "admin" && member.role != "user" {
                return Err(ApiError::bad_request(
                    "a member's `role` is `admin` or `user`",
                    Some("member"),
                ));
            }
            Ok(member)
        })
        .collect()
}

fn apply(team: &mut TeamRecord, body: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(alias) = text(body, "team_alias")? {
        team.team_alias = Some(alias);
    }
    Limits {
        models: &mut team.models,
        rpm_limit: &mut team.rpm_limit,
        tpm_limit: &mut team.tpm_limit,
        max_parallel_requests: &mut team.max_parallel_requests,
        metadata: &mut team.metadata,
    }
    .apply(body)?;
    if let Some(value) = body.get("members_with_roles").filter(|v| !v.is_null()) {
        team.members = members(value)?;
    }
    if let Some(tags) = strings(body, "tags")? {
        team.tags = tags;
    }
    if let Some(blocked) = flag(body, "blocked")? {
        team.blocked = blocked;
    }
    team.extra.extend(rest(body, KNOWN)?);
    Ok(())
}

async fn save(state: &AppState, team: TeamRecord) -> Result<Value, ApiError> {
    state.store.put_team(&team).await?;
    let answer = team_json(&team);
    cached(
        state,
        Identities {
            teams: vec![team],
            ..Identities::default()
        },
        |_| {},
    );
    Ok(answer)
}

async fn find(state: &AppState, team_id: &str) -> Result<TeamRecord, ApiError> {
    state
        .store
        .team(team_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("team `{team_id}` not found")))
}

/// `POST /team/new`: `team_id` is made (a UUID-like id) when not given.
pub async fn new(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let team_id = match text(&body, "team_id")? {
        Some(id) => {
            if state.store.team(&id).await?.is_some() {
                return Err(ApiError::bad_request(
                    format!("team `{id}` already exists"),
                    Some("team_id"),
                ));
            }
            id
        }
        None => new_id(),
    };
    let now = now();
    let mut team = TeamRecord {
        team_id,
        created_at: now,
        updated_at: now,
        ..TeamRecord::default()
    };
    apply(&mut team, &body)?;
    Ok(Json(save(&state, team).await?))
}

/// A random id in the UUID v4 text form.
pub fn new_id() -> String {
    let bits = fastrand::u128(..);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..]
    )
}

/// `POST /team/update`.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let mut team = find(&state, &required(&body, "team_id")?).await?;
    apply(&mut team, &body)?;
    team.updated_at = now().max(team.updated_at + 1);
    let data = save(&state, team).await?;
    Ok(Json(json!({"team_id": data["team_id"], "data": data})))
}

/// `GET /team/info?team_id=`: any team for admins and viewers; a key reads its own team.
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let asked = query
        .get("team_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let own = caller.principal.team().map(|t| t.team_id.clone());
    let team_id = match (asked, own) {
        (Some(id), _) if caller.principal.role() >= Role::Viewer => id,
        (Some(id), Some(own)) if id == own => id,
        (None, Some(own)) => own,
        (None, None) => {
            return Err(ApiError::bad_request(
                "`team_id` is required",
                Some("team_id"),
            ))
        }
        _ => {
            return Err(ApiError::Forbidden(
                "a key may only read its own team".into(),
            ))
        }
    };
    let team = find(&state, &team_id).await?;
    let filter = KeyFilter {
        team_id: Some(team_id.clone()),
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
    let team_info = super::with_spend(
        &state,
        crate::spend::Owner::Team,
        &team_id,
        team_json(&team),
    )
    .await?;
    Ok(Json(
        json!({"team_id": team_id, "team_info": team_info, "keys": keys}),
    ))
}

/// `GET /team/list`.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Viewer)?;
    let teams = state.store.list_teams().await?;
    Ok(Json(Value::Array(teams.iter().map(team_json).collect())))
}

/// `POST /team/delete` with `{"team_ids": [...]}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    Ok(Json(delete_all(&state, &body, Kind::Team).await?))
}

/// `POST /team/member_add` with `{"team_id", "member": {role, user_id} | [...]}`.
pub async fn member_add(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let mut team = find(&state, &required(&body, "team_id")?).await?;
    let added = members(body.get("member").unwrap_or(&Value::Null))?;
    for member in added {
        team.members.retain(|m| {
            !(m.user_id.is_some() && m.user_id == member.user_id
                || m.user_email.is_some() && m.user_email == member.user_email)
        });
        team.members.push(member);
    }
    team.updated_at = now().max(team.updated_at + 1);
    Ok(Json(save(&state, team).await?))
}

/// `POST /team/member_delete` with `{"team_id", "user_id" | "user_email"}`.
pub async fn member_delete(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    require(&caller.principal, Role::Admin)?;
    let mut team = find(&state, &required(&body, "team_id")?).await?;
    let user_id = text(&body, "user_id")?;
    let email = text(&body, "user_email")?;
    if user_id.is_none() && email.is_none() {
        return Err(ApiError::bad_request(
            "`user_id` or `user_email` is required",
            Some("user_id"),
        ));
    }
    let before = team.members.len();
    team.members.retain(|m| {
        !(user_id.is_some() && m.user_id == user_id || email.is_some() && m.user_email == email)
    });
    if team.members.len() == before {
        return Err(ApiError::NotFound("no such member in the team".into()));
    }
    team.updated_at = now().max(team.updated_at + 1);
    Ok(Json(save(&state, team).await?))
}
