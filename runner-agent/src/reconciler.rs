//! Desired state → containers. Holds the agent's view of its sandboxes and applies
//! [`SandboxSpec`]s idempotently (see `cove_runner_api` for the contract).
//!
//! - [`apply`]: bounded, resumable `PUT` (one background operation per sandbox, joined by a `PUT`
//!   of the same generation), create / warm-pool claim / converge;
//! - [`spec`]: validation and the container spec (limits, hardening, the daemon entrypoint);
//! - [`recovery`]: the view rebuilt on start from Docker (containers labelled
//!   `cove.runner=<runner id>`) plus the state files, so sandboxes survive an agent restart;
//! - [`state_file`]: the state files `<data-dir>/state/<id>.json`;
//! - [`backups`]: backup images (named, labelled, superseded and removed by the agent) and the
//!   snapshot list of heartbeats.

mod apply;
mod backups;
mod recovery;
mod spec;
mod state_file;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cove_runner_api::{
    RunnerMetrics, SandboxSpec, SandboxState, SandboxStatus, StateReport, labels,
};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::sync::RwLock;

pub use apply::Applied;
pub use spec::{ROOT_CAPS, validate_id};

use crate::config::Config;
use crate::error::{AgentError, Result};
use crate::pool::Pool;
use crate::runtime::ContainerRuntime;
use crate::toolbox::{SOCKET_NAME, Target};
use state_file::StateFiles;

/// Label naming the agent that owns a container.
pub const RUNNER_LABEL: &str = labels::RUNNER;
/// Where the toolbox binary is mounted (read-only) in every container.
pub const TOOLBOX_IN_CONTAINER: &str = "/usr/local/bin/cove-toolbox";
/// The env file named by `BASH_ENV` (see `pool.rs`).
pub const ENV_FILE: &str = "env.sh";

const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for another operation on the same sandbox.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// What the agent remembers about one sandbox (the persisted part is in the state file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub id: String,
    /// Empty while the container is being created.
    pub container_id: String,
    /// The host directory mounted at `/run/cove`.
    pub dir: PathBuf,
    #[serde(default)]
    pub spec: Option<SandboxSpec>,
    #[serde(default)]
    pub generation: u64,
    #[serde(default)]
    pub warm: bool,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub env_overlay: BTreeMap<String, String>,
    #[serde(skip, default = "unknown")]
    pub state: SandboxState,
    #[serde(skip)]
    pub error: Option<String>,
    #[serde(skip)]
    pub daemon_version: Option<String>,
}

fn unknown() -> SandboxState {
    SandboxState::Unknown
}

impl Record {
    fn status(&self) -> SandboxStatus {
        SandboxStatus {
            id: self.id.clone(),
            state: self.state,
            generation: self.generation,
            desired_state: self.spec.as_ref().map(|s| s.desired_state),
            container_id: self.has_container().then(|| self.container_id.clone()),
            snapshot: self.spec.as_ref().map(|s| s.snapshot.clone()),
            org_id: self.org_id.clone(),
            warm: self.warm,
            daemon_version: self.daemon_version.clone(),
            error_reason: self.error.clone(),
        }
    }

    fn has_container(&self) -> bool {
        !self.container_id.is_empty()
    }
}

/// Reports for the control plane (sent by [`crate::reporter`]).
type ReportTx = tokio::sync::mpsc::Sender<(String, StateReport)>;
pub type ReportRx = tokio::sync::mpsc::Receiver<(String, StateReport)>;

