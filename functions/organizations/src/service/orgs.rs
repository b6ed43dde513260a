//! Organizations: create, list, get, delete, usage.

use cove_api_types::ApiError;
use cove_api_types::ids::OrganizationId;
use cove_api_types::orgs::{
    CreateOrganization, Organization, OrganizationUsageOverview, RegionUsageOverview,
};
use cove_api_types::time::now_rfc3339;
use cove_edge::store_error::IntoApi;
use cove_edge::web::JsonBody;
use cove_edge::{Action, AuthContext, Env, authorize};
use cove_store::StoreError;
use cove_store::memberships::{MembershipRecord, OrgRole};
use cove_store::orgs::OrgRecord;

use super::{load, org_not_found, org_view, require_jwt, scoped, validate_name};

/// Any user (JWT) may create an organization; it becomes its owner.
pub async fn create(
    env: &Env,
    ctx: &AuthContext,
    body: JsonBody<'_, CreateOrganization>,
) -> Result<Organization, ApiError> {
    require_jwt(ctx)?;
    let body = body.parse()?;
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
    // and disk state sets of CONTRACT §8).
    let used = env.store.sandboxes().usage(org).await.api()?;
    // Snapshots in the states that count against the quota (CONTRACT §8).
    let snapshots = env.store.snapshots().count_usage(org).await.api()?;
    // Volumes in the states that count against the quota (CONTRACT §8).
    let volumes = env.store.volumes().count_usage(org).await.api()?;
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
        current_snapshot_usage: snapshots,
        total_volume_quota: q.volume_quota,
        current_volume_usage: volumes,
    })
}
