//! Keys born expired are refused (400), and the bootstrap admin cannot delete its last usable
//! API key (409): it has no other credential, so that would lock the platform's administration
//! out until `cove rotate-admin-key` is run on the host (issue 9 item 7).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cove_api_types::permissions::Permission;
use cove_testkit::api::{Api, Call};
use cove_testkit::{Harness, InProcess};
use serde_json::json;

fn api(h: &Harness) -> InProcess {
    h.api().route("/...", |env, req| async move {
        api_keys::handle(&env, req).await
    })
}

fn in_secs(s: i64) -> String {
    cove_api_types::time::format_rfc3339(
        time::OffsetDateTime::now_utc() + time::Duration::seconds(s),
    )
}

async fn create(
    api: &InProcess,
    token: &str,
    name: &str,
    expires_at: Option<String>,
) -> (u16, serde_json::Value) {
    let all: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    let body = json!({"name": name, "permissions": all, "expiresAt": expires_at});
    let r = api
        .send(Call::post("/api/api-keys").token(token).json(&body))
        .await;
    (r.status, r.json())
}

#[tokio::test]
async fn a_key_cannot_be_born_expired() {
    let h = Harness::new().await;
    let api = api(&h);
    let alice = h.jwt("alice");
    for past in ["2020-01-01T00:00:00.000Z", &in_secs(-1)] {
        let (s, v) = create(&api, &alice, "old", Some(past.to_owned())).await;
        assert_eq!(
            (s, v["message"].as_str()),
            (400, Some("expiresAt must be in the future")),
            "{past}"
        );
    }
    let (s, v) = create(&api, &alice, "old", Some("yesterday".into())).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("expiresAt must be an ISO-8601 date"))
    );
    let list = api
        .send(Call::get("/api/api-keys").token(&alice))
        .await
        .expect(200, "list");
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        "nothing was stored: {list}"
    );
    let (s, v) = create(&api, &alice, "old", Some(in_secs(3600))).await;
    assert_eq!(s, 201, "{v}");
}

#[tokio::test]
async fn the_bootstrap_admin_keeps_a_usable_key() {
    let h = Harness::new().await;
    let api = api(&h);
    let boot = cove_store::bootstrap::ensure_admin(&h.env.store)
        .await
        .unwrap();
    let admin = boot.api_key.expect("first start prints the key");
    let delete = |token: &str, name: &str| {
        Call::delete(format!("/api/api-keys/{name}")).token(token.to_owned())
    };
    let r = api.send(delete(&admin, "cove-admin")).await;
    assert_eq!(r.status, 409, "{}", r.json());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("cove rotate-admin-key")
    );
    api.send(Call::get("/api/api-keys/current").token(&admin))
        .await
        .expect(200, "still works");

    // A key that has expired meanwhile is no credential.
    let (s, v) = create(&api, &admin, "brief", Some(in_secs(1))).await;
    assert_eq!(s, 201, "{v}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.send(delete(&admin, "cove-admin")).await.status, 409);

    // With another usable key, the bootstrap key can go; then the other one is the last.
    let (s, v) = create(&api, &admin, "ops", None).await;
    assert_eq!(s, 201, "{v}");
    let ops = v["value"].as_str().unwrap().to_owned();
    let r = api.send(delete(&admin, "cove-admin")).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(
        api.send(Call::get("/api/api-keys/current").token(&admin))
            .await
            .status,
        401
    );
    let r = api.send(delete(&ops, "ops")).await;
    assert_eq!(r.status, 409, "ops is the last one now: {}", r.json());
    // The host's recovery (`cove rotate-admin-key`) brings a bootstrap key back.
    let rotated = cove_store::bootstrap::rotate_admin_key(&h.env.store)
        .await
        .unwrap();
    let current = api
        .send(Call::get("/api/api-keys/current").token(&rotated))
        .await
        .expect(200, "the rotated key works");
    assert_eq!(current["name"], "cove-admin");
    let r = api.send(delete(&rotated, "ops")).await;
    assert_eq!(r.status, 204, "two usable keys again: {:?}", r.body);
    let r = api.send(delete(&rotated, "cove-admin")).await;
    assert_eq!(r.status, 409, "{}", r.json());
    let (s, v) = create(&api, &rotated, "ops", None).await;
    assert_eq!(s, 201, "{v}");
    let ops = v["value"].as_str().unwrap().to_owned();
    let r = api.send(delete(&ops, "cove-admin")).await;
    assert_eq!(r.status, 204);
    let r = api.send(delete(&ops, "ops")).await;
    assert_eq!(r.status, 409, "{}", r.json());
    let r = api
        .send(Call::delete("/api/api-keys/cove-admin/ops").token(&ops))
        .await;
    assert_eq!(
        r.status,
        409,
        "the user-scoped route keeps it too: {}",
        r.json()
    );

    // Other users' keys are not affected.
    let alice = h.jwt("alice");
    create(&api, &alice, "only", None).await;
    assert_eq!(api.send(delete(&alice, "only")).await.status, 204);
}
