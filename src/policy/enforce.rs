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

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;

use super::limits::{
    key_model_id, Check, Denial, DurationText, Grant, Kind, Limiter, Quota, Scope, Slot,
};
use crate::auth::Principal;
use crate::store::{EndUserRecord, KeyRecord, TeamRecord, UserRecord};

/// Whose limit: the record it came from, shared (a request copies no id), or a derived id.
#[derive(Debug, Clone)]
enum Subject {
    Key(Arc<KeyRecord>),
    KeyModel(Arc<str>),
    Team(Arc<TeamRecord>),
    User(Arc<UserRecord>),
    EndUser(Arc<EndUserRecord>),
}

impl Subject {
    fn scope(&self) -> Scope {
        match self {
            Subject::Key(_) => Scope::Key,
            Subject::KeyModel(_) => Scope::KeyModel,
            Subject::Team(_) => Scope::Team,
            Subject::User(_) => Scope::User,
            Subject::EndUser(_) => Scope::EndUser,
        }
    }

    fn id(&self) -> &str {
        match self {
            Subject::Key(key) => &key.token,
            Subject::KeyModel(id) => id,
            Subject::Team(team) => &team.team_id,
            Subject::User(user) => &user.user_id,
            Subject::EndUser(end_user) => &end_user.user_id,
        }
    }
}

/// One limit of an admitted request, owned so it can be reconciled after the answer.
#[derive(Debug)]
struct Limit {
    subject: Subject,
    kind: Kind,
    value: u64,
    cost: u64,
}

impl Limit {
    fn check(&self) -> Check<'_> {
        Check {
            scope: self.subject.scope(),
            id: self.subject.id(),
            kind: self.kind,
            limit: self.value,
            cost: self.cost,
        }
    }
}

/// The limits a request took, until it finishes.
#[derive(Debug)]
pub struct Admission {
    limits: Vec<Limit>,
    pub grant: Grant,
}

struct Plan {
    limits: Vec<Limit>,
    slots: Vec<(Subject, u32)>,
}

impl Plan {
    fn add(
        &mut self,
        subject: Subject,
        rpm: Option<u64>,
        tpm: Option<u64>,
        parallel: Option<u64>,
        prompt_tokens: &(dyn Fn() -> u64 + Sync),
    ) {
        if let Some(rpm) = rpm {
            self.limits.push(Limit {
                subject: subject.clone(),
                kind: Kind::Requests,
                value: rpm,
                cost: 1,
            });
        }
        if let Some(tpm) = tpm {
            self.limits.push(Limit {
                subject: subject.clone(),
                kind: Kind::Tokens,
                value: tpm,
                cost: prompt_tokens(),
            });
        }
        if let Some(max) = parallel {
            self.slots
                .push((subject, max.min(u64::from(u32::MAX)) as u32));
        }
    }
}

fn plan(
    principal: &Principal,
    end_user: Option<&Arc<EndUserRecord>>,
    model: &str,
    prompt_tokens: &(dyn Fn() -> u64 + Sync),
) -> Plan {
    let mut plan = Plan {
        limits: Vec::new(),
        slots: Vec::new(),
    };
    if let Principal::Key(resolved) = principal {
        let key = &resolved.key;
        if key.rpm_limit.is_some() || key.tpm_limit.is_some() || key.max_parallel_requests.is_some()
        {
            plan.add(
                Subject::Key(Arc::clone(key)),
                key.rpm_limit,
                key.tpm_limit,
                key.max_parallel_requests,
                prompt_tokens,
            );
        }
        let model_rpm = key.model_rpm_limit.get(model).copied();
        let model_tpm = key.model_tpm_limit.get(model).copied();
        if model_rpm.is_some() || model_tpm.is_some() {
            plan.add(
                Subject::KeyModel(Arc::from(key_model_id(&key.token, model))),
                model_rpm,
                model_tpm,
                None,
                prompt_tokens,
            );
        }
        if let Some(team) = &resolved.team {
            plan.add(
                Subject::Team(Arc::clone(team)),
                team.rpm_limit,
                team.tpm_limit,
                team.max_parallel_requests,
                prompt_tokens,
            );
        }
        if let Some(user) = &resolved.user {
            plan.add(
                Subject::User(Arc::clone(user)),
                user.rpm_limit,
                user.tpm_limit,
                user.max_parallel_requests,
                prompt_tokens,
            );
        }
    }
    if let Some(end_user) = end_user {
        plan.add(
            Subject::EndUser(Arc::clone(end_user)),
            end_user.rpm_limit,
            end_user.tpm_limit,
            end_user.max_parallel_requests,
            prompt_tokens,
        );
    }
    plan
}

/// Takes every limit that applies to the request, or refuses it naming the one that tripped.
/// `None` when no limit applies.
pub async fn admit(
    limiter: &dyn Limiter,
    principal: &Principal,
    end_user: Option<&Arc<EndUserRecord>>,
    model: &str,
    prompt_tokens: &(dyn Fn() -> u64 + Sync),
) -> Result<Option<Admission>, Denial> {
    let plan = plan(principal, end_user, model, prompt_tokens);
    if plan.limits.is_empty() && plan.slots.is_empty() {
        return Ok(None);
    }
    let slots: Vec<Slot<'_>> = plan
        .slots
        .iter()
        .map(|(subject, max)| Slot::new(subject.scope(), subject.id(), *max))
        .collect();
    let grant = match with_checks(&plan.limits, |checks| limiter.acquire_now(checks, &slots)) {
        Some(answer) => answer?,
        None => {
            let checks: Vec<Check<'_>> = plan.limits.iter().map(Limit::check).collect();
            limiter.acquire(&checks, &slots).await?
        }
    };
    drop(slots);
    Ok(Some(Admission {
        limits: plan.limits,
        grant,
    }))
}

