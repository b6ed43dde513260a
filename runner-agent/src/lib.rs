//! `cove-runner`: the Cove runner agent.
//!
//! Runs sandboxes as Docker containers (through the [`runtime::ContainerRuntime`] trait; or,
//! with `--runtime fake`, as simulated containers whose toolbox daemons run in-process),
//! applies desired states pushed by the control plane ([`reconciler`]), keeps a warm pool
//! ([`pool`]), forwards toolbox calls to each sandbox's daemon over a unix socket ([`toolbox`],
//! [`relay`]), samples the daemons' usage into an in-memory history ([`metrics`]) and sends heartbeats ([`heartbeat`]) and state reports ([`reporter`]). With
//! Docker it isolates sandboxes on the host: an isolated bridge network with firewall rules
//! ([`network`]) and hardened per-sandbox host directories ([`sandbox_dir`]). Snapshot jobs
//! pull, build and push images ([`snapshots`]). The wire
//! contract is `cove_runner_api`; the API document is [`http::openapi`].

pub mod config;
pub mod egress;
pub mod error;
pub mod heartbeat;
pub mod http;
pub mod lend;
pub mod metrics;
pub mod network;
pub mod pool;
pub mod reconciler;
pub mod relay;
pub mod reporter;
pub mod runtime;
pub mod sandbox_dir;
pub mod snapshots;
pub mod toolbox;
pub mod volumes;

use std::sync::Arc;
use std::time::Duration;

pub use config::{Args, Config};

/// Initialises `tracing` once (RUST_LOG, default `info`), logging to stderr; colours only when
/// stderr is a terminal.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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

/// The container engine of `cfg` (with deadlines), the toolbox binary to mount, and (Docker
/// only) the mount of the sandbox directories to release at shutdown.
struct Engine {
    runtime: Arc<dyn runtime::ContainerRuntime>,
    toolbox_bin: std::path::PathBuf,
    root_mount: Option<sandbox_dir::RootMount>,
}

async fn make_runtime(cfg: &Config) -> Result<Engine, RunError> {
    use runtime::timed::Timed;
    let deadlines = cfg.timeouts.engine;
    match cfg.runtime {
        config::RuntimeKind::Docker => {
            let docker = runtime::docker::DockerRuntime::connect()
                .await
                .map_err(RunError::Docker)?;
            let toolbox_bin = reconciler::install_toolbox(cfg).map_err(RunError::Startup)?;
            let root_mount = isolate(cfg, &docker).await?;
            Ok(Engine {
                runtime: Arc::new(Timed::new(docker, deadlines)),
                toolbox_bin,
                root_mount: Some(root_mount),
            })
        }
        config::RuntimeKind::Fake => {
            // Simulated containers live in memory: a previous run's files are stale.
            let dir = cfg.data_dir.join("fake");
            let _ = std::fs::remove_dir_all(&dir);
            let images: Vec<String> = cfg.snapshot_images().map(str::to_owned).collect();
            toolbox::accept_in_process_peers();
            tracing::warn!(
                ?images,
                "simulated runner: containers are not isolated (tests only)"
            );
            let fake = runtime::fake::FakeRuntime::new(dir, &images);
            Ok(Engine {
                runtime: Arc::new(Timed::new(fake, deadlines)),
                toolbox_bin: cfg.toolbox_bin.clone(),
                root_mount: None,
            })
        }
    }
}

/// The sandbox isolation of the host (Docker only, see [`Config::isolates`]): the sandbox
/// network and its firewall rules (re-asserted in the background) and the hardened sandbox
/// directories.
async fn isolate(
    cfg: &Config,
    docker: &runtime::docker::DockerRuntime,
) -> Result<sandbox_dir::RootMount, RunError> {
    network::setup(docker.client(), &cfg.network, &cfg.runner_id)
        .await
        .map_err(RunError::Network)?;
    network::egress::install(docker.client().clone(), cfg.network.clone());
    let root_mount = sandbox_dir::secure_root(&cfg.data_dir.join(sandbox_dir::SANDBOXES_DIR))
        .map_err(RunError::Startup)?;
    tokio::spawn(network::reassert(
        docker.client().clone(),
        cfg.network.clone(),
    ));
    Ok(root_mount)
}

/// Starts heartbeats and state reports when a control plane is configured.
fn spawn_control_plane_tasks(rec: &Arc<reconciler::Reconciler>) {
    let Some(url) = rec.config().control_plane_url.clone() else {
        return;
    };
    let client = cove_runner_api::client::ControlPlaneClient::new(url, rec.config().token.clone());
    let standing = Arc::new(heartbeat::Standing::default());
    tokio::spawn(heartbeat::run(
        rec.clone(),
        client.clone(),
        standing.clone(),
    ));
    tokio::spawn(reporter::run(rec.clone(), client, standing));
}

/// Runs the agent until SIGINT/SIGTERM. Prints `cove-runner listening on http://ADDR` on stdout
/// once the API answers.
pub async fn run(args: Args) -> Result<(), RunError> {
    let mut cfg = Config::from_args(args)?;
    relay::set_idle_timeout(cfg.timeouts.idle);
    toolbox::set_peer_policy(if cfg.allow_unverified_toolbox_peer {
        toolbox::PeerPolicy::AllowUnverified
    } else {
        toolbox::PeerPolicy::Verified
    });
    let engine = make_runtime(&cfg).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(RunError::Serve)?;
    cfg.listen = addr;
    let grace = cfg.timeouts.shutdown_grace;
    let rec = reconciler::Reconciler::new(cfg, engine.runtime, engine.toolbox_bin);
    rec.recover().await.map_err(RunError::Startup)?;
    let refill = (!rec.pool().targets().is_empty()).then(|| tokio::spawn(pool::run(rec.clone())));
    spawn_control_plane_tasks(&rec);
    lend::spawn(&rec);
    tokio::spawn(metrics::run(rec.clone()));
    let app = http::router(rec.clone());
    let shutdown = shutdown_signal();
    println!("cove-runner listening on http://{addr}");
    tracing::info!(%addr, runner = %rec.config().runner_id, runtime = ?rec.config().runtime, "serving");
    serve(listener, app, shutdown, grace)
        .await
        .map_err(RunError::Serve)?;
    // Sandboxes keep running; only unclaimed warm containers go away. Stop refilling first so
    // no member is created behind the drain.
    if let Some(task) = refill {
        task.abort();
    }
    rec.drain_pool().await;
    if let Some(mount) = engine.root_mount {
        let sandboxes = rec.config().data_dir.join(sandbox_dir::SANDBOXES_DIR);
        sandbox_dir::release_root(&sandboxes, mount);
    }
    Ok(())
}

/// Serves until `shutdown` resolves, then gives open connections `grace` to finish.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stopping, mut stopped) = tokio::sync::watch::channel(false);
    use axum::serve::ListenerExt;
    // No Nagle: a streamed answer (headers, then the body) must not wait for a delayed ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!(grace_secs = grace.as_secs_f64(), "shutting down");
        let _ = stopping.send(true);
    });
    let bounded = async move {
        let _ = stopped.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        res = std::future::IntoFuture::into_future(server) => res,
        () = bounded => {
            tracing::warn!(grace_secs = grace.as_secs_f64(), "connections still open after the shutdown grace period; exiting");
            Ok(())
        }
    }
}

/// SIGTERM or SIGINT. The handlers are installed at the call, not at the first poll: a SIGTERM
/// right after the "listening" line must shut down gracefully, not kill the agent.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
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
