//! Router tests over the simulated runtime (no socket).

use super::*;
use crate::config::Config;
use crate::runtime::fake::FakeRuntime;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn oneshot(app: Router, req: axum::http::Request<Body>) -> Response {
    match app.oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    }
}

fn app() -> (tempfile::TempDir, Router) {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = Config::for_tests(dir.path().to_path_buf());
    let rec = Reconciler::new(
        cfg,
        Arc::new(FakeRuntime::new(dir.path().join("fake"), &["img:1".into()])),
        dir.path().join("tb"),
    );
    (dir, router(rec))
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let mut req = axum::http::Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = oneshot(
        app.clone(),
        req.body(Body::from(body.to_owned())).expect("req"),
    )
    .await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn token_is_required() {
    let (_d, app) = app();
    let (s, v) = call(&app, "GET", "/v1/sandboxes", None, "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["code"], "UNAUTHORIZED");
    assert_eq!(v["statusCode"], 401);
    assert_eq!(v["path"], "/v1/sandboxes");
    assert_eq!(v["source"], "COVE_RUNNER");
    let (s, _) = call(&app, "GET", "/v1/sandboxes", Some("wrong"), "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(
        &app,
        "GET",
        "/v1/sandboxes/x/toolbox/files",
        Some("test-tokenx"),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(&app, "GET", "/", None, "").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn lifecycle_over_http() {
    let (_d, app) = app();
    let t = Some("test-token");
    let (s, v) = call(
        &app,
        "PUT",
        "/v1/sandboxes/s1",
        t,
        r#"{"generation":1,"snapshot":"img:1"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "started");
    let (s, v) = call(
        &app,
        "PUT",
        "/v1/sandboxes/s1",
        t,
        r#"{"generation":2,"snapshot":"img:1","desiredState":"stopped"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["state"], "stopped");
    let (s, v) = call(&app, "GET", "/v1/sandboxes/s1", t, "").await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("stopped")));
    let (s, v) = call(&app, "GET", "/v1/sandboxes/s1/toolbox/files", t, "").await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["code"], "SANDBOX_NOT_STARTED");
    // The agent names the backup, whatever an older control plane asks for.
    let (s, v) = call(
        &app,
        "POST",
        "/v1/sandboxes/s1/backup",
        t,
        r#"{"image":"backup/s1:1"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let image = v["image"].as_str().expect("image").to_owned();
    assert!(image.starts_with("cove-backup/"), "{image}");
    assert!(!image.contains("s1"), "{image}");
    let (s, v) = call(&app, "PUT", "/v1/sandboxes/s1", t, "{not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "BAD_REQUEST");
    let (s, v) = call(&app, "DELETE", "/v1/sandboxes/s1", t, "").await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("destroyed"))
    );
    let (s, v) = call(&app, "GET", "/v1/sandboxes/s1", t, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "SANDBOX_NOT_FOUND");
    let (s, v) = call(&app, "GET", "/v1/info", t, "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["metrics"]["cpu"].as_u64().is_some());
}
