//! `Agent` against the real `cove-runner`: the simulated runner (lifecycle, toolbox, fault
//! injection, restart over its data dir, cleanup) and, on Docker, container removal by label.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use cove_runner_api::client::PutOutcome;
use cove_runner_api::fake::FakeOp;
use cove_runner_api::{SandboxSpec, SandboxState};
use cove_testkit::{Agent, AgentOptions, Error, FAKE_IMAGE, Runtime, image};

fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_agent_runs_sandboxes_and_takes_faults() {
    let agent = Agent::start(AgentOptions::fake()).unwrap();
    assert_eq!(agent.runtime(), Runtime::Fake);
    assert!(
        agent.url().starts_with("http://127.0.0.1:"),
        "{}",
        agent.url()
    );
    assert_eq!(agent.snapshots(), [FAKE_IMAGE]);

    let s = agent
        .sandbox("tk-1", |s| {
            s.env.insert("GREETING".into(), "hello".into());
        })
        .await
        .unwrap();
    assert_eq!(s.state, SandboxState::Started, "{s:?}");
    assert_eq!(
        agent.exec("tk-1", "echo $GREETING").await,
        (0, "hello\n".into())
    );

    // Its token is the only one it accepts.
    let other = cove_runner_api::client::RunnerClient::new(agent.url(), "wrong");
    assert_eq!(
        other.get_sandbox("tk-1").await.unwrap_err().status(),
        Some(401)
    );

    // Crash: the container dies and the agent shows it stopped.
    agent.crash("tk-1").await.unwrap();
    let s = agent.client().get_sandbox("tk-1").await.unwrap();
    assert_eq!(s.state, SandboxState::Stopped, "{s:?}");

    // A hanging engine call: a bounded PUT answers 202 with the transitional state.
    agent.delay(FakeOp::Put, None, Some(1)).await.unwrap();
    let mut spec = SandboxSpec::new(FAKE_IMAGE);
    spec.generation = 1;
    let out = agent
        .client()
        .apply_sandbox("tk-2", &spec, Some(1))
        .await
        .unwrap();
    assert!(matches!(out, PutOutcome::Pending(_)), "{out:?}");

    let (pid, dir) = (agent.pid(), agent.data_dir().to_path_buf());
    assert!(dir.is_dir());
    drop(agent);
    assert!(gone(pid), "killed by its PID on drop");
    assert!(!dir.exists(), "its temporary data dir is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_restarts_over_its_data_dir_with_its_id_and_token() {
    let agent = Agent::start(AgentOptions::fake().runner_id("tk-restart")).unwrap();
    let (pid, token, dir) = (
        agent.pid(),
        agent.token().to_owned(),
        agent.data_dir().to_path_buf(),
    );
    let remains = agent.kill();
    assert!(gone(pid));
    assert!(dir.is_dir(), "the data dir stays for the restart");
    assert_eq!(remains.runner_id(), "tk-restart");
    let again = remains
        .restart(|o| o.args.extend(["--observe-ms".into(), "500".into()]))
        .unwrap();
    assert_ne!(again.pid(), pid);
    assert_eq!(
        (again.runner_id(), again.token()),
        ("tk-restart", token.as_str())
    );
    assert_eq!(again.data_dir(), dir);
    let info = again.client().info().await.unwrap();
    assert!(info.snapshots.iter().any(|s| s == FAKE_IMAGE), "{info:?}");
    drop(again);
    assert!(
        !dir.exists(),
        "the restarted agent owns the temporary dir now"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_is_a_sigterm_the_agent_obeys() {
    let mut agent =
        Agent::start(AgentOptions::fake().arg("--shutdown-grace-secs").arg("1")).unwrap();
    let pid = agent.pid();
    let (took, _agent) = tokio::task::spawn_blocking(move || {
        let took = agent.terminate(Duration::from_secs(20));
        (took, agent)
    })
    .await
    .unwrap();
    assert!(took.is_some(), "exited on SIGTERM, before the deadline");
    assert!(gone(pid));
}

#[test]
fn a_missing_binary_is_a_spawn_error() {
    let e = Agent::start(AgentOptions::fake().bin("/nonexistent/cove-runner"))
        .err()
        .expect("no such binary");
    assert!(matches!(e, Error::Spawn { .. }), "{e}");
}

/// Docker: the agent's containers carry its label and go when the guard drops; fault injection
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_agent_leaves_no_container_behind() {
    let agent = Agent::start(AgentOptions::docker()).unwrap();
    let id = format!("{}-sb", agent.runner_id());
    let s = agent.sandbox(&id, |_| {}).await.unwrap();
    assert_eq!(s.state, SandboxState::Started, "{s:?}");
    let (code, out) = agent.exec(&id, "whoami").await;
    assert_eq!((code, out.as_str()), (0, "daytona\n"));
    assert!(matches!(agent.crash(&id).await, Err(Error::Unsupported(_))));
    let runner = agent.runner_id().to_owned();
    assert_eq!(image::containers(&runner).len(), 1);
    drop(agent);
    assert!(
        image::containers(&runner).is_empty(),
        "removed by label on drop"
    );
}
