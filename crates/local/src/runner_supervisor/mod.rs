//! The runner agent `cove up` starts next to the control plane (one `cove-runner` process).
//!
//! * The runner row is named `local` (region `us`); created with a fresh token on the first start
//!   and reused afterwards (the token lives on the row, in the data directory's table).
//! * The default snapshot image is built when Docker does not have it (`tests/images/build-base.sh`
//!   next to the manifest: debootstrap, no registry).
//! * `cove ready` is printed only after the agent's first heartbeat reached the control plane, so
//!   the first sandbox create finds a ready runner.
//! * **Supervised**: an agent that exits is reaped, its exit status logged, and it is started
//!   again with the same runner id, token and data directory after a backoff (0.5 s doubling to
//!   30 s, back to 0.5 s after a healthy minute); the agent rebuilds its view of its sandboxes
//!   from Docker when it starts.
//! * On shutdown the agent gets SIGTERM (by PID), then SIGKILL after a grace period.

mod agent;
mod backoff;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cove_api_types::ids::RunnerId;
use cove_api_types::runner::RunnerState;
use cove_store::Store;
use cove_store::runners::{DEFAULT_REGION, RunnerRecord};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The local runner agent's data directory inside `cove`'s own.
pub fn data_dir(cove_data_dir: &Path) -> PathBuf {
    cove_data_dir.join("runner")
}

use agent::Agent;
pub use backoff::Backoff;

/// Name of the runner row `cove up` manages.
pub const LOCAL_RUNNER: &str = "local";
/// How long `cove up` waits for the agent's first heartbeat.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start the agent.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub bin: PathBuf,
    /// The agent's data directory (`<cove data dir>/runner`).
    pub data_dir: PathBuf,
    /// Where the agent sends heartbeats: `http://<cove listen address>`.
    pub control_plane_url: String,
    /// Image of the default snapshot; also pre-warmed (`--warm-pool <image>=<warm_pool>`).
    pub default_snapshot: String,
    pub warm_pool: usize,
    /// `--runtime` of the agent (`docker` or `fake`).
    pub runtime: String,
    /// Script that builds the default snapshot image when it is missing.
    pub image_script: Option<PathBuf>,
    /// Where the build contexts of snapshots are (`--s3-*`, the master credentials).
    pub s3: Option<S3Settings>,
}

/// The object storage the agent reads build contexts from.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl S3Settings {
    /// From the application's managed variables (`s3_endpoint`, `s3_bucket`, `aws_*`); `None`
    /// without an endpoint.
    pub fn from_managed(managed: &std::collections::HashMap<String, String>) -> Option<Self> {
        let get = |k: &str| managed.get(k).cloned().unwrap_or_default();
        let endpoint = get("s3_endpoint");
        (!endpoint.is_empty()).then(|| Self {
            endpoint,
            bucket: get("s3_bucket"),
            region: get("aws_region"),
            access_key_id: get("aws_access_key_id"),
            secret_access_key: get("aws_secret_access_key"),
        })
    }
}

/// The `cove-runner` binary: `flag`, else next to the running `cove` executable.
pub fn find_runner_bin(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match flag {
        Some(b) => b,
        None => std::env::current_exe()
            .context("cannot locate the cove executable")?
            .with_file_name("cove-runner"),
    };
    if !bin.is_file() {
        bail!(
            "runner agent binary {} not found: build it with `cargo build --release -p cove-runner-agent`, pass --runner-bin, or start with --no-runner",
            bin.display()
        );
    }
    Ok(bin)
}

/// The runner row named `local`, created (state `initializing`, fresh token) when missing.
pub async fn ensure_local_runner(store: &Store) -> anyhow::Result<RunnerRecord> {
    let existing = store
        .runners()
        .list()
        .await
        .context("cannot list runners")?;
    if let Some(r) = existing.into_iter().find(|r| r.name == LOCAL_RUNNER) {
        return Ok(r);
    }
    let rec = RunnerRecord::new(
        LOCAL_RUNNER,
        DEFAULT_REGION,
        &cove_api_types::time::now_rfc3339(),
    )
    .map_err(|e| anyhow::anyhow!("random source failed: {e}"))?;
    let rec = store
        .runners()
        .create(&rec)
        .await
        .context("cannot create the local runner")?;
    tracing::info!(runner_id = %rec.id, "local runner registered");
    Ok(rec)
}

