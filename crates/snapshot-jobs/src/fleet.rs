//! Active snapshots on every runner ([`propagate`]) and removal from every runner ([`remove`]).

use cove_api_types::snapshots::SnapshotState;
use cove_edge::Env;
use cove_store::StoreError;
use cove_store::runners::RunnerRecord;
use cove_store::snapshots::SnapshotRecord;
use time::OffsetDateTime;

use crate::drive::client;
use crate::{JobSettings, REMOVE_DEADLINE, SnapshotReport, past, spec};

/// Asks every schedulable runner of the snapshot's regions that does not hold its internal ref to
/// pull it (`PUT` without waiting; the runner's heartbeats list the ref once it is there, and a
/// `PUT` while the pull runs joins it). Images outside the internal registry (the built-in
/// default) are not copied.
pub async fn propagate(
    settings: &JobSettings,
    rec: &SnapshotRecord,
    runners: &[RunnerRecord],
    now: OffsetDateTime,
    report: &mut SnapshotReport,
) {
    let Some(image) = rec.r#ref.as_deref() else {
        return;
    };
    if rec.state != SnapshotState::Active || !spec::is_internal(settings, image) {
        return;
    }
    let lacking = runners.iter().filter(|r| {
        r.is_schedulable(now)
            && !r.has_snapshot(image)
            && (rec.region_ids.is_empty() || rec.region_ids.contains(&r.region_id))
    });
    for runner in lacking {
        let Some(c) = client(runner) else { continue };
        match c
            .put_snapshot(
                rec.id.as_str(),
                &spec::copy_spec(settings, rec, image),
                Some(0),
            )
            .await
        {
            Ok(_) => report.propagations += 1,
            Err(e) => {
                tracing::warn!(snapshot_id = %rec.id, runner_id = %runner.id, error = %e, "snapshot propagation not taken");
                report.skipped += 1;
            }
        }
    }
}

/// Removes a `removing` snapshot from every live runner, then its row. When another snapshot of
/// the organization still uses the same image (an identical build), the runners keep it.
pub async fn remove(
    env: &Env,
    rec: &SnapshotRecord,
    runners: &[RunnerRecord],
    now: OffsetDateTime,
    report: &mut SnapshotReport,
) -> Result<(), StoreError> {
    if rec.state != SnapshotState::Removing {
        return Ok(());
    }
    let shared = match rec.r#ref.as_deref() {
        Some(image) => env
            .store
            .snapshots()
            .list_by_org(&rec.org_id)
            .await?
            .iter()
            .any(|o| {
                o.id != rec.id
                    && o.state != SnapshotState::Removing
                    && o.r#ref.as_deref() == Some(image)
            }),
        None => false,
    };
    let mut done = true;
    if !shared {
        for runner in runners
            .iter()
            .filter(|r| r.is_live() && r.is_responsive(now))
        {
            done &= remove_from(rec, runner).await;
        }
    }
    if !done && !past(&rec.transition_at, REMOVE_DEADLINE, now) {
        report.skipped += 1;
        return Ok(());
    }
    match env.store.snapshots().delete(&rec.id).await {
        Ok(()) => {
            report.removed += 1;
            tracing::info!(snapshot_id = %rec.id, complete = done, "snapshot removed");
            Ok(())
        }
        Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `runner` no longer holds the snapshot. A runner that does not know the snapshot
/// (`GET` 404: it never got it, or its image is gone) has nothing to remove; one that answers
/// `removed: false` still has a container using the image (asked again next sweep).
async fn remove_from(rec: &SnapshotRecord, runner: &RunnerRecord) -> bool {
    use cove_edge::runner_client::ClientError;
    let Some(c) = client(runner) else {
        return true;
    };
    let key = rec.id.as_str();
    match c.get_snapshot(key).await {
        Err(ClientError::Status { status: 404, .. }) => return true,
        Err(e) => {
            tracing::warn!(snapshot_id = %rec.id, runner_id = %runner.id, error = %e, "snapshot removal: runner unreachable");
            return false;
        }
        Ok(_) => {}
    }
    match c.delete_snapshot(key).await {
        Ok(r) if r.removed => true,
        Err(ClientError::Status { status: 404, .. }) => true,
        Ok(_) => {
            tracing::info!(snapshot_id = %rec.id, runner_id = %runner.id, "snapshot image still in use on the runner");
            false
        }
        Err(e) => {
            tracing::warn!(snapshot_id = %rec.id, runner_id = %runner.id, error = %e, "snapshot removal failed");
            false
        }
    }
}
