//! Budgets: `max_budget` over a `budget_duration`, held without overshoot under concurrency.
//!
//! A request reserves its worst-case cost (prompt estimate plus `max_tokens`, or the model's
//! output limit, at the deployment's price) on every budget it is subject to before the call,
//! and settles with its real cost after. A budget admits a request while spend plus what is
//! reserved plus this request's worst case fits; when it does not fit but spend is still below
//! the budget and nothing else is in flight on it, the request is admitted anyway, so a small
//! budget serves one request at a time instead of none. Final spend therefore exceeds a budget
//! by at most one request's cost, however many arrive at once.
//!
//! Windows: a budget with a duration resets on a schedule every instance computes alike, from an
//! anchor (when the budget was set) and the period: seconds-based periods (`30s`, `1h`, `7d`)
//! step in fixed lengths, month periods (`1mo`) in calendar months (a month from Jan 31 is the
//! last day of February, as in LiteLLM's `duration_in_seconds`).
//!
//! Where the accounts live: [`Ledger`] (this process, `ledger.rs`) or, when `redis_url` is
//! configured, [`RedisLedger`] (`redis.rs`), which holds every instance to one account per budget
//! and falls back to its own [`Ledger`] while Redis is unreachable. [`Budgets`] is the one the
//! request path calls; for the local ledger it answers without a future to wait on.

mod ledger;
mod redis;

use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::calendar::{add_months, civil_from_days};
use crate::money::Nanos;
use crate::policy::limits::Scope;
use crate::store::{EndUserRecord, Millis};

pub use self::ledger::{Hold, Ledger};
pub use self::redis::{ConnectError, RedisLedger, RedisLedgerOptions, RedisReservation};

/// Output tokens a request is assumed to produce when it sets no `max_tokens`, for its
/// worst-case cost.
pub const DEFAULT_OUTPUT_ALLOWANCE: u64 = 4096;

/// A record's budget, as [`budget_in`] reads it.
struct Budget {
    max: Nanos,
    /// The current window, (0, 0) without a duration.
    window: (i64, i64),
    soft: Option<Nanos>,
}

/// The budget in a record's LiteLLM fields (`max_budget` in dollars, `budget_duration`), with
/// the window it is in now. The window is anchored at the record's creation. `None` without a
/// usable `max_budget` (a malformed duration means no reset, and is logged).
fn budget_in(
    scope: Scope,
    id: &str,
    extra: &Map<String, Value>,
    created_at: Millis,
    now_ms: Millis,
) -> Option<Budget> {
    let max = extra.get("max_budget")?.as_f64().filter(|m| *m >= 0.0)?;
    let window = match extra.get("budget_duration").and_then(Value::as_str) {
        None => (0, 0),
        Some(text) => match Period::parse(text) {
            Ok(period) => period.window(created_at, now_ms),
            Err(problem) => {
                tracing::warn!(
                    scope = scope.as_str(),
                    id,
                    "budget_duration {problem}: never resets"
                );
                (0, 0)
            }
        },
    };
    let soft = extra
        .get("soft_budget")
        .and_then(Value::as_f64)
        .filter(|s| *s >= 0.0)
        .map(Nanos::from_usd);
    Some(Budget {
        max: Nanos::from_usd(max),
        window,
        soft,
    })
}

/// Raises the ledger to the spend the store holds for every budgeted key, team, user and end
/// user (in the current window, or lifetime without a duration): at start, so a restart does
/// not forget what was spent, and every `every` after, so spend made through other instances
/// (which reaches the store through their spend logs) counts here too. With Redis, the shared
/// accounts are raised as well (never lowered), so a Redis that restarted empty learns again
/// what was spent. Runs off the request path.
pub async fn keep_seeded(state: crate::state::AppState, every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        seed_once(&state).await;
    }
}

