//! The state-changing actions of an existing sandbox (CONTRACT §4.5): each checks the rules,
//! prepares its transition (`cove_transition::prepare`), adds what is particular to it, and
//! performs it ([`super::perform`]).

use cove_api_types::ApiError;
use cove_api_types::permissions::Permission;
use cove_api_types::sandbox::{BackupState, Sandbox, SandboxState};
use cove_edge::store_error::IntoApi;
use cove_edge::{Action, Env, authorize};
use cove_store::orgs::OrgQuota;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::{QuotaCheck, SandboxAction, SandboxRecord, generate_auth_token};
use cove_transition::REQUEST_BOUNDS;
use time::OffsetDateTime;

use super::{Call, find, now, perform, quota, random_failure, runner_of, transition_err};
use crate::rules::{self, StartKind};
use cove_store::scheduling::pick_runner;

fn prepare(
    rec: &SandboxRecord,
    action: SandboxAction,
    force: bool,
) -> Result<SandboxRecord, ApiError> {
    let at = now();
    let mut next = cove_transition::prepare(rec, action, force, &at)
        .map_err(|e| transition_err(&rec.name, e))?;
    // A lifecycle call is activity (ARCH §7): the idle time of auto-stop / archive / delete
    // counts from it.
    next.last_activity_at = at;
    Ok(next)
}

/// Where an archived sandbox is restored: a backup pushed to the internal registry on any ready
/// runner that fits (the one holding it locally first); a backup kept on its runner there (the
/// agent refuses a restore from a backup it does not hold), or, for a backup recorded before
/// backup runners were, any runner that fits.
async fn restore_runner(
    env: &Env,
    rec: &SandboxRecord,
    image: &str,
) -> Result<RunnerRecord, ApiError> {
    let now = OffsetDateTime::now_utc();
    let in_registry = !image.starts_with(&format!("{}/", cove_runner_api::BACKUP_REPO));
    let any = || async {
        let runners = env.store.runners().list().await.api()?;
        let holder = runners
            .iter()
            .find(|r| Some(&r.id) == rec.backup_runner_id.as_ref() && r.is_schedulable(now));
        holder
            .or_else(|| pick_runner(&runners, image, &rec.target, now))
            .cloned()
            .ok_or_else(|| ApiError::bad_request("No available runners"))
    };
    if in_registry {
        return any().await;
    }
    let Some(id) = &rec.backup_runner_id else {
        return any().await;
    };
    match env.store.runners().get(id).await.api()? {
        Some(r) if r.is_schedulable(now) => Ok(r),
        Some(_) => Err(ApiError::service_unavailable(
            "The runner holding the sandbox's backup is not available; try again later",
        )),
        None => Err(ApiError::bad_request(
            "The runner holding the sandbox's backup no longer exists",
        )),
    }
}

pub async fn start(call: &Call<'_>, id_or_name: &str) -> Result<Sandbox, ApiError> {
    let env = call.env;
    authorize(env, &call.ctx, Action::Create(Permission::WriteSandboxes)).await?;
    let rec = find(call, id_or_name).await?;
    let kind = rules::check_start(rec.state, rec.desired_state, rec.pending)?;
    let next = match kind {
        StartKind::Noop => return Ok(call.view(&rec)),
        StartKind::Resume => {
            runner_of(env, &rec).await?;
            prepare(&rec, SandboxAction::Start, false)?
        }
        StartKind::Restore => {
            let image = rec
                .backup_snapshot
                .clone()
                .ok_or_else(|| ApiError::bad_request("Sandbox has no backup to restore"))?;
            restoring(env, &rec, image).await?
        }
    };
    let mut next = next;
    if kind == StartKind::Resume {
        next.auth_token = generate_auth_token().map_err(random_failure)?;
    }
    let quota = quota(call).await?;
    let rec = perform(call, &rec, &next, QuotaCheck::Enforce(&quota)).await?;
    Ok(call.view(&rec))
}

/// The restore of `rec` from its backup `image`, prepared on the runner it goes to.
async fn restoring(
    env: &Env,
    rec: &SandboxRecord,
    image: String,
) -> Result<SandboxRecord, ApiError> {
    let runner = restore_runner(env, rec, &image).await?;
    let mut next = prepare(rec, SandboxAction::Restore, false)?;
    next.runner_id = Some(runner.id);
    next.container_image = Some(image);
    next.auth_token = generate_auth_token().map_err(random_failure)?;
    Ok(next)
}

