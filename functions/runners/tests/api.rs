//! The runners handlers natively, against a real DynamoDB API (dynoxide, or DynamoDB Local in CI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use cove_edge::Env;
use cove_store::orgs::OrgQuota;
use cove_store::sandboxes::SandboxRecord;
use cove_testkit::api::{Call, Reply};
use serde_json::{Value, json};

/// A fresh table with the system admin `root`; JWTs verified with the testkit's secret.
async fn env() -> Env {
    let h = cove_testkit::Harness::new().await;
    h.admin("root").await;
    h.env
}

/// How every view after creation shows a runner token.
fn masked(token: &str) -> String {
    format!(
        "{}{}{}",
        &token[..3],
        "*".repeat(20),
        &token[token.len() - 3..]
    )
}

/// A JWT the env accepts (the testkit's identity provider: `email` `<sub>@example.com`, `name`).
fn jwt(sub: &str) -> String {
    cove_testkit::jwt::token(sub)
}

/// Calls the function and checks the error envelope of any 4xx; never a 5xx.
async fn call(
    env: &Env,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let call = Call::simple(method, path, token, None, body);
    Reply::from_response(runners::handle(env, call.to_request()).await).checked(&call)
}

async fn get(env: &Env, path: &str, t: &str) -> (u16, Value) {
    call(env, "GET", path, Some(t), None).await
}

async fn send(env: &Env, method: &str, path: &str, t: &str, body: Value) -> (u16, Value) {
    call(env, method, path, Some(t), Some(&body.to_string())).await
}

fn heartbeat(api_url: &str, snapshots: &[&str]) -> Value {
    json!({
        "apiUrl": api_url,
        "appVersion": "0.1.0",
        "metrics": {
            "cpu": 4, "memoryGiB": 8.0, "diskGiB": 50.0,
            "currentCpuUsagePercentage": 1.0, "currentMemoryUsagePercentage": 2.0,
            "currentDiskUsagePercentage": 3.0, "currentAllocatedCpu": 0.0,
            "currentAllocatedMemoryGiB": 0.0, "currentAllocatedDiskGiB": 0.0,
            "currentSnapshotCount": 1, "currentStartedSandboxes": 0
        },
        "serviceHealth": [],
        "snapshots": snapshots,
    })
}

