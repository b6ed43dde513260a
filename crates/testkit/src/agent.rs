//! A `cove-runner` agent process on `127.0.0.1:0`: on Docker, or simulated (`--runtime fake`: no
//! Docker, in-memory containers with in-process toolbox daemons and fault injection).
//!
//! ```ignore
//! let agent = Agent::start(AgentOptions::fake())?;
//! let s = agent.client().put_sandbox("sb1", &SandboxSpec::new(FAKE_IMAGE)).await?;
//! agent.crash("sb1").await?; // the container dies with 137
//! ```
//!
//! The process is killed by its PID on drop; a Docker agent's containers (label
//! `cove.runner=<runner id>`, which the agent leaves behind on purpose so they survive its
//! restarts) are removed too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cove_runner_api::client::{ClientError, RunnerClient};
use cove_runner_api::fake::{FakeDelay, FakeOp};
use cove_runner_api::{SandboxSpec, SandboxStatus};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::process::{Proc, Stderr};
use crate::{bins, image};

/// The one image a simulated runner holds unless told otherwise.
pub const FAKE_IMAGE: &str = "cove-fake-base:1";

/// What the agent's first stdout line starts with; the URL follows.
const LISTENING: &str = "cove-runner listening on ";

/// How long the agent may take to print that line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The agent's container engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// The simulated runner (`--runtime fake`).
    Fake,
    /// The local Docker engine; needs the base image and the musl toolbox daemon.
    Docker,
}

/// How to start an agent. Build with [`AgentOptions::fake`] or [`AgentOptions::docker`] and
/// the methods below; every field has a working default.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub runtime: Runtime,
    /// The bearer token of its API (default: random).
    pub token: Option<String>,
    /// `--runner-id`, the `cove.runner` label of its containers (default: random).
    pub runner_id: Option<String>,
    /// `--control-plane-url`: where heartbeats and state reports go (default: none are sent).
    pub control_plane_url: Option<String>,
    /// `--heartbeat-secs` (default: the agent's).
    pub heartbeat_secs: Option<u64>,
    /// `--data-dir` (default: a temporary directory removed with the agent).
    pub data_dir: Option<PathBuf>,
    /// `--warm-pool IMAGE=N`.
    pub warm_pool: Vec<(String, usize)>,
    /// `--snapshot IMAGE` (default for [`Runtime::Fake`]: [`FAKE_IMAGE`]).
    pub snapshots: Vec<String>,
    /// Any other flags.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `RUST_LOG` (default `warn`).
    pub log: String,
    /// The binary (default: [`bins::cove_runner`]; the agent's own tests pass
    /// `env!("CARGO_BIN_EXE_cove-runner")`).
    pub bin: Option<PathBuf>,
    pub stderr: Stderr,
}

impl AgentOptions {
    /// A simulated runner holding [`FAKE_IMAGE`].
    pub fn fake() -> Self {
        Self::new(Runtime::Fake, vec![FAKE_IMAGE.to_owned()])
    }

    /// A Docker runner.
    pub fn docker() -> Self {
        Self::new(Runtime::Docker, Vec::new())
    }

    fn new(runtime: Runtime, snapshots: Vec<String>) -> Self {
        Self {
            runtime,
            token: None,
            runner_id: None,
            control_plane_url: None,
            heartbeat_secs: None,
            data_dir: None,
            warm_pool: Vec::new(),
            snapshots,
            args: Vec::new(),
            env: Vec::new(),
            log: "warn".to_owned(),
            bin: None,
            stderr: Stderr::Echo,
        }
    }

    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn runner_id(mut self, id: impl Into<String>) -> Self {
        self.runner_id = Some(id.into());
        self
    }

    pub fn control_plane(mut self, url: impl Into<String>) -> Self {
        self.control_plane_url = Some(url.into());
        self
    }

    pub fn heartbeat_secs(mut self, secs: u64) -> Self {
        self.heartbeat_secs = Some(secs);
        self
    }

    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    pub fn warm_pool(mut self, image: impl Into<String>, n: usize) -> Self {
        self.warm_pool.push((image.into(), n));
        self
    }

