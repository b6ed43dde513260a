//! Long disuse: an organization's snapshot that no sandbox used for
//! `snapshotDeactivationTimeoutMinutes` (its quota; Daytona's default 14 days) becomes `inactive`
//! (`POST /api/snapshots/{id}/activate` brings it back). General snapshots stay active.

use std::collections::HashMap;
use std::time::Duration;

use cove_api_types::ids::OrganizationId;
use cove_api_types::snapshots::SnapshotState;
use cove_edge::Env;
use cove_store::StoreError;
use cove_store::snapshots::{SnapshotPatch, SnapshotRecord};
use time::OffsetDateTime;

use crate::{SnapshotReport, drive, past};

/// Deactivation timeouts per organization, read once per sweep.
#[derive(Default)]
pub struct Timeouts(HashMap<OrganizationId, Option<Duration>>);

impl Timeouts {
    async fn of(
        &mut self,
        env: &Env,
        org: &OrganizationId,
    ) -> Result<Option<Duration>, StoreError> {
        if let Some(t) = self.0.get(org) {
            return Ok(*t);
        }
        let minutes = env
            .store
            .orgs()
            .get(org)
            .await?
            .map(|o| o.quota.snapshot_deactivation_timeout_minutes)
            .and_then(|m| u64::try_from(m).ok())
            .filter(|m| *m > 0);
        let t = minutes.map(|m| Duration::from_secs(m * 60));
        self.0.insert(org.clone(), t);
        Ok(t)
    }
}

/// Makes `rec` `inactive` when it has not been used (or, never used, not since its creation)
/// for its organization's deactivation timeout; answers whether it did.
pub async fn deactivate_if_idle(
    env: &Env,
    rec: &SnapshotRecord,
    timeouts: &mut Timeouts,
    now: OffsetDateTime,
    report: &mut SnapshotReport,
) -> Result<bool, StoreError> {
    if rec.general || rec.state != SnapshotState::Active {
        return Ok(false);
    }
    let Some(limit) = timeouts.of(env, &rec.org_id).await? else {
        return Ok(false);
    };
    // Since its last use (or its creation) and since it became active (an activation counts).
    let used = rec.last_used_at.as_deref().unwrap_or(&rec.created_at);
    if past(used, limit, now) && past(&rec.transition_at, limit, now) {
        let next = drive::write(
            env,
            rec,
            SnapshotState::Inactive,
            SnapshotPatch::default(),
            report,
        )
        .await?;
        if next.version != rec.version {
            report.deactivated += 1;
            return Ok(true);
        }
    }
    Ok(false)
}
