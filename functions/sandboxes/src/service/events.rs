//! The organization's sandbox events after a cursor (`GET /api/events/sandboxes`), as the
//! real-time relay of `cove-proxy` emits them over Socket.IO (CONTRACT §11).
//!
//! The events come from the store's outbox (`cove_store::sandboxes::events`), written with the
//! changes themselves. Each one's `data` is what Daytona's gateway emits: the sandbox as
//! `GET /api/sandbox/{id}` renders it now (for `sandbox.created`), or `{sandbox, oldState,
//! newState}` / `{sandbox, oldDesiredState, newDesiredState}`. A sandbox whose row is gone by
//! the time of the read (a create its runner refused) is rendered from what the event knows.

use std::collections::HashMap;

use cove_api_types::ApiError;
use cove_api_types::ids::SandboxId;
use cove_edge::store_error::IntoApi;
use cove_store::sandboxes::events::{MAX_EVENTS, cursor_ms, time_cursor};
use cove_store::sandboxes::{SandboxEventKind, SandboxEventRecord, SandboxRecord};
use serde::Serialize;
use serde_json::{Value, json};

use super::Call;

/// How many events one answer carries unless `limit` says otherwise.
pub const DEFAULT_EVENTS: usize = 100;

/// One event, as the relay emits it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxEvent {
    /// Where this event sits: pass it as `after` to read what follows.
    pub cursor: String,
    /// The Socket.IO event name: `sandbox.created`, `sandbox.state.updated` or
    /// `sandbox.desired-state.updated`.
    pub event: String,
    /// The event's payload.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A page of events.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxEventsPage {
    /// Oldest first; empty without `after`.
    pub events: Vec<SandboxEvent>,
    /// The cursor to read on from: the last event's, else `after`, else now.
    pub cursor: String,
    /// The organization the events are of (the credential's).
    pub organization_id: String,
}

/// The caller's organization's events after `after` (at most `limit` outbox items, each one
/// or two events); without `after`, none and the cursor of now (a new subscriber sees only
/// what happens from now on). A malformed cursor or limit is a 400.
pub async fn events(
    call: &Call<'_>,
    after: Option<&str>,
    limit: Option<&str>,
) -> Result<SandboxEventsPage, ApiError> {
    let limit = match limit {
        None => DEFAULT_EVENTS,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_EVENTS).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit must be an integer from 1 to {MAX_EVENTS}"))
            })?,
    };
    let Some(after) = after else {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        return Ok(SandboxEventsPage {
            events: Vec::new(),
            cursor: time_cursor(i64::try_from(now).unwrap_or(i64::MAX)),
            organization_id: call.org().to_string(),
        });
    };
    if cursor_ms(after).is_none() {
        return Err(ApiError::bad_request(
            "after must be a cursor of this route",
        ));
    }
    let records = call
        .env
        .store
        .sandboxes()
        .events_after(call.org(), after, limit)
        .await
        .api()?;
    let mut sandboxes: HashMap<SandboxId, Option<SandboxRecord>> = HashMap::new();
    let mut events = Vec::with_capacity(records.len());
    for ev in &records {
        if !sandboxes.contains_key(&ev.sandbox_id) {
            let rec = call.env.store.sandboxes().get(&ev.sandbox_id).await.api()?;
            sandboxes.insert(ev.sandbox_id.clone(), rec);
        }
        let rec = sandboxes.get(&ev.sandbox_id).and_then(Option::as_ref);
        let sandbox = match rec.filter(|r| r.org_id == *call.org()) {
            Some(r) => serde_json::to_value(call.view(r)).map_err(|e| {
                tracing::error!(error = %e, sandbox = %ev.sandbox_id, "sandbox rendering failed");
                ApiError::internal()
            })?,
            None => gone(ev),
        };
        events.extend(ev.kinds.iter().map(|k| render(ev, *k, &sandbox)));
    }
    let cursor = records
        .last()
        .map_or_else(|| after.to_owned(), |e| e.sk.clone());
    Ok(SandboxEventsPage {
        events,
        cursor,
        organization_id: call.org().to_string(),
    })
}

/// One event of `ev` with `sandbox` rendered.
fn render(ev: &SandboxEventRecord, kind: SandboxEventKind, sandbox: &Value) -> SandboxEvent {
    let data = match kind {
        SandboxEventKind::Created => sandbox.clone(),
        SandboxEventKind::StateUpdated => json!({
            "sandbox": sandbox,
            "oldState": ev.old_state,
            "newState": ev.new_state,
        }),
        SandboxEventKind::DesiredStateUpdated => json!({
            "sandbox": sandbox,
            "oldDesiredState": ev.old_desired_state,
            "newDesiredState": ev.new_desired_state,
        }),
    };
    SandboxEvent {
        cursor: ev.sk.clone(),
        event: kind.as_str().to_owned(),
        data,
    }
}

/// What the event knows of a sandbox whose row is gone.
fn gone(ev: &SandboxEventRecord) -> Value {
    json!({
        "id": ev.sandbox_id,
        "organizationId": ev.org_id,
        "state": ev.new_state,
        "desiredState": ev.new_desired_state,
    })
}
