//! `cove-runner-bench [--image IMAGE] [--execs N] [--creates N]`
//!
//! Starts a `cove-runner` (the binary next to this one) with a warm pool and prints:
//! - `process/execute` of `true` through the agent vs `docker exec` on the same container (p50/p99);
//! - create → first successful exec: warm pool vs fresh container vs `docker run` + `docker exec`.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cove_runner_api::SandboxSpec;
use cove_runner_api::client::RunnerClient;

const TOKEN: &str = "bench-token";

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

fn row(name: &str, v: &mut [Duration]) -> (f64, f64) {
    let (p50, p99) = (pct(v, 0.5), pct(v, 0.99));
    println!(
        "{name:<44} n={:<4} p50 {p50:>9.3} ms   p99 {p99:>9.3} ms",
        v.len()
    );
    (p50, p99)
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn docker(args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("docker")
        .args(args)
        .stderr(Stdio::null())
        .output()
}

async fn exec_ok(http: &reqwest::Client, url: &str) -> bool {
    match http
        .post(url)
        .bearer_auth(TOKEN)
        .body(r#"{"command":"true"}"#)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|v| v["exitCode"] == 0),
        _ => false,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let image = arg("--image")
        .or_else(|| std::env::var("COVE_SANDBOX_IMAGE").ok())
        .unwrap_or_else(|| "cove-sandbox-base:latest".into());
    let execs: usize = arg("--execs").map_or(Ok(200), |s| s.parse())?;
    let creates: usize = arg("--creates").map_or(Ok(20), |s| s.parse())?;
    let exe = std::env::current_exe()?;
    let runner = exe.with_file_name("cove-runner");
    let runner_id = format!("bench{}", std::process::id());
    let data = std::env::temp_dir().join(format!("cove-bench-{}", std::process::id()));
    let mut child = Command::new(&runner)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--token",
            TOKEN,
            "--runner-id",
            &runner_id,
        ])
        .arg("--data-dir")
        .arg(&data)
        .args(["--warm-pool", &format!("{image}=2")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("cove-runner listening on ")
        .ok_or("unexpected agent output")?
        .to_owned();
    let client = RunnerClient::new(&url, TOKEN);
    let http = reqwest::Client::new();
    let result = bench(&client, &http, &image, execs, creates).await;
    let _ = child.kill();
    let _ = child.wait();
    let out = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=cove.runner={runner_id}"),
    ])?;
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if !ids.is_empty() {
        let mut a = vec!["rm", "-f"];
        a.extend(ids.iter().map(String::as_str));
        let _ = docker(&a);
    }
    // The killed agent could not release its nosuid,nodev,noexec mount of the sandbox dirs.
    let _ = rustix::mount::unmount(data.join("sandboxes"), rustix::mount::UnmountFlags::DETACH);
    let _ = std::fs::remove_dir_all(&data);
    result
}

async fn wait_pool(client: &RunnerClient, image: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if client
            .info()
            .await
            .is_ok_and(|i| i.warm_pool.get(image).copied().unwrap_or(0) >= 2)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bench(
    client: &RunnerClient,
    http: &reqwest::Client,
    image: &str,
    execs: usize,
    creates: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    // --- exec latency
    let mut spec = SandboxSpec::new(image);
    spec.allow_warm_pool = Some(false);
    let st = client.put_sandbox("bench-exec", &spec).await?;
    let cid = st.container_id.ok_or("no container id")?;
    let url = format!("{}/process/execute", client.toolbox_url("bench-exec"));
    for _ in 0..10 {
        exec_ok(http, &url).await;
    }
    let mut agent = Vec::with_capacity(execs);
    for _ in 0..execs {
        let t = Instant::now();
        if !exec_ok(http, &url).await {
            return Err("execute through the agent failed".into());
        }
        agent.push(t.elapsed());
    }
    let mut dexec = Vec::with_capacity(execs);
    for _ in 0..execs {
        let t = Instant::now();
        let out = docker(&["exec", &cid, "true"])?;
        if !out.status.success() {
            return Err("docker exec failed".into());
        }
        dexec.push(t.elapsed());
    }
    println!("== process/execute `true` ({execs} calls, same container)");
    let (a50, _) = row("agent HTTP -> unix socket -> daemon", &mut agent);
    let (d50, _) = row("docker exec (CLI)", &mut dexec);
    println!("speed-up at p50: {:.1}x", d50 / a50);
    client.destroy_sandbox("bench-exec").await?;

    // --- create -> first successful exec
    let mut warm = Vec::new();
    let mut cold = Vec::new();
    let mut drun = Vec::new();
    for i in 0..creates {
        wait_pool(client, image).await;
        let id = format!("bench-warm-{i}");
        let t = Instant::now();
        let s = client.put_sandbox(&id, &SandboxSpec::new(image)).await?;
        let url = format!("{}/process/execute", client.toolbox_url(&id));
        while !exec_ok(http, &url).await {}
        warm.push(t.elapsed());
        if !s.warm {
            eprintln!("note: create {i} did not get a warm container");
        }
        client.destroy_sandbox(&id).await?;

        let id = format!("bench-cold-{i}");
        let t = Instant::now();
        client.put_sandbox(&id, &spec).await?;
        let url = format!("{}/process/execute", client.toolbox_url(&id));
        while !exec_ok(http, &url).await {}
        cold.push(t.elapsed());
        client.destroy_sandbox(&id).await?;

        let t = Instant::now();
        let out = docker(&["run", "-d", "--init", image, "sleep", "infinity"])?;
        let c = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let ok = docker(&["exec", &c, "true"])?.status.success();
        drun.push(t.elapsed());
        let _ = docker(&["rm", "-f", &c]);
        if !ok {
            return Err("docker run + exec failed".into());
        }
    }
    println!("== create -> first successful exec ({creates} each)");
    row("warm pool (PUT + execute)", &mut warm);
    row("fresh container (PUT + execute)", &mut cold);
    row("docker run -d + docker exec (CLI)", &mut drun);
    Ok(())
}
