//! The `cove` command line: `build`, `up`, `rotate-admin-key`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use cove_host::manifest::Manifest;
use cove_host::server::ServerLimits;

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
    Up(Box<UpArgs>),
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
    /// Where compiled components are kept between runs, keyed by the hash of the wasm and of the
    /// engine configuration (several `cove` processes may share one) [default: `<data_dir>/cache`].
    #[arg(long, env = "COVE_COMPILE_CACHE")]
    pub compile_cache: Option<PathBuf>,
    #[command(flatten)]
    pub backends: BackendArgs,
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
    /// Client connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = ServerLimits::default().max_connections)]
    pub max_connections: usize,
    /// Seconds a client gets to send a request head (also the keep-alive idle timeout).
    #[arg(long, default_value_t = ServerLimits::default().header_read_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout: u64,
    #[command(flatten)]
    pub runner: RunnerArgs,
    #[command(flatten)]
    pub proxy: crate::preview_proxy::ProxyArgs,
    /// Seconds between two lifecycle sweeps (runner heartbeats, lost sandboxes); 0 disables them.
    #[arg(long, default_value_t = 5)]
    pub lifecycle_interval: u64,
}

/// Where the application's data lives.
#[derive(Debug, Args)]
pub struct BackendArgs {
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
    /// Use this registry (`host:port`, no scheme) as the internal registry instead of starting
    /// `docker-registry` and its auth gate.
    #[arg(long, value_name = "HOST:PORT")]
    pub internal_registry: Option<String>,
    /// Username of the internal registry's account (runners push and pull with it) [default: cove-internal].
    #[arg(long)]
    pub internal_registry_username: Option<String>,
    /// Password of that account [default: generated once per data directory, `<data_dir>/secrets/internal_registry_password`].
    #[arg(long, env = "COVE_INTERNAL_REGISTRY_PASSWORD", hide_env_values = true)]
    pub internal_registry_password: Option<String>,
    /// Start no internal registry (`internal_registry` is empty: snapshots cannot be pushed).
    #[arg(long, conflicts_with = "internal_registry")]
    pub no_internal_registry: bool,
}

/// The local runner agent.
#[derive(Debug, Args)]
pub struct RunnerArgs {
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
    /// The local runner's container engine: `docker`, or `fake` (the simulated runner: no Docker,
    /// toolbox answers from in-process daemons; for tests and demos, never for real work).
    #[arg(long, default_value = "docker", value_parser = ["docker", "fake"])]
    pub runner_runtime: String,
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

impl UpArgs {
    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => {
            let manifest = Manifest::load(&args.manifest)?;
            Ok(cove_host::build::run(&manifest, |_| true)?)
        }
        Command::Up(args) => runtime()?.block_on(crate::up::up(*args)),
        Command::RotateAdminKey(args) => runtime()?.block_on(crate::admin::rotate_admin_key(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `flag`, else `$COVE_DATA_DIR`, else `$HOME/.local/share/cove`; created when missing.
pub fn data_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn up_flags_keep_their_names_and_defaults() {
        let cli = Cli::try_parse_from([
            "cove",
            "up",
            "--listen",
            "127.0.0.1:0",
            "--dynamodb-table",
            "t",
            "--no-runner",
            "--runner-warm-pool",
            "0",
        ])
        .unwrap();
        let Command::Up(up) = cli.command else {
            panic!("not up")
        };
        assert_eq!(up.manifest, PathBuf::from("spin.toml"));
        assert_eq!(up.backends.dynamodb_table, "t");
        assert_eq!(up.backends.s3_bucket, "cove");
        assert!(up.runner.no_runner);
        assert_eq!(up.runner.runner_warm_pool, 0);
        assert_eq!(up.runner.default_snapshot, "cove-sandbox-base:latest");
        assert_eq!(up.request_timeout, 60);
        assert_eq!(up.server_limits().max_connections, 512);
        assert_eq!(
            up.server_limits().header_read_timeout,
            Duration::from_secs(30)
        );
    }
}
