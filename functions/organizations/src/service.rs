//! Organization, member, role, invitation and user rules, independent of HTTP.
//!
//! Every function takes the caller's [`AuthContext`] and states its [`Action`] through
//! [`authorize`]; nothing here checks roles by hand.

use std::collections::{BTreeMap, BTreeSet};

use cove_api_types::ApiError;
use cove_api_types::ids::{OrganizationId, UserId};
use cove_api_types::orgs::{
    AccountProvider, CreateLinkedAccount, CreateOrganization, CreateOrganizationInvitation,
    CreateOrganizationRole, DaytonaConfiguration, EPOCH, OidcConfig, Organization,
    OrganizationInvitation, OrganizationRole, OrganizationSuspension, OrganizationUsageOverview,
    OrganizationUser, RegionUsageOverview, UpdateOrganizationInvitation, UpdateOrganizationQuota,
    UpdateOrganizationRegionQuota, User,
};
use cove_api_types::permissions::Permission;
use cove_api_types::time::{format_rfc3339, now_rfc3339, parse_rfc3339};
use cove_edge::store_error::IntoApi;
use cove_edge::{Action, AuthContext, Env, authorize};
use cove_store::StoreError;
use cove_store::invitations::{InviteRecord, InviteStatus};
use cove_store::memberships::{MembershipRecord, OrgRole};
use cove_store::orgs::OrgRecord;
use cove_store::roles::RoleRecord;
use cove_store::users::{LinkedAccountRecord, UserRecord};

const MAX_NAME_LEN: usize = 255;
/// How long an invitation is valid when the request does not say.
const INVITATION_TTL_DAYS: i64 = 7;

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

// ---------------------------------------------------------------- views

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
async fn roles_by_id(
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

/// Checks that every role id exists in the organization; returns the ids deduplicated and the
/// permissions they carry.
async fn resolve_roles(
    env: &Env,
    org: &OrganizationId,
    ids: &[String],
) -> Result<(Vec<String>, BTreeSet<Permission>), ApiError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut perms = BTreeSet::new();
    for id in ids {
        if !seen.insert(id.clone()) {
            continue;
        }
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ApiError::bad_request(format!("Invalid role id: {id}")));
        }
        let role = env
            .store
            .roles()
            .get(org, id)
            .await
            .api()?
            .ok_or_else(|| ApiError::bad_request(format!("Role with ID {id} not found")))?;
        perms.extend(role.permissions.iter().filter_map(|p| Permission::parse(p)));
        out.push(id.clone());
    }
    Ok((out, perms))
}

async fn invite_view(env: &Env, r: InviteRecord) -> Result<OrganizationInvitation, ApiError> {
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

fn expired(at: &str) -> bool {
    parse_rfc3339(at).is_none_or(|t| t <= time::OffsetDateTime::now_utc())
}

fn user_view(u: UserRecord) -> User {
    User {
        id: u.id,
        name: u.name,
        email: u.email,
        email_verified: u.email_verified,
        public_keys: vec![],
        created_at: u.created_at,
    }
}

// ---------------------------------------------------------------- organizations

pub async fn create(
    env: &Env,
    ctx: &AuthContext,
    body: CreateOrganization,
) -> Result<Organization, ApiError> {
    require_jwt(ctx)?;
    let name = validate_name("name", &body.name)?;
    let now = now_rfc3339();
    let mut org = OrgRecord::new(name, ctx.user_id.clone(), false, now.clone());
    org.default_region_id = body.default_region_id.filter(|r| !r.trim().is_empty());
    let owner = MembershipRecord {
        organization_id: org.id.clone(),
        user_id: ctx.user_id.clone(),
        role: OrgRole::Owner,
        assigned_role_ids: vec![],
        created_at: now.clone(),
        updated_at: now,
        version: 1,
    };
    env.store
        .orgs()
        .create_with_owner(&org, &owner)
        .await
        .api()?;
    tracing::info!(org = %org.id, user = %ctx.user_id, "organization created");
    Ok(org_view(org))
}

/// The organizations the caller is a member of, oldest first.
pub async fn list(env: &Env, ctx: &AuthContext) -> Result<Vec<Organization>, ApiError> {
    require_jwt(ctx)?;
    let mut out = Vec::new();
    for m in env
        .store
        .memberships()
        .list_for_user(&ctx.user_id)
        .await
        .api()?
    {
        if let Some(o) = env.store.orgs().get(&m.organization_id).await.api()?
            && !o.deleting
        {
            out.push(org_view(o));
        }
    }
    out.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
    Ok(out)
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

pub async fn get(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
) -> Result<Organization, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::OrgRead).await?;
    Ok(org_view(load(env, org).await?))
}

