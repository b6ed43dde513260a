//! The api-keys handlers natively, against a real DynamoDB API (dynoxide, or DynamoDB Local in CI).
//! The same handlers run inside the component; `tests/e2e` drives them through `cove`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cove_edge::Env;
use serde_json::{Value, json};

/// A fresh table; JWTs verified with the testkit's secret.
async fn env() -> Env {
    cove_testkit::Harness::new().await.env
}

/// A JWT the env accepts (the testkit's identity provider: `email` `<sub>@example.com`, `name`).
fn jwt(sub: &str) -> String {
    cove_testkit::jwt::token(sub)
}

struct Call<'a> {
    method: &'a str,
    path: &'a str,
    token: Option<&'a str>,
    org: Option<&'a str>,
    body: Option<&'a str>,
}

async fn call(env: &Env, c: Call<'_>) -> (u16, Value) {
    let call = cove_testkit::api::Call::simple(c.method, c.path, c.token, c.org, c.body);
    cove_testkit::api::Reply::from_response(api_keys::handle(env, call.to_request()).await)
        .checked(&call)
}

fn get<'a>(path: &'a str, token: &'a str) -> Call<'a> {
    Call {
        method: "GET",
        path,
        token: Some(token),
        org: None,
        body: None,
    }
}

fn post<'a>(path: &'a str, token: &'a str, body: &'a str) -> Call<'a> {
    Call {
        method: "POST",
        path,
        token: Some(token),
        org: None,
        body: Some(body),
    }
}

fn delete<'a>(path: &'a str, token: &'a str) -> Call<'a> {
    Call {
        method: "DELETE",
        path,
        token: Some(token),
        org: None,
        body: None,
    }
}