pub struct Reconciler {
    cfg: Config,
    runtime: Arc<dyn ContainerRuntime>,
    toolbox_bin: PathBuf,
    sandboxes: RwLock<HashMap<String, Record>>,
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    ops: apply::Ops,
    pool: Pool,
    states: StateFiles,
    reports: ReportTx,
    report_rx: std::sync::Mutex<Option<ReportRx>>,
    /// Wakes the reporter for an immediate observation round (fault injection).
    observe_now: tokio::sync::Notify,
    /// Wakes the reporter for an immediate activity round (a toolbox command started or ended).
    activity_now: tokio::sync::Notify,
    snapshot_jobs: crate::snapshots::Snapshots,
    /// The latest backup of each sandbox (`POST /v1/sandboxes/{id}/backup`).
    backup_jobs: backups::Jobs,
    /// The volumes mounted on this host (`volumes`).
    volumes: crate::volumes::Mounts,
    /// The usage samples of the sandboxes (`metrics`).
    usage: crate::metrics::History,
}

fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

fn env_file(env: &BTreeMap<String, String>) -> String {
    env.iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect()
}

/// Creates the per-sandbox host dir (mode 0700, see `sandbox_dir`; the container's user gets it
/// once the container exists, `Reconciler::hand_over_dir`) with an (empty or filled) env file.
fn prepare_dir(dir: &Path, env: &BTreeMap<String, String>) -> Result<()> {
    crate::sandbox_dir::create(dir)?;
    let _ = std::fs::remove_file(dir.join(SOCKET_NAME));
    write_env(dir, env)
}

fn write_env(dir: &Path, env: &BTreeMap<String, String>) -> Result<()> {
    crate::sandbox_dir::write_file(dir, ENV_FILE, env_file(env).as_bytes())
}

/// Removes a directory tree the agent made, logging (not failing on) errors.
fn remove_dir_logged(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %dir.display(), error = %e, "cannot remove a directory"),
    }
}

/// Copies the toolbox binary to `<data-dir>/bin/cove-toolbox-<hash>` (content-addressed, so
/// running containers keep their inode and a restarted agent reuses the same file).
pub fn install_toolbox(cfg: &Config) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let bytes = std::fs::read(&cfg.toolbox_bin)
        .map_err(|e| AgentError::io(format!("reading {}", cfg.toolbox_bin.display()), e))?;
    let hash = hex::encode(&sha2::Sha256::digest(&bytes)[..8]);
    let dir = cfg.data_dir.join("bin");
    std::fs::create_dir_all(&dir).map_err(|e| AgentError::io("creating the bin dir", e))?;
    let dest = dir.join(format!("cove-toolbox-{hash}"));
    if !dest.is_file() {
        let tmp = dir.join(format!(".cove-toolbox-{hash}.{}", std::process::id()));
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)))
            .and_then(|()| std::fs::rename(&tmp, &dest))
            .map_err(|e| AgentError::io(format!("installing {}", dest.display()), e))?;
    }
    Ok(dest)
}

impl Reconciler {
    pub fn new(cfg: Config, runtime: Arc<dyn ContainerRuntime>, toolbox_bin: PathBuf) -> Arc<Self> {
        let pool = Pool::new(cfg.warm_pool.clone());
        let states = StateFiles::new(cfg.data_dir.join("state"));
        let (reports, rx) = tokio::sync::mpsc::channel(1024);
        let snapshot_jobs = crate::snapshots::Snapshots::new(
            &cfg.data_dir,
            cfg.snapshot_jobs.clone(),
            runtime.clone(),
        );
        let volumes = crate::volumes::Mounts::new(cfg.volumes.clone());
        let usage = crate::metrics::History::new(cfg.metrics);
        Arc::new(Self {
            volumes,
            usage,
            cfg,
            runtime,
            toolbox_bin,
            sandboxes: RwLock::default(),
            locks: std::sync::Mutex::default(),
            ops: apply::Ops::default(),
            pool,
            states,
            reports,
            report_rx: std::sync::Mutex::new(Some(rx)),
            observe_now: tokio::sync::Notify::new(),
            activity_now: tokio::sync::Notify::new(),
            snapshot_jobs,
            backup_jobs: backups::Jobs::default(),
        })
    }

    /// The snapshot jobs (`/v1/snapshots/*`).
    pub fn snapshot_jobs(&self) -> &crate::snapshots::Snapshots {
        &self.snapshot_jobs
    }

