//! HTTP routes: unpack, authenticate, call the service, answer.

use cove_api_types::ApiError;
use cove_api_types::error::ErrorEnvelope;
use cove_api_types::runner::{
    CreateRunner, CreateRunnerResponse, Runner, RunnerFull, RunnerSnapshotDto,
    UpdateRunnerDraining, UpdateRunnerScheduling,
};
use cove_edge::runner_auth::authenticate_runner;
use cove_edge::web::{self, Request, Response};
use cove_edge::{Env, auth};
use cove_runner_api::Healthcheck;
use http::{Method, StatusCode};

use crate::service;

const BASE: &str = "/api/runners";

/// Serves one request.
pub async fn handle(env: &Env, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    web::respond(&path, route(env, &req).await)
}

async fn route(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let segs = web::segments(req, BASE).ok_or_else(|| web::no_route(req))?;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (req.method(), s.as_slice()) {
        (&Method::POST, []) => create(env, req).await,
        (&Method::GET, []) => list(env, req).await,
        (&Method::GET, ["me"]) => me(env, req).await,
        (&Method::GET, ["me", "snapshots"]) => me_snapshots(env, req).await,
        (&Method::POST, ["healthcheck"]) => healthcheck(env, req).await,
        (&Method::GET, ["by-sandbox", id]) => by_sandbox(env, req, id).await,
        (&Method::GET, ["by-snapshot-ref"]) => by_snapshot_ref(env, req).await,
        (&Method::GET, ["by-snapshot"]) => by_snapshot(env, req).await,
        (&Method::GET, [id]) => get(env, req, id).await,
        (&Method::DELETE, [id]) => delete(env, req, id).await,
        (&Method::GET, [id, "full"]) => get_full(env, req, id).await,
        (&Method::PATCH, [id, "scheduling"]) => scheduling(env, req, id).await,
        (&Method::PATCH, [id, "draining"]) => draining(env, req, id).await,
        _ => Err(web::no_route(req)),
    }
}

