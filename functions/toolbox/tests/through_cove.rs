//! The toolbox component inside the real host (`cove up`, testkit's [`Cove`]), forwarding to a
//! simulated runner agent (`cove-runner --runtime fake`, whose containers run the real toolbox
//! daemon in-process): exec, a 10 MiB upload and download compared byte for byte, tenant
//! isolation, and a transfer larger than the component's whole memory limit (so it can only pass
//! if bodies stream through the component). No Docker: the real-container path is covered by
//! `runner-agent/tests` and the e2e/SDK suites.
//!
//! Needs `target/release/{cove,cove-runner}` and the `toolbox-fn` wasm component (the testkit
//! builds what is missing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::process::{Command, Stdio};

use cove_runner_api::{DesiredState, SandboxState};
use cove_testkit::{AgentOptions, Cove, CoveOptions, Harness, Manifest, bins, dynamodb_endpoint};
use serde_json::{Value, json};

/// A manifest serving only the toolbox component (`wasm`), with no body limit of its own.
fn manifest(wasm: &std::path::Path) -> String {
    format!(
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
    )
}

/// `cove up` serving only the toolbox component on `h`'s table, `max_memory_mb` per instance.
async fn start_cove(h: &Harness, max_memory_mb: u32) -> Cove {
    let wasm = bins::wasm_component("toolbox-fn").unwrap();
    Cove::start(
        CoveOptions::default()
            .manifest(Manifest::Inline(manifest(&wasm)))
            .dynamodb(dynamodb_endpoint(), h.env.store.table())
            .args(["--max-memory-mb".to_owned(), max_memory_mb.to_string()])
            .log("warn"),
    )
    .await
    .unwrap()
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
    /// The table, and the simulated runner the sandbox runs on.
    h: Harness,
    a: common::Tenant,
    b: common::Tenant,
    id: String,
}

impl Fixture {
    async fn start(max_memory_mb: u32) -> Fixture {
        let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
        let a = common::tenant(&h).await;
        let b = common::tenant(&h).await;
        let id = common::sid();
        let status = h.agent().unwrap().sandbox(&id, |_| {}).await.unwrap();
        assert_eq!(status.state, SandboxState::Started, "{status:?}");
        let runner = h.runner().unwrap().id.clone();
        common::sandbox(&h.env, &id, &a.org, "started", Some(&runner)).await;
        let cove = start_cove(&h, max_memory_mb).await;
        Fixture {
            http: reqwest::Client::new(),
            cove,
            h,
            a,
            b,
            id,
        }
    }

    fn tb(&self, path: &str) -> String {
        format!("{}/toolbox/{}{path}", self.cove.base(), self.id)
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
async fn exec_upload_download_and_isolation_through_cove_and_a_simulated_runner() {
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
            f.cove.base(),
            f.id
        ))
        .bearer_auth(&f.a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["version"].is_string());

    // 10 MiB up and down, byte for byte.
    let data = random_bytes(10 << 20);
    let v = f.upload("big.bin", &data).await;
    assert_eq!(v["files"][0]["bytes"], data.len(), "{v}");
    let (_, v) = f.exec(&f.a.key, "sha256sum big.bin").await;
    let want = sha256_hex_via_daemon_check(&data);
    assert!(
        v["result"].as_str().unwrap().starts_with(&want),
        "{v} vs {want}"
    );
    assert!(f.bulk_download("big.bin").await == data);
    assert!(f.raw_download("big.bin").await == data);

    // Another organization: 404 through the component too, and the daemon never ran the command.
    let (status, v) = f.exec(&f.b.key, "touch pwned").await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["source"], "DAYTONA_API");
    let (_, v) = f.exec(&f.a.key, "test -e pwned; echo $?").await;
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
    let st =
        f.h.agent()
            .unwrap()
            .sandbox(&f.id, |spec| {
                spec.generation = 2;
                spec.desired_state = DesiredState::Stopped;
            })
            .await
            .unwrap();
    assert_eq!(st.state, SandboxState::Stopped);
    let sandbox_id = cove_api_types::ids::SandboxId::parse(&f.id).unwrap();
    let prev =
        f.h.env
            .store
            .sandboxes()
            .get(&sandbox_id)
            .await
            .unwrap()
            .unwrap();
    let mut next = prev.clone();
    next.state = cove_api_types::sandbox::SandboxState::Stopped;
    next.desired_state = cove_api_types::sandbox::SandboxDesiredState::Stopped;
    f.h.env
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
    let v = f.upload("huge.bin", &data).await;
    assert_eq!(v["files"][0]["bytes"], data.len(), "{v}");
    assert!(f.raw_download("huge.bin").await == data);
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
