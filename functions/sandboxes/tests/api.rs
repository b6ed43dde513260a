//! The sandboxes handlers natively, against a real DynamoDB API (dynoxide) and a real runner agent
//! (`cove-runner`) on its simulated runtime (`--runtime fake`: no Docker; its containers run the
//! real toolbox daemon), started by the testkit. What is about Docker itself (users, images,
//! resources) is covered by `runner-agent/tests` and the e2e/SDK suites.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cove_api_types::ids::UserId;
use cove_api_types::sandbox::SandboxState;
use cove_edge::config::SandboxSettings;
use cove_edge::{Env, Request};
use cove_store::runners::RunnerRecord;
use cove_testkit::api::{Call, Reply};
use cove_testkit::{Agent, AgentOptions, FAKE_IMAGE, Harness};
use serde_json::{Value, json};

const HOST: &str = "cove.test:3000";

/// The image every sandbox of these tests runs (the simulated runner's one snapshot).
fn image() -> String {
    FAKE_IMAGE.to_owned()
}

struct Fx {
    _h: Harness,
    env: Env,
    settings: SandboxSettings,
    agent: Agent,
    runner: RunnerRecord,
}

fn jwt(sub: &str) -> String {
    cove_testkit::jwt::token(sub)
}

/// A fresh table, one simulated agent, and its runner row (ready; its heartbeat time is set in
/// the future so it stays schedulable for the whole test without a heartbeat loop).
async fn fx() -> Fx {
    let h = Harness::new().await;
    // A token of the form the control plane gives runners (a fresh row's).
    let token = RunnerRecord::new("runner-1", "us", &cove_api_types::time::now_rfc3339())
        .unwrap()
        .api_key;
    let agent = Agent::start(AgentOptions::fake().token(token)).unwrap();
    let runner = h.register_runner(&agent).await.unwrap();
    let settings = SandboxSettings {
        default_snapshot: image(),
        ..SandboxSettings::default()
    };
    Fx {
        env: h.env.clone(),
        _h: h,
        settings,
        agent,
        runner,
    }
}

