//! Backup images and the snapshot list.
//!
//! - A backup is `docker commit` to `cove-backup/<128-bit random hex>:<unix ms>`: the agent
//!   picks the name, so it cannot be guessed from the sandbox id or the time. The image carries
//!   `cove.backup.sandbox`, `cove.backup.org`, `cove.backup.created` and `cove.runner`, and the
//!   image's own command (not the toolbox wrapper), so a restore runs exactly one daemon.
//! - Superseded backups (older than the newest of the same sandbox) are removed; one still used
//!   by a container stays until that container is gone (every destroy prunes again).
//! - `DELETE /v1/backups/{sandboxId}` leaves a tombstone `<data-dir>/backups-deleted/<id>` and
//!   removes every backup of the sandbox (the in-use ones on a later prune).
//! - A sandbox is never created from a backup of another sandbox or organization.
//! - Heartbeats advertise only snapshots: the configured images, images labelled
//!   `cove.snapshot` (builds) and the refs of `ready` snapshot jobs (pulls), never backups nor
//!   other local tags.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use cove_runner_api::snapshots::project_of;
use cove_runner_api::{
    BACKUP_REPO, BackupRemoval, BackupRequest, BackupResponse, PushTarget, SandboxSpec, labels,
};
use tokio::sync::watch;

use super::{Reconciler, spec};
use crate::error::{AgentError, Result};
use crate::runtime::images::LogSink;
use crate::runtime::{CommitOptions, ImageInfo, ImageRemoval, ImageSummary};

/// What a backup came to (shared by every request that waited for it).
type JobResult = Option<std::result::Result<BackupResponse, Arc<AgentError>>>;

/// One backup run by the agent, named by its request's key.
struct Job {
    key: String,
    rx: watch::Receiver<JobResult>,
}

/// The latest backup job of each sandbox: in flight, or done (its result answers a retry with
/// the same key). Forgotten when the sandbox is destroyed.
#[derive(Default)]
pub(super) struct Jobs(std::sync::Mutex<HashMap<String, Job>>);

impl Jobs {
    pub(super) fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// Where the backup `tag` of sandbox `id` is pushed.
fn pushed_ref(target: &PushTarget, id: &str, tag: &str) -> String {
    format!("{}/{}/backup-{id}:{tag}", target.registry, target.project)
}

/// Push progress goes to the agent's debug log (a backup has no job log of its own).
struct TraceLog<'a>(&'a str);

impl LogSink for TraceLog<'_> {
    fn line(&self, line: &str) {
        tracing::debug!(sandbox = %self.0, "{line}");
    }
}

/// A registry host (`host[:port]`) or project (`cove-<org>`) the agent pushes to.
fn valid_name(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c) || extra.contains(&c)
        })
}

/// One backup image of this runner.
#[derive(Debug, Clone)]
struct Backup {
    tag: String,
    sandbox: String,
    created: u64,
}

/// Unix milliseconds, strictly increasing within the process (orders two backups of the same
/// millisecond).
fn now_ms() -> u64 {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let prev = LAST
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |last| Some(now.max(last + 1)),
        )
        .unwrap_or(now);
    now.max(prev + 1)
}

