//! The api-keys component inside the real host (`target/release/cove up`, a fresh instance per
//! request): 2,000 concurrent `POST /api/api-keys`, each one `TransactWriteItems`, on the test's
//! DynamoDB table. Every answer is a 201 and every key is in the table afterwards: the client
//! request tokens of the transactions never repeat across instances (a repeated token with other
//! parameters fails with `IdempotentParameterMismatchException`; with the same parameters it is
//! answered as a success without being applied).
//!
//! Needs (built by `scripts/test.sh` before the tests): `cargo build --release -p cove-host` and
//! `cargo build --target wasm32-wasip2 --profile wasm -p api-keys`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const WRITES: usize = 2000;
const CONCURRENCY: usize = 16;

fn built(rel: &str, hint: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    assert!(p.exists(), "{} is missing; run `{hint}`", p.display());
    p.canonicalize().unwrap()
}

/// `cove up` serving only the api-keys component, on the test's DynamoDB table; killed on drop.
struct Cove {
    child: Child,
    base: String,
    admin_key: String,
    /// cove's WARN and ERROR lines (the components log every create at INFO).
    problems: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

const MANIFEST: &str = r#"spin_manifest_version = 2
[application]
name = "api-keys-test"
[variables]
dynamodb_endpoint = { default = "http://127.0.0.1:1" }
dynamodb_table = { default = "cove" }
aws_region = { default = "us-east-1" }
aws_access_key_id = { required = true, secret = true }
aws_secret_access_key = { required = true, secret = true }
[[trigger.http]]
route = "/api/api-keys/..."
component = "api-keys"
[component.api-keys]
source = "WASM"
allowed_outbound_hosts = ["{{ dynamodb_endpoint }}"]
[component.api-keys.variables]
dynamodb_endpoint = "{{ dynamodb_endpoint }}"
dynamodb_table = "{{ dynamodb_table }}"
aws_region = "{{ aws_region }}"
aws_access_key_id = "{{ aws_access_key_id }}"
aws_secret_access_key = "{{ aws_secret_access_key }}"
"#;

impl Cove {
    fn start(dynamodb: &str, table: &str) -> Cove {
        let bin = built("target/release/cove", "cargo build --release -p cove-host");
        let wasm = built(
            "target/wasm32-wasip2/wasm/api_keys.wasm",
            "cargo build --target wasm32-wasip2 --profile wasm -p api-keys",
        );
        let dir = tempfile::tempdir().unwrap();
        let manifest_path = dir.path().join("spin.toml");
        let manifest = MANIFEST.replace("WASM", &wasm.display().to_string());
        std::fs::write(&manifest_path, manifest).unwrap();
        let mut child = Command::new(&bin)
            .arg("up")
            .arg("--manifest")
            .arg(&manifest_path)
            .args(["--listen", "127.0.0.1:0", "--no-build", "--no-runner"])
            .args(["--lifecycle-interval", "0", "--instance-reuse", "1"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--dynamodb-endpoint", dynamodb, "--dynamodb-table", table])
            .env("RUST_LOG", "warn")
            .env_remove("COVE_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let problems = collect_problems(child.stderr.take().unwrap());
        let lines = ready_lines(&mut child);
        let find = |prefix: &str| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix} line in {lines:?}"))
                .to_owned()
        };
        Cove {
            base: find("DAYTONA_API_URL=").trim_end_matches("/api").to_owned(),
            admin_key: find("DAYTONA_API_KEY="),
            problems,
            child,
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

/// Keeps the WARN and ERROR lines of `stderr`.
fn collect_problems(stderr: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let problems = Arc::new(Mutex::new(Vec::new()));
    let sink = problems.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("WARN") || line.contains("ERROR") {
                sink.lock().unwrap().push(line);
            }
        }
    });
    problems
}

/// Lines of cove's stdout up to `cove ready` (panics after 60 s).
fn ready_lines(child: &mut Child) -> Vec<String> {
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
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("cove did not get ready: {lines:?}"));
        let done = line.trim() == "cove ready";
        lines.push(line);
        if done {
            return lines;
        }
    }
}

/// `(status, body)` of every create, in any order.
async fn create_all(cove: &Cove) -> Vec<(u16, Value)> {
    let http = reqwest::Client::new();
    let url = format!("{}/api/api-keys", cove.base);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, url, next) = (http.clone(), url.clone(), next.clone());
        let key = cove.admin_key.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= WRITES {
                    return out;
                }
                let resp = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"name": format!("load-{i}"), "permissions": ["write:sandboxes"]}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                out.push((status, resp.json::<Value>().await.unwrap_or(Value::Null)));
            }
        }));
    }
    let mut all = Vec::with_capacity(WRITES);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transactional_writes_are_all_applied() {
    let store = cove_testkit::store().await;
    let cove = Cove::start(&cove_testkit::dynamodb_endpoint(), store.table());
    let started = Instant::now();
    let results = create_all(&cove).await;
    let elapsed = started.elapsed();
    let failed: Vec<&(u16, Value)> = results.iter().filter(|(s, _)| *s != 201).collect();
    assert!(
        failed.is_empty(),
        "{} of {WRITES} creates failed, e.g. {:?}; cove logged: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)],
        cove.problems
            .lock()
            .unwrap()
            .iter()
            .take(5)
            .collect::<Vec<_>>()
    );
    let keys = store.scan_keys().await.unwrap();
    let rows = keys
        .iter()
        .filter(|(_, sk)| sk.starts_with("APIKEY#"))
        .count();
    let pointers = keys
        .iter()
        .filter(|(pk, _)| pk.starts_with("APIKEYHASH#"))
        .count();
    // The bootstrap admin key is one more.
    assert_eq!(rows, WRITES + 1, "API key rows in the table");
    assert_eq!(pointers, WRITES + 1, "API key hash pointers in the table");
    println!(
        "{WRITES} transactional creates at {CONCURRENCY} concurrent through cove: {:.1} s, {:.0}/s, 0 errors",
        elapsed.as_secs_f64(),
        WRITES as f64 / elapsed.as_secs_f64()
    );
}
