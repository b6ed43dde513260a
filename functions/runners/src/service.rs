//! What the runner routes do, independent of HTTP.

use cove_api_types::ApiError;
use cove_api_types::ids::{RunnerId, SandboxId};
use cove_api_types::runner::{
    CreateRunner, CreateRunnerResponse, Runner, RunnerFull, RunnerSnapshotDto, RunnerState,
};
use cove_api_types::sandbox::SandboxState;
use cove_edge::store_error::IntoApi;
use cove_edge::{AuthContext, Env};
use cove_runner_api::Healthcheck;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::QuotaCheck;
use cove_store::{Conflict, StoreError};
use time::OffsetDateTime;

const MAX_NAME: usize = 255;

/// 403 unless the caller is a system admin.
pub async fn require_admin(env: &Env, ctx: &AuthContext) -> Result<(), ApiError> {
    if ctx.is_system_admin(env).await? {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "Only system administrators may manage runners",
        ))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Runner with ID {id} not found"))
}

/// The runner id of a path; one that is not an id names no runner.
fn runner_id(id: &str) -> Result<RunnerId, ApiError> {
    RunnerId::parse(id).map_err(|_| not_found(id))
}

/// The wire view of a runner at `now`.
pub fn to_runner(rec: &RunnerRecord, now: OffsetDateTime) -> Runner {
    let m = rec.metrics.as_ref();
    let st: RunnerState = rec.effective_state(now);
    Runner {
        id: rec.id.to_string(),
        domain: rec.domain.clone(),
        api_url: rec.api_url.clone(),
        proxy_url: rec.proxy_url.clone(),
        cpu: rec.cpu,
        memory: rec.memory_gib,
        disk: rec.disk_gib,
        current_cpu_usage_percentage: m.map(|m| m.current_cpu_usage_percentage),
        current_memory_usage_percentage: m.map(|m| m.current_memory_usage_percentage),
        current_disk_usage_percentage: m.map(|m| m.current_disk_usage_percentage),
        current_allocated_cpu: m.map(|m| m.current_allocated_cpu),
        current_allocated_memory_gib: m.map(|m| m.current_allocated_memory_gib),
        current_allocated_disk_gib: m.map(|m| m.current_allocated_disk_gib),
        current_snapshot_count: m.map(|m| f64::from(m.current_snapshot_count)),
        current_started_sandboxes: m.map(|m| f64::from(m.current_started_sandboxes)),
        assigned_sandboxes: rec.assigned_sandboxes,
        region: rec.region_id.clone(),
        name: rec.name.clone(),
        state: st,
        last_checked: rec.last_checked.clone(),
        unschedulable: rec.unschedulable,
        draining: rec.draining,
        tags: Vec::new(),
        created_at: rec.created_at.clone(),
        updated_at: rec.updated_at.clone(),
        version: "0".to_owned(),
        api_version: "0".to_owned(),
        runner_class: "container".to_owned(),
        app_version: rec.app_version.clone(),
    }
}

/// The wire view with the token.
/// The full view. The runner's token is shown once, when the runner is created; afterwards every
/// view carries it masked (`abc********************xyz`).
pub fn to_full(rec: &RunnerRecord, now: OffsetDateTime) -> RunnerFull {
    RunnerFull {
        runner: to_runner(rec, now),
        api_key: mask_token(&rec.api_key),
        region_type: "shared".to_owned(),
    }
}

fn mask_token(token: &str) -> String {
    match (token.get(..3), token.get(token.len().saturating_sub(3)..)) {
        (Some(head), Some(tail)) if token.len() > 6 => format!("{head}{}{tail}", "*".repeat(20)),
        _ => "*".repeat(20),
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub async fn create(env: &Env, body: CreateRunner) -> Result<CreateRunnerResponse, ApiError> {
    let name = body.name.trim();
    let region = body.region_id.trim();
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(ApiError::bad_request(
            "name must be a non-empty string of at most 255 characters",
        ));
    }
    if region.is_empty() || region.len() > MAX_NAME {
        return Err(ApiError::bad_request("regionId must be a non-empty string"));
    }
    let existing = env.store.runners().list().await.api()?;
    if existing
        .iter()
        .any(|r| r.name == name && r.region_id == region)
    {
        return Err(ApiError::conflict(format!(
            "Runner with name {name} already exists in region {region}"
        )));
    }
    let rec =
        RunnerRecord::new(name, region, &cove_api_types::time::now_rfc3339()).map_err(|e| {
            tracing::error!(error = %e, "random source failed");
            ApiError::internal()
        })?;
    let rec = env.store.runners().create(&rec).await.api()?;
    tracing::info!(runner_id = %rec.id, name = %rec.name, region = %rec.region_id, "runner created");
    Ok(CreateRunnerResponse {
        id: rec.id.to_string(),
        api_key: rec.api_key,
    })
}

pub async fn list(env: &Env, region: Option<&str>) -> Result<Vec<Runner>, ApiError> {
    let now = now();
    let mut rs = env.store.runners().list().await.api()?;
    rs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(rs
        .iter()
        .filter(|r| region.is_none_or(|g| r.region_id == g))
        .map(|r| to_runner(r, now))
        .collect())
}

pub async fn get(env: &Env, id: &str) -> Result<RunnerRecord, ApiError> {
    env.store
        .runners()
        .get(&runner_id(id)?)
        .await
        .api()?
        .ok_or_else(|| not_found(id))
}

fn map_missing(id: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound { .. } => not_found(id),
        e => e.api(),
    }
}

