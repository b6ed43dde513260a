//! The organizations handlers natively, against a real DynamoDB API (dynoxide, or DynamoDB Local in
//! CI). The same handlers run inside the component; `tests/e2e` drives them through `cove`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use cove_api_types::ids::UserId;
use cove_edge::{Env, Request};
use cove_store::users::{NewUser, SystemRole};
use cove_testkit::api::{Call, Reply};
use serde_json::{Value, json};

/// A fresh table; JWTs verified with the testkit's secret.
async fn env() -> Env {
    cove_testkit::Harness::new().await.env
}

/// A JWT the env accepts (the testkit's identity provider: `email` `<sub>@example.com`, `name`).
fn jwt(sub: &str) -> String {
    cove_testkit::jwt::token(sub)
}

fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    org: Option<&str>,
    body: Option<&str>,
) -> Request {
    Call::simple(method, path, token, org, body).to_request()
}

/// Calls the organizations function and checks the error envelope of any 4xx/5xx.
async fn call(
    env: &Env,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let call = Call::simple(method, path, token, None, body);
    Reply::from_response(organizations::handle(env, call.to_request()).await).checked(&call)
}

async fn get(env: &Env, path: &str, t: &str) -> (u16, Value) {
    call(env, "GET", path, Some(t), None).await
}
async fn post(env: &Env, path: &str, t: &str, body: Value) -> (u16, Value) {
    call(env, "POST", path, Some(t), Some(&body.to_string())).await
}
async fn put(env: &Env, path: &str, t: &str, body: Value) -> (u16, Value) {
    call(env, "PUT", path, Some(t), Some(&body.to_string())).await
}
async fn delete(env: &Env, path: &str, t: &str) -> (u16, Value) {
    call(env, "DELETE", path, Some(t), None).await
}

