//! Step 3: the outcome written while the row still carries its transition.

use cove_api_types::sandbox::{BackupState, SandboxDesiredState, SandboxState};
use cove_store::sandboxes::{QuotaCheck, SandboxAction, SandboxRecord, Transition, observed_state};
use cove_store::{Conflict, Store, StoreError};

use crate::action::{Push, describe};
use crate::error::TransitionError;
use crate::push::{self, Access, Bounds, Observed, Outcome};

/// How often a write is tried again after losing a version race.
const MAX_RETRIES: usize = 8;

/// Where a run left the sandbox.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// The row as it now stands: settled, or still in flight (its transitional state).
    Row(Box<SandboxRecord>),
    /// The runner refused the create: the row is gone, its usage returned.
    Discarded { reason: String },
}

/// Pushes `rec`'s transition (as begun or claimed) within `bounds` and settles what came of it.
pub async fn run(
    store: &Store,
    rec: &SandboxRecord,
    bounds: &Bounds,
) -> Result<Settled, TransitionError> {
    run_with(store, rec, bounds, &Access::default()).await
}

/// [`run`] with what the runner may need besides the spec ([`Access`]: the image's pull
/// credentials, where a backup goes).
pub async fn run_with(
    store: &Store,
    rec: &SandboxRecord,
    bounds: &Bounds,
    access: &Access,
) -> Result<Settled, TransitionError> {
    let Some(t) = rec.transition.clone() else {
        return Ok(Settled::Row(Box::new(rec.clone())));
    };
    let out = push::push(store, rec, &t, bounds, access).await;
    tracing::debug!(sandbox = %rec.id, action = %t.action, outcome = ?out, "pushed");
    settle(store, rec, &t, out).await
}

/// Gives up on `rec`'s transition: it settles as failed with `reason` (a forced destroy still
/// destroys).
pub async fn expire(
    store: &Store,
    rec: &SandboxRecord,
    reason: String,
) -> Result<Settled, TransitionError> {
    let Some(t) = rec.transition.clone() else {
        return Ok(Settled::Row(Box::new(rec.clone())));
    };
    tracing::warn!(sandbox = %rec.id, action = %t.action, attempts = t.attempts, %reason, "transition expired");
    settle(store, rec, &t, Outcome::Failed(reason)).await
}

/// Writes what `out` means for transition `t` of the sandbox `begun` was when it began.
pub async fn settle(
    store: &Store,
    begun: &SandboxRecord,
    t: &Transition,
    out: Outcome,
) -> Result<Settled, TransitionError> {
    let forced_destroy = t.action == SandboxAction::Destroy && t.force;
    if out == Outcome::InFlight && !forced_destroy {
        return Ok(Settled::Row(Box::new(begun.clone())));
    }
    if let (SandboxAction::Create, Outcome::Refused { message, .. }) = (t.action, &out) {
        return discard(store, begun, t, message).await;
    }
    let now = cove_api_types::time::now_rfc3339();
    let ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let rec = write(store, begun, t, |r| apply(r, t, &out, &now, ms)).await?;
    tracing::info!(sandbox = %rec.id, action = %t.action, state = rec.state.as_str(), "transition settled");
    Ok(Settled::Row(Box::new(rec)))
}

