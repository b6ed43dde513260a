//! The interval rules (CONTRACT §4.4, ARCH §7), acted on once [`crate::due`] found them due:
//!
//! - auto-stop: started and idle past `autoStopInterval` minutes (never while its daemon reports
//!   it busy) → stopped; an ephemeral sandbox (`autoDeleteInterval = 0`) is deleted instead;
//! - auto-archive: stopped and idle past `autoArchiveInterval` → archived;
//! - auto-delete: stopped and idle past `autoDeleteInterval` → deleted;
//! - TTL: past `autoDestroyAt` → deleted, whatever the state.
//!
//! Each begins its transition with one write conditional on the row's version **and** its
//! `lastActivityAt` (activity recorded since the row was read wins), then pushes it as a user's
//! action would; what is not settled in time the next sweeps settle.

use cove_edge::Env;
use cove_snapshot_jobs::JobSettings;
use cove_store::sandboxes::due::DueAction;
use cove_store::sandboxes::{QuotaCheck, SandboxAction, SandboxRecord};
use cove_store::{Conflict, StoreError};
use cove_transition::{SWEEP_BOUNDS, Settled};

use crate::sweep::SweepReport;

/// The state change a due rule asks for.
fn action_of(due: DueAction, rec: &SandboxRecord) -> Option<SandboxAction> {
    match due {
        DueAction::AutoStop if rec.is_ephemeral() => Some(SandboxAction::Destroy),
        DueAction::AutoStop => Some(SandboxAction::Stop),
        DueAction::AutoArchive => Some(SandboxAction::Archive),
        DueAction::AutoDelete | DueAction::Ttl => Some(SandboxAction::Destroy),
        DueAction::Transition | DueAction::Recover | DueAction::Backup | DueAction::Place => None,
    }
}

/// Begins and pushes what `due` asks of `cur`.
pub async fn act(
    env: &Env,
    settings: &JobSettings,
    cur: &SandboxRecord,
    due: DueAction,
    report: &mut SweepReport,
) {
    let Some(action) = action_of(due, cur) else {
        return;
    };
    let now = cove_api_types::time::now_rfc3339();
    let Ok(next) = cove_transition::prepare(cur, action, false, &now) else {
        report.skipped += 1;
        return;
    };
    let begun = match env
        .store
        .sandboxes()
        .update_if_idle(cur, &next, QuotaCheck::Record)
        .await
    {
        Ok(r) => r,
        Err(StoreError::Conflict {
            conflict: Conflict::Changed | Conflict::Contention,
            ..
        }) => {
            report.skipped += 1;
            return;
        }
        Err(e) => {
            report.skipped += 1;
            tracing::warn!(sandbox = %cur.id, error = %e, "sweep: rule not begun");
            return;
        }
    };
    count(report, due, cur);
    tracing::info!(sandbox = %cur.id, rule = ?due, action = %action, "sweep: lifecycle rule fired");
    let access = crate::transitions::access(settings, &begun);
    match cove_transition::run_with(&env.store, &begun, &SWEEP_BOUNDS, &access).await {
        Ok(Settled::Row(r)) => {
            tracing::info!(sandbox = %r.id, state = r.state.as_str(), in_flight = r.transition.is_some(), "sweep: rule pushed");
            if r.has_backups_to_remove() {
                remove_backups(env, &r).await;
            }
        }
        Ok(Settled::Discarded { .. }) => {}
        Err(e) => {
            tracing::warn!(sandbox = %cur.id, error = %e, "sweep: rule left to the next sweep")
        }
    }
}

fn count(report: &mut SweepReport, due: DueAction, rec: &SandboxRecord) {
    match due {
        DueAction::AutoStop if rec.is_ephemeral() => report.auto_deleted += 1,
        DueAction::AutoStop => report.auto_stopped += 1,
        DueAction::AutoArchive => report.auto_archived += 1,
        DueAction::AutoDelete => report.auto_deleted += 1,
        DueAction::Ttl => report.ttl_destroyed += 1,
        DueAction::Transition | DueAction::Recover | DueAction::Backup | DueAction::Place => {}
    }
}

/// Best effort: what is left the backup-removal step retries.
async fn remove_backups(env: &Env, rec: &SandboxRecord) {
    if let Err(e) = cove_transition::remove_backups(&env.store, rec, &SWEEP_BOUNDS).await {
        tracing::warn!(sandbox = %rec.id, error = %e, "sweep: backups left to the next sweep");
    }
}
