//! Authorization, in one place: every handler states the [`Action`] it performs and calls
//! [`authorize`] before touching data.
//!
//! * Owners may do everything in their organization; members may read it and do what the
//!   permissions of their assigned roles allow; API keys hold exactly their permissions.
//! * Organization administration (members, roles, invitations, deletion) needs an owner.
//! * A caller can never grant a permission it does not hold ([`Action::Grant`]).
//! * System admins may act on any organization's quota and suspension ([`Action::SystemAdmin`]).
//! * A suspended organization may not create or start resources ([`Action::Create`]): 403 with the
//!   suspension reason. Reads still work.

use std::collections::BTreeSet;

use cove_api_types::ApiError;
use cove_api_types::permissions::Permission;

use crate::store_error::IntoApi;
use crate::{AuthContext, Env};

/// What a request is about to do in the caller's organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read the organization, its members, roles, invitations and usage (any member).
    OrgRead,
    /// Change or delete the organization (owner).
    OrgWrite,
    /// Change roles of members or remove them (owner).
    ManageMembers,
    /// Create, update or delete roles (owner).
    ManageRoles,
    /// Create, update or cancel invitations (owner).
    ManageInvitations,
    /// Hand out these permissions (to a role, a member or an API key): the caller must hold each.
    Grant(BTreeSet<Permission>),
    /// Platform administration: quota, suspension, user management.
    SystemAdmin,
    /// Use a permission without creating anything (delete, read).
    Use(Permission),
    /// Create or start a resource that needs this permission: refused in a suspended organization.
    Create(Permission),
}

fn owner_only(ctx: &AuthContext, what: &str) -> Result<(), ApiError> {
    if ctx.is_owner() && ctx.is_jwt() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "Only organization owners can {what}"
        )))
    }
}

/// Allows or refuses `action` for `ctx` (403 with a reason when refused).
pub async fn authorize(env: &Env, ctx: &AuthContext, action: Action) -> Result<(), ApiError> {
    match action {
        Action::OrgRead => Ok(()),
        Action::OrgWrite => owner_only(ctx, "change the organization"),
        Action::ManageMembers => owner_only(ctx, "manage members"),
        Action::ManageRoles => owner_only(ctx, "manage roles"),
        Action::ManageInvitations => owner_only(ctx, "manage invitations"),
        Action::Grant(perms) => {
            let missing: Vec<&str> = perms
                .iter()
                .filter(|p| !ctx.has(**p))
                .map(|p| p.as_str())
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(ApiError::forbidden(format!(
                    "You cannot grant permissions you do not hold: {}",
                    missing.join(", ")
                )))
            }
        }
        Action::SystemAdmin => {
            if ctx.is_system_admin(env).await? {
                Ok(())
            } else {
                Err(ApiError::forbidden("This action requires a system admin"))
            }
        }
        Action::Use(p) => require(ctx, p),
        Action::Create(p) => {
            require(ctx, p)?;
            not_suspended(env, ctx).await
        }
    }
}

fn require(ctx: &AuthContext, p: Permission) -> Result<(), ApiError> {
    if ctx.has(p) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "Missing required permission: {p}"
        )))
    }
}

/// 403 with the suspension reason when the caller's organization is suspended (and the
/// suspension has not run out).
pub async fn not_suspended(env: &Env, ctx: &AuthContext) -> Result<(), ApiError> {
    let Some(org) = env.store.orgs().get(&ctx.organization_id).await.api()? else {
        return Err(ApiError::forbidden("Invalid authentication context"));
    };
    if !org.suspended {
        return Ok(());
    }
    let now = time::OffsetDateTime::now_utc();
    let expired = org
        .suspended_until
        .as_deref()
        .and_then(cove_api_types::time::parse_rfc3339)
        .is_some_and(|until| until <= now);
    if expired {
        return Ok(());
    }
    let reason = org.suspension_reason.unwrap_or_default();
    Err(ApiError::forbidden(if reason.is_empty() {
        "Organization is suspended".to_owned()
    } else {
        format!("Organization is suspended: {reason}")
    }))
}
