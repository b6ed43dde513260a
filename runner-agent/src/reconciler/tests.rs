//! Unit tests of the reconciler over the simulated runtime.

use super::*;
use crate::runtime::fake::FakeRuntime;
use cove_runner_api::{DesiredState, NetworkPolicy};

fn setup(pool: Vec<(String, usize)>) -> (tempfile::TempDir, Arc<FakeRuntime>, Arc<Reconciler>) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = Config::for_tests(dir.path().to_path_buf());
    cfg.warm_pool = pool;
    let rt = Arc::new(FakeRuntime::new(dir.path().join("fake"), &["img:1".into()]));
    let rec = Reconciler::new(cfg, rt.clone(), dir.path().join("toolbox"));
    (dir, rt, rec)
}

#[tokio::test]
async fn apply_is_idempotent_and_ordered() {
    let (_d, rt, rec) = setup(vec![]);
    let spec = SandboxSpec::new("img:1");
    let s = rec.apply("sb1", spec.clone()).await.expect("apply");
    assert_eq!(s.state, SandboxState::Started);
    let calls = rt.calls().len();
    let again = rec.apply("sb1", spec.clone()).await.expect("again");
    assert_eq!(again.state, SandboxState::Started);
    assert_eq!(rt.calls().len(), calls, "same generation is a no-op");

    let mut stop = spec.clone();
    stop.generation = 2;
    stop.desired_state = DesiredState::Stopped;
    stop.stop_timeout_secs = Some(0);
    // stopTimeoutSecs may change, so force-stopping is allowed.
    let s = rec.apply("sb1", stop.clone()).await.expect("stop");
    assert_eq!(s.state, SandboxState::Stopped);
    assert!(
        rt.calls()
            .iter()
            .any(|c| c.starts_with("stop:") && c.ends_with(":0"))
    );

    let err = rec.apply("sb1", spec.clone()).await.expect_err("stale");
    assert_eq!(err.code(), "STALE_GENERATION");

    let mut changed = stop.clone();
    changed.generation = 3;
    changed.env.insert("A".into(), "1".into());
    assert_eq!(
        rec.apply("sb1", changed)
            .await
            .expect_err("immutable")
            .code(),
        "IMMUTABLE_FIELD"
    );

    rec.destroy("sb1").await.expect("destroy");
    rec.destroy("sb1").await.expect("destroy twice");
    assert_eq!(rt.container_count(), 0);
    assert!(matches!(
        rec.status("sb1").await,
        Err(AgentError::SandboxNotFound(_))
    ));
}

#[tokio::test]
async fn container_is_hardened() {
    let (_d, rt, rec) = setup(vec![]);
    let mut spec = SandboxSpec::new("img:1");
    spec.resources.memory_mib = Some(256);
    spec.resources.pids = Some(64);
    spec.network = NetworkPolicy::BlockAll;
    spec.org_id = Some("org1".into());
    spec.env.insert("FOO".into(), "bar".into());
    let s = rec.apply("sb2", spec).await.expect("apply");
    let c = rt
        .spec_of(s.container_id.as_deref().expect("cid"))
        .expect("spec");
    assert_eq!(c.user, "daytona");
    assert_eq!(c.cap_add.len(), ROOT_CAPS.len());
    assert_eq!(c.memory_bytes, Some(256 << 20));
    assert_eq!(c.pids_limit, Some(64));
    assert!(c.network_none);
    assert_eq!(
        c.labels.get(labels::SANDBOX_ID).map(String::as_str),
        Some("sb2")
    );
    assert_eq!(
        c.labels.get(labels::ORG_ID).map(String::as_str),
        Some("org1")
    );
    assert!(c.env.contains(&"FOO=bar".to_owned()));
    assert_eq!(c.entrypoint[0], TOOLBOX_IN_CONTAINER);
    assert!(
        c.binds
            .iter()
            .any(|b| b.ends_with(":/usr/local/bin/cove-toolbox:ro"))
    );
    assert!(c.binds.iter().any(|b| b.ends_with(":/run/cove:rw")));

    let mut root = SandboxSpec::new("img:1");
    root.os_user = Some("root".into());
    let s = rec.apply("sb3", root).await.expect("apply");
    let c = rt
        .spec_of(s.container_id.as_deref().expect("cid"))
        .expect("spec");
    assert_eq!(c.cap_add.len(), ROOT_CAPS.len());
    assert_eq!(
        c.network, None,
        "the simulated runner has no sandbox network"
    );
}

#[tokio::test]
async fn rejects_bad_input() {
    let (_d, _rt, rec) = setup(vec![]);
    for id in ["", "../x", "a/b", "pool-1", &"x".repeat(65)] {
        assert!(
            rec.apply(id, SandboxSpec::new("img:1")).await.is_err(),
            "{id}"
        );
    }
    let mut s = SandboxSpec::new("img:1");
    s.volumes.push(cove_runner_api::VolumeMount {
        volume_id: "v1".into(),
        mount_path: "/data/../etc".into(),
        subpath: None,
        read_only: false,
    });
    assert_eq!(
        rec.apply("ok", s).await.expect_err("bad mount").code(),
        "BAD_REQUEST"
    );
    let err = rec
        .apply("ok", SandboxSpec::new("missing:1"))
        .await
        .expect_err("no image");
    assert_eq!(err.code(), "SNAPSHOT_NOT_FOUND");
}

#[tokio::test]
async fn warm_pool_claim_and_recover() {
    let (d, rt, rec) = setup(vec![("img:1".into(), 1)]);
    let entry = rec.create_pool_member("img:1").await.expect("member");
    rec.pool().put("img:1", entry.clone());
    let mut spec = SandboxSpec::new("img:1");
    spec.env.insert("GREETING".into(), "it's".into());
    spec.org_id = Some("org9".into());
    let s = rec.apply("warm1", spec).await.expect("apply");
    assert!(s.warm);
    assert_eq!(s.container_id.as_deref(), Some(entry.container_id.as_str()));
    assert!(rt.calls().iter().any(|c| c.ends_with(":cove-sb-warm1")));
    let env = std::fs::read_to_string(entry.dir.join(ENV_FILE)).expect("env file");
    assert_eq!(env, "export GREETING='it'\\''s'\n");
    let t = rec.toolbox_target("warm1").await.expect("target");
    assert_eq!(
        t.env_overlay.get("GREETING").map(String::as_str),
        Some("it's")
    );
    assert!(d.path().join("sandboxes/warm1").exists());

    // Not eligible: limits differ.
    let mut big = SandboxSpec::new("img:1");
    big.resources.memory_mib = Some(2048);
    assert!(!rec.apply("cold1", big).await.expect("cold").warm);

    // A new agent over the same runtime and data dir sees both.
    let cfg = rec.config().clone();
    let rec2 = Reconciler::new(cfg, rt.clone(), d.path().join("toolbox"));
    rec2.recover().await.expect("recover");
    let list = rec2.list().await;
    assert_eq!(list.len(), 2);
    let w = rec2.status("warm1").await.expect("warm1");
    assert_eq!(w.state, SandboxState::Started);
    assert_eq!(w.org_id.as_deref(), Some("org9"));
    assert_eq!(w.generation, 1);
    let t = rec2.toolbox_target("warm1").await.expect("target");
    assert_eq!(t.socket, entry.dir.join(SOCKET_NAME));
}
