//! Snapshot jobs (`/v1/snapshots/{key}`, see `cove_runner_api::snapshots`): pull an image (with
//! registry credentials) or build one from a Dockerfile and S3 build contexts, push it to the
//! internal registry, keep its log, remove it.
//!
//! - **Job table** by key: a `PUT` of the same key and spec joins the running job (credentials
//!   may differ: they are not part of the spec's shape); a finished job answers its outcome
//!   (an `error` stays until `DELETE`); a `ready` job whose image is gone runs again; a
//!   different spec for a running key is refused (409 `SNAPSHOT_BUSY`), for a finished one it
//!   replaces the job.
//! - **Deadlines**: a pull job gets `--snapshot-pull-timeout-secs` (15 min), a build
//!   `--snapshot-build-timeout-secs` (30 min); then it is `error` "... timed out after ...".
//! - **Logs**: the last MiB per job ([`log::JobLog`]), followed by any number of readers.
//! - **Images**: builds carry `cove.managed`, `cove.org.id` and `cove.snapshot` (so the
//!   heartbeat lists them); pulled images are listed through the job table, whose `ready`
//!   jobs are kept in `<data-dir>/snapshots/<key>.json` (credentials stripped) across restarts.
//! - **Tenants**: an internal ref `[registry/]cove-<org>/...` is only built, pulled or pushed
//!   for its own organization (403).

