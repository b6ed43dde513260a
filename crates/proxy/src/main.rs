//! `cove-proxy`: see the crate docs (`cove_proxy`).

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use cove_proxy::config::{Args, Config};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let cfg = Config::from_args(&args);
    tracing::info!(%addr, domain = %cfg.domain, api = %cfg.api_url, "cove-proxy serving");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "cove-proxy listening on {addr}")?;
        out.flush()?;
    }
    let proxy = cove_proxy::Proxy::new(cfg);
    cove_proxy::serve(listener, proxy, shutdown()).await;
    Ok(())
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