/// Applies `f` to the current row while `t` is still its transition (re-reading on a lost
/// version race); answers the row as it now stands.
async fn write(
    store: &Store,
    begun: &SandboxRecord,
    t: &Transition,
    f: impl Fn(&mut SandboxRecord),
) -> Result<SandboxRecord, TransitionError> {
    let repo = store.sandboxes();
    for _ in 0..MAX_RETRIES {
        let cur = repo.get(&begun.id).await?.ok_or(TransitionError::Gone)?;
        if !cur.transition.as_ref().is_some_and(|c| c.same(t)) {
            return Ok(cur);
        }
        let mut next = cur.clone();
        f(&mut next);
        // What the runner did is recorded whatever the quota (the action was admitted).
        match repo.update(&cur, &next, QuotaCheck::Record).await {
            Ok(r) => return Ok(r),
            Err(StoreError::Conflict {
                conflict: Conflict::Changed | Conflict::Contention,
                ..
            }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(TransitionError::InProgress)
}

/// A create the runner refused: the row goes (with its usage, name and runner count).
async fn discard(
    store: &Store,
    begun: &SandboxRecord,
    t: &Transition,
    reason: &str,
) -> Result<Settled, TransitionError> {
    let repo = store.sandboxes();
    for _ in 0..MAX_RETRIES {
        let cur = repo.get(&begun.id).await?.ok_or(TransitionError::Gone)?;
        if !cur.transition.as_ref().is_some_and(|c| c.same(t)) {
            return Ok(Settled::Row(Box::new(cur)));
        }
        match repo.discard(&cur).await {
            Ok(()) => {
                tracing::info!(sandbox = %cur.id, %reason, "create refused by the runner: row discarded");
                return Ok(Settled::Discarded {
                    reason: reason.to_owned(),
                });
            }
            Err(StoreError::Conflict {
                conflict: Conflict::Changed | Conflict::Contention,
                ..
            }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(TransitionError::InProgress)
}

/// The sandbox's state once `t` ended with `out`.
fn apply(r: &mut SandboxRecord, t: &Transition, out: &Outcome, now: &str, ms: i128) {
    r.transition = None;
    r.pending = false;
    r.updated_at = now.to_owned();
    let failure = match out {
        Outcome::Failed(m) | Outcome::Refused { message: m, .. } => Some(m.as_str()),
        _ => None,
    };
    match (describe(t.action).push, out) {
        (Push::Spec(_), Outcome::Reached(o)) => observed(r, o),
        (Push::Backup, Outcome::BackedUp { image }) => backed_up(r, image, now),
        (Push::Archive, Outcome::BackedUp { image }) => {
            backed_up(r, image, now);
            set_state(r, SandboxState::Archived, None);
            r.runner_id = None;
            r.container_image = None;
        }
        (Push::Destroy, Outcome::Removed) => destroyed(r, ms),
        (Push::Destroy, _) if t.force => {
            tracing::warn!(sandbox = %r.id, outcome = ?out, "forced delete without the runner");
            destroyed(r, ms);
        }
        (Push::Backup, _) => {
            tracing::warn!(sandbox = %r.id, error = ?failure, "backup failed");
            r.backup_state = BackupState::Error;
        }
        (push, _) => {
            if push == Push::Archive {
                r.backup_state = BackupState::Error;
            }
            let reason = failure.unwrap_or("The runner answered unexpectedly");
            set_state(r, SandboxState::Error, Some(reason.to_owned()));
        }
    }
}

fn set_state(r: &mut SandboxRecord, state: SandboxState, error: Option<String>) {
    r.state = state;
    r.error_reason = if state == SandboxState::Error {
        error
    } else {
        None
    };
    r.recoverable = false;
}

/// What the runner reports, for a sandbox that wants `r.desired_state`: a container gone while
/// it was not asked to go is an error, not a destroy.
fn observed(r: &mut SandboxRecord, o: &Observed) {
    let state = match observed_state(o.state) {
        SandboxState::Destroyed if r.desired_state != SandboxDesiredState::Destroyed => {
            SandboxState::Error
        }
        s => s,
    };
    let reason = o
        .error_reason
        .clone()
        .or_else(|| Some("The sandbox's container is gone".into()));
    set_state(r, state, reason);
    if o.daemon_version.is_some() {
        r.daemon_version.clone_from(&o.daemon_version);
    }
    if o.image.is_some() {
        r.container_image.clone_from(&o.image);
    }
}

fn backed_up(r: &mut SandboxRecord, image: &str, now: &str) {
    r.backup_state = BackupState::Completed;
    r.backup_snapshot = Some(image.to_owned());
    r.backup_created_at = Some(now.to_owned());
}

/// Destroyed: the name is freed (renamed as Daytona does), the runner let go; its backups, if
/// any, are still to be removed ([`remove_backups`], `backupRunnerId` stays until then).
fn destroyed(r: &mut SandboxRecord, ms: i128) {
    set_state(r, SandboxState::Destroyed, None);
    r.name = format!("DESTROYED_{}_{ms}", r.name);
    r.runner_id = None;
    r.container_image = None;
    r.backup_state = BackupState::None;
}

/// A queued sandbox no runner took within its `queueTimeout`, at `now`: destroyed (its name and
/// quota freed) with `queueTimedOutAt` set, which keeps it readable by id for a day.
pub fn timed_out_in_queue(r: &mut SandboxRecord, now: time::OffsetDateTime) {
    let ms = now.unix_timestamp_nanos() / 1_000_000;
    destroyed(r, ms);
    r.desired_state = SandboxDesiredState::Destroyed;
    r.pending = false;
    r.queued_until = None;
    r.queue_timed_out_at = Some(cove_api_types::time::format_rfc3339(now));
    r.updated_at = cove_api_types::time::format_rfc3339(now);
}

/// Removes the backups of a destroyed sandbox from their runner and forgets that runner (also
/// when the runner itself is gone). `false`: not done now (the sweep tries again).
pub async fn remove_backups(
    store: &Store,
    rec: &SandboxRecord,
    bounds: &Bounds,
) -> Result<bool, TransitionError> {
    let Some(runner_id) = rec.backup_runner_id.clone().filter(|_| rec.is_destroyed()) else {
        return Ok(true);
    };
    if let Some(runner) = store.runners().get(&runner_id).await? {
        let c = match push::client(&runner, bounds.total) {
            Ok(c) => c,
            Err(m) => {
                tracing::warn!(sandbox = %rec.id, error = %m, "backups not removed");
                return Ok(false);
            }
        };
        match c.delete_backups(rec.id.as_str()).await {
            Ok(removal) => {
                tracing::info!(sandbox = %rec.id, runner = %runner_id, removed = ?removal.removed, deferred = ?removal.deferred, "backups removed")
            }
            Err(e) => {
                tracing::warn!(sandbox = %rec.id, runner = %runner_id, error = %e, "backups not removed");
                return Ok(false);
            }
        }
    }
    forget_backup_runner(store, rec).await?;
    Ok(true)
}

async fn forget_backup_runner(store: &Store, rec: &SandboxRecord) -> Result<(), TransitionError> {
    let repo = store.sandboxes();
    for _ in 0..MAX_RETRIES {
        let Some(cur) = repo.get(&rec.id).await? else {
            return Ok(());
        };
        if !cur.is_destroyed() || cur.backup_runner_id != rec.backup_runner_id {
            return Ok(());
        }
        let mut next = cur.clone();
        next.backup_runner_id = None;
        next.backup_snapshot = None;
        next.updated_at = cove_api_types::time::now_rfc3339();
        match repo.update(&cur, &next, QuotaCheck::Record).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict {
                conflict: Conflict::Changed | Conflict::Contention,
                ..
            }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(TransitionError::InProgress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cove_api_types::ids::{OrganizationId, RunnerId, SandboxId};

    fn begun(action: SandboxAction, force: bool) -> (SandboxRecord, Transition) {
        let mut r = SandboxRecord::new(
            SandboxId::new_random(),
            OrganizationId::new_random(),
            "box",
            "img",
            "t0",
        );
        r.state = SandboxState::Started;
        r.runner_id = Some(RunnerId::new_random());
        let next = crate::prepare(&r, action, force, "t1").unwrap();
        let t = next.transition.clone().unwrap();
        (next, t)
    }

    fn settled(action: SandboxAction, force: bool, out: &Outcome) -> SandboxRecord {
        let (mut r, t) = begun(action, force);
        apply(&mut r, &t, out, "t2", 42);
        assert!(r.transition.is_none() && !r.pending, "{r:?}");
        r
    }

    #[test]
    fn each_outcome_settles_as_its_action_says() {
        let started = Observed {
            state: cove_runner_api::SandboxState::Started,
            error_reason: None,
            daemon_version: Some("v1".into()),
            image: Some("img".into()),
        };
        let r = settled(SandboxAction::Start, false, &Outcome::Reached(started));
        assert_eq!(
            (r.state, r.daemon_version.as_deref()),
            (SandboxState::Started, Some("v1"))
        );
        let gone = Observed {
            state: cove_runner_api::SandboxState::Destroyed,
            error_reason: None,
            daemon_version: None,
            image: None,
        };
        let r = settled(SandboxAction::Stop, false, &Outcome::Reached(gone));
        assert_eq!(r.state, SandboxState::Error, "gone unasked is an error");
        let image = Outcome::BackedUp {
            image: "cove-backup/x:1".into(),
        };
        let r = settled(SandboxAction::Archive, false, &image);
        assert_eq!(
            (r.state, r.runner_id.clone()),
            (SandboxState::Archived, None)
        );
        assert_eq!(r.backup_snapshot.as_deref(), Some("cove-backup/x:1"));
        assert!(r.backup_runner_id.is_some(), "the backup's runner is kept");
        let r = settled(SandboxAction::Backup, false, &Outcome::Failed("x".into()));
        assert_eq!(
            (r.state, r.backup_state),
            (SandboxState::Started, BackupState::Error)
        );
        let r = settled(
            SandboxAction::Destroy,
            false,
            &Outcome::Failed("down".into()),
        );
        assert_eq!(
            (r.state, r.error_reason.as_deref()),
            (SandboxState::Error, Some("down"))
        );
        let r = settled(SandboxAction::Destroy, true, &Outcome::InFlight);
        assert_eq!(
            (r.state, r.name.as_str()),
            (SandboxState::Destroyed, "DESTROYED_box_42")
        );
        let r = settled(SandboxAction::Create, false, &Outcome::Failed("no".into()));
        assert_eq!(r.state, SandboxState::Error);
    }
}
