//! Stored volumes as the API answers them.

use cove_api_types::volumes::VolumeDto;
use cove_store::volumes::VolumeRecord;

pub fn dto(rec: &VolumeRecord) -> VolumeDto {
    VolumeDto {
        id: rec.id.to_string(),
        name: rec.name.clone(),
        organization_id: rec.org_id.to_string(),
        state: rec.state,
        created_at: rec.created_at.clone(),
        updated_at: rec.updated_at.clone(),
        last_used_at: rec.last_used_at.clone(),
        error_reason: rec.error_reason.clone(),
    }
}
