//! A snapshot's first pull or build: [`start`] (pending → pulling/building) and [`refresh`]
//! (pulling/building → active | error | build_failed).

use cove_api_types::snapshots::SnapshotState;
use cove_edge::Env;
use cove_edge::runner_client::{Applied, ClientError, RunnerClient};
use cove_runner_api::{RegistryAuth, SnapshotJobState, SnapshotStatus};
use cove_store::registries::image_host;
use cove_store::runners::RunnerRecord;
use cove_store::snapshots::{SnapshotJob, SnapshotPatch, SnapshotRecord};
use cove_store::{Conflict, StoreError};
use time::OffsetDateTime;

use crate::{
    BUILD_DEADLINE, JobSettings, PENDING_DEADLINE, PULL_DEADLINE, SnapshotReport, past, spec,
};

/// The state a first job runs in.
fn working_state(rec: &SnapshotRecord) -> SnapshotState {
    match rec.job {
        SnapshotJob::Build => SnapshotState::Building,
        SnapshotJob::Pull => SnapshotState::Pulling,
    }
}

/// The runner for a first job: schedulable, in one of the snapshot's regions; one that holds
/// the image already if any; then the least loaded.
fn pick<'a>(
    rec: &SnapshotRecord,
    runners: &'a [RunnerRecord],
    now: OffsetDateTime,
) -> Option<&'a RunnerRecord> {
    let eligible = runners.iter().filter(|r| {
        r.is_schedulable(now)
            && r.api_url.is_some()
            && (rec.region_ids.is_empty() || rec.region_ids.contains(&r.region_id))
    });
    let holds = |r: &RunnerRecord| rec.r#ref.as_deref().is_some_and(|i| r.has_snapshot(i));
    eligible.min_by_key(|r| (!holds(r), r.assigned_sandboxes))
}

pub(crate) fn client(runner: &RunnerRecord) -> Option<RunnerClient> {
    runner
        .api_url
        .as_deref()
        .map(|url| RunnerClient::new(url, &runner.api_key))
}

/// The organization's registry account for the image's host (pulls from a private registry);
/// only the organization's own registries are looked at.
async fn source_auth(
    env: &Env,
    settings: &JobSettings,
    rec: &SnapshotRecord,
) -> Result<Option<RegistryAuth>, StoreError> {
    if rec.job != SnapshotJob::Pull {
        return Ok(None);
    }
    let host = image_host(&rec.image_name);
    Ok(env
        .store
        .registries()
        .matching_host(&rec.org_id, &host, &settings.credentials_secret)
        .await?
        .map(|m| RegistryAuth {
            username: m.record.username,
            password: m.password,
            server: host,
        }))
}

/// Writes `state` (+ `patch`) if `rec` is still current; a lost race leaves `rec` as it was.
pub(crate) async fn write(
    env: &Env,
    rec: &SnapshotRecord,
    state: SnapshotState,
    patch: SnapshotPatch,
    report: &mut SnapshotReport,
) -> Result<SnapshotRecord, StoreError> {
    match env
        .store
        .snapshots()
        .set_state(&rec.id, rec.version, state, patch)
        .await
    {
        Ok(next) => {
            tracing::info!(snapshot_id = %rec.id, from = rec.state.as_str(), to = state.as_str(), "snapshot state");
            match state {
                SnapshotState::Active => report.activated += 1,
                SnapshotState::Error | SnapshotState::BuildFailed => report.failed += 1,
                _ => {}
            }
            Ok(next)
        }
        Err(StoreError::Conflict {
            conflict: Conflict::Changed,
            ..
        })
        | Err(StoreError::NotFound { .. }) => {
            report.skipped += 1;
            Ok(rec.clone())
        }
        Err(e) => Err(e),
    }
}

pub(crate) async fn fail(
    env: &Env,
    rec: &SnapshotRecord,
    state: SnapshotState,
    reason: String,
    report: &mut SnapshotReport,
) -> Result<SnapshotRecord, StoreError> {
    tracing::warn!(snapshot_id = %rec.id, reason = %reason, "snapshot failed");
    let patch = SnapshotPatch {
        error_reason: Some(reason),
        ..SnapshotPatch::default()
    };
    write(env, rec, state, patch, report).await
}

/// Hands a `pending` snapshot to an initial runner. The state is written first (so that of two
/// racing callers only one asks a runner), then the runner is asked; a runner that did not get
/// the request is asked again by [`refresh`].
pub async fn start(
    env: &Env,
    settings: &JobSettings,
    rec: &SnapshotRecord,
    runners: &[RunnerRecord],
    now: OffsetDateTime,
    report: &mut SnapshotReport,
) -> Result<SnapshotRecord, StoreError> {
    if rec.state != SnapshotState::Pending {
        return Ok(rec.clone());
    }
    let Some(runner) = pick(rec, runners, now) else {
        if past(&rec.transition_at, PENDING_DEADLINE, now) {
            let reason = "No runner was available to pull or build the snapshot".to_owned();
            return fail(env, rec, SnapshotState::Error, reason, report).await;
        }
        return Ok(rec.clone());
    };
    let patch = SnapshotPatch {
        initial_runner_id: Some(runner.id.clone()),
        ..SnapshotPatch::default()
    };
    let next = write(env, rec, working_state(rec), patch, report).await?;
    if next.version == rec.version {
        return Ok(next);
    }
    report.started += 1;
    push(env, settings, &next, runner, report).await
}

