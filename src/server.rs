//! Binding, serving, reloading and shutting down.
//!
//! Shutdown (SIGTERM or SIGINT): the listener closes at once, requests in flight may finish
//! for up to the drain time (`--drain-timeout`, default 30 s); then streams still open end
//! with an error event, and a few seconds later the process exits whatever is left.
//! SIGHUP reloads the config file (`reload.rs`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::future::IntoFuture as _;

use axum::serve::ListenerExt as _;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::state::AppState;

/// After the drain time, how long cut streams and stuck requests get before the process exits.
const AFTER_CUT: Duration = Duration::from_secs(5);

/// Serves until SIGINT/SIGTERM. Prints `switchyard listening on http://ADDR` on stdout once the
/// socket is bound (with `--port 0`, the port the OS chose), for scripts and tests.
pub async fn serve(
    config: Config,
    config_path: Option<PathBuf>,
    addr: SocketAddr,
    drain: Duration,
) -> std::io::Result<()> {
    crate::telemetry::traces::start(config.otel_callback);
    let database = config.storage.database.clone();
    let store = crate::store::open(&database)
        .await
        .map_err(|err| std::io::Error::other(format!("{}: {err}", database.describe())))?;
    tracing::info!(database = %database.describe(), "identity store open");
    let limiter = limiter(config.storage.redis_url.as_ref()).await;
    let budgets = budgets(config.storage.redis_url.as_ref()).await;
    let state = AppState::with_parts(config, config_path, store, limiter, budgets)
        .map_err(|err| std::io::Error::other(err.to_string()))?;
    // Before the first request: metric handles resolved earlier would stay no-ops.
    state.metrics.install_recorder();
    // The identity cache is loaded before the first request is accepted.
    if let Ok(changes) = state.store.changes_since(0).await {
        state.identities.apply(changes);
    }
    tokio::spawn(crate::auth::cache::keep_fresh(
        state.identities.clone(),
        state.store.clone(),
        state.store_healthy.clone(),
    ));
    state.spend.start(state.store.clone());
    state.callbacks.start(state.snapshot().http.clone());
    // Budgets start from what the store says was spent, and follow it (other instances).
    crate::router::budget::seed_once(&state).await;
    tokio::spawn(crate::router::budget::keep_seeded(
        state.clone(),
        std::time::Duration::from_secs(5),
    ));
    crate::policy::budget::seed_once(&state).await;
    tokio::spawn(crate::policy::budget::keep_seeded(
        state.clone(),
        std::time::Duration::from_secs(5),
    ));
    tokio::spawn(health_checks(state.clone()));
    // Signal handlers are installed before the listening line: a SIGTERM or SIGHUP sent as soon as
    // the gateway says it listens must reach them, not the default action (exit, losing the log
    // lines and spend rows still queued).
    let signals = Signals::install();
    #[cfg(unix)]
    tokio::spawn(reload_on_sighup(state.clone(), signals.hangup));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "switchyard listening on http://{local}")?;
        stdout.flush()?;
    }
    tracing::info!(%local, "switchyard serving");
    // Small SSE writes must leave at once: without TCP_NODELAY, Nagle's algorithm and delayed ACKs
    // hold stream chunks back by tens of milliseconds.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let stopping = CancellationToken::new();
    let server = axum::serve(listener, crate::api::routes(state.clone()))
        .with_graceful_shutdown({
            let stopping = stopping.clone();
            let (interrupt, terminate) = (signals.interrupt, signals.terminate);
            async move {
                shutdown_signal(interrupt, terminate).await;
                stopping.cancel();
            }
        })
        .into_future();
    let deadline = {
        let cut = state.streams_cut.clone();
        async move {
            stopping.cancelled().await;
            tracing::info!(
                drain_secs = drain.as_secs_f64(),
                "draining requests in flight"
            );
            tokio::time::sleep(drain).await;
            tracing::warn!("drain time over: ending the streams still open");
            cut.cancel();
            tokio::time::sleep(AFTER_CUT).await;
            tracing::warn!("requests still in flight after the drain time; exiting anyway");
        }
    };
    let served = tokio::select! {
        result = server => result,
        () = deadline => Ok(()),
    };
    // The last requests' budget settlements reach Redis (else their holds count until the
    // hold TTL); spend-log rows still queued get a bounded time to reach the database, the rest
    // is spilled to the spill file, which the next start replays.
    state.budgets.drain(Duration::from_secs(2)).await;
    state.spend.shutdown().await;
    // Callback events and alerts still queued get a bounded time to be delivered.
    state.callbacks.shutdown().await;
    crate::telemetry::traces::shutdown(Duration::from_secs(2)).await;
    crate::telemetry::flush_logs();
    served?;
    Ok(())
}

