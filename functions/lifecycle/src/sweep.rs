//! One lifecycle sweep (see the crate docs).

use cove_api_types::runner::RunnerState;
use cove_api_types::sandbox::SandboxState;
use cove_edge::runner_client::{ClientError, RunnerClient};
use cove_edge::store_error::IntoApi;
use cove_edge::{ApiError, Env};
use cove_snapshot_jobs::{JobSettings, SnapshotReport};
use cove_store::StoreError;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::{QuotaCheck, SandboxRecord, observed_state};
use serde::Serialize;
use time::OffsetDateTime;

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub runners_marked_unresponsive: u32,
    pub sandboxes_marked_unknown: u32,
    pub sandboxes_recovered: u32,
    /// Sandboxes of runners silent past `runner_lost_minutes`, set to `error` (recoverable when
    /// their last backup is in the registry).
    pub sandboxes_lost: u32,
    /// Transitions past their deadline pushed again.
    pub transitions_pushed: u32,
    /// Transitions given up on (settled as failed).
    pub transitions_expired: u32,
    /// Destroyed sandboxes whose backups were removed from their runner.
    pub backups_removed: u32,
    /// Sandboxes skipped because of a lost race or an unreachable runner (retried next sweep).
    pub skipped: u32,
    /// Sandboxes the due-time index listed (step 3).
    pub due: u32,
    /// Listed but not due after all (activity moved their due time): re-indexed.
    pub reindexed: u32,
    /// Started sandboxes stopped after `autoStopInterval` idle minutes.
    pub auto_stopped: u32,
    /// Stopped sandboxes archived after `autoArchiveInterval` idle minutes.
    pub auto_archived: u32,
    /// Sandboxes deleted by `autoDeleteInterval` (ephemeral ones instead of stopped).
    pub auto_deleted: u32,
    /// Sandboxes whose TTL (`autoDestroyAt`) passed, deleted.
    pub ttl_destroyed: u32,
    /// Queued sandboxes placed on a runner, and those destroyed by their queue timeout.
    pub queued_placed: u32,
    pub queue_timed_out: u32,
    /// Periodic backups begun, and those whose outcome came back (this sweep or a later one).
    pub backups_started: u32,
    pub backups_completed: u32,
    /// Snapshots driven (step 5).
    pub snapshots: SnapshotReport,
    /// Volumes provisioned or removed (step 6).
    pub volumes: cove_volume_jobs::VolumeReport,
}

/// Sandbox states that mean "the runner is running (or moving) it": lost with the runner.
fn lost_with_runner(s: SandboxState) -> bool {
    use SandboxState as S;
    matches!(
        s,
        S::Started | S::Starting | S::Stopping | S::Creating | S::Restoring | S::Destroying
    )
}

pub async fn run(
    env: &Env,
    settings: &JobSettings,
    now: OffsetDateTime,
) -> Result<SweepReport, ApiError> {
    let mut report = SweepReport::default();
    let runners = env.store.runners().list().await.api()?;
    for runner in &runners {
        let unresponsive = if runner.is_live() && !runner.is_responsive(now) {
            if let Some(lc) = runner.last_checked.as_deref()
                && env
                    .store
                    .runners()
                    .mark_unresponsive(&runner.id, runner.state, lc)
                    .await
                    .api()?
            {
                report.runners_marked_unresponsive += 1;
                tracing::warn!(runner_id = %runner.id, last_checked = lc, "runner unresponsive");
            }
            runner.last_checked.is_some()
        } else {
            runner.state == RunnerState::Unresponsive && !runner.is_responsive(now)
        };
        if unresponsive {
            mark_unknown(env, runner, &mut report).await?;
            if is_lost(env, settings, runner, now) {
                give_up(env, runner, &mut report).await?;
            }
        }
    }
    crate::due::run(env, settings, &runners, now, &mut report).await?;
    crate::transitions::remove_backups(env, &mut report).await?;
    report.snapshots = cove_snapshot_jobs::sweep(env, settings, &runners, now)
        .await
        .api()?;
    report.volumes = cove_volume_jobs::sweep(&env.store, &settings.volumes, now)
        .await
        .api()?;
    Ok(report)
}

/// Writes what the sweep found (whatever the quota: the counters follow reality).
async fn record(
    env: &Env,
    prev: &SandboxRecord,
    next: &SandboxRecord,
    report: &mut SweepReport,
) -> Result<bool, ApiError> {
    match env
        .store
        .sandboxes()
        .update(prev, next, QuotaCheck::Record)
        .await
    {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { .. }) => {
            report.skipped += 1;
            Ok(false)
        }
        Err(e) => Err(e.api()),
    }
}

