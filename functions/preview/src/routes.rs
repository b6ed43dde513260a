//! HTTP routes: authenticate (the proxy's token or the user's credential), call the service,
//! answer.

use cove_api_types::ApiError;
use cove_edge::Env;
use cove_edge::responses::Errors;
use cove_edge::router::Params;
use cove_edge::web::{self, Answer, Request, Response};
use http::StatusCode;

use crate::service;
use crate::settings::{PreviewSettings, same_secret};

/// What every handler runs against.
pub struct State {
    pub env: Env,
    pub settings: PreviewSettings,
}

/// Serves one request.
pub async fn handle(env: &Env, settings: &PreviewSettings, req: Request) -> Response {
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
        preview_public, preview_validate, preview_access, preview_toolbox_access,
        preview_signed_sandbox_id, preview_signing_key, preview_verify_file_url, preview_warning, preview_last_activity,
    ]
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// 401 without a bearer token, 403 with one that is not the proxy's (user keys included).
pub fn require_proxy<'a>(s: &'a State, req: &Request) -> Result<&'a str, ApiError> {
    let presented = bearer(req).filter(|t| !t.is_empty());
    let Some(presented) = presented else {
        return Err(ApiError::invalid_credentials());
    };
    match s.settings.proxy_api_key.as_deref() {
        Some(key) if same_secret(key.as_bytes(), presented.as_bytes()) => Ok(key),
        Some(_) => Err(ApiError::forbidden(
            "This route is reserved for the preview proxy",
        )),
        None => Err(ApiError::unauthorized("No preview proxy is configured")),
    }
}

fn ok<T: serde::Serialize>(v: &T) -> Answer {
    web::json(StatusCode::OK, v)
}

#[utoipa::path(get, path = "/api/preview/{sandboxId}/public", tag = "preview",
    params(("sandboxId" = String, Path)),
    responses((status = 200, body = bool, description = "`true`: the sandbox is public (private or missing: 404)"), Errors),
    security(("proxy_token" = [])))]
async fn preview_public(s: &State, req: &Request, p: &Params) -> Answer {
    require_proxy(s, req)?;
    ok(&service::is_public(&s.env, p.get("sandboxId")).await?)
}

#[utoipa::path(get, path = "/api/preview/{sandboxId}/validate/{authToken}", tag = "preview",
    params(("sandboxId" = String, Path), ("authToken" = String, Path)),
    responses((status = 200, body = bool, description = "`true`: the token is the sandbox's (else 404)"), Errors),
    security(("proxy_token" = [])))]
async fn preview_validate(s: &State, req: &Request, p: &Params) -> Answer {
    require_proxy(s, req)?;
    ok(&service::validate(&s.env, p.get("sandboxId"), p.get("authToken")).await?)
}

#[utoipa::path(get, path = "/api/preview/{sandboxId}/access", tag = "preview",
    params(("sandboxId" = String, Path)),
    responses((status = 200, body = bool, description = "`true`: the caller belongs to the sandbox's organization (else 404)"), Errors),
    security(("bearer" = [])))]
async fn preview_access(s: &State, req: &Request, p: &Params) -> Answer {
    ok(&service::access(&s.env, req, p.get("sandboxId")).await?)
}

#[utoipa::path(get, path = "/api/preview/{sandboxId}/toolbox-access", tag = "preview",
    description = "Cove: whether the toolbox proxy would forward this caller's calls to the sandbox \
        (the `toolbox` component's checks; records activity).",
    params(("sandboxId" = String, Path)),
    responses((status = 200, body = bool), Errors),
    security(("bearer" = [])))]
async fn preview_toolbox_access(s: &State, req: &Request, p: &Params) -> Answer {
    ok(&service::toolbox_access(&s.env, req, p.get("sandboxId")).await?)
}

#[utoipa::path(get, path = "/api/preview/{signedPreviewToken}/{port}/sandbox-id", tag = "preview",
    params(("signedPreviewToken" = String, Path), ("port" = i64, Path)),
    responses((status = 200, body = String, description = "The sandbox id of a live signed preview token"), Errors),
    security(("proxy_token" = [])))]
async fn preview_signed_sandbox_id(s: &State, req: &Request, p: &Params) -> Answer {
    require_proxy(s, req)?;
    let id = service::signed_sandbox_id(&s.env, p.get("signedPreviewToken"), p.get("port")).await?;
    ok(&id)
}

#[utoipa::path(get, path = "/api/preview/{sandboxId}/signing-key", tag = "preview",
    params(("sandboxId" = String, Path)),
    responses((status = 200, body = String, description = "The sandbox's cookie signing key"), Errors),
    security(("proxy_token" = [])))]
async fn preview_signing_key(s: &State, req: &Request, p: &Params) -> Answer {
    let key = require_proxy(s, req)?;
    ok(&service::signing_key(&s.env, key, p.get("sandboxId")).await?)
}

#[utoipa::path(get, path = "/api/preview/{sandboxId}/file-url/verify", tag = "preview",
    params(("sandboxId" = String, Path), ("method" = String, Query, description = "GET (download) or POST (upload)"),
        ("path" = String, Query), ("expires" = String, Query, description = "UNIX seconds, 0: never"),
        ("signature" = String, Query)),
    responses((status = 200, body = bool, description = "`true`: a valid signed file URL of this sandbox"), Errors),
    security(("proxy_token" = [])))]
async fn preview_verify_file_url(s: &State, req: &Request, p: &Params) -> Answer {
    require_proxy(s, req)?;
    let q = |name: &str| web::query_param(req, name).unwrap_or_default();
    let (method, path, expires, signature) = (q("method"), q("path"), q("expires"), q("signature"));
    let url = service::SignedFileUrl {
        method: &method,
        path: &path,
        expires: &expires,
        signature: &signature,
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    ok(&service::verify_file_url(&s.env, p.get("sandboxId"), &url, now).await?)
}

/// `GET /api/preview/{id}/preview-warning` (0.226).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PreviewWarning {
    /// Whether the interstitial warning page is shown (never, in Cove).
    pub enabled: bool,
}

#[utoipa::path(get, path = "/api/preview/{sandboxId}/preview-warning", tag = "preview",
    params(("sandboxId" = String, Path), ("port" = Option<i64>, Query)),
    responses((status = 200, body = PreviewWarning), Errors),
    security(("proxy_token" = [])))]
async fn preview_warning(s: &State, req: &Request, p: &Params) -> Answer {
    require_proxy(s, req)?;
    service::live_sandbox(&s.env, p.get("sandboxId")).await?;
    ok(&PreviewWarning { enabled: false })
}

#[utoipa::path(post, path = "/api/preview/{sandboxId}/last-activity", tag = "preview",
    params(("sandboxId" = String, Path)),
    responses((status = 201, description = "Recorded"), Errors),
    security(("proxy_token" = [])))]
async fn preview_last_activity(s: &State, req: &Request, p: &Params) -> Answer {
    require_proxy(s, req)?;
    service::record_activity(&s.env, p.get("sandboxId")).await?;
    let mut r = web::no_content();
    *r.status_mut() = StatusCode::CREATED;
    Ok(r)
}
