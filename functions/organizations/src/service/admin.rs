//! System administration of an organization: quota and suspension. The caller must be a system
//! admin with a user session; nothing of the request is read before that is established.

use cove_api_types::ApiError;
use cove_api_types::ids::OrganizationId;
use cove_api_types::orgs::{
    OrganizationSuspension, UpdateOrganizationQuota, UpdateOrganizationRegionQuota,
};
use cove_api_types::time::{format_rfc3339, now_rfc3339, parse_rfc3339};
use cove_edge::store_error::IntoApi;
use cove_edge::web::JsonBody;
use cove_edge::{Action, AuthContext, Env, authorize};
use cove_store::StoreError;
use cove_store::orgs::OrgRecord;

use super::{concurrent, load, require_jwt};

/// The region every Cove organization's sandboxes run in unless it names another default.
const DEFAULT_REGION: &str = "us";

/// 403 unless the caller is a system admin with a user session.
async fn require_admin(env: &Env, ctx: &AuthContext) -> Result<(), ApiError> {
    require_jwt(ctx)?;
    authorize(env, ctx, Action::SystemAdmin).await
}

/// Applies `change` to the organization with optimistic concurrency.
async fn update(
    env: &Env,
    org: &OrganizationId,
    change: impl FnOnce(&mut OrgRecord) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
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
    body: JsonBody<'_, UpdateOrganizationQuota>,
) -> Result<(), ApiError> {
    require_admin(env, ctx).await?;
    let body = body.parse()?;
    update(env, org, |rec| apply_quota(rec, body)).await
}

/// Sets `slot` to `value` when given (400 for a negative one).
fn set(name: &str, value: Option<i64>, slot: &mut i64) -> Result<(), ApiError> {
    match value {
        Some(v) if v < 0 => Err(ApiError::bad_request(format!(
            "{name} must not be negative"
        ))),
        Some(v) => {
            *slot = v;
            Ok(())
        }
        None => Ok(()),
    }
}

/// Sets the quota fields the body names (400 for a negative one).
fn apply_quota(rec: &mut OrgRecord, b: UpdateOrganizationQuota) -> Result<(), ApiError> {
    let q = &mut rec.quota;
    set(
        "maxCpuPerSandbox",
        b.max_cpu_per_sandbox,
        &mut q.max_cpu_per_sandbox,
    )?;
    set(
        "maxMemoryPerSandbox",
        b.max_memory_per_sandbox,
        &mut q.max_memory_per_sandbox,
    )?;
    set(
        "maxDiskPerSandbox",
        b.max_disk_per_sandbox,
        &mut q.max_disk_per_sandbox,
    )?;
    set("snapshotQuota", b.snapshot_quota, &mut q.snapshot_quota)?;
    set(
        "maxSnapshotSize",
        b.max_snapshot_size,
        &mut q.max_snapshot_size,
    )?;
    set("volumeQuota", b.volume_quota, &mut q.volume_quota)?;
    set("secretQuota", b.secret_quota, &mut q.secret_quota)?;
    set(
        "maxSecretsPerSandbox",
        b.max_secrets_per_sandbox,
        &mut q.max_secrets_per_sandbox,
    )?;
    set("totalCpuQuota", b.total_cpu_quota, &mut q.total_cpu_quota)?;
    set(
        "totalMemoryQuota",
        b.total_memory_quota,
        &mut q.total_memory_quota,
    )?;
    set(
        "totalDiskQuota",
        b.total_disk_quota,
        &mut q.total_disk_quota,
    )?;
    set(
        "snapshotDeactivationTimeoutMinutes",
        b.snapshot_deactivation_timeout_minutes,
        &mut q.snapshot_deactivation_timeout_minutes,
    )
}

/// `PATCH .../quota/{regionId}`: Cove has one region per organization (its default region, `us`
/// unless set), whose totals and per-sandbox limits are the organization's quota.
pub async fn update_region_quota(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    region: &str,
    body: JsonBody<'_, UpdateOrganizationRegionQuota>,
) -> Result<(), ApiError> {
    require_admin(env, ctx).await?;
    let change = region_quota_change(body.parse()?)?;
    let region = region.to_owned();
    update(env, org, move |rec| {
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

/// The organization quota change a region quota body asks for; 400 for what Cove cannot do.
fn region_quota_change(
    body: UpdateOrganizationRegionQuota,
) -> Result<UpdateOrganizationQuota, ApiError> {
    if body
        .sandbox_class
        .as_deref()
        .is_some_and(|c| c != "container")
    {
        return Err(ApiError::bad_request(
            "sandboxClass must be container: Cove runs no other class",
        ));
    }
    let gpus = body.total_gpu_quota.is_some_and(|g| g != 0)
        || body
            .allowed_gpu_types
            .as_ref()
            .is_some_and(|g| !g.is_empty());
    if gpus {
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
    Ok(UpdateOrganizationQuota {
        total_cpu_quota: body.total_cpu_quota,
        total_memory_quota: body.total_memory_quota,
        total_disk_quota: body.total_disk_quota,
        max_cpu_per_sandbox: body.max_cpu_per_sandbox,
        max_memory_per_sandbox: body.max_memory_per_sandbox,
        max_disk_per_sandbox: body.max_disk_per_sandbox,
        ..Default::default()
    })
}

pub async fn suspend(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    body: JsonBody<'_, OrganizationSuspension>,
) -> Result<(), ApiError> {
    require_admin(env, ctx).await?;
    let body = body.parse()?;
    let until = match body.until.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(format_rfc3339(parse_rfc3339(s).ok_or_else(|| {
            ApiError::bad_request("until must be an ISO-8601 date")
        })?)),
    };
    let grace = body.suspension_cleanup_grace_period_hours;
    if grace.is_some_and(|h| h < 0) {
        return Err(ApiError::bad_request(
            "suspensionCleanupGracePeriodHours must not be negative",
        ));
    }
    update(env, org, |rec| {
        rec.suspended = true;
        rec.suspended_at = Some(now_rfc3339());
        rec.suspension_reason = Some(body.reason.trim().to_owned());
        rec.suspended_until = until;
        if grace.is_some() {
            rec.suspension_cleanup_grace_period_hours = grace;
        }
        Ok(())
    })
    .await
}

pub async fn unsuspend(env: &Env, ctx: &AuthContext, org: &OrganizationId) -> Result<(), ApiError> {
    require_admin(env, ctx).await?;
    update(env, org, |rec| {
        rec.suspended = false;
        rec.suspended_at = None;
        rec.suspension_reason = None;
        rec.suspended_until = None;
        Ok(())
    })
    .await
}
