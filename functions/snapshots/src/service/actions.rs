//! State changes a user asks for: delete, activate, deactivate, toggle, and the system admin's
//! `general` flag. Each is one conditional write on the row's version.

use cove_api_types::ApiError;
use cove_api_types::ids::SnapshotId;
use cove_api_types::permissions::Permission;
use cove_api_types::snapshots::{SnapshotDto, SnapshotState};
use cove_edge::store_error::IntoApi;
use cove_edge::{Action, authorize};
use cove_store::StoreError;
use cove_store::snapshots::{SnapshotPatch, SnapshotRecord};

use super::{Call, check_quota, find_own, not_found, now, quota};
use crate::view;

async fn set(
    rec: &SnapshotRecord,
    call: &Call<'_>,
    to: SnapshotState,
) -> Result<SnapshotRecord, ApiError> {
    call.env
        .store
        .snapshots()
        .set_state(&rec.id, rec.version, to, SnapshotPatch::default())
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => not_found(rec.id.as_str()),
            e => e.api(),
        })
}

/// `DELETE /snapshots/{id}`: a snapshot that never reached a runner goes at once; otherwise it
/// becomes `removing` and the lifecycle sweep removes it from the runners, then the row.
pub async fn delete(call: &Call<'_>, id_or_name: &str) -> Result<(), ApiError> {
    authorize(
        call.env,
        &call.ctx,
        Action::Use(Permission::DeleteSnapshots),
    )
    .await?;
    let rec = find_own(call, id_or_name).await?;
    if rec.general {
        return Err(ApiError::forbidden("You cannot delete a general snapshot"));
    }
    if rec.state == SnapshotState::Removing {
        return Ok(());
    }
    if rec.initial_runner_id.is_none() {
        match call.env.store.snapshots().delete(&rec.id).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.api()),
        }
        tracing::info!(snapshot = %rec.id, org = %rec.org_id, "snapshot deleted");
        return Ok(());
    }
    set(&rec, call, SnapshotState::Removing).await?;
    tracing::info!(snapshot = %rec.id, org = %rec.org_id, "snapshot removing");
    Ok(())
}

/// `POST /snapshots/{id}/activate`: `inactive` → `active` (within the snapshot quota).
pub async fn activate(call: &Call<'_>, id_or_name: &str) -> Result<SnapshotDto, ApiError> {
    authorize(
        call.env,
        &call.ctx,
        Action::Create(Permission::WriteSnapshots),
    )
    .await?;
    let rec = find_own(call, id_or_name).await?;
    match rec.state {
        SnapshotState::Active => Err(ApiError::bad_request(format!(
            "Snapshot {id_or_name} is already active"
        ))),
        SnapshotState::Inactive => {
            check_quota(call, &quota(call).await?).await?;
            Ok(view::dto(&set(&rec, call, SnapshotState::Active).await?))
        }
        other => Err(ApiError::bad_request(format!(
            "Snapshot {id_or_name} cannot be activated - it is in {other} state"
        ))),
    }
}

/// `POST /snapshots/{id}/deactivate`: → `inactive` from any state (as Daytona) but `removing`
/// (its deletion is under way); already inactive: nothing to do.
pub async fn deactivate(call: &Call<'_>, id_or_name: &str) -> Result<SnapshotDto, ApiError> {
    authorize(call.env, &call.ctx, Action::Use(Permission::WriteSnapshots)).await?;
    let rec = find_own(call, id_or_name).await?;
    match rec.state {
        SnapshotState::Inactive => Ok(view::dto(&rec)),
        SnapshotState::Removing => Err(ApiError::bad_request(format!(
            "Snapshot {id_or_name} cannot be deactivated - it is in removing state"
        ))),
        _ => Ok(view::dto(&set(&rec, call, SnapshotState::Inactive).await?)),
    }
}

/// `PATCH /snapshots/{id}/toggle` (`{active?: bool}`; without it: flip).
pub async fn toggle(
    call: &Call<'_>,
    id_or_name: &str,
    active: Option<bool>,
) -> Result<SnapshotDto, ApiError> {
    authorize(call.env, &call.ctx, Action::Use(Permission::WriteSnapshots)).await?;
    let rec = find_own(call, id_or_name).await?;
    let want_active = active.unwrap_or(rec.state != SnapshotState::Active);
    match (want_active, rec.state) {
        (true, SnapshotState::Active) | (false, SnapshotState::Inactive) => Ok(view::dto(&rec)),
        (true, _) => activate(call, id_or_name).await,
        (false, _) => deactivate(call, id_or_name).await,
    }
}

/// `PATCH /snapshots/{id}/general` (system admin): a general snapshot is visible to (and usable
/// by) every organization. By id only.
pub async fn set_general(
    call: &Call<'_>,
    id: &str,
    general: bool,
) -> Result<SnapshotDto, ApiError> {
    authorize(call.env, &call.ctx, Action::SystemAdmin).await?;
    authorize(call.env, &call.ctx, Action::Use(Permission::WriteSnapshots)).await?;
    let repo = call.env.store.snapshots();
    let sid = SnapshotId::parse(id).map_err(|_| not_found(id))?;
    let rec = repo.get(&sid).await.api()?.ok_or_else(|| not_found(id))?;
    if rec.general == general {
        return Ok(view::dto(&rec));
    }
    let mut next = rec.clone();
    next.general = general;
    next.updated_at = now();
    let stored = repo.update(&rec, &next).await.api()?;
    tracing::info!(snapshot = %stored.id, general, "snapshot general flag set");
    Ok(view::dto(&stored))
}
