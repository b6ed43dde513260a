//! One explicit path for every sandbox state change: **begin → push → settle**, shared by the
//! `sandboxes` function (user actions, runner state reports) and the `lifecycle` sweep (pushes
//! again, gives up, removes backups). A component can't link another component's crate (both
//! export the HTTP handler), hence this crate.
//!
//! 1. **begin** ([`prepare`], [`begin`], [`begin_create`]): one conditional write sets the
//!    desired and transitional state of the action ([`describe`]), the next `generation` and the
//!    row's [`Transition`] (action, generation, `startedAt`, `pushedAt`, attempts). A row with a
//!    transition in flight refuses another one ([`TransitionError::InProgress`], 409), except a
//!    forced delete, which takes over.
//! 2. **push** ([`run`]): what the action asks of its runner ([`Push`]: `PUT` the spec with
//!    `?wait=`, a backup, a backup then a `DELETE`, a `DELETE`), every call within one
//!    [`Bounds`] budget, well below the host's 60 s request deadline.
//! 3. **settle**: the outcome is written while the row still carries this transition (a forced
//!    delete may have taken over), re-reading on a lost version race. An outcome that is not
//!    known yet (the agent answered 202, no answer came, no time was left) leaves the row in its
//!    transitional state: the runner's state report (same generation) or the lifecycle sweep
//!    settles it. The sweep pushes a transition again past [`PUSH_DEADLINE`] ([`claim`], then
//!    [`run`]: the agent's `PUT` is idempotent per generation) and gives up with an error after
//!    [`MAX_ATTEMPTS`] pushes or [`MAX_DURATION`] ([`expire`]).
//!
//! A create the runner refuses (4xx) leaves nothing behind ([`Settled::Discarded`]). Backups:
//! a backup or archive records its runner in `backupRunnerId` when it begins; a destroyed
//! sandbox keeps it until [`remove_backups`] deleted its backups there (the sweep retries).

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

mod action;
mod begin;
mod error;
mod push;
mod settle;
mod spec;

pub use action::{Description, Push, describe, pushes_spec};
pub use begin::{begin, begin_create, claim, prepare};
pub use error::TransitionError;
pub use push::{
    Access, Bounds, InternalRegistry, Observed, Outcome, REQUEST_BOUNDS, SWEEP_BOUNDS, client,
};
pub use settle::{Settled, expire, remove_backups, run, run_with, settle, timed_out_in_queue};
pub use spec::spec_of;

pub use cove_store::sandboxes::{SandboxAction, Transition};

/// A transition not settled this long after its last push is pushed again by the sweep.
/// (The due-time index of the sandboxes uses the same value.)
pub const PUSH_DEADLINE: time::Duration = cove_store::sandboxes::due::PUSH_DEADLINE;

/// Pushes of one transition before the sweep gives up on it.
pub const MAX_ATTEMPTS: u32 = 5;

/// How long a transition may take in all before the sweep gives up on it.
pub const MAX_DURATION: time::Duration = time::Duration::minutes(10);

/// What the sweep should do with a transition at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// In flight and not late: leave it.
    Wait,
    /// Late: push it again.
    Push,
    /// Too late or too often pushed: give up with an error.
    Expire,
}

/// See [`Due`]. Unparsable times count as long past.
pub fn due(t: &Transition, now: time::OffsetDateTime) -> Due {
    let at = |s: &str| {
        cove_api_types::time::parse_rfc3339(s).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    let late = now - at(&t.pushed_at) > PUSH_DEADLINE;
    if now - at(&t.started_at) > MAX_DURATION || (late && t.attempts >= MAX_ATTEMPTS) {
        Due::Expire
    } else if late {
        Due::Push
    } else {
        Due::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> String {
        cove_api_types::time::format_rfc3339(
            time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs),
        )
    }

    #[test]
    fn transitions_come_due_after_the_deadline_and_expire_after_the_bounds() {
        let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1000);
        let mut t = Transition::begin(SandboxAction::Create, 1, &at(990), false);
        assert_eq!(due(&t, now), Due::Wait);
        t.pushed_at = at(1000 - 31);
        assert_eq!(due(&t, now), Due::Push);
        t.attempts = MAX_ATTEMPTS;
        assert_eq!(due(&t, now), Due::Expire);
        let mut old = Transition::begin(SandboxAction::Stop, 2, &at(1000 - 601), false);
        old.pushed_at = at(999);
        assert_eq!(due(&old, now), Due::Expire, "too long in all");
        old.started_at = "garbage".into();
        assert_eq!(due(&old, now), Due::Expire);
    }
}