pub async fn delete(env: &Env, ctx: &AuthContext, org: &OrganizationId) -> Result<(), ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::OrgWrite).await?;
    let rec = load(env, org).await?;
    if rec.personal {
        return Err(ApiError::forbidden(
            "A personal organization cannot be deleted",
        ));
    }
    // Sandboxes live outside the organization's partition and run on runners: they must be
    // deleted first, or they would be left running with nobody able to reach them. The store
    // marks the organization first and then checks (strongly consistently) that none is left, so
    // none can be created behind the check.
    match env.store.orgs().delete(org).await {
        Ok(()) => {}
        Err(StoreError::NotFound { .. }) => return Err(org_not_found(org)),
        Err(e) => return Err(e.api()),
    }
    tracing::info!(org = %org, user = %ctx.user_id, "organization deleted");
    Ok(())
}

pub async fn usage(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
) -> Result<OrganizationUsageOverview, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::OrgRead).await?;
    let q = load(env, org).await?.quota;
    // Sandbox usage: the counters the sandbox repository moves with every state change (compute
    // and disk state sets of CONTRACT §8). Snapshots and volumes are not stored yet.
    let used = env.store.sandboxes().usage(org).await.api()?;
    Ok(OrganizationUsageOverview {
        region_usage: vec![RegionUsageOverview {
            region_id: "us".into(),
            sandbox_class: "container".into(),
            total_cpu_quota: q.total_cpu_quota,
            current_cpu_usage: used.cpu,
            total_memory_quota: q.total_memory_quota,
            current_memory_usage: used.memory,
            total_disk_quota: q.total_disk_quota,
            current_disk_usage: used.disk,
            total_gpu_quota: 0,
            current_gpu_usage: 0,
            allowed_gpu_types: None,
            max_cpu_per_sandbox: Some(q.max_cpu_per_sandbox),
            max_memory_per_sandbox: Some(q.max_memory_per_sandbox),
            max_disk_per_sandbox: Some(q.max_disk_per_sandbox),
            max_disk_per_non_ephemeral_sandbox: None,
            max_cpu_per_gpu: None,
            max_memory_per_gpu: None,
            max_disk_per_gpu: None,
        }],
        total_snapshot_quota: q.snapshot_quota,
        current_snapshot_usage: 0,
        total_volume_quota: q.volume_quota,
        current_volume_usage: 0,
    })
}

/// Applies `change` to the organization with optimistic concurrency (system admin routes).
async fn admin_update(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    change: impl FnOnce(&mut OrgRecord) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    require_jwt(ctx)?;
    authorize(env, ctx, Action::SystemAdmin).await?;
    let mut rec = load(env, org).await?;
    change(&mut rec)?;
    rec.version += 1;
    rec.updated_at = now_rfc3339();
    match env.store.orgs().update(&rec).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict { .. }) => Err(concurrent()),
        Err(e) => Err(e.api()),
    }
}

pub async fn update_quota(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    body: UpdateOrganizationQuota,
) -> Result<(), ApiError> {
    admin_update(env, ctx, org, |rec| apply_quota(rec, body)).await
}

