//! The Docker engine and the sandbox base image (`tests/images/build-base.sh`).

use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::bins::workspace_root;
use crate::error::{Error, Result};
use crate::process;

/// The tag `cove up` uses by default; `build-base.sh` points it at the image it built.
pub const LATEST: &str = "cove-sandbox-base:latest";

/// Makes sure a Docker engine answers `docker info`, starting one with `scripts/docker.sh`
/// when none does.
pub fn ensure_docker() -> Result<()> {
    let up = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if up {
        return Ok(());
    }
    process::run(
        "scripts/docker.sh (no Docker engine answers `docker info`)",
        Command::new("bash")
            .arg(workspace_root().join("scripts/docker.sh"))
            .stdout(Stdio::null()),
    )
    .map(drop)
}

/// The sandbox base image: `$COVE_SANDBOX_IMAGE`, else the tag `tests/images/build-base.sh`
/// prints (it builds the image the first time, then reuses it). Makes sure Docker runs first.
/// Computed once per test process.
pub fn base() -> Result<String> {
    static TAG: Mutex<Option<String>> = Mutex::new(None);
    let mut tag = TAG.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = tag.as_ref() {
        return Ok(t.clone());
    }
    ensure_docker()?;
    let built = match std::env::var("COVE_SANDBOX_IMAGE") {
        Ok(img) if !img.trim().is_empty() => img.trim().to_owned(),
        _ => {
            let out = process::run(
                "tests/images/build-base.sh",
                Command::new("bash").arg(workspace_root().join("tests/images/build-base.sh")),
            )?;
            last_line(&out).ok_or_else(|| Error::Output {
                what: "tests/images/build-base.sh",
                line: "image tag",
                stdout: out.lines().map(str::to_owned).collect(),
            })?
        }
    };
    *tag = Some(built.clone());
    Ok(built)
}

/// `docker rm -f` every container labelled `cove.runner=<runner_id>` (what an agent leaves
/// behind on purpose: its containers survive its restarts). Best effort.
pub fn remove_containers(runner_id: &str) {
    let ids = containers(runner_id);
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f"])
            .args(&ids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// IDs of the containers labelled `cove.runner=<runner_id>`.
pub fn containers(runner_id: &str) -> Vec<String> {
    Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=cove.runner={runner_id}"))
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn last_line(out: &str) -> Option<String> {
    out.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_the_last_printed_line() {
        assert_eq!(
            last_line("building...\ncove-sandbox-base:0123abcd\n\n").as_deref(),
            Some("cove-sandbox-base:0123abcd")
        );
        assert_eq!(last_line("\n  \n"), None);
    }
}
