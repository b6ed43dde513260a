//! The internal registry of `cove up`: Debian's `docker-registry` (CNCF distribution) as a
//! child process on a loopback port, storage under `<data_dir>/registry`, deletes enabled, and
//! in front of it the auth gate ([`gate`]) whose address is the `internal_registry` variable.

pub mod gate;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::backends::{BackendError, EmbeddedServer};

/// The Debian package's binary; `COVE_DOCKER_REGISTRY_BIN` overrides it.
pub const DEFAULT_BIN: &str = "/usr/bin/docker-registry";

/// How long the registry gets to answer `/v2/` after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(5);
/// util-linux's `setpriv`: sets the child's parent-death signal before it execs the registry.
const SETPRIV: &str = "/usr/bin/setpriv";

/// A running internal registry: the child process and the gate.
pub struct InternalRegistry {
    child: tokio::process::Child,
    pub pid: u32,
    /// The upstream `docker-registry` (only the gate talks to it).
    pub upstream: String,
    pub gate: EmbeddedServer,
}

impl InternalRegistry {
    /// Starts `docker-registry` and the gate checking `auth`.
    pub async fn start(data_dir: &Path, auth: gate::GateAuth) -> Result<Self, BackendError> {
        let dir = data_dir.join("registry");
        let config = write_config(&dir, free_port()?)?;
        let bin = std::env::var_os("COVE_DOCKER_REGISTRY_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN));
        if !bin.exists() {
            return Err(BackendError::Registry {
                detail: format!("{} not found (install docker-registry)", bin.display()),
                source: None,
            });
        }
        let child = registry_command(&bin, &config.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BackendError::Registry {
                detail: format!("cannot start {} (install docker-registry)", bin.display()),
                source: Some(source),
            })?;
        let pid = child.id().unwrap_or_default();
        let upstream = format!("127.0.0.1:{}", config.port);
        let mut registry = Self {
            child,
            pid,
            upstream: upstream.clone(),
            gate: gate::start(upstream.clone(), auth).await?,
        };
        if let Err(e) = registry.wait_ready().await {
            registry.stop().await;
            return Err(e);
        }
        tracing::info!(
            addr = registry.gate.url,
            upstream,
            pid,
            storage = %dir.display(),
            "internal registry (docker-registry) started"
        );
        Ok(registry)
    }

    /// `host:port` of the gate: the `internal_registry` variable.
    pub fn host(&self) -> &str {
        self.gate.url.trim_start_matches("http://")
    }

    async fn wait_ready(&mut self) -> Result<(), BackendError> {
        let started = Instant::now();
        let url = format!("http://{}/v2/", self.upstream);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BackendError::Registry {
                    detail: format!("docker-registry exited at start ({status})"),
                    source: None,
                });
            }
            if gate::probe(&url).await {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(BackendError::Registry {
                    detail: format!("docker-registry did not answer {url}"),
                    source: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the gate, then the registry (SIGTERM by PID, SIGKILL after a grace period).
    pub async fn stop(mut self) {
        self.gate.stop().await;
        if let Ok(raw) = i32::try_from(self.pid)
            && let Some(pid) = rustix::process::Pid::from_raw(raw)
            && matches!(self.child.try_wait(), Ok(None))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        tracing::info!(pid = self.pid, "internal registry stopped");
    }
}

/// `docker-registry serve <config>`, through `setpriv --pdeathsig KILL` where util-linux has it:
/// the kernel kills the registry when cove dies, even by SIGKILL, so that no orphan keeps its port
/// and its data directory. (The signal follows the spawning thread: a tokio worker thread, which
/// lives as long as cove's runtime.) The PID stays the registry's, since `setpriv` execs it.
fn registry_command(bin: &Path, config: &Path) -> tokio::process::Command {
    let mut cmd = if Path::new(SETPRIV).exists() {
        let mut c = tokio::process::Command::new(SETPRIV);
        c.arg("--pdeathsig").arg("KILL").arg("--").arg(bin);
        c
    } else {
        tokio::process::Command::new(bin)
    };
    cmd.arg("serve").arg(config);
    cmd
}

struct RegistryConfig {
    path: PathBuf,
    port: u16,
}

fn free_port() -> Result<u16, BackendError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(BackendError::Bind)?;
    Ok(listener.local_addr().map_err(BackendError::Bind)?.port())
}

/// Writes `<dir>/config.yml`: loopback listener, filesystem storage in `<dir>/data`, deletes on.
fn write_config(dir: &Path, port: u16) -> Result<RegistryConfig, BackendError> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|source| BackendError::CreateDir {
        path: data.clone(),
        source,
    })?;
    let yaml = format!(
        "version: 0.1\n\
         log:\n  level: warn\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  relativeurls: true\n",
        data = data.display()
    );
    let path = dir.join("config.yml");
    std::fs::write(&path, yaml).map_err(|source| BackendError::CreateDir {
        path: path.clone(),
        source,
    })?;
    Ok(RegistryConfig { path, port })
}
