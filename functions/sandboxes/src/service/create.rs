//! `POST /sandbox`: admission (snapshot, validation, quota, a runner), then the create
//! transition. Nothing is written before every check the control plane can make passed; a
//! create the runner still refuses (4xx) is undone (`Settled::Discarded`).

use cove_api_types::ApiError;
use cove_api_types::ids::{OrganizationId, SandboxId, SnapshotId};
use cove_api_types::permissions::Permission;
use cove_api_types::sandbox::{CreateSandbox, Sandbox, SandboxDesiredState, SandboxState};
use cove_api_types::snapshots::SnapshotState;
use cove_edge::store_error::IntoApi;
use cove_edge::{Action, authorize};
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::due::ttl_deadline;
use cove_store::sandboxes::{SandboxAction, SandboxRecord, Transition, generate_auth_token};
use cove_transition::{REQUEST_BOUNDS, Settled};
use time::{Duration, OffsetDateTime};

use super::{Call, now, quota, random_failure, transition_err};
use crate::rules;
use cove_store::scheduling::pick_runner;

/// Which snapshots a sandbox may be created from: the default snapshot, and every snapshot the
/// organization sees (its own, by id or name, then the general ones), which must be `active`.
/// Anything else is "not found", whether or not some runner holds an image of that name: an
/// image on a runner is not a snapshot of the caller's (another organization's backup, a bare
/// local tag). A snapshot's image (its `ref`) becomes the sandbox's image and its sizes the
/// sandbox's (a create naming a snapshot gives none). Returns the snapshot used, if stored.
async fn admit_snapshot(
    call: &Call<'_>,
    plan: &mut rules::CreatePlan,
) -> Result<Option<SnapshotId>, ApiError> {
    let name = plan.snapshot.clone();
    if name == call.settings.default_snapshot {
        return Ok(None);
    }
    let found = call
        .env
        .store
        .snapshots()
        .find_visible(call.org(), &name)
        .await
        .api()?;
    let Some(snap) = found else {
        tracing::info!(snapshot = %name, "create refused: not a snapshot of the organization");
        return Err(ApiError::bad_request(format!("Snapshot {name} not found")));
    };
    if snap.state != SnapshotState::Active {
        tracing::info!(snapshot = %snap.id, state = %snap.state, "create refused: snapshot not active");
        return Err(ApiError::bad_request(format!(
            "Snapshot {name} is {}",
            snap.state
        )));
    }
    let Some(image) = snap.r#ref.clone() else {
        return Err(ApiError::bad_request("Snapshot ref is not defined"));
    };
    plan.snapshot = image;
    plan.cpu = snap.cpu;
    plan.memory = snap.mem;
    plan.disk = snap.disk;
    Ok(Some(snap.id))
}

/// Records the use of a snapshot (`lastUsedAt`); a failure only costs the timestamp.
async fn touch_snapshot(call: &Call<'_>, id: Option<SnapshotId>) {
    let Some(id) = id else { return };
    if let Err(e) = call
        .env
        .store
        .snapshots()
        .touch_last_used(&id, &now())
        .await
    {
        tracing::warn!(snapshot = %id, error = %e, "could not record the snapshot's use");
    }
}

