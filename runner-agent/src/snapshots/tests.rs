//! The job table over the simulated runtime.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cove_runner_api::fake::{FakeDelay, FakeOp};
use cove_runner_api::{PushTarget, SnapshotJobState, SnapshotSource, SnapshotSpec, build_ref};

use super::*;
use crate::runtime::Faults;
use crate::runtime::fake::FakeRuntime;

const ORG: &str = "0b0e5d7e-1111-4c4c-8888-000000000001";

struct Fixture {
    _dir: tempfile::TempDir,
    fake: Arc<FakeRuntime>,
    jobs: Snapshots,
}

fn fixture(settings: SnapshotSettings) -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let fake = Arc::new(FakeRuntime::new(
        dir.path().join("fake"),
        &["cove-fake-base:1".to_owned()],
    ));
    let jobs = Snapshots::new(dir.path(), settings, fake.clone());
    Fixture {
        _dir: dir,
        fake,
        jobs,
    }
}

fn pull(image: &str, push: bool) -> SnapshotSpec {
    SnapshotSpec {
        org_id: ORG.into(),
        source: SnapshotSource::Pull {
            image: image.into(),
            auth: None,
        },
        push: push.then(|| PushTarget {
            registry: "127.0.0.1:5000".into(),
            project: format!("cove-{ORG}"),
            auth: None,
        }),
    }
}

fn build(dockerfile: &str) -> SnapshotSpec {
    SnapshotSpec {
        org_id: ORG.into(),
        source: SnapshotSource::Build {
            dockerfile: dockerfile.into(),
            context_hashes: vec![],
            r#ref: build_ref("127.0.0.1:5000", ORG, dockerfile, &[]),
        },
        push: None,
    }
}

fn count(fake: &FakeRuntime, prefix: &str) -> usize {
    fake.calls()
        .iter()
        .filter(|c| c.starts_with(prefix))
        .count()
}

const LONG: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_pull_with_push_lands_in_the_orgs_project_and_a_second_put_joins() {
    let f = fixture(SnapshotSettings::default());
    let spec = pull("docker.io/library/python:3.12", true);
    let first = f
        .jobs
        .put("k1", spec.clone(), Duration::ZERO)
        .await
        .expect("put");
    assert!(!first.is_reached(), "answers 202 at once: {first:?}");
    let joined = f.jobs.put("k1", spec.clone(), LONG).await.expect("join");
    let st = joined.into_status();
    assert_eq!(st.state, SnapshotJobState::Ready, "{st:?}");
    let r = st.r#ref.expect("ref");
    assert!(
        r.starts_with(&format!("127.0.0.1:5000/cove-{ORG}/daytona-")) && r.ends_with(":daytona"),
        "{r}"
    );
    assert_eq!(
        count(&f.fake, "pull:"),
        1,
        "one pull for two PUTs: {:?}",
        f.fake.calls()
    );
    assert_eq!(count(&f.fake, &format!("push:{r}")), 1);
    assert_eq!(st.size_bytes, Some(1 << 20));
    // Ready and present: answered at once, nothing pulled again.
    let again = f.jobs.put("k1", spec, Duration::ZERO).await.expect("again");
    assert!(again.is_reached());
    assert_eq!(count(&f.fake, "pull:"), 1);
    assert!(f.jobs.ready_refs().contains(&r));
    let log = String::from_utf8_lossy(&f.jobs.log("k1").expect("log").text()).into_owned();
    assert!(
        log.contains("pulling docker.io/library/python:3.12") && log.contains("ready: "),
        "{log}"
    );
}

