//! `cove-volume-bench`: volumes through the public API of `cove up` (its own Docker runner, its
//! embedded S3, rclone mounts), as the SDK drives them:
//!
//! 1. `POST /api/volumes` → `ready` (polled every 20 ms): the lifecycle sweep provisions the
//!    volume's prefix;
//! 2. a sandbox with the volume at `/home/daytona/vol`; inside it, timed with `date +%s%N`:
//!    sequential write of 256 MiB (`dd … conv=fsync`), sequential read of it, and creating 1,000
//!    small files, on the volume and on the sandbox's own disk (`/home/daytona/disk`), and the
//!    ratios. Volume writes land in rclone's VFS cache on the host and are uploaded after close
//!    (`--vfs-write-back 2s`), so these are the times a program in the sandbox sees; the read
//!    follows the write and is served from that cache.
//!
//! Figures are printed, never asserted.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cove_testkit::{Cove, Runner};
use serde_json::{Value, json};

const MOUNT: &str = "/home/daytona/vol";

struct Api(cove_bench::ApiClient);

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.0.call(method, path, body).await
    }

    /// `GET path` until `field` is `want` (or `bad`, or 120 s pass).
    async fn until(&self, path: &str, want: &str, bad: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = self.call(reqwest::Method::GET, path, None).await?;
            if v["state"] == want {
                return Ok(v);
            }
            if v["state"] == bad || Instant::now() > deadline {
                bail!("{path} did not become {want}: {v}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn exec(&self, sandbox: &Value, command: &str) -> anyhow::Result<String> {
        let id = sandbox["id"].as_str().context("sandbox id")?;
        let proxy = sandbox["toolboxProxyUrl"]
            .as_str()
            .context("toolboxProxyUrl")?;
        let r: Value = self
            .0
            .http
            .post(format!(
                "{}/{id}/process/execute",
                proxy.trim_end_matches('/')
            ))
            .bearer_auth(&self.0.key)
            .json(&json!({"command": command, "timeout": 300}))
            .send()
            .await?
            .json()
            .await?;
        if r["exitCode"] != 0 {
            bail!("{command}: {r}");
        }
        Ok(r["result"].as_str().unwrap_or_default().to_owned())
    }
}

/// Prints `<write ms> <read ms> <1,000 files ms>` for directory `$1`.
const SCRIPT: &str = r#"d=$1; mkdir -p $d; ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
s=$(date +%s%N); dd if=/dev/zero of=$d/big bs=1M count=256 conv=fsync 2>/dev/null; w=$(ms $s)
s=$(date +%s%N); dd if=$d/big of=/dev/null bs=1M 2>/dev/null; r=$(ms $s)
mkdir -p $d/small; s=$(date +%s%N); i=0; while [ $i -lt 1000 ]; do echo x > $d/small/f$i; i=$((i+1)); done; f=$(ms $s)
echo $w $r $f"#;

async fn timings(api: &Api, sandbox: &Value, dir: &str) -> anyhow::Result<[f64; 3]> {
    let cmd = format!("bash -c '{}' bench {dir}", SCRIPT.replace('\'', "'\\''"));
    let out = api.exec(sandbox, &cmd).await?;
    let v: Vec<f64> = out
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    match v.as_slice() {
        [w, r, f] => Ok([*w, *r, *f]),
        _ => bail!("unexpected timings from {dir}: {out}"),
    }
}

fn row(what: &str, vol: f64, disk: f64, mib: Option<f64>) {
    let rate = |ms: f64| mib.map_or(String::new(), |m| format!(" ({:.0} MiB/s)", m / (ms / 1e3)));
    println!(
        "| {what} | {vol:.0} ms{} | {disk:.0} ms{} | {:.1}× |",
        rate(vol),
        rate(disk),
        vol / disk.max(1.0)
    );
}

async fn run(api: &Api) -> anyhow::Result<()> {
    let t = Instant::now();
    let vol = api
        .call(
            reqwest::Method::POST,
            "/volumes",
            Some(json!({"name": format!("bench-{}", uuid::Uuid::new_v4().simple())})),
        )
        .await?;
    let vid = vol["id"].as_str().context("volume id")?.to_owned();
    api.until(&format!("/volumes/{vid}"), "ready", "error")
        .await?;
    println!(
        "| `POST /volumes` → `ready` | {:.0} ms | | |",
        t.elapsed().as_secs_f64() * 1e3
    );
    let body = json!({"volumes": [{"volumeId": vid, "mountPath": MOUNT}]});
    let sb = api
        .call(reqwest::Method::POST, "/sandbox", Some(body))
        .await?;
    let id = sb["id"].as_str().context("sandbox id")?.to_owned();
    let sb = api
        .until(&format!("/sandbox/{id}"), "started", "error")
        .await?;
    let on_vol = timings(api, &sb, &format!("{MOUNT}/bench")).await?;
    let on_disk = timings(api, &sb, "/home/daytona/disk").await?;
    row(
        "sequential write, 256 MiB (`dd conv=fsync`)",
        on_vol[0],
        on_disk[0],
        Some(256.0),
    );
    row(
        "sequential read, 256 MiB",
        on_vol[1],
        on_disk[1],
        Some(256.0),
    );
    row("creating 1,000 small files", on_vol[2], on_disk[2], None);
    api.call(reqwest::Method::DELETE, &format!("/sandbox/{id}"), None)
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("cove.stderr.log");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let db = dynoxide::Database::new(&dir.path().join("bench.db").display().to_string())?;
    tokio::spawn(dynoxide::server::serve_on(listener, db));
    let cove = Cove::start(
        cove_bench::cove_options(&endpoint, &dir.path().join("cove"), &log).runner(Runner::Docker),
    )
    .await?;
    let api = Api(cove_bench::ApiClient {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()?,
        api: cove.api_url().to_owned(),
        key: cove.admin_key().context("admin key")?.to_owned(),
    });
    println!(
        "| volumes (`cove-volume-bench`) | on the volume | on the sandbox's disk | volume / disk |\n|---|---|---|---|"
    );
    let result = run(&api).await;
    if result.is_err() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!("last lines of cove's stderr:");
        for l in tail.into_iter().rev() {
            eprintln!("{l}");
        }
    }
    if let Err(e) = tokio::task::spawn_blocking(move || cove.terminate()).await? {
        eprintln!("stopping cove: {e}");
    }
    result
}
