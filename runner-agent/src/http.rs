//! The agent's HTTP API (see `cove_runner_api` for the contract). Handlers are thin: unpack,
//! call the [`Reconciler`], map errors through [`AgentError`].
//!
//! **One route table.** Every route is declared once, by its handler's `#[utoipa::path]`, and
//! registered with `utoipa_axum::routes!`, which gives both the axum route and the OpenAPI
//! operation (`openapi/runner-agent.json`, [`openapi`]). The toolbox pass-through (a wildcard,
//! any method) is the one route axum and OpenAPI spell differently: [`TOOLBOX_ROUTES`] holds
//! both spellings and is the only place it is declared.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use cove_runner_api::fake::FakeDelay;
use cove_runner_api::{
    BackupRemoval, BackupRequest, BackupResponse, ErrorEnvelope, LogsQuery, PutQuery, RunnerInfo,
    SandboxList, SandboxSpec, SandboxStatus, SnapshotRemoval, SnapshotSpec, SnapshotStatus,
};
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{AgentError, Result};
use crate::reconciler::{Applied, Reconciler};

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

/// Query string whose failures are `400 BAD_REQUEST` envelopes.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = AgentError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| AgentError::BadRequest(e.body_text()))
    }
}

/// Constant-time comparison of the presented token.
pub(crate) fn token_ok(presented: &[u8], expected: &[u8]) -> bool {
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

/// The request deadline of the API routes (a backup gets the commit deadline on top).
async fn deadline(State(rec): State<AppState>, req: Request, next: Next) -> Response {
    let t = rec.config().timeouts;
    let after = if req.uri().path().ends_with("/backup") {
        t.request + t.engine.commit
    } else {
        t.request
    };
    match tokio::time::timeout(after, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => AgentError::RequestTimeout(after).into_response(),
    }
}

/// The standard error answers of the agent (all in the envelope).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum Errors {
    /// Invalid input.
    #[response(status = 400)]
    BadRequest(ErrorEnvelope),
    /// Missing or wrong runner token.
    #[response(status = 401)]
    Unauthorized(ErrorEnvelope),
    /// Unknown sandbox or snapshot.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
    /// Internal error.
    #[response(status = 500)]
    Internal(ErrorEnvelope),
}

/// Health, no auth.
#[utoipa::path(get, path = "/", tag = "runner",
    responses((status = 200, description = "The agent answers", body = serde_json::Value)))]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Capacity, warm pool and snapshots.
#[utoipa::path(get, path = "/v1/info", tag = "runner",
    responses((status = 200, body = RunnerInfo), Errors))]
async fn info(State(rec): State<AppState>) -> Json<RunnerInfo> {
    let snapshots = rec.snapshots().await;
    let mut metrics = rec.metrics().await;
    metrics.current_snapshot_count = u32::try_from(snapshots.len()).unwrap_or(u32::MAX);
    Json(RunnerInfo {
        app_version: env!("CARGO_PKG_VERSION").to_owned(),
        metrics,
        warm_pool: rec.pool().counts(),
        snapshots,
    })
}

/// Applies a desired state (idempotent per generation; bounded by `wait`).
#[utoipa::path(put, path = "/v1/sandboxes/{id}", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id"), PutQuery),
    request_body = SandboxSpec,
    responses(
        (status = 200, description = "The desired state was reached", body = SandboxStatus),
        (status = 202, description = "Still converging: the outcome comes as a state report", body = SandboxStatus),
        (status = 403, description = "A backup of another sandbox or organization", body = ErrorEnvelope),
        (status = 409, description = "Stale generation, immutable field, or destroyed meanwhile", body = ErrorEnvelope),
        (status = 504, description = "The container engine did not answer in time", body = ErrorEnvelope),
        Errors))]
async fn sandbox_put(
    State(rec): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PutQuery>,
    JsonBody(spec): JsonBody<SandboxSpec>,
) -> Result<(StatusCode, Json<SandboxStatus>)> {
    let wait = Duration::from_secs(u64::from(q.wait_secs()));
    Ok(match rec.apply_bounded(&id, spec, wait).await? {
        Applied::Reached(s) => (StatusCode::OK, Json(s)),
        Applied::Pending(s) => (StatusCode::ACCEPTED, Json(s)),
    })
}

