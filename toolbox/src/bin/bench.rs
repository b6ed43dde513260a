//! `cove-toolbox-bench [N]`: latency of `POST /process/execute {"command":"true"}` over the unix
//! socket of a freshly spawned, jailed daemon (the `cove-toolbox` binary next to this one).

use std::time::{Duration, Instant};

use axum::http::Method;
use cove_toolbox::client::Conn;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
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
        let body = r#"{"command":"true"}"#;
        let headers = [("content-type", "application/json")];
        for _ in 0..20 {
            conn.send(Method::POST, "/process/execute", &headers, body).await?;
        }
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let r = conn.send(Method::POST, "/process/execute", &headers, body).await?;
            times.push(t.elapsed());
            if !r.status.is_success() {
                return Err(format!("execute failed: {}", r.text()).into());
            }
        }
        times.sort();
        let mean = times.iter().sum::<Duration>() / n as u32;
        println!(
            "process/execute `true` over unix socket, {n} calls: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}  mean {:?}",
            pct(&times, 0.5),
            pct(&times, 0.9),
            pct(&times, 0.99),
            times[n - 1],
            mean
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
