//! Authorization comes before validation, on every documented route.
//!
//! For every operation of `openapi/control-plane.json` ([`cove_api_spec::control_plane`]), a
//! caller who may not use it — a user of another organization (by JWT, by JWT naming the
//! victim's organization in `X-Daytona-Organization-ID`, by API key holding every permission);
//! for system-admin routes also the victim organization's own owner (not an admin) and a
//! permission-less API key of the system admin; for runner routes a user's key and another
//! runner's token — gets 401, 403 or 404 whatever the body (none, `{`, `{}`, wrong-typed) and
//! the query, never a 400 or a 5xx. Path ids are real ids of the victim organization's
//! resources (an organization with a member, a role, a pending invitation, an API key, a sandbox
//! on a simulated runner, the runner, a volume), so a 404 means "not yours", not "does not exist"; after
//! the sweep every one of them is still there, unchanged.
//!
//! Routes that any authenticated caller may use on its own things are listed in [`SELF`] with
//! the reason; they are swept with the victim's organization in the header only. A new route
//! must be classified: the test fails on an operation it does not know.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::collections::BTreeMap;

use cove_api_types::permissions::Permission;
use cove_testkit::api::{Api, Call};
use cove_testkit::org::{self, User};
use cove_testkit::{AgentOptions, FAKE_IMAGE, Harness, InProcess};
use http::Method;
use serde_json::{Value, json};

/// Routes anyone may call without credentials.
const PUBLIC: &[(&str, &str, &str)] = &[
    ("GET", "/api/config", "the public configuration"),
    ("GET", "/api/health", "liveness"),
    ("GET", "/api/health/ready", "readiness"),
];

/// Routes any authenticated caller may use on its own things (its organizations, keys,
/// sandboxes, invitations, account): not outsider routes. A runner's own routes are here too.
const SELF: &[(&str, &str, &str)] = &[
    ("GET", "/api/api-keys", "lists the caller's keys"),
    (
        "POST",
        "/api/api-keys",
        "creates a key in the caller's organization",
    ),
    (
        "GET",
        "/api/api-keys/current",
        "the key the caller authenticated with",
    ),
    ("GET", "/api/organizations", "the caller's organizations"),
    (
        "POST",
        "/api/organizations",
        "anyone may create an organization",
    ),
    (
        "GET",
        "/api/organizations/invitations",
        "invitations to the caller's verified email",
    ),
    (
        "GET",
        "/api/organizations/invitations/count",
        "how many of them",
    ),
    (
        "GET",
        "/api/sandbox",
        "sandboxes of the caller's organization",
    ),
    (
        "GET",
        "/api/events/sandboxes",
        "sandbox events of the caller's organization",
    ),
    (
        "POST",
        "/api/sandbox",
        "creates one in the caller's organization",
    ),
    (
        "GET",
        "/api/snapshots",
        "snapshots the caller's organization sees",
    ),
    (
        "POST",
        "/api/snapshots",
        "creates one in the caller's organization",
    ),
    (
        "GET",
        "/api/volumes",
        "volumes of the caller's organization",
    ),
    (
        "POST",
        "/api/volumes",
        "creates one in the caller's organization",
    ),
    ("GET", "/api/workspace", "alias of GET /api/sandbox"),
    ("POST", "/api/workspace", "alias of POST /api/sandbox"),
    ("GET", "/api/users/me", "the caller"),
    (
        "GET",
        "/api/users/account-providers",
        "providers the caller may link",
    ),
    (
        "POST",
        "/api/users/linked-accounts",
        "links an account to the caller",
    ),
    (
        "GET",
        "/api/docker-registry",
        "registries of the caller's organization",
    ),
    (
        "POST",
        "/api/docker-registry",
        "registers one in the caller's organization",
    ),
    (
        "GET",
        "/api/docker-registry/registry-push-access",
        "credentials for the caller's organization's project",
    ),
    (
        "GET",
        "/api/object-storage/push-access",
        "credentials for the caller's organization's prefix",
    ),
    ("GET", "/api/runners/me", "the runner calling"),
    ("GET", "/api/runners/me/snapshots", "the runner calling"),
    (
        "POST",
        "/api/runners/healthcheck",
        "the runner calling reports on itself",
    ),
];