fn request(method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Request {
    Call::simple(method, path, token, None, body)
        .header("host", HOST)
        .to_request()
}

impl Fx {
    /// Calls the function; checks the error envelope of any 4xx and that nothing is a 5xx.
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let call =
            Call::simple(method, path, Some(token), None, body.as_deref()).header("host", HOST);
        let resp = sandboxes::handle(&self.env, &self.settings, call.to_request()).await;
        Reply::from_response(resp).checked(&call)
    }

    async fn create(&self, t: &str, body: Value) -> (u16, Value) {
        self.call("POST", "/api/sandbox", t, Some(body)).await
    }

    async fn org_of(&self, sub: &str) -> cove_api_types::ids::OrganizationId {
        // Any authenticated call provisions the user and its personal organization.
        let _ = self.call("GET", "/api/sandbox", &jwt(sub), None).await;
        self.env
            .store
            .users()
            .get(&UserId::parse(sub).unwrap())
            .await
            .unwrap()
            .unwrap()
            .personal_organization_id
    }

    async fn set_quota(&self, sub: &str, f: impl Fn(&mut cove_store::orgs::OrgQuota)) {
        let org = self.org_of(sub).await;
        let mut rec = self.env.store.orgs().get(&org).await.unwrap().unwrap();
        f(&mut rec.quota);
        rec.version += 1;
        self.env.store.orgs().update(&rec).await.unwrap();
    }

    /// Takes the fixture's only runner out of scheduling: creates find no runner.
    async fn no_runner(&self) {
        self.env
            .store
            .runners()
            .set_unschedulable(&self.runner.id, true)
            .await
            .unwrap();
    }

    /// The state the agent reports (`destroyed` when it does not know the sandbox).
    async fn runner_state(&self, id: &str) -> String {
        match self.agent.client().get_sandbox(id).await {
            Ok(st) => serde_json::to_value(st.state)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned(),
            Err(e) if e.status() == Some(404) => "destroyed".into(),
            Err(e) => panic!("agent GET {id}: {e}"),
        }
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn sandbox_id(id: &str) -> cove_api_types::ids::SandboxId {
    cove_api_types::ids::SandboxId::parse(id).unwrap()
}

#[tokio::test]
async fn lifecycle_create_exec_list_stop_start_delete() {
    let f = fx().await;
    let alice = jwt("alice");
    let (s, sb) = f
        .create(
            &alice,
            json!({"env": {"GREETING": "hi"}, "labels": {"code-toolbox-language": "python", "team": "a"},
                   "volumes": [], "name": "first", "unknownField": true}),
        )
        .await;
    assert_eq!(s, 200, "{sb}");
    assert_eq!(sb["state"], "started", "{sb}");
    assert_eq!(sb["desiredState"], "started");
    assert_eq!(sb["name"], "first");
    assert_eq!(sb["user"], "daytona");
    assert_eq!(sb["snapshot"], image());
    assert_eq!(
        (
            sb["cpu"].as_i64(),
            sb["memory"].as_i64(),
            sb["disk"].as_i64()
        ),
        (Some(1), Some(1), Some(3))
    );
    assert_eq!(sb["kvm"], false);
    assert_eq!(sb["toolboxProxyUrl"], format!("http://{HOST}/toolbox"));
    assert_eq!(sb["runnerId"], f.runner.id.as_str());
    let id = id_of(&sb);
    let token1 = sb["authToken"].clone();
    assert!(token1.is_null(), "the preview token is not part of Sandbox");
    // The container is real: exec through the agent's toolbox.
    let (code, out) = f.agent.exec(&id, "sh -c 'echo $GREETING'").await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["hi"]);
    assert_eq!(f.runner_state(&id).await, "started");

    // Get by id and by name; the deprecated alias answers the same.
    for p in [
        format!("/api/sandbox/{id}"),
        "/api/sandbox/first".into(),
        format!("/api/workspace/{id}"),
    ] {
        let (s, v) = f.call("GET", &p, &alice, None).await;
        assert_eq!((s, v["id"].as_str()), (200, Some(id.as_str())), "{p}");
    }
    // A second sandbox; list filters and pagination.
    let (s, sb2) = f
        .create(
            &alice,
            json!({"labels": {"team": "b"}, "cpu": 2, "memory": 2, "disk": 5}),
        )
        .await;
    assert_eq!(s, 200, "{sb2}");
    assert_eq!(sb2["name"], sb2["id"], "name defaults to the id");
    assert_eq!(sb2["cpu"], 2);
    let id2 = id_of(&sb2);
    let (s, all) = f.call("GET", "/api/sandbox", &alice, None).await;
    assert_eq!(s, 200);
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert!(all["nextCursor"].is_null());
    assert!(
        all["items"][0]["toolboxProxyUrl"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    assert!(
        all["items"][0].get("env").is_none(),
        "list items carry no env"
    );
    let q = "/api/sandbox?labels=%7B%22team%22%3A%22a%22%7D";
    let (s, only_a) = f.call("GET", q, &alice, None).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = only_a["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let (_, p1) = f.call("GET", "/api/sandbox?limit=1", &alice, None).await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 1);
    let cursor = p1["nextCursor"].as_str().expect("a next page").to_owned();
    let (_, p2) = f
        .call(
            "GET",
            &format!("/api/sandbox?limit=1&cursor={cursor}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert_ne!(p1["items"][0]["id"], p2["items"][0]["id"]);
    let (_, started) = f
        .call(
            "GET",
            "/api/sandbox?states=started&states=stopped",
            &alice,
            None,
        )
        .await;
    assert_eq!(started["items"].as_array().unwrap().len(), 2);

    // Preview URL and token; toolbox proxy URL; labels; public; intervals; activity; build logs.
    let (s, pv) = f
        .call(
            "GET",
            &format!("/api/sandbox/{id}/ports/3000/preview-url"),
            &alice,
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(pv["url"], format!("http://3000-{id}.{HOST}"));
    assert_eq!(pv["sandboxId"], id.as_str());
    let tok1 = pv["token"].as_str().unwrap().to_owned();
    assert!(
        tok1.len() == 32
            && tok1
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    let (s, tp) = f
        .call(
            "GET",
            &format!("/api/sandbox/{id}/toolbox-proxy-url"),
            &alice,
            None,
        )
        .await;
    assert_eq!(
        (s, tp["url"].as_str()),
        (200, Some(format!("http://{HOST}/toolbox").as_str()))
    );
    let (s, l) = f
        .call(
            "PUT",
            &format!("/api/sandbox/{id}/labels"),
            &alice,
            Some(json!({"labels": {"x": "y"}})),
        )
        .await;
    assert_eq!((s, l.clone()), (200, json!({"labels": {"x": "y"}})));
    let (s, v) = f
        .call(
            "POST",
            &format!("/api/sandbox/{id}/public/true"),
            &alice,
            None,
        )
        .await;
    assert_eq!((s, v["public"].as_bool()), (200, Some(true)));
    for (kind, field, val) in [
        ("autostop", "autoStopInterval", 30),
        ("autoarchive", "autoArchiveInterval", 60),
        ("autodelete", "autoDeleteInterval", 120),
        ("autopause", "autoPauseInterval", 5),
    ] {
        let (s, v) = f
            .call(
                "POST",
                &format!("/api/sandbox/{id}/{kind}/{val}"),
                &alice,
                None,
            )
            .await;
        assert_eq!((s, v[field].as_i64()), (200, Some(val)), "{kind}: {v}");
    }
    let (s, _) = f
        .call(
            "POST",
            &format!("/api/sandbox/{id}/last-activity"),
            &alice,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, logs) = f
        .call(
            "GET",
            &format!("/api/sandbox/{id}/build-logs?follow=true"),
            &alice,
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(logs.as_str().unwrap().contains(&id));

    // Stop → stopped (the container too); start → started with a new preview token.
    let (s, v) = f
        .call(
            "POST",
            &format!("/api/sandbox/{id}/stop?force=false"),
            &alice,
            None,
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("stopped")), "{v}");
    assert_eq!(v["desiredState"], "stopped");
    assert_eq!(f.runner_state(&id).await, "stopped");
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/start"), &alice, None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("started")), "{v}");
    assert_eq!(f.runner_state(&id).await, "started");
    let (_, pv2) = f
        .call(
            "GET",
            &format!("/api/sandbox/{id}/ports/3000/preview-url"),
            &alice,
            None,
        )
        .await;
    assert_ne!(
        pv2["token"].as_str().unwrap(),
        tok1,
        "start regenerates the preview token"
    );
    let (code, out) = f.agent.exec(&id, "echo again").await;
    assert_eq!((code, out.trim()), (0, "again"));
    // Starting a started sandbox is a no-op.
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/start"), &alice, None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("started")));

    // Delete → destroyed, 404 afterwards, container gone, the name is free again.
    let (s, v) = f
        .call("DELETE", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("destroyed")), "{v}");
    assert!(v["name"].as_str().unwrap().starts_with("DESTROYED_first_"));
    let (s, _) = f
        .call("GET", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!(s, 404);
    let (s, _) = f.call("GET", "/api/sandbox/first", &alice, None).await;
    assert_eq!(s, 404);
    assert_eq!(f.runner_state(&id).await, "destroyed");
    let (s, again) = f.create(&alice, json!({"name": "first"})).await;
    assert_eq!(
        (s, again["state"].as_str()),
        (200, Some("started")),
        "{again}"
    );
    let (s, _) = f.create(&alice, json!({"name": "first"})).await;
    assert_eq!(s, 409, "duplicate name");
    let (s, list) = f.call("GET", "/api/sandbox", &alice, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "destroyed sandboxes are not listed"
    );
    for i in [id_of(&again), id2] {
        let (s, _) = f
            .call("DELETE", &format!("/api/workspace/{i}"), &alice, None)
            .await;
        assert_eq!(s, 200);
    }
    let usage = f
        .env
        .store
        .sandboxes()
        .usage(&f.org_of("alice").await)
        .await
        .unwrap();
    assert_eq!((usage.cpu, usage.memory, usage.disk), (0, 0, 0));
}

#[tokio::test]
async fn concurrent_start_stop_delete_leave_a_consistent_sandbox() {
    let f = fx().await;
    let alice = jwt("alice");
    let (s, sb) = f.create(&alice, json!({})).await;
    assert_eq!(s, 200, "{sb}");
    let id = id_of(&sb);
    let ops = [
        "stop", "start", "stop", "delete", "start", "stop", "start", "delete", "stop", "start",
    ];
    let calls = ops.iter().map(|op| {
        let (f, alice, id) = (&f, &alice, &id);
        async move {
            match *op {
                "delete" => {
                    f.call("DELETE", &format!("/api/sandbox/{id}"), alice, None)
                        .await
                }
                op => {
                    f.call("POST", &format!("/api/sandbox/{id}/{op}"), alice, None)
                        .await
                }
            }
        }
    });
    let results = futures::future::join_all(calls).await;
    for (op, (s, v)) in ops.iter().zip(&results) {
        assert!([200, 400, 404, 409].contains(s), "{op}: {s} {v}");
    }
    assert!(results.iter().any(|(s, _)| *s == 200), "{results:?}");
    let row = f
        .env
        .store
        .sandboxes()
        .get(&sandbox_id(&id))
        .await
        .unwrap()
        .unwrap();
    assert!(!row.pending, "{row:?}");
    assert_eq!(row.state.as_str(), row.desired_state.as_str(), "{row:?}");
    let actual = f.runner_state(&id).await;
    assert_eq!(actual, row.state.as_str(), "runner and row agree: {row:?}");
    // And it still works afterwards.
    if row.state == SandboxState::Started {
        assert_eq!(f.agent.exec(&id, "true").await.0, 0);
        let (s, v) = f
            .call("POST", &format!("/api/sandbox/{id}/stop"), &alice, None)
            .await;
        assert_eq!((s, v["state"].as_str()), (200, Some("stopped")));
    }
    if !row.is_destroyed() {
        let (s, _) = f
            .call("DELETE", &format!("/api/sandbox/{id}"), &alice, None)
            .await;
        assert_eq!(s, 200);
    }
}

#[tokio::test]
async fn fifty_concurrent_creates_respect_the_cpu_quota_exactly() {
    let f = fx().await;
    let alice = jwt("alice");
    f.set_quota("alice", |q| {
        q.total_cpu_quota = 10;
        q.total_memory_quota = 1000;
        q.total_disk_quota = 1000;
    })
    .await;
    let calls = (0..50).map(|_| f.create(&alice, json!({"labels": {"batch": "q"}})));
    let results = futures::future::join_all(calls).await;
    let ok: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v)
        .collect();
    let refused: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 400)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(ok.len(), 10, "{results:?}");
    assert_eq!(refused.len(), 40, "{results:?}");
    for v in &refused {
        assert_eq!(
            v["message"],
            "Total CPU limit exceeded. Maximum allowed: 10"
        );
    }
    for v in &ok {
        assert_eq!(v["state"], "started", "{v}");
    }
    let org = f.org_of("alice").await;
    let usage = f.env.store.sandboxes().usage(&org).await.unwrap();
    assert_eq!((usage.cpu, usage.memory, usage.disk), (10, 10, 30));
    let runner = f
        .env
        .store
        .runners()
        .get(&f.runner.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(runner.assigned_sandboxes, 10);
    // Stopping one frees a CPU: one more create fits, the next does not.
    let first = id_of(ok[0]);
    let (s, _) = f
        .call("POST", &format!("/api/sandbox/{first}/stop"), &alice, None)
        .await;
    assert_eq!(s, 200);
    let (s, extra) = f.create(&alice, json!({})).await;
    assert_eq!(s, 200, "{extra}");
    let (s, _) = f.create(&alice, json!({})).await;
    assert_eq!(s, 400);
    // Starting the stopped one would exceed the total now.
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{first}/start"), &alice, None)
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("Total CPU limit exceeded. Maximum allowed: 10"))
    );
    let deletes = ok
        .iter()
        .map(|v| id_of(v))
        .chain([id_of(&extra)])
        .map(|id| {
            let (f, alice) = (&f, &alice);
            async move {
                f.call("DELETE", &format!("/api/sandbox/{id}"), alice, None)
                    .await
            }
        });
    for (s, v) in futures::future::join_all(deletes).await {
        assert_eq!(s, 200, "{v}");
    }
    let usage = f.env.store.sandboxes().usage(&org).await.unwrap();
    assert_eq!((usage.cpu, usage.memory, usage.disk), (0, 0, 0));
}

#[tokio::test]
async fn bad_input_gets_the_right_4xx() {
    let f = fx().await;
    let alice = jwt("alice");
    let cases = [
        (
            json!({"snapshot": "nope:1"}),
            400,
            "Snapshot nope:1 not found",
        ),
        (
            json!({"snapshot": image(), "cpu": 2}),
            400,
            "Cannot specify Sandbox resources when using a snapshot",
        ),
        (
            json!({"cpu": 64}),
            400,
            "CPU request 64 exceeds maximum allowed per sandbox (4)",
        ),
        (
            json!({"memory": 64}),
            400,
            "Memory request 64GB exceeds maximum allowed per sandbox (8GB)",
        ),
        (
            json!({"disk": 640}),
            400,
            "Disk request 640GB exceeds maximum allowed per sandbox (10GB)",
        ),
        (
            json!({"autoStopInterval": -5}),
            400,
            "autoStopInterval must not be negative",
        ),
        (
            json!({"autoArchiveInterval": -1}),
            400,
            "autoArchiveInterval must not be negative",
        ),
        (json!({"labels": {"a": 1}}), 400, ""),
        (json!({"env": ["A=1"]}), 400, ""),
        (json!({"cpu": 1.5}), 400, ""),
        (
            json!({"volumes": [{"volumeId": "vol-1", "mountPath": "/data"}]}),
            400,
            "Volume vol-1 not found",
        ),
        (
            json!({"buildInfo": {"dockerfileContent": "FROM alpine"}}),
            400,
            "buildInfo",
        ),
        (json!({"name": "bad name"}), 400, "name"),
    ];
    for (body, status, msg) in cases {
        let (s, v) = f.create(&alice, body.clone()).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(v["message"].as_str().unwrap().contains(msg), "{body}: {v}");
    }
    let (s, _) = f
        .call("GET", "/api/sandbox?labels=%7Bnot-json", &alice, None)
        .await;
    assert_eq!(s, 400);
    let (s, _) = f.call("GET", "/api/sandbox?limit=0", &alice, None).await;
    assert_eq!(s, 400);
    let (s, _) = f
        .call("GET", "/api/sandbox?cursor=garbage!", &alice, None)
        .await;
    assert_eq!(s, 400);
    for p in [
        "/api/sandbox/missing",
        "/api/sandbox/missing/toolbox-proxy-url",
    ] {
        let (s, v) = f.call("GET", p, &alice, None).await;
        assert_eq!(
            (s, v["message"].as_str()),
            (404, Some("Sandbox with ID or name missing not found"))
        );
    }
    for p in [
        "/api/sandbox/missing/start",
        "/api/sandbox/missing/stop",
        "/api/sandbox/missing/archive",
    ] {
        let (s, _) = f.call("POST", p, &alice, None).await;
        assert_eq!(s, 404, "{p}");
    }
    let (s, _) = f.call("DELETE", "/api/sandbox/missing", &alice, None).await;
    assert_eq!(s, 404);
    // No credentials.
    let resp = sandboxes::handle(
        &f.env,
        &f.settings,
        request("GET", "/api/sandbox", None, None),
    )
    .await;
    assert_eq!(resp.status(), 401);

    // Wrong transitions on a real sandbox.
    let (s, sb) = f.create(&alice, json!({})).await;
    assert_eq!(s, 200, "{sb}");
    let id = id_of(&sb);
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/archive"), &alice, None)
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("Sandbox is not in valid state to be archived"))
    );
    for (p, status) in [
        (format!("/api/sandbox/{id}/autostop/-1"), 400),
        (format!("/api/sandbox/{id}/autoarchive/-3"), 400),
        (format!("/api/sandbox/{id}/autodelete/-2"), 400),
        (format!("/api/sandbox/{id}/autopause/x"), 400),
        (format!("/api/sandbox/{id}/autodelete/-1"), 200),
        (format!("/api/sandbox/{id}/public/maybe"), 400),
    ] {
        let (s, v) = f.call("POST", &p, &alice, None).await;
        assert_eq!(s, status, "{p}: {v}");
    }
    for port in ["0", "65536", "http"] {
        let (s, _) = f
            .call(
                "GET",
                &format!("/api/sandbox/{id}/ports/{port}/preview-url"),
                &alice,
                None,
            )
            .await;
        assert_eq!(s, 400, "port {port}");
    }
    let (s, _) = f
        .call(
            "PUT",
            &format!("/api/sandbox/{id}/labels"),
            &alice,
            Some(json!({"labels": {"a": 1}})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = f
        .call("POST", &format!("/api/sandbox/{id}/stop"), &alice, None)
        .await;
    assert_eq!(s, 200);
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/stop"), &alice, None)
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("Sandbox is not in a stoppable state"))
    );
    // A sandbox mid-change refuses other changes with 409.
    let mut row = f
        .env
        .store
        .sandboxes()
        .get(&sandbox_id(&id))
        .await
        .unwrap()
        .unwrap();
    let prev = row.clone();
    row.state = SandboxState::Starting;
    row.desired_state = cove_api_types::sandbox::SandboxDesiredState::Started;
    row.pending = true;
    f.env
        .store
        .sandboxes()
        .update(&prev, &row, cove_store::sandboxes::QuotaCheck::Record)
        .await
        .unwrap();
    for (m, p) in [("POST", "start"), ("POST", "stop"), ("POST", "archive")] {
        let (s, v) = f
            .call(m, &format!("/api/sandbox/{id}/{p}"), &alice, None)
            .await;
        assert_eq!(
            (s, v["message"].as_str()),
            (409, Some("Sandbox state change in progress")),
            "{p}"
        );
    }
    let (s, _) = f
        .call("DELETE", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!(s, 409);
    let (s, v) = f
        .call(
            "DELETE",
            &format!("/api/sandbox/{id}?force=true"),
            &alice,
            None,
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("destroyed")), "{v}");

    // A suspended organization may not create or start.
    let org = f.org_of("alice").await;
    let mut o = f.env.store.orgs().get(&org).await.unwrap().unwrap();
    o.suspended = true;
    o.suspension_reason = Some("unpaid".into());
    o.version += 1;
    f.env.store.orgs().update(&o).await.unwrap();
    let (s, v) = f.create(&alice, json!({})).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (403, Some("Organization is suspended: unpaid"))
    );
}

#[tokio::test]
async fn no_runner_means_no_sandbox() {
    let f = fx().await;
    let alice = jwt("alice");
    f.no_runner().await;
    let (s, v) = f.create(&alice, json!({})).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("No available runners"))
    );
    let usage = f
        .env
        .store
        .sandboxes()
        .usage(&f.org_of("alice").await)
        .await
        .unwrap();
    assert_eq!(usage.cpu, 0);
}

