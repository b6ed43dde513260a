//! The container runtime seen by the agent: a small trait with a Docker implementation
//! ([`docker::DockerRuntime`], bollard) and a simulated one ([`fake::FakeRuntime`]: in-memory
//! containers whose toolbox is an in-process daemon, for `cove-runner --runtime fake` and unit
//! tests). [`timed::Timed`] puts a deadline on every call of either.

pub mod docker;
pub mod fake;
pub mod images;
pub mod timed;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use cove_runner_api::fake::FakeDelay;

/// Where the per-sandbox host directory is mounted inside the container.
pub const RUN_DIR_IN_CONTAINER: &str = "/run/cove";

/// Everything needed to create one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub user: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=VALUE`, on top of the image's env.
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub working_dir: Option<String>,
    /// Docker bind specs (`src:dst[:ro]`).
    pub binds: Vec<String>,
    pub nano_cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub pids_limit: Option<i64>,
    /// `network_mode = none`.
    pub network_none: bool,
    /// The network to join otherwise (the agent's sandbox network; `None`: Docker's default).
    pub network: Option<String>,
    /// Capabilities added after dropping ALL.
    pub cap_add: Vec<String>,
    pub stop_timeout_secs: Option<i64>,
}

/// What the agent needs to know about an existing container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    pub running: bool,
    /// Docker's state word (`created`, `running`, `exited`, ...).
    pub status: String,
    /// Host source of the `/run/cove` bind mount.
    pub run_dir: Option<PathBuf>,
    /// Exit code of a container that ran and exited (inspect only).
    pub exit_code: Option<i64>,
}

/// Image facts used to build the entrypoint and to check who may use the image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageInfo {
    pub id: String,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub labels: HashMap<String, String>,
    /// Size of the image on the engine.
    pub size_bytes: Option<u64>,
}

/// One local image (`docker images`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageSummary {
    pub id: String,
    /// `repo:tag` references (without `<none>:<none>`).
    pub tags: Vec<String>,
    pub labels: HashMap<String, String>,
}

/// What `docker commit` writes into the new image's config (on top of the container's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitOptions {
    pub labels: HashMap<String, String>,
    /// The image's entrypoint (empty: none) and cmd.
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

/// Outcome of removing an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRemoval {
    Removed,
    /// Still used by a container (Docker's 409): try again once that container is gone.
    InUse,
    NotFound,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no such container or image: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("container engine failed to {op}: {message}")]
    Engine { op: &'static str, message: String },
    #[error("the container engine did not {op} within {after:?}")]
    Timeout { op: &'static str, after: Duration },
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Container operations (one engine; every call is idempotent where Docker allows it).
#[async_trait::async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// `None` when the image is not present locally.
    async fn image(&self, image: &str) -> Result<Option<ImageInfo>>;
    /// Every local image with its tags and labels.
    async fn images(&self) -> Result<Vec<ImageSummary>>;
    /// Removes an image by reference (not by force: an image a container uses stays).
    async fn remove_image(&self, image: &str) -> Result<ImageRemoval>;
    /// Creates (does not start) a container; returns its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String>;
    /// Starts; a running container is fine.
    async fn start(&self, id: &str) -> Result<()>;
    /// Stops with a grace period (0 = SIGKILL now); a stopped container is fine.
    async fn stop(&self, id: &str, timeout_secs: u32) -> Result<()>;
    /// Removes by force; a missing container is fine.
    async fn remove(&self, id: &str) -> Result<()>;
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>>;
    /// Every container carrying `label=value`, running or not.
    async fn list(&self, label: &str, value: &str) -> Result<Vec<ContainerInfo>>;
    async fn rename(&self, id: &str, name: &str) -> Result<()>;
    /// `docker commit` to `repo:tag`; returns the image id.
    async fn commit(&self, id: &str, repo: &str, tag: &str, opts: &CommitOptions)
    -> Result<String>;
    /// A regular file of a (created) container's filesystem; `None` when it is missing or the
    /// runtime cannot read files (the fake).
    async fn read_file(&self, _id: &str, _path: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// Image pull, build and push (snapshot jobs); `None`: the runtime cannot make images.
    fn image_engine(&self) -> Option<&dyn images::ImageEngine> {
        None
    }
    /// Fault injection (the simulated runtime only).
    fn faults(&self) -> Option<&dyn Faults> {
        None
    }
    /// Whether the daemon lacks the container's env, so the agent passes the sandbox env in
    /// every `process/execute` and `process/code-run` (the simulated runtime's in-process daemon).
    fn env_in_requests(&self) -> bool {
        false
    }
}

/// Fault injection of the simulated runtime (`/v1/fake/*`).
#[async_trait::async_trait]
pub trait Faults: Send + Sync {
    /// The container dies (exit 137) as if OOM-killed; its toolbox daemon goes with it.
    async fn crash(&self, id: &str) -> Result<()>;
    /// The next engine call(s) of a kind take `delay.seconds`, or hang.
    fn delay(&self, delay: &FakeDelay);
}
