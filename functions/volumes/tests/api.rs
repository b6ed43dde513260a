//! `/api/volumes` in-process against the real table (dynoxide by default) with a simulated
//! runner: the exact `VolumeDto`, validation and Daytona's messages, names, quota and usage,
//! permissions, the tenant matrix, sandbox admission of volumes, 409 while a sandbox uses a
//! volume, and organization deletion. States the sweep would write are written through the store
//! (the sweep against real S3 servers is in `tests/on_docker.rs`); the sweep's own bookkeeping
//! (claims, deadlines, `error` as a way out) is driven here against an unreachable S3.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cove_api_types::ids::{OrganizationId, VolumeId};
use cove_api_types::volumes::VolumeState;
use cove_edge::config::SandboxSettings;
use cove_store::runners::RunnerRecord;
use cove_testkit::api::{Api, Call};
use cove_testkit::inprocess::InProcess;
use cove_testkit::org::{Tenant, tenant};
use cove_testkit::{Agent, AgentOptions, FAKE_IMAGE, Harness};
use serde_json::{Value, json};
use volumes::VolumeStorage;

const ALL: &[&str] = &[
    "read:volumes",
    "write:volumes",
    "delete:volumes",
    "write:sandboxes",
    "delete:sandboxes",
];

fn storage(endpoint: &str) -> VolumeStorage {
    VolumeStorage {
        endpoint: endpoint.into(),
        bucket: "cove".into(),
        region: "us-east-1".into(),
        access_key_id: "cove".into(),
        secret_access_key: "cove-secret".into(),
    }
}

struct Fx {
    h: Harness,
    api: InProcess,
    _agent: Agent,
}

fn app(h: &Harness, storage: VolumeStorage) -> InProcess {
    let sandbox_settings = SandboxSettings {
        default_snapshot: FAKE_IMAGE.to_owned(),
        ..SandboxSettings::default()
    };
    InProcess::new(h.env.clone())
        .route("/api/volumes/...", move |env, req| {
            let s = storage.clone();
            async move { volumes::handle(&env, &s, req).await }
        })
        .route("/api/sandbox/...", move |env, req| {
            let s = sandbox_settings.clone();
            async move { sandboxes::handle(&env, &s, req).await }
        })
        .route("/api/organizations/...", |env, req| async move {
            organizations::handle(&env, req).await
        })
        .route("/api/api-keys/...", |env, req| async move {
            api_keys::handle(&env, req).await
        })
}

async fn fx() -> Fx {
    let h = Harness::new().await;
    let token = RunnerRecord::new("runner-1", "us", &cove_api_types::time::now_rfc3339())
        .unwrap()
        .api_key;
    let agent = Agent::start(AgentOptions::fake().token(token)).unwrap();
    h.register_runner(&agent).await.unwrap();
    // Nothing listens there: the sweep's storage calls fail (bookkeeping tests).
    let api = app(&h, storage("http://127.0.0.1:9"));
    Fx {
        h,
        api,
        _agent: agent,
    }
}

impl Fx {
    async fn send(&self, t: &Tenant, call: Call) -> (u16, Value) {
        self.api.call(call.token(&t.key)).await
    }

    async fn create(&self, t: &Tenant, name: &str) -> (u16, Value) {
        self.send(t, Call::post("/api/volumes").json(&json!({ "name": name })))
            .await
    }

    /// What the sweep would write: the volume moves to `state`.
    async fn force(&self, id: &str, state: VolumeState) {
        let repo = self.h.env.store.volumes();
        let vid = VolumeId::parse(id).unwrap();
        let rec = repo.get(&vid).await.unwrap().unwrap();
        repo.set_state(&vid, rec.version, state, None)
            .await
            .unwrap();
    }

