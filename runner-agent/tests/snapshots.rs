//! Snapshot jobs with real parts: the Docker engine, two `docker-registry` processes (an
//! upstream one behind basic auth and the "internal" one), an s3s-fs server holding build
//! contexts, and `cove-runner` processes.

use crate::common;
use crate::support;

use std::time::{Duration, Instant};

use common::{Agent, image, sid};
use cove_runner_agent::runtime::docker::DockerRuntime;
use cove_runner_agent::runtime::images::{ImageEngine, LogSink};
use cove_runner_api::client::RunnerClient;
use cove_runner_api::{
    PushTarget, SandboxSpec, SandboxState, SnapshotJobState, SnapshotSource, SnapshotSpec,
    SnapshotStatus, build_ref,
};
use support::{Images, Registry, S3, local_image, untag};

struct Quiet;

impl LogSink for Quiet {
    fn line(&self, _line: &str) {}
}

fn org() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn push_to(reg: &Registry, org: &str) -> Option<PushTarget> {
    Some(PushTarget {
        registry: reg.addr.clone(),
        project: format!("cove-{org}"),
        auth: reg.auth.clone(),
    })
}

/// PUT, then GET until the job ends.
async fn settle(client: &RunnerClient, key: &str, spec: &SnapshotSpec) -> SnapshotStatus {
    let st = client
        .put_snapshot(key, spec, Some(30))
        .await
        .expect("put snapshot");
    let mut st = st.into_status();
    let t = Instant::now();
    while !st.state.is_final() {
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "job {key} never ended: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        st = client.get_snapshot(key).await.expect("get snapshot");
    }
    st
}

async fn log_of(agent: &Agent, key: &str) -> String {
    agent
        .http
        .get(agent.client.snapshot_logs_url(key, false))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .expect("logs")
        .text()
        .await
        .expect("text")
}

