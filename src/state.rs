//! The shared state every handler sees. What a config file decides (the router, the master
//! key, limits) is one [`Snapshot`], swapped atomically by a reload; a request takes the
//! snapshot current when it arrived and keeps it to the end. What outlives a config (the HTTP
//! client, metrics, the shutdown signal) sits beside it.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, Secret};
use crate::providers::http::HttpClient;
use crate::router::Router;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    snapshot: ArcSwap<Snapshot>,
    pub http: HttpClient,
    pub metrics: Metrics,
    /// The file `POST /config/reload` and SIGHUP re-read (`None` for a config built in code).
    pub config_path: Option<PathBuf>,
    /// Cancelled when a shutdown's drain time is over: open streams end with an error event.
    pub streams_cut: CancellationToken,
    /// Serialises reloads, so two at once cannot interleave their diffs.
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
}

/// Everything a config file decides, as one value a reload replaces whole.
pub struct Snapshot {
    pub router: Router,
    pub master_key: Option<Secret>,
    pub max_request_bytes: usize,
    pub config: Config,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Snapshot {
    pub fn build(config: Config, previous: Option<&Snapshot>) -> Result<Snapshot, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        let router = match previous {
            Some(previous) => previous.router.reload(&config, &env)?,
            None => Router::build(&config, &env)?,
        };
        Ok(Snapshot {
            router,
            master_key: config.master_key.clone(),
            max_request_bytes: config.max_request_bytes,
            config,
        })
    }
}

impl AppState {
    pub fn build(config: Config, config_path: Option<PathBuf>) -> Result<Self, ConfigError> {
        let snapshot = Snapshot::build(config, None)?;
        let http = HttpClient::new().map_err(|err| ConfigError::Invalid {
            location: "http client".into(),
            message: err.to_string(),
        })?;
        Ok(AppState(Arc::new(Inner {
            snapshot: ArcSwap::from_pointee(snapshot),
            http,
            metrics: Metrics::new(),
            config_path,
            streams_cut: CancellationToken::new(),
            reload_lock: tokio::sync::Mutex::new(()),
        })))
    }

    /// The configuration new requests run on.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub(crate) fn install(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }
}
