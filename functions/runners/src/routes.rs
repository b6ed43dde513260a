//! HTTP routes: unpack, authenticate, call the service, answer.

use cove_api_types::ApiError;
use cove_api_types::permissions::Permission;
use cove_api_types::runner::{
    CreateRunner, CreateRunnerResponse, Runner, RunnerFull, RunnerSnapshotDto,
    UpdateRunnerDraining, UpdateRunnerScheduling,
};
use cove_edge::responses::Errors;
use cove_edge::router::Params;
use cove_edge::runner_auth::authenticate_runner;
use cove_edge::web::{self, Answer, Request};
use cove_edge::{Action, authorize};
use cove_edge::{Env, auth};
use cove_runner_api::Healthcheck;
use http::StatusCode;

use crate::service;

cove_edge::routes! {
    /// The OpenAPI fragment of this function.
    pub struct ApiDoc;
    pub fn router() -> Router<Env>;
    pub async fn handle;
    [
        runner_create, runner_list, runner_get, runner_get_full, runner_scheduling,
        runner_draining, runner_delete, runner_by_sandbox, runner_by_snapshot_ref,
        runner_by_snapshot, runner_me, runner_me_snapshots, runner_healthcheck,
    ]
}

/// A system admin whose credential holds `perm` (an API key holds exactly its permissions, so
/// an admin's key without `read:runners` cannot read runners).
async fn admin(env: &Env, req: &Request, perm: Permission) -> Result<(), ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    service::require_admin(env, &ctx).await?;
    authorize(env, &ctx, Action::Use(perm)).await
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[utoipa::path(post, path = "/api/runners", operation_id = "createRunner", tag = "runners",
    request_body = CreateRunner,
    responses((status = 201, body = CreateRunnerResponse, description = "Created; the runner token is shown once"), Errors),
    security(("bearer" = [])))]
async fn runner_create(env: &Env, req: &Request, _: &Params) -> Answer {
    admin(env, req, Permission::WriteRunners).await?;
    let body: CreateRunner = web::json_body(req)?;
    web::json(StatusCode::CREATED, &service::create(env, body).await?)
}

#[utoipa::path(get, path = "/api/runners", operation_id = "listRunners", tag = "runners",
    params(("regionId" = Option<String>, Query, description = "Only runners of this region")),
    responses((status = 200, body = Vec<Runner>), Errors),
    security(("bearer" = [])))]
async fn runner_list(env: &Env, req: &Request, _: &Params) -> Answer {
    admin(env, req, Permission::ReadRunners).await?;
    let region = web::query_param(req, "regionId").filter(|r| !r.is_empty());
    web::json(
        StatusCode::OK,
        &service::list(env, region.as_deref()).await?,
    )
}

#[utoipa::path(get, path = "/api/runners/{id}", operation_id = "getRunnerById", tag = "runners",
    params(("id" = String, Path)),
    responses((status = 200, body = Runner), Errors),
    security(("bearer" = [])))]
async fn runner_get(env: &Env, req: &Request, p: &Params) -> Answer {
    admin(env, req, Permission::ReadRunners).await?;
    let rec = service::get(env, p.get("id")).await?;
    web::json(StatusCode::OK, &service::to_runner(&rec, now()))
}

#[utoipa::path(get, path = "/api/runners/{id}/full", operation_id = "getRunnerFullById", tag = "runners",
    params(("id" = String, Path)),
    responses((status = 200, body = RunnerFull), Errors),
    security(("bearer" = [])))]
async fn runner_get_full(env: &Env, req: &Request, p: &Params) -> Answer {
    admin(env, req, Permission::ReadRunners).await?;
    let rec = service::get(env, p.get("id")).await?;
    web::json(StatusCode::OK, &service::to_full(&rec, now()))
}

#[utoipa::path(patch, path = "/api/runners/{id}/scheduling", operation_id = "updateRunnerScheduling", tag = "runners",
    params(("id" = String, Path)), request_body = UpdateRunnerScheduling,
    responses((status = 200, body = Runner), Errors),
    security(("bearer" = [])))]
async fn runner_scheduling(env: &Env, req: &Request, p: &Params) -> Answer {
    admin(env, req, Permission::WriteRunners).await?;
    let body: UpdateRunnerScheduling = web::json_body(req)?;
    web::json(
        StatusCode::OK,
        &service::set_scheduling(env, p.get("id"), body.unschedulable).await?,
    )
}

#[utoipa::path(patch, path = "/api/runners/{id}/draining", operation_id = "updateRunnerDraining", tag = "runners",
    params(("id" = String, Path)), request_body = UpdateRunnerDraining,
    responses((status = 200, body = Runner), Errors),
    security(("bearer" = [])))]
