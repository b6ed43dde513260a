//! Reads and the field updates that move no usage (labels, visibility, intervals), each a
//! conditional write re-read on a lost version race.

use std::collections::BTreeMap;

use cove_api_types::ApiError;
use cove_api_types::permissions::Permission;
use cove_api_types::sandbox::{PortPreviewUrl, Sandbox, SandboxLabels, ToolboxProxyUrl};
use cove_edge::store_error::IntoApi;
use cove_edge::{Action, authorize};
use cove_store::sandboxes::due::ttl_deadline;
use cove_store::sandboxes::{QuotaCheck, SandboxRecord};
use cove_store::{Conflict, StoreError};
use time::OffsetDateTime;

use super::{Call, find, now, store_err};
use crate::{rules, view};

/// How often a field update is retried after losing a version race.
const MAX_RETRIES: usize = 8;

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

/// How long a sandbox destroyed by its queue timeout stays readable by id (as Daytona's).
const QUEUE_TIMED_OUT_READABLE: time::Duration = time::Duration::hours(24);

pub async fn get(call: &Call<'_>, id_or_name: &str) -> Result<Sandbox, ApiError> {
    match find(call, id_or_name).await {
        Ok(rec) => Ok(call.view(&rec)),
        Err(e) => match queue_timed_out(call, id_or_name).await? {
            Some(rec) => Ok(call.view(&rec)),
            None => Err(e),
        },
    }
}

/// The caller's sandbox `id` if a queue timeout destroyed it less than a day ago (the SDK, which
/// polls a queued create, tells its user why it is gone).
async fn queue_timed_out(call: &Call<'_>, id: &str) -> Result<Option<SandboxRecord>, ApiError> {
    let Ok(id) = cove_api_types::ids::SandboxId::parse(id) else {
        return Ok(None);
    };
    let rec = call.env.store.sandboxes().get(&id).await.api()?;
    let now_t = OffsetDateTime::now_utc();
    Ok(rec.filter(|r| {
        r.org_id == *call.org()
            && r.is_destroyed()
            && r.queue_timed_out_at
                .as_deref()
                .and_then(cove_api_types::time::parse_rfc3339)
                .is_some_and(|t| now_t - t < QUEUE_TIMED_OUT_READABLE)
    }))
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

/// `POST /sandbox/{id}/ttl/{ttlMinutes}`: destroyed that many minutes from now whatever its
/// state; 0 removes the TTL.
pub async fn set_ttl(call: &Call<'_>, id_or_name: &str, raw: &str) -> Result<Sandbox, ApiError> {
    let v: i64 = raw
        .parse()
        .map_err(|_| ApiError::bad_request("ttlMinutes must be an integer"))?;
    let v = rules::ttl_minutes(v)?;
    authorize(call.env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let minute = call.env.store.lifecycle_minute();
    let rec = modify(call, id_or_name, |r| {
        r.auto_destroy_at = ttl_deadline(OffsetDateTime::now_utc(), v, minute);
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

/// Length of a signed-file-URL key: 48 characters of `[a-z0-9]` (about 248 bits).
const SIGNING_KEY_LEN: usize = 48;

/// `GET /sandbox/{id}/signing-key`: the HMAC key of the sandbox's signed file URLs (CONTRACT
/// §10.7), made on first use. It grants file access with no other credential: `write:sandboxes`.
pub async fn signing_key(call: &Call<'_>, id_or_name: &str) -> Result<String, ApiError> {
    authorize(call.env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let rec = find(call, id_or_name).await?;
    if let Some(k) = rec.file_signing_key {
        return Ok(k);
    }
    let fresh = cove_store::random::alphanumeric(SIGNING_KEY_LEN).map_err(super::random_failure)?;
    // Two first reads at once agree on one key: only a record without one takes the fresh key.
    let rec = modify(call, id_or_name, |r| {
        r.file_signing_key.get_or_insert_with(|| fresh.clone());
    })
    .await?;
    rec.file_signing_key.ok_or_else(ApiError::internal)
}

/// `POST /sandbox/{id}/signing-key/rotate`: a new key; URLs signed with the old one stop working.
pub async fn rotate_signing_key(call: &Call<'_>, id_or_name: &str) -> Result<String, ApiError> {
    authorize(call.env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let fresh = cove_store::random::alphanumeric(SIGNING_KEY_LEN).map_err(super::random_failure)?;
    modify(call, id_or_name, |r| {
        r.file_signing_key = Some(fresh.clone())
    })
    .await?;
    Ok(fresh)
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