async fn create_org(env: &Env, t: &str, name: &str) -> String {
    let (s, v) = post(
        env,
        "/api/organizations",
        t,
        json!({"name": name, "defaultRegionId": "us"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// Invites `who` into `org` as `role` and has them accept; returns the invitation.
async fn join(env: &Env, owner: &str, org: &str, who: &str, role: &str, roles: &[&str]) -> Value {
    let (s, inv) = post(
        env,
        &format!("/api/organizations/{org}/invitations"),
        owner,
        json!({"email": format!("{who}@example.com"), "role": role, "assignedRoleIds": roles}),
    )
    .await;
    assert_eq!(s, 201, "{inv}");
    let id = inv["id"].as_str().unwrap();
    let (s, v) = post(
        env,
        &format!("/api/organizations/invitations/{id}/accept"),
        &jwt(who),
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "accepted");
    v
}

async fn make_admin(env: &Env, sub: &str) {
    env.store
        .users()
        .get_or_provision(NewUser {
            id: UserId::parse(sub).unwrap(),
            name: sub.into(),
            email: format!("{sub}@example.com"),
            email_verified: true,
            role: SystemRole::Admin,
        })
        .await
        .unwrap();
}

const ORG_FIELDS: &[&str] = &[
    "id",
    "name",
    "createdBy",
    "personal",
    "createdAt",
    "updatedAt",
    "suspended",
    "suspendedAt",
    "suspensionReason",
    "suspendedUntil",
    "suspensionCleanupGracePeriodHours",
    "maxCpuPerSandbox",
    "maxMemoryPerSandbox",
    "maxDiskPerSandbox",
    "secretQuota",
    "maxSecretsPerSandbox",
    "snapshotDeactivationTimeoutMinutes",
    "defaultQueueTimeout",
    "sandboxLimitedNetworkEgress",
    "previewWarningEnabled",
    "ssoEnabled",
    "scimEnabled",
    "authenticatedRateLimit",
    "sandboxCreateRateLimit",
    "sandboxLifecycleRateLimit",
    "experimentalConfig",
    "otelConfig",
    "authenticatedRateLimitTtlSeconds",
    "sandboxCreateRateLimitTtlSeconds",
    "sandboxLifecycleRateLimitTtlSeconds",
];

#[tokio::test]
async fn public_routes_and_users_me() {
    let env = env().await;
    let (s, _) = call(&env, "GET", "/api/health", None, None).await;
    assert_eq!(s, 200);
    let (s, c) = call(&env, "GET", "/api/config", None, None).await;
    assert_eq!(s, 200);
    for f in [
        "version",
        "oidc",
        "linkedAccountsEnabled",
        "announcements",
        "proxyTemplateUrl",
        "proxyToolboxUrl",
        "defaultSnapshot",
        "dashboardUrl",
        "maxAutoArchiveInterval",
        "maintananceMode",
        "environment",
    ] {
        assert!(c.get(f).is_some(), "config lacks {f}: {c}");
    }
    let (s, _) = call(&env, "GET", "/api/users/me", None, None).await;
    assert_eq!(s, 401);
    let alice = jwt("alice");
    let (s, me) = get(&env, "/api/users/me", &alice).await;
    assert_eq!(s, 200);
    assert_eq!(me["id"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["publicKeys"], json!([]));
    let (s, _) = get(&env, "/api/users/bob", &alice).await;
    assert_eq!(s, 403, "only admins read other users");
    let (s, v) = get(&env, "/api/users/account-providers", &alice).await;
    assert_eq!(s, 200);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|p| p == &json!({"provider": "github", "displayName": "GitHub", "linked": false})),
        "{v}"
    );
    let (s, r) = call(&env, "GET", "/api/health/ready", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(r["status"], "ok");
    assert_eq!(r["info"]["database"]["status"], "up");
}

#[tokio::test]
async fn organization_lifecycle_and_defaults() {
    let env = env().await;
    let alice = jwt("alice");
    let (s, list) = get(&env, "/api/organizations", &alice).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "personal org: {list}");
    let personal = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["personal"], true);
    let org = create_org(&env, &alice, "Team").await;
    let (s, o) = get(&env, &format!("/api/organizations/{org}"), &alice).await;
    assert_eq!(s, 200);
    for f in ORG_FIELDS {
        assert!(o.get(*f).is_some(), "organization lacks {f}: {o}");
    }
    assert_eq!(o["name"], "Team");
    assert_eq!(o["personal"], false);
    assert_eq!(o["createdBy"], "alice");
    assert_eq!(o["maxCpuPerSandbox"], 4);
    assert_eq!(o["maxMemoryPerSandbox"], 8);
    assert_eq!(o["maxDiskPerSandbox"], 10);
    assert_eq!(o["suspended"], false);
    assert!(o["suspendedAt"].is_string() && o["suspensionReason"].is_string());
    let (s, u) = get(&env, &format!("/api/organizations/{org}/usage"), &alice).await;
    assert_eq!(s, 200);
    assert_eq!(u["totalSnapshotQuota"], 30);
    assert_eq!(u["totalVolumeQuota"], 100);
    assert_eq!(u["currentVolumeUsage"], 0);
    assert_eq!(u["regionUsage"][0]["maxCpuPerSandbox"], 4);
    let (_, list) = get(&env, "/api/organizations", &alice).await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // Personal organizations can be neither deleted nor left.
    let (s, _) = delete(&env, &format!("/api/organizations/{personal}"), &alice).await;
    assert_eq!(s, 403);
    let (s, _) = post(
        &env,
        &format!("/api/organizations/{personal}/leave"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(s, 403);
    // The last owner cannot leave.
    let (s, v) = post(
        &env,
        &format!("/api/organizations/{org}/leave"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(s, 403, "{v}");

    let (s, _) = delete(&env, &format!("/api/organizations/{org}"), &alice).await;
    assert_eq!(s, 204);
    let (s, _) = get(&env, &format!("/api/organizations/{org}"), &alice).await;
    assert_eq!(s, 403, "no membership left");
    let (s, _) = delete(&env, &format!("/api/organizations/{org}"), &alice).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn bad_input_gets_the_right_4xx() {
    let env = env().await;
    let alice = jwt("alice");
    let org = create_org(&env, &alice, "Team").await;
    let base = format!("/api/organizations/{org}");
    for (method, path, body, want) in [
        (
            "POST",
            "/api/organizations".to_owned(),
            Some("{not json"),
            400,
        ),
        (
            "POST",
            "/api/organizations".to_owned(),
            Some(r#"{"name": 5}"#),
            400,
        ),
        (
            "POST",
            "/api/organizations".to_owned(),
            Some(r#"{"name": "  "}"#),
            400,
        ),
        ("GET", "/api/organizations/not-a-uuid".to_owned(), None, 400),
        (
            "GET",
            format!("/api/organizations/{}", uuid::Uuid::new_v4()),
            None,
            403,
        ),
        (
            "POST",
            format!("{base}/roles"),
            Some(r#"{"name":"r","description":"","permissions":["write:everything"]}"#),
            400,
        ),
        (
            "PUT",
            format!("{base}/roles/nope"),
            Some(r#"{"name":"r","description":"","permissions":[]}"#),
            400,
        ),
        (
            "PUT",
            format!("{base}/roles/{}", uuid::Uuid::new_v4()),
            Some(r#"{"name":"r","description":"","permissions":[]}"#),
            404,
        ),
        (
            "DELETE",
            format!("{base}/roles/{}", uuid::Uuid::new_v4()),
            None,
            404,
        ),
        (
            "DELETE",
            format!("{base}/roles/00000000-0000-4000-8000-000000000001"),
            None,
            403,
        ),
        (
            "POST",
            format!("{base}/invitations"),
            Some(r#"{"email":"nope","role":"member","assignedRoleIds":[]}"#),
            400,
        ),
        (
            "POST",
            format!("{base}/invitations"),
            Some(r#"{"email":"x@y.io","role":"king","assignedRoleIds":[]}"#),
            400,
        ),
        (
            "POST",
            format!("{base}/invitations"),
            Some(&format!(
                r#"{{"email":"x@y.io","role":"member","assignedRoleIds":["{}"]}}"#,
                uuid::Uuid::new_v4()
            )),
            400,
        ),
        (
            "POST",
            format!("{base}/invitations"),
            Some(
                r#"{"email":"x@y.io","role":"member","assignedRoleIds":[],"expiresAt":"2001-01-01T00:00:00Z"}"#,
            ),
            400,
        ),
        (
            "POST",
            format!("{base}/invitations/{}/cancel", uuid::Uuid::new_v4()),
            Some("{}"),
            404,
        ),
        (
            "POST",
            format!("{base}/invitations/bad/cancel"),
            Some("{}"),
            400,
        ),
        (
            "POST",
            format!(
                "/api/organizations/invitations/{}/accept",
                uuid::Uuid::new_v4()
            ),
            Some("{}"),
            404,
        ),
        (
            "POST",
            format!("{base}/users/ghost/access"),
            Some(r#"{"role":"member","assignedRoleIds":[]}"#),
            404,
        ),
        ("DELETE", format!("{base}/users/ghost"), None, 404),
        (
            "PATCH",
            format!("{base}/quota"),
            Some(r#"{"maxCpuPerSandbox": 8}"#),
            403,
        ),
        (
            "POST",
            format!("{base}/suspend"),
            Some(r#"{"reason":"x"}"#),
            403,
        ),
        ("GET", format!("{base}/nothing-here"), None, 404),
    ] {
        let (s, v) = call(&env, method, &path, Some(&alice), body).await;
        assert_eq!(s, want, "{method} {path} {body:?}: {v}");
    }
    // Duplicate role names (also against global roles) are 409.
    let body = json!({"name": "Deployers", "description": "", "permissions": ["write:sandboxes"]});
    let (s, _) = post(&env, &format!("{base}/roles"), &alice, body.clone()).await;
    assert_eq!(s, 201);
    let (s, _) = post(&env, &format!("{base}/roles"), &alice, body).await;
    assert_eq!(s, 409);
    let (s, _) = post(
        &env,
        &format!("{base}/roles"),
        &alice,
        json!({"name": "developer", "description": "", "permissions": []}),
    )
    .await;
    assert_eq!(s, 409);
    // A second pending invitation for the same email is 409.
    let inv = json!({"email": "x@y.io", "role": "member", "assignedRoleIds": []});
    assert_eq!(
        post(&env, &format!("{base}/invitations"), &alice, inv.clone())
            .await
            .0,
        201
    );
    assert_eq!(
        post(&env, &format!("{base}/invitations"), &alice, inv)
            .await
            .0,
        409
    );
}

#[tokio::test]
async fn api_keys_are_refused_on_organization_routes() {
    let env = env().await;
    let alice = jwt("alice");
    let (_, orgs) = get(&env, "/api/organizations", &alice).await;
    let org = orgs[0]["id"].as_str().unwrap().to_owned();
    let req = request(
        "POST",
        "/api/api-keys",
        Some(&alice),
        None,
        Some(&json!({"name": "k", "permissions": ["write:sandboxes"]}).to_string()),
    );
    let resp = api_keys::handle(&env, req).await;
    let key: Value = serde_json::from_slice(resp.body()).unwrap();
    let key = key["value"].as_str().unwrap();
    for path in [
        "/api/organizations".to_owned(),
        format!("/api/organizations/{org}"),
        "/api/users/me".to_owned(),
    ] {
        let (s, _) = get(&env, &path, key).await;
        assert_eq!(s, 403, "{path}");
    }
}

#[tokio::test]
async fn invite_accept_members_roles_and_grants() {
    let env = env().await;
    let (alice, bob, carol) = (jwt("alice"), jwt("bob"), jwt("carol"));
    let org = create_org(&env, &alice, "Team").await;
    let base = format!("/api/organizations/{org}");
    let (s, role) = post(&env, &format!("{base}/roles"), &alice,
        json!({"name": "Deployer", "description": "ships", "permissions": ["write:sandboxes", "delete:sandboxes"]})).await;
    assert_eq!(s, 201, "{role}");
    assert_eq!(role["isGlobal"], false);
    let role_id = role["id"].as_str().unwrap().to_owned();
    let (_, roles) = get(&env, &format!("{base}/roles"), &alice).await;
    assert!(
        roles
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == role_id.as_str())
    );
    assert!(
        roles
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["isGlobal"] == true)
    );

    // Bob sees the invitation, accepts it, and is a member with the role.
    let (s, inv) = post(
        &env,
        &format!("{base}/invitations"),
        &alice,
        json!({"email": "Bob@Example.com", "role": "member", "assignedRoleIds": [role_id]}),
    )
    .await;
    assert_eq!(s, 201, "{inv}");
    assert_eq!(inv["organizationName"], "Team");
    assert_eq!(inv["assignedRoles"][0]["id"], role_id.as_str());
    let (_, count) = get(&env, "/api/organizations/invitations/count", &bob).await;
    assert_eq!(count, 1);
    let (_, mine) = get(&env, "/api/organizations/invitations", &bob).await;
    assert_eq!(mine[0]["id"], inv["id"]);
    let (_, none) = get(&env, "/api/organizations/invitations", &carol).await;
    assert_eq!(none, json!([]));
    let id = inv["id"].as_str().unwrap();
    // Carol cannot accept Bob's invitation.
    let (s, _) = post(
        &env,
        &format!("/api/organizations/invitations/{id}/accept"),
        &carol,
        json!({}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = post(
        &env,
        &format!("/api/organizations/invitations/{id}/accept"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = post(
        &env,
        &format!("/api/organizations/invitations/{id}/accept"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(s, 404, "accepted once");
    let (_, members) = get(&env, &format!("{base}/users"), &bob).await;
    let members = members.as_array().unwrap();
    assert_eq!(members.len(), 2);
    let b = members.iter().find(|m| m["userId"] == "bob").unwrap();
    assert_eq!(b["role"], "member");
    assert_eq!(b["email"], "bob@example.com");
    assert_eq!(b["assignedRoles"][0]["name"], "Deployer");

    // Bob now holds the role's permissions: he can create an API key with them, not with others.
    let key = |perms: Value| {
        request(
            "POST",
            "/api/api-keys",
            Some(&bob),
            Some(&org),
            Some(
                &json!({"name": format!("k{}", perms.to_string().len()), "permissions": perms})
                    .to_string(),
            ),
        )
    };
    assert_eq!(
        api_keys::handle(&env, key(json!(["write:sandboxes"])))
            .await
            .status(),
        201
    );
    assert_eq!(
        api_keys::handle(&env, key(json!(["write:volumes"])))
            .await
            .status(),
        403
    );

    // A member manages nothing and cannot grant anything.
    let (s, _) = post(
        &env,
        &format!("{base}/roles"),
        &bob,
        json!({"name": "Mine", "description": "", "permissions": ["write:sandboxes"]}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = post(
        &env,
        &format!("{base}/invitations"),
        &bob,
        json!({"email": "carol@example.com", "role": "owner", "assignedRoleIds": []}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = post(
        &env,
        &format!("{base}/users/bob/access"),
        &bob,
        json!({"role": "owner", "assignedRoleIds": []}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = delete(&env, &format!("{base}/users/alice"), &bob).await;
    assert_eq!(s, 403);
    let (s, _) = delete(&env, &base, &bob).await;
    assert_eq!(s, 403);

    // Promote Bob; then Alice may leave (Bob remains owner) and Bob cannot be removed as the last one.
    let (s, v) = post(
        &env,
        &format!("{base}/users/bob/role"),
        &alice,
        json!({"role": "owner"}),
    )
    .await;
    assert_eq!((s, v["role"].as_str()), (200, Some("owner")));
    let (s, v) = post(
        &env,
        &format!("{base}/users/bob/assigned-roles"),
        &alice,
        json!({"roleIds": []}),
    )
    .await;
    assert_eq!((s, v["assignedRoles"].clone()), (200, json!([])));
    let (s, _) = post(&env, &format!("{base}/leave"), &alice, json!({})).await;
    assert_eq!(s, 204);
    let (s, _) = delete(&env, &format!("{base}/users/bob"), &bob).await;
    assert_eq!(s, 403, "last owner");
    let (s, _) = post(
        &env,
        &format!("{base}/users/bob/access"),
        &bob,
        json!({"role": "member", "assignedRoleIds": []}),
    )
    .await;
    assert_eq!(s, 403, "last owner cannot be demoted");
    let (s, _) = get(&env, &base, &alice).await;
    assert_eq!(s, 403, "alice left");

    // Roles: update, delete.
    let (s, r) = put(
        &env,
        &format!("{base}/roles/{role_id}"),
        &bob,
        json!({"name": "Deployer2", "description": "", "permissions": ["write:snapshots"]}),
    )
    .await;
    assert_eq!((s, r["name"].as_str()), (200, Some("Deployer2")));
    let (s, _) = delete(&env, &format!("{base}/roles/{role_id}"), &bob).await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn invitations_update_cancel_decline() {
    let env = env().await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let org = create_org(&env, &alice, "Team").await;
    let base = format!("/api/organizations/{org}");
    let new = |email: &str| json!({"email": email, "role": "member", "assignedRoleIds": []});
    let (_, inv) = post(
        &env,
        &format!("{base}/invitations"),
        &alice,
        new("bob@example.com"),
    )
    .await;
    let id = inv["id"].as_str().unwrap().to_owned();
    let (s, v) = put(
        &env,
        &format!("{base}/invitations/{id}"),
        &alice,
        json!({"role": "owner", "assignedRoleIds": ["00000000-0000-4000-8000-000000000002"]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["role"], "owner");
    assert_eq!(v["assignedRoles"][0]["name"], "Sandboxes Admin");
    let (_, list) = get(&env, &format!("{base}/invitations"), &alice).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, _) = post(
        &env,
        &format!("/api/organizations/invitations/{id}/decline"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    let (_, list) = get(&env, &format!("{base}/invitations"), &alice).await;
    assert_eq!(list, json!([]));
    let (s, _) = post(
        &env,
        &format!("{base}/invitations/{id}/cancel"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(s, 404, "no longer pending");
    let (_, inv) = post(
        &env,
        &format!("{base}/invitations"),
        &alice,
        new("bob@example.com"),
    )
    .await;
    let id = inv["id"].as_str().unwrap().to_owned();
    let (s, _) = post(
        &env,
        &format!("{base}/invitations/{id}/cancel"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = post(
        &env,
        &format!("/api/organizations/invitations/{id}/accept"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(s, 404);
    let (_, count) = get(&env, "/api/organizations/invitations/count", &bob).await;
    assert_eq!(count, 0);
}

/// Every route that names another tenant's data, called by an outsider: `(method, OpenAPI path, body)`.
const TENANT_MATRIX: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/api/organizations/{organizationId}", None),
    ("DELETE", "/api/organizations/{organizationId}", None),
    ("GET", "/api/organizations/{organizationId}/usage", None),
    (
        "PATCH",
        "/api/organizations/{organizationId}/quota",
        Some("{}"),
    ),
    (
        "POST",
        "/api/organizations/{organizationId}/leave",
        Some("{}"),
    ),
    (
        "POST",
        "/api/organizations/{organizationId}/suspend",
        Some(r#"{"reason":"x"}"#),
    ),
    (
        "POST",
        "/api/organizations/{organizationId}/unsuspend",
        Some("{}"),
    ),
    ("GET", "/api/organizations/{organizationId}/users", None),
    (
        "POST",
        "/api/organizations/{organizationId}/users/{userId}/access",
        Some(r#"{"role":"owner","assignedRoleIds":[]}"#),
    ),
    (
        "POST",
        "/api/organizations/{organizationId}/users/{userId}/role",
        Some(r#"{"role":"owner"}"#),
    ),
    (
        "POST",
        "/api/organizations/{organizationId}/users/{userId}/assigned-roles",
        Some(r#"{"roleIds":[]}"#),
    ),
    (
        "DELETE",
        "/api/organizations/{organizationId}/users/{userId}",
        None,
    ),
    (
        "POST",
        "/api/organizations/{organizationId}/roles",
        Some(r#"{"name":"x","description":"","permissions":[]}"#),
    ),
    ("GET", "/api/organizations/{organizationId}/roles", None),
    (
        "PUT",
        "/api/organizations/{organizationId}/roles/{roleId}",
        Some(r#"{"name":"x","description":"","permissions":[]}"#),
    ),
    (
        "DELETE",
        "/api/organizations/{organizationId}/roles/{roleId}",
        None,
    ),
    (
        "POST",
        "/api/organizations/{organizationId}/invitations",
        Some(r#"{"email":"mallory@example.com","role":"owner","assignedRoleIds":[]}"#),
    ),
    (
        "GET",
        "/api/organizations/{organizationId}/invitations",
        None,
    ),
    (
        "PUT",
        "/api/organizations/{organizationId}/invitations/{invitationId}",
        Some(r#"{"role":"owner","assignedRoleIds":[]}"#),
    ),
    (
        "POST",
        "/api/organizations/{organizationId}/invitations/{invitationId}/cancel",
        Some("{}"),
    ),
    (
        "POST",
        "/api/organizations/invitations/{invitationId}/accept",
        Some("{}"),
    ),
    (
        "POST",
        "/api/organizations/invitations/{invitationId}/decline",
        Some("{}"),
    ),
    ("GET", "/api/users/{id}", None),
    ("POST", "/api/users", Some(r#"{"name":"x"}"#)),
    ("GET", "/api/users", None),
    ("POST", "/api/users/{id}/regenerate-key-pair", Some("{}")),
    (
        "PATCH",
        "/api/organizations/{organizationId}/quota/{regionId}",
        Some(r#"{"totalCpuQuota": 99}"#),
    ),
];

/// Routes that only ever act on the caller's own data (no foreign id in the request), or are
/// public. The api-keys routes are scoped to the caller's organization and are tenant-tested in
/// `functions/api-keys/tests/api.rs` (`tenants_never_see_each_others_keys`).
const SELF_SCOPED: &[(&str, &str)] = &[
    ("GET", "/api/health"),
    ("GET", "/api/health/ready"),
    ("GET", "/api/config"),
    ("GET", "/api/users/me"),
    ("GET", "/api/users/account-providers"),
    ("POST", "/api/users/linked-accounts"),
    (
        "DELETE",
        "/api/users/linked-accounts/{provider}/{providerUserId}",
    ),
    ("POST", "/api/organizations"),
    ("GET", "/api/organizations"),
    ("GET", "/api/organizations/invitations"),
    ("GET", "/api/organizations/invitations/count"),
    ("POST", "/api/api-keys"),
    ("GET", "/api/api-keys"),
    ("GET", "/api/api-keys/current"),
    ("GET", "/api/api-keys/{name}"),
    ("DELETE", "/api/api-keys/{name}"),
    ("DELETE", "/api/api-keys/{userId}/{name}"),
];

/// The path prefixes this crate and api-keys serve; other functions' routes have their own matrices.
const OWN_PREFIXES: &[&str] = &[
    "/api/organizations",
    "/api/users",
    "/api/api-keys",
    "/api/config",
    "/api/health",
];

fn owned(path: &str) -> bool {
    OWN_PREFIXES.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// A route of ours added to the checked-in OpenAPI document without a tenant case fails here.
#[test]
fn every_documented_route_has_a_tenant_case() {
    let doc: Value = cove_testkit::bins::control_plane_document();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !owned(path) {
            continue;
        }
        checked += 1;
        for method in item.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            let covered = TENANT_MATRIX
                .iter()
                .any(|(tm, tp, _)| *tm == m && tp == path)
                || SELF_SCOPED.iter().any(|(sm, sp)| *sm == m && sp == path);
            if !covered {
                missing.push(format!("{m} {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes without a cross-tenant case: {missing:?}"
    );
    assert!(
        checked >= 30,
        "only {checked} paths of ours in the document"
    );
    // Every case names a documented route (a stale entry would hide a missing one).
    for (m, p) in TENANT_MATRIX
        .iter()
        .map(|(m, p, _)| (m, p))
        .chain(SELF_SCOPED.iter().map(|(m, p)| (m, p)))
    {
        assert!(
            doc["paths"][*p].get(m.to_lowercase()).is_some(),
            "{m} {p} is not in the document"
        );
    }
    assert!(owned("/api/users") && owned("/api/health/ready") && !owned("/api/sandbox"));
    assert!(!owned("/api/organizationsx"));
}

#[tokio::test]
async fn cross_tenant_requests_leak_nothing() {
    let env = env().await;
    let (alice, mallory) = (jwt("alice"), jwt("mallory"));
    let org = create_org(&env, &alice, "Team").await;
    let (_, role) = post(
        &env,
        &format!("/api/organizations/{org}/roles"),
        &alice,
        json!({"name": "R", "description": "", "permissions": []}),
    )
    .await;
    let rid = role["id"].as_str().unwrap();
    let (_, inv) = post(
        &env,
        &format!("/api/organizations/{org}/invitations"),
        &alice,
        json!({"email": "z@example.com", "role": "member", "assignedRoleIds": []}),
    )
    .await;
    let iid = inv["id"].as_str().unwrap();
    let b = format!("/api/organizations/{org}");
    for (method, template, body) in TENANT_MATRIX {
        let path = template
            .replace("{organizationId}", &org)
            .replace("{roleId}", rid)
            .replace("{invitationId}", iid)
            .replace("{userId}", "alice")
            .replace("{id}", "alice")
            .replace("{regionId}", "us");
        let (method, body) = (*method, *body);
        let (s, v) = call(&env, method, &path, Some(&mallory), body).await;
        assert!(s == 403 || s == 404, "{method} {path}: {s} {v}");
        // The function's own refusal, not a router's 404 ("Cannot GET ..."): a documented route
        // that is not routed fails here.
        let refusals = [
            "Invalid authentication context".to_owned(),
            "This action requires a system admin".to_owned(),
            format!("Invitation with ID {iid} not found"),
        ];
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| refusals.iter().any(|r| r == m)),
            "{method} {path}: {s} {v}"
        );
        // The path is echoed back; nothing else about the organization may be.
        let text = v["message"].to_string();
        assert!(
            v.as_object().unwrap().keys().all(|k| [
                "error",
                "message",
                "path",
                "source",
                "statusCode",
                "timestamp",
                "code"
            ]
            .contains(&k.as_str())),
            "{v}"
        );
        assert!(
            !text.contains("Team") && !text.contains("alice@") && !text.contains(rid),
            "{method} {path} leaked: {v}"
        );
    }
    // And with the foreign organization as her header context she is refused outright.
    let resp = organizations::handle(
        &env,
        request(
            "GET",
            "/api/organizations",
            Some(&mallory),
            Some(&org),
            None,
        ),
    )
    .await;
    assert_eq!(resp.status(), 403);
    // Nothing changed.
    let (s, o) = get(&env, &b, &alice).await;
    assert_eq!((s, o["suspended"].as_bool()), (200, Some(false)));
    let (_, m) = get(&env, &format!("{b}/users"), &alice).await;
    assert_eq!(m.as_array().unwrap().len(), 1);
    let (_, i) = get(&env, &format!("{b}/invitations"), &alice).await;
    assert_eq!(i.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn system_admin_quota_and_suspension() {
    let env = env().await;
    make_admin(&env, "root").await;
    let (alice, root) = (jwt("alice"), jwt("root"));
    let org = create_org(&env, &alice, "Team").await;
    let b = format!("/api/organizations/{org}");
    let (s, v) = call(
        &env,
        "PATCH",
        &format!("{b}/quota"),
        Some(&root),
        Some(r#"{"maxCpuPerSandbox": 16, "volumeQuota": null}"#),
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (s, _) = call(
        &env,
        "PATCH",
        &format!("{b}/quota"),
        Some(&root),
        Some(r#"{"maxCpuPerSandbox": -1}"#),
    )
    .await;
    assert_eq!(s, 400);
    let (_, o) = get(&env, &b, &alice).await;
    assert_eq!(o["maxCpuPerSandbox"], 16);
    assert_eq!(o["volumeQuota"], 100);
    // The region quota is the organization's (one region, `us`).
    let rq = |token: &str, region: &str, body: &str| {
        let (env, path, token, body) = (
            env.clone(),
            format!("{b}/quota/{region}"),
            token.to_owned(),
            body.to_owned(),
        );
        async move {
            call(&env, "PATCH", &path, Some(&token), Some(&body))
                .await
                .0
        }
    };
    let body = r#"{"totalCpuQuota": 40, "totalMemoryQuota": 80, "totalDiskQuota": null, "totalGpuQuota": 0, "maxMemoryPerSandbox": 16}"#;
    assert_eq!(rq(&root, "us", body).await, 204);
    assert_eq!(rq(&alice, "us", body).await, 403);
    assert_eq!(rq(&root, "eu", body).await, 404);
    for bad in [
        r#"{"totalCpuQuota": -1}"#,
        r#"{"totalGpuQuota": 2}"#,
        r#"{"sandboxClass": "linux-vm"}"#,
        r#"{"maxSandboxLifespan": 60}"#,
        r#"{"totalCpuQuota": "lots"}"#,
    ] {
        assert_eq!(rq(&root, "us", bad).await, 400, "{bad}");
    }
    let (_, u) = get(&env, &format!("{b}/usage"), &alice).await;
    let r = &u["regionUsage"][0];
    assert_eq!(
        (
            r["regionId"].as_str(),
            &r["totalCpuQuota"],
            &r["totalMemoryQuota"],
            &r["totalDiskQuota"]
        ),
        (Some("us"), &json!(40), &json!(80), &json!(30)),
        "{u}"
    );
    let (_, o) = get(&env, &b, &alice).await;
    assert_eq!(
        (&o["maxMemoryPerSandbox"], &o["maxCpuPerSandbox"]),
        (&json!(16), &json!(16))
    );
    let (s, _) = post(
        &env,
        &format!("/api/organizations/{}/suspend", uuid::Uuid::new_v4()),
        &root,
        json!({"reason": "x"}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = post(
        &env,
        &format!("{b}/suspend"),
        &root,
        json!({"reason": "unpaid", "until": "not a date"}),
    )
    .await;
    assert_eq!(s, 400);

    // Suspended: creating is refused with the reason; reads still work; unsuspend restores.
    let ctx = |token: String| {
        let env = env.clone();
        let org = org.clone();
        async move {
            cove_edge::auth::authenticate(
                &env,
                &request("GET", "/x", Some(&token), Some(&org), None),
            )
            .await
            .unwrap()
        }
    };
    let create = cove_edge::Action::Create(cove_api_types::permissions::Permission::WriteSandboxes);
    assert!(
        cove_edge::authorize(&env, &ctx(alice.clone()).await, create.clone())
            .await
            .is_ok()
    );
    let (s, _) = post(
        &env,
        &format!("{b}/suspend"),
        &root,
        json!({"reason": "unpaid"}),
    )
    .await;
    assert_eq!(s, 204);
    let (_, o) = get(&env, &b, &alice).await;
    assert_eq!(
        (o["suspended"].as_bool(), o["suspensionReason"].as_str()),
        (Some(true), Some("unpaid"))
    );
    let e = cove_edge::authorize(&env, &ctx(alice.clone()).await, create.clone())
        .await
        .unwrap_err();
    assert_eq!(e.status, 403);
    assert!(e.message.contains("unpaid"), "{}", e.message);
    let read = cove_edge::Action::OrgRead;
    assert!(
        cove_edge::authorize(&env, &ctx(alice.clone()).await, read)
            .await
            .is_ok()
    );
    let (s, _) = post(&env, &format!("{b}/unsuspend"), &root, json!({})).await;
    assert_eq!(s, 204);
    assert!(
        cove_edge::authorize(&env, &ctx(alice.clone()).await, create)
            .await
            .is_ok()
    );
    let (s, _) = get(&env, "/api/users/alice", &root).await;
    assert_eq!(s, 200, "admins read any user");

    // User management is for system admins.
    let (s, u) = post(
        &env,
        "/api/users",
        &root,
        json!({"id": "dave", "name": "Dave", "email": "dave@example.com"}),
    )
    .await;
    assert_eq!((s, u["id"].as_str()), (201, Some("dave")), "{u}");
    let (s, _) = post(
        &env,
        "/api/users",
        &root,
        json!({"id": "dave", "name": "Dave"}),
    )
    .await;
    assert_eq!(s, 409);
    let (s, _) = post(
        &env,
        "/api/users",
        &root,
        json!({"name": "Eve", "role": "god"}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = post(&env, "/api/users", &alice, json!({"name": "Eve"})).await;
    assert_eq!(s, 403);
    let (s, users) = get(&env, "/api/users", &root).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice", "dave", "root"]);
    let (s, _) = get(&env, "/api/users", &alice).await;
    assert_eq!(s, 403);
    let (_, dave_orgs) = get(&env, "/api/organizations", &jwt("dave")).await;
    assert_eq!(
        dave_orgs[0]["personal"], true,
        "created users get a personal organization"
    );

    // Regenerating a key pair: system admins only; 201 with an empty body; the private half
    // never leaves the store.
    let path = "/api/users/alice/regenerate-key-pair";
    let (s, _) = post(&env, path, &alice, json!({})).await;
    assert_eq!(s, 403, "not for non-admins, not even on themselves");
    let alice_id = UserId::parse("alice").unwrap();
    assert!(
        env.store
            .users()
            .get(&alice_id)
            .await
            .unwrap()
            .unwrap()
            .key_pair
            .is_none()
    );
    let resp = organizations::handle(&env, request("POST", path, Some(&root), None, None)).await;
    assert_eq!(resp.status(), 201);
    assert!(resp.body().is_empty(), "{:?}", resp.body());
    let first = env
        .store
        .users()
        .get(&alice_id)
        .await
        .unwrap()
        .unwrap()
        .key_pair
        .unwrap();
    assert!(
        first
            .public_key
            .starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"),
        "{}",
        first.public_key
    );
    let (s, _) = post(&env, path, &root, json!({})).await;
    assert_eq!(s, 201);
    let second = env
        .store
        .users()
        .get(&alice_id)
        .await
        .unwrap()
        .unwrap()
        .key_pair
        .unwrap();
    assert_ne!(first.public_key, second.public_key);
    assert_ne!(first.private_key, second.private_key);
    for (token, p) in [
        (&alice, "/api/users/me"),
        (&root, "/api/users/alice"),
        (&root, "/api/users"),
    ] {
        let (_, v) = get(&env, p, token).await;
        let text = v.to_string();
        assert!(
            !text.contains(&second.private_key) && !text.contains("privateKey"),
            "{p}: {v}"
        );
    }
    let (s, _) = post(
        &env,
        "/api/users/nobody/regenerate-key-pair",
        &root,
        json!({}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = post(
        &env,
        "/api/users/bad%23id/regenerate-key-pair",
        &root,
        json!({}),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn linked_accounts_are_stored_unique_and_removable() {
    let env = env().await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let link = |t: String, body: Value| {
        let env = env.clone();
        async move { post(&env, "/api/users/linked-accounts", &t, body).await.0 }
    };
    let providers = |t: String| {
        let env = env.clone();
        async move {
            let (s, v) = get(&env, "/api/users/account-providers", &t).await;
            assert_eq!(s, 200);
            // The providers the caller has linked.
            v.as_array()
                .unwrap()
                .iter()
                .filter(|p| p["linked"] == true)
                .map(|p| p["provider"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(providers(alice.clone()).await.is_empty());
    assert_eq!(
        link(
            alice.clone(),
            json!({"provider": "github", "userId": "1234"})
        )
        .await,
        204
    );
    // Linked: shown as linked, and stored on the user.
    assert_eq!(providers(alice.clone()).await, ["github"]);
    assert!(providers(bob.clone()).await.is_empty());
    let alice_id = UserId::parse("alice").unwrap();
    let links = env.store.users().linked_accounts(&alice_id).await.unwrap();
    assert_eq!(
        links
            .iter()
            .map(|l| (l.provider.as_str(), l.provider_user_id.as_str()))
            .collect::<Vec<_>>(),
        [("github", "1234")]
    );
    // The same provider identity links once, whoever asks.
    assert_eq!(
        link(
            alice.clone(),
            json!({"provider": "github", "userId": "1234"})
        )
        .await,
        409
    );
    assert_eq!(
        link(bob.clone(), json!({"provider": "github", "userId": "1234"})).await,
        409
    );
    // Bad input.
    for body in [
        json!({"provider": "myspace", "userId": "1"}),
        json!({"provider": "github", "userId": ""}),
        json!({"provider": "github", "userId": "a#b"}),
        json!({"provider": "github", "userId": "x".repeat(256)}),
        json!({"provider": "github"}),
        json!({"userId": "1"}),
    ] {
        assert_eq!(link(alice.clone(), body.clone()).await, 400, "{body}");
    }
    let (s, _) = call(
        &env,
        "POST",
        "/api/users/linked-accounts",
        Some(&alice),
        Some("{nope"),
    )
    .await;
    assert_eq!(s, 400);
    // Only the owner of a link removes it.
    let (s, _) = delete(&env, "/api/users/linked-accounts/github/1234", &bob).await;
    assert_eq!(s, 404);
    let (s, _) = delete(&env, "/api/users/linked-accounts/myspace/1234", &alice).await;
    assert_eq!(s, 400);
    let (s, _) = delete(&env, "/api/users/linked-accounts/github/1234", &alice).await;
    assert_eq!(s, 204);
    let (s, _) = delete(&env, "/api/users/linked-accounts/github/1234", &alice).await;
    assert_eq!(s, 404);
    assert!(
        env.store
            .users()
            .linked_accounts(&alice_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !env.store
            .scan_keys()
            .await
            .unwrap()
            .iter()
            .any(|(pk, sk)| pk.starts_with("ACCOUNTLINK#") || sk.starts_with("LINK#")),
        "link rows left behind"
    );
    // Free again: Bob can take it now.
    assert_eq!(
        link(bob.clone(), json!({"provider": "github", "userId": "1234"})).await,
        204
    );
    // Concurrent links of one identity: exactly one wins.
    let results = futures::future::join_all((0..20).map(|i| {
        let t = jwt(&format!("racer{i}"));
        link(t, json!({"provider": "gitlab", "userId": "42"}))
    }))
    .await;
    assert_eq!(
        results.iter().filter(|s| **s == 204).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|s| **s == 409).count(),
        19,
        "{results:?}"
    );
}

#[tokio::test]
async fn deleting_an_organization_leaves_nothing_behind() {
    let env = env().await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let org = create_org(&env, &alice, "Doomed").await;
    let b = format!("/api/organizations/{org}");
    let (_, role) = post(
        &env,
        &format!("{b}/roles"),
        &alice,
        json!({"name": "R", "description": "", "permissions": ["write:sandboxes"]}),
    )
    .await;
    join(
        &env,
        &alice,
        &org,
        "bob",
        "member",
        &[role["id"].as_str().unwrap()],
    )
    .await;
    post(
        &env,
        &format!("{b}/invitations"),
        &alice,
        json!({"email": "carol@example.com", "role": "member", "assignedRoleIds": []}),
    )
    .await;
    for (who, name) in [(&alice, "a"), (&bob, "b")] {
        let req = request(
            "POST",
            "/api/api-keys",
            Some(who),
            Some(&org),
            Some(&json!({"name": name, "permissions": ["write:sandboxes"]}).to_string()),
        );
        assert_eq!(api_keys::handle(&env, req).await.status(), 201);
    }
    let before = env.store.scan_keys().await.unwrap();
    assert!(
        before
            .iter()
            .filter(|(pk, _)| pk.starts_with("APIKEYHASH#"))
            .count()
            >= 2
    );
    let (s, _) = delete(&env, &b, &alice).await;
    assert_eq!(s, 204);
    let after = env.store.scan_keys().await.unwrap();
    let org_pk = format!("ORG#{org}");
    assert!(
        !after.iter().any(|(pk, _)| *pk == org_pk),
        "left in the partition: {after:?}"
    );
    assert!(
        !after.iter().any(|(pk, _)| pk.starts_with("APIKEYHASH#")),
        "dangling key pointers: {after:?}"
    );
    // Users and their personal organizations stay.
    assert!(after.contains(&("USER#bob".to_owned(), "#META".to_owned())));
    let (_, list) = get(&env, "/api/organizations", &bob).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_accept_and_cancel_have_exactly_one_winner() {
    let env = env().await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let org = create_org(&env, &alice, "Race").await;
    get(&env, "/api/users/me", &bob).await;
    let (_, inv) = post(
        &env,
        &format!("/api/organizations/{org}/invitations"),
        &alice,
        json!({"email": "bob@example.com", "role": "member", "assignedRoleIds": []}),
    )
    .await;
    let id = inv["id"].as_str().unwrap().to_owned();
    let accept = format!("/api/organizations/invitations/{id}/accept");
    let cancel = format!("/api/organizations/{org}/invitations/{id}/cancel");
    let calls = (0..20).map(|i| {
        let env = env.clone();
        let (path, token) = if i % 2 == 0 {
            (accept.clone(), bob.clone())
        } else {
            (cancel.clone(), alice.clone())
        };
        tokio::spawn(async move {
            let resp =
                organizations::handle(&env, request("POST", &path, Some(&token), None, Some("{}")))
                    .await;
            (i % 2 == 0, resp.status().as_u16())
        })
    });
    let results: Vec<(bool, u16)> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let wins: Vec<_> = results
        .iter()
        .filter(|(_, s)| *s == 200 || *s == 204)
        .collect();
    assert_eq!(wins.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(_, s)| [200, 204, 404, 409].contains(s)),
        "{results:?}"
    );
    let accepted = wins[0].0;
    let member = env
        .store
        .memberships()
        .get(&org.parse().unwrap(), &UserId::parse("bob").unwrap())
        .await
        .unwrap();
    assert_eq!(member.is_some(), accepted, "membership iff the accept won");
    let rec = env
        .store
        .invitations()
        .get(&org.parse().unwrap(), &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.status.as_str(),
        if accepted { "accepted" } else { "cancelled" }
    );
    assert_eq!(rec.version, 2, "exactly one transition");
}

#[tokio::test]
async fn concurrent_owner_removals_keep_an_owner() {
    let env = env().await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let org = create_org(&env, &alice, "Owners").await;
    join(&env, &alice, &org, "bob", "owner", &[]).await;
    // Each owner removes the other at the same time, ten times over.
    let calls = (0..20).map(|i| {
        let env = env.clone();
        let (token, victim) = if i % 2 == 0 {
            (alice.clone(), "bob")
        } else {
            (bob.clone(), "alice")
        };
        let path = format!("/api/organizations/{org}/users/{victim}");
        tokio::spawn(async move {
            organizations::handle(&env, request("DELETE", &path, Some(&token), None, None))
                .await
                .status()
                .as_u16()
        })
    });
    let results: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        results.iter().all(|s| [204, 403, 404, 409].contains(s)),
        "{results:?}"
    );
    let members = env
        .store
        .memberships()
        .list_for_org(&org.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(members.len(), 1, "exactly one owner left: {members:?}");
    assert_eq!(
        results.iter().filter(|s| **s == 204).count(),
        1,
        "{results:?}"
    );
}

#[tokio::test]
async fn expired_invitations_cannot_be_accepted() {
    use cove_store::invitations::{InviteRecord, InviteStatus};
    use cove_store::memberships::OrgRole;
    let env = env().await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let org = create_org(&env, &alice, "Team").await;
    get(&env, "/api/users/me", &bob).await;
    let id = uuid::Uuid::new_v4().to_string();
    let now = cove_api_types::time::now_rfc3339();
    env.store
        .invitations()
        .create(&InviteRecord {
            id: id.clone(),
            organization_id: org.parse().unwrap(),
            organization_name: "Team".into(),
            email: "bob@example.com".into(),
            invited_by: "alice@example.com".into(),
            role: OrgRole::Member,
            assigned_role_ids: vec![],
            status: InviteStatus::Pending,
            expires_at: "2001-01-01T00:00:00.000Z".into(),
            created_at: now.clone(),
            updated_at: now,
            version: 1,
        })
        .await
        .unwrap();
    let (s, v) = post(
        &env,
        &format!("/api/organizations/invitations/{id}/accept"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("expired"));
    let (_, mine) = get(&env, "/api/organizations/invitations", &bob).await;
    assert_eq!(mine, json!([]), "expired invitations are not listed");
    let (s, _) = get(&env, &format!("/api/organizations/{org}"), &bob).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn concurrent_role_changes_leave_one_consistent_membership() {
    let env = env().await;
    let alice = jwt("alice");
    let org = create_org(&env, &alice, "Roles").await;
    join(&env, &alice, &org, "bob", "member", &[]).await;
    let path = format!("/api/organizations/{org}/users/bob/access");
    let calls = (0..20).map(|i| {
        let env = env.clone();
        let (path, token) = (path.clone(), alice.clone());
        let role = if i % 2 == 0 { "owner" } else { "member" };
        let body =
            json!({"role": role, "assignedRoleIds": ["00000000-0000-4000-8000-000000000001"]})
                .to_string();
        tokio::spawn(async move {
            organizations::handle(
                &env,
                request("POST", &path, Some(&token), None, Some(&body)),
            )
            .await
            .status()
            .as_u16()
        })
    });
    let results: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        results.iter().all(|s| [200, 409].contains(s)),
        "{results:?}"
    );
    let wins = results.iter().filter(|s| **s == 200).count() as u64;
    assert!(wins >= 1);
    let m = env
        .store
        .memberships()
        .get(&org.parse().unwrap(), &UserId::parse("bob").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        m.version,
        1 + wins,
        "every success is one versioned write: {results:?}"
    );
    assert_eq!(
        m.assigned_role_ids,
        ["00000000-0000-4000-8000-000000000001"]
    );
    let owners = env
        .store
        .memberships()
        .list_for_org(&org.parse().unwrap())
        .await
        .unwrap();
    assert!(
        owners
            .iter()
            .any(|m| m.role == cove_store::memberships::OrgRole::Owner)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn role_names_are_unique_under_concurrency() {
    let env = env().await;
    let alice = jwt("alice");
    let org = create_org(&env, &alice, "Roles").await;
    let roles = format!("/api/organizations/{org}/roles");
    let calls = (0..20).map(|i| {
        let (env, roles, alice) = (env.clone(), roles.clone(), alice.clone());
        tokio::spawn(async move {
            // Same name, different case: the lock is case-insensitive.
            let name = if i % 2 == 0 { "Deployers" } else { "deployers" };
            let body = json!({"name": name, "description": "", "permissions": ["write:sandboxes"]});
            post(&env, &roles, &alice, body).await.0
        })
    });
    let results: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        results.iter().filter(|s| **s == 201).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|s| **s == 409).count(),
        19,
        "{results:?}"
    );
    let org_id = org.parse().unwrap();
    let rows = env.store.roles().list(&org_id).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let locks = |env: Env| async move {
        let mut l: Vec<String> = env
            .store
            .scan_keys()
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, sk)| sk.starts_with("ROLENAME#"))
            .map(|(_, sk)| sk)
            .collect();
        l.sort();
        l
    };
    assert_eq!(locks(env.clone()).await, ["ROLENAME#deployers"]);

    // A rename moves the lock: the old name is free again, the new one is taken.
    let id = rows[0].id.clone();
    let body = |name: &str| json!({"name": name, "description": "", "permissions": []});
    let (s, v) = put(&env, &format!("{roles}/{id}"), &alice, body("Shippers")).await;
    assert_eq!((s, v["name"].as_str()), (200, Some("Shippers")), "{v}");
    assert_eq!(locks(env.clone()).await, ["ROLENAME#shippers"]);
    let (s, other) = post(&env, &roles, &alice, body("Deployers")).await;
    assert_eq!(s, 201, "{other}");
    let other_id = other["id"].as_str().unwrap().to_owned();
    let (s, _) = put(
        &env,
        &format!("{roles}/{other_id}"),
        &alice,
        body("SHIPPERS"),
    )
    .await;
    assert_eq!(s, 409);
    // A case-only rename keeps its own lock.
    let (s, _) = put(&env, &format!("{roles}/{id}"), &alice, body("shippers")).await;
    assert_eq!(s, 200);
    assert_eq!(
        locks(env.clone()).await,
        ["ROLENAME#deployers", "ROLENAME#shippers"]
    );
    // Two concurrent renames to one free name: one wins.
    let renames = [id.clone(), other_id.clone()].map(|rid| {
        let (env, roles, alice) = (env.clone(), roles.clone(), alice.clone());
        tokio::spawn(async move {
            put(
                &env,
                &format!("{roles}/{rid}"),
                &alice,
                json!({"name": "Ops", "description": "", "permissions": []}),
            )
            .await
            .0
        })
    });
    let mut r: Vec<u16> = futures::future::join_all(renames)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    r.sort();
    assert_eq!(r, [200, 409]);
    let names: BTreeSet<String> = env
        .store
        .roles()
        .list(&org_id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name.to_lowercase())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains("ops"));
    let expected: Vec<String> = names.iter().map(|n| format!("ROLENAME#{n}")).collect();
    assert_eq!(locks(env.clone()).await, expected);
    // Deleting a role frees its name.
    let ops = env
        .store
        .roles()
        .list(&org_id)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == "Ops")
        .unwrap();
    let (s, _) = delete(&env, &format!("{roles}/{}", ops.id), &alice).await;
    assert_eq!(s, 204);
    assert!(
        !locks(env.clone())
            .await
            .contains(&"ROLENAME#ops".to_owned())
    );
    let (s, _) = post(&env, &roles, &alice, body("ops")).await;
    assert_eq!(s, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_racing_an_organization_delete_leave_nothing_behind() {
    let env = env().await;
    let alice = jwt("alice");
    for round in 0..3u64 {
        let org = create_org(&env, &alice, &format!("Doomed {round}")).await;
        let b = format!("/api/organizations/{org}");
        // Writers keep adding roles, invitations, API keys and members until the organization
        // is gone; the delete lands in the middle of them.
        let writers = (0..8).map(|w| {
            let (env, b, alice, org) = (env.clone(), b.clone(), alice.clone(), org.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..400 {
                    let n = format!("w{w}i{i}");
                    let status = match w % 4 {
                        0 => {
                            let body = json!({"name": n, "description": "", "permissions": []});
                            post(&env, &format!("{b}/roles"), &alice, body).await.0
                        }
                        1 => {
                            let body = json!({"email": format!("{n}@example.com"), "role": "member", "assignedRoleIds": []});
                            post(&env, &format!("{b}/invitations"), &alice, body).await.0
                        }
                        2 => {
                            let body = json!({"name": n, "permissions": []}).to_string();
                            let req = request("POST", "/api/api-keys", Some(&alice), Some(&org), Some(&body));
                            api_keys::handle(&env, req).await.status().as_u16()
                        }
                        _ => {
                            let body = json!({"email": format!("{n}@example.com"), "role": "member", "assignedRoleIds": []});
                            let (s, inv) = post(&env, &format!("{b}/invitations"), &alice, body).await;
                            if s == 201 {
                                let id = inv["id"].as_str().unwrap();
                                let path = format!("/api/organizations/invitations/{id}/accept");
                                post(&env, &path, &jwt(&n), json!({})).await.0
                            } else {
                                s
                            }
                        }
                    };
                    assert!(status < 500, "writer {w}: {status}");
                    statuses.push(status);
                    if status >= 400 {
                        break;
                    }
                }
                statuses
            })
        });
        let writers: Vec<_> = writers.collect();
        // Delete once the writers are well under way (a few roles in), whatever the backend's speed.
        let org_id = org.parse().unwrap();
        for _ in 0..2000 {
            if env.store.roles().list(&org_id).await.unwrap().len() >= 3 + round as usize {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let (s, v) = delete(&env, &b, &alice).await;
        assert_eq!(s, 204, "{v}");
        let mut refused = 0;
        let mut written = 0;
        for w in writers {
            let statuses = w.await.unwrap();
            written += statuses.iter().filter(|s| **s < 300).count();
            refused += statuses.iter().filter(|s| **s >= 400).count();
            // Refusals say the organization is gone (or, for an accept, the invitation).
            assert!(
                statuses
                    .iter()
                    .all(|s| [200, 201, 403, 404, 409].contains(s)),
                "{statuses:?}"
            );
        }
        assert!(
            written >= 3,
            "the writers wrote before the delete ({written})"
        );
        assert_eq!(refused, 8, "every writer ran into the delete");
        let after = env.store.scan_keys().await.unwrap();
        let org_pk = format!("ORG#{org}");
        let left: Vec<_> = after
            .iter()
            .filter(|(pk, _)| *pk == org_pk || pk.starts_with("APIKEYHASH#"))
            .collect();
        assert!(left.is_empty(), "round {round}: left behind {left:?}");
        let (s, _) = get(&env, &b, &alice).await;
        assert!(s == 403 || s == 404, "{s}");
    }
}

/// Usage follows the sandbox counters (compute states hold cpu/memory/disk, stopped holds disk
/// only), and an organization with sandboxes cannot be deleted until they are destroyed.
#[tokio::test]
async fn usage_follows_sandboxes_and_they_block_deletion() {
    use cove_api_types::ids::{OrganizationId, SandboxId};
    use cove_api_types::sandbox::{SandboxDesiredState, SandboxState};
    use cove_store::orgs::OrgQuota;
    use cove_store::sandboxes::{QuotaCheck, SandboxRecord};
    let env = env().await;
    let alice = jwt("alice");
    let org = create_org(&env, &alice, "Busy").await;
    let now = "2026-01-01T00:00:00.000Z";
    let quota = OrgQuota::default();
    let org_id = OrganizationId::parse(org.as_str()).unwrap();
    let mut rec = SandboxRecord::new(SandboxId::new_random(), org_id, "sb", "img", now);
    rec.cpu = 2;
    rec.memory = 3;
    rec.disk = 5;
    rec.state = SandboxState::Started;
    let started = env.store.sandboxes().create(&rec, &quota).await.unwrap();
    let usage = |u: &Value| {
        let r = &u["regionUsage"][0];
        (
            r["currentCpuUsage"].as_i64().unwrap(),
            r["currentMemoryUsage"].as_i64().unwrap(),
            r["currentDiskUsage"].as_i64().unwrap(),
        )
    };
    let (s, u) = get(&env, &format!("/api/organizations/{org}/usage"), &alice).await;
    assert_eq!(s, 200);
    assert_eq!(usage(&u), (2, 3, 5));

    let mut stopped = started.clone();
    stopped.state = SandboxState::Stopped;
    stopped.desired_state = SandboxDesiredState::Stopped;
    let stopped = env
        .store
        .sandboxes()
        .update(&started, &stopped, QuotaCheck::Enforce(&quota))
        .await
        .unwrap();
    let (_, u) = get(&env, &format!("/api/organizations/{org}/usage"), &alice).await;
    assert_eq!(usage(&u), (0, 0, 5));

    let (s, v) = delete(&env, &format!("/api/organizations/{org}"), &alice).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("sandboxes"));
    let (s, _) = get(&env, &format!("/api/organizations/{org}"), &alice).await;
    assert_eq!(s, 200, "a refused delete leaves the organization");

    let mut gone = stopped.clone();
    gone.state = SandboxState::Destroyed;
    gone.desired_state = SandboxDesiredState::Destroyed;
    env.store
        .sandboxes()
        .update(&stopped, &gone, QuotaCheck::Enforce(&quota))
        .await
        .unwrap();
    let (_, u) = get(&env, &format!("/api/organizations/{org}/usage"), &alice).await;
    assert_eq!(usage(&u), (0, 0, 0));
    let (s, _) = delete(&env, &format!("/api/organizations/{org}"), &alice).await;
    assert_eq!(s, 204);
}