/// Creates a runner as root; returns (id, token).
async fn create_runner(env: &Env, name: &str) -> (String, String) {
    let (s, v) = send(
        env,
        "POST",
        "/api/runners",
        &jwt("root"),
        json!({"regionId": "us", "name": name}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    (
        v["id"].as_str().unwrap().to_owned(),
        v["apiKey"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn admin_creates_runner_and_the_token_heartbeats_it_ready() {
    let env = env().await;
    let root = jwt("root");
    let (id, token) = create_runner(&env, "r1").await;
    assert_eq!(token.len(), 64);

    // The token is not in list/get; only /full.
    let (s, list) = get(&env, "/api/runners", &root).await;
    assert_eq!(s, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].get("apiKey").is_none());
    assert_eq!(list[0]["state"], "initializing");
    assert_eq!(list[0]["region"], "us");
    assert_eq!(list[0]["runnerClass"], "container");
    let (s, one) = get(&env, &format!("/api/runners/{id}"), &root).await;
    assert_eq!(s, 200);
    assert!(one.get("apiKey").is_none());
    assert!(!one.to_string().contains(&token));
    let (s, full) = get(&env, &format!("/api/runners/{id}/full"), &root).await;
    assert_eq!(s, 200);
    // The token was shown once, at creation; the full view masks it.
    assert_eq!(full["apiKey"], masked(&token).as_str());
    assert!(!full.to_string().contains(&token));
    assert_eq!(full["id"], id.as_str());

    // Heartbeat with the runner token → ready, with its URL, capacity and images.
    let (s, _) = send(
        &env,
        "POST",
        "/api/runners/healthcheck",
        &token,
        heartbeat("http://127.0.0.1:4000", &["img:1"]),
    )
    .await;
    assert_eq!(s, 200);
    let (_, one) = get(&env, &format!("/api/runners/{id}"), &root).await;
    assert_eq!(one["state"], "ready");
    assert_eq!(one["apiUrl"], "http://127.0.0.1:4000");
    assert_eq!(one["cpu"], 4.0);
    assert_eq!(one["memory"], 8.0);
    assert!(one["lastChecked"].as_str().is_some());

    // The runner's own routes.
    let (s, me) = get(&env, "/api/runners/me", &token).await;
    assert_eq!(s, 200);
    assert_eq!(me["id"], id.as_str());
    assert_eq!(
        me["apiKey"],
        masked(&token).as_str(),
        "masked in its own view too"
    );
    let (s, snaps) = get(&env, "/api/runners/me/snapshots", &token).await;
    assert_eq!((s, snaps), (200, json!(["img:1"])));
    for path in [
        "/api/runners/by-snapshot-ref?ref=img:1",
        "/api/runners/by-snapshot?ref=img%3A1",
    ] {
        let (s, v) = get(&env, path, &root).await;
        assert_eq!(s, 200);
        assert_eq!(v.as_array().unwrap().len(), 1, "{path}: {v}");
        assert_eq!(v[0]["runnerId"], id.as_str());
    }
    let (_, v) = get(&env, "/api/runners/by-snapshot-ref?ref=other:1", &root).await;
    assert_eq!(v, json!([]));

    // Region filter.
    let (_, v) = get(&env, "/api/runners?regionId=eu", &root).await;
    assert_eq!(v, json!([]));
    let (_, v) = get(&env, "/api/runners?regionId=us", &root).await;
    assert_eq!(v.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn runner_routes_need_a_valid_runner_token() {
    let env = env().await;
    let (_, token) = create_runner(&env, "r1").await;
    let hb = heartbeat("http://x", &[]).to_string();
    for (m, p, body) in [
        ("GET", "/api/runners/me", None),
        ("GET", "/api/runners/me/snapshots", None),
        ("POST", "/api/runners/healthcheck", Some(hb.as_str())),
    ] {
        let (s, _) = call(&env, m, p, None, body).await;
        assert_eq!(s, 401, "{m} {p} without token");
        let (s, _) = call(&env, m, p, Some(&"0".repeat(64)), body).await;
        assert_eq!(s, 401, "{m} {p} with an unknown token");
        let (s, _) = call(&env, m, p, Some(&jwt("root")), body).await;
        assert_eq!(s, 401, "{m} {p}: a user credential is not a runner token");
    }
    // The runner token is no admin credential.
    let (s, _) = get(&env, "/api/runners", &token).await;
    assert_eq!(s, 401);
    // Bad heartbeat bodies.
    let (s, _) = call(
        &env,
        "POST",
        "/api/runners/healthcheck",
        Some(&token),
        Some("{nope"),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = send(
        &env,
        "POST",
        "/api/runners/healthcheck",
        &token,
        json!({"apiUrl": "http://x"}),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn non_admins_get_403_and_bad_input_the_right_4xx() {
    let env = env().await;
    let root = jwt("root");
    let (id, _) = create_runner(&env, "r1").await;
    let alice = jwt("alice");
    let (s, _) = get(&env, "/api/runners", &alice).await;
    assert_eq!(s, 403);
    let (s, _) = send(
        &env,
        "POST",
        "/api/runners",
        &alice,
        json!({"regionId": "us", "name": "x"}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = get(&env, &format!("/api/runners/{id}/full"), &alice).await;
    assert_eq!(s, 403);
    let (s, _) = call(&env, "GET", "/api/runners", None, None).await;
    assert_eq!(s, 401);

    // Bad input.
    let (s, _) = call(&env, "POST", "/api/runners", Some(&root), Some("{bad json")).await;
    assert_eq!(s, 400);
    let (s, _) = send(&env, "POST", "/api/runners", &root, json!({"name": "x"})).await;
    assert_eq!(s, 400, "regionId is required");
    let (s, _) = send(
        &env,
        "POST",
        "/api/runners",
        &root,
        json!({"regionId": "us", "name": " "}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = send(
        &env,
        "POST",
        "/api/runners",
        &root,
        json!({"regionId": "us", "name": "r1"}),
    )
    .await;
    assert_eq!(s, 409, "names are unique per region");
    let (s, _) = send(
        &env,
        "PATCH",
        &format!("/api/runners/{id}/scheduling"),
        &root,
        json!({"unschedulable": "yes"}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = get(&env, "/api/runners/by-snapshot-ref", &root).await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &env,
        "DELETE",
        &format!("/api/runners/{id}?force=maybe"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(s, 400);
    for (m, p) in [
        ("GET", "/api/runners/nope"),
        ("GET", "/api/runners/nope/full"),
        ("DELETE", "/api/runners/nope"),
        ("GET", "/api/runners/by-sandbox/nope"),
    ] {
        let (s, _) = call(&env, m, p, Some(&root), None).await;
        assert_eq!(s, 404, "{m} {p}");
    }
    let (s, _) = send(
        &env,
        "PATCH",
        "/api/runners/nope/scheduling",
        &root,
        json!({"unschedulable": true}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = send(
        &env,
        "PATCH",
        "/api/runners/nope/draining",
        &root,
        json!({"draining": true}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(&env, "PUT", "/api/runners", Some(&root), None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn scheduling_draining_and_delete() {
    let env = env().await;
    let root = jwt("root");
    let (id, token) = create_runner(&env, "r1").await;
    let p = format!("/api/runners/{id}");
    let (s, v) = send(
        &env,
        "PATCH",
        &format!("{p}/scheduling"),
        &root,
        json!({"unschedulable": true}),
    )
    .await;
    assert_eq!((s, &v["unschedulable"]), (200, &json!(true)));
    let (_, v) = get(&env, &p, &root).await;
    assert_eq!(v["unschedulable"], true);
    let (s, v) = send(
        &env,
        "PATCH",
        &format!("{p}/scheduling"),
        &root,
        json!({"unschedulable": false}),
    )
    .await;
    assert_eq!((s, &v["unschedulable"]), (200, &json!(false)));
    let (s, v) = send(
        &env,
        "PATCH",
        &format!("{p}/draining"),
        &root,
        json!({"draining": true}),
    )
    .await;
    assert_eq!((s, &v["draining"]), (200, &json!(true)));

    // A sandbox on it: delete refused without force; by-sandbox finds it (with the token).
    let now = cove_api_types::time::now_rfc3339();
    let org = cove_store::orgs::OrgRecord::new(
        "o".into(),
        cove_api_types::ids::UserId::parse("u").unwrap(),
        false,
        now.clone(),
    );
    env.store.orgs().create(&org).await.unwrap();
    let sb_id = cove_api_types::ids::SandboxId::new_random();
    let mut sb = SandboxRecord::new(sb_id.clone(), org.id.clone(), "one", "img:1", &now);
    sb.runner_id = Some(cove_api_types::ids::RunnerId::parse(id.as_str()).unwrap());
    env.store
        .sandboxes()
        .create(&sb, &big_quota())
        .await
        .unwrap();
    let (s, v) = get(&env, &format!("/api/runners/by-sandbox/{sb_id}"), &root).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["id"].as_str(), v["apiKey"].as_str()),
        (Some(id.as_str()), Some(masked(&token).as_str()))
    );
    let (s, v) = call(&env, "DELETE", &p, Some(&root), None).await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = call(
        &env,
        "DELETE",
        &format!("{p}?force=true"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = get(&env, &p, &root).await;
    assert_eq!(s, 404);
    // Its token is dead.
    let (s, _) = get(&env, "/api/runners/me", &token).await;
    assert_eq!(s, 401);
}

fn big_quota() -> OrgQuota {
    OrgQuota {
        total_cpu_quota: 1000,
        total_memory_quota: 1000,
        total_disk_quota: 1000,
        ..OrgQuota::default()
    }
}

#[tokio::test]
async fn a_silent_runner_shows_unresponsive() {
    let env = env().await;
    let root = jwt("root");
    let (id, token) = create_runner(&env, "r1").await;
    let (s, _) = send(
        &env,
        "POST",
        "/api/runners/healthcheck",
        &token,
        heartbeat("http://x", &[]),
    )
    .await;
    assert_eq!(s, 200);
    // Move the last heartbeat 16 s into the past, directly in the table.
    let past = cove_api_types::time::format_rfc3339(
        time::OffsetDateTime::now_utc() - time::Duration::seconds(16),
    );
    env.store
        .raw_client()
        .update_item()
        .table_name(env.store.table())
        .key("pk", AttributeValue::S(format!("RUNNER#{id}")))
        .key("sk", AttributeValue::S("#META".into()))
        .update_expression("SET lastChecked = :t")
        .expression_attribute_values(":t", AttributeValue::S(past))
        .send()
        .await
        .unwrap();
    let (_, v) = get(&env, &format!("/api/runners/{id}"), &root).await;
    assert_eq!(v["state"], "unresponsive");
    // By-snapshot lists only runners that can serve.
    let (s, _) = send(
        &env,
        "POST",
        "/api/runners/healthcheck",
        &token,
        heartbeat("http://x", &["i:1"]),
    )
    .await;
    assert_eq!(s, 200);
    let (_, v) = get(&env, &format!("/api/runners/{id}"), &root).await;
    assert_eq!(v["state"], "ready");
}

/// Every `/api/runners` route of the checked-in OpenAPI document, called by a member of another
/// organization (an ordinary user, not an admin): refused, and nothing leaks.
#[tokio::test]
async fn tenant_matrix_every_runner_route_refuses_non_admins() {
    let env = env().await;
    let (id, token) = create_runner(&env, "secret-runner").await;
    let doc: Value = cove_testkit::bins::control_plane_document();
    let mallory = jwt("mallory");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/runners") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            let p = path.replace("{id}", &id).replace("{sandboxId}", "sb-x");
            let runner_route = p.starts_with("/api/runners/me") || p == "/api/runners/healthcheck";
            let body = match p.as_str() {
                "/api/runners" => Some(json!({"regionId": "us", "name": "m"}).to_string()),
                x if x.ends_with("/scheduling") => Some(json!({"unschedulable": true}).to_string()),
                x if x.ends_with("/draining") => Some(json!({"draining": true}).to_string()),
                "/api/runners/healthcheck" => Some(heartbeat("http://evil", &[]).to_string()),
                _ => None,
            };
            let q = if p.contains("by-snapshot") {
                "?ref=img:1"
            } else {
                ""
            };
            let (s, v) = call(
                &env,
                &m,
                &format!("{p}{q}"),
                Some(&mallory),
                body.as_deref(),
            )
            .await;
            let want: &[u16] = if runner_route { &[401] } else { &[403, 404] };
            assert!(want.contains(&s), "{m} {p}: {s} {v}");
            // The function's own refusal, not a router's 404 ("Cannot GET ..."): a documented
            // route that is not routed fails here.
            let message = if runner_route {
                "Invalid credentials"
            } else {
                "Only system administrators may manage runners"
            };
            assert_eq!(v["message"], message, "{m} {p}: {s} {v}");
            let text = v.to_string();
            assert!(
                !text.contains(&token) && !text.contains("secret-runner"),
                "{m} {p} leaked: {v}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 13,
        "only {checked} runner routes in the document"
    );
    // Nothing changed.
    let (_, v) = get(&env, &format!("/api/runners/{id}"), &jwt("root")).await;
    assert_eq!(v["unschedulable"], false);
    assert_eq!(v["state"], "initializing");
}
