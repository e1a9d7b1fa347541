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

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::calendar::{add_months, civil_from_days};
use crate::money::Nanos;
use crate::policy::limits::Scope;
use crate::store::{EndUserRecord, Millis};

/// Output tokens a request is assumed to produce when it sets no `max_tokens`, for its
/// worst-case cost.
pub const DEFAULT_OUTPUT_ALLOWANCE: u64 = 4096;

/// The budget in a record's LiteLLM fields (`max_budget` in dollars, `budget_duration`), with
/// the window it is in now. The window is anchored at the record's creation. `None` without a
/// usable `max_budget` (a malformed duration means no reset, and is logged).
fn budget_in(
    scope: Scope,
    id: &str,
    extra: &Map<String, Value>,
    created_at: Millis,
    now_ms: Millis,
) -> Option<(Nanos, i64, Option<Nanos>)> {
    let max = extra.get("max_budget")?.as_f64().filter(|m| *m >= 0.0)?;
    let window_start = match extra.get("budget_duration").and_then(Value::as_str) {
        None => 0,
        Some(text) => match Period::parse(text) {
            Ok(period) => period.window(created_at, now_ms).0,
            Err(problem) => {
                tracing::warn!(
                    scope = scope.as_str(),
                    id,
                    "budget_duration {problem}: never resets"
                );
                0
            }
        },
    };
    let soft = extra
        .get("soft_budget")
        .and_then(Value::as_f64)
        .filter(|s| *s >= 0.0)
        .map(Nanos::from_usd);
    Some((Nanos::from_usd(max), window_start, soft))
}

/// Raises the ledger to the spend the store holds for every budgeted key, team, user and end
/// user (in the current window, or lifetime without a duration): at start, so a restart does
/// not forget what was spent, and every `every` after, so spend made through other instances
/// (which reaches the store through their spend logs) counts here too. Runs off the request path.
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
    for (scope, id, extra, created_at) in state.identities.budgeted() {
        let Some((_, window_start, _)) = budget_in(scope, &id, &extra, created_at, now_ms) else {
            continue;
        };
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
            Ok(spent) => state.budgets.seed(scope, &id, window_start, spent),
            Err(err) => {
                tracing::warn!(
                    scope = scope.as_str(),
                    "budget spend not read from the store: {err}"
                );
                return;
            }
        }
    }
}