pub mod context;
mod job;
pub mod log;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cove_runner_api::client::Applied;
use cove_runner_api::snapshots::{internal_org_of, project_of};
use cove_runner_api::{
    RegistryAuth, SnapshotJobState, SnapshotRemoval, SnapshotSource, SnapshotSpec, SnapshotStatus,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{AgentError, Result};
use crate::runtime::ContainerRuntime;
use crate::runtime::images::ImageError;
use context::{ContextStore, S3Settings};
use log::JobLog;

/// Settings of snapshot jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSettings {
    pub s3: S3Settings,
    pub pull_timeout: Duration,
    pub build_timeout: Duration,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        Self {
            s3: S3Settings::default(),
            pull_timeout: Duration::from_secs(15 * 60),
            build_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// Largest Dockerfile accepted.
const MAX_DOCKERFILE: usize = 1 << 20;
/// Most build contexts of one build.
const MAX_CONTEXTS: usize = 256;

/// One job.
pub(crate) struct Job {
    key: String,
    spec: SnapshotSpec,
    status: watch::Sender<SnapshotStatus>,
    log: Arc<JobLog>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Job {
    fn new(key: &str, spec: SnapshotSpec, status: SnapshotStatus) -> Self {
        Self {
            key: key.to_owned(),
            spec,
            status: watch::channel(status).0,
            log: Arc::new(JobLog::default()),
            task: Mutex::new(None),
        }
    }

    fn current(&self) -> SnapshotStatus {
        self.status.borrow().clone()
    }

    fn abort(&self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }

    /// The local tags of the job's image: its ref and, for a pull, the pulled image.
    fn tags(&self) -> BTreeSet<String> {
        let mut tags = BTreeSet::new();
        if let Some(r) = self.current().r#ref {
            tags.insert(r);
        }
        match &self.spec.source {
            SnapshotSource::Pull { image, .. } => tags.insert(image.clone()),
            SnapshotSource::Build { r#ref, .. } => tags.insert(r#ref.clone()),
        };
        tags
    }
}

/// A `ready` job as kept on disk.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Persisted {
    spec: SnapshotSpec,
    status: SnapshotStatus,
}

/// The spec without credentials (what must match for a `PUT` to join a job; what is stored).
fn shape(spec: &SnapshotSpec) -> SnapshotSpec {
    let mut s = spec.clone();
    if let SnapshotSource::Pull { auth, .. } = &mut s.source {
        *auth = None;
    }
    if let Some(p) = &mut s.push {
        p.auth = None;
    }
    s
}

pub(crate) struct Shared {
    runtime: Arc<dyn ContainerRuntime>,
    contexts: ContextStore,
    dir: PathBuf,
    settings: SnapshotSettings,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

/// The snapshot jobs of the agent.
#[derive(Clone)]
pub struct Snapshots {
    shared: Arc<Shared>,
}

/// What to do with a `PUT` (decided under the table's lock).
enum Next {
    Join(Arc<Job>),
    /// A `ready` job: joined if its image is still there.
    Verify(Arc<Job>),
    Start,
}

impl Snapshots {
    /// The jobs kept under `<data_dir>/snapshots` (the `ready` ones of an earlier run are
    /// loaded).
    pub fn new(
        data_dir: &std::path::Path,
        settings: SnapshotSettings,
        runtime: Arc<dyn ContainerRuntime>,
    ) -> Self {
        let dir = data_dir.join("snapshots");
        let jobs = load(&dir);
        Self {
            shared: Arc::new(Shared {
                runtime,
                contexts: ContextStore::from_env(&settings.s3),
                dir,
                settings,
                jobs: Mutex::new(jobs),
            }),
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.shared.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn job(&self, key: &str) -> Result<Arc<Job>> {
        self.jobs()
            .get(key)
            .cloned()
            .ok_or_else(|| AgentError::SnapshotNotFound(key.to_owned()))
    }

    /// `PUT /v1/snapshots/{key}`: joins or starts the job, waits at most `wait` for its end.
    pub async fn put(
        &self,
        key: &str,
        spec: SnapshotSpec,
        wait: Duration,
    ) -> Result<Applied<SnapshotStatus>> {
        crate::reconciler::validate_id(key)?;
        validate(&spec)?;
        let job = self.job_for(key, spec).await?;
        let mut rx = job.status.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|s| s.state.is_final())).await;
        let st = rx.borrow().clone();
        Ok(if st.state.is_final() {
            Applied::Reached(st)
        } else {
            Applied::Pending(st)
        })
    }

    async fn job_for(&self, key: &str, spec: SnapshotSpec) -> Result<Arc<Job>> {
        let next = {
            let jobs = self.jobs();
            match jobs.get(key) {
                Some(job) => {
                    let st = job.status.borrow().state;
                    let same = shape(&job.spec) == shape(&spec);
                    match (same, st) {
                        (true, SnapshotJobState::Ready) => Next::Verify(job.clone()),
                        (true, _) => Next::Join(job.clone()),
                        (false, s) if !s.is_final() => {
                            return Err(AgentError::Conflict {
                                code: "SNAPSHOT_BUSY",
                                message: format!(
                                    "snapshot {key} is being made from another spec; delete it first"
                                ),
                            });
                        }
                        (false, _) => Next::Start,
                    }
                }
                None => Next::Start,
            }
        };
        match next {
            Next::Join(job) => Ok(job),
            Next::Verify(job) => {
                let present = match job.current().r#ref {
                    Some(r) => self.shared.runtime.image(&r).await?.is_some(),
                    None => false,
                };
                if present {
                    Ok(job)
                } else {
                    Ok(self.start(key, spec, Some(&job)))
                }
            }
            Next::Start => Ok(self.start(key, spec, None)),
        }
    }

    /// Starts a job for `key` unless another `PUT` did meanwhile (then joins that one).
    fn start(&self, key: &str, spec: SnapshotSpec, replacing: Option<&Arc<Job>>) -> Arc<Job> {
        let mut jobs = self.jobs();
        if let Some(cur) = jobs.get(key) {
            let replaced = replacing.is_some_and(|r| Arc::ptr_eq(r, cur));
            let stale = cur.status.borrow().state.is_final() && shape(&cur.spec) != shape(&spec);
            if !replaced && !stale {
                return cur.clone();
            }
        }
        let job = Arc::new(Job::new(
            key,
            spec,
            SnapshotStatus::new(key, SnapshotJobState::Pending),
        ));
        let task = tokio::spawn(job::run(self.shared.clone(), job.clone()));
        *job.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        tracing::info!(snapshot = %key, org = %job.spec.org_id, kind = job::kind(&job.spec), "snapshot job started");
        jobs.insert(key.to_owned(), job.clone());
        job
    }

    /// `GET /v1/snapshots/{key}`; a `ready` job whose image is gone is forgotten (404).
    pub async fn get(&self, key: &str) -> Result<SnapshotStatus> {
        crate::reconciler::validate_id(key)?;
        let job = self.job(key)?;
        let st = job.current();
        if st.state == SnapshotJobState::Ready
            && let Some(r) = &st.r#ref
            && self.shared.runtime.image(r).await?.is_none()
        {
            self.forget(key, &job);
            return Err(AgentError::SnapshotNotFound(key.to_owned()));
        }
        Ok(st)
    }

    /// The log of a job.
    pub fn log(&self, key: &str) -> Result<Arc<JobLog>> {
        crate::reconciler::validate_id(key)?;
        self.job(key).map(|j| j.log.clone())
    }

    fn forget(&self, key: &str, job: &Arc<Job>) {
        let mut jobs = self.jobs();
        if jobs.get(key).is_some_and(|cur| Arc::ptr_eq(cur, job)) {
            jobs.remove(key);
            job::unpersist(&self.shared.dir, key);
        }
    }

    /// `DELETE /v1/snapshots/{key}`: cancels the job and removes its image unless a container
    /// uses it (`in_use`: the images of the agent's containers) — then nothing is removed
    /// (`removed: false`). Tags that other jobs or `keep` (configured images) hold stay. An
    /// unknown key answers `removed: true` (the runner holds nothing under it).
    pub async fn remove(
        &self,
        key: &str,
        in_use: &BTreeSet<String>,
        keep: &BTreeSet<String>,
    ) -> Result<SnapshotRemoval> {
        crate::reconciler::validate_id(key)?;
        // Nothing held under this key: nothing left to remove.
        let Some(job) = self.jobs().get(key).cloned() else {
            return Ok(SnapshotRemoval { removed: true });
        };
        let tags = job.tags();
        if tags.iter().any(|t| in_use.contains(t)) {
            tracing::info!(snapshot = %key, "snapshot image in use by a container: not removed");
            return Ok(SnapshotRemoval { removed: false });
        }
        job.abort();
        self.forget(key, &job);
        let held: BTreeSet<String> = self.jobs().values().flat_map(|j| j.tags()).collect();
        let mut removed = true;
        for t in tags
            .iter()
            .filter(|t| !held.contains(*t) && !keep.contains(*t))
        {
            if self.shared.runtime.remove_image(t).await? == crate::runtime::ImageRemoval::InUse {
                removed = false;
            }
        }
        tracing::info!(snapshot = %key, removed, "snapshot removed");
        Ok(SnapshotRemoval { removed })
    }

    /// The refs of the `ready` jobs (advertised in heartbeats when present).
    pub fn ready_refs(&self) -> BTreeSet<String> {
        self.jobs()
            .values()
            .filter_map(|j| {
                let st = j.status.borrow();
                (st.state == SnapshotJobState::Ready)
                    .then(|| st.r#ref.clone())
                    .flatten()
            })
            .collect()
    }

    /// Pulls a sandbox's missing image with its `imageAuth` (bounded by the pull deadline).
    pub async fn pull_for_sandbox(&self, image: &str, auth: &RegistryAuth) -> Result<()> {
        let engine = self
            .shared
            .runtime
            .image_engine()
            .ok_or_else(|| AgentError::SnapshotNotFound(image.to_owned()))?;
        let log = JobLog::default();
        let after = self.shared.settings.pull_timeout;
        tracing::info!(image = %crate::error::printable(image), registry = %auth.server, "pulling a sandbox image");
        match tokio::time::timeout(after, engine.pull(image, Some(auth), &log)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(ImageError::Build(m) | ImageError::Failed(m))) => {
                Err(AgentError::PullFailed(format!("pulling {image}: {m}")))
            }
            Err(_) => Err(AgentError::PullFailed(format!(
                "pulling {image} timed out after {}",
                job::human(after)
            ))),
        }
    }
}

/// Loads the `ready` jobs kept by an earlier run.
fn load(dir: &std::path::Path) -> HashMap<String, Arc<Job>> {
    let mut jobs = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return jobs;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Some(key) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let parsed = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Persisted>(&b).ok());
        match parsed {
            Some(p) if p.status.state == SnapshotJobState::Ready => {
                let job = Job::new(key, p.spec, p.status);
                job.log.append("(ready before the agent restarted)");
                job.log.close();
                jobs.insert(key.to_owned(), Arc::new(job));
            }
            _ => {
                tracing::warn!(path = %path.display(), "ignoring an unreadable snapshot state file")
            }
        }
    }
    jobs
}

