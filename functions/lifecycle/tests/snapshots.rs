//! Snapshots driven on a simulated runner (`cove-runner --runtime fake`, issue 12 item 2): a
//! create hands the job to a runner at once, reads and the sweep carry it to its outcome, and
//! every transitional state ends by a deadline (the sweep is called with a `now` past it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use cove_api_types::ids::SnapshotId;
use cove_api_types::snapshots::SnapshotState;
use cove_edge::Env;
use cove_runner_api::fake::FakeOp;
use cove_snapshot_jobs::JobSettings;
use cove_store::snapshots::SnapshotRecord;
use cove_testkit::api::{Call, Reply};
use cove_testkit::{AgentOptions, Harness};
use serde_json::{Value, json};
use time::OffsetDateTime;

fn settings() -> snapshots::SnapshotSettings {
    snapshots::SnapshotSettings::default()
}

async fn call(
    env: &Env,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|v| v.to_string());
    let req: http::Request<Bytes> = Call::simple(method, path, Some(token), None, body.as_deref())
        .header("host", "localhost:3000")
        .to_request();
    let reply = Reply::from_response(snapshots::handle(env, &settings(), req).await);
    (reply.status, reply.json())
}

async fn sweep_at(env: &Env, later: time::Duration) -> lifecycle::sweep::SweepReport {
    let jobs = <JobSettings as cove_edge::config::Settings>::from_lookup(|_| None);
    lifecycle::sweep::run(env, &jobs, OffsetDateTime::now_utc() + later)
        .await
        .unwrap()
}

async fn row(env: &Env, id: &str) -> Option<SnapshotRecord> {
    env.store
        .snapshots()
        .get(&SnapshotId::parse(id).unwrap())
        .await
        .unwrap()
}

fn build(name: &str, dockerfile: &str) -> Value {
    json!({"name": name, "buildInfo": {"dockerfileContent": dockerfile, "contextHashes": []}})
}

/// GETs the snapshot (each read moves a job in progress on) until it leaves `states`.
async fn settle(env: &Env, token: &str, id: &str, states: &[&str]) -> Value {
    for _ in 0..200 {
        let (s, v) = call(env, "GET", &format!("/api/snapshots/{id}"), token, None).await;
        assert_eq!(s, 200, "{v}");
        if !states.contains(&v["state"].as_str().unwrap_or_default()) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("snapshot {id} stayed in {states:?}");
}

/// Creates a build snapshot and reads it until it is `active`; answers its id.
async fn active_build(env: &Env, token: &str, name: &str, dockerfile: &str) -> String {
    let (s, v) = call(
        env,
        "POST",
        "/api/snapshots",
        token,
        Some(build(name, dockerfile)),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let v = settle(env, token, &id, &["pending", "building"]).await;
    assert_eq!(v["state"], "active", "{v}");
    id
}

#[tokio::test]
async fn a_build_is_handed_to_a_runner_at_create_and_reads_carry_it_to_active() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    let (s, v) = call(
        &h.env,
        "POST",
        "/api/snapshots",
        &alice,
        Some(build("b1", "FROM base\nRUN echo 1\n")),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // Already with its runner: no sweep needed.
    assert!(
        matches!(v["state"].as_str(), Some("building" | "active")),
        "{v}"
    );
    let id = v["id"].as_str().unwrap().to_owned();
    let v = settle(&h.env, &alice, &id, &["pending", "building"]).await;
    assert_eq!(v["state"], "active", "{v}");
    let rec = row(&h.env, &id).await.unwrap();
    assert_eq!(
        rec.initial_runner_id.as_ref().map(|r| r.as_str()),
        h.runner().map(|r| r.id.as_str())
    );
    let image = rec.r#ref.clone().unwrap();
    assert!(
        image.contains("/daytona-") && image.ends_with(":daytona"),
        "{image}"
    );
    // The runner holds the job under the snapshot's id.
    let st = h.agent().unwrap().client().get_snapshot(&id).await.unwrap();
    assert_eq!(st.r#ref.as_deref(), Some(image.as_str()));
}

#[tokio::test]
async fn a_failing_build_ends_build_failed_and_a_failing_pull_ends_in_error_with_reasons() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    let (_, v) = call(
        &h.env,
        "POST",
        "/api/snapshots",
        &alice,
        Some(build("bad", "FROM base\nRUN exit 3\n")),
    )
    .await;
    let id = v["id"].as_str().unwrap().to_owned();
    let v = settle(&h.env, &alice, &id, &["pending", "building"]).await;
    assert_eq!(v["state"], "build_failed", "{v}");
    assert!(
        v["errorReason"].as_str().unwrap_or_default().contains('3'),
        "{v}"
    );

    let body = json!({"name": "gone", "imageName": "registry.example.com/missing:1.0"});
    let (s, v) = call(&h.env, "POST", "/api/snapshots", &alice, Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let v = settle(&h.env, &alice, &id, &["pending", "pulling"]).await;
    assert_eq!(v["state"], "error", "{v}");
    assert!(
        !v["errorReason"].as_str().unwrap_or_default().is_empty(),
        "{v}"
    );
}

#[tokio::test]
async fn a_hanging_build_becomes_error_after_its_deadline_not_before() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    h.agent()
        .unwrap()
        .delay(FakeOp::Snapshot, None, Some(1))
        .await
        .unwrap();
    let (_, v) = call(
        &h.env,
        "POST",
        "/api/snapshots",
        &alice,
        Some(build("slow", "FROM base\nRUN sleep 1\n")),
    )
    .await;
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["state"], "building", "{v}");
    let r = sweep_at(&h.env, time::Duration::minutes(5)).await;
    assert_eq!(r.snapshots.failed, 0, "{r:?}");
    assert_eq!(
        row(&h.env, &id).await.unwrap().state,
        SnapshotState::Building
    );
    let r = sweep_at(&h.env, time::Duration::minutes(32)).await;
    assert_eq!(r.snapshots.failed, 1, "{r:?}");
    let rec = row(&h.env, &id).await.unwrap();
    assert_eq!(rec.state, SnapshotState::Error);
    assert!(
        rec.error_reason
            .unwrap_or_default()
            .contains("did not finish within 31 minutes")
    );
}

#[tokio::test]
async fn without_a_runner_a_snapshot_waits_then_fails_with_a_reason() {
    let h = Harness::new().await;
    let alice = h.jwt("alice");
    let (s, v) = call(
        &h.env,
        "POST",
        "/api/snapshots",
        &alice,
        Some(build("lonely", "FROM base\n")),
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("pending")), "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(
        sweep_at(&h.env, time::Duration::minutes(1))
            .await
            .snapshots
            .failed,
        0
    );
    assert_eq!(
        sweep_at(&h.env, time::Duration::minutes(11))
            .await
            .snapshots
            .failed,
        1
    );
    let rec = row(&h.env, &id).await.unwrap();
    assert_eq!(rec.state, SnapshotState::Error);
    assert!(rec.error_reason.unwrap_or_default().contains("No runner"));
}

