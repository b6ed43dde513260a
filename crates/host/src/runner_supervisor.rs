//! The runner agent `cove up` starts next to the control plane (one `cove-runner` process).
//!
//! * The runner row is named `local` (region `us`); created with a fresh token on the first start
//!   and reused afterwards (the token lives on the row, in the data directory's table).
//! * The default snapshot image is built when Docker does not have it (`tests/images/build-base.sh`
//!   next to the manifest: debootstrap, no registry).
//! * `cove ready` is printed only after the agent's first heartbeat reached the control plane, so
//!   the first sandbox create finds a ready runner.
//! * On shutdown the agent gets SIGTERM (by PID), then SIGKILL after a grace period.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cove_api_types::ids::RunnerId;
use cove_api_types::runner::RunnerState;
use cove_store::Store;
use cove_store::runners::{DEFAULT_REGION, RunnerRecord};

/// Name of the runner row `cove up` manages.
pub const LOCAL_RUNNER: &str = "local";
/// How long `cove up` waits for the agent's first heartbeat.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Grace period between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

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
    /// Script that builds the default snapshot image when it is missing.
    pub image_script: Option<PathBuf>,
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

/// A running agent.
pub struct LocalRunner {
    child: tokio::process::Child,
    pub runner_id: RunnerId,
}

impl LocalRunner {
    /// Registers (or reuses) the local runner, makes sure the image exists, starts the agent and
    /// waits for its first heartbeat.
    pub async fn start(store: &Store, s: &RunnerSettings) -> anyhow::Result<Self> {
        let rec = ensure_local_runner(store).await?;
        ensure_image(&s.default_snapshot, s.image_script.as_deref()).await?;
        std::fs::create_dir_all(&s.data_dir)
            .with_context(|| format!("cannot create {}", s.data_dir.display()))?;
        let since = cove_api_types::time::now_rfc3339();
        let mut cmd = tokio::process::Command::new(&s.bin);
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&s.data_dir)
            .arg("--control-plane-url")
            .arg(&s.control_plane_url)
            .arg("--runner-id")
            .arg(rec.id.as_str())
            .arg("--exit-with-parent")
            .env("COVE_RUNNER_TOKEN", &rec.api_key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        if s.warm_pool > 0 {
            cmd.arg("--warm-pool")
                .arg(format!("{}={}", s.default_snapshot, s.warm_pool));
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", s.bin.display()))?;
        let mut me = Self {
            child,
            runner_id: rec.id.clone(),
        };
        tracing::info!(runner_id = %rec.id, pid = me.child.id(), "runner agent started");
        if let Err(e) = me.wait_ready(store, &since).await {
            me.stop().await;
            return Err(e);
        }
        Ok(me)
    }

    async fn wait_ready(&mut self, store: &Store, since: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the runner agent exited during startup ({status}); see its log above");
            }
            if let Some(r) = store.runners().get(&self.runner_id).await?
                && r.state == RunnerState::Ready
                && r.last_checked.as_deref().is_some_and(|t| t >= since)
            {
                tracing::info!(runner_id = %self.runner_id, api_url = ?r.api_url, "runner agent ready");
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

    /// SIGTERM, then SIGKILL after a grace period.
    pub async fn stop(mut self) {
        let Some(pid) = self.child.id() else {
            return;
        };
        let term = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
        if term.is_err() {
            let _ = self.child.start_kill();
        }
        match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
            Ok(status) => tracing::info!(pid, ?status, "runner agent stopped"),
            Err(_) => {
                tracing::warn!(pid, "runner agent ignored SIGTERM; killing it");
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
            }
        }
    }
}