#[tokio::test]
async fn failures_say_why_and_build_failures_are_marked() {
    let f = fixture(SnapshotSettings::default());
    let st = f
        .jobs
        .put("k2", build("FROM cove-fake-base:1\nRUN exit 3\n"), LONG)
        .await
        .expect("put")
        .into_status();
    assert_eq!(st.state, SnapshotJobState::Error);
    assert!(st.build_failed);
    assert_eq!(
        st.error_reason.as_deref(),
        Some("The command '/bin/sh -c exit 3' returned a non-zero code: 3")
    );
    let st = f
        .jobs
        .put("k3", pull("127.0.0.1:5000/x/missing:1", false), LONG)
        .await
        .expect("put")
        .into_status();
    assert_eq!(st.state, SnapshotJobState::Error);
    assert!(!st.build_failed);
    assert!(
        st.error_reason
            .as_deref()
            .is_some_and(|r| r.contains("pull access denied")),
        "{st:?}"
    );
    // An error stays (idempotent) until DELETE.
    let again = f
        .jobs
        .put("k3", pull("127.0.0.1:5000/x/missing:1", false), LONG)
        .await
        .expect("put");
    assert!(again.is_reached());
    assert_eq!(count(&f.fake, "pull:"), 1);
}

#[tokio::test]
async fn a_job_past_its_deadline_is_an_error() {
    let f = fixture(SnapshotSettings {
        pull_timeout: Duration::from_millis(200),
        ..Default::default()
    });
    f.fake.delay(&FakeDelay {
        op: FakeOp::Snapshot,
        seconds: None,
        times: None,
    });
    let st = f
        .jobs
        .put("k4", pull("alpine:3", false), LONG)
        .await
        .expect("put")
        .into_status();
    assert_eq!(st.state, SnapshotJobState::Error);
    assert_eq!(
        st.error_reason.as_deref(),
        Some("pull timed out after 0.2 s")
    );
}

#[tokio::test]
async fn another_spec_for_a_running_key_and_foreign_images_are_refused() {
    let f = fixture(SnapshotSettings::default());
    f.jobs
        .put("k5", pull("alpine:3", false), Duration::ZERO)
        .await
        .expect("put");
    let e = f
        .jobs
        .put("k5", pull("alpine:4", false), Duration::ZERO)
        .await
        .expect_err("busy");
    assert_eq!(e.code(), "SNAPSHOT_BUSY");
    let other = "127.0.0.1:5000/cove-someone-else/daytona-1:daytona";
    let e = f
        .jobs
        .put("k6", pull(other, false), Duration::ZERO)
        .await
        .expect_err("foreign");
    assert_eq!(e.code(), "FORBIDDEN");
    let mut spec = pull("alpine:3", true);
    if let Some(p) = &mut spec.push {
        p.project = "cove-someone-else".into();
    }
    let e = f
        .jobs
        .put("k7", spec, Duration::ZERO)
        .await
        .expect_err("foreign project");
    assert_eq!(e.code(), "FORBIDDEN");
    let e = f.jobs.get("nope").await.expect_err("unknown");
    assert_eq!(e.code(), "SNAPSHOT_NOT_FOUND");
}

#[tokio::test]
async fn delete_removes_the_image_unless_a_container_uses_it_and_ready_jobs_survive_a_restart() {
    let f = fixture(SnapshotSettings::default());
    let spec = build("FROM cove-fake-base:1\nRUN echo hi\n");
    let st = f
        .jobs
        .put("k8", spec, LONG)
        .await
        .expect("put")
        .into_status();
    assert_eq!(st.state, SnapshotJobState::Ready, "{st:?}");
    let r = st.r#ref.expect("ref");
    let info = f.fake.image(&r).await.expect("inspect").expect("built");
    assert_eq!(
        info.labels.get("cove.org.id").map(String::as_str),
        Some(ORG)
    );
    assert_eq!(info.labels.get("cove.snapshot"), Some(&r));
    // A second table over the same data dir (an agent restart) knows the ready job.
    let restarted = Snapshots::new(f._dir.path(), SnapshotSettings::default(), f.fake.clone());
    assert_eq!(
        restarted.get("k8").await.expect("kept").r#ref.as_ref(),
        Some(&r)
    );
    let in_use = BTreeSet::from([r.clone()]);
    let none = BTreeSet::new();
    assert!(
        !f.jobs
            .remove("k8", &in_use, &none)
            .await
            .expect("delete")
            .removed
    );
    assert!(f.fake.image(&r).await.expect("inspect").is_some());
    assert!(
        f.jobs
            .remove("k8", &none, &none)
            .await
            .expect("delete")
            .removed
    );
    assert!(f.fake.image(&r).await.expect("inspect").is_none());
    assert_eq!(
        f.jobs.get("k8").await.expect_err("gone").code(),
        "SNAPSHOT_NOT_FOUND"
    );
    let again = f.jobs.remove("k8", &none, &none).await.expect("again");
    assert!(again.removed, "an unknown key: nothing held");
    let after = Snapshots::new(f._dir.path(), SnapshotSettings::default(), f.fake.clone());
    assert!(
        after.ready_refs().is_empty(),
        "the state file went with the job"
    );
}

