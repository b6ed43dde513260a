//! Benchmark (prints figures, asserts nothing about time; `#[ignore]`d, run by
//! `scripts/bench.sh`): one lifecycle sweep over 10,000 sandboxes of which 100 are due for
//! auto-stop, against dynoxide through a counting proxy, so the DynamoDB requests the sweep makes
//! are counted by operation (`X-Amz-Target`). The goal: reads grow with the due count, not the
//! table; the sweep takes at most 1 s.
//!
//! `cargo test --release -p lifecycle --test sweep_bench -- --ignored --nocapture`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cove_api_types::ids::SandboxId;
use cove_api_types::sandbox::SandboxState;
use cove_store::orgs::OrgQuota;
use cove_store::sandboxes::SandboxRecord;
use cove_store::{Store, StoreConfig};
use cove_testkit::{Agent, AgentOptions, FAKE_IMAGE, Harness};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOTAL: usize = 10_000;
const DUE: usize = 100;

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

/// Forwards `client` to `upstream`, counting the `X-Amz-Target` of every request it sees.
async fn relay(mut client: tokio::net::TcpStream, upstream: String, counts: Counts) {
    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            count(&buf[..n], &counts);
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

fn count(chunk: &[u8], counts: &Counts) {
    let text = String::from_utf8_lossy(chunk);
    for line in text.lines() {
        let line = line.to_ascii_lowercase();
        if let Some(v) = line.strip_prefix("x-amz-target: dynamodb_20120810.") {
            *counts
                .lock()
                .unwrap()
                .entry(v.trim().to_owned())
                .or_default() += 1;
        }
    }
}

async fn proxy(upstream: String, counts: Counts) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((c, _)) = listener.accept().await {
            tokio::spawn(relay(c, upstream.clone(), counts.clone()));
        }
    });
    format!("http://{addr}")
}

fn seeded(
    org: &cove_api_types::ids::OrganizationId,
    runner: &cove_api_types::ids::RunnerId,
    i: usize,
    now: OffsetDateTime,
) -> SandboxRecord {
    let idle = if i < DUE {
        time::Duration::minutes(20)
    } else {
        time::Duration::seconds(5)
    };
    let at = cove_api_types::time::format_rfc3339(now - idle);
    let mut r = SandboxRecord::new(
        SandboxId::new_random(),
        org.clone(),
        format!("b{i}"),
        FAKE_IMAGE,
        &at,
    );
    r.state = SandboxState::Started;
    r.runner_id = Some(runner.clone());
    r.container_image = Some(FAKE_IMAGE.to_owned());
    r.auth_token = "x".repeat(32);
    r
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: scripts/bench.sh runs it"]
async fn sweep_reads_grow_with_the_due_count_not_the_table() {
    let counts: Counts = Arc::default();
    let upstream = cove_testkit::dynamo::dynamodb_endpoint();
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let endpoint = proxy(upstream, counts.clone()).await;
    let table = format!("bench-{}", uuid_like());
    let store = Store::new(&StoreConfig::local(&endpoint, &table));
    store.ensure_table().await.unwrap();
    let mut h = Harness::new().await;
    h.env.store = store.clone();
    let agent = Agent::start(AgentOptions::fake()).unwrap();
    let runner = h.register_runner(&agent).await.unwrap();
    let org = h.personal_org("bench").await;
    let quota = OrgQuota {
        total_cpu_quota: 1_000_000,
        total_memory_quota: 1_000_000,
        total_disk_quota: 10_000_000,
        ..OrgQuota::default()
    };
    let now = OffsetDateTime::now_utc();
    let seed = Instant::now();
    for chunk in (0..TOTAL).collect::<Vec<_>>().chunks(100) {
        let writes = chunk.iter().map(|&i| {
            let (store, rec, quota) = (&store, seeded(&org, &runner.id, i, now), &quota);
            async move { store.sandboxes().create(&rec, quota).await.unwrap() }
        });
        futures::future::join_all(writes).await;
    }
    println!(
        "seeded {TOTAL} sandboxes ({DUE} due) in {:.1} s",
        seed.elapsed().as_secs_f64()
    );
    let settings =
        <cove_snapshot_jobs::JobSettings as cove_edge::config::Settings>::from_lookup(|_| None);
    for round in ["100 due", "0 due"] {
        counts.lock().unwrap().clear();
        let t = Instant::now();
        let report = lifecycle::sweep::run(&h.env, &settings, OffsetDateTime::now_utc())
            .await
            .unwrap();
        let took = t.elapsed();
        let c = counts.lock().unwrap().clone();
        println!(
            "sweep over {TOTAL} sandboxes, {round}: {:.0} ms, auto-stopped {}, DynamoDB requests {c:?}",
            took.as_secs_f64() * 1e3,
            report.auto_stopped
        );
    }
    drop(agent);
}

fn uuid_like() -> String {
    SandboxId::new_random().to_string()
}