/// One round of [`keep_seeded`]; failures are logged and the ledger keeps what it knows.
pub async fn seed_once(state: &crate::state::AppState) {
    use crate::spend::{GroupBy, Owner, SpendFilter};
    let now_ms = crate::auth::cache::now_ms();
    let mut seeds = Vec::new();
    for (scope, id, extra, created_at) in state.identities.budgeted() {
        let Some(budget) = budget_in(scope, &id, &extra, created_at, now_ms) else {
            continue;
        };
        let (window_start, window_end) = budget.window;
        let spent = if window_start == 0 {
            let owner = match scope {
                Scope::Key => Owner::Key,
                Scope::Team => Owner::Team,
                Scope::User => Owner::User,
                _ => Owner::EndUser,
            };
            state.store.spend_total(owner, &id).await
        } else {
            let mut filter = SpendFilter {
                start: Some(window_start),
                ..SpendFilter::default()
            };
            let column = match scope {
                Scope::Key => {
                    filter.api_key = Some(id.clone());
                    "api_key"
                }
                Scope::Team => {
                    filter.team_id = Some(id.clone());
                    "team_id"
                }
                Scope::User => {
                    filter.user_id = Some(id.clone());
                    "user_id"
                }
                _ => {
                    filter.end_user = Some(id.clone());
                    "end_user"
                }
            };
            state
                .store
                .spend_report(&filter, &GroupBy::Column(column))
                .await
                .map(|rows| Nanos(rows.iter().map(|r| r.spend_nanos).sum()))
        };
        match spent {
            Ok(spent) => {
                state.budgets.local().seed(scope, &id, window_start, spent);
                seeds.push(Seed {
                    scope,
                    id,
                    window: (window_start, window_end),
                    spent,
                });
            }
            Err(err) => {
                tracing::warn!(
                    scope = scope.as_str(),
                    "budget spend not read from the store: {err}"
                );
                break;
            }
        }
    }
    if let Budgets::Redis(shared) = &state.budgets {
        shared.seed(&seeds).await;
    }
}

/// Spend the store holds for one budget in its current window.
#[derive(Clone, Debug)]
pub struct Seed {
    pub scope: Scope,
    pub id: String,
    /// (start, end) of the window; (0, 0) for a budget that never resets.
    pub window: (i64, i64),
    pub spent: Nanos,
}

/// Every budget a request is subject to: its key's, team's, user's and end user's.
pub fn checks<'a>(
    principal: &'a Principal,
    end_user: Option<&'a EndUserRecord>,
    now_ms: Millis,
) -> Vec<BudgetCheck<'a>> {
    let mut checks = Vec::new();
    let mut add = |scope, id: &'a str, extra, created_at| {
        if let Some(budget) = budget_in(scope, id, extra, created_at, now_ms) {
            checks.push(BudgetCheck {
                scope,
                id,
                max: budget.max,
                window_start: budget.window.0,
                window_end: budget.window.1,
                soft: budget.soft,
            });
        }
    };
    if let Principal::Key(resolved) = principal {
        let key = &resolved.key;
        add(Scope::Key, &key.token, &key.extra, key.created_at);
        if let Some(team) = &resolved.team {
            add(Scope::Team, &team.team_id, &team.extra, team.created_at);
        }
        if let Some(user) = &resolved.user {
            add(Scope::User, &user.user_id, &user.extra, user.created_at);
        }
    }
    if let Some(end_user) = end_user {
        add(
            Scope::EndUser,
            &end_user.user_id,
            &end_user.extra,
            end_user.created_at,
        );
    }
    checks
}

/// A `budget_duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Millis(i64),
    Months(u32),
}