/// The sandbox's status, refreshed from the engine.
#[utoipa::path(get, path = "/v1/sandboxes/{id}", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id")),
    responses((status = 200, body = SandboxStatus), Errors))]
async fn sandbox_get(
    State(rec): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SandboxStatus>> {
    rec.status(&id).await.map(Json)
}

/// The sandbox's last egress decisions (egress proxy of domain policies), oldest first.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/network-log", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id")),
    responses((status = 200, body = cove_runner_api::NetworkLog), Errors))]
async fn sandbox_network_log(
    State(rec): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<cove_runner_api::NetworkLog>> {
    rec.status(&id).await?;
    let log = &crate::egress::log::LOG;
    Ok(Json(cove_runner_api::NetworkLog {
        entries: log.recent(&id),
        capacity: u32::try_from(crate::egress::log::PER_SANDBOX).unwrap_or(u32::MAX),
    }))
}

/// The sandbox's usage samples (CPU, memory, disk) in a range, oldest first: sampled from its
/// daemon every `--metrics-interval-secs` while it is started, kept in memory (lost when the
/// agent restarts, dropped when the sandbox is destroyed).
#[utoipa::path(get, path = "/v1/sandboxes/{id}/metrics", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id"), cove_runner_api::MetricsQuery),
    responses((status = 200, body = cove_runner_api::SandboxMetrics), Errors))]
async fn sandbox_metrics(
    State(rec): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<cove_runner_api::MetricsQuery>,
) -> Result<Json<cove_runner_api::SandboxMetrics>> {
    rec.usage(&id, q).await.map(Json)
}

/// Every sandbox of this runner.
#[utoipa::path(get, path = "/v1/sandboxes", tag = "sandboxes",
    responses((status = 200, body = SandboxList), Errors))]
async fn sandbox_list(State(rec): State<AppState>) -> Json<SandboxList> {
    Json(SandboxList {
        sandboxes: rec.list().await,
    })
}

/// Removes the container (idempotent); backups stay.
#[utoipa::path(delete, path = "/v1/sandboxes/{id}", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id")),
    responses((status = 200, description = "`destroyed`", body = SandboxStatus), Errors))]
async fn sandbox_delete(
    State(rec): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SandboxStatus>> {
    rec.destroy(&id).await.map(Json)
}

/// Commits the sandbox to a new backup image named by the agent, and pushes it when asked to.
/// The backup runs on when the request goes away; the same `key` joins it.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/backup", tag = "backups",
    params(("id" = String, Path, description = "Sandbox id")),
    request_body(content = Option<BackupRequest>, description = "Optional (empty: a new local backup)"),
    responses(
        (status = 201, body = BackupResponse),
        (status = 403, description = "A push target outside the sandbox's organization", body = ErrorEnvelope),
        (status = 502, description = "The push failed (`BACKUP_PUSH_FAILED`)", body = ErrorEnvelope),
        Errors))]
async fn sandbox_backup(
    State(rec): State<AppState>,
    Path(id): Path<String>,
    body: bytes::Bytes,
) -> Result<(StatusCode, Json<BackupResponse>)> {
    let req: BackupRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BackupRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AgentError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let resp = rec.backup_job(&id, req).await?;
    Ok((StatusCode::CREATED, Json(resp)))
}

/// Removes every backup image of a sandbox (when it is destroyed for good).
#[utoipa::path(delete, path = "/v1/backups/{sandboxId}", tag = "backups",
    params(("sandboxId" = String, Path, description = "Sandbox id")),
    responses((status = 200, body = BackupRemoval), Errors))]
async fn backups_delete(
    State(rec): State<AppState>,
    Path(sandbox_id): Path<String>,
) -> Result<Json<BackupRemoval>> {
    rec.delete_backups(&sandbox_id).await.map(Json)
}

/// Pulls or builds a snapshot image (idempotent per key; bounded by `wait`).
#[utoipa::path(put, path = "/v1/snapshots/{key}", tag = "snapshots",
    params(("key" = String, Path, description = "Snapshot id"), PutQuery),
    request_body = SnapshotSpec,
    responses(
        (status = 200, description = "The job ended: `ready` or `error`", body = SnapshotStatus),
        (status = 202, description = "In progress: poll with GET", body = SnapshotStatus),
        (status = 403, description = "An image of another organization", body = ErrorEnvelope),
        (status = 409, description = "The key runs a job of another spec", body = ErrorEnvelope),
        Errors))]
