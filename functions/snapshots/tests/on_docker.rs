//! Snapshots end to end on the real Docker engine (issue 12 acceptance): `cove up` with its own
//! runner agent and the internal registry it starts; a private registry with basic auth
//! (Debian's `docker-registry` + htpasswd, [`cove_testkit::registry`]); a second runner agent.
//!
//! - an image pushed to the private registry becomes an `active` snapshot once the organization
//!   registered the registry; with a wrong password it ends in `error` with a clear reason; an
//!   organization without the registry never gets it through another's credentials;
//! - two runners: a snapshot built on one is pulled from the internal registry by the other, and
//!   a sandbox from it lands on a runner that holds it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cove_testkit::api::{Api, Call, Http};
use cove_testkit::org::{self, Tenant};
use cove_testkit::registry::{self, Registry, RegistryOptions};
use cove_testkit::{AgentOptions, Cove, CoveOptions, Runner};
use serde_json::{Value, json};

const PERMISSIONS: &[&str] = &[
    "write:snapshots",
    "delete:snapshots",
    "write:registries",
    "delete:registries",
    "write:sandboxes",
    "delete:sandboxes",
];

async fn cove() -> Cove {
    Cove::start(
        CoveOptions::default()
            .fresh_table()
            .runner(Runner::Docker)
            .args(["--runner-warm-pool", "0"])
            .log("warn"),
    )
    .await
    .expect("cove up")
}

async fn send(api: &Http, t: &Tenant, call: Call) -> (u16, Value) {
    let r = api.send(call.token(&t.key)).await;
    (r.status, r.json())
}

