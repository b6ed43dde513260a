//! `PUT /v1/sandboxes/{id}`: bounded and resumable.
//!
//! Each accepted generation runs as one background operation per sandbox (under the
//! per-sandbox lock). The `PUT` waits for it at most its `wait`; a `PUT` of the generation being
//! applied joins the same operation. When nobody waits any more (the `PUT` answered 202), the
//! operation's outcome goes to the control plane as a [`StateReport`] (cause `applied`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cove_runner_api::{
    DesiredState, NetworkPolicy, ReportCause, SandboxSpec, SandboxState, SandboxStatus,
    StateReport, labels,
};
use tokio::sync::watch;

use super::spec::{
    self, DEFAULT_CPU, DEFAULT_DISK_GIB, DEFAULT_MEMORY_MIB, DEFAULT_PIDS, DEFAULT_STOP_SECS,
    HostSide,
};
use super::{Reconciler, Record, prepare_dir, remove_dir_logged, write_env};
use crate::error::{AgentError, Result};
use crate::pool::PoolEntry;
use crate::runtime::{ContainerSpec, ImageInfo, RuntimeError};
use crate::toolbox::SOCKET_NAME;

type Outcome = std::result::Result<SandboxStatus, Arc<AgentError>>;

/// The answer of a bounded `PUT`.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The desired state was reached (200).
    Reached(SandboxStatus),
    /// Still converging (202): the outcome will be reported.
    Pending(SandboxStatus),
}

impl Applied {
    pub fn into_status(self) -> SandboxStatus {
        match self {
            Self::Reached(s) | Self::Pending(s) => s,
        }
    }
}

/// One operation in flight.
struct Op {
    generation: u64,
    spec: SandboxSpec,
    outcome: watch::Receiver<Option<Outcome>>,
    /// Set once a waiter gave up: the outcome must then be reported.
    detached: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

/// The operations in flight, by sandbox id.
#[derive(Default)]
pub(super) struct Ops {
    map: tokio::sync::Mutex<HashMap<String, Op>>,
}

impl Ops {
    /// Cancels the operation of `id`, if any (`DELETE`); its waiters get 409.
    pub(super) async fn cancel(&self, id: &str) {
        if let Some(op) = self.map.lock().await.remove(id) {
            tracing::info!(sandbox = %id, generation = op.generation, "operation cancelled by a delete");
            op.task.abort();
        }
    }
}

/// Sets `flag` when dropped while armed.
struct Detach<'a> {
    flag: &'a AtomicBool,
    armed: bool,
}

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

enum Begin {
    Done(SandboxStatus),
    Wait(watch::Receiver<Option<Outcome>>, Arc<AtomicBool>),
}

fn stale(given: u64, have: u64) -> AgentError {
    AgentError::Conflict {
        code: "STALE_GENERATION",
        message: format!("generation {given} is older than the applied generation {have}"),
    }
}

/// Refuses an older generation and a change of an immutable field.
fn check_newer(have: u64, old: &SandboxSpec, new: &SandboxSpec) -> Result<()> {
    if new.generation < have {
        return Err(stale(new.generation, have));
    }
    if !old.same_shape(new) {
        return Err(AgentError::Conflict {
            code: "IMMUTABLE_FIELD",
            message: "only desiredState and stopTimeoutSecs may change; destroy and re-create the sandbox".into(),
        });
    }
    Ok(())
}

fn transitional(desired: DesiredState, now: SandboxState) -> SandboxState {
    match (desired, now) {
        (DesiredState::Started, SandboxState::Started) => SandboxState::Started,
        (DesiredState::Started, _) => SandboxState::Starting,
        (DesiredState::Stopped, SandboxState::Stopped) => SandboxState::Stopped,
        (DesiredState::Stopped, _) => SandboxState::Stopping,
    }
}

fn cancelled(id: &str) -> AgentError {
    AgentError::Conflict {
        code: "SANDBOX_DESTROYED",
        message: format!("sandbox {id} was destroyed while its spec was being applied"),
    }
}

impl Reconciler {
    /// `PUT /v1/sandboxes/{id}` with the default wait; the reached or current status.
    pub async fn apply(self: &Arc<Self>, id: &str, spec: SandboxSpec) -> Result<SandboxStatus> {
        let wait = Duration::from_secs(u64::from(cove_runner_api::DEFAULT_WAIT_SECS));
        self.apply_bounded(id, spec, wait)
            .await
            .map(Applied::into_status)
    }

