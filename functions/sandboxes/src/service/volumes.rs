//! Volumes on `POST /sandbox`: each `{volumeId (id or name), mountPath, subpath?}` must name a
//! `ready` volume of the caller's organization, mount at an absolute path outside the system
//! directories, and no two mounts may share a path. Checked before anything is written, so a
//! refused create leaves nothing behind (on the runner either: it never hears of it).

use std::collections::BTreeSet;
use std::path::{Component, Path};

use cove_api_types::ApiError;
use cove_api_types::sandbox::SandboxVolume;
use cove_api_types::volumes::VolumeState;
use cove_edge::store_error::IntoApi;
use cove_store::sandboxes::SandboxVolume as StoredVolume;

use super::{Call, now};

/// Mount paths (and everything under them) a volume may not cover.
const SYSTEM_DIRS: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin", "/sys",
    "/usr", "/var/run",
];

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// An absolute, normalized mount path outside the system directories.
pub fn check_mount_path(mount_path: &str) -> Result<(), ApiError> {
    let p = Path::new(mount_path);
    let normal = p.is_absolute()
        && !mount_path.contains("//")
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !mount_path.split('/').any(|s| s == "." || s == "..");
    if !normal {
        return Err(bad(format!(
            "Invalid mount path {mount_path}: it must be an absolute path without '.' or '..' segments"
        )));
    }
    let trimmed = mount_path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(bad("Cannot mount a volume at the root directory"));
    }
    if SYSTEM_DIRS
        .iter()
        .any(|d| trimmed == *d || trimmed.starts_with(&format!("{d}/")))
    {
        return Err(bad(format!(
            "Invalid mount path {mount_path}: cannot mount a volume in a system directory"
        )));
    }
    Ok(())
}

/// A relative path of plain segments inside the volume.
pub fn check_subpath(subpath: &str) -> Result<(), ApiError> {
    let p = Path::new(subpath);
    let ok = !subpath.is_empty()
        && !p.is_absolute()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !subpath.split('/').any(|s| s == "." || s == "..");
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "Invalid subpath {subpath}: it must be a relative path inside the volume"
        )))
    }
}

/// The shape checks (no I/O): mount paths, subpaths, duplicates.
pub fn check_shape(mounts: &[SandboxVolume]) -> Result<(), ApiError> {
    let mut paths = BTreeSet::new();
    for m in mounts {
        check_mount_path(&m.mount_path)?;
        if let Some(sub) = m.subpath.as_deref().filter(|s| !s.is_empty()) {
            check_subpath(sub)?;
        }
        if !paths.insert(m.mount_path.trim_end_matches('/')) {
            return Err(bad(format!(
                "Duplicate mount path {}: two volumes cannot be mounted at the same path",
                m.mount_path
            )));
        }
    }
    Ok(())
}

/// Resolves and checks the mounts of a create: the volumes as stored on the sandbox.
pub async fn admit(
    call: &Call<'_>,
    mounts: Option<&[SandboxVolume]>,
) -> Result<Vec<StoredVolume>, ApiError> {
    let mounts = mounts.unwrap_or_default();
    check_shape(mounts)?;
    let mut out = Vec::with_capacity(mounts.len());
    for m in mounts {
        let found = call
            .env
            .store
            .volumes()
            .find(call.org(), &m.volume_id)
            .await
            .api()?
            .filter(|v| v.state != VolumeState::Deleted);
        let Some(vol) = found else {
            // 400 as every other refused create body (another organization's volume included).
            return Err(bad(format!("Volume {} not found", m.volume_id)));
        };
        if vol.state != VolumeState::Ready {
            return Err(bad(format!(
                "Volume {} is not in a ready state. Current state: {}",
                m.volume_id, vol.state
            )));
        }
        out.push(StoredVolume {
            volume_id: vol.id,
            mount_path: m.mount_path.trim_end_matches('/').to_owned(),
            subpath: m.subpath.clone().filter(|s| !s.is_empty()),
        });
    }
    Ok(out)
}

/// Records the volumes' use (`lastUsedAt`); a failure only costs the timestamp.
pub async fn touch(call: &Call<'_>, mounts: &[StoredVolume]) {
    let at = now();
    for m in mounts {
        if let Err(e) = call
            .env
            .store
            .volumes()
            .touch_last_used(&m.volume_id, &at)
            .await
        {
            tracing::warn!(volume = %m.volume_id, error = %e, "could not record the volume's use");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &str) -> SandboxVolume {
        SandboxVolume {
            volume_id: "v".into(),
            mount_path: path.into(),
            subpath: None,
        }
    }

    #[test]
    fn mount_paths() {
        for ok in ["/home/daytona/vol", "/data", "/mnt/a/b/", "/var/lib/x"] {
            assert!(check_mount_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "rel/x",
            "/",
            "/proc",
            "/proc/x",
            "/home/daytona/..",
            "/a/./b",
            "//x",
            "/etc",
            "/usr/local",
            "/run/cove",
        ] {
            assert_eq!(check_mount_path(bad).unwrap_err().status, 400, "{bad:?}");
        }
        assert!(check_subpath("users/alice").is_ok());
        for bad in ["/abs", "../x", "a/../b", "."] {
            assert!(check_subpath(bad).is_err(), "{bad:?}");
        }
        assert!(check_shape(&[m("/a"), m("/b")]).is_ok());
        let e = check_shape(&[m("/a"), m("/a/")]).unwrap_err();
        assert!(e.message.contains("Duplicate mount path"), "{}", e.message);
    }
}
