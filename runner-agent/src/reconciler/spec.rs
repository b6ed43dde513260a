//! Input validation and the container spec of a sandbox (limits, hardening, the toolbox daemon
//! as entrypoint).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cove_runner_api::{NetworkPolicy, SandboxSpec};

use super::{ENV_FILE, TOOLBOX_IN_CONTAINER};
use crate::error::{AgentError, Result};
use crate::runtime::{ContainerSpec, ImageInfo, RUN_DIR_IN_CONTAINER};
use crate::toolbox::SOCKET_NAME;

pub const DEFAULT_CPU: f64 = 1.0;
pub const DEFAULT_MEMORY_MIB: u64 = 1024;
pub const DEFAULT_DISK_GIB: u64 = 3;
pub const DEFAULT_PIDS: i64 = 4096;
pub const DEFAULT_STOP_SECS: u32 = 10;

/// The only capabilities a sandbox's processes can ever hold (the bounding set; all others are
/// dropped). Root has them; the `daytona` user has none until it becomes root through `sudo`
/// (Daytona's image lets it: no `no-new-privileges`), which gives it exactly what a sandbox
/// created as root has, never more:
/// - `CHOWN`: `files/permissions` with owner/group, and tools that chown their files;
/// - `DAC_OVERRIDE`: root reads/writes files of other users (file API, git, package managers);
/// - `FOWNER`: chmod/utime on files root does not own (`files/permissions` mode);
/// - `SETUID`, `SETGID`: root dropping to another user (`su`, `runuser`, package scripts);
/// - `KILL`: signalling processes of other users (session delete, timeouts);
/// - `AUDIT_WRITE`: `sudo` and `su` log to the kernel's audit socket (in Docker's defaults too).
pub const ROOT_CAPS: [&str; 7] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "SETUID",
    "SETGID",
    "KILL",
    "AUDIT_WRITE",
];

/// Sandbox ids become container names and directory names: keep them tame.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !id.starts_with('-')
        && !id.starts_with("pool-");
    if ok {
        Ok(())
    } else {
        Err(AgentError::BadRequest(format!(
            "invalid sandbox id {id:?} (1-64 of [A-Za-z0-9_-])"
        )))
    }
}

fn bad(msg: impl Into<String>) -> AgentError {
    AgentError::BadRequest(msg.into())
}

pub fn validate_spec(spec: &SandboxSpec) -> Result<()> {
    if spec.snapshot.trim().is_empty() {
        return Err(bad("snapshot is required"));
    }
    // An image in the internal registry project of another organization (tenant isolation,
    // whatever the control plane sends).
    if let Some(owner) = cove_runner_api::snapshots::internal_org_of(&spec.snapshot)
        && spec.org_id.as_deref() != Some(owner)
    {
        return Err(AgentError::Forbidden(format!(
            "snapshot {} belongs to another organization",
            spec.snapshot
        )));
    }
    for k in spec.env.keys() {
        let mut bytes = k.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(bad(format!("invalid env name {k:?}")));
        }
    }
    let r = &spec.resources;
    if r.cpu.is_some_and(|c| !(c > 0.0 && c <= 256.0)) {
        return Err(bad("cpu must be in (0, 256]"));
    }
    if r.memory_mib.is_some_and(|m| m < 6) {
        return Err(bad("memory must be at least 6 MiB"));
    }
    if r.pids.is_some_and(|p| p < 8) {
        return Err(bad("pids must be at least 8"));
    }
    spec.volumes.iter().try_for_each(validate_volume)
}

fn validate_volume(v: &cove_runner_api::VolumeMount) -> Result<()> {
    validate_id(&v.volume_id)?;
    let mp = Path::new(&v.mount_path);
    let clean = mp.is_absolute()
        && mp
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir));
    if !clean || mp == Path::new("/") || mp.starts_with(RUN_DIR_IN_CONTAINER) {
        return Err(bad(format!("invalid mount path {:?}", v.mount_path)));
    }
    if let Some(sub) = &v.subpath {
        let sp = Path::new(sub);
        let normal = sp
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if sp.is_absolute() || !normal {
            return Err(bad(format!("invalid subpath {sub:?}")));
        }
    }
    Ok(())
}

pub fn home_of(user: &str) -> String {
    match user.split(':').next().unwrap_or(user) {
        "root" | "0" => "/root".into(),
        "" => "/home/daytona".into(),
        u => format!("/home/{u}"),
    }
}

/// The image's own command (entrypoint then cmd), without the toolbox wrappers an older agent
/// committed into backup images (`cove-toolbox … -- <command>`, once per backup cycle), so a
/// restored sandbox runs exactly one daemon. Default `sleep infinity`.
pub fn image_command(image: &ImageInfo) -> Vec<String> {
    let mut cmd: Vec<String> = image.entrypoint.iter().chain(&image.cmd).cloned().collect();
    while cmd.first().map(String::as_str) == Some(TOOLBOX_IN_CONTAINER) {
        cmd = match cmd.iter().position(|a| a == "--") {
            Some(i) => cmd.split_off(i + 1),
            None => Vec::new(),
        };
    }
    if cmd.is_empty() {
        cmd = vec!["sleep".into(), "infinity".into()];
    }
    cmd
}

