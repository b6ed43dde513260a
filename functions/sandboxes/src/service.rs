//! The sandbox service: desired-state changes with conditional writes, pushed to the runner.
//!
//! Every state-changing action follows the same three steps:
//! 1. **begin**: one conditional write (on the version read) sets `desiredState`, a transitional
//!    `state`, `pending = true` and `generation + 1`. Losing that race is a 409
//!    "Sandbox state change in progress", so at most one action per sandbox talks to its runner.
//! 2. **push**: the spec (or delete/backup) goes to the runner agent, which answers when the
//!    container reached the desired state (bounded by the runner client's timeout).
//! 3. **settle**: the reported state is written, again conditionally; it only applies while the
//!    row still carries this action's generation and desired state (a forced delete may have taken
//!    over), and is retried on a version conflict.

use std::collections::BTreeMap;

use cove_api_types::ApiError;
use cove_api_types::ids::{OrganizationId, SandboxId};
use cove_api_types::permissions::Permission;
use cove_api_types::sandbox::{
    BackupState, CreateSandbox, ListSandboxesResponse, PortPreviewUrl, Sandbox,
    SandboxDesiredState, SandboxLabels, SandboxListItem, SandboxState, ToolboxProxyUrl,
    UpdateSandboxState,
};
use cove_edge::config::SandboxSettings;
use cove_edge::runner_client::{RunnerCallError, RunnerClient};
use cove_edge::store_error::IntoApi;
use cove_edge::{Action, AuthContext, Env, authorize};
use cove_runner_api::{DesiredState, NetworkPolicy, Resources, SandboxSpec, SandboxStatus};
use cove_store::orgs::OrgQuota;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::{QuotaCheck, SandboxRecord, generate_auth_token, observed_state};
use cove_store::{Conflict, Cursor, StoreError};
use time::OffsetDateTime;

use crate::rules::{self, StartKind};
use crate::view;

// Scheduling is its own module of the crate; it is declared here until `lib.rs` (being rewritten
// into a route table) declares it.

use crate::scheduling::pick_runner;

/// How often a settle or a field update is retried after losing a version race.
const MAX_RETRIES: usize = 8;
/// Store pages read at most for one filtered list answer.
const MAX_LIST_PAGES: usize = 20;

/// One authenticated request's context.
pub struct Call<'a> {
    pub env: &'a Env,
    pub settings: &'a SandboxSettings,
    pub ctx: AuthContext,
    pub host: String,
}

impl Call<'_> {
    fn org(&self) -> &OrganizationId {
        &self.ctx.organization_id
    }
    pub fn proxy_url(&self) -> String {
        view::toolbox_proxy_url(self.settings, &self.host)
    }
    fn view(&self, rec: &SandboxRecord) -> Sandbox {
        view::sandbox(rec, &self.proxy_url())
    }
}

fn now() -> String {
    cove_api_types::time::now_rfc3339()
}

fn not_found(id_or_name: &str) -> ApiError {
    ApiError::not_found(format!("Sandbox with ID or name {id_or_name} not found"))
}

fn random_failure(e: getrandom::Error) -> ApiError {
    tracing::error!(error = %e, "random source failed");
    ApiError::internal()
}

/// The caller's sandbox by id or name; 404 when missing, destroyed or another organization's.
async fn find(call: &Call<'_>, id_or_name: &str) -> Result<SandboxRecord, ApiError> {
    let repo = call.env.store.sandboxes();
    if let Ok(id) = SandboxId::parse(id_or_name)
        && let Some(rec) = repo.get(&id).await.api()?
        && rec.org_id == *call.org()
        && !rec.is_destroyed()
    {
        return Ok(rec);
    }
    repo.get_by_name(call.org(), id_or_name)
        .await
        .api()?
        .ok_or_else(|| not_found(id_or_name))
}

async fn quota(call: &Call<'_>) -> Result<OrgQuota, ApiError> {
    Ok(call
        .env
        .store
        .orgs()
        .get(&call.ctx.organization_id)
        .await
        .api()?
        .ok_or_else(|| ApiError::forbidden("Invalid authentication context"))?
        .quota)
}

