//! Where the workspace's binaries are, built when missing: `cove`, `cove-runner`, the static
//! toolbox daemon (musl) and the wasm components.
//!
//! Each is taken from an environment variable when set (`COVE_BIN`, `COVE_RUNNER_BIN`,
//! `COVE_TOOLBOX_BIN`), else from the target directory (`$CARGO_TARGET_DIR`, else
//! `<workspace>/target`). A missing one is built once per test process with the same `cargo` that
//! runs the tests; an existing one is used as it is (`scripts/test.sh` builds them all first).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::process;

/// The musl target the toolbox daemon is built for.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// The workspace this testkit belongs to (the repository root).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The checked-in control-plane OpenAPI document (`openapi/control-plane.json`) as JSON, for
/// tests that walk every documented route (tenant matrices).
pub fn control_plane_document() -> serde_json::Value {
    let path = workspace_root().join("openapi/control-plane.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `$CARGO_TARGET_DIR` (relative to the workspace when relative), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    target_dir_from(std::env::var_os("CARGO_TARGET_DIR"), &workspace_root())
}

fn target_dir_from(var: Option<OsString>, root: &Path) -> PathBuf {
    match var.filter(|v| !v.is_empty()).map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// The `cove` binary (`cove up`).
pub fn cove() -> Result<PathBuf> {
    Binary::native("COVE_BIN", "cove").locate()
}

/// The runner agent, `cove-runner`.
pub fn cove_runner() -> Result<PathBuf> {
    Binary::native("COVE_RUNNER_BIN", "cove-runner").locate()
}

/// The static toolbox daemon the Docker runner bind-mounts into every sandbox.
pub fn toolbox_daemon() -> Result<PathBuf> {
    Binary {
        var: Some("COVE_TOOLBOX_BIN"),
        path: target_dir().join(MUSL_TARGET).join("release/cove-toolbox"),
        build: vec![
            "build",
            "--release",
            "--target",
            MUSL_TARGET,
            "-p",
            "cove-toolbox",
        ],
    }
    .locate()
}

/// `<target>/wasm32-wasip2/wasm/<crate_name>.wasm` of the component crate `package` (its
/// library name is the package name with `_` for `-`).
pub fn wasm_component(package: &str) -> Result<PathBuf> {
    let file = format!("{}.wasm", package.replace('-', "_"));
    Binary {
        var: None,
        path: target_dir().join("wasm32-wasip2/wasm").join(file),
        build: vec![
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "wasm",
            "-p",
            package,
        ],
    }
    .locate()
}

/// A file of the target directory and the `cargo` arguments that make it.
struct Binary<'a> {
    var: Option<&'static str>,
    path: PathBuf,
    build: Vec<&'a str>,
}

impl Binary<'static> {
    /// `target/release/<name>`, built by `cargo build --release --bin <name>` (whichever
    /// package holds it).
    fn native(var: &'static str, name: &'static str) -> Self {
        Self {
            var: Some(var),
            path: target_dir().join("release").join(name),
            build: vec!["build", "--release", "--bin", name],
        }
    }
}

impl Binary<'_> {
    fn locate(&self) -> Result<PathBuf> {
        self.locate_with(|v| std::env::var_os(v))
    }

    fn locate_with(&self, var: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf> {
        if let Some(path) = self.var.and_then(var).filter(|v| !v.is_empty()) {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(Error::Missing {
                    path,
                    hint: format!(
                        "${} names a file that does not exist",
                        self.var.unwrap_or("")
                    ),
                });
            }
            return Ok(path);
        }
        // One build at a time in this process; the second caller finds the file.
        static BUILDING: Mutex<()> = Mutex::new(());
        let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
        if !self.path.is_file() {
            self.run_build()?;
        }
        if !self.path.is_file() {
            return Err(Error::Missing {
                path: self.path.clone(),
                hint: format!("`cargo {}` did not produce it", self.build.join(" ")),
            });
        }
        Ok(self.path.clone())
    }

    fn run_build(&self) -> Result<()> {
        let cargo = std::env::var_os("CARGO")
            .or_else(|| option_env!("CARGO").map(Into::into))
            .unwrap_or_else(|| "cargo".into());
        let what = format!("cargo {}", self.build.join(" "));
        process::run(
            &what,
            Command::new(cargo)
                .args(&self.build)
                .current_dir(workspace_root())
                .env("CARGO_TARGET_DIR", target_dir()),
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_follows_cargo_target_dir() {
        let root = Path::new("/repo");
        assert_eq!(target_dir_from(None, root), Path::new("/repo/target"));
        assert_eq!(
            target_dir_from(Some("".into()), root),
            Path::new("/repo/target")
        );
        assert_eq!(
            target_dir_from(Some("/tmp/t".into()), root),
            Path::new("/tmp/t")
        );
        assert_eq!(
            target_dir_from(Some("out/t".into()), root),
            Path::new("/repo/out/t")
        );
    }

    #[test]
    fn the_workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).expect("read");
        assert!(manifest.contains("[workspace]"), "{manifest}");
        assert!(manifest.contains("crates/testkit"));
    }

    #[test]
    fn a_variable_naming_a_missing_file_is_an_error_not_a_build() {
        let b = Binary {
            var: Some("COVE_BIN"),
            path: PathBuf::from("/nonexistent/cove"),
            build: vec!["--version"],
        };
        let e = b.locate_with(|_| Some("/nonexistent/x".into()));
        assert!(
            matches!(&e, Err(Error::Missing { path, .. }) if path == Path::new("/nonexistent/x")),
            "{e:?}"
        );
        let here = std::env::current_exe().expect("exe");
        assert_eq!(
            b.locate_with(|_| Some(here.clone().into())).ok(),
            Some(here)
        );
    }

    #[test]
    fn an_existing_file_is_used_without_building() {
        let here = std::env::current_exe().expect("exe");
        let b = Binary {
            var: None,
            path: here.clone(),
            // Would fail if it ran.
            build: vec!["no-such-cargo-command"],
        };
        assert_eq!(b.locate_with(|_| None).ok(), Some(here));
    }
}
