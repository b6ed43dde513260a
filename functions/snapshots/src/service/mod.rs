//! The snapshot service: [`create`](mod@create), reads ([`queries`]), state changes
//! ([`actions`]) and the build logs ([`logs`]).
//!
//! Snapshot `id` parameters take an id or a name: the caller's own snapshot first, then a
//! general one (the built-in default snapshot included). Only the caller's own snapshots can be
//! changed; another organization's (not general) is "not found".

mod actions;
mod create;
mod logs;
mod progress;
mod queries;

pub use actions::{activate, deactivate, delete, set_general, toggle};
pub use create::create;
pub use logs::{LogsTarget, build_logs_url, logs_target};
pub use queries::{get, list};

use cove_api_types::ApiError;
use cove_api_types::ids::OrganizationId;
use cove_edge::store_error::IntoApi;
use cove_edge::{AuthContext, Env};
use cove_store::orgs::OrgQuota;
use cove_store::snapshots::SnapshotRecord;

use crate::settings::SnapshotSettings;
use crate::view;

/// One authenticated request's context.
pub struct Call<'a> {
    pub env: &'a Env,
    pub settings: &'a SnapshotSettings,
    pub ctx: AuthContext,
    /// `scheme://host` of the request (for `build-logs-url`).
    pub base_url: String,
}

impl Call<'_> {
    fn org(&self) -> &OrganizationId {
        &self.ctx.organization_id
    }
}

fn now() -> String {
    cove_api_types::time::now_rfc3339()
}

pub fn not_found(id_or_name: &str) -> ApiError {
    ApiError::not_found(format!("Snapshot {id_or_name} not found"))
}

async fn quota(call: &Call<'_>) -> Result<OrgQuota, ApiError> {
    Ok(call
        .env
        .store
        .orgs()
        .get(call.org())
        .await
        .api()?
        .ok_or_else(|| ApiError::forbidden("Invalid authentication context"))?
        .quota)
}

/// A snapshot the organization may see and use: its own (by id or name), else a general one
/// (by id or name), else the built-in default snapshot (by its name or id).
pub async fn find_visible(
    env: &Env,
    settings: &SnapshotSettings,
    org: &OrganizationId,
    id_or_name: &str,
) -> Result<Option<SnapshotRecord>, ApiError> {
    if let Some(rec) = env
        .store
        .snapshots()
        .find_visible(org, id_or_name)
        .await
        .api()?
    {
        return Ok(Some(rec));
    }
    let default = view::default_snapshot(&settings.default_snapshot);
    Ok(default.filter(|d| d.name == id_or_name || d.id.as_str() == id_or_name))
}

/// The caller's own snapshot (by id or name); 404 otherwise (another organization's, general or
/// not, and the built-in default snapshot cannot be changed by an organization).
async fn find_own(call: &Call<'_>, id_or_name: &str) -> Result<SnapshotRecord, ApiError> {
    find_visible(call.env, call.settings, call.org(), id_or_name)
        .await?
        .filter(|r| r.org_id == *call.org() && !view::is_default(r))
        .ok_or_else(|| not_found(id_or_name))
}

/// 403/404 unless the caller may change its own snapshot `id_or_name` (`write:snapshots`).
pub async fn may_write(call: &Call<'_>, id_or_name: &str) -> Result<(), ApiError> {
    cove_edge::authorize(
        call.env,
        &call.ctx,
        cove_edge::Action::Use(cove_api_types::permissions::Permission::WriteSnapshots),
    )
    .await?;
    find_own(call, id_or_name).await.map(|_| ())
}

/// 403 when one more snapshot would take the organization over its snapshot quota.
async fn check_quota(call: &Call<'_>, quota: &OrgQuota) -> Result<(), ApiError> {
    let used = call
        .env
        .store
        .snapshots()
        .count_usage(call.org())
        .await
        .api()?;
    if used >= quota.snapshot_quota {
        tracing::info!(org = %call.org(), used, limit = quota.snapshot_quota, "snapshot quota reached");
        return Err(ApiError::forbidden(format!(
            "Snapshot quota exceeded. Maximum allowed: {}",
            quota.snapshot_quota
        )));
    }
    Ok(())
}
