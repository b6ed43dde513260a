//! The lifecycle rules end to end (issue 15 acceptance): `cove up` with its Docker runner, the
//! lifecycle timer every second, and one lifecycle minute lasting [`MINUTE_SECS`] seconds (the
//! test-only time scale `lifecycle_minute_secs`), all through the HTTP API:
//!
//! - auto-stop fires after the idle time; an ephemeral sandbox is deleted instead;
//! - auto-archive and auto-delete fire on stopped sandboxes (the archived one's container is
//!   gone from the runner);
//! - a sandbox running `sleep 600` in a session is reported busy and not stopped while the
//!   command runs, and is stopped once it ended and the idle time passed;
//! - a TTL (`ttlMinutes`, `POST /ttl/{n}`) deletes a sandbox whatever its state;
//! - a create with `queueTimeout` while no runner is available waits: placed once a runner is,
//!   or destroyed with `queueTimedOutAt` (still readable) when its timeout passes.
//!
//! One `cove up` for the module; the scenarios run concurrently.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cove_testkit::api::{Api, Call, Http};
use cove_testkit::org::{self, Tenant};
use cove_testkit::{Cove, CoveOptions, Runner};
use serde_json::{Value, json};

/// Seconds one lifecycle minute lasts in this test.
const MINUTE_SECS: u64 = 2;

const PERMISSIONS: &[&str] = &["write:sandboxes", "delete:sandboxes"];

struct Ctx {
    api: Http,
    t: Tenant,
}

impl Ctx {
    async fn send(&self, call: Call) -> (u16, Value) {
        let r = self.api.send(call.token(&self.t.key)).await;
        (r.status, r.json())
    }

    async fn get(&self, id: &str) -> (u16, Value) {
        self.send(Call::get(format!("/api/sandbox/{id}"))).await
    }