    async fn ready(&self, t: &Tenant, name: &str) -> String {
        let (s, v) = self.create(t, name).await;
        assert_eq!(s, 200, "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        self.force(&id, VolumeState::Creating).await;
        self.force(&id, VolumeState::Ready).await;
        id
    }

    async fn sandbox(&self, t: &Tenant, volumes: Value) -> (u16, Value) {
        self.send(
            t,
            Call::post("/api/sandbox").json(&json!({ "volumes": volumes })),
        )
        .await
    }
}

#[tokio::test]
async fn create_answers_the_exact_dto_and_reads_find_it() {
    let f = fx().await;
    let t = tenant(&f.api, ALL).await;
    let (s, v) = f.create(&t, "vol1").await;
    assert_eq!(s, 200, "{v}");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "createdAt",
            "errorReason",
            "id",
            "lastUsedAt",
            "name",
            "organizationId",
            "state",
            "updatedAt"
        ]
    );
    assert_eq!(v["state"], "pending_create");
    assert_eq!(v["organizationId"], t.org.as_str());
    assert!(v["errorReason"].is_null() && v["lastUsedAt"].is_null());
    assert!(v["createdAt"].as_str().unwrap().ends_with('Z'));
    let id = v["id"].as_str().unwrap();
    let (s, got) = f.send(&t, Call::get(format!("/api/volumes/{id}"))).await;
    assert_eq!((s, &got), (200, &v));
    let (s, by_name) = f.send(&t, Call::get("/api/volumes/by-name/vol1")).await;
    assert_eq!((s, by_name["id"].as_str()), (200, Some(id)));
    let (s, e) = f.send(&t, Call::get("/api/volumes/by-name/nope")).await;
    assert_eq!(
        (s, e["message"].as_str()),
        (404, Some("Volume with name nope not found"))
    );
    let (s, list) = f.send(&t, Call::get("/api/volumes")).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn validation_names_and_quota_follow_daytona() {
    let f = fx().await;
    let t = tenant(&f.api, ALL).await;
    assert_eq!(f.create(&t, "dup").await.0, 200);
    let (s, v) = f.create(&t, "dup").await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("Volume with name dup already exists"))
    );
    for bad in ["", "a/b", " x"] {
        assert_eq!(f.create(&t, bad).await.0, 400, "{bad:?}");
    }
    let (s, _) = f
        .send(&t, Call::post("/api/volumes").json(&json!({"nom": 1})))
        .await;
    assert_eq!(s, 400);
    let (s, _) = f
        .send(&t, Call::get("/api/volumes?includeDeleted=maybe"))
        .await;
    assert_eq!(s, 400);

    let org = OrganizationId::parse(&t.org).unwrap();
    let mut rec = f.h.env.store.orgs().get(&org).await.unwrap().unwrap();
    rec.quota.volume_quota = 2;
    rec.version += 1;
    f.h.env.store.orgs().update(&rec).await.unwrap();
    assert_eq!(f.create(&t, "q2").await.0, 200);
    let (s, v) = f.create(&t, "q3").await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("Volume quota exceeded. Maximum allowed: 2"))
    );
    let usage = Call::get(format!("/api/organizations/{}/usage", t.org)).token(&t.user.jwt);
    let (s, u) = f.api.call(usage).await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(
        (
            u["currentVolumeUsage"].as_i64(),
            u["totalVolumeQuota"].as_i64()
        ),
        (Some(2), Some(2))
    );

    // Without object storage: 503.
    let call = Call::post("/api/volumes")
        .token(&t.key)
        .json(&json!({"name": "x"}));
    let resp = volumes::handle(&f.h.env, &storage(""), call.to_request()).await;
    let reply = cove_testkit::api::Reply::from_response(resp);
    reply.assert_envelope(503, "/api/volumes");
    assert_eq!(reply.json()["message"], "Object storage is not configured");
}

