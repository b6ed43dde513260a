//! The registries handlers natively, against a real DynamoDB API (dynoxide), with the api-keys
//! and organizations handlers mounted beside them (tenants, keys with chosen permissions).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cove_testkit::Harness;
use cove_testkit::api::{Api, Call};
use cove_testkit::inprocess::InProcess;
use cove_testkit::org::{Tenant, tenant};
use registries::RegistrySettings;
use serde_json::{Value, json};

const SECRET: &str = "registries-test-secret";
const INTERNAL: &str = "127.0.0.1:45999";
const INTERNAL_ID: &str = registries::service::INTERNAL_REGISTRY_ID;

fn settings(ttl: u64) -> RegistrySettings {
    RegistrySettings {
        secret: SECRET.into(),
        ttl_secs: ttl,
        internal_registry: Some(INTERNAL.into()),
        s3_bucket: "cove".into(),
        storage_url: "http://127.0.0.1:45998".into(),
        region: "us-east-1".into(),
        sts_role_arn: None,
        aws_access_key_id: "cove".into(),
        aws_secret_access_key: "cove-secret".into(),
    }
}

async fn api_with(settings: RegistrySettings) -> (Harness, InProcess) {
    let h = Harness::new().await;
    let api = InProcess::new(h.env.clone())
        .route("/api/api-keys/...", |env, req| async move {
            api_keys::handle(&env, req).await
        })
        .route("/api/organizations/...", |env, req| async move {
            organizations::handle(&env, req).await
        })
        .route("/api/docker-registry/...", move |env, req| {
            let s = settings.clone();
            async move { registries::handle(&env, &s, req).await }
        });
    let api = with_storage(api);
    (h, api)
}

fn with_storage(api: InProcess) -> InProcess {
    let s = settings(3600);
    api.route("/api/object-storage/...", move |env, req| {
        let s = s.clone();
        async move { registries::handle(&env, &s, req).await }
    })
}

async fn api() -> (Harness, InProcess) {
    api_with(settings(3600)).await
}

const ALL: &[&str] = &["write:registries", "delete:registries", "write:snapshots"];

async fn send(api: &InProcess, call: Call) -> (u16, Value) {
    api.call(call).await
}

fn create_body(name: &str) -> Value {
    json!({"name": name, "url": "https://registry.example.com:5000", "username": "bob",
        "password": "hunter2-very-secret", "project": "team"})
}

