//! One lifecycle sweep (see the crate docs).

use cove_edge::runner_client::{RunnerCallError, RunnerClient};
use cove_edge::{ApiError, Env};
use cove_store::StoreError;
use cove_store::orgs::OrgQuota;
use cove_store::runners::{RunnerRecord, state};
use cove_store::sandboxes::SandboxRecord;
use serde::Serialize;
use time::OffsetDateTime;

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub runners_marked_unresponsive: u32,
    pub sandboxes_marked_unknown: u32,
    pub sandboxes_recovered: u32,
    /// Sandboxes skipped because of a lost race or an unreachable runner (retried next sweep).
    pub skipped: u32,
}

/// Sandbox states that mean "the runner is running (or moving) it": lost with the runner.
fn lost_with_runner(s: &str) -> bool {
    matches!(
        s,
        "started" | "starting" | "stopping" | "creating" | "restoring" | "destroying"
    )
}

pub async fn run(env: &Env, now: OffsetDateTime) -> Result<SweepReport, ApiError> {
    let mut report = SweepReport::default();
    for runner in env.store.runners().list().await? {
        let live = runner.state == state::READY || runner.state == state::INITIALIZING;
        let unresponsive = if live && !runner.is_responsive(now) {
            if let Some(lc) = runner.last_checked.as_deref()
                && env
                    .store
                    .runners()
                    .mark_unresponsive(&runner.id, &runner.state, lc)
                    .await?
            {
                report.runners_marked_unresponsive += 1;
                tracing::warn!(runner_id = %runner.id, last_checked = lc, "runner unresponsive");
            }
            runner.last_checked.is_some()
        } else {
            runner.state == state::UNRESPONSIVE && !runner.is_responsive(now)
        };
        if unresponsive {
            mark_unknown(env, &runner, &mut report).await?;
        } else if runner.state == state::READY && runner.is_responsive(now) {
            recover(env, &runner, &mut report).await?;
        }
    }
    Ok(report)
}

async fn mark_unknown(
    env: &Env,
    runner: &RunnerRecord,
    report: &mut SweepReport,
) -> Result<(), ApiError> {
    let repo = env.store.sandboxes();
    for sb in repo.list_by_runner(&runner.id).await? {
        if sb.is_destroyed() || !lost_with_runner(&sb.state) {
            continue;
        }
        let mut next = sb.clone();
        next.state = "unknown".to_owned();
        next.updated_at = cove_api_types::time::now_rfc3339();
        match repo.update(&sb, &next, &OrgQuota::unlimited()).await {
            Ok(_) => {
                report.sandboxes_marked_unknown += 1;
                tracing::info!(sandbox_id = %sb.id, runner_id = %runner.id, from = %sb.state, "sandbox unknown: runner unresponsive");
            }
            Err(StoreError::Conflict { .. }) => report.skipped += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn recover(
    env: &Env,
    runner: &RunnerRecord,
    report: &mut SweepReport,
) -> Result<(), ApiError> {
    let repo = env.store.sandboxes();
    let unknown: Vec<SandboxRecord> = repo
        .list_by_runner(&runner.id)
        .await?
        .into_iter()
        .filter(|s| s.state == "unknown" && !s.is_destroyed())
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let Some(api_url) = runner.api_url.as_deref() else {
        return Ok(());
    };
    let client = RunnerClient::new(api_url, &runner.api_key);
    for sb in unknown {
        let (new_state, reason) = match client.get_sandbox(&sb.id).await {
            Ok(st) => {
                let s = serde_json::to_value(st.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unknown".to_owned());
                // Gone on the runner while it was not asked to go: an error, not a destroy.
                if s == "destroyed" {
                    (
                        "error".to_owned(),
                        Some("The sandbox's container is gone".to_owned()),
                    )
                } else {
                    (s, st.error_reason)
                }
            }
            Err(RunnerCallError::Status { status: 404, .. }) => (
                "error".to_owned(),
                Some("The sandbox is not on its runner".to_owned()),
            ),
            Err(e) => {
                tracing::warn!(sandbox_id = %sb.id, runner_id = %runner.id, error = %e, "runner unreachable during recovery");
                report.skipped += 1;
                continue;
            }
        };
        if new_state == "unknown" {
            continue;
        }
        let mut next = sb.clone();
        next.error_reason = if new_state == "error" { reason } else { None };
        next.recoverable = false;
        next.state = new_state;
        next.updated_at = cove_api_types::time::now_rfc3339();
        match repo.update(&sb, &next, &OrgQuota::unlimited()).await {
            Ok(_) => {
                report.sandboxes_recovered += 1;
                tracing::info!(sandbox_id = %sb.id, runner_id = %runner.id, state = %next.state, "sandbox state recovered");
            }
            Err(StoreError::Conflict { .. }) => report.skipped += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