/// Routes only system admins may use (their credentials must also hold the permission).
fn admin_only(path: &str) -> bool {
    path.starts_with("/api/runners")
        || path.starts_with("/api/admin/")
        || (path.starts_with("/api/snapshots/") && path.ends_with("/general"))
        || path.starts_with("/api/users/{id}/")
        || path == "/api/users"
        || ["/quota", "/quota/{regionId}", "/suspend", "/unsuspend"]
            .iter()
            .any(|s| path.starts_with("/api/organizations/{organizationId}") && path.ends_with(s))
}

fn runner_only(op: &Value) -> bool {
    op["security"][0].get("runner_token").is_some()
}

/// The bodies every call is made with: none, malformed, empty object, wrong types.
fn bodies() -> Vec<Option<String>> {
    let wrong: serde_json::Map<String, Value> = [
        "name",
        "email",
        "role",
        "roleIds",
        "assignedRoleIds",
        "permissions",
        "reason",
        "until",
        "labels",
        "state",
        "draining",
        "unschedulable",
        "expiresAt",
        "provider",
        "userId",
        "regionId",
        "snapshot",
        "maxCpuPerSandbox",
        "totalCpuQuota",
    ]
    .iter()
    .map(|k| ((*k).to_owned(), json!([1, {"x": true}])))
    .collect();
    vec![
        None,
        Some("{".into()),
        Some("{}".into()),
        Some(Value::Object(wrong).to_string()),
        Some("[1, 2]".into()),
    ]
}

/// A query every route would refuse if it read it before authorizing.
const BAD_QUERY: &str =
    "limit=x&page=-1&force=maybe&ref=&regionId=&labels=%7B&includeErroredDeleted=2";

/// Everything the outsiders aim at, and who they are.
struct World {
    api: InProcess,
    /// Path parameter → a real id of the victim's.
    ids: BTreeMap<&'static str, String>,
    victim_owner: User,
    victim_org: String,
    outsider: User,
    outsider_key: String,
    admin_bare_key: String,
    runner_a_token: String,
    runner_b_token: String,
    /// A member (not an owner) of the victim's organization, holding `write:sandboxes`.
    member: User,
    /// An API key of the victim's organization without permissions.
    victim_bare_key: String,
}

