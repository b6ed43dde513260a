//! Command-line flags and the resolved agent configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sha2::Digest;

/// `cove-runner` flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "cove-runner", version, about = "Cove runner agent")]
pub struct Args {
    /// Address of the agent's HTTP API (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "COVE_RUNNER_LISTEN", default_value = "127.0.0.1:3003")]
    pub listen: SocketAddr,
    /// Bearer token every API call must carry.
    #[arg(long, env = "COVE_RUNNER_TOKEN", hide_env_values = true)]
    pub token: String,
    /// State: per-sandbox directories, the toolbox binary copy, applied specs.
    #[arg(
        long,
        env = "COVE_RUNNER_DATA_DIR",
        default_value = "/var/lib/cove-runner"
    )]
    pub data_dir: PathBuf,
    /// The static toolbox daemon (default: next to this binary's target dir, then /usr/local/lib/cove).
    #[arg(long, env = "COVE_TOOLBOX_BIN")]
    pub toolbox_bin: Option<PathBuf>,
    /// Warm pool: keep N started containers of IMAGE ready (repeatable).
    #[arg(long = "warm-pool", value_name = "IMAGE=N", value_parser = parse_pool)]
    pub warm_pool: Vec<(String, usize)>,
    /// Control plane base URL; heartbeats are sent only when set.
    #[arg(long, env = "COVE_CONTROL_PLANE_URL")]
    pub control_plane_url: Option<String>,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 5)]
    pub heartbeat_secs: u64,
    /// URL the control plane uses to reach this agent (default: http://<listen>).
    #[arg(long, env = "COVE_RUNNER_API_URL")]
    pub api_url: Option<String>,
    /// Identifies this agent's containers (label `cove.runner`); default: derived from the data dir.
    #[arg(long, env = "COVE_RUNNER_ID")]
    pub runner_id: Option<String>,
    /// Host directory holding volumes (`<dir>/<volumeId>`); default `<data-dir>/volumes`.
    #[arg(long)]
    pub volumes_dir: Option<PathBuf>,
    /// Shut down (as on SIGTERM) when the parent process dies, even by SIGKILL: for agents
    /// supervised by `cove up`.
    #[arg(long)]
    pub exit_with_parent: bool,
    /// Container engine: Docker, or the simulated runner (in-memory containers with in-process
    /// toolbox daemons and fault injection, for tests; no Docker needed).
    #[arg(long, env = "COVE_RUNNER_RUNTIME", value_enum, default_value_t = RuntimeKind::Docker)]
    pub runtime: RuntimeKind,
    /// A snapshot image this runner serves (repeatable or comma-separated); advertised in
    /// heartbeats when present (warm-pool images count too). The simulated runner holds exactly
    /// these and the warm-pool images.
    #[arg(
        long = "snapshot",
        env = "COVE_RUNNER_SNAPSHOTS",
        value_delimiter = ','
    )]
    pub snapshots: Vec<String>,
    /// Deadline of every API request except toolbox calls (their streams get the idle timeout).
    #[arg(long, default_value_t = 60)]
    pub request_timeout_secs: u64,
    /// A toolbox websocket relay or response stream with no traffic for this long is closed.
    #[arg(long, default_value_t = 900)]
    pub idle_timeout_secs: u64,
    /// On SIGTERM, open connections get this long to finish before the agent exits.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Deadline of one container engine call (stop adds its grace period).
    #[arg(long, default_value_t = 60)]
    pub engine_timeout_secs: u64,
    /// Deadline of `docker commit` (a backup).
    #[arg(long, default_value_t = 600)]
    pub commit_timeout_secs: u64,
    /// Milliseconds between two observations of the containers' states (state reports).
    #[arg(long, default_value_t = 2000)]
    pub observe_ms: u64,
    /// Seconds between two samples of every started sandbox's usage (`GET /system/metrics` of
    /// its daemon), kept in memory for `GET /v1/sandboxes/{id}/metrics`.
    #[arg(long, env = "COVE_RUNNER_METRICS_INTERVAL_SECS", default_value_t = crate::metrics::DEFAULT_INTERVAL_SECS)]
    pub metrics_interval_secs: u64,
    /// How long usage samples are kept (at most 5760 per sandbox, whatever the interval).
    #[arg(long, env = "COVE_RUNNER_METRICS_RETENTION_SECS", default_value_t = crate::metrics::DEFAULT_RETENTION_SECS)]
    pub metrics_retention_secs: u64,
    /// After the control plane answered 401/404 to a heartbeat (runner deleted), seconds
    /// between two attempts.
    #[arg(long, default_value_t = 60)]
    pub revoked_backoff_secs: u64,
    /// Docker network every sandbox joins unless its network is blocked (created when missing,
    /// inter-container traffic off; see `network.rs`).
    #[arg(long, env = "COVE_SANDBOX_NETWORK", default_value = crate::network::DEFAULT_NETWORK)]
    pub sandbox_network: String,
    /// Bridge interface of the sandbox network (at most 15 characters).
    #[arg(long, env = "COVE_SANDBOX_BRIDGE", default_value = crate::network::DEFAULT_BRIDGE)]
    pub sandbox_bridge: String,
    /// The host's firewall keeps sandboxes from each other and from the host: the agent installs
    /// no iptables rules (it still uses its network, with inter-container traffic off).
    #[arg(long)]
    pub external_network_isolation: bool,
    /// An IPv4 range sandboxes may not reach, on top of the local ones (repeatable; e.g. the
    /// private network of the host's cloud).
    #[arg(long = "sandbox-deny", value_name = "CIDR")]
    pub sandbox_deny: Vec<ipnet::Ipv4Net>,
    /// A hosts file (`address name...` lines) the egress proxy of domain policies resolves
    /// names with before the host's resolver (read again when it changes).
    #[arg(long, env = "COVE_EGRESS_HOSTS", value_name = "FILE")]
    pub egress_hosts: Option<PathBuf>,
    /// NFLOG group the egress policy chains log CIDR decisions to; the agent reads it into the
    /// network log (a group is read by one process: give each agent of a host its own).
    #[arg(long, default_value_t = crate::network::DEFAULT_NFLOG_GROUP)]
    pub egress_nflog_group: u16,
    /// Seconds between two re-assertions of the isolation rules.
    #[arg(long, default_value_t = 30)]
    pub isolation_check_secs: u64,
    /// S3 endpoint of build contexts (`{orgId}/{hash}/context.tar`, path-style); default: AWS.
    /// Credentials: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
    #[arg(long, env = "COVE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Bucket of build contexts.
    #[arg(long, env = "COVE_S3_BUCKET", default_value = "cove")]
    pub s3_bucket: String,
    #[arg(long, env = "COVE_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Deadline of a snapshot pull job (then `error`, "pull timed out after ...").
    #[arg(long, default_value_t = 900)]
    pub snapshot_pull_timeout_secs: u64,
    /// Deadline of a snapshot build job.
    #[arg(long, default_value_t = 1800)]
    pub snapshot_build_timeout_secs: u64,
    /// Accept a toolbox socket whose serving process the agent cannot see (an agent in its own
    /// PID namespace): only then is a non-root peer trusted without its cgroup being checked.
    #[arg(long)]
    pub allow_unverified_toolbox_peer: bool,
}

