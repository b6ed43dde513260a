//! State reports to the control plane (`PUT /api/sandbox/{id}/state`) for changes the agent
//! observes outside a `PUT`: every sandbox once after startup (recovery after a restart), then
//! whenever a container's state no longer matches what the agent last knew (it died, was OOM-killed,
//! was stopped behind the agent's back). Sandboxes busy with a `PUT`/`DELETE` are skipped that round.

use std::sync::Arc;
use std::time::Duration;

use cove_runner_api::client::ControlPlaneClient;
use cove_runner_api::{SandboxState, SandboxStatus, StateReport};

use crate::reconciler::Reconciler;

/// How often containers are re-inspected.
pub const OBSERVE_EVERY: Duration = Duration::from_secs(2);

fn report_of(st: &SandboxStatus) -> StateReport {
    StateReport {
        state: st.state,
        error_reason: st.error_reason.clone(),
        recoverable: (st.state == SandboxState::Error).then_some(false),
    }
}

async fn send(client: &ControlPlaneClient, st: &SandboxStatus) {
    match client.report_state(&st.id, &report_of(st)).await {
        Ok(()) => tracing::info!(sandbox = %st.id, state = ?st.state, "state reported"),
        // Not (or no longer) a sandbox of this runner for the control plane.
        Err(e) if e.status() == Some(404) => {
            tracing::debug!(sandbox = %st.id, "state report: unknown to the control plane")
        }
        Err(e) => {
            tracing::warn!(sandbox = %st.id, error = %crate::error::chain(&e), "state report failed")
        }
    }
}

/// Runs until the process ends.
pub async fn run(rec: Arc<Reconciler>, url: String, every: Duration) {
    let client = ControlPlaneClient::new(url, rec.config().token.clone());
    for id in rec.ids().await {
        if let Some((_, st)) = rec.observe(&id).await {
            send(&client, &st).await;
        }
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for id in rec.ids().await {
            if let Some((before, st)) = rec.observe(&id).await
                && before != st.state
            {
                send(&client, &st).await;
            }
        }
    }
}
