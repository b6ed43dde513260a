//! The toolbox component inside the real host (`target/release/cove up`), forwarding to a real
//! runner agent (`target/release/cove-runner`) on Docker and its toolbox daemon: exec, a 10 MiB
//! upload and download compared byte for byte, and a transfer larger than the component's whole
//! memory limit (so it can only pass if bodies stream through the component).
//!
//! Needs (built by `scripts/test.sh` before the tests): `cargo build --release -p cove-local
//! -p cove-runner-agent`, `cargo build --release --target x86_64-unknown-linux-musl -p
//! cove-toolbox` and `cargo build --target wasm32-wasip2 --profile wasm -p toolbox-fn`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cove_runner_api::client::RunnerClient;
use cove_runner_api::{DesiredState, SandboxSpec, SandboxState};
use serde_json::{Value, json};

const TOKEN: &str = "toolbox-docker-test-token";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn built(rel: &str, hint: &str) -> PathBuf {
    let p = root().join(rel);
    assert!(p.exists(), "{} is missing; run `{hint}`", p.display());
    p
}

/// The sandbox base image (built or reused by `tests/images/build-base.sh`), after making sure a
/// Docker engine answers.
fn image() -> String {
    let up = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !up {
        let started = Command::new("bash")
            .arg(root().join("scripts/docker.sh"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(started, "no Docker engine and scripts/docker.sh failed");
    }
    if let Ok(img) = std::env::var("COVE_SANDBOX_IMAGE") {
        return img;
    }
    let out = Command::new("bash")
        .arg(root().join("tests/images/build-base.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "tests/images/build-base.sh failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned()
}

/// Reads lines of `child`'s stdout until `want` matches one; returns every line read.
fn wait_for_line(child: &mut Child, what: &str, want: impl Fn(&str) -> bool) -> Vec<String> {
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
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{what} did not get ready: {lines:?}"));
        let done = want(&line);
        lines.push(line);
        if done {
            return lines;
        }
    }
}

/// A `cove-runner` process; its containers are removed on drop.
struct Agent {
    child: Child,
    url: String,
    runner_id: String,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let bin = built(
            "target/release/cove-runner",
            "cargo build --release -p cove-runner-agent",
        );
        built(
            "target/x86_64-unknown-linux-musl/release/cove-toolbox",
            "cargo build --release --target x86_64-unknown-linux-musl -p cove-toolbox",
        );
        let dir = tempfile::tempdir().unwrap();
        let runner_id = format!("tbx{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--token", TOKEN, "--runner-id"])
            .arg(&runner_id)
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = wait_for_line(&mut child, "cove-runner", |l| {
            l.starts_with("cove-runner listening on ")
        });
        let url = lines
            .last()
            .unwrap()
            .trim_start_matches("cove-runner listening on ")
            .trim()
            .to_owned();
        Agent {
            child,
            url,
            runner_id,
            _dir: dir,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label=cove.runner={}", self.runner_id))
            .output();
        if let Ok(out) = out {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .stdout(Stdio::null())
                    .status();
            }
        }
    }
}

/// `--no-runner` when this `cove` starts a local runner agent by default (the test brings its own).
fn no_runner_flag(cove: &Path) -> Option<&'static str> {
    let help = Command::new(cove).args(["up", "--help"]).output().unwrap();
    String::from_utf8_lossy(&help.stdout)
        .contains("--no-runner")
        .then_some("--no-runner")
}

