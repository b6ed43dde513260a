//! `cove-toolbox [daemon flags] -- <image entrypoint/cmd...>`

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cove_toolbox::Args::parse();
    if let Some(code) = cove_toolbox::supervisor::reap_as_pid1() {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    cove_toolbox::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cove-toolbox: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cove_toolbox::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cove-toolbox failed");
            ExitCode::FAILURE
        }
    }
}
