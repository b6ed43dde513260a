//! `build-logs` and `build-logs-url`: the log of a snapshot's pull or build lives on its initial
//! runner (`GET /v1/snapshots/{key}/logs?follow=`, runner token); this function relays it.

use cove_api_types::ApiError;
use cove_api_types::snapshots::SnapshotBuildLogsUrl;
use cove_edge::runner_client::RunnerClient;
use cove_edge::store_error::IntoApi;

use super::{Call, find_visible, not_found};

/// Where a snapshot's log comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogsTarget {
    /// The initial runner's log route and its token (`Authorization: Bearer`).
    Runner { url: String, token: String },
    /// No runner has worked on it (yet): this text is the whole log.
    Text(String),
}

/// Where the log of the visible snapshot `id_or_name` is.
pub async fn logs_target(
    call: &Call<'_>,
    id_or_name: &str,
    follow: bool,
) -> Result<LogsTarget, ApiError> {
    let rec = find_visible(call.env, call.settings, call.org(), id_or_name)
        .await?
        .ok_or_else(|| not_found(id_or_name))?;
    let Some(runner_id) = rec
        .initial_runner_id
        .as_ref()
        .filter(|_| rec.org_id == *call.org())
    else {
        return Ok(LogsTarget::Text(format!(
            "Snapshot {} is {}\n",
            rec.name, rec.state
        )));
    };
    let runner = call.env.store.runners().get(runner_id).await.api()?;
    let Some((runner, api_url)) = runner.and_then(|r| {
        let url = r.api_url.clone().filter(|u| !u.is_empty())?;
        Some((r, url))
    }) else {
        return Ok(LogsTarget::Text(format!(
            "The runner that built snapshot {} is gone\n",
            rec.name
        )));
    };
    let client = RunnerClient::new(api_url, &runner.api_key);
    Ok(LogsTarget::Runner {
        url: client.snapshot_logs_url(rec.id.as_str(), follow),
        token: runner.api_key.clone(),
    })
}

/// `{url}` = this API's `.../snapshots/{id}/build-logs` (the SDK appends `?follow=true`).
pub async fn build_logs_url(
    call: &Call<'_>,
    id_or_name: &str,
) -> Result<SnapshotBuildLogsUrl, ApiError> {
    let rec = find_visible(call.env, call.settings, call.org(), id_or_name)
        .await?
        .ok_or_else(|| not_found(id_or_name))?;
    Ok(SnapshotBuildLogsUrl {
        url: format!("{}/api/snapshots/{}/build-logs", call.base_url, rec.id),
    })
}
