//! The volume service: create, reads, delete.

use cove_api_types::ApiError;
use cove_api_types::ids::{OrganizationId, VolumeId};
use cove_api_types::permissions::Permission;
use cove_api_types::volumes::{CreateVolume, VolumeDto, VolumeState};
use cove_edge::store_error::IntoApi;
use cove_edge::{Action, AuthContext, Env, authorize};
use cove_store::StoreError;
use cove_store::volumes::VolumeRecord;

use crate::{VolumeStorage, rules, view};

/// One authenticated request's context.
pub struct Call<'a> {
    pub env: &'a Env,
    pub storage: &'a VolumeStorage,
    pub ctx: AuthContext,
}

impl Call<'_> {
    fn org(&self) -> &OrganizationId {
        &self.ctx.organization_id
    }
}

fn not_found_id(id: &str) -> ApiError {
    ApiError::not_found(format!("Volume with ID {id} not found"))
}

fn not_found_name(name: &str) -> ApiError {
    ApiError::not_found(format!("Volume with name {name} not found"))
}

async fn check_quota(call: &Call<'_>) -> Result<(), ApiError> {
    let quota = call
        .env
        .store
        .orgs()
        .get(call.org())
        .await
        .api()?
        .ok_or_else(|| ApiError::forbidden("Invalid authentication context"))?
        .quota
        .volume_quota;
    let used = call
        .env
        .store
        .volumes()
        .count_usage(call.org())
        .await
        .api()?;
    if used >= quota {
        tracing::info!(org = %call.org(), used, limit = quota, "volume quota reached");
        return Err(ApiError::bad_request(format!(
            "Volume quota exceeded. Maximum allowed: {quota}"
        )));
    }
    Ok(())
}

pub async fn create(call: &Call<'_>, body: CreateVolume) -> Result<VolumeDto, ApiError> {
    authorize(
        call.env,
        &call.ctx,
        Action::Create(Permission::WriteVolumes),
    )
    .await?;
    if !call.storage.configured() {
        return Err(ApiError::service_unavailable(
            "Object storage is not configured",
        ));
    }
    rules::check_name(&body.name)?;
    check_quota(call).await?;
    let rec = VolumeRecord::new(
        call.org().clone(),
        &body.name,
        &cove_api_types::time::now_rfc3339(),
    );
    match call.env.store.volumes().create(&rec).await {
        Ok(rec) => {
            tracing::info!(volume = %rec.id, org = %rec.org_id, "volume created");
            Ok(view::dto(&rec))
        }
        Err(StoreError::Conflict {
            conflict: cove_store::Conflict::Exists,
            ..
        }) => Err(ApiError::bad_request(format!(
            "Volume with name {} already exists",
            body.name
        ))),
        Err(e) => Err(e.api()),
    }
}

pub async fn list(call: &Call<'_>, include_deleted: bool) -> Result<Vec<VolumeDto>, ApiError> {
    authorize(call.env, &call.ctx, Action::Use(Permission::ReadVolumes)).await?;
    let mut all = call
        .env
        .store
        .volumes()
        .list_by_org(call.org())
        .await
        .api()?;
    if !include_deleted {
        all.retain(|v| v.state != VolumeState::Deleted);
    }
    all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    Ok(all.iter().map(view::dto).collect())
}

/// The caller's volume with this id (deleted ones included); 404 otherwise.
async fn own_by_id(call: &Call<'_>, id: &str) -> Result<VolumeRecord, ApiError> {
    let Ok(vid) = VolumeId::parse(id) else {
        return Err(not_found_id(id));
    };
    call.env
        .store
        .volumes()
        .get(&vid)
        .await
        .api()?
        .filter(|v| v.org_id == *call.org())
        .ok_or_else(|| not_found_id(id))
}

pub async fn get(call: &Call<'_>, id: &str) -> Result<VolumeDto, ApiError> {
    authorize(call.env, &call.ctx, Action::Use(Permission::ReadVolumes)).await?;
    Ok(view::dto(&own_by_id(call, id).await?))
}

pub async fn get_by_name(call: &Call<'_>, name: &str) -> Result<VolumeDto, ApiError> {
    authorize(call.env, &call.ctx, Action::Use(Permission::ReadVolumes)).await?;
    let rec = call
        .env
        .store
        .volumes()
        .get_by_name(call.org(), name)
        .await
        .api()?
        .ok_or_else(|| not_found_name(name))?;
    Ok(view::dto(&rec))
}

/// Whether a sandbox of the organization that is not destroyed mounts the volume.
pub async fn in_use(env: &Env, org: &OrganizationId, id: &VolumeId) -> Result<bool, ApiError> {
    let repo = env.store.sandboxes();
    let mut cursor = None;
    loop {
        let page = repo.list_by_org(org, 200, cursor.as_ref()).await.api()?;
        if page
            .items
            .iter()
            .any(|s| !s.is_destroyed() && s.volumes.iter().any(|v| v.volume_id == *id))
        {
            return Ok(true);
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => return Ok(false),
        }
    }
}

pub async fn delete(call: &Call<'_>, id: &str) -> Result<(), ApiError> {
    authorize(call.env, &call.ctx, Action::Use(Permission::DeleteVolumes)).await?;
    let rec = own_by_id(call, id).await?;
    if !matches!(rec.state, VolumeState::Ready | VolumeState::Error) {
        return Err(ApiError::bad_request(format!(
            "Volume must be in '{}' or '{}' state in order to be deleted",
            VolumeState::Ready,
            VolumeState::Error
        )));
    }
    if in_use(call.env, call.org(), &rec.id).await? {
        return Err(ApiError::conflict(
            "Volume is in use by one or more sandboxes",
        ));
    }
    match call
        .env
        .store
        .volumes()
        .set_state(&rec.id, rec.version, VolumeState::PendingDelete, None)
        .await
    {
        Ok(_) => {
            tracing::info!(volume = %rec.id, org = %rec.org_id, "volume deletion requested");
            Ok(())
        }
        Err(StoreError::Conflict { .. }) => Err(ApiError::conflict(
            "The volume changed meanwhile; try again",
        )),
        Err(e) => Err(e.api()),
    }
}
