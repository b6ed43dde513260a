//! When the lifecycle sweep has something to do with a sandbox, from the row alone: the key of
//! the due-time index (GSI3 `SANDBOXDUE#<shard>` / `<dueAt>#<id>`), and what is due.
//!
//! - a state change in flight: when it is late ([`PUSH_DEADLINE`] after its last push);
//! - started (desired `started`), `autoStopInterval > 0` and not busy: idle that many minutes
//!   (ephemeral: deleted, else stopped);
//! - stopped (desired `stopped`): `autoDeleteInterval ≥ 0` minutes idle → deleted,
//!   `autoArchiveInterval` minutes idle → archived, whichever comes first;
//! - `unknown` (its runner went silent): at once (the sweep asks the runner once it is back);
//! - queued for a runner (`queueTimeout` on create): at once, every sweep (placed on a runner
//!   that is available, or destroyed once `queuedUntil` passed);
//! - a TTL (`autoDestroyAt`): then, whatever the state (the earliest of it and the rest);
//! - started (desired `started`), not ephemeral: a periodic backup [`BACKUP_INTERVAL_MINUTES`]
//!   after the last one (or the create), [`BACKUP_RETRY_MINUTES`] after a failed one; a periodic
//!   backup in progress (any state): [`PUSH_DEADLINE`] after it began, and again until it ends.
//!
//! Idle since the later of `lastActivityAt` and `lastBusyAt`. Activity only moves a due time
//! later, and [`super::SandboxRepo::touch_activity`] does not rewrite the key: an index key is
//! never later than the real due time, so the sweep, which reads the row again before acting,
//! re-indexes a sandbox that turns out not to be due ([`super::SandboxRepo::reindex`]).

use cove_api_types::sandbox::{BackupState, SandboxDesiredState, SandboxState};
use cove_api_types::time::{format_rfc3339, parse_rfc3339};
use time::{Duration, OffsetDateTime};

use super::SandboxRecord;

/// A transition not settled this long after its last push is late (the lifecycle sweep pushes it
/// again; `cove_transition::PUSH_DEADLINE` is this value).
pub const PUSH_DEADLINE: Duration = Duration::seconds(30);

/// Partitions of the due-time index (a sweep queries each).
pub const SHARDS: u8 = 4;

/// The longest `autoArchiveInterval` (30 days, in minutes); 0 means this maximum.
pub const MAX_AUTO_ARCHIVE_MINUTES: i64 = 43_200;

/// Lifecycle minutes between periodic backups of a started sandbox (Daytona: hourly).
pub const BACKUP_INTERVAL_MINUTES: i64 = 60;

/// Lifecycle minutes after a failed backup before a periodic one is tried again.
pub const BACKUP_RETRY_MINUTES: i64 = 10;

/// What the sweep does with a sandbox once it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueAction {
    /// Its transition is late: push it again or give up.
    Transition,
    /// Idle past `autoStopInterval` (an ephemeral one is deleted instead).
    AutoStop,
    /// Stopped past `autoArchiveInterval`.
    AutoArchive,
    /// Stopped past `autoDeleteInterval`.
    AutoDelete,
    /// Its runner lost track of it (`unknown`): ask the runner once it is back.
    Recover,
    /// A periodic backup: begin one, or ask the runner how the one in progress went.
    Backup,
    /// Its TTL (`autoDestroyAt`) passed: deleted, whatever its state.
    Ttl,
    /// Queued for a runner: place it, or destroy it once its queue timeout passed.
    Place,
}

