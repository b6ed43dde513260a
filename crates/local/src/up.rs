//! `cove up`: build what is missing, start the backends, bootstrap, serve, start the local runner
//! agent and the lifecycle timer; on SIGINT/SIGTERM stop them in reverse order.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cove_host::app::App;
use cove_host::load::HostSettings;
use cove_host::manifest::Manifest;
use cove_host::runtime::InstanceLimits;
use cove_host::server;
use cove_host::variables::AppVariables;

use crate::backends::{Backends, MANAGED_VARIABLES};
use crate::cli::UpArgs;
use crate::lifecycle_timer;
use crate::runner_supervisor::{self, LocalRunner, RunnerSettings};

/// The component that registers runners; `cove up` starts a local agent only when it exists.
const RUNNERS_COMPONENT: &str = "runners";

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let manifest = checked_manifest(&args)?;
    let data_dir = crate::cli::data_dir(args.data_dir.clone())?;
    let backends = Backends::start(&args.backends, &data_dir).await?;
    let api_key = crate::admin::bootstrap(&backends.store).await?;
    let proxy = crate::preview_proxy::LocalProxy::bind(&args.proxy).await?;
    let managed = match &proxy {
        Some(p) => p.variables(&backends.managed),
        None => backends.managed.clone(),
    };
    let variables = variables(&manifest, &args, &managed)?;
    let app =
        cove_host::load::load(&manifest, &variables, &host_settings(&args, &data_dir)?).await?;

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let shown = shown_addr(listener.local_addr()?);
    tracing::info!(addr = %shown, app = %manifest.name, "serving");
    let mut lines = vec![format!("DAYTONA_API_URL=http://{shown}/api")];
    lines.extend(api_key.map(|key| format!("DAYTONA_API_KEY={key}")));
    lines.extend(backend_lines(&backends.managed));
    lines.extend((backends.ca_cert.as_ref()).map(|p| format!("COVE_CA_CERT={}", p.display())));

    lines.extend(proxy.as_ref().map(|p| p.lines()).unwrap_or_default());
    let lend_socket = runner_supervisor::data_dir(&data_dir).join(cove_lend::SOCKET_NAME);
    let (proxy_task, native) = match proxy.map(|p| p.spawn(shown, lend_socket)) {
        Some((task, route)) => (Some(task), vec![route]),
        None => (None, Vec::new()),
    };
    let sweeper = start_sweeper(&args, &manifest, &app);
    let limits = args.server_limits();
    let server = tokio::spawn(server::serve_with(
        listener,
        app,
        native,
        limits,
        server::shutdown_signal(),
    ));
    let runner = match start_runner(&args, &manifest, &data_dir, shown, &backends).await {
        Ok(runner) => runner,
        Err(e) => {
            server.abort();
            backends.stop().await;
            return Err(e.context("cannot start the local runner agent (or pass --no-runner)"));
        }
    };
    lines.push("cove ready".to_owned());
    print_stdout(&lines)?;

    let served = server.await.context("server task panicked")?;
    if let Some(s) = sweeper {
        s.abort();
    }
    if let Some(p) = proxy_task {
        p.abort();
    }
    if let Some(r) = runner {
        r.stop().await;
    }
    backends.stop().await;
    tracing::info!("stopped");
    served?;
    Ok(())
}

/// Loads the manifest, builds missing components and fails on a missing required variable,
/// all before the data directory is touched.
fn checked_manifest(args: &UpArgs) -> anyhow::Result<Manifest> {
    let manifest = Manifest::load(&args.manifest)?;
    if !args.no_build {
        cove_host::build::run(&manifest, |c| !c.source.exists())?;
    }
    if let Some(c) = manifest.components.values().find(|c| !c.source.exists()) {
        bail!(
            "component {:?}: source {} does not exist (run `cove build`)",
            c.id,
            c.source.display()
        );
    }
    let placeholders = MANAGED_VARIABLES
        .iter()
        .map(|n| ((*n).to_owned(), String::new()))
        .collect();
    AppVariables::resolve(&manifest.variables, &placeholders, |k| {
        std::env::var(k).ok()
    })?;
    Ok(manifest)
}

