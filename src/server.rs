//! Binding, serving and shutting down.

use std::io::Write as _;
use std::net::SocketAddr;

use axum::serve::ListenerExt as _;

use crate::config::Config;
use crate::state::AppState;

/// Serves until SIGINT/SIGTERM. Prints `switchyard listening on http://ADDR` on stdout once the
/// socket is bound (with `--port 0`, the port the OS chose), for scripts and tests.
pub async fn serve(config: Config, addr: SocketAddr) -> std::io::Result<()> {
    let state = AppState::build(config).map_err(|err| std::io::Error::other(err.to_string()))?;
    if state.router.health_checks_enabled() {
        let checker = state.clone();
        tokio::spawn(async move { checker.router.run_health_checks(&checker.http).await });
    }
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
    axum::serve(listener, crate::api::routes(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    crate::telemetry::flush_logs();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
