//! `cove up` as a process on `127.0.0.1:0`, ready when it printed `cove ready`; its address and
//! admin key come from the `DAYTONA_API_URL=` / `DAYTONA_API_KEY=` lines before it.
//!
//! ```ignore
//! // The project's spin.toml, a simulated runner registered through the API, JWTs with TEST_SECRET.
//! let cove = Cove::start(CoveOptions::default().runner(Runner::Fake)).await?;
//! let admin = cove.admin_key().expect("fresh data dir");
//! let t = cove_testkit::org::tenant(&cove.api(), &["write:sandboxes"]).await;
//! ```
//!
//! The process is killed by its PID on drop, with the agents it was given; the containers of
//! `cove up`'s own runner ([`Runner::Docker`]) are removed too.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use cove_store::{Store, StoreConfig};

use crate::agent::{self, Agent, AgentOptions, FAKE_IMAGE};
use crate::api::{Api, Call, Http};
use crate::error::{Error, Result};
use crate::jwt::TEST_SECRET;
use crate::process::{Proc, Stderr};
use crate::procfs::{self, Usage};
use crate::{bins, dynamo, image, org};

/// The line `cove up` prints once it serves.
const READY: &str = "cove ready";
/// How long a SIGTERMed cove may take to exit.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// How long `cove up`'s own agent may take to exit after cove was killed.
const OWN_AGENT_EXIT: Duration = Duration::from_secs(20);
/// How long an attached agent may take to turn `ready` (its first heartbeat).
const AGENT_READY: Duration = Duration::from_secs(60);

/// Which application `cove up` serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// The repository's `spin.toml` (every component; build them first, or set `build`).
    Project,
    /// A manifest file.
    File(PathBuf),
    /// Manifest text, written to a temporary `spin.toml` (relative paths in it resolve there).
    Inline(String),
}

/// Which runner the control plane gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// None (`--no-runner`); attach agents with [`Cove::attach_agent`].
    None,
    /// `cove up`'s own runner agent on Docker (what users get), with the base image.
    Docker,
    /// A simulated runner ([`AgentOptions::fake`]) registered through the API as the admin;
    /// `cove`'s default snapshot is then [`FAKE_IMAGE`].
    Fake,
}

/// The DynamoDB table `cove` uses instead of its embedded one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dynamo {
    pub endpoint: String,
    pub table: String,
}

/// How to start `cove up`. [`CoveOptions::default`]: the project's `spin.toml`, no runner, the
/// embedded DynamoDB and S3, `jwt_hs256_secret` = [`TEST_SECRET`], `RUST_LOG=info`.
#[derive(Debug, Clone)]
pub struct CoveOptions {
    /// The binary (default [`bins::cove`]; the host's own tests pass `env!("CARGO_BIN_EXE_cove")`).
    pub bin: Option<PathBuf>,
    pub manifest: Manifest,
    /// `--data-dir` (default: a temporary directory). Reuse one to restart over the same state.
    pub data_dir: Option<PathBuf>,
    pub runner: Runner,
    pub dynamodb: Option<Dynamo>,
    /// Application variables, passed as `SPIN_VARIABLE_<NAME>`.
    pub variables: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    /// More `cove up` flags.
    pub args: Vec<String>,
    /// Let `cove up` build components whose source is missing (default: `--no-build`).
    pub build: bool,
    pub ready_timeout: Duration,
    /// `RUST_LOG`.
    pub log: String,
    pub stderr: Stderr,
}

impl Default for CoveOptions {
    fn default() -> Self {
        Self {
            bin: None,
            manifest: Manifest::Project,
            data_dir: None,
            runner: Runner::None,
            dynamodb: None,
            variables: vec![("jwt_hs256_secret".into(), TEST_SECRET.into())],
            env: Vec::new(),
            args: Vec::new(),
            build: false,
            ready_timeout: Duration::from_secs(120),
            log: "info".into(),
            stderr: Stderr::Echo,
        }
    }
}

