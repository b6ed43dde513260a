//! HTTP routes: authenticate, unpack, call the service, answer.
//!
//! `/api/workspace/...` serves the same routes as `/api/sandbox/...` (Daytona's deprecated alias),
//! except the runner-only `PUT /api/sandbox/{sandboxId}/state`. Every handler authenticates before
//! it reads the body or parameters, so a caller who may not use a route never learns what the
//! route would have refused.

use bytes::Bytes;
use cove_api_types::ApiError;
use cove_api_types::ids::SandboxId;
use cove_api_types::permissions::Permission;
use cove_api_types::sandbox::{
    CreateSandbox, ListSandboxesResponse, PortPreviewUrl, Sandbox, SandboxLabels, ToolboxProxyUrl,
    UpdateLastActivity, UpdateSandboxNetworkSettings,
};
use cove_edge::config::SandboxSettings;
use cove_edge::responses::Errors;
use cove_edge::router::Params;
use cove_edge::store_error::IntoApi;
use cove_edge::web::{self, Answer, Request, Response};
use cove_edge::{Action, Env, auth, authorize, runner_auth};
use cove_store::runners::RunnerRecord;
use http::{HeaderValue, StatusCode, header};
use utoipa::Modify;
use utoipa::openapi::path::{Operation, PathItem};

use crate::service::{self, Call, IntervalKind, ListQuery};

mod telemetry;
use telemetry::{__path_sandbox_metrics, sandbox_metrics};

const BASE: &str = "/api/sandbox";
const ALIAS: &str = "/api/workspace";
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 200;

/// What every handler of this function runs against.
pub struct State {
    pub env: Env,
    pub settings: SandboxSettings,
}

/// Serves one request.
pub async fn handle(env: &Env, settings: &SandboxSettings, req: Request) -> Response {
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
        sandbox_metrics,
        sandbox_create, sandbox_list, sandbox_get, sandbox_delete, sandbox_start, sandbox_stop,
        sandbox_archive, sandbox_backup, sandbox_recover, sandbox_replace_labels, sandbox_set_public,
        sandbox_set_autostop, sandbox_set_autoarchive, sandbox_set_autodelete,
        sandbox_set_autopause, sandbox_set_ttl, sandbox_preview_url, sandbox_toolbox_proxy_url, sandbox_signing_key, sandbox_rotate_signing_key, sandbox_build_logs,
        sandbox_update_network_settings, sandbox_network_log, sandbox_last_activity, sandbox_update_state,
        sandbox_signed_preview_url, sandbox_expire_signed_preview_url, sandbox_events,
    ]
    modifiers(&WorkspaceAliases)
    alias(BASE, ALIAS, is_runner_only)
}

/// Routes the deprecated `/api/workspace` prefix does not repeat.
fn is_runner_only(template: &str) -> bool {
    template.ends_with("/state")
}

async fn call<'a>(s: &'a State, req: &Request) -> Result<Call<'a>, ApiError> {
    Ok(Call {
        env: &s.env,
        settings: &s.settings,
        ctx: auth::authenticate(&s.env, req).await?,
        host: crate::view::request_host(req),
    })
}

/// The request's body; when it is unreadable, `refusal` runs first, so a caller who may not use
/// the route gets that refusal and never learns what the body would have been refused for.
async fn body_after<T, F>(req: &Request, refusal: F) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned,
    F: Future<Output = Result<(), ApiError>>,
{
    match web::json_body(req) {
        Ok(body) => Ok(body),
        Err(e) => {
            refusal.await?;
            Err(e)
        }
    }
}

/// 403/404 unless the caller may change sandbox `id`.
async fn may_write(c: &Call<'_>, id: &str) -> Result<(), ApiError> {
    authorize(c.env, &c.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    service::get(c, id).await.map(|_| ())
}

/// 404 unless sandbox `id` is assigned to `runner` (checked before its report is read).
async fn assigned_to(env: &Env, runner: &RunnerRecord, id: &str) -> Result<(), ApiError> {
    let missing = || ApiError::not_found(format!("Sandbox with ID {id} not found"));
    let sandbox_id = SandboxId::parse(id).map_err(|_| missing())?;
    env.store
        .sandboxes()
        .get(&sandbox_id)
        .await
        .api()?
        .filter(|r| r.runner_id.as_ref() == Some(&runner.id))
        .map(|_| ())
        .ok_or_else(missing)
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

fn ok(value: &impl serde::Serialize) -> Answer {
    web::json(StatusCode::OK, value)
}

#[utoipa::path(post, path = "/api/sandbox", tag = "sandbox",
    request_body = CreateSandbox,
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_create(s: &State, req: &Request, _: &Params) -> Answer {
    let c = call(s, req).await?;
    let refusal = authorize(&s.env, &c.ctx, Action::Create(Permission::WriteSandboxes));
    let body: CreateSandbox = body_after(req, refusal).await?;
    ok(&service::create(&c, body).await?)
}

fn list_query(req: &Request) -> Result<ListQuery, ApiError> {
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
        _ => Default::default(),
    };
    ListQuery::parse(&ReqQuery(req), limit, labels)
}

/// The request's query string, for [`ListQuery::parse`].
struct ReqQuery<'a>(&'a Request);