/// Sets the quota fields the body names (400 for a negative one).
fn apply_quota(rec: &mut OrgRecord, body: UpdateOrganizationQuota) -> Result<(), ApiError> {
    let q = &mut rec.quota;
    let fields = [
        (
            "maxCpuPerSandbox",
            body.max_cpu_per_sandbox,
            &mut q.max_cpu_per_sandbox,
        ),
        (
            "maxMemoryPerSandbox",
            body.max_memory_per_sandbox,
            &mut q.max_memory_per_sandbox,
        ),
        (
            "maxDiskPerSandbox",
            body.max_disk_per_sandbox,
            &mut q.max_disk_per_sandbox,
        ),
        ("snapshotQuota", body.snapshot_quota, &mut q.snapshot_quota),
        (
            "maxSnapshotSize",
            body.max_snapshot_size,
            &mut q.max_snapshot_size,
        ),
        ("volumeQuota", body.volume_quota, &mut q.volume_quota),
        ("secretQuota", body.secret_quota, &mut q.secret_quota),
        (
            "maxSecretsPerSandbox",
            body.max_secrets_per_sandbox,
            &mut q.max_secrets_per_sandbox,
        ),
        (
            "totalCpuQuota",
            body.total_cpu_quota,
            &mut q.total_cpu_quota,
        ),
        (
            "totalMemoryQuota",
            body.total_memory_quota,
            &mut q.total_memory_quota,
        ),
        (
            "totalDiskQuota",
            body.total_disk_quota,
            &mut q.total_disk_quota,
        ),
        (
            "snapshotDeactivationTimeoutMinutes",
            body.snapshot_deactivation_timeout_minutes,
            &mut q.snapshot_deactivation_timeout_minutes,
        ),
    ];
    for (name, value, slot) in fields {
        if let Some(v) = value {
            if v < 0 {
                return Err(ApiError::bad_request(format!(
                    "{name} must not be negative"
                )));
            }
            *slot = v;
        }
    }
    Ok(())
}

/// The region every Cove organization's sandboxes run in unless it names another default.
const DEFAULT_REGION: &str = "us";

/// `PATCH .../quota/{regionId}`: Cove has one region per organization (its default region, `us`
/// unless set), whose totals and per-sandbox limits are the organization's quota.
pub async fn update_region_quota(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    region: &str,
    body: UpdateOrganizationRegionQuota,
) -> Result<(), ApiError> {
    if body
        .sandbox_class
        .as_deref()
        .is_some_and(|c| c != "container")
    {
        return Err(ApiError::bad_request(
            "sandboxClass must be container: Cove runs no other class",
        ));
    }
    if body.total_gpu_quota.is_some_and(|g| g != 0)
        || body
            .allowed_gpu_types
            .as_ref()
            .is_some_and(|g| !g.is_empty())
    {
        return Err(ApiError::bad_request("Cove has no GPU sandboxes"));
    }
    let unsupported = [
        (
            "maxDiskPerNonEphemeralSandbox",
            body.max_disk_per_non_ephemeral_sandbox,
        ),
        ("maxCpuPerGpu", body.max_cpu_per_gpu),
        ("maxMemoryPerGpu", body.max_memory_per_gpu),
        ("maxDiskPerGpu", body.max_disk_per_gpu),
        ("maxSandboxLifespan", body.max_sandbox_lifespan),
    ];
    if let Some((name, _)) = unsupported.iter().find(|(_, v)| v.is_some()) {
        return Err(ApiError::bad_request(format!("{name} is not supported")));
    }
    let region = region.to_owned();
    let change = UpdateOrganizationQuota {
        total_cpu_quota: body.total_cpu_quota,
        total_memory_quota: body.total_memory_quota,
        total_disk_quota: body.total_disk_quota,
        max_cpu_per_sandbox: body.max_cpu_per_sandbox,
        max_memory_per_sandbox: body.max_memory_per_sandbox,
        max_disk_per_sandbox: body.max_disk_per_sandbox,
        ..Default::default()
    };
    admin_update(env, ctx, org, move |rec| {
        let own = rec.default_region_id.as_deref().unwrap_or(DEFAULT_REGION);
        if region != own && region != DEFAULT_REGION {
            return Err(ApiError::not_found(format!(
                "Region with ID {region} not found"
            )));
        }
        apply_quota(rec, change)
    })
    .await
}

