//! The per-sandbox host directories (`<data-dir>/sandboxes/<slot>`, mounted at `/run/cove` in
//! the sandbox: the toolbox socket and the env file live there).
//!
//! - The parent `<data-dir>/sandboxes` is mode 0700 (no host user reaches below it) and lives
//!   on a mount with `nosuid,nodev,noexec`: at start the agent bind-mounts it onto itself and
//!   remounts it with those flags unless it already has them (a data dir on such a mount), and
//!   unmounts it at shutdown (running sandboxes keep their own mounts; a directory that is the
//!   root of a mount with the flags at start counts as the agent's: one left by a killed agent).
//!   The bind mount of a sandbox's directory inherits the flags, so a binary a root sandbox
//!   plants there with the setuid bit runs neither as setuid nor at all, on the host or in the
//!   sandbox.
//! - Each directory is mode 0700, owned by the container's user (resolved from the image's
//!   `/etc/passwd` for a user name): only that user (and root in the sandbox) and the agent
//!   write there. Each sandbox has only its own directory mounted.
//! - The agent's own writes never follow what the sandbox planted: the env file is written to a
//!   fresh temporary file (`O_EXCL`, so a planted symlink makes it fail) and renamed.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

use rustix::fs::StatVfsMountFlags;
use rustix::mount::MountFlags;

use crate::error::{AgentError, Result};

/// Name of the parent of the sandbox directories inside the data dir.
pub const SANDBOXES_DIR: &str = "sandboxes";

fn io(context: String) -> impl FnOnce(std::io::Error) -> AgentError {
    move |e| AgentError::io(context, e)
}

fn hardened(path: &Path) -> std::io::Result<bool> {
    let want = StatVfsMountFlags::NOSUID | StatVfsMountFlags::NODEV | StatVfsMountFlags::NOEXEC;
    Ok(rustix::fs::statvfs(path)?.f_flag.contains(want))
}

/// Whether `path` is the root of a mount (statx, Linux 5.8+; `false` when unknown).
fn is_mount_root(path: &Path) -> bool {
    use rustix::fs::{AtFlags, CWD, StatxAttributes, StatxFlags};
    rustix::fs::statx(CWD, path, AtFlags::empty(), StatxFlags::BASIC_STATS).is_ok_and(|st| {
        st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
            && st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
    })
}

/// Who made the mount under the sandbox directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootMount {
    /// The agent: [`release_root`] at shutdown.
    Agent,
    /// The data dir is on such a mount already.
    Inherited,
}

/// Agent start: `root` exists, is mode 0700 and is on a `nosuid,nodev,noexec` mount.
pub fn secure_root(root: &Path) -> Result<RootMount> {
    let shown = root.display();
    std::fs::create_dir_all(root).map_err(io(format!("creating {shown}")))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
        .map_err(io(format!("chmod {shown}")))?;
    if hardened(root).map_err(io(format!("statvfs {shown}")))? {
        return Ok(if is_mount_root(root) {
            RootMount::Agent
        } else {
            RootMount::Inherited
        });
    }
    let flags = MountFlags::BIND | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount_bind(root, root)
        .and_then(|()| rustix::mount::mount_remount(root, flags, ""))
        .map_err(|e| {
            io(format!(
                "mounting {shown} nosuid,nodev,noexec (the agent needs CAP_SYS_ADMIN, or mount it so yourself: \
                 mount --bind {shown} {shown} && mount -o remount,bind,nosuid,nodev,noexec {shown})"
            ))(e.into())
        })?;
    if !hardened(root).map_err(io(format!("statvfs {shown}")))? {
        return Err(AgentError::io(
            format!("{shown} is still not nosuid,nodev,noexec after remounting it"),
            std::io::Error::other("mount flags not applied"),
        ));
    }
    tracing::info!(dir = %shown, "sandbox directories mounted nosuid,nodev,noexec");
    Ok(RootMount::Agent)
}

/// Agent shutdown: detaches the agent's mount (the data dir can be removed again).
pub fn release_root(root: &Path, mount: RootMount) {
    if mount == RootMount::Agent
        && let Err(e) = rustix::mount::unmount(root, rustix::mount::UnmountFlags::DETACH)
    {
        tracing::warn!(dir = %root.display(), error = %e, "cannot unmount the sandbox directories");
    }
}