    /// Replaces the snapshot list with `image` alone.
    pub fn snapshot(mut self, image: impl Into<String>) -> Self {
        self.snapshots = vec![image.into()];
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Build contexts of snapshot jobs from the S3 at `endpoint` (path-style) in `bucket`,
    /// signed with `access_key`/`secret` (the agent's `--s3-endpoint`, `--s3-bucket`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    pub fn s3(self, endpoint: &str, bucket: &str, access_key: &str, secret: &str) -> Self {
        self.args(["--s3-endpoint", endpoint, "--s3-bucket", bucket])
            .env("AWS_ACCESS_KEY_ID", access_key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn log(mut self, filter: impl Into<String>) -> Self {
        self.log = filter.into();
        self
    }

    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = Some(bin.into());
        self
    }

    pub fn stderr(mut self, stderr: Stderr) -> Self {
        self.stderr = stderr;
        self
    }

    /// The `cove-runner` flags.
    fn command_args(&self, token: &str, runner_id: &str, data_dir: &Path) -> Vec<String> {
        let mut a: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--token",
            token,
            "--runner-id",
            runner_id,
        ]
        .map(str::to_owned)
        .into();
        a.push("--data-dir".into());
        a.push(data_dir.display().to_string());
        if self.runtime == Runtime::Fake {
            a.extend(["--runtime".into(), "fake".into()]);
        }
        for s in &self.snapshots {
            a.extend(["--snapshot".into(), s.clone()]);
        }
        for (img, n) in &self.warm_pool {
            a.extend(["--warm-pool".into(), format!("{img}={n}")]);
        }
        if let Some(url) = &self.control_plane_url {
            a.extend(["--control-plane-url".into(), url.clone()]);
        }
        if let Some(s) = self.heartbeat_secs {
            a.extend(["--heartbeat-secs".into(), s.to_string()]);
        }
        a.extend(self.args.iter().cloned());
        a
    }
}

/// A running agent.
pub struct Agent {
    proc: Proc,
    url: String,
    client: RunnerClient,
    http: reqwest::Client,
    remains: Remains,
}