impl Period {
    /// LiteLLM's forms: `30s`, `30m`, `1h`, `1d`, `7d`, `30d`, `1mo` (also `1w`).
    pub fn parse(text: &str) -> Result<Period, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a duration such as 30s, 1h, 7d or 1mo"))?;
        if n <= 0 {
            return Err(format!("`{text}`: a budget duration must be positive"));
        }
        let unit_ms: i64 = match unit {
            "mo" => {
                return u32::try_from(n)
                    .map(Period::Months)
                    .map_err(|_| format!("`{text}` is too long"))
            }
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return Err(format!("`{text}`: the unit must be s, m, h, d, w or mo")),
        };
        n.checked_mul(unit_ms)
            .map(Period::Millis)
            .ok_or_else(|| format!("`{text}` is too long"))
    }

    /// The window (start, end) in ms that holds `now_ms`, for a budget anchored at `anchor_ms`.
    pub fn window(self, anchor_ms: i64, now_ms: i64) -> (i64, i64) {
        match self {
            Period::Millis(len) => {
                let index = (now_ms - anchor_ms).div_euclid(len);
                let start = anchor_ms.saturating_add(index.saturating_mul(len));
                (start, start.saturating_add(len))
            }
            Period::Months(months) => {
                let months = i64::from(months);
                let (anchor_year, anchor_month, _) = civil_from_days(anchor_ms.div_euclid(DAY_MS));
                let (year, month, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
                let elapsed = (year * 12 + month) - (anchor_year * 12 + anchor_month);
                // Counted from the anchor each time (not chained), so a window that started on
                // a clamped day (Feb 28 for a Jan 31 anchor) does not pull the next ones back.
                let at = |i: i64| add_months(anchor_ms, i * months);
                let mut index = elapsed.div_euclid(months);
                while at(index) > now_ms {
                    index -= 1;
                }
                while at(index + 1) <= now_ms {
                    index += 1;
                }
                (at(index), at(index + 1))
            }
        }
    }
}

const DAY_MS: i64 = crate::calendar::DAY_MS;

/// One budget a request is subject to.
#[derive(Clone, Copy, Debug)]
pub struct BudgetCheck<'a> {
    pub scope: Scope,
    pub id: &'a str,
    pub max: Nanos,
    /// The current window's start (0 for a budget without a duration: it never resets).
    pub window_start: i64,
    /// The current window's end (0 without a duration); the shared account of a window is
    /// dropped some time after it (see `redis.rs`).
    pub window_end: i64,
    /// `soft_budget`: crossing it raises an alert (a log event until the alerting channel of
    /// the observability issue), and refuses nothing.
    pub soft: Option<Nanos>,
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// LiteLLM's wording, which scripts match on.
    #[error("Budget has been exceeded! Current cost: {spent}, Max budget: {max}")]
    Exceeded {
        scope: Scope,
        id: String,
        spent: Nanos,
        max: Nanos,
    },
    /// Spend is below the budget, but requests in flight have reserved what is left.
    #[error("Budget of {} '{id}' is held by {in_flight} request(s) in flight: spent {spent}, reserved {reserved}, max budget {max}; retry when they finish", scope.as_str())]
    Reserved {
        scope: Scope,
        id: String,
        spent: Nanos,
        reserved: Nanos,
        max: Nanos,
        in_flight: u32,
    },
}

/// Logs the `soft_budget` alert when a settlement took spend from below `soft` to at or above it.
/// The alert also goes to the alerting channels (`general_settings.alerting`, see
/// `callbacks/alerts.rs`), which de-duplicate it; the log line is always written.
fn alert_if_crossed(scope: Scope, id: &str, soft: Option<Nanos>, before: i64, after: i64) {
    if let Some(soft) = soft.filter(|s| before < s.0 && after >= s.0) {
        tracing::warn!(
            target: "alert",
            alert = "soft_budget_crossed",
            scope = scope.as_str(),
            id,
            spent = %Nanos(after),
            soft_budget = %soft,
            "soft budget crossed"
        );
        crate::callbacks::raise_alert(crate::callbacks::Alert::SoftBudgetCrossed {
            scope: scope.as_str(),
            id: id.to_owned(),
            spent: Nanos(after),
            soft_budget: soft,
        });
    }
}

/// The budgets of a gateway: in this process, or shared by every instance through Redis.
pub enum Budgets {
    Local(Ledger),
    Redis(RedisLedger),
}

/// What a request reserved, and where; settled with [`Budgets::settle`].
#[derive(Debug)]
pub enum Reservation {
    /// In this process's ledger (always, without Redis; while Redis is unreachable, with it).
    Local(Hold),
    Redis(RedisReservation),
}

