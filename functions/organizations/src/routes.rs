//! HTTP routes: unpack, authenticate, call the service, answer.

use cove_api_types::ApiError;
use cove_api_types::ids::{OrganizationId, UserId};
use cove_api_types::orgs::{
    AccountProvider, CreateLinkedAccount, CreateOrganization, CreateOrganizationInvitation,
    CreateOrganizationRole, CreateUser, DaytonaConfiguration, Organization, OrganizationInvitation,
    OrganizationRole, OrganizationSuspension, OrganizationUsageOverview, OrganizationUser,
    UpdateAssignedOrganizationRoles, UpdateOrganizationInvitation, UpdateOrganizationMemberAccess,
    UpdateOrganizationMemberRole, UpdateOrganizationQuota, UpdateOrganizationRegionQuota, User,
};
use cove_edge::responses::Errors;
use cove_edge::router::Params;
use cove_edge::web::{self, Answer, JsonBody, Request, Response};
use cove_edge::{Env, auth};
use http::StatusCode;

use crate::service;

cove_edge::routes! {
    /// The OpenAPI fragment of this function.
    pub struct ApiDoc;
    pub fn router() -> Router<Env>;
    pub async fn handle;
    [
        health_live,
        health_ready,
        config_get,
        user_me,
        user_account_providers,
        user_create,
        user_list,
        user_link_account,
        user_unlink_account,
        user_regenerate_key_pair,
        user_get,
        organization_create,
        organization_list,
        organization_get,
        organization_delete,
        organization_usage,
        organization_update_quota,
        organization_update_region_quota,
        organization_leave,
        organization_suspend,
        organization_unsuspend,
        organization_members,
        organization_member_access,
        organization_member_role,
        organization_member_assigned_roles,
        organization_member_remove,
        organization_role_create,
        organization_role_list,
        organization_role_update,
        organization_role_delete,
        organization_invitation_create,
        organization_invitation_list,
        organization_invitation_update,
        organization_invitation_cancel,
        my_invitations,
        my_invitation_count,
        my_invitation_accept,
        my_invitation_decline,
    ]
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

#[utoipa::path(get, path = "/api/health", tag = "health",
    responses((status = 200, description = "Alive")))]
async fn health_live(_: &Env, _: &Request, _: &Params) -> Answer {
    web::json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/api/health/ready", tag = "health",
    responses((status = 200, description = "The table answers: `{status: ok, info, error, details}`"),
        (status = 503, description = "The table does not answer: `{status: error, info, error, details}`")))]
async fn health_ready(env: &Env, _: &Request, _: &Params) -> Answer {
    use serde_json::json;
    match service::system::ready(env).await {
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

#[utoipa::path(get, path = "/api/config", tag = "config",
    responses((status = 200, body = DaytonaConfiguration)))]
async fn config_get(env: &Env, _: &Request, _: &Params) -> Answer {
    web::json(StatusCode::OK, &service::system::config(env))
}

#[utoipa::path(get, path = "/api/users/me", tag = "users",
    responses((status = 200, body = User), Errors),
    security(("bearer" = [])))]
async fn user_me(env: &Env, req: &Request, _: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    web::json(StatusCode::OK, &service::users::user_me(env, &ctx).await?)
}

#[utoipa::path(get, path = "/api/users/account-providers", tag = "users",
    responses((status = 200, body = Vec<AccountProvider>), Errors),
    security(("bearer" = [])))]
async fn user_account_providers(env: &Env, req: &Request, _: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    web::json(
        StatusCode::OK,
        &service::users::account_providers(env, &ctx).await?,
    )
}

#[utoipa::path(post, path = "/api/users", tag = "users",
    request_body = CreateUser,
    responses((status = 201, body = User), Errors),
    security(("bearer" = [])))]
async fn user_create(env: &Env, req: &Request, _: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    let body = JsonBody::<CreateUser>::of(req);
    web::json(
        StatusCode::CREATED,
        &service::users::user_create(env, &ctx, body).await?,
    )
}

#[utoipa::path(get, path = "/api/users", tag = "users",
    responses((status = 200, body = Vec<User>), Errors),
    security(("bearer" = [])))]
async fn user_list(env: &Env, req: &Request, _: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    web::json(StatusCode::OK, &service::users::user_list(env, &ctx).await?)
}

#[utoipa::path(post, path = "/api/users/linked-accounts", tag = "users",
    request_body = CreateLinkedAccount,
    responses((status = 204, description = "Account linked"), Errors),
    security(("bearer" = [])))]
