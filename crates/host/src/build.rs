//! `cove build`: runs the `[component.<id>.build]` commands, as `spin build` does.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};

use crate::manifest::{ComponentDef, Manifest};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot run the build command of component {component:?}: {command}")]
    Spawn {
        component: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("build of component {component:?} failed ({status}): {command}")]
    Failed {
        component: String,
        command: String,
        status: ExitStatus,
    },
}

/// Runs the build commands of the components `select` picks, each distinct (command, workdir)
/// once, with `sh -c` in the command's workdir; the first failure stops the build.
pub fn run(manifest: &Manifest, select: impl Fn(&ComponentDef) -> bool) -> Result<(), BuildError> {
    let mut done: BTreeSet<(String, PathBuf)> = BTreeSet::new();
    for c in manifest.components.values().filter(|c| select(c)) {
        let Some(b) = &c.build else {
            tracing::info!(component = %c.id, "no build command");
            continue;
        };
        for command in &b.commands {
            if done.insert((command.clone(), b.workdir.clone())) {
                run_one(c, command, &b.workdir)?;
            }
        }
    }
    Ok(())
}

fn run_one(c: &ComponentDef, command: &str, workdir: &PathBuf) -> Result<(), BuildError> {
    tracing::info!(component = %c.id, command, workdir = %workdir.display(), "building");
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(workdir)
        .status()
        .map_err(|source| BuildError::Spawn {
            component: c.id.clone(),
            command: command.to_owned(),
            source,
        })?;
    if !status.success() {
        return Err(BuildError::Failed {
            component: c.id.clone(),
            command: command.to_owned(),
            status,
        });
    }
    Ok(())
}
