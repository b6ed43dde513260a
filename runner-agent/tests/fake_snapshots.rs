//! Snapshot jobs on the simulated runner (`--runtime fake`, no Docker): the routes a
//! control-plane suite drives — pull/build/push, a failing build, a failing pull, joins, the
//! deadline, logs (followed), the heartbeat's snapshot list, delete, and the tenant check.

use crate::common;

use std::time::Duration;

use common::{Agent, FAKE_IMAGE, TOKEN};
use cove_runner_api::fake::{FakeDelay, FakeOp};
use cove_runner_api::{
    PushTarget, SandboxSpec, SnapshotJobState, SnapshotSource, SnapshotSpec, build_ref,
};

const REGISTRY: &str = "127.0.0.1:5999";

fn org() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn build_spec(org: &str, dockerfile: &str) -> SnapshotSpec {
    SnapshotSpec {
        org_id: org.to_owned(),
        source: SnapshotSource::Build {
            dockerfile: dockerfile.to_owned(),
            context_hashes: vec![],
            r#ref: build_ref(REGISTRY, org, dockerfile, &[]),
        },
        push: Some(PushTarget {
            registry: REGISTRY.into(),
            project: format!("cove-{org}"),
            auth: None,
        }),
    }
}

#[tokio::test]
async fn builds_and_pulls_end_ready_or_with_their_reason() {
    let agent = Agent::start_fake(&[]);
    let org = org();
    let df = format!("FROM {FAKE_IMAGE}\nRUN echo hi\n");
    let spec = build_spec(&org, &df);
    let k = key();
    let first = agent
        .client
        .put_snapshot(&k, &spec, Some(0))
        .await
        .expect("put");
    assert!(!first.is_reached(), "202 while building: {first:?}");
    // A second PUT of the same spec joins and waits for the end.
    let st = agent
        .client
        .put_snapshot(&k, &spec, Some(10))
        .await
        .expect("join")
        .into_status();
    assert_eq!(st.state, SnapshotJobState::Ready, "{st:?}");
    let r = build_ref(REGISTRY, &org, &df, &[]);
    assert_eq!(st.r#ref.as_deref(), Some(r.as_str()));
    let info = agent.client.info().await.expect("info");
    assert!(info.snapshots.contains(&r), "{:?}", info.snapshots);
    assert_eq!(
        info.metrics.current_snapshot_count as usize,
        info.snapshots.len()
    );
    assert!(
        info.snapshots.len() >= 2,
        "the base image and the build: {:?}",
        info.snapshots
    );
    let log = agent
        .http
        .get(agent.client.snapshot_logs_url(&k, false))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("logs")
        .text()
        .await
        .expect("text");
    assert!(
        log.contains("Step 2/2 : RUN echo hi") && log.contains(&format!("pushing {r}")),
        "{log}"
    );

    // A sandbox of the org runs from the ref; another org's sandbox may not.
    let mut s = SandboxSpec::new(r.clone());
    s.org_id = Some(org.clone());
    agent
        .client
        .put_sandbox("snap-sb", &s)
        .await
        .expect("sandbox of the org");
    s.org_id = Some("someone-else".into());
    let e = agent
        .client
        .put_sandbox("snap-sb2", &s)
        .await
        .expect_err("other org");
    assert_eq!(e.status(), Some(403));
    assert!(
        !agent
            .client
            .delete_snapshot(&k)
            .await
            .expect("delete")
            .removed,
        "in use"
    );
    agent
        .client
        .destroy_sandbox("snap-sb")
        .await
        .expect("destroy");
    assert!(
        agent
            .client
            .delete_snapshot(&k)
            .await
            .expect("delete")
            .removed
    );
    let info = agent.client.info().await.expect("info");
    assert!(!info.snapshots.contains(&r));
    assert_eq!(
        agent
            .client
            .get_snapshot(&k)
            .await
            .expect_err("gone")
            .code(),
        Some("SNAPSHOT_NOT_FOUND")
    );

    // A failing step and a missing image.
    let st = agent
        .client
        .put_snapshot(
            &key(),
            &build_spec(&org, &format!("FROM {FAKE_IMAGE}\nRUN exit 3\n")),
            Some(10),
        )
        .await
        .expect("put")
        .into_status();
    assert!(
        st.build_failed && st.state == SnapshotJobState::Error,
        "{st:?}"
    );
    assert_eq!(
        st.error_reason.as_deref(),
        Some("The command '/bin/sh -c exit 3' returned a non-zero code: 3")
    );
    let missing = SnapshotSpec {
        org_id: org.clone(),
        source: SnapshotSource::Pull {
            image: "registry.example.com/team/missing:1".into(),
            auth: None,
        },
        push: None,
    };
    let st = agent
        .client
        .put_snapshot(&key(), &missing, Some(10))
        .await
        .expect("put")
        .into_status();
    assert!(
        !st.build_failed && st.state == SnapshotJobState::Error,
        "{st:?}"
    );
    assert!(
        st.error_reason
            .unwrap_or_default()
            .contains("pull access denied")
    );
}

#[tokio::test]
async fn a_hung_job_ends_at_its_deadline_and_a_followed_log_ends_with_it() {
    let agent = Agent::start_fake(&["--snapshot-pull-timeout-secs", "1"]);
    agent
        .client
        .fake_delay(&FakeDelay {
            op: FakeOp::Snapshot,
            seconds: None,
            times: None,
        })
        .await
        .expect("arm");
    let spec = SnapshotSpec {
        org_id: org(),
        source: SnapshotSource::Pull {
            image: "alpine:3".into(),
            auth: None,
        },
        push: None,
    };
    let k = key();
    let st = agent
        .client
        .put_snapshot(&k, &spec, Some(0))
        .await
        .expect("put");
    assert!(!st.is_reached());
    let resp = agent
        .http
        .get(agent.client.snapshot_logs_url(&k, true))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("follow");
    let mut resp = resp;
    let mut seen = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the stream ends with the job")
        .expect("chunk")
    {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains("pulling alpine:3") && seen.contains("error: pull timed out after 1.0 s"),
        "{seen}"
    );
    let st = agent.client.get_snapshot(&k).await.expect("get");
    assert_eq!(st.state, SnapshotJobState::Error);
    assert_eq!(
        st.error_reason.as_deref(),
        Some("pull timed out after 1.0 s")
    );
}
