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

use cove_runner_api::{BACKUP_REPO, BackupRemoval, BackupResponse, SandboxSpec, labels};

use super::{Reconciler, spec};
use crate::error::{AgentError, Result};
use crate::runtime::{CommitOptions, ImageInfo, ImageRemoval, ImageSummary};

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

    /// `POST /v1/sandboxes/{id}/backup`, under the per-sandbox lock.
    pub async fn backup(&self, id: &str) -> Result<BackupResponse> {
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
        let image = format!("{repo}:{tag}");
        tracing::info!(sandbox = %id, image = %image, "backup created");
        self.prune_backups().await;
        Ok(BackupResponse { image, image_id })
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
        for (sandbox, mut list) in by_sandbox {
            let deleted = self.tombstones().join(&sandbox).exists();
            list.sort_by_key(|b| b.created);
            let keep = if deleted { 0 } else { 1 };
            let doomed = list.len().saturating_sub(keep);
            for b in &list[..doomed] {
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
                let tags = i.tags.iter().filter(|t| t.starts_with(BACKUP_REPO));
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
