//! The route table, the real router and the document agree: every routed `(method, path)` is
//! documented and every documented one is routed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request};
use cove_toolbox::routes::{NO_ROUTE, ROUTES, router};
use cove_toolbox::server::AppState;
use tower::ServiceExt;

fn table() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(m, p)| (m.to_ascii_uppercase(), (*p).to_owned()))
        .collect()
}

fn documented() -> BTreeSet<(String, String)> {
    cove_toolbox_openapi::our_operations()
        .into_iter()
        .map(|op| (op.method, op.path))
        .collect()
}

#[test]
fn the_table_and_the_document_list_the_same_operations() {
    let (table, doc) = (table(), documented());
    assert_eq!(table.len(), ROUTES.len(), "a route is listed twice");
    let undocumented: Vec<_> = table.difference(&doc).collect();
    let unrouted: Vec<_> = doc.difference(&table).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not documented: {undocumented:?}\ndocumented but not routed: {unrouted:?}"
    );
}

/// Sends `method path` (parameters filled in, no query, empty body) to the real router; true
/// when a handler answered, false when the fallback did.
async fn routed(app: &axum::Router, method: &str, path: &str) -> bool {
    let uri = cove_toolbox_openapi::normalize(path).replace("{}", "probe");
    let req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    !(matches!(status, 404 | 405) && message.starts_with(NO_ROUTE))
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("root");
    let paths =
        cove_toolbox::paths::Paths::new(Some(&root), "/".as_ref(), "/".as_ref()).expect("paths");
    let app = router(AppState::new(paths, dir.path().join("state")));
    let mut unrouted = Vec::new();
    for (method, path) in documented() {
        if !routed(&app, &method, &path).await {
            unrouted.push(format!("{method} {path}"));
        }
    }
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
    // The probe tells the fallback apart: these are not routes.
    for (method, path) in [("PUT", "/files"), ("GET", "/no/such/route")] {
        assert!(!routed(&app, method, path).await, "{method} {path}");
    }
}

/// Every operation whose document declares a JSON request body.
fn json_bodied() -> Vec<(String, String)> {
    let v: serde_json::Value =
        serde_json::from_str(&cove_toolbox_openapi::document_json()).expect("JSON");
    let mut out = Vec::new();
    for (path, item) in v["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if op["requestBody"]["content"]["application/json"].is_object() {
                out.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_json_route_refuses_an_oversized_body_with_413() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = cove_toolbox::paths::Paths::new(Some(dir.path()), "/".as_ref(), "/".as_ref())
        .expect("paths");
    let app = router(AppState::new(paths, dir.path().join("state")));
    let routes = json_bodied();
    assert!(routes.len() >= 23, "only {} JSON routes", routes.len());
    let body = vec![b' '; cove_toolbox::server::JSON_BODY_LIMIT + 1];
    for (method, path) in routes {
        let uri = cove_toolbox_openapi::normalize(&path).replace("{}", "probe");
        let req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(&uri)
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .expect("request");
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(status, 413, "{method} {path}: {v}");
        assert_eq!(v["code"], "INVALID_REQUEST_BODY", "{method} {path}: {v}");
        assert_eq!(v["source"], "DAYTONA_DAEMON", "{method} {path}: {v}");
    }
}