async fn create_key(env: &Env, token: &str, name: &str, perms: &[&str]) -> String {
    let body = json!({"name": name, "permissions": perms}).to_string();
    let (s, v) = call(env, post("/api/api-keys", token, &body)).await;
    assert_eq!(s, 201, "{v}");
    v["value"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn create_list_get_current_delete() {
    let env = env().await;
    let alice = jwt("alice");
    let body =
        json!({"name": "ci", "permissions": ["write:sandboxes", "delete:sandboxes"]}).to_string();
    let (s, created) = call(&env, post("/api/api-keys", &alice, &body)).await;
    assert_eq!(s, 201);
    let value = created["value"].as_str().unwrap();
    assert!(value.starts_with("dtn_") && value.len() == 68, "{value}");
    assert_eq!(created["name"], "ci");
    assert_eq!(created["expiresAt"], Value::Null);
    assert_eq!(
        created["permissions"],
        json!(["write:sandboxes", "delete:sandboxes"])
    );

    let (s, list) = call(&env, get("/api/api-keys", &alice)).await;
    assert_eq!(s, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let masked = list[0]["value"].as_str().unwrap();
    assert_eq!(
        masked,
        format!("dtn{}{}", "*".repeat(20), &value[value.len() - 3..])
    );
    assert_eq!(list[0]["userId"], "alice");
    assert!(list[0]["organizationId"].is_string());
    assert_eq!(list[0]["lastUsedAt"], Value::Null);

    // The key itself authenticates /current, which then reports its use.
    let (s, cur) = call(&env, get("/api/api-keys/current", value)).await;
    assert_eq!(s, 200, "{cur}");
    assert_eq!(cur["name"], "ci");
    assert_eq!(cur["organizationId"], list[0]["organizationId"]);
    let (_, again) = call(&env, get("/api/api-keys/ci", &alice)).await;
    assert!(
        again["lastUsedAt"].is_string(),
        "lastUsedAt recorded: {again}"
    );

    let (s, _) = call(&env, delete("/api/api-keys/ci", &alice)).await;
    assert_eq!(s, 204);
    let (s, _) = call(&env, get("/api/api-keys/current", value)).await;
    assert_eq!(s, 401, "a deleted key no longer authenticates");
    let (s, _) = call(&env, get("/api/api-keys/ci", &alice)).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn bad_input_gets_the_right_4xx() {
    let env = env().await;
    let alice = jwt("alice");
    let cases: &[(&str, u16)] = &[
        ("{not json", 400),
        ("{\"name\": 5, \"permissions\": []}", 400),
        (
            "{\"name\": \"x\", \"permissions\": \"write:sandboxes\"}",
            400,
        ),
        (
            "{\"name\": \"x\", \"permissions\": [\"write:everything\"]}",
            400,
        ),
        ("{\"name\": \"   \", \"permissions\": []}", 400),
        ("{\"name\": \"a/b\", \"permissions\": []}", 400),
        (
            "{\"name\": \"x\", \"permissions\": [], \"expiresAt\": \"tomorrow\"}",
            400,
        ),
        ("{\"permissions\": []}", 400),
    ];
    for (body, want) in cases {
        let (s, v) = call(&env, post("/api/api-keys", &alice, body)).await;
        assert_eq!(s, *want, "{body} -> {v}");
    }
    let (s, _) = call(&env, get("/api/api-keys/nope", &alice)).await;
    assert_eq!(s, 404);
    let (s, _) = call(&env, delete("/api/api-keys/nope", &alice)).await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &env,
        Call {
            method: "PUT",
            path: "/api/api-keys",
            token: Some(&alice),
            org: None,
            body: None,
        },
    )
    .await;
    assert_eq!(s, 404);
    // Nothing was stored by any of the failures.
    let (_, list) = call(&env, get("/api/api-keys", &alice)).await;
    assert_eq!(list.as_array().unwrap().len(), 0);

    create_key(&env, &alice, "dup", &[]).await;
    let (s, v) = call(
        &env,
        post(
            "/api/api-keys",
            &alice,
            "{\"name\":\"dup\",\"permissions\":[\"write:sandboxes\"]}",
        ),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    let (_, kept) = call(&env, get("/api/api-keys/dup", &alice)).await;
    assert_eq!(
        kept["permissions"],
        json!([]),
        "the first key is untouched by the conflict"
    );
}

#[tokio::test]
async fn credentials_are_checked() {
    let env = env().await;
    let alice = jwt("alice");
    let (s, _) = call(
        &env,
        Call {
            method: "GET",
            path: "/api/api-keys",
            token: None,
            org: None,
            body: None,
        },
    )
    .await;
    assert_eq!(s, 401);
    for bad in [
        "garbage",
        "dtn_0000000000000000000000000000000000000000000000000000000000000000",
        "a.b.c",
    ] {
        let (s, _) = call(&env, get("/api/api-keys/current", bad)).await;
        assert_eq!(s, 401, "{bad}");
    }
    // A JWT signed with another secret.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "alice", "exp": 4102444800u64}),
        &jsonwebtoken::EncodingKey::from_secret(b"wrong").unwrap(),
    )
    .unwrap();
    let (s, _) = call(&env, get("/api/api-keys", &forged)).await;
    assert_eq!(s, 401);

    // A key cannot be born expired; one that expires meanwhile: 401 with Daytona's message.
    let past = "{\"name\":\"old\",\"permissions\":[],\"expiresAt\":\"2020-01-01T00:00:00.000Z\"}";
    let (s, v) = call(&env, post("/api/api-keys", &alice, past)).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("expiresAt must be in the future"))
    );
    let soon = cove_api_types::time::format_rfc3339(
        time::OffsetDateTime::now_utc() + time::Duration::seconds(1),
    );
    let body = json!({"name": "old", "permissions": [], "expiresAt": soon}).to_string();
    let (s, v) = call(&env, post("/api/api-keys", &alice, &body)).await;
    assert_eq!(s, 201);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, v) = call(
        &env,
        get("/api/api-keys/current", v["value"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str().unwrap()),
        (401, "This API key has expired")
    );

    // /current needs an API key.
    let (s, _) = call(&env, get("/api/api-keys/current", &alice)).await;
    assert_eq!(s, 400);

    // An API key without manage:api_keys cannot manage keys; one with it can, within its own rights.
    let plain = create_key(&env, &alice, "plain", &["write:sandboxes"]).await;
    let (s, _) = call(&env, get("/api/api-keys", &plain)).await;
    assert_eq!(s, 403);
    let manager = create_key(
        &env,
        &alice,
        "manager",
        &["manage:api_keys", "write:sandboxes"],
    )
    .await;
    let (s, _) = call(
        &env,
        post(
            "/api/api-keys",
            &manager,
            "{\"name\":\"sub\",\"permissions\":[\"write:sandboxes\"]}",
        ),
    )
    .await;
    assert_eq!(s, 201);
    let (s, v) = call(
        &env,
        post(
            "/api/api-keys",
            &manager,
            "{\"name\":\"esc\",\"permissions\":[\"delete:sandboxes\"]}",
        ),
    )
    .await;
    assert_eq!(
        s, 403,
        "no escalation beyond the key's own permissions: {v}"
    );
}

#[tokio::test]
async fn tenants_never_see_each_others_keys() {
    let env = env().await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let alice_key = create_key(&env, &alice, "shared-name", &["write:sandboxes"]).await;
    let bob_key = create_key(&env, &bob, "bobs", &["manage:api_keys"]).await;

    // Bob (JWT or his key) can't see or delete Alice's key, even by name.
    for token in [&bob, &bob_key] {
        let (s, list) = call(&env, get("/api/api-keys", token)).await;
        assert_eq!(s, 200);
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .all(|k| k["userId"] == "bob"),
            "{list}"
        );
        let (s, _) = call(&env, get("/api/api-keys/shared-name", token)).await;
        assert_eq!(s, 404);
        let (s, _) = call(&env, delete("/api/api-keys/shared-name", token)).await;
        assert_eq!(s, 404);
        let (s, _) = call(&env, delete("/api/api-keys/alice/shared-name", token)).await;
        assert_eq!(s, 404);
    }
    // Bob naming Alice's organization: refused.
    let (_, cur) = call(&env, get("/api/api-keys/current", &alice_key)).await;
    let alice_org = cur["organizationId"].as_str().unwrap().to_owned();
    let c = Call {
        method: "GET",
        path: "/api/api-keys",
        token: Some(&bob),
        org: Some(&alice_org),
        body: None,
    };
    let (s, _) = call(&env, c).await;
    assert_eq!(s, 403);
    let c = Call {
        method: "GET",
        path: "/api/api-keys/current",
        token: Some(&bob_key),
        org: Some(&alice_org),
        body: None,
    };
    let (s, _) = call(&env, c).await;
    assert_eq!(s, 403);
    let c = Call {
        method: "GET",
        path: "/api/api-keys",
        token: Some(&bob),
        org: Some("not-a-uuid"),
        body: None,
    };
    let (s, _) = call(&env, c).await;
    assert_eq!(s, 403);

    // Alice's key survived all of it.
    let (s, _) = call(&env, get("/api/api-keys/current", &alice_key)).await;
    assert_eq!(s, 200);
}