impl service::listing::QuerySource for ReqQuery<'_> {
    fn one(&self, name: &str) -> Option<String> {
        web::query_param(self.0, name)
    }
    fn all(&self, name: &str) -> Vec<String> {
        web::query_values(self.0, name)
    }
}

#[utoipa::path(get, path = "/api/sandbox", tag = "sandbox",
    params(("cursor" = Option<String>, Query), ("limit" = Option<i64>, Query, description = "1..200, default 100"),
        ("labels" = Option<String>, Query, description = "JSON object of labels every item must carry"),
        ("states" = Option<Vec<String>>, Query), ("id" = Option<String>, Query, description = "id prefix (case-insensitive)"),
        ("name" = Option<String>, Query, description = "name prefix (case-insensitive)"),
        ("snapshots" = Option<Vec<String>>, Query), ("regionIds" = Option<Vec<String>>, Query, description = "targets"),
        ("sandboxClasses" = Option<Vec<String>>, Query),
        ("minCpu" = Option<i64>, Query), ("maxCpu" = Option<i64>, Query),
        ("minMemoryGiB" = Option<i64>, Query), ("maxMemoryGiB" = Option<i64>, Query),
        ("minDiskGiB" = Option<i64>, Query), ("maxDiskGiB" = Option<i64>, Query),
        ("minGpu" = Option<i64>, Query), ("maxGpu" = Option<i64>, Query),
        ("isPublic" = Option<bool>, Query), ("isRecoverable" = Option<bool>, Query),
        ("createdAtAfter" = Option<String>, Query, description = "ISO 8601, inclusive"),
        ("createdAtBefore" = Option<String>, Query, description = "ISO 8601, inclusive"),
        ("lastEventAfter" = Option<String>, Query, description = "last activity, ISO 8601, inclusive"),
        ("lastEventBefore" = Option<String>, Query, description = "last activity, ISO 8601, inclusive"),
        ("autoDestroyAtAfter" = Option<String>, Query), ("autoDestroyAtBefore" = Option<String>, Query),
        ("includeErroredDeleted" = Option<bool>, Query),
        ("sort" = Option<String>, Query, description = "name, cpu, memoryGib, diskGib, lastActivityAt or createdAt (default: createdAt, newest first)"),
        ("order" = Option<String>, Query, description = "asc or desc (default desc)"),
        ("verbose" = Option<bool>, Query)),
    responses((status = 200, body = ListSandboxesResponse), Errors),
    security(("bearer" = [])))]
async fn sandbox_list(s: &State, req: &Request, _: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::list(&c, list_query(req)?).await?)
}

/// Beyond Daytona's REST API: the organization's sandbox events after `after`, oldest first,
/// which `cove-proxy`'s Socket.IO relay polls and emits (`sandbox.created`,
/// `sandbox.state.updated`, `sandbox.desired-state.updated`, CONTRACT §11). Without `after`: no
/// events and the cursor of now.
#[utoipa::path(get, path = "/api/events/sandboxes", tag = "sandbox",
    params(("after" = Option<String>, Query, description = "a cursor this route answered"),
        ("limit" = Option<i64>, Query, description = "1..500, default 100")),
    responses((status = 200, body = service::events::SandboxEventsPage), Errors),
    security(("bearer" = [])))]
async fn sandbox_events(s: &State, req: &Request, _: &Params) -> Answer {
    let c = call(s, req).await?;
    let after = web::query_param(req, "after");
    let limit = web::query_param(req, "limit");
    ok(&service::events::events(&c, after.as_deref(), limit.as_deref()).await?)
}

#[utoipa::path(get, path = "/api/sandbox/{sandboxIdOrName}", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("verbose" = Option<bool>, Query)),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_get(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::get(&c, p.get("sandboxIdOrName")).await?)
}

