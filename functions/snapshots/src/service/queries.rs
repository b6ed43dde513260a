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

/// The field's order (`descending` flips it), `None`s last either way.
fn by_field(
    a: &SnapshotRecord,
    b: &SnapshotRecord,
    field: SortField,
    descending: bool,
) -> Ordering {
    let dir = |o: Ordering| if descending { o.reverse() } else { o };
    match field {
        SortField::Name => dir(a.name.cmp(&b.name)),
        SortField::State => dir(a.state.as_str().cmp(b.state.as_str())),
        SortField::CreatedAt => dir(a.created_at.cmp(&b.created_at)),
        SortField::LastUsedAt => match (&a.last_used_at, &b.last_used_at) {
            (Some(x), Some(y)) => dir(x.cmp(y)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        },
    }
}

/// Daytona's order: the organization's own snapshots before general ones, then the field,
/// then the newest first.
fn compare(a: &SnapshotRecord, b: &SnapshotRecord, q: &ListQuery) -> Ordering {
    a.general
        .cmp(&b.general)
        .then_with(|| by_field(a, b, q.sort, q.descending))
        .then_with(|| b.created_at.cmp(&a.created_at))
        .then_with(|| a.id.cmp(&b.id))
}

pub async fn list(call: &Call<'_>, q: ListQuery) -> Result<PaginatedSnapshots, ApiError> {
    let mut all = visible(call).await?;
    if let Some(name) = &q.name {
        let needle = name.to_lowercase();
        all.retain(|r| r.name.to_lowercase().contains(&needle));
    }
    all.sort_by(|a, b| compare(a, b, &q));
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