/// Most limits one request can take: five subjects (key, key and model, team, user, end user),
/// requests and tokens each.
const MOST_CHECKS: usize = 10;

/// The checks of `limits`, on the stack.
fn with_checks<R>(limits: &[Limit], f: impl FnOnce(&[Check<'_>]) -> R) -> R {
    const NONE: Check<'static> = Check {
        scope: Scope::Key,
        id: "",
        kind: Kind::Requests,
        limit: 0,
        cost: 0,
    };
    if limits.len() > MOST_CHECKS {
        let checks: Vec<Check<'_>> = limits.iter().map(Limit::check).collect();
        return f(&checks);
    }
    let mut checks = [NONE; MOST_CHECKS];
    for (check, limit) in checks.iter_mut().zip(limits) {
        *check = limit.check();
    }
    f(&checks[..limits.len()])
}

impl Admission {
    /// Corrects the token reservations with what the provider reported.
    pub fn reconcile(&self, limiter: &dyn Limiter, actual_tokens: u64) {
        if !self.limits.iter().any(|l| l.kind == Kind::Tokens) {
            return;
        }
        with_checks(&self.limits, |checks| {
            limiter.reconcile(&self.grant, checks, actual_tokens);
        });
    }

    /// OpenAI's `x-ratelimit-*` headers for the key's own limits (else the tightest that applied).
    pub fn headers(&self, headers: &mut HeaderMap) {
        quota_headers(&self.grant.quotas, headers);
    }
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` from the quotas of a grant or a refusal.
pub fn quota_headers(quotas: &[Quota], headers: &mut HeaderMap) {
    // A `static`: indexing a `const` array builds (and drops) all six names each time.
    static NAMES: [[HeaderName; 3]; 2] = [
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
    // The six values are written into one buffer that the header values share: two allocations
    // instead of two per value.
    let mut text = [0u8; 6 * 24];
    let mut len = 0;
    // (which of NAMES, where its value ends in `text`)
    let mut ends = [((0, 0), 0); 6];
    let mut count = 0;
    let mut push = |name: (usize, usize), value: &[u8]| {
        text[len..len + value.len()].copy_from_slice(value);
        len += value.len();
        ends[count] = (name, len);
        count += 1;
    };
    for (k, kind) in [Kind::Requests, Kind::Tokens].into_iter().enumerate() {
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
        push((k, 0), Digits::new(quota.limit).as_bytes());
        push((k, 1), Digits::new(quota.remaining).as_bytes());
        push((k, 2), DurationText::new(quota.reset).as_bytes());
    }
    if count == 0 {
        return;
    }
    let shared = Bytes::copy_from_slice(&text[..len]);
    headers.reserve(count);
    let mut start = 0;
    for ((k, n), end) in ends.into_iter().take(count) {
        // Digits and duration letters only: always a valid header value.
        if let Ok(value) = HeaderValue::from_maybe_shared(shared.slice(start..end)) {
            headers.insert(NAMES[k][n].clone(), value);
        }
        start = end;
    }
}

/// A `u64` in decimal, on the stack.
struct Digits {
    bytes: [u8; 20],
    start: usize,
}

impl Digits {
    fn new(mut n: u64) -> Self {
        let mut digits = Digits {
            bytes: [b'0'; 20],
            start: 20,
        };
        loop {
            digits.start -= 1;
            digits.bytes[digits.start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                return digits;
            }
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn quota(scope: Scope, kind: Kind, limit: u64, remaining: u64, reset_ms: u64) -> Quota {
        Quota {
            scope,
            kind,
            limit,
            remaining,
            reset: Duration::from_millis(reset_ms),
        }
    }

    fn rendered(quotas: &[Quota]) -> Vec<(String, String)> {
        let mut headers = HeaderMap::new();
        quota_headers(quotas, &mut headers);
        let mut pairs: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_owned()))
            .collect();
        pairs.sort();
        pairs
    }

    #[test]
    fn the_keys_own_limits_are_the_headers_else_the_tightest() {
        let quotas = [
            quota(Scope::Team, Kind::Requests, 5, 1, 48_000),
            quota(
                Scope::Key,
                Kind::Requests,
                18_446_744_073_709_551_615,
                9,
                1_500,
            ),
            quota(Scope::Team, Kind::Tokens, 100_000, 70_000, 18_000),
            quota(Scope::User, Kind::Tokens, 2_000, 20, 59_400),
        ];
        let expected = [
            ("x-ratelimit-limit-requests", "18446744073709551615"),
            ("x-ratelimit-limit-tokens", "2000"),
            ("x-ratelimit-remaining-requests", "9"),
            ("x-ratelimit-remaining-tokens", "20"),
            ("x-ratelimit-reset-requests", "1.5s"),
            ("x-ratelimit-reset-tokens", "59.4s"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()));
        assert_eq!(rendered(&quotas), expected);
        assert!(rendered(&[]).is_empty());
        let zero = rendered(&[quota(Scope::Key, Kind::Tokens, 0, 0, 0)]);
        assert_eq!(zero.len(), 3);
        assert_eq!(zero[2], ("x-ratelimit-reset-tokens".into(), "0ms".into()));
    }
}
