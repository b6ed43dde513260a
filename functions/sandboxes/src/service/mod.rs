//! The sandbox service, by resource: [`create`](mod@create), the state-changing [`actions`],
//! the field updates and reads ([`queries`]), the runner's state reports ([`reports`]).
//!
//! Every state change goes one way, through `cove_transition`: **begin** (one conditional write
//! sets the desired and transitional state, the next generation and the row's `transition`;
//! losing that race is a 409 "Sandbox state change in progress"), **push** (the runner calls of
//! the action, all within `REQUEST_BOUNDS`, well below the host's 60 s request deadline),
//! **settle** (the outcome, written while the row still carries that transition). An outcome
//! not known in time answers the transitional state (`creating`, `starting`, …); the runner's
//! state report or the lifecycle sweep settles it. Handlers hold no retry loops but the
//! optimistic-concurrency re-reads of field updates.

mod actions;
mod create;
pub mod events;
pub mod listing;
pub mod network;
mod preview;
mod queries;
mod reports;
pub mod telemetry;
pub mod volumes;

pub use actions::{archive, backup, delete, recover, start, stop};
pub use create::create;
pub use listing::{ListQuery, list};
pub use preview::{expire_signed_preview_url, signed_preview_url};
pub use queries::{
    IntervalKind, build_logs, get, last_activity, preview_url, rotate_signing_key, set_interval,
    set_labels, set_public, set_ttl, signing_key, toolbox_proxy_url,
};
pub use reports::report_state;

use cove_api_types::ApiError;
use cove_api_types::ids::{OrganizationId, SandboxId};
use cove_api_types::sandbox::Sandbox;
use cove_edge::config::SandboxSettings;
use cove_edge::store_error::IntoApi;
use cove_edge::{AuthContext, Env};
use cove_store::orgs::OrgQuota;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::{QuotaCheck, SandboxRecord};
use cove_store::{Conflict, StoreError};
use cove_transition::{REQUEST_BOUNDS, Settled, TransitionError};

use crate::rules;
use crate::view;

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

/// How often an action begins again when only the sandbox's activity changed under it.
const ACTIVITY_RETRIES: usize = 4;

/// `next` (an action prepared from `prev`) moved onto `fresh`, the row as it is now, when the
/// only writes since `prev` were activity (a busy/idle report of the runner, a toolbox call's
/// `lastActivityAt`): those race with every user action (a delete right after an exec) and must
/// not turn it into a 409. `None` when anything else changed: then the action is decided again.
fn rebase_on_activity(
    prev: &SandboxRecord,
    next: &SandboxRecord,
    fresh: &SandboxRecord,
) -> Option<SandboxRecord> {
    let mut same = fresh.clone();
    same.busy = prev.busy;
    same.last_busy_at.clone_from(&prev.last_busy_at);
    same.last_activity_at.clone_from(&prev.last_activity_at);
    same.updated_at.clone_from(&prev.updated_at);
    same.version = prev.version;
    if same != *prev {
        return None;
    }
    let mut rebased = next.clone();
    rebased.busy = fresh.busy;
    rebased.last_busy_at.clone_from(&fresh.last_busy_at);
    if fresh.last_activity_at > rebased.last_activity_at {
        rebased.last_activity_at.clone_from(&fresh.last_activity_at);
    }
    rebased.version = fresh.version;
    Some(rebased)
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

fn transition_err(name: &str, e: TransitionError) -> ApiError {
    match e {
        TransitionError::InProgress => rules::in_progress(),
        TransitionError::Gone => not_found(name),
        TransitionError::Store(e) => store_err(name, e),
    }
}

/// What the runner gets besides the spec of `rec`: its image's pull credentials when the image
/// is in the internal registry, and the organization's project there for backups.
fn access(settings: &SandboxSettings, rec: &SandboxRecord) -> cove_transition::Access {
    let registry =
        settings
            .internal_registry
            .as_deref()
            .map(|host| cove_transition::InternalRegistry {
                host,
                auth: settings.internal_registry_auth.as_ref(),
            });
    cove_transition::Access::of(registry, rec)
}

/// The sandbox's runner; 400 when it has none or names one that is gone.
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

/// Begins `next` (from `cove_transition::prepare`) over `prev` as a user action (its usage
/// growth checked against `quota`) and runs it within [`REQUEST_BOUNDS`].
async fn perform(
    call: &Call<'_>,
    prev: &SandboxRecord,
    next: &SandboxRecord,
    check: QuotaCheck<'_>,
) -> Result<SandboxRecord, ApiError> {
    let env = call.env;
    let err = |e| transition_err(&prev.name, e);
    let (mut prev, mut next) = (prev.clone(), next.clone());
    let mut attempts = 0;
    let begun = loop {
        match cove_transition::begin(&env.store, &prev, &next, check).await {
            Ok(begun) => break begun,
            Err(TransitionError::InProgress) if attempts < ACTIVITY_RETRIES => {
                attempts += 1;
                let fresh = env
                    .store
                    .sandboxes()
                    .get(&prev.id)
                    .await
                    .api()?
                    .ok_or_else(|| not_found(&prev.name))?;
                let Some(rebased) = rebase_on_activity(&prev, &next, &fresh) else {
                    return Err(rules::in_progress());
                };
                (prev, next) = (fresh, rebased);
            }
            Err(e) => return Err(err(e)),
        }
    };
    let access = access(call.settings, &begun);
    match cove_transition::run_with(&env.store, &begun, &REQUEST_BOUNDS, &access)
        .await
        .map_err(err)?
    {
        Settled::Row(rec) => Ok(*rec),
        // Only a create is discarded, and a create does not come here.
        Settled::Discarded { reason } => Err(ApiError::bad_request(reason)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cove_api_types::sandbox::SandboxDesiredState;

    fn rec() -> SandboxRecord {
        SandboxRecord::new(
            SandboxId::new_random(),
            OrganizationId::new_random(),
            "n",
            "img",
            "2026-12-02T06:00:00.000Z",
        )
    }

    #[test]
    fn an_action_moves_onto_a_row_whose_activity_alone_changed() {
        let prev = rec();
        let mut next = prev.clone();
        next.desired_state = SandboxDesiredState::Destroyed;
        let mut fresh = prev.clone();
        fresh.busy = true;
        fresh.last_busy_at = Some("2026-12-02T06:00:05.000Z".into());
        fresh.last_activity_at = "2026-12-02T06:00:06.000Z".into();
        fresh.version = prev.version + 1;
        let rebased = rebase_on_activity(&prev, &next, &fresh).unwrap();
        assert_eq!(rebased.desired_state, SandboxDesiredState::Destroyed);
        assert!(rebased.busy);
        assert_eq!(rebased.last_busy_at, fresh.last_busy_at);
        assert_eq!(rebased.last_activity_at, fresh.last_activity_at);
        assert_eq!(rebased.version, fresh.version);
    }

    #[test]
    fn any_other_change_decides_the_action_again() {
        let prev = rec();
        let next = prev.clone();
        let mut fresh = prev.clone();
        fresh.busy = true;
        fresh.desired_state = SandboxDesiredState::Stopped;
        fresh.version = prev.version + 1;
        assert!(rebase_on_activity(&prev, &next, &fresh).is_none());
        let mut renamed = prev.clone();
        renamed.name = "other".into();
        assert!(rebase_on_activity(&prev, &next, &renamed).is_none());
    }
}
