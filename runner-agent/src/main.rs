//! `cove-runner [flags]`: see `cove-runner --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cove_runner_agent::Args::parse();
    cove_runner_agent::init_tracing();
    if args.exit_with_parent {
        // SIGTERM when the parent goes, which runs the normal graceful shutdown. A parent that
        // died before this call left us re-parented already: stop at once.
        let parent = rustix::process::getppid();
        if let Err(e) =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
        {
            eprintln!("cove-runner: cannot follow the parent process: {e}");
            return ExitCode::FAILURE;
        }
        if parent.is_none() || rustix::process::getppid() != parent {
            eprintln!("cove-runner: the parent process is gone");
            return ExitCode::FAILURE;
        }
    }
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
