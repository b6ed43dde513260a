//! Store records as the wire views of CONTRACT §8.

use std::collections::BTreeMap;

use cove_api_types::ApiError;
use cove_api_types::ids::OrganizationId;
use cove_api_types::orgs::{
    EPOCH, Organization, OrganizationInvitation, OrganizationRole, OrganizationUser, User,
};
use cove_api_types::permissions::Permission;
use cove_edge::Env;
use cove_edge::store_error::IntoApi;
use cove_store::invitations::{InviteRecord, InviteStatus};
use cove_store::memberships::MembershipRecord;
use cove_store::orgs::OrgRecord;
use cove_store::roles::RoleRecord;
use cove_store::users::UserRecord;

use super::{expired, role_str};

pub fn org_view(o: OrgRecord) -> Organization {
    let q = o.quota;
    Organization {
        id: o.id,
        name: o.name,
        created_by: o.created_by,
        personal: o.personal,
        created_at: o.created_at,
        updated_at: o.updated_at,
        suspended: o.suspended,
        suspended_at: o.suspended_at.unwrap_or_else(|| EPOCH.to_owned()),
        suspension_reason: o.suspension_reason.unwrap_or_default(),
        suspended_until: o.suspended_until.unwrap_or_else(|| EPOCH.to_owned()),
        suspension_cleanup_grace_period_hours: o
            .suspension_cleanup_grace_period_hours
            .unwrap_or(cove_store::orgs::defaults::SUSPENSION_CLEANUP_GRACE_PERIOD_HOURS),
        max_cpu_per_sandbox: q.max_cpu_per_sandbox,
        max_memory_per_sandbox: q.max_memory_per_sandbox,
        max_disk_per_sandbox: q.max_disk_per_sandbox,
        max_snapshot_size: q.max_snapshot_size,
        snapshot_quota: q.snapshot_quota,
        volume_quota: q.volume_quota,
        secret_quota: q.secret_quota,
        max_secrets_per_sandbox: q.max_secrets_per_sandbox,
        snapshot_deactivation_timeout_minutes: q.snapshot_deactivation_timeout_minutes,
        default_queue_timeout: None,
        sandbox_limited_network_egress: false,
        preview_warning_enabled: false,
        sso_enabled: false,
        scim_enabled: false,
        default_region_id: o.default_region_id,
        authenticated_rate_limit: None,
        sandbox_create_rate_limit: None,
        sandbox_lifecycle_rate_limit: None,
        authenticated_rate_limit_ttl_seconds: None,
        sandbox_create_rate_limit_ttl_seconds: None,
        sandbox_lifecycle_rate_limit_ttl_seconds: None,
        experimental_config: BTreeMap::new(),
        otel_config: None,
    }
}

pub fn role_view(r: RoleRecord) -> OrganizationRole {
    OrganizationRole {
        is_global: r.is_global(),
        permissions: r
            .permissions
            .iter()
            .filter_map(|p| Permission::parse(p))
            .collect(),
        id: r.id,
        name: r.name,
        description: r.description,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// The roles with these ids that still exist (deleted roles are skipped).
pub(super) async fn roles_by_id(
    env: &Env,
    org: &OrganizationId,
    ids: &[String],
) -> Result<Vec<OrganizationRole>, ApiError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = env.store.roles().get(org, id).await.api()? {
            out.push(role_view(r));
        }
    }
    Ok(out)
}

pub(super) async fn invite_view(
    env: &Env,
    r: InviteRecord,
) -> Result<OrganizationInvitation, ApiError> {
    let assigned_roles = roles_by_id(env, &r.organization_id, &r.assigned_role_ids).await?;
    let status = if r.status == InviteStatus::Pending && expired(&r.expires_at) {
        "expired"
    } else {
        r.status.as_str()
    };
    Ok(OrganizationInvitation {
        id: r.id,
        email: r.email,
        invited_by: r.invited_by,
        organization_id: r.organization_id,
        organization_name: r.organization_name,
        expires_at: r.expires_at,
        status: status.to_owned(),
        role: role_str(r.role).to_owned(),
        assigned_roles,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// A member with its user's name and email and its assigned roles.
pub(super) async fn member_view(
    env: &Env,
    m: MembershipRecord,
) -> Result<OrganizationUser, ApiError> {
    let user = env.store.users().get(&m.user_id).await.api()?;
    let assigned_roles = roles_by_id(env, &m.organization_id, &m.assigned_role_ids).await?;
    let (name, email) = user.map(|u| (u.name, u.email)).unwrap_or_default();
    Ok(OrganizationUser {
        user_id: m.user_id,
        organization_id: m.organization_id,
        name,
        email,
        role: role_str(m.role).to_owned(),
        assigned_roles,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub(super) fn user_view(u: UserRecord) -> User {
    User {
        id: u.id,
        name: u.name,
        email: u.email,
        email_verified: u.email_verified,
        public_keys: vec![],
        created_at: u.created_at,
    }
}
