//! Warm pool claims, and restart safety: kill -9 the agent while 3 sandboxes run, restart it
//! over the same data dir, and every sandbox still reports `started` and answers toolbox calls.

use crate::common;

use std::time::Duration;

use common::{Agent, sid};
use cove_runner_api::SandboxState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_pool_and_restart() {
    let image = common::image();
    let pool_flag = format!("{image}=2");
    let agent = Agent::start(&["--warm-pool", &pool_flag]);
    common::wait_until("the warm pool to fill", Duration::from_secs(60), || async {
        agent
            .client
            .info()
            .await
            .is_ok_and(|i| i.warm_pool.get(&image) == Some(&2))
    })
    .await;

    // A matching create takes a warm container; env reaches execute and sessions.
    let warm = sid("warm");
    let t = std::time::Instant::now();
    let s = agent
        .sandbox(&warm, |s| {
            s.env.insert("GREETING".into(), "hi there".into());
            s.org_id = Some("org-w".into());
        })
        .await;
    let took = t.elapsed();
    assert!(s.warm, "{s:?}");
    assert!(
        took < Duration::from_millis(500),
        "warm create took {took:?}"
    );
    let (code, out) = agent.exec(&warm, "echo \"$GREETING\"").await;
    assert_eq!((code, out.as_str()), (0, "hi there\n"));
    let (_, out) = agent.exec(&warm, "printenv GREETING").await;
    assert_eq!(out, "hi there\n");
    let r = agent
        .post(&warm, "/process/session")
        .json(&serde_json::json!({"sessionId": "e"}))
        .send()
        .await
        .expect("session");
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = agent
        .post(&warm, "/process/session/e/exec")
        .json(&serde_json::json!({"command": "echo \"$GREETING\""}))
        .send()
        .await
        .expect("exec")
        .json()
        .await
        .expect("json");
    assert_eq!(v["output"], "hi there\n");
    // Docker knows the sandbox id through the container name.
    let name = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.Name}}",
            s.container_id.as_deref().expect("cid"),
        ])
        .output()
        .expect("inspect");
    assert_eq!(
        String::from_utf8_lossy(&name.stdout).trim(),
        format!("/cove-sb-{warm}")
    );
    // The pool refills in the background.
    common::wait_until(
        "the warm pool to refill",
        Duration::from_secs(60),
        || async {
            agent
                .client
                .info()
                .await
                .is_ok_and(|i| i.warm_pool.get(&image) == Some(&2))
        },
    )
    .await;

    // Two more sandboxes, one not pool-eligible.
    let cold = sid("cold");
    let c = agent
        .sandbox(&cold, |s| s.resources.memory_mib = Some(512))
        .await;
    assert!(!c.warm);
    let third = sid("third");
    agent.sandbox(&third, |_| {}).await;
    let (_, out) = agent
        .exec(&cold, "echo before > /tmp/state; cat /tmp/state")
        .await;
    assert_eq!(out, "before\n");

    // kill -9 and restart over the same data dir and runner id.
    let (tmp, runner_id) = agent.kill9();
    let tmp = tmp.expect("data dir");
    let agent = Agent::spawn(tmp.path(), &runner_id, &["--warm-pool", &pool_flag]);
    for id in [&warm, &cold, &third] {
        let s = agent
            .client
            .get_sandbox(id)
            .await
            .expect("status after restart");
        assert_eq!(s.state, SandboxState::Started, "{s:?}");
        assert_eq!(s.generation, 1);
        let (code, out) = agent.exec(id, "echo alive").await;
        assert_eq!((code, out.as_str()), (0, "alive\n"), "{id}");
    }
    let w = agent.client.get_sandbox(&warm).await.expect("warm");
    assert_eq!(w.org_id.as_deref(), Some("org-w"));
    assert!(w.warm);
    let (_, out) = agent.exec(&warm, "printenv GREETING").await;
    assert_eq!(out, "hi there\n", "the env overlay survives the restart");
    let (_, out) = agent.exec(&cold, "cat /tmp/state").await;
    assert_eq!(out, "before\n", "the sandbox kept running");
    // Pool members that survived are adopted, half-made ones removed, and the pool refills
    // without leaking containers.
    common::wait_until(
        "the warm pool after restart",
        Duration::from_secs(60),
        || async {
            agent
                .client
                .info()
                .await
                .is_ok_and(|i| i.warm_pool.get(&image) == Some(&2))
        },
    )
    .await;
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=cove.runner={runner_id}"),
            "--filter",
            "name=cove-pool-",
        ])
        .output()
        .expect("docker ps");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .count(),
        2
    );
    assert_eq!(
        agent
            .client
            .list_sandboxes()
            .await
            .expect("list")
            .sandboxes
            .len(),
        3
    );

    for id in [&warm, &cold, &third] {
        agent.client.destroy_sandbox(id).await.expect("destroy");
    }
    drop(agent);
    drop(tmp);
}