#[utoipa::path(delete, path = "/api/sandbox/{sandboxIdOrName}", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("force" = Option<bool>, Query)),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_delete(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::delete(&c, p.get("sandboxIdOrName"), flag(req, "force")).await?)
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/start", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path)),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_start(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::start(&c, p.get("sandboxIdOrName")).await?)
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/stop", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("force" = Option<bool>, Query, description = "SIGKILL instead of a graceful stop")),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_stop(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::stop(&c, p.get("sandboxIdOrName"), flag(req, "force")).await?)
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/archive", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path)),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_archive(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::archive(&c, p.get("sandboxIdOrName")).await?)
}

/// Restores a recoverable sandbox in `error` (its runner was lost) from its last backup on
/// another runner; `skipStart=true` leaves it `archived` (its next start restores it).
#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/recover", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("skipStart" = Option<bool>, Query, description = "Leave it archived instead of starting it")),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_recover(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::recover(&c, p.get("sandboxIdOrName"), flag(req, "skipStart")).await?)
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/backup", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path)),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_backup(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::backup(&c, p.get("sandboxIdOrName")).await?)
}

#[utoipa::path(put, path = "/api/sandbox/{sandboxIdOrName}/labels", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path)), request_body = SandboxLabels,
    responses((status = 200, body = SandboxLabels), Errors),
    security(("bearer" = [])))]
async fn sandbox_replace_labels(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    let id = p.get("sandboxIdOrName");
    let body: SandboxLabels = body_after(req, may_write(&c, id)).await?;
    ok(&service::set_labels(&c, id, body.labels).await?)
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/network-settings", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path)), request_body = UpdateSandboxNetworkSettings,
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_update_network_settings(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    let id = p.get("sandboxIdOrName");
    let body: UpdateSandboxNetworkSettings = body_after(req, may_write(&c, id)).await?;
    ok(&service::network::update(&c, id, &body).await?)
}

/// Beyond Daytona: the sandbox's last egress attempts (time, destination, domain, verdict), as
/// its runner's egress proxy decided them, oldest first.
#[utoipa::path(get, path = "/api/sandbox/{sandboxIdOrName}/network-log", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path)),
    responses((status = 200, body = cove_runner_api::NetworkLog), Errors),
    security(("bearer" = [])))]
async fn sandbox_network_log(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::network::network_log(&c, p.get("sandboxIdOrName")).await?)
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/public/{isPublic}", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("isPublic" = bool, Path)),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_set_public(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    let public = parse_bool(p.get("isPublic"))?;
    ok(&service::set_public(&c, p.get("sandboxIdOrName"), public).await?)
}

async fn interval(s: &State, req: &Request, p: &Params, kind: IntervalKind) -> Answer {
    let c = call(s, req).await?;
    ok(&service::set_interval(&c, p.get("sandboxIdOrName"), kind, p.get("interval")).await?)
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/autostop/{interval}", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("interval" = i64, Path, description = "minutes, 0 = off")),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_set_autostop(s: &State, req: &Request, p: &Params) -> Answer {
    interval(s, req, p, IntervalKind::AutoStop).await
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/autoarchive/{interval}", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("interval" = i64, Path, description = "minutes, 0 = the maximum (30 days)")),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_set_autoarchive(s: &State, req: &Request, p: &Params) -> Answer {
    interval(s, req, p, IntervalKind::AutoArchive).await
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/autodelete/{interval}", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("interval" = i64, Path, description = "minutes, -1 = off, 0 = delete when stopped")),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_set_autodelete(s: &State, req: &Request, p: &Params) -> Answer {
    interval(s, req, p, IntervalKind::AutoDelete).await
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/autopause/{interval}", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("interval" = i64, Path, description = "minutes, 0 = off")),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_set_autopause(s: &State, req: &Request, p: &Params) -> Answer {
    interval(s, req, p, IntervalKind::AutoPause).await
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/ttl/{ttlMinutes}", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("ttlMinutes" = i64, Path, description = "minutes from now until the sandbox is destroyed whatever its state, 0 = no TTL")),
    responses((status = 200, body = Sandbox), Errors),
    security(("bearer" = [])))]
async fn sandbox_set_ttl(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::set_ttl(&c, p.get("sandboxIdOrName"), p.get("ttlMinutes")).await?)
}