impl CoveOptions {
    pub fn manifest(mut self, m: Manifest) -> Self {
        self.manifest = m;
        self
    }

    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    pub fn runner(mut self, r: Runner) -> Self {
        self.runner = r;
        self
    }

    /// A new table on the tests' DynamoDB ([`dynamo::dynamodb_endpoint`]), so the test can read
    /// and write cove's rows itself ([`Cove::store`]).
    pub fn fresh_table(self) -> Self {
        let table = agent::random("cove-", 16);
        self.dynamodb(dynamo::dynamodb_endpoint(), table)
    }

    pub fn dynamodb(mut self, endpoint: impl Into<String>, table: impl Into<String>) -> Self {
        self.dynamodb = Some(Dynamo {
            endpoint: endpoint.into(),
            table: table.into(),
        });
        self
    }

    /// Sets (or replaces) an application variable.
    pub fn variable(mut self, name: &str, value: impl Into<String>) -> Self {
        self.variables.retain(|(n, _)| n != name);
        self.variables.push((name.to_owned(), value.into()));
        self
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
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

    pub fn build(mut self, build: bool) -> Self {
        self.build = build;
        self
    }

    pub fn ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }

    pub fn log(mut self, filter: impl Into<String>) -> Self {
        self.log = filter.into();
        self
    }

    pub fn stderr(mut self, s: Stderr) -> Self {
        self.stderr = s;
        self
    }

    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = Some(bin.into());
        self
    }

    /// The `cove up` flags (after `up`).
    fn up_args(&self, manifest: &Path, data_dir: &Path, runner_bin: Option<&Path>) -> Vec<String> {
        let mut a = vec![
            "--manifest".to_owned(),
            manifest.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        if !self.build {
            a.push("--no-build".into());
        }
        match (self.runner, runner_bin) {
            (Runner::Docker, Some(bin)) => {
                a.extend(["--runner-bin".into(), bin.display().to_string()])
            }
            (Runner::Docker, None) => {}
            (Runner::None | Runner::Fake, _) => a.push("--no-runner".into()),
        }
        if self.runner == Runner::Fake && !self.args.iter().any(|x| x == "--default-snapshot") {
            a.extend(["--default-snapshot".into(), FAKE_IMAGE.into()]);
        }
        if let Some(d) = &self.dynamodb {
            a.extend(["--dynamodb-endpoint".into(), d.endpoint.clone()]);
            a.extend(["--dynamodb-table".into(), d.table.clone()]);
        }
        a.extend(self.args.iter().cloned());
        a
    }
}

/// What `cove up` printed up to `cove ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ready {
    api_url: String,
    admin_key: Option<String>,
}

impl Ready {
    fn parse(lines: &[String]) -> Option<Ready> {
        let value = |prefix: &str| {
            lines
                .iter()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .map(str::to_owned)
        };
        let api_url = value("DAYTONA_API_URL=")?;
        let host = api_url.strip_prefix("http://")?.strip_suffix("/api")?;
        (!host.is_empty()).then_some(())?;
        Some(Ready {
            api_url,
            admin_key: value("DAYTONA_API_KEY=").filter(|k| !k.is_empty()),
        })
    }
}

/// A running `cove up`.
pub struct Cove {
    proc: Proc,
    ready: Ready,
    stdout: Vec<String>,
    agents: Vec<Agent>,
    /// Runner ids of `cove up`'s own agent, whose containers go on drop.
    local_runners: Vec<String>,
    store: Option<Store>,
    /// The S3 `cove up` serves or uses (`COVE_S3_ENDPOINT=`), with the credentials it accepts:
    /// attached agents read build contexts there.
    s3: Option<(String, String, String)>,
    data_dir: PathBuf,
    _workdir: tempfile::TempDir,
}

