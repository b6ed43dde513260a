//! The front door: a header-read timeout against slow clients (slowloris), and a connection cap
//! past which connections wait (in the listen backlog) instead of being served.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::{Cove, Start, get, manifest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn start(dir: &std::path::Path, args: &[&str]) -> Cove {
    let manifest = manifest::app("http://127.0.0.1:9");
    Cove::start(Start {
        manifest: &manifest,
        data_dir: dir,
        args,
        env: &[],
    })
}

async fn connect(cove: &Cove) -> TcpStream {
    TcpStream::connect(cove.base.strip_prefix("http://").unwrap())
        .await
        .unwrap()
}

/// Reads until the peer closes; returns what arrived, or `None` if it stayed open `within`.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), &["--header-read-timeout", "1"]);
    let mut slow = connect(&cove).await;
    let started = Instant::now();
    slow.write_all(b"GET /echo/x HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // Trickle a header byte now and then, never the blank line.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if slow.write_all(b"x-slow: 1\r\n").await.is_err() {
            break;
        }
    }
    let got = read_until_closed(&mut slow, Duration::from_secs(10))
        .await
        .expect("the slow connection was never closed");
    let elapsed = started.elapsed();
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "{got:?}");
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed too early: {elapsed:?}"
    );

    // An idle keep-alive connection is closed by the same clock after its last response.
    let mut idle = connect(&cove).await;
    idle.write_all(b"GET /echo/x HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut idle, Duration::from_secs(10))
        .await
        .expect("the idle connection was never closed");
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{got:?}"
    );
    // Normal clients are unaffected.
    assert_eq!(get(&cove.url("/echo/fine")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(
        dir.path(),
        &["--max-connections", "2", "--header-read-timeout", "30"],
    );
    // Two connections hold both slots (accepted, no request yet).
    let first = connect(&cove).await;
    let second = connect(&cove).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A third connects (the kernel's backlog takes it) but is not served.
    let mut third = connect(&cove).await;
    third
        .write_all(b"GET /echo/third HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut third, Duration::from_secs(2))
            .await
            .is_none(),
        "a connection past the cap was served"
    );
    // A slot frees: the waiting connection is accepted and answered.
    drop(first);
    let got = read_until_closed(&mut third, Duration::from_secs(10))
        .await
        .expect("the waiting connection was never served");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("path=/echo/third"), "{text}");
    drop(second);
    assert!(cove.stderr().contains("connection cap reached"));
}
