//! Invitations: made, changed and cancelled by the organization's owners; listed, accepted and
//! declined by the invitee, who is matched on the verified email address of its token
//! ([`AuthContext::verified_email`]: 403 without one).

use cove_api_types::ApiError;
use cove_api_types::ids::OrganizationId;
use cove_api_types::orgs::{
    CreateOrganizationInvitation, OrganizationInvitation, UpdateOrganizationInvitation,
};
use cove_api_types::time::{format_rfc3339, now_rfc3339, parse_rfc3339};
use cove_edge::store_error::IntoApi;
use cove_edge::web::JsonBody;
use cove_edge::{Action, AuthContext, Env, authorize};
use cove_store::StoreError;
use cove_store::invitations::{InviteRecord, InviteStatus};
use cove_store::memberships::MembershipRecord;
use cove_store::orgs::OrgRecord;

use super::roles::resolve_roles;
use super::views::invite_view;
use super::{concurrent, expired, load, parse_role, require_jwt, scoped_for};

/// How long an invitation is valid when the request does not say.
const INVITATION_TTL_DAYS: i64 = 7;

pub(super) fn validate_email(email: &str) -> Result<String, ApiError> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#');
    if ok {
        Ok(e)
    } else {
        Err(ApiError::bad_request("email must be a valid email address"))
    }
}

fn expiry(s: Option<&str>) -> Result<String, ApiError> {
    match s.filter(|s| !s.is_empty()) {
        None => Ok(format_rfc3339(
            time::OffsetDateTime::now_utc() + time::Duration::days(INVITATION_TTL_DAYS),
        )),
        Some(s) => {
            let t = parse_rfc3339(s)
                .ok_or_else(|| ApiError::bad_request("expiresAt must be an ISO-8601 date"))?;
            if t <= time::OffsetDateTime::now_utc() {
                return Err(ApiError::bad_request("expiresAt must be in the future"));
            }
            Ok(format_rfc3339(t))
        }
    }
}

fn invitation_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Invitation with ID {id} not found"))
}

fn invitation_id(id: &str) -> Result<(), ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| ApiError::bad_request(format!("Invalid invitation id: {id}")))
}

fn no_longer_pending() -> ApiError {
    ApiError::conflict("The invitation is no longer pending")
}

pub async fn create_invitation(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    body: JsonBody<'_, CreateOrganizationInvitation>,
) -> Result<OrganizationInvitation, ApiError> {
    let ctx = scoped_for(env, ctx, org, Action::ManageInvitations).await?;
    let body = body.parse()?;
    let email = validate_email(&body.email)?;
    let role = parse_role(&body.role)?;
    let (assigned, perms) = resolve_roles(env, org, &body.assigned_role_ids).await?;
    authorize(env, &ctx, Action::Grant(perms)).await?;
    let expires_at = expiry(body.expires_at.as_deref())?;
    let rec = load(env, org).await?;
    if rec.personal {
        return Err(ApiError::forbidden(
            "Nobody can be invited to a personal organization",
        ));
    }
    refuse_second_pending(env, org, &email).await?;
    let mut inv = new_invitation(env, &ctx, rec, email, expires_at).await?;
    inv.role = role;
    inv.assigned_role_ids = assigned;
    match env.store.invitations().create(&inv).await {
        Ok(()) => invite_view(env, inv).await,
        Err(StoreError::Conflict { .. }) => {
            // The organization went away (or started being deleted) meanwhile.
            load(env, org).await?;
            Err(concurrent())
        }
        Err(e) => Err(e.api()),
    }
}

/// 409 when `email` already has a pending, unexpired invitation to `org`.
async fn refuse_second_pending(
    env: &Env,
    org: &OrganizationId,
    email: &str,
) -> Result<(), ApiError> {
    let pending = env
        .store
        .invitations()
        .list(org)
        .await
        .api()?
        .into_iter()
        .any(|i| i.email == email && i.status == InviteStatus::Pending && !expired(&i.expires_at));
    if pending {
        return Err(ApiError::conflict(format!(
            "User with email {email} already has a pending invitation"
        )));
    }
    Ok(())
}

/// A pending invitation to `org` from the caller, as a member without assigned roles.
async fn new_invitation(
    env: &Env,
    ctx: &AuthContext,
    org: OrgRecord,
    email: String,
    expires_at: String,
) -> Result<InviteRecord, ApiError> {
    let inviter = env.store.users().get(&ctx.user_id).await.api()?;
    let now = now_rfc3339();
    Ok(InviteRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: org.id,
        organization_name: org.name,
        email,
        invited_by: inviter
            .map(|u| u.email)
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| ctx.user_id.to_string()),
        role: cove_store::memberships::OrgRole::Member,
        assigned_role_ids: Vec::new(),
        status: InviteStatus::Pending,
        expires_at,
        created_at: now.clone(),
        updated_at: now,
        version: 1,
    })
}

/// Pending, unexpired invitations of the organization.
pub async fn list_invitations(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
) -> Result<Vec<OrganizationInvitation>, ApiError> {
    scoped_for(env, ctx, org, Action::ManageInvitations).await?;
    let mut out = Vec::new();
    for i in env.store.invitations().list(org).await.api()? {
        if i.status == InviteStatus::Pending && !expired(&i.expires_at) {
            out.push(invite_view(env, i).await?);
        }
    }
    Ok(out)
}

async fn pending_invitation(
    env: &Env,
    org: &OrganizationId,
    id: &str,
) -> Result<InviteRecord, ApiError> {
    invitation_id(id)?;
    env.store
        .invitations()
        .get(org, id)
        .await
        .api()?
        .filter(|i| i.status == InviteStatus::Pending)
        .ok_or_else(|| invitation_not_found(id))
}

