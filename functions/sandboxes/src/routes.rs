//! HTTP routes: unpack, authenticate, call the service, answer.
//!
//! `/api/workspace/...` serves the same routes as `/api/sandbox/...` (Daytona's deprecated alias),
//! except the runner-only `PUT /api/sandbox/{sandboxId}/state`.

use std::collections::BTreeMap;

use bytes::Bytes;
use cove_api_types::ApiError;
use cove_api_types::error::ErrorEnvelope;
use cove_api_types::sandbox::{
    CreateSandbox, ListSandboxesResponse, PortPreviewUrl, Sandbox, SandboxLabels, ToolboxProxyUrl,
    UpdateLastActivity, UpdateSandboxState,
};
use cove_edge::config::SandboxSettings;
use cove_edge::web::{self, Request, Response};
use cove_edge::{Env, auth, runner_auth};
use http::{HeaderValue, Method, StatusCode, header};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::{Modify, OpenApi};

use crate::service::{self, Call, IntervalKind, ListQuery};

const BASE: &str = "/api/sandbox";
const ALIAS: &str = "/api/workspace";
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 200;

/// Serves one request.
pub async fn handle(env: &Env, settings: &SandboxSettings, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    web::respond(&path, route(env, settings, &req).await)
}

async fn call<'a>(
    env: &'a Env,
    settings: &'a SandboxSettings,
    req: &Request,
) -> Result<Call<'a>, ApiError> {
    Ok(Call {
        env,
        settings,
        ctx: auth::authenticate(env, req).await?,
        host: crate::view::request_host(req),
    })
}

fn text(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn empty(status: StatusCode) -> Response {
    let mut r = web::no_content();
    *r.status_mut() = status;
    r
}

fn parse_bool(s: &str) -> Result<bool, ApiError> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_request("isPublic must be true or false")),
    }
}

fn flag(req: &Request, name: &str) -> bool {
    web::query_param(req, name).is_some_and(|v| v == "true" || v == "1")
}

async fn route(env: &Env, settings: &SandboxSettings, req: &Request) -> Result<Response, ApiError> {
    let (segs, alias) = match web::segments(req, BASE) {
        Some(s) => (s, false),
        None => (
            web::segments(req, ALIAS).ok_or_else(|| web::no_route(req))?,
            true,
        ),
    };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method();
    match (m, s.as_slice()) {
        (&Method::PUT, [id, "state"]) if !alias => state(env, req, id).await,
        (&Method::POST, []) => create(env, settings, req).await,
        (&Method::GET, []) => list(env, settings, req).await,
        (&Method::GET, [id]) => get(env, settings, req, id).await,
        (&Method::DELETE, [id]) => delete(env, settings, req, id).await,
        (&Method::POST, [id, "start"]) => start(env, settings, req, id).await,
        (&Method::POST, [id, "stop"]) => stop(env, settings, req, id).await,
        (&Method::POST, [id, "archive"]) => archive(env, settings, req, id).await,
        (&Method::POST, [id, "backup"]) => backup(env, settings, req, id).await,
        (&Method::PUT, [id, "labels"]) => labels(env, settings, req, id).await,
        (&Method::POST, [id, "public", v]) => public(env, settings, req, id, v).await,
        (&Method::POST, [id, "autostop", v]) => autostop(env, settings, req, id, v).await,
        (&Method::POST, [id, "autoarchive", v]) => autoarchive(env, settings, req, id, v).await,
        (&Method::POST, [id, "autodelete", v]) => autodelete(env, settings, req, id, v).await,
        (&Method::POST, [id, "autopause", v]) => autopause(env, settings, req, id, v).await,
        (&Method::GET, [id, "ports", p, "preview-url"]) => {
            preview_url(env, settings, req, id, p).await
        }
        (&Method::GET, [id, "toolbox-proxy-url"]) => {
            toolbox_proxy_url(env, settings, req, id).await
        }
        (&Method::GET, [id, "build-logs"]) => build_logs(env, settings, req, id).await,
        (&Method::POST, [id, "last-activity"]) => last_activity(env, settings, req, id).await,
        _ => Err(web::no_route(req)),
    }
}

#[utoipa::path(post, path = "/api/sandbox", operation_id = "sandbox_create", tag = "sandbox",
    request_body = CreateSandbox,
    responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn create(env: &Env, st: &SandboxSettings, req: &Request) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    let body: CreateSandbox = web::json_body(req)?;
    web::json(StatusCode::OK, &service::create(&c, body).await?)
}

