//! Sandbox lifecycle against the real Docker engine: create → started → exec → stop (force) →
//! start → destroy, limits checked from inside, hardening, network policy, backup, auth.

use crate::common;

use common::{Agent, TOKEN, sid};
use cove_runner_api::{BackupRequest, DesiredState, NetworkPolicy, SandboxState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_with_limits() {
    let agent = Agent::start(&[]);
    let id = sid("life");
    let mut spec = cove_runner_api::SandboxSpec::new(common::image());
    spec.resources.memory_mib = Some(128);
    spec.resources.pids = Some(64);
    spec.resources.cpu = Some(0.5);
    spec.env.insert("COVE_TEST".into(), "hello world".into());
    spec.org_id = Some("org-1".into());
    let s = agent.client.put_sandbox(&id, &spec).await.expect("create");
    assert_eq!(s.state, SandboxState::Started);
    assert_eq!(s.org_id.as_deref(), Some("org-1"));
    let cid = s.container_id.clone().expect("container id");

    // Idempotent: the same generation again changes nothing.
    let again = agent.client.put_sandbox(&id, &spec).await.expect("again");
    assert_eq!(again.container_id.as_deref(), Some(cid.as_str()));

    let (code, out) = agent.exec(&id, "echo $COVE_TEST; id -un").await;
    assert_eq!((code, out.as_str()), (0, "hello world\ndaytona\n"));

    // Hardening seen from inside: no effective capabilities, a bounding set of the six root
    // capabilities (what `sudo` can reach), docker-init as PID 1.
    let (_, caps) = agent
        .exec(
            &id,
            "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status",
        )
        .await;
    assert!(caps.contains("CapEff:\t0000000000000000"), "{caps}");
    // CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, KILL 5, SETGID 6, SETUID 7, AUDIT_WRITE 29.
    assert!(caps.contains("CapBnd:\t00000000200000eb"), "{caps}");
    assert!(caps.contains("NoNewPrivs:\t0"), "{caps}");
    let (_, pid1) = agent.exec(&id, "cat /proc/1/comm").await;
    assert_eq!(pid1.trim(), "docker-init");
    // The toolbox binary is mounted read-only.
    let (code, _) = agent
        .exec(
            &id,
            "test -w /usr/local/bin/cove-toolbox || touch /usr/local/bin/cove-toolbox",
        )
        .await;
    assert_ne!(code, 0);
    // Docker's view of the limits.
    let inspect = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}} {{.HostConfig.Init}} {{.HostConfig.CapDrop}} {{len .HostConfig.CapAdd}}", &cid])
        .output()
        .expect("docker inspect");
    let inspect = String::from_utf8_lossy(&inspect.stdout).trim().to_owned();
    assert_eq!(inspect, "134217728 64 500000000 true [ALL] 7");

    // Memory limit: an over-allocating process is OOM-killed (137).
    let (code, _) = agent
        .exec(
            &id,
            "python3 -c 'b = bytearray(400 * 1024 * 1024); print(len(b))'",
        )
        .await;
    assert_eq!(code, 137, "the memory limit must kill the process");
    // Pids limit: forking stops well below 64 extra processes.
    let script = "import os, time\nn = 0\ntry:\n    for _ in range(200):\n        pid = os.fork()\n        if pid == 0:\n            time.sleep(3)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('fork failed', e.errno)\nprint('forked', n)\n";
    let (code, out) = agent
        .exec(
            &id,
            &format!("python3 -c \"{}\"", script.replace('"', "\\\"")),
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("fork failed"), "{out}");
    let forked: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("forked "))
        .and_then(|n| n.trim().parse().ok())
        .expect("count");
    assert!(forked < 64, "forked {forked}");

    // Stop by force, then start again.
    let mut stop = spec.clone();
    stop.generation = 2;
    stop.desired_state = DesiredState::Stopped;
    stop.stop_timeout_secs = Some(0);
    let t = std::time::Instant::now();
    let s = agent.client.put_sandbox(&id, &stop).await.expect("stop");
    assert_eq!(s.state, SandboxState::Stopped);
    assert!(
        t.elapsed().as_secs() < 5,
        "force stop took {:?}",
        t.elapsed()
    );
    assert_eq!(
        agent.client.get_sandbox(&id).await.expect("get").state,
        SandboxState::Stopped
    );
    let r = agent
        .post(&id, "/process/execute")
        .json(&serde_json::json!({"command": "true"}))
        .send()
        .await
        .expect("exec");
    assert_eq!(r.status(), 409);

    let mut start = stop.clone();
    start.generation = 3;
    start.desired_state = DesiredState::Started;
    let s = agent.client.put_sandbox(&id, &start).await.expect("start");
    assert_eq!(s.state, SandboxState::Started);
    let (code, out) = agent.exec(&id, "echo again").await;
    assert_eq!((code, out.as_str()), (0, "again\n"));

    // A stale generation is refused.
    let err = agent
        .client
        .put_sandbox(&id, &spec)
        .await
        .expect_err("stale");
    assert_eq!(err.status(), Some(409));

    // Backup = docker commit to a tag the agent picks (whatever an older control plane asks).
    let asked = format!("cove-backup/{id}:1");
    let b = agent
        .client
        .backup_sandbox(
            &id,
            &BackupRequest {
                image: asked.clone(),
                ..BackupRequest::default()
            },
        )
        .await
        .expect("backup");
    assert!(b.image_id.starts_with("sha256:"));
    assert_ne!(b.image, asked);
    let tag = b.image.clone();
    let ok = std::process::Command::new("docker")
        .args(["image", "inspect", &tag])
        .output()
        .expect("inspect");
    assert!(ok.status.success());
    let _ = std::process::Command::new("docker")
        .args(["rmi", &tag])
        .output();

    // Destroy is idempotent and removes the container.
    let d = agent.client.destroy_sandbox(&id).await.expect("destroy");
    assert_eq!(d.state, SandboxState::Destroyed);
    agent
        .client
        .destroy_sandbox(&id)
        .await
        .expect("destroy again");
    assert_eq!(
        agent
            .client
            .get_sandbox(&id)
            .await
            .expect_err("gone")
            .status(),
        Some(404)
    );
    let gone = std::process::Command::new("docker")
        .args(["inspect", &cid])
        .output()
        .expect("inspect");
    assert!(!gone.status.success());
    assert!(!agent.data_dir.join("sandboxes").join(&id).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policy_and_auth() {
    let agent = Agent::start(&[]);
    let blocked = sid("net");
    agent
        .sandbox(&blocked, |s| s.network = NetworkPolicy::BlockAll)
        .await;
    // Only the loopback interface; the toolbox still answers over its socket.
    let (code, out) = agent.exec(&blocked, "ls /sys/class/net").await;
    assert_eq!((code, out.trim()), (0, "lo"));

    let open = sid("net");
    agent.sandbox(&open, |_| {}).await;
    let (_, out) = agent.exec(&open, "ls /sys/class/net").await;
    assert!(out.contains("eth0"), "{out}");

    // 401 with the envelope, for API and toolbox routes alike.
    for (method, url) in [
        ("GET", format!("{}/v1/sandboxes", agent.url)),
        ("GET", agent.tb(&open, "/files?path=/")),
        ("POST", agent.tb(&open, "/process/execute")),
    ] {
        let req = agent.http.request(method.parse().expect("method"), &url);
        for r in [
            req.try_clone().expect("clone"),
            req.bearer_auth(format!("{TOKEN}x")),
        ] {
            let resp = r.send().await.expect("send");
            assert_eq!(resp.status(), 401, "{url}");
            let v: serde_json::Value = resp.json().await.expect("json");
            assert_eq!(v["code"], "UNAUTHORIZED");
            assert_eq!(v["statusCode"], 401);
        }
    }
    // Unknown sandbox → 404 envelope.
    let r = agent.get("nope", "/files").send().await.expect("send");
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["code"], "SANDBOX_NOT_FOUND");

    let list = agent.client.list_sandboxes().await.expect("list");
    assert_eq!(list.sandboxes.len(), 2);
    for id in [&blocked, &open] {
        agent.client.destroy_sandbox(id).await.expect("destroy");
    }
}
