//! `cove-proxy-bench`: `cove-proxy`'s data path against the hops it fronts, in one run.
//!
//! It starts `cove up` (its own runner agent on Docker) with a known `proxy_api_key`, then a
//! separate `cove-proxy` process against it (the same code and settings `cove up` runs
//! in-process, the local agent's lending socket included; a process of its own so that its
//! memory is its own `VmRSS`), a second one without the lending socket (previews through the
//! agent's API), one sandbox, and measures:
//! 1. `POST process/execute` of `true` through the proxy (`/toolbox/{id}/...`, the user's API
//!    key) against the same call straight to the runner agent (`/sandboxes/{id}/toolbox/...`,
//!    the runner token): p50/p99 and the ratio of the p50s;
//! 2. a preview `GET` of a small file (`python3 -m http.server` in the sandbox) through the proxy
//!    (Host `8080-{id}.{domain}`, preview token) against the same `GET` straight to the sandbox's
//!    port (the container's address on the Docker network), with the hops in between measured
//!    alone (the daemon's socket, the agent's API, the proxy without the lending socket);
//! 3. the proxy's `VmRSS` (`/proc/<pid>/status`) idle and with `--websockets` preview websockets
//!    open through it to an echo server in the sandbox (each one checked with an echo).
//!
//! Usage: `cove-proxy-bench [--seconds 3] [--websockets 1000]` (`$COVE_BIN`, `$COVE_PROXY_BIN`
//! and `$COVE_BENCH_MANIFEST` pick other binaries or another `spin.toml`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cove_testkit::{Cove, CoveOptions, Manifest, Runner};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DOMAIN: &str = "preview.localhost";
const HTTP_PORT: u16 = 8080;
const WS_PORT: u16 = 8765;

/// An asyncio websocket echo server (small frames), so 1,000 connections cost no threads.
const WS_SERVER: &str = r#"
import asyncio, base64, hashlib, struct
G = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
async def serve(r, w):
    try:
        head = await r.readuntil(b"\r\n\r\n")
        key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key")][0]
        acc = base64.b64encode(hashlib.sha1(key + G).digest())
        w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
        while True:
            b1, b2 = await r.readexactly(2)
            n = b2 & 127
            mask = await r.readexactly(4)
            data = bytes(x ^ mask[i % 4] for i, x in enumerate(await r.readexactly(n)))
            if b1 & 15 == 8:
                break
            w.write(bytes([0x81, len(data)]) + data)
            await w.drain()
    except Exception:
        pass
    w.close()
async def main():
    s = await asyncio.start_server(serve, "127.0.0.1", 8765, backlog=2048)
    await s.serve_forever()
asyncio.run(main())
"#;

/// p50/p99 of one window.
struct Figures {
    n: usize,
    p50: f64,
    p99: f64,
    errors: usize,
}

