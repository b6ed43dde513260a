//! Sweep: sandboxes queued for a runner (created with `queueTimeout` while none was available)
//! are placed on one as soon as one is (their create begins as a user's would), or destroyed
//! with `queueTimedOutAt` set once `queuedUntil` passed. Both are writes conditional on the
//! row's version: a concurrent sweep or a user's delete makes them lose (counted as skipped).

use cove_api_types::time::{format_rfc3339, parse_rfc3339};
use cove_edge::Env;
use cove_snapshot_jobs::JobSettings;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::{QuotaCheck, SandboxAction, SandboxRecord, Transition};
use cove_store::scheduling::pick_runner;
use cove_transition::{SWEEP_BOUNDS, Settled};
use time::OffsetDateTime;

use crate::sweep::SweepReport;

/// Places `cur` on an available runner, or times it out.
pub async fn place(
    env: &Env,
    settings: &JobSettings,
    cur: &SandboxRecord,
    runners: &[RunnerRecord],
    now: OffsetDateTime,
    report: &mut SweepReport,
) {
    let until = cur.queued_until.as_deref().and_then(parse_rfc3339);
    if until.is_none_or(|u| now >= u) {
        let mut next = cur.clone();
        cove_transition::timed_out_in_queue(&mut next, now);
        if write(env, cur, &next, report).await.is_some() {
            report.queue_timed_out += 1;
            tracing::info!(sandbox = %cur.id, queue_timeout = ?cur.queue_timeout, "sweep: queued sandbox timed out");
        }
        return;
    }
    // Still no runner: asked again next sweep.
    let Some(runner) = pick_runner(runners, &cur.snapshot, &cur.target, now) else {
        return;
    };
    let at = format_rfc3339(now);
    let mut next = cur.clone();
    next.queued_until = None;
    next.runner_id = Some(runner.id.clone());
    next.pending = true;
    next.generation = cur.generation + 1;
    next.transition = Some(Transition::begin(
        SandboxAction::Create,
        next.generation,
        &at,
        false,
    ));
    next.updated_at = at;
    let Some(begun) = write(env, cur, &next, report).await else {
        return;
    };
    report.queued_placed += 1;
    tracing::info!(sandbox = %cur.id, runner = %runner.id, "sweep: queued sandbox placed");
    let access = crate::transitions::access(settings, &begun);
    match cove_transition::run_with(&env.store, &begun, &SWEEP_BOUNDS, &access).await {
        Ok(Settled::Row(r)) => {
            tracing::info!(sandbox = %r.id, state = r.state.as_str(), "sweep: queued create pushed");
        }
        Ok(Settled::Discarded { reason }) => {
            tracing::warn!(sandbox = %cur.id, reason = %reason, "sweep: the runner refused the queued create");
        }
        Err(e) => {
            tracing::warn!(sandbox = %cur.id, error = %e, "sweep: queued create left to its deadline");
        }
    }
}

/// Writes `next` over `cur` unless anything changed since (then skipped).
async fn write(
    env: &Env,
    cur: &SandboxRecord,
    next: &SandboxRecord,
    report: &mut SweepReport,
) -> Option<SandboxRecord> {
    match env
        .store
        .sandboxes()
        .update_if_idle(cur, next, QuotaCheck::Record)
        .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            report.skipped += 1;
            tracing::debug!(sandbox = %cur.id, error = %e, "sweep: queued sandbox not written");
            None
        }
    }
}
