//! The `cove` command line: `build`, `up`, `rotate-admin-key`.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::app::App;
use crate::backends::{self, Credentials, EmbeddedServer};
use crate::engine::{self, CacheOutcome, CompileCache, EngineSettings};
use crate::lifecycle_timer;
use crate::manifest::{ComponentDef, Manifest};
use crate::outbound::AllowList;
use crate::routes::Router;
use crate::runner_supervisor::{self, LocalRunner, RunnerSettings};
use crate::runtime::{self, ComponentSpec, InstanceLimits, PreparedComponent};
use crate::server;
use crate::variables::AppVariables;

#[derive(Debug, Parser)]
#[command(
    name = "cove",
    version,
    about = "Run a Spin application (spin.toml) locally with embedded DynamoDB and S3"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every component's build command.
    Build(BuildArgs),
    /// Build what is missing, start the backends and serve the application.
    Up(UpArgs),
    /// Replace the bootstrap admin API key and print the new one.
    RotateAdminKey(RotateArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The Spin manifest.
    #[arg(long, default_value = "spin.toml")]
    pub manifest: PathBuf,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The Spin manifest.
    #[arg(long, default_value = "spin.toml")]
    pub manifest: PathBuf,
    /// Address to serve on; port 0 picks a free port (the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: String,
    /// State directory [default: $COVE_DATA_DIR, else $HOME/.local/share/cove].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Use this DynamoDB endpoint instead of the embedded one.
    #[arg(long)]
    pub dynamodb_endpoint: Option<String>,
    /// Use this S3 endpoint instead of the embedded one.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    /// DynamoDB table name.
    #[arg(long, default_value = "cove")]
    pub dynamodb_table: String,
    /// S3 bucket name.
    #[arg(long, default_value = "cove")]
    pub s3_bucket: String,
    /// Do not build components whose `source` is missing.
    #[arg(long)]
    pub no_build: bool,
    /// Requests served by one component instance before it is discarded (1 = Spin semantics).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub instance_reuse: u64,
    /// Seconds a request may run before it gets a 504.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,
    /// Largest linear memory of one instance, in MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub max_memory_mb: u64,
    /// Component instances alive at once (size of the pooling allocator).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_instances: u32,
    /// Do not start the local runner agent (it is started only when the manifest has a `runners` component).
    #[arg(long)]
    pub no_runner: bool,
    /// The runner agent binary [default: `cove-runner` next to this executable].
    #[arg(long)]
    pub runner_bin: Option<PathBuf>,
    /// Image of the default snapshot: built when missing, pre-warmed on the local runner, and the
    /// `default_snapshot` variable of the application.
    #[arg(long, default_value = "cove-sandbox-base:latest")]
    pub default_snapshot: String,
    /// Warm containers of the default snapshot kept by the local runner.
    #[arg(long, default_value_t = 2)]
    pub runner_warm_pool: usize,
    /// Seconds between two lifecycle sweeps (runner heartbeats, lost sandboxes); 0 disables them.
    #[arg(long, default_value_t = 5)]
    pub lifecycle_interval: u64,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// State directory [default: $COVE_DATA_DIR, else $HOME/.local/share/cove].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Use this DynamoDB endpoint instead of the embedded one.
    #[arg(long)]
    pub dynamodb_endpoint: Option<String>,
    /// DynamoDB table name.
    #[arg(long, default_value = "cove")]
    pub dynamodb_table: String,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => {
            let manifest = Manifest::load(&args.manifest)?;
            build(&manifest, |_| true)
        }
        Command::Up(args) => runtime()?.block_on(up(args)),
        Command::RotateAdminKey(args) => runtime()?.block_on(rotate_admin_key(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn data_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match flag {
        Some(d) => d,
        None => match std::env::var_os("COVE_DATA_DIR").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => {
                let home = std::env::var_os("HOME")
                    .context("neither --data-dir, COVE_DATA_DIR nor HOME is set")?;
                PathBuf::from(home).join(".local/share/cove")
            }
        },
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    Ok(dir)
}

/// Runs the build commands of the components `select` picks (each distinct command once).
fn build(manifest: &Manifest, select: impl Fn(&ComponentDef) -> bool) -> anyhow::Result<()> {
    let mut done = BTreeSet::new();
    for c in manifest.components.values().filter(|c| select(c)) {
        let Some(b) = &c.build else {
            tracing::info!(component = %c.id, "no build command");
            continue;
        };
        for command in &b.commands {
            if !done.insert((command.clone(), b.workdir.clone())) {
                continue;
            }
            tracing::info!(component = %c.id, command, workdir = %b.workdir.display(), "building");
            let status = Process::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&b.workdir)
                .status()
                .with_context(|| {
                    format!(
                        "cannot run the build command of component {:?}: {command}",
                        c.id
                    )
                })?;
            if !status.success() {
                bail!("build of component {:?} failed ({status}): {command}", c.id);
            }
        }
    }
    Ok(())
}

/// Application variables whose values cove provides (see `start_backends`).
const MANAGED_VARIABLES: [&str; 7] = [
    "dynamodb_endpoint",
    "dynamodb_table",
    "aws_region",
    "aws_access_key_id",
    "aws_secret_access_key",
    "s3_endpoint",
    "s3_bucket",
];

/// What the application gets told about its backends.
struct Backends {
    embedded: Vec<EmbeddedServer>,
    store: cove_store::StoreConfig,
    managed: HashMap<String, String>,
}

async fn start_backends(args: &UpArgs, data_dir: &Path) -> anyhow::Result<Backends> {
    let credentials = Credentials::from_env();
    let mut embedded = Vec::new();
    let dynamodb_endpoint = match &args.dynamodb_endpoint {
        Some(url) => url.clone(),
        None => {
            let server = backends::start_dynamodb(&data_dir.join("dynamodb")).await?;
            let url = server.url.clone();
            embedded.push(server);
            url
        }
    };
    let s3_endpoint = match &args.s3_endpoint {
        Some(url) => url.clone(),
        None => {
            let server =
                backends::start_s3(&data_dir.join("s3"), &args.s3_bucket, &credentials).await?;
            let url = server.url.clone();
            embedded.push(server);
            url
        }
    };
    let managed = HashMap::from([
        ("dynamodb_endpoint".to_owned(), dynamodb_endpoint.clone()),
        ("dynamodb_table".to_owned(), args.dynamodb_table.clone()),
        ("aws_region".to_owned(), credentials.region.clone()),
        (
            "aws_access_key_id".to_owned(),
            credentials.access_key_id.clone(),
        ),
        (
            "aws_secret_access_key".to_owned(),
            credentials.secret_access_key.clone(),
        ),
        ("s3_endpoint".to_owned(), s3_endpoint),
        ("s3_bucket".to_owned(), args.s3_bucket.clone()),
    ]);
    debug_assert!(MANAGED_VARIABLES.iter().all(|n| managed.contains_key(*n)));
    let store = cove_store::StoreConfig {
        endpoint: dynamodb_endpoint,
        region: credentials.region,
        table: args.dynamodb_table.clone(),
        access_key_id: credentials.access_key_id,
        secret_access_key: credentials.secret_access_key,
    };
    Ok(Backends {
        embedded,
        store,
        managed,
    })
}

/// Compiles (or loads from the cache) and links every component.
fn prepare_components(
    manifest: &Manifest,
    variables: &AppVariables,
    engine: &wasmtime::Engine,
    cache: &CompileCache,
) -> anyhow::Result<Vec<PreparedComponent>> {
    let linker = runtime::build_linker(engine)?;
    let mut prepared = Vec::new();
    for c in manifest.components.values() {
        let started = Instant::now();
        let (component, outcome) = cache.load(engine, &c.source)?;
        let hosts = c
            .allowed_outbound_hosts
            .iter()
            .map(|h| variables.expand(h))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("component {:?}: allowed_outbound_hosts", c.id))?;
        let allow = AllowList::parse(&hosts).with_context(|| format!("component {:?}", c.id))?;
        let component_variables = variables
            .component_values(&c.variables)
            .with_context(|| format!("component {:?}: variables", c.id))?;
        let p = PreparedComponent::new(
            &linker,
            ComponentSpec {
                id: c.id.clone(),
                component,
                env: c
                    .environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                variables: component_variables,
                allow,
            },
        )?;
        tracing::info!(
            component = %c.id,
            source = %c.source.display(),
            cache_hit = outcome == CacheOutcome::Hit,
            wasi_http = if p.is_p3() { "0.3" } else { "0.2" },
            elapsed_ms = started.elapsed().as_millis() as u64,
            "component ready"
        );
        prepared.push(p);
    }
    Ok(prepared)
}