pub async fn suspend(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    body: OrganizationSuspension,
) -> Result<(), ApiError> {
    let until = match body.until.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(format_rfc3339(parse_rfc3339(s).ok_or_else(|| {
            ApiError::bad_request("until must be an ISO-8601 date")
        })?)),
    };
    if body
        .suspension_cleanup_grace_period_hours
        .is_some_and(|h| h < 0)
    {
        return Err(ApiError::bad_request(
            "suspensionCleanupGracePeriodHours must not be negative",
        ));
    }
    admin_update(env, ctx, org, |rec| {
        rec.suspended = true;
        rec.suspended_at = Some(now_rfc3339());
        rec.suspension_reason = Some(body.reason.trim().to_owned());
        rec.suspended_until = until;
        if let Some(h) = body.suspension_cleanup_grace_period_hours {
            rec.suspension_cleanup_grace_period_hours = Some(h);
        }
        Ok(())
    })
    .await
}

pub async fn unsuspend(env: &Env, ctx: &AuthContext, org: &OrganizationId) -> Result<(), ApiError> {
    admin_update(env, ctx, org, |rec| {
        rec.suspended = false;
        rec.suspended_at = None;
        rec.suspension_reason = None;
        rec.suspended_until = None;
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------- members

pub async fn list_members(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
) -> Result<Vec<OrganizationUser>, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::OrgRead).await?;
    let mut out = Vec::new();
    for m in env.store.memberships().list_for_org(org).await.api()? {
        let user = env.store.users().get(&m.user_id).await.api()?;
        let assigned_roles = roles_by_id(env, org, &m.assigned_role_ids).await?;
        let (name, email) = user.map(|u| (u.name, u.email)).unwrap_or_default();
        out.push(OrganizationUser {
            user_id: m.user_id,
            organization_id: m.organization_id,
            name,
            email,
            role: role_str(m.role).to_owned(),
            assigned_roles,
            created_at: m.created_at,
            updated_at: m.updated_at,
        });
    }
    Ok(out)
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
        .ok_or_else(|| ApiError::not_found(format!("User with ID {user} is not a member")))
}

/// Sets a member's role and (optionally) assigned roles. `assigned = None` keeps them.
pub async fn update_access(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    user: &UserId,
    role: Option<&str>,
    assigned: Option<&[String]>,
) -> Result<OrganizationUser, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::ManageMembers).await?;
    let role = role.map(parse_role).transpose()?;
    let resolved = match assigned {
        Some(ids) => Some(resolve_roles(env, org, ids).await?),
        None => None,
    };
    if let Some((_, perms)) = &resolved {
        authorize(env, &ctx, Action::Grant(perms.clone())).await?;
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
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => return Err(concurrent()),
        Err(e) => return Err(e.api()),
    }
    let u = env.store.users().get(user).await.api()?;
    let (name, email) = u.map(|u| (u.name, u.email)).unwrap_or_default();
    Ok(OrganizationUser {
        assigned_roles: roles_by_id(env, org, &rec.assigned_role_ids).await?,
        user_id: rec.user_id,
        organization_id: rec.organization_id,
        name,
        email,
        role: role_str(rec.role).to_owned(),
        created_at: rec.created_at,
        updated_at: rec.updated_at,
    })
}

/// Removes `user` from the organization, with its API keys there. Owners may remove anyone;
/// anyone may remove themselves (see [`leave`]). The last owner stays.
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
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::not_found(format!(
                "User with ID {user} is not a member"
            )));
        }
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

// ---------------------------------------------------------------- roles

pub async fn list_roles(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
) -> Result<Vec<OrganizationRole>, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::OrgRead).await?;
    let mut roles: Vec<RoleRecord> = cove_store::roles::globals();
    let mut own = env.store.roles().list(org).await.api()?;
    own.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
    roles.extend(own);
    Ok(roles.into_iter().map(role_view).collect())
}

