//! Warm pool: N pre-started containers per configured snapshot.
//!
//! A pool container is created exactly like a default sandbox of that snapshot (default limits,
//! no volumes, network allowed, the image's user), started, and its daemon probed, with the
//! labels `cove.pool=true` and no `cove.sandbox.id`; its name is `cove-pool-<runner>-<n>` and its
//! host directory `<data-dir>/sandboxes/pool-<uuid>/`.
//!
//! Claiming one for a sandbox (see [`crate::reconciler`]):
//! - `docker rename` to `cove-sb-<sandbox id>`: Docker now records the sandbox id, so a restarted
//!   agent finds it again (labels cannot change after creation);
//! - the sandbox's spec, org, labels and env go to the agent's state file
//!   `<data-dir>/state/<id>.json` (root-only), and `<data-dir>/sandboxes/<id>` becomes a symlink to
//!   the pool directory;
//! - **env**: the container was started before the env was known, so it is applied twice:
//!   (1) written as `export K='V'` lines to `/run/cove/env.sh`, which every container names in
//!   `BASH_ENV`, so every non-interactive bash the daemon starts (sessions, and `process/execute`
//!   commands run through the shell) sources it; and (2) merged by the agent into the `envs` of
//!   every `process/execute` and `process/code-run` request it forwards (request keys win), which
//!   covers commands the daemon runs without a shell. Processes started by the image's own
//!   entrypoint before the claim do not see it.
//!
//! The pool refills in the background after every claim.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// One ready container.
#[derive(Debug, Clone)]
pub struct PoolEntry {
    pub container_id: String,
    pub dir: PathBuf,
    pub daemon_version: Option<String>,
}

#[derive(Default)]
pub struct Pool {
    targets: Vec<(String, usize)>,
    ready: Mutex<HashMap<String, VecDeque<PoolEntry>>>,
    pub(crate) refill: Notify,
}

impl Pool {
    pub fn new(targets: Vec<(String, usize)>) -> Self {
        Self {
            targets,
            ready: Mutex::default(),
            refill: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<PoolEntry>>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn targets(&self) -> &[(String, usize)] {
        &self.targets
    }

    pub fn is_pooled(&self, image: &str) -> bool {
        self.targets.iter().any(|(i, n)| i == image && *n > 0)
    }

    /// Takes a ready container of `image`, waking the refill task.
    pub fn take(&self, image: &str) -> Option<PoolEntry> {
        let entry = self.lock().get_mut(image).and_then(VecDeque::pop_front);
        if entry.is_some() {
            self.refill.notify_one();
        }
        entry
    }

    pub fn put(&self, image: &str, entry: PoolEntry) {
        self.lock()
            .entry(image.to_owned())
            .or_default()
            .push_back(entry);
    }

    pub fn count(&self, image: &str) -> usize {
        self.lock().get(image).map_or(0, VecDeque::len)
    }

    /// Ready containers per image.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let g = self.lock();
        self.targets
            .iter()
            .map(|(i, _)| (i.clone(), g.get(i).map_or(0, VecDeque::len)))
            .collect()
    }

    /// How many more containers `image` needs.
    pub fn missing(&self, image: &str) -> usize {
        let want = self
            .targets
            .iter()
            .find(|(i, _)| i == image)
            .map_or(0, |(_, n)| *n);
        want.saturating_sub(self.count(image))
    }

    /// Every ready entry (for shutdown/cleanup).
    pub fn drain(&self) -> Vec<PoolEntry> {
        self.lock().drain().flat_map(|(_, q)| q).collect()
    }
}

/// The refill loop: tops every pool up, then sleeps until a claim (or 10 s).
pub async fn run(rec: Arc<crate::reconciler::Reconciler>) {
    let pool = rec.pool();
    loop {
        for (image, _) in pool.targets().to_vec() {
            while pool.missing(&image) > 0 {
                match rec.create_pool_member(&image).await {
                    Ok(entry) => pool.put(&image, entry),
                    Err(e) => {
                        tracing::warn!(image = %image, error = %crate::error::chain(&e), "warm pool refill failed");
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                        break;
                    }
                }
            }
        }
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(10), pool.refill.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_and_missing() {
        let pool = Pool::new(vec![("img".into(), 2)]);
        assert_eq!(pool.missing("img"), 2);
        pool.put(
            "img",
            PoolEntry {
                container_id: "a".into(),
                dir: "/x".into(),
                daemon_version: None,
            },
        );
        assert_eq!(pool.missing("img"), 1);
        assert!(pool.is_pooled("img"));
        assert!(!pool.is_pooled("other"));
        assert_eq!(pool.take("img").map(|e| e.container_id), Some("a".into()));
        assert!(pool.take("img").is_none());
        assert_eq!(pool.counts().get("img"), Some(&0));
    }
}
