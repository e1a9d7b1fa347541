//! Model access: which model groups a caller may use. A model is allowed when every list that
//! applies allows it — the key's `models`, its team's `models`, and the end user's `models`
//! (an empty list allows everything). A list entry is a model group, an access group
//! (`model_info.access_groups`), `*` / `all-proxy-models`, or, on a key, `all-team-models`
//! (defer to the team's list). Body `fallbacks` are held to the same rule.

use crate::auth::Principal;
use crate::router::Router;
use crate::store::EndUserRecord;

/// Which list refused, for the error type LiteLLM clients look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// `key_model_access_denied`, `team_model_access_denied` or `end_user_model_access_denied`.
    pub kind: &'static str,
    pub model: String,
    /// The list that refused, as configured.
    pub allowed: Vec<String>,
}

impl Denied {
    pub fn message(&self) -> String {
        let who = match self.kind {
            "team_model_access_denied" => "team",
            "end_user_model_access_denied" => "end user",
            _ => "key",
        };
        format!(
            "{who} not allowed to access model `{}`. This {who} can only access models={:?}",
            self.model, self.allowed
        )
    }
}

fn allows(list: &[String], model: &str, router: &Router) -> bool {
    list.is_empty()
        || list.iter().any(|entry| {
            entry == model
                || entry == "*"
                || entry == "all-proxy-models"
                || router.access_group(entry).iter().any(|g| g == model)
        })
}

/// Whether the caller (and the request's end user) may use `model`.
pub fn check(
    principal: &Principal,
    end_user: Option<&EndUserRecord>,
    router: &Router,
    model: &str,
) -> Result<(), Denied> {
    let denied = |kind, allowed: &[String]| Denied {
        kind,
        model: model.to_owned(),
        allowed: allowed.to_vec(),
    };
    if let Principal::Key(resolved) = principal {
        let key_models = &resolved.key.models;
        let defers_to_team = key_models.iter().any(|m| m == "all-team-models");
        if !defers_to_team && !allows(key_models, model, router) {
            return Err(denied("key_model_access_denied", key_models));
        }
        if let Some(team) = &resolved.team {
            if !allows(&team.models, model, router) {
                return Err(denied("team_model_access_denied", &team.models));
            }
        }
        if resolved.team.is_none() {
            if let Some(user) = &resolved.user {
                if !allows(&user.models, model, router) {
                    return Err(denied("key_model_access_denied", &user.models));
                }
            }
        }
    }
    if let Some(end_user) = end_user {
        if !allows(&end_user.models, model, router) {
            return Err(denied("end_user_model_access_denied", &end_user.models));
        }
    }
    Ok(())
}