#[tokio::test]
async fn ttl_sets_auto_destroy_at_and_a_queue_timeout_queues_a_create_without_a_runner() {
    let f = fx().await;
    let alice = jwt("alice");
    for (body, message) in [
        (json!({"ttlMinutes": -1}), "ttlMinutes must not be negative"),
        (
            json!({"queueTimeout": 0}),
            "queueTimeout must be a positive integer",
        ),
    ] {
        let (s, v) = f.create(&alice, body).await;
        assert_eq!((s, v["message"].as_str()), (400, Some(message)), "{v}");
    }
    let before = time::OffsetDateTime::now_utc();
    let (s, sb) = f.create(&alice, json!({"ttlMinutes": 30})).await;
    assert_eq!(s, 200, "{sb}");
    let id = id_of(&sb);
    let at = |v: &Value| {
        cove_api_types::time::parse_rfc3339(v["autoDestroyAt"].as_str().expect("autoDestroyAt"))
            .unwrap()
    };
    let ttl = at(&sb) - before;
    assert!(
        ttl >= time::Duration::minutes(30) && ttl < time::Duration::minutes(31),
        "{sb}"
    );
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/ttl/0"), &alice, None)
        .await;
    assert_eq!((s, v["autoDestroyAt"].is_null()), (200, true), "{v}");
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/ttl/2"), &alice, None)
        .await;
    let ttl = at(&v) - time::OffsetDateTime::now_utc();
    assert!(s == 200 && ttl <= time::Duration::minutes(2), "{v}");
    for bad in ["-1", "soon"] {
        let (s, _) = f
            .call(
                "POST",
                &format!("/api/sandbox/{id}/ttl/{bad}"),
                &alice,
                None,
            )
            .await;
        assert_eq!(s, 400, "ttl {bad}");
    }
    let (_, v) = f
        .call("GET", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!(
        at(&v),
        at(&f
            .call("GET", &format!("/api/sandbox/{id}"), &alice, None)
            .await
            .1)
    );

    // No runner: refused at once without a queue timeout, queued with one.
    f.no_runner().await;
    let (s, v) = f.create(&alice, json!({})).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("No available runners"))
    );
    let (s, q) = f
        .create(&alice, json!({"name": "waiting", "queueTimeout": 5}))
        .await;
    assert_eq!(s, 200, "{q}");
    assert_eq!(
        (
            q["state"].as_str(),
            q["runnerId"].is_null(),
            q["queueTimeout"].as_i64()
        ),
        (Some("creating"), true, Some(5)),
        "{q}"
    );
    let rec = f
        .env
        .store
        .sandboxes()
        .get(&sandbox_id(&id_of(&q)))
        .await
        .unwrap()
        .unwrap();
    assert!(rec.is_queued(), "{rec:?}");
    assert_eq!(
        f.runner_state(&id_of(&q)).await,
        "destroyed",
        "nothing on the runner yet"
    );
    let usage = f
        .env
        .store
        .sandboxes()
        .usage(&f.org_of("alice").await)
        .await
        .unwrap();
    assert_eq!(usage.cpu, 2, "a queued sandbox counts against the quota");
    // The name is taken while it waits; a delete ends the wait.
    let (s, _) = f
        .create(&alice, json!({"name": "waiting", "queueTimeout": 5}))
        .await;
    assert_eq!(s, 409);
    let (s, v) = f.call("DELETE", "/api/sandbox/waiting", &alice, None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("destroyed")), "{v}");
    let (s, _) = f
        .call("GET", &format!("/api/sandbox/{}", id_of(&q)), &alice, None)
        .await;
    assert_eq!(s, 404, "deleted, not timed out: gone");
}

