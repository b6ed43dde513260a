//! Archives in the internal registry and recovery, end to end on the real Docker engine (issue
//! 15 acceptance): `cove up` with its Docker runner and internal registry, a second Docker
//! runner agent, the lifecycle timer every second and one lifecycle minute lasting
//! [`MINUTE_SECS`] seconds.
//!
//! - archive → the container is gone, the state `archived`, the backup in the organization's
//!   project of the internal registry; with its runner unschedulable and no local copy of the
//!   backup left, `start` restores it on the other runner (pulled from the registry) with its
//!   files;
//! - that runner killed for good (SIGKILL, its containers removed): past `runner_lost_minutes`
//!   its sandbox is `error` and `recoverable`; `recover` brings it back on the first runner
//!   with the files of its last backup; another organization gets 404, a sandbox that is not
//!   recoverable 400.

use std::process::Command;
use std::time::{Duration, Instant};

use cove_api_types::ids::SandboxId;
use cove_testkit::api::{Api, Call, Http};
use cove_testkit::org::{self, Tenant};
use cove_testkit::{AgentOptions, Cove, CoveOptions, Runner};
use serde_json::{Value, json};

/// Seconds one lifecycle minute lasts in this test.
const MINUTE_SECS: u64 = 2;
/// Lifecycle minutes a silent runner is given before its sandboxes are given up.
const LOST_MINUTES: u64 = 5;

const PERMISSIONS: &[&str] = &["write:sandboxes", "delete:sandboxes"];

struct Ctx {
    api: Http,
    t: Tenant,
}

impl Ctx {
    async fn send(&self, call: Call) -> (u16, Value) {
        let r = self.api.send(call.token(&self.t.key)).await;
        (r.status, r.json())
    }

