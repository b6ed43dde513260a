//! Test harness: runs the real `cove` binary against prebuilt test components.
#![allow(dead_code, clippy::unwrap_used)]

pub mod flood;
pub mod manifest;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

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

/// A running `cove up`.
pub struct Cove {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// Lines printed on stdout up to and including `cove ready`.
    pub stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

/// What to start.
pub struct Start<'a> {
    pub manifest: &'a str,
    pub data_dir: &'a Path,
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
}

fn spawn_stderr_collector(mut stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&chunk[..n]);
            eprint!("{text}");
            sink.lock().unwrap().push_str(&text);
        }
    });
    buf
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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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
        let mut child = command.spawn().unwrap();
        let stderr = spawn_stderr_collector(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let ready = line == "cove ready";
                    lines.push(line);
                    if ready {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "cove did not print `cove ready`; stdout: {lines:?}\nstderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        }
        let url = lines
            .iter()
            .find_map(|l| l.strip_prefix("DAYTONA_API_URL="))
            .unwrap_or_else(|| panic!("no DAYTONA_API_URL line in {lines:?}"));
        let base = url.strip_suffix("/api").unwrap().to_owned();
        Cove {
            child: Some(child),
            base,
            stdout: lines,
            stderr,
        }
    }

    /// Runs `cove up` expecting it to fail at startup; returns its stderr.
    pub fn start_failing(start: Start<'_>) -> String {
        let output = up_command(&start, false).output().unwrap();
        assert!(!output.status.success(), "cove up should have failed");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The PID of the cove process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Resident set size of the cove process (`VmRSS` of `/proc/<pid>/status`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"));
        kib * 1024
    }

    /// CPU time (user + system) the cove process has used so far.
    pub fn cpu_time(&self) -> Duration {
        let pid = self.child.as_ref().unwrap().id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15 (clock ticks).
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The value of `DAYTONA_API_KEY=` if one was printed.
    pub fn api_key(&self) -> Option<String> {
        self.stdout
            .iter()
            .find_map(|l| l.strip_prefix("DAYTONA_API_KEY="))
            .map(str::to_owned)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("cove did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cove {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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
