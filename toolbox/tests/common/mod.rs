//! Harness: spawns the static musl daemon with `--root <tempdir>` and talks to it over its socket.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::Method;
use cove_toolbox::client::{Conn, Reply};

pub fn binary() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/x86_64-unknown-linux-musl/release/cove-toolbox");
    assert!(
        p.is_file(),
        "the daemon is not built: run `cargo build --release --target x86_64-unknown-linux-musl -p cove-toolbox` first (looked for {})",
        p.display()
    );
    p
}

pub struct Daemon {
    child: Child,
    pub dir: tempfile::TempDir,
    /// The jail (`--root`).
    pub root: PathBuf,
    pub sock: PathBuf,
}

impl Daemon {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts the daemon as an entrypoint for `command` (stdout captured when non-empty).
    pub async fn start_with(command: &[&str]) -> Self {
        Self::spawn(command, "warn", None).await
    }

    /// Starts the daemon with `RUST_LOG=filter`, its stderr going to the file `log`.
    pub async fn start_logging(filter: &str, log: &Path) -> Self {
        Self::spawn(&[], filter, Some(log)).await
    }

    async fn spawn(command: &[&str], rust_log: &str, log: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).expect("root dir");
        let sock = dir.path().join("run/toolbox.sock");
        let stderr = match log {
            Some(p) => Stdio::from(std::fs::File::create(p).expect("log file")),
            None => Stdio::inherit(),
        };
        let child = Command::new(binary())
            .arg("--root")
            .arg(&root)
            .arg("--socket")
            .arg(&sock)
            .arg("--workdir")
            .arg("/")
            .arg("--home")
            .arg("/")
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--")
            .args(command)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(if command.is_empty() {
                Stdio::inherit()
            } else {
                Stdio::piped()
            })
            .stderr(stderr)
            .spawn()
            .expect("spawn daemon");
        let d = Self {
            child,
            dir,
            root,
            sock,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if Conn::open(&d.sock).await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "daemon did not start listening");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        d
    }

    /// A line of the daemon's `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("daemon status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} missing in {status}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    pub async fn conn(&self) -> Conn {
        Conn::open(&self.sock).await.expect("connect")
    }

    pub async fn req(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<bytes::Bytes>,
    ) -> Reply {
        self.conn()
            .await
            .send(method, uri, headers, body)
            .await
            .expect("request")
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.req(Method::GET, uri, &[], bytes::Bytes::new()).await
    }

    pub async fn post_json(&self, uri: &str, body: serde_json::Value) -> Reply {
        self.req(
            Method::POST,
            uri,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
    }

    pub async fn delete_json(&self, uri: &str, body: serde_json::Value) -> Reply {
        self.req(
            Method::DELETE,
            uri,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
    }

    pub async fn post(&self, uri: &str) -> Reply {
        self.req(Method::POST, uri, &[], bytes::Bytes::new()).await
    }

    pub async fn delete(&self, uri: &str) -> Reply {
        self.req(Method::DELETE, uri, &[], bytes::Bytes::new())
            .await
    }

    /// Bulk upload (CONTRACT §10.1): `files[i].path` then `files[i].file`.
    pub async fn upload(&self, files: &[(&str, &[u8])]) -> Reply {
        let (ct, body) = multipart_upload(files);
        self.req(
            Method::POST,
            "/files/bulk-upload",
            &[("content-type", &ct)],
            body,
        )
        .await
    }

    pub fn real(&self, virt: &str) -> PathBuf {
        self.root.join(virt.trim_start_matches('/'))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn q(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub fn multipart_upload(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XtestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (i, (path, data)) in files.iter().enumerate() {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files[{i}].path\"\r\n\r\n{path}\r\n"
            )
            .as_bytes(),
        );
        let mangled = path.trim_start_matches('/');
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files[{i}].file\"; filename=\"{mangled}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A parsed multipart part: (name, filename, content-type, body).
#[derive(Debug)]
pub struct Part {
    pub name: String,
    pub filename: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn param(header: &str, key: &str) -> String {
    let pat = format!("{key}=\"");
    header
        .find(&pat)
        .map(|i| {
            let rest = &header[i + pat.len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
        })
        .unwrap_or_default()
}

/// Parses a multipart/form-data response that uses Content-Length in every part; panics on
/// anything malformed (including a missing closing boundary).
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("boundary in content type")
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut pos = find(body, delim.as_bytes(), 0).expect("first boundary");
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            break;
        }
        assert!(body[pos..].starts_with(b"\r\n"), "CRLF after boundary");
        pos += 2;
        let hend = find(body, b"\r\n\r\n", pos).expect("end of part headers");
        let headers = String::from_utf8_lossy(&body[pos..hend]).into_owned();
        let mut disposition = String::new();
        let mut ctype = String::new();
        let mut len = None;
        for line in headers.split("\r\n") {
            let (k, v) = line.split_once(':').expect("header line");
            match k.to_ascii_lowercase().as_str() {
                "content-disposition" => disposition = v.trim().to_owned(),
                "content-type" => ctype = v.trim().to_owned(),
                "content-length" => len = Some(v.trim().parse::<usize>().expect("length")),
                _ => {}
            }
        }
        let start = hend + 4;
        let len = len.expect("Content-Length in part");
        let data = body[start..start + len].to_vec();
        pos = start + len;
        assert!(body[pos..].starts_with(b"\r\n"), "CRLF after part body");
        pos += 2;
        assert!(
            body[pos..].starts_with(delim.as_bytes()),
            "boundary after part"
        );
        parts.push(Part {
            name: param(&disposition, "name"),
            filename: param(&disposition, "filename"),
            content_type: ctype,
            body: data,
        });
    }
    parts
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