async fn create(api: &InProcess, t: &Tenant, name: &str) -> Value {
    let (s, v) = send(
        api,
        Call::post("/api/docker-registry")
            .token(&t.key)
            .json(&create_body(name)),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v
}

fn assert_no_password(v: &Value) {
    let text = v.to_string();
    assert!(!text.contains("hunter2"), "password leaked: {text}");
    assert!(!text.contains("password"), "password field: {text}");
}

#[tokio::test]
async fn crud_never_answers_the_password() {
    let (h, api) = api().await;
    let t = tenant(&api, ALL).await;
    let created = create(&api, &t, "private").await;
    assert_no_password(&created);
    assert_eq!(created["registryType"], "organization");
    assert_eq!(created["username"], "bob");
    assert_eq!(created["project"], "team");
    let id = created["id"].as_str().unwrap();

    let (s, list) = send(&api, Call::get("/api/docker-registry").token(&t.key)).await;
    assert_eq!(s, 200);
    assert_no_password(&list);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], INTERNAL_ID);
    assert_eq!(list[0]["registryType"], "internal");
    assert_eq!(list[0]["url"], INTERNAL);
    assert_eq!(list[0]["project"], format!("cove-{}", t.org));
    assert_eq!(list[1]["id"], id);

    let path = format!("/api/docker-registry/{id}");
    let (s, got) = send(&api, Call::get(&path).token(&t.key)).await;
    assert_eq!((s, &got), (200, &created));
    let patch = json!({"name": "renamed", "url": "ghcr.io", "username": "carol"});
    let (s, patched) = send(&api, Call::patch(&path).token(&t.key).json(&patch)).await;
    assert_eq!(s, 200, "{patched}");
    assert_no_password(&patched);
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["url"], "ghcr.io");

    // The stored password is sealed, kept across a PATCH without one, and opened for the sweep.
    let org = cove_api_types::ids::OrganizationId::parse(&t.org).unwrap();
    let store = &h.env.store;
    let raw = store.registries().get(&org, id).await.unwrap().unwrap();
    assert!(!raw.password_sealed.contains("hunter2"));
    let m = store
        .registries()
        .matching_host(&org, "ghcr.io", SECRET.as_bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.password, "hunter2-very-secret");
    assert_eq!(m.record.username, "carol");
    assert!(
        store
            .registries()
            .matching_host(&org, "docker.io", SECRET.as_bytes())
            .await
            .unwrap()
            .is_none()
    );

    let (s, d) = send(
        &api,
        Call::post(format!("{path}/set-default")).token(&t.key),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    let (s, _) = send(&api, Call::delete(&path).token(&t.key)).await;
    assert_eq!(s, 204);
    let (s, _) = send(&api, Call::get(&path).token(&t.key)).await;
    assert_eq!(s, 404);
    let (s, _) = send(&api, Call::delete(&path).token(&t.key)).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn another_organizations_registry_is_not_found() {
    let (h, api) = api().await;
    let a = tenant(&api, ALL).await;
    let b = tenant(&api, ALL).await;
    let id = create(&api, &a, "a-only").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/docker-registry/{id}");
    let patch = json!({"name": "x", "url": "ghcr.io", "username": "u", "password": "p"});
    for call in [
        Call::get(&path),
        Call::patch(&path).json(&patch),
        Call::delete(&path),
        Call::post(format!("{path}/set-default")),
    ] {
        let (s, v) = send(&api, call.token(&b.key)).await;
        assert_eq!(s, 404, "{v}");
    }
    let (_, list) = send(&api, Call::get("/api/docker-registry").token(&b.key)).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let org_b = cove_api_types::ids::OrganizationId::parse(&b.org).unwrap();
    let found = h
        .env
        .store
        .registries()
        .matching_host(&org_b, "registry.example.com:5000", SECRET.as_bytes())
        .await
        .unwrap();
    assert!(found.is_none());
    // Still there for its owner.
    let (s, _) = send(&api, Call::get(&path).token(&a.key)).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn permissions_are_required() {
    let (_h, api) = api().await;
    let owner = tenant(&api, ALL).await;
    let id = create(&api, &owner, "r").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/docker-registry/{id}");
    let weak =
        cove_testkit::org::api_key(&api, &owner.user.jwt, None, "weak", &["write:sandboxes"]).await;
    let patch = json!({"name": "x", "url": "ghcr.io", "username": "u"});
    for call in [
        Call::post("/api/docker-registry").json(&create_body("n")),
        Call::patch(&path).json(&patch),
        Call::delete(&path),
        Call::post(format!("{path}/set-default")),
        Call::get("/api/docker-registry/registry-push-access"),
        Call::get("/api/object-storage/push-access"),
    ] {
        let (s, v) = send(&api, call.token(&weak)).await;
        assert_eq!(s, 403, "{v}");
    }
    // Reading needs no permission beyond membership.
    let (s, _) = send(&api, Call::get(&path).token(&weak)).await;
    assert_eq!(s, 200);
    // write:registries alone may not delete.
    let writer =
        cove_testkit::org::api_key(&api, &owner.user.jwt, None, "w", &["write:registries"]).await;
    let (s, _) = send(&api, Call::delete(&path).token(&writer)).await;
    assert_eq!(s, 403);
    let (s, _) = send(&api, Call::get("/api/docker-registry")).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn bad_input_is_a_400_and_the_internal_registry_is_read_only() {
    let (_h, api) = api().await;
    let t = tenant(&api, ALL).await;
    for body in [
        json!({"name": "", "url": "ghcr.io", "username": "u", "password": "p"}),
        json!({"name": "n", "url": "ftp://x.example", "username": "u", "password": "p"}),
        json!({"name": "n", "url": "not a url", "username": "u", "password": "p"}),
        json!({"name": "n", "url": "ghcr.io", "username": "", "password": "p"}),
        json!({"name": "n", "url": "ghcr.io", "username": "u", "password": ""}),
        json!({"name": "n", "url": "ghcr.io", "username": "u"}),
        json!({"name": "n", "url": "ghcr.io:99999", "username": "u", "password": "p"}),
    ] {
        let (s, v) = send(
            &api,
            Call::post("/api/docker-registry").token(&t.key).json(&body),
        )
        .await;
        assert_eq!(s, 400, "{body} -> {v}");
    }
    let path = format!("/api/docker-registry/{INTERNAL_ID}");
    let (s, v) = send(&api, Call::get(&path).token(&t.key)).await;
    assert_eq!((s, v["registryType"].as_str()), (200, Some("internal")));
    let patch = json!({"name": "x", "url": "ghcr.io", "username": "u"});
    let (s, _) = send(&api, Call::patch(&path).token(&t.key).json(&patch)).await;
    assert_eq!(s, 403);
    let (s, _) = send(&api, Call::delete(&path).token(&t.key)).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn push_access_is_scoped_to_the_org_and_expires() {
    let (_h, api) = api_with(settings(120)).await;
    let t = tenant(&api, ALL).await;
    let (s, v) = send(
        &api,
        Call::get("/api/docker-registry/registry-push-access?regionId=us").token(&t.key),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["username"], format!("cove-push-{}", t.org));
    assert_eq!(v["project"], format!("cove-{}", t.org));
    assert_eq!(v["registryUrl"], INTERNAL);
    assert_eq!(v["registryId"], INTERNAL_ID);
    let exp = time::OffsetDateTime::parse(
        v["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = exp - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::seconds(100) && left <= time::Duration::seconds(121),
        "{left}"
    );
    let now = cove_scoped_creds::now_unix();
    let project = cove_scoped_creds::verify_registry(
        SECRET.as_bytes(),
        v["username"].as_str().unwrap(),
        v["secret"].as_str().unwrap(),
        now,
    )
    .unwrap();
    assert_eq!(project, format!("cove-{}", t.org));
    assert!(
        cove_scoped_creds::verify_registry(
            SECRET.as_bytes(),
            v["username"].as_str().unwrap(),
            v["secret"].as_str().unwrap(),
            now + 121,
        )
        .is_err()
    );

    let (s, v) = send(
        &api,
        Call::get("/api/object-storage/push-access").token(&t.key),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    for field in [
        "accessKey",
        "secret",
        "sessionToken",
        "storageUrl",
        "organizationId",
        "bucket",
        "region",
    ] {
        assert!(
            v[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {v}"
        );
    }
    assert_eq!(v["organizationId"], t.org);
    assert_eq!(v["bucket"], "cove");
    let claims = cove_scoped_creds::S3Credential::parse(
        SECRET.as_bytes(),
        v["accessKey"].as_str().unwrap(),
        now,
    )
    .unwrap();
    assert_eq!(claims.scope, format!("{}/", t.org));
    assert_eq!(
        cove_scoped_creds::s3_secret_for(SECRET.as_bytes(), v["accessKey"].as_str().unwrap())
            .unwrap(),
        v["secret"].as_str().unwrap()
    );
}

#[tokio::test]
async fn without_an_internal_registry_push_access_is_unavailable() {
    let (_h, api) = api_with(RegistrySettings {
        internal_registry: None,
        ..settings(3600)
    })
    .await;
    let t = tenant(&api, ALL).await;
    let reply = api
        .send(Call::get("/api/docker-registry/registry-push-access").token(&t.key))
        .await;
    assert_eq!(reply.status, 503);
    let (_, list) = send(&api, Call::get("/api/docker-registry").token(&t.key)).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn deleting_the_organization_removes_its_registries() {
    let (h, api) = api().await;
    let owner = cove_testkit::org::User::unique("owner");
    cove_testkit::org::personal_org(&api, &owner.jwt).await;
    let team = cove_testkit::org::create_org(&api, &owner.jwt, "team").await;
    let key = cove_testkit::org::api_key(&api, &owner.jwt, Some(&team), "k", ALL).await;
    let (s, v) = send(
        &api,
        Call::post("/api/docker-registry")
            .token(&key)
            .json(&create_body("r")),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let org = cove_api_types::ids::OrganizationId::parse(&team).unwrap();
    assert_eq!(h.env.store.registries().list(&org).await.unwrap().len(), 1);
    let (s, v) = send(
        &api,
        Call::delete(format!("/api/organizations/{team}")).token(&owner.jwt),
    )
    .await;
    assert!(s == 200 || s == 204, "{s} {v}");
    assert!(
        h.env
            .store
            .registries()
            .list(&org)
            .await
            .unwrap()
            .is_empty()
    );
    let keys = h.env.store.scan_keys().await.unwrap();
    assert!(
        !keys
            .iter()
            .any(|(pk, sk)| pk.contains(&team) && sk.starts_with("REGISTRY#")),
        "{keys:?}"
    );
}