async fn check_role_name(
    env: &Env,
    org: &OrganizationId,
    name: &str,
    except: Option<&str>,
) -> Result<(), ApiError> {
    let taken = cove_store::roles::globals()
        .into_iter()
        .chain(env.store.roles().list(org).await.api()?)
        .any(|r| r.name.eq_ignore_ascii_case(name) && Some(r.id.as_str()) != except);
    if taken {
        return Err(role_name_taken(name));
    }
    Ok(())
}

fn role_name_taken(name: &str) -> ApiError {
    ApiError::conflict(format!("Role with name {name} already exists"))
}

pub async fn create_role(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    body: CreateOrganizationRole,
) -> Result<OrganizationRole, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::ManageRoles).await?;
    let perms: BTreeSet<Permission> = body.permissions.into_iter().collect();
    authorize(env, &ctx, Action::Grant(perms.clone())).await?;
    let name = validate_name("name", &body.name)?;
    check_role_name(env, org, &name, None).await?;
    let now = now_rfc3339();
    let rec = RoleRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: Some(org.clone()),
        name,
        description: body.description.trim().to_owned(),
        permissions: perms.iter().map(|p| p.as_str().to_owned()).collect(),
        created_at: now.clone(),
        updated_at: now,
        version: 1,
    };
    match env.store.roles().create(org, &rec).await {
        Ok(()) => Ok(role_view(rec)),
        Err(StoreError::Conflict { .. }) => {
            load(env, org).await?;
            Err(role_name_taken(&rec.name))
        }
        Err(e) => Err(e.api()),
    }
}

fn parse_role_id(id: &str) -> Result<(), ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| ApiError::bad_request(format!("Invalid role id: {id}")))
}

async fn own_role(env: &Env, org: &OrganizationId, id: &str) -> Result<RoleRecord, ApiError> {
    parse_role_id(id)?;
    let role = env
        .store
        .roles()
        .get(org, id)
        .await
        .api()?
        .ok_or_else(|| ApiError::not_found(format!("Role with ID {id} not found")))?;
    if role.is_global() {
        return Err(ApiError::forbidden("Global roles cannot be changed"));
    }
    Ok(role)
}

pub async fn update_role(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    id: &str,
    body: CreateOrganizationRole,
) -> Result<OrganizationRole, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::ManageRoles).await?;
    let perms: BTreeSet<Permission> = body.permissions.into_iter().collect();
    authorize(env, &ctx, Action::Grant(perms.clone())).await?;
    let name = validate_name("name", &body.name)?;
    let mut rec = own_role(env, org, id).await?;
    check_role_name(env, org, &name, Some(id)).await?;
    let old_name = std::mem::replace(&mut rec.name, name);
    rec.description = body.description.trim().to_owned();
    rec.permissions = perms.iter().map(|p| p.as_str().to_owned()).collect();
    rec.version += 1;
    rec.updated_at = now_rfc3339();
    match env.store.roles().update(org, &old_name, &rec).await {
        Ok(()) => Ok(role_view(rec)),
        Err(StoreError::Conflict { .. }) => {
            load(env, org).await?;
            // The name lock or the version lost: say which.
            if old_name.to_lowercase() != rec.name.to_lowercase() {
                check_role_name(env, org, &rec.name, Some(id)).await?;
            }
            Err(concurrent())
        }
        Err(e) => Err(e.api()),
    }
}

pub async fn delete_role(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    id: &str,
) -> Result<(), ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::ManageRoles).await?;
    own_role(env, org, id).await?;
    match env.store.roles().delete(org, id).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound { .. }) => {
            Err(ApiError::not_found(format!("Role with ID {id} not found")))
        }
        Err(e) => Err(e.api()),
    }
}

// ---------------------------------------------------------------- invitations

