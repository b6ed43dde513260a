//! `POST /snapshots`: validation, quota, then the row (`pending`, or `active` at once when an
//! identical build of the organization is already active).

use cove_api_types::ApiError;
use cove_api_types::permissions::Permission;
use cove_api_types::snapshots::{CreateSnapshot, SnapshotDto, SnapshotState};
use cove_edge::store_error::IntoApi;
use cove_edge::{Action, authorize};
use cove_store::snapshots::{SnapshotBuildInfo, SnapshotJob, SnapshotRecord};
use cove_store::{Conflict, StoreError};

use super::{Call, check_quota, now, quota};
use crate::rules::{self, CreatePlan, Source};
use crate::view;

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "Snapshot with name \"{name}\" already exists for this organization"
    ))
}

/// The new row of `plan` (not yet written).
fn new_record(call: &Call<'_>, plan: CreatePlan) -> SnapshotRecord {
    let at = now();
    let org = call.org().clone();
    let mut rec = match plan.source {
        Source::Image(image) => SnapshotRecord::new(org, &plan.name, image, SnapshotJob::Pull, &at),
        Source::Build {
            dockerfile,
            context_hashes,
        } => {
            let image_ref = cove_runner_api::build_ref(
                &call.settings.internal_registry,
                org.as_str(),
                &dockerfile,
                &context_hashes,
            );
            let mut r = SnapshotRecord::new(org, &plan.name, &image_ref, SnapshotJob::Build, &at);
            r.build_info = Some(SnapshotBuildInfo {
                dockerfile_content: dockerfile,
                context_hashes,
                snapshot_ref: image_ref.clone(),
                created_at: at.clone(),
                updated_at: at.clone(),
            });
            r.r#ref = Some(image_ref);
            r
        }
    };
    rec.entrypoint = plan.entrypoint;
    rec.cpu = plan.cpu;
    rec.mem = plan.mem;
    rec.disk = plan.disk;
    rec.region_ids = vec![plan.region];
    rec
}

/// A build whose ref an active snapshot of the organization already has is active at once
/// (content-addressed: nothing is rebuilt). It names no initial runner, so deleting it never
/// removes the shared image from runners.
async fn reuse_identical_build(call: &Call<'_>, rec: &mut SnapshotRecord) -> Result<(), ApiError> {
    let Some(image_ref) = rec.r#ref.clone().filter(|_| rec.job == SnapshotJob::Build) else {
        return Ok(());
    };
    let repo = call.env.store.snapshots();
    if let Some(twin) = repo
        .find_active_by_ref(call.org(), &image_ref)
        .await
        .api()?
    {
        tracing::info!(snapshot = %rec.id, twin = %twin.id, r#ref = %image_ref, "identical build reused");
        rec.state = SnapshotState::Active;
        rec.size_bytes = twin.size_bytes;
        rec.cmd = twin.cmd;
        if rec.entrypoint.is_none() {
            rec.entrypoint = twin.entrypoint;
        }
    }
    Ok(())
}

pub async fn create(call: &Call<'_>, body: CreateSnapshot) -> Result<SnapshotDto, ApiError> {
    authorize(
        call.env,
        &call.ctx,
        Action::Create(Permission::WriteSnapshots),
    )
    .await?;
    let quota = quota(call).await?;
    let plan = rules::plan_create(&body, &quota)?;
    if plan.name == call.settings.default_snapshot {
        return Err(name_taken(&plan.name));
    }
    check_quota(call, &quota).await?;
    let mut rec = new_record(call, plan);
    reuse_identical_build(call, &mut rec).await?;
    let stored = match call.env.store.snapshots().create(&rec).await {
        Ok(r) => r,
        Err(StoreError::Conflict {
            conflict: Conflict::Exists,
            ..
        }) => return Err(name_taken(&rec.name)),
        Err(e) => return Err(e.api()),
    };
    tracing::info!(snapshot = %stored.id, org = %stored.org_id, state = %stored.state, "snapshot created");
    Ok(view::dto(&super::progress::advance(call, stored).await))
}
