//! HTTP routes: unpack, authenticate, call the service, answer.

use cove_api_types::ApiError;
use cove_api_types::error::ErrorEnvelope;
use cove_api_types::ids::{OrganizationId, UserId};
use cove_api_types::orgs::{
    AccountProvider, CreateLinkedAccount, CreateOrganization, CreateOrganizationInvitation,
    CreateOrganizationRole, CreateUser, DaytonaConfiguration, Organization, OrganizationInvitation,
    OrganizationRole, OrganizationSuspension, OrganizationUsageOverview, OrganizationUser,
    UpdateAssignedOrganizationRoles, UpdateOrganizationInvitation, UpdateOrganizationMemberAccess,
    UpdateOrganizationMemberRole, UpdateOrganizationQuota, UpdateOrganizationRegionQuota, User,
};
use cove_edge::web::{self, Request, Response};
use cove_edge::{Env, auth};
use http::{Method, StatusCode};

use crate::service;

const BASE: &str = "/api";

/// Serves one request.
pub async fn handle(env: &Env, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    web::respond(&path, route(env, &req).await)
}

fn org_id(s: &str) -> Result<OrganizationId, ApiError> {
    OrganizationId::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn user_id(s: &str) -> Result<UserId, ApiError> {
    UserId::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn empty(status: StatusCode) -> Response {
    let mut r = web::no_content();
    *r.status_mut() = status;
    r
}

fn ok_empty() -> Response {
    empty(StatusCode::OK)
}

async fn route(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let segs = web::segments(req, BASE).ok_or_else(|| web::no_route(req))?;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method();
    match (m, s.as_slice()) {
        (&Method::GET, ["health"]) => health(),
        (&Method::GET, ["health", "ready"]) => health_ready(env).await,
        (&Method::GET, ["config"]) => config(env),
        (&Method::GET, ["users", "me"]) => user_me(env, req).await,
        (&Method::GET, ["users", "account-providers"]) => account_providers(env, req).await,
        (&Method::POST, ["users"]) => user_create(env, req).await,
        (&Method::GET, ["users"]) => user_list(env, req).await,
        (&Method::POST, ["users", "linked-accounts"]) => link_account(env, req).await,
        (&Method::DELETE, ["users", "linked-accounts", provider, provider_user]) => {
            unlink_account(env, req, provider, provider_user).await
        }
        (&Method::GET, ["users", id]) => user_get(env, req, id).await,
        (&Method::POST, ["users", id, "regenerate-key-pair"]) => {
            regenerate_key_pair(env, req, id).await
        }
        (&Method::POST, ["organizations"]) => org_create(env, req).await,
        (&Method::GET, ["organizations"]) => org_list(env, req).await,
        (&Method::GET, ["organizations", "invitations"]) => my_invitations(env, req).await,
        (&Method::GET, ["organizations", "invitations", "count"]) => {
            my_invitation_count(env, req).await
        }
        (&Method::POST, ["organizations", "invitations", id, "accept"]) => {
            invitation_accept(env, req, id).await
        }
        (&Method::POST, ["organizations", "invitations", id, "decline"]) => {
            invitation_decline(env, req, id).await
        }
        (&Method::GET, ["organizations", o]) => org_get(env, req, o).await,
        (&Method::DELETE, ["organizations", o]) => org_delete(env, req, o).await,
        (&Method::GET, ["organizations", o, "usage"]) => org_usage(env, req, o).await,
        (&Method::PATCH, ["organizations", o, "quota"]) => org_quota(env, req, o).await,
        (&Method::PATCH, ["organizations", o, "quota", region]) => {
            org_region_quota(env, req, o, region).await
        }
        (&Method::POST, ["organizations", o, "leave"]) => org_leave(env, req, o).await,
        (&Method::POST, ["organizations", o, "suspend"]) => org_suspend(env, req, o).await,
        (&Method::POST, ["organizations", o, "unsuspend"]) => org_unsuspend(env, req, o).await,
        (&Method::GET, ["organizations", o, "users"]) => members_list(env, req, o).await,
        (&Method::POST, ["organizations", o, "users", u, "access"]) => {
            member_access(env, req, o, u).await
        }
        (&Method::POST, ["organizations", o, "users", u, "role"]) => {
            member_role(env, req, o, u).await
        }
        (&Method::POST, ["organizations", o, "users", u, "assigned-roles"]) => {
            member_assigned_roles(env, req, o, u).await
        }
        (&Method::DELETE, ["organizations", o, "users", u]) => member_remove(env, req, o, u).await,
        (&Method::POST, ["organizations", o, "roles"]) => role_create(env, req, o).await,
        (&Method::GET, ["organizations", o, "roles"]) => role_list(env, req, o).await,
        (&Method::PUT, ["organizations", o, "roles", r]) => role_update(env, req, o, r).await,
        (&Method::DELETE, ["organizations", o, "roles", r]) => role_delete(env, req, o, r).await,
        (&Method::POST, ["organizations", o, "invitations"]) => {
            invitation_create(env, req, o).await
        }
        (&Method::GET, ["organizations", o, "invitations"]) => invitation_list(env, req, o).await,
        (&Method::PUT, ["organizations", o, "invitations", i]) => {
            invitation_update(env, req, o, i).await
        }
        (&Method::POST, ["organizations", o, "invitations", i, "cancel"]) => {
            invitation_cancel(env, req, o, i).await
        }
        _ => Err(web::no_route(req)),
    }
}

#[utoipa::path(get, path = "/api/health", operation_id = "health_live", tag = "health",
    responses((status = 200, description = "Alive")))]
