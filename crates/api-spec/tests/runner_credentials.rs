//! Runner routes and their credentials (issue 9 item 2), over the routes the runners function
//! documents:
//!
//! * every admin route needs a system admin AND the route's permission on the credential: the
//!   admin's API key without permissions is refused on every one (with a valid body), a key with
//!   `read:runners` reads but cannot write or delete, `write:runners` cannot delete;
//! * runner-token routes refuse every user credential, and the runner's token is masked in every
//!   view after its creation;
//! * a runner's token reports state only for sandboxes assigned to that runner.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use cove_testkit::api::{Api, Call};
use cove_testkit::org::{self, User};
use cove_testkit::{AgentOptions, FAKE_IMAGE, Harness, InProcess};
use http::Method;
use serde_json::{Value, json};
use utoipa::OpenApi;

/// (METHOD, path template, security scheme) of every runners operation.
fn runner_operations() -> Vec<(String, String, String)> {
    let doc = runners::ApiDoc::openapi();
    let v: Value = serde_json::from_str(&doc.to_json().unwrap()).unwrap();
    let mut out = Vec::new();
    for (path, item) in v["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let scheme = op["security"][0]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap();
            out.push((method.to_uppercase(), path.clone(), scheme.clone()));
        }
    }
    assert!(out.len() >= 12, "the runners function documents {out:?}");
    out
}

/// A call that would succeed with the right credential: real ids, valid bodies.
fn valid_call(method: &str, template: &str, runner: &str, sandbox: &str, token: &str) -> Call {
    let path = template
        .replace("{id}", runner)
        .replace("{sandboxId}", sandbox);
    let body = match (method, template) {
        ("POST", "/api/runners") => Some(json!({"regionId": "us", "name": "new-runner"})),
        (_, p) if p.ends_with("/scheduling") => Some(json!({"unschedulable": false})),
        (_, p) if p.ends_with("/draining") => Some(json!({"draining": false})),
        _ => None,
    };
    let path = if template.contains("by-snapshot") {
        format!("{path}?ref={FAKE_IMAGE}")
    } else if method == "DELETE" {
        format!("{path}?force=true")
    } else {
        path
    };
    let mut c = Call::new(Method::from_bytes(method.as_bytes()).unwrap(), path).token(token);
    if let Some(b) = body {
        c = c.json(&b);
    }
    c
}

struct Setup {
    api: InProcess,
    admin: String,
    runner_id: String,
    runner_token: String,
    sandbox: String,
    user_key: String,
}

async fn setup(h: &Harness) -> Setup {
    let api = support::api(h);
    let admin = h.admin("root").await;
    let runner = h.runner().expect("a runner").clone();
    let user = User::new("tenant");
    org::personal_org(&api, &user.jwt).await;
    let user_key = org::api_key(
        &api,
        &user.jwt,
        None,
        "k",
        &["write:sandboxes", "delete:sandboxes"],
    )
    .await;
    let created = api
        .send(Call::post("/api/sandbox").token(&user_key).json(&json!({})))
        .await
        .expect(200, "create a sandbox");
    Setup {
        api,
        admin,
        runner_id: runner.id.to_string(),
        runner_token: runner.api_key.clone(),
        sandbox: created["id"].as_str().unwrap().to_owned(),
        user_key,
    }
}

