//! Deployment budgets: LiteLLM's `litellm_params.max_budget` with `budget_duration` on a
//! deployment. A deployment that has spent its budget in the current window sits out of routing
//! until the window ends: the router picks the group's other deployments, and when none is left
//! the request is refused with a 429 saying when the window ends. This is a routing rule, as
//! in LiteLLM (its "provider budget routing"), not a reservation: requests already in flight
//! when the budget is reached still finish, so spend can pass the budget by what they cost.
//!
//! Windows are aligned to the clock, not to when a deployment was loaded, so every instance and
//! every restart agrees on them: `1d` runs from 00:00 UTC, `1h` from the full hour, `1mo` from
//! the 1st of the month (a duration without a calendar unit steps from 1970-01-01 UTC). Without
//! a duration the budget never resets.
//!
//! Spend is what this instance settled, raised every few seconds to what the spend log holds for
//! the window (which includes what other instances spent): see [`seed_once`].

use std::sync::Mutex;

use crate::money::Nanos;
use crate::policy::budget::Period;

/// A deployment's budget as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeploymentBudget {
    pub max: Nanos,
    pub period: Option<Period>,
}

impl DeploymentBudget {
    /// The window (start, end) in Unix ms holding `now_ms`; `(0, i64::MAX)` without a period.
    pub fn window(&self, now_ms: i64) -> (i64, i64) {
        match self.period {
            None => (0, i64::MAX),
            Some(period) => period.window(0, now_ms),
        }
    }
}

/// What a deployment spent in its current window (shared across reloads with its stats).
#[derive(Debug, Default)]
pub struct BudgetSpend {
    /// (window start, nano-dollars spent in it)
    window: Mutex<(i64, i64)>,
}

impl BudgetSpend {
    fn with<R>(&self, window_start: i64, f: impl FnOnce(&mut i64) -> R) -> R {
        let mut state = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if window_start > state.0 {
            *state = (window_start, 0);
        }
        if window_start < state.0 {
            // A late report about a window that is over: it changes nothing now.
            let mut ignored = 0;
            return f(&mut ignored);
        }
        f(&mut state.1)
    }

    /// Spend in the window starting at `window_start`.
    pub fn spent(&self, window_start: i64) -> Nanos {
        Nanos(self.with(window_start, |spent| *spent))
    }

    /// Adds what a request cost.
    pub fn add(&self, window_start: i64, cost: Nanos) {
        self.with(window_start, |spent| {
            *spent = spent.saturating_add(cost.0.max(0))
        });
    }

    /// Raises spend to what the spend log holds (never lowers it: settled requests may not be
    /// written yet).
    pub fn raise(&self, window_start: i64, logged: Nanos) {
        self.with(window_start, |spent| *spent = (*spent).max(logged.0));
    }
}

/// [`seed_once`] every `every`, for as long as the process runs.
pub async fn keep_seeded(state: crate::state::AppState, every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        seed_once(&state).await;
    }
}

/// Raises every budgeted deployment's spend to what the spend log holds for its window. Runs
/// off the request path at start and every few seconds (with the key budgets' seeding).
pub async fn seed_once(state: &crate::state::AppState) {
    use crate::spend::{GroupBy, SpendFilter};
    let now_ms = crate::auth::cache::now_ms();
    let snapshot = state.snapshot();
    let mut windows: Vec<i64> = Vec::new();
    let budgeted: Vec<_> = snapshot
        .router
        .deployments()
        .iter()
        .filter_map(|d| d.budget.map(|b| (d.clone(), b.window(now_ms).0)))
        .collect();
    for (_, start) in &budgeted {
        if !windows.contains(start) {
            windows.push(*start);
        }
    }
    for start in windows {
        let filter = SpendFilter {
            start: Some(start),
            ..SpendFilter::default()
        };
        let report = match state
            .store
            .spend_report(&filter, &GroupBy::Column("deployment_id"))
            .await
        {
            Ok(report) => report,
            Err(err) => {
                tracing::warn!("deployment budget spend not read from the store: {err}");
                return;
            }
        };
        for (deployment, _) in budgeted.iter().filter(|(_, s)| *s == start) {
            let logged = report
                .iter()
                .find(|r| r.group.as_deref() == Some(deployment.id.as_str()))
                .map_or(0, |r| r.spend_nanos);
            deployment.stats.budget.raise(start, Nanos(logged));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn windows_are_aligned_to_the_clock() {
        let daily = DeploymentBudget {
            max: Nanos(1),
            period: Some(Period::Millis(DAY)),
        };
        assert_eq!(daily.window(3 * DAY + 5), (3 * DAY, 4 * DAY));
        let lifetime = DeploymentBudget {
            max: Nanos(1),
            period: None,
        };
        assert_eq!(lifetime.window(3 * DAY), (0, i64::MAX));
    }

    #[test]
    fn spend_starts_over_in_a_new_window_and_late_reports_are_ignored() {
        let spend = BudgetSpend::default();
        spend.add(DAY, Nanos(5));
        spend.raise(DAY, Nanos(3));
        assert_eq!(spend.spent(DAY), Nanos(5));
        spend.raise(DAY, Nanos(9));
        assert_eq!(spend.spent(DAY), Nanos(9));
        spend.add(2 * DAY, Nanos(1));
        assert_eq!(spend.spent(2 * DAY), Nanos(1));
        spend.add(DAY, Nanos(100));
        assert_eq!(spend.spent(2 * DAY), Nanos(1));
    }
}
