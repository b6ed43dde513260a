//! Volumes on the host: each volume a sandbox uses is mounted **once per agent** from the object
//! storage (`<bucket>/volumes/<volumeId>`, see `cove_runner_api::volume_prefix`) with
//! `rclone mount` and its full VFS cache, at `<mount root>/<volumeId>`; sandboxes get a bind
//! mount of that directory (or a `subpath` of it) at their `mountPath` (`reconciler::spec`).
//!
//! * **Why rclone** (Debian's `rclone`): with `--vfs-cache-mode full` files are read and written
//!   through a local cache and uploaded whole after close, so renames, appends, writes at random
//!   offsets, truncation, SQLite and `flock` (kept by the kernel per mount) work, which AWS
//!   Mountpoint (Daytona's `mount-s3`) refuses. `s3fs` also passed the rename/append tests but
//!   re-uploads the whole object on every flush, and is slower on small files.
//! * **Survives the agent**: rclone runs in its own session (`setsid`), so a `kill -9` of the
//!   agent (or of its process group) leaves the mounts serving; a restarted agent finds them in
//!   `/proc/self/mountinfo` and reuses them. Its cache lives in `<data dir>/volume-cache/<id>`,
//!   so uploads interrupted by a crash resume at the next mount.
//! * **Released when unused**: when no sandbox of the agent uses a volume any more (destroyed, or
//!   a create that failed), it is unmounted (`fusermount3 -u`, lazily if busy) after its uploads,
//!   and the release waits until its rclone has exited (SIGTERM, then SIGKILL, after 10 s): a
//!   sandbox created next mounts the volume with a fresh rclone that shares its cache with no
//!   other. After a restart, mounts no recovered sandbox uses are released too.
//! * Credentials: the agent's `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (handed to rclone in
//!   its environment, never on its command line); endpoint, bucket and region: `--s3-endpoint`,
//!   `--s3-bucket`, `--s3-region`.
//!
//! The simulated runner (`--runtime fake`) uses plain directories instead (no FUSE).

mod mount;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{AgentError, Result};

/// How volumes are provided on this host.
#[derive(Debug, Clone)]
pub struct VolumeSettings {
    /// FUSE mounts (Docker runtime); `false`: plain directories (simulated runner).
    pub fuse: bool,
    /// `<mount root>/<volumeId>` is the volume's mount point.
    pub mount_root: PathBuf,
    /// rclone's VFS caches and logs.
    pub cache_root: PathBuf,
    /// `None`: AWS S3 itself.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    /// How long a mount may take to appear.
    pub mount_timeout: Duration,
}

/// The volumes mounted by this agent.
pub struct Mounts {
    settings: VolumeSettings,
    /// One mount or unmount at a time (a volume is mounted once even when two sandboxes using it
    /// are created at once).
    lock: tokio::sync::Mutex<()>,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> AgentError {
    move |source| AgentError::Io { context, source }
}

impl Mounts {
    pub fn new(settings: VolumeSettings) -> Self {
        Self {
            settings,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Where volume `id` is on the host.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.settings.mount_root.join(id)
    }

    /// Makes volume `id` available at [`Self::dir`] (mounting it unless it already is).
    pub async fn ensure(&self, id: &str) -> Result<PathBuf> {
        let dir = self.dir(id);
        if !self.settings.fuse {
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            return Ok(dir);
        }
        let _one = self.lock.lock().await;
        if mount::is_mounted(&dir) {
            if mount::healthy(&dir) {
                return Ok(dir);
            }
            tracing::warn!(volume = id, "volume mount is broken; mounting it again");
            mount::unmount(&dir, Duration::from_secs(5)).await;
        }
        // An rclone left from an earlier mount (released lazily, or broken) must be gone first.
        mount::rclone_gone(&dir, Duration::from_secs(10)).await;
        mount::mount(&self.settings, id, &dir).await?;
        tracing::info!(volume = id, dir = %dir.display(), "volume mounted");
        Ok(dir)
    }

    /// Unmounts each of `candidates` that `in_use` does not name. `in_use` is asked under the
    /// mount lock: a sandbox created at the same time either counts as a user already (its
    /// placeholder is there) or mounts the volume again after the release, never before it.
    pub async fn release_unused<F, Fut>(&self, candidates: Vec<String>, in_use: F)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = BTreeSet<String>>,
    {
        if !self.settings.fuse {
            return;
        }
        let _one = self.lock.lock().await;
        let used = in_use().await;
        for id in candidates.iter().filter(|id| !used.contains(*id)) {
            self.release_locked(id).await;
        }
    }

    /// Unmounts volume `id` (its last user is gone) and waits for its rclone to exit. A volume
    /// that is not mounted is done.
    async fn release_locked(&self, id: &str) {
        let dir = self.dir(id);
        if mount::is_mounted(&dir) {
            let cache = self.settings.cache_root.join(id);
            mount::wait_uploaded(&cache, Duration::from_secs(60)).await;
            mount::unmount(&dir, Duration::from_secs(30)).await;
            tracing::info!(volume = id, "volume released");
        }
        mount::rclone_gone(&dir, Duration::from_secs(10)).await;
        let _ = std::fs::remove_dir(&dir);
    }

    /// The volumes mounted under the mount root now.
    pub fn mounted(&self) -> Vec<String> {
        if !self.settings.fuse {
            return Vec::new();
        }
        mount::mounted_under(&self.settings.mount_root)
    }

    pub fn mount_root(&self) -> &Path {
        &self.settings.mount_root
    }
}
