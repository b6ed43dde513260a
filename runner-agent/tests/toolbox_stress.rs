//! The toolbox route under load (issue 10 item 9): 8 clients upload (bulk-upload multipart,
//! CONTRACT §10.1) and execute (`process/execute`) against one sandbox through the agent for
//! `COVE_STRESS_SECS` seconds (default 60). Every answer must be below 500 and every uploaded
//! file must read back byte-equal. Prints the figures.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Agent, TOKEN, sid};
use http_body_util::BodyExt;

const CLIENTS: usize = 8;
const BOUNDARY: &str = "cove-stress-boundary-91c2";

fn duration() -> Duration {
    let secs = std::env::var("COVE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// Deterministic pseudo-random content (client, round) → bytes of a size between 1 KiB and 300 KiB.
fn content(client: usize, round: usize) -> Vec<u8> {
    let mut x = (client as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (round as u64 + 1).wrapping_mul(0xBF58_476D);
    let len = 1024 + (x % (300 * 1024)) as usize;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn bulk_body(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (path, data)) in files.iter().enumerate() {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files[{i}].path\"\r\n\r\n{path}\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files[{i}].file\"; filename=\"f{i}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// POSTs `body` with chunked framing: the data, then (after `pause`) the end of the body, as a
/// proxy that streams (the control plane's toolbox route) does. Returns (status, body text).
async fn chunked_post(
    client: &HyperClient,
    url: &str,
    body: Vec<u8>,
    pause: Duration,
) -> Result<(u16, String), String> {
    let frames = futures::stream::unfold(Some(body), move |state| async move {
        match state {
            Some(data) => Some((
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(data))),
                None,
            )),
            None => {
                tokio::time::sleep(pause).await;
                None
            }
        }
    });
    let req = hyper::Request::post(url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(http_body_util::StreamBody::new(frames).boxed())
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

type HyperClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>,
>;

#[derive(Default, Debug)]
struct Tally {
    requests: u64,
    uploads: u64,
    execs: u64,
    bytes: u64,
    failures: Vec<String>,
}

async fn client_loop(agent: &Agent, id: &str, client: usize, until: Instant) -> Tally {
    let mut t = Tally::default();
    let mut round = 0usize;
    let hyper_client: HyperClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    while Instant::now() < until && t.failures.len() < 5 {
        round += 1;
        let files: Vec<(String, Vec<u8>)> = (0..2)
            .map(|k| {
                (
                    format!("/home/daytona/stress/c{client}/r{round}-{k}.bin"),
                    content(client, round * 2 + k),
                )
            })
            .collect();
        // Odd clients stream (chunked, the end of the body a little after its data), even
        // clients send a Content-Length body.
        let resp = if client % 2 == 1 {
            let pause = Duration::from_millis((round % 4) as u64 * 5);
            chunked_post(
                &hyper_client,
                &agent.tb(id, "/files/bulk-upload"),
                bulk_body(&files),
                pause,
            )
            .await
        } else {
            match agent
                .post(id, "/files/bulk-upload")
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(bulk_body(&files))
                .send()
                .await
            {
                Ok(r) => {
                    let s = r.status().as_u16();
                    Ok((s, r.text().await.unwrap_or_default()))
                }
                Err(e) => Err(e.to_string()),
            }
        };
        t.requests += 1;
        match resp {
            Ok((200, _)) => t.uploads += 1,
            Ok((s, body)) => {
                t.failures.push(format!("upload {round}: {s} {body}"));
                continue;
            }
            Err(e) => {
                t.failures.push(format!("upload {round}: {e}"));
                continue;
            }
        }
        for (path, data) in &files {
            t.requests += 1;
            let got = agent
                .get(id, &format!("/files/download?path={path}"))
                .send()
                .await;
            match got {
                Ok(r) if r.status() == 200 => match r.bytes().await {
                    Ok(b) if b.as_ref() == data.as_slice() => t.bytes += b.len() as u64,
                    Ok(b) => t.failures.push(format!(
                        "{path}: {} bytes back, {} sent",
                        b.len(),
                        data.len()
                    )),
                    Err(e) => t.failures.push(format!("{path}: body {e}")),
                },
                Ok(r) => t.failures.push(format!("download {path}: {}", r.status())),
                Err(e) => t.failures.push(format!("download {path}: {e}")),
            }
        }
        t.requests += 1;
        let exec = agent
            .post(id, "/process/execute")
            .json(&serde_json::json!({
                "command": format!("wc -c /home/daytona/stress/c{client}/r{round}-0.bin"),
                "timeout": 30
            }))
            .send()
            .await;
        match exec {
            Ok(r) if r.status() == 200 => {
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                let want = format!("{} ", files[0].1.len());
                if v["exitCode"] == 0 && v["result"].as_str().is_some_and(|s| s.starts_with(&want))
                {
                    t.execs += 1;
                } else {
                    t.failures.push(format!("execute {round}: {v}"));
                }
            }
            Ok(r) => {
                let s = r.status();
                let body = r.text().await.unwrap_or_default();
                t.failures.push(format!("execute {round}: {s} {body}"));
            }
            Err(e) => t.failures.push(format!("execute {round}: {e}")),
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_clients_upload_and_execute() {
    let agent = Agent::start(&[]);
    let id = sid("stress");
    agent.sandbox(&id, |_| {}).await;
    let started = Instant::now();
    let until = started + duration();
    let tallies =
        futures::future::join_all((0..CLIENTS).map(|c| client_loop(&agent, &id, c, until))).await;
    let secs = started.elapsed().as_secs_f64();
    let requests: u64 = tallies.iter().map(|t| t.requests).sum();
    let uploads: u64 = tallies.iter().map(|t| t.uploads).sum();
    let execs: u64 = tallies.iter().map(|t| t.execs).sum();
    let bytes: u64 = tallies.iter().map(|t| t.bytes).sum();
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    println!(
        "toolbox stress: {CLIENTS} clients, {secs:.1} s, {requests} requests ({:.0} req/s), {uploads} bulk uploads, {execs} executes, {:.1} MiB verified, {} failures",
        requests as f64 / secs,
        bytes as f64 / (1 << 20) as f64,
        failures.len()
    );
    assert!(failures.is_empty(), "failures: {failures:#?}");
    assert!(uploads > 0 && execs > 0);
    agent.client.destroy_sandbox(&id).await.expect("destroy");
}

/// The daemon binary the agent mounts into sandboxes.
fn daemon_binary() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/x86_64-unknown-linux-musl/release/cove-toolbox")
}

/// Reads one HTTP/1.1 response with a Content-Length body: (status line, body).
async fn read_response(
    stream: &mut tokio::net::UnixStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                let status = head.lines().next().unwrap_or_default().to_owned();
                return Ok((status, body));
            }
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The root cause of the 502s, without load: a chunked multipart upload whose end comes after
/// its closing boundary. The daemon must read the body to its end before answering and keep
/// the connection; before the fix it answered at the boundary, then closed the connection
/// while the client still had the end of the body to write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_reads_the_body_before_answering() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("root");
    let sock = dir.path().join("toolbox.sock");
    let child = std::process::Command::new(daemon_binary())
        .arg("--root")
        .arg(&root)
        .arg("--socket")
        .arg(&sock)
        .args(["--workdir", "/", "--home", "/", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("daemon (build it with cargo build --release --target x86_64-unknown-linux-musl -p cove-toolbox)");
    let _daemon = KillOnDrop(child);
    common::wait_until("the daemon's socket", Duration::from_secs(10), || async {
        tokio::net::UnixStream::connect(&sock).await.is_ok()
    })
    .await;

    let mut s = tokio::net::UnixStream::connect(&sock)
        .await
        .expect("connect");
    let body = bulk_body(&[("/up/a.bin".to_owned(), content(1, 1))]);
    let head = format!(
        "POST /files/bulk-upload HTTP/1.1\r\nHost: toolbox\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&body).await.expect("body");
    s.write_all(b"\r\n").await.expect("chunk end");
    // The whole multipart body is sent; the end of the HTTP body follows a little later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let end = s.write_all(b"0\r\n\r\n").await;
    let mut buf = Vec::new();
    let first = read_response(&mut s, &mut buf).await;
    assert!(
        end.is_ok(),
        "the daemon closed before the body ended: {end:?}"
    );
    let (status, reply) = first.expect("the upload's answer");
    assert!(
        status.contains(" 200 "),
        "{status} {}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(
        std::fs::read(root.join("up/a.bin")).expect("file"),
        content(1, 1)
    );
    // The same connection serves the next request.
    s.write_all(b"GET /version HTTP/1.1\r\nHost: toolbox\r\n\r\n")
        .await
        .expect("second request");
    let (status, _) = read_response(&mut s, &mut buf)
        .await
        .expect("the connection is kept");
    assert!(status.contains(" 200 "), "{status}");
}

/// Kills (by its pid) the daemon this test started, also when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
