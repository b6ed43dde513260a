//! `/api/snapshots` in-process against the real table (dynoxide by default): validation with its
//! status and envelope, names, quota, paging, visibility across organizations, permissions,
//! state changes, content-addressed reuse, logs, and sandbox admission from snapshots. The
//! lifecycle sweep (which pulls/builds on runners) is not involved: states it would write are
//! written through the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cove_api_types::ids::{OrganizationId, RunnerId, SnapshotId};
use cove_api_types::snapshots::SnapshotState;
use cove_edge::config::SandboxSettings;
use cove_store::snapshots::SnapshotPatch;
use cove_testkit::Harness;
use cove_testkit::api::{Api, Call};
use cove_testkit::inprocess::InProcess;
use cove_testkit::org::{Tenant, tenant};
use serde_json::{Value, json};
use snapshots::SnapshotSettings;

const REGISTRY: &str = "127.0.0.1:5999";
const ALL: &[&str] = &["write:snapshots", "delete:snapshots", "write:sandboxes"];

struct Fx {
    h: Harness,
    api: InProcess,
}

async fn fx() -> Fx {
    let h = Harness::new().await;
    let settings = SnapshotSettings {
        default_snapshot: "cove-sandbox-base:latest".into(),
        internal_registry: REGISTRY.into(),
        jobs: <cove_snapshot_jobs::JobSettings as cove_edge::config::Settings>::from_lookup(|n| {
            (n == "internal_registry").then(|| REGISTRY.to_owned())
        }),
    };
    let sandbox_settings = SandboxSettings::default();
    let snap = move |env: cove_edge::Env, req| {
        let s = settings.clone();
        async move { snapshots::handle(&env, &s, req).await }
    };
    let api = InProcess::new(h.env.clone())
        .route("/api/snapshots/...", snap.clone())
        .route("/api/admin/snapshots/...", snap)
        .route("/api/sandbox/...", move |env, req| {
            let s = sandbox_settings.clone();
            async move { sandboxes::handle(&env, &s, req).await }
        })
        .route("/api/organizations/...", |env, req| async move {
            organizations::handle(&env, req).await
        })
        .route("/api/api-keys/...", |env, req| async move {
            api_keys::handle(&env, req).await
        });
    Fx { h, api }
}

impl Fx {
    async fn send(&self, call: Call) -> (u16, Value) {
        self.api.call(call.header("host", "localhost:3000")).await
    }

    async fn create(&self, t: &Tenant, body: Value) -> (u16, Value) {
        self.send(Call::post("/api/snapshots").token(&t.key).json(&body))
            .await
    }

    async fn get(&self, t: &Tenant, id: &str) -> (u16, Value) {
        self.send(Call::get(format!("/api/snapshots/{id}")).token(&t.key))
            .await
    }

    /// What the sweep would write: the snapshot moves to `state`.
    async fn force_state(&self, id: &str, state: SnapshotState, patch: SnapshotPatch) {
        let repo = self.h.env.store.snapshots();
        let sid = SnapshotId::parse(id).unwrap();
        let rec = repo.get(&sid).await.unwrap().unwrap();
        repo.set_state(&sid, rec.version, state, patch)
            .await
            .unwrap();
    }
}

fn image(name: &str, img: &str) -> Value {
    json!({"name": name, "imageName": img})
}

fn build(name: &str, dockerfile: &str) -> Value {
    json!({"name": name, "buildInfo": {"dockerfileContent": dockerfile, "contextHashes": ["bbb", "aaa"]}})
}

