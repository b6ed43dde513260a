//! `cove-runner [flags]`: see `cove-runner --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cove_runner_agent::Args::parse();
    cove_runner_agent::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cove-runner: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cove_runner_agent::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = cove_runner_agent::error::chain(&e);
            tracing::error!(error = %msg, "cove-runner failed");
            eprintln!("cove-runner: {msg}");
            ExitCode::FAILURE
        }
    }
}
