//! `cove-sandbox-bench`: the full SDK path, HTTP → `cove` → WASM function → runner agent →
//! in-sandbox toolbox daemon, with exactly the HTTP calls the official Python SDK makes
//! (`POST /api/sandbox`, `POST {toolboxProxyUrl}/{id}/process/execute`, `GET /api/sandbox/{id}`,
//! `GET /api/sandbox?limit=100`), over keep-alive connections.
//!
//! It runs one dynoxide here (so it can read the runner row and seed rows), starts
//! `cove up --dynamodb-endpoint <it>` (which starts the local runner agent with its warm pool) and
//! measures, in order:
//! 1. create → first exec with a warm container (waiting for the pool to refill between
//!    iterations; the delete is outside the timed part), and once with the pool drained;
//! 2. exec on one started sandbox, 1 client and `--exec-concurrency` clients, the same call
//!    straight to the runner agent, and calls the toolbox function refuses (no credential: 401;
//!    a sandbox id not in the caller's organization: 404);
//! 3. `GET /api/sandbox/{id}`, 1 and `--concurrency` clients;
//! 4. `GET /api/sandbox?limit=100` over `--seed` sandbox rows written straight into the store
//!    (state `stopped`, no runner), the first page and all pages.
//!
//! Usage: `cove-sandbox-bench [--creates 30] [--seconds 2] [--concurrency 16]
//! [--exec-concurrency 4] [--seed 1000]`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cove_api_types::ids::{OrganizationId, SandboxId};
use cove_api_types::sandbox::{SandboxDesiredState, SandboxState};
use cove_bench::{arg, cpu_time};
use cove_store::orgs::OrgQuota;
use cove_store::sandboxes::SandboxRecord;
use cove_store::{Store, StoreConfig};
use cove_testkit::{Cove, Runner};
use serde_json::{Value, json};

/// Latencies of one measurement, sorted.
struct Stats {
    lat: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
}

impl Stats {
    fn new(mut lat: Vec<Duration>, elapsed: Duration, errors: usize) -> Self {
        lat.sort();
        Self {
            lat,
            elapsed,
            errors,
        }
    }
    fn pct_ms(&self, p: f64) -> f64 {
        if self.lat.is_empty() {
            return 0.0;
        }
        let i = ((self.lat.len() as f64 - 1.0) * p).round() as usize;
        self.lat[i].as_secs_f64() * 1e3
    }
    fn rps(&self) -> f64 {
        self.lat.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn row(&self, name: &str, goal: &str, with_rps: bool) -> String {
        let rps = if with_rps {
            format!("{:.0}", self.rps())
        } else {
            "–".to_owned()
        };
        format!(
            "| {name} | {} | {:.2} | {:.2} | {rps} | {} | {goal} |",
            self.lat.len(),
            self.pct_ms(0.50),
            self.pct_ms(0.99),
            self.errors
        )
    }
}

/// The `cove-runner` child of `cove`.
fn runner_pid(cove: Option<u32>) -> Option<u32> {
    cove_testkit::procfs::children_named(cove?, "cove-runner")
        .into_iter()
        .next()
}

/// CPU milliseconds per request `cove` and its runner agent spent while `f` ran `Stats`.
struct Cpu {
    cove: Option<u32>,
    runner: Option<u32>,
}

impl Cpu {
    async fn measure<Fut: Future<Output = Stats>>(&self, f: Fut) -> (Stats, String) {
        let me = Some(std::process::id());
        let (c0, r0, m0) = (cpu_time(self.cove), cpu_time(self.runner), cpu_time(me));
        let s = f.await;
        let n = (s.lat.len() + WARM_UP) as f64;
        let per = |a: Option<Duration>, b: Option<Duration>| {
            a.zip(b).map_or_else(
                || "?".to_owned(),
                |(a, b)| format!("{:.2}", b.saturating_sub(a).as_secs_f64() * 1e3 / n),
            )
        };
        let note = format!(
            "CPU/request: cove {} ms, runner agent {} ms, this process (client + dynoxide) {} ms",
            per(c0, cpu_time(self.cove)),
            per(r0, cpu_time(self.runner)),
            per(m0, cpu_time(me))
        );
        (s, note)
    }
}

/// Requests sent before a timed window.
const WARM_UP: usize = 20;

/// [`cove_bench::load`] with this bench's warm-up.
async fn load<F, Fut>(conc: usize, secs: u64, op: F) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let w = cove_bench::load(conc, secs, WARM_UP, op).await;
    Stats::new(w.lat, w.elapsed, w.errors)
}

