//! Recoverable transitions (issue 10 items 2, 7, 8) against the simulated runner (`cove-runner
//! --runtime fake`): a runner call that cannot finish in time answers the transitional state,
//! and the lifecycle sweep (called directly with a `now` past the deadline) settles what was
//! left in flight: a hanging runner, a runner killed mid-`PUT`, an instance that died between
//! begin and settle. Also: a create refused by validation leaves no row, and a force-deleted
//! runner releases its sandboxes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use cove_api_types::ids::SandboxId;
use cove_api_types::sandbox::{SandboxDesiredState, SandboxState};
use cove_edge::Env;
use cove_edge::config::SandboxSettings;
use cove_runner_api::fake::FakeOp;
use cove_store::sandboxes::{SandboxAction, SandboxRecord, Transition};
use cove_testkit::api::{Call, Reply};
use cove_testkit::{Agent, AgentOptions, FAKE_IMAGE, Harness};
use serde_json::{Value, json};
use time::OffsetDateTime;

fn settings() -> SandboxSettings {
    SandboxSettings {
        default_snapshot: FAKE_IMAGE.to_owned(),
        ..SandboxSettings::default()
    }
}

fn request(method: &str, path: &str, token: &str, body: Option<Value>) -> http::Request<Bytes> {
    let body = body.map(|v| v.to_string());
    Call::simple(method, path, Some(token), None, body.as_deref())
        .header("host", "localhost:3000")
        .to_request()
}

async fn call(
    env: &Env,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call_with(&settings(), env, method, path, token, body).await
}

async fn call_with(
    settings: &SandboxSettings,
    env: &Env,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let resp = sandboxes::handle(env, settings, request(method, path, token, body)).await;
    let reply = Reply::from_response(resp);
    (reply.status, reply.json())
}

async fn row(env: &Env, id: &str) -> SandboxRecord {
    let id = SandboxId::parse(id).unwrap();
    env.store.sandboxes().get(&id).await.unwrap().unwrap()
}

async fn sweep_at(env: &Env, later: time::Duration) -> lifecycle::sweep::SweepReport {
    let settings =
        <cove_snapshot_jobs::JobSettings as cove_edge::config::Settings>::from_lookup(|_| None);
    lifecycle::sweep::run(env, &settings, OffsetDateTime::now_utc() + later)
        .await
        .unwrap()
}

/// Past the push deadline (not yet the give-up bounds).
fn past_deadline() -> time::Duration {
    cove_transition::PUSH_DEADLINE + time::Duration::seconds(2)
}

#[tokio::test]
async fn a_hanging_runner_answers_creating_in_time_and_the_sweep_gives_up_with_a_reason() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    h.agent()
        .unwrap()
        .delay(FakeOp::Put, None, Some(10))
        .await
        .unwrap();
    let started = Instant::now();
    let (s, v) = call(&h.env, "POST", "/api/sandbox", &alice, Some(json!({}))).await;
    let took = started.elapsed();
    println!("create against a hanging runner answered in {took:?}");
    assert_eq!((s, v["state"].as_str()), (200, Some("creating")), "{v}");
    assert!(
        took < Duration::from_secs(30),
        "well below the 60 s deadline: {took:?}"
    );
    let id = v["id"].as_str().unwrap().to_owned();
    let t = row(&h.env, &id).await.transition.expect("in flight");
    assert_eq!(
        (t.action, t.generation, t.attempts),
        (SandboxAction::Create, 1, 1)
    );
    // Before the deadline the sweep leaves it alone.
    let r = sweep_at(&h.env, time::Duration::seconds(1)).await;
    assert_eq!((r.transitions_pushed, r.transitions_expired), (0, 0));
    // Past the give-up bound: error, with a reason, in one sweep.
    let r = sweep_at(
        &h.env,
        cove_transition::MAX_DURATION + time::Duration::seconds(1),
    )
    .await;
    assert_eq!(r.transitions_expired, 1, "{r:?}");
    let rec = row(&h.env, &id).await;
    assert_eq!(rec.state, SandboxState::Error);
    assert!(rec.transition.is_none() && !rec.pending);
    let reason = rec.error_reason.unwrap_or_default();
    assert!(reason.contains("did not complete the create"), "{reason}");
}