/// A fresh sandbox directory: mode 0700 (owned by the agent until [`hand_over`]), no stale
/// socket.
pub fn create(dir: &Path) -> Result<()> {
    let shown = dir.display();
    std::fs::create_dir_all(dir).map_err(io(format!("creating {shown}")))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(format!("chmod {shown}")))?;
    Ok(())
}

/// Gives the directory to the container's user (uid; group root).
pub fn hand_over(dir: &Path, uid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).map_err(io(format!("stat {}", dir.display())))?;
    if meta.uid() == uid && meta.gid() == 0 {
        return Ok(());
    }
    let owner = rustix::fs::Uid::from_raw(uid);
    rustix::fs::chown(dir, Some(owner), Some(rustix::fs::Gid::ROOT))
        .map_err(|e| AgentError::io(format!("chown {} to {uid}", dir.display()), e.into()))
}

/// Writes `dir/name` atomically without following anything planted in `dir`.
pub fn write_file(dir: &Path, name: &str, content: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&tmp)
        .and_then(|mut f| f.write_all(content))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io(format!("writing {}", path.display())))
}

/// The uid of `user` (`name`, `uid`, `name:group`, `uid:gid`): numeric ones as they are, names
/// through `passwd` (the image's `/etc/passwd`).
pub fn uid_of(user: &str, passwd: Option<&str>) -> Option<u32> {
    let name = user.split(':').next().unwrap_or(user);
    if let Ok(uid) = name.parse::<u32>() {
        return Some(uid);
    }
    if name == "root" {
        return Some(0);
    }
    passwd?.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next() == Some(name))
            .then(|| f.nth(1).and_then(|uid| uid.parse().ok()))
            .flatten()
    })
}

/// Resolved uids by (image id, user): images do not change under an id.
static UIDS: Mutex<Option<HashMap<(String, String), u32>>> = Mutex::new(None);

pub fn cached_uid(image_id: &str, user: &str) -> Option<u32> {
    let g = UIDS.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref()?
        .get(&(image_id.to_owned(), user.to_owned()))
        .copied()
}

pub fn remember_uid(image_id: &str, user: &str, uid: u32) {
    let mut g = UIDS.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(HashMap::new)
        .insert((image_id.to_owned(), user.to_owned()), uid);
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        daytona:x:1000:1000::/home/daytona:/bin/bash\n\
        svc:x:notanumber:1::/:/bin/false\n";

    #[test]
    fn uids() {
        assert_eq!(uid_of("daytona", Some(PASSWD)), Some(1000));
        assert_eq!(uid_of("daytona:daytona", Some(PASSWD)), Some(1000));
        assert_eq!(uid_of("1234:5", None), Some(1234));
        assert_eq!(uid_of("root", None), Some(0));
        assert_eq!(uid_of("svc", Some(PASSWD)), None);
        assert_eq!(uid_of("nobody", Some(PASSWD)), None);
        assert_eq!(uid_of("daytona", None), None);
        // A prefix of a name is not the name.
        assert_eq!(uid_of("dayton", Some(PASSWD)), None);
    }

    #[test]
    fn writes_do_not_follow_planted_links() {
        let d = tempfile::tempdir().expect("tmp");
        let outside = d.path().join("outside");
        std::fs::write(&outside, "keep").expect("write");
        let dir = d.path().join("sb");
        create(&dir).expect("create");
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode();
        assert_eq!(mode & 0o7777, 0o700);
        // The env file itself a symlink: replaced, the target untouched.
        std::os::unix::fs::symlink(&outside, dir.join("env.sh")).expect("symlink");
        write_file(&dir, "env.sh", b"export A=1\n").expect("write");
        assert_eq!(std::fs::read_to_string(&outside).expect("read"), "keep");
        assert_eq!(
            std::fs::read_to_string(dir.join("env.sh")).expect("read"),
            "export A=1\n"
        );
        assert!(
            !std::fs::symlink_metadata(dir.join("env.sh"))
                .expect("meta")
                .is_symlink()
        );
    }

    #[test]
    fn uid_cache() {
        assert_eq!(cached_uid("sha256:x", "u"), None);
        remember_uid("sha256:x", "u", 7);
        assert_eq!(cached_uid("sha256:x", "u"), Some(7));
    }
}
