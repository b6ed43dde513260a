//! Agent start: the view rebuilt from Docker (containers labelled `cove.runner=<runner id>`) and
//! the state files. Claimed warm containers are found by name (`cove-sb-<id>`), unclaimed ones
//! that still run rejoin the pool, the others go.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use cove_runner_api::{SandboxState, labels};

use super::{RUNNER_LABEL, Reconciler, Record, remove_dir_logged};
use crate::error::Result;
use crate::pool::PoolEntry;
use crate::runtime::ContainerInfo;
use crate::toolbox::SOCKET_NAME;

fn is_pool(c: &ContainerInfo) -> bool {
    c.labels.get(labels::POOL).map(String::as_str) == Some("true")
}

impl Reconciler {
    /// Rebuilds the view from Docker and the state files (agent start).
    pub async fn recover(&self) -> Result<()> {
        let containers = self.runtime.list(RUNNER_LABEL, &self.cfg.runner_id).await?;
        let mut map = HashMap::new();
        for c in containers {
            let id = match c.labels.get(labels::SANDBOX_ID) {
                Some(id) => id.clone(),
                None if is_pool(&c) => match c.name.strip_prefix("cove-sb-") {
                    Some(id) => id.to_owned(),
                    None => {
                        self.recover_pool_member(&c).await;
                        continue;
                    }
                },
                None => continue,
            };
            let rec = self.recover_sandbox(&id, &c).await;
            map.insert(id, rec);
        }
        // State files whose container is gone belong to sandboxes that no longer exist.
        self.states.retain(|id| map.contains_key(id));
        tracing::info!(sandboxes = map.len(), warm = ?self.pool.counts(), "recovered state from the container engine");
        *self.sandboxes.write().await = map;
        self.prune_backups().await;
        // Mounts that outlived the agent serve on; those no sandbox uses any more go.
        self.release_unused_volumes(self.volumes.mounted()).await;
        Ok(())
    }

    /// An unclaimed pool member: reused when it still runs and the pool wants it, else removed.
    async fn recover_pool_member(&self, c: &ContainerInfo) {
        let image = c.labels.get(labels::SNAPSHOT).cloned().unwrap_or_default();
        let dir = c.run_dir.clone().unwrap_or_default();
        if c.running && self.pool.missing(&image) > 0 {
            let v = self.wait_toolbox(&dir, &c.id).await.ok().flatten();
            let entry = PoolEntry {
                container_id: c.id.clone(),
                dir,
                daemon_version: v,
            };
            self.pool.put(&image, entry);
            return;
        }
        self.remove_container_logged(&c.id, "a stale warm container")
            .await;
        if dir.starts_with(self.sandboxes_dir()) {
            remove_dir_logged(&dir);
        }
    }

    async fn recover_sandbox(&self, id: &str, c: &ContainerInfo) -> Record {
        let mut rec = self.states.load(id).unwrap_or_else(|| Record {
            id: id.to_owned(),
            container_id: c.id.clone(),
            dir: PathBuf::new(),
            spec: None,
            generation: 0,
            warm: is_pool(c),
            org_id: c.labels.get(labels::ORG_ID).cloned(),
            env_overlay: BTreeMap::new(),
            state: SandboxState::Unknown,
            error: None,
            daemon_version: None,
        });
        rec.container_id = c.id.clone();
        if let Some(d) = c.run_dir.clone() {
            rec.dir = d;
        }
        rec.state = if c.running {
            SandboxState::Started
        } else {
            SandboxState::Stopped
        };
        if c.running {
            // Quick probe: the daemon normally answers at once.
            rec.daemon_version =
                crate::toolbox::probe(&rec.dir.join(SOCKET_NAME), &rec.container_id)
                    .await
                    .ok();
            if let Err(e) = self.enforce_egress(&rec).await {
                rec.state = SandboxState::Error;
                rec.error = Some(e.external_message());
            }
        }
        rec
    }
}