fn validate_email(email: &str) -> Result<String, ApiError> {
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

pub async fn create_invitation(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    body: CreateOrganizationInvitation,
) -> Result<OrganizationInvitation, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::ManageInvitations).await?;
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
    let inviter = env.store.users().get(&ctx.user_id).await.api()?;
    let now = now_rfc3339();
    let inv = InviteRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: org.clone(),
        organization_name: rec.name,
        email,
        invited_by: inviter
            .map(|u| u.email)
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| ctx.user_id.to_string()),
        role,
        assigned_role_ids: assigned,
        status: InviteStatus::Pending,
        expires_at,
        created_at: now.clone(),
        updated_at: now,
        version: 1,
    };
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

/// Pending, unexpired invitations of the organization.
pub async fn list_invitations(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
) -> Result<Vec<OrganizationInvitation>, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::ManageInvitations).await?;
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
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::bad_request(format!(
            "Invalid invitation id: {id}"
        )));
    }
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
    body: UpdateOrganizationInvitation,
) -> Result<OrganizationInvitation, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::ManageInvitations).await?;
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
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::ManageInvitations).await?;
    let rec = pending_invitation(env, org, id).await?;
    match env
        .store
        .invitations()
        .set_status(&rec, InviteStatus::Cancelled, &now_rfc3339())
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict { .. }) => {
            Err(ApiError::conflict("The invitation is no longer pending"))
        }
        Err(e) => Err(e.api()),
    }
}

async fn me(env: &Env, ctx: &AuthContext) -> Result<UserRecord, ApiError> {
    env.store
        .users()
        .get(&ctx.user_id)
        .await
        .api()?
        .ok_or_else(ApiError::invalid_credentials)
}

/// The caller's pending, unexpired invitations (matched on the user's email).
async fn my_invitations(env: &Env, ctx: &AuthContext) -> Result<Vec<InviteRecord>, ApiError> {
    require_jwt(ctx)?;
    let user = me(env, ctx).await?;
    if user.email.trim().is_empty() {
        return Ok(vec![]);
    }
    Ok(env
        .store
        .invitations()
        .list_for_email(&user.email)
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
    require_jwt(ctx)?;
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::bad_request(format!(
            "Invalid invitation id: {id}"
        )));
    }
    let user = me(env, ctx).await?;
    if user.email.trim().is_empty() {
        return Err(invitation_not_found(id));
    }
    let found = env
        .store
        .invitations()
        .list_for_email(&user.email)
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
        .ok_or_else(|| invitation_not_found(id))?;
    if rec.status != InviteStatus::Pending {
        return Err(invitation_not_found(id));
    }
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
    let rec = my_invitation(env, ctx, id).await?;
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
        Err(StoreError::Conflict { .. }) => {
            // Say which condition failed.
            if env
                .store
                .memberships()
                .get(&rec.organization_id, &ctx.user_id)
                .await
                .api()?
                .is_some()
                && env
                    .store
                    .invitations()
                    .get(&rec.organization_id, id)
                    .await
                    .api()?
                    .is_some_and(|i| i.status == InviteStatus::Pending)
            {
                return Err(ApiError::conflict(
                    "You are already a member of this organization",
                ));
            }
            if env
                .store
                .orgs()
                .get(&rec.organization_id)
                .await
                .api()?
                .is_none()
            {
                return Err(invitation_not_found(id));
            }
            return Err(ApiError::conflict("The invitation is no longer pending"));
        }
        Err(e) => return Err(e.api()),
    }
    tracing::info!(org = %rec.organization_id, user = %ctx.user_id, invitation = id, "invitation accepted");
    let mut rec = rec;
    rec.status = InviteStatus::Accepted;
    rec.updated_at = now;
    rec.version += 1;
    invite_view(env, rec).await
}

pub async fn decline_invitation(env: &Env, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
    let rec = my_invitation(env, ctx, id).await?;
    match env
        .store
        .invitations()
        .set_status(&rec, InviteStatus::Declined, &now_rfc3339())
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict { .. }) => {
            Err(ApiError::conflict("The invitation is no longer pending"))
        }
        Err(e) => Err(e.api()),
    }
}