/// `POST /recover`: a recoverable sandbox in `error` (its runner was lost; its last backup is in
/// the registry) is restored from that backup on another ready runner. With `skip_start` it is
/// left `archived` instead, without a runner: its next `start` restores it.
pub async fn recover(
    call: &Call<'_>,
    id_or_name: &str,
    skip_start: bool,
) -> Result<Sandbox, ApiError> {
    let env = call.env;
    authorize(env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let rec = find(call, id_or_name).await?;
    rules::check_recover(rec.state, rec.recoverable, rec.pending)?;
    let image = rec
        .backup_snapshot
        .clone()
        .filter(|_| rec.has_portable_backup())
        .ok_or_else(|| ApiError::bad_request("Sandbox has no backup to recover from"))?;
    let quota = quota(call).await?;
    if skip_start {
        let mut next = rec.clone();
        next.state = SandboxState::Archived;
        next.desired_state = cove_api_types::sandbox::SandboxDesiredState::Archived;
        next.runner_id = None;
        next.error_reason = None;
        next.recoverable = false;
        next.updated_at = now();
        let rec = env
            .store
            .sandboxes()
            .update(&rec, &next, QuotaCheck::Enforce(&quota))
            .await
            .api()?;
        tracing::info!(sandbox = %rec.id, "sandbox recovered as archived");
        return Ok(call.view(&rec));
    }
    let next = restoring(env, &rec, image).await?;
    let rec = perform(call, &rec, &next, QuotaCheck::Enforce(&quota)).await?;
    tracing::info!(sandbox = %rec.id, runner = ?rec.runner_id, state = rec.state.as_str(), "sandbox recovered");
    Ok(call.view(&rec))
}

pub async fn stop(call: &Call<'_>, id_or_name: &str, force: bool) -> Result<Sandbox, ApiError> {
    let env = call.env;
    authorize(env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let rec = find(call, id_or_name).await?;
    rules::check_stop(rec.state, rec.desired_state, rec.pending)?;
    runner_of(env, &rec).await?;
    let next = prepare(&rec, SandboxAction::Stop, force)?;
    let quota = quota(call).await?;
    let rec = perform(call, &rec, &next, QuotaCheck::Enforce(&quota)).await?;
    if rec.state == SandboxState::Stopped && rec.auto_delete_interval == 0 {
        // Ephemeral: stopping is deleting.
        return destroy(call, rec, false).await;
    }
    Ok(call.view(&rec))
}

pub async fn delete(call: &Call<'_>, id_or_name: &str, force: bool) -> Result<Sandbox, ApiError> {
    authorize(
        call.env,
        &call.ctx,
        Action::Use(Permission::DeleteSandboxes),
    )
    .await?;
    let rec = find(call, id_or_name).await?;
    destroy(call, rec, force).await
}

/// Destroys the sandbox, then (best effort) its backups on their runner; what is not removed now
/// the lifecycle sweep removes.
async fn destroy(call: &Call<'_>, rec: SandboxRecord, force: bool) -> Result<Sandbox, ApiError> {
    let env = call.env;
    rules::check_delete(rec.state, rec.pending, force)?;
    let next = prepare(&rec, SandboxAction::Destroy, force)?;
    let quota = quota(call).await?;
    let rec = perform(call, &rec, &next, QuotaCheck::Enforce(&quota)).await?;
    if rec.has_backups_to_remove() {
        match cove_transition::remove_backups(&env.store, &rec, &REQUEST_BOUNDS).await {
            Ok(true) => {}
            Ok(false) => tracing::info!(sandbox = %rec.id, "backups left to the sweep"),
            Err(e) => tracing::warn!(sandbox = %rec.id, error = %e, "backups left to the sweep"),
        }
    }
    tracing::info!(sandbox = %rec.id, state = rec.state.as_str(), "sandbox deleted");
    Ok(call.view(&rec))
}

/// Archive: backup to an image (named by the agent), remove the container, release the runner.
pub async fn archive(call: &Call<'_>, id_or_name: &str) -> Result<Sandbox, ApiError> {
    let env = call.env;
    authorize(env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let rec = find(call, id_or_name).await?;
    rules::check_archive(rec.state, rec.pending)?;
    runner_of(env, &rec).await?;
    let next = prepare(&rec, SandboxAction::Archive, false)?;
    let quota = quota(call).await?;
    let rec = perform(call, &rec, &next, QuotaCheck::Enforce(&quota)).await?;
    Ok(call.view(&rec))
}

/// Ad-hoc backup of a started or stopped sandbox (its state does not change).
pub async fn backup(call: &Call<'_>, id_or_name: &str) -> Result<Sandbox, ApiError> {
    let env = call.env;
    authorize(env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let rec = find(call, id_or_name).await?;
    if rec.pending {
        return Err(rules::in_progress());
    }
    if !matches!(rec.state, SandboxState::Started | SandboxState::Stopped) {
        return Err(ApiError::bad_request(
            "Sandbox must be started or stopped to be backed up",
        ));
    }
    if matches!(
        rec.backup_state,
        BackupState::Pending | BackupState::InProgress
    ) {
        return Err(ApiError::conflict("A backup is already in progress"));
    }
    runner_of(env, &rec).await?;
    let next = prepare(&rec, SandboxAction::Backup, false)?;
    // No usage changes: the quota is not read.
    let none = OrgQuota::default();
    let rec = perform(call, &rec, &next, QuotaCheck::Enforce(&none)).await?;
    Ok(call.view(&rec))
}
