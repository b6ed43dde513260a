//! `cove up` supervises its runner agent: an agent killed with SIGKILL is reaped, logged and
//! restarted (a new PID, the same runner row and token), its heartbeats resume, and shutdown
//! still stops the new agent by PID. Uses the real `cove-runner` and Docker.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cove, Start};
use cove_testkit::procfs::children_named;
use serde_json::Value;

fn root() -> PathBuf {
    cove_testkit::bins::workspace_root()
}

/// The sandbox base image, after making sure a Docker engine answers.
fn base_image() -> String {
    cove_testkit::image::base().unwrap_or_else(|e| panic!("{e}"))
}

fn wait_until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `local` runner as `GET /api/runners` shows it to the admin.
async fn local_runner(cove: &Cove, key: &str) -> Value {
    let list: Value = reqwest::Client::new()
        .get(cove.url("/api/runners"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let runners = list.as_array().unwrap_or_else(|| panic!("{list}"));
    runners
        .iter()
        .find(|r| r["name"] == "local")
        .unwrap_or_else(|| panic!("no local runner in {list}"))
        .clone()
}

/// Removes the containers of the runner when dropped (also when the test fails).
struct Containers(String);

impl Drop for Containers {
    fn drop(&mut self) {
        cove_testkit::image::remove_containers(&self.0);
    }
}

/// `POST /api/sandbox` (the SDK's default body), then polls until `started`.
async fn create_sandbox(cove: &Cove, key: &str) -> Value {
    let http = reqwest::Client::new();
    let body =
        serde_json::json!({"env": {}, "labels": {"test": "runner-supervision"}, "volumes": []});
    let mut sb: Value = http
        .post(cove.url("/api/sandbox"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = sb["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{sb}"))
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(90);
    while sb["state"] != "started" {
        assert!(Instant::now() < deadline, "sandbox did not start: {sb}");
        tokio::time::sleep(Duration::from_millis(250)).await;
        sb = sandbox(cove, key, &id).await;
    }
    sb
}

async fn sandbox(cove: &Cove, key: &str, id: &str) -> Value {
    reqwest::Client::new()
        .get(cove.url(&format!("/api/sandbox/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Runs `echo <word>` in the sandbox through the toolbox proxy; returns the output.
async fn exec(cove: &Cove, key: &str, id: &str, word: &str) -> String {
    let r: Value = reqwest::Client::new()
        .post(cove.url(&format!("/toolbox/{id}/process/execute")))
        .bearer_auth(key)
        .json(&serde_json::json!({ "command": format!("echo {word}") }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["exitCode"], 0, "{r}");
    r["result"].as_str().unwrap_or_default().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_agent_is_restarted_and_heartbeats_again() {
    let runner_bin = Path::new(env!("CARGO_BIN_EXE_cove")).with_file_name("cove-runner");
    assert!(
        runner_bin.is_file(),
        "{} is missing; run `cargo build --release -p cove-runner-agent`",
        runner_bin.display()
    );
    let image = base_image();
    let dir = tempfile::tempdir().unwrap();
    let cove = Cove::start_file(
        &root().join("spin.toml"),
        Start {
            manifest: "",
            data_dir: dir.path(),
            args: &["--runner-warm-pool", "0", "--default-snapshot", &image],
            env: &[],
        },
    );
    let key = cove
        .api_key()
        .expect("a fresh data dir prints the admin key");
    let first = children_named(cove.pid(), "cove-runner");
    assert_eq!(first.len(), 1, "one agent expected: {first:?}");
    let before = local_runner(&cove, &key).await;
    assert_eq!(before["state"], "ready", "{before}");
    let _cleanup = Containers(before["id"].as_str().unwrap().to_owned());
    let sb = create_sandbox(&cove, &key).await;
    let id = sb["id"].as_str().unwrap().to_owned();
    assert_eq!(exec(&cove, &key, &id, "before").await, "before");

    let status = Command::new("kill")
        .args(["-KILL", &first[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The old agent is gone for good: whatever heartbeat is recorded now came from it.
    std::thread::sleep(Duration::from_millis(300));
    let at_kill = local_runner(&cove, &key).await["lastChecked"].clone();

    let second = wait_until("a new agent", Duration::from_secs(30), || {
        let now = children_named(cove.pid(), "cove-runner");
        (now.len() == 1 && now[0] != first[0]).then(|| now[0])
    });
    let stderr = cove.stderr();
    assert!(stderr.contains("runner agent exited"), "{stderr}");
    assert!(stderr.contains("signal: 9"), "{stderr}");
    assert!(stderr.contains("runner agent restarted"), "{stderr}");
    assert!(stderr.contains(&format!("pid={second}")), "{stderr}");
    // cove's log (a pipe here) has no colour codes, the agent's lines included.
    assert!(!stderr.contains('\x1b'), "{stderr}");

    // Heartbeats resume: the same row, ready, checked after the kill, at the new agent's port.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let r = local_runner(&cove, &key).await;
        if r["state"] == "ready" && r["lastChecked"].as_str() > at_kill.as_str() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no heartbeat after the restart: {r}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(after["id"], before["id"]);
    assert_ne!(after["apiUrl"], before["apiUrl"], "{after}");
    // The sandbox came back with the new agent, without an operator: still started, and its
    // toolbox answers through the new agent.
    let sb = sandbox(&cove, &key, &id).await;
    assert_eq!(sb["state"], "started", "{sb}");
    assert_eq!(exec(&cove, &key, &id, "after").await, "after");

    // Shutdown stops the restarted agent too.
    let status = cove.terminate();
    assert!(status.success(), "{status:?}");
    wait_until("the agent to stop", Duration::from_secs(15), || {
        (!Path::new(&format!("/proc/{second}")).exists()
            || std::fs::read_to_string(format!("/proc/{second}/stat"))
                .is_ok_and(|s| s.contains(") Z ")))
        .then_some(())
    });
}