#[tokio::test]
async fn a_slow_start_settles_on_the_next_sweep_once_the_runner_is_done() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    let (s, v) = call(&h.env, "POST", "/api/sandbox", &alice, Some(json!({}))).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("started")), "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let (s, v) = call(
        &h.env,
        "POST",
        &format!("/api/sandbox/{id}/stop"),
        &alice,
        None,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("stopped")), "{v}");
    // The start takes longer than the request may wait: the answer is `starting`.
    h.agent()
        .unwrap()
        .delay(FakeOp::Put, Some(22.0), Some(1))
        .await
        .unwrap();
    let (s, v) = call(
        &h.env,
        "POST",
        &format!("/api/sandbox/{id}/start"),
        &alice,
        None,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("starting")), "{v}");
    let (s, v) = call(
        &h.env,
        "POST",
        &format!("/api/sandbox/{id}/stop"),
        &alice,
        None,
    )
    .await;
    assert_eq!(s, 409, "one change at a time: {v}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = sweep_at(&h.env, past_deadline()).await;
    assert_eq!(r.transitions_pushed, 1, "{r:?}");
    let rec = row(&h.env, &id).await;
    assert_eq!(
        (rec.state, rec.transition.clone()),
        (SandboxState::Started, None)
    );
    let st = h.agent().unwrap().client().get_sandbox(&id).await.unwrap();
    assert_eq!(st.state, cove_runner_api::SandboxState::Started);
}

fn heartbeat(url: &str) -> cove_runner_api::Healthcheck {
    serde_json::from_value(json!({
        "apiUrl": url,
        "appVersion": "test",
        "metrics": cove_runner_api::RunnerMetrics::default(),
        "serviceHealth": [],
        "snapshots": [FAKE_IMAGE],
    }))
    .unwrap()
}

#[tokio::test]
async fn a_runner_killed_mid_put_converges_after_its_restart() {
    let h = Harness::new().await;
    let alice = h.jwt("alice");
    let agent = Agent::start(AgentOptions::fake()).unwrap();
    let runner = h.register_runner(&agent).await.unwrap();
    agent.delay(FakeOp::Put, Some(30.0), Some(1)).await.unwrap();
    let env = h.env.clone();
    let create = tokio::spawn(async move {
        call(
            &env,
            "POST",
            "/api/sandbox",
            &jwt_of(&alice),
            Some(json!({"name": "survivor"})),
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let remains = agent.kill();
    let (s, v) = create.await.unwrap();
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("creating")),
        "answer of a lost call: {v}"
    );
    let id = v["id"].as_str().unwrap().to_owned();
    let agent = remains.restart(|_| {}).unwrap();
    let ahead =
        cove_api_types::time::format_rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(6));
    h.env
        .store
        .runners()
        .record_heartbeat(&runner.id, &heartbeat(agent.url()), &ahead)
        .await
        .unwrap();
    let r = sweep_at(&h.env, past_deadline()).await;
    assert_eq!(r.transitions_pushed, 1, "{r:?}");
    let rec = row(&h.env, &id).await;
    assert_eq!(
        (rec.state, rec.transition.clone()),
        (SandboxState::Started, None),
        "{rec:?}"
    );
    let st = agent.client().get_sandbox(&id).await.unwrap();
    assert_eq!(st.state, cove_runner_api::SandboxState::Started);
}

fn jwt_of(t: &str) -> String {
    t.to_owned()
}

#[tokio::test]
async fn a_begin_without_a_settle_is_pushed_by_the_sweep() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let org = h.personal_org("alice").await;
    let quota = h.env.store.orgs().get(&org).await.unwrap().unwrap().quota;
    let at = cove_api_types::time::now_rfc3339();
    let mut rec = SandboxRecord::new(SandboxId::new_random(), org, "orphan", FAKE_IMAGE, &at);
    rec.state = SandboxState::Creating;
    rec.desired_state = SandboxDesiredState::Started;
    rec.pending = true;
    rec.generation = 1;
    rec.runner_id = Some(h.runner().unwrap().id.clone());
    rec.container_image = Some(FAKE_IMAGE.to_owned());
    rec.transition = Some(Transition::begin(SandboxAction::Create, 1, &at, false));
    let rec = h.env.store.sandboxes().create(&rec, &quota).await.unwrap();
    // The instance "died" here: nothing was pushed.
    let r = sweep_at(&h.env, past_deadline()).await;
    assert_eq!(r.transitions_pushed, 1, "{r:?}");
    let now = row(&h.env, rec.id.as_str()).await;
    assert_eq!(
        (now.state, now.transition.clone()),
        (SandboxState::Started, None)
    );
    let st = h
        .agent()
        .unwrap()
        .client()
        .get_sandbox(rec.id.as_str())
        .await
        .unwrap();
    assert_eq!(
        (st.state, st.generation),
        (cove_runner_api::SandboxState::Started, 1)
    );
}

