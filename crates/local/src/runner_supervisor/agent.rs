//! One `cove-runner` process: spawned with the local runner's id, token and data directory,
//! stopped by PID (SIGTERM, then SIGKILL after a grace period).

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use cove_store::runners::RunnerRecord;

use super::RunnerSettings;

/// Grace period between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct Agent {
    child: tokio::process::Child,
    pub pid: u32,
    pub started: Instant,
}

impl Agent {
    /// Starts the agent for `runner` (the same id, token and data directory on every start, so
    /// a restarted agent finds its containers and its state file again).
    pub fn spawn(s: &RunnerSettings, runner: &RunnerRecord) -> anyhow::Result<Self> {
        let mut cmd = tokio::process::Command::new(&s.bin);
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&s.data_dir)
            .arg("--control-plane-url")
            .arg(&s.control_plane_url)
            .arg("--runner-id")
            .arg(runner.id.as_str())
            .arg("--exit-with-parent")
            .arg("--runtime")
            .arg(&s.runtime)
            .arg("--snapshot")
            .arg(&s.default_snapshot)
            .env("COVE_RUNNER_TOKEN", &runner.api_key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        if !crate::logging::use_ansi() {
            // The agent logs to cove's stderr: no colour codes in a log file.
            cmd.env("NO_COLOR", "1");
        }
        if let Some(s3) = &s.s3 {
            cmd.arg("--s3-endpoint")
                .arg(&s3.endpoint)
                .arg("--s3-bucket")
                .arg(&s3.bucket)
                .arg("--s3-region")
                .arg(&s3.region)
                .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
                .env("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key);
        }
        if s.warm_pool > 0 {
            cmd.arg("--warm-pool")
                .arg(format!("{}={}", s.default_snapshot, s.warm_pool));
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", s.bin.display()))?;
        let pid = child.id().context("the runner agent has no PID")?;
        Ok(Self {
            child,
            pid,
            started: Instant::now(),
        })
    }

    /// Waits for the process to exit, and reaps it.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// The exit status if the process has exited (and is now reaped).
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// SIGTERM by PID, then SIGKILL after [`STOP_GRACE`].
    pub async fn stop(mut self) {
        let pid = self.pid;
        if let Ok(Some(status)) = self.child.try_wait() {
            tracing::info!(pid, %status, "runner agent had already exited");
            return;
        }
        if let Err(error) = signal(pid, rustix::process::Signal::TERM) {
            tracing::warn!(pid, %error, "cannot send SIGTERM to the runner agent");
        }
        match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
            Ok(Ok(status)) => tracing::info!(pid, %status, "runner agent stopped"),
            Ok(Err(error)) => tracing::warn!(pid, %error, "cannot wait for the runner agent"),
            Err(_) => {
                tracing::warn!(
                    pid,
                    grace_s = STOP_GRACE.as_secs(),
                    "runner agent ignored SIGTERM; killing it"
                );
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
            }
        }
    }
}

/// Signals our own child, which is not reaped yet (so `pid` cannot have been reused).
fn signal(pid: u32, sig: rustix::process::Signal) -> std::io::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| std::io::Error::other("PID out of range"))?;
    let pid = rustix::process::Pid::from_raw(raw).ok_or_else(|| std::io::Error::other("PID 0"))?;
    rustix::process::kill_process(pid, sig).map_err(std::io::Error::from)
}
