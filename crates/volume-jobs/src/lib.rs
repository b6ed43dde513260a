//! The lifecycle sweep's volume step: provisions the storage of new volumes and removes that of
//! deleted ones.
//!
//! # Layout: one prefix per volume in the platform's bucket
//!
//! A volume is the prefix `volumes/<volumeId>/` of the configured bucket (`s3_bucket`), plus a
//! marker object `volumes/<volumeId>.volume` whose metadata and tags carry the volume's and the
//! organization's ids (see [`cove_runner_api::volume_prefix`]). Daytona makes a bucket per volume;
//! a prefix needs no bucket-level permissions (create, delete, tag, policy) for the control plane
//! or the runners, no per-account bucket limit applies (AWS: 10,000 by default, against a quota of
//! 100 volumes per organization), the embedded S3 of `cove up` and SeaweedFS serve it unchanged,
//! and the runner agents' credentials can be scoped to `volumes/*` with one policy.
//!
//! # States
//!
//! `pending_create` → `creating` → (marker written) `ready`, or `error` with a reason once
//! [`CREATE_DEADLINE`] has passed with failing storage calls. `pending_delete` → `deleting` →
//! (objects removed, [`DELETE_BATCH`] per sweep, then the marker) `deleted`, or `error` after
//! [`DELETE_DEADLINE`] (an `error` volume may be deleted again). Every change is conditional on
//! the volume's version, so concurrent sweeps skip what another one claimed; every storage call
//! is idempotent, so a step interrupted anywhere is simply done again.

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

mod drive;
pub mod s3;
mod storage;

use cove_api_types::volumes::VolumeState;
use cove_store::{Store, StoreError};
use serde::Serialize;
use time::OffsetDateTime;

pub use storage::VolumeStorage;

/// A volume whose storage cannot be created for this long is `error`.
pub const CREATE_DEADLINE: time::Duration = time::Duration::minutes(5);
/// A volume whose storage cannot be removed for this long is `error`.
pub const DELETE_DEADLINE: time::Duration = time::Duration::minutes(30);
/// Objects removed per volume and sweep.
pub const DELETE_BATCH: u32 = 500;
/// Volumes driven per state and sweep.
pub const PER_SWEEP: usize = 25;

/// What the volume step did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeReport {
    pub ready: u32,
    pub deleted: u32,
    pub failed: u32,
    /// Still provisioning or emptying (next sweep).
    pub in_progress: u32,
    /// Claimed by another sweep or changed by a request first.
    pub skipped: u32,
}

/// Drives every volume in a transitional state one step. Without configured storage nothing is
/// done (no volume can have been created: the API answers 503).
pub async fn sweep(
    store: &Store,
    storage: &VolumeStorage,
    now: OffsetDateTime,
) -> Result<VolumeReport, StoreError> {
    let mut report = VolumeReport::default();
    if !storage.configured() {
        return Ok(report);
    }
    let repo = store.volumes();
    // A volume moved on by this sweep (pending → in progress) is not driven twice.
    let mut seen = std::collections::BTreeSet::new();
    for state in [VolumeState::PendingCreate, VolumeState::Creating] {
        for rec in repo.list_in_state(state, PER_SWEEP).await? {
            if seen.insert(rec.id.clone()) {
                let step = drive::create(store, storage, rec, now).await?;
                report.count(&step);
            }
        }
    }
    for state in [VolumeState::PendingDelete, VolumeState::Deleting] {
        for rec in repo.list_in_state(state, PER_SWEEP).await? {
            if seen.insert(rec.id.clone()) {
                let step = drive::delete(store, storage, rec, now).await?;
                report.count(&step);
            }
        }
    }
    Ok(report)
}