impl Cove {
    /// Starts `cove up` and waits for `cove ready`; then gives it its runner.
    pub async fn start(opts: CoveOptions) -> Result<Cove> {
        let runner = opts.runner;
        let mut cove = blocking(move || Self::launch(&opts)).await?;
        match runner {
            Runner::None => {}
            Runner::Fake => {
                cove.attach_agent(AgentOptions::fake()).await?;
            }
            Runner::Docker => cove.local_runners = cove.runner_list().await,
        }
        Ok(cove)
    }

    /// Runs `cove up` expecting it to fail before `cove ready`; returns its stderr.
    pub async fn start_failing(opts: CoveOptions) -> Result<String> {
        blocking(move || {
            let (mut proc, _dirs) = Self::spawn(&opts)?;
            match proc.wait_exit(opts.ready_timeout) {
                Some((status, stderr)) if !status.success() => Ok(stderr),
                _ => Err(Error::Started { what: "cove up" }),
            }
        })
        .await
    }

    fn launch(opts: &CoveOptions) -> Result<Cove> {
        let (mut proc, (workdir, data_dir)) = Self::spawn(opts)?;
        let stdout = proc.wait_for_line(READY, opts.ready_timeout, |l| l == READY)?;
        let ready = Ready::parse(&stdout).ok_or_else(|| Error::Output {
            what: "cove up",
            line: "DAYTONA_API_URL=http://<host:port>/api",
            stdout: stdout.clone(),
        })?;
        let store = opts
            .dynamodb
            .as_ref()
            .map(|d| Store::new(&StoreConfig::local(&d.endpoint, &d.table)));
        let env = |k: &str, default: &str| {
            opts.env
                .iter()
                .find(|(n, _)| n == k)
                .map_or_else(|| default.to_owned(), |(_, v)| v.clone())
        };
        let s3 = stdout
            .iter()
            .find_map(|l| l.strip_prefix("COVE_S3_ENDPOINT="))
            .map(|e| {
                (
                    e.to_owned(),
                    env("AWS_ACCESS_KEY_ID", "cove"),
                    env("AWS_SECRET_ACCESS_KEY", "cove-secret"),
                )
            });
        Ok(Cove {
            proc,
            ready,
            s3,
            stdout,
            agents: Vec::new(),
            local_runners: Vec::new(),
            store,
            data_dir,
            _workdir: workdir,
        })
    }