/// The component that registers runners; `cove up` starts a local agent only when it exists.
const RUNNERS_COMPONENT: &str = "runners";

/// The directory of the manifest (relative paths of the application are resolved from there).
fn manifest_dir(manifest: &Path) -> PathBuf {
    match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn print_stdout(lines: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let manifest = Manifest::load(&args.manifest)?;
    if !args.no_build {
        build(&manifest, |c| !c.source.exists())?;
    }
    if let Some(c) = manifest.components.values().find(|c| !c.source.exists()) {
        bail!(
            "component {:?}: source {} does not exist (run `cove build`)",
            c.id,
            c.source.display()
        );
    }
    // Fail on a missing required variable before touching the data directory.
    let placeholders = MANAGED_VARIABLES
        .iter()
        .map(|n| ((*n).to_owned(), String::new()))
        .collect();
    AppVariables::resolve(&manifest.variables, &placeholders, |k| {
        std::env::var(k).ok()
    })?;
    let data_dir = data_dir(args.data_dir.clone())?;

    let backends = start_backends(&args, &data_dir).await?;
    let store = cove_store::Store::new(&backends.store);
    store
        .ensure_table()
        .await
        .context("cannot create the DynamoDB table")?;
    let bootstrap = cove_store::bootstrap::ensure_admin(&store)
        .await
        .context("cannot bootstrap the admin account")?;
    drop(store);

    let mut managed = backends.managed.clone();
    if manifest.variables.contains_key("default_snapshot") {
        managed.insert("default_snapshot".to_owned(), args.default_snapshot.clone());
    }
    let variables =
        AppVariables::resolve(&manifest.variables, &managed, |k| std::env::var(k).ok())?;
    let limits = InstanceLimits {
        request_timeout: Duration::from_secs(args.request_timeout),
        max_memory_bytes: usize::try_from(args.max_memory_mb << 20)
            .context("--max-memory-mb too large")?,
        instance_reuse: usize::try_from(args.instance_reuse).unwrap_or(usize::MAX),
    };
    let engine = engine::build_engine(EngineSettings {
        max_memory_bytes: limits.max_memory_bytes,
        max_instances: args.max_instances,
    })?;
    engine::start_epoch_ticker(&engine);
    let cache = CompileCache::new(data_dir.join("cache"), &engine)?;
    let prepared = {
        let (manifest, variables, engine) = (manifest.clone(), variables.clone(), engine.clone());
        tokio::task::spawn_blocking(move || {
            prepare_components(&manifest, &variables, &engine, &cache)
        })
        .await
        .context("component preparation panicked")??
    };
    let router = Router::new(&manifest.http_triggers)?;
    let app = App::new(&engine, router, prepared, limits);

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let shown = if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    };
    tracing::info!(%addr, app = %manifest.name, "serving");
    let mut lines = vec![format!("DAYTONA_API_URL=http://{shown}/api")];
    if let Some(key) = &bootstrap.api_key {
        lines.push(format!("DAYTONA_API_KEY={key}"));
    }
    let sweeper = (args.lifecycle_interval > 0
        && manifest
            .components
            .contains_key(lifecycle_timer::LIFECYCLE_COMPONENT))
    .then(|| {
        lifecycle_timer::spawn(
            app.clone(),
            lifecycle_timer::LIFECYCLE_COMPONENT.to_owned(),
            Duration::from_secs(args.lifecycle_interval),
        )
    });
    let server = tokio::spawn(server::serve(listener, app, server::shutdown_signal()));
    // A runner agent needs the runners function to register with; manifests without it (the host's
    // own test applications) get none.
    let runner = if args.no_runner || !manifest.components.contains_key(RUNNERS_COMPONENT) {
        None
    } else {
        let settings = RunnerSettings {
            bin: runner_supervisor::find_runner_bin(args.runner_bin.clone())?,
            data_dir: data_dir.join("runner"),
            control_plane_url: format!("http://{shown}"),
            default_snapshot: args.default_snapshot.clone(),
            warm_pool: args.runner_warm_pool,
            image_script: Some(manifest_dir(&args.manifest).join("tests/images/build-base.sh")),
        };
        let store = cove_store::Store::new(&backends.store);
        match LocalRunner::start(&store, &settings).await {
            Ok(r) => Some(r),
            Err(e) => {
                server.abort();
                for backend in backends.embedded {
                    backend.stop().await;
                }
                return Err(e.context("cannot start the local runner agent (or pass --no-runner)"));
            }
        }
    };
    lines.push("cove ready".to_owned());
    print_stdout(&lines)?;

    let served = server.await.context("server task panicked")?;
    if let Some(s) = sweeper {
        s.abort();
    }
    if let Some(r) = runner {
        r.stop().await;
    }
    for backend in backends.embedded {
        backend.stop().await;
    }
    tracing::info!("stopped");
    served?;
    Ok(())
}

async fn rotate_admin_key(args: RotateArgs) -> anyhow::Result<()> {
    let data_dir = data_dir(args.data_dir)?;
    let credentials = Credentials::from_env();
    let mut embedded = None;
    let endpoint = match args.dynamodb_endpoint {
        Some(url) => url,
        None => {
            let server = backends::start_dynamodb(&data_dir.join("dynamodb")).await?;
            let url = server.url.clone();
            embedded = Some(server);
            url
        }
    };
    let store = cove_store::Store::new(&cove_store::StoreConfig {
        endpoint,
        region: credentials.region,
        table: args.dynamodb_table,
        access_key_id: credentials.access_key_id,
        secret_access_key: credentials.secret_access_key,
    });
    store
        .ensure_table()
        .await
        .context("cannot create the DynamoDB table")?;
    let key = cove_store::bootstrap::rotate_admin_key(&store)
        .await
        .context("cannot rotate the admin key")?;
    print_stdout(&[format!("DAYTONA_API_KEY={key}")])?;
    if let Some(server) = embedded {
        server.stop().await;
    }
    Ok(())
}
