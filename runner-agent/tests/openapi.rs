//! `openapi/runner-agent.json` is generated from the route table (regenerate with
//! `EXPECTORATE=overwrite cargo test --release -p cove-runner-agent --test openapi`), and the
//! routed and documented (method, path) pairs agree.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cove_runner_agent::config::Config;
use cove_runner_agent::reconciler::Reconciler;
use cove_runner_agent::runtime::fake::FakeRuntime;
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn documented() -> Vec<(String, String)> {
    let doc = cove_runner_agent::http::openapi();
    let v: serde_json::Value = serde_json::from_str(&doc.to_json().expect("json")).expect("parse");
    let mut ops = Vec::new();
    for (path, item) in v["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.push((m.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn runner_agent_document_is_up_to_date() {
    let doc = cove_runner_agent::http::openapi();
    let json = doc.to_pretty_json().expect("serialize OpenAPI");
    expectorate::assert_contents("../openapi/runner-agent.json", &format!("{json}\n"));
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "sb-1")
        .replace("{sandboxId}", "sb-1")
        .replace("{path}", "files/info")
}

async fn status_of(app: &axum::Router, method: &str, path: &str) -> StatusCode {
    send(app, method, path, None).await
}

async fn send(app: &axum::Router, method: &str, path: &str, token: Option<&str>) -> StatusCode {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Body::empty()).expect("request");
    match app.clone().oneshot(req).await {
        Ok(r) => r.status(),
        Err(e) => match e {},
    }
}

/// Every documented operation is routed (it reaches the auth check: 401, not the fallback's
/// 400 "no route"), and a method not documented for a documented path is not routed (405 with a
/// valid token). Paths that are not documented cannot be routed: every route comes from
/// `utoipa_axum::routes!` or `http::TOOLBOX_ROUTES`, which also document them.
#[tokio::test]
async fn routed_and_documented_operations_agree() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = Config::for_tests(dir.path().to_path_buf());
    let rt = Arc::new(FakeRuntime::new(dir.path().join("fake"), &[]));
    let app = cove_runner_agent::http::router(Reconciler::new(cfg, rt, dir.path().join("tb")));
    let ops = documented();
    assert!(ops.len() >= 12, "{ops:?}");
    for (method, path) in &ops {
        let want = if path == "/" {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        let got = status_of(&app, method, &concrete(path)).await;
        assert_eq!(got, want, "{method} {path} is documented but not routed");
    }
    for (_, path) in &ops {
        for m in METHODS {
            let m = m.to_uppercase();
            if ops.contains(&(m.clone(), path.clone())) {
                continue;
            }
            let got = send(&app, &m, &concrete(path), Some("test-token")).await;
            assert_eq!(
                got,
                StatusCode::METHOD_NOT_ALLOWED,
                "{m} {path} is routed but not documented"
            );
        }
    }
    // Unknown paths reach the fallback.
    assert_eq!(
        status_of(&app, "GET", "/v1/nothing").await,
        StatusCode::BAD_REQUEST
    );
}

/// The Docker-mode router has no fault-injection routes.
#[tokio::test]
async fn fault_routes_exist_only_in_fake_mode() {
    struct NoFaults(FakeRuntime);
    #[async_trait::async_trait]
    impl cove_runner_agent::runtime::ContainerRuntime for NoFaults {
        async fn image(
            &self,
            image: &str,
        ) -> cove_runner_agent::runtime::Result<Option<cove_runner_agent::runtime::ImageInfo>>
        {
            self.0.image(image).await
        }
        async fn images(
            &self,
        ) -> cove_runner_agent::runtime::Result<Vec<cove_runner_agent::runtime::ImageSummary>>
        {
            self.0.images().await
        }
        async fn remove_image(
            &self,
            image: &str,
        ) -> cove_runner_agent::runtime::Result<cove_runner_agent::runtime::ImageRemoval> {
            self.0.remove_image(image).await
        }
        async fn create(
            &self,
            spec: &cove_runner_agent::runtime::ContainerSpec,
        ) -> cove_runner_agent::runtime::Result<String> {
            self.0.create(spec).await
        }
        async fn start(&self, id: &str) -> cove_runner_agent::runtime::Result<()> {
            self.0.start(id).await
        }
        async fn stop(&self, id: &str, t: u32) -> cove_runner_agent::runtime::Result<()> {
            self.0.stop(id, t).await
        }
        async fn remove(&self, id: &str) -> cove_runner_agent::runtime::Result<()> {
            self.0.remove(id).await
        }
        async fn inspect(
            &self,
            id: &str,
        ) -> cove_runner_agent::runtime::Result<Option<cove_runner_agent::runtime::ContainerInfo>>
        {
            self.0.inspect(id).await
        }
        async fn list(
            &self,
            l: &str,
            v: &str,
        ) -> cove_runner_agent::runtime::Result<Vec<cove_runner_agent::runtime::ContainerInfo>>
        {
            self.0.list(l, v).await
        }
        async fn rename(&self, id: &str, n: &str) -> cove_runner_agent::runtime::Result<()> {
            self.0.rename(id, n).await
        }
        async fn commit(
            &self,
            id: &str,
            r: &str,
            t: &str,
            o: &cove_runner_agent::runtime::CommitOptions,
        ) -> cove_runner_agent::runtime::Result<String> {
            self.0.commit(id, r, t, o).await
        }
    }
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = Config::for_tests(dir.path().to_path_buf());
    let rt = Arc::new(NoFaults(FakeRuntime::new(dir.path().join("fake"), &[])));
    let app = cove_runner_agent::http::router(Reconciler::new(cfg, rt, dir.path().join("tb")));
    assert_eq!(
        status_of(&app, "POST", "/v1/fake/delay").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status_of(&app, "POST", "/v1/fake/sandboxes/x/crash").await,
        StatusCode::BAD_REQUEST
    );
}