/// Every budget a request is subject to: its key's, team's, user's and end user's.
pub fn checks<'a>(
    principal: &'a Principal,
    end_user: Option<&'a EndUserRecord>,
    now_ms: Millis,
) -> Vec<BudgetCheck<'a>> {
    let mut checks = Vec::new();
    let mut add = |scope, id: &'a str, extra, created_at| {
        if let Some((max, window_start, soft)) = budget_in(scope, id, extra, created_at, now_ms) {
            checks.push(BudgetCheck {
                scope,
                id,
                max,
                window_start,
                soft,
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

#[derive(Debug, Default)]
struct Account {
    window_start: i64,
    spent: i64,
    reserved: i64,
    in_flight: u32,
}

impl Account {
    /// Moves to the window the check is in: spend starts over, reservations stay.
    fn roll(&mut self, window_start: i64) {
        if window_start > self.window_start {
            self.window_start = window_start;
            self.spent = 0;
        }
    }
}

/// What a request reserved; settled with [`Ledger::settle`].
#[derive(Debug)]
pub struct Hold {
    /// Each budget's subject and soft budget.
    subjects: Vec<(Scope, Box<str>, Option<Nanos>)>,
    worst: i64,
}

/// Budgets in this process (the Redis ledger holds them across instances).
#[derive(Debug, Default)]
pub struct Ledger {
    accounts: Mutex<HashMap<(Scope, Box<str>), Account>>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Scope, Box<str>), Account>> {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spend already made in a window (from the spend logs, at start): raises, never lowers,
    /// what this process knows.
    pub fn seed(&self, scope: Scope, id: &str, window_start: i64, spent: Nanos) {
        let mut accounts = self.lock();
        let account = accounts.entry((scope, Box::from(id))).or_default();
        account.roll(window_start);
        if account.window_start == window_start {
            account.spent = account.spent.max(spent.0);
        }
    }

    /// Reserves `worst` on every budget, or on none.
    pub fn reserve(&self, checks: &[BudgetCheck<'_>], worst: Nanos) -> Result<Hold, BudgetError> {
        let worst = worst.0.max(0);
        let mut accounts = self.lock();
        for check in checks {
            let key = (check.scope, Box::from(check.id));
            let account = accounts.entry(key).or_default();
            account.roll(check.window_start);
            if account.spent >= check.max.0 {
                return Err(BudgetError::Exceeded {
                    scope: check.scope,
                    id: check.id.to_owned(),
                    spent: Nanos(account.spent),
                    max: check.max,
                });
            }
            let fits = account
                .spent
                .saturating_add(account.reserved)
                .saturating_add(worst)
                <= check.max.0;
            if !fits && account.in_flight > 0 {
                return Err(BudgetError::Reserved {
                    scope: check.scope,
                    id: check.id.to_owned(),
                    spent: Nanos(account.spent),
                    reserved: Nanos(account.reserved),
                    max: check.max,
                    in_flight: account.in_flight,
                });
            }
        }
        let mut subjects = Vec::with_capacity(checks.len());
        for check in checks {
            if let Some(account) = accounts.get_mut(&(check.scope, Box::from(check.id))) {
                account.reserved = account.reserved.saturating_add(worst);
                account.in_flight += 1;
            }
            subjects.push((check.scope, Box::from(check.id), check.soft));
        }
        Ok(Hold { subjects, worst })
    }

    /// Replaces a hold's reservation with what the request cost.
    pub fn settle(&self, hold: Hold, cost: Nanos) {
        let mut accounts = self.lock();
        for (scope, id, soft) in hold.subjects {
            let key = (scope, id);
            if let Some(account) = accounts.get_mut(&key) {
                account.reserved = (account.reserved - hold.worst).max(0);
                account.in_flight = account.in_flight.saturating_sub(1);
                let before = account.spent;
                account.spent = account.spent.saturating_add(cost.0.max(0));
                if let Some(soft) = soft.filter(|s| before < s.0 && account.spent >= s.0) {
                    tracing::warn!(
                        target: "alert",
                        alert = "soft_budget_crossed",
                        scope = key.0.as_str(),
                        id = &*key.1,
                        spent = %Nanos(account.spent),
                        soft_budget = %soft,
                        "soft budget crossed"
                    );
                }
            }
        }
    }

    /// Spend in the current window, as far as this process knows.
    pub fn spent(&self, scope: Scope, id: &str) -> Nanos {
        Nanos(
            self.lock()
                .get(&(scope, Box::from(id)))
                .map_or(0, |a| a.spent),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::calendar::days_from_civil;

    const DAY: i64 = 86_400_000;

    fn check(max: i64) -> BudgetCheck<'static> {
        BudgetCheck {
            scope: Scope::Key,
            id: "k",
            max: Nanos(max),
            window_start: 0,
            soft: None,
        }
    }

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

    #[test]
    fn an_exhausted_budget_refuses_with_litellms_message() {
        let ledger = Ledger::new();
        let hold = ledger.reserve(&[check(100)], Nanos(60)).expect("fits");
        ledger.settle(hold, Nanos(150));
        let error = ledger.reserve(&[check(100)], Nanos(1)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Budget has been exceeded! Current cost: 0.00000015, Max budget: 0.0000001"
        );
    }

    #[test]
    fn a_lone_request_may_exceed_what_is_left_but_not_while_others_are_in_flight() {
        let ledger = Ledger::new();
        // Worst case 500 on a budget of 100: nothing in flight, spend below: admitted.
        let first = ledger.reserve(&[check(100)], Nanos(500)).expect("alone");
        let busy = ledger.reserve(&[check(100)], Nanos(500)).unwrap_err();
        assert!(matches!(busy, BudgetError::Reserved { in_flight: 1, .. }));
        ledger.settle(first, Nanos(40));
        let second = ledger
            .reserve(&[check(100)], Nanos(500))
            .expect("alone again");
        ledger.settle(second, Nanos(40));
        assert_eq!(ledger.spent(Scope::Key, "k"), Nanos(80));
    }

    #[test]
    fn all_or_nothing_across_budgets() {
        let ledger = Ledger::new();
        let team = BudgetCheck {
            scope: Scope::Team,
            id: "t",
            max: Nanos(10),
            window_start: 0,
            soft: None,
        };
        ledger.settle(ledger.reserve(&[team], Nanos(1)).unwrap(), Nanos(10));
        assert!(ledger.reserve(&[check(1_000), team], Nanos(1)).is_err());
        // The key's side was not reserved: a request on the key alone fits its whole budget.
        let hold = ledger.reserve(&[check(1_000)], Nanos(1_000)).expect("fits");
        ledger.settle(hold, Nanos(0));
    }

    #[test]
    fn spend_starts_over_in_a_new_window_and_seeding_only_raises() {
        let ledger = Ledger::new();
        ledger.seed(Scope::Key, "k", 0, Nanos(100));
        assert!(ledger.reserve(&[check(100)], Nanos(1)).is_err());
        ledger.seed(Scope::Key, "k", 0, Nanos(50));
        assert_eq!(ledger.spent(Scope::Key, "k"), Nanos(100));
        let next = BudgetCheck {
            window_start: DAY,
            ..check(100)
        };
        let hold = ledger.reserve(&[next], Nanos(1)).expect("a new day");
        ledger.settle(hold, Nanos(1));
        assert_eq!(ledger.spent(Scope::Key, "k"), Nanos(1));
    }

    #[test]
    fn fifty_concurrent_requests_overshoot_by_at_most_one_request() {
        // A $0.10 budget; each request's worst case is 3 cents, its real cost 2.5 cents.
        let ledger = Arc::new(Ledger::new());
        let max = Nanos::from_usd(0.10);
        let (worst, cost) = (Nanos::from_usd(0.03), Nanos::from_usd(0.025));
        let admitted: usize = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..50)
                .map(|_| {
                    let ledger = Arc::clone(&ledger);
                    scope.spawn(move || {
                        let mut admitted = 0;
                        for _ in 0..20 {
                            let c = BudgetCheck { max, ..check(0) };
                            if let Ok(hold) = ledger.reserve(&[c], worst) {
                                admitted += 1;
                                std::thread::yield_now();
                                ledger.settle(hold, cost);
                            }
                        }
                        admitted
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).sum()
        });
        let spent = ledger.spent(Scope::Key, "k");
        assert!(spent.0 <= max.0 + cost.0, "spent {spent} of {max}");
        assert!(spent.0 >= max.0, "the budget was used up: {spent}");
        assert_eq!(spent.0, cost.0 * admitted as i64);
    }
}