async fn user_link_account(env: &Env, req: &Request, _: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    service::users::link_account(env, &ctx, JsonBody::<CreateLinkedAccount>::of(req)).await?;
    Ok(web::no_content())
}

#[utoipa::path(delete, path = "/api/users/linked-accounts/{provider}/{providerUserId}", tag = "users",
    params(("provider" = String, Path), ("providerUserId" = String, Path)),
    responses((status = 204, description = "Account unlinked"), Errors),
    security(("bearer" = [])))]
async fn user_unlink_account(env: &Env, req: &Request, p: &Params) -> Answer {
    let provider = p.get("provider");
    let provider_user = p.get("providerUserId");
    let ctx = auth::authenticate(env, req).await?;
    service::users::unlink_account(env, &ctx, provider, provider_user).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/users/{id}/regenerate-key-pair", tag = "users",
    params(("id" = String, Path)),
    responses((status = 201, description = "Key pair regenerated (system admin); empty body"), Errors),
    security(("bearer" = [])))]
async fn user_regenerate_key_pair(env: &Env, req: &Request, p: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    service::users::regenerate_key_pair(env, &ctx, p.get("id")).await?;
    Ok(empty(StatusCode::CREATED))
}

#[utoipa::path(get, path = "/api/users/{id}", tag = "users",
    params(("id" = String, Path)),
    responses((status = 200, body = User), Errors),
    security(("bearer" = [])))]
async fn user_get(env: &Env, req: &Request, p: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    web::json(
        StatusCode::OK,
        &service::users::user_get(env, &ctx, p.get("id")).await?,
    )
}

#[utoipa::path(post, path = "/api/organizations", tag = "organizations",
    request_body = CreateOrganization,
    responses((status = 201, body = Organization), Errors),
    security(("bearer" = [])))]
async fn organization_create(env: &Env, req: &Request, _: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    let body = JsonBody::<CreateOrganization>::of(req);
    web::json(
        StatusCode::CREATED,
        &service::orgs::create(env, &ctx, body).await?,
    )
}

#[utoipa::path(get, path = "/api/organizations", tag = "organizations",
    responses((status = 200, body = Vec<Organization>), Errors),
    security(("bearer" = [])))]
async fn organization_list(env: &Env, req: &Request, _: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    web::json(StatusCode::OK, &service::orgs::list(env, &ctx).await?)
}

#[utoipa::path(get, path = "/api/organizations/{organizationId}", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 200, body = Organization), Errors),
    security(("bearer" = [])))]
async fn organization_get(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    web::json(StatusCode::OK, &service::orgs::get(env, &ctx, &o).await?)
}

#[utoipa::path(delete, path = "/api/organizations/{organizationId}", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 204, description = "Deleted with everything it owns"), Errors),
    security(("bearer" = [])))]
async fn organization_delete(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    service::orgs::delete(env, &ctx, &o).await?;
    Ok(web::no_content())
}

#[utoipa::path(get, path = "/api/organizations/{organizationId}/usage", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 200, body = OrganizationUsageOverview), Errors),
    security(("bearer" = [])))]
async fn organization_usage(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    web::json(StatusCode::OK, &service::orgs::usage(env, &ctx, &o).await?)
}

#[utoipa::path(patch, path = "/api/organizations/{organizationId}/quota", tag = "organizations",
    params(("organizationId" = String, Path)), request_body = UpdateOrganizationQuota,
    responses((status = 204, description = "Updated (system admin)"), Errors),
    security(("bearer" = [])))]
async fn organization_update_quota(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body = JsonBody::<UpdateOrganizationQuota>::of(req);
    service::admin::update_quota(env, &ctx, &o, body).await?;
    Ok(web::no_content())
}

#[utoipa::path(patch, path = "/api/organizations/{organizationId}/quota/{regionId}", tag = "organizations",
    params(("organizationId" = String, Path), ("regionId" = String, Path)), request_body = UpdateOrganizationRegionQuota,
    responses((status = 204, description = "Updated (system admin)"), Errors),
    security(("bearer" = [])))]
async fn organization_update_region_quota(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let region = p.get("regionId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body = JsonBody::<UpdateOrganizationRegionQuota>::of(req);
    service::admin::update_region_quota(env, &ctx, &o, region, body).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/leave", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 204, description = "Left"), Errors),
    security(("bearer" = [])))]
async fn organization_leave(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    service::members::leave(env, &ctx, &o).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/suspend", tag = "organizations",
    params(("organizationId" = String, Path)), request_body = OrganizationSuspension,
    responses((status = 204, description = "Suspended (system admin)"), Errors),
    security(("bearer" = [])))]