pub async fn update_invitation(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    id: &str,
    body: JsonBody<'_, UpdateOrganizationInvitation>,
) -> Result<OrganizationInvitation, ApiError> {
    let ctx = scoped_for(env, ctx, org, Action::ManageInvitations).await?;
    let body = body.parse()?;
    let role = parse_role(&body.role)?;
    let (assigned, perms) = resolve_roles(env, org, &body.assigned_role_ids).await?;
    authorize(env, &ctx, Action::Grant(perms)).await?;
    let mut rec = pending_invitation(env, org, id).await?;
    if let Some(e) = body.expires_at.as_deref() {
        rec.expires_at = expiry(Some(e))?;
    }
    rec.role = role;
    rec.assigned_role_ids = assigned;
    rec.version += 1;
    rec.updated_at = now_rfc3339();
    match env.store.invitations().update(&rec).await {
        Ok(()) => invite_view(env, rec).await,
        Err(StoreError::Conflict { .. }) => Err(concurrent()),
        Err(e) => Err(e.api()),
    }
}

pub async fn cancel_invitation(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    id: &str,
) -> Result<(), ApiError> {
    scoped_for(env, ctx, org, Action::ManageInvitations).await?;
    let rec = pending_invitation(env, org, id).await?;
    set_status(env, &rec, InviteStatus::Cancelled).await
}

async fn set_status(env: &Env, rec: &InviteRecord, status: InviteStatus) -> Result<(), ApiError> {
    match env
        .store
        .invitations()
        .set_status(rec, status, &now_rfc3339())
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict { .. }) => Err(no_longer_pending()),
        Err(e) => Err(e.api()),
    }
}

// ---------------------------------------------------------------- the invitee's side

/// The caller's verified email address (a user session only).
fn my_email(ctx: &AuthContext) -> Result<&str, ApiError> {
    require_jwt(ctx)?;
    ctx.verified_email()
}

/// The caller's pending, unexpired invitations.
async fn my_invitations(env: &Env, ctx: &AuthContext) -> Result<Vec<InviteRecord>, ApiError> {
    let email = my_email(ctx)?;
    Ok(env
        .store
        .invitations()
        .list_for_email(email)
        .await
        .api()?
        .into_iter()
        .filter(|i| i.status == InviteStatus::Pending && !expired(&i.expires_at))
        .collect())
}

pub async fn invitations_for_me(
    env: &Env,
    ctx: &AuthContext,
) -> Result<Vec<OrganizationInvitation>, ApiError> {
    let mut out = Vec::new();
    for i in my_invitations(env, ctx).await? {
        out.push(invite_view(env, i).await?);
    }
    Ok(out)
}

pub async fn invitation_count_for_me(env: &Env, ctx: &AuthContext) -> Result<usize, ApiError> {
    Ok(my_invitations(env, ctx).await?.len())
}

/// The caller's invitation `id`, read strongly consistently from its organization's partition.
async fn my_invitation(env: &Env, ctx: &AuthContext, id: &str) -> Result<InviteRecord, ApiError> {
    let email = my_email(ctx)?;
    invitation_id(id)?;
    let found = env
        .store
        .invitations()
        .list_for_email(email)
        .await
        .api()?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| invitation_not_found(id))?;
    let rec = env
        .store
        .invitations()
        .get(&found.organization_id, id)
        .await
        .api()?
        .filter(|i| i.status == InviteStatus::Pending && i.email == email)
        .ok_or_else(|| invitation_not_found(id))?;
    if expired(&rec.expires_at) {
        return Err(ApiError::bad_request("The invitation has expired"));
    }
    Ok(rec)
}

pub async fn accept_invitation(
    env: &Env,
    ctx: &AuthContext,
    id: &str,
) -> Result<OrganizationInvitation, ApiError> {
    let mut rec = my_invitation(env, ctx, id).await?;
    let now = now_rfc3339();
    let member = MembershipRecord {
        organization_id: rec.organization_id.clone(),
        user_id: ctx.user_id.clone(),
        role: rec.role,
        assigned_role_ids: rec.assigned_role_ids.clone(),
        created_at: now.clone(),
        updated_at: now.clone(),
        version: 1,
    };
    match env.store.invitations().accept(&rec, &member, &now).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => return Err(accept_conflict(env, ctx, id, &rec).await),
        Err(e) => return Err(e.api()),
    }
    tracing::info!(org = %rec.organization_id, user = %ctx.user_id, invitation = id, "invitation accepted");
    rec.status = InviteStatus::Accepted;
    rec.updated_at = now;
    rec.version += 1;
    invite_view(env, rec).await
}

/// Which condition of the accept transaction failed.
async fn accept_conflict(env: &Env, ctx: &AuthContext, id: &str, rec: &InviteRecord) -> ApiError {
    let org = &rec.organization_id;
    let diagnose = async {
        let member = env.store.memberships().get(org, &ctx.user_id).await?;
        let pending = env
            .store
            .invitations()
            .get(org, id)
            .await?
            .is_some_and(|i| i.status == InviteStatus::Pending);
        let org_exists = env.store.orgs().get(org).await?.is_some();
        Ok::<_, StoreError>((member.is_some() && pending, org_exists))
    };
    match diagnose.await {
        Ok((true, _)) => ApiError::conflict("You are already a member of this organization"),
        Ok((_, false)) => invitation_not_found(id),
        Ok(_) => no_longer_pending(),
        Err(e) => e.api(),
    }
}

pub async fn decline_invitation(env: &Env, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
    let rec = my_invitation(env, ctx, id).await?;
    set_status(env, &rec, InviteStatus::Declined).await
}