    /// Creates a sandbox with `body` and waits until it is started.
    async fn create(&self, body: Value) -> String {
        let (s, v) = self.send(Call::post("/api/sandbox").json(&body)).await;
        assert_eq!(s, 200, "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        self.until(&id, 120, |s, v| s == 200 && v["state"] == "started")
            .await;
        id
    }

    /// Polls the sandbox every 250 ms until `done` (at most `secs`); answers the last reply.
    async fn until(&self, id: &str, secs: u64, done: impl Fn(u16, &Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (s, v) = self.get(id).await;
            if done(s, &v) {
                return v;
            }
            assert!(Instant::now() < deadline, "sandbox {id}: {s} {v}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn toolbox(&self, call: Call) -> Value {
        let (s, v) = self.send(call).await;
        assert!((200..300).contains(&s), "{s} {v}");
        v
    }
}

fn containers_of(id: &str) -> String {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=cove.sandbox.id={id}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `v[field]` as a time.
fn at(v: &Value, field: &str) -> time::OffsetDateTime {
    let s = v[field].as_str().unwrap_or_else(|| panic!("{field}: {v}"));
    cove_api_types::time::parse_rfc3339(s).unwrap()
}

/// The stop (settled at `updatedAt`) came at least `minutes` idle minutes after `since`.
fn stopped_after_idle(v: &Value, since: &str, minutes: u64) {
    let idle = at(v, "updatedAt") - at(v, since);
    assert!(
        idle >= time::Duration::seconds((minutes * MINUTE_SECS) as i64),
        "stopped {idle} after {since}: {v}"
    );
}

async fn auto_stop(c: &Ctx) {
    let id = c.create(json!({"autoStopInterval": 1})).await;
    let v = c.until(&id, 60, |_, v| v["state"] == "stopped").await;
    stopped_after_idle(&v, "lastActivityAt", 1);
    assert_eq!(v["desiredState"], "stopped", "{v}");
    assert_eq!(v["busy"], false, "{v}");
}

async fn ephemeral(c: &Ctx) {
    let id = c
        .create(json!({"autoStopInterval": 1, "ephemeral": true}))
        .await;
    let (_, v) = c.get(&id).await;
    assert_eq!(v["autoDeleteInterval"], 0, "{v}");
    c.until(&id, 60, |s, _| s == 404).await;
}

async fn auto_archive(c: &Ctx) {
    let id = c
        .create(json!({"autoStopInterval": 0, "autoArchiveInterval": 1}))
        .await;
    assert!(!containers_of(&id).is_empty(), "no container for {id}");
    let (s, v) = c
        .send(Call::post(format!("/api/sandbox/{id}/stop?force=false")))
        .await;
    assert_eq!(s, 200, "{v}");
    let v = c.until(&id, 90, |_, v| v["state"] == "archived").await;
    assert_eq!(v["backupState"], "Completed", "{v}");
    assert!(v["runnerId"].is_null(), "{v}");
    assert_eq!(
        containers_of(&id),
        "",
        "the archived container is still there"
    );
}

async fn auto_delete(c: &Ctx) {
    let id = c
        .create(json!({"autoStopInterval": 0, "autoDeleteInterval": 1}))
        .await;
    let (s, v) = c
        .send(Call::post(format!("/api/sandbox/{id}/stop?force=false")))
        .await;
    assert_eq!(s, 200, "{v}");
    // Stopped first (not ephemeral), then deleted a minute later.
    c.until(&id, 30, |s, v| s == 404 || v["state"] == "stopped")
        .await;
    c.until(&id, 60, |s, _| s == 404).await;
}

/// Idle minutes of the busy scenario: the agent reports a command busy as soon as it starts,
/// but the idle time runs from the start of the sandbox (toolbox calls bump `lastActivityAt` at
/// most once a real minute), so a loaded machine gets a few seconds to create the session.
const BUSY_IDLE_MINUTES: u64 = 3;

async fn busy_is_not_idle(c: &Ctx) {
    let id = c
        .create(json!({ "autoStopInterval": BUSY_IDLE_MINUTES }))
        .await;
    let tb = |p: &str| format!("/toolbox/{id}/process/session{p}");
    c.toolbox(Call::post(tb("")).json(&json!({"sessionId": "work"})))
        .await;
    let cmd = c
        .toolbox(
            Call::post(tb("/work/exec")).json(&json!({"command": "sleep 600", "runAsync": true})),
        )
        .await;
    assert!(cmd["cmdId"].is_string(), "{cmd}");
    c.until(&id, 30, |_, v| v["busy"] == true).await;
    // Longer than the idle time while the command runs: still started.
    tokio::time::sleep(Duration::from_secs(2 * BUSY_IDLE_MINUTES * MINUTE_SECS)).await;
    let (_, v) = c.get(&id).await;
    assert_eq!(v["state"], "started", "stopped while busy: {v}");
    assert_eq!(v["busy"], true, "{v}");
    // The command ends (its session goes); after the idle minute the sandbox stops.
    let (s, v) = c.send(Call::delete(tb("/work"))).await;
    assert!((200..300).contains(&s), "{s} {v}");
    let v = c.until(&id, 60, |_, v| v["state"] == "stopped").await;
    assert_eq!(v["busy"], false, "{v}");
    stopped_after_idle(&v, "lastBusyAt", BUSY_IDLE_MINUTES);
    stopped_after_idle(&v, "lastActivityAt", BUSY_IDLE_MINUTES);
}

async fn ttl(c: &Ctx) {
    // Stopped (or not yet, on a slow machine): deleted once its TTL passed.
    let id = c
        .create(json!({"autoStopInterval": 0, "ttlMinutes": 4}))
        .await;
    let (_, v) = c.get(&id).await;
    let due = at(&v, "autoDestroyAt");
    assert_eq!(
        due - at(&v, "createdAt"),
        time::Duration::seconds(4 * MINUTE_SECS as i64),
        "{v}"
    );
    let (s, v) = c
        .send(Call::post(format!("/api/sandbox/{id}/stop?force=false")))
        .await;
    assert!(s == 200 || s == 404, "{s} {v}");
    c.until(&id, 60, |s, _| s == 404).await;
    assert!(
        time::OffsetDateTime::now_utc() >= due,
        "deleted before its TTL"
    );
    assert_eq!(containers_of(&id), "", "the container outlived the TTL");
    // Set on a started sandbox: 0 removes it, a new one deletes the sandbox.
    let id = c.create(json!({"autoStopInterval": 0})).await;
    let (s, v) = c.send(Call::post(format!("/api/sandbox/{id}/ttl/0"))).await;
    assert_eq!((s, v["autoDestroyAt"].is_null()), (200, true), "{v}");
    let (s, v) = c.send(Call::post(format!("/api/sandbox/{id}/ttl/1"))).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("started")), "{v}");
    c.until(&id, 60, |s, _| s == 404).await;
}

/// Runs alone: it takes every runner out of scheduling for a while.
async fn queue(c: &Ctx, admin: &str) {
    let r = c.api.send(Call::get("/api/runners").token(admin)).await;
    let runners = r.json();
    assert_eq!(r.status, 200, "{runners}");
    let ids: Vec<String> = runners
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let schedule = |on: bool| {
        let ids = ids.clone();
        async move {
            for id in ids {
                let call = Call::patch(format!("/api/runners/{id}/scheduling"))
                    .json(&json!({"unschedulable": !on}));
                let r = c.api.send(call.token(admin)).await;
                assert_eq!(r.status, 200, "{}", r.json());
            }
        }
    };
    schedule(false).await;
    let (s, v) = c
        .send(Call::post("/api/sandbox").json(&json!({"queueTimeout": 1})))
        .await;
    assert_eq!(
        (s, v["state"].as_str(), v["runnerId"].is_null()),
        (200, Some("creating"), true),
        "{v}"
    );
    let gone = v["id"].as_str().unwrap().to_owned();
    let (s, v) = c
        .send(Call::post("/api/sandbox").json(&json!({"queueTimeout": 60})))
        .await;
    assert_eq!(s, 200, "{v}");
    let placed = v["id"].as_str().unwrap().to_owned();
    // Timed out: destroyed, and still readable with the reason.
    let v = c.until(&gone, 60, |_, v| v["state"] == "destroyed").await;
    assert!(
        at(&v, "queueTimedOutAt") - at(&v, "createdAt")
            >= time::Duration::seconds(MINUTE_SECS as i64),
        "{v}"
    );
    let (_, v) = c.get(&placed).await;
    assert_eq!(
        (v["state"].as_str(), v["runnerId"].is_null()),
        (Some("creating"), true),
        "{v}"
    );
    // A runner again: the waiting one is placed and starts.
    schedule(true).await;
    let v = c.until(&placed, 120, |_, v| v["state"] == "started").await;
    assert!(
        ids.contains(&v["runnerId"].as_str().unwrap().to_owned()),
        "{v}"
    );
    assert!(v["queueTimedOutAt"].is_null(), "{v}");
    assert!(
        !containers_of(&placed).is_empty(),
        "no container for {placed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_interval_rules_fire_on_a_real_runner_and_busy_sandboxes_keep_running() {
    let cove = Cove::start(
        CoveOptions::default()
            .fresh_table()
            .runner(Runner::Docker)
            .variable("lifecycle_minute_secs", MINUTE_SECS.to_string())
            .args(["--runner-warm-pool", "0", "--lifecycle-interval", "1"])
            .log("warn"),
    )
    .await
    .expect("cove up");
    let api = cove.api();
    let t = org::tenant(&api, PERMISSIONS).await;
    let c = Ctx { api, t };
    tokio::join!(
        auto_stop(&c),
        ephemeral(&c),
        auto_archive(&c),
        auto_delete(&c),
        busy_is_not_idle(&c),
        ttl(&c),
    );
    queue(&c, cove.admin_key().expect("fresh table: an admin key")).await;
}
