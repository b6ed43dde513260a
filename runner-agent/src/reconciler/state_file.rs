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

    /// Writes atomically (temporary file, then rename). Registry credentials of the spec
    /// (`imageAuth`, used once at create) are not written.
    pub fn save(&self, rec: &Record) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| AgentError::io("creating the state dir", e))?;
        let path = self.path(&rec.id);
        let tmp = self.dir.join(format!(".{}.json.tmp", rec.id));
        let mut kept = rec.clone();
        if let Some(spec) = &mut kept.spec {
            spec.image_auth = None;
        }
        let body = serde_json::to_vec_pretty(&kept)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_credentials_never_reach_the_state_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let files = StateFiles::new(dir.path().to_path_buf());
        let rec: Record = serde_json::from_value(serde_json::json!({
            "id": "sb1", "containerId": "c1", "dir": "/tmp/x",
            "spec": {"generation": 2, "snapshot": "r:5/cove-o/daytona-1:daytona",
                "imageAuth": {"username": "cove-internal", "password": "hunter2", "server": "r:5"}}
        }))
        .expect("record");
        files.save(&rec).expect("save");
        let text = std::fs::read_to_string(dir.path().join("sb1.json")).expect("read");
        assert!(
            !text.contains("hunter2") && !text.contains("imageAuth"),
            "{text}"
        );
        let back = files.load("sb1").expect("load");
        assert_eq!(back.spec.map(|s| s.generation), Some(2));
    }
}
