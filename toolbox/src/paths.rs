//! Path resolution: relative paths resolve against the work dir; with `--root` every path lives
//! under a jail directory, `..` may not climb out of it and symlinks may not point out of it.
//!
//! Paths the client sees are *virtual*: absolute paths as if the jail were `/`. Without a jail,
//! virtual and real paths are the same.

use std::path::{Component, Path, PathBuf};

use crate::error::{Result, ToolboxError};

#[derive(Debug, Clone)]
pub struct Paths {
    /// Canonical jail directory, if any.
    root: Option<PathBuf>,
    /// Virtual work dir (absolute).
    work_dir: PathBuf,
    /// Virtual home dir (absolute).
    home_dir: PathBuf,
}

impl Paths {
    /// `work_dir` and `home_dir` are virtual paths (relative ones are taken from `/`).
    pub fn new(root: Option<&Path>, work_dir: &Path, home_dir: &Path) -> std::io::Result<Self> {
        let root = match root {
            Some(r) => Some(std::fs::canonicalize(r)?),
            None => None,
        };
        let work_dir = normalize(&Path::new("/").join(work_dir)).unwrap_or_else(|| "/".into());
        let home_dir = normalize(&Path::new("/").join(home_dir)).unwrap_or_else(|| "/".into());
        Ok(Self {
            root,
            work_dir,
            home_dir,
        })
    }

    pub fn work_dir_virtual(&self) -> String {
        self.work_dir.to_string_lossy().into_owned()
    }

    pub fn home_dir_virtual(&self) -> String {
        self.home_dir.to_string_lossy().into_owned()
    }

    /// Real path of the work dir (for processes).
    pub fn work_dir_real(&self) -> PathBuf {
        self.to_real(&self.work_dir)
    }

    fn to_real(&self, virt: &Path) -> PathBuf {
        match &self.root {
            Some(root) => {
                let rel = virt.strip_prefix("/").unwrap_or(virt);
                root.join(rel)
            }
            None => virt.to_path_buf(),
        }
    }

    /// Resolves a client path to a real path, enforcing the jail.
    pub fn resolve(&self, input: &str) -> Result<PathBuf> {
        if input.is_empty() {
            return Err(ToolboxError::InvalidPath("path is empty".into()));
        }
        if input.contains('\0') {
            return Err(ToolboxError::InvalidPath(input.to_owned()));
        }
        let joined = self.work_dir.join(input);
        let virt = normalize(&joined).ok_or_else(|| {
            ToolboxError::InvalidPath(format!("{input} escapes the sandbox root"))
        })?;
        let real = self.to_real(&virt);
        if let Some(root) = &self.root {
            check_inside(root, &real, input)?;
        }
        Ok(real)
    }

    /// Resolves an optional path, defaulting to the work dir.
    pub fn resolve_or_work_dir(&self, input: Option<&str>) -> Result<PathBuf> {
        match input {
            Some(p) if !p.is_empty() => self.resolve(p),
            _ => Ok(self.work_dir_real()),
        }
    }

    /// Turns a real path back into the client's view.
    pub fn to_virtual(&self, real: &Path) -> String {
        match &self.root {
            Some(root) => match real.strip_prefix(root) {
                Ok(rel) => Path::new("/").join(rel).to_string_lossy().into_owned(),
                Err(_) => real.to_string_lossy().into_owned(),
            },
            None => real.to_string_lossy().into_owned(),
        }
    }

    /// Resolves a `file://` URI (LSP) to a real path.
    pub fn resolve_uri(&self, uri: &str) -> Result<PathBuf> {
        let raw = uri.strip_prefix("file://").unwrap_or(uri);
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        self.resolve(&decoded)
    }
}

/// Lexical normalization of an absolute path; `None` when `..` climbs above `/`.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    for comp in path.components() {
        match comp {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(c) => out.push(c),
        }
    }
    Some(out)
}

/// Rejects `real` if, after following symlinks of its longest existing prefix, it leaves `root`.
fn check_inside(root: &Path, real: &Path, input: &str) -> Result<()> {
    let mut existing = real.to_path_buf();
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(canon) => {
                if !canon.starts_with(root) {
                    return Err(ToolboxError::AccessDenied(format!(
                        "{input} resolves outside the sandbox root"
                    )));
                }
                break;
            }
            Err(_) => {
                // A dangling symlink must not be written through either.
                if let Ok(target) = std::fs::read_link(&existing) {
                    let parent = existing.parent().unwrap_or(root);
                    let target = parent.join(target);
                    let target_norm = normalize(&target);
                    if target_norm.is_none_or(|t| !t.starts_with(root)) {
                        return Err(ToolboxError::AccessDenied(format!(
                            "{input} resolves outside the sandbox root"
                        )));
                    }
                }
                match existing.parent() {
                    Some(parent) => existing = parent.to_path_buf(),
                    None => break,
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_rejects_escape() {
        assert_eq!(normalize(Path::new("/a/../b")), Some(PathBuf::from("/b")));
        assert_eq!(normalize(Path::new("/a/../../etc")), None);
    }

    #[test]
    fn jail_rejects_dotdot_and_symlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Paths::new(Some(dir.path()), Path::new("/"), Path::new("/")).expect("paths");
        assert!(matches!(
            p.resolve("../../etc/shadow"),
            Err(ToolboxError::InvalidPath(_))
        ));
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).expect("symlink");
        assert!(matches!(
            p.resolve("link/passwd"),
            Err(ToolboxError::AccessDenied(_))
        ));
        assert!(matches!(
            p.resolve("/link/new/file"),
            Err(ToolboxError::AccessDenied(_))
        ));
        let ok = p.resolve("a/b.txt").expect("inside");
        assert!(ok.starts_with(dir.path().canonicalize().expect("canon")));
        assert_eq!(p.to_virtual(&ok), "/a/b.txt");
    }
}