#[tokio::test]
async fn an_unreachable_runner_leaves_an_errored_sandbox_that_force_delete_removes() {
    let f = fx().await;
    let alice = jwt("alice");
    f.no_runner().await;
    // A runner whose agent does not listen.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut dead = RunnerRecord::new("dead", "us", &cove_api_types::time::now_rfc3339()).unwrap();
    dead.api_url = Some(format!("http://127.0.0.1:{port}"));
    dead.state = cove_api_types::runner::RunnerState::Ready;
    dead.last_checked = Some(cove_api_types::time::format_rfc3339(
        time::OffsetDateTime::now_utc() + time::Duration::hours(6),
    ));
    f.env.store.runners().create(&dead).await.unwrap();
    let (s, v) = f.create(&alice, json!({"name": "doomed"})).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("Runner dead is unreachable"),
        "{v}"
    );
    let (s, v) = f.call("GET", "/api/sandbox/doomed", &alice, None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("error")), "{v}");
    assert_eq!(v["errorReason"], "Runner dead is unreachable");
    let (s, v) = f
        .call("POST", "/api/sandbox/doomed/start", &alice, None)
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("Sandbox is not in valid state"))
    );
    let usage = f
        .env
        .store
        .sandboxes()
        .usage(&f.org_of("alice").await)
        .await
        .unwrap();
    assert_eq!(
        (usage.cpu, usage.disk),
        (0, 0),
        "an errored sandbox holds no quota"
    );
    // Without force the runner must confirm; with force the control plane lets go.
    let (s, v) = f.call("DELETE", "/api/sandbox/doomed", &alice, None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("error")), "{v}");
    let (s, v) = f
        .call("DELETE", "/api/sandbox/doomed?force=true", &alice, None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("destroyed")), "{v}");
    let (s, _) = f.call("GET", "/api/sandbox/doomed", &alice, None).await;
    assert_eq!(s, 404);
    let dead = f.env.store.runners().get(&dead.id).await.unwrap().unwrap();
    assert_eq!(dead.assigned_sandboxes, 0);
}

