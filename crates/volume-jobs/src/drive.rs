//! One volume's step: each state the sweep drives is claimed with a version-conditional write
//! (two sweeps never both act on one version), then its storage call (idempotent) is made.

use bytes::Bytes;
use cove_api_types::volumes::VolumeState;
use cove_store::volumes::VolumeRecord;
use cove_store::{Store, StoreError};
use time::OffsetDateTime;

use crate::s3::{Bucket, S3Error};
use crate::{CREATE_DEADLINE, DELETE_BATCH, DELETE_DEADLINE, VolumeReport, VolumeStorage};

/// What a step did (for the report).
pub(crate) enum Step {
    Ready,
    Deleted,
    Failed,
    /// Still in progress (a storage call failed or more objects are left): next sweep.
    Later,
    /// Another sweep or request changed the volume first.
    Lost,
}

fn age(rec: &VolumeRecord, now: OffsetDateTime) -> time::Duration {
    let at = OffsetDateTime::parse(
        &rec.transition_at,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap_or(now);
    now - at
}

/// Moves `rec` to `state`; `None` when another writer got there first.
async fn claim(
    store: &Store,
    rec: &VolumeRecord,
    state: VolumeState,
    reason: Option<String>,
) -> Result<Option<VolumeRecord>, StoreError> {
    match store
        .volumes()
        .set_state(&rec.id, rec.version, state, reason)
        .await
    {
        Ok(r) => Ok(Some(r)),
        Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `pending_create` → `creating` → the marker object written → `ready`; a storage failure is
/// retried by later sweeps until [`CREATE_DEADLINE`], then `error`.
pub(crate) async fn create(
    store: &Store,
    storage: &VolumeStorage,
    rec: VolumeRecord,
    now: OffsetDateTime,
) -> Result<Step, StoreError> {
    let Some(rec) = claim(store, &rec, VolumeState::Creating, None).await? else {
        return Ok(Step::Lost);
    };
    match put_marker(storage, &rec).await {
        Ok(()) => Ok(match claim(store, &rec, VolumeState::Ready, None).await? {
            Some(r) => {
                tracing::info!(volume = %r.id, org = %r.org_id, "volume ready");
                Step::Ready
            }
            None => Step::Lost,
        }),
        Err(e) if age(&rec, now) > CREATE_DEADLINE => {
            let reason = format!("Failed to create the volume's storage: {e}");
            tracing::warn!(volume = %rec.id, error = %e, "volume creation failed");
            Ok(
                match claim(store, &rec, VolumeState::Error, Some(reason)).await? {
                    Some(_) => Step::Failed,
                    None => Step::Lost,
                },
            )
        }
        Err(e) => {
            tracing::warn!(volume = %rec.id, error = %e, "volume storage not created yet; retrying");
            Ok(Step::Later)
        }
    }
}

async fn put_marker(storage: &VolumeStorage, rec: &VolumeRecord) -> Result<(), S3Error> {
    let body = serde_json::json!({
        "volumeId": rec.id.as_str(),
        "organizationId": rec.org_id.as_str(),
        "name": rec.name,
    });
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("x-amz-meta-volume-id", rec.id.to_string()),
        ("x-amz-meta-organization-id", rec.org_id.to_string()),
        (
            "x-amz-tagging",
            format!("VolumeId={}&OrganizationId={}", rec.id, rec.org_id),
        ),
    ];
    Bucket { storage }
        .put(
            &cove_runner_api::volume_marker(rec.id.as_str()),
            &headers,
            Bytes::from(body.to_string()),
        )
        .await
}

/// `pending_delete` → `deleting` → up to [`DELETE_BATCH`] objects removed per sweep until the
/// prefix is empty → marker removed → `deleted` (name released). A failure past
/// [`DELETE_DEADLINE`] is `error` (which may be deleted again: the way out).
pub(crate) async fn delete(
    store: &Store,
    storage: &VolumeStorage,
    rec: VolumeRecord,
    now: OffsetDateTime,
) -> Result<Step, StoreError> {
    let Some(rec) = claim(store, &rec, VolumeState::Deleting, None).await? else {
        return Ok(Step::Lost);
    };
    match empty(storage, &rec).await {
        Ok(true) => Ok(
            match claim(store, &rec, VolumeState::Deleted, None).await? {
                Some(r) => {
                    tracing::info!(volume = %r.id, org = %r.org_id, "volume deleted");
                    Step::Deleted
                }
                None => Step::Lost,
            },
        ),
        Ok(false) => Ok(Step::Later),
        Err(e) if age(&rec, now) > DELETE_DEADLINE => {
            let reason = format!("Failed to delete the volume's storage: {e}");
            tracing::warn!(volume = %rec.id, error = %e, "volume deletion failed");
            Ok(
                match claim(store, &rec, VolumeState::Error, Some(reason)).await? {
                    Some(_) => Step::Failed,
                    None => Step::Lost,
                },
            )
        }
        Err(e) => {
            tracing::warn!(volume = %rec.id, error = %e, "volume storage not removed yet; retrying");
            Ok(Step::Later)
        }
    }
}

/// Removes a batch of the volume's objects; `true` once nothing is left (marker removed too).
async fn empty(storage: &VolumeStorage, rec: &VolumeRecord) -> Result<bool, S3Error> {
    let bucket = Bucket { storage };
    let prefix = format!("{}/", cove_runner_api::volume_prefix(rec.id.as_str()));
    let keys = bucket.list(&prefix, DELETE_BATCH).await?;
    for k in &keys {
        bucket.delete(k).await?;
    }
    if !keys.is_empty() {
        return Ok(false);
    }
    bucket
        .delete(&cove_runner_api::volume_marker(rec.id.as_str()))
        .await?;
    Ok(true)
}

impl VolumeReport {
    pub(crate) fn count(&mut self, step: &Step) {
        match step {
            Step::Ready => self.ready += 1,
            Step::Deleted => self.deleted += 1,
            Step::Failed => self.failed += 1,
            Step::Later => self.in_progress += 1,
            Step::Lost => self.skipped += 1,
        }
    }
}