// ---------------------------------------------------------------- users and config

pub async fn user_me(env: &Env, ctx: &AuthContext) -> Result<User, ApiError> {
    require_jwt(ctx)?;
    Ok(user_view(me(env, ctx).await?))
}

/// A user by id: the caller itself, or anyone for a system admin.
pub async fn user_get(env: &Env, ctx: &AuthContext, id: &UserId) -> Result<User, ApiError> {
    require_jwt(ctx)?;
    if *id != ctx.user_id {
        authorize(env, ctx, Action::SystemAdmin).await?;
    }
    env.store
        .users()
        .get(id)
        .await
        .api()?
        .map(user_view)
        .ok_or_else(|| ApiError::not_found(format!("User with ID {id} not found")))
}

pub async fn user_create(
    env: &Env,
    ctx: &AuthContext,
    body: cove_api_types::orgs::CreateUser,
) -> Result<User, ApiError> {
    require_jwt(ctx)?;
    authorize(env, ctx, Action::SystemAdmin).await?;
    let name = validate_name("name", &body.name)?;
    let email = match body.email.as_deref().filter(|e| !e.trim().is_empty()) {
        Some(e) => validate_email(e)?,
        None => String::new(),
    };
    let role = match body.role.as_deref() {
        None | Some("user") => cove_store::users::SystemRole::User,
        Some("admin") => cove_store::users::SystemRole::Admin,
        Some(_) => return Err(ApiError::bad_request("role must be one of: admin, user")),
    };
    let id = body.id.unwrap_or_else(UserId::new_random);
    if env.store.users().get(&id).await.api()?.is_some() {
        return Err(ApiError::conflict(format!(
            "User with ID {id} already exists"
        )));
    }
    let user = env
        .store
        .users()
        .get_or_provision(cove_store::users::NewUser {
            id,
            name,
            email,
            email_verified: body.email_verified.unwrap_or(false),
            role,
        })
        .await
        .api()?;
    Ok(user_view(user))
}

pub async fn user_list(env: &Env, ctx: &AuthContext) -> Result<Vec<User>, ApiError> {
    require_jwt(ctx)?;
    authorize(env, ctx, Action::SystemAdmin).await?;
    Ok(env
        .store
        .users()
        .list()
        .await
        .api()?
        .into_iter()
        .map(user_view)
        .collect())
}

/// Replaces the user's key pair with a fresh one (system admin). The private half stays in the store.
pub async fn regenerate_key_pair(
    env: &Env,
    ctx: &AuthContext,
    id: &UserId,
) -> Result<(), ApiError> {
    require_jwt(ctx)?;
    authorize(env, ctx, Action::SystemAdmin).await?;
    let kp = crate::keypair::generate(now_rfc3339())?;
    match env.store.users().set_key_pair(id, &kp).await {
        Ok(()) => {}
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::not_found(format!("User with ID {id} not found")));
        }
        Err(e) => return Err(e.api()),
    }
    tracing::info!(user = %id, admin = %ctx.user_id, "user key pair regenerated");
    Ok(())
}

/// The identity providers whose accounts can be linked: `(name, display name)`.
pub const ACCOUNT_PROVIDERS: &[(&str, &str)] = &[
    ("github", "GitHub"),
    ("google-oauth2", "Google"),
    ("gitlab", "GitLab"),
    ("bitbucket", "Bitbucket"),
];

/// A provider user id goes into a key: bounded, printable, no `#`.
const MAX_PROVIDER_USER_ID_LEN: usize = 255;

fn account_provider(provider: &str) -> Result<&'static str, ApiError> {
    ACCOUNT_PROVIDERS
        .iter()
        .find(|(name, _)| *name == provider)
        .map(|(name, _)| *name)
        .ok_or_else(|| {
            let names: Vec<&str> = ACCOUNT_PROVIDERS.iter().map(|(n, _)| *n).collect();
            ApiError::bad_request(format!("provider must be one of: {}", names.join(", ")))
        })
}