#[utoipa::path(get, path = "/api/sandbox/{sandboxIdOrName}/ports/{port}/preview-url", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("port" = i64, Path, description = "1..65535")),
    responses((status = 200, body = PortPreviewUrl), Errors),
    security(("bearer" = [])))]
async fn sandbox_preview_url(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::preview_url(&c, p.get("sandboxIdOrName"), p.get("port")).await?)
}

#[utoipa::path(get, path = "/api/sandbox/{sandboxIdOrName}/ports/{port}/signed-preview-url", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("port" = i64, Path, description = "1..65535"),
        ("expiresInSeconds" = Option<i64>, Query, description = "1..86400, default 60")),
    responses((status = 200, body = cove_api_types::preview::SignedPortPreviewUrl), Errors),
    security(("bearer" = [])))]
async fn sandbox_signed_preview_url(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    let expires = web::query_param(req, "expiresInSeconds");
    let id = p.get("sandboxIdOrName");
    ok(&service::signed_preview_url(&c, id, p.get("port"), expires.as_deref()).await?)
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxIdOrName}/ports/{port}/signed-preview-url/{token}/expire", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("port" = i64, Path), ("token" = String, Path)),
    responses((status = 200, description = "Expired"), Errors),
    security(("bearer" = [])))]
async fn sandbox_expire_signed_preview_url(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    let (id, port) = (p.get("sandboxIdOrName"), p.get("port"));
    service::expire_signed_preview_url(&c, id, port, p.get("token")).await?;
    Ok(empty(StatusCode::OK))
}

#[utoipa::path(get, path = "/api/sandbox/{sandboxId}/toolbox-proxy-url", tag = "sandbox",
    params(("sandboxId" = String, Path)),
    responses((status = 200, body = ToolboxProxyUrl), Errors),
    security(("bearer" = [])))]
async fn sandbox_toolbox_proxy_url(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::toolbox_proxy_url(&c, p.get("sandboxId")).await?)
}

#[utoipa::path(get, path = "/api/sandbox/{sandboxId}/signing-key", tag = "sandbox",
    params(("sandboxId" = String, Path)),
    responses((status = 200, body = String, description = "The HMAC key of the sandbox's signed file URLs"), Errors),
    security(("bearer" = [])))]
async fn sandbox_signing_key(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::signing_key(&c, p.get("sandboxId")).await?)
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxId}/signing-key/rotate", tag = "sandbox",
    params(("sandboxId" = String, Path)),
    responses((status = 200, body = String, description = "The new key; URLs signed with the old one are refused"), Errors),
    security(("bearer" = [])))]
async fn sandbox_rotate_signing_key(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::rotate_signing_key(&c, p.get("sandboxId")).await?)
}

#[utoipa::path(get, path = "/api/sandbox/{sandboxIdOrName}/build-logs", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path), ("follow" = Option<bool>, Query)),
    responses((status = 200, content_type = "text/plain", body = String, description = "Build log (sandboxes from a snapshot have no build)"),
        Errors),
    security(("bearer" = [])))]
async fn sandbox_build_logs(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    Ok(text(
        StatusCode::OK,
        service::build_logs(&c, p.get("sandboxIdOrName")).await?,
    ))
}

#[utoipa::path(post, path = "/api/sandbox/{sandboxId}/last-activity", tag = "sandbox",
    params(("sandboxId" = String, Path)), request_body(content = Option<UpdateLastActivity>),
    responses((status = 201, description = "Recorded"), Errors),
    security(("bearer" = [])))]
async fn sandbox_last_activity(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    service::last_activity(&c, p.get("sandboxId")).await?;
    Ok(empty(StatusCode::CREATED))
}

#[utoipa::path(put, path = "/api/sandbox/{sandboxId}/state", tag = "sandbox",
    description = "Runner only (runner token): the observed state of one of the runner's sandboxes.",
    params(("sandboxId" = String, Path)), request_body = cove_runner_api::StateReport,
    responses((status = 200, description = "Recorded"), Errors),
    security(("runner_token" = [])))]
async fn sandbox_update_state(s: &State, req: &Request, p: &Params) -> Answer {
    let runner = runner_auth::authenticate_runner(&s.env, req).await?;
    assigned_to(&s.env, &runner, p.get("sandboxId")).await?;
    let body: cove_runner_api::StateReport = web::json_body(req)?;
    service::report_state(&s.env, &runner, p.get("sandboxId"), body).await?;
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
            .filter(|(p, _)| p.starts_with(BASE) && !is_runner_only(p))
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
