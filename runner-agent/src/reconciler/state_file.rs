//! The agent's state files, `<data-dir>/state/<id>.json` (root-only): what Docker cannot record
//! about a sandbox (its spec and generation, its org, the env overlay of a claimed warm container).

use std::path::PathBuf;

use super::Record;
use crate::error::{AgentError, Result};

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateFiles {
    dir: PathBuf,
}

impl StateFiles {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes atomically (temporary file, then rename).
    pub fn save(&self, rec: &Record) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| AgentError::io("creating the state dir", e))?;
        let path = self.path(&rec.id);
        let tmp = self.dir.join(format!(".{}.json.tmp", rec.id));
        let body = serde_json::to_vec_pretty(rec)
            .map_err(|e| AgentError::io("encoding state", std::io::Error::other(e)))?;
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| AgentError::io(format!("writing {}", path.display()), e))
    }

    pub fn load(&self, id: &str) -> Option<Record> {
        let body = std::fs::read(self.path(id)).ok()?;
        match serde_json::from_slice(&body) {
            Ok(rec) => Some(rec),
            Err(e) => {
                tracing::warn!(sandbox = %id, error = %e, "unreadable state file ignored");
                None
            }
        }
    }

    pub fn remove(&self, id: &str) {
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(sandbox = %id, error = %e, "cannot remove a state file"),
        }
    }

    /// Removes the state files of sandboxes not in `keep` (their container is gone).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json")
                && !name.starts_with('.')
                && !keep(id)
            {
                self.remove(id);
            }
        }
    }
}
