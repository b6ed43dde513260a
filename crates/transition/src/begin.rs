//! Step 1: the conditional write that claims a sandbox for one state change.

use cove_api_types::sandbox::BackupState;
use cove_store::orgs::OrgQuota;
use cove_store::sandboxes::{QuotaCheck, SandboxAction, SandboxRecord, Transition};
use cove_store::{Conflict, Store, StoreError};

use crate::action::{Push, describe};
use crate::error::TransitionError;

/// The row `prev` becomes when `action` begins at `now` (RFC 3339): the desired and transitional
/// state of [`describe`], the next generation, the transition. A row with a transition in flight
/// refuses, except for a forced destroy, which takes over. The caller adds what is particular to
/// its action (a new preview token, the runner and image of a restore) before [`begin`].
pub fn prepare(
    prev: &SandboxRecord,
    action: SandboxAction,
    force: bool,
    now: &str,
) -> Result<SandboxRecord, TransitionError> {
    let takeover = action == SandboxAction::Destroy && force;
    if prev.transition.is_some() && !takeover {
        return Err(TransitionError::InProgress);
    }
    let d = describe(action);
    let mut next = prev.clone();
    if d.bumps_generation {
        next.generation += 1;
    }
    if let Some(desired) = d.desired {
        next.desired_state = desired;
    }
    if let Some(state) = d.transitional {
        next.state = state;
        next.error_reason = None;
        next.recoverable = false;
    }
    match d.push {
        Push::Backup | Push::Archive => {
            next.backup_state = BackupState::InProgress;
            // This backup, not a periodic one of the sweep, now decides the outcome.
            next.backup_started_at = None;
            // The backup will be on the sandbox's runner: remember it now, so that it is removed
            // with the sandbox even if this instance dies before the outcome is written.
            next.backup_runner_id = prev.runner_id.clone();
        }
        Push::Destroy if next.backup_runner_id.is_none() && prev.backup_snapshot.is_some() => {
            // A backup recorded before backup runners were.
            next.backup_runner_id = prev.runner_id.clone();
        }
        Push::Destroy | Push::Spec(_) => {}
    }
    next.transition = Some(Transition::begin(action, next.generation, now, force));
    next.pending = true;
    next.updated_at = now.to_owned();
    Ok(next)
}

/// Writes `next` (from [`prepare`]) over `prev`, conditional on `prev`'s version. A lost race is
/// [`TransitionError::InProgress`]; `check` is the quota policy of the write (user actions:
/// `Enforce`).
pub async fn begin(
    store: &Store,
    prev: &SandboxRecord,
    next: &SandboxRecord,
    check: QuotaCheck<'_>,
) -> Result<SandboxRecord, TransitionError> {
    let rec = store.sandboxes().update(prev, next, check).await?;
    if let Some(t) = &rec.transition {
        tracing::info!(sandbox = %rec.id, action = %t.action, generation = t.generation, "transition begun");
    }
    Ok(rec)
}

/// Writes a new sandbox whose [`SandboxRecord::transition`] is its create (the caller sets it
/// with [`Transition::begin`]), within `quota`.
pub async fn begin_create(
    store: &Store,
    rec: &SandboxRecord,
    quota: &OrgQuota,
) -> Result<SandboxRecord, TransitionError> {
    Ok(store.sandboxes().create(rec, quota).await?)
}

/// Counts one more push of `rec`'s transition at `now` (the sweep, before it pushes again):
/// `None` when another sweep or the settle got there first.
pub async fn claim(
    store: &Store,
    rec: &SandboxRecord,
    now: &str,
) -> Result<Option<SandboxRecord>, TransitionError> {
    let Some(t) = &rec.transition else {
        return Ok(None);
    };
    let mut next = rec.clone();
    let mut t = t.clone();
    t.attempts += 1;
    t.pushed_at = now.to_owned();
    next.transition = Some(t);
    next.updated_at = now.to_owned();
    match store
        .sandboxes()
        .update(rec, &next, QuotaCheck::Record)
        .await
    {
        Ok(r) => Ok(Some(r)),
        Err(StoreError::Conflict {
            conflict: Conflict::Changed | Conflict::Contention,
            ..
        }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cove_api_types::ids::{OrganizationId, RunnerId, SandboxId};
    use cove_api_types::sandbox::{SandboxDesiredState, SandboxState};

    fn rec() -> SandboxRecord {
        let mut r = SandboxRecord::new(
            SandboxId::new_random(),
            OrganizationId::new_random(),
            "n",
            "img",
            "t0",
        );
        r.state = SandboxState::Started;
        r.generation = 3;
        r.runner_id = Some(RunnerId::new_random());
        r
    }

    #[test]
    fn prepare_applies_the_description_and_refuses_a_second_transition() {
        let stop = prepare(&rec(), SandboxAction::Stop, true, "t1").unwrap();
        assert_eq!(
            (
                stop.state,
                stop.desired_state,
                stop.generation,
                stop.pending
            ),
            (
                SandboxState::Stopping,
                SandboxDesiredState::Stopped,
                4,
                true
            )
        );
        let t = stop.transition.clone().unwrap();
        assert_eq!(
            (t.action, t.generation, t.attempts, t.force),
            (SandboxAction::Stop, 4, 1, true)
        );
        assert!(matches!(
            prepare(&stop, SandboxAction::Start, false, "t2"),
            Err(TransitionError::InProgress)
        ));
        let taken = prepare(&stop, SandboxAction::Destroy, true, "t2").unwrap();
        assert_eq!(taken.transition.unwrap().action, SandboxAction::Destroy);
        let backup = prepare(&rec(), SandboxAction::Backup, false, "t1").unwrap();
        assert_eq!(
            (backup.state, backup.generation),
            (SandboxState::Started, 3)
        );
        assert_eq!(backup.backup_state, BackupState::InProgress);
        assert_eq!(backup.backup_runner_id, backup.runner_id);
    }
}