/// Sends the first job's spec to `runner` and settles at once when it answers the outcome.
async fn push(
    env: &Env,
    settings: &JobSettings,
    rec: &SnapshotRecord,
    runner: &RunnerRecord,
    report: &mut SnapshotReport,
) -> Result<SnapshotRecord, StoreError> {
    let Some(client) = client(runner) else {
        return Ok(rec.clone());
    };
    let auth = source_auth(env, settings, rec).await?;
    let spec = spec::first_spec(settings, rec, auth);
    match client.put_snapshot(rec.id.as_str(), &spec, Some(0)).await {
        Ok(Applied::Reached(st)) => settle(env, settings, rec, &st, report).await,
        Ok(Applied::Pending(_)) => Ok(rec.clone()),
        Err(e) => {
            tracing::warn!(snapshot_id = %rec.id, runner_id = %runner.id, error = %e, "runner did not take the snapshot job");
            report.skipped += 1;
            Ok(rec.clone())
        }
    }
}

/// Looks at a snapshot's first job on its runner and records the outcome when there is one;
/// past the deadline without one, the snapshot is `error`.
pub async fn refresh(
    env: &Env,
    settings: &JobSettings,
    rec: &SnapshotRecord,
    runners: &[RunnerRecord],
    now: OffsetDateTime,
    report: &mut SnapshotReport,
) -> Result<SnapshotRecord, StoreError> {
    let deadline = match rec.state {
        SnapshotState::Pulling => PULL_DEADLINE,
        SnapshotState::Building => BUILD_DEADLINE,
        _ => return Ok(rec.clone()),
    };
    let runner = rec
        .initial_runner_id
        .as_ref()
        .and_then(|id| runners.iter().find(|r| &r.id == id));
    let Some(runner) = runner else {
        // Its runner is gone: start over on another one.
        return write(
            env,
            rec,
            SnapshotState::Pending,
            SnapshotPatch::default(),
            report,
        )
        .await;
    };
    let seen = match client(runner) {
        Some(c) => c.get_snapshot(rec.id.as_str()).await,
        None => return Ok(rec.clone()),
    };
    let next = match seen {
        Ok(st) => settle(env, settings, rec, &st, report).await?,
        Err(ClientError::Status { status: 404, .. })
            if !past(&rec.transition_at, deadline, now) =>
        {
            push(env, settings, rec, runner, report).await?
        }
        Err(e) => {
            tracing::debug!(snapshot_id = %rec.id, error = %e, "snapshot job status unavailable");
            report.skipped += 1;
            rec.clone()
        }
    };
    if next.version != rec.version || !past(&rec.transition_at, deadline, now) {
        return Ok(next);
    }
    let reason = format!(
        "The snapshot's {} did not finish within {} minutes",
        if rec.job == SnapshotJob::Build {
            "build"
        } else {
            "pull"
        },
        deadline.as_secs() / 60
    );
    fail(env, rec, SnapshotState::Error, reason, report).await
}

/// The organization's `maxSnapshotSize` (GB), within the platform's `max_snapshot_size_gb`.
async fn max_size_bytes(
    env: &Env,
    settings: &JobSettings,
    rec: &SnapshotRecord,
) -> Result<u64, StoreError> {
    let org = env.store.orgs().get(&rec.org_id).await?;
    let quota = org
        .map(|o| o.quota.max_snapshot_size)
        .and_then(|gb| u64::try_from(gb).ok())
        .filter(|gb| *gb > 0)
        .map_or(u64::MAX, |gb| gb.saturating_mul(1 << 30));
    Ok(quota.min(settings.max_size_bytes))
}

/// Records what the runner said, if it is an outcome.
async fn settle(
    env: &Env,
    settings: &JobSettings,
    rec: &SnapshotRecord,
    st: &SnapshotStatus,
    report: &mut SnapshotReport,
) -> Result<SnapshotRecord, StoreError> {
    match st.state {
        SnapshotJobState::Ready => ready(env, settings, rec, st, report).await,
        SnapshotJobState::Error => {
            let state = if st.build_failed {
                SnapshotState::BuildFailed
            } else {
                SnapshotState::Error
            };
            let reason = st
                .error_reason
                .clone()
                .unwrap_or_else(|| "The runner could not prepare the snapshot".to_owned());
            fail(env, rec, state, reason, report).await
        }
        _ => Ok(rec.clone()),
    }
}

async fn ready(
    env: &Env,
    settings: &JobSettings,
    rec: &SnapshotRecord,
    st: &SnapshotStatus,
    report: &mut SnapshotReport,
) -> Result<SnapshotRecord, StoreError> {
    let size = st.size_bytes.unwrap_or(0);
    let limit = max_size_bytes(env, settings, rec).await?;
    if size > limit {
        let gb = |b: u64| b as f64 / f64::from(1u32 << 30);
        let reason = format!(
            "Snapshot size ({:.2} GB) exceeds the maximum allowed size of {:.0} GB",
            gb(size),
            gb(limit)
        );
        return fail(env, rec, SnapshotState::Error, reason, report).await;
    }
    let patch = SnapshotPatch {
        r#ref: st.r#ref.clone(),
        size_bytes: st.size_bytes,
        entrypoint: st.entrypoint.clone(),
        cmd: st.cmd.clone(),
        ..SnapshotPatch::default()
    };
    write(env, rec, SnapshotState::Active, patch, report).await
}
