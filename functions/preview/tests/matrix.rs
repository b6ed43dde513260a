//! The `/api/preview/*` answers of CONTRACT §9, in-process against dynoxide: public / private /
//! missing sandboxes × no token / the proxy token / a wrong token / a user key (own and other
//! organization), signed tokens, and the runners function's `by-sandbox` with the proxy token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use cove_api_types::ids::{OrganizationId, SandboxId};
use cove_api_types::sandbox::SandboxState;
use cove_edge::{Env, Request};
use cove_store::orgs::OrgQuota;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::SandboxRecord;
use cove_testkit::Harness;
use cove_testkit::org::User;
use preview::PreviewSettings;
use serde_json::Value;

const PROXY: &str = "proxy-service-token-for-tests";

struct Tenant {
    key: String,
    jwt: String,
    org: String,
}

async fn tenant(h: &Harness) -> Tenant {
    let user = User::unique("p");
    let org = h.personal_org(&user.sub).await;
    let api = h.api().route("/api/api-keys/...", |env, req| async move {
        api_keys::handle(&env, req).await
    });
    let key = cove_testkit::org::api_key(&api, &user.jwt, None, "k", &["write:sandboxes"]).await;
    Tenant {
        key,
        jwt: user.jwt,
        org: org.as_str().to_owned(),
    }
}

async fn runner(env: &Env) -> RunnerRecord {
    let now = cove_api_types::time::now_rfc3339();
    let mut r = RunnerRecord::new("preview-runner", "us", &now).unwrap();
    r.api_url = Some("http://127.0.0.1:9".to_owned());
    r.state = cove_api_types::runner::RunnerState::Ready;
    env.store.runners().create(&r).await.unwrap()
}

async fn sandbox(env: &Env, org: &str, public: bool, runner: &RunnerRecord) -> SandboxRecord {
    let id = uuid::Uuid::new_v4().to_string();
    let mut s = SandboxRecord::new(
        SandboxId::parse(&id).unwrap(),
        OrganizationId::parse(org).unwrap(),
        &id,
        "cove-sandbox-base:latest",
        &cove_api_types::time::now_rfc3339(),
    );
    s.state = SandboxState::Started;
    s.public = public;
    s.runner_id = Some(runner.id.clone());
    s.auth_token = cove_store::sandboxes::generate_auth_token().unwrap();
    env.store
        .sandboxes()
        .create(&s, &OrgQuota::default())
        .await
        .unwrap()
}

fn req(method: &str, uri: &str, bearer: Option<&str>) -> Request {
    let mut b = http::Request::builder().method(method).uri(uri);
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Bytes::new()).unwrap()
}

async fn call(env: &Env, method: &str, uri: &str, bearer: Option<&str>) -> (u16, Value) {
    let settings = PreviewSettings {
        proxy_api_key: Some(PROXY.to_owned()),
    };
    let resp = preview::handle(env, &settings, req(method, uri, bearer)).await;
    let status = resp.status().as_u16();
    let v = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (status, v)
}