#[tokio::test]
async fn credentials_are_not_kept_on_disk() {
    let f = fixture(SnapshotSettings::default());
    let mut spec = pull("registry.example.com/team/app:1", true);
    let auth = cove_runner_api::RegistryAuth {
        username: "u".into(),
        password: "hunter2".into(),
        server: "registry.example.com".into(),
    };
    spec.source = SnapshotSource::Pull {
        image: "registry.example.com/team/app:1".into(),
        auth: Some(auth.clone()),
    };
    if let Some(p) = &mut spec.push {
        p.auth = Some(auth);
    }
    let st = f
        .jobs
        .put("k9", spec, LONG)
        .await
        .expect("put")
        .into_status();
    assert_eq!(st.state, SnapshotJobState::Ready, "{st:?}");
    let text = std::fs::read_to_string(f._dir.path().join("snapshots/k9.json")).expect("kept");
    assert!(
        text.contains("registry.example.com/team/app:1") && !text.contains("hunter2"),
        "{text}"
    );
}

#[tokio::test]
async fn an_image_on_the_engine_is_pulled_again_for_another_job_unless_it_is_the_orgs_own_ref() {
    let f = fixture(SnapshotSettings::default());
    let private = "registry.example.com/team/app:1.0";
    let first = f
        .jobs
        .put("a", pull(private, false), LONG)
        .await
        .expect("put");
    assert_eq!(first.into_status().state, SnapshotJobState::Ready);
    // Another job (it may be another organization's, with other credentials or none) for the
    // same image: the registry is asked again, the engine's copy is not handed out.
    let other = SnapshotSpec {
        org_id: "0b0e5d7e-2222-4c4c-8888-000000000002".into(),
        ..pull(private, false)
    };
    let second = f.jobs.put("b", other, LONG).await.expect("put");
    assert_eq!(second.into_status().state, SnapshotJobState::Ready);
    assert_eq!(
        count(&f.fake, &format!("pull:{private}")),
        2,
        "{:?}",
        f.fake.calls()
    );
    // The organization's own internal ref already on the engine (a propagation): reused.
    let own = format!("127.0.0.1:5000/cove-{ORG}/daytona-abc:daytona");
    f.jobs.put("c", pull(&own, false), LONG).await.expect("put");
    f.jobs.put("d", pull(&own, false), LONG).await.expect("put");
    assert_eq!(
        count(&f.fake, &format!("pull:{own}")),
        1,
        "{:?}",
        f.fake.calls()
    );
}

#[tokio::test]
async fn the_simulated_runner_without_s3_builds_without_its_contexts() {
    let f = fixture(SnapshotSettings::default());
    let mut spec = build("FROM cove-fake-base:1\nCOPY . /app\n");
    if let SnapshotSource::Build { context_hashes, .. } = &mut spec.source {
        context_hashes.push("0123abcd".into());
    }
    let st = f
        .jobs
        .put("k10", spec, LONG)
        .await
        .expect("put")
        .into_status();
    assert_eq!(st.state, SnapshotJobState::Ready, "{st:?}");
    let log = String::from_utf8_lossy(&f.jobs.log("k10").expect("log").text()).into_owned();
    assert!(log.contains("build context 0123abcd not fetched"), "{log}");
}