#[tokio::test]
async fn validation_answers_daytonas_errors() {
    let f = fx().await;
    let t = tenant(&f.api, ALL).await;
    let big = format!("FROM alpine:3\n{}", "RUN true\n".repeat(8000));
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            image("s1", "python:latest"),
            400,
            "Images with tag \":latest\" are not allowed",
        ),
        (
            image("s1", "python"),
            400,
            "Image name must include a tag (e.g., ubuntu:22.04) or digest (@sha256:...)",
        ),
        (image("s1", "Python:3.12"), 400, "Invalid image name format"),
        (
            image("bad name", "python:3.12"),
            400,
            "Invalid snapshot name format",
        ),
        (
            json!({"name": "s1"}),
            400,
            "Must specify either imageName or buildInfo",
        ),
        (
            json!({"name": "s1", "imageName": "a:1", "buildInfo": {"dockerfileContent": "FROM a:1"}}),
            400,
            "Cannot specify both imageName and buildInfo",
        ),
        (
            json!({"name": "s1", "buildInfo": {"dockerfileContent": big}}),
            400,
            "Dockerfile content exceeds the maximum size of 65536 bytes",
        ),
        (
            json!({"name": "s1", "imageName": "a:1", "cpu": 64}),
            403,
            "CPU request 64 exceeds maximum allowed per sandbox (4).",
        ),
        (
            json!({"name": "s1", "imageName": "a:1", "disk": 11}),
            403,
            "Disk request 11GB exceeds maximum allowed per sandbox (10GB).",
        ),
        (
            image("s1", "alpine@sha256:abc"),
            400,
            "Invalid digest format. Must be image@sha256:64_hex_characters",
        ),
        (
            json!({"name": "s1", "imageName": "a:1", "memory": 0}),
            400,
            "Memory must be a positive integer",
        ),
        (
            json!({"name": "s1", "imageName": "a:1", "gpu": 1}),
            400,
            "GPU snapshots are not available",
        ),
        (
            image("cove-sandbox-base:latest", "a:1"),
            409,
            "Snapshot with name \"cove-sandbox-base:latest\" already exists for this organization",
        ),
    ];
    for (body, status, msg) in cases {
        let (s, v) = f.create(&t, body.clone()).await;
        assert_eq!(s, status, "{body}: {v}");
        let m = v["message"].as_str().unwrap();
        assert!(m.starts_with(msg), "{body}: {m}");
        assert_eq!(v["statusCode"], status);
        assert_eq!(v["path"], "/api/snapshots");
    }
    // Nothing was written by any refusal.
    let (s, list) = f.send(Call::get("/api/snapshots").token(&t.key)).await;
    assert_eq!(s, 200);
    assert_eq!(list["total"], 1, "only the default snapshot: {list}");

    let (s, v) = f.create(&t, image("s1", "python:3.12-slim")).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("pending")), "{v}");
    assert_eq!(
        (v["mem"].as_i64(), v["cpu"].as_i64(), v["disk"].as_i64()),
        (Some(1), Some(1), Some(3))
    );
    for k in [
        "size",
        "entrypoint",
        "errorReason",
        "lastUsedAt",
        "sourceSandboxId",
    ] {
        assert!(v[k].is_null(), "{k} null and present: {v}");
        assert!(v.as_object().unwrap().contains_key(k), "{k}");
    }
    let (s, v) = f.create(&t, image("s1", "python:3.13")).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(
        v["message"],
        "Snapshot with name \"s1\" already exists for this organization"
    );
}

#[tokio::test]
async fn quota_counts_live_snapshots_only() {
    let f = fx().await;
    let t = tenant(&f.api, ALL).await;
    let org = OrganizationId::parse(&t.org).unwrap();
    let mut rec = f.h.env.store.orgs().get(&org).await.unwrap().unwrap();
    rec.quota.snapshot_quota = 2;
    rec.version += 1;
    f.h.env.store.orgs().update(&rec).await.unwrap();

    let (_, a) = f.create(&t, image("q1", "a:1")).await;
    assert_eq!(f.create(&t, image("q2", "a:2")).await.0, 200);
    let (s, v) = f.create(&t, image("q3", "a:3")).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["message"], "Snapshot quota exceeded. Maximum allowed: 2");
    let (s, usage) = f
        .send(Call::get(format!("/api/organizations/{}/usage", t.org)).token(&t.user.jwt))
        .await;
    assert_eq!(s, 200, "{usage}");
    assert_eq!(
        (
            usage["currentSnapshotUsage"].as_i64(),
            usage["totalSnapshotQuota"].as_i64()
        ),
        (Some(2), Some(2))
    );
    // A failed snapshot does not count.
    let id = a["id"].as_str().unwrap();
    f.force_state(
        id,
        SnapshotState::Error,
        SnapshotPatch {
            error_reason: Some("pull failed".into()),
            ..Default::default()
        },
    )
    .await;
    let (_, got) = f.get(&t, id).await;
    assert_eq!(
        (got["state"].as_str(), got["errorReason"].as_str()),
        (Some("error"), Some("pull failed"))
    );
    assert_eq!(f.create(&t, image("q3", "a:3")).await.0, 200);
}