    /// Starts the process; returns it with its work dir (inline manifest, default data dir)
    /// and data dir.
    fn spawn(opts: &CoveOptions) -> Result<(Proc, (tempfile::TempDir, PathBuf))> {
        let bin = match &opts.bin {
            Some(b) => b.clone(),
            None => bins::cove()?,
        };
        let workdir = tempfile::tempdir().map_err(|source| Error::Io {
            what: "cannot create a temporary directory",
            path: std::env::temp_dir(),
            source,
        })?;
        let manifest = match &opts.manifest {
            Manifest::Project => bins::workspace_root().join("spin.toml"),
            Manifest::File(p) => p.clone(),
            Manifest::Inline(text) => write(&workdir.path().join("spin.toml"), text)?,
        };
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| workdir.path().join("data"));
        let runner_bin = match opts.runner {
            Runner::Docker => Some(prepare_docker_runner()?),
            Runner::None | Runner::Fake => None,
        };
        let mut cmd = Command::new(&bin);
        cmd.arg("up")
            .args(opts.up_args(
                &manifest,
                &data_dir,
                runner_bin.as_ref().map(|(b, _)| b.as_path()),
            ))
            .current_dir(bins::workspace_root());
        hermetic_env(&mut cmd);
        cmd.env("RUST_LOG", &opts.log)
            .envs(runner_bin.map(|(_, toolbox)| ("COVE_TOOLBOX_BIN", toolbox)))
            .envs(opts.variables.iter().map(|(n, v)| (variable_env(n), v)))
            .envs(opts.env.iter().map(|(k, v)| (k, v)));
        let proc = Proc::spawn("cove up", &mut cmd, &opts.stderr)?;
        Ok((proc, (workdir, data_dir)))
    }

    /// Registers a runner through the API as the admin, starts an agent for it (`opts`' runtime
    /// and flags; its id, token and control plane are set here; heartbeats every second unless
    /// set) and waits until the control plane shows it `ready`.
    pub async fn attach_agent(&mut self, opts: AgentOptions) -> Result<&Agent> {
        let admin = self.admin_key().map(str::to_owned).ok_or(Error::Unsupported(
            "attaching an agent needs the admin key, which cove prints on a fresh data dir only",
        ))?;
        let api = self.api();
        let name = agent::random("agent-", 8);
        let reg = org::register_runner(&api, &admin, &name).await;
        let heartbeat = opts.heartbeat_secs.unwrap_or(1);
        let opts = match &self.s3 {
            Some((endpoint, key, secret)) if !opts.args.iter().any(|a| a == "--s3-endpoint") => {
                opts.s3(endpoint, "cove", key, secret)
            }
            _ => opts,
        };
        let opts = opts
            .runner_id(&reg.id)
            .token(&reg.token)
            .control_plane(self.base())
            .heartbeat_secs(heartbeat);
        let agent = blocking(move || Agent::start(opts)).await?;
        // On a timeout the agent drops here: killed.
        org::wait_runner_state(&api, &admin, &reg.id, "ready", AGENT_READY).await?;
        self.agents.push(agent);
        Ok(self.agents.last().expect("an agent was just pushed"))
    }

    /// Ids of every runner the admin sees (empty without the admin key).
    async fn runner_list(&self) -> Vec<String> {
        let Some(key) = self.admin_key() else {
            return Vec::new();
        };
        let list = self
            .api()
            .send(Call::get("/api/runners").token(key))
            .await
            .json();
        list.as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `http://127.0.0.1:<port>`
    pub fn base(&self) -> &str {
        self.ready.api_url.trim_end_matches("/api")
    }

    /// `DAYTONA_API_URL`: `http://127.0.0.1:<port>/api`.
    pub fn api_url(&self) -> &str {
        &self.ready.api_url
    }

    /// `<base><path>`
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// `DAYTONA_API_KEY`, the admin's key, printed on the first start over a data dir.
    pub fn admin_key(&self) -> Option<&str> {
        self.ready.admin_key.as_deref()
    }

    /// Its public API over HTTP.
    pub fn api(&self) -> Http {
        Http::new(self.base())
    }

    /// Lines printed on stdout up to and including `cove ready`.
    pub fn stdout(&self) -> &[String] {
        &self.stdout
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Memory and CPU time of the cove process.
    pub fn usage(&self) -> Option<Usage> {
        self.proc.usage()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A store on cove's table, when it uses the tests' DynamoDB ([`CoveOptions::fresh_table`]).
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// The agents given with [`Runner::Fake`] and [`Cove::attach_agent`], in order.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    pub fn agents_mut(&mut self) -> &mut [Agent] {
        &mut self.agents
    }

    /// SIGTERM by PID and the exit status; an error if it needed SIGKILL after 30 s.
    pub fn terminate(mut self) -> Result<ExitStatus> {
        match self.proc.terminate(STOP_GRACE) {
            Some((status, took)) if took < STOP_GRACE => Ok(status),
            _ => Err(Error::Timeout {
                what: "cove up to exit after SIGTERM".into(),
                waited: STOP_GRACE,
            }),
        }
    }
}

impl Drop for Cove {
    fn drop(&mut self) {
        // `cove up`'s own agent follows its parent (SIGTERM, then it drains its warm pool): let
        // it finish before removing what is left, so no refill races the removal.
        let own_agents = match self.local_runners.is_empty() {
            true => Vec::new(),
            false => procfs::children_named(self.proc.pid(), "cove-runner"),
        };
        self.proc.kill();
        let deadline = Instant::now() + OWN_AGENT_EXIT;
        while own_agents.iter().any(|p| procfs::alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for id in &self.local_runners {
            image::remove_containers(id);
        }
    }
}

/// The image, the runner binary and the toolbox daemon `cove up`'s own Docker runner needs.
fn prepare_docker_runner() -> Result<(PathBuf, PathBuf)> {
    image::base()?;
    Ok((bins::cove_runner()?, bins::toolbox_daemon()?))
}

/// Clears what would make the child depend on the test's environment: credentials, data dir,
/// application variables and runner settings.
fn hermetic_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        if k.starts_with("AWS_")
            || k.starts_with("SPIN_VARIABLE_")
            || k.starts_with("COVE_RUNNER_")
            || matches!(
                k,
                "COVE_DATA_DIR" | "COVE_CONTROL_PLANE_URL" | "COVE_TOOLBOX_BIN"
            )
        {
            cmd.env_remove(k);
        }
    }
}

