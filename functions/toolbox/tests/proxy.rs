//! The toolbox function in-process (buffered handler) against dynoxide: who gets through, what is
//! forwarded where. The "runner" here is a recording HTTP server on loopback, so a test can assert
//! that a refused call never reached it and exactly what an accepted one sent. Forwarding to a
//! (simulated) runner agent and its daemon, through `cove` and the streaming component, is in
//! `tests/through_cove.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{Tenant, runner, sandbox, sid, tenant};
use cove_edge::{Env, Request};
use cove_testkit::Harness;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use serde_json::Value;

/// One request the probe runner received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// A loopback HTTP server standing in for a runner agent: it records every request and answers
/// 200 with a JSON body plus a `set-cookie` header the proxy must drop.
struct Probe {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Probe {
    async fn start() -> Probe {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            log.lock().unwrap().push(Seen {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            });
                            let resp = http::Response::builder()
                                .status(200)
                                .header("content-type", "application/json")
                                .header("set-cookie", "session=from-the-sandbox")
                                .header("x-internal", "1")
                                .body(Full::new(Bytes::from_static(br#"{"ok":true}"#)))
                                .unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Probe { url, seen }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
}

const RUNNER_TOKEN: &str = "probe-runner-token";

struct Setup {
    /// Keeps the table; `env` is its `Env`.
    _h: Harness,
    env: Env,
    probe: Probe,
    a: Tenant,
    b: Tenant,
    /// A started sandbox of A.
    id: String,
}

async fn setup() -> Setup {
    let h = Harness::new().await;
    let env = h.env.clone();
    let probe = Probe::start().await;
    let r = runner(&env, &probe.url, RUNNER_TOKEN).await;
    let a = tenant(&h).await;
    let b = tenant(&h).await;
    let id = sid();
    sandbox(&env, &id, &a.org, "started", Some(&r.id)).await;
    Setup {
        _h: h,
        env,
        probe,
        a,
        b,
        id,
    }
}

fn req(method: &str, uri: &str, token: Option<&str>, org: Option<&str>, body: &[u8]) -> Request {
    let mut b = http::Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if let Some(o) = org {
        b = b.header("x-daytona-organization-id", o);
    }
    b.header("content-type", "application/json")
        .header("x-daytona-sdk-version", "0.226.1")
        .header("cookie", "caller=secret")
        .body(Bytes::copy_from_slice(body))
        .unwrap()
}

/// Calls the function; for errors checks the Daytona envelope and returns it.
async fn call(env: &Env, r: Request) -> (u16, http::HeaderMap, Bytes) {
    let path = r.uri().path().to_owned();
    let resp = toolbox_fn::handle(env, r).await;
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    if status >= 400 {
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["statusCode"], status, "{v}");
        assert_eq!(v["source"], "DAYTONA_API");
        assert_eq!(v["path"], path);
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    (status, parts.headers, body)
}

fn envelope(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn forwards_method_path_query_and_body_with_the_runner_token() {
    let s = setup().await;
    for (uri, want) in [
        (
            format!("/toolbox/{}/process/execute?timeout=5&x=a%20b", s.id),
            format!(
                "/v1/sandboxes/{}/toolbox/process/execute?timeout=5&x=a%20b",
                s.id
            ),
        ),
        (
            format!("/api/toolbox/{}/toolbox/files/bulk-upload", s.id),
            format!("/v1/sandboxes/{}/toolbox/files/bulk-upload", s.id),
        ),
    ] {
        let body = br#"{"command":"echo hi"}"#;
        let (status, headers, resp) =
            call(&s.env, req("POST", &uri, Some(&s.a.key), None, body)).await;
        assert_eq!(status, 200, "{uri}: {resp:?}");
        assert_eq!(resp.as_ref(), br#"{"ok":true}"#);
        assert_eq!(headers["content-type"], "application/json");
        assert!(
            !headers.contains_key("set-cookie"),
            "sandbox cookies stay out"
        );
        assert!(!headers.contains_key("x-internal"));
        let seen = s.probe.last();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.uri, want);
        assert_eq!(seen.body.as_ref(), body);
        assert_eq!(
            seen.headers["authorization"],
            format!("Bearer {RUNNER_TOKEN}")
        );
        assert_eq!(seen.headers["x-daytona-sdk-version"], "0.226.1");
        assert_eq!(seen.headers["content-type"], "application/json");
        assert!(!seen.headers.contains_key("cookie"));
        assert!(!seen.headers.contains_key("x-daytona-organization-id"));
    }
    // The JWT of A with its organization header works too; GET and DELETE keep their method.
    for m in ["GET", "DELETE", "PUT"] {
        let uri = format!("/toolbox/{}/files?path=/tmp", s.id);
        let (status, _, _) = call(&s.env, req(m, &uri, Some(&s.a.jwt), Some(&s.a.org), b"")).await;
        assert_eq!(status, 200);
        assert_eq!(s.probe.last().method, m);
    }
    assert_eq!(s.probe.count(), 5);
}

#[tokio::test]
async fn another_organization_gets_404_and_nothing_is_forwarded() {
    let s = setup().await;
    let uri = format!("/toolbox/{}/process/execute", s.id);
    let legacy = format!("/api/toolbox/{}/toolbox/process/execute", s.id);
    for (token, org) in [
        (s.b.key.as_str(), None),
        (s.b.jwt.as_str(), None),
        (s.b.jwt.as_str(), Some(s.b.org.as_str())),
    ] {
        for u in [&uri, &legacy] {
            let (status, _, body) = call(&s.env, req("POST", u, Some(token), org, b"{}")).await;
            assert_eq!(status, 404, "{u}");
            assert_eq!(
                envelope(&body)["message"],
                format!("Sandbox with ID or name {} not found", s.id)
            );
        }
    }
    // B naming A's organization is not a member there: 403 before anything else.
    let (status, _, _) = call(
        &s.env,
        req("POST", &uri, Some(&s.b.jwt), Some(&s.a.org), b"{}"),
    )
    .await;
    assert_eq!(status, 403);
    // An unknown id answers exactly like another organization's sandbox.
    let unknown = sid();
    let (status, _, body) = call(
        &s.env,
        req(
            "GET",
            &format!("/toolbox/{unknown}/version"),
            Some(&s.a.key),
            None,
            b"",
        ),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        envelope(&body)["message"],
        format!("Sandbox with ID or name {unknown} not found")
    );
    assert_eq!(s.probe.count(), 0, "no refused call may reach the runner");
}

#[tokio::test]
async fn a_key_without_write_sandboxes_gets_403_and_nothing_is_forwarded() {
    let s = setup().await;
    let h = &s._h;
    let api = h.api().route("/api/api-keys/...", |env, req| async move {
        api_keys::handle(&env, req).await
    });
    // A's own organization, A's own started sandbox, but a key created without the permission.
    let reader = cove_testkit::org::api_key(&api, &s.a.jwt, None, "reader", &[]).await;
    for u in [
        format!("/toolbox/{}/process/execute", s.id),
        format!("/api/toolbox/{}/toolbox/files", s.id),
    ] {
        let (status, _, body) = call(&s.env, req("POST", &u, Some(&reader), None, b"{}")).await;
        assert_eq!(status, 403, "{u}");
        assert_eq!(
            envelope(&body)["message"],
            "Missing required permission: write:sandboxes"
        );
    }
    assert_eq!(s.probe.count(), 0, "no refused call may reach the runner");
    // The owner's JWT holds every permission.
    let uri = format!("/toolbox/{}/version", s.id);
    let (status, _, _) = call(&s.env, req("GET", &uri, Some(&s.a.jwt), None, b"")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn missing_or_invalid_credentials_get_401() {
    let s = setup().await;
    let uri = format!("/toolbox/{}/process/execute", s.id);
    let bad_key = format!("dtn_{}", "0".repeat(64));
    let bad_jwt = cove_testkit::jwt::token("x").replace('.', ".x");
    for token in [
        None,
        Some("garbage"),
        Some(bad_key.as_str()),
        Some(&bad_jwt),
    ] {
        let (status, _, body) = call(&s.env, req("POST", &uri, token, None, b"{}")).await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(envelope(&body)["message"], "Invalid credentials");
    }
    assert_eq!(s.probe.count(), 0);
}

#[tokio::test]
async fn a_sandbox_that_is_not_started_gets_400() {
    let s = setup().await;
    let r = s.env.store.runners().list().await.unwrap().remove(0);
    for state in ["stopped", "creating", "error"] {
        let id = sid();
        sandbox(&s.env, &id, &s.a.org, state, Some(&r.id)).await;
        let (status, _, body) = call(
            &s.env,
            req(
                "POST",
                &format!("/toolbox/{id}/process/execute"),
                Some(&s.a.key),
                None,
                b"{}",
            ),
        )
        .await;
        assert_eq!(status, 400, "{state}");
        let v = envelope(&body);
        assert_eq!(v["code"], "SANDBOX_NOT_STARTED");
        assert_eq!(
            v["message"],
            format!("Sandbox is not running (state: {state})")
        );
    }
    // Destroyed is gone: 404, as for any unknown id.
    let id = sid();
    sandbox(&s.env, &id, &s.a.org, "destroyed", None).await;
    let (status, _, _) = call(
        &s.env,
        req(
            "GET",
            &format!("/toolbox/{id}/version"),
            Some(&s.a.key),
            None,
            b"",
        ),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(s.probe.count(), 0);
}

#[tokio::test]
async fn websocket_upgrades_and_dot_segments_are_refused() {
    let s = setup().await;
    let mut r = req(
        "GET",
        &format!(
            "/toolbox/{}/process/session/s1/command/c1/logs?follow=true",
            s.id
        ),
        Some(&s.a.key),
        None,
        b"",
    );
    r.headers_mut()
        .insert("upgrade", http::HeaderValue::from_static("websocket"));
    r.headers_mut().insert(
        "sec-websocket-key",
        http::HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
    );
    let (status, _, body) = call(&s.env, r).await;
    assert_eq!(status, 400);
    assert!(
        envelope(&body)["message"]
            .as_str()
            .unwrap()
            .contains("WebSocket"),
        "{body:?}"
    );
    for uri in [
        format!("/toolbox/{}/../other/toolbox/version", s.id),
        format!("/toolbox/{}/files/%2e%2e/x", s.id),
    ] {
        let (status, _, _) = call(&s.env, req("GET", &uri, Some(&s.a.key), None, b"")).await;
        assert_eq!(status, 400, "{uri}");
    }
    assert_eq!(s.probe.count(), 0);
}

#[tokio::test]
async fn runner_problems_are_502_and_503() {
    let s = setup().await;
    // A runner that does not listen: 502.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let dead = runner(&s.env, &closed, "t").await;
    let id = sid();
    sandbox(&s.env, &id, &s.a.org, "started", Some(&dead.id)).await;
    let (status, _, _) = call(
        &s.env,
        req(
            "GET",
            &format!("/toolbox/{id}/version"),
            Some(&s.a.key),
            None,
            b"",
        ),
    )
    .await;
    assert_eq!(status, 502);
    // A started sandbox without a runner: 503.
    let id = sid();
    sandbox(&s.env, &id, &s.a.org, "started", None).await;
    let (status, _, _) = call(
        &s.env,
        req(
            "GET",
            &format!("/toolbox/{id}/version"),
            Some(&s.a.key),
            None,
            b"",
        ),
    )
    .await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn activity_is_recorded_at_most_once_a_minute() {
    let s = setup().await;
    let r = s.env.store.runners().list().await.unwrap().remove(0);
    let id = sid();
    let sandbox_id = cove_api_types::ids::SandboxId::parse(&id).unwrap();
    let mut rec = cove_store::sandboxes::SandboxRecord::new(
        sandbox_id.clone(),
        cove_api_types::ids::OrganizationId::parse(&s.a.org).unwrap(),
        &id,
        "cove-sandbox-base:latest",
        "2026-01-01T00:00:00.000Z",
    );
    rec.state = cove_api_types::sandbox::SandboxState::Started;
    rec.runner_id = Some(r.id.clone());
    rec.auth_token = "a".repeat(32);
    s.env
        .store
        .sandboxes()
        .create(&rec, &cove_store::orgs::OrgQuota::default())
        .await
        .unwrap();
    let before = time::OffsetDateTime::now_utc();
    let uri = format!("/toolbox/{id}/version");
    let (status, _, _) = call(&s.env, req("GET", &uri, Some(&s.a.key), None, b"")).await;
    assert_eq!(status, 200);
    let first = s
        .env
        .store
        .sandboxes()
        .get(&sandbox_id)
        .await
        .unwrap()
        .unwrap()
        .last_activity_at;
    let t = cove_api_types::time::parse_rfc3339(&first).unwrap();
    assert!(
        t >= before - time::Duration::seconds(1),
        "activity recorded: {first}"
    );
    // Within the minute: no second write.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, _, _) = call(&s.env, req("GET", &uri, Some(&s.a.key), None, b"")).await;
    assert_eq!(status, 200);
    let second = s
        .env
        .store
        .sandboxes()
        .get(&sandbox_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.last_activity_at, first);
    assert_eq!(
        second.version, 1,
        "touching activity never bumps the version"
    );
}

/// Every toolbox operation of the checked-in OpenAPI document, called with another organization's
/// credentials: 404, nothing forwarded. A toolbox route added to the document is covered here
/// without further edits; the document must keep at least the two toolbox routes.
#[tokio::test]
async fn every_documented_toolbox_route_is_tenant_isolated() {
    let doc: Value = cove_testkit::bins::control_plane_document();
    let s = setup().await;
    let mut covered = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        if !(template.starts_with("/toolbox/") || template.starts_with("/api/toolbox/")) {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            let path = template
                .replace("{sandboxId}", &s.id)
                .replace("{path}", "files/info");
            for (token, org) in [(s.b.key.as_str(), None), (s.b.jwt.as_str(), None)] {
                let (status, _, body) = call(&s.env, req(&m, &path, Some(token), org, b"{}")).await;
                assert_eq!(status, 404, "{m} {path}");
                // The function's own answer, not a router's "Cannot GET": a documented route
                // that is not routed fails here.
                assert_eq!(
                    envelope(&body)["message"],
                    format!("Sandbox with ID or name {} not found", s.id),
                    "{m} {path}"
                );
                assert!(
                    !String::from_utf8_lossy(&body).contains(&s.a.org),
                    "{m} {path} leaked the owner's organization"
                );
            }
            covered += 1;
        }
    }
    assert!(
        covered >= 8,
        "toolbox routes missing from the document ({covered} operations)"
    );
    assert_eq!(s.probe.count(), 0, "no refused call may reach the runner");
}
