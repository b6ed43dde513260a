//! `cove-toolbox-pty-bench [N]`: keystroke echo latency of a terminal session. A freshly spawned,
//! jailed daemon (the `cove-toolbox` binary next to this one) runs a terminal whose shell becomes
//! `cat` on a raw terminal; over the websocket (`/process/pty/{id}/connect`, unix socket) the
//! bench sends one byte at a time and times until that byte comes back: websocket in, the pty
//! master, `cat` reading and writing the slave, the pump, websocket out.

use std::time::{Duration, Instant};

use axum::http::Method;
use cove_toolbox::client::Conn;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

type Error = Box<dyn std::error::Error>;
type Socket = WebSocketStream<tokio::net::UnixStream>;

const WARMUP: usize = 50;
/// Longest wait for any one byte.
const WAIT: Duration = Duration::from_secs(10);

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Reads output frames into `seen` until it contains `needle`.
async fn read_until(ws: &mut Socket, seen: &mut Vec<u8>, needle: &[u8]) -> Result<(), Error> {
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.map_err(|_| {
            format!(
                "no output within {WAIT:?}; got {:?}",
                String::from_utf8_lossy(seen)
            )
        })?;
        match msg {
            Some(Ok(Message::Binary(b))) => seen.extend_from_slice(&b),
            Some(Ok(Message::Close(f))) => return Err(format!("terminal closed: {f:?}").into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err("websocket ended".into()),
        }
    }
    Ok(())
}

/// One keystroke: send `byte`, wait for it to come back.
async fn keystroke(ws: &mut Socket, byte: u8) -> Result<Duration, Error> {
    let t = Instant::now();
    ws.send(Message::Binary(vec![byte].into())).await?;
    let mut seen = Vec::new();
    read_until(ws, &mut seen, &[byte]).await?;
    Ok(t.elapsed())
}

async fn bench(sock: &std::path::Path, n: usize) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match Conn::open(sock).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    let r = conn
        .send(
            Method::POST,
            "/process/pty",
            &[("content-type", "application/json")],
            r#"{"id":"bench"}"#,
        )
        .await?;
    if !r.status.is_success() {
        return Err(format!("creating the terminal failed: {}", r.text()).into());
    }
    let stream = tokio::net::UnixStream::connect(sock).await?;
    let (mut ws, _) =
        tokio_tungstenite::client_async("ws://toolbox/process/pty/bench/connect", stream).await?;
    // Raw, no echo: every byte goes to `cat` as typed and comes back only through it. The
    // marker is split on the command line so only `printf`'s output matches it.
    ws.send(Message::Binary(
        b"stty raw -echo; printf 'REA''DY'; exec cat\n"
            .to_vec()
            .into(),
    ))
    .await?;
    read_until(&mut ws, &mut Vec::new(), b"READY").await?;
    for i in 0..WARMUP {
        keystroke(&mut ws, b'a' + (i % 26) as u8).await?;
    }
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        times.push(keystroke(&mut ws, b'a' + (i % 26) as u8).await?);
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / n as u32;
    println!(
        "pty keystroke echo, {n} keystrokes: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}  mean {:?}",
        pct(&times, 0.5),
        pct(&times, 0.9),
        pct(&times, 0.99),
        times[n - 1],
        mean
    );
    let _ = ws.close(None).await;
    conn.send(Method::DELETE, "/process/pty/bench", &[], "")
        .await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(500);
    let exe = std::env::current_exe()?;
    let daemon = exe.with_file_name("cove-toolbox");
    let dir = std::env::temp_dir().join(format!("cove-toolbox-pty-bench-{}", std::process::id()));
    let root = dir.join("root");
    std::fs::create_dir_all(&root)?;
    let sock = dir.join("toolbox.sock");
    let mut child = std::process::Command::new(&daemon)
        .arg("--root")
        .arg(&root)
        .arg("--socket")
        .arg(&sock)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("RUST_LOG", "warn")
        .spawn()?;
    let result = bench(&sock, n).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