/// `jwt_hs256_secret` → `SPIN_VARIABLE_JWT_HS256_SECRET`.
fn variable_env(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

fn write(path: &Path, text: &str) -> Result<PathBuf> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        what: "cannot write the manifest",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(path.to_path_buf())
}

/// Runs blocking fixture work (waiting for a process) off the async runtime's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(ls: &[&str]) -> Vec<String> {
        ls.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn the_ready_lines_give_the_url_and_the_key() {
        let r = Ready::parse(&lines(&[
            "DAYTONA_API_URL=http://127.0.0.1:41000/api",
            "DAYTONA_API_KEY=dtn_abc",
            "cove ready",
        ]))
        .expect("parsed");
        assert_eq!(r.api_url, "http://127.0.0.1:41000/api");
        assert_eq!(r.admin_key.as_deref(), Some("dtn_abc"));
        let restart = Ready::parse(&lines(&[
            "DAYTONA_API_URL=http://127.0.0.1:41000/api",
            "cove ready",
        ]))
        .expect("parsed");
        assert_eq!(restart.admin_key, None, "no key on a restart");
        assert_eq!(Ready::parse(&lines(&["cove ready"])), None);
        assert_eq!(
            Ready::parse(&lines(&["DAYTONA_API_URL=http://127.0.0.1:41000"])),
            None,
            "the URL ends in /api"
        );
    }

    #[test]
    fn options_become_up_flags() {
        let m = Path::new("/m/spin.toml");
        let d = Path::new("/d");
        let fake = CoveOptions::default()
            .runner(Runner::Fake)
            .dynamodb("http://127.0.0.1:9", "t1")
            .arg("--lifecycle-interval")
            .arg("1")
            .up_args(m, d, None)
            .join(" ");
        assert_eq!(
            fake,
            "--manifest /m/spin.toml --listen 127.0.0.1:0 --data-dir /d --no-build --no-runner \
             --default-snapshot cove-fake-base:1 --dynamodb-endpoint http://127.0.0.1:9 \
             --dynamodb-table t1 --lifecycle-interval 1"
        );
        let docker = CoveOptions::default()
            .runner(Runner::Docker)
            .build(true)
            .up_args(m, d, Some(Path::new("/t/cove-runner")))
            .join(" ");
        assert_eq!(
            docker,
            "--manifest /m/spin.toml --listen 127.0.0.1:0 --data-dir /d --runner-bin /t/cove-runner"
        );
        let own_snapshot = CoveOptions::default()
            .runner(Runner::Fake)
            .args(["--default-snapshot", "img:2"])
            .up_args(m, d, None);
        assert_eq!(
            own_snapshot
                .iter()
                .filter(|a| *a == "--default-snapshot")
                .count(),
            1
        );
    }

    #[test]
    fn variables_are_spin_variables_and_replace_each_other() {
        assert_eq!(
            variable_env("jwt_hs256_secret"),
            "SPIN_VARIABLE_JWT_HS256_SECRET"
        );
        let o = CoveOptions::default().variable("jwt_hs256_secret", "other");
        assert_eq!(
            o.variables,
            [("jwt_hs256_secret".to_owned(), "other".to_owned())]
        );
    }
}