    /// `PUT /v1/sandboxes/{id}`: waits at most `wait` for the desired state.
    pub async fn apply_bounded(
        self: &Arc<Self>,
        id: &str,
        spec: SandboxSpec,
        wait: Duration,
    ) -> Result<Applied> {
        spec::validate_id(id)?;
        spec::validate_spec(&spec)?;
        match self.begin(id, spec).await? {
            Begin::Done(status) => Ok(Applied::Reached(status)),
            Begin::Wait(rx, detached) => self.wait_outcome(id, rx, &detached, wait).await,
        }
    }

    /// Joins, refuses, answers at once or starts the operation of a spec.
    async fn begin(self: &Arc<Self>, id: &str, spec: SandboxSpec) -> Result<Begin> {
        let mut ops = self.ops.map.lock().await;
        // An operation whose task ended without clearing its entry (it panicked) is gone.
        if ops.get(id).is_some_and(|op| op.task.is_finished()) {
            ops.remove(id);
        }
        if let Some(op) = ops.get(id) {
            if op.generation == spec.generation {
                return Ok(Begin::Wait(op.outcome.clone(), op.detached.clone()));
            }
            check_newer(op.generation, &op.spec, &spec)?;
        } else if let Some(rec) = self.sandboxes.read().await.get(id)
            && let Some(old) = &rec.spec
        {
            // The same generation again is a no-op, except after a failure: then it retries.
            if spec.generation == rec.generation && rec.state != SandboxState::Error {
                return Ok(Begin::Done(rec.status()));
            }
            check_newer(rec.generation, old, &spec)?;
        }
        self.mark_pending(id, &spec).await;
        let (tx, rx) = watch::channel(None);
        let detached = Arc::new(AtomicBool::new(false));
        let (generation, kept) = (spec.generation, spec.clone());
        let task = tokio::spawn(
            self.clone()
                .run_op(id.to_owned(), spec, tx, detached.clone()),
        );
        let op = Op {
            generation,
            spec: kept,
            outcome: rx.clone(),
            detached: detached.clone(),
            task: task.abort_handle(),
        };
        ops.insert(id.to_owned(), op);
        Ok(Begin::Wait(rx, detached))
    }

    /// Shows the transition at once (a placeholder for a sandbox not created yet).
    async fn mark_pending(&self, id: &str, spec: &SandboxSpec) {
        let mut g = self.sandboxes.write().await;
        match g.get_mut(id) {
            Some(rec) => {
                rec.state = transitional(spec.desired_state, rec.state);
                rec.generation = spec.generation;
                rec.spec = Some(spec.clone());
                rec.error = None;
            }
            None => {
                let rec = Record {
                    id: id.to_owned(),
                    container_id: String::new(),
                    dir: self.sandboxes_dir().join(id),
                    spec: Some(spec.clone()),
                    generation: spec.generation,
                    warm: false,
                    org_id: spec.org_id.clone(),
                    env_overlay: BTreeMap::new(),
                    state: SandboxState::Creating,
                    error: None,
                    daemon_version: None,
                };
                g.insert(id.to_owned(), rec);
            }
        }
    }

    async fn wait_outcome(
        &self,
        id: &str,
        mut rx: watch::Receiver<Option<Outcome>>,
        detached: &AtomicBool,
        wait: Duration,
    ) -> Result<Applied> {
        // A waiter that goes away (timeout, client gone, request deadline) leaves the outcome to
        // a state report.
        let mut guard = Detach {
            flag: detached,
            armed: true,
        };
        let done = tokio::time::timeout(wait, rx.wait_for(Option::is_some))
            .await
            .map(|r| r.map(|v| v.clone()));
        let outcome = match done {
            Ok(Ok(v)) => v,
            Ok(Err(_)) => return Err(cancelled(id)),
            Err(_) => {
                // Give up waiting, then look once more: either this waiter sees the outcome
                // or the operation sees `detached` and reports it.
                detached.store(true, Ordering::SeqCst);
                let now = rx.borrow().clone();
                match now {
                    Some(o) => Some(o),
                    None => return self.view(id).await.map(Applied::Pending),
                }
            }
        };
        guard.armed = false;
        match outcome {
            Some(Ok(status)) => Ok(Applied::Reached(status)),
            Some(Err(e)) => Err(AgentError::Shared(e)),
            None => Err(cancelled(id)),
        }
    }