/// `cove up` serving only the toolbox component, on the test's DynamoDB table.
struct Cove {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Cove {
    fn start(dynamodb: &str, table: &str, max_memory_mb: u32) -> Cove {
        let bin = built("target/release/cove", "cargo build --release -p cove-local");
        let wasm = built(
            "target/wasm32-wasip2/wasm/toolbox_fn.wasm",
            "cargo build --target wasm32-wasip2 --profile wasm -p toolbox-fn",
        );
        let dir = tempfile::tempdir().unwrap();
        let manifest = format!(
            r#"spin_manifest_version = 2
[application]
name = "toolbox-test"
[variables]
dynamodb_endpoint = {{ default = "http://127.0.0.1:1" }}
dynamodb_table = {{ default = "cove" }}
aws_region = {{ default = "us-east-1" }}
aws_access_key_id = {{ required = true, secret = true }}
aws_secret_access_key = {{ required = true, secret = true }}
[[trigger.http]]
route = "/toolbox/..."
component = "toolbox"
[[trigger.http]]
route = "/api/toolbox/..."
component = "toolbox"
[component.toolbox]
source = "{wasm}"
allowed_outbound_hosts = ["{{{{ dynamodb_endpoint }}}}", "http://127.0.0.1:*"]
[component.toolbox.variables]
dynamodb_endpoint = "{{{{ dynamodb_endpoint }}}}"
dynamodb_table = "{{{{ dynamodb_table }}}}"
aws_region = "{{{{ aws_region }}}}"
aws_access_key_id = "{{{{ aws_access_key_id }}}}"
aws_secret_access_key = "{{{{ aws_secret_access_key }}}}"
max_request_body_bytes = "0"
"#,
            wasm = wasm.display()
        );
        let manifest_path = dir.path().join("spin.toml");
        std::fs::write(&manifest_path, manifest).unwrap();
        let mut child = Command::new(&bin)
            .arg("up")
            .arg("--manifest")
            .arg(&manifest_path)
            .args(["--listen", "127.0.0.1:0", "--no-build"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--dynamodb-endpoint", dynamodb, "--dynamodb-table", table])
            .args(["--max-memory-mb", &max_memory_mb.to_string()])
            .args(no_runner_flag(&bin))
            .env("RUST_LOG", "warn")
            .env_remove("COVE_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = wait_for_line(&mut child, "cove", |l| l.trim() == "cove ready");
        let api = lines
            .iter()
            .find_map(|l| l.strip_prefix("DAYTONA_API_URL="))
            .unwrap();
        let base = api.trim_end_matches("/api").to_owned();
        Cove {
            child,
            base,
            _dir: dir,
        }
    }
}

impl Drop for Cove {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BOUNDARY: &str = "cove-toolbox-test-7d1f0c2a9b";

fn multipart_upload(path: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(data.len() + 512);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files[0].path\"\r\n\r\n{path}\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files[0].file\"; filename=\"{}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            path.trim_start_matches('/')
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The body of the one `file` part of a bulk-download answer.
fn multipart_file(content_type: &str, body: &[u8]) -> Vec<u8> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .unwrap_or_else(|| panic!("no boundary in {content_type}"))
        .trim_matches('"');
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let start = find(body, format!("--{boundary}").as_bytes(), 0).unwrap();
    let headers_end = find(body, b"\r\n\r\n", start).unwrap() + 4;
    let headers = String::from_utf8_lossy(&body[start..headers_end]);
    assert!(headers.contains("name=\"file\""), "{headers}");
    let end = find(body, format!("\r\n--{boundary}").as_bytes(), headers_end).unwrap();
    body[headers_end..end].to_vec()
}

fn random_bytes(n: usize) -> Vec<u8> {
    // xorshift: incompressible enough, reproducible, no extra dependency.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Fixture {
    http: reqwest::Client,
    cove: Cove,
    agent: Agent,
    env: cove_edge::Env,
    a: common::Tenant,
    b: common::Tenant,
    id: String,
}

impl Fixture {
    async fn start(max_memory_mb: u32) -> Fixture {
        let image = image();
        let env = common::env().await;
        let agent = Agent::start();
        let runner = common::runner(&env, &agent.url, TOKEN).await;
        let a = common::tenant(&env).await;
        let b = common::tenant(&env).await;
        let id = common::sid();
        let status = RunnerClient::new(&agent.url, TOKEN)
            .put_sandbox(&id, &SandboxSpec::new(&image))
            .await
            .unwrap();
        assert_eq!(status.state, SandboxState::Started, "{status:?}");
        common::sandbox(&env, &id, &a.org, "started", Some(&runner.id)).await;
        let cove = Cove::start(
            &cove_testkit::dynamodb_endpoint(),
            env.store.table(),
            max_memory_mb,
        );
        Fixture {
            http: reqwest::Client::new(),
            cove,
            agent,
            env,
            a,
            b,
            id,
        }
    }

    fn tb(&self, path: &str) -> String {
        format!("{}/toolbox/{}{path}", self.cove.base, self.id)
    }

    async fn exec(&self, key: &str, command: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.tb("/process/execute"))
            .bearer_auth(key)
            .json(&json!({ "command": command, "timeout": 30 }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn upload(&self, path: &str, data: &[u8]) -> Value {
        let r = self
            .http
            .post(self.tb("/files/bulk-upload"))
            .bearer_auth(&self.a.key)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(multipart_upload(path, data))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn bulk_download(&self, path: &str) -> Vec<u8> {
        let r = self
            .http
            .post(self.tb("/files/bulk-download"))
            .bearer_auth(&self.a.key)
            .header("accept", "multipart/form-data")
            .json(&json!({ "paths": [path] }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("multipart/form-data"), "{ct}");
        multipart_file(&ct, &r.bytes().await.unwrap())
    }

    async fn raw_download(&self, path: &str) -> Vec<u8> {
        let r = self
            .http
            .get(self.tb("/files/download"))
            .query(&[("path", path)])
            .bearer_auth(&self.a.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap().to_vec()
    }
}

#[tokio::test]
async fn exec_upload_download_and_isolation_through_cove_and_a_real_runner() {
    let f = Fixture::start(256).await;

    let (status, v) = f.exec(&f.a.key, "echo hi").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["exitCode"], 0);
    assert_eq!(v["result"].as_str().unwrap().trim(), "hi");
    let (status, v) = f.exec(&f.a.key, "echo oops >&2; exit 3").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["exitCode"], 3);
    assert!(v["result"].as_str().unwrap().contains("oops"));

    // The deprecated route reaches the same daemon.
    let r = f
        .http
        .get(format!(
            "{}/api/toolbox/{}/toolbox/version",
            f.cove.base, f.id
        ))
        .bearer_auth(&f.a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["version"].is_string());

    // 10 MiB up and down, byte for byte.
    let data = random_bytes(10 << 20);
    let v = f.upload("/tmp/big.bin", &data).await;
    assert_eq!(v["files"][0]["bytes"], data.len(), "{v}");
    let (_, v) = f.exec(&f.a.key, "sha256sum /tmp/big.bin").await;
    let want = sha256_hex_via_daemon_check(&data);
    assert!(
        v["result"].as_str().unwrap().starts_with(&want),
        "{v} vs {want}"
    );
    assert!(f.bulk_download("/tmp/big.bin").await == data);
    assert!(f.raw_download("/tmp/big.bin").await == data);

    // Another organization: 404 through the component too, and the daemon never ran the command.
    let (status, v) = f.exec(&f.b.key, "touch /tmp/pwned").await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["source"], "DAYTONA_API");
    let (_, v) = f.exec(&f.a.key, "test -e /tmp/pwned; echo $?").await;
    assert_eq!(v["result"].as_str().unwrap().trim(), "1");
    // No credential: 401.
    let r = f
        .http
        .post(f.tb("/process/execute"))
        .json(&json!({"command": "true"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Websocket upgrades get a 400 envelope (they cannot cross a wasi:http component).
    let r = f
        .http
        .get(f.tb("/process/session/s/command/c/logs?follow=true"))
        .bearer_auth(&f.a.key)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Stopped (runner and row): 400, nothing forwarded.
    let mut spec = SandboxSpec::new(image());
    spec.generation = 2;
    spec.desired_state = DesiredState::Stopped;
    let st = RunnerClient::new(&f.agent.url, TOKEN)
        .put_sandbox(&f.id, &spec)
        .await
        .unwrap();
    assert_eq!(st.state, SandboxState::Stopped);
    let sandbox_id = cove_api_types::ids::SandboxId::parse(&f.id).unwrap();
    let prev = f
        .env
        .store
        .sandboxes()
        .get(&sandbox_id)
        .await
        .unwrap()
        .unwrap();
    let mut next = prev.clone();
    next.state = cove_api_types::sandbox::SandboxState::Stopped;
    next.desired_state = cove_api_types::sandbox::SandboxDesiredState::Stopped;
    f.env
        .store
        .sandboxes()
        .update(&prev, &next, cove_store::sandboxes::QuotaCheck::Record)
        .await
        .unwrap();
    let (status, v) = f.exec(&f.a.key, "echo hi").await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["code"], "SANDBOX_NOT_STARTED");
}

/// A transfer four times the component's whole linear-memory limit: it only passes when the
/// component hands the body streams through instead of collecting them.
#[tokio::test]
async fn transfers_larger_than_the_component_memory_limit_stream() {
    const LIMIT_MB: u32 = 16;
    let f = Fixture::start(LIMIT_MB).await;
    let data = random_bytes(64 << 20);
    let started = Instant::now();
    let v = f.upload("/tmp/huge.bin", &data).await;
    assert_eq!(v["files"][0]["bytes"], data.len(), "{v}");
    let up = started.elapsed();
    let started = Instant::now();
    assert!(f.raw_download("/tmp/huge.bin").await == data);
    let down = started.elapsed();
    eprintln!(
        "64 MiB through a {LIMIT_MB} MiB component: upload {:.0} MiB/s, download {:.0} MiB/s",
        64.0 / up.as_secs_f64(),
        64.0 / down.as_secs_f64()
    );
}

/// The sha256 of `data` as the daemon's `sha256sum` prints it (hex).
fn sha256_hex_via_daemon_check(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}