async fn runner_draining(env: &Env, req: &Request, p: &Params) -> Answer {
    admin(env, req, Permission::WriteRunners).await?;
    let body: UpdateRunnerDraining = web::json_body(req)?;
    web::json(
        StatusCode::OK,
        &service::set_draining(env, p.get("id"), body.draining).await?,
    )
}

#[utoipa::path(delete, path = "/api/runners/{id}", operation_id = "deleteRunner", tag = "runners",
    params(("id" = String, Path), ("force" = Option<bool>, Query, description = "Delete even with sandboxes assigned")),
    responses((status = 204, description = "Deleted"), Errors),
    security(("bearer" = [])))]
async fn runner_delete(env: &Env, req: &Request, p: &Params) -> Answer {
    admin(env, req, Permission::DeleteRunners).await?;
    let force = match web::query_param(req, "force").as_deref() {
        None | Some("false") => false,
        Some("true") | Some("") => true,
        Some(_) => return Err(ApiError::bad_request("force must be true or false")),
    };
    service::delete(env, p.get("id"), force).await?;
    Ok(web::no_content())
}

#[utoipa::path(get, path = "/api/runners/by-sandbox/{sandboxId}", operation_id = "getRunnerBySandboxId", tag = "runners",
    params(("sandboxId" = String, Path)),
    responses((status = 200, body = RunnerFull), Errors),
    security(("bearer" = [])))]
async fn runner_by_sandbox(env: &Env, req: &Request, p: &Params) -> Answer {
    admin(env, req, Permission::ReadRunners).await?;
    web::json(
        StatusCode::OK,
        &service::by_sandbox(env, p.get("sandboxId")).await?,
    )
}

#[utoipa::path(get, path = "/api/runners/by-snapshot-ref", operation_id = "getRunnersBySnapshotRef", tag = "runners",
    params(("ref" = String, Query, description = "Image reference")),
    responses((status = 200, body = Vec<RunnerSnapshotDto>), Errors),
    security(("bearer" = [])))]
async fn runner_by_snapshot_ref(env: &Env, req: &Request, _: &Params) -> Answer {
    admin(env, req, Permission::ReadRunners).await?;
    let r = web::query_param(req, "ref").unwrap_or_default();
    web::json(StatusCode::OK, &service::by_snapshot_ref(env, &r).await?)
}

#[utoipa::path(get, path = "/api/runners/by-snapshot", operation_id = "getRunnersBySnapshot", tag = "runners",
    params(("ref" = String, Query, description = "Image reference")),
    responses((status = 200, body = Vec<RunnerSnapshotDto>, description = "Alias of `/api/runners/by-snapshot-ref`"), Errors),
    security(("bearer" = [])))]
async fn runner_by_snapshot(env: &Env, req: &Request, p: &Params) -> Answer {
    runner_by_snapshot_ref(env, req, p).await
}

#[utoipa::path(get, path = "/api/runners/me", operation_id = "getInfoForAuthenticatedRunner", tag = "runners",
    responses((status = 200, body = RunnerFull), Errors),
    security(("runner_token" = [])))]
async fn runner_me(env: &Env, req: &Request, _: &Params) -> Answer {
    let runner = authenticate_runner(env, req).await?;
    web::json(StatusCode::OK, &service::to_full(&runner, now()))
}

#[utoipa::path(get, path = "/api/runners/me/snapshots", operation_id = "getSnapshotRefsForAuthenticatedRunner", tag = "runners",
    responses((status = 200, body = Vec<String>, description = "Image references present on the runner"), Errors),
    security(("runner_token" = [])))]
async fn runner_me_snapshots(env: &Env, req: &Request, _: &Params) -> Answer {
    let runner = authenticate_runner(env, req).await?;
    web::json(StatusCode::OK, &runner.snapshots)
}

#[utoipa::path(post, path = "/api/runners/healthcheck", operation_id = "runnerHealthcheck", tag = "runners",
    request_body(content = serde_json::Value, description = "`cove_runner_api::Healthcheck`: apiUrl, appVersion, metrics, serviceHealth, snapshots"),
    responses((status = 200, description = "Recorded; the runner is `ready`"), Errors),
    security(("runner_token" = [])))]
async fn runner_healthcheck(env: &Env, req: &Request, _: &Params) -> Answer {
    let runner = authenticate_runner(env, req).await?;
    let body: Healthcheck = web::json_body(req)?;
    service::healthcheck(env, &runner, &body).await?;
    let mut r = web::no_content();
    *r.status_mut() = StatusCode::OK;
    Ok(r)
}
