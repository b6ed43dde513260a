//! `POST /sandbox`: admission (snapshot, validation, quota, a runner), then the create
//! transition. Nothing is written before every check the control plane can make passed; a
//! create the runner still refuses (4xx) is undone (`Settled::Discarded`).

use cove_api_types::ApiError;
use cove_api_types::ids::{OrganizationId, SandboxId};
use cove_api_types::permissions::Permission;
use cove_api_types::sandbox::{CreateSandbox, Sandbox, SandboxDesiredState, SandboxState};
use cove_edge::config::SandboxSettings;
use cove_edge::store_error::IntoApi;
use cove_edge::{Action, authorize};
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::{SandboxAction, SandboxRecord, Transition, generate_auth_token};
use cove_transition::{REQUEST_BOUNDS, Settled};
use time::OffsetDateTime;

use super::{Call, now, quota, random_failure, transition_err};
use crate::rules;
use crate::scheduling::pick_runner;

/// Which snapshots a sandbox may be created from: the default snapshot, general snapshots and
/// the organization's own (there is no snapshot store yet, so: the default snapshot only).
/// Anything else is "not found", whether or not some runner holds an image of that name: an
/// image on a runner is not a snapshot of the caller's (another organization's backup, a bare
/// local tag).
fn admit_snapshot(settings: &SandboxSettings, snapshot: &str) -> Result<(), ApiError> {
    if snapshot == settings.default_snapshot {
        Ok(())
    } else {
        tracing::info!(
            snapshot,
            "create refused: not a snapshot of the organization"
        );
        Err(ApiError::bad_request(format!(
            "Snapshot {snapshot} not found"
        )))
    }
}

/// The row of a new sandbox of `plan`, placed on `runner`, its create begun (generation 1).
fn new_record(
    org: &OrganizationId,
    plan: rules::CreatePlan,
    runner: &RunnerRecord,
) -> Result<SandboxRecord, ApiError> {
    let id = SandboxId::new_random();
    let name = plan.name.unwrap_or_else(|| id.to_string());
    let at = now();
    let mut rec = SandboxRecord::new(id, org.clone(), name, &plan.snapshot, &at);
    rec.user = plan.user;
    rec.env = plan.env;
    rec.labels = plan.labels;
    rec.public = plan.public;
    rec.network_block_all = plan.network_block_all;
    rec.network_allow_list = plan.network_allow_list;
    rec.domain_allow_list = plan.domain_allow_list;
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
    rec.pending = true;
    rec.runner_id = Some(runner.id.clone());
    rec.container_image = Some(plan.snapshot);
    rec.auth_token = generate_auth_token().map_err(random_failure)?;
    rec.generation = 1;
    rec.transition = Some(Transition::begin(SandboxAction::Create, 1, &at, false));
    Ok(rec)
}

pub async fn create(call: &Call<'_>, body: CreateSandbox) -> Result<Sandbox, ApiError> {
    let env = call.env;
    authorize(env, &call.ctx, Action::Create(Permission::WriteSandboxes)).await?;
    let plan = rules::plan_create(&body, &call.settings.default_snapshot)?;
    admit_snapshot(call.settings, &plan.snapshot)?;
    let quota = quota(call).await?;
    rules::per_sandbox_limits(&quota, plan.cpu, plan.memory, plan.disk)?;
    let runners = env.store.runners().list().await.api()?;
    let runner = pick_runner(
        &runners,
        &plan.snapshot,
        &plan.target,
        OffsetDateTime::now_utc(),
    )
    .ok_or_else(|| ApiError::bad_request("No available runners"))?;

    let rec = new_record(call.org(), plan, runner)?;
    let rec = cove_transition::begin_create(&env.store, &rec, &quota)
        .await
        .map_err(|e| transition_err(&rec.name, e))?;
    tracing::info!(sandbox = %rec.id, org = %rec.org_id, runner = %runner.id, "sandbox created");
    let settled = cove_transition::run(&env.store, &rec, &REQUEST_BOUNDS)
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
