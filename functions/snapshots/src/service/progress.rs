//! Moving a snapshot's first pull or build on from a request ([`cove_snapshot_jobs`]): right
//! after a create, and on reads while it is in progress, so a client polling every second sees
//! the outcome within a second of the runner, not at the next lifecycle sweep.

use cove_api_types::snapshots::SnapshotState;
use cove_snapshot_jobs::SnapshotReport;
use cove_store::snapshots::SnapshotRecord;
use time::OffsetDateTime;

use super::Call;

/// `rec` after one step of its job (unchanged when there is nothing to do, or when the step
/// failed: the sweep retries, the caller still gets an answer).
pub async fn advance(call: &Call<'_>, rec: SnapshotRecord) -> SnapshotRecord {
    if !matches!(
        rec.state,
        SnapshotState::Pending | SnapshotState::Pulling | SnapshotState::Building
    ) || rec.version == 0
    {
        return rec;
    }
    let env = call.env;
    let jobs = &call.settings.jobs;
    let runners = match env.store.runners().list().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(snapshot_id = %rec.id, error = %e, "runners unavailable");
            return rec;
        }
    };
    let now = OffsetDateTime::now_utc();
    let mut report = SnapshotReport::default();
    let step = if rec.state == SnapshotState::Pending {
        cove_snapshot_jobs::start(env, jobs, &rec, &runners, now, &mut report).await
    } else {
        cove_snapshot_jobs::refresh(env, jobs, &rec, &runners, now, &mut report).await
    };
    step.unwrap_or_else(|e| {
        tracing::warn!(snapshot_id = %rec.id, error = %e, "snapshot step failed");
        rec
    })
}