fn bad(msg: impl Into<String>) -> AgentError {
    AgentError::BadRequest(msg.into())
}

fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn image_ref_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 512 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An internal ref of another organization.
fn foreign(reference: &str, org: &str) -> bool {
    internal_org_of(reference).is_some_and(|o| o != org)
}

fn validate(spec: &SnapshotSpec) -> Result<()> {
    let org = spec.org_id.as_str();
    if !plain_name(org) {
        return Err(bad("orgId must be 1-128 of [A-Za-z0-9_-]"));
    }
    match &spec.source {
        SnapshotSource::Pull { image, .. } => {
            if !image_ref_ok(image) {
                return Err(bad("invalid image reference"));
            }
            if foreign(image, org) {
                return Err(AgentError::Forbidden(format!(
                    "{image} belongs to another organization"
                )));
            }
        }
        SnapshotSource::Build {
            dockerfile,
            context_hashes,
            r#ref,
        } => {
            if dockerfile.trim().is_empty() || dockerfile.len() > MAX_DOCKERFILE {
                return Err(bad("dockerfile must be non-empty and at most 1 MiB"));
            }
            if context_hashes.len() > MAX_CONTEXTS || !context_hashes.iter().all(|h| plain_name(h))
            {
                return Err(bad(
                    "contextHashes must be at most 256 of [A-Za-z0-9_-]{1,128}",
                ));
            }
            if !image_ref_ok(r#ref) {
                return Err(bad("invalid ref"));
            }
            if foreign(r#ref, org) {
                return Err(AgentError::Forbidden(format!(
                    "{ref} belongs to another organization",
                    ref = r#ref
                )));
            }
        }
    }
    if let Some(p) = &spec.push {
        if p.registry.is_empty() || p.registry.contains('/') || !image_ref_ok(&p.registry) {
            return Err(bad("push.registry must be host[:port]"));
        }
        if p.project != project_of(org) {
            return Err(AgentError::Forbidden(format!(
                "push.project must be {} for organization {org}",
                project_of(org)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