    /// `DELETE /v1/snapshots/{key}`: the job's image is kept while one of the agent's
    /// containers (sandbox or warm) uses it; configured images always stay.
    pub async fn delete_snapshot(&self, key: &str) -> Result<cove_runner_api::SnapshotRemoval> {
        let mut in_use: std::collections::BTreeSet<String> = self
            .sandboxes
            .read()
            .await
            .values()
            .filter_map(|r| r.spec.as_ref().map(|s| s.snapshot.clone()))
            .collect();
        let containers = self.runtime.list(RUNNER_LABEL, &self.cfg.runner_id).await?;
        in_use.extend(containers.into_iter().map(|c| c.image));
        let keep = self.cfg.snapshot_images().map(str::to_owned).collect();
        self.snapshot_jobs.remove(key, &in_use, &keep).await
    }

    /// Mounts every volume of `spec` (once per host: a mounted one is reused).
    async fn mount_volumes(&self, spec: &SandboxSpec) -> Result<()> {
        for v in &spec.volumes {
            self.volumes.ensure(&v.volume_id).await?;
        }
        Ok(())
    }

    /// Unmounts those of `candidates` no sandbox of this agent uses any more (placeholders of
    /// sandboxes being created count as users; asked under the mount lock).
    async fn release_unused_volumes(&self, candidates: Vec<String>) {
        self.volumes
            .release_unused(candidates, || self.volumes_in_use())
            .await;
    }