fn store_err(name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict {
            conflict: Conflict::SandboxNameTaken,
            ..
        } => ApiError::conflict(format!("Sandbox with name {name} already exists")),
        StoreError::Conflict {
            conflict: Conflict::OrganizationDeleting,
            ..
        } => e.api(),
        StoreError::Conflict { .. } => rules::in_progress(),
        other => other.api(),
    }
}

/// Step 1: the conditional write that claims the sandbox for one action: a user action, so the
/// totals it makes grow are checked against the organization's quota.
async fn begin(
    env: &Env,
    prev: &SandboxRecord,
    mut next: SandboxRecord,
    quota: &OrgQuota,
) -> Result<SandboxRecord, ApiError> {
    next.updated_at = now();
    env.store
        .sandboxes()
        .update(prev, &next, QuotaCheck::Enforce(quota))
        .await
        .map_err(|e| store_err(&prev.name, e))
}

/// Step 3: applies `f` to the current row while it still belongs to this action. What the runner
/// did is recorded whatever the quota (the action was admitted in step 1).
async fn settle(
    env: &Env,
    id: &SandboxId,
    generation: u64,
    desired: SandboxDesiredState,
    f: impl Fn(&mut SandboxRecord),
) -> Result<SandboxRecord, ApiError> {
    let repo = env.store.sandboxes();
    for _ in 0..MAX_RETRIES {
        let Some(cur) = repo.get(id).await.api()? else {
            return Err(not_found(id.as_str()));
        };
        if cur.generation != generation || cur.desired_state != desired {
            return Ok(cur);
        }
        let mut next = cur.clone();
        f(&mut next);
        next.updated_at = now();
        match repo.update(&cur, &next, QuotaCheck::Record).await {
            Ok(r) => return Ok(r),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.api()),
        }
    }
    Err(rules::in_progress())
}

/// Reads, changes and conditionally writes one sandbox (fields that do not move usage).
async fn modify(
    call: &Call<'_>,
    id_or_name: &str,
    f: impl Fn(&mut SandboxRecord),
) -> Result<SandboxRecord, ApiError> {
    let repo = call.env.store.sandboxes();
    for _ in 0..MAX_RETRIES {
        let cur = find(call, id_or_name).await?;
        let mut next = cur.clone();
        f(&mut next);
        next.updated_at = now();
        // Labels, visibility, intervals: no usage changes.
        match repo.update(&cur, &next, QuotaCheck::Record).await {
            Ok(r) => return Ok(r),
            Err(StoreError::Conflict {
                conflict: Conflict::Changed | Conflict::Contention,
                ..
            }) => continue,
            Err(e) => return Err(store_err(&cur.name, e)),
        }
    }
    Err(rules::in_progress())
}

/// What the runner said.
enum Outcome {
    Status(SandboxStatus),
    Failed(String),
}

fn call_failed(runner: &RunnerRecord, e: &RunnerCallError) -> String {
    tracing::warn!(runner = %runner.id, error = %e, "runner call failed");
    match e {
        RunnerCallError::Unreachable(_) => format!("Runner {} is unreachable", runner.name),
        RunnerCallError::Status { message, .. } => message.clone(),
    }
}

fn client(runner: &RunnerRecord) -> Result<RunnerClient, String> {
    runner
        .api_url
        .as_deref()
        .map(|u| RunnerClient::new(u, &runner.api_key))
        .ok_or_else(|| format!("Runner {} has no API URL", runner.name))
}

/// Step 2: sends the spec. A container created from another image (restored from a backup) keeps
/// that image: on `IMMUTABLE_FIELD` the image the runner reports is used once more.
async fn push(runner: &RunnerRecord, id: &SandboxId, mut spec: SandboxSpec) -> Outcome {
    let id = id.as_str();
    let c = match client(runner) {
        Ok(c) => c,
        Err(m) => return Outcome::Failed(m),
    };
    match c.put_sandbox(id, &spec).await {
        Ok(st) => Outcome::Status(st),
        Err(RunnerCallError::Status {
            status: 409,
            code: Some(code),
            ..
        }) if code == "IMMUTABLE_FIELD" => {
            if let Ok(cur) = c.get_sandbox(id).await
                && let Some(img) = cur.snapshot
                && img != spec.snapshot
            {
                spec.snapshot = img;
                return match c.put_sandbox(id, &spec).await {
                    Ok(st) => Outcome::Status(st),
                    Err(e) => Outcome::Failed(call_failed(runner, &e)),
                };
            }
            Outcome::Failed("The runner refused the change".into())
        }
        Err(e) => Outcome::Failed(call_failed(runner, &e)),
    }
}