#[tokio::test]
async fn permissions_and_tenants() {
    let f = fx().await;
    let owner = tenant(&f.api, ALL).await;
    let id = f.ready(&owner, "mine").await;
    let other = tenant(&f.api, ALL).await;
    // Another organization's volume does not exist for it, by id or by name.
    for call in [
        Call::get(format!("/api/volumes/{id}")),
        Call::get("/api/volumes/by-name/mine"),
        Call::delete(format!("/api/volumes/{id}")),
    ] {
        let (s, _) = f.send(&other, call).await;
        assert_eq!(s, 404);
    }
    let (_, list) = f.send(&other, Call::get("/api/volumes")).await;
    assert_eq!(list, json!([]));
    let (s, v) = f
        .sandbox(
            &other,
            json!([{"volumeId": id, "mountPath": "/home/daytona/v"}]),
        )
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some(&*format!("Volume {id} not found")))
    );
    // The other org may take the same name.
    assert_eq!(f.create(&other, "mine").await.0, 200);

    let user = f.h.jwt(&owner.user.sub);
    for (perm, call, needed) in [
        (
            "read:volumes",
            Call::post("/api/volumes").json(&json!({"name": "p"})),
            "write:volumes",
        ),
        ("write:volumes", Call::get("/api/volumes"), "read:volumes"),
        (
            "read:volumes",
            Call::delete(format!("/api/volumes/{id}")),
            "delete:volumes",
        ),
    ] {
        let key = cove_testkit::org::api_key(&f.api, &user, None, "k", &[perm]).await;
        let (s, v) = f.api.call(call.token(&key)).await;
        assert_eq!(s, 403, "{needed}: {v}");
        let _ = f
            .api
            .call(Call::delete("/api/api-keys/k").token(&user))
            .await;
    }
}

#[tokio::test]
async fn sandboxes_admit_ready_volumes_and_delete_waits_for_them() {
    let f = fx().await;
    let t = tenant(&f.api, ALL).await;
    let id = f.ready(&t, "data").await;
    let (_, pending) = f.create(&t, "pending").await;
    let bad: Vec<(Value, &str)> = vec![
        (json!([{"volumeId": id, "mountPath": "rel"}]), "absolute"),
        (json!([{"volumeId": id, "mountPath": "/"}]), "root"),
        (json!([{"volumeId": id, "mountPath": "/proc"}]), "system"),
        (
            json!([{"volumeId": id, "mountPath": "/home/daytona/.."}]),
            "'..'",
        ),
        (
            json!([{"volumeId": id, "mountPath": "/a"}, {"volumeId": "data", "mountPath": "/a"}]),
            "Duplicate",
        ),
        (
            json!([{"volumeId": id, "mountPath": "/a", "subpath": "../x"}]),
            "subpath",
        ),
        (
            json!([{"volumeId": "nope", "mountPath": "/a"}]),
            "Volume nope not found",
        ),
        (
            json!([{"volumeId": pending["id"], "mountPath": "/a"}]),
            "not in a ready state",
        ),
    ];
    for (vols, msg) in bad {
        let (s, v) = f.sandbox(&t, vols.clone()).await;
        assert_eq!(s, 400, "{vols}: {v}");
        assert!(v["message"].as_str().unwrap().contains(msg), "{vols}: {v}");
    }
    let (_, list) = f.send(&t, Call::get("/api/sandbox")).await;
    assert_eq!(list["items"], json!([]), "a refused create left a sandbox");

    // By name, with a subpath; the sandbox shows it with the volume's id.
    let (s, sb) = f
        .sandbox(
            &t,
            json!([{"volumeId": "data", "mountPath": "/home/daytona/v/", "subpath": "u/a"}]),
        )
        .await;
    assert_eq!(s, 200, "{sb}");
    assert_eq!(
        sb["volumes"],
        json!([{"volumeId": id, "mountPath": "/home/daytona/v", "subpath": "u/a"}])
    );
    let (_, vol) = f.send(&t, Call::get(format!("/api/volumes/{id}"))).await;
    assert!(vol["lastUsedAt"].is_string(), "{vol}");

    let (s, v) = f.send(&t, Call::delete(format!("/api/volumes/{id}"))).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (409, Some("Volume is in use by one or more sandboxes"))
    );
    let (s, v) = f
        .send(
            &t,
            Call::delete(format!("/api/volumes/{}", pending["id"].as_str().unwrap())),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let sid = sb["id"].as_str().unwrap();
    let (s, _) = f
        .send(&t, Call::delete(format!("/api/sandbox/{sid}")))
        .await;
    assert_eq!(s, 200);
    wait_destroyed(&f, &t, sid).await;
    let (s, v) = f.send(&t, Call::delete(format!("/api/volumes/{id}"))).await;
    assert_eq!(s, 200, "{v}");
    let (_, vol) = f.send(&t, Call::get(format!("/api/volumes/{id}"))).await;
    assert_eq!(vol["state"], "pending_delete");
    // Gone from the list once deleted, but shown with includeDeleted; the name is free again.
    f.force(&id, VolumeState::Deleting).await;
    f.force(&id, VolumeState::Deleted).await;
    let (_, list) = f.send(&t, Call::get("/api/volumes")).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|v| v["id"] != id.as_str())
    );
    let (_, all) = f
        .send(&t, Call::get("/api/volumes?includeDeleted=true"))
        .await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == id.as_str() && v["state"] == "deleted")
    );
    assert_eq!(f.create(&t, "data").await.0, 200);
}

