//! The agent's HTTP API (see `cove_runner_api` for the contract). Handlers are thin: unpack,
//! call the [`Reconciler`], map errors through [`AgentError`].

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use cove_runner_api::{
    BackupRequest, BackupResponse, RunnerInfo, SandboxList, SandboxSpec, SandboxStatus,
};
use serde::de::DeserializeOwned;

use crate::error::{AgentError, Result};
use crate::reconciler::Reconciler;

pub type AppState = Arc<Reconciler>;

/// JSON body whose failures are `400 BAD_REQUEST` envelopes.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = AgentError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|e| AgentError::BadRequest(e.body_text()))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| AgentError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// Constant-time comparison of the presented token.
fn token_ok(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    presented
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Bearer runner token (`Authorization` or Daytona's `X-Daytona-Authorization`).
async fn auth(State(rec): State<AppState>, req: Request, next: Next) -> Response {
    let presented = [header::AUTHORIZATION.as_str(), "x-daytona-authorization"]
        .iter()
        .filter_map(|h| req.headers().get(*h))
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer "))
        .any(|t| token_ok(t.trim().as_bytes(), rec.config().token.as_bytes()));
    if !presented {
        return AgentError::Unauthorized.into_response();
    }
    next.run(req).await
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn info(State(rec): State<AppState>) -> Json<RunnerInfo> {
    Json(RunnerInfo {
        app_version: env!("CARGO_PKG_VERSION").to_owned(),
        metrics: rec.metrics().await,
        warm_pool: rec.pool().counts(),
    })
}

async fn sandbox_put(
    State(rec): State<AppState>,
    Path(id): Path<String>,
    JsonBody(spec): JsonBody<SandboxSpec>,
) -> Result<Json<SandboxStatus>> {
    rec.apply(&id, spec).await.map(Json)
}

async fn sandbox_get(
    State(rec): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SandboxStatus>> {
    rec.status(&id).await.map(Json)
}

async fn sandbox_list(State(rec): State<AppState>) -> Json<SandboxList> {
    Json(SandboxList {
        sandboxes: rec.list().await,
    })
}

async fn sandbox_delete(
    State(rec): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SandboxStatus>> {
    rec.destroy(&id).await.map(Json)
}

async fn sandbox_backup(
    State(rec): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<BackupRequest>,
) -> Result<(StatusCode, Json<BackupResponse>)> {
    let image_id = rec.backup(&id, &req.image).await?;
    Ok((
        StatusCode::CREATED,
        Json(BackupResponse {
            image: req.image,
            image_id,
        }),
    ))
}

async fn toolbox_forward(
    State(rec): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    req: Request<Body>,
) -> Result<Response> {
    let target = rec.toolbox_target(&id).await?;
    crate::toolbox::forward(&target, &format!("/{path}"), req).await
}

async fn not_found(req: Request) -> AgentError {
    AgentError::BadRequest(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

/// Every route of the agent.
pub fn router(rec: AppState) -> Router {
    let api = Router::new()
        .route("/v1/info", get(info))
        .route("/v1/sandboxes", get(sandbox_list))
        .route(
            "/v1/sandboxes/{id}",
            get(sandbox_get).put(sandbox_put).delete(sandbox_delete),
        )
        .route("/v1/sandboxes/{id}/backup", post(sandbox_backup))
        .route("/v1/sandboxes/{id}/toolbox/{*path}", any(toolbox_forward))
        // Daytona's runner path (CONTRACT §13).
        .route("/sandboxes/{id}/toolbox/{*path}", any(toolbox_forward))
        .route_layer(axum::middleware::from_fn_with_state(rec.clone(), auth));
    Router::new()
        .route("/", get(health))
        .merge(api)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(16 << 20))
        .layer(axum::middleware::from_fn(crate::error::error_envelope))
        .with_state(rec)
}

#[cfg(test)]
mod tests {
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
            Arc::new(FakeRuntime::with_image("img:1")),
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
        let (s, v) = call(
            &app,
            "POST",
            "/v1/sandboxes/s1/backup",
            t,
            r#"{"image":"backup/s1:1"}"#,
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(v["image"], "backup/s1:1");
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
}