fn set_state(r: &mut SandboxRecord, state: SandboxState, error: Option<String>) {
    r.state = state;
    r.error_reason = if state == SandboxState::Error {
        error
    } else {
        None
    };
    r.pending = !rules::reached(r.state, r.desired_state) && r.state != SandboxState::Error;
}

/// The state a runner's report means for a sandbox that wants `desired`: a container gone while
/// it was not asked to go is an error, not a destroy.
fn reported(observed: cove_runner_api::SandboxState, desired: SandboxDesiredState) -> SandboxState {
    match observed_state(observed) {
        SandboxState::Destroyed if desired != SandboxDesiredState::Destroyed => SandboxState::Error,
        s => s,
    }
}

fn apply(r: &mut SandboxRecord, out: &Outcome) {
    match out {
        Outcome::Status(st) => {
            let state = reported(st.state, r.desired_state);
            if st.daemon_version.is_some() {
                r.daemon_version.clone_from(&st.daemon_version);
            }
            let reason = st
                .error_reason
                .clone()
                .or_else(|| Some("The sandbox's container is gone".into()));
            set_state(r, state, reason);
        }
        Outcome::Failed(m) => set_state(r, SandboxState::Error, Some(m.clone())),
    }
}

/// The spec of a sandbox for its runner. User labels are a control-plane concept (they may change
/// at any time, the agent's container labels may not) and are not sent.
fn spec(rec: &SandboxRecord, image: &str, desired: DesiredState, force: bool) -> SandboxSpec {
    let mut s = SandboxSpec::new(image);
    s.generation = rec.generation;
    s.org_id = Some(rec.org_id.to_string());
    s.os_user = Some(rec.user.clone());
    s.desired_state = desired;
    s.resources = Resources {
        cpu: Some(rec.cpu as f64),
        memory_mib: u64::try_from(rec.memory).ok().map(|m| m * 1024),
        disk_gib: u64::try_from(rec.disk).ok(),
        pids: None,
    };
    s.env = rec.env.clone();
    s.network = if rec.network_block_all {
        NetworkPolicy::BlockAll
    } else {
        NetworkPolicy::Allow
    };
    s.stop_timeout_secs = force.then_some(0);
    s
}

async fn runner_of(env: &Env, rec: &SandboxRecord) -> Result<RunnerRecord, ApiError> {
    let id = rec
        .runner_id
        .as_ref()
        .ok_or_else(|| ApiError::bad_request("Sandbox is not assigned to a runner"))?;
    env.store.runners().get(id).await.api()?.ok_or_else(|| {
        tracing::error!(sandbox = %rec.id, runner = %id, "sandbox names a missing runner");
        ApiError::bad_request("The sandbox's runner no longer exists")
    })
}

/// The row of a new sandbox of `plan`, placed on `runner`, about to be pushed (generation 1).
fn new_record(
    org: &OrganizationId,
    plan: rules::CreatePlan,
    runner: &RunnerRecord,
) -> Result<SandboxRecord, ApiError> {
    let id = SandboxId::new_random();
    let name = plan.name.unwrap_or_else(|| id.to_string());
    let mut rec = SandboxRecord::new(id, org.clone(), name, &plan.snapshot, &now());
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
    rec.auth_token = generate_auth_token().map_err(random_failure)?;
    rec.generation = 1;
    Ok(rec)
}

