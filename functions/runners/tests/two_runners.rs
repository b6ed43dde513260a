//! Acceptance: two real `cove-runner` agents behind the real `cove` binary (every component of
//! `spin.toml`), on Docker: 20 sandboxes spread over both; scheduling disabled on one sends the next
//! 5 to the other; a killed agent turns `unresponsive` and its sandboxes `unknown`; restarted, it is
//! `ready` again, its sandboxes report their real state and start/stop work.
//!
//! Needs: Docker, `target/release/{cove,cove-runner}`, the musl toolbox binary and the wasm
//! components (`scripts/test.sh` builds them all). Run:
//! `cargo test --release -p runners --test two_runners -- --nocapture` (part of the workspace test run).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn bin(name: &str) -> PathBuf {
    let p = root().join("target/release").join(name);
    assert!(
        p.is_file(),
        "{} is not built (cargo build --release --workspace --exclude cove-toolbox --bins)",
        p.display()
    );
    p
}

/// Kills a child (SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Removes the agents' containers whatever happens.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for id in &self.0 {
            let out = Command::new("docker")
                .args(["ps", "-aq", "--filter", &format!("label=cove.runner={id}")])
                .output();
            if let Ok(out) = out {
                let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
                if !ids.is_empty() {
                    let _ = Command::new("docker")
                        .arg("rm")
                        .arg("-f")
                        .args(&ids)
                        .output();
                }
            }
        }
    }
}

fn sandbox_image() {
    let out = Command::new("bash")
        .arg(root().join("tests/images/build-base.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("running tests/images/build-base.sh");
    assert!(out.status.success(), "build-base.sh failed");
}

/// Starts `cove up` on our dynoxide table, without its own runner; returns (process, base url, admin key).
fn start_cove(dir: &Path, endpoint: &str, table: &str) -> (Proc, String, String) {
    let mut child = Command::new(bin("cove"))
        .current_dir(root())
        .args(["up", "--manifest"])
        .arg(root().join("spin.toml"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-runner",
            "--lifecycle-interval",
            "1",
        ])
        .args(["--dynamodb-endpoint", endpoint, "--dynamodb-table", table])
        .arg("--data-dir")
        .arg(dir.join("cove"))
        .env("RUST_LOG", "warn")
        .env_remove("COVE_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(900))
            .expect("cove ready in time");
        if line == "cove ready" {
            break;
        }
        lines.push(line);
    }
    let get = |p: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(p))
            .unwrap()
            .to_owned()
    };
    let url = get("DAYTONA_API_URL=");
    (
        Proc(child),
        url.trim_end_matches("/api").to_owned(),
        get("DAYTONA_API_KEY="),
    )
}

