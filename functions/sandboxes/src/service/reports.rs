//! `PUT /sandbox/{id}/state` from the sandbox's runner: a `cove_runner_api::StateReport` (the
//! one type the agent sends and the control plane reads).
//!
//! A report of the generation of the transition in flight settles it: reached (the desired
//! state of that generation), failed (`error`), or the container gone; a transitional report
//! leaves it in flight. A report of another generation while a transition is in flight, or of
//! an older generation than the row's, is stale and ignored. Without a transition in flight the
//! report is what happened outside any call (a container died, came back) and is recorded.

use cove_api_types::ApiError;
use cove_api_types::ids::SandboxId;
use cove_edge::Env;
use cove_edge::store_error::IntoApi;
use cove_runner_api::{ReportCause, StateReport};
use cove_store::StoreError;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::{QuotaCheck, SandboxRecord, Transition, observed_state};
use cove_transition::{Observed, Outcome};

use super::now;
use crate::rules;

/// How often recording a report is retried after losing a version race.
const MAX_RETRIES: usize = 8;

pub async fn report_state(
    env: &Env,
    runner: &RunnerRecord,
    id: &str,
    body: StateReport,
) -> Result<(), ApiError> {
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
        if body.cause == Some(ReportCause::Activity) {
            return record_activity(env, &cur, &body).await;
        }
        if let Some(t) = cur.transition.clone() {
            return settle_by_report(env, &cur, &t, &body).await;
        }
        if body.generation.is_some_and(|g| g < cur.generation) {
            tracing::debug!(sandbox = id, generation = ?body.generation, "stale state report ignored");
            return Ok(());
        }
        let Some(next) = observed(&cur, &body) else {
            return Ok(());
        };
        // What the runner says is recorded whatever the quota: the counters follow reality.
        match repo.update(&cur, &next, QuotaCheck::Record).await {
            Ok(_) => {
                tracing::info!(sandbox = id, runner = %runner.id, state = next.state.as_str(), "runner reported state");
                return Ok(());
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.api()),
        }
    }
    Err(rules::in_progress())
}

/// Records that the sandbox's daemon became busy or idle (`busy`, `lastBusyAt`): auto-stop waits
/// while it is busy and counts from the end of its last work (`cove_store::sandboxes::due`).
async fn record_activity(
    env: &Env,
    first: &SandboxRecord,
    body: &StateReport,
) -> Result<(), ApiError> {
    let Some(busy) = body.busy else {
        return Ok(());
    };
    let repo = env.store.sandboxes();
    let mut cur = first.clone();
    for _ in 0..MAX_RETRIES {
        let mut next = cur.clone();
        next.busy = busy;
        let at = body.last_busy_at.clone().unwrap_or_else(now);
        if next.last_busy_at.as_deref().is_none_or(|l| l < at.as_str()) {
            next.last_busy_at = Some(at);
        }
        if next.busy == cur.busy && next.last_busy_at == cur.last_busy_at {
            return Ok(());
        }
        match repo.update(&cur, &next, QuotaCheck::Record).await {
            Ok(_) => {
                tracing::info!(sandbox = %cur.id, busy, "sandbox activity recorded");
                return Ok(());
            }
            Err(StoreError::Conflict { .. }) => {
                cur = repo.get(&cur.id).await.api()?.ok_or_else(|| {
                    ApiError::not_found(format!("Sandbox with ID {} not found", cur.id))
                })?;
            }
            Err(e) => return Err(e.api()),
        }
    }
    Err(rules::in_progress())
}

/// Settles transition `t` of `cur` when `body` reports its outcome.
async fn settle_by_report(
    env: &Env,
    cur: &SandboxRecord,
    t: &Transition,
    body: &StateReport,
) -> Result<(), ApiError> {
    use cove_runner_api::SandboxState as R;
    if !cove_transition::pushes_spec(t.action) || body.generation != Some(t.generation) {
        tracing::debug!(sandbox = %cur.id, generation = ?body.generation, "report of another generation ignored");
        return Ok(());
    }
    let out = if body.settles(t.generation) || body.state == R::Destroyed {
        Outcome::Reached(Observed::from(body))
    } else if body.state == R::Error {
        let reason = body.error_reason.clone();
        Outcome::Failed(reason.unwrap_or_else(|| "The runner reported an error".into()))
    } else {
        return Ok(());
    };
    cove_transition::settle(&env.store, cur, t, out)
        .await
        .map_err(|e| super::transition_err(cur.id.as_str(), e))?;
    Ok(())
}

/// The row once `body` is recorded; `None` when it changes nothing.
fn observed(cur: &SandboxRecord, body: &StateReport) -> Option<SandboxRecord> {
    let state = match observed_state(body.state) {
        cove_api_types::sandbox::SandboxState::Destroyed
            if cur.desired_state != cove_api_types::sandbox::SandboxDesiredState::Destroyed =>
        {
            cove_api_types::sandbox::SandboxState::Error
        }
        s => s,
    };
    let mut next = cur.clone();
    next.state = state;
    let is_error = state == cove_api_types::sandbox::SandboxState::Error;
    next.error_reason = is_error.then(|| {
        body.error_reason
            .clone()
            .unwrap_or_else(|| "The sandbox's container is gone".into())
    });
    next.recoverable = is_error && body.recoverable.unwrap_or(false);
    next.pending = !rules::reached(state, cur.desired_state) && !is_error;
    if next.state == cur.state
        && next.error_reason == cur.error_reason
        && next.recoverable == cur.recoverable
    {
        return None;
    }
    next.updated_at = now();
    Some(next)
}