pub async fn create(call: &Call<'_>, body: CreateSandbox) -> Result<Sandbox, ApiError> {
    let env = call.env;
    authorize(env, &call.ctx, Action::Create(Permission::WriteSandboxes)).await?;
    let plan = rules::plan_create(&body, &call.settings.default_snapshot)?;
    let quota = quota(call).await?;
    rules::per_sandbox_limits(&quota, plan.cpu, plan.memory, plan.disk)?;
    let runners = env.store.runners().list().await.api()?;
    if plan.snapshot != call.settings.default_snapshot
        && !runners.iter().any(|r| r.has_snapshot(&plan.snapshot))
    {
        return Err(ApiError::bad_request(format!(
            "Snapshot {} not found",
            plan.snapshot
        )));
    }
    let runner = pick_runner(
        &runners,
        &plan.snapshot,
        &plan.target,
        OffsetDateTime::now_utc(),
    )
    .ok_or_else(|| ApiError::bad_request("No available runners"))?;

    let rec = new_record(call.org(), plan, runner)?;
    let name = rec.name.clone();
    let rec = env
        .store
        .sandboxes()
        .create(&rec, &quota)
        .await
        .map_err(|e| store_err(&name, e))?;
    tracing::info!(sandbox = %rec.id, org = %rec.org_id, runner = %runner.id, "sandbox created");

    let out = push(
        runner,
        &rec.id,
        spec(&rec, &rec.snapshot, DesiredState::Started, false),
    )
    .await;
    let rec = settle(
        env,
        &rec.id,
        rec.generation,
        SandboxDesiredState::Started,
        |r| apply(r, &out),
    )
    .await?;
    if rec.state == SandboxState::Error {
        // As Daytona: a create that ends in `error` answers 400 (the sandbox stays, in `error`).
        return Err(ApiError::bad_request(format!(
            "Sandbox {} failed to start: {}",
            rec.id,
            rec.error_reason.as_deref().unwrap_or("unknown error")
        )));
    }
    Ok(call.view(&rec))
}

/// `GET /sandbox` filters (CONTRACT §4.6, the cheap ones).
#[derive(Debug, Default)]
pub struct ListQuery {
    pub limit: usize,
    pub cursor: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub states: Vec<String>,
    pub id_prefix: Option<String>,
    pub name_prefix: Option<String>,
}

fn matches(q: &ListQuery, r: &SandboxRecord) -> bool {
    q.labels.iter().all(|(k, v)| r.labels.get(k) == Some(v))
        && (q.states.is_empty() || q.states.iter().any(|s| s == r.state.as_str()))
        && q.id_prefix
            .as_deref()
            .is_none_or(|p| r.id.as_str().starts_with(p))
        && q.name_prefix
            .as_deref()
            .is_none_or(|p| r.name.starts_with(p))
}

pub async fn list(call: &Call<'_>, q: ListQuery) -> Result<ListSandboxesResponse, ApiError> {
    let repo = call.env.store.sandboxes();
    let mut cursor = match q.cursor.as_deref() {
        Some(c) if !c.is_empty() => Some(Cursor::parse(c).api()?),
        _ => None,
    };
    let proxy = call.proxy_url();
    for _ in 0..MAX_LIST_PAGES {
        let page = repo
            .list_by_org(call.org(), q.limit, cursor.as_ref())
            .await
            .api()?;
        let items: Vec<SandboxListItem> = page
            .items
            .iter()
            .filter(|r| matches(&q, r))
            .map(|r| SandboxListItem::from(view::sandbox(r, &proxy)))
            .collect();
        cursor = page.next;
        if !items.is_empty() || cursor.is_none() {
            return Ok(ListSandboxesResponse {
                items,
                next_cursor: cursor.map(|c| c.as_str().to_owned()),
            });
        }
    }
    Ok(ListSandboxesResponse {
        items: Vec::new(),
        next_cursor: cursor.map(|c| c.as_str().to_owned()),
    })
}

pub async fn get(call: &Call<'_>, id_or_name: &str) -> Result<Sandbox, ApiError> {
    Ok(call.view(&find(call, id_or_name).await?))
}