fn provider_user_id(id: &str) -> Result<&str, ApiError> {
    if id.is_empty()
        || id.len() > MAX_PROVIDER_USER_ID_LEN
        || id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '#')
    {
        return Err(ApiError::bad_request(format!(
            "userId must be 1 to {MAX_PROVIDER_USER_ID_LEN} printable characters without spaces or '#'"
        )));
    }
    Ok(id)
}

/// Links the caller to an account at an identity provider. 409 if that account is linked already
/// (to the caller or anyone else).
pub async fn link_account(
    env: &Env,
    ctx: &AuthContext,
    body: CreateLinkedAccount,
) -> Result<(), ApiError> {
    require_jwt(ctx)?;
    let provider = account_provider(body.provider.trim())?;
    let puid = provider_user_id(body.user_id.trim())?;
    me(env, ctx).await?;
    let rec = LinkedAccountRecord {
        user_id: ctx.user_id.clone(),
        provider: provider.to_owned(),
        provider_user_id: puid.to_owned(),
        created_at: now_rfc3339(),
    };
    match env.store.users().link_account(&rec).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::conflict(format!(
                "The {provider} account {puid} is already linked"
            )));
        }
        Err(StoreError::NotFound { .. }) => return Err(ApiError::invalid_credentials()),
        Err(e) => return Err(e.api()),
    }
    tracing::info!(user = %ctx.user_id, provider, "account linked");
    Ok(())
}

/// Removes one of the caller's links. 404 if the caller has no such link.
pub async fn unlink_account(
    env: &Env,
    ctx: &AuthContext,
    provider: &str,
    puid: &str,
) -> Result<(), ApiError> {
    require_jwt(ctx)?;
    let provider = account_provider(provider)?;
    let puid = provider_user_id(puid)?;
    match env
        .store
        .users()
        .unlink_account(&ctx.user_id, provider, puid)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::not_found(format!(
                "No linked {provider} account {puid}"
            )));
        }
        Err(e) => return Err(e.api()),
    }
    tracing::info!(user = %ctx.user_id, provider, "account unlinked");
    Ok(())
}

/// The providers whose accounts can be linked, and whether the caller has linked one.
pub async fn account_providers(
    env: &Env,
    ctx: &AuthContext,
) -> Result<Vec<AccountProvider>, ApiError> {
    require_jwt(ctx)?;
    let linked: BTreeSet<String> = env
        .store
        .users()
        .linked_accounts(&ctx.user_id)
        .await
        .api()?
        .into_iter()
        .map(|l| l.provider)
        .collect();
    Ok(ACCOUNT_PROVIDERS
        .iter()
        .map(|(name, display)| AccountProvider {
            provider: (*name).to_owned(),
            display_name: (*display).to_owned(),
            linked: linked.contains(*name),
        })
        .collect())
}

/// `GET /health/ready`: whether the table answers (the error, if it does not).
pub async fn ready(env: &Env) -> Result<(), String> {
    env.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check: the table does not answer");
        "The database is not reachable".to_owned()
    })
}

pub fn config(env: &Env) -> DaytonaConfiguration {
    DaytonaConfiguration {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        oidc: OidcConfig {
            issuer: env.jwt.issuer.clone().unwrap_or_default(),
            client_id: "cove".into(),
            audience: env.jwt.audience.clone().unwrap_or_default(),
            provider: "cove".into(),
        },
        linked_accounts_enabled: true,
        announcements: BTreeMap::new(),
        proxy_template_url: "http://{{PORT}}-{{sandboxId}}.proxy.localhost".into(),
        proxy_toolbox_url: "http://proxy.localhost/toolbox".into(),
        default_snapshot: "daytonaio/sandbox:latest".into(),
        dashboard_url: "http://localhost/dashboard".into(),
        max_auto_archive_interval: 43200,
        maintanance_mode: false,
        environment: "local".into(),
    }
}