async fn organization_suspend(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body = JsonBody::<OrganizationSuspension>::of(req);
    service::admin::suspend(env, &ctx, &o, body).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/unsuspend", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 204, description = "Unsuspended (system admin)"), Errors),
    security(("bearer" = [])))]
async fn organization_unsuspend(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    service::admin::unsuspend(env, &ctx, &o).await?;
    Ok(web::no_content())
}

#[utoipa::path(get, path = "/api/organizations/{organizationId}/users", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 200, body = Vec<OrganizationUser>), Errors),
    security(("bearer" = [])))]
async fn organization_members(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    web::json(
        StatusCode::OK,
        &service::members::list_members(env, &ctx, &o).await?,
    )
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/users/{userId}/access", tag = "organizations",
    params(("organizationId" = String, Path), ("userId" = String, Path)), request_body = UpdateOrganizationMemberAccess,
    responses((status = 200, body = OrganizationUser), Errors),
    security(("bearer" = [])))]
async fn organization_member_access(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let u = p.get("userId");
    let ctx = auth::authenticate(env, req).await?;
    let (o, u) = (org_id(o)?, user_id(u)?);
    let body = JsonBody::<UpdateOrganizationMemberAccess>::of(req);
    let out = service::members::update_access(env, &ctx, &o, &u, body).await?;
    web::json(StatusCode::OK, &out)
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/users/{userId}/role", tag = "organizations",
    params(("organizationId" = String, Path), ("userId" = String, Path)), request_body = UpdateOrganizationMemberRole,
    responses((status = 200, body = OrganizationUser), Errors),
    security(("bearer" = [])))]
async fn organization_member_role(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let u = p.get("userId");
    let ctx = auth::authenticate(env, req).await?;
    let (o, u) = (org_id(o)?, user_id(u)?);
    let body = JsonBody::<UpdateOrganizationMemberRole>::of(req);
    let out = service::members::update_role(env, &ctx, &o, &u, body).await?;
    web::json(StatusCode::OK, &out)
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/users/{userId}/assigned-roles", tag = "organizations",
    params(("organizationId" = String, Path), ("userId" = String, Path)), request_body = UpdateAssignedOrganizationRoles,
    responses((status = 200, body = OrganizationUser), Errors),
    security(("bearer" = [])))]
async fn organization_member_assigned_roles(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let u = p.get("userId");
    let ctx = auth::authenticate(env, req).await?;
    let (o, u) = (org_id(o)?, user_id(u)?);
    let body = JsonBody::<UpdateAssignedOrganizationRoles>::of(req);
    let out = service::members::update_assigned_roles(env, &ctx, &o, &u, body).await?;
    web::json(StatusCode::OK, &out)
}

#[utoipa::path(delete, path = "/api/organizations/{organizationId}/users/{userId}", tag = "organizations",
    params(("organizationId" = String, Path), ("userId" = String, Path)),
    responses((status = 204, description = "Removed"), Errors),
    security(("bearer" = [])))]
async fn organization_member_remove(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let u = p.get("userId");
    let ctx = auth::authenticate(env, req).await?;
    let (o, u) = (org_id(o)?, user_id(u)?);
    service::members::remove_member(env, &ctx, &o, &u).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/roles", tag = "organizations",
    params(("organizationId" = String, Path)), request_body = CreateOrganizationRole,
    responses((status = 201, body = OrganizationRole), Errors),
    security(("bearer" = [])))]
async fn organization_role_create(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body = JsonBody::<CreateOrganizationRole>::of(req);
    web::json(
        StatusCode::CREATED,
        &service::roles::create_role(env, &ctx, &o, body).await?,
    )
}

#[utoipa::path(get, path = "/api/organizations/{organizationId}/roles", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 200, body = Vec<OrganizationRole>), Errors),
    security(("bearer" = [])))]
async fn organization_role_list(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    web::json(
        StatusCode::OK,
        &service::roles::list_roles(env, &ctx, &o).await?,
    )
}

#[utoipa::path(put, path = "/api/organizations/{organizationId}/roles/{roleId}", tag = "organizations",
    params(("organizationId" = String, Path), ("roleId" = String, Path)), request_body = CreateOrganizationRole,
    responses((status = 200, body = OrganizationRole), Errors),
    security(("bearer" = [])))]