fn health() -> Result<Response, ApiError> {
    web::json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/api/health/ready", operation_id = "health_ready", tag = "health",
    responses((status = 200, description = "The table answers: `{status: ok, info, error, details}`"),
        (status = 503, description = "The table does not answer: `{status: error, info, error, details}`")))]
async fn health_ready(env: &Env) -> Result<Response, ApiError> {
    use serde_json::json;
    match service::ready(env).await {
        Ok(()) => {
            let up = json!({"database": {"status": "up"}});
            web::json(
                StatusCode::OK,
                &json!({"status": "ok", "info": up, "error": {}, "details": up}),
            )
        }
        Err(message) => {
            let down = json!({"database": {"status": "down", "message": message}});
            web::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "error", "info": {}, "error": down, "details": down}),
            )
        }
    }
}

#[utoipa::path(get, path = "/api/config", operation_id = "config_get", tag = "config",
    responses((status = 200, body = DaytonaConfiguration)))]
fn config(env: &Env) -> Result<Response, ApiError> {
    web::json(StatusCode::OK, &service::config(env))
}

#[utoipa::path(get, path = "/api/users/me", operation_id = "user_me", tag = "users",
    responses((status = 200, body = User), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn user_me(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    web::json(StatusCode::OK, &service::user_me(env, &ctx).await?)
}

#[utoipa::path(get, path = "/api/users/account-providers", operation_id = "user_account_providers", tag = "users",
    responses((status = 200, body = Vec<AccountProvider>), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn account_providers(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    web::json(
        StatusCode::OK,
        &service::account_providers(env, &ctx).await?,
    )
}

#[utoipa::path(post, path = "/api/users", operation_id = "user_create", tag = "users",
    request_body = CreateUser,
    responses((status = 201, body = User), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn user_create(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    service::require_jwt(&ctx)?;
    let body: CreateUser = web::json_body(req)?;
    web::json(
        StatusCode::CREATED,
        &service::user_create(env, &ctx, body).await?,
    )
}

#[utoipa::path(get, path = "/api/users", operation_id = "user_list", tag = "users",
    responses((status = 200, body = Vec<User>), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn user_list(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    web::json(StatusCode::OK, &service::user_list(env, &ctx).await?)
}

#[utoipa::path(post, path = "/api/users/linked-accounts", operation_id = "user_link_account", tag = "users",
    request_body = CreateLinkedAccount,
    responses((status = 204, description = "Account linked"), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn link_account(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    service::require_jwt(&ctx)?;
    let body: CreateLinkedAccount = web::json_body(req)?;
    service::link_account(env, &ctx, body).await?;
    Ok(web::no_content())
}

#[utoipa::path(delete, path = "/api/users/linked-accounts/{provider}/{providerUserId}", operation_id = "user_unlink_account", tag = "users",
    params(("provider" = String, Path), ("providerUserId" = String, Path)),
    responses((status = 204, description = "Account unlinked"), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn unlink_account(
    env: &Env,
    req: &Request,
    provider: &str,
    provider_user: &str,
) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    service::unlink_account(env, &ctx, provider, provider_user).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/users/{id}/regenerate-key-pair", operation_id = "user_regenerate_key_pair", tag = "users",
    params(("id" = String, Path)),
    responses((status = 201, description = "Key pair regenerated (system admin); empty body"), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn regenerate_key_pair(env: &Env, req: &Request, id: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let id = user_id(id)?;
    service::regenerate_key_pair(env, &ctx, &id).await?;
    Ok(empty(StatusCode::CREATED))
}

#[utoipa::path(get, path = "/api/users/{id}", operation_id = "user_get", tag = "users",
    params(("id" = String, Path)),
    responses((status = 200, body = User), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn user_get(env: &Env, req: &Request, id: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let id = user_id(id)?;
    web::json(StatusCode::OK, &service::user_get(env, &ctx, &id).await?)
}

#[utoipa::path(post, path = "/api/organizations", operation_id = "organization_create", tag = "organizations",
    request_body = CreateOrganization,
    responses((status = 201, body = Organization), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn org_create(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    service::require_jwt(&ctx)?;
    let body: CreateOrganization = web::json_body(req)?;
    web::json(
        StatusCode::CREATED,
        &service::create(env, &ctx, body).await?,
    )
}

#[utoipa::path(get, path = "/api/organizations", operation_id = "organization_list", tag = "organizations",
    responses((status = 200, body = Vec<Organization>), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn org_list(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    web::json(StatusCode::OK, &service::list(env, &ctx).await?)
}

#[utoipa::path(get, path = "/api/organizations/{organizationId}", operation_id = "organization_get", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 200, body = Organization), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn org_get(env: &Env, req: &Request, o: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    web::json(StatusCode::OK, &service::get(env, &ctx, &o).await?)
}

#[utoipa::path(delete, path = "/api/organizations/{organizationId}", operation_id = "organization_delete", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 204, description = "Deleted with everything it owns"), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn org_delete(env: &Env, req: &Request, o: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    service::delete(env, &ctx, &o).await?;
    Ok(web::no_content())
}

#[utoipa::path(get, path = "/api/organizations/{organizationId}/usage", operation_id = "organization_usage", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 200, body = OrganizationUsageOverview), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn org_usage(env: &Env, req: &Request, o: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    web::json(StatusCode::OK, &service::usage(env, &ctx, &o).await?)
}

#[utoipa::path(patch, path = "/api/organizations/{organizationId}/quota", operation_id = "organization_update_quota", tag = "organizations",
    params(("organizationId" = String, Path)), request_body = UpdateOrganizationQuota,
    responses((status = 204, description = "Updated (system admin)"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn org_quota(env: &Env, req: &Request, o: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body: UpdateOrganizationQuota = web::json_body(req)?;
    service::update_quota(env, &ctx, &o, body).await?;
    Ok(web::no_content())
}

#[utoipa::path(patch, path = "/api/organizations/{organizationId}/quota/{regionId}", operation_id = "organization_update_region_quota", tag = "organizations",
    params(("organizationId" = String, Path), ("regionId" = String, Path)), request_body = UpdateOrganizationRegionQuota,
    responses((status = 204, description = "Updated (system admin)"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn org_region_quota(
    env: &Env,
    req: &Request,
    o: &str,
    region: &str,
) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body: UpdateOrganizationRegionQuota = web::json_body(req)?;
    service::update_region_quota(env, &ctx, &o, region, body).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/leave", operation_id = "organization_leave", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 204, description = "Left"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn org_leave(env: &Env, req: &Request, o: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    service::leave(env, &ctx, &o).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/suspend", operation_id = "organization_suspend", tag = "organizations",
    params(("organizationId" = String, Path)), request_body = OrganizationSuspension,
    responses((status = 204, description = "Suspended (system admin)"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn org_suspend(env: &Env, req: &Request, o: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body: OrganizationSuspension = web::json_body(req)?;
    service::suspend(env, &ctx, &o, body).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/unsuspend", operation_id = "organization_unsuspend", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 204, description = "Unsuspended (system admin)"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn org_unsuspend(env: &Env, req: &Request, o: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    service::unsuspend(env, &ctx, &o).await?;
    Ok(web::no_content())
}

#[utoipa::path(get, path = "/api/organizations/{organizationId}/users", operation_id = "organization_members", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 200, body = Vec<OrganizationUser>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn members_list(env: &Env, req: &Request, o: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    web::json(StatusCode::OK, &service::list_members(env, &ctx, &o).await?)
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/users/{userId}/access", operation_id = "organization_member_access", tag = "organizations",
    params(("organizationId" = String, Path), ("userId" = String, Path)), request_body = UpdateOrganizationMemberAccess,
    responses((status = 200, body = OrganizationUser), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn member_access(env: &Env, req: &Request, o: &str, u: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let (o, u) = (org_id(o)?, user_id(u)?);
    let body: UpdateOrganizationMemberAccess = web::json_body(req)?;
    let out = service::update_access(
        env,
        &ctx,
        &o,
        &u,
        Some(&body.role),
        Some(&body.assigned_role_ids),
    )
    .await?;
    web::json(StatusCode::OK, &out)
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/users/{userId}/role", operation_id = "organization_member_role", tag = "organizations",
    params(("organizationId" = String, Path), ("userId" = String, Path)), request_body = UpdateOrganizationMemberRole,
    responses((status = 200, body = OrganizationUser), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn member_role(env: &Env, req: &Request, o: &str, u: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let (o, u) = (org_id(o)?, user_id(u)?);
    let body: UpdateOrganizationMemberRole = web::json_body(req)?;
    let out = service::update_access(env, &ctx, &o, &u, Some(&body.role), None).await?;
    web::json(StatusCode::OK, &out)
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/users/{userId}/assigned-roles", operation_id = "organization_member_assigned_roles", tag = "organizations",
    params(("organizationId" = String, Path), ("userId" = String, Path)), request_body = UpdateAssignedOrganizationRoles,
    responses((status = 200, body = OrganizationUser), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn member_assigned_roles(
    env: &Env,
    req: &Request,
    o: &str,
    u: &str,
) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let (o, u) = (org_id(o)?, user_id(u)?);
    let body: UpdateAssignedOrganizationRoles = web::json_body(req)?;
    let out = service::update_access(env, &ctx, &o, &u, None, Some(&body.role_ids)).await?;
    web::json(StatusCode::OK, &out)
}

#[utoipa::path(delete, path = "/api/organizations/{organizationId}/users/{userId}", operation_id = "organization_member_remove", tag = "organizations",
    params(("organizationId" = String, Path), ("userId" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn member_remove(env: &Env, req: &Request, o: &str, u: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let (o, u) = (org_id(o)?, user_id(u)?);
    service::remove_member(env, &ctx, &o, &u).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/roles", operation_id = "organization_role_create", tag = "organizations",
    params(("organizationId" = String, Path)), request_body = CreateOrganizationRole,
    responses((status = 201, body = OrganizationRole), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn role_create(env: &Env, req: &Request, o: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body: CreateOrganizationRole = web::json_body(req)?;
    web::json(
        StatusCode::CREATED,
        &service::create_role(env, &ctx, &o, body).await?,
    )
}

#[utoipa::path(get, path = "/api/organizations/{organizationId}/roles", operation_id = "organization_role_list", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 200, body = Vec<OrganizationRole>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn role_list(env: &Env, req: &Request, o: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    web::json(StatusCode::OK, &service::list_roles(env, &ctx, &o).await?)
}

#[utoipa::path(put, path = "/api/organizations/{organizationId}/roles/{roleId}", operation_id = "organization_role_update", tag = "organizations",
    params(("organizationId" = String, Path), ("roleId" = String, Path)), request_body = CreateOrganizationRole,
    responses((status = 200, body = OrganizationRole), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn role_update(env: &Env, req: &Request, o: &str, r: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body: CreateOrganizationRole = web::json_body(req)?;
    web::json(
        StatusCode::OK,
        &service::update_role(env, &ctx, &o, r, body).await?,
    )
}

#[utoipa::path(delete, path = "/api/organizations/{organizationId}/roles/{roleId}", operation_id = "organization_role_delete", tag = "organizations",
    params(("organizationId" = String, Path), ("roleId" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn role_delete(env: &Env, req: &Request, o: &str, r: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    service::delete_role(env, &ctx, &o, r).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/invitations", operation_id = "organization_invitation_create", tag = "organizations",
    params(("organizationId" = String, Path)), request_body = CreateOrganizationInvitation,
    responses((status = 201, body = OrganizationInvitation), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn invitation_create(env: &Env, req: &Request, o: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body: CreateOrganizationInvitation = web::json_body(req)?;
    web::json(
        StatusCode::CREATED,
        &service::create_invitation(env, &ctx, &o, body).await?,
    )
}

#[utoipa::path(get, path = "/api/organizations/{organizationId}/invitations", operation_id = "organization_invitation_list", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 200, body = Vec<OrganizationInvitation>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn invitation_list(env: &Env, req: &Request, o: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    web::json(
        StatusCode::OK,
        &service::list_invitations(env, &ctx, &o).await?,
    )
}

#[utoipa::path(put, path = "/api/organizations/{organizationId}/invitations/{invitationId}", operation_id = "organization_invitation_update", tag = "organizations",
    params(("organizationId" = String, Path), ("invitationId" = String, Path)), request_body = UpdateOrganizationInvitation,
    responses((status = 200, body = OrganizationInvitation), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn invitation_update(
    env: &Env,
    req: &Request,
    o: &str,
    i: &str,
) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body: UpdateOrganizationInvitation = web::json_body(req)?;
    web::json(
        StatusCode::OK,
        &service::update_invitation(env, &ctx, &o, i, body).await?,
    )
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/invitations/{invitationId}/cancel", operation_id = "organization_invitation_cancel", tag = "organizations",
    params(("organizationId" = String, Path), ("invitationId" = String, Path)),
    responses((status = 204, description = "Cancelled"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn invitation_cancel(
    env: &Env,
    req: &Request,
    o: &str,
    i: &str,
) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    service::cancel_invitation(env, &ctx, &o, i).await?;
    Ok(web::no_content())
}

#[utoipa::path(get, path = "/api/organizations/invitations", operation_id = "my_invitations", tag = "organizations",
    responses((status = 200, body = Vec<OrganizationInvitation>), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn my_invitations(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    web::json(
        StatusCode::OK,
        &service::invitations_for_me(env, &ctx).await?,
    )
}

#[utoipa::path(get, path = "/api/organizations/invitations/count", operation_id = "my_invitation_count", tag = "organizations",
    responses((status = 200, body = f64), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn my_invitation_count(env: &Env, req: &Request) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    web::json(
        StatusCode::OK,
        &service::invitation_count_for_me(env, &ctx).await?,
    )
}

#[utoipa::path(post, path = "/api/organizations/invitations/{invitationId}/accept", operation_id = "my_invitation_accept", tag = "organizations",
    params(("invitationId" = String, Path)),
    responses((status = 200, body = OrganizationInvitation), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn invitation_accept(env: &Env, req: &Request, id: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    web::json(
        StatusCode::OK,
        &service::accept_invitation(env, &ctx, id).await?,
    )
}

#[utoipa::path(post, path = "/api/organizations/invitations/{invitationId}/decline", operation_id = "my_invitation_decline", tag = "organizations",
    params(("invitationId" = String, Path)),
    responses((status = 200, description = "Declined"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn invitation_decline(env: &Env, req: &Request, id: &str) -> Result<Response, ApiError> {
    let ctx = auth::authenticate(env, req).await?;
    service::decline_invitation(env, &ctx, id).await?;
    Ok(ok_empty())
}

/// The OpenAPI fragment of this function.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    health,
    health_ready,
    config,
    user_me,
    account_providers,
    user_create,
    user_list,
    link_account,
    unlink_account,
    user_get,
    regenerate_key_pair,
    org_create,
    org_list,
    my_invitations,
    my_invitation_count,
    invitation_accept,
    invitation_decline,
    org_get,
    org_delete,
    org_usage,
    org_quota,
    org_region_quota,
    org_leave,
    org_suspend,
    org_unsuspend,
    members_list,
    member_access,
    member_role,
    member_assigned_roles,
    member_remove,
    role_create,
    role_list,
    role_update,
    role_delete,
    invitation_create,
    invitation_list,
    invitation_update,
    invitation_cancel
))]
pub struct ApiDoc;
