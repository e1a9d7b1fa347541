//! What the reports ask of the store: which rows, and how to group them.

use std::fmt::Write as _;

use super::SpendRow;

/// Which rows; `None` matches every row. Times are Unix milliseconds, `start` inclusive and
/// `end` exclusive.
#[derive(Debug, Clone, Default)]
pub struct SpendFilter {
    /// The SHA-256 of the key (callers hash a raw key first).
    pub api_key: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub end_user: Option<String>,
    pub request_id: Option<String>,
    /// The model group that served the request.
    pub model_group: Option<String>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// At most this many rows (newest first) from `spend_logs`.
    pub limit: Option<u32>,
}

/// How a report groups rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// A column of the row (`team_id`, `api_key`, `model_group` ...).
    Column(&'static str),
    /// Each entry of `metadata.tags` (a row with two tags counts in both groups).
    Tag,
    /// A key of the metadata object (`feature`).
    Metadata(String),
}

impl GroupBy {
    /// `team`, `key`, `user`, `end_user` (or `customer`), `model`, `requested_model`, `provider`,
    /// `deployment`, `tag`, or any other name as a metadata key (letters, digits, `_` and `-`).
    pub fn parse(name: &str) -> Result<GroupBy, String> {
        Ok(match name {
            "team" | "team_id" => GroupBy::Column("team_id"),
            "key" | "api_key" => GroupBy::Column("api_key"),
            "key_alias" => GroupBy::Column("key_alias"),
            "user" | "user_id" => GroupBy::Column("user_id"),
            "end_user" | "customer" => GroupBy::Column("end_user"),
            "model" | "model_group" => GroupBy::Column("model_group"),
            "requested_model" => GroupBy::Column("requested_model"),
            "provider" => GroupBy::Column("provider"),
            "deployment" | "deployment_id" => GroupBy::Column("deployment_id"),
            "tag" | "tags" => GroupBy::Tag,
            other
                if !other.is_empty()
                    && other.len() <= 64
                    && other
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                GroupBy::Metadata(other.to_owned())
            }
            other => {
                return Err(format!(
                    "cannot group by `{other}`: use team, key, user, end_user, customer, model, \
                     provider, deployment, tag, or a metadata key (letters, digits, _ and -)"
                ))
            }
        })
    }

    /// The groups a row falls in (in-memory store, tests).
    pub fn values(&self, row: &SpendRow) -> Vec<Option<String>> {
        match self {
            GroupBy::Column(column) => vec![match *column {
                "team_id" => row.team_id.clone(),
                "api_key" => Some(row.api_key.clone()).filter(|k| !k.is_empty()),
                "key_alias" => row.key_alias.clone(),
                "user_id" => row.user_id.clone(),
                "end_user" => row.end_user.clone(),
                "model_group" => row.model_group.clone(),
                "requested_model" => Some(row.requested_model.clone()),
                "provider" => row.provider.clone(),
                "deployment_id" => row.deployment_id.clone(),
                _ => None,
            }],
            GroupBy::Tag => match row.metadata.as_ref().and_then(|m| m.get("tags")) {
                Some(serde_json::Value::Array(tags)) => tags
                    .iter()
                    .map(|t| Some(t.as_str().map_or_else(|| t.to_string(), str::to_owned)))
                    .collect(),
                _ => Vec::new(),
            },
            GroupBy::Metadata(key) => vec![row
                .metadata
                .as_ref()
                .and_then(|m| m.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_owned)],
        }
    }
}

/// One group of a report: sums are integers (nano-dollars, tokens), taken by the database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportRow {
    /// `None` for rows without a value (no team, no `feature` tag ...).
    pub group: Option<String>,
    pub spend_nanos: i64,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

impl SpendFilter {
    /// Whether a row matches (in-memory store).
    pub fn matches(&self, row: &SpendRow) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        eq(&self.api_key, Some(&row.api_key))
            && eq(&self.user_id, row.user_id.as_deref())
            && eq(&self.team_id, row.team_id.as_deref())
            && eq(&self.end_user, row.end_user.as_deref())
            && eq(&self.request_id, Some(&row.request_id))
            && eq(&self.model_group, row.model_group.as_deref())
            && self.start.is_none_or(|s| row.started_at >= s)
            && self.end.is_none_or(|e| row.started_at < e)
    }
}

/// The sums of one UTC day for one model group, requested model, provider and key: what
/// LiteLLM's `/user/daily/activity` is built from (its daily spend tables hold the same).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DailyRow {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub model_group: Option<String>,
    pub requested_model: String,
    pub provider: Option<String>,
    /// The key's SHA-256 (`''` for the master key).
    pub api_key: String,
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    pub spend_nanos: i64,
    pub requests: i64,
    /// Rows whose status was 400 or more.
    pub failed: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub latency_ms: i64,
}

impl DailyRow {
    fn same_group(&self, row: &SpendRow) -> bool {
        self.day == row.started_at.div_euclid(86_400_000)
            && self.model_group == row.model_group
            && self.requested_model == row.requested_model
            && self.provider == row.provider
            && self.api_key == row.api_key
            && self.key_alias == row.key_alias
            && self.team_id == row.team_id
    }
}