impl Budgets {
    /// Reserves `worst` on every budget of `checks`, or on none. The local ledger answers at
    /// once (no boxed future, no wait); the Redis one in one round trip, bounded by its call
    /// timeout, then from its local fallback.
    pub async fn reserve(
        &self,
        checks: &[BudgetCheck<'_>],
        worst: Nanos,
    ) -> Result<Reservation, BudgetError> {
        match self {
            Budgets::Local(ledger) => ledger.reserve(checks, worst).map(Reservation::Local),
            Budgets::Redis(shared) => shared.reserve(checks, worst).await,
        }
    }

    /// Replaces a reservation with what the request cost. Never waits: a Redis settlement runs
    /// on a spawned task.
    pub fn settle(&self, reservation: Reservation, cost: Nanos) {
        match (self, reservation) {
            (_, Reservation::Local(hold)) => self.local().settle(hold, cost),
            (Budgets::Redis(shared), Reservation::Redis(held)) => shared.settle(held, cost),
            // A Redis reservation always comes from a Redis ledger; were it not, its cost
            // still counts.
            (Budgets::Local(ledger), Reservation::Redis(held)) => held.charge_to(ledger, cost),
        }
    }

    /// This process's ledger: the whole story without Redis, the fallback with it.
    pub fn local(&self) -> &Ledger {
        match self {
            Budgets::Local(ledger) => ledger,
            Budgets::Redis(shared) => shared.local(),
        }
    }

    /// False while Redis is configured but unreachable (budgets then hold per instance).
    pub fn healthy(&self) -> bool {
        match self {
            Budgets::Local(_) => true,
            Budgets::Redis(shared) => shared.healthy(),
        }
    }

    /// Requests whose budgets were reserved per instance because Redis was unreachable.
    pub fn fallbacks(&self) -> u64 {
        match self {
            Budgets::Local(_) => 0,
            Budgets::Redis(shared) => shared.fallbacks(),
        }
    }

    /// At shutdown: waits (at most `limit`) for settlements still on their way to Redis.
    pub async fn drain(&self, limit: std::time::Duration) {
        if let Budgets::Redis(shared) = self {
            shared.drain(limit).await;
        }
    }

    /// Settlements Redis did not take (their cost went to the local ledger).
    pub fn settle_failures(&self) -> u64 {
        match self {
            Budgets::Local(_) => 0,
            Budgets::Redis(shared) => shared.settle_failures(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::days_from_civil;

    const DAY: i64 = 86_400_000;

    #[test]
    fn durations_parse_like_litellm() {
        assert_eq!(Period::parse("30s"), Ok(Period::Millis(30_000)));
        assert_eq!(Period::parse("1h"), Ok(Period::Millis(3_600_000)));
        assert_eq!(Period::parse("7d"), Ok(Period::Millis(7 * DAY)));
        assert_eq!(Period::parse("1mo"), Ok(Period::Months(1)));
        for bad in [
            "",
            "d",
            "0d",
            "-1d",
            "1y",
            "1.5d",
            "99999999999999999999d",
            "1 d",
        ] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_are_the_same_wherever_they_are_computed() {
        let day = Period::Millis(DAY);
        assert_eq!(day.window(1_000, 1_000), (1_000, DAY + 1_000));
        assert_eq!(day.window(1_000, DAY + 999), (1_000, DAY + 1_000));
        assert_eq!(
            day.window(1_000, DAY + 1_000),
            (DAY + 1_000, 2 * DAY + 1_000)
        );
        // 2026-01-31T10:00Z: a month later is 2026-02-28T10:00Z, then 2026-03-31.
        let jan31 = days_from_civil(2026, 1, 31) * DAY + 10 * 3_600_000;
        let feb28 = days_from_civil(2026, 2, 28) * DAY + 10 * 3_600_000;
        let mar31 = days_from_civil(2026, 3, 31) * DAY + 10 * 3_600_000;
        let month = Period::Months(1);
        assert_eq!(month.window(jan31, jan31 + 5 * DAY), (jan31, feb28));
        assert_eq!(month.window(jan31, feb28), (feb28, mar31));
        let dec31 = days_from_civil(2026, 12, 31) * DAY + 10 * 3_600_000;
        assert_eq!(
            month.window(jan31, dec31 + 1),
            (dec31, add_months(jan31, 12))
        );
        assert_eq!(civil_from_days(days_from_civil(2028, 2, 29)), (2028, 2, 29));
    }
}
