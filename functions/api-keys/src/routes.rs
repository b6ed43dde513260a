//! HTTP routes of `/api/api-keys`: unpack, authenticate, call the service, answer.

use cove_api_types::ApiError;
use cove_api_types::api_keys::{ApiKeyList, ApiKeyResponse, CreateApiKey};
use cove_api_types::error::ErrorEnvelope;
use cove_api_types::ids::UserId;
use cove_edge::web::{self, Request, Response};
use cove_edge::{Env, auth};
use http::{Method, StatusCode};

use crate::service;

const BASE: &str = "/api/api-keys";

/// Serves one request.
pub async fn handle(env: &Env, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    web::respond(&path, route(env, &req).await)
}

async fn route(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let segs = web::segments(req, BASE).ok_or_else(|| web::no_route(req))?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (req.method(), segs.as_slice()) {
        (&Method::POST, []) => api_key_create(env, req).await,
        (&Method::GET, []) => api_key_list(env, req).await,
        (&Method::GET, ["current"]) => api_key_current(env, req).await,
        (&Method::GET, [name]) => api_key_get(env, req, name).await,
        (&Method::DELETE, [name]) => api_key_delete(env, req, name).await,
        (&Method::DELETE, [user, name]) => api_key_delete_for_user(env, req, user, name).await,
        _ => Err(web::no_route(req)),
    }
}

#[utoipa::path(post, path = "/api/api-keys", operation_id = "api_key_create", tag = "api-keys",
    request_body = CreateApiKey,
    params(("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses(
        (status = 201, description = "The new key; `value` is shown only here", body = ApiKeyResponse),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn api_key_create(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let body: CreateApiKey = web::json_body(req)?;
    web::json(
        StatusCode::CREATED,
        &service::create(env, &ctx, body).await?,
    )
}

#[utoipa::path(get, path = "/api/api-keys", operation_id = "api_key_list", tag = "api-keys",
    params(("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 200, body = Vec<ApiKeyList>), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn api_key_list(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    web::json(StatusCode::OK, &service::list(env, &ctx).await?)
}

#[utoipa::path(get, path = "/api/api-keys/current", operation_id = "api_key_current", tag = "api-keys",
    responses((status = 200, body = ApiKeyList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn api_key_current(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    web::json(StatusCode::OK, &service::current(&ctx)?)
}

#[utoipa::path(get, path = "/api/api-keys/{name}", operation_id = "api_key_get", tag = "api-keys",
    params(("name" = String, Path), ("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 200, body = ApiKeyList), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn api_key_get(env: &Env, req: &Request, name: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    web::json(StatusCode::OK, &service::get(env, &ctx, name).await?)
}

#[utoipa::path(delete, path = "/api/api-keys/{name}", operation_id = "api_key_delete", tag = "api-keys",
    params(("name" = String, Path), ("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn api_key_delete(env: &Env, req: &Request, name: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    service::delete(env, &ctx, &ctx.user_id, name).await?;
    Ok(web::no_content())
}

#[utoipa::path(delete, path = "/api/api-keys/{userId}/{name}", operation_id = "api_key_delete_for_user", tag = "api-keys",
    params(("userId" = String, Path), ("name" = String, Path),
        ("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn api_key_delete_for_user(
    env: &Env,
    req: &Request,
    user: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let user = UserId::parse(user).map_err(|e| ApiError::bad_request(e.to_string()))?;
    service::delete(env, &ctx, &user, name).await?;
    Ok(web::no_content())
}

/// The OpenAPI fragment of this function.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    api_key_create,
    api_key_list,
    api_key_current,
    api_key_get,
    api_key_delete,
    api_key_delete_for_user
))]
pub struct ApiDoc;