async fn snapshot_put(
    State(rec): State<AppState>,
    Path(key): Path<String>,
    QueryParams(q): QueryParams<PutQuery>,
    JsonBody(spec): JsonBody<SnapshotSpec>,
) -> Result<(StatusCode, Json<SnapshotStatus>)> {
    let wait = Duration::from_secs(u64::from(q.wait_secs()));
    Ok(match rec.snapshot_jobs().put(&key, spec, wait).await? {
        cove_runner_api::client::Applied::Reached(s) => (StatusCode::OK, Json(s)),
        cove_runner_api::client::Applied::Pending(s) => (StatusCode::ACCEPTED, Json(s)),
    })
}

/// The status of a snapshot job (404 `SNAPSHOT_NOT_FOUND` without job or image).
#[utoipa::path(get, path = "/v1/snapshots/{key}", tag = "snapshots",
    params(("key" = String, Path, description = "Snapshot id")),
    responses((status = 200, body = SnapshotStatus), Errors))]
async fn snapshot_get(
    State(rec): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<SnapshotStatus>> {
    rec.snapshot_jobs().get(&key).await.map(Json)
}

/// Removes the job and its local image (kept while a container uses it: `removed: false`).
#[utoipa::path(delete, path = "/v1/snapshots/{key}", tag = "snapshots",
    params(("key" = String, Path, description = "Snapshot id")),
    responses((status = 200, body = SnapshotRemoval), Errors))]
async fn snapshot_delete(
    State(rec): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<SnapshotRemoval>> {
    rec.delete_snapshot(&key).await.map(Json)
}

/// The pull/build log; with `follow=true` streamed until the job ends.
#[utoipa::path(get, path = "/v1/snapshots/{key}/logs", tag = "snapshots",
    params(("key" = String, Path, description = "Snapshot id"), LogsQuery),
    responses((status = 200, description = "The log (last MiB)", content_type = "text/plain", body = String), Errors))]
async fn snapshot_logs(
    State(rec): State<AppState>,
    Path(key): Path<String>,
    QueryParams(q): QueryParams<LogsQuery>,
) -> Result<Response> {
    let log = rec.snapshot_jobs().log(&key)?;
    let body = if q.follow {
        Body::from_stream(log.follow())
    } else {
        Body::from(log.text())
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

/// Simulated runner only: the sandbox's container dies (exit 137).
#[utoipa::path(post, path = "/v1/fake/sandboxes/{id}/crash", tag = "fake",
    params(("id" = String, Path, description = "Sandbox id")),
    responses((status = 204, description = "Crashed; the agent reports it"), Errors))]
async fn fake_crash(State(rec): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    rec.crash(&id).await.map(|()| StatusCode::NO_CONTENT)
}

/// Simulated runner only: the next engine call(s) of a kind take N seconds, or hang.
#[utoipa::path(post, path = "/v1/fake/delay", tag = "fake",
    request_body = FakeDelay,
    responses((status = 204, description = "Armed"), Errors))]
async fn fake_delay(
    State(rec): State<AppState>,
    JsonBody(delay): JsonBody<FakeDelay>,
) -> Result<StatusCode> {
    let faults = rec
        .runtime()
        .faults()
        .ok_or_else(|| AgentError::BadRequest("not a simulated runner".into()))?;
    faults.delay(&delay);
    Ok(StatusCode::NO_CONTENT)
}

async fn toolbox_forward(
    State(rec): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    req: Request<Body>,
) -> Result<Response> {
    let target = rec.toolbox_target(&id).await?;
    let command = starts_command(&path);
    if command {
        // A synchronous command is busy while its call is in flight: read it once started.
        let rec = rec.clone();
        tokio::spawn(async move {
            tokio::time::sleep(COMMAND_SETTLE).await;
            rec.activity_soon();
        });
    }
    let res = crate::toolbox::forward(&target, &format!("/{path}"), req).await;
    if command {
        rec.activity_soon();
    }
    res
}

/// How long after a command call starts the daemons' activity is read.
const COMMAND_SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// A toolbox path that starts (or ends) work the daemon reports as busy: `process/execute`,
/// `process/code-run`, a session and its commands, a PTY.
fn starts_command(path: &str) -> bool {
    path.starts_with("process/")
}

