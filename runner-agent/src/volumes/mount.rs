//! `rclone mount` of one volume, and the mount table.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::VolumeSettings;
use crate::error::{AgentError, Result};

/// The mount points in `/proc/self/mountinfo` (field 5, octal escapes decoded).
fn mount_points() -> Vec<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

fn unescape(p: &str) -> String {
    p.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

pub(super) fn is_mounted(dir: &Path) -> bool {
    mount_points().iter().any(|p| p == dir)
}

/// A FUSE mount whose server is gone answers `ENOTCONN`.
pub(super) fn healthy(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok()
}

pub(super) fn mounted_under(root: &Path) -> Vec<String> {
    mount_points()
        .iter()
        .filter(|p| p.parent() == Some(root))
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect()
}

/// The rclone remote `:s3,...:<bucket>/volumes/<id>/` (credentials come from the environment).
/// The trailing slash spares rclone its check whether the root is a file (`HEAD volumes/<id>`),
/// which a store keeping objects as files (cove's embedded S3) answers 500 once the prefix holds
/// objects: rclone then retried until the mount timed out.
fn remote(s: &VolumeSettings, id: &str) -> String {
    let prefix = cove_runner_api::volume_prefix(id);
    match &s.endpoint {
        Some(ep) => format!(
            ":s3,provider=Other,endpoint='{ep}',region='{}',force_path_style=true:{}/{prefix}/",
            s.region, s.bucket
        ),
        None => format!(
            ":s3,provider=AWS,region='{}':{}/{prefix}/",
            s.region, s.bucket
        ),
    }
}

fn command(s: &VolumeSettings, id: &str, dir: &Path, cache: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("rclone");
    cmd.arg("mount")
        .arg(remote(s, id))
        .arg(dir)
        // Uploads start 2 s after close: rclone 1.60 loses a file renamed while its upload runs, and a
        // rename of a file whose upload is still queued is applied to the queue.
        .args(["--vfs-cache-mode", "full", "--vfs-write-back", "2s"])
        .args(["--dir-cache-time", "2s", "--attr-timeout", "1s"])
        .args(["--allow-other", "--umask", "0"])
        .args(["--file-perms", "0666", "--dir-perms", "0777"])
        .args(["--uid", "1000", "--gid", "1000"])
        .arg("--cache-dir")
        .arg(cache)
        .arg("--log-file")
        .arg(cache.with_extension("log"))
        .args(["--log-level", "NOTICE"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own session: the agent's death (or its process group's) leaves the mount serving.
        .process_group(0)
        .kill_on_drop(false);
    // rclone 1.60 refuses AWS_CA_BUNDLE ("unsupported transport"); it takes --ca-cert.
    if let Ok(ca) = std::env::var("AWS_CA_BUNDLE") {
        cmd.env_remove("AWS_CA_BUNDLE").arg("--ca-cert").arg(ca);
    }
    for (from, to) in [
        ("AWS_ACCESS_KEY_ID", "RCLONE_S3_ACCESS_KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", "RCLONE_S3_SECRET_ACCESS_KEY"),
        ("AWS_SESSION_TOKEN", "RCLONE_S3_SESSION_TOKEN"),
    ] {
        if let Ok(v) = std::env::var(from) {
            cmd.env(to, v);
        }
    }
    cmd
}

fn failed(id: &str, detail: String) -> AgentError {
    AgentError::Io {
        context: format!("cannot mount volume {id}: {detail}"),
        source: std::io::Error::other("rclone mount failed"),
    }
}

fn log_tail(cache: &Path) -> String {
    let log = std::fs::read_to_string(cache.with_extension("log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

/// Starts rclone and waits until the mount appears (or rclone exits, or the timeout passes).
pub(super) async fn mount(s: &VolumeSettings, id: &str, dir: &Path) -> Result<()> {
    let cache = s.cache_root.join(id);
    for d in [dir, cache.as_path()] {
        std::fs::create_dir_all(d).map_err(|e| failed(id, format!("{}: {e}", d.display())))?;
    }
    let mut child = command(s, id, dir, &cache)
        .spawn()
        .map_err(|e| failed(id, format!("cannot run rclone: {e}")))?;
    let deadline = Instant::now() + s.mount_timeout;
    loop {
        if is_mounted(dir) {
            // The child is rclone itself (it daemonizes only with --daemon): leave it running.
            drop(child);
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(failed(
                id,
                format!("rclone exited ({status}): {}", log_tail(&cache)),
            ));
        }
        if Instant::now() > deadline {
            let _ = child.start_kill();
            return Err(failed(
                id,
                format!("no mount after {:?}: {}", s.mount_timeout, log_tail(&cache)),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether rclone's cache still holds a file not uploaded yet (`"Dirty": true` in `vfsMeta`).
fn dirty(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            dirty(&p)
        } else {
            std::fs::read_to_string(&p).is_ok_and(|s| s.contains("\"Dirty\": true"))
        }
    })
}

/// Waits (at most `patience`) until every file written through the mount is uploaded, so an
/// unmount loses nothing another host should read.
pub(super) async fn wait_uploaded(cache: &Path, patience: Duration) {
    let meta = cache.join("vfsMeta");
    let deadline = Instant::now() + patience;
    while dirty(&meta) {
        if Instant::now() > deadline {
            tracing::warn!(cache = %cache.display(), "volume uploads still pending at unmount; they resume at the next mount");
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn run(program: &str, args: &[&str], dir: &Path) -> bool {
    tokio::process::Command::new(program)
        .args(args)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Unmounts `dir`: a clean unmount (rclone then finishes its uploads and exits), retried while
/// the mount is busy, then a lazy one.
pub(super) async fn unmount(dir: &Path, patience: Duration) {
    let deadline = Instant::now() + patience;
    while is_mounted(dir) && Instant::now() < deadline {
        if run("fusermount3", &["-u"], dir).await || run("umount", &[], dir).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if is_mounted(dir) {
        tracing::warn!(dir = %dir.display(), "volume busy; unmounting lazily");
        let _ = run("fusermount3", &["-uz"], dir).await || run("umount", &["-l"], dir).await;
    }
}

/// The PIDs of the `rclone mount` processes serving `dir`, found by their command line (so also
/// those an earlier agent started). An exited one not reaped yet has an empty command line.
pub(super) fn rclone_pids(dir: &Path) -> Vec<rustix::process::Pid> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let want = dir.as_os_str().as_encoded_bytes();
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let mut args = cmd.split(|b| *b == 0);
            args.next().is_some_and(|a| a.ends_with(b"rclone"))
                && args.next() == Some(b"mount".as_slice())
                && args.nth(1) == Some(want)
        })
        .filter_map(rustix::process::Pid::from_raw)
        .collect()
}

/// Waits until no rclone serves `dir` any more: after an unmount rclone still closes its cache
/// (and a lazily unmounted one serves its last open files); past `patience` it gets SIGTERM, then
/// SIGKILL. A new mount of the volume must not share the cache with an old rclone.
pub(super) async fn rclone_gone(dir: &Path, patience: Duration) {
    let term = Instant::now() + patience;
    let kill = term + Duration::from_secs(5);
    loop {
        let pids = rclone_pids(dir);
        if pids.is_empty() {
            return;
        }
        let now = Instant::now();
        let signal = if now > kill {
            Some(rustix::process::Signal::KILL)
        } else if now > term {
            Some(rustix::process::Signal::TERM)
        } else {
            None
        };
        if let Some(sig) = signal {
            tracing::warn!(dir = %dir.display(), ?pids, ?sig, "rclone still serving an unmounted volume; stopping it");
            for pid in pids {
                let _ = rustix::process::kill_process(pid, sig);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_name_the_volume_prefix() {
        let mut s = VolumeSettings {
            fuse: true,
            mount_root: "/m".into(),
            cache_root: "/c".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            bucket: "cove".into(),
            region: "us-east-1".into(),
            mount_timeout: Duration::from_secs(1),
        };
        assert_eq!(
            remote(&s, "v1"),
            ":s3,provider=Other,endpoint='http://127.0.0.1:9000',region='us-east-1',force_path_style=true:cove/volumes/v1/"
        );
        s.endpoint = None;
        assert_eq!(
            remote(&s, "v1"),
            ":s3,provider=AWS,region='us-east-1':cove/volumes/v1/"
        );
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