fn permission_of(method: &str) -> &'static str {
    match method {
        "GET" => "read:runners",
        "DELETE" => "delete:runners",
        _ => "write:runners",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_keys_hold_exactly_their_runner_permissions() {
    let h = Harness::with_runner(AgentOptions::fake())
        .await
        .expect("harness");
    let s = setup(&h).await;
    let bare = org::api_key(&s.api, &s.admin, None, "bare", &[]).await;
    let mut keys = vec![("none", bare)];
    for p in ["read:runners", "write:runners", "delete:runners"] {
        keys.push((p, org::api_key(&s.api, &s.admin, None, p, &[p]).await));
    }
    let ops: Vec<_> = runner_operations()
        .into_iter()
        .filter(|(_, _, scheme)| scheme == "bearer")
        .collect();
    // Deletion last: it removes the runner the other calls name.
    let (deletes, others): (Vec<_>, Vec<_>) = ops.into_iter().partition(|(m, _, _)| m == "DELETE");
    for (method, template, _) in others.iter().chain(&deletes) {
        let needed = permission_of(method);
        for (held, key) in &keys {
            let call = valid_call(method, template, &s.runner_id, &s.sandbox, key);
            let r = s.api.send(call).await;
            let allowed = *held == needed;
            let ok = if allowed {
                (200..300).contains(&r.status)
            } else {
                r.status == 403
            };
            assert!(
                ok,
                "{method} {template} with a key holding {held} (needs {needed}): {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_routes_take_runner_tokens_only_and_never_show_them() {
    let h = Harness::with_runner(AgentOptions::fake())
        .await
        .expect("harness");
    let s = setup(&h).await;
    let all: Vec<&str> = cove_api_types::permissions::Permission::ALL
        .iter()
        .map(|p| p.as_str())
        .collect();
    let admin_key = org::api_key(&s.api, &s.admin, None, "all", &all).await;
    for (method, template, scheme) in runner_operations() {
        if scheme != "runner_token" {
            continue;
        }
        for (who, token) in [
            ("admin JWT", &s.admin),
            ("admin key", &admin_key),
            ("user key", &s.user_key),
        ] {
            let call =
                valid_call(&method, &template, &s.runner_id, &s.sandbox, token).json(&json!({}));
            let r = s.api.send(call).await;
            assert_eq!(
                r.status,
                401,
                "{method} {template} as {who}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    // Masked in every view: its own, the admin's, by sandbox, the list.
    let me = s
        .api
        .send(Call::get("/api/runners/me").token(&s.runner_token))
        .await
        .expect(200, "me");
    let views = [
        me,
        get(&s.api, &admin_key, &format!("/api/runners/{}", s.runner_id)).await,
        get(
            &s.api,
            &admin_key,
            &format!("/api/runners/{}/full", s.runner_id),
        )
        .await,
        get(
            &s.api,
            &admin_key,
            &format!("/api/runners/by-sandbox/{}", s.sandbox),
        )
        .await,
        get(&s.api, &admin_key, "/api/runners").await,
    ];
    for v in &views {
        assert!(
            !v.to_string().contains(&s.runner_token),
            "the token shows in {v}"
        );
    }
    assert_eq!(views[2]["id"], s.runner_id.as_str(), "{}", views[2]);
    let created = org::register_runner(&s.api, &admin_key, "shown-once").await;
    let again = get(
        &s.api,
        &admin_key,
        &format!("/api/runners/{}/full", created.id),
    )
    .await;
    assert!(!again.to_string().contains(&created.token), "{again}");
}

async fn get(api: &InProcess, token: &str, path: &str) -> Value {
    api.send(Call::get(path).token(token))
        .await
        .expect(200, &format!("GET {path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_reports_only_its_own_sandboxes() {
    let h = Harness::with_runner(AgentOptions::fake())
        .await
        .expect("harness");
    let s = setup(&h).await;
    let b = org::register_runner(&s.api, &s.admin, "runner-b").await;
    let path = format!("/api/sandbox/{}/state", s.sandbox);
    let sandbox = |api: &InProcess| {
        let p = format!("/api/sandbox/{}", s.sandbox);
        let key = s.user_key.clone();
        let api = api.clone();
        async move {
            api.send(Call::get(p).token(key))
                .await
                .expect(200, "sandbox")
        }
    };
    let before = sandbox(&s.api).await;
    assert_eq!(before["state"], "started", "{before}");
    for body in [
        json!({"state": "error", "errorReason": "B says so"}),
        json!({}),
        json!({"state": 7}),
    ] {
        let r = s
            .api
            .send(Call::put(&path).token(&b.token).json(&body))
            .await;
        assert_eq!(
            r.status,
            404,
            "runner B reporting A's sandbox with {body}: {}",
            r.json()
        );
    }
    let after = sandbox(&s.api).await;
    assert_eq!(
        (after["state"].clone(), after["errorReason"].clone()),
        (before["state"].clone(), before["errorReason"].clone())
    );
    // Its own runner may.
    let body = json!({"state": "error", "errorReason": "the container died"});
    let r = s
        .api
        .send(Call::put(&path).token(&s.runner_token).json(&body))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(sandbox(&s.api).await["state"], "error");
}
