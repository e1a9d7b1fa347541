//! Spend logs: one row per model request, written off the request path, never lost silently.
//!
//! The request-finished event becomes a [`SpendRow`] (`row.rs`); `telemetry::request_finished`
//! hands it to the [`SpendLog`] queue (`writer.rs`), and one background task writes batches to
//! the store in one transaction each, adding each row's cost to the spend totals of its key,
//! team, user and end user. A dead database keeps rows queued; a full queue spills them to a
//! JSON-lines file (`spill.rs`) that is replayed when the database answers again. Reports read
//! the rows back (`report.rs`). See docs/spend-logs.md.

mod report;
mod row;
mod spill;
mod writer;

pub use report::{
    cli_report, daily_rows, group_rows, sort_report, table, DailyRow, GroupBy, ReportRow,
    SpendFilter,
};
pub use row::SpendRow;
pub use spill::{read_spill, SpillRead, SpillReader};
pub use writer::{SpendCounters, SpendLog, SpendSettings};

/// Whose spend a total is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Key,
    Team,
    User,
    EndUser,
}

impl Owner {
    pub fn name(self) -> &'static str {
        match self {
            Owner::Key => "key",
            Owner::Team => "team",
            Owner::User => "user",
            Owner::EndUser => "end_user",
        }
    }
}

/// The spend totals a batch of newly written rows adds: (owner, id) → nano-dollars. Rows with
/// zero cost add nothing (no row in the totals table for free traffic).
pub fn totals<'a>(
    rows: impl IntoIterator<Item = &'a SpendRow>,
) -> std::collections::BTreeMap<(Owner, &'a str), i64> {
    let mut totals = std::collections::BTreeMap::new();
    for row in rows {
        if row.cost_nanos == 0 {
            continue;
        }
        let owners = [
            (
                Owner::Key,
                Some(row.api_key.as_str()).filter(|k| !k.is_empty()),
            ),
            (Owner::Team, row.team_id.as_deref()),
            (Owner::User, row.user_id.as_deref()),
            (Owner::EndUser, row.end_user.as_deref()),
        ];
        for (owner, id) in owners {
            if let Some(id) = id {
                let total: &mut i64 = totals.entry((owner, id)).or_default();
                *total = total.saturating_add(row.cost_nanos);
            }
        }
    }
    totals
}