/// Every value of a repeatable query parameter (`states=a&states=b`, `states[]=a`, `states=a,b`).
fn query_all(req: &Request, name: &str) -> Vec<String> {
    let Some(q) = req.uri().query() else {
        return Vec::new();
    };
    let bracket = format!("{name}[]");
    q.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let k = k
                .replace("%5B", "[")
                .replace("%5b", "[")
                .replace("%5D", "]")
                .replace("%5d", "]");
            (k == name || k == bracket).then(|| decode(v))
        })
        .flat_map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn decode(v: &str) -> String {
    http::Request::builder()
        .uri(format!("/?v={v}"))
        .body(Bytes::new())
        .ok()
        .and_then(|r| web::query_param(&r, "v"))
        .unwrap_or_default()
}

#[utoipa::path(get, path = "/api/sandbox", operation_id = "sandbox_list", tag = "sandbox",
    params(("cursor" = Option<String>, Query), ("limit" = Option<i64>, Query, description = "1..200, default 100"),
        ("labels" = Option<String>, Query, description = "JSON object of labels every item must carry"),
        ("states" = Option<Vec<String>>, Query), ("id" = Option<String>, Query, description = "id prefix"),
        ("name" = Option<String>, Query, description = "name prefix"), ("verbose" = Option<bool>, Query)),
    responses((status = 200, body = ListSandboxesResponse), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list(env: &Env, st: &SandboxSettings, req: &Request) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    let limit = match web::query_param(req, "limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 200"))?,
    };
    let labels = match web::query_param(req, "labels") {
        Some(raw) if !raw.trim().is_empty() => crate::rules::labels_filter(&raw)?,
        _ => BTreeMap::new(),
    };
    let q = ListQuery {
        limit,
        cursor: web::query_param(req, "cursor"),
        labels,
        states: query_all(req, "states"),
        id_prefix: web::query_param(req, "id").filter(|s| !s.is_empty()),
        name_prefix: web::query_param(req, "name").filter(|s| !s.is_empty()),
    };
    web::json(StatusCode::OK, &service::list(&c, q).await?)
}

#[utoipa::path(get, path = "/api/sandbox/{sandboxIdOrName}", operation_id = "sandbox_get", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("verbose" = Option<bool>, Query)),
    responses((status = 200, body = Sandbox), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    web::json(StatusCode::OK, &service::get(&c, id).await?)
}