#[tokio::test]
async fn proxy_routes_answer_exactly_section_9() {
    let h = Harness::new().await;
    let env = &h.env;
    let a = tenant(&h).await;
    let r = runner(env).await;
    let public = sandbox(env, &a.org, true, &r).await;
    let private = sandbox(env, &a.org, false, &r).await;
    let missing = uuid::Uuid::new_v4().to_string();
    let (pubid, privid) = (public.id.as_str(), private.id.as_str());

    // public: 200 true for public only; private and missing look the same (404).
    assert_eq!(
        call(
            env,
            "GET",
            &format!("/api/preview/{pubid}/public"),
            Some(PROXY)
        )
        .await,
        (200, Value::Bool(true))
    );
    for id in [privid, missing.as_str()] {
        assert_eq!(
            call(
                env,
                "GET",
                &format!("/api/preview/{id}/public"),
                Some(PROXY)
            )
            .await
            .0,
            404,
            "{id}"
        );
    }
    // validate: the right token only.
    let good = format!("/api/preview/{privid}/validate/{}", private.auth_token);
    assert_eq!(
        call(env, "GET", &good, Some(PROXY)).await,
        (200, Value::Bool(true))
    );
    let wrong = format!("/api/preview/{privid}/validate/{}", public.auth_token);
    assert_eq!(call(env, "GET", &wrong, Some(PROXY)).await.0, 404);
    let gone = format!("/api/preview/{missing}/validate/{}", private.auth_token);
    assert_eq!(call(env, "GET", &gone, Some(PROXY)).await.0, 404);
    // Proxy routes refuse everything but the proxy token: none 401, a user key / JWT / wrong 403.
    for uri in [
        format!("/api/preview/{pubid}/public"),
        good.clone(),
        format!("/api/preview/{privid}/signing-key"),
        format!("/api/preview/{privid}/preview-warning?port=80"),
    ] {
        assert_eq!(call(env, "GET", &uri, None).await.0, 401, "{uri}");
        for t in [a.key.as_str(), a.jwt.as_str(), "wrong-token"] {
            assert_eq!(call(env, "GET", &uri, Some(t)).await.0, 403, "{uri}");
        }
    }
    assert_eq!(
        call(
            env,
            "POST",
            &format!("/api/preview/{privid}/last-activity"),
            Some(&a.key)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            env,
            "POST",
            &format!("/api/preview/{privid}/last-activity"),
            Some(PROXY)
        )
        .await
        .0,
        201
    );
    let (st, warn) = call(
        env,
        "GET",
        &format!("/api/preview/{privid}/preview-warning?port=80"),
        Some(PROXY),
    )
    .await;
    assert_eq!((st, warn["enabled"].clone()), (200, Value::Bool(false)));
    let (st, key) = call(
        env,
        "GET",
        &format!("/api/preview/{privid}/signing-key"),
        Some(PROXY),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(key.as_str().unwrap().len(), 64);
}

#[tokio::test]
async fn access_is_organization_membership() {
    let h = Harness::new().await;
    let env = &h.env;
    let (a, b) = (tenant(&h).await, tenant(&h).await);
    let r = runner(env).await;
    let s = sandbox(env, &a.org, false, &r).await;
    let uri = format!("/api/preview/{}/access", s.id);
    assert_eq!(
        call(env, "GET", &uri, Some(&a.key)).await,
        (200, Value::Bool(true))
    );
    assert_eq!(
        call(env, "GET", &uri, Some(&a.jwt)).await,
        (200, Value::Bool(true))
    );
    // Another organization's key or JWT: the same 404 as a missing sandbox.
    assert_eq!(call(env, "GET", &uri, Some(&b.key)).await.0, 404);
    assert_eq!(call(env, "GET", &uri, Some(&b.jwt)).await.0, 404);
    let missing = format!("/api/preview/{}/access", uuid::Uuid::new_v4());
    assert_eq!(call(env, "GET", &missing, Some(&a.key)).await.0, 404);
    // No credential, a bad one, the proxy's token: 401 (access is the user's own credential).
    for t in [None, Some("dtn_not-a-key"), Some(PROXY)] {
        assert_eq!(call(env, "GET", &uri, t).await.0, 401, "{t:?}");
    }
    // The toolbox path's check: the owner's key passes, the other org's is 404, a stopped sandbox 400.
    let tb = format!("/api/preview/{}/toolbox-access", s.id);
    assert_eq!(
        call(env, "GET", &tb, Some(&a.key)).await,
        (200, Value::Bool(true))
    );
    assert_eq!(call(env, "GET", &tb, Some(&b.key)).await.0, 404);
    assert_eq!(call(env, "GET", &tb, None).await.0, 401);
    let stopped = sandbox_with_state(env, &a.org, &r, SandboxState::Stopped).await;
    let (st, v) = call(
        env,
        "GET",
        &format!("/api/preview/{}/toolbox-access", stopped.id),
        Some(&a.key),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("SANDBOX_NOT_STARTED")),
        "{v}"
    );
}

async fn sandbox_with_state(
    env: &Env,
    org: &str,
    r: &RunnerRecord,
    state: SandboxState,
) -> SandboxRecord {
    let id = uuid::Uuid::new_v4().to_string();
    let mut s = SandboxRecord::new(
        SandboxId::parse(&id).unwrap(),
        OrganizationId::parse(org).unwrap(),
        &id,
        "cove-sandbox-base:latest",
        &cove_api_types::time::now_rfc3339(),
    );
    s.state = state;
    s.runner_id = Some(r.id.clone());
    env.store
        .sandboxes()
        .create(&s, &OrgQuota::default())
        .await
        .unwrap()
}