async fn admin(env: &Env, req: &Request) -> Result<(), ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    service::require_admin(env, &ctx).await
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[utoipa::path(post, path = "/api/runners", operation_id = "createRunner", tag = "runners",
    request_body = CreateRunner,
    responses((status = 201, body = CreateRunnerResponse, description = "Created; the runner token is shown once"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn create(env: &Env, req: &Request) -> Result<Response, ApiError> {
    admin(env, req).await?;
    let body: CreateRunner = web::json_body(req)?;
    web::json(StatusCode::CREATED, &service::create(env, body).await?)
}

#[utoipa::path(get, path = "/api/runners", operation_id = "listRunners", tag = "runners",
    params(("regionId" = Option<String>, Query, description = "Only runners of this region")),
    responses((status = 200, body = Vec<Runner>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list(env: &Env, req: &Request) -> Result<Response, ApiError> {
    admin(env, req).await?;
    let region = web::query_param(req, "regionId").filter(|r| !r.is_empty());
    web::json(
        StatusCode::OK,
        &service::list(env, region.as_deref()).await?,
    )
}

#[utoipa::path(get, path = "/api/runners/{id}", operation_id = "getRunnerById", tag = "runners",
    params(("id" = String, Path)),
    responses((status = 200, body = Runner), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get(env: &Env, req: &Request, id: &str) -> Result<Response, ApiError> {
    admin(env, req).await?;
    let rec = service::get(env, id).await?;
    web::json(StatusCode::OK, &service::to_runner(&rec, now()))
}

#[utoipa::path(get, path = "/api/runners/{id}/full", operation_id = "getRunnerFullById", tag = "runners",
    params(("id" = String, Path)),
    responses((status = 200, body = RunnerFull), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_full(env: &Env, req: &Request, id: &str) -> Result<Response, ApiError> {
    admin(env, req).await?;
    let rec = service::get(env, id).await?;
    web::json(StatusCode::OK, &service::to_full(&rec, now()))
}

#[utoipa::path(patch, path = "/api/runners/{id}/scheduling", operation_id = "updateRunnerScheduling", tag = "runners",
    params(("id" = String, Path)), request_body = UpdateRunnerScheduling,
    responses((status = 200, body = Runner), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn scheduling(env: &Env, req: &Request, id: &str) -> Result<Response, ApiError> {
    admin(env, req).await?;
    let body: UpdateRunnerScheduling = web::json_body(req)?;
    web::json(
        StatusCode::OK,
        &service::set_scheduling(env, id, body.unschedulable).await?,
    )
}

#[utoipa::path(patch, path = "/api/runners/{id}/draining", operation_id = "updateRunnerDraining", tag = "runners",
    params(("id" = String, Path)), request_body = UpdateRunnerDraining,
    responses((status = 200, body = Runner), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn draining(env: &Env, req: &Request, id: &str) -> Result<Response, ApiError> {
    admin(env, req).await?;
    let body: UpdateRunnerDraining = web::json_body(req)?;
    web::json(
        StatusCode::OK,
        &service::set_draining(env, id, body.draining).await?,
    )
}

#[utoipa::path(delete, path = "/api/runners/{id}", operation_id = "deleteRunner", tag = "runners",
    params(("id" = String, Path), ("force" = Option<bool>, Query, description = "Delete even with sandboxes assigned")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn delete(env: &Env, req: &Request, id: &str) -> Result<Response, ApiError> {
    admin(env, req).await?;
    let force = match web::query_param(req, "force").as_deref() {
        None | Some("false") => false,
        Some("true") | Some("") => true,
        Some(_) => return Err(ApiError::bad_request("force must be true or false")),
    };
    service::delete(env, id, force).await?;
    Ok(web::no_content())
}

#[utoipa::path(get, path = "/api/runners/by-sandbox/{sandboxId}", operation_id = "getRunnerBySandboxId", tag = "runners",
    params(("sandboxId" = String, Path)),
    responses((status = 200, body = RunnerFull), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn by_sandbox(env: &Env, req: &Request, id: &str) -> Result<Response, ApiError> {
    admin(env, req).await?;
    web::json(StatusCode::OK, &service::by_sandbox(env, id).await?)
}

#[utoipa::path(get, path = "/api/runners/by-snapshot-ref", operation_id = "getRunnersBySnapshotRef", tag = "runners",
    params(("ref" = String, Query, description = "Image reference")),
    responses((status = 200, body = Vec<RunnerSnapshotDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn by_snapshot_ref(env: &Env, req: &Request) -> Result<Response, ApiError> {
    admin(env, req).await?;
    let r = web::query_param(req, "ref").unwrap_or_default();
    web::json(StatusCode::OK, &service::by_snapshot_ref(env, &r).await?)
}

#[utoipa::path(get, path = "/api/runners/by-snapshot", operation_id = "getRunnersBySnapshot", tag = "runners",
    params(("ref" = String, Query, description = "Image reference")),
    responses((status = 200, body = Vec<RunnerSnapshotDto>, description = "Alias of `/api/runners/by-snapshot-ref`"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn by_snapshot(env: &Env, req: &Request) -> Result<Response, ApiError> {
    by_snapshot_ref(env, req).await
}

#[utoipa::path(get, path = "/api/runners/me", operation_id = "getInfoForAuthenticatedRunner", tag = "runners",
    responses((status = 200, body = RunnerFull), (status = 401, body = ErrorEnvelope)),
    security(("runner_token" = [])))]
async fn me(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let runner = authenticate_runner(env, req).await?;
    web::json(StatusCode::OK, &service::to_full(&runner, now()))
}

#[utoipa::path(get, path = "/api/runners/me/snapshots", operation_id = "getSnapshotRefsForAuthenticatedRunner", tag = "runners",
    responses((status = 200, body = Vec<String>, description = "Image references present on the runner"),
        (status = 401, body = ErrorEnvelope)),
    security(("runner_token" = [])))]
async fn me_snapshots(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let runner = authenticate_runner(env, req).await?;
    web::json(StatusCode::OK, &runner.snapshots)
}

#[utoipa::path(post, path = "/api/runners/healthcheck", operation_id = "runnerHealthcheck", tag = "runners",
    request_body(content = serde_json::Value, description = "`cove_runner_api::Healthcheck`: apiUrl, appVersion, metrics, serviceHealth, snapshots"),
    responses((status = 200, description = "Recorded; the runner is `ready`"), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope)),
    security(("runner_token" = [])))]
async fn healthcheck(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let runner = authenticate_runner(env, req).await?;
    let body: Healthcheck = web::json_body(req)?;
    service::healthcheck(env, &runner, &body).await?;
    let mut r = web::no_content();
    *r.status_mut() = StatusCode::OK;
    Ok(r)
}

/// The OpenAPI fragment of this function.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create,
    list,
    get,
    get_full,
    scheduling,
    draining,
    delete,
    by_sandbox,
    by_snapshot_ref,
    by_snapshot,
    me,
    me_snapshots,
    healthcheck
))]
pub struct ApiDoc;
