//! HTTP routes: authenticate, unpack, call the service, answer. Every handler authenticates
//! before it reads the body or parameters.

use bytes::Bytes;
use cove_api_types::ApiError;
use cove_api_types::permissions::Permission;
use cove_api_types::snapshots::{
    CreateSnapshot, PaginatedSnapshots, SetSnapshotGeneralStatus, SnapshotBuildLogsUrl, SnapshotDto,
};
use cove_edge::responses::Errors;
use cove_edge::router::Params;
use cove_edge::web::{self, Answer, Request, Response};
use cove_edge::{Action, Env, auth, authorize};
use http::{HeaderValue, StatusCode, header};

use crate::rules;
use crate::service::{self, Call, LogsTarget};
use crate::settings::SnapshotSettings;

/// What every handler of this function runs against.
pub struct State {
    pub env: Env,
    pub settings: SnapshotSettings,
}

/// Serves one request.
pub async fn handle(env: &Env, settings: &SnapshotSettings, req: Request) -> Response {
    let state = State {
        env: env.clone(),
        settings: settings.clone(),
    };
    router().serve(&state, &req).await
}

cove_edge::routes! {
    /// This function's part of the OpenAPI document.
    pub struct ApiDoc;
    pub fn router() -> Router<State>;
    [
        snapshot_create, snapshot_list, snapshot_get, snapshot_delete, snapshot_toggle,
        snapshot_general, snapshot_admin_general, snapshot_activate, snapshot_deactivate,
        snapshot_build_logs, snapshot_build_logs_url,
    ]
}

/// `scheme://host` of the request, as the caller reached this API.
fn base_url(req: &Request) -> String {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let scheme = match header("x-forwarded-proto").as_deref() {
        Some("https") => "https",
        _ => "http",
    };
    let host = header("host")
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{scheme}://{host}")
}

pub async fn call<'a>(s: &'a State, req: &Request) -> Result<Call<'a>, ApiError> {
    Ok(Call {
        env: &s.env,
        settings: &s.settings,
        ctx: auth::authenticate(&s.env, req).await?,
        base_url: base_url(req),
    })
}

fn ok(value: &impl serde::Serialize) -> Answer {
    web::json(StatusCode::OK, value)
}

fn empty(status: StatusCode) -> Response {
    let mut r = web::no_content();
    *r.status_mut() = status;
    r
}

pub fn text(body: impl Into<Bytes>) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[utoipa::path(post, path = "/api/snapshots", operation_id = "createSnapshot", tag = "snapshots",
    request_body = CreateSnapshot,
    responses((status = 200, body = SnapshotDto), Errors),
    security(("bearer" = [])))]
async fn snapshot_create(s: &State, req: &Request, _: &Params) -> Answer {
    let c = call(s, req).await?;
    let body: CreateSnapshot = match web::json_body(req) {
        Ok(b) => b,
        Err(e) => {
            authorize(&s.env, &c.ctx, Action::Create(Permission::WriteSnapshots)).await?;
            return Err(e);
        }
    };
    ok(&service::create(&c, body).await?)
}

#[utoipa::path(get, path = "/api/snapshots", operation_id = "getAllSnapshots", tag = "snapshots",
    params(("page" = Option<i64>, Query, description = "1-based, default 1"),
        ("limit" = Option<i64>, Query, description = "1..200, default 100"),
        ("name" = Option<String>, Query, description = "names containing this (case-insensitive)"),
        ("sort" = Option<String>, Query, description = "name | state | lastUsedAt (default) | createdAt"),
        ("order" = Option<String>, Query, description = "asc | desc (default)")),
    responses((status = 200, body = PaginatedSnapshots), Errors),
    security(("bearer" = [])))]
async fn snapshot_list(s: &State, req: &Request, _: &Params) -> Answer {
    let c = call(s, req).await?;
    let q = |n| web::query_param(req, n);
    let query = rules::list_query(
        q("page").as_deref(),
        q("limit").as_deref(),
        q("sort").as_deref(),
        q("order").as_deref(),
        q("name"),
    )?;
    ok(&service::list(&c, query).await?)
}

#[utoipa::path(get, path = "/api/snapshots/{id}", operation_id = "getSnapshot", tag = "snapshots",
    params(("id" = String, Path, description = "Snapshot id or name")),
    responses((status = 200, body = SnapshotDto), Errors),
    security(("bearer" = [])))]
async fn snapshot_get(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::get(&c, p.get("id")).await?)
}

#[utoipa::path(delete, path = "/api/snapshots/{id}", operation_id = "removeSnapshot", tag = "snapshots",
    params(("id" = String, Path, description = "Snapshot id or name")),
    responses((status = 200, description = "Removing (or gone when it never reached a runner)"), Errors),
    security(("bearer" = [])))]