/// Redis-backed limits when Redis is configured (shared by every instance), else in-process.
/// An unreachable Redis at start is not fatal: limits hold per instance until it answers.
async fn limiter(
    redis_url: Option<&crate::config::Secret>,
) -> std::sync::Arc<dyn crate::policy::limits::Limiter> {
    use crate::policy::limits::{LocalLimiter, RedisLimiter, RedisOptions};
    let Some(url) = redis_url else {
        return std::sync::Arc::new(LocalLimiter::new());
    };
    let mut options = RedisOptions::default();
    if let Some(timeout) = redis_call_timeout() {
        options.call_timeout = timeout;
    }
    match RedisLimiter::connect(url.expose(), options).await {
        Ok(limiter) => {
            tracing::info!("rate limits shared through Redis");
            std::sync::Arc::new(limiter)
        }
        Err(err) => {
            tracing::warn!("Redis is not usable ({err}); rate limits hold per instance");
            std::sync::Arc::new(LocalLimiter::new())
        }
    }
}

/// How long a request waits for Redis (rate limits and budgets) before this instance decides
/// alone (`SWITCHYARD_REDIS_LIMIT_TIMEOUT_MS`); a busy or distant Redis may need more than the
/// default.
fn redis_call_timeout() -> Option<Duration> {
    env_number("SWITCHYARD_REDIS_LIMIT_TIMEOUT_MS").map(Duration::from_millis)
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
}

/// Budgets shared through Redis when Redis is configured (one account per budget for every
/// instance), else in this process. An unreachable Redis at start is not fatal: budgets hold per
/// instance until it answers.
async fn budgets(redis_url: Option<&crate::config::Secret>) -> crate::policy::budget::Budgets {
    use crate::policy::budget::{Budgets, Ledger, RedisLedger, RedisLedgerOptions};
    let Some(url) = redis_url else {
        return Budgets::Local(Ledger::new());
    };
    let mut options = RedisLedgerOptions::default();
    if let Some(timeout) = redis_call_timeout() {
        options.call_timeout = timeout;
    }
    // How long a reservation of a crashed instance counts: longer than the longest request.
    if let Some(secs) = env_number("SWITCHYARD_BUDGET_HOLD_TTL_SECS") {
        options.hold_ttl = Duration::from_secs(secs);
    }
    match RedisLedger::connect(url.expose(), options).await {
        Ok(ledger) => {
            tracing::info!("budgets shared through Redis");
            Budgets::Redis(ledger)
        }
        Err(err) => {
            tracing::warn!("Redis is not usable ({err}); budgets hold per instance");
            Budgets::Local(Ledger::new())
        }
    }
}

/// Background health checks, on whatever config is current at each round.
async fn health_checks(state: AppState) {
    loop {
        let snapshot = state.snapshot();
        let interval = snapshot.router.health_check_interval();
        if snapshot.router.health_checks_enabled() {
            snapshot.router.check_all(&snapshot.http).await;
        }
        drop(snapshot);
        tokio::time::sleep(interval).await;
    }
}

#[cfg(unix)]
/// The process signals the gateway acts on, installed once at start (`None` where a handler
/// cannot be installed: that signal keeps its default action).
struct Signals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
    hangup: Option<Signal>,
}

#[cfg(unix)]
type Signal = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Signal = std::convert::Infallible;

impl Signals {
    #[cfg(unix)]
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            hangup: signal(SignalKind::hangup()).ok(),
        }
    }

    #[cfg(not(unix))]
    fn install() -> Signals {
        Signals {
            interrupt: None,
            terminate: None,
            hangup: None,
        }
    }
}

#[cfg(unix)]
async fn reload_on_sighup(state: AppState, hangup: Option<Signal>) {
    let Some(mut hangup) = hangup else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /config/reload instead");
        return;
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        if let Err(err) = crate::reload::reload(&state).await {
            tracing::error!("config reload refused, the previous config keeps serving: {err}");
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM (Ctrl-C elsewhere).
async fn shutdown_signal(interrupt: Option<Signal>, terminate: Option<Signal>) {
    #[cfg(unix)]
    {
        async fn next(signal: Option<Signal>) {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = next(interrupt) => {},
            () = next(terminate) => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (interrupt, terminate);
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}