/// Waits (GET every 200 ms, at most `secs`) until the snapshot leaves the transitional states.
async fn outcome(api: &Http, t: &Tenant, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (s, v) = send(api, t, Call::get(format!("/api/snapshots/{id}"))).await;
        assert_eq!(s, 200, "{v}");
        let state = v["state"].as_str().unwrap_or_default().to_owned();
        if !matches!(state.as_str(), "pending" | "pulling" | "building") {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "snapshot {id} stuck in {state}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn snapshot_of(api: &Http, t: &Tenant, name: &str, image: &str) -> Value {
    let (s, v) = send(
        api,
        t,
        Call::post("/api/snapshots").json(&json!({"name": name, "imageName": image})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    outcome(api, t, v["id"].as_str().unwrap(), 300).await
}

async fn register(api: &Http, t: &Tenant, host: &str, user: &str, password: &str) {
    let body = json!({"name": format!("reg-{}", &t.org[..8]), "url": format!("http://{host}"),
                      "username": user, "password": password});
    let (s, v) = send(api, t, Call::post("/api/docker-registry").json(&body)).await;
    assert_eq!(s, 201, "{v}");
    assert!(v.get("password").is_none(), "a password came back: {v}");
}

#[tokio::test]
async fn a_private_registry_image_needs_the_organizations_own_credentials() {
    let cove = cove().await;
    let api = cove.api();
    let private = Registry::start(RegistryOptions {
        basic_auth: Some(("alice".into(), "s3cret-pw".into())),
    })
    .expect("private registry");
    let tag = format!("cove-test-private-{}", std::process::id());
    registry::tiny_image(&format!("{tag}:src"), "hello from the private registry").unwrap();
    let image = format!("{}/team/app:1.0", private.host());
    registry::push_image(&format!("{tag}:src"), &image, Some(("alice", "s3cret-pw"))).unwrap();
    registry::remove_images(&[&format!("{tag}:src"), &image]);

    let owner = org::tenant(&api, PERMISSIONS).await;
    register(&api, &owner, &private.host(), "alice", "s3cret-pw").await;
    let ok = snapshot_of(&api, &owner, "private-ok", &image).await;
    assert_eq!(ok["state"], "active", "{ok}");
    assert!(
        ok["ref"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("cove-{}/", owner.org)),
        "{ok}"
    );

    // Wrong password: error, with the registry's refusal in the reason.
    let wrong = org::tenant(&api, PERMISSIONS).await;
    register(&api, &wrong, &private.host(), "alice", "not-the-password").await;
    let bad = snapshot_of(&api, &wrong, "private-bad", &image).await;
    assert_eq!(bad["state"], "error", "{bad}");
    let reason = bad["errorReason"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        reason.contains("unauthorized")
            || reason.contains("authentication")
            || reason.contains("denied"),
        "{reason}"
    );

    // No registry of its own: the owner's credentials (and the image the runner pulled with
    // them) are not used for it.
    let stranger = org::tenant(&api, PERMISSIONS).await;
    let denied = snapshot_of(&api, &stranger, "private-stranger", &image).await;
    assert_eq!(denied["state"], "error", "{denied}");
    // And the owner's snapshot stays invisible to the others.
    let (s, _) = send(&api, &stranger, Call::get("/api/snapshots/private-ok")).await;
    assert_eq!(s, 404);
    let own = ok["id"].as_str().unwrap();
    let body = json!({"snapshot": own});
    let (s, v) = send(&api, &stranger, Call::post("/api/sandbox").json(&body)).await;
    assert_eq!(s, 400, "{v}");
}

async fn started(api: &Http, t: &Tenant, mut sb: Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    while sb["state"] != "started" {
        assert!(sb["state"] != "error" && Instant::now() < deadline, "{sb}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        sb = send(
            api,
            t,
            Call::get(format!("/api/sandbox/{}", sb["id"].as_str().unwrap())),
        )
        .await
        .1;
    }
    sb
}

/// The runner ids that advertise `image` in their heartbeats.
async fn holders(cove: &Cove, image: &str) -> Vec<String> {
    let store = cove.store().expect("the embedded table");
    store
        .runners()
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.has_snapshot(image))
        .map(|r| r.id.to_string())
        .collect()
}

#[tokio::test]
async fn a_snapshot_built_on_one_runner_is_pulled_by_the_other_and_sandboxes_land_on_holders() {
    let mut cove = cove().await;
    let api = cove.api();
    let t = org::tenant(&api, PERMISSIONS).await;
    let marker = format!("two-runners-{}", std::process::id());
    let dockerfile =
        format!("FROM cove-sandbox-base:latest\nRUN echo {marker} > /tmp/cove-marker\n");
    let body = json!({"name": "shared", "buildInfo": {"dockerfileContent": dockerfile, "contextHashes": []}});
    let (s, v) = send(&api, &t, Call::post("/api/snapshots").json(&body)).await;
    assert_eq!(s, 200, "{v}");
    let snap = outcome(&api, &t, v["id"].as_str().unwrap(), 600).await;
    assert_eq!(snap["state"], "active", "{snap}");
    let image = snap["ref"].as_str().unwrap().to_owned();
    let first = snap["initialRunnerId"].as_str().unwrap().to_owned();

    // The second agent shares the Docker engine: drop the local tag, so that what it gets
    // comes from the internal registry.
    registry::remove_images(&[&image]);
    let second = cove
        .attach_agent(AgentOptions::docker())
        .await
        .unwrap()
        .runner_id()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !holders(&cove, &image).await.contains(&second) {
        assert!(
            Instant::now() < deadline,
            "the second runner never got {image}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Sandboxes from it run where it is, and see the build's change.
    for _ in 0..2 {
        let (s, sb) = send(
            &api,
            &t,
            Call::post("/api/sandbox").json(&json!({"snapshot": "shared"})),
        )
        .await;
        assert_eq!(s, 200, "{sb}");
        let sb = started(&api, &t, sb).await;
        let runner = sb["runnerId"].as_str().unwrap_or_default().to_owned();
        assert!(
            holders(&cove, &image).await.contains(&runner),
            "{runner} lacks {image}"
        );
        assert!(runner == first || runner == second);
        let id = sb["id"].as_str().unwrap();
        let (s, out) = send(
            &api,
            &t,
            Call::post(format!("/toolbox/{id}/process/execute"))
                .json(&json!({"command": "cat /tmp/cove-marker"})),
        )
        .await;
        assert_eq!(s, 200, "{out}");
        assert_eq!(out["result"].as_str().unwrap_or_default().trim(), marker);
        let (s, _) = send(&api, &t, Call::delete(format!("/api/sandbox/{id}"))).await;
        assert_eq!(s, 200);
    }
}