#[tokio::test]
async fn list_pages_sorts_and_filters() {
    let f = fx().await;
    let t = tenant(&f.api, ALL).await;
    for n in ["c-snap", "a-snap", "e-snap", "b-snap", "d-other"] {
        assert_eq!(f.create(&t, image(n, "a:1")).await.0, 200);
    }
    let list = |q: &str| f.send(Call::get(format!("/api/snapshots?{q}")).token(&t.key));
    let (s, v) = list("page=2&limit=2&sort=name&order=asc").await;
    assert_eq!(s, 200, "{v}");
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    // Own snapshots first, general ones (the default snapshot) last:
    // a-snap b-snap | c-snap d-other | e-snap cove-sandbox-base:latest
    assert_eq!(names, ["c-snap", "d-other"]);
    assert_eq!(
        (
            v["total"].as_i64(),
            v["page"].as_i64(),
            v["totalPages"].as_i64()
        ),
        (Some(6), Some(2), Some(3))
    );
    let (_, v) = list("name=SNAP&sort=name&order=desc").await;
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["e-snap", "c-snap", "b-snap", "a-snap"]);
    let (_, v) = list("sort=createdAt&order=asc").await;
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    let created = ["c-snap", "a-snap", "e-snap", "b-snap", "d-other"];
    assert_eq!(names[..5], created, "own ones oldest first, general last");
    assert_eq!(names[5], "cove-sandbox-base:latest");
    // Never used sorts last whatever the order.
    let b = f.get(&t, "b-snap").await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sid = SnapshotId::parse(&b).unwrap();
    let repo = f.h.env.store.snapshots();
    repo.touch_last_used(&sid, "2026-01-01T00:00:00.000Z")
        .await
        .unwrap();
    for order in ["asc", "desc"] {
        let (_, v) = list(&format!("order={order}")).await;
        assert_eq!(v["items"][0]["name"], "b-snap", "{order}: {v}");
    }
    assert_eq!(list("limit=500").await.0, 400);
    assert_eq!(list("sort=size").await.0, 400);
    assert_eq!(list("page=0").await.0, 400);
}

