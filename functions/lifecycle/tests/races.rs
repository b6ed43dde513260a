//! Races (issue 15 acceptance) against the simulated runner: 20 concurrent sweeps that all find
//! 100 sandboxes due for auto-stop, interleaved with users stopping and starting some of them.
//! Afterwards no sandbox is left mid-transition, every `state` equals its `desiredState` and the
//! runner's view, and no sandbox was stopped twice (each stop begins a new spec generation:
//! create + one stop = generation 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use cove_api_types::ids::SandboxId;
use cove_api_types::sandbox::SandboxState;
use cove_edge::Env;
use cove_edge::config::SandboxSettings;
use cove_testkit::api::{Call, Reply};
use cove_testkit::{AgentOptions, FAKE_IMAGE, Harness};
use serde_json::{Value, json};
use time::OffsetDateTime;

const SANDBOXES: usize = 100;
const SWEEPS: usize = 20;

fn settings() -> SandboxSettings {
    SandboxSettings {
        default_snapshot: FAKE_IMAGE.to_owned(),
        ..SandboxSettings::default()
    }
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
    let reply = Reply::from_response(sandboxes::handle(env, &settings(), req).await);
    (reply.status, reply.json())
}

async fn sweep_at(env: &Env, later: time::Duration) -> lifecycle::sweep::SweepReport {
    let settings =
        <cove_snapshot_jobs::JobSettings as cove_edge::config::Settings>::from_lookup(|_| None);
    lifecycle::sweep::run(env, &settings, OffsetDateTime::now_utc() + later)
        .await
        .unwrap()
}

async fn roomy_quota(h: &Harness, sub: &str) {
    let org = h.personal_org(sub).await;
    let mut rec = h.env.store.orgs().get(&org).await.unwrap().unwrap();
    rec.quota.total_cpu_quota = 1000;
    rec.quota.total_memory_quota = 1000;
    rec.quota.total_disk_quota = 10_000;
    rec.version += 1;
    h.env.store.orgs().update(&rec).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_sweeps_and_user_actions_never_stop_twice_or_leave_inconsistent_state() {
    let h = Harness::with_runner(AgentOptions::fake()).await.unwrap();
    let alice = h.jwt("alice");
    roomy_quota(&h, "alice").await;
    let mut ids = Vec::new();
    for _ in 0..SANDBOXES {
        let (s, v) = call(
            &h.env,
            "POST",
            "/api/sandbox",
            &alice,
            Some(json!({"autoStopInterval": 1})),
        )
        .await;
        assert_eq!((s, v["state"].as_str()), (200, Some("started")), "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    // Everything is due (two idle minutes later); users stop the first quarter meanwhile.
    let sweeps = (0..SWEEPS).map(|_| sweep_at(&h.env, time::Duration::minutes(2)));
    let users = ids[..SANDBOXES / 4].iter().map(|id| {
        let (env, alice) = (&h.env, &alice);
        async move {
            call(
                env,
                "POST",
                &format!("/api/sandbox/{id}/stop?force=false"),
                alice,
                None,
            )
            .await
        }
    });
    let (reports, stops) = tokio::join!(
        futures::future::join_all(sweeps),
        futures::future::join_all(users)
    );
    for (s, v) in &stops {
        assert!(matches!(s, 200 | 400 | 409), "{s} {v}");
    }
    let fired: u32 = reports.iter().map(|r| r.auto_stopped).sum();
    let user_stops = stops.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(
        fired as usize + user_stops,
        SANDBOXES,
        "every sandbox stopped exactly once: {reports:?}"
    );
    // Users start the second quarter again while sweeps run on (not due any more: just started).
    let starts = ids[SANDBOXES / 4..SANDBOXES / 2].iter().map(|id| {
        let (env, alice) = (&h.env, &alice);
        async move {
            call(
                env,
                "POST",
                &format!("/api/sandbox/{id}/start"),
                alice,
                None,
            )
            .await
        }
    });
    let more = (0..SWEEPS).map(|_| sweep_at(&h.env, time::Duration::seconds(40)));
    let (starts, _) = tokio::join!(
        futures::future::join_all(starts),
        futures::future::join_all(more)
    );
    for (s, v) in &starts {
        assert_eq!(*s, 200, "{v}");
    }
    // Whatever was left in flight settles.
    sweep_at(&h.env, time::Duration::seconds(40)).await;
    let client = h.agent().unwrap().client();
    for (i, id) in ids.iter().enumerate() {
        let rec = h
            .env
            .store
            .sandboxes()
            .get(&SandboxId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(rec.transition.is_none() && !rec.pending, "{rec:?}");
        assert_eq!(rec.state.as_str(), rec.desired_state.as_str(), "{rec:?}");
        let restarted = (SANDBOXES / 4..SANDBOXES / 2).contains(&i);
        let (want_state, want_generation) = if restarted {
            (SandboxState::Started, 3)
        } else {
            (SandboxState::Stopped, 2)
        };
        assert_eq!(
            (rec.state, rec.generation),
            (want_state, want_generation),
            "sandbox {i}: {rec:?}"
        );
        let on_runner = client.get_sandbox(id).await.unwrap();
        assert_eq!(on_runner.generation, rec.generation, "{on_runner:?}");
    }
}
