//! `cove-bench`: requests/s and latency of `GET /api/api-keys/current`
//!
//! * through `cove` on loopback (HTTP → wasmtime → the `api-keys` component → DynamoDB), and
//! * the same handler called natively in-process (no HTTP server, no WASM),
//!
//! both against one file-backed dynoxide started here, with the same concurrency, so the ratio
//! shows what HTTP + WASM cost. Usage: `cove-bench [--seconds N] [--concurrency N] [--instance-reuse N]`.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use cove_bench::{arg, cpu_time};
use cove_edge::Env;
use cove_edge::config::JwtConfig;
use cove_store::{Store, StoreConfig};
use cove_testkit::Cove;

struct Stats {
    count: usize,
    elapsed: Duration,
    lat: Vec<Duration>,
    errors: usize,
}

impl Stats {
    fn pct(&self, p: f64) -> Duration {
        if self.lat.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.lat.len() as f64 - 1.0) * p).round() as usize;
        self.lat[i]
    }
    fn rps(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
    fn line(&self, name: &str) -> String {
        format!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} |",
            self.rps(),
            self.pct(0.50).as_secs_f64() * 1e3,
            self.pct(0.99).as_secs_f64() * 1e3,
            self.errors
        )
    }
}

/// Requests sent before measuring.
const WARM_UP: usize = 50;

/// [`cove_bench::load`] with this bench's warm-up.
async fn load<F, Fut>(conc: usize, secs: u64, op: F) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let w = cove_bench::load(conc, secs, WARM_UP, op).await;
    Stats {
        count: w.lat.len(),
        elapsed: w.elapsed,
        lat: w.lat,
        errors: w.errors,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = arg("--seconds", 5);
    let conc = arg("--concurrency", 16) as usize;
    let dir = tempfile::tempdir()?;

    // One file-backed dynoxide for both runs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let db = dynoxide::Database::new(&dir.path().join("bench.db").display().to_string())?;
    tokio::spawn(dynoxide::server::serve_on(listener, db));

    let log = dir.path().join("cove.stderr.log");
    let cove = Cove::start(
        cove_bench::cove_options(&endpoint, &dir.path().join("cove"), &log).args([
            "--instance-reuse".to_owned(),
            arg("--instance-reuse", 1).to_string(),
        ]),
    )
    .await?;
    let url = cove.api_url().to_owned();
    let key = cove
        .admin_key()
        .context("cove did not print the admin key")?
        .to_owned();

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .build()?;
    let target = format!("{url}/api-keys/current");
    let check = http.get(&target).bearer_auth(&key).send().await?;
    if !check.status().is_success() {
        bail!("GET {target}: {} {}", check.status(), check.text().await?);
    }
    let cove_pid = Some(cove.pid());
    let cpu_before = cpu_time(cove_pid);
    let via_cove = {
        let (http, target, key) = (http.clone(), target.clone(), key.clone());
        load(conc, secs, move || {
            let req = http.get(&target).bearer_auth(&key);
            async move {
                match req.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await
    };
    // CPU the cove process spent per request (HTTP server, WASM, outbound HTTP; dynoxide runs
    // here, in the bench process): when it is close to the wall time per request and one
    // client's latency, cove is CPU-bound rather than waiting.
    let cove_cpu_per_req = cpu_before.zip(cpu_time(cove_pid)).map(|(a, b)| {
        (b.saturating_sub(a)).as_secs_f64() * 1e3 / (via_cove.count + WARM_UP) as f64
    });
    drop(cove);

    let env = Env {
        store: Store::new(&StoreConfig::local(&endpoint, "cove")),
        jwt: JwtConfig::default(),
    };
    let native = {
        let (env, key) = (env.clone(), key.clone());
        load(conc, secs, move || {
            let env = env.clone();
            let req = http::Request::get("/api/api-keys/current")
                .header("authorization", format!("Bearer {key}"))
                .body(Bytes::new())
                .map_err(|_| ());
            async move {
                match req {
                    Ok(req) => api_keys::handle(&env, req).await.status().is_success(),
                    Err(()) => false,
                }
            }
        })
        .await
    };

    // The floor: the one store read every API-key request makes, natively.
    let hash = cove_store::keys::hash(&key);
    let store_only = {
        let store = env.store.clone();
        load(conc, secs, move || {
            let (store, hash) = (store.clone(), hash.clone());
            async move { matches!(store.api_keys().get_by_hash(&hash).await, Ok(Some(_))) }
        })
        .await
    };

    println!(
        "GET /api/api-keys/current, {conc} concurrent clients, {secs} s each, one dynoxide, cove --instance-reuse {}",
        arg("--instance-reuse", 1)
    );
    println!("| path | req/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|");
    println!("{}", via_cove.line("HTTP → cove → WASM component"));
    println!("{}", native.line("same handler, native in-process"));
    println!(
        "{}",
        store_only.line("one DynamoDB GetItem (aws-sdk → dynoxide), native")
    );
    if let Some(ms) = cove_cpu_per_req {
        println!("cove process CPU per request: {ms:.2} ms");
    }
    println!(
        "ratio: cove/native p50 = {:.2}x, native/cove req/s = {:.2}x",
        via_cove.pct(0.5).as_secs_f64() / native.pct(0.5).as_secs_f64().max(1e-9),
        native.rps() / via_cove.rps().max(1e-9)
    );
    if via_cove.errors > 0 || native.errors > 0 {
        bail!("requests failed during the benchmark");
    }
    Ok(())
}
