//! `cove-toolbox-bench [execute|interp] [N]`: latency over the unix socket of a freshly spawned,
//! jailed daemon (the `cove-toolbox` binary next to this one).
//!
//! * `execute` (the default): `POST /process/execute {"command":"true"}` on one keep-alive
//!   connection.
//! * `interp`: `run_code("x+1")` in the warm default interpreter context, as the SDKs do it:
//!   a new connection and websocket per execution, the request, the chunks up to the close.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::Method;
use cove_toolbox::client::Conn;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type BoxError = Box<dyn std::error::Error>;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let n = times.len();
    let mean = times.iter().sum::<Duration>() / n as u32;
    println!(
        "{what}, {n} calls: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}  mean {:?}",
        pct(&times, 0.5),
        pct(&times, 0.9),
        pct(&times, 0.99),
        times[n - 1],
        mean
    );
}

async fn bench_execute(conn: &mut Conn, n: usize) -> Result<(), BoxError> {
    let body = r#"{"command":"true"}"#;
    let headers = [("content-type", "application/json")];
    for _ in 0..20 {
        conn.send(Method::POST, "/process/execute", &headers, body)
            .await?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = conn
            .send(Method::POST, "/process/execute", &headers, body)
            .await?;
        times.push(t.elapsed());
        if !r.status.is_success() {
            return Err(format!("execute failed: {}", r.text()).into());
        }
    }
    report("process/execute `true` over unix socket", times);
    Ok(())
}

/// One `run_code`: its stdout, or an error for an error chunk or an abnormal close.
async fn run_code(sock: &Path, code: &str) -> Result<String, BoxError> {
    let stream = tokio::net::UnixStream::connect(sock).await?;
    let (mut ws, _) =
        tokio_tungstenite::client_async("ws://toolbox/process/interpreter/execute", stream).await?;
    let request = serde_json::json!({ "code": code }).to_string();
    ws.send(Message::Text(request.into())).await?;
    let mut stdout = String::new();
    while let Some(m) = ws.next().await {
        match m? {
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t)?;
                match v["type"].as_str() {
                    Some("stdout") => stdout.push_str(v["text"].as_str().unwrap_or_default()),
                    Some("error") => return Err(format!("the code failed: {v}").into()),
                    _ => {}
                }
            }
            Message::Close(f) => match f {
                Some(f) if u16::from(f.code) != 1000 => {
                    return Err(format!("closed with {f:?}").into());
                }
                _ => break,
            },
            _ => {}
        }
    }
    Ok(stdout)
}

async fn bench_interp(sock: &Path, n: usize) -> Result<(), BoxError> {
    run_code(sock, "x = 1").await?;
    for _ in 0..20 {
        run_code(sock, "x+1").await?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        run_code(sock, "x+1").await?;
        times.push(t.elapsed());
    }
    report(
        "interpreter run_code(\"x+1\") in a warm context (new websocket each)",
        times,
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some("execute" | "interp") => args.remove(0),
        _ => "execute".to_owned(),
    };
    let n: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(200)
        .max(1);
    let exe = std::env::current_exe()?;
    let daemon = exe.with_file_name("cove-toolbox");
    let dir = std::env::temp_dir().join(format!("cove-toolbox-bench-{}", std::process::id()));
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
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut conn = loop {
            match Conn::open(&sock).await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        match mode.as_str() {
            "interp" => bench_interp(&sock, n).await,
            _ => bench_execute(&mut conn, n).await,
        }
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