/// The row of a new sandbox of `plan`, placed on `runner`, its create begun (generation 1); with
/// no runner, queued until `queueTimeout` lifecycle minutes of `minute` from now.
fn new_record(
    org: &OrganizationId,
    plan: rules::CreatePlan,
    runner: Option<&RunnerRecord>,
    minute: Duration,
) -> Result<SandboxRecord, ApiError> {
    let id = SandboxId::new_random();
    let name = plan.name.unwrap_or_else(|| id.to_string());
    let now_t = OffsetDateTime::now_utc();
    let at = cove_api_types::time::format_rfc3339(now_t);
    let mut rec = SandboxRecord::new(id, org.clone(), name, &plan.snapshot, &at);
    rec.auto_destroy_at = ttl_deadline(now_t, plan.ttl_minutes, minute);
    rec.queue_timeout = plan.queue_timeout;
    rec.user = plan.user;
    rec.env = plan.env;
    rec.labels = plan.labels;
    rec.public = plan.public;
    rec.network_block_all = plan.network_block_all;
    rec.network_none = Some(plan.network_block_all);
    rec.network_allow_list = plan.network_allow_list;
    rec.network_deny_list = plan.network_deny_list;
    rec.domain_allow_list = plan.domain_allow_list;
    rec.domain_deny_list = plan.domain_deny_list;
    rec.target = plan.target;
    rec.cpu = plan.cpu;
    rec.gpu = plan.gpu;
    rec.memory = plan.memory;
    rec.disk = plan.disk;
    rec.auto_stop_interval = plan.auto_stop_interval;
    rec.auto_archive_interval = plan.auto_archive_interval;
    rec.auto_delete_interval = plan.auto_delete_interval;
    rec.auto_pause_interval = plan.auto_pause_interval;
    rec.state = SandboxState::Creating;
    rec.desired_state = SandboxDesiredState::Started;
    rec.container_image = Some(plan.snapshot);
    rec.auth_token = generate_auth_token().map_err(random_failure)?;
    match (runner, plan.queue_timeout) {
        (Some(runner), _) => {
            rec.pending = true;
            rec.runner_id = Some(runner.id.clone());
            rec.generation = 1;
            rec.transition = Some(Transition::begin(SandboxAction::Create, 1, &at, false));
        }
        (None, Some(mins)) => {
            let until = ttl_deadline(now_t, mins, minute)
                .ok_or_else(|| ApiError::bad_request("queueTimeout is too long"))?;
            rec.queued_until = Some(until);
        }
        (None, None) => return Err(ApiError::bad_request("No available runners")),
    }
    Ok(rec)
}

pub async fn create(call: &Call<'_>, body: CreateSandbox) -> Result<Sandbox, ApiError> {
    let env = call.env;
    authorize(env, &call.ctx, Action::Create(Permission::WriteSandboxes)).await?;
    let mut plan = rules::plan_create(&body, &call.settings.default_snapshot)?;
    let snapshot_id = admit_snapshot(call, &mut plan).await?;
    let mounts = super::volumes::admit(call, body.volumes.as_deref()).await?;
    let quota = quota(call).await?;
    rules::per_sandbox_limits(&quota, plan.cpu, plan.memory, plan.disk)?;
    let runners = env.store.runners().list().await.api()?;
    let runner = pick_runner(
        &runners,
        &plan.snapshot,
        &plan.target,
        OffsetDateTime::now_utc(),
    );

    let mut rec = new_record(call.org(), plan, runner, env.store.lifecycle_minute())?;
    rec.volumes = mounts;
    let rec = cove_transition::begin_create(&env.store, &rec, &quota)
        .await
        .map_err(|e| transition_err(&rec.name, e))?;
    tracing::info!(sandbox = %rec.id, org = %rec.org_id, runner = ?runner.map(|r| &r.id), queued_until = ?rec.queued_until, "sandbox created");
    touch_snapshot(call, snapshot_id).await;
    super::volumes::touch(call, &rec.volumes).await;
    if rec.is_queued() {
        // Placed by the lifecycle sweep as soon as a runner is available (SDK: it polls).
        return Ok(call.view(&rec));
    }
    let settled = cove_transition::run_with(
        &env.store,
        &rec,
        &REQUEST_BOUNDS,
        &super::access(call.settings, &rec),
    )
    .await
    .map_err(|e| transition_err(&rec.name, e))?;
    match settled {
        Settled::Discarded { reason } => Err(ApiError::bad_request(reason)),
        // As Daytona: a create that ends in `error` answers 400 (the sandbox stays, in `error`).
        Settled::Row(rec) if rec.state == SandboxState::Error => {
            Err(ApiError::bad_request(format!(
                "Sandbox {} failed to start: {}",
                rec.id,
                rec.error_reason.as_deref().unwrap_or("unknown error")
            )))
        }
        Settled::Row(rec) => Ok(call.view(&rec)),
    }
}
