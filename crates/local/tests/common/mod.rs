//! Test harness: runs the real `cove` binary against prebuilt test components.
#![allow(dead_code, clippy::unwrap_used)]

pub mod flood;
pub mod manifest;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cove_testkit::process::{Proc, Stderr};
use cove_testkit::procfs;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `<workspace>/target/wasm32-wasip2/wasm/<name>.wasm`; panics with a hint when missing.
pub fn component(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2/wasm")
        .join(format!("{name}.wasm"));
    let crate_name = name.replace('_', "-");
    assert!(
        path.exists(),
        "test component {} is not built; run `cargo build --target wasm32-wasip2 --profile wasm -p {crate_name}`",
        path.display()
    );
    path.canonicalize().unwrap()
}

/// A running `cove up` (the testkit's [`Proc`]: piped output, stopped by PID).
pub struct Cove {
    proc: Proc,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// Lines printed on stdout up to and including `cove ready`.
    pub stdout: Vec<String>,
}

/// What to start.
pub struct Start<'a> {
    pub manifest: &'a str,
    pub data_dir: &'a Path,
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
}

/// Writes `manifest` to `<data_dir>/spin.toml` and builds the `cove up` command
/// (with `--no-build` unless `build`).
fn up_command(start: &Start<'_>, build: bool) -> Command {
    let manifest_path = start.data_dir.join("spin.toml");
    std::fs::write(&manifest_path, start.manifest).unwrap();
    up_command_for(&manifest_path, start, build)
}

/// The `cove up` command for the manifest file at `manifest_path` (`start.manifest` unused).
fn up_command_for(manifest_path: &Path, start: &Start<'_>, build: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cove"));
    cmd.arg("up")
        .arg("--manifest")
        .arg(manifest_path)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(start.data_dir.join("data"))
        .args(if build { None } else { Some("--no-build") })
        .args(start.args)
        .env("RUST_LOG", "info")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("COVE_DATA_DIR")
        .env_remove("COVE_COMPILE_CACHE");
    for (k, v) in start.env {
        cmd.env(k, v);
    }
    cmd
}

impl Cove {
    /// Starts cove (`--no-build`) and waits for `cove ready` (panics after 60 s or if it exits).
    pub fn start(start: Start<'_>) -> Cove {
        Self::spawn(up_command(&start, false))
    }

    /// Starts cove (`--no-build`) on an existing manifest file, e.g. the project's `spin.toml`.
    pub fn start_file(manifest_path: &Path, start: Start<'_>) -> Cove {
        Self::spawn(up_command_for(manifest_path, &start, false))
    }

    /// Like [`Cove::start`], but lets cove build components whose source is missing.
    pub fn start_building(start: Start<'_>) -> Cove {
        Self::spawn(up_command(&start, true))
    }

    fn spawn(mut command: Command) -> Cove {
        let mut proc = Proc::spawn("cove up", &mut command, &Stderr::Echo).unwrap();
        let lines = proc
            .wait_for_line("cove ready", Duration::from_secs(180), |l| {
                l == "cove ready"
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let url = lines
            .iter()
            .find_map(|l| l.strip_prefix("DAYTONA_API_URL="))
            .unwrap_or_else(|| panic!("no DAYTONA_API_URL line in {lines:?}"));
        let base = url.strip_suffix("/api").unwrap().to_owned();
        Cove {
            proc,
            base,
            stdout: lines,
        }
    }

    /// Runs `cove up` expecting it to fail at startup; returns its stderr.
    pub fn start_failing(start: Start<'_>) -> String {
        let mut proc =
            Proc::spawn("cove up", &mut up_command(&start, false), &Stderr::Quiet).unwrap();
        let (status, stderr) = proc
            .wait_exit(Duration::from_secs(60))
            .expect("cove up should have failed, not kept running");
        assert!(!status.success(), "cove up should have failed");
        stderr
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The PID of the cove process.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Resident set size of the cove process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        procfs::rss_bytes(self.pid()).expect("cove's VmRSS")
    }

    /// CPU time (user + system) the cove process has used so far.
    pub fn cpu_time(&self) -> Duration {
        procfs::cpu_time(self.pid()).expect("cove's CPU time")
    }

    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    /// The value of `DAYTONA_API_KEY=` if one was printed.
    pub fn api_key(&self) -> Option<String> {
        self.stdout
            .iter()
            .find_map(|l| l.strip_prefix("DAYTONA_API_KEY="))
            .map(str::to_owned)
    }

    /// SIGKILL, as a crash or an impatient supervisor would: cove gets no chance to clean up.
    pub fn kill(mut self) {
        self.proc.kill();
    }

    /// Sends SIGTERM and waits (20 s, then SIGKILL) for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.proc
            .terminate(Duration::from_secs(20))
            .expect("cove's exit status")
            .0
    }
}

/// GET `url`; returns (status, content-type, version header, body).
pub async fn get(url: &str) -> Response {
    let r = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let content_type = header("content-type");
    let version = header("x-daytona-api-version");
    let body = r.text().await.unwrap();
    Response {
        status,
        content_type,
        version,
        body,
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub version: Option<String>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts this is a host-generated Daytona error envelope for `status`/`path`.
    pub fn assert_envelope(&self, status: u16, path: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/json"),
            "{self:?}"
        );
        let v = self.json();
        assert_eq!(v["statusCode"], status, "{v}");
        assert_eq!(v["path"], path, "{v}");
        assert_eq!(v["source"], "DAYTONA_API", "{v}");
        assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
        assert!(v["message"].as_str().is_some(), "{v}");
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{v}"
        );
    }
}

/// A tiny HTTP server on 127.0.0.1:0 that answers `200 backend-ok` and counts connections.
pub struct Backend {
    pub url: String,
    pub connections: Arc<AtomicUsize>,
}

impl Backend {
    pub async fn start() -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\nbackend-ok")
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Backend { url, connections }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