async fn organization_role_update(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let r = p.get("roleId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body = JsonBody::<CreateOrganizationRole>::of(req);
    web::json(
        StatusCode::OK,
        &service::roles::update_role(env, &ctx, &o, r, body).await?,
    )
}

#[utoipa::path(delete, path = "/api/organizations/{organizationId}/roles/{roleId}", tag = "organizations",
    params(("organizationId" = String, Path), ("roleId" = String, Path)),
    responses((status = 204, description = "Deleted"), Errors),
    security(("bearer" = [])))]
async fn organization_role_delete(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let r = p.get("roleId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    service::roles::delete_role(env, &ctx, &o, r).await?;
    Ok(web::no_content())
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/invitations", tag = "organizations",
    params(("organizationId" = String, Path)), request_body = CreateOrganizationInvitation,
    responses((status = 201, body = OrganizationInvitation), Errors),
    security(("bearer" = [])))]
async fn organization_invitation_create(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body = JsonBody::<CreateOrganizationInvitation>::of(req);
    web::json(
        StatusCode::CREATED,
        &service::invitations::create_invitation(env, &ctx, &o, body).await?,
    )
}

#[utoipa::path(get, path = "/api/organizations/{organizationId}/invitations", tag = "organizations",
    params(("organizationId" = String, Path)),
    responses((status = 200, body = Vec<OrganizationInvitation>), Errors),
    security(("bearer" = [])))]
async fn organization_invitation_list(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    web::json(
        StatusCode::OK,
        &service::invitations::list_invitations(env, &ctx, &o).await?,
    )
}

#[utoipa::path(put, path = "/api/organizations/{organizationId}/invitations/{invitationId}", tag = "organizations",
    params(("organizationId" = String, Path), ("invitationId" = String, Path)), request_body = UpdateOrganizationInvitation,
    responses((status = 200, body = OrganizationInvitation), Errors),
    security(("bearer" = [])))]
async fn organization_invitation_update(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let i = p.get("invitationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    let body = JsonBody::<UpdateOrganizationInvitation>::of(req);
    web::json(
        StatusCode::OK,
        &service::invitations::update_invitation(env, &ctx, &o, i, body).await?,
    )
}

#[utoipa::path(post, path = "/api/organizations/{organizationId}/invitations/{invitationId}/cancel", tag = "organizations",
    params(("organizationId" = String, Path), ("invitationId" = String, Path)),
    responses((status = 204, description = "Cancelled"), Errors),
    security(("bearer" = [])))]
async fn organization_invitation_cancel(env: &Env, req: &Request, p: &Params) -> Answer {
    let o = p.get("organizationId");
    let i = p.get("invitationId");
    let ctx = auth::authenticate(env, req).await?;
    let o = org_id(o)?;
    service::invitations::cancel_invitation(env, &ctx, &o, i).await?;
    Ok(web::no_content())
}

#[utoipa::path(get, path = "/api/organizations/invitations", tag = "organizations",
    responses((status = 200, body = Vec<OrganizationInvitation>), Errors),
    security(("bearer" = [])))]
async fn my_invitations(env: &Env, req: &Request, _: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    web::json(
        StatusCode::OK,
        &service::invitations::invitations_for_me(env, &ctx).await?,
    )
}

#[utoipa::path(get, path = "/api/organizations/invitations/count", tag = "organizations",
    responses((status = 200, body = f64), Errors),
    security(("bearer" = [])))]
async fn my_invitation_count(env: &Env, req: &Request, _: &Params) -> Answer {
    let ctx = auth::authenticate(env, req).await?;
    web::json(
        StatusCode::OK,
        &service::invitations::invitation_count_for_me(env, &ctx).await?,
    )
}

#[utoipa::path(post, path = "/api/organizations/invitations/{invitationId}/accept", tag = "organizations",
    params(("invitationId" = String, Path)),
    responses((status = 200, body = OrganizationInvitation), Errors),
    security(("bearer" = [])))]
async fn my_invitation_accept(env: &Env, req: &Request, p: &Params) -> Answer {
    let id = p.get("invitationId");
    let ctx = auth::authenticate(env, req).await?;
    web::json(
        StatusCode::OK,
        &service::invitations::accept_invitation(env, &ctx, id).await?,
    )
}

#[utoipa::path(post, path = "/api/organizations/invitations/{invitationId}/decline", tag = "organizations",
    params(("invitationId" = String, Path)),
    responses((status = 200, description = "Declined"), Errors),
    security(("bearer" = [])))]
async fn my_invitation_decline(env: &Env, req: &Request, p: &Params) -> Answer {
    let id = p.get("invitationId");
    let ctx = auth::authenticate(env, req).await?;
    service::invitations::decline_invitation(env, &ctx, id).await?;
    Ok(ok_empty())
}
