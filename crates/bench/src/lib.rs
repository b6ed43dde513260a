//! What both bench binaries share: a load loop, flags, and `cove` started by the testkit
//! (`cove_testkit::Cove`, the same starter the tests use).

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Latencies (sorted) and errors of one timed window.
pub struct Window {
    pub lat: Vec<Duration>,
    pub elapsed: Duration,
    pub errors: usize,
}

/// Runs `op` `warm_up` times, then from `conc` tasks for `secs` seconds; `op` answers whether
/// the request succeeded.
pub async fn load<F, Fut>(conc: usize, secs: u64, warm_up: usize, op: F) -> Window
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    for _ in 0..warm_up {
        op().await;
    }
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < until {
                    let t = Instant::now();
                    if !op().await {
                        errors += 1;
                    }
                    lat.push(t.elapsed());
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((l, e)) = t.await {
            lat.extend(l);
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    lat.sort();
    Window {
        lat,
        elapsed,
        errors,
    }
}

/// The value of flag `--name N` on the command line, else `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) `pid` has used so far; `None` when unknown.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    cove_testkit::procfs::cpu_time(pid?)
}

/// The options both benches start `cove up` with: `$COVE_BENCH_MANIFEST` or the project's
/// `spin.toml`, the bench's own DynamoDB (`endpoint`, table `cove`), `data_dir`, `RUST_LOG`
/// (default `warn`), stderr into `log`.
pub fn cove_options(
    endpoint: &str,
    data_dir: &std::path::Path,
    log: &std::path::Path,
) -> cove_testkit::CoveOptions {
    let manifest = std::env::var("COVE_BENCH_MANIFEST")
        .map_or(cove_testkit::Manifest::Project, |m| {
            cove_testkit::Manifest::File(m.into())
        });
    cove_testkit::CoveOptions::default()
        .manifest(manifest)
        .dynamodb(endpoint, "cove")
        .data_dir(data_dir)
        .env("AWS_ACCESS_KEY_ID", "cove")
        .env("AWS_SECRET_ACCESS_KEY", "cove")
        .log(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .stderr(cove_testkit::process::Stderr::File(log.to_path_buf()))
        .ready_timeout(Duration::from_secs(600))
}

/// A JSON client of the control plane's API with one bearer key (the API benches' calls).
#[derive(Clone)]
pub struct ApiClient {
    pub http: reqwest::Client,
    /// `…/api`
    pub api: String,
    pub key: String,
}

impl ApiClient {
    /// `method path` with `body`; the JSON answer (`null` when empty), an error for a non-2xx.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        use anyhow::Context;
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.with_context(|| path.to_owned())?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            anyhow::bail!("{path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }
}