/// Puts the base image into `reg` as `team/app:v1` (then drops the local tag, so a pull really
/// goes to the registry).
async fn seed_upstream(reg: &Registry) -> String {
    let docker = DockerRuntime::connect().await.expect("docker");
    let upstream = format!("{}/team/app:v1", reg.addr);
    docker.tag(&image(), &upstream).await.expect("tag");
    docker
        .push(&upstream, reg.auth.as_ref(), &Quiet)
        .await
        .expect("seed push");
    untag(&upstream);
    upstream
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_with_credentials_push_to_the_internal_registry_and_propagate() {
    let upstream_reg = Registry::start(Some(("alice", "wonderland")));
    let internal = Registry::start(Some(("cove-internal", "internal-pw")));
    let upstream = seed_upstream(&upstream_reg).await;
    let mut images = Images(vec![upstream.clone()]);
    let agent = Agent::start(&[]);
    let org = org();

    // Right credentials: pulled, then pushed into the org's project of the internal registry.
    let spec = SnapshotSpec {
        org_id: org.clone(),
        source: SnapshotSource::Pull {
            image: upstream.clone(),
            auth: upstream_reg.auth.clone(),
        },
        push: push_to(&internal, &org),
    };
    let k1 = key();
    let st = settle(&agent.client, &k1, &spec).await;
    assert_eq!(st.state, SnapshotJobState::Ready, "{st:?}");
    let r = st.r#ref.clone().expect("ref");
    images.0.push(r.clone());
    let prefix = format!("{}/cove-{org}/daytona-", internal.addr);
    assert!(r.starts_with(&prefix) && r.ends_with(":daytona"), "{r}");
    let repo = r[internal.addr.len() + 1..]
        .trim_end_matches(":daytona")
        .to_owned();
    assert!(
        internal.has(&repo, "daytona").await,
        "{r} is in the internal registry"
    );
    assert!(st.size_bytes.unwrap_or(0) > 1 << 20, "{st:?}");
    assert_eq!(
        st.cmd,
        Some(vec!["sleep".to_owned(), "infinity".to_owned()])
    );
    let info = agent.client.info().await.expect("info");
    assert!(
        info.snapshots.contains(&r),
        "the heartbeat lists {r}: {:?}",
        info.snapshots
    );

    // A wrong password: an error that says so (and never shows the password).
    let mut bad = spec.clone();
    if let SnapshotSource::Pull { auth: Some(a), .. } = &mut bad.source {
        a.password = "not-the-password".into();
    }
    let st = settle(&agent.client, &key(), &bad).await;
    assert_eq!(st.state, SnapshotJobState::Error, "{st:?}");
    assert!(!st.build_failed);
    let reason = st.error_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("unauthorized") || reason.contains("no basic auth credentials"),
        "a clear reason: {reason}"
    );
    assert!(!reason.contains("not-the-password"));

    // Propagation: a second agent pulls the internal ref with the internal account.
    let second = Agent::start(&[]);
    untag(&r);
    let propagate = SnapshotSpec {
        org_id: org.clone(),
        source: SnapshotSource::Pull {
            image: r.clone(),
            auth: internal.auth.clone(),
        },
        push: None,
    };
    let k2 = key();
    let st = settle(&second.client, &k2, &propagate).await;
    assert_eq!(
        (st.state, st.r#ref.as_deref()),
        (SnapshotJobState::Ready, Some(r.as_str())),
        "{st:?}"
    );
    assert!(local_image(&r));
    assert!(log_of(&second, &k2).await.contains(&format!("pulling {r}")));
    let info = second.client.info().await.expect("info");
    assert!(info.snapshots.contains(&r), "{:?}", info.snapshots);

    // A sandbox whose image is missing pulls it with `imageAuth`; another org's sandbox may not
    // use the org's internal ref.
    untag(&r);
    let sb = sid("snap");
    let mut sspec = SandboxSpec::new(r.clone());
    sspec.org_id = Some(org.clone());
    sspec.image_auth = internal.auth.clone();
    let s = second
        .client
        .put_sandbox(&sb, &sspec)
        .await
        .expect("sandbox");
    assert_eq!(s.state, SandboxState::Started, "{s:?}");
    let mut foreign = sspec.clone();
    foreign.org_id = Some(org_other());
    let e = second
        .client
        .put_sandbox(&sid("snap"), &foreign)
        .await
        .expect_err("another org");
    assert_eq!(e.status(), Some(403), "{e:?}");

    // DELETE keeps the image while the sandbox uses it, removes it afterwards.
    let kept = second.client.delete_snapshot(&k2).await.expect("delete");
    assert!(!kept.removed);
    assert!(local_image(&r));
    second.client.destroy_sandbox(&sb).await.expect("destroy");
    let gone = second.client.delete_snapshot(&k2).await.expect("delete");
    assert!(gone.removed);
    assert!(!local_image(&r), "{r} removed");
    let e = second.client.get_snapshot(&k2).await.expect_err("404");
    assert_eq!(e.code(), Some("SNAPSHOT_NOT_FOUND"));
    let info = second.client.info().await.expect("info");
    assert!(!info.snapshots.contains(&r));
}

fn org_other() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn builds_from_s3_contexts_reuse_present_images_and_report_failed_steps() {
    let internal = Registry::start(Some(("cove-internal", "internal-pw")));
    let s3 = S3::start("cove").await;
    let org = org();
    let hash = s3
        .put_context(&org, &[("hello.txt", "hello from the context\n")])
        .await;
    let args = s3.agent_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::start_env(&args, &S3::agent_env());
    let mut images = Images::default();

    let dockerfile = format!(
        "FROM {}\nCOPY hello.txt /opt/hello.txt\nRUN test -s /opt/hello.txt\n",
        image()
    );
    let hashes = vec![hash.clone()];
    let r = build_ref(&internal.addr, &org, &dockerfile, &hashes);
    images.0.push(r.clone());
    let spec = SnapshotSpec {
        org_id: org.clone(),
        source: SnapshotSource::Build {
            dockerfile: dockerfile.clone(),
            context_hashes: hashes.clone(),
            r#ref: r.clone(),
        },
        push: push_to(&internal, &org),
    };
    let k1 = key();
    let st = settle(&agent.client, &k1, &spec).await;
    assert_eq!(
        (st.state, st.r#ref.as_deref()),
        (SnapshotJobState::Ready, Some(r.as_str())),
        "{st:?}"
    );
    let log = log_of(&agent, &k1).await;
    assert!(log.contains("COPY hello.txt /opt/hello.txt"), "{log}");
    let out = std::process::Command::new("docker")
        .args(["run", "--rm", "--entrypoint", "cat", &r, "/opt/hello.txt"])
        .output()
        .expect("docker run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the context\n"
    );
    let repo = r[internal.addr.len() + 1..]
        .trim_end_matches(":daytona")
        .to_owned();
    assert!(internal.has(&repo, "daytona").await);
    let info = agent.client.info().await.expect("info");
    assert!(info.snapshots.contains(&r), "{:?}", info.snapshots);

    // The same build again (another snapshot of the org): ready at once, no build step.
    let k2 = key();
    let again = agent
        .client
        .put_snapshot(&k2, &spec, Some(30))
        .await
        .expect("put")
        .into_status();
    assert_eq!(again.state, SnapshotJobState::Ready, "{again:?}");
    let log = log_of(&agent, &k2).await;
    assert!(
        log.contains("nothing to build") && !log.contains("Step "),
        "{log}"
    );

    // A failing RUN: build_failed with Docker's message.
    let failing = format!("FROM {}\nRUN exit 3\n", image());
    let mut fail_spec = spec.clone();
    fail_spec.source = SnapshotSource::Build {
        dockerfile: failing.clone(),
        context_hashes: vec![],
        r#ref: build_ref(&internal.addr, &org, &failing, &[]),
    };
    let st = settle(&agent.client, &key(), &fail_spec).await;
    assert_eq!(st.state, SnapshotJobState::Error);
    assert!(st.build_failed, "{st:?}");
    assert_eq!(
        st.error_reason.as_deref(),
        Some("The command '/bin/sh -c exit 3' returned a non-zero code: 3")
    );

    // A context that is not in S3: an error naming it.
    let mut missing = spec.clone();
    missing.source = SnapshotSource::Build {
        dockerfile: dockerfile.clone(),
        context_hashes: vec!["0123456789abcdef0123456789abcdef".into()],
        r#ref: build_ref(
            &internal.addr,
            &org,
            &dockerfile,
            &["0123456789abcdef0123456789abcdef".into()],
        ),
    };
    let st = settle(&agent.client, &key(), &missing).await;
    assert_eq!(st.state, SnapshotJobState::Error);
    let reason = st.error_reason.unwrap_or_default();
    assert!(
        reason.contains("0123456789abcdef0123456789abcdef") && reason.contains("not found"),
        "{reason}"
    );

    // DELETE of both snapshots of the build: the image goes with the last one.
    assert!(
        agent
            .client
            .delete_snapshot(&k1)
            .await
            .expect("delete")
            .removed
    );
    assert!(local_image(&r), "the other snapshot still holds {r}");
    assert!(
        agent
            .client
            .delete_snapshot(&k2)
            .await
            .expect("delete")
            .removed
    );
    assert!(!local_image(&r));

    // A build FROM the org's image in the (basic-auth) internal registry: the builder pulls it
    // with the push target's credentials.
    let layered = format!("FROM {r}\nRUN test -s /opt/hello.txt\n");
    let r2 = build_ref(&internal.addr, &org, &layered, &[]);
    images.0.push(r2.clone());
    let mut on_top = spec.clone();
    on_top.source = SnapshotSource::Build {
        dockerfile: layered,
        context_hashes: vec![],
        r#ref: r2.clone(),
    };
    let st = settle(&agent.client, &key(), &on_top).await;
    assert_eq!(
        (st.state, st.r#ref.as_deref()),
        (SnapshotJobState::Ready, Some(r2.as_str())),
        "{st:?}"
    );
    assert!(local_image(&r), "the FROM image was pulled");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_followed_log_streams_lines_before_the_job_ends() {
    let agent = Agent::start(&[]);
    let org = org();
    let dockerfile = format!(
        "FROM {}\nRUN echo step-one-{org} && sleep 4 && echo step-two\n",
        image()
    );
    let r = build_ref("", &org, &dockerfile, &[]);
    let _images = Images(vec![r.clone()]);
    let spec = SnapshotSpec {
        org_id: org.clone(),
        source: SnapshotSource::Build {
            dockerfile,
            context_hashes: vec![],
            r#ref: r.clone(),
        },
        push: None,
    };
    let k = key();
    let st = agent
        .client
        .put_snapshot(&k, &spec, Some(0))
        .await
        .expect("put");
    assert!(!st.is_reached(), "{st:?}");
    let resp = agent
        .http
        .get(agent.client.snapshot_logs_url(&k, true))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .expect("follow");
    assert_eq!(resp.status(), 200);
    let mut resp = resp;
    let mut seen = String::new();
    let needle = format!("step-one-{org}");
    while !seen.contains(&needle) {
        let chunk = tokio::time::timeout(Duration::from_secs(120), resp.chunk())
            .await
            .expect("a chunk in time")
            .expect("stream open")
            .expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let mid = agent.client.get_snapshot(&k).await.expect("get");
    assert_eq!(
        mid.state,
        SnapshotJobState::Building,
        "the first line came before the end"
    );
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(120), resp.chunk())
        .await
        .expect("the stream ends with the job")
        .expect("chunk")
    {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains("step-two") && seen.contains(&format!("ready: {r}")),
        "{seen}"
    );
    assert_eq!(
        agent.client.get_snapshot(&k).await.expect("get").state,
        SnapshotJobState::Ready
    );
    assert!(
        agent
            .client
            .delete_snapshot(&k)
            .await
            .expect("delete")
            .removed
    );
}