/// Daily sums in memory (the in-memory store), ordered as the SQL stores order them.
pub fn daily_rows<'a>(rows: impl IntoIterator<Item = &'a SpendRow>) -> Vec<DailyRow> {
    let mut out: Vec<DailyRow> = Vec::new();
    for row in rows {
        let index = match out.iter().position(|d| d.same_group(row)) {
            Some(index) => index,
            None => {
                out.push(DailyRow {
                    day: row.started_at.div_euclid(86_400_000),
                    model_group: row.model_group.clone(),
                    requested_model: row.requested_model.clone(),
                    provider: row.provider.clone(),
                    api_key: row.api_key.clone(),
                    key_alias: row.key_alias.clone(),
                    team_id: row.team_id.clone(),
                    ..DailyRow::default()
                });
                out.len() - 1
            }
        };
        let d = &mut out[index];
        d.spend_nanos = d.spend_nanos.saturating_add(row.cost_nanos);
        d.requests += 1;
        d.failed += i64::from(row.status >= 400);
        d.prompt_tokens = d.prompt_tokens.saturating_add(row.prompt_tokens);
        d.completion_tokens = d.completion_tokens.saturating_add(row.completion_tokens);
        d.cached_tokens = d.cached_tokens.saturating_add(row.cached_tokens);
        d.latency_ms = d.latency_ms.saturating_add(row.latency_ms);
    }
    out.sort_by_key(|d| d.day);
    out
}

/// Groups rows in memory (the in-memory store; the SQL stores group in the database). Largest
/// spend first, then by group.
pub fn group_rows<'a>(
    rows: impl IntoIterator<Item = &'a SpendRow>,
    by: &GroupBy,
) -> Vec<ReportRow> {
    let mut groups: std::collections::BTreeMap<Option<String>, ReportRow> = Default::default();
    for row in rows {
        for value in by.values(row) {
            let group = groups.entry(value.clone()).or_insert_with(|| ReportRow {
                group: value,
                ..ReportRow::default()
            });
            group.spend_nanos = group.spend_nanos.saturating_add(row.cost_nanos);
            group.requests += 1;
            group.prompt_tokens = group.prompt_tokens.saturating_add(row.prompt_tokens);
            group.completion_tokens = group
                .completion_tokens
                .saturating_add(row.completion_tokens);
        }
    }
    let mut out: Vec<ReportRow> = groups.into_values().collect();
    sort_report(&mut out);
    out
}

/// Largest spend first, then by group name (no group last).
pub fn sort_report(rows: &mut [ReportRow]) {
    rows.sort_by(|a, b| {
        b.spend_nanos
            .cmp(&a.spend_nanos)
            .then_with(|| a.group.is_none().cmp(&b.group.is_none()))
            .then_with(|| a.group.cmp(&b.group))
    });
}

/// A report as a text table (the CLI's `switchyard spend report`).
pub fn table(group_name: &str, rows: &[ReportRow]) -> String {
    let mut out = String::new();
    let width = rows
        .iter()
        .map(|r| r.group.as_deref().unwrap_or("(none)").len())
        .max()
        .unwrap_or(0)
        .max(group_name.len());
    let _ = writeln!(
        out,
        "{group_name:<width$}  {:>16}  {:>9}  {:>13}  {:>17}",
        "spend_usd", "requests", "prompt_tokens", "completion_tokens"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<width$}  {:>16}  {:>9}  {:>13}  {:>17}",
            r.group.as_deref().unwrap_or("(none)"),
            crate::money::Nanos(r.spend_nanos).to_string(),
            r.requests,
            r.prompt_tokens,
            r.completion_tokens
        );
    }
    out
}

/// `switchyard spend report`: the report grouped by `group_by` over the rows of the last
/// `since` (a duration such as `7d`), read from the configured database directly, as a text
/// table or CSV.
pub async fn cli_report(
    database: &crate::config::Database,
    group_by: &str,
    since: Option<&str>,
    csv: bool,
) -> Result<String, String> {
    let by = GroupBy::parse(group_by)?;
    let start = match since {
        None => None,
        Some(text) => {
            let ms = crate::api::management::duration_ms(text).ok_or_else(|| {
                format!("--since must be a duration such as 24h or 7d, got `{text}`")
            })?;
            Some(crate::auth::cache::now_ms() - ms)
        }
    };
    if let crate::config::Database::Sqlite(path) = database {
        // Opening would create an empty database: say what is wrong instead.
        if !path.exists() {
            return Err(format!(
                "no database at {} (pass --config, or set DATABASE_URL)",
                path.display()
            ));
        }
    }
    let store = crate::store::open(database)
        .await
        .map_err(|e| format!("{}: {e}", database.describe()))?;
    let filter = SpendFilter {
        start,
        ..SpendFilter::default()
    };
    let rows = store
        .spend_report(&filter, &by)
        .await
        .map_err(|e| e.to_string())?;
    if !csv {
        return Ok(table(group_by, &rows));
    }
    let mut out = format!("{group_by},spend,requests,prompt_tokens,completion_tokens\n");
    for r in &rows {
        let group = r.group.as_deref().unwrap_or("");
        let group = if group.contains([',', '"', '\n']) {
            format!("\"{}\"", group.replace('"', "\"\""))
        } else {
            group.to_owned()
        };
        let _ = writeln!(
            out,
            "{group},{},{},{},{}",
            crate::money::Nanos(r.spend_nanos),
            r.requests,
            r.prompt_tokens,
            r.completion_tokens
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_parse() {
        assert_eq!(GroupBy::parse("team"), Ok(GroupBy::Column("team_id")));
        assert_eq!(GroupBy::parse("customer"), Ok(GroupBy::Column("end_user")));
        assert_eq!(GroupBy::parse("tag"), Ok(GroupBy::Tag));
        assert_eq!(
            GroupBy::parse("feature"),
            Ok(GroupBy::Metadata("feature".into()))
        );
        assert!(GroupBy::parse("a'; DROP TABLE x").is_err());
        assert!(GroupBy::parse("").is_err());
    }
}
