//! The shared state every handler sees, built once at start-up from the config.

use std::sync::Arc;

use crate::config::{Config, ConfigError, Secret};
use crate::providers::http::HttpClient;
use crate::router::Router;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub router: Router,
    pub http: HttpClient,
    pub master_key: Option<Secret>,
    pub max_request_bytes: usize,
    pub metrics: Metrics,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn build(config: Config) -> Result<Self, ConfigError> {
        let router = Router::build(&config, &|name| std::env::var(name).ok())?;
        let http = HttpClient::new().map_err(|err| ConfigError::Invalid {
            location: "http client".into(),
            message: err.to_string(),
        })?;
        let metrics = Metrics::new(&config);
        Ok(AppState(Arc::new(Inner {
            router,
            http,
            master_key: config.master_key,
            max_request_bytes: config.max_request_bytes,
            metrics,
        })))
    }
}
