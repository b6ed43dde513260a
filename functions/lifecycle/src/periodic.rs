//! Sweep step 3, periodic backups (ARCH §5; Daytona backs started sandboxes up hourly), so that a
//! lost runner loses little: a started, non-ephemeral sandbox whose last backup is
//! `BACKUP_INTERVAL_MINUTES` lifecycle minutes old (or that has none since its create) is backed
//! up in the background, **without a transition**: its state and `pending` do not change, so
//! user actions go on meanwhile (the agent serialises its own work per sandbox).
//!
//! 1. begin: `backupState` → `InProgress`, `backupStartedAt` → the sweep's now (one write
//!    conditional on the row's version: a concurrent sweep or user action wins);
//! 2. ask the agent for a backup keyed `periodic-<backupStartedAt>` (pushed to the organization's
//!    project of the internal registry), for at most [`ASK`]: the agent goes on when the call
//!    ends;
//! 3. a later sweep (due `PUSH_DEADLINE` after `backupStartedAt`) asks again with the same key,
//!    which joins the backup or answers its result; past `cove_transition::MAX_DURATION` it is
//!    given up (`Error`, retried `BACKUP_RETRY_MINUTES` later);
//! 4. the outcome is written only while the row still carries that backup: an archive or a user's
//!    backup begun meanwhile clears `backupStartedAt` and decides instead.

use std::time::Duration;

use cove_api_types::sandbox::BackupState;
use cove_api_types::time::{format_rfc3339, parse_rfc3339};
use cove_edge::Env;
use cove_edge::runner_client::ClientError;
use cove_snapshot_jobs::JobSettings;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::{QuotaCheck, SandboxRecord};
use cove_store::{Conflict, StoreError};
use time::OffsetDateTime;

use crate::sweep::SweepReport;

/// How long one sweep waits for the agent's answer about one backup.
const ASK: Duration = Duration::from_secs(3);

/// Tries of a write that loses version races (activity reports bump the version often).
const WRITE_TRIES: usize = 8;

/// Begins the periodic backup of `cur` or asks `runner` how the one in progress went.
pub(crate) async fn run(
    env: &Env,
    settings: &JobSettings,
    cur: &SandboxRecord,
    runner: Option<&RunnerRecord>,
    now: OffsetDateTime,
    report: &mut SweepReport,
) {
    let at = format_rfc3339(now);
    let begun = match cur.backup_started_at.as_deref() {
        Some(begun) => {
            let since = parse_rfc3339(begun).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            if since + cove_transition::MAX_DURATION <= now {
                let reason = "The periodic backup did not complete in time".to_owned();
                finish(env, cur, begun, Err(reason), &at).await;
                return;
            }
            begun.to_owned()
        }
        None => match begin(env, cur, &at).await {
            Some(()) => {
                report.backups_started += 1;
                at.clone()
            }
            None => {
                report.skipped += 1;
                return;
            }
        },
    };
    let Some(runner) = runner.filter(|_| cur.runner_id.is_some()) else {
        let reason = "The sandbox has no runner to back it up".to_owned();
        finish(env, cur, &begun, Err(reason), &at).await;
        return;
    };
    let client = match cove_transition::client(runner, ASK) {
        Ok(c) => c,
        Err(reason) => return finish(env, cur, &begun, Err(reason), &at).await,
    };
    let req = cove_runner_api::BackupRequest {
        key: format!("periodic-{begun}"),
        push: crate::transitions::access(settings, cur).backup_push,
        ..cove_runner_api::BackupRequest::default()
    };
    match client.backup_sandbox(cur.id.as_str(), &req).await {
        Ok(b) => {
            report.backups_completed += 1;
            finish(env, cur, &begun, Ok(b.image), &at).await;
        }
        // Still running, or not reachable now: the next sweep asks again.
        Err(ClientError::NoAnswer { .. } | ClientError::Unreachable { .. }) => {}
        Err(e) => finish(env, cur, &begun, Err(e.to_string()), &at).await,
    }
}

async fn begin(env: &Env, cur: &SandboxRecord, at: &str) -> Option<()> {
    let mut next = cur.clone();
    next.backup_state = BackupState::InProgress;
    next.backup_started_at = Some(at.to_owned());
    next.backup_runner_id.clone_from(&cur.runner_id);
    match env
        .store
        .sandboxes()
        .update(cur, &next, QuotaCheck::Record)
        .await
    {
        Ok(_) => {
            tracing::info!(sandbox = %cur.id, "sweep: periodic backup begun");
            Some(())
        }
        Err(e) => {
            tracing::debug!(sandbox = %cur.id, error = %e, "sweep: periodic backup not begun");
            None
        }
    }
}

/// Writes the outcome of the periodic backup begun at `begun` while the row still carries it
/// (re-read on a lost version race).
async fn finish(
    env: &Env,
    cur: &SandboxRecord,
    begun: &str,
    outcome: Result<String, String>,
    at: &str,
) {
    let repo = env.store.sandboxes();
    let mut row = cur.clone();
    for _ in 0..WRITE_TRIES {
        if row.backup_state != BackupState::InProgress
            || row.backup_started_at.as_deref() != Some(begun)
        {
            return;
        }
        let mut next = row.clone();
        next.backup_started_at = None;
        match &outcome {
            Ok(image) => {
                next.backup_state = BackupState::Completed;
                next.backup_snapshot = Some(image.clone());
                next.backup_created_at = Some(at.to_owned());
            }
            Err(reason) => {
                next.backup_state = BackupState::Error;
                next.updated_at = at.to_owned();
                tracing::warn!(sandbox = %row.id, %reason, "sweep: periodic backup failed");
            }
        }
        match repo.update(&row, &next, QuotaCheck::Record).await {
            Ok(_) => {
                tracing::info!(sandbox = %row.id, ok = outcome.is_ok(), "sweep: periodic backup done");
                return;
            }
            Err(StoreError::Conflict {
                conflict: Conflict::Changed | Conflict::Contention,
                ..
            }) => match repo.get(&row.id).await {
                Ok(Some(fresh)) => row = fresh,
                _ => return,
            },
            Err(e) => {
                tracing::warn!(sandbox = %row.id, error = %e, "sweep: periodic backup outcome not written");
                return;
            }
        }
    }
}