#[tokio::test]
async fn a_create_refused_by_validation_leaves_no_row() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    for body in [
        json!({"env": {"1BAD": "x"}}),
        json!({"env": {"A-B": "x"}}),
        json!({"cpu": 0}),
    ] {
        let (s, v) = call(&h.env, "POST", "/api/sandbox", &alice, Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {v}");
    }
    let (s, v) = call(&h.env, "GET", "/api/sandbox", &alice, None).await;
    assert_eq!(
        (s, v["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    let org = h.personal_org("alice").await;
    let u = h.env.store.sandboxes().usage(&org).await.unwrap();
    assert_eq!((u.cpu, u.memory, u.disk), (0, 0, 0));
    assert!(
        h.agent()
            .unwrap()
            .client()
            .list_sandboxes()
            .await
            .unwrap()
            .sandboxes
            .is_empty()
    );
}

#[tokio::test]
async fn a_create_the_runner_refuses_is_undone() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    // The default snapshot, admitted by the control plane, but not on the runner: it refuses.
    let missing = SandboxSettings {
        default_snapshot: "cove-not-on-the-runner:1".to_owned(),
        ..SandboxSettings::default()
    };
    let body = Some(json!({"name": "refused"}));
    let (s, v) = call_with(&missing, &h.env, "POST", "/api/sandbox", &alice, body).await;
    assert_eq!(s, 400, "{v}");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("cove-not-on-the-runner:1"),
        "the runner's refusal: {v}"
    );
    let (s, v) = call(&h.env, "GET", "/api/sandbox", &alice, None).await;
    assert_eq!(
        (s, v["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    let org = h.personal_org("alice").await;
    let u = h.env.store.sandboxes().usage(&org).await.unwrap();
    assert_eq!((u.cpu, u.memory, u.disk), (0, 0, 0));
    let runner = h
        .env
        .store
        .runners()
        .get(&h.runner().unwrap().id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(runner.assigned_sandboxes, 0);
    // The name is free again.
    let (s, v) = call(
        &h.env,
        "POST",
        "/api/sandbox",
        &alice,
        Some(json!({"name": "refused"})),
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("started")), "{v}");
}

#[tokio::test]
async fn a_restore_goes_to_the_runner_holding_the_backup() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    let (s, v) = call(&h.env, "POST", "/api/sandbox", &alice, Some(json!({}))).await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            &h.env,
            "POST",
            &format!("/api/sandbox/{id}/stop"),
            &alice,
            None
        )
        .await
        .0,
        200
    );
    let (s, v) = call(
        &h.env,
        "POST",
        &format!("/api/sandbox/{id}/archive"),
        &alice,
        None,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("archived")), "{v}");
    let rec = row(&h.env, &id).await;
    let rid = h.runner().unwrap().id.clone();
    assert_eq!(rec.backup_runner_id.as_ref(), Some(&rid));
    // Another runner is free, but the backup is not there: while its runner is unavailable the
    // restore waits (503) rather than going elsewhere.
    let other = Agent::start(AgentOptions::fake()).unwrap();
    h.register_runner(&other).await.unwrap();
    h.env
        .store
        .runners()
        .set_unschedulable(&rid, true)
        .await
        .unwrap();
    let (s, v) = call(
        &h.env,
        "POST",
        &format!("/api/sandbox/{id}/start"),
        &alice,
        None,
    )
    .await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(row(&h.env, &id).await.state, SandboxState::Archived);
    h.env
        .store
        .runners()
        .set_unschedulable(&rid, false)
        .await
        .unwrap();
    let (s, v) = call(
        &h.env,
        "POST",
        &format!("/api/sandbox/{id}/start"),
        &alice,
        None,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("started")), "{v}");
    assert_eq!(v["runnerId"], rid.as_str());
}

#[tokio::test]
async fn a_force_deleted_runner_releases_its_sandboxes() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    let (s, v) = call(&h.env, "POST", "/api/sandbox", &alice, Some(json!({}))).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("started")), "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let admin = h.admin("root").await;
    let rid = h.runner().unwrap().id.clone();
    let resp = runners::handle(
        &h.env,
        request("DELETE", &format!("/api/runners/{rid}"), &admin, None),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 400, "not without force");
    let resp = runners::handle(
        &h.env,
        request(
            "DELETE",
            &format!("/api/runners/{rid}?force=true"),
            &admin,
            None,
        ),
    )
    .await;
    assert!(resp.status().is_success(), "{:?}", resp.body());
    let (s, v) = call(&h.env, "GET", &format!("/api/sandbox/{id}"), &alice, None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("error")), "{v}");
    assert!(v["runnerId"].is_null(), "{v}");
    assert_eq!(v["errorReason"], "The sandbox's runner was deleted");
    // And it can still be deleted.
    let (s, v) = call(
        &h.env,
        "DELETE",
        &format!("/api/sandbox/{id}"),
        &alice,
        None,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("destroyed")), "{v}");
}