fn start_agent(dir: &Path, name: &str, base: &str, id: &str, token: &str) -> Proc {
    let child = Command::new(bin("cove-runner"))
        .args(["--listen", "127.0.0.1:0", "--heartbeat-secs", "1"])
        .arg("--data-dir")
        .arg(dir.join(name))
        .args(["--control-plane-url", base, "--runner-id", id])
        .env("COVE_RUNNER_TOKEN", token)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Proc(child)
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(status < 500, "{path}: {status} {v}");
        (status, v)
    }
    async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }
    async fn post(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(s == 200 || s == 201, "POST {path}: {s} {v}");
        v
    }

    async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl AsyncFnMut(&Api) -> bool,
    ) {
        let start = Instant::now();
        while !check(self).await {
            assert!(start.elapsed() < timeout, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn runner_state(&self, id: &str) -> String {
        self.get(&format!("/api/runners/{id}")).await["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn sandbox_state(&self, id: &str) -> String {
        self.get(&format!("/api/sandbox/{id}")).await["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a sandbox and waits until it is started; returns (sandbox id, runner id).
    async fn create_sandbox(&self) -> (String, String) {
        let sb = self.post("/api/sandbox", json!({})).await;
        let id = sb["id"].as_str().unwrap().to_owned();
        let path = id.clone();
        self.wait_for("sandbox started", Duration::from_secs(120), async |a| {
            a.sandbox_state(&path).await == "started"
        })
        .await;
        let r = self.get(&format!("/api/runners/by-sandbox/{id}")).await;
        (id, r["id"].as_str().unwrap().to_owned())
    }
}

#[tokio::test]
async fn two_runners_spread_fail_over_and_recover() {
    sandbox_image();
    let dir = tempfile::tempdir().unwrap();
    let table = format!("two-runners-{}", std::process::id());
    let endpoint = cove_testkit::dynamodb_endpoint();
    let (_cove, base, key) = start_cove(dir.path(), &endpoint, &table);
    let api = Api {
        http: reqwest::Client::new(),
        base: base.clone(),
        key,
    };

    // The admin's organization gets room for 25 sandboxes.
    let store = cove_store::Store::new(&cove_store::StoreConfig::local(&endpoint, &table));
    let outcome = cove_store::bootstrap::ensure_admin(&store).await.unwrap();
    let org_id = cove_api_types::ids::OrganizationId::parse(outcome.organization_id).unwrap();
    let mut org = store.orgs().get(&org_id).await.unwrap().unwrap();
    org.quota.total_cpu_quota = 100;
    org.quota.total_memory_quota = 100;
    org.quota.total_disk_quota = 1000;
    org.version += 1;
    store.orgs().update(&org).await.unwrap();

    // Two runners registered by the admin, two agents.
    let mut runners = Vec::new();
    for name in ["runner-a", "runner-b"] {
        let r = api
            .post("/api/runners", json!({"regionId": "us", "name": name}))
            .await;
        runners.push((
            r["id"].as_str().unwrap().to_owned(),
            r["apiKey"].as_str().unwrap().to_owned(),
        ));
    }
    let _containers = Containers(runners.iter().map(|r| r.0.clone()).collect());
    let (a, b) = (runners[0].clone(), runners[1].clone());
    let _agent_a = start_agent(dir.path(), "a", &base, &a.0, &a.1);
    let mut agent_b = Some(start_agent(dir.path(), "b", &base, &b.0, &b.1));
    for id in [&a.0, &b.0] {
        api.wait_for("runner ready", Duration::from_secs(30), async |api| {
            api.runner_state(id).await == "ready"
        })
        .await;
    }

    // 20 sandboxes spread over both.
    let mut placed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for _ in 0..20 {
        let (sb, runner) = api.create_sandbox().await;
        placed.entry(runner).or_default().push(sb);
    }
    let on = |placed: &BTreeMap<String, Vec<String>>, r: &str| placed.get(r).map_or(0, Vec::len);
    eprintln!("spread: a={} b={}", on(&placed, &a.0), on(&placed, &b.0));
    assert!(
        on(&placed, &a.0) >= 5 && on(&placed, &b.0) >= 5,
        "{placed:?}"
    );
    assert_eq!(on(&placed, &a.0) + on(&placed, &b.0), 20);

    // Scheduling disabled on A: the next 5 go to B.
    let (s, v) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/runners/{}/scheduling", a.0),
            Some(json!({"unschedulable": true})),
        )
        .await;
    assert_eq!((s, &v["unschedulable"]), (200, &json!(true)));
    for _ in 0..5 {
        let (sb, runner) = api.create_sandbox().await;
        assert_eq!(runner, b.0, "sandbox {sb} went to the unschedulable runner");
        placed.entry(runner).or_default().push(sb);
    }

    // Kill agent B: after the heartbeat timeout and a sweep it is unresponsive, its sandboxes unknown.
    drop(agent_b.take());
    let killed = Instant::now();
    api.wait_for(
        "runner B unresponsive",
        Duration::from_secs(40),
        async |api| api.runner_state(&b.0).await == "unresponsive",
    )
    .await;
    eprintln!("unresponsive after {:?}", killed.elapsed());
    let b_sandboxes = placed[&b.0].clone();
    api.wait_for(
        "B's sandboxes unknown",
        Duration::from_secs(20),
        async |api| {
            for id in &b_sandboxes {
                if api.sandbox_state(id).await != "unknown" {
                    return false;
                }
            }
            true
        },
    )
    .await;
    for id in &placed[&a.0] {
        assert_eq!(
            api.sandbox_state(id).await,
            "started",
            "A's sandboxes are untouched"
        );
    }
    // No new sandbox lands on the lost runner (A is unschedulable, B unresponsive).
    let (s, v) = api
        .call(reqwest::Method::POST, "/api/sandbox", Some(json!({})))
        .await;
    assert!(
        (400..500).contains(&s),
        "create with no schedulable runner: {s} {v}"
    );

    // Restart B with the same data dir and token: ready again, real states back, start works.
    let _agent_b = start_agent(dir.path(), "b", &base, &b.0, &b.1);
    api.wait_for("runner B ready", Duration::from_secs(30), async |api| {
        api.runner_state(&b.0).await == "ready"
    })
    .await;
    api.wait_for(
        "B's sandboxes started",
        Duration::from_secs(30),
        async |api| {
            for id in &b_sandboxes {
                if api.sandbox_state(id).await != "started" {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let one = &b_sandboxes[0];
    let (s, v) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/sandbox/{one}/stop"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    api.wait_for("stopped", Duration::from_secs(60), async |api| {
        api.sandbox_state(one).await == "stopped"
    })
    .await;
    let (s, v) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/sandbox/{one}/start"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    api.wait_for("started again", Duration::from_secs(60), async |api| {
        api.sandbox_state(one).await == "started"
    })
    .await;

    // Clean up through the API.
    for id in placed.values().flatten() {
        let (s, v) = api
            .call(
                reqwest::Method::DELETE,
                &format!("/api/sandbox/{id}?force=true"),
                None,
            )
            .await;
        assert!(s == 200 || s == 204, "delete {id}: {s} {v}");
    }
}