    async fn volumes_in_use(&self) -> std::collections::BTreeSet<String> {
        self.sandboxes
            .read()
            .await
            .values()
            .filter_map(|r| r.spec.as_ref())
            .flat_map(|s| s.volumes.iter().map(|v| v.volume_id.clone()))
            .collect()
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn runtime(&self) -> &dyn ContainerRuntime {
        self.runtime.as_ref()
    }

    /// The receiving end of the agent's state reports (taken once, by the reporter).
    pub fn take_reports(&self) -> Option<ReportRx> {
        self.report_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Queues a report for the control plane (dropped, with a warning, when the queue is full).
    fn queue_report(&self, id: &str, report: StateReport) {
        if let Err(e) = self.reports.try_send((id.to_owned(), report)) {
            tracing::warn!(sandbox = %id, error = %e, "state report dropped");
        }
    }

    /// Asks the reporter for an observation round now.
    pub fn observe_soon(&self) {
        self.observe_now.notify_one();
    }

    pub async fn observe_requested(&self) {
        self.observe_now.notified().await;
    }

    /// Asks the reporter to read the daemons' activity now (rounds coalesce: one pending wake).
    pub fn activity_soon(&self) {
        self.activity_now.notify_one();
    }

    pub async fn activity_requested(&self) {
        self.activity_now.notified().await;
    }

    fn sandboxes_dir(&self) -> PathBuf {
        self.cfg.data_dir.join(crate::sandbox_dir::SANDBOXES_DIR)
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut g = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        g.entry(id.to_owned()).or_default().clone()
    }

    /// Takes the per-sandbox lock, waiting at most `LOCK_WAIT`.
    async fn lock_sandbox(&self, id: &str) -> Result<tokio::sync::OwnedMutexGuard<()>> {
        tokio::time::timeout(LOCK_WAIT, self.lock_for(id).lock_owned())
            .await
            .map_err(|_| AgentError::Conflict {
                code: "SANDBOX_BUSY",
                message: format!("another operation on sandbox {id} is still running"),
            })
    }

    fn base_labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (RUNNER_LABEL.to_owned(), self.cfg.runner_id.clone()),
        ])
    }

    /// Removes a container, logging a failure (the caller goes on).
    async fn remove_container_logged(&self, container: &str, why: &'static str) {
        if let Err(e) = self.runtime.remove(container).await {
            tracing::warn!(container = %container, why, error = %crate::error::chain(&e), "cannot remove a container");
        }
    }

    /// Waits for the daemon after a start; returns its version.
    async fn wait_toolbox(&self, dir: &Path, container_id: &str) -> Result<Option<String>> {
        if !self.cfg.probe_toolbox {
            return Ok(None);
        }
        crate::toolbox::wait_ready(&dir.join(SOCKET_NAME), container_id, READY_TIMEOUT)
            .await
            .map(Some)
            .map_err(|source| AgentError::ToolboxUnavailable {
                id: container_id.to_owned(),
                source,
            })
    }

    /// Gives a new container's host dir to the container's user (uid from the image's
    /// `/etc/passwd` for a name; a runtime that cannot read files leaves the dir as it is). The
    /// simulated runner's daemons run as the agent: its dirs stay the agent's.
    async fn hand_over_dir(&self, cid: &str, user: &str, image_id: &str, dir: &Path) -> Result<()> {
        use crate::sandbox_dir::{cached_uid, remember_uid, uid_of};
        if !self.cfg.isolates() {
            return Ok(());
        }
        let uid = match uid_of(user, None).or_else(|| cached_uid(image_id, user)) {
            Some(uid) => uid,
            None => {
                let Some(passwd) = self.runtime.read_file(cid, "/etc/passwd").await? else {
                    return Ok(());
                };
                let uid =
                    uid_of(user, Some(&String::from_utf8_lossy(&passwd))).ok_or_else(|| {
                        AgentError::BadRequest(format!(
                            "user {user:?} is not in the image's /etc/passwd"
                        ))
                    })?;
                remember_uid(image_id, user, uid);
                uid
            }
        };
        crate::sandbox_dir::hand_over(dir, uid)
    }

    /// The in-memory view of one sandbox.
    async fn view(&self, id: &str) -> Result<SandboxStatus> {
        self.sandboxes
            .read()
            .await
            .get(id)
            .map(Record::status)
            .ok_or_else(|| AgentError::SandboxNotFound(id.to_owned()))
    }

    /// `GET /v1/sandboxes/{id}`: the view, refreshed from Docker unless an operation holds the
    /// sandbox (its view is then the current one).
    pub async fn status(&self, id: &str) -> Result<SandboxStatus> {
        validate_id(id)?;
        match self.lock_for(id).try_lock_owned() {
            Ok(_guard) => self.refresh(id).await,
            Err(_) => self.view(id).await,
        }
    }

    /// Re-reads the container state into the view (the per-sandbox lock is held).
    async fn refresh(&self, id: &str) -> Result<SandboxStatus> {
        let Some(mut rec) = self.sandboxes.read().await.get(id).cloned() else {
            return Err(AgentError::SandboxNotFound(id.to_owned()));
        };
        if !rec.has_container() {
            return Ok(rec.status());
        }
        match self.runtime.inspect(&rec.container_id).await? {
            Some(c) if c.running => {
                if matches!(rec.state, SandboxState::Stopped | SandboxState::Unknown) {
                    rec.state = SandboxState::Started;
                }
            }
            Some(_) => {
                if rec.state == SandboxState::Started {
                    rec.state = SandboxState::Stopped;
                }
            }
            None => {
                rec.state = SandboxState::Error;
                rec.error = Some("the container is gone".into());
            }
        }
        let status = rec.status();
        if let Some(r) = self.sandboxes.write().await.get_mut(id) {
            r.state = rec.state;
            r.error = rec.error;
        }
        Ok(status)
    }

    /// Re-reads one sandbox's container state unless an operation holds it; returns the state
    /// the agent believed before and the status now. `None` when busy or unknown.
    pub async fn observe(&self, id: &str) -> Option<(SandboxState, SandboxStatus)> {
        let _guard = self.lock_for(id).try_lock_owned().ok()?;
        let before = self.sandboxes.read().await.get(id)?.state;
        let now = self.refresh(id).await.ok()?;
        Some((before, now))
    }

    /// What the daemon of a started sandbox says it is doing (`None`: not started, no daemon to
    /// ask, or it did not answer).
    pub async fn activity(&self, id: &str) -> Option<crate::toolbox::DaemonActivity> {
        if !self.cfg.probe_toolbox {
            return None;
        }
        let (dir, container) = {
            let map = self.sandboxes.read().await;
            let r = map.get(id)?;
            if r.state != SandboxState::Started || !r.has_container() {
                return None;
            }
            (r.dir.clone(), r.container_id.clone())
        };
        crate::toolbox::activity(&dir.join(SOCKET_NAME), &container)
            .await
            .inspect_err(|e| tracing::debug!(sandbox = %id, error = %e, "activity not read"))
            .ok()
    }

    /// The daemons of the started sandboxes, for the usage sampler (none without daemons to
    /// ask: unit tests).
    pub async fn started_daemons(&self) -> Vec<crate::metrics::Daemon> {
        if !self.cfg.probe_toolbox {
            return Vec::new();
        }
        self.sandboxes
            .read()
            .await
            .values()
            .filter(|r| r.state == SandboxState::Started && r.has_container())
            .map(|r| crate::metrics::Daemon {
                sandbox_id: r.id.clone(),
                socket: r.dir.join(SOCKET_NAME),
                container_id: r.container_id.clone(),
            })
            .collect()
    }

    /// The usage samples of the sandboxes.
    pub fn usage_history(&self) -> &crate::metrics::History {
        &self.usage
    }

    /// `GET /v1/sandboxes/{id}/metrics`: the samples of `id` in `range` (404 for a sandbox the
    /// agent does not hold, 400 for a range that ends before it starts).
    pub async fn usage(
        &self,
        id: &str,
        range: cove_runner_api::MetricsQuery,
    ) -> Result<cove_runner_api::SandboxMetrics> {
        validate_id(id)?;
        if let (Some(from), Some(to)) = (range.from, range.to)
            && from > to
        {
            return Err(AgentError::BadRequest(
                "from must not be after to".to_owned(),
            ));
        }
        if !self.sandboxes.read().await.contains_key(id) {
            return Err(AgentError::SandboxNotFound(id.to_owned()));
        }
        Ok(self.usage.range(id, range))
    }

    /// Ids of the sandboxes the agent holds.
    pub async fn ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sandboxes.read().await.keys().cloned().collect();
        v.sort();
        v
    }

    pub async fn list(&self) -> Vec<SandboxStatus> {
        let mut v: Vec<_> = self
            .sandboxes
            .read()
            .await
            .values()
            .map(Record::status)
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// `DELETE /v1/sandboxes/{id}` (idempotent). An operation still applying a spec is
    /// cancelled. Backup images stay (archive); `DELETE /v1/backups/{id}` removes them.
    pub async fn destroy(&self, id: &str) -> Result<SandboxStatus> {
        validate_id(id)?;
        self.ops.cancel(id).await;
        let guard = self.lock_sandbox(id).await?;
        self.backup_jobs.forget(id);
        let rec = self.sandboxes.read().await.get(id).cloned();
        if let Some(rec) = rec.as_ref().filter(|r| r.has_container()) {
            self.runtime.remove(&rec.container_id).await?;
        }
        // Also a container of that name we may have left behind (a crash between create and
        // persist, a cancelled create or claim).
        self.runtime.remove(&format!("cove-sb-{id}")).await?;
        apply::forget_egress(id).await;
        if let Some(rec) = &rec
            && rec.dir.starts_with(self.sandboxes_dir())
        {
            remove_dir_logged(&rec.dir);
        }
        let link = self.sandboxes_dir().join(id);
        let _ = std::fs::remove_file(&link);
        remove_dir_logged(&link);
        self.states.remove(id);
        self.sandboxes.write().await.remove(id);
        self.usage.forget(id);
        if let Some(spec) = rec.as_ref().and_then(|r| r.spec.as_ref()) {
            let ids = spec.volumes.iter().map(|v| v.volume_id.clone()).collect();
            self.release_unused_volumes(ids).await;
        }
        drop(guard);
        {
            // Forget the lock unless an operation waits on it (a second mutex for the same
            // sandbox would let two operations run at once).
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            if locks.get(id).is_some_and(|l| Arc::strong_count(l) == 1) {
                locks.remove(id);
            }
        }
        // A backup this container used may be removable now.
        self.prune_backups().await;
        Ok(SandboxStatus::destroyed(id))
    }

    /// `POST /v1/fake/sandboxes/{id}/crash` (simulated runner only): the container dies; the
    /// reporter observes it at once.
    pub async fn crash(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let faults = self
            .runtime
            .faults()
            .ok_or_else(|| AgentError::BadRequest("not a simulated runner".into()))?;
        let cid = self
            .sandboxes
            .read()
            .await
            .get(id)
            .filter(|r| r.has_container())
            .map(|r| r.container_id.clone())
            .ok_or_else(|| AgentError::SandboxNotFound(id.to_owned()))?;
        faults.crash(&cid).await?;
        self.observe_soon();
        Ok(())
    }

    /// Where to forward toolbox calls of `id`.
    pub async fn toolbox_target(&self, id: &str) -> Result<Target> {
        let g = self.sandboxes.read().await;
        let rec = g
            .get(id)
            .ok_or_else(|| AgentError::SandboxNotFound(id.to_owned()))?;
        if rec.state != SandboxState::Started {
            return Err(AgentError::Conflict {
                code: "SANDBOX_NOT_STARTED",
                message: format!("Sandbox {id} is not running"),
            });
        }
        let mut env_overlay = rec.env_overlay.clone();
        if self.runtime.env_in_requests()
            && let Some(spec) = &rec.spec
        {
            env_overlay.extend(spec.env.clone());
        }
        Ok(Target {
            sandbox_id: id.to_owned(),
            socket: rec.dir.join(SOCKET_NAME),
            container_id: rec.container_id.clone(),
            env_overlay,
        })
    }

    /// Capacity metrics for heartbeats and `/v1/info`.
    pub async fn metrics(&self) -> RunnerMetrics {
        use spec::{DEFAULT_CPU, DEFAULT_DISK_GIB, DEFAULT_MEMORY_MIB};
        let g = self.sandboxes.read().await;
        let mut m = crate::heartbeat::host_metrics(&self.cfg.data_dir);
        for rec in g.values() {
            let r = rec
                .spec
                .as_ref()
                .map(|s| s.resources.clone())
                .unwrap_or_default();
            if rec.state == SandboxState::Started {
                m.current_started_sandboxes += 1;
                m.current_allocated_cpu += r.cpu.unwrap_or(DEFAULT_CPU);
                m.current_allocated_memory_gib +=
                    r.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB) as f64 / 1024.0;
            }
            m.current_allocated_disk_gib += r.disk_gib.unwrap_or(DEFAULT_DISK_GIB) as f64;
        }
        // Heartbeats and `/v1/info` replace it with the number of snapshots held.
        m.current_snapshot_count = self.pool.targets().len() as u32;
        m
    }

    /// Removes the unclaimed warm containers (clean shutdown), including one whose creation was
    /// cut short before it joined the pool.
    pub async fn drain_pool(&self) {
        for e in self.pool.drain() {
            self.remove_container_logged(&e.container_id, "draining the warm pool")
                .await;
            remove_dir_logged(&e.dir);
        }
        let containers = match self.runtime.list(RUNNER_LABEL, &self.cfg.runner_id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot list containers to drain the pool");
                return;
            }
        };
        for c in containers {
            let unclaimed = c.labels.get(labels::POOL).map(String::as_str) == Some("true")
                && !c.labels.contains_key(labels::SANDBOX_ID)
                && !c.name.starts_with("cove-sb-");
            if unclaimed {
                self.remove_container_logged(&c.id, "draining the warm pool")
                    .await;
                if let Some(dir) = c.run_dir.filter(|d| d.starts_with(self.sandboxes_dir())) {
                    remove_dir_logged(&dir);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
