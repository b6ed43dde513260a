//! State reports to the control plane (`PUT /api/sandbox/{id}/state`, [`StateReport`]):
//! - every sandbox once after startup (cause `recovered`);
//! - whenever a container's state no longer matches what the agent last knew (it died, was
//!   OOM-killed, was stopped behind the agent's back; cause `observed`), checked every
//!   `--observe-ms` and at once after a simulated crash; sandboxes busy with an operation are
//!   skipped that round;
//! - the outcome of a `PUT` that answered 202 (cause `applied`), queued by the reconciler;
//! - whenever a started sandbox's daemon becomes busy or idle (`GET /activity`: a command still
//!   running, a websocket attached; cause `activity`, with `busy` and `lastBusyAt`), read every
//!   `--observe-ms` from the daemons of this runner (local calls over their sockets, no control
//!   plane poll), and at once when a command starts or ends through the toolbox pass-through
//!   (so that a command never waits a whole round to count): the control plane's auto-stop
//!   waits while a sandbox is busy.
//!
//! While the control plane does not know the runner (see [`crate::heartbeat::Standing`]),
//! reports are held (the latest per sandbox) and sent once heartbeats are accepted again.

use std::collections::BTreeMap;
use std::sync::Arc;

use cove_runner_api::client::ControlPlaneClient;
use cove_runner_api::{ReportCause, StateReport};

use crate::heartbeat::{Standing, is_revocation};
use crate::reconciler::Reconciler;

struct Reporter {
    rec: Arc<Reconciler>,
    client: ControlPlaneClient,
    standing: Arc<Standing>,
    held: BTreeMap<String, StateReport>,
    /// The busy state last reported per sandbox.
    busy: BTreeMap<String, bool>,
}

impl Reporter {
    async fn send(&mut self, id: &str, report: StateReport) {
        if self.standing.is_revoked() {
            self.held.insert(id.to_owned(), report);
            return;
        }
        match self.client.report_state(id, &report).await {
            Ok(()) => {
                tracing::info!(sandbox = %id, state = ?report.state, generation = ?report.generation, cause = ?report.cause, "state reported")
            }
            Err(e) if e.status() == Some(401) => {
                let backoff = self.rec.config().timeouts.revoked_backoff;
                self.standing.revoke(401, backoff);
                self.held.insert(id.to_owned(), report);
            }
            // Not (or no longer) a sandbox of this runner for the control plane.
            Err(e) if is_revocation(&e) => {
                tracing::debug!(sandbox = %id, "state report: unknown to the control plane")
            }
            Err(e) => {
                tracing::warn!(sandbox = %id, error = %crate::error::chain(&e), "state report failed")
            }
        }
    }

    /// Observes every sandbox; reports the changed ones (all of them with `all`).
    async fn observe(&mut self, all: bool) {
        for id in self.rec.ids().await {
            if let Some((before, st)) = self.rec.observe(&id).await
                && (all || before != st.state)
            {
                let cause = if all {
                    ReportCause::Recovered
                } else {
                    ReportCause::Observed
                };
                self.send(&id, StateReport::of(&st, cause)).await;
            }
        }
    }

    /// Reports the sandboxes whose daemon became busy or idle since the last round.
    async fn activity(&mut self) {
        let ids = self.rec.ids().await;
        self.busy.retain(|id, _| ids.binary_search(id).is_ok());
        for id in ids {
            let Some(act) = self.rec.activity(&id).await else {
                continue;
            };
            let before = self.busy.get(&id).copied().unwrap_or(false);
            if act.busy == before {
                continue;
            }
            let Ok(st) = self.rec.status(&id).await else {
                continue;
            };
            let mut report = StateReport::of(&st, ReportCause::Activity);
            report.busy = Some(act.busy);
            report.last_busy_at = act.last_busy_at.or_else(|| {
                time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
            tracing::info!(sandbox = %id, busy = act.busy, "sandbox activity changed");
            self.busy.insert(id.clone(), act.busy);
            self.send(&id, report).await;
        }
    }

    async fn flush_held(&mut self) {
        if self.held.is_empty() || self.standing.is_revoked() {
            return;
        }
        for (id, report) in std::mem::take(&mut self.held) {
            self.send(&id, report).await;
        }
    }
}

/// Runs until the process ends.
pub async fn run(rec: Arc<Reconciler>, client: ControlPlaneClient, standing: Arc<Standing>) {
    let Some(mut queued) = rec.take_reports() else {
        tracing::warn!("the state reporter runs already");
        return;
    };
    let every = rec.config().timeouts.observe;
    let mut r = Reporter {
        rec: rec.clone(),
        client,
        standing,
        held: BTreeMap::new(),
        busy: BTreeMap::new(),
    };
    r.observe(true).await;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                r.flush_held().await;
                r.observe(false).await;
                r.activity().await;
            }
            () = rec.observe_requested() => r.observe(false).await,
            () = rec.activity_requested() => r.activity().await,
            Some((id, report)) = queued.recv() => r.send(&id, report).await,
        }
    }
}
