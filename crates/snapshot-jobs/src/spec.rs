//! The runner spec of a snapshot's first pull or build, and image-name helpers.

use cove_runner_api::{RegistryAuth, SnapshotSource, SnapshotSpec};
use cove_store::registries::image_host;
use cove_store::snapshots::{SnapshotJob, SnapshotRecord};

use crate::JobSettings;

/// Whether `image` lives in the internal registry of `settings`.
pub fn is_internal(settings: &JobSettings, image: &str) -> bool {
    let host = settings.registry_host();
    !host.is_empty() && image_host(image) == host
}

/// What the initial runner is asked to do for `rec`; `auth` is the organization's registry
/// account for the image's host (pulls only).
pub fn first_spec(
    settings: &JobSettings,
    rec: &SnapshotRecord,
    auth: Option<RegistryAuth>,
) -> SnapshotSpec {
    let org = rec.org_id.to_string();
    let source = match (&rec.job, &rec.build_info) {
        (SnapshotJob::Build, Some(b)) => SnapshotSource::Build {
            dockerfile: b.dockerfile_content.clone(),
            context_hashes: b.context_hashes.clone(),
            r#ref: b.snapshot_ref.clone(),
        },
        _ => SnapshotSource::Pull {
            image: rec.image_name.clone(),
            auth,
        },
    };
    SnapshotSpec {
        push: settings.push_target(&org),
        org_id: org,
        source,
    }
}

/// What another runner is asked to do to hold an active snapshot: pull its internal ref.
pub fn copy_spec(settings: &JobSettings, rec: &SnapshotRecord, image_ref: &str) -> SnapshotSpec {
    SnapshotSpec {
        org_id: rec.org_id.to_string(),
        source: SnapshotSource::Pull {
            image: image_ref.to_owned(),
            auth: settings.internal.as_ref().and_then(|r| r.auth()),
        },
        push: None,
    }
}
