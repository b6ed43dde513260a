//! Sweep step 3: what is due, read from the sandboxes' due-time index (never a scan): late
//! transitions ([`crate::transitions`]) and the interval rules ([`crate::intervals`]).
//!
//! The index is eventually consistent and its keys may be early (activity moves a due time
//! later without rewriting the key), so each sandbox is read again and its due time computed
//! from the row: not due yet → re-indexed; due → acted on with a conditional write, which a
//! concurrent sweep or user action makes lose (counted as skipped).

use std::collections::HashMap;

use cove_api_types::ids::RunnerId;
use cove_api_types::runner::RunnerState;
use cove_edge::store_error::IntoApi;
use cove_edge::{ApiError, Env};
use cove_snapshot_jobs::JobSettings;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::SandboxRecord;
use cove_store::sandboxes::due::{DueAction, next_due};
use time::OffsetDateTime;

use crate::sweep::SweepReport;

/// Due sandboxes read per index shard and sweep (the rest wait for the next sweep).
pub const DUE_PER_SHARD: usize = 250;

/// Handles every sandbox due at `now`.
pub async fn run(
    env: &Env,
    settings: &JobSettings,
    runners: &[RunnerRecord],
    now: OffsetDateTime,
    report: &mut SweepReport,
) -> Result<(), ApiError> {
    let by_id: HashMap<&RunnerId, &RunnerRecord> = runners.iter().map(|r| (&r.id, r)).collect();
    let repo = env.store.sandboxes();
    let due = repo.list_due(now, DUE_PER_SHARD).await.api()?;
    report.due += u32::try_from(due.len()).unwrap_or(u32::MAX);
    for listed in due {
        // The index may lag: act on the row as it is now.
        let Some(cur) = repo.get(&listed.id).await.api()? else {
            continue;
        };
        let runner = cur.runner_id.as_ref().and_then(|id| by_id.get(id).copied());
        one(env, settings, &cur, runner, runners, now, report).await?;
    }
    Ok(())
}

async fn one(
    env: &Env,
    settings: &JobSettings,
    cur: &SandboxRecord,
    runner: Option<&RunnerRecord>,
    runners: &[RunnerRecord],
    now: OffsetDateTime,
    report: &mut SweepReport,
) -> Result<(), ApiError> {
    let minute = env.store.lifecycle_minute();
    let Some((at, action)) = next_due(cur, minute).filter(|(at, _)| *at <= now) else {
        if env.store.sandboxes().reindex(cur).await.api()? {
            report.reindexed += 1;
        }
        return Ok(());
    };
    // A sandbox without a runner has nothing to reach; one whose runner is gone or silent is
    // not pushed (its transitions still expire).
    let responsive = match (&cur.runner_id, runner) {
        (None, _) => true,
        (Some(_), Some(r)) => r.is_responsive(now),
        (Some(_), None) => false,
    };
    tracing::debug!(sandbox = %cur.id, ?action, due_at = %at, responsive, "sweep: due");
    match action {
        DueAction::Transition => {
            crate::transitions::one(env, settings, cur, now, responsive, report).await;
        }
        DueAction::Recover => match runner {
            Some(r) if responsive && r.state == RunnerState::Ready => {
                crate::sweep::recover(env, r, cur, report).await?;
            }
            // Asked again once the runner is back.
            _ => {}
        },
        DueAction::Place => {
            crate::queue::place(env, settings, cur, runners, now, report).await;
        }
        DueAction::Backup if responsive => {
            crate::periodic::run(env, settings, cur, runner, now, report).await;
        }
        _ if !responsive => report.skipped += 1,
        _ => crate::intervals::act(env, settings, cur, action, report).await,
    }
    Ok(())
}
