//! Members: list, change their role and assigned roles, remove them, leave.

use cove_api_types::ApiError;
use cove_api_types::ids::{OrganizationId, UserId};
use cove_api_types::orgs::{
    OrganizationUser, UpdateAssignedOrganizationRoles, UpdateOrganizationMemberAccess,
    UpdateOrganizationMemberRole,
};
use cove_api_types::time::now_rfc3339;
use cove_edge::store_error::IntoApi;
use cove_edge::web::JsonBody;
use cove_edge::{Action, AuthContext, Env, authorize};
use cove_store::StoreError;
use cove_store::memberships::{MembershipRecord, OrgRole};
use cove_store::orgs::OrgRecord;

use super::roles::resolve_roles;
use super::views::member_view;
use super::{concurrent, load, parse_role, scoped, scoped_for};

pub async fn list_members(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
) -> Result<Vec<OrganizationUser>, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::OrgRead).await?;
    let mut out = Vec::new();
    for m in env.store.memberships().list_for_org(org).await.api()? {
        out.push(member_view(env, m).await?);
    }
    Ok(out)
}

/// `POST .../users/{userId}/access`: role and assigned roles.
pub async fn update_access(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    user: &UserId,
    body: JsonBody<'_, UpdateOrganizationMemberAccess>,
) -> Result<OrganizationUser, ApiError> {
    let ctx = scoped_for(env, ctx, org, Action::ManageMembers).await?;
    let b = body.parse()?;
    let change = Access {
        role: Some(&b.role),
        assigned: Some(&b.assigned_role_ids),
    };
    change_access(env, &ctx, org, user, change).await
}

/// `POST .../users/{userId}/role`: the role only.
pub async fn update_role(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    user: &UserId,
    body: JsonBody<'_, UpdateOrganizationMemberRole>,
) -> Result<OrganizationUser, ApiError> {
    let ctx = scoped_for(env, ctx, org, Action::ManageMembers).await?;
    let b = body.parse()?;
    let change = Access {
        role: Some(&b.role),
        assigned: None,
    };
    change_access(env, &ctx, org, user, change).await
}

/// `POST .../users/{userId}/assigned-roles`: the assigned roles only.
pub async fn update_assigned_roles(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    user: &UserId,
    body: JsonBody<'_, UpdateAssignedOrganizationRoles>,
) -> Result<OrganizationUser, ApiError> {
    let ctx = scoped_for(env, ctx, org, Action::ManageMembers).await?;
    let b = body.parse()?;
    let change = Access {
        role: None,
        assigned: Some(&b.role_ids),
    };
    change_access(env, &ctx, org, user, change).await
}

/// What an access change sets; `None` keeps the current value.
struct Access<'a> {
    role: Option<&'a str>,
    assigned: Option<&'a [String]>,
}

/// Sets a member's role and assigned roles; `ctx` may manage members. The last owner stays.
async fn change_access(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    user: &UserId,
    change: Access<'_>,
) -> Result<OrganizationUser, ApiError> {
    let role = change.role.map(parse_role).transpose()?;
    let resolved = match change.assigned {
        Some(ids) => Some(resolve_roles(env, org, ids).await?),
        None => None,
    };
    if let Some((_, perms)) = &resolved {
        authorize(env, ctx, Action::Grant(perms.clone())).await?;
    }
    let mut rec = member(env, org, user).await?;
    let demotes_owner = rec.role == OrgRole::Owner && role == Some(OrgRole::Member);
    let keep = if demotes_owner {
        Some(other_owner(env, org, user).await?.ok_or_else(last_owner)?)
    } else {
        None
    };
    if let Some(r) = role {
        rec.role = r;
    }
    if let Some((ids, _)) = resolved {
        rec.assigned_role_ids = ids;
    }
    rec.version += 1;
    rec.updated_at = now_rfc3339();
    match env.store.memberships().update(&rec, keep.as_ref()).await {
        Ok(()) => member_view(env, rec).await,
        Err(StoreError::Conflict { .. }) => Err(concurrent()),
        Err(e) => Err(e.api()),
    }
}

/// Another owner of the organization than `except`, if there is one.
async fn other_owner(
    env: &Env,
    org: &OrganizationId,
    except: &UserId,
) -> Result<Option<UserId>, ApiError> {
    Ok(env
        .store
        .memberships()
        .list_for_org(org)
        .await
        .api()?
        .into_iter()
        .find(|m| m.role == OrgRole::Owner && m.user_id != *except)
        .map(|m| m.user_id))
}

fn last_owner() -> ApiError {
    ApiError::forbidden("The organization must have at least one owner")
}

fn not_a_member(user: &UserId) -> ApiError {
    ApiError::not_found(format!("User with ID {user} is not a member"))
}

async fn member(
    env: &Env,
    org: &OrganizationId,
    user: &UserId,
) -> Result<MembershipRecord, ApiError> {
    env.store
        .memberships()
        .get(org, user)
        .await
        .api()?
        .ok_or_else(|| not_a_member(user))
}

/// Removes `user` from the organization, with its API keys there. The last owner stays.
async fn remove(
    env: &Env,
    org: &OrganizationId,
    rec: &OrgRecord,
    user: &UserId,
) -> Result<(), ApiError> {
    let m = member(env, org, user).await?;
    if rec.personal && m.role == OrgRole::Owner {
        return Err(ApiError::forbidden(
            "The owner cannot leave or be removed from a personal organization",
        ));
    }
    let keep = if m.role == OrgRole::Owner {
        Some(other_owner(env, org, user).await?.ok_or_else(last_owner)?)
    } else {
        None
    };
    match env
        .store
        .memberships()
        .delete(org, user, keep.as_ref())
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound { .. }) => return Err(not_a_member(user)),
        Err(StoreError::Conflict { .. }) => return Err(concurrent()),
        Err(e) => return Err(e.api()),
    }
    for k in env.store.api_keys().list(org, Some(user)).await.api()? {
        match env.store.api_keys().delete(org, user, &k.name).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.api()),
        }
    }
    tracing::info!(org = %org, user = %user, "member removed");
    Ok(())
}

/// Owners may remove anyone; anyone may remove themselves (see [`leave`]).
pub async fn remove_member(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    user: &UserId,
) -> Result<(), ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    if *user != ctx.user_id {
        authorize(env, &ctx, Action::ManageMembers).await?;
    }
    let rec = load(env, org).await?;
    remove(env, org, &rec, user).await
}

pub async fn leave(env: &Env, ctx: &AuthContext, org: &OrganizationId) -> Result<(), ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    let rec = load(env, org).await?;
    if rec.personal {
        return Err(ApiError::forbidden(
            "A personal organization cannot be left",
        ));
    }
    remove(env, org, &rec, &ctx.user_id).await
}
