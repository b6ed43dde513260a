//! Records as `SnapshotDto`s, and the built-in default snapshot.

use cove_api_types::ids::{OrganizationId, SnapshotId};
use cove_api_types::snapshots::{BuildInfo, SnapshotDto, SnapshotState};
use cove_store::snapshots::{SnapshotJob, SnapshotRecord};

/// Id of the synthesized default snapshot (the same in every deployment).
pub const DEFAULT_SNAPSHOT_ID: &str = "00000000-0000-4000-8000-00000000d5a0";

const GIB: f64 = (1u64 << 30) as f64;

/// The built-in image as a general, active snapshot (never stored: it can't be deleted or
/// deactivated).
pub fn default_snapshot(image: &str) -> Option<SnapshotRecord> {
    let id = SnapshotId::parse(DEFAULT_SNAPSHOT_ID).ok()?;
    let org = OrganizationId::parse("00000000-0000-4000-8000-000000000000").ok()?;
    let epoch = cove_api_types::orgs::EPOCH;
    let mut r = SnapshotRecord::new(org, image, image, SnapshotJob::Pull, epoch);
    r.id = id;
    r.general = true;
    r.state = SnapshotState::Active;
    r.r#ref = Some(image.to_owned());
    r.version = 1;
    Some(r)
}

/// Whether `rec` is the synthesized default snapshot.
pub fn is_default(rec: &SnapshotRecord) -> bool {
    rec.id.as_str() == DEFAULT_SNAPSHOT_ID
}

pub fn dto(rec: &SnapshotRecord) -> SnapshotDto {
    SnapshotDto {
        id: rec.id.to_string(),
        organization_id: (!is_default(rec)).then(|| rec.org_id.to_string()),
        general: rec.general,
        name: rec.name.clone(),
        image_name: Some(rec.image_name.clone()),
        state: rec.state,
        size: rec
            .size_bytes
            .map(|b| (b as f64 / GIB * 1000.0).round() / 1000.0),
        entrypoint: rec.entrypoint.clone(),
        cpu: rec.cpu,
        gpu: rec.gpu,
        gpu_type: None,
        mem: rec.mem,
        disk: rec.disk,
        error_reason: rec.error_reason.clone(),
        created_at: rec.created_at.clone(),
        updated_at: rec.updated_at.clone(),
        last_used_at: rec.last_used_at.clone(),
        build_info: rec.build_info.as_ref().map(|b| BuildInfo {
            dockerfile_content: b.dockerfile_content.clone(),
            context_hashes: b.context_hashes.clone(),
            created_at: b.created_at.clone(),
            updated_at: b.updated_at.clone(),
            snapshot_ref: b.snapshot_ref.clone(),
        }),
        region_ids: rec.region_ids.clone(),
        initial_runner_id: rec.initial_runner_id.as_ref().map(ToString::to_string),
        r#ref: rec.r#ref.clone(),
        source_sandbox_id: None,
        sandbox_class: rec.sandbox_class.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_snapshot_is_general_and_active() {
        let r = default_snapshot("cove-sandbox-base:latest").unwrap();
        assert!(is_default(&r));
        let d = dto(&r);
        assert!(d.general);
        assert_eq!(d.state, SnapshotState::Active);
        assert_eq!(d.r#ref.as_deref(), Some("cove-sandbox-base:latest"));
        assert!(d.organization_id.is_none());
    }

    #[test]
    fn size_is_in_gigabytes() {
        let mut r = default_snapshot("a:1").unwrap();
        r.size_bytes = Some(3 << 29);
        assert_eq!(dto(&r).size, Some(1.5));
    }
}
