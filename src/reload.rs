//! Hot reload (the LiteLLM proxy needs a restart for this): on SIGHUP or `POST /config/reload`
//! the config file is read and validated again, and the new configuration replaces the old one
//! in one atomic swap. Requests in flight finish on the configuration they started with; every
//! deployment whose id did not change keeps its cooldown, usage counters and statistics
//! (`Router::reload`). A file that does not validate is refused with the message `switchyard
//! check` prints, and the old configuration keeps serving.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{self, Config, ConfigError};
use crate::state::{AppState, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the gateway was not started from a config file, so there is nothing to reload")]
    NoFile,
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// What a reload changed, by deployment id.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Same id (`model_info.id`), different settings.
    pub changed: Vec<String>,
    pub unchanged: usize,
    /// Anything outside `model_list` changed (router or general settings).
    pub settings_changed: bool,
}

/// Re-reads the config file and swaps it in, or leaves everything as it was.
pub async fn reload(state: &AppState) -> Result<Changes, ReloadError> {
    let _one_at_a_time = state.reload_lock.lock().await;
    let path = state.config_path.as_ref().ok_or(ReloadError::NoFile)?;
    let path = path.clone();
    let loaded = tokio::task::spawn_blocking(move || config::load(&path))
        .await
        .map_err(|err| {
            ReloadError::Invalid(ConfigError::Invalid {
                location: "reload".into(),
                message: err.to_string(),
            })
        })??;
    let current = state.snapshot();
    let next = Snapshot::build(loaded.config, Some(&current))?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let changes = diff(&current.config, &next.config);
    if current.config.spend != next.config.spend {
        // The spend-log queue and its writer are made once, at start.
        tracing::warn!(
            "switchyard_spend and maximum_spend_logs_retention_period changes take effect at the next start"
        );
    }
    if format!("{:?}", current.config.callbacks) != format!("{:?}", next.config.callbacks) {
        // The callback queues, senders and the alert hub are made once, at start.
        tracing::warn!(
            "changes to callbacks, callback_settings, alerting and switchyard_callbacks take effect at the next start"
        );
    }
    state.install(next);
    tracing::info!(
        added = ?changes.added,
        removed = ?changes.removed,
        changed = ?changes.changed,
        unchanged = changes.unchanged,
        settings_changed = changes.settings_changed,
        "config reloaded"
    );
    Ok(changes)
}

fn diff(old: &Config, new: &Config) -> Changes {
    // Debug renderings compare every field; secrets render masked, so a rotated key alone does
    // not show as a change (the new key is used all the same).
    let by_id = |config: &Config| -> BTreeMap<String, String> {
        config
            .deployments
            .iter()
            .map(|d| (d.id.clone(), format!("{d:?}")))
            .collect()
    };
    let (before, after) = (by_id(old), by_id(new));
    let mut changes = Changes::default();
    for (id, rendered) in &after {
        match before.get(id) {
            None => changes.added.push(id.clone()),
            Some(previous) if previous != rendered => changes.changed.push(id.clone()),
            Some(_) => changes.unchanged += 1,
        }
    }
    changes.removed = before
        .keys()
        .filter(|id| !after.contains_key(*id))
        .cloned()
        .collect();
    let settings = |c: &Config| {
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?}",
            c.router,
            c.master_key,
            c.max_request_bytes,
            c.request_timeout,
            c.num_retries,
            c.drop_params
        )
    };
    changes.settings_changed = settings(old) != settings(new);
    changes
}
