//! The api-keys component inside the real host (`target/release/cove up`, a fresh instance per
//! request): 2,000 concurrent `POST /api/api-keys`, each one `TransactWriteItems`, on the test's
//! DynamoDB table. Every answer is a 201 and every key is in the table afterwards: the client
//! request tokens of the transactions never repeat across instances (a repeated token with other
//! parameters fails with `IdempotentParameterMismatchException`; with the same parameters it is
//! answered as a success without being applied).
//!
//! Needs `target/release/cove` and the `api-keys` wasm component (the testkit builds what is
//! missing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use cove_testkit::process::Stderr;
use cove_testkit::{Cove, CoveOptions, Manifest, bins};
use serde_json::{Value, json};

const WRITES: usize = 2000;
const CONCURRENCY: usize = 16;

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

/// `cove up` serving only the api-keys component, on the test's DynamoDB table, a fresh
/// instance per request.
async fn start_cove(dynamodb: &str, table: &str) -> Cove {
    let wasm = bins::wasm_component("api-keys").unwrap();
    let manifest = MANIFEST.replace("WASM", &wasm.display().to_string());
    Cove::start(
        CoveOptions::default()
            .manifest(Manifest::Inline(manifest))
            .dynamodb(dynamodb, table)
            .args(["--lifecycle-interval", "0", "--instance-reuse", "1"])
            .log("warn")
            .stderr(Stderr::Quiet),
    )
    .await
    .unwrap()
}

/// cove's WARN and ERROR lines (the components log every create at INFO).
fn problems(cove: &Cove) -> Vec<String> {
    cove.stderr()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(str::to_owned)
        .collect()
}

/// `(status, body)` of every create, in any order.
async fn create_all(cove: &Cove) -> Vec<(u16, Value)> {
    let http = reqwest::Client::new();
    let url = cove.url("/api/api-keys");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, url, next) = (http.clone(), url.clone(), next.clone());
        let key = cove.admin_key().unwrap().to_owned();
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
    let cove = start_cove(&cove_testkit::dynamodb_endpoint(), store.table()).await;
    let started = Instant::now();
    let results = create_all(&cove).await;
    let elapsed = started.elapsed();
    let failed: Vec<&(u16, Value)> = results.iter().filter(|(s, _)| *s != 201).collect();
    assert!(
        failed.is_empty(),
        "{} of {WRITES} creates failed, e.g. {:?}; cove logged: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)],
        problems(&cove).iter().take(5).collect::<Vec<_>>()
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
