//! `GET /snapshots` (paged) and `GET /snapshots/{id}`.

use std::cmp::Ordering;

use cove_api_types::ApiError;
use cove_api_types::snapshots::{PaginatedSnapshots, SnapshotDto};
use cove_edge::store_error::IntoApi;
use cove_store::snapshots::SnapshotRecord;

use super::{Call, find_visible, not_found};
use crate::rules::{ListQuery, SortField};
use crate::view;

pub async fn get(call: &Call<'_>, id_or_name: &str) -> Result<SnapshotDto, ApiError> {
    let rec = find_visible(call.env, call.settings, call.org(), id_or_name)
        .await?
        .ok_or_else(|| not_found(id_or_name))?;
    let rec = if &rec.org_id == call.org() {
        super::progress::advance(call, rec).await
    } else {
        rec
    };
    Ok(view::dto(&rec))
}

/// Everything the organization sees: its own snapshots, the general ones, the default one.
async fn visible(call: &Call<'_>) -> Result<Vec<SnapshotRecord>, ApiError> {
    let repo = call.env.store.snapshots();
    let mut all = repo.list_by_org(call.org()).await.api()?;
    // A general snapshot is listed under the general partition only, never twice.
    all.extend(repo.list_general().await.api()?);
    all.extend(view::default_snapshot(&call.settings.default_snapshot));
    Ok(all)
}

fn compare(a: &SnapshotRecord, b: &SnapshotRecord, field: SortField) -> Ordering {
    let by = match field {
        SortField::Name => a.name.cmp(&b.name),
        SortField::State => a.state.as_str().cmp(b.state.as_str()),
        // Never used sorts as oldest.
        SortField::LastUsedAt => a.last_used_at.cmp(&b.last_used_at),
        SortField::CreatedAt => a.created_at.cmp(&b.created_at),
    };
    by.then_with(|| a.created_at.cmp(&b.created_at))
        .then_with(|| a.id.cmp(&b.id))
}

pub async fn list(call: &Call<'_>, q: ListQuery) -> Result<PaginatedSnapshots, ApiError> {
    let mut all = visible(call).await?;
    if let Some(name) = &q.name {
        let needle = name.to_lowercase();
        all.retain(|r| r.name.to_lowercase().contains(&needle));
    }
    all.sort_by(|a, b| {
        let o = compare(a, b, q.sort);
        if q.descending { o.reverse() } else { o }
    });
    let total = all.len();
    let items: Vec<SnapshotDto> = all
        .iter()
        .skip((q.page - 1).saturating_mul(q.limit))
        .take(q.limit)
        .map(view::dto)
        .collect();
    let as_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    Ok(PaginatedSnapshots {
        items,
        total: as_i64(total),
        page: as_i64(q.page),
        total_pages: as_i64(total.div_ceil(q.limit)),
    })
}