/// Builds `image` with `script` unless Docker already has it.
pub async fn ensure_image(image: &str, script: Option<&Path>) -> anyhow::Result<()> {
    let present = tokio::process::Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .context(
            "cannot run `docker` (is Docker installed? start with --no-runner to skip the runner)",
        )?
        .success();
    if present {
        return Ok(());
    }
    let Some(script) = script.filter(|s| s.is_file()) else {
        bail!(
            "snapshot image {image} is missing and no build script was found; build it (tests/images/build-base.sh) or pass --default-snapshot"
        );
    };
    tracing::info!(image, script = %script.display(), "building the default snapshot image (first start: a few minutes)");
    let status = tokio::process::Command::new("bash")
        .arg(script)
        .stdout(Stdio::null())
        .status()
        .await
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    Ok(())
}

/// The supervised agent: a task that owns the process and restarts it when it exits.
pub struct LocalRunner {
    pub runner_id: RunnerId,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl LocalRunner {
    /// Registers (or reuses) the local runner, makes sure the image exists, starts the agent,
    /// waits for its first heartbeat, and from then on supervises it.
    pub async fn start(store: &Store, s: RunnerSettings) -> anyhow::Result<Self> {
        let rec = ensure_local_runner(store).await?;
        if s.runtime == "docker" {
            ensure_image(&s.default_snapshot, s.image_script.as_deref()).await?;
        }
        std::fs::create_dir_all(&s.data_dir)
            .with_context(|| format!("cannot create {}", s.data_dir.display()))?;
        let since = cove_api_types::time::now_rfc3339();
        let mut agent = Agent::spawn(&s, &rec)?;
        tracing::info!(runner_id = %rec.id, pid = agent.pid, "runner agent started");
        if let Err(e) = wait_ready(&mut agent, store, &rec.id, &since).await {
            agent.stop().await;
            return Err(e);
        }
        let (stop, stopped) = oneshot::channel();
        let runner_id = rec.id.clone();
        let task = tokio::spawn(supervise(agent, s, rec, stopped));
        Ok(Self {
            runner_id,
            stop,
            task,
        })
    }

    /// Stops the supervisor and the agent (SIGTERM, then SIGKILL after a grace period).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "runner supervisor ended abnormally");
        }
    }
}

async fn wait_ready(
    agent: &mut Agent,
    store: &Store,
    runner_id: &RunnerId,
    since: &str,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = agent.try_wait()? {
            bail!("the runner agent exited during startup ({status}); see its log above");
        }
        if let Some(r) = store.runners().get(runner_id).await?
            && r.state == RunnerState::Ready
            && r.last_checked.as_deref().is_some_and(|t| t >= since)
        {
            tracing::info!(runner_id = %runner_id, api_url = ?r.api_url, "runner agent ready");
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "the runner agent sent no heartbeat within {} s",
                READY_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Restarts the agent whenever it exits, until `stop` fires; then stops it.
async fn supervise(
    mut agent: Agent,
    s: RunnerSettings,
    rec: RunnerRecord,
    mut stop: oneshot::Receiver<()>,
) {
    let mut backoff = Backoff::default();
    loop {
        let exited = tokio::select! {
            status = agent.wait() => status,
            _ = &mut stop => {
                agent.stop().await;
                return;
            }
        };
        let ran = agent.started.elapsed();
        match exited {
            Ok(status) => {
                tracing::warn!(runner_id = %rec.id, pid = agent.pid, %status, ran_s = ran.as_secs(), "runner agent exited")
            }
            Err(error) => {
                tracing::warn!(runner_id = %rec.id, pid = agent.pid, %error, "runner agent lost")
            }
        }
        match restart(&s, &rec, &mut backoff, ran, &mut stop).await {
            Some(next) => agent = next,
            None => return,
        }
    }
}

/// Waits out the backoff and starts a new agent, retrying until one starts; `None` when `stop`
/// fired meanwhile.
async fn restart(
    s: &RunnerSettings,
    rec: &RunnerRecord,
    backoff: &mut Backoff,
    mut ran: Duration,
    stop: &mut oneshot::Receiver<()>,
) -> Option<Agent> {
    loop {
        let delay = backoff.after_run(ran);
        tracing::info!(runner_id = %rec.id, delay_ms = delay.as_millis() as u64, "restarting the runner agent");
        tokio::select! {
            () = tokio::time::sleep(delay) => {},
            _ = &mut *stop => return None,
        }
        match Agent::spawn(s, rec) {
            Ok(agent) => {
                tracing::info!(runner_id = %rec.id, pid = agent.pid, "runner agent restarted");
                return Some(agent);
            }
            Err(error) => {
                tracing::warn!(runner_id = %rec.id, error = %format!("{error:#}"), "cannot restart the runner agent");
                ran = Duration::ZERO;
            }
        }
    }
}