/// The next thing due for `rec` and when, one lifecycle minute lasting `minute`; `None`: nothing
/// is (the sandbox is not in the index).
pub fn next_due(rec: &SandboxRecord, minute: Duration) -> Option<(OffsetDateTime, DueAction)> {
    if rec.is_destroyed() {
        return None;
    }
    if let Some(t) = &rec.transition {
        let pushed = parse_rfc3339(&t.pushed_at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        return Some((pushed + PUSH_DEADLINE, DueAction::Transition));
    }
    if rec.state == SandboxState::Unknown && rec.runner_id.is_some() {
        let since = parse_rfc3339(&rec.updated_at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        return Some((since, DueAction::Recover));
    }
    if rec.is_queued() {
        let since = parse_rfc3339(&rec.created_at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        return Some((since, DueAction::Place));
    }
    if rec.pending {
        return None;
    }
    let ttl = rec.auto_destroy_at.as_deref().map(|s| {
        (
            parse_rfc3339(s).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            DueAction::Ttl,
        )
    });
    let periodic = periodic_backup(rec, minute);
    if let Some(asked) = periodic.filter(|_| rec.backup_started_at.is_some()) {
        return earliest(ttl, Some(asked));
    }
    earliest(ttl, interval_rule(rec, minute, periodic))
}

/// What the interval rules (and the periodic backup, `periodic`) have due for `rec`.
fn interval_rule(
    rec: &SandboxRecord,
    minute: Duration,
    periodic: Option<(OffsetDateTime, DueAction)>,
) -> Option<(OffsetDateTime, DueAction)> {
    let idle = idle_since(rec);
    // An interval too long to reach is never due.
    let after = |mins: i64| {
        let span = minute.checked_mul(i32::try_from(mins).ok()?)?;
        idle.checked_add(span)
    };
    match (rec.state, rec.desired_state) {
        (SandboxState::Started, SandboxDesiredState::Started) => {
            let stop = (rec.auto_stop_interval > 0 && !rec.busy)
                .then(|| after(rec.auto_stop_interval))
                .flatten()
                .map(|at| (at, DueAction::AutoStop));
            earliest(stop, periodic)
        }
        (SandboxState::Stopped, SandboxDesiredState::Stopped) => {
            let delete = (rec.auto_delete_interval >= 0)
                .then(|| after(rec.auto_delete_interval))
                .flatten()
                .map(|at| (at, DueAction::AutoDelete));
            let archive = (rec.auto_archive_interval >= 0 && rec.runner_id.is_some())
                .then(|| after(archive_minutes(rec)))
                .flatten()
                .map(|at| (at, DueAction::AutoArchive));
            earliest(delete, archive)
        }
        _ => None,
    }
}

/// When a TTL of `minutes` set at `now` destroys a sandbox, one lifecycle minute lasting
/// `minute`; `None`: no TTL (0), or one too long to reach.
pub fn ttl_deadline(now: OffsetDateTime, minutes: i64, minute: Duration) -> Option<String> {
    if minutes <= 0 {
        return None;
    }
    let span = minute.checked_mul(i32::try_from(minutes).ok()?)?;
    now.checked_add(span).map(format_rfc3339)
}

/// The earlier of two due times (the first on a tie).
fn earliest(
    a: Option<(OffsetDateTime, DueAction)>,
    b: Option<(OffsetDateTime, DueAction)>,
) -> Option<(OffsetDateTime, DueAction)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The periodic backup due for `rec`: asking about the one in progress, in any state;
/// otherwise, for a started non-ephemeral sandbox, the next one.
fn periodic_backup(rec: &SandboxRecord, minute: Duration) -> Option<(OffsetDateTime, DueAction)> {
    let time = |s: &str| parse_rfc3339(s).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    if let Some(begun) = &rec.backup_started_at {
        return Some((time(begun) + PUSH_DEADLINE, DueAction::Backup));
    }
    let running = rec.state == SandboxState::Started
        && rec.desired_state == SandboxDesiredState::Started
        && !rec.is_ephemeral();
    if !running
        || matches!(
            rec.backup_state,
            BackupState::InProgress | BackupState::Pending
        )
    {
        return None;
    }
    let (since, mins) = match rec.backup_state {
        BackupState::Error => (&rec.updated_at, BACKUP_RETRY_MINUTES),
        _ => (
            rec.backup_created_at.as_ref().unwrap_or(&rec.created_at),
            BACKUP_INTERVAL_MINUTES,
        ),
    };
    let span = minute.checked_mul(i32::try_from(mins).ok()?)?;
    time(since)
        .checked_add(span)
        .map(|at| (at, DueAction::Backup))
}

/// `autoArchiveInterval` in minutes: 0 (or more than the maximum) is the maximum.
pub fn archive_minutes(rec: &SandboxRecord) -> i64 {
    match rec.auto_archive_interval {
        m if m <= 0 || m > MAX_AUTO_ARCHIVE_MINUTES => MAX_AUTO_ARCHIVE_MINUTES,
        m => m,
    }
}

/// When the sandbox last did something: the later of its last activity and its last busy report.
pub fn idle_since(rec: &SandboxRecord) -> OffsetDateTime {
    let activity = parse_rfc3339(&rec.last_activity_at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let busy = rec.last_busy_at.as_deref().and_then(parse_rfc3339);
    busy.map_or(activity, |b| b.max(activity))
}

/// The due-time index partition of a sandbox.
pub(crate) fn shard_pk(rec: &SandboxRecord) -> String {
    let last = rec.id.as_str().bytes().last().unwrap_or(0);
    shard_key(last % SHARDS)
}

pub(crate) fn shard_key(shard: u8) -> String {
    format!("SANDBOXDUE#{shard}")
}

/// The index keys (`gsi3pk`, `gsi3sk`) of `rec`, if anything is due for it.
pub(crate) fn index_keys(rec: &SandboxRecord, minute: Duration) -> Option<(String, String)> {
    next_due(rec, minute).map(|(at, _)| (shard_pk(rec), sort_key(at, rec)))
}

fn sort_key(at: OffsetDateTime, rec: &SandboxRecord) -> String {
    format!("{}#{}", format_rfc3339(at), rec.id)
}

/// The largest sort key due at `now`.
pub(crate) fn until(now: OffsetDateTime) -> String {
    format!("{}#~", format_rfc3339(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandboxes::{SandboxAction, Transition};
    use cove_api_types::ids::{OrganizationId, RunnerId, SandboxId};

    fn rec(state: SandboxState) -> SandboxRecord {
        let mut r = SandboxRecord::new(
            SandboxId::new_random(),
            OrganizationId::new_random(),
            "n",
            "img",
            "2026-01-01T00:00:00.000Z",
        );
        r.state = state;
        r.runner_id = Some(RunnerId::new_random());
        r
    }

    fn at(mins: i64) -> OffsetDateTime {
        parse_rfc3339("2026-01-01T00:00:00.000Z").unwrap() + Duration::minutes(mins)
    }

    #[test]
    fn each_state_has_its_due_time() {
        let m = Duration::MINUTE;
        let started = rec(SandboxState::Started);
        assert_eq!(next_due(&started, m), Some((at(15), DueAction::AutoStop)));
        let mut busy = started.clone();
        busy.busy = true;
        assert_eq!(
            next_due(&busy, m),
            Some((at(60), DueAction::Backup)),
            "no auto-stop while busy; the hourly backup"
        );
        let mut later = started.clone();
        later.last_busy_at = Some("2026-01-01T00:10:00.000Z".into());
        assert_eq!(next_due(&later, m), Some((at(25), DueAction::AutoStop)));
        let mut never = started.clone();
        never.auto_stop_interval = 0;
        assert_eq!(next_due(&never, m), Some((at(60), DueAction::Backup)));
        let mut stopped = rec(SandboxState::Stopped);
        stopped.desired_state = SandboxDesiredState::Stopped;
        assert_eq!(
            next_due(&stopped, m),
            Some((at(10080), DueAction::AutoArchive))
        );
        stopped.auto_delete_interval = 60;
        assert_eq!(next_due(&stopped, m), Some((at(60), DueAction::AutoDelete)));
        stopped.auto_archive_interval = 1;
        assert_eq!(
            next_due(&stopped, Duration::seconds(1)),
            Some((at(0) + Duration::seconds(1), DueAction::AutoArchive))
        );
        let mut moving = started.clone();
        moving.transition = Some(Transition::begin(
            SandboxAction::Stop,
            2,
            "2026-01-01T00:01:00.000Z",
            false,
        ));
        assert_eq!(
            next_due(&moving, m),
            Some((at(1) + PUSH_DEADLINE, DueAction::Transition))
        );
        let mut gone = rec(SandboxState::Destroyed);
        gone.desired_state = SandboxDesiredState::Destroyed;
        assert_eq!(next_due(&gone, m), None);
        let mut far = rec(SandboxState::Started);
        far.auto_stop_interval = i64::MAX;
        assert_eq!(
            next_due(&far, m),
            Some((at(60), DueAction::Backup)),
            "auto-stop out of reach, no overflow"
        );
    }

    #[test]
    fn started_sandboxes_are_backed_up_hourly() {
        let m = Duration::MINUTE;
        let mut never = rec(SandboxState::Started);
        never.auto_stop_interval = 0;
        never.backup_created_at = Some("2026-01-01T00:30:00.000Z".into());
        assert_eq!(next_due(&never, m), Some((at(90), DueAction::Backup)));
        never.backup_state = BackupState::Error;
        never.updated_at = "2026-01-01T00:40:00.000Z".into();
        assert_eq!(next_due(&never, m), Some((at(50), DueAction::Backup)));
        never.backup_state = BackupState::InProgress;
        assert_eq!(next_due(&never, m), None, "a transition's backup");
        never.backup_started_at = Some("2026-01-01T00:45:00.000Z".into());
        assert_eq!(
            next_due(&never, m),
            Some((at(45) + PUSH_DEADLINE, DueAction::Backup)),
            "the periodic one in progress"
        );
        let mut ephemeral = rec(SandboxState::Started);
        ephemeral.auto_stop_interval = 0;
        ephemeral.auto_delete_interval = 0;
        assert_eq!(next_due(&ephemeral, m), None, "ephemeral: no backups");
    }

    #[test]
    fn a_ttl_destroys_in_any_state_and_a_queued_sandbox_is_due_at_once() {
        let m = Duration::MINUTE;
        let mut started = rec(SandboxState::Started);
        started.auto_destroy_at = ttl_deadline(at(0), 5, m);
        assert_eq!(next_due(&started, m), Some((at(5), DueAction::Ttl)));
        started.auto_destroy_at = ttl_deadline(at(0), 500, m);
        assert_eq!(
            next_due(&started, m),
            Some((at(15), DueAction::AutoStop)),
            "the earliest of the TTL and the rules"
        );
        for state in [
            SandboxState::Archived,
            SandboxState::Error,
            SandboxState::BuildFailed,
            SandboxState::Stopped,
        ] {
            let mut r = rec(state);
            r.auto_destroy_at = ttl_deadline(at(0), 3, m);
            assert_eq!(next_due(&r, m), Some((at(3), DueAction::Ttl)), "{state:?}");
        }
        assert_eq!(ttl_deadline(at(0), 0, m), None, "0 = no TTL");
        assert_eq!(ttl_deadline(at(0), i64::MAX, m), None, "out of reach");
        let mut queued = rec(SandboxState::Creating);
        queued.runner_id = None;
        queued.queued_until = Some(format_rfc3339(at(10)));
        assert_eq!(next_due(&queued, m), Some((at(0), DueAction::Place)));
        queued.runner_id = Some(RunnerId::new_random());
        assert_eq!(
            next_due(&queued, m),
            None,
            "placed: its create's transition follows"
        );
    }

    #[test]
    fn sort_keys_order_by_time_and_stay_within_the_bound() {
        let r = rec(SandboxState::Started);
        assert!(sort_key(at(1), &r) <= until(at(1)));
        assert!(sort_key(at(1), &r) > until(at(0)));
        assert!(shard_pk(&r).starts_with("SANDBOXDUE#"));
    }
}
