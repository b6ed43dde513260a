//! Harness of the Docker tests: the base image, an agent process on 127.0.0.1:0 with its own data
//! dir and runner id, and small HTTP helpers. Every container an agent created is removed when
//! its [`Agent`] guard drops.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use cove_runner_api::client::RunnerClient;
use cove_runner_api::{SandboxSpec, SandboxState, SandboxStatus};

pub const TOKEN: &str = "test-runner-token";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The sandbox base image: `$COVE_SANDBOX_IMAGE`, else built (or reused) by `tests/images/build-base.sh`.
pub fn image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let docker = Command::new("docker")
                .arg("info")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !docker.is_ok_and(|s| s.success()) {
                let started = Command::new("bash")
                    .arg(repo_root().join("scripts/docker.sh"))
                    .status();
                assert!(
                    started.is_ok_and(|s| s.success()),
                    "these tests need a Docker engine: none answers `docker info` and scripts/docker.sh could not start one"
                );
            }
            if let Ok(img) = std::env::var("COVE_SANDBOX_IMAGE") {
                return img;
            }
            let out = Command::new("bash")
                .arg(repo_root().join("tests/images/build-base.sh"))
                .stderr(Stdio::inherit())
                .output()
                .expect("running tests/images/build-base.sh");
            assert!(out.status.success(), "tests/images/build-base.sh failed");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .expect("build-base.sh prints the tag")
                .trim()
                .to_owned()
        })
        .clone()
}

/// One `cove-runner` process.
pub struct Agent {
    child: Option<Child>,
    pub url: String,
    pub runner_id: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub client: RunnerClient,
    pub http: reqwest::Client,
    cleanup: bool,
}

/// The image of the simulated runner's tests (`--runtime fake --snapshot FAKE_IMAGE`).
pub const FAKE_IMAGE: &str = "cove-fake-base:1";

impl Agent {
    pub fn start(extra: &[&str]) -> Agent {
        let tmp = tempfile::tempdir().expect("tmp");
        let runner_id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut a = Self::spawn(tmp.path(), &runner_id, extra);
        a._tmp = Some(tmp);
        a
    }

    /// A Docker agent with extra environment variables.
    pub fn start_env(extra: &[&str], env: &[(&str, &str)]) -> Agent {
        let _ = image();
        let tmp = tempfile::tempdir().expect("tmp");
        let runner_id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut a = Self::spawn_process_env(tmp.path(), &runner_id, extra, env);
        a._tmp = Some(tmp);
        a
    }

    /// A simulated runner (`--runtime fake`, no Docker) holding [`FAKE_IMAGE`].
    pub fn start_fake(extra: &[&str]) -> Agent {
        let tmp = tempfile::tempdir().expect("tmp");
        let runner_id = format!("f{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut args = vec!["--runtime", "fake", "--snapshot", FAKE_IMAGE];
        args.extend_from_slice(extra);
        let mut a = Self::spawn_process(tmp.path(), &runner_id, &args);
        a._tmp = Some(tmp);
        a.cleanup = false;
        a
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM and waits (at most `limit`) for the exit; returns how long it took.
    pub fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        let child = self.child.as_mut()?;
        let pid = rustix::process::Pid::from_raw(child.id() as i32)?;
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let t = std::time::Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return Some(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Starts an agent over an existing data dir and runner id (restart tests).
    pub fn spawn(data_dir: &Path, runner_id: &str, extra: &[&str]) -> Agent {
        let _ = image();
        Self::spawn_process(data_dir, runner_id, extra)
    }

    fn spawn_process(data_dir: &Path, runner_id: &str, extra: &[&str]) -> Agent {
        Self::spawn_process_env(data_dir, runner_id, extra, &[])
    }

    fn spawn_process_env(
        data_dir: &Path,
        runner_id: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cove-runner"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--token",
                TOKEN,
                "--runner-id",
                runner_id,
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn,cove_runner_agent=info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning cove-runner");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the listen line");
        let url = line
            .trim()
            .strip_prefix("cove-runner listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Agent {
            child: Some(child),
            client: RunnerClient::new(&url, TOKEN),
            url,
            runner_id: runner_id.to_owned(),
            data_dir: data_dir.to_path_buf(),
            _tmp: None,
            http: reqwest::Client::new(),
            cleanup: true,
        }
    }

    /// kill -9 (containers stay).
    pub fn kill9(mut self) -> (Option<tempfile::TempDir>, String) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.cleanup = false;
        (self._tmp.take(), self.runner_id.clone())
    }

    pub fn tb(&self, id: &str, path: &str) -> String {
        format!("{}/v1/sandboxes/{id}/toolbox{path}", self.url)
    }

    pub fn get(&self, id: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.tb(id, path)).bearer_auth(TOKEN)
    }