/// The host side of a container: where its files live and which network it joins.
pub struct HostSide<'a> {
    pub toolbox_bin: &'a Path,
    pub volumes_dir: &'a Path,
    /// The per-sandbox directory mounted at `/run/cove`.
    pub run_dir: &'a Path,
    /// The agent's sandbox network (`network.rs`) every sandbox whose network is not blocked
    /// joins; `None`: the runtime's default (the simulated runner).
    pub network: Option<&'a str>,
}

/// The container spec of a sandbox (pool members use the default spec of their snapshot).
pub fn container_spec(
    host: &HostSide<'_>,
    name: String,
    spec: &SandboxSpec,
    image: &ImageInfo,
    labels: HashMap<String, String>,
) -> ContainerSpec {
    let user = spec
        .os_user
        .clone()
        .or_else(|| image.user.clone())
        .unwrap_or_else(|| "daytona".into());
    let home = home_of(&user);
    let workdir = image.working_dir.clone().unwrap_or_else(|| home.clone());
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.push(format!("BASH_ENV={RUN_DIR_IN_CONTAINER}/{ENV_FILE}"));
    env.push(format!("HOME={home}"));
    let r = &spec.resources;
    ContainerSpec {
        name,
        image: spec.snapshot.clone(),
        entrypoint: toolbox_entrypoint(&workdir, &home),
        cmd: image_command(image),
        env,
        labels,
        working_dir: Some(workdir),
        binds: binds(host, spec),
        nano_cpus: Some((r.cpu.unwrap_or(DEFAULT_CPU) * 1e9) as i64),
        memory_bytes: Some((r.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB) * 1024 * 1024) as i64),
        pids_limit: Some(r.pids.unwrap_or(DEFAULT_PIDS)),
        network_none: spec.network == NetworkPolicy::BlockAll,
        network: host
            .network
            .filter(|_| spec.network != NetworkPolicy::BlockAll)
            .map(str::to_owned),
        cap_add: ROOT_CAPS.iter().map(|c| (*c).to_owned()).collect(),
        stop_timeout_secs: Some(i64::from(
            spec.stop_timeout_secs.unwrap_or(DEFAULT_STOP_SECS),
        )),
        user,
    }
}

fn toolbox_entrypoint(workdir: &str, home: &str) -> Vec<String> {
    vec![
        TOOLBOX_IN_CONTAINER.into(),
        "--socket".into(),
        format!("{RUN_DIR_IN_CONTAINER}/{SOCKET_NAME}"),
        "--workdir".into(),
        workdir.to_owned(),
        "--home".into(),
        home.to_owned(),
        "--".into(),
    ]
}

fn binds(host: &HostSide<'_>, spec: &SandboxSpec) -> Vec<String> {
    let mut binds = vec![
        format!("{}:{RUN_DIR_IN_CONTAINER}:rw", host.run_dir.display()),
        format!("{}:{TOOLBOX_IN_CONTAINER}:ro", host.toolbox_bin.display()),
    ];
    for v in &spec.volumes {
        let mut src: PathBuf = host.volumes_dir.join(&v.volume_id);
        if let Some(sub) = &v.subpath {
            src = src.join(sub);
        }
        if let Err(e) = std::fs::create_dir_all(&src) {
            tracing::warn!(path = %src.display(), error = %e, "cannot create a volume directory");
        }
        let mode = if v.read_only { "ro" } else { "rw" };
        binds.push(format!("{}:{}:{mode}", src.display(), v.mount_path));
    }
    binds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandboxes_join_the_sandbox_network_unless_blocked() {
        let p = Path::new("/x");
        let side = |network| HostSide {
            toolbox_bin: p,
            volumes_dir: p,
            run_dir: p,
            network,
        };
        let image = ImageInfo::default();
        let open = SandboxSpec::new("img:1");
        let mut blocked = SandboxSpec::new("img:1");
        blocked.network = NetworkPolicy::BlockAll;
        let spec_of = |side: &HostSide<'_>, spec: &SandboxSpec| {
            container_spec(side, "c".into(), spec, &image, HashMap::new())
        };
        let c = spec_of(&side(Some("cove-sandboxes")), &open);
        assert_eq!(
            (c.network.as_deref(), c.network_none),
            (Some("cove-sandboxes"), false)
        );
        let c = spec_of(&side(Some("cove-sandboxes")), &blocked);
        assert_eq!((c.network, c.network_none), (None, true));
        // The simulated runner has no sandbox network.
        let c = spec_of(&side(None), &open);
        assert_eq!((c.network, c.network_none), (None, false));
    }

    #[test]
    fn nested_toolbox_wrappers_are_unwrapped() {
        let wrap = toolbox_entrypoint("/w", "/h");
        // Three backup cycles of the old agent: wrapper, wrapper, wrapper, the real command.
        let mut nested = Vec::new();
        for _ in 0..3 {
            nested.extend(wrap.clone());
        }
        nested.extend(["python3".to_owned(), "-m".into(), "http.server".into()]);
        let image = ImageInfo {
            entrypoint: wrap.clone(),
            cmd: nested,
            ..Default::default()
        };
        assert_eq!(image_command(&image), ["python3", "-m", "http.server"]);
        let plain = ImageInfo {
            entrypoint: vec!["/init".into()],
            cmd: vec!["run".into()],
            ..Default::default()
        };
        assert_eq!(image_command(&plain), ["/init", "run"]);
        assert_eq!(image_command(&ImageInfo::default()), ["sleep", "infinity"]);
    }
}