/// The SDK's HTTP calls, with its headers.
#[derive(Clone)]
struct Sdk {
    http: reqwest::Client,
    api: String,
    key: String,
}

impl Sdk {
    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(&self.key)
            .header("X-Daytona-Source", "sdk-python")
    }

    async fn json(&self, rb: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let r = rb.send().await.with_context(|| what.to_owned())?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!("{what}: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// `POST /api/sandbox` with the SDK's default body; polls `GET /api/sandbox/{id}` (without the
    /// SDK's 1 s pause) until `started` when the answer is not started yet.
    async fn create(&self) -> anyhow::Result<(String, String)> {
        let body = json!({"env": {}, "labels": {"code-toolbox-language": "python"}, "volumes": []});
        let url = format!("{}/sandbox", self.api);
        let mut sb = self
            .json(
                self.req(reqwest::Method::POST, &url).json(&body),
                "POST /api/sandbox",
            )
            .await?;
        let id = sb["id"].as_str().context("sandbox id")?.to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        while state_of(&sb) != Some(SandboxState::Started) {
            if matches!(
                state_of(&sb),
                Some(SandboxState::Error | SandboxState::BuildFailed)
            ) || Instant::now() > deadline
            {
                bail!("sandbox {id} did not start: {sb}");
            }
            sb = self.get(&id).await?;
        }
        let proxy = sb["toolboxProxyUrl"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if proxy.is_empty() {
            bail!("sandbox {id} has no toolboxProxyUrl");
        }
        Ok((id, proxy))
    }

    async fn get(&self, id: &str) -> anyhow::Result<Value> {
        let url = format!("{}/sandbox/{id}", self.api);
        self.json(
            self.req(reqwest::Method::GET, &url),
            "GET /api/sandbox/{id}",
        )
        .await
    }

    async fn exec(&self, proxy: &str, id: &str, command: &str) -> anyhow::Result<()> {
        let url = format!("{}/{id}/process/execute", proxy.trim_end_matches('/'));
        let r = self
            .json(
                self.req(reqwest::Method::POST, &url)
                    .json(&json!({ "command": command })),
                "POST process/execute",
            )
            .await?;
        if r["exitCode"] != 0 {
            bail!("exec {command:?} in {id}: {r}");
        }
        Ok(())
    }

    /// `DELETE /api/sandbox/{id}`, then waits until it is gone (404 or `destroyed`), so its quota is free.
    async fn delete(&self, id: &str) -> anyhow::Result<()> {
        let url = format!("{}/sandbox/{id}", self.api);
        self.json(
            self.req(reqwest::Method::DELETE, &url),
            "DELETE /api/sandbox/{id}",
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let r = self.req(reqwest::Method::GET, &url).send().await?;
            if r.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(());
            }
            let v: Value = r.json().await?;
            if state_of(&v) == Some(SandboxState::Destroyed) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("sandbox {id} was not destroyed within 30 s")
    }
}

/// The local runner agent's `GET /v1/info`.
struct RunnerClient {
    http: reqwest::Client,
    info_url: String,
    token: String,
}

/// Warm containers the local runner holds, over all snapshots (`warmPool` of `GET /v1/info`).
async fn warm(runner: &RunnerClient) -> usize {
    let info = async {
        let r = runner
            .http
            .get(&runner.info_url)
            .bearer_auth(&runner.token)
            .send()
            .await?;
        r.json::<Value>().await
    };
    match info.await {
        Ok(v) => v["warmPool"].as_object().map_or(0, |m| {
            m.values().filter_map(Value::as_u64).sum::<u64>() as usize
        }),
        Err(_) => 0,
    }
}

/// Waits (up to 30 s) until the runner's warm pool holds `want` containers.
async fn wait_warm(runner: &RunnerClient, want: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if warm(runner).await >= want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The `state` of a sandbox answer.
fn state_of(v: &Value) -> Option<SandboxState> {
    v["state"].as_str().and_then(SandboxState::parse)
}

/// Writes `n` stopped sandbox rows (no runner) for `org` straight into the store.
async fn seed(store: &Store, org: &str, n: usize) -> anyhow::Result<()> {
    let org = OrganizationId::parse(org)?;
    let quota = OrgQuota {
        total_cpu_quota: i64::MAX / 4,
        total_memory_quota: i64::MAX / 4,
        total_disk_quota: i64::MAX / 4,
        ..OrgQuota::default()
    };
    let now =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let workers = 8;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (store, org, quota, now) = (store.clone(), org.clone(), quota.clone(), now.clone());
            tokio::spawn(async move {
                for i in (w..n).step_by(workers) {
                    let mut rec = SandboxRecord::new(
                        SandboxId::new_random(),
                        org.clone(),
                        format!("bench-{i:04}"),
                        "cove-sandbox-base:latest",
                        &now,
                    );
                    rec.state = SandboxState::Stopped;
                    rec.desired_state = SandboxDesiredState::Stopped;
                    rec.auth_token = format!("{:032}", i);
                    rec.labels
                        .insert("code-toolbox-language".into(), "python".into());
                    store.sandboxes().create(&rec, &quota).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let creates = arg("--creates", 30) as usize;
    let secs = arg("--seconds", 2);
    let conc = arg("--concurrency", 16) as usize;
    let exec_conc = arg("--exec-concurrency", 4) as usize;
    let seed_n = arg("--seed", 1000) as usize;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("cove.stderr.log");
    let t0 = Instant::now();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let db = dynoxide::Database::new(&dir.path().join("bench.db").display().to_string())?;
    tokio::spawn(dynoxide::server::serve_on(listener, db));

    // `cove up` with its own runner agent on Docker and its warm pool, as users get it.
    let cove = Cove::start(
        cove_bench::cove_options(&endpoint, &dir.path().join("cove"), &log).runner(Runner::Docker),
    )
    .await?;
    let api = cove.api_url().to_owned();
    let key = cove
        .admin_key()
        .context("cove did not print the admin key")?
        .to_owned();
    let cpu = Cpu {
        cove: Some(cove.pid()),
        runner: runner_pid(Some(cove.pid())),
    };
    let result = run(
        &endpoint, api, key, creates, secs, conc, exec_conc, seed_n, cpu,
    )
    .await;
    // SIGTERM, so that cove stops its runner agent (its containers go with the testkit's guard).
    if let Err(e) = tokio::task::spawn_blocking(move || cove.terminate()).await? {
        eprintln!("stopping cove: {e}");
    }
    if result.is_err() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!("last lines of cove's stderr:");
        for l in tail.into_iter().rev() {
            eprintln!("{l}");
        }
    }
    println!("total bench time: {:.1} s", t0.elapsed().as_secs_f64());
    result
}

#[allow(clippy::too_many_arguments)]
async fn run(
    endpoint: &str,
    api: String,
    key: String,
    creates: usize,
    secs: u64,
    conc: usize,
    exec_conc: usize,
    seed_n: usize,
    cpu: Cpu,
) -> anyhow::Result<()> {
    let store = Store::new(&StoreConfig::local(endpoint, "cove"));
    let runner_row = store
        .runners()
        .list()
        .await?
        .into_iter()
        .find(|r| r.api_url.is_some())
        .context("cove up registered no runner with an API URL")?;
    let runner = RunnerClient {
        http: reqwest::Client::new(),
        info_url: format!(
            "{}/v1/info",
            runner_row
                .api_url
                .clone()
                .unwrap_or_default()
                .trim_end_matches('/')
        ),
        token: runner_row.api_key.clone(),
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(conc.max(exec_conc) + 4)
        .timeout(Duration::from_secs(90))
        .build()?;
    let sdk = Sdk { http, api, key };

    // The pool size cove up asked for: wait until the agent has filled it.
    let pool = {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let w = warm(&runner).await;
            if w > 0 || Instant::now() > deadline {
                break w;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pool = pool.max(warm(&runner).await);
    if pool == 0 {
        bail!("the runner's warm pool stayed empty");
    }

    // 1. create → first exec, warm.
    let (mut lat, mut errors, mut not_warm) = (Vec::new(), 0, 0);
    let (mut create_only, mut first_exec) = (Vec::new(), Vec::new());
    let mut phase = Duration::ZERO;
    // One untimed round first (first connections, first instantiation of each component).
    let (id, proxy) = sdk.create().await?;
    sdk.exec(&proxy, &id, "echo hi").await?;
    sdk.delete(&id).await?;
    for _ in 0..creates {
        if !wait_warm(&runner, pool).await {
            not_warm += 1;
        }
        let t = Instant::now();
        let r = async {
            let (id, proxy) = sdk.create().await?;
            let created = t.elapsed();
            sdk.exec(&proxy, &id, "echo hi").await?;
            anyhow::Ok((id, created))
        }
        .await;
        let d = t.elapsed();
        phase += d;
        match r {
            Ok((id, created)) => {
                lat.push(d);
                create_only.push(created);
                first_exec.push(d.saturating_sub(created));
                sdk.delete(&id).await?;
            }
            Err(e) => {
                eprintln!("create→exec failed: {e:#}");
                errors += 1;
            }
        }
    }
    let create_warm = Stats::new(lat, phase, errors);
    let create_only = Stats::new(create_only, phase, 0);
    let first_exec = Stats::new(first_exec, phase, 0);

    // Cold: drain the pool by holding `pool` sandboxes, then time one more create → exec.
    wait_warm(&runner, pool).await;
    let mut held = Vec::new();
    for _ in 0..pool {
        held.push(sdk.create().await?.0);
    }
    let warm_left = warm(&runner).await;
    if warm_left == pool {
        println!(
            "note: {pool} sandboxes created and the warm pool still holds {warm_left}: creates through cove do not claim warm containers"
        );
    }
    let t = Instant::now();
    let (cold_id, cold_proxy) = sdk.create().await?;
    sdk.exec(&cold_proxy, &cold_id, "echo hi").await?;
    let cold = t.elapsed();
    held.push(cold_id);
    for id in held {
        sdk.delete(&id).await?;
    }

    // 2. exec on one started sandbox.
    wait_warm(&runner, pool).await;
    let (id, proxy) = sdk.create().await?;
    let exec_op = |cmd: &'static str| {
        let (sdk, id, proxy) = (sdk.clone(), id.clone(), proxy.clone());
        move || {
            let (sdk, id, proxy) = (sdk.clone(), id.clone(), proxy.clone());
            async move { sdk.exec(&proxy, &id, cmd).await.is_ok() }
        }
    };
    let (exec_echo, exec_cpu) = cpu.measure(load(1, secs, exec_op("echo hi"))).await;
    // The same call straight to the runner agent (what cove's toolbox function forwards to).
    let direct_op = {
        let http = sdk.http.clone();
        let url = format!(
            "{}/v1/sandboxes/{id}/toolbox/process/execute",
            runner_row
                .api_url
                .clone()
                .unwrap_or_default()
                .trim_end_matches('/')
        );
        let token = runner_row.api_key.clone();
        move || {
            let req = http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"command": "echo hi"}));
            async move { matches!(req.send().await, Ok(r) if r.status().is_success()) }
        }
    };
    let (exec_direct, direct_cpu) = cpu.measure(load(1, secs, direct_op)).await;
    // Refused calls: how much of the path is the function's own work (auth, the sandbox lookup).
    let refused_op = |token: Option<String>, sandbox: String, want: reqwest::StatusCode| {
        let http = sdk.http.clone();
        let url = format!("{}/{sandbox}/process/execute", proxy.trim_end_matches('/'));
        move || {
            let mut req = http.post(&url).json(&json!({"command": "echo hi"}));
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            async move { matches!(req.send().await, Ok(r) if r.status() == want) }
        }
    };
    let refused_anon = load(
        1,
        secs,
        refused_op(None, id.clone(), reqwest::StatusCode::UNAUTHORIZED),
    )
    .await;
    let refused_unknown = load(
        1,
        secs,
        refused_op(
            Some(sdk.key.clone()),
            uuid::Uuid::new_v4().to_string(),
            reqwest::StatusCode::NOT_FOUND,
        ),
    )
    .await;
    let exec_true = load(1, secs, exec_op("true")).await;
    let exec_conc_stats = load(exec_conc, secs, exec_op("echo hi")).await;

    // 3. GET /api/sandbox/{id}.
    let get_op = {
        let (sdk, id) = (sdk.clone(), id.clone());
        move || {
            let (sdk, id) = (sdk.clone(), id.clone());
            async move { sdk.get(&id).await.is_ok() }
        }
    };
    let (get_one, get_one_cpu) = cpu.measure(load(1, secs, get_op.clone())).await;
    let (get_many, get_many_cpu) = cpu.measure(load(conc, secs, get_op)).await;
    let org = sdk.get(&id).await?["organizationId"]
        .as_str()
        .context("organizationId")?
        .to_owned();
    sdk.delete(&id).await?;

    // 4. list over `seed_n` rows.
    let ts = Instant::now();
    seed(&store, &org, seed_n).await?;
    let seeded = ts.elapsed();
    let list_url = format!("{}/sandbox?limit=100", sdk.api);
    let first = sdk
        .json(
            sdk.req(reqwest::Method::GET, &list_url),
            "GET /api/sandbox?limit=100",
        )
        .await?;
    let first_len = first["items"].as_array().map_or(0, Vec::len);
    let list_first = {
        let (sdk, url) = (sdk.clone(), list_url.clone());
        load(1, secs, move || {
            let (sdk, url) = (sdk.clone(), url.clone());
            async move {
                matches!(sdk.json(sdk.req(reqwest::Method::GET, &url), "list").await,
                    Ok(v) if v["items"].as_array().is_some_and(|a| a.len() == 100))
            }
        })
        .await
    };
    let (mut all, mut all_err, mut total_items) = (Vec::new(), 0, 0);
    let ta = Instant::now();
    for _ in 0..5 {
        let t = Instant::now();
        let (mut cursor, mut n) = (None::<String>, 0usize);
        loop {
            let url = match &cursor {
                Some(c) => format!("{list_url}&cursor={}", urlencode(c)),
                None => list_url.clone(),
            };
            let v = sdk
                .json(sdk.req(reqwest::Method::GET, &url), "list page")
                .await?;
            n += v["items"].as_array().map_or(0, Vec::len);
            match v["nextCursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                _ => break,
            }
        }
        if n != seed_n {
            all_err += 1;
        }
        total_items = n;
        all.push(t.elapsed());
    }
    let list_all = Stats::new(all, ta.elapsed(), all_err);

    println!(
        "Sandboxes through the full path (HTTP → cove → WASM function → runner agent → toolbox daemon), \
         warm pool {pool}, {secs} s windows"
    );
    println!("| measurement | n | p50 ms | p99 ms | req/s | errors | goal |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "{}",
        create_warm.row(
            "create → first exec, warm pool",
            "p50 ≤ 30 ms (Daytona: < 90 ms)",
            false
        )
    );
    println!(
        "{}",
        create_only.row("  of which POST /api/sandbox (until started)", "–", false)
    );
    println!(
        "{}",
        first_exec.row("  of which the first exec", "–", false)
    );
    println!(
        "| create → first exec, pool drained ({warm_left} warm left) | 1 | {:.2} | – | – | 0 | – |",
        cold.as_secs_f64() * 1e3
    );
    println!(
        "{}",
        exec_echo.row("exec `echo hi`, 1 client", "p50 ≤ 3 ms", true)
    );
    println!(
        "{}",
        exec_direct.row(
            "same exec straight to the runner agent (no cove), 1 client",
            "–",
            true
        )
    );
    println!(
        "{}",
        exec_true.row("exec `true`, 1 client", "p50 ≤ 3 ms", true)
    );
    println!(
        "{}",
        refused_anon.row("exec refused, no credential (401), 1 client", "–", true)
    );
    println!(
        "{}",
        refused_unknown.row(
            "exec refused, sandbox not in the organization (404), 1 client",
            "–",
            true
        )
    );
    println!(
        "{}",
        exec_conc_stats.row(&format!("exec `echo hi`, {exec_conc} clients"), "–", true)
    );
    println!(
        "{}",
        get_one.row("GET /api/sandbox/{id}, 1 client", "p50 ≤ 1 ms", true)
    );
    println!(
        "{}",
        get_many.row(
            &format!("GET /api/sandbox/{{id}}, {conc} clients"),
            "≥ 3,000 req/s",
            true
        )
    );
    println!(
        "{}",
        list_first.row(
            &format!("GET /api/sandbox?limit=100 of {seed_n} (first page)"),
            "p50 ≤ 20 ms",
            true
        )
    );
    println!(
        "{}",
        list_all.row(
            &format!("all pages of {seed_n} ({} items, limit=100)", total_items),
            "–",
            false
        )
    );
    println!("exec via cove, 1 client: {exec_cpu}");
    println!("exec straight to the runner agent: {direct_cpu}");
    println!("GET /api/sandbox/{{id}}, 1 client: {get_one_cpu}");
    println!("GET /api/sandbox/{{id}}, {conc} clients: {get_many_cpu}");
    println!(
        "creates that found the pool short: {not_warm}; first list page had {first_len} items; seeding {seed_n} rows took {:.1} s",
        seeded.as_secs_f64()
    );
    let failed = create_warm.errors
        + exec_echo.errors
        + exec_true.errors
        + exec_direct.errors
        + refused_anon.errors
        + refused_unknown.errors
        + exec_conc_stats.errors
        + get_one.errors
        + get_many.errors
        + list_first.errors
        + list_all.errors;
    if failed > 0 {
        bail!("{failed} requests failed during the benchmark");
    }
    Ok(())
}

/// Percent-encodes a cursor for a query string.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