    pub fn post(&self, id: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.tb(id, path)).bearer_auth(TOKEN)
    }

    pub fn delete(&self, id: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.delete(self.tb(id, path)).bearer_auth(TOKEN)
    }

    /// Creates a started sandbox from the base image.
    pub async fn sandbox(&self, id: &str, f: impl FnOnce(&mut SandboxSpec)) -> SandboxStatus {
        let mut spec = SandboxSpec::new(image());
        f(&mut spec);
        let s = self
            .client
            .put_sandbox(id, &spec)
            .await
            .expect("put sandbox");
        assert_eq!(s.state, SandboxState::Started, "{s:?}");
        s
    }

    /// `process/execute` → (exitCode, result).
    pub async fn exec(&self, id: &str, command: &str) -> (i64, String) {
        let resp = self
            .post(id, "/process/execute")
            .json(&serde_json::json!({ "command": command, "timeout": 60 }))
            .send()
            .await
            .expect("execute");
        assert_eq!(resp.status(), 200);
        let v: serde_json::Value = resp.json().await.expect("json");
        (
            v["exitCode"].as_i64().unwrap_or(-99),
            v["result"].as_str().unwrap_or_default().to_owned(),
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.cleanup {
            remove_containers(&self.runner_id);
            // The agent bind-mounts its sandbox directories onto themselves (nosuid,nodev,noexec).
            let _ = rustix::mount::unmount(
                self.data_dir.join("sandboxes"),
                rustix::mount::UnmountFlags::DETACH,
            );
        }
    }
}

/// A stand-in for the control plane: records heartbeats and state reports and answers them
/// with a settable status.
pub struct ControlPlane {
    pub url: String,
    /// Status of every answer (200 by default; 401 plays a deleted runner).
    pub status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    pub heartbeats: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    reports: std::sync::Arc<std::sync::Mutex<Vec<(String, cove_runner_api::StateReport)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ControlPlane {
    pub async fn start() -> ControlPlane {
        use axum::routing::{post, put};
        use std::sync::atomic::Ordering;
        let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200));
        let heartbeats = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (st, hb) = (status.clone(), heartbeats.clone());
        let (st2, rp) = (status.clone(), reports.clone());
        let app = axum::Router::new()
            .route(
                "/api/runners/healthcheck",
                post(move || {
                    let (st, hb) = (st.clone(), hb.clone());
                    async move {
                        hb.fetch_add(1, Ordering::SeqCst);
                        axum::http::StatusCode::from_u16(st.load(Ordering::SeqCst))
                            .unwrap_or(axum::http::StatusCode::OK)
                    }
                }),
            )
            .route(
                "/api/sandbox/{id}/state",
                put(
                    move |axum::extract::Path(id): axum::extract::Path<String>,
                          axum::Json(r): axum::Json<cove_runner_api::StateReport>| {
                        let (st, rp) = (st2.clone(), rp.clone());
                        async move {
                            let code = st.load(Ordering::SeqCst);
                            if code == 200 {
                                rp.lock().expect("reports").push((id, r));
                            }
                            axum::http::StatusCode::from_u16(code)
                                .unwrap_or(axum::http::StatusCode::OK)
                        }
                    },
                ),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ControlPlane {
            url,
            status,
            heartbeats,
            reports,
            task,
        }
    }

    pub fn reports(&self) -> Vec<(String, cove_runner_api::StateReport)> {
        self.reports.lock().expect("reports").clone()
    }

    /// Waits for a report of `id` matching `f`.
    pub async fn wait_report(
        &self,
        id: &str,
        timeout: Duration,
        f: impl Fn(&cove_runner_api::StateReport) -> bool,
    ) -> cove_runner_api::StateReport {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some((_, r)) = self.reports().into_iter().find(|(i, r)| i == id && f(r)) {
                return r;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no matching report for {id}: {:?}",
                self.reports()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `docker rm -f` every container of a runner id.
pub fn remove_containers(runner_id: &str) {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=cove.runner={runner_id}"))
        .output();
    if let Ok(out) = out {
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// A fresh sandbox id.
pub fn sid(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while !f().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A block of four addresses (a multiple of 4 below 252) for a test "internet" in a network
/// namespace (`203.0.113.<x+1>/<x+2>` and the hosts derived from `x`): distinct for every call in
/// this test process, so the network and egress tests that run side by side never add the same
/// address or route; the first block is random, against another test process on the machine.
pub fn test_net_block() -> u8 {
    use std::sync::atomic::{AtomicU8, Ordering};
    static NEXT: AtomicU8 = AtomicU8::new(u8::MAX);
    let start = (uuid::Uuid::new_v4().as_bytes()[0] % 63) * 4;
    let _ = NEXT.compare_exchange(u8::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    let x = NEXT
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some((v + 4) % 252))
        .unwrap_or(0);
    x % 252
}
