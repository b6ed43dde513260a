//! Shared setup: a store (dynoxide), users with their personal organizations, API keys made by the
//! real api-keys function, and runner / sandbox rows.
#![allow(dead_code)]

use bytes::Bytes;
use cove_edge::config::JwtConfig;
use cove_edge::{Env, Request};
use cove_store::orgs::OrgQuota;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::SandboxRecord;
use serde_json::{Value, json};

pub const SECRET: &str = "toolbox-test-secret";

pub async fn env() -> Env {
    Env {
        store: cove_testkit::store().await,
        jwt: JwtConfig {
            hs256_secret: Some(SECRET.into()),
            ..Default::default()
        },
    }
}

pub fn jwt(sub: &str) -> String {
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": sub, "exp": exp, "email": format!("{sub}@example.com"), "name": sub}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A user: its JWT, an API key (no permissions: the toolbox needs none) and its organization.
pub struct Tenant {
    pub jwt: String,
    pub key: String,
    pub org: String,
}

pub async fn tenant(env: &Env) -> Tenant {
    let sub = format!("u-{}", uuid::Uuid::new_v4().simple());
    let jwt = jwt(&sub);
    let req: Request = http::Request::post("/api/api-keys")
        .header("authorization", format!("Bearer {jwt}"))
        .header("content-type", "application/json")
        .body(Bytes::from_static(
            br#"{"name":"toolbox","permissions":[]}"#,
        ))
        .unwrap();
    let resp = api_keys::handle(env, req).await;
    assert_eq!(resp.status(), 201, "{:?}", resp.body());
    let v: Value = serde_json::from_slice(resp.body()).unwrap();
    let key = v["value"].as_str().unwrap().to_owned();
    let user = env
        .store
        .users()
        .get(&cove_api_types::ids::UserId::parse(sub).unwrap())
        .await
        .unwrap()
        .unwrap();
    Tenant {
        jwt,
        key,
        org: user.personal_organization_id.as_str().to_owned(),
    }
}

pub fn now() -> String {
    cove_api_types::time::now_rfc3339()
}

/// A ready runner row reachable at `api_url` with `token`.
pub async fn runner(env: &Env, api_url: &str, token: &str) -> RunnerRecord {
    let mut r = RunnerRecord::new("test-runner", "us", &now()).unwrap();
    r.api_url = Some(api_url.to_owned());
    r.api_key = token.to_owned();
    r.state = cove_api_types::runner::RunnerState::Ready;
    env.store.runners().create(&r).await.unwrap()
}

/// A sandbox row of `org` in `state` on `runner`.
pub async fn sandbox(
    env: &Env,
    id: &str,
    org: &str,
    state: &str,
    runner: Option<&cove_api_types::ids::RunnerId>,
) -> SandboxRecord {
    use cove_api_types::ids::{OrganizationId, SandboxId};
    use cove_api_types::sandbox::{SandboxDesiredState, SandboxState};
    let mut s = SandboxRecord::new(
        SandboxId::parse(id).unwrap(),
        OrganizationId::parse(org).unwrap(),
        id,
        "cove-sandbox-base:latest",
        &now(),
    );
    s.state = SandboxState::parse(state).unwrap();
    s.desired_state = if s.state == SandboxState::Stopped {
        SandboxDesiredState::Stopped
    } else {
        SandboxDesiredState::Started
    };
    s.runner_id = runner.cloned();
    s.auth_token = cove_store::sandboxes::generate_auth_token().unwrap();
    env.store
        .sandboxes()
        .create(&s, &OrgQuota::default())
        .await
        .unwrap()
}

pub fn sid() -> String {
    uuid::Uuid::new_v4().to_string()
}