async fn sandboxes_call(env: &Env, method: &str, uri: &str, bearer: &str) -> (u16, Value) {
    let settings = cove_edge::config::SandboxSettings {
        proxy_domain: Some("preview.test".to_owned()),
        ..Default::default()
    };
    let resp = sandboxes::handle(env, &settings, req(method, uri, Some(bearer))).await;
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(resp.body()).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn signed_preview_urls_resolve_until_they_expire() {
    let h = Harness::new().await;
    let env = &h.env;
    let (a, b) = (tenant(&h).await, tenant(&h).await);
    let r = runner(env).await;
    let s = sandbox(env, &a.org, false, &r).await;
    let base = format!("/api/sandbox/{}/ports/8080/signed-preview-url", s.id);
    for bad in ["0", "86401", "x"] {
        let (st, _) = sandboxes_call(
            env,
            "GET",
            &format!("{base}?expiresInSeconds={bad}"),
            &a.key,
        )
        .await;
        assert_eq!(st, 400, "{bad}");
    }
    assert_eq!(
        sandboxes_call(env, "GET", &base, &b.key).await.0,
        404,
        "another org's sandbox"
    );
    let (st, v) = sandboxes_call(env, "GET", &format!("{base}?expiresInSeconds=2"), &a.key).await;
    assert_eq!(st, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 16);
    assert_eq!(v["url"], format!("http://8080-{token}.preview.test"));
    assert_eq!(v["port"], 8080);
    let lookup = format!("/api/preview/{token}/8080/sandbox-id");
    assert_eq!(
        call(env, "GET", &lookup, Some(PROXY)).await,
        (200, Value::String(s.id.to_string()))
    );
    assert_eq!(
        call(
            env,
            "GET",
            &format!("/api/preview/{token}/8081/sandbox-id"),
            Some(PROXY)
        )
        .await
        .0,
        404,
        "another port"
    );
    assert_eq!(
        call(env, "GET", &lookup, Some(&a.key)).await.0,
        403,
        "user keys are refused"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        call(env, "GET", &lookup, Some(PROXY)).await.0,
        404,
        "expired"
    );

    // Expired early through the sandbox route.
    let (_, v) = sandboxes_call(env, "GET", &base, &a.key).await;
    let token = v["token"].as_str().unwrap().to_owned();
    let expire = format!("{base}/{token}/expire");
    assert_eq!(sandboxes_call(env, "POST", &expire, &b.key).await.0, 404);
    assert_eq!(sandboxes_call(env, "POST", &expire, &a.key).await.0, 200);
    assert_eq!(
        call(
            env,
            "GET",
            &format!("/api/preview/{token}/8080/sandbox-id"),
            Some(PROXY)
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn runners_by_sandbox_takes_the_proxy_token() {
    let h = Harness::new().await;
    let env = &h.env;
    let a = tenant(&h).await;
    let r = runner(env).await;
    let s = sandbox(env, &a.org, false, &r).await;
    let settings = runners::ProxySettings::with_key(PROXY);
    let uri = format!("/api/runners/by-sandbox/{}", s.id);
    let go = |t: &'static str| {
        let settings = settings.clone();
        let uri = uri.clone();
        async move {
            let resp = runners::serve(env, &settings, req("GET", &uri, Some(t))).await;
            let st = resp.status().as_u16();
            (
                st,
                serde_json::from_slice::<Value>(resp.body()).unwrap_or(Value::Null),
            )
        }
    };
    let (st, v) = go(PROXY).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["apiKey"], r.api_key);
    assert_eq!(v["apiUrl"], "http://127.0.0.1:9");
    assert_eq!(go("wrong-token").await.0, 401);
    let resp = runners::serve(env, &settings, req("GET", &uri, Some(&a.key))).await;
    assert_eq!(resp.status().as_u16(), 403, "a user key is not enough");
    let none = runners::serve(
        env,
        &runners::ProxySettings::default(),
        req("GET", &uri, Some(PROXY)),
    )
    .await;
    assert_eq!(none.status().as_u16(), 401, "no proxy configured");
}

/// Signed file URLs (CONTRACT §10.7): the user's key from `/api/sandbox/{id}/signing-key`, the
/// proxy's verification, the rotation that invalidates, and the other organization's refusal.
#[tokio::test]
async fn signed_file_urls_verify_until_they_expire_or_the_key_rotates() {
    use cove_testkit::api::{Api, Call};
    let h = Harness::new().await;
    let env = &h.env;
    let (a, b) = (tenant(&h).await, tenant(&h).await);
    let r = runner(env).await;
    let s = sandbox(env, &a.org, false, &r).await;
    let id = s.id.as_str().to_owned();
    let api = h.api().route("/api/sandbox/...", |env, req| async move {
        sandboxes::handle(&env, &cove_edge::config::SandboxSettings::default(), req).await
    });
    let verify = |method: &str, path: &str, expires: i64, sig: &str| {
        format!(
            "/api/preview/{id}/file-url/verify?method={method}&path={}&expires={expires}&signature={sig}",
            path.replace('/', "%2F").replace(' ', "+")
        )
    };
    // Before any key is handed out, nothing is signed.
    let never = preview::service::file_url_signature("", "GET", "/a", 0);
    assert_eq!(
        call(env, "GET", &verify("GET", "/a", 0, &never), Some(PROXY)).await,
        (200, Value::Bool(false))
    );
    // The other organization cannot read or rotate the key.
    for (m, p) in [("GET", "signing-key"), ("POST", "signing-key/rotate")] {
        let (st, _) = api
            .call(Call::new(m.parse().unwrap(), format!("/api/sandbox/{id}/{p}")).token(&b.key))
            .await;
        assert_eq!(st, 404, "{m} {p}");
    }
    let (st, key) = api
        .call(Call::get(format!("/api/sandbox/{id}/signing-key")).token(&a.key))
        .await;
    assert_eq!(st, 200, "{key}");
    let key = key.as_str().unwrap().to_owned();
    assert!(key.len() >= 32);
    // The same key on every read.
    let (_, again) = api
        .call(Call::get(format!("/api/sandbox/{id}/signing-key")).token(&a.key))
        .await;
    assert_eq!(again.as_str(), Some(key.as_str()));

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let path = "/home/daytona/a b.txt";
    let sig = |k: &str, m: &str, e: i64| {
        preview::service::file_url_signature(k, m, path, u64::try_from(e).unwrap())
    };
    let good = verify("GET", path, now + 60, &sig(&key, "GET", now + 60));
    assert_eq!(
        call(env, "GET", &good, Some(PROXY)).await,
        (200, Value::Bool(true))
    );
    // Only the proxy may ask.
    assert_eq!(call(env, "GET", &good, Some(&a.key)).await.0, 403);
    assert_eq!(call(env, "GET", &good, None).await.0, 401);
    // Expired, another method or path, a forged signature: false.
    for uri in [
        verify("GET", path, now - 1, &sig(&key, "GET", now - 1)),
        verify("POST", path, now + 60, &sig(&key, "GET", now + 60)),
        verify("GET", "/etc/passwd", now + 60, &sig(&key, "GET", now + 60)),
        verify("GET", path, now + 60, "v1_forged"),
    ] {
        assert_eq!(
            call(env, "GET", &uri, Some(PROXY)).await,
            (200, Value::Bool(false)),
            "{uri}"
        );
    }
    // A rotation: the old URL is refused at once, the new key signs.
    let (st, fresh) = api
        .call(Call::post(format!("/api/sandbox/{id}/signing-key/rotate")).token(&a.key))
        .await;
    assert_eq!(st, 200);
    let fresh = fresh.as_str().unwrap().to_owned();
    assert_ne!(fresh, key);
    assert_eq!(
        call(env, "GET", &good, Some(PROXY)).await,
        (200, Value::Bool(false))
    );
    let renewed = verify("GET", path, 0, &sig(&fresh, "GET", 0));
    assert_eq!(
        call(env, "GET", &renewed, Some(PROXY)).await,
        (200, Value::Bool(true))
    );
    // A missing sandbox is 404 to the proxy.
    let missing = uuid::Uuid::new_v4();
    assert_eq!(
        call(
            env,
            "GET",
            &format!(
                "/api/preview/{missing}/file-url/verify?method=GET&path=%2Fa&expires=0&signature=x"
            ),
            Some(PROXY)
        )
        .await
        .0,
        404
    );
}
