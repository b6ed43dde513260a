//! Drives snapshots on the runners (issue 12, ARCH §4), for the `snapshots` component (right
//! after a create, and on reads of a snapshot in progress, so a client polling every second
//! sees the outcome within a second) and for the lifecycle sweep (everything left over: after a
//! crash, a lost race, an unreachable runner).
//!
//! | state | what happens | deadline (from `transitionAt`) |
//! |---|---|---|
//! | `pending` | [`start`]: pick an initial runner, `PUT /v1/snapshots/{id}` (pull or build, then push to the internal registry) → `pulling` / `building` | [`PENDING_DEADLINE`] → `error` |
//! | `pulling`, `building` | [`refresh`]: `GET /v1/snapshots/{id}` on the initial runner → `active` (ref, size, entrypoint), `error` or `build_failed` (`errorReason`); a runner that lost the job gets the `PUT` again | [`PULL_DEADLINE`] / [`BUILD_DEADLINE`] → `error` |
//! | `active` | [`propagate`]: every other ready runner of its regions that lacks the ref pulls it from the internal registry | unused for the organization's `snapshotDeactivationTimeoutMinutes` → `inactive` |
//! | `removing` | [`remove`]: `DELETE /v1/snapshots/{id}` on every live runner, then the row goes | [`REMOVE_DEADLINE`] → the row goes anyway |
//!
//! Every write is conditional on the snapshot's version, so callers may race (a request and a
//! sweep, two sweeps): the loser skips and the next look finishes the job. Runner failures are
//! logged and retried on the next look, never surfaced to a caller.

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

mod drive;
mod fleet;
mod idle;
mod settings;
mod spec;

use std::time::Duration;

use cove_api_types::snapshots::SnapshotState;
use cove_edge::Env;
use cove_store::StoreError;
use cove_store::runners::RunnerRecord;
use serde::Serialize;
use time::OffsetDateTime;

pub use drive::{refresh, start};
pub use fleet::{propagate, remove};
pub use settings::{JobSettings, RegistryAccount};
pub use spec::is_internal;

/// How long a snapshot may wait for a runner.
pub const PENDING_DEADLINE: Duration = Duration::from_secs(10 * 60);
/// How long a pull (and its push) may take, a little over the agent's own bound, so that the
/// agent's reason wins when it has one.
pub const PULL_DEADLINE: Duration = Duration::from_secs(16 * 60);
/// How long a build (and its push) may take (agent: 30 min).
pub const BUILD_DEADLINE: Duration = Duration::from_secs(31 * 60);
/// How long a removal may wait for runners that keep refusing.
pub const REMOVE_DEADLINE: Duration = Duration::from_secs(10 * 60);

/// How many snapshots of each state one sweep looks at.
const SWEEP_BATCH: usize = 100;

/// What a sweep did to snapshots.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotReport {
    /// Pending snapshots handed to an initial runner.
    pub started: u32,
    /// Snapshots that reached `active`.
    pub activated: u32,
    /// Snapshots that ended in `error` or `build_failed` (deadlines included).
    pub failed: u32,
    /// Copies asked of runners that lacked an active snapshot.
    pub propagations: u32,
    /// Snapshots removed (row gone).
    pub removed: u32,
    /// Active snapshots made `inactive` after long disuse.
    pub deactivated: u32,
    /// Lost races and unreachable runners (retried next sweep).
    pub skipped: u32,
}

/// One pass over every snapshot the sweep drives.
pub async fn sweep(
    env: &Env,
    settings: &JobSettings,
    runners: &[RunnerRecord],
    now: OffsetDateTime,
) -> Result<SnapshotReport, StoreError> {
    let repo = env.store.snapshots();
    let mut report = SnapshotReport::default();
    for rec in repo
        .list_in_state(SnapshotState::Pending, SWEEP_BATCH)
        .await?
    {
        start(env, settings, &rec, runners, now, &mut report).await?;
    }
    for state in [SnapshotState::Pulling, SnapshotState::Building] {
        for rec in repo.list_in_state(state, SWEEP_BATCH).await? {
            refresh(env, settings, &rec, runners, now, &mut report).await?;
        }
    }
    for rec in repo
        .list_in_state(SnapshotState::Removing, SWEEP_BATCH)
        .await?
    {
        remove(env, &rec, runners, now, &mut report).await?;
    }
    let mut timeouts = idle::Timeouts::default();
    for rec in repo
        .list_in_state(SnapshotState::Active, SWEEP_BATCH)
        .await?
    {
        if idle::deactivate_if_idle(env, &rec, &mut timeouts, now, &mut report).await? {
            continue;
        }
        propagate(settings, &rec, runners, now, &mut report).await;
    }
    Ok(report)
}

/// Whether `since` (RFC 3339) is more than `limit` before `now`; an unreadable time counts as late.
fn past(since: &str, limit: Duration, now: OffsetDateTime) -> bool {
    cove_api_types::time::parse_rfc3339(since)
        .is_none_or(|t| (now - t).whole_milliseconds() > limit.as_millis() as i128)
}