#[tokio::test]
async fn the_runners_report_of_the_generation_settles_the_transition() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    h.agent()
        .unwrap()
        .delay(FakeOp::Put, Some(17.0), Some(1))
        .await
        .unwrap();
    let (s, v) = call(&h.env, "POST", "/api/sandbox", &alice, Some(json!({}))).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("creating")), "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let token = h.runner().unwrap().api_key.clone();
    let report = |body: Value| {
        let (env, id, token) = (h.env.clone(), id.clone(), token.clone());
        async move {
            let path = format!("/api/sandbox/{id}/state");
            call(&env, "PUT", &path, &token, Some(body)).await.0
        }
    };
    // Another generation, or a transitional report, settles nothing.
    let stale = json!({"state": "started", "generation": 0, "desiredState": "started"});
    assert_eq!(report(stale).await, 200);
    let creating = json!({"state": "creating", "generation": 1, "desiredState": "started"});
    assert_eq!(report(creating).await, 200);
    let rec = row(&h.env, &id).await;
    assert_eq!(rec.state, SandboxState::Creating);
    assert!(rec.transition.is_some());
    let done =
        json!({"state": "started", "generation": 1, "desiredState": "started", "cause": "applied"});
    assert_eq!(report(done).await, 200);
    let rec = row(&h.env, &id).await;
    assert_eq!(
        (rec.state, rec.transition.clone()),
        (SandboxState::Started, None)
    );
    assert!(!rec.pending);
}

#[tokio::test]
async fn started_sandboxes_are_backed_up_hourly_in_the_background() {
    use cove_api_types::sandbox::BackupState;
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    let body = json!({"autoStopInterval": 0});
    let (s, v) = call(&h.env, "POST", "/api/sandbox", &alice, Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let body = json!({"autoStopInterval": 0, "ephemeral": true});
    let (s, v) = call(&h.env, "POST", "/api/sandbox", &alice, Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let ephemeral = v["id"].as_str().unwrap().to_owned();

    let r = sweep_at(&h.env, time::Duration::minutes(59)).await;
    assert_eq!(r.backups_started, 0, "{r:?}");
    assert_eq!(row(&h.env, &id).await.backup_state, BackupState::None);

    // An hour after the create: a backup, without a transition (the sandbox stays started and
    // takes user actions meanwhile).
    let hour = time::Duration::minutes(61);
    let r = sweep_at(&h.env, hour).await;
    assert_eq!(r.backups_started, 1, "{r:?}");
    let mut rec = row(&h.env, &id).await;
    assert_eq!((rec.state, rec.pending), (SandboxState::Started, false));
    if rec.backup_state == BackupState::InProgress {
        // Not answered within the sweep's short wait: the next sweep asks again (same key).
        let r = sweep_at(&h.env, hour + past_deadline()).await;
        assert_eq!((r.backups_started, r.backups_completed), (0, 1), "{r:?}");
        rec = row(&h.env, &id).await;
    }
    assert_eq!(rec.backup_state, BackupState::Completed, "{rec:?}");
    assert!(rec.backup_started_at.is_none());
    let image = rec.backup_snapshot.clone().expect("the backup");
    assert!(image.starts_with("cove-backup/"), "{image}");
    assert_eq!(
        row(&h.env, &ephemeral).await.backup_state,
        BackupState::None
    );

    // Not again within the hour after it; again an hour later, superseding it.
    let r = sweep_at(&h.env, hour + time::Duration::minutes(30)).await;
    assert_eq!(r.backups_started, 0, "{r:?}");
    let later = hour + time::Duration::minutes(62);
    let r = sweep_at(&h.env, later).await;
    assert_eq!(r.backups_started, 1, "{r:?}");
    let r = sweep_at(&h.env, later + past_deadline()).await;
    let rec = row(&h.env, &id).await;
    assert_eq!(rec.backup_state, BackupState::Completed, "{r:?} {rec:?}");
    assert_ne!(rec.backup_snapshot.as_deref(), Some(image.as_str()));
    assert_eq!(
        row(&h.env, &ephemeral).await.backup_state,
        BackupState::None
    );

    // A user's stop is not held up by a periodic backup in progress.
    let r = sweep_at(&h.env, later + time::Duration::minutes(61)).await;
    assert_eq!(r.backups_started, 1, "{r:?}");
    let (s, v) = call(
        &h.env,
        "POST",
        &format!("/api/sandbox/{id}/stop"),
        &alice,
        None,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("stopped")), "{v}");
}
