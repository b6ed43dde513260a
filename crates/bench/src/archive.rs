//! `cove-archive-bench`: archive and restore through the public API of `cove up` (its own Docker
//! runner and internal registry), as the SDK drives them (`archive()`, then `start()`):
//!
//! - a first sandbox with no changes (its push uploads the base image's layers as well), a
//!   second one with no changes, and one with 100 MiB of changes (`head -c 100M /dev/urandom`);
//! - each is stopped, then timed: `POST /archive` → `archived` (commit, push to the internal
//!   registry, container removed), and `POST /start` → `started` (restored from the backup on
//!   the runner that holds it, so no pull), polled every 20 ms; the restored file's checksum is
//!   compared with the original's.
//!
//! Figures are printed, never asserted.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cove_testkit::{Cove, Runner};
use serde_json::{Value, json};

struct Api(cove_bench::ApiClient);

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        self.0.call(method, path, None).await
    }

    /// `GET /sandbox/{id}` until `state` is `want` (or `error`, or 300 s pass).
    async fn until(&self, id: &str, want: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let v = self
                .call(reqwest::Method::GET, &format!("/sandbox/{id}"))
                .await?;
            if v["state"] == want {
                return Ok(v);
            }
            if v["state"] == "error" || Instant::now() > deadline {
                bail!("sandbox {id} did not become {want}: {v}");
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
        Ok(r["result"].as_str().unwrap_or_default().trim().to_owned())
    }

    /// `POST path` then wait for `want`: the milliseconds in all.
    async fn timed(&self, id: &str, action: &str, want: &str) -> anyhow::Result<f64> {
        let t = Instant::now();
        self.call(reqwest::Method::POST, &format!("/sandbox/{id}/{action}"))
            .await?;
        self.until(id, want).await?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    }
}

const SUM: &str = "sha256sum /home/daytona/changes 2>/dev/null | cut -c1-64";

/// One sandbox with `mib` MiB of changes: (archive ms, restore ms).
async fn cycle(api: &Api, mib: u64) -> anyhow::Result<(f64, f64)> {
    let sb = api
        .0
        .call(
            reqwest::Method::POST,
            "/sandbox",
            Some(json!({"autoStopInterval": 0})),
        )
        .await?;
    let id = sb["id"].as_str().context("sandbox id")?.to_owned();
    let sb = api.until(&id, "started").await?;
    if mib > 0 {
        api.exec(
            &sb,
            &format!("head -c {} /dev/urandom > /home/daytona/changes", mib << 20),
        )
        .await?;
    }
    let before = api.exec(&sb, SUM).await?;
    api.timed(&id, "stop", "stopped").await?;
    let archive = api.timed(&id, "archive", "archived").await?;
    let restore = api.timed(&id, "start", "started").await?;
    let sb = api.until(&id, "started").await?;
    let after = api.exec(&sb, SUM).await?;
    if after != before {
        bail!("the restored sandbox's files differ: {before:?} → {after:?}");
    }
    api.call(reqwest::Method::DELETE, &format!("/sandbox/{id}"))
        .await?;
    Ok((archive, restore))
}

async fn run(api: &Api) -> anyhow::Result<()> {
    // The first backup in the registry uploads the base image's layers too.
    let (af, rf) = cycle(api, 0).await?;
    println!("| first archive (the base image's layers uploaded too) | {af:.0} ms | {rf:.0} ms |");
    let (a0, r0) = cycle(api, 0).await?;
    let (a1, r1) = cycle(api, 100).await?;
    println!("| no changes | {a0:.0} ms | {r0:.0} ms |");
    println!("| 100 MiB of changes | {a1:.0} ms | {r1:.0} ms |");
    println!(
        "| 100 MiB / no changes | {:.1}× | {:.1}× |",
        a1 / a0.max(1.0),
        r1 / r0.max(1.0)
    );
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
        "| archive and restore (`cove-archive-bench`) | `POST /archive` → `archived` | `POST /start` → `started` |\n|---|---|---|"
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