/// `--runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    Docker,
    /// The simulated runner.
    Fake,
}

/// The agent's deadlines (README "Timeouts").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub request: Duration,
    pub idle: Duration,
    pub shutdown_grace: Duration,
    pub engine: crate::runtime::timed::Deadlines,
    pub observe: Duration,
    pub revoked_backoff: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(60),
            idle: Duration::from_secs(900),
            shutdown_grace: Duration::from_secs(10),
            engine: crate::runtime::timed::Deadlines::default(),
            observe: Duration::from_secs(2),
            revoked_backoff: Duration::from_secs(60),
        }
    }
}

fn parse_pool(s: &str) -> Result<(String, usize), String> {
    let (image, n) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected IMAGE=N, got {s:?}"))?;
    let n = n
        .parse::<usize>()
        .map_err(|e| format!("bad pool size in {s:?}: {e}"))?;
    if image.is_empty() {
        return Err(format!("empty image in {s:?}"));
    }
    Ok((image.to_owned(), n))
}

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub token: String,
    pub data_dir: PathBuf,
    pub toolbox_bin: PathBuf,
    pub warm_pool: Vec<(String, usize)>,
    pub control_plane_url: Option<String>,
    pub heartbeat: Duration,
    pub api_url: Option<String>,
    pub runner_id: String,
    pub volumes_dir: PathBuf,
    /// Wait for the daemon's socket after starting a container (off in unit tests).
    pub probe_toolbox: bool,
    pub runtime: RuntimeKind,
    pub snapshots: Vec<String>,
    pub timeouts: Timeouts,
    /// The sandbox network and its isolation.
    pub network: crate::network::NetworkSettings,
    pub allow_unverified_toolbox_peer: bool,
    /// Snapshot jobs: S3 of build contexts, deadlines.
    pub snapshot_jobs: crate::snapshots::SnapshotSettings,
    /// Volumes: FUSE mounts of the S3 prefixes (Docker runtime), plain directories otherwise.
    pub volumes: crate::volumes::VolumeSettings,
    /// Usage sampling of the sandboxes (`metrics`).
    pub metrics: crate::metrics::MetricsSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the runner token must not be empty")]
    EmptyToken,
    #[error(
        "no toolbox binary found (looked at {0}); build it with `cargo build --release --target x86_64-unknown-linux-musl -p cove-toolbox` or pass --toolbox-bin"
    )]
    NoToolbox(String),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error("cannot prepare the data dir {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Config {
    pub fn from_args(args: Args) -> Result<Self, ConfigError> {
        if args.token.trim().is_empty() {
            return Err(ConfigError::EmptyToken);
        }
        std::fs::create_dir_all(&args.data_dir).map_err(|source| ConfigError::DataDir {
            path: args.data_dir.clone(),
            source,
        })?;
        let data_dir =
            std::fs::canonicalize(&args.data_dir).map_err(|source| ConfigError::DataDir {
                path: args.data_dir.clone(),
                source,
            })?;
        let toolbox_bin = match (args.toolbox_bin, args.runtime) {
            (Some(p), _) => p,
            // The simulated runner serves its daemons in-process.
            (None, RuntimeKind::Fake) => data_dir.join("no-toolbox-binary"),
            (None, RuntimeKind::Docker) => default_toolbox()?,
        };
        let secs = Duration::from_secs;
        let timeouts = Timeouts {
            request: secs(args.request_timeout_secs.max(1)),
            idle: secs(args.idle_timeout_secs.max(1)),
            shutdown_grace: secs(args.shutdown_grace_secs),
            engine: crate::runtime::timed::Deadlines {
                call: secs(args.engine_timeout_secs.max(1)),
                commit: secs(args.commit_timeout_secs.max(1)),
            },
            observe: Duration::from_millis(args.observe_ms.max(10)),
            revoked_backoff: secs(args.revoked_backoff_secs.max(1)),
        };
        let runner_id = args.runner_id.unwrap_or_else(|| {
            let h = sha2::Sha256::digest(data_dir.to_string_lossy().as_bytes());
            hex::encode(&h[..6])
        });
        // FUSE mounts stay out of the data dir: removing it must never recurse into a volume.
        let fuse = args.runtime == RuntimeKind::Docker;
        let volumes_dir = args.volumes_dir.unwrap_or_else(|| {
            if fuse {
                PathBuf::from("/run/cove-volumes").join(&runner_id)
            } else {
                data_dir.join("volumes")
            }
        });
        let volumes = crate::volumes::VolumeSettings {
            fuse,
            mount_root: volumes_dir.clone(),
            cache_root: data_dir.join("volume-cache"),
            endpoint: args.s3_endpoint.clone().filter(|e| !e.is_empty()),
            bucket: args.s3_bucket.clone(),
            region: args.s3_region.clone(),
            mount_timeout: Duration::from_secs(20),
        };
        crate::network::validate_bridge(&args.sandbox_bridge)?;
        let network = crate::network::NetworkSettings {
            name: args.sandbox_network,
            bridge: args.sandbox_bridge,
            firewall: !args.external_network_isolation,
            deny: args.sandbox_deny,
            reassert_every: Duration::from_secs(args.isolation_check_secs.max(1)),
            egress_hosts: args.egress_hosts.filter(|p| !p.as_os_str().is_empty()),
            nflog_group: args.egress_nflog_group,
        };
        let snapshot_jobs = crate::snapshots::SnapshotSettings {
            s3: crate::snapshots::context::S3Settings {
                endpoint: args.s3_endpoint.filter(|e| !e.is_empty()),
                bucket: args.s3_bucket,
                region: args.s3_region,
            },
            pull_timeout: secs(args.snapshot_pull_timeout_secs.max(1)),
            build_timeout: secs(args.snapshot_build_timeout_secs.max(1)),
        };
        Ok(Self {
            listen: args.listen,
            token: args.token,
            data_dir,
            toolbox_bin,
            warm_pool: args.warm_pool,
            control_plane_url: args.control_plane_url,
            heartbeat: Duration::from_secs(args.heartbeat_secs.max(1)),
            api_url: args.api_url,
            runner_id,
            volumes_dir,
            probe_toolbox: true,
            runtime: args.runtime,
            snapshots: args
                .snapshots
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            timeouts,
            network,
            allow_unverified_toolbox_peer: args.allow_unverified_toolbox_peer,
            snapshot_jobs,
            volumes,
            metrics: crate::metrics::MetricsSettings::from_secs(
                args.metrics_interval_secs,
                args.metrics_retention_secs,
            ),
        })
    }

    /// Whether the agent isolates sandboxes on the host (the Docker runtime): the sandbox
    /// network and its firewall rules, the `nosuid,nodev,noexec` mount of the sandbox
    /// directories, each directory owned by its container's user. The simulated runner's
    /// daemons run in the agent's own process, as its user: none of that applies.
    pub fn isolates(&self) -> bool {
        self.runtime == RuntimeKind::Docker
    }

    /// The configured snapshot images: `--snapshot` and the warm-pool images.
    pub fn snapshot_images(&self) -> impl Iterator<Item = &str> {
        self.snapshots
            .iter()
            .map(String::as_str)
            .chain(self.warm_pool.iter().map(|(i, _)| i.as_str()))
    }

    /// A config for unit tests (fake runtime).
    pub fn for_tests(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: "test-token".into(),
            toolbox_bin: data_dir.join("fake-toolbox"),
            volumes_dir: data_dir.join("volumes"),
            warm_pool: vec![],
            control_plane_url: None,
            heartbeat: Duration::from_secs(5),
            api_url: None,
            runner_id: "test".into(),
            probe_toolbox: false,
            runtime: RuntimeKind::Fake,
            snapshots: vec!["img:1".into()],
            timeouts: Timeouts::default(),
            network: crate::network::NetworkSettings::default(),
            allow_unverified_toolbox_peer: false,
            snapshot_jobs: crate::snapshots::SnapshotSettings::default(),
            volumes: crate::volumes::VolumeSettings {
                fuse: false,
                mount_root: data_dir.join("volumes"),
                cache_root: data_dir.join("volume-cache"),
                endpoint: None,
                bucket: "cove".into(),
                region: "us-east-1".into(),
                mount_timeout: Duration::from_secs(20),
            },
            metrics: crate::metrics::MetricsSettings::default(),
            data_dir,
        }
    }
}

fn default_toolbox() -> Result<PathBuf, ConfigError> {
    let mut tried = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/release/cove-runner -> target/x86_64-unknown-linux-musl/release/cove-toolbox
        if let Some(target) = exe.parent().and_then(|p| p.parent()) {
            let p = target.join("x86_64-unknown-linux-musl/release/cove-toolbox");
            if p.is_file() {
                return Ok(p);
            }
            tried.push(p.display().to_string());
        }
    }
    let p = PathBuf::from("/usr/local/lib/cove/cove-toolbox");
    if p.is_file() {
        return Ok(p);
    }
    tried.push(p.display().to_string());
    Err(ConfigError::NoToolbox(tried.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_flag() {
        assert_eq!(
            parse_pool("cove-sandbox-base:abc=3"),
            Ok(("cove-sandbox-base:abc".into(), 3))
        );
        assert!(parse_pool("img").is_err());
        assert!(parse_pool("img=x").is_err());
    }
}