async fn snapshot_delete(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    service::delete(&c, p.get("id")).await?;
    Ok(empty(StatusCode::OK))
}

/// `PATCH .../toggle` body: the state wanted (flip when absent).
#[derive(Debug, Default, serde::Deserialize)]
struct Toggle {
    #[serde(default)]
    active: Option<bool>,
}

#[utoipa::path(patch, path = "/api/snapshots/{id}/toggle", operation_id = "toggleSnapshotState", tag = "snapshots",
    params(("id" = String, Path, description = "Snapshot id or name")),
    responses((status = 200, body = SnapshotDto), Errors),
    security(("bearer" = [])))]
async fn snapshot_toggle(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    // Who may not toggle this snapshot learns nothing about the body.
    service::may_write(&c, p.get("id")).await?;
    let body: Toggle = if req.body().is_empty() {
        Toggle::default()
    } else {
        web::json_body(req)?
    };
    ok(&service::toggle(&c, p.get("id"), body.active).await?)
}

async fn general(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    authorize(&s.env, &c.ctx, Action::SystemAdmin).await?;
    authorize(&s.env, &c.ctx, Action::Use(Permission::WriteSnapshots)).await?;
    let body: SetSnapshotGeneralStatus = web::json_body(req)?;
    ok(&service::set_general(&c, p.get("id"), body.general).await?)
}

#[utoipa::path(patch, path = "/api/snapshots/{id}/general", operation_id = "setSnapshotGeneralStatus", tag = "snapshots",
    params(("id" = String, Path)), request_body = SetSnapshotGeneralStatus,
    responses((status = 200, body = SnapshotDto), Errors),
    security(("bearer" = [])))]
async fn snapshot_general(s: &State, req: &Request, p: &Params) -> Answer {
    general(s, req, p).await
}

#[utoipa::path(patch, path = "/api/admin/snapshots/{id}/general", operation_id = "adminSetSnapshotGeneralStatus", tag = "admin",
    params(("id" = String, Path)), request_body = SetSnapshotGeneralStatus,
    responses((status = 200, body = SnapshotDto), Errors),
    security(("bearer" = [])))]
async fn snapshot_admin_general(s: &State, req: &Request, p: &Params) -> Answer {
    general(s, req, p).await
}

#[utoipa::path(post, path = "/api/snapshots/{id}/activate", operation_id = "activateSnapshot", tag = "snapshots",
    params(("id" = String, Path, description = "Snapshot id or name")),
    responses((status = 200, body = SnapshotDto), Errors),
    security(("bearer" = [])))]
async fn snapshot_activate(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::activate(&c, p.get("id")).await?)
}

#[utoipa::path(post, path = "/api/snapshots/{id}/deactivate", operation_id = "deactivateSnapshot", tag = "snapshots",
    params(("id" = String, Path, description = "Snapshot id or name")),
    responses((status = 204, description = "Inactive"), Errors),
    security(("bearer" = [])))]
async fn snapshot_deactivate(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    service::deactivate(&c, p.get("id")).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Whether `follow=true` was asked for.
pub fn follow(req: &Request) -> bool {
    web::query_param(req, "follow").is_some_and(|v| v == "true" || v == "1")
}

/// The log of a pull or build, fetched whole from the runner (the Spin component streams a
/// followed log instead, see `component`).
#[utoipa::path(get, path = "/api/snapshots/{id}/build-logs", operation_id = "getSnapshotBuildLogs", tag = "snapshots",
    params(("id" = String, Path, description = "Snapshot id or name"),
        ("follow" = Option<bool>, Query, description = "stream until the pull or build ends")),
    responses((status = 200, content_type = "text/plain", body = String), Errors),
    security(("bearer" = [])))]
async fn snapshot_build_logs(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    match service::logs_target(&c, p.get("id"), follow(req)).await? {
        LogsTarget::Text(t) => Ok(text(t)),
        LogsTarget::Runner { url, token } => {
            let resp = crate::relay::fetch(&url, &token).await?;
            Ok(text(resp))
        }
    }
}

#[utoipa::path(get, path = "/api/snapshots/{id}/build-logs-url", operation_id = "getSnapshotBuildLogsUrl", tag = "snapshots",
    params(("id" = String, Path, description = "Snapshot id or name")),
    responses((status = 200, body = SnapshotBuildLogsUrl), Errors),
    security(("bearer" = [])))]
async fn snapshot_build_logs_url(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::build_logs_url(&c, p.get("id")).await?)
}
