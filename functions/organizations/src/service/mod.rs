//! Organization, member, role, invitation and user rules, independent of HTTP: one module per
//! resource.
//!
//! Every function takes the caller's [`AuthContext`] and states its [`Action`](cove_edge::Action)
//! through [`authorize`](cove_edge::authorize) before it reads anything the caller may not see
//! and before it parses the request body (a [`JsonBody`](cove_edge::web::JsonBody)), so a caller
//! who may not use a route gets 403/404 whatever the body. Nothing here checks roles by hand.
//!
//! | module | serves |
//! |---|---|
//! | [`orgs`] | create, list, get, delete, usage |
//! | [`admin`] | quota and suspension (system admins) |
//! | [`members`] | members' roles, removal, leaving |
//! | [`roles`] | the organization's roles |
//! | [`invitations`] | invitations, from the organization's and from the invitee's side |
//! | [`users`] | users, linked accounts, key pairs |
//! | [`system`] | `/config`, `/health/ready` |

pub mod admin;
pub mod invitations;
pub mod members;
pub mod orgs;
pub mod roles;
pub mod system;
pub mod users;
mod views;

use cove_api_types::ApiError;
use cove_api_types::ids::OrganizationId;
use cove_edge::store_error::IntoApi;
use cove_edge::{Action, AuthContext, Env, authorize};
use cove_store::memberships::OrgRole;
use cove_store::orgs::OrgRecord;

pub use views::{org_view, role_view};

const MAX_NAME_LEN: usize = 255;

/// Organizations and users routes take a user session (CONTRACT §1).
pub fn require_jwt(ctx: &AuthContext) -> Result<(), ApiError> {
    if ctx.is_jwt() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "This endpoint requires a user session (JWT), not an API key",
        ))
    }
}

/// The caller in the path's organization (403 if not a member).
pub async fn scoped(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
) -> Result<AuthContext, ApiError> {
    require_jwt(ctx)?;
    ctx.in_org(env, org).await
}

/// The caller in the path's organization, allowed to do `action` there (403 otherwise).
pub(crate) async fn scoped_for(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    action: Action,
) -> Result<AuthContext, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, action).await?;
    Ok(ctx)
}

/// The organization, unless it is gone or being deleted.
async fn load(env: &Env, org: &OrganizationId) -> Result<OrgRecord, ApiError> {
    env.store
        .orgs()
        .get(org)
        .await
        .api()?
        .filter(|o| !o.deleting)
        .ok_or_else(|| org_not_found(org))
}

fn validate_name(what: &str, name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::bad_request(format!("{what} must not be empty")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(format!(
            "{what} must be at most {MAX_NAME_LEN} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(name.to_owned())
}

fn parse_role(s: &str) -> Result<OrgRole, ApiError> {
    match s {
        "owner" => Ok(OrgRole::Owner),
        "member" => Ok(OrgRole::Member),
        _ => Err(ApiError::bad_request("role must be one of: owner, member")),
    }
}

fn role_str(r: OrgRole) -> &'static str {
    match r {
        OrgRole::Owner => "owner",
        OrgRole::Member => "member",
    }
}

fn org_not_found(id: &OrganizationId) -> ApiError {
    ApiError::not_found(format!("Organization with ID {id} not found"))
}

fn concurrent() -> ApiError {
    ApiError::conflict("The resource was changed concurrently; retry")
}

/// Whether an RFC 3339 time is past (an unreadable one counts as past).
fn expired(at: &str) -> bool {
    cove_api_types::time::parse_rfc3339(at).is_none_or(|t| t <= time::OffsetDateTime::now_utc())
}
