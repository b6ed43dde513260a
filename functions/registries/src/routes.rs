//! HTTP routes of `/api/docker-registry` and `/api/object-storage`: authenticate, check the
//! permission, unpack, call the service, answer. The body is read only after the permission
//! check, so a caller who may not use a route never learns what its body would be refused for.

use cove_api_types::permissions::Permission;
use cove_api_types::registries::{
    CreateDockerRegistry, DockerRegistry, RegistryPushAccessDto, StorageAccessDto,
    UpdateDockerRegistry,
};
use cove_edge::responses::Errors;
use cove_edge::router::Params;
use cove_edge::web::{self, Answer, JsonBody, Request, Response};
use cove_edge::{Env, auth};
use http::StatusCode;

use crate::access;
use crate::service::{self, Call};
use crate::settings::RegistrySettings;

/// What every handler of this function runs against.
pub struct State {
    pub env: Env,
    pub settings: RegistrySettings,
}

/// Serves one request.
pub async fn handle(env: &Env, settings: &RegistrySettings, req: Request) -> Response {
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
        registry_create, registry_list, registry_push_access, registry_get, registry_update,
        registry_delete, registry_set_default, object_storage_push_access,
    ]
}

async fn call<'a>(s: &'a State, req: &Request) -> Result<Call<'a>, cove_api_types::ApiError> {
    Ok(Call {
        env: &s.env,
        settings: &s.settings,
        ctx: auth::authenticate(&s.env, req).await?,
    })
}

#[utoipa::path(post, path = "/api/docker-registry", tag = "docker-registry",
    request_body = CreateDockerRegistry,
    params(("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 201, description = "The registry (never its password)", body = DockerRegistry), Errors),
    security(("bearer" = [])))]
async fn registry_create(s: &State, req: &Request, _: &Params) -> Answer {
    let c = call(s, req).await?;
    service::require(&c, Permission::WriteRegistries, true).await?;
    let body = JsonBody::<CreateDockerRegistry>::of(req).parse()?;
    web::json(StatusCode::CREATED, &service::create(&c, body).await?)
}

#[utoipa::path(get, path = "/api/docker-registry", tag = "docker-registry",
    params(("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 200, description = "The internal registry (when there is one), then the organization's", body = Vec<DockerRegistry>), Errors),
    security(("bearer" = [])))]
async fn registry_list(s: &State, req: &Request, _: &Params) -> Answer {
    let c = call(s, req).await?;
    web::json(StatusCode::OK, &service::list(&c).await?)
}

#[utoipa::path(get, path = "/api/docker-registry/registry-push-access", tag = "docker-registry",
    params(("regionId" = Option<String>, Query, description = "Ignored: one internal registry serves every region"),
        ("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 200, description = "Credentials for the organization's project, valid until `expiresAt`", body = RegistryPushAccessDto), Errors),
    security(("bearer" = [])))]
async fn registry_push_access(s: &State, req: &Request, _: &Params) -> Answer {
    let c = call(s, req).await?;
    service::require(&c, Permission::WriteRegistries, true).await?;
    web::json(StatusCode::OK, &access::registry_push_access(&c)?)
}

#[utoipa::path(get, path = "/api/docker-registry/{id}", tag = "docker-registry",
    params(("id" = String, Path), ("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 200, body = DockerRegistry), Errors),
    security(("bearer" = [])))]
async fn registry_get(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    web::json(StatusCode::OK, &service::get(&c, p.get("id")).await?)
}

#[utoipa::path(patch, path = "/api/docker-registry/{id}", tag = "docker-registry",
    request_body = UpdateDockerRegistry,
    params(("id" = String, Path), ("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 200, body = DockerRegistry), Errors),
    security(("bearer" = [])))]
async fn registry_update(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    service::require(&c, Permission::WriteRegistries, false).await?;
    let body = JsonBody::<UpdateDockerRegistry>::of(req);
    web::json(
        StatusCode::OK,
        &service::update(&c, p.get("id"), body).await?,
    )
}

#[utoipa::path(delete, path = "/api/docker-registry/{id}", tag = "docker-registry",
    params(("id" = String, Path), ("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 204, description = "Deleted"), Errors),
    security(("bearer" = [])))]
async fn registry_delete(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    service::require(&c, Permission::DeleteRegistries, false).await?;
    service::delete(&c, p.get("id")).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/docker-registry/{id}/set-default", tag = "docker-registry",
    params(("id" = String, Path), ("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 200, description = "The registry, now preferred for its host", body = DockerRegistry), Errors),
    security(("bearer" = [])))]
async fn registry_set_default(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    service::require(&c, Permission::WriteRegistries, false).await?;
    web::json(
        StatusCode::OK,
        &service::set_default(&c, p.get("id")).await?,
    )
}

#[utoipa::path(get, path = "/api/object-storage/push-access", tag = "object-storage",
    params(("X-Daytona-Organization-ID" = Option<String>, Header, description = "Organization (JWT only)")),
    responses((status = 200, description = "S3 credentials for `{bucket}/{organizationId}/` only", body = StorageAccessDto), Errors),
    security(("bearer" = [])))]
async fn object_storage_push_access(s: &State, req: &Request, _: &Params) -> Answer {
    let c = call(s, req).await?;
    service::require(&c, Permission::WriteSnapshots, true).await?;
    web::json(StatusCode::OK, &access::storage_push_access(&c).await?)
}