fn figures(w: &cove_bench::Window) -> Figures {
    let pct = |p: f64| {
        let i = ((w.lat.len().max(1) as f64 - 1.0) * p).round() as usize;
        w.lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Figures {
        n: w.lat.len(),
        p50: pct(0.5),
        p99: pct(0.99),
        errors: w.errors,
    }
}

fn row(name: &str, f: &Figures) -> String {
    format!(
        "| {name} | {} | {:.2} | {:.2} | {} |",
        f.n, f.p50, f.p99, f.errors
    )
}

/// What the measurements run against.
#[derive(Clone)]
struct Setup {
    http: reqwest::Client,
    key: String,
    proxy: String,
    /// A second `cove-proxy`, without the lending socket: previews through the agent's API.
    proxy_via_agent: String,
    runner_url: String,
    runner_token: String,
    id: String,
    preview_token: String,
    sandbox_ip: String,
    /// The sandbox daemon's unix socket (under the agent's data dir) and one keep-alive
    /// connection to it.
    daemon_socket: std::path::PathBuf,
    daemon_conn: std::sync::Arc<tokio::sync::Mutex<Option<tokio::net::UnixStream>>>,
}

impl Setup {
    fn preview_host(&self, port: u16) -> String {
        format!("{port}-{}.{DOMAIN}", self.id)
    }

    async fn exec_proxy(&self) -> bool {
        let url = format!("{}/toolbox/{}/process/execute", self.proxy, self.id);
        let rb = self.http.post(url).bearer_auth(&self.key);
        exec_ok(rb).await
    }

    async fn exec_agent(&self) -> bool {
        let url = format!(
            "{}/sandboxes/{}/toolbox/process/execute",
            self.runner_url, self.id
        );
        let rb = self.http.post(url).header(
            "x-daytona-authorization",
            format!("Bearer {}", self.runner_token),
        );
        exec_ok(rb).await
    }

    async fn get_proxy(&self) -> bool {
        self.get_through(&self.proxy).await
    }

    async fn get_proxy_via_agent(&self) -> bool {
        self.get_through(&self.proxy_via_agent).await
    }

    async fn get_through(&self, proxy: &str) -> bool {
        let rb = self
            .http
            .get(format!("{proxy}/small.txt"))
            .header("host", self.preview_host(HTTP_PORT))
            .header("x-daytona-preview-token", &self.preview_token)
            .header("x-daytona-skip-last-activity-update", "true");
        body_is_small(rb).await
    }

    /// The same GET straight to the runner agent (agent → daemon → port, no proxy).
    async fn get_agent(&self) -> bool {
        let url = format!(
            "{}/sandboxes/{}/toolbox/proxy/{HTTP_PORT}/small.txt",
            self.runner_url, self.id
        );
        let rb = self.http.get(url).header(
            "x-daytona-authorization",
            format!("Bearer {}", self.runner_token),
        );
        body_is_small(rb).await
    }

    /// The same GET straight to the daemon's socket (daemon → port: no proxy, no agent).
    async fn get_daemon(&self) -> bool {
        let mut conn = self.daemon_conn.lock().await;
        if conn.is_none() {
            *conn = tokio::net::UnixStream::connect(&self.daemon_socket)
                .await
                .ok();
        }
        let Some(stream) = conn.as_mut() else {
            return false;
        };
        let req = format!("GET /proxy/{HTTP_PORT}/small.txt HTTP/1.1\r\nHost: toolbox\r\n\r\n");
        let ok = match stream.write_all(req.as_bytes()).await {
            Ok(()) => read_small_answer(stream).await.unwrap_or(false),
            Err(_) => false,
        };
        if !ok {
            *conn = None;
        }
        ok
    }

    async fn get_direct(&self) -> bool {
        let url = format!("http://{}:{HTTP_PORT}/small.txt", self.sandbox_ip);
        body_is_small(self.http.get(url)).await
    }
}

async fn exec_ok(rb: reqwest::RequestBuilder) -> bool {
    match rb.json(&json!({"command": "true"})).send().await {
        Ok(r) if r.status().is_success() => {
            r.json::<Value>().await.is_ok_and(|v| v["exitCode"] == 0)
        }
        _ => false,
    }
}

async fn body_is_small(rb: reqwest::RequestBuilder) -> bool {
    match rb.send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok_and(|b| &b[..] == b"small\n"),
        _ => false,
    }
}

/// Reads one HTTP/1.1 answer with a `content-length` from `s` (read in chunks, as a client
/// would: the answer is the only one in flight): whether it is 200 `small\n`.
async fn read_small_answer(s: &mut tokio::net::UnixStream) -> anyhow::Result<bool> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 || buf.len() > 65536 {
            bail!("the answer ended early");
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .context("no content-length")?;
        if buf.len() >= end + 4 + len {
            let body = &buf[end + 4..end + 4 + len];
            return Ok(text.starts_with("http/1.1 200") && body == b"small\n");
        }
    }
}

/// The daemon socket of sandbox `id` under `data_dir` (the agent's per-sandbox directory).
fn find_socket(dir: &std::path::Path, id: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let ty = entry.file_type().ok()?;
        if ty.is_dir() && !ty.is_symlink() {
            if let Some(found) = find_socket(&path, id) {
                return Some(found);
            }
        } else if path.ends_with("toolbox.sock") && path.to_string_lossy().contains(id) {
            return Some(path);
        }
    }
    None
}