    /// The background operation of one generation.
    async fn run_op(
        self: Arc<Self>,
        id: String,
        spec: SandboxSpec,
        tx: watch::Sender<Option<Outcome>>,
        detached: Arc<AtomicBool>,
    ) {
        let (generation, desired) = (spec.generation, spec.desired_state);
        let outcome = self.apply_locked(&id, spec).await.map_err(Arc::new);
        {
            let mut ops = self.ops.map.lock().await;
            if ops.get(&id).is_some_and(|o| o.generation == generation) {
                ops.remove(&id);
            }
        }
        tx.send_replace(Some(outcome.clone()));
        if detached.load(Ordering::SeqCst) {
            let report = match &outcome {
                Ok(status) => StateReport::of(status, ReportCause::Applied),
                Err(e) => StateReport {
                    state: SandboxState::Error,
                    error_reason: Some(e.external_message()),
                    recoverable: Some(false),
                    generation: Some(generation),
                    desired_state: Some(desired),
                    cause: Some(ReportCause::Applied),
                    busy: None,
                    last_busy_at: None,
                },
            };
            self.queue_report(&id, report);
        }
    }

    /// Applies one spec under the per-sandbox lock.
    async fn apply_locked(&self, id: &str, spec: SandboxSpec) -> Result<SandboxStatus> {
        let _guard = self.lock_sandbox(id).await?;
        let existing = self
            .sandboxes
            .read()
            .await
            .get(id)
            .cloned()
            .filter(Record::has_container);
        let generation = spec.generation;
        let mut rec = match existing {
            Some(mut rec) => {
                rec.generation = spec.generation;
                rec.spec = Some(spec);
                rec
            }
            None => match self.create(id, &spec).await {
                Ok(rec) => rec,
                Err(e) => {
                    self.drop_placeholder(id, generation).await;
                    // Nothing a failed create mounted stays mounted.
                    let ids = spec.volumes.iter().map(|v| v.volume_id.clone()).collect();
                    self.release_unused_volumes(ids).await;
                    return Err(e);
                }
            },
        };
        let result = self.converge(&mut rec).await;
        if let Err(e) = &result {
            rec.state = SandboxState::Error;
            rec.error = Some(e.external_message());
            tracing::warn!(sandbox = %id, generation, error = %crate::error::chain(e), "applying a spec failed");
        }
        self.states.save(&rec)?;
        let status = rec.status();
        self.sandboxes.write().await.insert(id.to_owned(), rec);
        result.map(|()| status)
    }

    async fn drop_placeholder(&self, id: &str, generation: u64) {
        let mut g = self.sandboxes.write().await;
        if g.get(id)
            .is_some_and(|r| !r.has_container() && r.generation == generation)
        {
            g.remove(id);
        }
    }

    /// Makes the transitional state visible to `GET` while the operation goes on.
    async fn publish(&self, rec: &Record) {
        self.sandboxes
            .write()
            .await
            .insert(rec.id.clone(), rec.clone());
    }

    pub(super) async fn image(&self, snapshot: &str) -> Result<ImageInfo> {
        self.runtime
            .image(snapshot)
            .await?
            .ok_or_else(|| AgentError::SnapshotNotFound(snapshot.to_owned()))
    }

    /// The sandbox's image, pulled first with the spec's `imageAuth` when it is missing.
    async fn image_pulled(&self, spec: &SandboxSpec) -> Result<ImageInfo> {
        if let Some(auth) = &spec.image_auth
            && self.runtime.image(&spec.snapshot).await?.is_none()
        {
            self.snapshot_jobs
                .pull_for_sandbox(&spec.snapshot, auth)
                .await?;
        }
        self.image(&spec.snapshot).await
    }

    fn host_side<'a>(&'a self, run_dir: &'a std::path::Path) -> HostSide<'a> {
        HostSide {
            toolbox_bin: &self.toolbox_bin,
            volumes_dir: &self.cfg.volumes_dir,
            run_dir,
            network: self
                .cfg
                .isolates()
                .then_some(self.cfg.network.name.as_str()),
        }
    }