/// `cove-backup/<32 hex>` from 128 random bits.
fn backup_repo() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| {
        AgentError::io(
            "drawing a backup name",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(format!("{BACKUP_REPO}/{}", hex::encode(b)))
}

fn forbidden(snapshot: &str) -> AgentError {
    AgentError::Forbidden(format!(
        "snapshot {snapshot} is a backup of another sandbox"
    ))
}

impl Reconciler {
    fn tombstones(&self) -> PathBuf {
        self.cfg.data_dir.join("backups-deleted")
    }

    /// `POST /v1/sandboxes/{id}/backup`: joins the backup of the same non-empty key (in flight,
    /// or done without an error) or starts one, which runs to its end even when this request
    /// goes away.
    pub async fn backup_job(
        self: &Arc<Self>,
        id: &str,
        req: BackupRequest,
    ) -> Result<BackupResponse> {
        spec::validate_id(id)?;
        if let Some(p) = &req.push
            && !(valid_name(&p.registry, &[':']) && valid_name(&p.project, &[]))
        {
            return Err(AgentError::BadRequest(
                "push: registry must be host[:port] and project a lowercase name".into(),
            ));
        }
        let mut rx = {
            let mut jobs = self.backup_jobs.0.lock().unwrap_or_else(|p| p.into_inner());
            let joinable = jobs.get(id).filter(|j| {
                !req.key.is_empty() && j.key == req.key && !matches!(&*j.rx.borrow(), Some(Err(_)))
            });
            match joinable {
                Some(j) => j.rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    jobs.insert(
                        id.to_owned(),
                        Job {
                            key: req.key.clone(),
                            rx: rx.clone(),
                        },
                    );
                    let (me, id) = (Arc::clone(self), id.to_owned());
                    tokio::spawn(async move {
                        let r = me.backup(&id, req.push.as_ref()).await.map_err(Arc::new);
                        tx.send_replace(Some(r));
                    });
                    rx
                }
            }
        };
        let cancelled = || AgentError::Conflict {
            code: "BACKUP_CANCELLED",
            message: format!("the backup of sandbox {id} was cancelled"),
        };
        let done = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| cancelled())?
            .clone();
        match done {
            Some(Ok(b)) => Ok(b),
            Some(Err(e)) => Err(AgentError::Shared(e)),
            None => Err(cancelled()),
        }
    }

    /// Commits the sandbox (under its lock) and pushes the backup when asked to.
    pub async fn backup(&self, id: &str, push: Option<&PushTarget>) -> Result<BackupResponse> {
        spec::validate_id(id)?;
        let _guard = self.lock_sandbox(id).await?;
        let rec = self
            .sandboxes
            .read()
            .await
            .get(id)
            .cloned()
            .filter(super::Record::has_container)
            .ok_or_else(|| AgentError::SandboxNotFound(id.to_owned()))?;
        if let Some(target) = push
            && rec
                .org_id
                .as_deref()
                .is_none_or(|o| project_of(o) != target.project)
        {
            return Err(AgentError::Forbidden(format!(
                "backups of sandbox {id} go to its organization's project, not {}",
                target.project
            )));
        }
        let created = now_ms();
        let repo = backup_repo()?;
        let tag = created.to_string();
        let opts = self
            .commit_options(id, rec.org_id.as_deref(), rec.spec.as_ref(), created)
            .await;
        let image_id = self
            .runtime
            .commit(&rec.container_id, &repo, &tag, &opts)
            .await?;
        let mut image = format!("{repo}:{tag}");
        tracing::info!(sandbox = %id, image = %image, "backup created");
        if let Some(target) = push {
            match self.push_backup(id, &image, &tag, target).await {
                Ok(pushed) => image = pushed,
                Err(e) => {
                    // Not a backup: gone again (both tags), so that it supersedes nothing.
                    for t in [pushed_ref(target, id, &tag), image] {
                        let _ = self.runtime.remove_image(&t).await;
                    }
                    return Err(e);
                }
            }
        }
        self.prune_backups().await;
        Ok(BackupResponse { image, image_id })
    }

    /// Tags `image` as `{registry}/{project}/backup-{id}:{tag}` and pushes it (within the
    /// commit deadline); answers that reference. ([`Reconciler::backup`] checked that the
    /// project is the sandbox's organization's: a backup never lands in another tenant's
    /// repositories.)
    async fn push_backup(
        &self,
        id: &str,
        image: &str,
        tag: &str,
        target: &PushTarget,
    ) -> Result<String> {
        let engine = self
            .runtime
            .image_engine()
            .ok_or_else(|| AgentError::PushFailed("this runtime cannot push images".into()))?;
        let dest = pushed_ref(target, id, tag);
        let pushed = async {
            engine.tag(image, &dest).await?;
            engine
                .push(&dest, target.auth.as_ref(), &TraceLog(id))
                .await
        };
        let after = self.cfg.timeouts.engine.commit;
        match tokio::time::timeout(after, pushed).await {
            Ok(Ok(())) => {
                tracing::info!(sandbox = %id, image = %dest, "backup pushed");
                Ok(dest)
            }
            Ok(Err(e)) => Err(AgentError::PushFailed(format!(
                "pushing the backup of sandbox {id} failed: {e}"
            ))),
            Err(_) => Err(AgentError::RequestTimeout(after)),
        }
    }

    /// Labels and the image command of a backup.
    async fn commit_options(
        &self,
        id: &str,
        org: Option<&str>,
        spec: Option<&SandboxSpec>,
        created: u64,
    ) -> CommitOptions {
        let labels = HashMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::RUNNER.to_owned(), self.cfg.runner_id.clone()),
            (labels::BACKUP_SANDBOX.to_owned(), id.to_owned()),
            (
                labels::BACKUP_ORG.to_owned(),
                org.unwrap_or_default().to_owned(),
            ),
            (labels::BACKUP_CREATED.to_owned(), created.to_string()),
            // Container labels a backup must not inherit.
            (labels::SNAPSHOT.to_owned(), String::new()),
            (labels::POOL.to_owned(), String::new()),
        ]);
        let source = match spec {
            Some(s) => self.runtime.image(&s.snapshot).await.ok().flatten(),
            None => None,
        };
        let cmd = source.as_ref().map_or_else(
            || vec!["sleep".to_owned(), "infinity".to_owned()],
            spec::image_command,
        );
        CommitOptions {
            labels,
            entrypoint: Vec::new(),
            cmd,
        }
    }

    /// `DELETE /v1/backups/{sandboxId}`: removes every backup image of the sandbox.
    pub async fn delete_backups(&self, sandbox: &str) -> Result<BackupRemoval> {
        spec::validate_id(sandbox)?;
        let dir = self.tombstones();
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(sandbox), b""))
            .map_err(|e| AgentError::io("recording a backup deletion", e))?;
        let removal = self.prune(Some(sandbox)).await;
        tracing::info!(sandbox = %sandbox, removed = removal.removed.len(), deferred = removal.deferred.len(), "backups deleted");
        Ok(removal)
    }

    /// Removes superseded backups and those of deleted sandboxes (errors are logged).
    pub(super) async fn prune_backups(&self) {
        let _ = self.prune(None).await;
    }

    async fn prune(&self, only: Option<&str>) -> BackupRemoval {
        let images = match self.runtime.images().await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot list images to prune backups");
                return BackupRemoval::default();
            }
        };
        let mut by_sandbox: BTreeMap<String, Vec<Backup>> = BTreeMap::new();
        for b in self.backups_of_runner(&images) {
            if only.is_none_or(|s| s == b.sandbox) {
                by_sandbox.entry(b.sandbox.clone()).or_default().push(b);
            }
        }
        let mut removal = BackupRemoval::default();
        for (sandbox, list) in by_sandbox {
            let deleted = self.tombstones().join(&sandbox).exists();
            // The newest backup stays (all its tags: the local one and the pushed one).
            let newest = list.iter().map(|b| b.created).max();
            for b in list.iter().filter(|b| deleted || Some(b.created) != newest) {
                self.remove_backup(&b.tag, &mut removal).await;
            }
        }
        self.clear_tombstones(&images, &removal);
        removal
    }

    async fn remove_backup(&self, tag: &str, removal: &mut BackupRemoval) {
        match self.runtime.remove_image(tag).await {
            Ok(ImageRemoval::Removed | ImageRemoval::NotFound) => {
                tracing::info!(image = %tag, "backup image removed");
                removal.removed.push(tag.to_owned());
            }
            Ok(ImageRemoval::InUse) => {
                tracing::debug!(image = %tag, "backup image still in use; removed later");
                removal.deferred.push(tag.to_owned());
            }
            Err(e) => {
                tracing::warn!(image = %tag, error = %crate::error::chain(&e), "cannot remove a backup image");
                removal.deferred.push(tag.to_owned());
            }
        }
    }

    /// Tombstones whose sandbox has no backup image left are done.
    fn clear_tombstones(&self, images: &[ImageSummary], removal: &BackupRemoval) {
        let Ok(rd) = std::fs::read_dir(self.tombstones()) else {
            return;
        };
        let left: BTreeSet<String> = self
            .backups_of_runner(images)
            .into_iter()
            .filter(|b| !removal.removed.contains(&b.tag))
            .map(|b| b.sandbox)
            .collect();
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !left.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn backups_of_runner(&self, images: &[ImageSummary]) -> Vec<Backup> {
        images
            .iter()
            .filter(|i| i.labels.get(labels::RUNNER) == Some(&self.cfg.runner_id))
            .filter_map(|i| {
                let sandbox = i.labels.get(labels::BACKUP_SANDBOX)?.clone();
                let created = i
                    .labels
                    .get(labels::BACKUP_CREATED)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let pushed = format!("/backup-{sandbox}:");
                let tags = i
                    .tags
                    .iter()
                    .filter(move |t| t.starts_with(BACKUP_REPO) || t.contains(&pushed));
                Some(tags.map(move |t| Backup {
                    tag: t.clone(),
                    sandbox: sandbox.clone(),
                    created,
                }))
            })
            .flatten()
            .collect()
    }

    /// Refuses to create sandbox `id` from a backup of another sandbox or organization
    /// (whatever the control plane sends).
    pub(super) fn check_restore(
        &self,
        id: &str,
        spec: &SandboxSpec,
        image: &ImageInfo,
    ) -> Result<()> {
        // A snapshot image the agent made for another organization.
        let image_org = image.labels.get(labels::ORG_ID).filter(|o| !o.is_empty());
        if image_org.is_some_and(|o| spec.org_id.as_ref() != Some(o)) {
            tracing::warn!(sandbox = %id, snapshot = %crate::error::printable(&spec.snapshot), "an image of another organization refused");
            return Err(AgentError::Forbidden(format!(
                "snapshot {} belongs to another organization",
                spec.snapshot
            )));
        }
        let owner = image
            .labels
            .get(labels::BACKUP_SANDBOX)
            .filter(|o| !o.is_empty());
        if let Some(owner) = owner {
            let org = image
                .labels
                .get(labels::BACKUP_ORG)
                .filter(|o| !o.is_empty());
            if owner != id || org.is_some_and(|o| spec.org_id.as_ref() != Some(o)) {
                tracing::warn!(sandbox = %id, snapshot = %crate::error::printable(&spec.snapshot), owner = %owner, "restore from another sandbox's backup refused");
                return Err(forbidden(&spec.snapshot));
            }
        } else if let Some(rest) = spec.snapshot.strip_prefix(&format!("{BACKUP_REPO}/")) {
            // Older unlabelled backups were named `cove-backup/<sandbox id>:<ms>`.
            if rest.split(':').next() != Some(id) {
                return Err(forbidden(&spec.snapshot));
            }
        }
        Ok(())
    }

    /// The snapshot images this runner holds: the configured ones that are present, images
    /// labelled `cove.snapshot` and ready snapshot jobs' refs (never backups).
    pub async fn snapshots(&self) -> Vec<String> {
        let images = match self.runtime.images().await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot list images");
                return Vec::new();
            }
        };
        let configured: BTreeSet<&str> = self.cfg.snapshot_images().collect();
        let jobs = self.snapshot_jobs.ready_refs();
        let mut out = BTreeSet::new();
        for i in &images {
            let backup = i.labels.contains_key(labels::BACKUP_SANDBOX);
            let labelled = i
                .labels
                .get(labels::SNAPSHOT)
                .is_some_and(|s| !s.is_empty());
            for t in &i.tags {
                let snapshot =
                    configured.contains(t.as_str()) || jobs.contains(t) || (labelled && !backup);
                if snapshot && !t.starts_with(&format!("{BACKUP_REPO}/")) {
                    out.insert(t.clone());
                }
            }
        }
        out.into_iter().collect()
    }
}