    async fn get(&self, id: &str) -> Value {
        let (s, v) = self.send(Call::get(format!("/api/sandbox/{id}"))).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Polls every 250 ms until `done` (at most `secs`); answers the last reply.
    async fn until(&self, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.get(id).await;
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "sandbox {id}: {v}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn exec(&self, id: &str, command: &str) -> String {
        let (s, v) = self
            .send(
                Call::post(format!("/toolbox/{id}/process/execute"))
                    .json(&json!({"command": command, "timeout": 60})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["exitCode"], 0, "{command}: {v}");
        v["result"].as_str().unwrap_or_default().trim().to_owned()
    }

    async fn post(&self, path: String) -> Value {
        let (s, v) = self.send(Call::post(path)).await;
        assert_eq!(s, 200, "{v}");
        v
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn containers(filter: &str) -> Vec<String> {
    docker(&["ps", "-aq", "--filter", filter])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The sandbox's backup reference, as the control plane stored it.
async fn backup_of(cove: &Cove, id: &str) -> String {
    let id: SandboxId = id.parse().expect("sandbox id");
    let rec = cove
        .store()
        .expect("the embedded table")
        .sandboxes()
        .get(&id)
        .await
        .expect("read")
        .expect("row");
    rec.backup_snapshot.expect("a backup")
}

async fn set_unschedulable(cove: &Cove, runner: &str, unschedulable: bool) {
    let r = cove
        .api()
        .send(
            Call::patch(format!("/api/runners/{runner}/scheduling"))
                .token(cove.admin_key().expect("admin key"))
                .json(&json!({ "unschedulable": unschedulable })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
}

/// `sha256sum` of the sandbox's data file.
const SUM: &str = "sha256sum /home/daytona/data | cut -c1-64";

#[tokio::test(flavor = "multi_thread")]
async fn archives_restore_on_another_runner_and_lost_runners_sandboxes_are_recovered() {
    let mut cove = Cove::start(
        CoveOptions::default()
            .fresh_table()
            .runner(Runner::Docker)
            .variable("lifecycle_minute_secs", MINUTE_SECS.to_string())
            .variable("runner_lost_minutes", LOST_MINUTES.to_string())
            .args(["--runner-warm-pool", "0", "--lifecycle-interval", "1"])
            .log("warn"),
    )
    .await
    .expect("cove up");
    let second = cove
        .attach_agent(AgentOptions::docker().heartbeat_secs(1))
        .await
        .expect("second runner")
        .runner_id()
        .to_owned();
    let c = Ctx {
        api: cove.api(),
        t: org::tenant(&cove.api(), PERMISSIONS).await,
    };

    // On the first runner (the second one is unschedulable meanwhile).
    set_unschedulable(&cove, &second, true).await;
    let (s, v) = c
        .send(Call::post("/api/sandbox").json(&json!({"autoStopInterval": 0})))
        .await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let v = c.until(&id, 120, |v| v["state"] == "started").await;
    let first = v["runnerId"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    set_unschedulable(&cove, &second, false).await;
    c.exec(
        &id,
        "head -c 8388608 /dev/urandom > /home/daytona/data && echo kept > /home/daytona/kept",
    )
    .await;
    let sum = c.exec(&id, SUM).await;

    // Archive: the backup is in the organization's project, the container gone.
    c.post(format!("/api/sandbox/{id}/stop")).await;
    c.until(&id, 60, |v| v["state"] == "stopped").await;
    c.post(format!("/api/sandbox/{id}/archive")).await;
    let v = c.until(&id, 180, |v| v["state"] == "archived").await;
    assert_eq!(v["backupState"], "Completed", "{v}");
    assert!(v["runnerId"].is_null(), "{v}");
    assert!(containers(&format!("label=cove.sandbox.id={id}")).is_empty());
    let backup = backup_of(&cove, &id).await;
    let project = format!("/cove-{}/backup-{id}:", c.t.org);
    assert!(backup.contains(&project), "{backup} is not in {project}");

    // No local copy, the first runner unschedulable: restored on the second, from the registry.
    let image_id = docker(&["image", "inspect", "-f", "{{.Id}}", &backup]);
    assert!(!image_id.is_empty(), "{backup} is not on the engine");
    docker(&["rmi", "-f", &image_id]);
    assert!(docker(&["image", "inspect", "-f", "{{.Id}}", &backup]).is_empty());
    set_unschedulable(&cove, &first, true).await;
    let (s, v) = c.send(Call::post(format!("/api/sandbox/{id}/start"))).await;
    assert_eq!(s, 200, "{v}");
    let v = c.until(&id, 180, |v| v["state"] == "started").await;
    assert_eq!(v["runnerId"], second.as_str(), "{v}");
    assert_eq!(c.exec(&id, SUM).await, sum);
    assert_eq!(c.exec(&id, "cat /home/daytona/kept").await, "kept");
    set_unschedulable(&cove, &first, false).await;

    // Not recoverable while it runs; another organization does not see it.
    let (s, v) = c
        .send(Call::post(format!("/api/sandbox/{id}/recover")))
        .await;
    assert_eq!(s, 400, "{v}");
    let other = org::tenant(&cove.api(), PERMISSIONS).await;
    let r = cove
        .api()
        .send(Call::post(format!("/api/sandbox/{id}/recover")).token(&other.key))
        .await;
    assert_eq!(r.status, 404, "{}", r.json());

    // A backup of the running sandbox, then its runner is lost for good.
    c.exec(&id, "echo later > /home/daytona/later").await;
    // (A periodic backup may be running: then the user's waits for it.)
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (s, v) = c
            .send(Call::post(format!("/api/sandbox/{id}/backup")))
            .await;
        if s == 200 {
            break;
        }
        assert!(s == 409 && Instant::now() < deadline, "{s} {v}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    c.until(&id, 180, |v| v["backupState"] == "Completed").await;
    let pid = cove.agents()[0].pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    for cid in containers(&format!("label=cove.runner={second}")) {
        docker(&["rm", "-f", &cid]);
    }
    let lost = (15 + LOST_MINUTES * MINUTE_SECS) * 4;
    let v = c.until(&id, lost, |v| v["state"] == "error").await;
    assert_eq!(v["recoverable"], true, "{v}");
    let (s, v) = c.send(Call::post(format!("/api/sandbox/{id}/start"))).await;
    assert_eq!(s, 400, "an error sandbox is recovered, not started: {v}");

    // Recovered on the first runner with the files of its last backup.
    let v = c.post(format!("/api/sandbox/{id}/recover")).await;
    assert_eq!(v["recoverable"], false, "{v}");
    let v = c.until(&id, 180, |v| v["state"] == "started").await;
    assert_eq!(v["runnerId"], first.as_str(), "{v}");
    assert_eq!(c.exec(&id, SUM).await, sum);
    assert_eq!(c.exec(&id, "cat /home/daytona/later").await, "later");
    let (s, v) = c.send(Call::delete(format!("/api/sandbox/{id}"))).await;
    assert_eq!(s, 200, "{v}");
}