    /// Creates and starts one warm container of `image`.
    pub async fn create_pool_member(&self, image: &str) -> Result<PoolEntry> {
        let info = self.image(image).await?;
        let slot = format!("pool-{}", uuid::Uuid::new_v4().simple());
        let dir = self.sandboxes_dir().join(&slot);
        prepare_dir(&dir, &BTreeMap::new())?;
        let mut labels = self.base_labels();
        labels.insert(labels::POOL.into(), "true".into());
        labels.insert(labels::SNAPSHOT.into(), image.into());
        let name = format!("cove-pool-{}-{}", self.cfg.runner_id, &slot[5..17]);
        let spec = SandboxSpec::new(image);
        let cspec = spec::container_spec(&self.host_side(&dir), name, &spec, &info, labels);
        let cid = self.runtime.create(&cspec).await?;
        let started = async {
            self.hand_over_dir(&cid, &cspec.user, &info.id, &dir)
                .await?;
            self.runtime.start(&cid).await?;
            self.wait_toolbox(&dir, &cid).await
        }
        .await;
        match started {
            Ok(version) => Ok(PoolEntry {
                container_id: cid,
                dir,
                daemon_version: version,
            }),
            Err(e) => {
                self.remove_container_logged(&cid, "a warm container failed to start")
                    .await;
                remove_dir_logged(&dir);
                Err(e)
            }
        }
    }

    /// Whether a warm container (made with the snapshot's default spec) can serve `spec`. Values
    /// spelled out but equal to the defaults count as defaults: the control plane always sends
    /// the sandbox's user and resources.
    async fn warm_eligible(&self, spec: &SandboxSpec) -> bool {
        let r = &spec.resources;
        let default_resources = r.cpu.is_none_or(|c| (c - DEFAULT_CPU).abs() < f64::EPSILON)
            && r.memory_mib.is_none_or(|m| m == DEFAULT_MEMORY_MIB)
            && r.disk_gib.is_none_or(|d| d == DEFAULT_DISK_GIB)
            && r.pids.is_none_or(|p| p == DEFAULT_PIDS);
        let shape = spec.allow_warm_pool != Some(false)
            && spec.desired_state == DesiredState::Started
            && default_resources
            && spec.volumes.is_empty()
            && spec.network == NetworkPolicy::Allow
            && spec.stop_timeout_secs.is_none()
            && self.pool.is_pooled(&spec.snapshot);
        if !shape {
            return false;
        }
        match &spec.os_user {
            None => true,
            // Pool members run as the image's user, else `daytona` (see `container_spec`).
            Some(user) => match self.image(&spec.snapshot).await {
                Ok(image) => image.user.as_deref().unwrap_or("daytona") == user,
                Err(_) => false,
            },
        }
    }

    /// Makes a new sandbox: a warm container when one matches, else a fresh one (not started).
    async fn create(&self, id: &str, spec: &SandboxSpec) -> Result<Record> {
        if self.warm_eligible(spec).await
            && let Some(entry) = self.pool.take(&spec.snapshot)
        {
            match self.claim(id, spec, &entry).await {
                Ok(rec) => return Ok(rec),
                Err(e) => {
                    tracing::warn!(sandbox = %id, error = %crate::error::chain(&e), "claiming a warm container failed; creating a fresh one");
                    self.remove_container_logged(&entry.container_id, "a failed warm claim")
                        .await;
                    remove_dir_logged(&entry.dir);
                }
            }
        }
        let image = self.image_pulled(spec).await?;
        self.check_restore(id, spec, &image)?;
        self.mount_volumes(spec).await?;
        let dir = self.sandboxes_dir().join(id);
        prepare_dir(&dir, &BTreeMap::new())?;
        let name = format!("cove-sb-{id}");
        let cspec = spec::container_spec(
            &self.host_side(&dir),
            name.clone(),
            spec,
            &image,
            self.sandbox_labels(id, spec),
        );
        let container_id = self.create_container(&name, &cspec).await?;
        if let Err(e) = self
            .hand_over_dir(&container_id, &cspec.user, &image.id, &dir)
            .await
        {
            self.remove_container_logged(&container_id, "its directory could not be handed over")
                .await;
            remove_dir_logged(&dir);
            return Err(e);
        }
        Ok(Record {
            id: id.to_owned(),
            container_id,
            dir,
            spec: Some(spec.clone()),
            generation: spec.generation,
            warm: false,
            org_id: spec.org_id.clone(),
            env_overlay: BTreeMap::new(),
            state: SandboxState::Creating,
            error: None,
            daemon_version: None,
        })
    }

    fn sandbox_labels(&self, id: &str, spec: &SandboxSpec) -> HashMap<String, String> {
        let mut labels = self.base_labels();
        labels.insert(labels::SANDBOX_ID.into(), id.into());
        labels.insert(labels::SNAPSHOT.into(), spec.snapshot.clone());
        if let Some(org) = &spec.org_id {
            labels.insert(labels::ORG_ID.into(), org.clone());
        }
        for (k, v) in &spec.labels {
            labels.insert(format!("{}{k}", labels::USER_PREFIX), v.clone());
        }
        labels
    }