async fn world(h: &Harness) -> World {
    let api = support::api(h);
    let victim_owner = User::new("victim");
    let team = org::create_org(&api, &victim_owner.jwt, "victim-team").await;
    let role = post(
        &api,
        &victim_owner.jwt,
        &format!("/api/organizations/{team}/roles"),
        json!({"name": "dev", "description": "d", "permissions": ["write:sandboxes"]}),
    )
    .await;
    let member = User::new("victim-member");
    org::join(
        &api,
        &victim_owner.jwt,
        &team,
        &member,
        "member",
        &[id(&role).as_str()],
    )
    .await;
    let invitation = post(
        &api,
        &victim_owner.jwt,
        &format!("/api/organizations/{team}/invitations"),
        json!({"email": "pending@example.com", "role": "member"}),
    )
    .await;
    let all: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    let victim_key = org::api_key(&api, &victim_owner.jwt, Some(&team), "victim-key", &all).await;
    let sandbox = post(
        &api,
        &victim_key,
        "/api/sandbox",
        json!({"snapshot": FAKE_IMAGE}),
    )
    .await;
    let snapshot = post(
        &api,
        &victim_key,
        "/api/snapshots",
        json!({"name": "victim-snap", "imageName": "python:3.12"}),
    )
    .await;
    // Its pull on the simulated runner ends before the sweep starts, so that the victim's
    // state before and after compares what outsiders did, not the job's progress.
    let snapshot = settled_snapshot(&api, &victim_key, snapshot).await;
    post_status(
        &api,
        &victim_owner.jwt,
        "/api/users/linked-accounts",
        json!({"provider": "github", "userId": "victim-gh"}),
        204,
    )
    .await;
    let registry = post(
        &api,
        &victim_key,
        "/api/docker-registry",
        json!({"name": "victim-registry", "url": "registry.example.com", "username": "u", "password": "p"}),
    )
    .await;
    let volume = post(
        &api,
        &victim_key,
        "/api/volumes",
        json!({"name": "victim-volume"}),
    )
    .await;
    let victim_bare_key = org::api_key(&api, &victim_owner.jwt, Some(&team), "bare", &[]).await;
    let outsider = User::new("mallory");
    org::personal_org(&api, &outsider.jwt).await;
    let outsider_key = org::api_key(&api, &outsider.jwt, None, "all", &all).await;
    let admin = h.admin("root").await;
    let admin_bare_key = org::api_key(&api, &admin, None, "bare", &[]).await;
    let runner_a = h.runner().expect("a runner").clone();
    let runner_b = org::register_runner(&api, &admin, "runner-b").await;
    let ids = BTreeMap::from([
        ("organizationId", team.clone()),
        ("userId", member.sub.clone()),
        ("roleId", id(&role)),
        ("invitationId", id(&invitation)),
        ("sandboxId", id(&sandbox)),
        ("sandboxIdOrName", id(&sandbox)),
        ("name", "victim-key".to_owned()),
        ("provider", "github".to_owned()),
        ("providerUserId", "victim-gh".to_owned()),
        ("regionId", "us".to_owned()),
        ("port", "3000".to_owned()),
        ("interval", "10".to_owned()),
        ("ttlMinutes", "10".to_owned()),
        ("isPublic", "true".to_owned()),
        ("path", "files".to_owned()),
        ("registryId", id(&registry)),
        ("volumeId", id(&volume)),
    ]);
    let mut ids = ids;
    ids.insert("runnerId", runner_a.id.to_string());
    ids.insert("snapshotId", id(&snapshot));
    preview_ids(&api, &victim_owner.jwt, &team, &mut ids).await;
    World {
        api,
        ids,
        victim_owner,
        victim_org: team,
        outsider,
        outsider_key,
        admin_bare_key,
        runner_a_token: runner_a.api_key.clone(),
        runner_b_token: runner_b.token,
        member,
        victim_bare_key,
    }
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

async fn post(api: &InProcess, token: &str, path: &str, body: Value) -> Value {
    let call = Call::post(path).token(token).json(&body);
    let what = format!("POST {path}");
    let r = api.send(call).await;
    assert!(
        r.status == 200 || r.status == 201,
        "{what}: {} {}",
        r.status,
        r.json()
    );
    r.json()
}

/// Reads the snapshot (each read moves its job on) until it leaves pending/pulling/building.
async fn settled_snapshot(api: &InProcess, token: &str, mut snap: Value) -> Value {
    let path = format!("/api/snapshots/{}", snap["id"].as_str().unwrap_or_default());
    for _ in 0..200 {
        if !matches!(
            snap["state"].as_str(),
            Some("pending" | "pulling" | "building")
        ) {
            return snap;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        snap = api.send(Call::get(&path).token(token)).await.json();
    }
    panic!("the victim's snapshot stayed {}", snap["state"]);
}

async fn post_status(api: &InProcess, token: &str, path: &str, body: Value, status: u16) {
    let r = api.send(Call::post(path).token(token).json(&body)).await;
    assert_eq!(r.status, status, "POST {path}: {}", r.json());
}

/// The victim sandbox's preview token and a live signed preview token of it (so that a 404 on
/// a preview route means "refused", not "no such token").
async fn preview_ids(
    api: &InProcess,
    jwt: &str,
    org: &str,
    ids: &mut BTreeMap<&'static str, String>,
) {
    let sandbox = ids["sandboxId"].clone();
    let get = |p: String| Call::get(&p).token(jwt).org(org.to_owned());
    let url = api
        .send(get(format!(
            "/api/sandbox/{sandbox}/ports/3000/preview-url"
        )))
        .await
        .expect(200, "preview-url");
    ids.insert("authToken", url["token"].as_str().unwrap().to_owned());
    let signed = api
        .send(get(format!(
            "/api/sandbox/{sandbox}/ports/3000/signed-preview-url?expiresInSeconds=3600"
        )))
        .await
        .expect(200, "signed-preview-url");
    let token = signed["token"].as_str().unwrap().to_owned();
    ids.insert("signedPreviewToken", token.clone());
    ids.insert("token", token);
}

impl World {
    /// The path with the victim's ids; `{id}` is the runner's under `/api/runners`, else the
    /// victim owner's user id; `userId` of an API key path is the key's owner.
    fn fill(&self, template: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            let end = start + rest[start..].find('}').expect("closing brace");
            out.push_str(&rest[..start]);
            let name = &rest[start + 1..end];
            out.push_str(&self.param(template, name));
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn param(&self, template: &str, name: &str) -> String {
        match name {
            "id" if template.starts_with("/api/runners") => self.ids["runnerId"].clone(),
            "id" if template.contains("/snapshots") => self.ids["snapshotId"].clone(),
            "id" if template.starts_with("/api/docker-registry") => self.ids["registryId"].clone(),
            "id" => self.victim_owner.sub.clone(),
            "userId" if template.starts_with("/api/api-keys") => self.victim_owner.sub.clone(),
            "name" if template.starts_with("/api/volumes") => "victim-volume".to_owned(),
            _ => self
                .ids
                .get(name)
                .unwrap_or_else(|| panic!("{template}: no value for path parameter {name}"))
                .clone(),
        }
    }

    /// Who must be refused on `op`: (label, token, organization header).
    fn outsiders(&self, path: &str, op: &Value) -> Vec<(&'static str, String, Option<String>)> {
        let header = Some(self.victim_org.clone());
        if runner_only(op) {
            let mut out = vec![
                ("outsider key", self.outsider_key.clone(), None),
                ("victim owner JWT", self.victim_owner.jwt.clone(), None),
            ];
            if path.contains("{sandboxId}") {
                out.push(("another runner's token", self.runner_b_token.clone(), None));
            }
            return out;
        }
        let mut out = vec![(
            "outsider JWT naming the victim's org",
            self.outsider.jwt.clone(),
            header,
        )];
        if is_self(op_method(op), path) {
            return out;
        }
        out.push(("outsider JWT", self.outsider.jwt.clone(), None));
        out.push((
            "outsider key with every permission",
            self.outsider_key.clone(),
            None,
        ));
        if admin_only(path) {
            out.push((
                "victim owner (not an admin) JWT",
                self.victim_owner.jwt.clone(),
                None,
            ));
            out.push((
                "admin's key without permissions",
                self.admin_bare_key.clone(),
                None,
            ));
            out.push(("a runner's token", self.runner_a_token.clone(), None));
        }
        out
    }
}

fn op_method(op: &Value) -> &str {
    op["x-method"].as_str().unwrap_or_default()
}

fn is_self(method: &str, path: &str) -> bool {
    SELF.iter().any(|(m, p, _)| *m == method && *p == path)
}

fn is_public(method: &str, path: &str) -> bool {
    PUBLIC.iter().any(|(m, p, _)| *m == method && *p == path)
}

/// Every operation of the document as (METHOD, path, operation with `x-method` set).
fn operations() -> Vec<(String, String, Value)> {
    let doc = cove_api_spec::control_plane();
    let v: Value = serde_json::from_str(&doc.to_json().unwrap()).unwrap();
    let mut out = Vec::new();
    for (path, item) in v["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let m = method.to_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()) {
                continue;
            }
            let mut op = op.clone();
            op["x-method"] = json!(m);
            out.push((m, path.clone(), op));
        }
    }
    out
}

/// Who calls, with which token and organization header.
struct Caller<'a> {
    who: &'a str,
    token: &'a str,
    org: Option<&'a String>,
}

