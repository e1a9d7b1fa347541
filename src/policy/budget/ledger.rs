//! The budget ledger of one process: every instance's fallback, and the whole story when
//! Redis is not configured. See the parent module for the rules it applies.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{alert_if_crossed, BudgetCheck, BudgetError};
use crate::money::Nanos;
use crate::policy::limits::Scope;

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
                alert_if_crossed(key.0, &key.1, soft, before, account.spent);
            }
        }
    }

    /// Adds spend that was settled elsewhere, or meant to be: the cost of a request whose
    /// reservation was in Redis when Redis could not take its settlement.
    pub fn charge(
        &self,
        scope: Scope,
        id: &str,
        window_start: i64,
        soft: Option<Nanos>,
        cost: Nanos,
    ) {
        let mut accounts = self.lock();
        let account = accounts.entry((scope, Box::from(id))).or_default();
        account.roll(window_start);
        let before = account.spent;
        account.spent = account.spent.saturating_add(cost.0.max(0));
        alert_if_crossed(scope, id, soft, before, account.spent);
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

    const DAY: i64 = 86_400_000;

    fn check(max: i64) -> BudgetCheck<'static> {
        BudgetCheck {
            scope: Scope::Key,
            id: "k",
            max: Nanos(max),
            window_start: 0,
            window_end: 0,
            soft: None,
        }
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
            window_end: 0,
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
