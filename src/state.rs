//! The shared state every handler sees. What a config file decides (the router, the master
//! key, limits) is one [`Snapshot`], swapped atomically by a reload; a request takes the
//! snapshot current when it arrived and keeps it to the end. What outlives a config (metrics,
//! the shutdown signal) sits beside it.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::auth::IdentityCache;
use crate::config::{Config, ConfigError, Secret};
use crate::policy::budget::{Budgets, Ledger};
use crate::policy::limits::{Limiter, LocalLimiter};
use crate::providers::http::HttpClient;
use crate::router::Router;
use crate::store::memory::MemoryStore;
use crate::store::Store;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    snapshot: ArcSwap<Snapshot>,
    pub metrics: Metrics,
    /// The dashboard's per-minute traffic of this instance (`telemetry/timeseries.rs`).
    pub traffic: crate::telemetry::timeseries::Traffic,
    /// Keys, teams, users and end users, as the request path reads them (never the database).
    pub identities: Arc<IdentityCache>,
    /// Where identities are kept; management routes write here, then update the cache.
    pub store: Arc<dyn Store>,
    /// Rate limits: in this process, or shared through Redis when scaled out.
    pub limiter: Arc<dyn Limiter>,
    /// Budgets: spend and reservations of the current windows, in this process or shared
    /// through Redis when scaled out.
    pub budgets: crate::policy::budget::Budgets,
    /// Spend-log rows on their way to the store (started by the server; see `spend/`).
    pub spend: Arc<crate::spend::SpendLog>,
    /// Callback events and alerts on their way out (started by the server; see `callbacks/`).
    pub callbacks: Arc<crate::callbacks::Callbacks>,
    /// Whether the last refresh from the store succeeded (for `/health/readiness`).
    pub store_healthy: Arc<std::sync::atomic::AtomicBool>,
    /// The file `POST /config/reload` and SIGHUP re-read (`None` for a config built in code).
    pub config_path: Option<PathBuf>,
    /// Cancelled when a shutdown's drain time is over: open streams end with an error event.
    pub streams_cut: CancellationToken,
    /// The conversations `previous_response_id` continues on translated deployments
    /// (`providers/responses/store.rs`); kept across config reloads.
    pub conversations: Arc<crate::providers::responses::store::Conversations>,
    /// Serialises reloads, so two at once cannot interleave their diffs.
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
}

/// Everything a config file decides, as one value a reload replaces whole.
pub struct Snapshot {
    pub router: Router,
    /// The pooled upstream client; a reload keeps it (and its open connections) unless the TLS
    /// settings changed.
    pub http: HttpClient,
    pub master_key: Option<Secret>,
    pub max_request_bytes: usize,
    /// The response cache (stage 5), when `litellm_settings.cache` is on. A reload that leaves
    /// its settings alone keeps it, and what it holds.
    pub cache: Option<Arc<crate::cache::ResponseCache>>,
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
        // The client first: it can still fail, and a router reload already prunes the shared
        // state of removed deployments.
        let http = match previous {
            Some(previous) if previous.config.tls == config.tls => previous.http.clone(),
            _ => HttpClient::with_tls(&config.tls)?,
        };
        let router = match previous {
            Some(previous) => previous.router.reload(&config, &env)?,
            None => Router::build(&config, &env)?,
        };
        let cache = match (&config.cache, previous) {
            (None, _) => None,
            (Some(settings), Some(previous))
                if previous.cache.as_ref().map(|c| c.settings()) == Some(settings) =>
            {
                previous.cache.clone()
            }
            (Some(settings), _) => match crate::cache::ResponseCache::new(settings.clone()) {
                Ok(cache) => Some(Arc::new(cache)),
                Err(err) => {
                    tracing::warn!("the response cache is off: {err}");
                    None
                }
            },
        };
        Ok(Snapshot {
            router,
            http,
            cache,
            master_key: config.master_key.clone(),
            max_request_bytes: config.max_request_bytes,
            config,
        })
    }
}

impl AppState {
    /// A state with an in-memory store (tests, and gateways built in code).
    pub fn build(config: Config, config_path: Option<PathBuf>) -> Result<Self, ConfigError> {
        Self::with_store(config, config_path, Arc::new(MemoryStore::new()))
    }

    pub fn with_store(
        config: Config,
        config_path: Option<PathBuf>,
        store: Arc<dyn Store>,
    ) -> Result<Self, ConfigError> {
        Self::with_parts(
            config,
            config_path,
            store,
            Arc::new(LocalLimiter::new()),
            Budgets::Local(Ledger::new()),
        )
    }

    pub fn with_parts(
        config: Config,
        config_path: Option<PathBuf>,
        store: Arc<dyn Store>,
        limiter: Arc<dyn Limiter>,
        budgets: Budgets,
    ) -> Result<Self, ConfigError> {
        let spend = crate::spend::SpendLog::new(config.spend.clone());
        let callbacks = crate::callbacks::Callbacks::new(config.callbacks.clone());
        let snapshot = Snapshot::build(config, None)?;
        let metrics = Metrics::new();
        metrics.configure(&snapshot.config.metrics);
        Ok(AppState(Arc::new(Inner {
            spend,
            callbacks,
            snapshot: ArcSwap::from_pointee(snapshot),
            identities: Arc::new(IdentityCache::new()),
            store,
            limiter,
            budgets,
            store_healthy: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            metrics,
            traffic: crate::telemetry::timeseries::Traffic::new(),
            config_path,
            streams_cut: CancellationToken::new(),
            conversations: Arc::new(Default::default()),
            reload_lock: tokio::sync::Mutex::new(()),
        })))
    }

    /// The configuration new requests run on.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub(crate) fn install(&self, snapshot: Snapshot) {
        self.metrics.configure(&snapshot.config.metrics);
        self.snapshot.store(Arc::new(snapshot));
    }
}

/// The semantic cache embeds prompts through the router, like any embeddings request (its own
/// retries, fallbacks and timeouts), without a request context: the embedding's cost is the
/// gateway's, not the caller's (docs/caching.md).
impl crate::cache::semantic::Embedder for Snapshot {
    fn embed<'a>(
        &'a self,
        model: &'a str,
        text: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Vec<f32>>> + Send + 'a>> {
        Box::pin(async move {
            let mut extra = crate::schema::Extra::new();
            extra.insert("input".into(), text.into());
            let request = crate::schema::PassthroughRequest {
                model: model.to_owned(),
                stream: None,
                extra,
            };
            let served = self
                .router
                .passthrough(
                    &self.http,
                    crate::providers::PassthroughEndpoint::Embeddings,
                    &request,
                    &crate::router::RequestOptions::default(),
                )
                .await;
            match served {
                Ok(served) => {
                    let answer = serde_json::to_value(&served.value).ok()?;
                    crate::cache::semantic::first_embedding(&answer)
                }
                Err(err) => {
                    tracing::warn!(model, "semantic cache: embedding failed: {err}");
                    None
                }
            }
        })
    }
}