pub async fn start(call: &Call<'_>, id_or_name: &str) -> Result<Sandbox, ApiError> {
    let env = call.env;
    authorize(env, &call.ctx, Action::Create(Permission::WriteSandboxes)).await?;
    let rec = find(call, id_or_name).await?;
    let kind = rules::check_start(rec.state, rec.desired_state, rec.pending)?;
    let quota = quota(call).await?;
    let mut next = rec.clone();
    next.desired_state = SandboxDesiredState::Started;
    next.pending = true;
    next.error_reason = None;
    next.generation += 1;
    next.auth_token = generate_auth_token().map_err(random_failure)?;
    let (runner, image) = match kind {
        StartKind::Noop => return Ok(call.view(&rec)),
        StartKind::Resume => {
            next.state = SandboxState::Starting;
            (runner_of(env, &rec).await?, rec.snapshot.clone())
        }
        StartKind::Restore => {
            let image = rec
                .backup_snapshot
                .clone()
                .ok_or_else(|| ApiError::bad_request("Sandbox has no backup to restore"))?;
            let runners = env.store.runners().list().await.api()?;
            let runner = pick_runner(&runners, &image, &rec.target, OffsetDateTime::now_utc())
                .cloned()
                .ok_or_else(|| ApiError::bad_request("No available runners"))?;
            next.state = SandboxState::Restoring;
            next.runner_id = Some(runner.id.clone());
            (runner, image)
        }
    };
    let cur = begin(env, &rec, next, &quota).await?;
    let out = push(
        &runner,
        &cur.id,
        spec(&cur, &image, DesiredState::Started, false),
    )
    .await;
    let rec = settle(
        env,
        &cur.id,
        cur.generation,
        SandboxDesiredState::Started,
        |r| apply(r, &out),
    )
    .await?;
    Ok(call.view(&rec))
}

