//! Rate limits in the pre-call stage: which limits apply to a request, taking them all or none
//! (the engine in `limits/`), OpenAI's `x-ratelimit-*` headers, and the token reconciliation
//! when the request finished.
//!
//! Limits come from the key (`rpm_limit`, `tpm_limit`, `max_parallel_requests`, and
//! `model_rpm_limit` / `model_tpm_limit` for the requested model), its team, its user, and the
//! end user (`user` in the body). The tightest one decides, and a refusal names it. Tokens are
//! reserved from the prompt's estimate (4 bytes a token) and corrected with the usage the
//! provider reported when the request finished; the completion is not reserved up front, so a
//! key's budget is never blocked by a generous `max_tokens` that is not used.
//!
//! A request with no limit that applies (the master key, a key without limits) never calls the
//! limiter: the common case costs nothing.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::limits::{
    format_duration, key_model_id, Check, Denial, Grant, Kind, Limiter, Quota, Scope, Slot,
};
use crate::auth::Principal;
use crate::store::EndUserRecord;

/// One limit of an admitted request, owned so it can be reconciled after the answer.
#[derive(Debug)]
struct Limit {
    scope: Scope,
    id: String,
    kind: Kind,
    value: u64,
    cost: u64,
}

/// The limits a request took, until it finishes.
#[derive(Debug)]
pub struct Admission {
    limits: Vec<Limit>,
    pub grant: Grant,
}

struct Plan {
    limits: Vec<Limit>,
    slots: Vec<(Scope, String, u32)>,
}

fn plan(
    principal: &Principal,
    end_user: Option<&EndUserRecord>,
    model: &str,
    prompt_tokens: &(dyn Fn() -> u64 + Sync),
) -> Plan {
    let mut plan = Plan {
        limits: Vec::new(),
        slots: Vec::new(),
    };
    let mut add =
        |scope: Scope, id: &str, rpm: Option<u64>, tpm: Option<u64>, parallel: Option<u64>| {
            if let Some(rpm) = rpm {
                plan.limits.push(Limit {
                    scope,
                    id: id.to_owned(),
                    kind: Kind::Requests,
                    value: rpm,
                    cost: 1,
                });
            }
            if let Some(tpm) = tpm {
                plan.limits.push(Limit {
                    scope,
                    id: id.to_owned(),
                    kind: Kind::Tokens,
                    value: tpm,
                    cost: prompt_tokens(),
                });
            }
            if let Some(max) = parallel {
                plan.slots
                    .push((scope, id.to_owned(), max.min(u64::from(u32::MAX)) as u32));
            }
        };
    if let Principal::Key(resolved) = principal {
        let key = &resolved.key;
        add(
            Scope::Key,
            &key.token,
            key.rpm_limit,
            key.tpm_limit,
            key.max_parallel_requests,
        );
        let model_rpm = key.model_rpm_limit.get(model).copied();
        let model_tpm = key.model_tpm_limit.get(model).copied();
        if model_rpm.is_some() || model_tpm.is_some() {
            add(
                Scope::KeyModel,
                &key_model_id(&key.token, model),
                model_rpm,
                model_tpm,
                None,
            );
        }
        if let Some(team) = &resolved.team {
            add(
                Scope::Team,
                &team.team_id,
                team.rpm_limit,
                team.tpm_limit,
                team.max_parallel_requests,
            );
        }
        if let Some(user) = &resolved.user {
            add(
                Scope::User,
                &user.user_id,
                user.rpm_limit,
                user.tpm_limit,
                user.max_parallel_requests,
            );
        }
    }
    if let Some(end_user) = end_user {
        add(
            Scope::EndUser,
            &end_user.user_id,
            end_user.rpm_limit,
            end_user.tpm_limit,
            end_user.max_parallel_requests,
        );
    }
    plan
}

/// Takes every limit that applies to the request, or refuses it naming the one that tripped.
/// `None` when no limit applies.
pub async fn admit(
    limiter: &dyn Limiter,
    principal: &Principal,
    end_user: Option<&EndUserRecord>,
    model: &str,
    prompt_tokens: &(dyn Fn() -> u64 + Sync),
) -> Result<Option<Admission>, Denial> {
    let plan = plan(principal, end_user, model, prompt_tokens);
    if plan.limits.is_empty() && plan.slots.is_empty() {
        return Ok(None);
    }
    let checks: Vec<Check<'_>> = plan
        .limits
        .iter()
        .map(|l| Check {
            scope: l.scope,
            id: &l.id,
            kind: l.kind,
            limit: l.value,
            cost: l.cost,
        })
        .collect();
    let slots: Vec<Slot<'_>> = plan
        .slots
        .iter()
        .map(|(scope, id, max)| Slot::new(*scope, id, *max))
        .collect();
    let grant = limiter.acquire(&checks, &slots).await?;
    drop(checks);
    drop(slots);
    Ok(Some(Admission {
        limits: plan.limits,
        grant,
    }))
}

impl Admission {
    /// Corrects the token reservations with what the provider reported.
    pub fn reconcile(&self, limiter: &dyn Limiter, actual_tokens: u64) {
        if !self.limits.iter().any(|l| l.kind == Kind::Tokens) {
            return;
        }
        let checks: Vec<Check<'_>> = self
            .limits
            .iter()
            .map(|l| Check {
                scope: l.scope,
                id: &l.id,
                kind: l.kind,
                limit: l.value,
                cost: l.cost,
            })
            .collect();
        limiter.reconcile(&self.grant, &checks, actual_tokens);
    }

    /// OpenAI's `x-ratelimit-*` headers for the key's own limits (else the tightest that applied).
    pub fn headers(&self, headers: &mut HeaderMap) {
        quota_headers(&self.grant.quotas, headers);
    }
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` from the quotas of a grant or a refusal.
pub fn quota_headers(quotas: &[Quota], headers: &mut HeaderMap) {
    const NAMES: [[HeaderName; 3]; 2] = [
        [
            HeaderName::from_static("x-ratelimit-limit-requests"),
            HeaderName::from_static("x-ratelimit-remaining-requests"),
            HeaderName::from_static("x-ratelimit-reset-requests"),
        ],
        [
            HeaderName::from_static("x-ratelimit-limit-tokens"),
            HeaderName::from_static("x-ratelimit-remaining-tokens"),
            HeaderName::from_static("x-ratelimit-reset-tokens"),
        ],
    ];
    headers.reserve(6);
    for (kind, [limit, remaining, reset]) in [Kind::Requests, Kind::Tokens].into_iter().zip(NAMES) {
        let quota = quotas
            .iter()
            .find(|q| q.scope == Scope::Key && q.kind == kind)
            .or_else(|| {
                quotas
                    .iter()
                    .filter(|q| q.kind == kind)
                    .min_by_key(|q| q.remaining)
            });
        let Some(quota) = quota else { continue };
        headers.insert(limit, HeaderValue::from(quota.limit));
        headers.insert(remaining, HeaderValue::from(quota.remaining));
        if let Ok(value) = HeaderValue::from_str(&format_duration(quota.reset)) {
            headers.insert(reset, value);
        }
    }
}