/// The toolbox pass-through, documented once per spelling (see the module docs).
#[utoipa::path(method(get, post, put, delete, patch), path = "/v1/sandboxes/{id}/toolbox/{path}",
    tag = "toolbox",
    params(("id" = String, Path, description = "Sandbox id"),
        ("path" = String, Path, description = "Toolbox path (CONTRACT §10), any depth")),
    responses((status = 200, description = "The daemon's answer (websockets included)"),
        (status = 409, description = "The sandbox is not started", body = ErrorEnvelope),
        (status = 502, description = "The daemon is not reachable", body = ErrorEnvelope),
        Errors))]
#[allow(dead_code)]
fn toolbox_doc() {}

/// Daytona's runner path of the toolbox (CONTRACT §13).
#[utoipa::path(method(get, post, put, delete, patch), path = "/sandboxes/{id}/toolbox/{path}",
    tag = "toolbox",
    params(("id" = String, Path, description = "Sandbox id"),
        ("path" = String, Path, description = "Toolbox path, any depth")),
    responses((status = 200, description = "The daemon's answer"), Errors))]
#[allow(dead_code)]
fn toolbox_daytona_doc() {}

/// The toolbox routes: (axum path, OpenAPI path).
pub const TOOLBOX_ROUTES: [(&str, &str); 2] = [
    (
        "/v1/sandboxes/{id}/toolbox/{*path}",
        "/v1/sandboxes/{id}/toolbox/{path}",
    ),
    (
        "/sandboxes/{id}/toolbox/{*path}",
        "/sandboxes/{id}/toolbox/{path}",
    ),
];

#[derive(OpenApi)]
#[openapi(
    info(title = "Cove runner agent", description = "The control plane's API of a runner agent (`cove-runner`). Every route but `GET /` needs `Authorization: Bearer <runner token>`; errors carry the envelope. The `fake` routes exist only with `--runtime fake`."),
    paths(toolbox_doc, toolbox_daytona_doc),
    modifiers(&BearerAuth),
    security(("runnerToken" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let comps = doc.components.get_or_insert_with(Default::default);
        comps.add_security_scheme(
            "runnerToken",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The authenticated API routes (the fake ones with the simulated runner only).
fn api_routes(fake: bool) -> OpenApiRouter<AppState> {
    let r = OpenApiRouter::new()
        .routes(routes!(info))
        .routes(routes!(sandbox_list))
        .routes(routes!(sandbox_get, sandbox_put, sandbox_delete))
        .routes(routes!(sandbox_network_log))
        .routes(routes!(sandbox_metrics))
        .routes(routes!(sandbox_backup))
        .routes(routes!(backups_delete))
        .routes(routes!(snapshot_get, snapshot_put, snapshot_delete))
        .routes(routes!(snapshot_logs));
    if fake {
        r.routes(routes!(fake_crash)).routes(routes!(fake_delay))
    } else {
        r
    }
}

/// The OpenAPI document of the agent (`openapi/runner-agent.json`), fake routes included.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, doc) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .merge(api_routes(true))
        .split_for_parts();
    doc
}

async fn not_found(req: Request) -> AgentError {
    AgentError::BadRequest(format!(
        "no route for {} {}",
        req.method(),
        crate::error::printable(req.uri().path())
    ))
}

/// Every route of the agent.
pub fn router(rec: AppState) -> Router {
    let fake = rec.runtime().faults().is_some();
    let (api, _) = api_routes(fake).split_for_parts();
    let api = api
        .layer(axum::middleware::from_fn_with_state(rec.clone(), deadline))
        .route_layer(axum::middleware::from_fn_with_state(rec.clone(), auth));
    let toolbox = TOOLBOX_ROUTES
        .iter()
        .fold(Router::new(), |r, (path, _)| {
            r.route(path, any(toolbox_forward))
        })
        .route_layer(axum::middleware::from_fn_with_state(rec.clone(), auth));
    let (public, _) = OpenApiRouter::new()
        .routes(routes!(health))
        .split_for_parts();
    public
        .merge(api)
        .merge(toolbox)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(16 << 20))
        .layer(axum::middleware::from_fn(crate::error::error_envelope))
        .with_state(rec)
}

#[cfg(test)]
mod tests;
