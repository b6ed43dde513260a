//! `cove-runner`: the Cove runner agent.
//!
//! Runs sandboxes as Docker containers (through the [`runtime::ContainerRuntime`] trait), applies
//! desired states pushed by the control plane ([`reconciler`]), keeps a warm pool ([`pool`]),
//! forwards toolbox calls to each sandbox's daemon over a unix socket ([`toolbox`]) and sends
//! heartbeats ([`heartbeat`]). The wire contract is `cove_runner_api`.

pub mod config;
pub mod error;
pub mod heartbeat;
pub mod http;
pub mod network;
pub mod pool;
pub mod reconciler;
pub mod reporter;
pub mod runtime;
pub mod sandbox_dir;
pub mod toolbox;

use std::sync::Arc;

pub use config::{Args, Config};

/// Initialises `tracing` once (RUST_LOG, default `info`), logging to stderr.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot reach the Docker engine")]
    Docker(#[source] runtime::RuntimeError),
    #[error(
        "cannot isolate the sandbox network (pass --external-network-isolation if the host's firewall does it)"
    )]
    Network(#[source] network::NetworkError),
    #[error("startup failed")]
    Startup(#[source] error::AgentError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server failed")]
    Serve(#[source] std::io::Error),
}

/// Runs the agent until SIGINT/SIGTERM. Prints `cove-runner listening on http://ADDR` on stdout
/// once the API answers.
pub async fn run(args: Args) -> Result<(), RunError> {
    let cfg = Config::from_args(args)?;
    let docker = runtime::docker::DockerRuntime::connect()
        .await
        .map_err(RunError::Docker)?;
    let toolbox_bin = reconciler::install_toolbox(&cfg).map_err(RunError::Startup)?;
    let root_mount = isolate(&cfg, &docker).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(RunError::Serve)?;
    let mut cfg = cfg;
    cfg.listen = addr;
    let control_plane = cfg.control_plane_url.clone();
    let rec = reconciler::Reconciler::new(cfg, Arc::new(docker), toolbox_bin);
    rec.recover().await.map_err(RunError::Startup)?;
    let refill = (!rec.pool().targets().is_empty()).then(|| tokio::spawn(pool::run(rec.clone())));
    if let Some(url) = control_plane {
        tokio::spawn(heartbeat::run(rec.clone(), url.clone()));
        tokio::spawn(reporter::run(rec.clone(), url, reporter::OBSERVE_EVERY));
    }
    let app = http::router(rec.clone());
    let shutdown = shutdown_signal();
    println!("cove-runner listening on http://{addr}");
    tracing::info!(%addr, runner = %rec.config().runner_id, "serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(RunError::Serve)?;
    // Sandboxes keep running; only unclaimed warm containers go away. Stop refilling first so
    // no member is created behind the drain.
    if let Some(task) = refill {
        task.abort();
    }
    rec.drain_pool().await;
    let sandboxes = rec.config().data_dir.join(sandbox_dir::SANDBOXES_DIR);
    sandbox_dir::release_root(&sandboxes, root_mount);
    Ok(())
}

/// The sandbox isolation of the host: toolbox peer policy, the hardened sandbox directories,
/// the sandbox network and its firewall rules (re-asserted in the background).
async fn isolate(
    cfg: &Config,
    docker: &runtime::docker::DockerRuntime,
) -> Result<sandbox_dir::RootMount, RunError> {
    toolbox::set_peer_policy(if cfg.allow_unverified_toolbox_peer {
        toolbox::PeerPolicy::AllowUnverified
    } else {
        toolbox::PeerPolicy::Verified
    });
    network::setup(docker.client(), &cfg.network, &cfg.runner_id)
        .await
        .map_err(RunError::Network)?;
    let root_mount = sandbox_dir::secure_root(&cfg.data_dir.join(sandbox_dir::SANDBOXES_DIR))
        .map_err(RunError::Startup)?;
    tokio::spawn(network::reassert(
        docker.client().clone(),
        cfg.network.clone(),
    ));
    Ok(root_mount)
}

/// SIGTERM or SIGINT. The handlers are installed at the call, not at the first poll: a SIGTERM
/// right after the "listening" line must shut down gracefully, not kill the agent.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let (Ok(mut term), Ok(mut int)) = (term, int) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
