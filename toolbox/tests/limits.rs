//! The daemon stays up: huge outputs are bounded, JSON bodies are limited (uploads are not), and
//! its log stays clean (no colours, no ERROR per request, escaped user input).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use cove_toolbox::output::{TAIL_BYTES, dropped_marker};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The daemon may grow by at most this much above its idle RSS while 1 GiB flows through it.
const RSS_BOUND_KIB: u64 = 64 * 1024;
const GIB: u64 = 1 << 30;
const PATTERN: &[u8] = b"0123456789abcdef\n";
const END: &str = "END-OF-OUTPUT-7f3a\n";

/// Prints 1 GiB of `PATTERN`, then `END`.
fn gib_command() -> String {
    format!("yes 0123456789abcdef | head -c {GIB}; printf '{END}'")
}

/// What the daemon must answer for `gib_command`: the marker, then the exact last bytes.
fn expected_tail() -> String {
    let total = GIB + END.len() as u64;
    let kept = TAIL_BYTES as u64;
    let from = GIB - (kept - END.len() as u64);
    let mut text = dropped_marker(total - kept);
    text.extend((from..GIB).map(|i| PATTERN[(i % PATTERN.len() as u64) as usize] as char));
    text.push_str(END);
    text
}

/// Samples the daemon's VmRSS until stopped; returns the largest seen (KiB).
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let peak = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                && let Some(kib) = s.lines().find_map(|l| {
                    l.strip_prefix("VmRSS:")?
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
            {
                peak.fetch_max(kib, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        peak.load(Ordering::SeqCst)
    })
}

fn assert_tail(what: &str, got: &Value, want: &str) {
    let got = got
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string"));
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(got == want, "{what}: differs from the real tail");
}

async fn wait_exit(d: &Daemon, sid: &str, cid: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let v = d
            .get(&format!("/process/session/{sid}/command/{cid}"))
            .await
            .json();
        if v.get("exitCode").is_some() {
            return v;
        }
        assert!(Instant::now() < deadline, "command did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn gib_through_execute(d: &Daemon, want: &str) {
    let r = d
        .post_json(
            "/process/execute",
            json!({"command": gib_command(), "timeout": 600}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.status);
    let v = r.json();
    assert_eq!(v["exitCode"], 0);
    assert_tail("execute result", &v["result"], want);
    assert_tail("execute stdout", &v["stdout"], want);
    assert_eq!(v["stderr"], "");
}

async fn gib_through_session(d: &Daemon, want: &str) {
    let r = d
        .post_json("/process/session", json!({"sessionId": "big"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = d
        .post_json(
            "/process/session/big/exec",
            json!({"command": gib_command(), "runAsync": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let cid = r.json()["cmdId"].as_str().expect("cmdId").to_owned();
    assert_eq!(wait_exit(d, "big", &cid).await["exitCode"], 0);
    let logs = format!("/process/session/big/command/{cid}/logs");
    let r = d
        .req(
            Method::GET,
            &logs,
            &[("X-Daytona-SDK-Version", "0.226.1")],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_tail("logs output", &v["output"], want);
    assert_tail("logs stdout", &v["stdout"], want);
    assert_eq!(v["stderr"], "");
    let text = d.get(&logs).await.text();
    assert!(text == want, "plain-text logs differ from the real tail");
}

#[tokio::test]
async fn a_gib_of_output_leaves_the_daemon_small_and_answering() {
    let mut d = Daemon::start().await;
    // Warm up (runtime threads, first session), then take the idle figure.
    d.post_json("/process/execute", json!({"command": "true"}))
        .await;
    let idle = d.status_kib("VmRSS");
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(d.pid(), stop.clone());
    let want = expected_tail();
    let started = Instant::now();
    gib_through_execute(&d, &want).await;
    let execute_took = started.elapsed();
    gib_through_session(&d, &want).await;
    stop.store(true, Ordering::SeqCst);
    let sampled = sampler.join().expect("sampler");
    let peak = d.status_kib("VmHWM").max(sampled);
    println!(
        "1 GiB through process/execute in {execute_took:?}, then a session command: daemon RSS idle {idle} KiB, peak {peak} KiB (+{} KiB; bound +{RSS_BOUND_KIB} KiB)",
        peak - idle
    );
    assert!(
        peak - idle < RSS_BOUND_KIB,
        "daemon RSS grew from {idle} KiB to {peak} KiB"
    );
    // It survived and still answers.
    assert!(
        d.child().try_wait().expect("try_wait").is_none(),
        "daemon died"
    );
    assert_eq!(d.get("/version").await.status, StatusCode::OK);
    let v = d
        .post_json("/process/execute", json!({"command": "echo ok"}))
        .await
        .json();
    assert_eq!(v["result"], "ok\n");
}

fn assert_too_large(r: &cove_toolbox::client::Reply, path: &str) {
    assert_eq!(
        r.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{path}: {}",
        r.text()
    );
    let v = r.json();
    assert_eq!(v["statusCode"], 413, "{v}");
    assert_eq!(v["code"], "INVALID_REQUEST_BODY", "{v}");
    assert_eq!(v["source"], "DAYTONA_DAEMON", "{v}");
    assert_eq!(v["path"], path, "{v}");
}

/// A chunked (no Content-Length) JSON body of `len` bytes; returns the response status line.
async fn post_chunked(d: &Daemon, path: &str, len: usize) -> String {
    let mut s = tokio::net::UnixStream::connect(&d.sock)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: toolbox\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < len {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if s.write_all(&frame).await.is_err() {
            break; // the daemon stopped reading: its answer is waiting
        }
        sent += chunk.len();
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.expect("response");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn json_bodies_are_limited_and_uploads_are_not() {
    let d = Daemon::start().await;
    let limit = cove_toolbox::server::JSON_BODY_LIMIT;
    let big = json!({"command": "true", "pad": "x".repeat(limit + 1)});
    for path in [
        "/process/execute",
        "/process/session",
        "/files/replace",
        "/files/bulk-download",
        "/git/clone",
        "/lsp/start",
        "/init",
    ] {
        assert_too_large(&d.post_json(path, big.clone()).await, path);
    }
    let status = post_chunked(&d, "/process/execute", limit + (1 << 20)).await;
    assert!(status.contains(" 413 "), "chunked: {status}");
    // Just under the limit is still served.
    let fits = json!({"command": "echo fits", "pad": "x".repeat(limit - 100)});
    let r = d.post_json("/process/execute", fits).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["result"], "fits\n");

    // Uploads three times the JSON limit: in the SDK's part order and with the file first.
    let data = noise(3 * limit, 7);
    let up = d.upload(&[("/big/a.bin", &data)]).await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.text());
    assert_eq!(up.json()["files"][0]["bytes"], data.len());
    assert!(std::fs::read(d.real("/big/a.bin")).expect("a.bin") == data);
    let (ct, body) = file_first_upload("/big/b.bin", &data);
    let up = d
        .req(
            Method::POST,
            "/files/bulk-upload",
            &[("content-type", &ct)],
            body,
        )
        .await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.text());
    assert_eq!(
        up.json()["files"],
        json!([{"path": "/big/b.bin", "bytes": data.len()}])
    );
    assert!(std::fs::read(d.real("/big/b.bin")).expect("b.bin") == data);
    let spilled = std::fs::read_dir(d.dir.path().join("state"))
        .expect("state dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("upload-"))
        .count();
    assert_eq!(spilled, 0, "spilled upload parts are cleaned up");
}

/// A bulk upload whose `files[0].file` part comes before its `files[0].path`.
fn file_first_upload(path: &str, data: &[u8]) -> (String, Vec<u8>) {
    let b = "XfileFirstBoundary";
    let mut body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"files[0].file\"; filename=\"x\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(
        format!(
            "\r\n--{b}\r\nContent-Disposition: form-data; name=\"files[0].path\"\r\n\r\n{path}\r\n--{b}--\r\n"
        )
        .as_bytes(),
    );
    (format!("multipart/form-data; boundary={b}"), body)
}

#[tokio::test]
async fn the_log_has_no_colours_no_error_per_request_and_escaped_input() {
    let logdir = tempfile::tempdir().expect("tempdir");
    let log = logdir.path().join("daemon.log");
    let d = Daemon::start_logging("cove_toolbox=debug", &log).await;
    let evil = "\x1b[31mred\nFAKE-LINE forged";
    let r = d.get(&format!("/files/info?path={}", q(evil))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = d
        .post_json("/process/session", json!({"sessionId": evil}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // A failure any sandbox user can cause at will (a 502 from git), many times over.
    let clone = json!({"url": "http://127.0.0.1:1/nope.git", "path": "r"});
    for _ in 0..30 {
        let r = d.post_json("/git/clone", clone.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    }
    // debug lines are written as they happen; give the writer a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = std::fs::read_to_string(&log).expect("daemon log");
    assert!(!text.contains('\x1b'), "raw escape in the log:\n{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("FAKE-LINE")),
        "user input forged a log line:\n{text}"
    );
    assert!(
        text.contains("\\u{1b}[31mred\\nFAKE-LINE"),
        "user input is logged escaped:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.contains(" ERROR ")),
        "ERROR lines:\n{text}"
    );
    let failed = text
        .lines()
        .filter(|l| l.contains("request failed"))
        .count();
    assert!(
        (1..=20).contains(&failed),
        "{failed} 'request failed' lines for 30 failures (rate limit 20/min):\n{text}"
    );
}
