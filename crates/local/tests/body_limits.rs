//! Bounded request bodies: a declared length past the component's limit is refused before an
//! instance exists, chunked bodies are cut off at the limit, `max_request_body_bytes = "0"`
//! lifts it; a flood of 200 MB bodies leaves cove's memory where it was.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::flood::{Outcome, stream_body};
use common::{Cove, Start, get, manifest};

const MB: u64 = 1 << 20;

fn start(dir: &std::path::Path) -> Cove {
    let manifest = manifest::app("http://127.0.0.1:9");
    Cove::start(Start {
        manifest: &manifest,
        data_dir: dir,
        args: &[],
        env: &[],
    })
}

fn addr(cove: &Cove) -> String {
    cove.base.strip_prefix("http://").unwrap().to_owned()
}

/// The response is a 413 envelope for `path` and tells the client the connection closes.
fn assert_413(o: &Outcome, path: &str) {
    assert_eq!(o.status, Some(413), "{o:?}");
    let lower = o.response.to_ascii_lowercase();
    assert!(lower.contains("connection: close"), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&o.body()).unwrap();
    assert_eq!(v["statusCode"], 413, "{v}");
    assert_eq!(v["error"], "Payload Too Large", "{v}");
    assert_eq!(v["source"], "DAYTONA_API", "{v}");
    assert_eq!(v["path"], path, "{v}");
    assert!(v["message"].as_str().unwrap().contains("too large"), "{v}");
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn declared_length_past_the_limit_is_refused_before_the_guest_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path());
    // `/small/spin` would loop until the request timeout if an instance ran it: a quick 413
    // means the host answered on the header alone.
    let started = Instant::now();
    let o = stream_body(&addr(&cove), "/small/spin", 200 * MB, false).await;
    assert_413(&o, "/small/spin");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(o.sent < 200 * MB, "the whole body was accepted: {o:?}");
    // Within the limit the guest reads it all.
    let o = stream_body(&addr(&cove), "/small/body", 1000, false).await;
    assert_eq!(o.status, Some(200), "{o:?}");
    assert!(o.body().ends_with("read:1000"), "{o:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_body_is_cut_off_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path());
    let o = stream_body(&addr(&cove), "/small/body", 5000, true).await;
    assert_413(&o, "/small/body");
    let o = stream_body(&addr(&cove), "/small/body", 1000, true).await;
    assert_eq!(o.status, Some(200), "{o:?}");
    assert!(o.body().ends_with("read:1000"), "{o:?}");
    // The default limit (1 MiB + 64 KiB) applies to a component that sets none.
    let o = stream_body(&addr(&cove), "/echo/body", 2 * MB, true).await;
    assert_413(&o, "/echo/body");
    let o = stream_body(&addr(&cove), "/echo/body", MB, true).await;
    assert!(o.body().ends_with(&format!("read:{MB}")), "{o:?}");
    assert_eq!(get(&cove.url("/echo/after")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_means_unlimited() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path());
    for chunked in [false, true] {
        let o = stream_body(&addr(&cove), "/stream/body", 5 * MB, chunked).await;
        assert_eq!(o.status, Some(200), "{o:?}");
        assert!(o.body().ends_with(&format!("read:{}", 5 * MB)), "{o:?}");
    }
    assert!(cove.stderr().contains("max_request_body_bytes=1000"));
}

/// 32 concurrent 200 MB bodies, half with a `Content-Length`, half chunked, at a route whose
/// guest reads the whole body: every one is answered 413, cove's RSS stays within 100 MB of
/// idle, and it still serves afterwards. Prints the figures.
#[tokio::test(flavor = "multi_thread")]
async fn flood_of_large_bodies_leaves_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path());
    for _ in 0..8 {
        assert_eq!(get(&cove.url("/echo/warm")).await.status, 200);
    }
    flood(&cove, "/echo/body", "echo component").await;
    assert_eq!(get(&cove.url("/echo/after")).await.status, 200);
    let o = stream_body(&addr(&cove), "/echo/body", 1000, false).await;
    assert!(o.body().ends_with("read:1000"), "{o:?}");
}

/// The same flood, unauthenticated, at the real control plane (`spin.toml`, no runner):
/// `POST /api/sandbox`, whose component reads the body before it checks credentials.
#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_flood_at_the_control_plane_leaves_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
    let cove = Cove::start_file(
        &manifest,
        Start {
            manifest: "",
            data_dir: dir.path(),
            args: &["--no-runner"],
            env: &[],
        },
    );
    for _ in 0..8 {
        assert_eq!(get(&cove.url("/api/sandbox")).await.status, 401);
    }
    flood(&cove, "/api/sandbox", "control plane").await;
    // Still serving: an unauthenticated list is a 401 envelope, an authenticated one a 200.
    let r = get(&cove.url("/api/sandbox")).await;
    assert_eq!(
        (r.status, &r.json()["statusCode"]),
        (401, &serde_json::json!(401))
    );
    let key = cove.api_key().unwrap();
    let r = reqwest::Client::new()
        .get(cove.url("/api/sandbox"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Sends the 32 bodies to `path`, asserts every answer is a 413 and the RSS bound, prints the
/// figures.
async fn flood(cove: &Cove, path: &'static str, what: &str) {
    let idle = cove.rss_bytes();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (done, pid) = (done.clone(), cove.pid());
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(rss_of(pid));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let addr = addr(cove);
            tokio::spawn(async move { stream_body(&addr, path, 200 * MB, i % 2 == 1).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak = sampler.await.unwrap().max(cove.rss_bytes());
    for o in &outcomes {
        assert_413(o, path);
    }
    let sent: u64 = outcomes.iter().map(|o| o.sent).sum();
    println!(
        "body flood ({what}, {path}): 32 x 200 MB (16 Content-Length, 16 chunked) answered 413 in {:.2} s; cove RSS idle {:.1} MiB, peak {:.1} MiB (+{:.1} MiB); {:.1} MiB written by the clients before the answer",
        elapsed.as_secs_f64(),
        idle as f64 / MB as f64,
        peak as f64 / MB as f64,
        peak.saturating_sub(idle) as f64 / MB as f64,
        sent as f64 / MB as f64
    );
    assert!(
        peak < idle + 100 * MB,
        "RSS grew from {idle} to {peak} bytes under the flood"
    );
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}
