//! `cove-snapshot-api-bench [--runs N]`: snapshots through the public API of `cove up` (its own
//! Docker runner, no warm pool, the internal registry it starts), as the SDK drives them:
//!
//! 1. `POST /api/snapshots` of a one-layer declarative build on the base image → `active`
//!    (polled every 20 ms): the first one also pushes the base layers to the internal registry;
//!    later ones (another layer each) only their own layer;
//! 2. the same build again under another name: content-addressed, `active` without a build
//!    (goal ≤ 1 s);
//! 3. `POST /api/sandbox` from the snapshot (already on the runner) → first `process/execute`
//!    (goal ≤ 400 ms without a warm pool);
//! 4. propagation: a second runner agent attached; time until its heartbeat lists the snapshot.
//!
//! Figures are printed, never asserted.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cove_store::{Store, StoreConfig};
use cove_testkit::{AgentOptions, Cove, Runner};
use serde_json::{Value, json};

#[derive(Clone)]
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

    /// Creates a build snapshot and waits for `active`; answers the time and the snapshot.
    async fn build(&self, name: &str, dockerfile: &str) -> anyhow::Result<(Duration, Value)> {
        let t = Instant::now();
        let body = json!({"name": name, "buildInfo": {"dockerfileContent": dockerfile, "contextHashes": []}});
        let mut snap = self
            .call(reqwest::Method::POST, "/snapshots", Some(body))
            .await?;
        let id = snap["id"].as_str().context("snapshot id")?.to_owned();
        let deadline = Instant::now() + Duration::from_secs(600);
        while snap["state"] != "active" {
            if matches!(snap["state"].as_str(), Some("error" | "build_failed"))
                || Instant::now() > deadline
            {
                bail!("snapshot {name} did not become active: {snap}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            snap = self
                .call(reqwest::Method::GET, &format!("/snapshots/{id}"), None)
                .await?;
        }
        Ok((t.elapsed(), snap))
    }

    /// Sandbox from `snapshot` → first exec of `true`; answers the time and the sandbox id.
    async fn create_exec(&self, snapshot: &str) -> anyhow::Result<(Duration, String)> {
        let t = Instant::now();
        let mut sb = self
            .call(
                reqwest::Method::POST,
                "/sandbox",
                Some(json!({"snapshot": snapshot})),
            )
            .await?;
        let id = sb["id"].as_str().context("sandbox id")?.to_owned();
        let deadline = Instant::now() + Duration::from_secs(120);
        while sb["state"] != "started" {
            if sb["state"] == "error" || Instant::now() > deadline {
                bail!("sandbox from {snapshot} did not start: {sb}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            sb = self
                .call(reqwest::Method::GET, &format!("/sandbox/{id}"), None)
                .await?;
        }
        let proxy = sb["toolboxProxyUrl"].as_str().context("toolboxProxyUrl")?;
        let r = self
            .0
            .http
            .post(format!(
                "{}/{id}/process/execute",
                proxy.trim_end_matches('/')
            ))
            .bearer_auth(&self.0.key)
            .json(&json!({"command": "true"}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("exec in {id}: {}", r.status());
        }
        Ok((t.elapsed(), id))
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn one_layer(n: &str) -> String {
    format!("FROM cove-sandbox-base:latest\nRUN echo {n} > /tmp/cove-bench-nonce\n")
}

async fn builds(api: &Api, runs: usize) -> anyhow::Result<String> {
    let (first, snap) = api
        .build(&format!("bench-{}", nonce()), &one_layer(&nonce()))
        .await?;
    println!(
        "| first one-layer build → active (pushes the base layers too) | {} |",
        ms(first)
    );
    let mut later = Vec::new();
    for _ in 0..runs {
        later.push(
            api.build(&format!("bench-{}", nonce()), &one_layer(&nonce()))
                .await?
                .0,
        );
    }
    println!(
        "| one-layer build → active, base layers in the registry (p50 of {runs}) | {} |",
        ms(p50(later))
    );
    let dockerfile = snap["buildInfo"]["dockerfileContent"]
        .as_str()
        .context("dockerfile")?
        .to_owned();
    let mut hits = Vec::new();
    for _ in 0..runs {
        hits.push(
            api.build(&format!("bench-{}", nonce()), &dockerfile)
                .await?
                .0,
        );
    }
    println!(
        "| same build again, content-addressed hit (p50 of {runs}; goal ≤ 1 s) | {} |",
        ms(p50(hits))
    );
    Ok(snap["name"].as_str().context("name")?.to_owned())
}

async fn sandboxes(api: &Api, snapshot: &str, runs: usize) -> anyhow::Result<()> {
    let mut lat = Vec::new();
    for _ in 0..runs {
        let (d, id) = api.create_exec(snapshot).await?;
        lat.push(d);
        api.call(reqwest::Method::DELETE, &format!("/sandbox/{id}"), None)
            .await?;
    }
    println!(
        "| create → first exec from a custom snapshot on the runner, no warm pool (p50 of {runs}; goal ≤ 400 ms) | {} |",
        ms(p50(lat))
    );
    Ok(())
}

async fn propagation(
    cove: &mut Cove,
    api: &Api,
    store: &Store,
    snapshot: &str,
) -> anyhow::Result<()> {
    let snap = api
        .call(
            reqwest::Method::GET,
            &format!("/snapshots/{snapshot}"),
            None,
        )
        .await?;
    let image = snap["ref"].as_str().context("ref")?.to_owned();
    let t = Instant::now();
    let agent = cove.attach_agent(AgentOptions::docker()).await?;
    let id = agent.runner_id().to_owned();
    let attached = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    // What the second runner's heartbeats advertise, as the scheduler reads it.
    while !store
        .runners()
        .list()
        .await?
        .iter()
        .any(|r| r.id.as_str() == id && r.has_snapshot(&image))
    {
        if Instant::now() > deadline {
            bail!("the second runner never listed {image}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "| propagation to a second runner (attach {} + until its heartbeat lists the ref) | {} |",
        ms(attached),
        ms(t.elapsed())
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs = cove_bench::arg("--runs", 3) as usize;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("cove.stderr.log");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let db = dynoxide::Database::new(&dir.path().join("bench.db").display().to_string())?;
    tokio::spawn(dynoxide::server::serve_on(listener, db));
    let mut cove = Cove::start(
        cove_bench::cove_options(&endpoint, &dir.path().join("cove"), &log)
            .runner(Runner::Docker)
            .args(["--runner-warm-pool", "0"]),
    )
    .await?;
    let api = Api(cove_bench::ApiClient {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?,
        api: cove.api_url().to_owned(),
        key: cove.admin_key().context("admin key")?.to_owned(),
    });
    let store = Store::new(&StoreConfig::local(&endpoint, "cove"));
    println!("| snapshots through the API (`cove-snapshot-api-bench`) | time |\n|---|---|");
    let result = async {
        let name = builds(&api, runs).await?;
        sandboxes(&api, &name, runs).await?;
        propagation(&mut cove, &api, &store, &name).await
    }
    .await;
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
