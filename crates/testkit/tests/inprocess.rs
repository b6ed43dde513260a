//! The function harness and the org helpers against the real api-keys and organizations
//! handlers in-process (dynoxide): what a handler test gets from the testkit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cove_testkit::api::{Api, Call};
use cove_testkit::jwt::{self, Claims};
use cove_testkit::org::{self, User};
use cove_testkit::{Harness, InProcess};
use serde_json::json;

fn api(h: &Harness) -> InProcess {
    h.api()
        .route("/api/api-keys/...", |env, req| async move {
            api_keys::handle(&env, req).await
        })
        .route("/api/organizations/...", |env, req| async move {
            organizations::handle(&env, req).await
        })
        .route("/api/users/...", |env, req| async move {
            organizations::handle(&env, req).await
        })
}

#[tokio::test]
async fn a_tenant_gets_its_personal_org_and_a_working_key() {
    let h = Harness::new().await;
    let api = api(&h);
    let t = org::tenant(&api, &["write:sandboxes"]).await;
    assert!(t.key.starts_with("dtn_"), "{}", t.key);
    // The org is the user's personal one, as the store has it.
    assert_eq!(h.personal_org(&t.user.sub).await.as_str(), t.org);
    // The key authenticates as that key, with the permissions asked for.
    let (s, current) = api
        .call(Call::get("/api/api-keys/current").token(&t.key))
        .await;
    assert_eq!(s, 200, "{current}");
    assert_eq!(current["name"], "testkit");
    assert_eq!(current["permissions"], json!(["write:sandboxes"]));
    // Two tenants never share anything.
    let other = org::tenant(&api, &[]).await;
    assert_ne!(other.org, t.org);
    assert_ne!(other.user.sub, t.user.sub);
}

#[tokio::test]
async fn organizations_members_and_keys_in_them() {
    let h = Harness::new().await;
    let api = api(&h);
    let owner = User::unique("owner");
    let guest = User::unique("guest");
    let org_id = org::create_org(&api, &owner.jwt, "team").await;
    let accepted = org::join(&api, &owner.jwt, &org_id, &guest, "member", &[]).await;
    assert_eq!(accepted["status"], "accepted", "{accepted}");
    let (s, members) = api
        .call(Call::get(format!("/api/organizations/{org_id}/users")).token(&guest.jwt))
        .await;
    assert_eq!(s, 200, "{members}");
    assert_eq!(members.as_array().map(Vec::len), Some(2), "{members}");
    // A key made in the team org by its owner lives there.
    let key = org::api_key(&api, &owner.jwt, Some(&org_id), "team-key", &[]).await;
    let (s, list) = api
        .call(Call::get("/api/api-keys").token(&owner.jwt).org(&org_id))
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list[0]["name"], "team-key", "{list}");
    assert_ne!(list[0]["value"], key, "listed keys are masked");
}

#[tokio::test]
async fn jwts_of_another_secret_and_expired_ones_get_the_401_envelope() {
    let h = Harness::new().await;
    let api = api(&h);
    for bad in [
        jwt::mint("not-the-secret", "mallory", json!({})),
        Claims::user("late").expires_in(-600).sign(jwt::TEST_SECRET),
    ] {
        // `call` checks the envelope of every 4xx.
        let (s, _) = api.call(Call::get("/api/api-keys").token(bad)).await;
        assert_eq!(s, 401);
    }
    let (s, _) = api
        .call(Call::get("/api/api-keys").token(h.jwt("fine")))
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn the_admin_sees_all_users_and_a_user_does_not() {
    let h = Harness::new().await;
    let api = api(&h);
    let admin = h.admin("root").await;
    let user = h.jwt("plain");
    let (s, _) = api.call(Call::get("/api/users").token(&user)).await;
    assert_eq!(s, 403);
    let (s, users) = api.call(Call::get("/api/users").token(&admin)).await;
    assert_eq!(s, 200, "{users}");
    let ids: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert!(ids.contains(&"root") && ids.contains(&"plain"), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_runner_registers_a_schedulable_runner_that_is_the_agent() {
    let h = Harness::with_runner(cove_testkit::AgentOptions::fake())
        .await
        .unwrap();
    let (agent, row) = (h.agent().unwrap(), h.runner().unwrap());
    assert_eq!(
        row.id.as_str(),
        agent.runner_id(),
        "one id for the row and the label"
    );
    let stored = h.env.store.runners().get(&row.id).await.unwrap().unwrap();
    assert_eq!(stored.api_url.as_deref(), Some(agent.url()));
    assert_eq!(stored.snapshots, [cove_testkit::FAKE_IMAGE]);
    assert!(stored.is_schedulable(time::OffsetDateTime::now_utc() + time::Duration::hours(1)));
    // The control plane reaches the agent with the row's token.
    let client =
        cove_runner_api::client::RunnerClient::new(stored.api_url.unwrap(), &stored.api_key);
    client.info().await.unwrap();

    // A second agent joins as another runner.
    let second = cove_testkit::Agent::start(cove_testkit::AgentOptions::fake()).unwrap();
    let row2 = h.register_runner(&second).await.unwrap();
    assert_ne!(row2.id, row.id);
    assert_eq!(row2.api_key, second.token());
    assert_eq!(h.env.store.runners().list().await.unwrap().len(), 2);
}