#[tokio::test]
async fn archive_backs_up_and_start_restores() {
    let f = fx().await;
    let alice = jwt("alice");
    let (s, sb) = f.create(&alice, json!({})).await;
    assert_eq!(s, 200, "{sb}");
    let id = id_of(&sb);
    let (code, _) = f.agent.exec(&id, "sh -c 'echo kept > file.txt'").await;
    assert_eq!(code, 0);
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/backup"), &alice, None)
        .await;
    assert_eq!(
        (s, v["backupState"].as_str()),
        (200, Some("Completed")),
        "{v}"
    );
    assert_eq!(v["state"], "started");
    let (s, _) = f
        .call("POST", &format!("/api/sandbox/{id}/stop"), &alice, None)
        .await;
    assert_eq!(s, 200);
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/archive"), &alice, None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("archived")), "{v}");
    assert!(v["runnerId"].is_null());
    assert_eq!(
        f.runner_state(&id).await,
        "destroyed",
        "the container is gone"
    );
    let usage = f
        .env
        .store
        .sandboxes()
        .usage(&f.org_of("alice").await)
        .await
        .unwrap();
    assert_eq!(
        (usage.cpu, usage.disk),
        (0, 0),
        "an archived sandbox holds no quota"
    );
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/start"), &alice, None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("started")), "{v}");
    assert_eq!(v["runnerId"], f.runner.id.as_str());
    let (code, out) = f.agent.exec(&id, "cat file.txt").await;
    assert_eq!((code, out.trim()), (0, "kept"));
    // A restored sandbox stops and starts like any other.
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/stop"), &alice, None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("stopped")), "{v}");
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/start"), &alice, None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("started")), "{v}");
    let (s, _) = f
        .call("DELETE", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn runners_report_state_of_their_own_sandboxes_only() {
    let f = fx().await;
    let alice = jwt("alice");
    let (s, sb) = f.create(&alice, json!({})).await;
    assert_eq!(s, 200, "{sb}");
    let id = id_of(&sb);
    let report = |token: Option<String>, body: Value| {
        let (env, settings, id) = (&f.env, &f.settings, &id);
        async move {
            let resp = sandboxes::handle(
                env,
                settings,
                request(
                    "PUT",
                    &format!("/api/sandbox/{id}/state"),
                    token.as_deref(),
                    Some(&body.to_string()),
                ),
            )
            .await;
            resp.status().as_u16()
        }
    };
    assert_eq!(report(None, json!({"state": "stopped"})).await, 401);
    assert_eq!(
        report(Some(alice.clone()), json!({"state": "stopped"})).await,
        401
    );
    // Another runner may not report on this sandbox.
    let mut other =
        RunnerRecord::new("runner-2", "us", &cove_api_types::time::now_rfc3339()).unwrap();
    other.state = cove_api_types::runner::RunnerState::Ready;
    let other = f.env.store.runners().create(&other).await.unwrap();
    assert_eq!(
        report(Some(other.api_key.clone()), json!({"state": "stopped"})).await,
        404
    );
    assert_eq!(
        report(
            Some(f.agent.token().to_owned()),
            json!({"state": "sideways"})
        )
        .await,
        400
    );
    assert_eq!(
        report(
            Some(f.agent.token().to_owned()),
            json!({"state": "error", "errorReason": "container died", "recoverable": true})
        )
        .await,
        200
    );
    let (_, v) = f
        .call("GET", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!(
        (
            v["state"].as_str(),
            v["errorReason"].as_str(),
            v["recoverable"].as_bool()
        ),
        (Some("error"), Some("container died"), Some(true))
    );
    assert_eq!(
        report(
            Some(f.agent.token().to_owned()),
            json!({"state": "started"})
        )
        .await,
        200
    );
    let (_, v) = f
        .call("GET", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!(
        (v["state"].as_str(), v["errorReason"].as_str()),
        (Some("started"), None)
    );
    let (s, _) = f
        .call("DELETE", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        report(
            Some(f.agent.token().to_owned()),
            json!({"state": "started"})
        )
        .await,
        404
    );
}

/// Every documented sandbox route, with a body where it takes one.
const TENANT_MATRIX: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/api/sandbox/{sandboxIdOrName}", None),
    ("DELETE", "/api/sandbox/{sandboxIdOrName}", None),
    ("POST", "/api/sandbox/{sandboxIdOrName}/start", None),
    ("POST", "/api/sandbox/{sandboxIdOrName}/stop", None),
    ("POST", "/api/sandbox/{sandboxIdOrName}/archive", None),
    ("POST", "/api/sandbox/{sandboxIdOrName}/backup", None),
    ("POST", "/api/sandbox/{sandboxIdOrName}/recover", None),
    (
        "PUT",
        "/api/sandbox/{sandboxIdOrName}/labels",
        Some(r#"{"labels":{"pwned":"1"}}"#),
    ),
    (
        "POST",
        "/api/sandbox/{sandboxIdOrName}/network-settings",
        Some(r#"{"networkBlockAll":true}"#),
    ),
    (
        "POST",
        "/api/sandbox/{sandboxIdOrName}/public/{isPublic}",
        None,
    ),
    (
        "POST",
        "/api/sandbox/{sandboxIdOrName}/autostop/{interval}",
        None,
    ),
    (
        "POST",
        "/api/sandbox/{sandboxIdOrName}/autoarchive/{interval}",
        None,
    ),
    (
        "POST",
        "/api/sandbox/{sandboxIdOrName}/autodelete/{interval}",
        None,
    ),
    (
        "POST",
        "/api/sandbox/{sandboxIdOrName}/autopause/{interval}",
        None,
    ),
    (
        "POST",
        "/api/sandbox/{sandboxIdOrName}/ttl/{ttlMinutes}",
        None,
    ),
    (
        "GET",
        "/api/sandbox/{sandboxIdOrName}/ports/{port}/preview-url",
        None,
    ),
    (
        "GET",
        "/api/sandbox/{sandboxIdOrName}/ports/{port}/signed-preview-url",
        None,
    ),
    (
        "POST",
        "/api/sandbox/{sandboxIdOrName}/ports/{port}/signed-preview-url/{token}/expire",
        None,
    ),
    ("GET", "/api/sandbox/{sandboxId}/toolbox-proxy-url", None),
    ("GET", "/api/sandbox/{sandboxId}/signing-key", None),
    ("POST", "/api/sandbox/{sandboxId}/signing-key/rotate", None),
    ("GET", "/api/sandbox/{sandboxIdOrName}/build-logs", None),
    ("GET", "/api/sandbox/{sandboxIdOrName}/network-log", None),
    (
        "GET",
        "/api/sandbox/{sandboxIdOrName}/telemetry/metrics",
        None,
    ),
    ("POST", "/api/sandbox/{sandboxId}/last-activity", Some("{}")),
    (
        "PUT",
        "/api/sandbox/{sandboxId}/state",
        Some(r#"{"state":"stopped"}"#),
    ),
];

/// Routes scoped to the caller's own organization (no foreign id in the request): tested in
/// `cross_tenant_requests_leak_nothing` by what they return.
const SELF_SCOPED: &[(&str, &str)] = &[
    ("GET", "/api/sandbox"),
    ("POST", "/api/sandbox"),
    ("GET", "/api/events/sandboxes"),
];

fn alias(p: &str) -> String {
    p.replacen("/api/sandbox", "/api/workspace", 1)
}

fn covered(m: &str, p: &str) -> bool {
    TENANT_MATRIX
        .iter()
        .any(|(tm, tp, _)| *tm == m && (*tp == p || alias(tp) == p))
        || SELF_SCOPED
            .iter()
            .any(|(sm, sp)| *sm == m && (*sp == p || alias(sp) == p))
}

/// A sandbox route added to the checked-in OpenAPI document without a tenant case fails here.
#[test]
fn every_documented_sandbox_route_has_a_tenant_case() {
    let doc: Value = cove_testkit::bins::control_plane_document();
    let mut missing = Vec::new();
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !(path.starts_with("/api/sandbox")
            || path.starts_with("/api/workspace")
            || path.starts_with("/api/events"))
        {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            seen += 1;
            let m = method.to_uppercase();
            if !covered(&m, path) {
                missing.push(format!("{m} {path}"));
            }
        }
    }
    assert!(seen >= 30, "only {seen} sandbox operations documented");
    assert!(
        missing.is_empty(),
        "routes without a cross-tenant case: {missing:?}"
    );
}

#[tokio::test]
async fn cross_tenant_requests_leak_nothing() {
    let f = fx().await;
    let (alice, mallory) = (jwt("alice"), jwt("mallory"));
    let (s, sb) = f
        .create(
            &alice,
            json!({"name": "secret-box", "labels": {"team": "alpha"}}),
        )
        .await;
    assert_eq!(s, 200, "{sb}");
    let id = id_of(&sb);
    let (s, own) = f.create(&mallory, json!({"name": "mine"})).await;
    assert_eq!(s, 200, "{own}");
    for (method, template, body) in TENANT_MATRIX {
        for t in [template.to_string(), alias(template)] {
            if t.starts_with("/api/workspace") && t.ends_with("/state") {
                continue;
            }
            for target in [id.as_str(), "secret-box"] {
                let path = t
                    .replace("{sandboxIdOrName}", target)
                    .replace("{sandboxId}", target)
                    .replace("{isPublic}", "true")
                    .replace("{interval}", "1")
                    .replace("{ttlMinutes}", "1")
                    .replace("{port}", "3000")
                    .replace("{token}", "anytoken");
                let body = body.map(|b| serde_json::from_str::<Value>(b).unwrap());
                let (s, v) = f.call(method, &path, &mallory, body).await;
                let expected: &[u16] = if path.ends_with("/state") {
                    &[401]
                } else {
                    &[403, 404]
                };
                assert!(expected.contains(&s), "{method} {path}: {s} {v}");
                // The function's own refusal, not a router's 404 ("Cannot GET ..."): a
                // documented route that is not routed fails here.
                let message = match s {
                    401 => "Invalid credentials".to_owned(),
                    _ => format!("Sandbox with ID or name {target} not found"),
                };
                assert_eq!(v["message"], message, "{method} {path}: {s} {v}");
                assert!(
                    v.as_object().unwrap().keys().all(|k| {
                        [
                            "error",
                            "message",
                            "path",
                            "source",
                            "statusCode",
                            "timestamp",
                            "code",
                        ]
                        .contains(&k.as_str())
                    }),
                    "{v}"
                );
                let text = v["message"].to_string();
                assert!(
                    !text.contains("alpha") && !text.contains(f.runner.id.as_str()),
                    "{method} {path} leaked: {v}"
                );
            }
        }
    }
    // Her own list never shows Alice's sandbox.
    let (_, list) = f.call("GET", "/api/sandbox", &mallory, None).await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [own["id"].as_str().unwrap()]);
    // Nothing changed for Alice.
    let (s, v) = f
        .call("GET", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!(
        (s, v["state"].as_str(), v["public"].as_bool()),
        (200, Some("started"), Some(false))
    );
    assert_eq!(v["labels"], json!({"team": "alpha"}));
    assert_eq!(v["autoStopInterval"], 15);
    assert_eq!(f.runner_state(&id).await, "started");
    for (t, i) in [(&alice, id), (&mallory, id_of(&own))] {
        let (s, _) = f
            .call("DELETE", &format!("/api/sandbox/{i}"), t, None)
            .await;
        assert_eq!(s, 200);
    }
}

/// `GET /api/events/sandboxes`: the caller's organization's events after a cursor, rendered as
/// `GET /api/sandbox/{id}` renders the sandbox; nothing of another organization's; refusals.
#[tokio::test]
async fn events_follow_the_organizations_sandboxes_only() {
    let f = fx().await;
    let (alice, mallory) = (jwt("alice"), jwt("mallory"));
    let (s, start) = f.call("GET", "/api/events/sandboxes", &alice, None).await;
    assert_eq!(s, 200, "{start}");
    assert_eq!(start["events"], json!([]), "no history without `after`");
    let from = start["cursor"].as_str().unwrap().to_owned();
    let (_, mallory_start) = f.call("GET", "/api/events/sandboxes", &mallory, None).await;
    let mallory_from = mallory_start["cursor"].as_str().unwrap().to_owned();

    let (s, sb) = f.create(&alice, json!({"name": "watched"})).await;
    assert_eq!(s, 200, "{sb}");
    let id = id_of(&sb);
    let (s, _) = f
        .call("POST", &format!("/api/sandbox/{id}/stop"), &alice, None)
        .await;
    assert_eq!(s, 200);
    let (s, page) = f
        .call(
            "GET",
            &format!("/api/events/sandboxes?after={from}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(s, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"sandbox.created"), "{names:?}");
    assert!(
        names.contains(&"sandbox.desired-state.updated"),
        "{names:?}"
    );
    let created = &events[0]["data"];
    assert_eq!(created["id"], id.as_str());
    assert_eq!(created["name"], "watched");
    assert_eq!(created["toolboxProxyUrl"], format!("http://{HOST}/toolbox"));
    let stopped = events
        .iter()
        .filter(|e| e["event"] == "sandbox.state.updated")
        .find(|e| e["data"]["newState"] == "stopped")
        .unwrap_or_else(|| panic!("no state update to stopped: {events:?}"));
    assert_eq!(stopped["data"]["sandbox"]["id"], id.as_str());
    assert!(stopped["data"]["oldState"].is_string());
    // The sandbox as GET renders it now.
    let (_, now) = f
        .call("GET", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!(stopped["data"]["sandbox"]["state"], now["state"]);
    let desired = events
        .iter()
        .find(|e| e["event"] == "sandbox.desired-state.updated")
        .unwrap();
    assert_eq!(desired["data"]["newDesiredState"], "stopped");
    assert_eq!(desired["data"]["oldDesiredState"], "started");
    let cursors: Vec<&str> = events
        .iter()
        .map(|e| e["cursor"].as_str().unwrap())
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] <= w[1]), "{cursors:?}");
    assert_eq!(page["cursor"], *cursors.last().unwrap());

    // Read on from the last cursor (percent-encoded: it holds `#`): nothing new; `limit`
    // bounds the page.
    let last = page["cursor"].as_str().unwrap();
    let (s, rest) = f
        .call(
            "GET",
            &format!("/api/events/sandboxes?after={}", last.replace('#', "%23")),
            &alice,
            None,
        )
        .await;
    assert_eq!(
        (s, rest["events"].clone(), rest["cursor"].as_str()),
        (200, json!([]), Some(last))
    );
    let (_, one) = f
        .call(
            "GET",
            &format!("/api/events/sandboxes?after={from}&limit=1"),
            &alice,
            None,
        )
        .await;
    assert_eq!(one["events"].as_array().unwrap().len(), 1, "{one}");

    // Another organization sees none of them, from the same or its own cursor.
    for after in [from.as_str(), mallory_from.as_str(), "0000000000000"] {
        let (s, v) = f
            .call(
                "GET",
                &format!("/api/events/sandboxes?after={after}"),
                &mallory,
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert!(!v.to_string().contains(&id), "{v}");
    }

    // Malformed cursors and limits: 400; no credentials: 401.
    for q in [
        "after=yesterday",
        "after=1700000000000%23x",
        "after=",
        "limit=0",
        "limit=501",
    ] {
        let (s, v) = f
            .call("GET", &format!("/api/events/sandboxes?{q}"), &alice, None)
            .await;
        assert_eq!(s, 400, "{q}: {v}");
    }
    let resp = sandboxes::handle(
        &f.env,
        &f.settings,
        request(
            "GET",
            &format!("/api/events/sandboxes?after={from}"),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn api_keys_need_sandbox_permissions() {
    let f = fx().await;
    let alice = jwt("alice");
    let org = f.org_of("alice").await;
    let (s, sb) = f.create(&alice, json!({})).await;
    assert_eq!(s, 200, "{sb}");
    let id = id_of(&sb);
    // A read-only key (no sandbox permissions) may read but not change.
    let generated = cove_store::keys::generate().unwrap();
    let now = cove_api_types::time::now_rfc3339();
    f.env
        .store
        .api_keys()
        .create(&cove_store::api_keys::ApiKeyRecord {
            organization_id: org.clone(),
            user_id: UserId::parse("alice").unwrap(),
            name: "ro".into(),
            key_hash: generated.hash.clone(),
            key_prefix: generated.prefix.clone(),
            key_suffix: generated.suffix.clone(),
            permissions: vec![],
            created_at: now,
            expires_at: None,
            last_used_at: None,
            version: 1,
        })
        .await
        .unwrap();
    let key = generated.value;
    let (s, _) = f
        .call("GET", &format!("/api/sandbox/{id}"), &key, None)
        .await;
    assert_eq!(s, 200);
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/stop"), &key, None)
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (403, Some("Missing required permission: write:sandboxes"))
    );
    let (s, _) = f
        .call("DELETE", &format!("/api/sandbox/{id}"), &key, None)
        .await;
    assert_eq!(s, 403);
    let (s, _) = f.create(&key, json!({})).await;
    assert_eq!(s, 403);
    let (s, _) = f
        .call("DELETE", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!(s, 200);
}

/// `POST /sandbox/{id}/network-settings` (issue 16): validated as on create, a started sandbox's
/// runner gets the policy as a new generation of the same container, a stopped one keeps it for
/// its next start, a sandbox made without a network cannot be given one.
#[tokio::test]
async fn network_settings_push_a_new_generation_to_the_same_container() {
    let f = fx().await;
    let alice = jwt("alice");
    let (s, sb) = f.create(&alice, json!({"name": "fenced"})).await;
    assert_eq!(s, 200, "{sb}");
    let id = id_of(&sb);
    let before = f.agent.client().get_sandbox(&id).await.unwrap();
    let path = format!("/api/sandbox/{id}/network-settings");
    let post = |body: Value| f.call("POST", &path, &alice, Some(body));

    let (s, v) = post(json!({"networkAllowList": "198.51.100.7, 10.0.0.0/8"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["networkAllowList"], "198.51.100.7/32,10.0.0.0/8");
    assert_eq!(
        (v["state"].as_str(), v["networkBlockAll"].as_bool()),
        (Some("started"), Some(false))
    );
    let after = f.agent.client().get_sandbox(&id).await.unwrap();
    assert_eq!(after.generation, before.generation + 1);
    assert_eq!(
        after.container_id, before.container_id,
        "the container stays"
    );
    assert_eq!(f.runner_state(&id).await, "started");

    // Block-all replaces the allow-list; turning it off restores general access.
    let (s, v) = post(json!({"networkBlockAll": true})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["networkBlockAll"].as_bool(),
            v["networkAllowList"].is_null()
        ),
        (Some(true), true)
    );
    let (s, v) = post(json!({"networkBlockAll": false})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["networkBlockAll"], false);
    let now = f.agent.client().get_sandbox(&id).await.unwrap();
    assert_eq!(
        (now.generation, now.container_id),
        (before.generation + 3, before.container_id)
    );

    // Bad input: 400 envelopes, nothing changed.
    for bad in [
        json!({"networkBlockAll": true, "networkAllowList": "10.0.0.0/8"}),
        json!({"networkAllowList": "1.0.0.0/8,2.0.0.0/8,3.0.0.0/8,4.0.0.0/8,5.0.0.0/8,6.0.0.0/8"}),
        json!({"networkAllowList": "10.0.0.0/33"}),
        json!({"networkAllowList": "10.0.0.0/8", "networkDenyList": "10.0.0.0/8"}),
        json!({"domainAllowList": "exa mple.com"}),
        json!({"domainAllowList": "*.*.example.com"}),
        json!({"domainAllowList": "a.test", "domainDenyList": "A.test"}),
        json!({"networkBlockAll": true, "domainDenyList": "a.test"}),
        json!({"domainAllowList": vec!["a.test"; 51].join(",")}),
        json!({"networkBlockAll": "yes"}),
        json!([1, 2]),
    ] {
        let (s, v) = post(bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    // Empty, malformed and oversized bodies: 400 envelopes too (checked by `call`).
    let huge = format!("{{\"domainDenyList\": \"{}\"}}", "a".repeat(2 << 20));
    for raw in ["", "{", "{\"networkAllowList\": ", huge.as_str()] {
        let call =
            Call::simple("POST", &path, Some(alice.as_str()), None, Some(raw)).header("host", HOST);
        let resp = sandboxes::handle(&f.env, &f.settings, call.to_request()).await;
        let (s, v) = Reply::from_response(resp).checked(&call);
        assert!(s == 400 || s == 413, "{:.40}: {s} {v}", raw);
    }
    assert_eq!(
        f.agent.client().get_sandbox(&id).await.unwrap().generation,
        before.generation + 3
    );

    // Domain lists: normalised, stored and carried to the runner in the spec.
    let (s, v) = post(
        json!({"domainAllowList": "Allowed.test,*.wild.test", "domainDenyList": "denied.test"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["domainAllowList"], "allowed.test,*.wild.test");
    assert_eq!(v["domainDenyList"], "denied.test", "{v}");
    let got = f
        .call("GET", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!(got.1["domainDenyList"], "denied.test", "{:?}", got.1);
    let (_, all) = f.call("GET", "/api/sandbox", &alice, None).await;
    let item = all["items"]
        .as_array()
        .and_then(|v| v.iter().find(|i| i["id"] == id.as_str()));
    assert_eq!(
        item.map(|i| i["domainDenyList"].clone()),
        Some(json!("denied.test")),
        "{all}"
    );
    let spec = f.agent.client().get_sandbox(&id).await.unwrap();
    assert_eq!(spec.generation, before.generation + 4);
    let rec = f
        .env
        .store
        .sandboxes()
        .get(&sandbox_id(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.domain_deny_list.as_deref(), Some("denied.test"));
    let log = f
        .call(
            "GET",
            &format!("/api/sandbox/{id}/network-log"),
            &alice,
            None,
        )
        .await;
    assert_eq!(log.0, 200, "{:?}", log.1);
    assert!(log.1["entries"].is_array(), "{:?}", log.1);
    // Block-all clears them.
    let (s, v) = post(json!({"networkBlockAll": true})).await;
    assert_eq!((s, v["domainAllowList"].is_null()), (200, true), "{v}");
    assert!(v["domainDenyList"].is_null(), "{v}");
    let (s, _) = post(json!({"networkBlockAll": false})).await;
    assert_eq!(s, 200);

    // Stopped: stored, pushed with the next start.
    let (s, _) = f
        .call("POST", &format!("/api/sandbox/{id}/stop"), &alice, None)
        .await;
    assert_eq!(s, 200);
    let stopped = f.agent.client().get_sandbox(&id).await.unwrap().generation;
    let (s, v) = post(json!({"networkDenyList": "192.0.2.0/24"})).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("stopped")), "{v}");
    assert_eq!(
        (
            v["networkDenyList"].as_str(),
            v["networkAllowList"].is_null()
        ),
        (Some("192.0.2.0/24"), true),
        "{v}"
    );
    assert_eq!(
        f.agent.client().get_sandbox(&id).await.unwrap().generation,
        stopped
    );
    let (s, _) = f
        .call("POST", &format!("/api/sandbox/{id}/start"), &alice, None)
        .await;
    assert_eq!(s, 200);
    let rec = f
        .env
        .store
        .sandboxes()
        .get(&sandbox_id(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.network_deny_list.as_deref(), Some("192.0.2.0/24"));

    // Made without a network: it cannot be given one at run time.
    let (s, nb) = f.create(&alice, json!({"networkBlockAll": true})).await;
    assert_eq!(s, 200, "{nb}");
    let (s, v) = f
        .call(
            "POST",
            &format!("/api/sandbox/{}/network-settings", id_of(&nb)),
            &alice,
            Some(json!({"networkBlockAll": false})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
}