#[utoipa::path(delete, path = "/api/sandbox/{sandboxIdOrName}", operation_id = "sandbox_delete", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("force" = Option<bool>, Query)),
    responses((status = 200, body = Sandbox), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn delete(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    web::json(
        StatusCode::OK,
        &service::delete(&c, id, flag(req, "force")).await?,
    )
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/start", operation_id = "sandbox_start", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path)),
    responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn start(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    web::json(StatusCode::OK, &service::start(&c, id).await?)
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/stop", operation_id = "sandbox_stop", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("force" = Option<bool>, Query, description = "SIGKILL instead of a graceful stop")),
    responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn stop(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    web::json(
        StatusCode::OK,
        &service::stop(&c, id, flag(req, "force")).await?,
    )
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/archive", operation_id = "sandbox_archive", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path)),
    responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn archive(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    web::json(StatusCode::OK, &service::archive(&c, id).await?)
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/backup", operation_id = "sandbox_backup", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path)),
    responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn backup(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    web::json(StatusCode::OK, &service::backup(&c, id).await?)
}

#[utoipa::path(put, path = "/api/sandbox/{sandboxIdOrName}/labels", operation_id = "sandbox_replace_labels", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path)), request_body = SandboxLabels,
    responses((status = 200, body = SandboxLabels), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn labels(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    let body: SandboxLabels = web::json_body(req)?;
    web::json(
        StatusCode::OK,
        &service::set_labels(&c, id, body.labels).await?,
    )
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/public/{isPublic}", operation_id = "sandbox_set_public", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("isPublic" = bool, Path)),
    responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn public(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
    v: &str,
) -> Result<Response, ApiError> {
    let v = parse_bool(v)?;
    let c = call(env, st, req).await?;
    web::json(StatusCode::OK, &service::set_public(&c, id, v).await?)
}

async fn interval(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
    kind: IntervalKind,
    v: &str,
) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    web::json(
        StatusCode::OK,
        &service::set_interval(&c, id, kind, v).await?,
    )
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/autostop/{interval}", operation_id = "sandbox_set_autostop", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("interval" = i64, Path, description = "minutes, 0 = off")),
    responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn autostop(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
    v: &str,
) -> Result<Response, ApiError> {
    interval(env, st, req, id, IntervalKind::AutoStop, v).await
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/autoarchive/{interval}", operation_id = "sandbox_set_autoarchive", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("interval" = i64, Path, description = "minutes, 0 = the maximum (30 days)")),
    responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn autoarchive(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
    v: &str,
) -> Result<Response, ApiError> {
    interval(env, st, req, id, IntervalKind::AutoArchive, v).await
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/autodelete/{interval}", operation_id = "sandbox_set_autodelete", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("interval" = i64, Path, description = "minutes, -1 = off, 0 = delete when stopped")),
    responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn autodelete(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
    v: &str,
) -> Result<Response, ApiError> {
    interval(env, st, req, id, IntervalKind::AutoDelete, v).await
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/autopause/{interval}", operation_id = "sandbox_set_autopause", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("interval" = i64, Path, description = "minutes, 0 = off")),
    responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn autopause(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
    v: &str,
) -> Result<Response, ApiError> {
    interval(env, st, req, id, IntervalKind::AutoPause, v).await
}

#[utoipa::path(get, path = "/api/sandbox/{sandboxIdOrName}/ports/{port}/preview-url", operation_id = "sandbox_preview_url", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("port" = i64, Path, description = "1..65535")),
    responses((status = 200, body = PortPreviewUrl), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn preview_url(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
    port: &str,
) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    web::json(StatusCode::OK, &service::preview_url(&c, id, port).await?)
}

#[utoipa::path(get, path = "/api/sandbox/{sandboxId}/toolbox-proxy-url", operation_id = "sandbox_toolbox_proxy_url", tag = "sandbox",
    params(("sandboxId" = String, Path)),
    responses((status = 200, body = ToolboxProxyUrl), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn toolbox_proxy_url(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    web::json(StatusCode::OK, &service::toolbox_proxy_url(&c, id).await?)
}

#[utoipa::path(get, path = "/api/sandbox/{sandboxIdOrName}/build-logs", operation_id = "sandbox_build_logs", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("follow" = Option<bool>, Query)),
    responses((status = 200, content_type = "text/plain", body = String, description = "Build log (sandboxes from a snapshot have no build)"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn build_logs(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    Ok(text(StatusCode::OK, service::build_logs(&c, id).await?))
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxId}/last-activity", operation_id = "sandbox_last_activity", tag = "sandbox",
    params(("sandboxId" = String, Path)), request_body(content = Option<UpdateLastActivity>),
    responses((status = 201, description = "Recorded"), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn last_activity(
    env: &Env,
    st: &SandboxSettings,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let c = call(env, st, req).await?;
    service::last_activity(&c, id).await?;
    Ok(empty(StatusCode::CREATED))
}

#[utoipa::path(put, path = "/api/sandbox/{sandboxId}/state", operation_id = "sandbox_update_state", tag = "sandbox",
    description = "Runner only (runner token): the observed state of one of the runner's sandboxes.",
    params(("sandboxId" = String, Path)), request_body = UpdateSandboxState,
    responses((status = 200, description = "Recorded"), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("runner_token" = [])))]
async fn state(env: &Env, req: &Request, id: &str) -> Result<Response, ApiError> {
    let runner = runner_auth::authenticate_runner(env, req).await?;
    let body: UpdateSandboxState = web::json_body(req)?;
    service::report_state(env, &runner, id, body).await?;
    Ok(empty(StatusCode::OK))
}

/// Documents each `/api/sandbox` route (but the runner's state report) once more under the
/// deprecated `/api/workspace` prefix.
struct WorkspaceAliases;

impl Modify for WorkspaceAliases {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let aliases: Vec<(String, PathItem)> = doc
            .paths
            .paths
            .iter()
            .filter(|(p, _)| p.starts_with(BASE) && !p.ends_with("/state"))
            .map(|(p, item)| {
                let mut item = item.clone();
                for op in [
                    &mut item.get,
                    &mut item.post,
                    &mut item.put,
                    &mut item.delete,
                    &mut item.patch,
                ]
                .into_iter()
                .flatten()
                {
                    alias_op(op);
                }
                (p.replacen(BASE, ALIAS, 1), item)
            })
            .collect();
        doc.paths.paths.extend(aliases);
    }
}

fn alias_op(op: &mut Operation) {
    op.operation_id = op.operation_id.as_ref().map(|id| format!("workspace_{id}"));
    op.deprecated = Some(utoipa::openapi::Deprecated::True);
    op.tags = Some(vec!["workspace".to_owned()]);
}

/// This function's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(create, list, get, delete, start, stop, archive, backup, labels, public, autostop,
        autoarchive, autodelete, autopause, preview_url, toolbox_proxy_url, build_logs,
        last_activity, state),
    modifiers(&WorkspaceAliases)
)]
pub struct ApiDoc;
