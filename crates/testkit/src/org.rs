//! Users, organizations, API keys and runners made through the public API, so the same helper
//! works against the in-process handlers ([`crate::inprocess::InProcess`]: mount the functions
//! whose routes it calls) and against a running `cove` ([`crate::api::Http`]).
//!
//! | helper | routes it calls (function) |
//! |---|---|
//! | [`personal_org`], [`create_org`], [`join`] | `/api/organizations/...` (organizations) |
//! | [`api_key`] | `/api/api-keys` (api-keys) |
//! | [`tenant`] | both of the above |
//! | [`register_runner`], [`wait_runner_state`] | `/api/runners/...` (runners) |
//!
//! The system admin is not made through the API (no route makes one): it is
//! [`crate::cove::Cove::admin_key`] (the key `cove up` prints) or
//! [`crate::harness::Harness::admin`] (a provisioned admin user's JWT).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{Api, Call};
use crate::error::{Error, Result};
use crate::jwt;

/// A user as the identity provider knows it: its `sub` and a JWT ([`jwt::token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub sub: String,
    pub jwt: String,
}

impl User {
    pub fn new(sub: &str) -> Self {
        Self {
            sub: sub.to_owned(),
            jwt: jwt::token(sub),
        }
    }

    /// A user no other test uses: `<prefix>-<random>`.
    pub fn unique(prefix: &str) -> Self {
        Self::new(&crate::agent::random(&format!("{prefix}-"), 12))
    }
}

/// A user with its personal organization and an API key in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub user: User,
    pub org: String,
    pub key: String,
}

/// A fresh user ([`User::unique`]), its personal organization (provisioned by its first call)
/// and an API key with `permissions` in it.
pub async fn tenant(api: &impl Api, permissions: &[&str]) -> Tenant {
    let user = User::unique("u");
    let org = personal_org(api, &user.jwt).await;
    let key = api_key(api, &user.jwt, None, "testkit", permissions).await;
    Tenant { user, org, key }
}

/// The id of the caller's personal organization (a JWT's first call provisions it).
pub async fn personal_org(api: &impl Api, token: &str) -> String {
    let list = expect(api, Call::get("/api/organizations").token(token), 200).await;
    list.as_array()
        .and_then(|orgs| orgs.iter().find(|o| o["personal"] == true))
        .and_then(|o| o["id"].as_str())
        .unwrap_or_else(|| panic!("no personal organization in {list}"))
        .to_owned()
}

/// `POST /api/organizations`; returns the new organization's id (the caller owns it).
pub async fn create_org(api: &impl Api, token: &str, name: &str) -> String {
    let body = json!({"name": name, "defaultRegionId": "us"});
    let org = expect(
        api,
        Call::post("/api/organizations").token(token).json(&body),
        201,
    )
    .await;
    id_of(&org, "organization")
}

/// `POST /api/api-keys` (in `org`, else the caller's default organization); returns the key.
pub async fn api_key(
    api: &impl Api,
    token: &str,
    org: Option<&str>,
    name: &str,
    permissions: &[&str],
) -> String {
    let body = json!({"name": name, "permissions": permissions});
    let mut call = Call::post("/api/api-keys").token(token).json(&body);
    if let Some(o) = org {
        call = call.org(o);
    }
    let created = expect(api, call, 201).await;
    created["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no key value in {created}"))
        .to_owned()
}

/// `owner` invites `who` into `org` as `role` (with `assigned_role_ids`) and `who` accepts;
/// returns the accepted invitation.
pub async fn join(
    api: &impl Api,
    owner: &str,
    org: &str,
    who: &User,
    role: &str,
    assigned_role_ids: &[&str],
) -> Value {
    let body = json!({"email": format!("{}@example.com", who.sub), "role": role,
                      "assignedRoleIds": assigned_role_ids});
    let path = format!("/api/organizations/{org}/invitations");
    let inv = expect(api, Call::post(path).token(owner).json(&body), 201).await;
    let path = format!(
        "/api/organizations/invitations/{}/accept",
        id_of(&inv, "invitation")
    );
    expect(api, Call::post(path).token(&who.jwt).json(&json!({})), 200).await
}

/// A runner registered by the admin: its id and the token its agent must use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerRegistration {
    pub id: String,
    pub token: String,
}

/// `POST /api/runners` as the admin, in region `us`.
pub async fn register_runner(api: &impl Api, admin: &str, name: &str) -> RunnerRegistration {
    let body = json!({"regionId": "us", "name": name});
    let r = expect(
        api,
        Call::post("/api/runners").token(admin).json(&body),
        201,
    )
    .await;
    RunnerRegistration {
        id: id_of(&r, "runner"),
        token: r["apiKey"]
            .as_str()
            .unwrap_or_else(|| panic!("no apiKey in {r}"))
            .to_owned(),
    }
}

/// Polls `GET /api/runners/{id}` (as the admin) until its `state` is `want` — the runner's own
/// heartbeats are the readiness signal, and they arrive only over time.
pub async fn wait_runner_state(
    api: &impl Api,
    admin: &str,
    id: &str,
    want: &str,
    within: Duration,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let reply = api
            .send(Call::get(format!("/api/runners/{id}")).token(admin))
            .await;
        if reply.status == 200 && reply.json()["state"] == want {
            return Ok(());
        }
        if started.elapsed() > within {
            return Err(Error::Timeout {
                what: format!(
                    "runner {id} to be {want} (last answer {} {})",
                    reply.status,
                    reply.json()
                ),
                waited: within,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `call`, asserts `status` (with the answer in the message), returns the JSON body.
async fn expect(api: &impl Api, call: Call, status: u16) -> Value {
    let what = format!("{} {}", call.method, call.path);
    api.send(call).await.expect(status, &what)
}

fn id_of(v: &Value, what: &str) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {what} id in {v}"))
        .to_owned()
}