    async fn create_container(&self, name: &str, cspec: &ContainerSpec) -> Result<String> {
        match self.runtime.create(cspec).await {
            Ok(cid) => Ok(cid),
            Err(RuntimeError::Conflict(_)) => {
                // A leftover with our name (e.g. a crash between create and persist): replace it.
                self.runtime.remove(name).await?;
                Ok(self.runtime.create(cspec).await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn claim(&self, id: &str, spec: &SandboxSpec, entry: &PoolEntry) -> Result<Record> {
        self.runtime
            .rename(&entry.container_id, &format!("cove-sb-{id}"))
            .await?;
        let link = self.sandboxes_dir().join(id);
        let _ = std::fs::remove_file(&link);
        if let Some(slot) = entry.dir.file_name()
            && let Err(e) = std::os::unix::fs::symlink(slot, &link)
        {
            tracing::warn!(sandbox = %id, error = %e, "cannot link the sandbox directory");
        }
        if !spec.env.is_empty() {
            write_env(&entry.dir, &spec.env)?;
        }
        Ok(Record {
            id: id.to_owned(),
            container_id: entry.container_id.clone(),
            dir: entry.dir.clone(),
            spec: Some(spec.clone()),
            generation: spec.generation,
            warm: true,
            org_id: spec.org_id.clone(),
            env_overlay: spec.env.clone(),
            state: SandboxState::Started,
            error: None,
            daemon_version: entry.daemon_version.clone(),
        })
    }

    /// Moves the container toward the spec's desired state.
    async fn converge(&self, rec: &mut Record) -> Result<()> {
        let Some(spec) = rec.spec.clone() else {
            return Ok(());
        };
        let Some(running) = self
            .runtime
            .inspect(&rec.container_id)
            .await?
            .map(|c| c.running)
        else {
            rec.state = SandboxState::Error;
            rec.error = Some("the container is gone".into());
            return Err(AgentError::Conflict {
                code: "CONTAINER_GONE",
                message: format!(
                    "the container of sandbox {} no longer exists; destroy it",
                    rec.id
                ),
            });
        };
        match spec.desired_state {
            DesiredState::Started => self.converge_started(rec, running).await?,
            DesiredState::Stopped => {
                if running {
                    rec.state = SandboxState::Stopping;
                    self.publish(rec).await;
                    let t = spec.stop_timeout_secs.unwrap_or(DEFAULT_STOP_SECS);
                    self.runtime.stop(&rec.container_id, t).await?;
                }
                forget_egress(&rec.id).await;
                rec.state = SandboxState::Stopped;
            }
        }
        rec.error = None;
        Ok(())
    }

    async fn converge_started(&self, rec: &mut Record, running: bool) -> Result<()> {
        if !running {
            rec.state = SandboxState::Starting;
            self.publish(rec).await;
            let _ = std::fs::remove_file(rec.dir.join(SOCKET_NAME));
            self.runtime.start(&rec.container_id).await?;
        }
        self.enforce_egress(rec).await?;
        if !running || rec.daemon_version.is_none() {
            rec.daemon_version = self.wait_toolbox(&rec.dir, &rec.container_id).await?;
        }
        rec.state = SandboxState::Started;
        Ok(())
    }

    /// Applies the spec's egress policy to the running container (`network::egress`). A policy
    /// that cannot be applied stops the sandbox: it is never left running unrestricted.
    pub(super) async fn enforce_egress(&self, rec: &Record) -> Result<()> {
        let policy = rec
            .spec
            .as_ref()
            .map(|s| s.egress.clone())
            .unwrap_or_default();
        let Err(e) = crate::network::egress::set(&rec.id, &rec.container_id, &policy).await else {
            return Ok(());
        };
        tracing::error!(sandbox = %rec.id, error = %e, "the egress policy cannot be applied; stopping the sandbox");
        forget_egress(&rec.id).await;
        self.runtime.stop(&rec.container_id, 0).await?;
        Err(AgentError::Conflict {
            code: "EGRESS_POLICY",
            message: format!("the egress policy cannot be applied: {e}"),
        })
    }
}

/// Drops a sandbox's egress policy (stopped or destroyed: its address may go to another one).
pub(super) async fn forget_egress(id: &str) {
    if let Err(e) = crate::network::egress::forget(id).await {
        tracing::error!(sandbox = %id, error = %e, "removing the egress policy failed");
    }
}
