//! Shared setup on the testkit's [`Harness`]: users with their personal organizations, API keys
//! made by the real api-keys function, and runner / sandbox rows.
#![allow(dead_code)]

use cove_edge::Env;
use cove_store::orgs::OrgQuota;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::SandboxRecord;
use cove_testkit::Harness;
use cove_testkit::org::User;

/// A user: its JWT, an API key with `write:sandboxes` (what the toolbox needs) and its organization.
pub struct Tenant {
    pub jwt: String,
    pub key: String,
    pub org: String,
}

pub async fn tenant(h: &Harness) -> Tenant {
    let user = User::unique("u");
    let org = h.personal_org(&user.sub).await;
    let api = h.api().route("/api/api-keys/...", |env, req| async move {
        api_keys::handle(&env, req).await
    });
    let key =
        cove_testkit::org::api_key(&api, &user.jwt, None, "toolbox", &["write:sandboxes"]).await;
    Tenant {
        jwt: user.jwt,
        key,
        org: org.as_str().to_owned(),
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
