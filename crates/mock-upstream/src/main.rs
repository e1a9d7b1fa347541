//! `switchyard-mock-upstream`: the mock upstream as its own binary (the same server as
//! `switchyard mock-upstream`).

use std::process::ExitCode;

use clap::Parser;
use switchyard_mock::MockArgs;

/// A fake OpenAI-compatible upstream with controllable latency and faults.
#[derive(Parser)]
#[command(name = "switchyard-mock-upstream", version)]
struct Cli {
    #[command(flatten)]
    args: MockArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match switchyard_mock::serve(cli.args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard-mock-upstream: {e}");
            ExitCode::FAILURE
        }
    }
}
