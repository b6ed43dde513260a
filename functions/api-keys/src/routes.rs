//! HTTP routes of `/api/api-keys`: unpack, authenticate, call the service, answer.

use cove_api_types::api_keys::{ApiKeyList, ApiKeyResponse, CreateApiKey};
use cove_edge::responses::Errors;
use cove_edge::router::Params;
use cove_edge::web::{self, Answer, JsonBody, Request};
use cove_edge::{Env, auth};
use http::StatusCode;

use crate::service;

cove_edge::routes! {
    /// The OpenAPI fragment of this function.
    pub struct ApiDoc;
    pub fn router() -> Router<Env>;
    pub async fn handle;
    [
        api_key_create,
        api_key_list,
        api_key_current,
        api_key_get,
        api_key_delete,
        api_key_delete_for_user,
    ]
}

#[utoipa::path(post, path = "/api/api-keys", tag = "api-keys",
    request_body = CreateApiKey,
    params(("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses(
        (status = 201, description = "The new key; `value` is shown only here", body = ApiKeyResponse), Errors),
    security(("bearer" = [])))]
async fn api_key_create(env: &Env, req: &Request, _: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    let body = JsonBody::<CreateApiKey>::of(req);
    web::json(
        StatusCode::CREATED,
        &service::create(env, &ctx, body).await?,
    )
}

#[utoipa::path(get, path = "/api/api-keys", tag = "api-keys",
    params(("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 200, body = Vec<ApiKeyList>), Errors),
    security(("bearer" = [])))]
async fn api_key_list(env: &Env, req: &Request, _: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    web::json(StatusCode::OK, &service::list(env, &ctx).await?)
}

#[utoipa::path(get, path = "/api/api-keys/current", tag = "api-keys",
    responses((status = 200, body = ApiKeyList), Errors),
    security(("bearer" = [])))]
async fn api_key_current(env: &Env, req: &Request, _: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    web::json(StatusCode::OK, &service::current(&ctx)?)
}

#[utoipa::path(get, path = "/api/api-keys/{name}", tag = "api-keys",
    params(("name" = String, Path), ("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 200, body = ApiKeyList), Errors),
    security(("bearer" = [])))]
async fn api_key_get(env: &Env, req: &Request, p: &Params) -> Answer {
    let name = p.get("name");
    let ctx = auth::authenticate(env, req).await?;
    web::json(StatusCode::OK, &service::get(env, &ctx, name).await?)
}

#[utoipa::path(delete, path = "/api/api-keys/{name}", tag = "api-keys",
    params(("name" = String, Path), ("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 204, description = "Deleted"), Errors),
    security(("bearer" = [])))]
async fn api_key_delete(env: &Env, req: &Request, p: &Params) -> Answer {
    let name = p.get("name");
    let ctx = auth::authenticate(env, req).await?;
    service::delete(env, &ctx, &ctx.user_id, name).await?;
    Ok(web::no_content())
}

#[utoipa::path(delete, path = "/api/api-keys/{userId}/{name}", tag = "api-keys",
    params(("userId" = String, Path), ("name" = String, Path),
        ("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 204, description = "Deleted"), Errors),
    security(("bearer" = [])))]
async fn api_key_delete_for_user(env: &Env, req: &Request, p: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    service::delete_for(env, &ctx, p.get("userId"), p.get("name")).await?;
    Ok(web::no_content())
}
