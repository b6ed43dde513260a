//! HTTP routes: authenticate, unpack, call the service, answer. Every handler authenticates
//! before it reads the body or parameters.

use cove_api_types::ApiError;
use cove_api_types::permissions::Permission;
use cove_api_types::volumes::{CreateVolume, VolumeDto};
use cove_edge::responses::Errors;
use cove_edge::router::Params;
use cove_edge::web::{self, Answer, Request, Response};
use cove_edge::{Action, Env, auth, authorize};
use http::StatusCode;

use crate::VolumeStorage;
use crate::rules;
use crate::service::{self, Call};

/// What every handler of this function runs against.
pub struct State {
    pub env: Env,
    pub storage: VolumeStorage,
}

/// Serves one request.
pub async fn handle(env: &Env, storage: &VolumeStorage, req: Request) -> Response {
    let state = State {
        env: env.clone(),
        storage: storage.clone(),
    };
    router().serve(&state, &req).await
}

cove_edge::routes! {
    /// This function's part of the OpenAPI document.
    pub struct ApiDoc;
    pub fn router() -> Router<State>;
    [volume_create, volume_list, volume_get, volume_get_by_name, volume_delete]
}

async fn call<'a>(s: &'a State, req: &Request) -> Result<Call<'a>, ApiError> {
    Ok(Call {
        env: &s.env,
        storage: &s.storage,
        ctx: auth::authenticate(&s.env, req).await?,
    })
}

fn ok(value: &impl serde::Serialize) -> Answer {
    web::json(StatusCode::OK, value)
}

#[utoipa::path(post, path = "/api/volumes", operation_id = "createVolume", tag = "volumes",
    request_body = CreateVolume,
    responses((status = 200, body = VolumeDto), Errors),
    security(("bearer" = [])))]
async fn volume_create(s: &State, req: &Request, _: &Params) -> Answer {
    let c = call(s, req).await?;
    let body: CreateVolume = match web::json_body(req) {
        Ok(b) => b,
        Err(e) => {
            authorize(&s.env, &c.ctx, Action::Create(Permission::WriteVolumes)).await?;
            return Err(e);
        }
    };
    ok(&service::create(&c, body).await?)
}

#[utoipa::path(get, path = "/api/volumes", operation_id = "listVolumes", tag = "volumes",
    params(("includeDeleted" = Option<bool>, Query, description = "also the deleted volumes")),
    responses((status = 200, body = Vec<VolumeDto>), Errors),
    security(("bearer" = [])))]
async fn volume_list(s: &State, req: &Request, _: &Params) -> Answer {
    let c = call(s, req).await?;
    let deleted = rules::include_deleted(web::query_param(req, "includeDeleted").as_deref())?;
    ok(&service::list(&c, deleted).await?)
}

#[utoipa::path(get, path = "/api/volumes/{volumeId}", operation_id = "getVolume", tag = "volumes",
    params(("volumeId" = String, Path)),
    responses((status = 200, body = VolumeDto), Errors),
    security(("bearer" = [])))]
async fn volume_get(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::get(&c, p.get("volumeId")).await?)
}

#[utoipa::path(get, path = "/api/volumes/by-name/{name}", operation_id = "getVolumeByName", tag = "volumes",
    params(("name" = String, Path)),
    responses((status = 200, body = VolumeDto), Errors),
    security(("bearer" = [])))]
async fn volume_get_by_name(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    ok(&service::get_by_name(&c, p.get("name")).await?)
}

#[utoipa::path(delete, path = "/api/volumes/{volumeId}", operation_id = "deleteVolume", tag = "volumes",
    params(("volumeId" = String, Path)),
    responses((status = 200, description = "Deletion started (pending_delete)"),
        (status = 409, description = "A sandbox uses the volume"), Errors),
    security(("bearer" = [])))]
async fn volume_delete(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    service::delete(&c, p.get("volumeId")).await?;
    let mut r: Response = web::no_content();
    *r.status_mut() = StatusCode::OK;
    Ok(r)
}
