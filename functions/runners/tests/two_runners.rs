//! Acceptance: two simulated `cove-runner` agents (`--runtime fake`, no Docker) behind the real
//! `cove` binary (every component of `spin.toml`), both started by the testkit: 20 sandboxes
//! spread over both; scheduling disabled on one sends the next 5 to the other; a lost agent
//! (frozen by SIGSTOP: it neither answers nor heartbeats, and keeps its simulated containers,
//! which a restart of the simulated runner would lose) turns `unresponsive` and its sandboxes
//! `unknown`; back (SIGCONT), it is `ready` again, its sandboxes report their real state and
//! start/stop work. That a Docker agent's containers survive a restart is the agent's own suite's.
//!
//! Needs `target/release/{cove,cove-runner}` and the wasm components (the testkit builds what is
//! missing). Run: `cargo test --release -p runners --test two_runners -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cove_testkit::org::{self, RunnerRegistration};
use cove_testkit::{Agent, AgentOptions, Cove, CoveOptions, FAKE_IMAGE};
use serde_json::{Value, json};

/// `cove up` with every component on a fresh table, no runner of its own, a sweep every second.
async fn start_cove() -> Cove {
    Cove::start(
        CoveOptions::default()
            .fresh_table()
            .args([
                "--lifecycle-interval",
                "1",
                "--default-snapshot",
                FAKE_IMAGE,
            ])
            .log("warn"),
    )
    .await
    .unwrap()
}

/// A simulated agent for `reg`, heartbeating to `cove` every second.
fn agent(cove: &Cove, reg: &RunnerRegistration) -> Agent {
    Agent::start(
        AgentOptions::fake()
            .runner_id(&reg.id)
            .token(&reg.token)
            .control_plane(cove.base())
            .heartbeat_secs(1),
    )
    .unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_spread_fail_over_and_recover() {
    let cove = start_cove().await;
    let admin = cove.admin_key().unwrap().to_owned();
    let api = Api {
        http: reqwest::Client::new(),
        base: cove.base().to_owned(),
        key: admin.clone(),
    };

    // The admin's organization gets room for 25 sandboxes.
    let store = cove.store().unwrap();
    let outcome = cove_store::bootstrap::ensure_admin(store).await.unwrap();
    let org_id = cove_api_types::ids::OrganizationId::parse(outcome.organization_id).unwrap();
    let mut org = store.orgs().get(&org_id).await.unwrap().unwrap();
    org.quota.total_cpu_quota = 100;
    org.quota.total_memory_quota = 100;
    org.quota.total_disk_quota = 1000;
    org.version += 1;
    store.orgs().update(&org).await.unwrap();

    // Two runners registered by the admin, two agents.
    let http = cove.api();
    let a = org::register_runner(&http, &admin, "runner-a").await;
    let b = org::register_runner(&http, &admin, "runner-b").await;
    let (a, b) = ((a.id.clone(), a), (b.id.clone(), b));
    let _agent_a = agent(&cove, &a.1);
    let agent_b = agent(&cove, &b.1);
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

    // Agent B lost: after the heartbeat timeout and a sweep it is unresponsive, its sandboxes unknown.
    agent_b.freeze();
    api.wait_for(
        "runner B unresponsive",
        Duration::from_secs(40),
        async |api| api.runner_state(&b.0).await == "unresponsive",
    )
    .await;
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

    // B back: ready again, real states back, stop/start work.
    agent_b.thaw();
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