pub async fn set_scheduling(env: &Env, id: &str, unschedulable: bool) -> Result<Runner, ApiError> {
    let rec = env
        .store
        .runners()
        .set_unschedulable(&runner_id(id)?, unschedulable)
        .await
        .map_err(map_missing(id))?;
    tracing::info!(runner_id = %id, unschedulable, "runner scheduling changed");
    Ok(to_runner(&rec, now()))
}

pub async fn set_draining(env: &Env, id: &str, draining: bool) -> Result<Runner, ApiError> {
    let rec = env
        .store
        .runners()
        .set_draining(&runner_id(id)?, draining)
        .await
        .map_err(map_missing(id))?;
    tracing::info!(runner_id = %id, draining, "runner draining changed");
    Ok(to_runner(&rec, now()))
}

/// Deletes a runner. With `force`, its sandboxes first become `error` ("The sandbox's runner was
/// deleted") and lose their `runnerId` (while the runner row still exists, so its count moves
/// with them), after the runner stopped taking new sandboxes.
pub async fn delete(env: &Env, id: &str, force: bool) -> Result<(), ApiError> {
    let rid = runner_id(id)?;
    if force {
        match env.store.runners().set_unschedulable(&rid, true).await {
            Ok(_) => release_sandboxes(env, &rid).await?,
            Err(StoreError::NotFound { .. }) => return Err(not_found(id)),
            Err(e) => return Err(e.api()),
        }
    }
    match env.store.runners().delete(&rid, force).await {
        Ok(()) => {
            tracing::info!(runner_id = %id, force, "runner deleted");
            Ok(())
        }
        Err(StoreError::NotFound { .. }) => Err(not_found(id)),
        Err(StoreError::Conflict {
            conflict: Conflict::RunnerHasSandboxes,
            ..
        }) => Err(ApiError::bad_request(
            "Runner still has sandboxes assigned; delete them first or pass force=true",
        )),
        Err(e) => Err(e.api()),
    }
}

/// How often a sandbox's release is retried after losing a version race.
const MAX_RETRIES: usize = 8;

/// Marks every live sandbox of runner `rid` `error` without a runner (its transition, if any,
/// abandoned): recorded whatever the quota, as what happened to them.
async fn release_sandboxes(env: &Env, rid: &RunnerId) -> Result<(), ApiError> {
    let repo = env.store.sandboxes();
    for sb in repo.list_by_runner(rid).await.api()? {
        for _ in 0..MAX_RETRIES {
            let Some(cur) = repo.get(&sb.id).await.api()? else {
                break;
            };
            if cur.is_destroyed() || cur.runner_id.as_ref() != Some(rid) {
                break;
            }
            let mut next = cur.clone();
            next.state = SandboxState::Error;
            next.error_reason = Some("The sandbox's runner was deleted".to_owned());
            next.recoverable = false;
            next.pending = false;
            next.transition = None;
            next.runner_id = None;
            next.container_image = None;
            if next.backup_runner_id.as_ref() == Some(rid) {
                next.backup_runner_id = None;
            }
            next.updated_at = cove_api_types::time::now_rfc3339();
            match repo.update(&cur, &next, QuotaCheck::Record).await {
                Ok(_) => {
                    tracing::info!(sandbox = %cur.id, runner_id = %rid, "sandbox released: runner deleted");
                    break;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.api()),
            }
        }
    }
    Ok(())
}

pub async fn by_sandbox(env: &Env, sandbox_id: &str) -> Result<RunnerFull, ApiError> {
    let missing = || ApiError::not_found(format!("Sandbox with ID {sandbox_id} not found"));
    let id = SandboxId::parse(sandbox_id).map_err(|_| missing())?;
    let sb = env
        .store
        .sandboxes()
        .get(&id)
        .await
        .api()?
        .filter(|s| s.state != SandboxState::Destroyed)
        .ok_or_else(missing)?;
    let runner_id = sb.runner_id.ok_or_else(|| {
        ApiError::not_found(format!("Sandbox {sandbox_id} is not assigned to a runner"))
    })?;
    let rec = env
        .store
        .runners()
        .get(&runner_id)
        .await
        .api()?
        .ok_or_else(|| not_found(runner_id.as_str()))?;
    Ok(to_full(&rec, now()))
}

pub async fn by_snapshot_ref(env: &Env, image: &str) -> Result<Vec<RunnerSnapshotDto>, ApiError> {
    if image.trim().is_empty() {
        return Err(ApiError::bad_request("ref is required"));
    }
    let now = now();
    let mut rs = env.store.runners().list().await.api()?;
    rs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rs
        .iter()
        .filter(|r| r.has_snapshot(image) && r.effective_state(now) == RunnerState::Ready)
        .map(|r| RunnerSnapshotDto {
            runner_snapshot_id: format!("{}:{image}", r.id),
            runner_id: r.id.to_string(),
            runner_domain: r.domain.clone(),
        })
        .collect())
}

pub async fn healthcheck(
    env: &Env,
    runner: &RunnerRecord,
    hc: &Healthcheck,
) -> Result<(), ApiError> {
    if hc.api_url.trim().is_empty() {
        return Err(ApiError::bad_request("apiUrl is required"));
    }
    let now = cove_api_types::time::now_rfc3339();
    env.store
        .runners()
        .record_heartbeat(&runner.id, hc, &now)
        .await
        .map_err(map_missing(runner.id.as_str()))?;
    if runner.state != RunnerState::Ready {
        tracing::info!(runner_id = %runner.id, from = runner.state.as_str(), "runner heartbeat: ready");
    }
    Ok(())
}