async fn wait_destroyed(f: &Fx, t: &Tenant, sid: &str) {
    for _ in 0..100 {
        let (s, v) = f.send(t, Call::get(format!("/api/sandbox/{sid}"))).await;
        if s == 404 || v["state"] == "destroyed" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("sandbox {sid} not destroyed");
}

#[tokio::test]
async fn the_sweep_claims_retries_and_gives_up_with_a_reason() {
    let f = fx().await;
    let t = tenant(&f.api, ALL).await;
    let (_, v) = f.create(&t, "s").await;
    let id = VolumeId::parse(v["id"].as_str().unwrap()).unwrap();
    let dead = storage("http://127.0.0.1:9");
    let now = time::OffsetDateTime::now_utc();
    let r = cove_volume_jobs::sweep(&f.h.env.store, &dead, now)
        .await
        .unwrap();
    assert_eq!(r.in_progress, 1, "{r:?}");
    let rec = f.h.env.store.volumes().get(&id).await.unwrap().unwrap();
    assert_eq!(rec.state, VolumeState::Creating);
    // Past the deadline: `error` with the reason; an `error` volume may be deleted.
    let later = now + cove_volume_jobs::CREATE_DEADLINE + time::Duration::seconds(5);
    let r = cove_volume_jobs::sweep(&f.h.env.store, &dead, later)
        .await
        .unwrap();
    assert_eq!(r.failed, 1, "{r:?}");
    let (_, v) = f.send(&t, Call::get(format!("/api/volumes/{id}"))).await;
    assert_eq!(v["state"], "error");
    assert!(
        v["errorReason"]
            .as_str()
            .unwrap()
            .contains("Failed to create"),
        "{v}"
    );
    let (s, _) = f.send(&t, Call::delete(format!("/api/volumes/{id}"))).await;
    assert_eq!(s, 200);
    // No storage configured: the sweep leaves volumes alone.
    let r = cove_volume_jobs::sweep(&f.h.env.store, &storage(""), later)
        .await
        .unwrap();
    assert_eq!(r, cove_volume_jobs::VolumeReport::default());
}

#[tokio::test]
async fn deleting_the_organization_sends_its_volumes_to_deletion() {
    let f = fx().await;
    let owner = cove_testkit::org::User::unique("o");
    let org = cove_testkit::org::create_org(&f.api, &owner.jwt, "team").await;
    let key = cove_testkit::org::api_key(&f.api, &owner.jwt, Some(&org), "k", ALL).await;
    let t = Tenant {
        user: owner.clone(),
        org: org.clone(),
        key,
    };
    let id = f.ready(&t, "keep").await;
    let (s, v) = f
        .api
        .call(Call::delete(format!("/api/organizations/{org}")).token(&owner.jwt))
        .await;
    assert!(s == 200 || s == 204, "{s} {v}");
    let rec =
        f.h.env
            .store
            .volumes()
            .get(&VolumeId::parse(&id).unwrap())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(rec.state, VolumeState::PendingDelete);
}