pub async fn stop(call: &Call<'_>, id_or_name: &str, force: bool) -> Result<Sandbox, ApiError> {
    let env = call.env;
    authorize(env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let rec = find(call, id_or_name).await?;
    rules::check_stop(rec.state, rec.desired_state, rec.pending)?;
    let runner = runner_of(env, &rec).await?;
    let quota = quota(call).await?;
    let mut next = rec.clone();
    next.desired_state = SandboxDesiredState::Stopped;
    next.state = SandboxState::Stopping;
    next.pending = true;
    next.generation += 1;
    let cur = begin(env, &rec, next, &quota).await?;
    let out = push(
        &runner,
        &cur.id,
        spec(&cur, &cur.snapshot, DesiredState::Stopped, force),
    )
    .await;
    let rec = settle(
        env,
        &cur.id,
        cur.generation,
        SandboxDesiredState::Stopped,
        |r| apply(r, &out),
    )
    .await?;
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

async fn destroy(call: &Call<'_>, rec: SandboxRecord, force: bool) -> Result<Sandbox, ApiError> {
    let env = call.env;
    rules::check_delete(rec.state, rec.pending, force)?;
    let quota = quota(call).await?;
    let mut next = rec.clone();
    next.desired_state = SandboxDesiredState::Destroyed;
    next.state = SandboxState::Destroying;
    next.pending = true;
    next.generation += 1;
    let cur = begin(env, &rec, next, &quota).await?;
    let out = match &cur.runner_id {
        None => Outcome::Status(SandboxStatus::destroyed(cur.id.as_str())),
        Some(_) => match runner_of(env, &cur).await {
            Err(_) => Outcome::Status(SandboxStatus::destroyed(cur.id.as_str())),
            Ok(runner) => match client(&runner) {
                Err(m) => Outcome::Failed(m),
                Ok(c) => match c.delete_sandbox(cur.id.as_str()).await {
                    Ok(st) => Outcome::Status(st),
                    Err(e) => Outcome::Failed(call_failed(&runner, &e)),
                },
            },
        },
    };
    let ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let rec = settle(
        env,
        &cur.id,
        cur.generation,
        SandboxDesiredState::Destroyed,
        |r| match &out {
            Outcome::Failed(m) if !force => set_state(r, SandboxState::Error, Some(m.clone())),
            other => {
                if let Outcome::Failed(m) = other {
                    // Forced: the control plane lets go even when the runner cannot be told.
                    tracing::warn!(sandbox = %r.id, error = %m, "forced delete without the runner");
                }
                set_state(r, SandboxState::Destroyed, None);
                r.name = format!("DESTROYED_{}_{ms}", r.name);
                r.runner_id = None;
                r.backup_state = BackupState::None;
            }
        },
    )
    .await?;
    tracing::info!(sandbox = %rec.id, state = rec.state.as_str(), "sandbox deleted");
    Ok(call.view(&rec))
}

fn backup_image(id: &SandboxId) -> String {
    let ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    format!("cove-backup/{id}:{ms}")
}

async fn run_backup(runner: &RunnerRecord, id: &SandboxId, image: &str) -> Result<String, String> {
    let c = client(runner)?;
    c.backup(id.as_str(), image)
        .await
        .map(|b| b.image)
        .map_err(|e| call_failed(runner, &e))
}

/// Archive: backup to an image, remove the container, release the runner.
pub async fn archive(call: &Call<'_>, id_or_name: &str) -> Result<Sandbox, ApiError> {
    let env = call.env;
    authorize(env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let rec = find(call, id_or_name).await?;
    rules::check_archive(rec.state, rec.pending)?;
    let runner = runner_of(env, &rec).await?;
    let quota = quota(call).await?;
    let mut next = rec.clone();
    next.desired_state = SandboxDesiredState::Archived;
    next.state = SandboxState::Archiving;
    next.pending = true;
    next.backup_state = BackupState::InProgress;
    next.generation += 1;
    let cur = begin(env, &rec, next, &quota).await?;
    let mut result = run_backup(&runner, &cur.id, &backup_image(&cur.id)).await;
    if let Ok(image) = &result {
        let removed = match client(&runner) {
            Ok(c) => c
                .delete_sandbox(cur.id.as_str())
                .await
                .map_err(|e| call_failed(&runner, &e)),
            Err(m) => Err(m),
        };
        if let Err(m) = removed {
            result = Err(m);
        } else {
            tracing::info!(sandbox = %cur.id, image = %image, "sandbox archived");
        }
    }
    let at = now();
    let rec = settle(
        env,
        &cur.id,
        cur.generation,
        SandboxDesiredState::Archived,
        |r| match &result {
            Ok(image) => {
                set_state(r, SandboxState::Archived, None);
                r.runner_id = None;
                r.backup_state = BackupState::Completed;
                r.backup_snapshot = Some(image.clone());
                r.backup_created_at = Some(at.clone());
            }
            Err(m) => {
                set_state(r, SandboxState::Error, Some(m.clone()));
                r.backup_state = BackupState::Error;
            }
        },
    )
    .await?;
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
    let runner = runner_of(env, &rec).await?;
    let mut next = rec.clone();
    next.backup_state = BackupState::InProgress;
    // No usage changes: the quota is not read.
    let cur = begin(env, &rec, next, &OrgQuota::default()).await?;
    let result = run_backup(&runner, &cur.id, &backup_image(&cur.id)).await;
    let at = now();
    let rec = settle(
        env,
        &cur.id,
        cur.generation,
        cur.desired_state,
        |r| match &result {
            Ok(image) => {
                r.backup_state = BackupState::Completed;
                r.backup_snapshot = Some(image.clone());
                r.backup_created_at = Some(at.clone());
            }
            Err(m) => {
                tracing::warn!(sandbox = %r.id, error = %m, "backup failed");
                r.backup_state = BackupState::Error;
            }
        },
    )
    .await?;
    Ok(call.view(&rec))
}

pub async fn set_labels(
    call: &Call<'_>,
    id_or_name: &str,
    labels: BTreeMap<String, String>,
) -> Result<SandboxLabels, ApiError> {
    authorize(call.env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let rec = modify(call, id_or_name, |r| r.labels = labels.clone()).await?;
    Ok(SandboxLabels { labels: rec.labels })
}

pub async fn set_public(
    call: &Call<'_>,
    id_or_name: &str,
    public: bool,
) -> Result<Sandbox, ApiError> {
    authorize(call.env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let rec = modify(call, id_or_name, |r| r.public = public).await?;
    Ok(call.view(&rec))
}

/// Which interval `POST /sandbox/{id}/<kind>/{interval}` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalKind {
    AutoStop,
    AutoArchive,
    AutoDelete,
    AutoPause,
}

impl IntervalKind {
    pub fn parse(segment: &str) -> Option<Self> {
        Some(match segment {
            "autostop" => Self::AutoStop,
            "autoarchive" => Self::AutoArchive,
            "autodelete" => Self::AutoDelete,
            "autopause" => Self::AutoPause,
            _ => return None,
        })
    }
    fn field(self) -> &'static str {
        match self {
            Self::AutoStop => "autoStopInterval",
            Self::AutoArchive => "autoArchiveInterval",
            Self::AutoDelete => "autoDeleteInterval",
            Self::AutoPause => "autoPauseInterval",
        }
    }
}

pub async fn set_interval(
    call: &Call<'_>,
    id_or_name: &str,
    kind: IntervalKind,
    raw: &str,
) -> Result<Sandbox, ApiError> {
    let v: i64 = raw
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{} must be an integer", kind.field())))?;
    let v = rules::interval(kind.field(), v)?;
    authorize(call.env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let rec = modify(call, id_or_name, |r| match kind {
        IntervalKind::AutoStop => r.auto_stop_interval = v,
        IntervalKind::AutoArchive => r.auto_archive_interval = v,
        IntervalKind::AutoDelete => r.auto_delete_interval = v,
        IntervalKind::AutoPause => r.auto_pause_interval = v,
    })
    .await?;
    Ok(call.view(&rec))
}

pub async fn preview_url(
    call: &Call<'_>,
    id_or_name: &str,
    port: &str,
) -> Result<PortPreviewUrl, ApiError> {
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| ApiError::bad_request("Invalid port: must be between 1 and 65535"))?;
    let rec = find(call, id_or_name).await?;
    Ok(PortPreviewUrl {
        url: view::preview_url(call.settings, &call.host, rec.id.as_str(), port),
        sandbox_id: rec.id.to_string(),
        token: rec.auth_token,
    })
}

pub async fn toolbox_proxy_url(
    call: &Call<'_>,
    id_or_name: &str,
) -> Result<ToolboxProxyUrl, ApiError> {
    find(call, id_or_name).await?;
    Ok(ToolboxProxyUrl {
        url: call.proxy_url(),
    })
}

/// Sandboxes made from a snapshot have no build; the log says so.
pub async fn build_logs(call: &Call<'_>, id_or_name: &str) -> Result<String, ApiError> {
    let rec = find(call, id_or_name).await?;
    Ok(format!(
        "Sandbox {} was created from snapshot {} (no build)\n",
        rec.id, rec.snapshot
    ))
}

pub async fn last_activity(call: &Call<'_>, id_or_name: &str) -> Result<(), ApiError> {
    let rec = find(call, id_or_name).await?;
    let now_t = OffsetDateTime::now_utc();
    let older = cove_api_types::time::format_rfc3339(now_t - time::Duration::seconds(5));
    call.env
        .store
        .sandboxes()
        .touch_activity(
            &rec.id,
            &cove_api_types::time::format_rfc3339(now_t),
            &older,
        )
        .await
        .api()?;
    Ok(())
}

/// `PUT /sandbox/{id}/state` from the sandbox's runner.
pub async fn report_state(
    env: &Env,
    runner: &RunnerRecord,
    id: &str,
    body: UpdateSandboxState,
) -> Result<(), ApiError> {
    let observed: cove_runner_api::SandboxState =
        serde_json::from_value(serde_json::Value::String(body.state.clone()))
            .map_err(|_| ApiError::bad_request(format!("Unknown state {}", body.state)))?;
    let missing = || ApiError::not_found(format!("Sandbox with ID {id} not found"));
    let sandbox_id = SandboxId::parse(id).map_err(|_| missing())?;
    let repo = env.store.sandboxes();
    for _ in 0..MAX_RETRIES {
        let cur = repo
            .get(&sandbox_id)
            .await
            .api()?
            .filter(|r| r.runner_id.as_ref() == Some(&runner.id) && !r.is_destroyed())
            .ok_or_else(missing)?;
        let mut next = cur.clone();
        let state = reported(observed, cur.desired_state);
        let reason = body
            .error_reason
            .clone()
            .or_else(|| Some("The sandbox's container is gone".into()));
        set_state(&mut next, state, reason);
        next.recoverable = state == SandboxState::Error && body.recoverable.unwrap_or(false);
        if next.state == cur.state
            && next.error_reason == cur.error_reason
            && next.recoverable == cur.recoverable
        {
            return Ok(());
        }
        next.updated_at = now();
        // What the runner says is recorded whatever the quota: the counters follow reality.
        match repo.update(&cur, &next, QuotaCheck::Record).await {
            Ok(_) => {
                tracing::info!(sandbox = id, runner = %runner.id, state = state.as_str(), "runner reported state");
                return Ok(());
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.api()),
        }
    }
    Err(rules::in_progress())
}
