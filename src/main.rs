//! The `switchyard` command: `serve`, `check`, `spend report` and `mock-upstream`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: a request allocates many small, short-lived buffers, and
/// glibc's allocator was a fifth of the gateway's instructions per request in the benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "An OpenAI-compatible AI gateway that reads LiteLLM config.yaml"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// LiteLLM-format config.yaml.
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Address to listen on (LiteLLM's default).
        #[arg(long, default_value = "0.0.0.0")]
        host: String,
        /// Port to listen on (LiteLLM's default).
        #[arg(long, short = 'p', default_value_t = 4000)]
        port: u16,
        /// Log as JSON lines instead of text.
        #[arg(long, env = "SWITCHYARD_JSON_LOGS")]
        json_logs: bool,
        /// Seconds a shutdown waits for requests in flight before ending open streams.
        #[arg(long, env = "SWITCHYARD_DRAIN_TIMEOUT", default_value_t = 30.0)]
        drain_timeout: f64,
    },
    /// Validate a config and print the resolved model groups (secrets masked).
    Check {
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
    /// Spend-log reports, read from the configured database.
    #[command(subcommand)]
    Spend(SpendCommand),
    /// Run a fake OpenAI-compatible upstream for tests, benchmarks and load tests.
    MockUpstream(switchyard_mock::MockArgs),
}

#[derive(Subcommand)]
enum SpendCommand {
    /// Spend, requests and tokens per group: team, key, user, end_user, model, provider, tag,
    /// or a metadata key such as `feature`.
    Report {
        #[arg(long, default_value = "team")]
        group_by: String,
        /// Only rows of the last DURATION (`24h`, `7d`, `1mo`); all rows without it.
        #[arg(long)]
        since: Option<String>,
        /// The config whose database to read; without it, `DATABASE_URL` or ./switchyard.db.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// Print CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => {
            switchyard::telemetry::init_logging(false, false);
            let checked = switchyard::config::load(&config).and_then(|loaded| {
                switchyard::router::Router::build(&loaded.config, &|name| {
                    std::env::var(name).ok()
                })?;
                Ok(loaded)
            });
            match checked {
                Ok(loaded) => {
                    for warning in &loaded.warnings {
                        eprintln!("warning: {warning}");
                    }
                    print!("{}", loaded.config.describe());
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Serve {
            config,
            host,
            port,
            json_logs,
            drain_timeout,
        } => {
            switchyard::telemetry::init_logging(json_logs, true);
            let loaded = match switchyard::config::load(&config) {
                Ok(loaded) => loaded,
                Err(err) => {
                    eprintln!("error: {err}");
                    return ExitCode::from(2);
                }
            };
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            let addr = match format!("{host}:{port}").parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(err) => {
                    eprintln!("error: invalid --host/--port `{host}:{port}`: {err}");
                    return ExitCode::from(2);
                }
            };
            let drain = match std::time::Duration::try_from_secs_f64(drain_timeout) {
                Ok(drain) => drain,
                Err(_) => {
                    eprintln!(
                        "error: --drain-timeout must be a number of seconds, got {drain_timeout}"
                    );
                    return ExitCode::from(2);
                }
            };
            run_async(switchyard::server::serve(
                loaded.config,
                Some(config),
                addr,
                drain,
            ))
        }
        Command::Spend(SpendCommand::Report {
            group_by,
            since,
            config,
            csv,
        }) => {
            switchyard::telemetry::init_logging(false, false);
            let database = match config {
                Some(path) => match switchyard::config::load(&path) {
                    Ok(loaded) => loaded.config.storage.database,
                    Err(err) => {
                        eprintln!("error: {err}");
                        return ExitCode::from(2);
                    }
                },
                None => match std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
                    Some(url) => match switchyard::config::Database::from_url(&url) {
                        Ok(database) => database,
                        Err(err) => {
                            eprintln!("error: DATABASE_URL {err}");
                            return ExitCode::from(2);
                        }
                    },
                    None => switchyard::config::Database::Sqlite(PathBuf::from(
                        switchyard::config::DEFAULT_SQLITE_FILE,
                    )),
                },
            };
            run_async(async move {
                let report =
                    switchyard::spend::cli_report(&database, &group_by, since.as_deref(), csv)
                        .await
                        .map_err(std::io::Error::other)?;
                print!("{report}");
                Ok(())
            })
        }
        Command::MockUpstream(args) => {
            switchyard::telemetry::init_logging(false, false);
            run_async(switchyard_mock::serve(args))
        }
    }
}

fn run_async(fut: impl std::future::Future<Output = std::io::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