/// Calls `method path` as `caller` with every bad body, with and without [`BAD_QUERY`]; records
/// each answer outside `allowed` in `failures`. Returns how many calls it made.
async fn sweep(
    api: &InProcess,
    method: &str,
    path: &str,
    caller: &Caller<'_>,
    allowed: &[u16],
    failures: &mut Vec<String>,
) -> usize {
    let mut calls = 0;
    for body in bodies() {
        for query in ["", BAD_QUERY] {
            let p = if query.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{query}")
            };
            let r = api
                .send(call(method, &p, caller.token, caller.org, body.as_ref()))
                .await;
            calls += 1;
            if !allowed.contains(&r.status) {
                failures.push(format!(
                    "{method} {p} as {} with body {body:?}: {} {}",
                    caller.who,
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
        }
    }
    calls
}

fn call(
    method: &str,
    path: &str,
    token: &str,
    org: Option<&String>,
    body: Option<&String>,
) -> Call {
    let mut c = Call::new(Method::from_bytes(method.as_bytes()).unwrap(), path).token(token);
    if let Some(o) = org {
        c = c.org(o.clone());
    }
    if let Some(b) = body {
        c = c.body(b.clone(), "application/json");
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_never_get_past_authorization() {
    let h = Harness::with_runner(AgentOptions::fake())
        .await
        .expect("harness");
    let w = world(&h).await;
    let before = snapshot(&w).await;
    let mut failures = Vec::new();
    let mut calls = 0;
    for (method, template, op) in operations() {
        if is_public(&method, &template) {
            continue;
        }
        if op.get("security").is_none() {
            failures.push(format!(
                "{method} {template}: unclassified route without security"
            ));
            continue;
        }
        let path = w.fill(&template);
        for (who, token, org) in w.outsiders(&template, &op) {
            let caller = Caller {
                who,
                token: &token,
                org: org.as_ref(),
            };
            calls += sweep(
                &w.api,
                &method,
                &path,
                &caller,
                &[401, 403, 404],
                &mut failures,
            )
            .await;
        }
    }
    println!("outsider calls: {calls}");
    assert!(
        failures.is_empty(),
        "{} refusals missing:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        snapshot(&w).await,
        before,
        "an outsider changed the victim's resources"
    );
}

/// What the victim's owner sees of its resources (compared before and after the sweep).
async fn snapshot(w: &World) -> Vec<Value> {
    let o = &w.victim_org;
    let paths = [
        format!("/api/organizations/{o}"),
        format!("/api/organizations/{o}/users"),
        format!("/api/organizations/{o}/roles"),
        format!("/api/organizations/{o}/invitations"),
        "/api/api-keys".to_owned(),
        format!("/api/sandbox/{}", w.ids["sandboxId"]),
        format!("/api/snapshots/{}", w.ids["snapshotId"]),
        "/api/snapshots".to_owned(),
        "/api/users/me".to_owned(),
        format!("/api/docker-registry/{}", w.ids["registryId"]),
        format!("/api/volumes/{}", w.ids["volumeId"]),
        "/api/volumes".to_owned(),
    ];
    let mut out = Vec::new();
    for p in paths {
        let r = w
            .api
            .send(Call::get(&p).token(&w.victim_owner.jwt).org(o.clone()))
            .await;
        let mut v = r.expect(200, &format!("GET {p}"));
        strip_volatile(&mut v);
        out.push(v);
    }
    out
}

/// Fields that change by themselves (timestamps of use, live state of the sandbox).
fn strip_volatile(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in [
                "lastUsedAt",
                "updatedAt",
                "state",
                "lastActivityAt",
                "runnerDomain",
            ] {
                m.remove(k);
            }
            m.values_mut().for_each(strip_volatile);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}

/// Owner-only routes of an organization (a member gets 403 whatever the body).
const OWNER_ONLY: &[(&str, &str)] = &[
    ("DELETE", "/api/organizations/{organizationId}"),
    ("GET", "/api/organizations/{organizationId}/invitations"),
    ("POST", "/api/organizations/{organizationId}/invitations"),
    (
        "PUT",
        "/api/organizations/{organizationId}/invitations/{invitationId}",
    ),
    (
        "POST",
        "/api/organizations/{organizationId}/invitations/{invitationId}/cancel",
    ),
    ("POST", "/api/organizations/{organizationId}/roles"),
    ("PUT", "/api/organizations/{organizationId}/roles/{roleId}"),
    (
        "DELETE",
        "/api/organizations/{organizationId}/roles/{roleId}",
    ),
    (
        "DELETE",
        "/api/organizations/{organizationId}/users/{userId}",
    ),
    (
        "POST",
        "/api/organizations/{organizationId}/users/{userId}/access",
    ),
    (
        "POST",
        "/api/organizations/{organizationId}/users/{userId}/assigned-roles",
    ),
    (
        "POST",
        "/api/organizations/{organizationId}/users/{userId}/role",
    ),
];

/// Sandbox routes a key without `write:sandboxes`/`delete:sandboxes` may still use: reads, and
/// the activity ping (no permission in Daytona either).
fn sandbox_read(method: &str, template: &str) -> bool {
    method == "GET" || template.ends_with("/last-activity")
}

/// Insiders without the right: the victim organization's member on owner-only routes (its
/// owner's membership as the target), and the organization's permission-less API key on every
/// sandbox- or snapshot-changing route, every toolbox and volume route and the JWT-only organization routes: 403
/// whatever the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insiders_without_the_right_never_get_past_authorization() {
    let h = Harness::with_runner(AgentOptions::fake())
        .await
        .expect("harness");
    let w = world(&h).await;
    let before = snapshot(&w).await;
    let org = Some(&w.victim_org);
    let member = Caller {
        who: "member",
        token: &w.member.jwt,
        org,
    };
    let bare = Caller {
        who: "permission-less key",
        token: &w.victim_bare_key,
        org: None,
    };
    let mut failures = Vec::new();
    let mut calls = 0;
    for (method, template) in OWNER_ONLY {
        let path = w.fill(template).replace(&w.member.sub, &w.victim_owner.sub);
        calls += sweep(&w.api, method, &path, &member, &[403], &mut failures).await;
    }
    for (method, template, op) in operations() {
        let sandbox = template.starts_with("/api/sandbox/")
            || template.starts_with("/api/workspace/")
            || template == "/api/sandbox"
            || template == "/api/workspace";
        let org_route = template.starts_with("/api/organizations/{organizationId}");
        // Registry changes and push credentials need `write:registries` / `delete:registries`
        // (object storage `write:snapshots`); reading a registry needs none.
        let registry = (template.starts_with("/api/docker-registry")
            || template.starts_with("/api/object-storage"))
            && (method != "GET" || template.ends_with("push-access"));
        // Every toolbox call needs `write:sandboxes` (it runs things in the sandbox).
        let toolbox = template.starts_with("/toolbox/") || template.starts_with("/api/toolbox/");
        // Changing snapshots needs `write:snapshots` / `delete:snapshots`.
        let snapshot = template.starts_with("/api/snapshots") && method != "GET";
        // Every volume route needs `read:volumes`, `write:volumes` or `delete:volumes`.
        let volume = template.starts_with("/api/volumes");
        let write = toolbox
            || volume
            || snapshot
            || (sandbox && !sandbox_read(&method, &template) && !runner_only(&op));
        if write || org_route || registry {
            let path = w.fill(&template);
            calls += sweep(&w.api, &method, &path, &bare, &[403], &mut failures).await;
        }
    }
    println!("insider calls: {calls}");
    assert!(
        failures.is_empty(),
        "{} refusals missing:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        snapshot(&w).await,
        before,
        "an insider without the right changed something"
    );
}

#[test]
fn every_operation_is_classified() {
    let ops = operations();
    for (m, p, _) in PUBLIC.iter().chain(SELF) {
        assert!(
            ops.iter().any(|(om, op, _)| om == m && op == p),
            "{m} {p} is listed but not documented"
        );
    }
    for (m, p, op) in &ops {
        let public = is_public(m, p);
        assert_eq!(
            public,
            op.get("security").is_none(),
            "{m} {p}: public iff without security"
        );
    }
}