/// The application's variables: the environment, then what cove manages, then the defaults.
fn variables(
    manifest: &Manifest,
    args: &UpArgs,
    managed: &HashMap<String, String>,
) -> anyhow::Result<AppVariables> {
    let mut managed = managed.clone();
    if manifest.variables.contains_key("default_snapshot") {
        managed.insert(
            "default_snapshot".to_owned(),
            args.runner.default_snapshot.clone(),
        );
    }
    Ok(AppVariables::resolve(&manifest.variables, &managed, |k| {
        std::env::var(k).ok()
    })?)
}

fn host_settings(args: &UpArgs, data_dir: &Path) -> anyhow::Result<HostSettings> {
    Ok(HostSettings {
        limits: InstanceLimits {
            request_timeout: Duration::from_secs(args.request_timeout),
            max_memory_bytes: usize::try_from(args.max_memory_mb << 20)
                .context("--max-memory-mb too large")?,
            instance_reuse: usize::try_from(args.instance_reuse).unwrap_or(usize::MAX),
        },
        max_instances: args.max_instances,
        cache_dir: args
            .compile_cache
            .clone()
            .unwrap_or_else(|| data_dir.join("cache")),
    })
}

/// The address to print: a wildcard listen address is reachable on loopback.
fn shown_addr(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

fn start_sweeper(
    args: &UpArgs,
    manifest: &Manifest,
    app: &Arc<App>,
) -> Option<tokio::task::JoinHandle<()>> {
    let wanted = args.lifecycle_interval > 0
        && manifest
            .components
            .contains_key(lifecycle_timer::LIFECYCLE_COMPONENT);
    wanted.then(|| {
        lifecycle_timer::spawn(
            app.clone(),
            lifecycle_timer::LIFECYCLE_COMPONENT.to_owned(),
            Duration::from_secs(args.lifecycle_interval),
        )
    })
}

/// Starts the supervised local agent. A runner agent needs the runners function to register
/// with; manifests without it (the host's own test applications) get none.
async fn start_runner(
    args: &UpArgs,
    manifest: &Manifest,
    data_dir: &Path,
    shown: SocketAddr,
    backends: &Backends,
) -> anyhow::Result<Option<LocalRunner>> {
    if args.runner.no_runner || !manifest.components.contains_key(RUNNERS_COMPONENT) {
        return Ok(None);
    }
    let settings = RunnerSettings {
        bin: runner_supervisor::find_runner_bin(args.runner.runner_bin.clone())?,
        data_dir: runner_supervisor::data_dir(data_dir),
        control_plane_url: format!("http://{shown}"),
        default_snapshot: args.runner.default_snapshot.clone(),
        warm_pool: args.runner.runner_warm_pool,
        runtime: args.runner.runner_runtime.clone(),
        image_script: Some(manifest.dir.join("tests/images/build-base.sh")),
        s3: runner_supervisor::S3Settings::from_managed(&backends.managed),
    };
    let store = cove_store::Store::new(&backends.store);
    Ok(Some(LocalRunner::start(&store, settings).await?))
}

/// `COVE_S3_ENDPOINT=`, `COVE_S3_PUBLIC_ENDPOINT=` and `COVE_INTERNAL_REGISTRY=` (when there is
/// one): where the backends are.
fn backend_lines(managed: &HashMap<String, String>) -> Vec<String> {
    [
        ("COVE_S3_ENDPOINT", "s3_endpoint"),
        ("COVE_S3_PUBLIC_ENDPOINT", "s3_public_endpoint"),
        ("COVE_INTERNAL_REGISTRY", "internal_registry"),
    ]
    .into_iter()
    .filter_map(|(line, var)| {
        let value = managed.get(var).filter(|v| !v.is_empty())?;
        Some(format!("{line}={value}"))
    })
    .collect()
}

pub fn print_stdout(lines: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}