async fn mark_unknown(
    env: &Env,
    runner: &RunnerRecord,
    report: &mut SweepReport,
) -> Result<(), ApiError> {
    let repo = env.store.sandboxes();
    for sb in repo.list_by_runner(&runner.id).await.api()? {
        if sb.is_destroyed() || !lost_with_runner(sb.state) {
            continue;
        }
        let mut next = sb.clone();
        next.state = SandboxState::Unknown;
        next.updated_at = cove_api_types::time::now_rfc3339();
        if record(env, &sb, &next, report).await? {
            report.sandboxes_marked_unknown += 1;
            tracing::info!(sandbox_id = %sb.id, runner_id = %runner.id, from = sb.state.as_str(), "sandbox unknown: runner unresponsive");
        }
    }
    Ok(())
}

/// Whether `runner` has been silent for `runner_lost_minutes` lifecycle minutes at `now`.
fn is_lost(env: &Env, settings: &JobSettings, runner: &RunnerRecord, now: OffsetDateTime) -> bool {
    let lost_after = env.store.lifecycle_minute() * settings.runner_lost_minutes;
    runner
        .last_checked
        .as_deref()
        .and_then(cove_api_types::time::parse_rfc3339)
        .is_some_and(|t| now - t >= lost_after)
}

/// The sandboxes of a lost runner (`unknown` since it went silent) go to `error`; those whose
/// last backup is in the registry are `recoverable` there (`POST /api/sandbox/{id}/recover`
/// restores them on another runner). Sandboxes with a transition in flight are left to its
/// deadline.
async fn give_up(
    env: &Env,
    runner: &RunnerRecord,
    report: &mut SweepReport,
) -> Result<(), ApiError> {
    let repo = env.store.sandboxes();
    for sb in repo.list_by_runner(&runner.id).await.api()? {
        if sb.is_destroyed() || sb.state != SandboxState::Unknown || sb.transition.is_some() {
            continue;
        }
        let mut next = sb.clone();
        next.state = SandboxState::Error;
        next.recoverable = sb.has_portable_backup();
        next.error_reason = Some(format!(
            "The sandbox's runner {} stopped answering{}",
            runner.name,
            if next.recoverable {
                "; recover it from its last backup"
            } else {
                ""
            }
        ));
        next.updated_at = cove_api_types::time::now_rfc3339();
        if record(env, &sb, &next, report).await? {
            report.sandboxes_lost += 1;
            tracing::warn!(sandbox_id = %sb.id, runner_id = %runner.id, recoverable = next.recoverable, "sandbox given up: runner lost");
        }
    }
    Ok(())
}

/// What the runner says about a sandbox the control plane lost track of; `None` when it can't be
/// asked now (retried next sweep).
async fn ask(
    client: &RunnerClient,
    runner: &RunnerRecord,
    sb: &SandboxRecord,
) -> Option<(SandboxState, Option<String>)> {
    match client.get_sandbox(sb.id.as_str()).await {
        // Gone on the runner while it was not asked to go: an error, not a destroy.
        Ok(st) if observed_state(st.state) == SandboxState::Destroyed => Some((
            SandboxState::Error,
            Some("The sandbox's container is gone".to_owned()),
        )),
        Ok(st) => Some((observed_state(st.state), st.error_reason)),
        Err(ClientError::Status { status: 404, .. }) => Some((
            SandboxState::Error,
            Some("The sandbox is not on its runner".to_owned()),
        )),
        Err(e) => {
            tracing::warn!(sandbox_id = %sb.id, runner_id = %runner.id, error = %e, "runner unreachable during recovery");
            None
        }
    }
}

/// Asks a ready runner about a sandbox it lost track of (`unknown`, found through the due-time
/// index) and writes back what it says.
pub(crate) async fn recover(
    env: &Env,
    runner: &RunnerRecord,
    sb: &SandboxRecord,
    report: &mut SweepReport,
) -> Result<(), ApiError> {
    let Some(api_url) = runner.api_url.as_deref() else {
        return Ok(());
    };
    let client = RunnerClient::new(api_url, &runner.api_key);
    let Some((new_state, reason)) = ask(&client, runner, sb).await else {
        report.skipped += 1;
        return Ok(());
    };
    if new_state == SandboxState::Unknown {
        return Ok(());
    }
    let mut next = sb.clone();
    next.error_reason = if new_state == SandboxState::Error {
        reason
    } else {
        None
    };
    next.recoverable = false;
    next.state = new_state;
    next.updated_at = cove_api_types::time::now_rfc3339();
    if record(env, sb, &next, report).await? {
        report.sandboxes_recovered += 1;
        tracing::info!(sandbox_id = %sb.id, runner_id = %runner.id, state = new_state.as_str(), "sandbox state recovered");
    }
    Ok(())
}
