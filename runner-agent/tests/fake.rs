//! The simulated runner (`cove-runner --runtime fake`), no Docker: the agent binary over
//! in-memory containers whose toolbox daemons run in-process. Lifecycle with generations,
//! backup/restore, toolbox upload + exec + session, crash → reported state, hang → bounded,
//! idle relays, bounded shutdown, heartbeat back-off.

use crate::common;

use std::time::{Duration, Instant};

use common::{Agent, ControlPlane, FAKE_IMAGE, TOKEN, sid};
use cove_runner_api::client::PutOutcome;
use cove_runner_api::fake::{FakeDelay, FakeOp};
use cove_runner_api::{DesiredState, ReportCause, SandboxSpec, SandboxState};
use futures::StreamExt;
use serde_json::{Value, json};

fn spec(generation: u64, desired: DesiredState) -> SandboxSpec {
    let mut s = SandboxSpec::new(FAKE_IMAGE);
    s.generation = generation;
    s.desired_state = desired;
    s.org_id = Some("org-a".into());
    s.env.insert("GREETING".into(), "hello fake".into());
    s
}

fn delay(op: FakeOp, seconds: Option<f64>) -> FakeDelay {
    FakeDelay {
        op,
        seconds,
        times: None,
    }
}

async fn upload(agent: &Agent, id: &str, path: &str, content: &str) -> u16 {
    let boundary = "XbOuNdArYx";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n{content}\r\n--{boundary}--\r\n"
    );
    agent
        .post(id, &format!("/files/upload?path={path}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("upload")
        .status()
        .as_u16()
}

async fn download(agent: &Agent, id: &str, path: &str) -> (u16, String) {
    let r = agent
        .get(id, &format!("/files/download?path={path}"))
        .send()
        .await
        .expect("download");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_toolbox_and_backups() {
    let t = Instant::now();
    let agent = Agent::start_fake(&[]);
    let id = sid("fake");
    let created = Instant::now();
    let s = agent
        .client
        .put_sandbox(&id, &spec(1, DesiredState::Started))
        .await
        .expect("create");
    let create_took = created.elapsed();
    let exec_started = Instant::now();
    assert_eq!(agent.exec(&id, "true").await.0, 0);
    println!(
        "simulated runner: create → started {:.1} ms, first execute {:.1} ms",
        create_took.as_secs_f64() * 1e3,
        exec_started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(s.state, SandboxState::Started, "{s:?}");
    assert!(s.daemon_version.is_some(), "the in-process daemon answered");
    let cid = s.container_id.clone().expect("container id");

    // The toolbox really works: upload, download, execute (with the sandbox env), sessions.
    let home = "/home/daytona";
    assert_eq!(
        upload(&agent, &id, &format!("{home}/notes.txt"), "kept").await,
        200
    );
    assert_eq!(
        download(&agent, &id, &format!("{home}/notes.txt")).await,
        (200, "kept".to_owned())
    );
    let (code, out) = agent.exec(&id, "cat notes.txt; echo \" $GREETING\"").await;
    assert_eq!((code, out.as_str()), (0, "kept hello fake\n"));
    let r = agent
        .post(&id, "/process/session")
        .json(&json!({"sessionId": "s"}))
        .send()
        .await
        .expect("session");
    assert_eq!(r.status(), 201);
    let v: Value = agent
        .post(&id, "/process/session/s/exec")
        .json(&json!({"command": "X=41; echo $((X+1))"}))
        .send()
        .await
        .expect("exec")
        .json()
        .await
        .expect("json");
    assert_eq!(v["output"], "42\n", "{v}");
    // Files are jailed to the sandbox's root.
    let (status, _) = download(&agent, &id, "/../../../../etc/hostname").await;
    assert_ne!(status, 200);

    // Same generation: no-op; stop, start, stale.
    let again = agent
        .client
        .put_sandbox(&id, &spec(1, DesiredState::Started))
        .await
        .expect("again");
    assert_eq!(again.container_id.as_deref(), Some(cid.as_str()));
    let stopped = agent
        .client
        .put_sandbox(&id, &spec(2, DesiredState::Stopped))
        .await
        .expect("stop");
    assert_eq!(stopped.state, SandboxState::Stopped);
    let r = agent
        .post(&id, "/process/execute")
        .json(&json!({"command": "true"}))
        .send()
        .await
        .expect("exec");
    assert_eq!(r.status(), 409, "a stopped sandbox has no toolbox");
    let started = agent
        .client
        .put_sandbox(&id, &spec(3, DesiredState::Started))
        .await
        .expect("start");
    assert_eq!(
        (started.state, started.generation),
        (SandboxState::Started, 3)
    );
    let err = agent
        .client
        .put_sandbox(&id, &spec(2, DesiredState::Stopped))
        .await
        .expect_err("stale");
    assert_eq!(err.status(), Some(409));

    // Backup: an unguessable name, labelled; the files come back in a restore.
    let b1 = agent.client.backup(&id).await.expect("backup");
    let b2 = agent.client.backup(&id).await.expect("backup again");
    assert_ne!(b1.image, b2.image);
    for b in [&b1, &b2] {
        assert!(b.image.starts_with("cove-backup/"), "{b:?}");
        assert!(!b.image.contains(&id), "{b:?}");
    }
    agent.client.destroy_sandbox(&id).await.expect("archive");
    // Another sandbox (or organization) may not use the backup.
    let mut theft = SandboxSpec::new(&b2.image);
    theft.org_id = Some("org-b".into());
    let err = agent
        .client
        .put_sandbox(&sid("thief"), &theft)
        .await
        .expect_err("foreign backup");
    assert_eq!(err.status(), Some(403), "{err}");
    let mut wrong_org = SandboxSpec::new(&b2.image);
    wrong_org.org_id = Some("org-b".into());
    assert_eq!(
        agent
            .client
            .put_sandbox(&id, &wrong_org)
            .await
            .expect_err("other org")
            .status(),
        Some(403)
    );
    // The superseded backup is gone, the newest restores the files.
    let mut old = spec(1, DesiredState::Started);
    old.snapshot = b1.image.clone();
    assert_eq!(
        agent
            .client
            .put_sandbox(&id, &old)
            .await
            .expect_err("superseded")
            .status(),
        Some(404)
    );
    let mut restore = spec(1, DesiredState::Started);
    restore.snapshot = b2.image.clone();
    let s = agent
        .client
        .put_sandbox(&id, &restore)
        .await
        .expect("restore");
    assert_eq!(s.state, SandboxState::Started);
    assert_eq!(
        download(&agent, &id, &format!("{home}/notes.txt")).await,
        (200, "kept".to_owned())
    );
    // Snapshots advertised: the configured image only, never backups.
    let info = agent.client.info().await.expect("info");
    assert_eq!(info.snapshots, vec![FAKE_IMAGE.to_owned()]);
    // Deleting the backups: the one in use is deferred, then removed with the container.
    let removal = agent
        .client
        .delete_backups(&id)
        .await
        .expect("delete backups");
    assert_eq!(removal.deferred, vec![b2.image.clone()]);
    agent.client.destroy_sandbox(&id).await.expect("destroy");
    let mut gone = spec(1, DesiredState::Started);
    gone.snapshot = b2.image.clone();
    assert_eq!(
        agent
            .client
            .put_sandbox(&id, &gone)
            .await
            .expect_err("deleted backup")
            .status(),
        Some(404)
    );
    println!("simulated lifecycle took {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_is_reported() {
    let cp = ControlPlane::start().await;
    let agent = Agent::start_fake(&["--control-plane-url", &cp.url, "--observe-ms", "60000"]);
    let id = sid("crash");
    agent
        .client
        .put_sandbox(&id, &spec(1, DesiredState::Started))
        .await
        .expect("create");
    agent.client.fake_crash(&id).await.expect("crash");
    // Observed at once (not at the next minute-long tick).
    let r = cp
        .wait_report(&id, Duration::from_secs(5), |r| {
            r.cause == Some(ReportCause::Observed)
        })
        .await;
    assert_eq!(r.state, SandboxState::Stopped);
    assert_eq!(r.generation, Some(1));
    assert_eq!(r.desired_state, Some(DesiredState::Started));
    let st = agent.client.get_sandbox(&id).await.expect("status");
    assert_eq!(st.state, SandboxState::Stopped);
    let r = agent
        .post(&id, "/process/execute")
        .json(&json!({"command": "true"}))
        .send()
        .await
        .expect("exec");
    assert_eq!(r.status(), 409);
    // A new generation starts it again.
    let s = agent
        .client
        .put_sandbox(&id, &spec(2, DesiredState::Started))
        .await
        .expect("restart");
    assert_eq!(s.state, SandboxState::Started);
    assert_eq!(agent.exec(&id, "echo back").await, (0, "back\n".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_hanging_puts_are_bounded() {
    let cp = ControlPlane::start().await;
    let agent = Agent::start_fake(&["--control-plane-url", &cp.url, "--engine-timeout-secs", "3"]);
    // Slow: 202 at the bound, then the outcome as a report of that generation.
    let id = sid("slow");
    agent
        .client
        .fake_delay(&delay(FakeOp::Put, Some(1.5)))
        .await
        .expect("delay");
    let t = Instant::now();
    let out = agent
        .client
        .apply_sandbox(&id, &spec(1, DesiredState::Started), Some(0))
        .await
        .expect("put");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let PutOutcome::Pending(st) = out else {
        panic!("expected 202, got {out:?}");
    };
    assert_eq!((st.state, st.generation), (SandboxState::Creating, 1));
    // The same generation joins the operation (no restart): it answers when that one ends.
    let joined = agent
        .client
        .apply_sandbox(&id, &spec(1, DesiredState::Started), Some(10))
        .await
        .expect("join");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let PutOutcome::Reached(done) = joined else {
        panic!("expected 200, got {joined:?}");
    };
    assert_eq!(done.state, SandboxState::Started);
    let r = cp
        .wait_report(&id, Duration::from_secs(5), |r| {
            r.cause == Some(ReportCause::Applied)
        })
        .await;
    assert!(r.settles(1), "{r:?}");

    // Hanging: 202 within the wait, the engine deadline ends it, the error is reported.
    let hung = sid("hung");
    agent
        .client
        .fake_delay(&delay(FakeOp::Put, None))
        .await
        .expect("hang");
    let t = Instant::now();
    let out = agent
        .client
        .apply_sandbox(&hung, &spec(1, DesiredState::Started), Some(1))
        .await
        .expect("put");
    assert!(matches!(out, PutOutcome::Pending(_)), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let r = cp
        .wait_report(&hung, Duration::from_secs(10), |r| {
            r.cause == Some(ReportCause::Applied)
        })
        .await;
    assert_eq!(r.state, SandboxState::Error, "{r:?}");
    assert_eq!(r.generation, Some(1));
    // The sweep's retry of the same generation goes through now.
    let s = agent
        .client
        .put_sandbox(&hung, &spec(1, DesiredState::Started))
        .await
        .expect("retry");
    assert_eq!(s.state, SandboxState::Started);

    // A delete cancels a hanging operation at once.
    let cancelled = sid("cancel");
    agent
        .client
        .fake_delay(&delay(FakeOp::Put, None))
        .await
        .expect("hang");
    let out = agent
        .client
        .apply_sandbox(&cancelled, &spec(1, DesiredState::Started), Some(0))
        .await
        .expect("put");
    assert!(matches!(out, PutOutcome::Pending(_)));
    let t = Instant::now();
    let d = agent
        .client
        .destroy_sandbox(&cancelled)
        .await
        .expect("delete");
    assert_eq!(d.state, SandboxState::Destroyed);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(
        agent
            .client
            .get_sandbox(&cancelled)
            .await
            .expect_err("gone")
            .status(),
        Some(404)
    );
}

async fn session_with_silent_command(agent: &Agent, id: &str) -> String {
    let r = agent
        .post(id, "/process/session")
        .json(&json!({"sessionId": "quiet"}))
        .send()
        .await
        .expect("session");
    assert_eq!(r.status(), 201);
    let v: Value = agent
        .post(id, "/process/session/quiet/exec")
        .json(&json!({"command": "sleep 30", "runAsync": true}))
        .send()
        .await
        .expect("exec")
        .json()
        .await
        .expect("json");
    v["cmdId"].as_str().expect("cmdId").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_relays_are_closed() {
    let agent = Agent::start_fake(&["--idle-timeout-secs", "1"]);
    let id = sid("idle");
    agent
        .client
        .put_sandbox(&id, &spec(1, DesiredState::Started))
        .await
        .expect("create");
    let cmd = session_with_silent_command(&agent, &id).await;
    let logs = format!("/process/session/quiet/command/{cmd}/logs?follow=true");

    // A websocket that carries nothing is closed after the idle timeout.
    let url = agent.tb(&id, &logs).replacen("http://", "ws://", 1);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .expect("ws req");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("hdr"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket");
    let t = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    assert!(end.is_ok(), "the silent websocket was not closed");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );

    // A silent streamed response ends too (the request itself has no deadline).
    let t = Instant::now();
    let resp = agent.get(&id, &logs).send().await.expect("stream");
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(10), resp.bytes())
        .await
        .expect("the silent stream was not closed");
    assert!(body.is_err() || body.is_ok_and(|b| b.is_empty()));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_hanging_client() {
    let mut agent = Agent::start_fake(&["--shutdown-grace-secs", "1"]);
    agent
        .client
        .fake_delay(&delay(FakeOp::Put, None))
        .await
        .expect("hang");
    // A request that would hang for 30 s.
    let client = agent.client.clone();
    let hanging = tokio::spawn(async move {
        client
            .apply_sandbox("stuck", &spec(1, DesiredState::Started), Some(30))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let took = tokio::task::spawn_blocking(move || agent.terminate(Duration::from_secs(10)))
        .await
        .expect("join")
        .expect("the agent exits");
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    assert!(
        hanging.await.expect("join").is_err(),
        "the hanging call was cut"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_runner_backs_off_and_keeps_serving() {
    let cp = ControlPlane::start().await;
    cp.status.store(401, std::sync::atomic::Ordering::SeqCst);
    let agent = Agent::start_fake(&[
        "--control-plane-url",
        &cp.url,
        "--heartbeat-secs",
        "1",
        "--revoked-backoff-secs",
        "4",
    ]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let hb = cp.heartbeats.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(hb, 1, "one heartbeat, then the back-off");
    // Sandboxes are still served; their reports are held.
    let id = sid("kept");
    let s = agent
        .client
        .put_sandbox(&id, &spec(1, DesiredState::Started))
        .await
        .expect("create");
    assert_eq!(s.state, SandboxState::Started);
    agent.client.fake_crash(&id).await.expect("crash");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cp.reports().is_empty());
    // The control plane knows the runner again: heartbeats resume, the held report arrives.
    cp.status.store(200, std::sync::atomic::Ordering::SeqCst);
    let r = cp
        .wait_report(&id, Duration::from_secs(10), |r| {
            r.state == SandboxState::Stopped
        })
        .await;
    assert_eq!(r.generation, Some(1));
    let before = cp.heartbeats.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = cp.heartbeats.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        after >= before + 2,
        "heartbeats resumed: {before} → {after}"
    );
}

/// Logs to a pipe carry no colour codes, and input with escape sequences is escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_plain_text() {
    use std::io::{BufRead, Read};
    let dir = tempfile::tempdir().expect("tmp");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cove-runner"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--token",
            TOKEN,
            "--runtime",
            "fake",
        ])
        .args(["--snapshot", FAKE_IMAGE, "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listen line");
    let url = line
        .trim()
        .trim_start_matches("cove-runner listening on ")
        .to_owned();
    let r = reqwest::Client::new()
        .put(format!("{url}/v1/sandboxes/evil%1B%5B31m%0Aname"))
        .bearer_auth(TOKEN)
        .json(&spec(1, DesiredState::Started))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 400);
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("log");
    assert!(log.contains("serving"), "{log}");
    assert!(log.contains("request refused"), "{log}");
    assert!(!log.contains('\u{1b}'), "raw escape in the log: {log:?}");
}

/// One HTTP/1.1 exchange on a lent daemon connection: the raw answer.
async fn raw_exchange(stream: &mut tokio::net::UnixStream, req: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the daemon answers")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// The lending socket (`<data-dir>/lend.sock`) hands a local proxy a verified connection to a
/// started sandbox's daemon, and refuses exactly as the toolbox API would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lends_daemon_connections_to_a_local_proxy() {
    use cove_lend::LendError;
    use std::os::unix::fs::PermissionsExt;
    let agent = Agent::start_fake(&[]);
    let socket = agent.data_dir.join(cove_lend::SOCKET_NAME);
    let mode = std::fs::metadata(&socket)
        .expect("lend.sock")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "owner only");
    cove_lend::hello(&socket, TOKEN).await.expect("hello");
    let refused = |r: Result<_, LendError>| match r {
        Err(LendError::Refused(r)) => (r.status, r.code),
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, got a connection"),
    };
    assert_eq!(
        refused(
            cove_lend::hello(&socket, "another-runner")
                .await
                .map(|_| ())
        ),
        (401, "UNAUTHORIZED".into())
    );
    assert_eq!(
        refused(
            cove_lend::borrow(&socket, TOKEN, "no-such-sandbox")
                .await
                .map(drop)
        ),
        (404, "SANDBOX_NOT_FOUND".into())
    );

    let id = sid("lend");
    agent
        .client
        .put_sandbox(&id, &spec(1, DesiredState::Started))
        .await
        .expect("create");
    // Someone else's token gets nothing, even for a sandbox that exists.
    assert_eq!(
        refused(
            cove_lend::borrow(&socket, "another-runner", &id)
                .await
                .map(drop)
        ),
        (401, "UNAUTHORIZED".into())
    );
    let mut lent = cove_lend::borrow(&socket, TOKEN, &id).await.expect("lent");
    let answer = raw_exchange(
        &mut lent,
        "GET /version HTTP/1.1\r\nHost: toolbox\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"version\""), "{answer}");

    agent
        .client
        .put_sandbox(&id, &spec(2, DesiredState::Stopped))
        .await
        .expect("stop");
    assert_eq!(
        refused(cove_lend::borrow(&socket, TOKEN, &id).await.map(drop)),
        (409, "SANDBOX_NOT_STARTED".into())
    );
}