#[tokio::test]
async fn a_deleted_snapshot_leaves_the_runner_and_then_the_table() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    let id = active_build(&h.env, &alice, "del", "FROM base\nRUN echo d\n").await;
    let (s, v) = call(
        &h.env,
        "DELETE",
        &format!("/api/snapshots/{id}"),
        &alice,
        None,
    )
    .await;
    assert!(s == 200 || s == 204, "{s} {v}");
    assert_eq!(
        row(&h.env, &id).await.unwrap().state,
        SnapshotState::Removing
    );
    let r = sweep_at(&h.env, time::Duration::seconds(1)).await;
    assert_eq!(r.snapshots.removed, 1, "{r:?}");
    assert!(row(&h.env, &id).await.is_none());
    let (s, _) = call(&h.env, "GET", &format!("/api/snapshots/{id}"), &alice, None).await;
    assert_eq!(s, 404);
    let gone = h.agent().unwrap().client().get_snapshot(&id).await;
    assert_eq!(gone.err().and_then(|e| e.status()), Some(404));
}

#[tokio::test]
async fn a_snapshot_unused_past_the_orgs_deactivation_timeout_becomes_inactive() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    let id = active_build(&h.env, &alice, "idle", "FROM base\nRUN echo i\n").await;
    // Daytona's default: 20,160 minutes (14 days) without use.
    let r = sweep_at(&h.env, time::Duration::days(13)).await;
    assert_eq!(r.snapshots.deactivated, 0, "{r:?}");
    let r = sweep_at(&h.env, time::Duration::days(15)).await;
    assert_eq!(r.snapshots.deactivated, 1, "{r:?}");
    let (_, v) = call(&h.env, "GET", &format!("/api/snapshots/{id}"), &alice, None).await;
    assert_eq!(v["state"], "inactive", "{v}");
    let (s, v) = call(
        &h.env,
        "POST",
        &format!("/api/snapshots/{id}/activate"),
        &alice,
        None,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("active")), "{v}");
    // An activation starts the count again.
    let r = sweep_at(&h.env, time::Duration::days(1)).await;
    assert_eq!(r.snapshots.deactivated, 0, "{r:?}");
}