/// A port free right now on the loopback.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `cove-proxy` against `api`, on a free port; waits for its `/health`.
async fn start_proxy(
    api: &str,
    token: &str,
    runner_socket: Option<&std::path::Path>,
) -> anyhow::Result<(Child, String)> {
    let bin = std::env::var_os("COVE_PROXY_BIN").map_or_else(
        || cove_testkit::bins::target_dir().join("release/cove-proxy"),
        Into::into,
    );
    let port = free_port()?;
    let mut cmd = Command::new(&bin);
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--api-url", api.trim_end_matches("/api")])
        .args(["--api-token", token, "--domain", DOMAIN]);
    if let Some(socket) = runner_socket {
        cmd.arg("--runner-socket").arg(socket);
    }
    let child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if reqwest::get(format!("{url}/health"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok((child, url));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("cove-proxy did not answer /health within 20 s")
}

async fn call(rb: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let r = rb.send().await.with_context(|| what.to_owned())?;
    let status = r.status();
    let body = r.bytes().await?;
    if !status.is_success() {
        bail!("{what}: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Creates a sandbox and waits until it is started; its id.
async fn create_sandbox(http: &reqwest::Client, api: &str, key: &str) -> anyhow::Result<String> {
    let sb = call(
        http.post(format!("{api}/sandbox"))
            .bearer_auth(key)
            .json(&json!({})),
        "POST /api/sandbox",
    )
    .await?;
    let id = sb["id"].as_str().context("sandbox id")?.to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sb = call(
            http.get(format!("{api}/sandbox/{id}")).bearer_auth(key),
            "GET /api/sandbox/{id}",
        )
        .await?;
        match sb["state"].as_str() {
            Some("started") => return Ok(id),
            Some("error" | "build_failed") => bail!("sandbox {id} failed: {sb}"),
            _ if Instant::now() > deadline => bail!("sandbox {id} did not start: {sb}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Starts `command` in a session of its own (async), through the proxy's toolbox path.
async fn start_server(s: &Setup, session: &str, command: &str) -> anyhow::Result<()> {
    let base = format!("{}/toolbox/{}/process/session", s.proxy, s.id);
    call(
        s.http
            .post(&base)
            .bearer_auth(&s.key)
            .json(&json!({"sessionId": session})),
        "create session",
    )
    .await?;
    call(
        s.http
            .post(format!("{base}/{session}/exec"))
            .bearer_auth(&s.key)
            .json(&json!({"command": command, "runAsync": true})),
        "session exec",
    )
    .await?;
    Ok(())
}

/// The sandbox container's address on its Docker network.
fn container_ip(id: &str) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(["inspect", "-f"])
        .arg("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}")
        .arg(format!("cove-sb-{id}"))
        .output()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|ip| !ip.is_empty())
        .map(str::to_owned)
        .context("the sandbox container has no IP address")
}

async fn wait_until<F: AsyncFn() -> bool>(what: &str, f: F) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if f().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{what} did not answer within 30 s")
}

async fn prepare(
    http: reqwest::Client,
    cove: &Cove,
    [proxy, proxy_via_agent]: [String; 2],
    token: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<Setup> {
    let api = cove.api_url().trim_end_matches('/').to_owned();
    let key = cove.admin_key().context("no admin key")?.to_owned();
    let id = create_sandbox(&http, &api, &key).await?;
    let runner = call(
        http.get(format!("{api}/runners/by-sandbox/{id}"))
            .bearer_auth(token),
        "GET /api/runners/by-sandbox/{id}",
    )
    .await?;
    let preview = call(
        http.get(format!("{api}/sandbox/{id}/ports/{HTTP_PORT}/preview-url"))
            .bearer_auth(&key),
        "preview-url",
    )
    .await?;
    let s = Setup {
        runner_url: ["proxyUrl", "apiUrl"]
            .iter()
            .filter_map(|k| runner[*k].as_str())
            .find(|u| !u.is_empty())
            .context("runner address")?
            .trim_end_matches('/')
            .to_owned(),
        runner_token: runner["apiKey"].as_str().unwrap_or_default().to_owned(),
        preview_token: preview["token"]
            .as_str()
            .context("preview token")?
            .to_owned(),
        sandbox_ip: container_ip(&id)?,
        daemon_socket: find_socket(data_dir, &id).context("the sandbox's toolbox.sock")?,
        daemon_conn: Default::default(),
        http,
        key,
        proxy,
        proxy_via_agent,
        id,
    };
    let www = format!(
        "mkdir -p /tmp/www && printf 'small\\n' > /tmp/www/small.txt && cd /tmp/www && python3 -m http.server {HTTP_PORT}"
    );
    start_server(&s, "http", &www).await?;
    let ws = format!("cat > /tmp/ws_echo.py <<'EOF'\n{WS_SERVER}\nEOF\npython3 /tmp/ws_echo.py");
    start_server(&s, "ws", &ws).await?;
    wait_until("the preview", async || s.get_proxy().await).await?;
    wait_until("the preview via the agent", async || {
        s.get_proxy_via_agent().await
    })
    .await?;
    Ok(s)
}

/// A websocket through the proxy to the echo server, after its handshake.
async fn open_ws(s: &Setup, proxy_addr: &str) -> anyhow::Result<TcpStream> {
    let mut c = TcpStream::connect(proxy_addr).await?;
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         X-Daytona-Preview-Token: {}\r\nX-Daytona-Skip-Last-Activity-Update: true\r\n\r\n",
        s.preview_host(WS_PORT),
        s.preview_token
    );
    c.write_all(req.as_bytes()).await?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if c.read(&mut b).await? == 0 || head.len() > 8192 {
            bail!("the websocket handshake ended early");
        }
        head.push(b[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        bail!("handshake: {}", String::from_utf8_lossy(&head));
    }
    Ok(c)
}

/// Sends one masked text frame and reads its echo.
async fn echo(c: &mut TcpStream, msg: &[u8]) -> anyhow::Result<()> {
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | msg.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(msg.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    c.write_all(&frame).await?;
    let mut back = vec![0u8; 2 + msg.len()];
    c.read_exact(&mut back).await?;
    if back[2..] != *msg {
        bail!("the echo differs");
    }
    Ok(())
}

fn rss_mib(pid: u32) -> f64 {
    cove_testkit::procfs::rss_bytes(pid).unwrap_or(0) as f64 / (1 << 20) as f64
}

/// Opens `n` websockets (50 at a time), checks each with an echo; the proxy's RSS then.
async fn websockets(s: &Setup, pid: u32, n: usize) -> anyhow::Result<()> {
    let addr = s.proxy.trim_start_matches("http://").to_owned();
    let idle = rss_mib(pid);
    let t = Instant::now();
    let mut open = Vec::with_capacity(n);
    while open.len() < n {
        let batch = (n - open.len()).min(50);
        let tasks: Vec<_> = (0..batch)
            .map(|_| {
                let (s, addr) = (s.clone(), addr.clone());
                tokio::spawn(async move {
                    let mut c = open_ws(&s, &addr).await?;
                    echo(&mut c, b"ping").await?;
                    anyhow::Ok(c)
                })
            })
            .collect();
        for task in tasks {
            open.push(task.await??);
        }
    }
    let opened = t.elapsed();
    let full = rss_mib(pid);
    for c in open.iter_mut().step_by(10) {
        echo(c, b"still there").await?;
    }
    println!(
        "| proxy VmRSS (a `cove-proxy` process of its own) | idle {idle:.1} MiB | {n} websockets open {full:.1} MiB | {:.1} KiB per websocket | opened in {:.1} s |",
        (full - idle) * 1024.0 / n as f64,
        opened.as_secs_f64()
    );
    drop(open);
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("proxy VmRSS after closing them: {:.1} MiB", rss_mib(pid));
    Ok(())
}

/// One measured call.
type Op = fn(Setup) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>>;

/// Calls `ops` in turn, one call each per round (the op that opens a round rotates), for
/// `secs` seconds per op, after 20 warm-up calls each: every path sees the same machine, so the
/// ratios hold even when the load of this shared machine changes during the run.
async fn interleaved(s: &Setup, secs: u64, ops: &[Op]) -> Vec<Figures> {
    for op in ops {
        for _ in 0..20 {
            op(s.clone()).await;
        }
    }
    let until = Instant::now() + Duration::from_secs(secs * ops.len() as u64);
    let mut windows: Vec<cove_bench::Window> = ops
        .iter()
        .map(|_| cove_bench::Window {
            lat: Vec::new(),
            elapsed: Duration::ZERO,
            errors: 0,
        })
        .collect();
    let start = Instant::now();
    let mut round = 0;
    while Instant::now() < until {
        for k in 0..ops.len() {
            let i = (round + k) % ops.len();
            let t = Instant::now();
            if !ops[i](s.clone()).await {
                windows[i].errors += 1;
            }
            windows[i].lat.push(t.elapsed());
        }
        round += 1;
    }
    windows
        .iter_mut()
        .map(|w| {
            w.elapsed = start.elapsed();
            w.lat.sort();
            figures(w)
        })
        .collect()
}

async fn measure(s: &Setup, secs: u64) {
    let exec = interleaved(
        s,
        secs,
        &[
            |s| Box::pin(async move { s.exec_agent().await }),
            |s| Box::pin(async move { s.exec_proxy().await }),
        ],
    )
    .await;
    let gets = interleaved(
        s,
        secs,
        &[
            |s| Box::pin(async move { s.get_direct().await }),
            |s| Box::pin(async move { s.get_daemon().await }),
            |s| Box::pin(async move { s.get_agent().await }),
            |s| Box::pin(async move { s.get_proxy_via_agent().await }),
            |s| Box::pin(async move { s.get_proxy().await }),
        ],
    )
    .await;
    let (agent, proxied) = (&exec[0], &exec[1]);
    let (direct, via_daemon, via_agent, preview_via_agent, preview) =
        (&gets[0], &gets[1], &gets[2], &gets[3], &gets[4]);
    println!(
        "| path (1 client, keep-alive; the exec rows and the GET rows each measured interleaved) | n | p50 ms | p99 ms | errors |"
    );
    println!("|---|---|---|---|---|");
    println!("{}", row("exec `true` straight to the runner agent", agent));
    println!("{}", row("exec `true` through cove-proxy", proxied));
    println!(
        "{}",
        row("GET small file straight to the sandbox port", direct)
    );
    println!(
        "{}",
        row(
            "GET small file straight to the daemon's socket (daemon → port)",
            via_daemon
        )
    );
    println!(
        "{}",
        row(
            "GET small file straight to the runner agent (agent → daemon → port)",
            via_agent
        )
    );
    println!(
        "{}",
        row(
            "GET small file through cove-proxy without the lending socket (proxy → agent → daemon → port)",
            preview_via_agent
        )
    );
    println!(
        "{}",
        row(
            "GET small file through cove-proxy (preview URL; proxy → lent daemon connection → port)",
            preview
        )
    );
    println!(
        "exec: proxy/agent p50 = {:.2}x (goal <= 1.3x, p50 <= 2 ms); preview GET: proxy/direct p50 = {:.2}x (goal <= 1.5x; {:.2}x without the lending socket)",
        proxied.p50 / agent.p50.max(1e-9),
        preview.p50 / direct.p50.max(1e-9),
        preview_via_agent.p50 / direct.p50.max(1e-9)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = cove_bench::arg("--seconds", 3);
    let n_ws = cove_bench::arg("--websockets", 1000) as usize;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("cove.stderr.log");
    let token = uuid::Uuid::new_v4().simple().to_string();
    let manifest = std::env::var("COVE_BENCH_MANIFEST")
        .map_or(Manifest::Project, |m| Manifest::File(m.into()));
    let cove = Cove::start(
        CoveOptions::default()
            .manifest(manifest)
            .runner(Runner::Docker)
            .variable("proxy_api_key", token.clone())
            .data_dir(dir.path().join("cove"))
            .log("warn")
            .stderr(cove_testkit::process::Stderr::File(log.clone()))
            .ready_timeout(Duration::from_secs(600)),
    )
    .await?;
    // As `cove up` runs it: with the local agent's lending socket; and once more without it
    // (every preview through the agent's API), to show what the lent connections save.
    let lend_socket = dir.path().join("cove/runner").join(cove_lend::SOCKET_NAME);
    let (mut proxy, proxy_url) = start_proxy(cove.api_url(), &token, Some(&lend_socket)).await?;
    let (mut via_agent, via_agent_url) = start_proxy(cove.api_url(), &token, None).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let result = async {
        let s = prepare(http, &cove, [proxy_url, via_agent_url], &token, dir.path()).await?;
        measure(&s, secs).await;
        websockets(&s, proxy.id(), n_ws).await
    }
    .await;
    for p in [&mut proxy, &mut via_agent] {
        let _ = p.kill();
        let _ = p.wait();
    }
    if let Err(e) = tokio::task::spawn_blocking(move || cove.terminate()).await? {
        eprintln!("stopping cove: {e}");
    }
    if result.is_err() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for l in text
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            eprintln!("{l}");
        }
    }
    result
}