impl Agent {
    /// Starts the agent and waits for its `cove-runner listening on <url>` line. A Docker agent
    /// first makes sure Docker, the base image and the toolbox daemon are there.
    pub fn start(opts: AgentOptions) -> Result<Agent> {
        let bin = match &opts.bin {
            Some(b) => b.clone(),
            None => bins::cove_runner()?,
        };
        let toolbox = match opts.runtime {
            Runtime::Docker => {
                image::base()?;
                Some(bins::toolbox_daemon()?)
            }
            Runtime::Fake => None,
        };
        let (data_dir, tmp) = match &opts.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::tempdir().map_err(|source| Error::Io {
                    what: "cannot create a temporary data dir",
                    path: std::env::temp_dir(),
                    source,
                })?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let remains = Remains {
            token: opts.token.clone().unwrap_or_else(|| random("tok", 32)),
            runner_id: opts.runner_id.clone().unwrap_or_else(|| random("tk", 10)),
            data_dir,
            tmp,
            opts,
        };
        let mut cmd = Command::new(&bin);
        // The agent reads most flags from `COVE_RUNNER_*` too: none may leak in from the test's
        // own environment.
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| {
                k.starts_with("COVE_RUNNER_")
                    || k == "COVE_CONTROL_PLANE_URL"
                    || k == "COVE_TOOLBOX_BIN"
            }) {
                cmd.env_remove(k);
            }
        }
        cmd.args(
            remains
                .opts
                .command_args(&remains.token, &remains.runner_id, &remains.data_dir),
        )
        .env("RUST_LOG", &remains.opts.log)
        .envs(toolbox.map(|t| ("COVE_TOOLBOX_BIN", t)))
        .envs(remains.opts.env.iter().map(|(k, v)| (k, v)));
        Self::spawn(cmd, remains)
    }

    fn spawn(mut cmd: Command, remains: Remains) -> Result<Agent> {
        let mut proc = Proc::spawn("cove-runner", &mut cmd, &remains.opts.stderr)?;
        let lines = proc.wait_for_line("cove-runner listening on <url>", READY_TIMEOUT, |l| {
            l.starts_with(LISTENING)
        })?;
        let url = lines
            .last()
            .and_then(|l| parse_listening(l))
            .ok_or_else(|| Error::Output {
                what: "cove-runner",
                line: "listening",
                stdout: lines.clone(),
            })?;
        Ok(Agent {
            client: RunnerClient::new(&url, &remains.token),
            http: reqwest::Client::new(),
            proc,
            url,
            remains,
        })
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn token(&self) -> &str {
        &self.remains.token
    }

    pub fn runner_id(&self) -> &str {
        &self.remains.runner_id
    }

    pub fn runtime(&self) -> Runtime {
        self.remains.opts.runtime
    }

    pub fn data_dir(&self) -> &Path {
        &self.remains.data_dir
    }

    /// The images it was told to serve (`--snapshot` and the warm-pool images).
    pub fn snapshots(&self) -> Vec<String> {
        let o = &self.remains.opts;
        let mut all = o.snapshots.clone();
        all.extend(o.warm_pool.iter().map(|(i, _)| i.clone()));
        all.dedup();
        all
    }

    /// A client of its API with its token.
    pub fn client(&self) -> &RunnerClient {
        &self.client
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Its stderr so far (empty with [`Stderr::File`] until written).
    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    /// `<url>/v1/sandboxes/<id>/toolbox<path>`
    pub fn toolbox_url(&self, id: &str, path: &str) -> String {
        format!("{}/v1/sandboxes/{id}/toolbox{path}", self.url)
    }

    /// A request to the sandbox's toolbox through the agent, with the agent's token.
    pub fn toolbox(&self, method: http::Method, id: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.toolbox_url(id, path))
            .bearer_auth(self.token())
    }

    /// Creates (or converges) sandbox `id` as started from the agent's first snapshot (for a
    /// Docker agent without one: the base image), after `edit` adjusted the spec.
    pub async fn sandbox(
        &self,
        id: &str,
        edit: impl FnOnce(&mut SandboxSpec),
    ) -> Result<SandboxStatus, ClientError> {
        let image = match self.snapshots().into_iter().next() {
            Some(i) => i,
            None => image::base().unwrap_or_else(|_| image::LATEST.to_owned()),
        };
        let mut spec = SandboxSpec::new(image);
        edit(&mut spec);
        self.client.put_sandbox(id, &spec).await
    }

    /// `process/execute` in sandbox `id` through the agent → `(exitCode, result)`; panics when
    /// the toolbox does not answer 200.
    pub async fn exec(&self, id: &str, command: &str) -> (i64, String) {
        let resp = self
            .toolbox(http::Method::POST, id, "/process/execute")
            .json(&json!({ "command": command, "timeout": 60 }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("execute in {id}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "execute {command:?} in {id}: {v}");
        (
            v["exitCode"].as_i64().unwrap_or(-99),
            v["result"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Simulated runner: sandbox `id`'s container dies with 137, as if OOM-killed.
    pub async fn crash(&self, id: &str) -> Result<()> {
        self.fake_only()?;
        self.client
            .fake_crash(id)
            .await
            .map_err(|e| api_error("POST /v1/fake/sandboxes/{id}/crash", &e))
    }

    /// Simulated runner: the next `times` engine calls of `op` take `seconds` (`None`: they hang
    /// until the agent's engine deadline).
    pub async fn delay(&self, op: FakeOp, seconds: Option<f64>, times: Option<u32>) -> Result<()> {
        self.fake_only()?;
        let d = FakeDelay { op, seconds, times };
        self.client
            .fake_delay(&d)
            .await
            .map_err(|e| api_error("POST /v1/fake/delay", &e))
    }

    fn fake_only(&self) -> Result<()> {
        match self.runtime() {
            Runtime::Fake => Ok(()),
            Runtime::Docker => Err(Error::Unsupported(
                "fault injection exists on the simulated runner only (AgentOptions::fake)",
            )),
        }
    }

    /// SIGSTOP by PID: the agent stops answering and heartbeating, as a lost runner does, while
    /// it keeps its state — a simulated runner's containers live in its memory and would not
    /// survive [`Agent::kill`] and a restart as Docker's do. [`Agent::thaw`] resumes it.
    pub fn freeze(&self) {
        crate::process::signal(self.pid(), rustix::process::Signal::STOP);
    }

    /// SIGCONT by PID: a [`Agent::freeze`]d agent carries on where it stopped.
    pub fn thaw(&self) {
        crate::process::signal(self.pid(), rustix::process::Signal::CONT);
    }

    /// SIGTERM by PID; waits up to `grace` (SIGKILL after). Returns how long the exit took, or
    /// `None` if it had to be killed. Containers are still removed on drop.
    pub fn terminate(&mut self, grace: Duration) -> Option<Duration> {
        let (_, took) = self.proc.terminate(grace)?;
        (took < grace).then_some(took)
    }

    /// SIGKILL by PID, keeping its containers and data dir: [`Remains::restart`] starts it again
    /// over them.
    pub fn kill(mut self) -> Remains {
        self.proc.kill();
        std::mem::replace(&mut self.remains, Remains::nothing())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.proc.kill();
        // `remains` drops next and removes the containers.
    }
}

/// What a killed agent leaves: its token, runner id, data dir and containers. Dropping it
/// removes the containers (and a temporary data dir).
pub struct Remains {
    token: String,
    runner_id: String,
    data_dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
    opts: AgentOptions,
}

impl Remains {
    /// Owns nothing and removes nothing.
    fn nothing() -> Self {
        Self {
            token: String::new(),
            runner_id: String::new(),
            data_dir: PathBuf::new(),
            tmp: None,
            opts: AgentOptions::fake(),
        }
    }

    pub fn runner_id(&self) -> &str {
        &self.runner_id
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Starts the agent again over the same data dir, runner id and token; `edit` may change
    /// the other options (flags, warm pool).
    pub fn restart(mut self, edit: impl FnOnce(&mut AgentOptions)) -> Result<Agent> {
        let mut opts = self.opts.clone();
        edit(&mut opts);
        opts.token = Some(std::mem::take(&mut self.token));
        opts.runner_id = Some(std::mem::take(&mut self.runner_id));
        opts.data_dir = Some(self.data_dir.clone());
        let tmp = self.tmp.take();
        let mut agent = Agent::start(opts)?;
        agent.remains.tmp = tmp;
        Ok(agent)
    }
}

impl Drop for Remains {
    fn drop(&mut self) {
        if self.opts.runtime == Runtime::Docker && !self.runner_id.is_empty() {
            image::remove_containers(&self.runner_id);
        }
    }
}

/// The URL of a `cove-runner listening on <url>` line.
fn parse_listening(line: &str) -> Option<String> {
    let url = line.trim().strip_prefix(LISTENING)?.trim();
    (url.starts_with("http://") && url.len() > "http://".len()).then(|| url.to_owned())
}

fn api_error(what: &str, e: &ClientError) -> Error {
    Error::Api {
        what: what.to_owned(),
        status: e.status().unwrap_or(0),
        body: e.to_string(),
    }
}

/// `<prefix>` and `hex_len` random hex digits.
pub(crate) fn random(prefix: &str, hex_len: usize) -> String {
    let mut s = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    while s.len() < prefix.len() + hex_len {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(prefix.len() + hex_len);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_url() {
        assert_eq!(
            parse_listening("cove-runner listening on http://127.0.0.1:41234\n").as_deref(),
            Some("http://127.0.0.1:41234")
        );
        assert_eq!(parse_listening("cove-runner listening on "), None);
        assert_eq!(parse_listening("something else"), None);
    }

    #[test]
    fn options_become_flags() {
        let o = AgentOptions::fake()
            .control_plane("http://127.0.0.1:9")
            .heartbeat_secs(1)
            .warm_pool("img:1", 2)
            .arg("--observe-ms")
            .arg("100");
        let a = o.command_args("t0k", "r1", Path::new("/d"));
        let joined = a.join(" ");
        assert_eq!(
            joined,
            "--listen 127.0.0.1:0 --token t0k --runner-id r1 --data-dir /d --runtime fake \
             --snapshot cove-fake-base:1 --warm-pool img:1=2 --control-plane-url http://127.0.0.1:9 \
             --heartbeat-secs 1 --observe-ms 100"
        );
        let d = AgentOptions::docker().command_args("t", "r", Path::new("/d"));
        assert!(!d.contains(&"--runtime".to_owned()), "{d:?}");
        assert!(!d.contains(&"--snapshot".to_owned()), "{d:?}");
    }

    #[test]
    fn random_ids_have_the_asked_length_and_differ() {
        let (a, b) = (random("tk", 10), random("tk", 10));
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("tk"));
        assert_ne!(a, b);
        assert_eq!(random("", 64).len(), 64);
    }
}
