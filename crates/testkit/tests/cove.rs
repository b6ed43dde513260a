//! `Cove` against the real `cove up` and the project's `spin.toml` (wasm components built):
//! with a simulated runner (the whole create → exec flow through the public API, no Docker),
//! restarts over a data dir, startup failures, and `cove up`'s own Docker runner's cleanup.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cove_testkit::api::{Api, Call, Http};
use cove_testkit::cove::{Cove, CoveOptions, Manifest, Runner};
use cove_testkit::{Error, FAKE_IMAGE, Runtime, image, org, procfs};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_runner_serves_sandboxes_through_the_public_api() {
    let cove = Cove::start(CoveOptions::default().runner(Runner::Fake).fresh_table())
        .await
        .unwrap();
    assert!(
        cove.base().starts_with("http://127.0.0.1:"),
        "{}",
        cove.base()
    );
    assert_eq!(cove.api_url(), format!("{}/api", cove.base()));
    assert_eq!(cove.stdout().last().map(String::as_str), Some("cove ready"));
    let admin = cove
        .admin_key()
        .expect("a fresh data dir prints the admin key");
    let [agent] = cove.agents() else {
        panic!("one agent")
    };
    assert_eq!(agent.runtime(), Runtime::Fake);

    // The runner the testkit registered is ready, in cove's table too.
    let api = cove.api();
    let (s, r) = api
        .call(Call::get(format!("/api/runners/{}", agent.runner_id())).token(admin))
        .await;
    assert_eq!((s, r["state"].as_str()), (200, Some("ready")), "{r}");
    let rows = cove
        .store()
        .expect("fresh_table")
        .runners()
        .list()
        .await
        .unwrap();
    assert!(rows.iter().any(|row| row.id.as_str() == agent.runner_id()));

    // A tenant creates a sandbox on it and runs a command through the toolbox proxy.
    let t = org::tenant(&api, &["write:sandboxes", "delete:sandboxes"]).await;
    let (s, sb) = api
        .call(Call::post("/api/sandbox").token(&t.key).json(&json!({})))
        .await;
    assert_eq!(s, 200, "{sb}");
    assert_eq!(sb["state"], "started", "{sb}");
    assert_eq!(sb["snapshot"], FAKE_IMAGE);
    assert_eq!(sb["runnerId"], agent.runner_id());
    // `cove up` hands out cove-proxy's `/toolbox` (its own port), not the API's.
    let proxy = sb["toolboxProxyUrl"].as_str().unwrap();
    assert!(proxy.starts_with("http://127.0.0.1:"), "{proxy}");
    assert!(proxy.ends_with("/toolbox"), "{proxy}");
    assert!(!proxy.starts_with(cove.base()), "{proxy}");
    let path = format!("/toolbox/{}/process/execute", sb["id"].as_str().unwrap());
    let (s, out) = Http::new(proxy.trim_end_matches("/toolbox"))
        .call(
            Call::post(path)
                .token(&t.key)
                .json(&json!({"command": "echo via-cove"})),
        )
        .await;
    assert_eq!((s, out["exitCode"].as_i64()), (200, Some(0)), "{out}");
    assert_eq!(out["result"], "via-cove\n");

    let usage = cove.usage().expect("running");
    assert!(usage.rss_bytes > 1 << 20, "{usage:?}");
    assert!(usage.cpu > Duration::ZERO, "{usage:?}");
    let (cove_pid, agent_pid) = (cove.pid(), agent.pid());
    let status = cove.terminate().unwrap();
    assert!(status.success(), "{status}");
    assert!(!procfs::alive(cove_pid));
    assert!(!procfs::alive(agent_pid), "the agent goes with its Cove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_over_the_data_dir_keeps_the_state_and_prints_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let first = Cove::start(CoveOptions::default().data_dir(dir.path()))
        .await
        .unwrap();
    let key = first.admin_key().expect("first start").to_owned();
    assert_eq!(first.data_dir(), dir.path());
    first.terminate().unwrap();

    let mut second = Cove::start(CoveOptions::default().data_dir(dir.path()))
        .await
        .unwrap();
    assert_eq!(second.admin_key(), None, "{:?}", second.stdout());
    let (s, me) = second
        .api()
        .call(Call::get("/api/api-keys/current").token(&key))
        .await;
    assert_eq!((s, me["name"].as_str()), (200, Some("cove-admin")), "{me}");
    let e = second
        .attach_agent(cove_testkit::AgentOptions::fake())
        .await
        .err()
        .expect("no admin key to register a runner with");
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
}

#[tokio::test]
async fn a_startup_failure_returns_the_stderr() {
    let stderr = Cove::start_failing(
        CoveOptions::default().manifest(Manifest::Inline("this is = not [a manifest".into())),
    )
    .await
    .unwrap();
    assert!(stderr.contains("cannot parse manifest"), "{stderr}");

    let e = Cove::start(
        CoveOptions::default().manifest(Manifest::File("/nonexistent/spin.toml".into())),
    )
    .await
    .err()
    .expect("no manifest");
    match e {
        Error::NotReady { exited, stderr, .. } => {
            assert!(exited);
            assert!(stderr.contains("cannot read manifest"), "{stderr}");
        }
        other => panic!("unexpected {other}"),
    }
}

/// `cove up`'s own agent on Docker: its warm containers carry its runner id, and nothing with
/// that label is left once the `Cove` drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_own_docker_runner_leaves_no_container_behind() {
    let cove = Cove::start(CoveOptions::default().runner(Runner::Docker))
        .await
        .unwrap();
    let admin = cove.admin_key().unwrap();
    let (s, list) = cove
        .api()
        .call(Call::get("/api/runners").token(admin))
        .await;
    assert_eq!(s, 200, "{list}");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["state"], "ready", "{list}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while image::containers(&id).is_empty() {
        assert!(Instant::now() < deadline, "the warm pool never filled");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let pid = cove.pid();
    let own = procfs::children_named(pid, "cove-runner");
    assert_eq!(own.len(), 1, "cove up supervises one agent");
    drop(cove);
    assert!(!procfs::alive(own[0]));
    assert!(image::containers(&id).is_empty(), "removed on drop");
}
