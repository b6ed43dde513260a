//! Request timeouts (epoch interruption), memory limits, instance reuse.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::{Cove, Start, get, manifest};

fn start(dir: &std::path::Path, args: &[&str]) -> Cove {
    let manifest = manifest::app("http://127.0.0.1:9");
    Cove::start(Start {
        manifest: &manifest,
        data_dir: dir,
        args,
        env: &[],
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_bound_guest_gets_504_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), &["--request-timeout", "2"]);
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(20), get(&cove.url("/echo/spin")))
        .await
        .expect("a spinning guest must not hang the request");
    let elapsed = started.elapsed();
    r.assert_envelope(504, "/echo/spin");
    assert!(
        elapsed >= Duration::from_millis(1900),
        "timed out too early: {elapsed:?}"
    );
    // Epoch interruption answers at the deadline; the host's fallback timer would be later.
    assert!(
        elapsed < Duration::from_millis(3500),
        "timed out too late: {elapsed:?}"
    );

    // Two spinning requests at once on a 2-core machine: both time out, and other
    // requests are still served meanwhile.
    let spin = |url: String| tokio::spawn(async move { get(&url).await });
    let a = spin(cove.url("/echo/spin"));
    let b = spin(cove.url("/echo/spin"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quick = Instant::now();
    assert_eq!(get(&cove.url("/echo/ok")).await.status, 200);
    assert!(
        quick.elapsed() < Duration::from_secs(1),
        "starved: {:?}",
        quick.elapsed()
    );
    assert_eq!(a.await.unwrap().status, 504);
    assert_eq!(b.await.unwrap().status, 504);
    assert!(cove.stderr().contains("request timed out"));

    // The spinning instances were stopped, not left running in the background.
    let before = cove.cpu_time();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cove.cpu_time() - before;
    assert!(
        used < Duration::from_millis(400),
        "cove still burns CPU after the timeouts: {used:?} in 1 s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_is_limited_per_instance() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), &["--max-memory-mb", "64"]);
    let r = get(&cove.url("/echo/alloc?mb=16")).await;
    assert_eq!(r.status, 200, "{r:?}");
    // 100 MiB does not fit in 64: the guest's allocation fails (507 from the guest, or 500
    // if it aborts); it never succeeds.
    let r = get(&cove.url("/echo/alloc?mb=100")).await;
    assert_ne!(r.status, 200, "{r:?}");
    assert!(r.status == 507 || r.status == 500, "{r:?}");
    // A fresh instance per request: the next one has its memory back.
    assert_eq!(get(&cove.url("/echo/alloc?mb=16")).await.status, 200);

    drop(cove);
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), &["--max-memory-mb", "256"]);
    assert_eq!(get(&cove.url("/echo/alloc?mb=100")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_reuse_serves_many_requests() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), &["--instance-reuse", "50"]);
    let client = reqwest::Client::new();
    for i in 0..120 {
        let r = client
            .get(cove.url(&format!("/echo/n{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        assert!(body.contains(&format!("path=/echo/n{i} ")), "{body}");
    }
    // A timeout in a reused instance is still enforced.
    drop(cove);
    let dir = tempfile::tempdir().unwrap();
    let cove = start(
        dir.path(),
        &["--instance-reuse", "50", "--request-timeout", "1"],
    );
    assert_eq!(get(&cove.url("/echo/warm")).await.status, 200);
    get(&cove.url("/echo/spin"))
        .await
        .assert_envelope(504, "/echo/spin");
    assert_eq!(get(&cove.url("/echo/after")).await.status, 200);
}