#[tokio::test]
async fn visibility_by_id_name_general_and_other_orgs() {
    let f = fx().await;
    let (a, b) = (tenant(&f.api, ALL).await, tenant(&f.api, ALL).await);
    let (_, snap) = f.create(&a, image("mine", "a:1")).await;
    let id = snap["id"].as_str().unwrap().to_owned();
    assert_eq!(f.get(&a, &id).await.1["name"], "mine");
    assert_eq!(f.get(&a, "mine").await.1["id"], id.as_str());
    // The default snapshot: general, active, visible by name.
    let (s, d) = f.get(&a, "cove-sandbox-base:latest").await;
    assert_eq!(
        (s, d["general"].as_bool(), d["state"].as_str()),
        (200, Some(true), Some("active"))
    );
    // Another organization's snapshot does not exist for B.
    for key in [id.as_str(), "mine"] {
        let (s, v) = f.get(&b, key).await;
        assert_eq!(s, 404, "{v}");
        assert_eq!(v["message"], format!("Snapshot {key} not found"));
        let (s, v) = f
            .send(
                Call::post("/api/sandbox")
                    .token(&b.key)
                    .json(&json!({"snapshot": key})),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["message"], format!("Snapshot {key} not found"));
        assert_eq!(
            f.send(Call::delete(format!("/api/snapshots/{key}")).token(&b.key))
                .await
                .0,
            404
        );
    }
    let (_, bl) = f.send(Call::get("/api/snapshots").token(&b.key)).await;
    assert_eq!(bl["total"], 1);

    // Only a system admin makes it general; then B sees it (by id and name) but can't change it.
    let general = json!({"general": true});
    let path = format!("/api/snapshots/{id}/general");
    let (s, _) = f
        .send(Call::patch(&path).token(&a.key).json(&general))
        .await;
    assert_eq!(s, 403);
    let admin = f.h.admin("root-snap").await;
    let (s, v) = f
        .send(
            Call::patch(format!("/api/admin/snapshots/{id}/general"))
                .token(&admin)
                .json(&general),
        )
        .await;
    assert_eq!((s, v["general"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(f.get(&b, &id).await.0, 200);
    assert_eq!(f.get(&b, "mine").await.1["id"], id.as_str());
    let (_, bl) = f.send(Call::get("/api/snapshots").token(&b.key)).await;
    assert_eq!(bl["total"], 2, "{bl}");
    assert_eq!(
        f.send(Call::delete(format!("/api/snapshots/{id}")).token(&b.key))
            .await
            .0,
        404
    );
    let (_, al) = f.send(Call::get("/api/snapshots").token(&a.key)).await;
    assert_eq!(al["total"], 2, "listed once for its own organization: {al}");
    let (s, v) = f
        .send(Call::delete(format!("/api/snapshots/{id}")).token(&a.key))
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (403, Some("You cannot delete a general snapshot"))
    );
}

#[tokio::test]
async fn permissions_gate_writes_and_deletes() {
    let f = fx().await;
    let reader = tenant(&f.api, &["write:sandboxes"]).await;
    let (s, v) = f.create(&reader, image("p", "a:1")).await;
    assert_eq!(s, 403, "{v}");
    // Bad bodies from a key without the permission are refused for the permission first.
    let (s, _) = f
        .send(
            Call::post("/api/snapshots")
                .token(&reader.key)
                .body("{nope", "application/json"),
        )
        .await;
    assert_eq!(s, 403);
    let writer = tenant(&f.api, &["write:snapshots"]).await;
    let (s, v) = f.create(&writer, image("p", "a:1")).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = f
        .send(Call::delete("/api/snapshots/p").token(&writer.key))
        .await;
    assert_eq!(s, 403, "no delete:snapshots");
    assert_eq!(f.get(&writer, "p").await.0, 200);
    let (s, _) = f.send(Call::get("/api/snapshots").token(&reader.key)).await;
    assert_eq!(s, 200, "reading needs no permission");
    assert_eq!(f.send(Call::get("/api/snapshots")).await.0, 401);
}

#[tokio::test]
async fn activate_deactivate_toggle_and_delete() {
    let f = fx().await;
    let t = tenant(&f.api, ALL).await;
    let (_, v) = f.create(&t, image("st", "a:1")).await;
    let id = v["id"].as_str().unwrap().to_owned();
    let post = |p: &str| f.send(Call::post(format!("/api/snapshots/{id}/{p}")).token(&t.key));
    let (s, v) = post("activate").await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            400,
            Some(&*format!(
                "Snapshot {id} cannot be activated - it is in pending state"
            ))
        )
    );
    f.force_state(
        &id,
        SnapshotState::Active,
        SnapshotPatch {
            r#ref: Some("reg/x:1".into()),
            ..Default::default()
        },
    )
    .await;
    let (s, v) = post("activate").await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some(&*format!("Snapshot {id} is already active")))
    );
    assert_eq!(post("deactivate").await.0, 204);
    assert_eq!(f.get(&t, &id).await.1["state"], "inactive");
    let (s, v) = post("activate").await;
    assert_eq!((s, v["state"].as_str()), (200, Some("active")), "{v}");
    let (s, v) = f
        .send(Call::patch(format!("/api/snapshots/{id}/toggle")).token(&t.key))
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("inactive")), "{v}");
    let (s, v) = f
        .send(
            Call::patch(format!("/api/snapshots/{id}/toggle"))
                .token(&t.key)
                .json(&json!({"active": true})),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("active")), "{v}");

    // Reached a runner: delete leaves it `removing` for the sweep.
    f.force_state(
        &id,
        SnapshotState::Active,
        SnapshotPatch {
            initial_runner_id: Some(RunnerId::new_random()),
            ..Default::default()
        },
    )
    .await;
    let (s, _) = f
        .send(Call::delete(format!("/api/snapshots/{id}")).token(&t.key))
        .await;
    assert_eq!(s, 200);
    assert_eq!(f.get(&t, &id).await.1["state"], "removing");
    let removing =
        f.h.env
            .store
            .snapshots()
            .list_in_state(SnapshotState::Removing, 1000)
            .await
            .unwrap();
    assert!(removing.iter().any(|r| r.id.as_str() == id));
    // Never reached a runner: gone at once, and the name is free again.
    let (_, v) = f.create(&t, image("gone", "a:1")).await;
    let gone = v["id"].as_str().unwrap().to_owned();
    assert_eq!(
        f.send(Call::delete("/api/snapshots/gone").token(&t.key))
            .await
            .0,
        200
    );
    assert_eq!(f.get(&t, &gone).await.0, 404);
    assert_eq!(f.create(&t, image("gone", "a:1")).await.0, 200);
    // The default snapshot can't be deleted or deactivated by an organization.
    assert_eq!(
        f.send(Call::delete("/api/snapshots/cove-sandbox-base:latest").token(&t.key))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn identical_builds_are_reused_without_a_rebuild() {
    let f = fx().await;
    let t = tenant(&f.api, ALL).await;
    let dockerfile = "FROM cove-sandbox-base:latest\nRUN echo hi > /hi\n";
    let (s, first) = f.create(&t, build("b1", dockerfile)).await;
    assert_eq!(
        (s, first["state"].as_str()),
        (200, Some("pending")),
        "{first}"
    );
    let expected =
        cove_runner_api::build_ref(REGISTRY, &t.org, dockerfile, &["aaa".into(), "bbb".into()]);
    assert_eq!(first["ref"], expected.as_str());
    assert!(
        expected.starts_with(&format!("{REGISTRY}/cove-{}/daytona-", t.org)),
        "{expected}"
    );
    assert_eq!(first["buildInfo"]["snapshotRef"], expected.as_str());
    assert_eq!(first["buildInfo"]["dockerfileContent"], dockerfile);
    // Not active yet: a second identical build is pending as well.
    let (_, pending_twin) = f.create(&t, build("b2", dockerfile)).await;
    assert_eq!(pending_twin["state"], "pending");
    let id = first["id"].as_str().unwrap();
    f.force_state(
        id,
        SnapshotState::Active,
        SnapshotPatch {
            size_bytes: Some(1 << 30),
            ..Default::default()
        },
    )
    .await;
    let (_, hit) = f.create(&t, build("b3", dockerfile)).await;
    assert_eq!(
        (
            hit["state"].as_str(),
            hit["ref"].as_str(),
            hit["size"].as_f64()
        ),
        (Some("active"), Some(&*expected), Some(1.0)),
        "{hit}"
    );
    let (_, other) = f
        .create(
            &t,
            build("b4", "FROM cove-sandbox-base:latest\nRUN echo other\n"),
        )
        .await;
    assert_eq!(other["state"], "pending");
    assert_ne!(other["ref"], expected.as_str());
    // Another organization's identical build has its own ref (its own project).
    let u = tenant(&f.api, ALL).await;
    let (_, theirs) = f.create(&u, build("b1", dockerfile)).await;
    assert_eq!(theirs["state"], "pending");
    assert_ne!(theirs["ref"], expected.as_str());
}

#[tokio::test]
async fn build_logs_url_and_logs_without_a_runner() {
    let f = fx().await;
    let t = tenant(&f.api, ALL).await;
    let (_, v) = f.create(&t, image("logs", "a:1")).await;
    let id = v["id"].as_str().unwrap();
    let (s, u) = f
        .send(Call::get("/api/snapshots/logs/build-logs-url").token(&t.key))
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(
        u["url"],
        format!("http://localhost:3000/api/snapshots/{id}/build-logs")
    );
    let reply = f
        .api
        .send(Call::get(format!("/api/snapshots/{id}/build-logs?follow=true")).token(&t.key))
        .await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        String::from_utf8_lossy(&reply.body),
        "Snapshot logs is pending\n"
    );
    let other = tenant(&f.api, ALL).await;
    assert_eq!(
        f.send(Call::get(format!("/api/snapshots/{id}/build-logs")).token(&other.key))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn sandboxes_are_admitted_from_active_snapshots_only() {
    let f = fx().await;
    let t = tenant(&f.api, ALL).await;
    let (_, v) = f.create(&t, image("run-me", "python:3.12")).await;
    let id = v["id"].as_str().unwrap().to_owned();
    let create = |snapshot: &str| {
        f.send(
            Call::post("/api/sandbox")
                .token(&t.key)
                .json(&json!({"snapshot": snapshot})),
        )
    };
    for key in ["run-me", id.as_str()] {
        let (s, v) = create(key).await;
        assert_eq!(
            (s, v["message"].as_str()),
            (400, Some(&*format!("Snapshot {key} is pending"))),
            "{v}"
        );
    }
    f.force_state(
        &id,
        SnapshotState::Active,
        SnapshotPatch {
            r#ref: Some("reg/cove-x/daytona-1:daytona".into()),
            ..Default::default()
        },
    )
    .await;
    // Admitted: what remains is placement (this harness has no runner).
    let (s, v) = create("run-me").await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("No available runners")),
        "{v}"
    );
    // Sizes come from the snapshot: a snapshot bigger than the org allows is refused at admission.
    let (_, big) = f
        .create(
            &t,
            json!({"name": "big", "imageName": "a:1", "cpu": 4, "memory": 8}),
        )
        .await;
    f.force_state(
        big["id"].as_str().unwrap(),
        SnapshotState::Active,
        SnapshotPatch {
            r#ref: Some("reg/b:1".into()),
            ..Default::default()
        },
    )
    .await;
    let org = OrganizationId::parse(&t.org).unwrap();
    let mut rec = f.h.env.store.orgs().get(&org).await.unwrap().unwrap();
    rec.quota.max_cpu_per_sandbox = 2;
    rec.version += 1;
    f.h.env.store.orgs().update(&rec).await.unwrap();
    let (s, v) = create("big").await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            400,
            Some("CPU request 4 exceeds maximum allowed per sandbox (2)")
        ),
        "{v}"
    );
}

#[tokio::test]
async fn deleting_an_organization_removes_its_snapshots() {
    let f = fx().await;
    let owner = cove_testkit::org::User::unique("owner");
    cove_testkit::org::personal_org(&f.api, &owner.jwt).await;
    let team = cove_testkit::org::create_org(&f.api, &owner.jwt, "team").await;
    let key = cove_testkit::org::api_key(&f.api, &owner.jwt, Some(&team), "k", ALL).await;
    let (s, v) = f
        .send(
            Call::post("/api/snapshots")
                .token(&key)
                .json(&build("gone-with-org", "FROM a:1\n")),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let sid = SnapshotId::parse(v["id"].as_str().unwrap()).unwrap();
    let (s, v) = f
        .send(Call::delete(format!("/api/organizations/{team}")).token(&owner.jwt))
        .await;
    assert_eq!(s, 204, "{v}");
    assert!(f.h.env.store.snapshots().get(&sid).await.unwrap().is_none());
    let keys = f.h.env.store.scan_keys().await.unwrap();
    assert!(
        !keys
            .iter()
            .any(|(pk, sk)| pk.contains(sid.as_str()) || sk.contains("gone-with-org")),
        "no row or name lock left"
    );
}
