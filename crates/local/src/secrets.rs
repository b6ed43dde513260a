//! Secrets generated once per data directory and kept there (`<data_dir>/secrets/<name>`, mode
//! 0600): the scoped-credentials signing secret and the internal registry's password.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or write the secret {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no secure random source: {0}")]
    Random(String),
}

/// `SPIN_VARIABLE_<NAME>` when set (the application would see that value too), else the
/// persisted secret `name`, generated (32 random bytes, hex) on first use.
pub fn variable_or_persisted(data_dir: &Path, name: &str) -> Result<String, SecretError> {
    let env = format!("SPIN_VARIABLE_{}", name.to_uppercase());
    match std::env::var(env).ok().filter(|v| !v.is_empty()) {
        Some(v) => Ok(v),
        None => persisted(data_dir, name),
    }
}

/// The secret `name` of `data_dir`, generated on first use.
pub fn persisted(data_dir: &Path, name: &str) -> Result<String, SecretError> {
    let dir = data_dir.join("secrets");
    let path = dir.join(name);
    let io = |source| SecretError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
    let value = hex::encode(bytes);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    file.write_all(value.as_bytes()).map_err(io)?;
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_secret_is_generated_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = persisted(dir.path(), "x").unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(persisted(dir.path(), "x").unwrap(), a);
        assert_ne!(persisted(dir.path(), "y").unwrap(), a);
        let mode = std::fs::metadata(dir.path().join("secrets/x"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
