//! `GET /sandbox`: the filters and sorting of CONTRACT §4.6, answered from the store.
//!
//! * **Index order** (no `sort`, or `sort=createdAt&order=desc`): the organization's partition
//!   of the list index (GSI1, newest first) is read page by page, each page filtered, and the
//!   store's own cursor handed out; a filter that matches little reads at most
//!   [`MAX_LIST_PAGES`] store pages per answer (then an answer with fewer items and a cursor).
//! * **Any other order** (`name`, `cpu`, `memoryGib`, `diskGib`, `lastActivityAt`, `createdAt
//!   asc`): a bounded scan of the organization's partition (at most [`MAX_SORTED_SCAN`] live
//!   sandboxes, else 400), filtered, sorted by (value, id) and cut with a keyset cursor
//!   `base64(JSON {sortValue, id})` (Daytona's format), so pages neither repeat nor skip
//!   sandboxes that stay put.
//!
//! Every filter but the prefixes and labels is typed at the edge: a malformed number, boolean,
//! timestamp, state, sort field or order is a 400, never an ignored filter.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cove_api_types::ApiError;
use cove_api_types::sandbox::{
    ListSandboxesResponse, SandboxDesiredState, SandboxListItem, SandboxState,
};
use cove_edge::store_error::IntoApi;
use cove_store::Cursor;
use cove_store::sandboxes::SandboxRecord;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use super::Call;
use crate::view;

/// Store pages read at most for one filtered answer in index order.
pub const MAX_LIST_PAGES: usize = 20;
/// Most live sandboxes of one organization a sorted answer scans.
pub const MAX_SORTED_SCAN: usize = 10_000;
/// The only sandbox class Cove runs.
const SANDBOX_CLASS: &str = "container";

/// `sort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Name,
    Cpu,
    MemoryGib,
    DiskGib,
    LastActivityAt,
    CreatedAt,
}

impl SortField {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "name" => Self::Name,
            "cpu" => Self::Cpu,
            "memoryGib" => Self::MemoryGib,
            "diskGib" => Self::DiskGib,
            "lastActivityAt" => Self::LastActivityAt,
            "createdAt" => Self::CreatedAt,
            _ => return None,
        })
    }
}

/// One sandbox's value of the sort field (timestamps as UNIX nanoseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum SortValue {
    Number(i64),
    Text(String),
}

impl SortValue {
    fn of(field: SortField, r: &SandboxRecord) -> Self {
        match field {
            SortField::Name => Self::Text(r.name.clone()),
            SortField::Cpu => Self::Number(r.cpu),
            SortField::MemoryGib => Self::Number(r.memory),
            SortField::DiskGib => Self::Number(r.disk),
            SortField::LastActivityAt => Self::Number(nanos(&r.last_activity_at)),
            SortField::CreatedAt => Self::Number(nanos(&r.created_at)),
        }
    }

    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Number(a), Self::Number(b)) => a.cmp(b),
            (Self::Text(a), Self::Text(b)) => a.cmp(b),
            // A cursor of another sort field: numbers first (never both in one answer).
            (Self::Number(_), Self::Text(_)) => Ordering::Less,
            (Self::Text(_), Self::Number(_)) => Ordering::Greater,
        }
    }
}

fn nanos(t: &str) -> i64 {
    cove_api_types::time::parse_rfc3339(t).map_or(0, |t| {
        i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
    })
}

/// The keyset cursor of a sorted answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SortCursor {
    sort_value: SortValue,
    id: String,
}

/// An inclusive range of one field; open ends are `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range<T> {
    pub min: Option<T>,
    pub max: Option<T>,
}

impl<T> Default for Range<T> {
    fn default() -> Self {
        Self {
            min: None,
            max: None,
        }
    }
}

impl<T: PartialOrd> Range<T> {
    fn holds(&self, v: &T) -> bool {
        self.min.as_ref().is_none_or(|m| v >= m) && self.max.as_ref().is_none_or(|m| v <= m)
    }
    fn is_open(&self) -> bool {
        self.min.is_none() && self.max.is_none()
    }
}

/// `GET /sandbox`'s query, typed.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub limit: usize,
    pub cursor: Option<String>,
    pub id_prefix: Option<String>,
    pub name_prefix: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub states: Vec<SandboxState>,
    pub snapshots: Vec<String>,
    pub targets: Vec<String>,
    pub classes: Vec<String>,
    pub cpu: Range<i64>,
    pub memory_gib: Range<i64>,
    pub disk_gib: Range<i64>,
    pub gpu: Range<i64>,
    pub public: Option<bool>,
    pub recoverable: Option<bool>,
    pub created: Range<OffsetDateTime>,
    pub last_activity: Range<OffsetDateTime>,
    pub auto_destroy: Range<OffsetDateTime>,
    pub include_errored_deleted: bool,
    /// `None`: index order (newest first).
    pub sort: Option<(SortField, bool)>,
}

/// Reads a query: one value of a name, every value of a repeatable name.
pub trait QuerySource {
    fn one(&self, name: &str) -> Option<String>;
    fn all(&self, name: &str) -> Vec<String>;
}

impl ListQuery {
    /// `limit` and `labels` are parsed by the caller (they predate this module's filters).
    pub fn parse(
        q: &impl QuerySource,
        limit: usize,
        labels: BTreeMap<String, String>,
    ) -> Result<Self, ApiError> {
        let text = |name: &str| q.one(name).filter(|s| !s.trim().is_empty());
        let sort = match (text("sort"), text("order")) {
            (None, None) => None,
            (field, order) => {
                let field = match field {
                    None => SortField::LastActivityAt,
                    Some(f) => SortField::parse(&f).ok_or_else(|| {
                        ApiError::bad_request(
                            "sort must be one of name, cpu, memoryGib, diskGib, lastActivityAt, createdAt",
                        )
                    })?,
                };
                let desc = match order.as_deref() {
                    None | Some("desc") => true,
                    Some("asc") => false,
                    Some(_) => return Err(ApiError::bad_request("order must be asc or desc")),
                };
                // Newest first is the index's own order.
                (!(field == SortField::CreatedAt && desc)).then_some((field, desc))
            }
        };
        Ok(Self {
            limit,
            cursor: text("cursor"),
            id_prefix: text("id").map(|s| s.to_lowercase()),
            name_prefix: text("name").map(|s| s.to_lowercase()),
            labels,
            states: q
                .all("states")
                .iter()
                .map(|s| state(s))
                .collect::<Result<_, _>>()?,
            snapshots: q.all("snapshots"),
            targets: q.all("regionIds"),
            classes: q.all("sandboxClasses"),
            cpu: range(q, "minCpu", "maxCpu", int)?,
            memory_gib: range(q, "minMemoryGiB", "maxMemoryGiB", int)?,
            disk_gib: range(q, "minDiskGiB", "maxDiskGiB", int)?,
            gpu: range(q, "minGpu", "maxGpu", int)?,
            public: text("isPublic")
                .map(|v| boolean("isPublic", &v))
                .transpose()?,
            recoverable: text("isRecoverable")
                .map(|v| boolean("isRecoverable", &v))
                .transpose()?,
            created: range(q, "createdAtAfter", "createdAtBefore", instant)?,
            last_activity: range(q, "lastEventAfter", "lastEventBefore", instant)?,
            auto_destroy: range(q, "autoDestroyAtAfter", "autoDestroyAtBefore", instant)?,
            include_errored_deleted: text("includeErroredDeleted")
                .map(|v| boolean("includeErroredDeleted", &v))
                .transpose()?
                .unwrap_or(false),
            sort,
        })
    }

    /// Whether sandbox `r` passes every filter.
    pub fn matches(&self, r: &SandboxRecord) -> bool {
        let at = |t: &str| cove_api_types::time::parse_rfc3339(t);
        let in_time = |range: &Range<OffsetDateTime>, t: Option<&str>| {
            range.is_open() || t.and_then(at).is_some_and(|t| range.holds(&t))
        };
        self.labels.iter().all(|(k, v)| r.labels.get(k) == Some(v))
            && (self.states.is_empty() || self.states.contains(&r.state))
            && self
                .id_prefix
                .as_deref()
                .is_none_or(|p| r.id.as_str().to_lowercase().starts_with(p))
            && self
                .name_prefix
                .as_deref()
                .is_none_or(|p| r.name.to_lowercase().starts_with(p))
            && (self.snapshots.is_empty() || self.snapshots.contains(&r.snapshot))
            && (self.targets.is_empty() || self.targets.contains(&r.target))
            && (self.classes.is_empty() || self.classes.iter().any(|c| c == SANDBOX_CLASS))
            && self.cpu.holds(&r.cpu)
            && self.memory_gib.holds(&r.memory)
            && self.disk_gib.holds(&r.disk)
            && self.gpu.holds(&r.gpu)
            && self.public.is_none_or(|p| r.public == p)
            && self.recoverable.is_none_or(|p| r.recoverable == p)
            && in_time(&self.created, Some(&r.created_at))
            && in_time(&self.last_activity, Some(&r.last_activity_at))
            && in_time(&self.auto_destroy, r.auto_destroy_at.as_deref())
            && (self.include_errored_deleted
                || !(r.state == SandboxState::Error
                    && r.desired_state == SandboxDesiredState::Destroyed))
    }
}

/// A state as the SDKs send it: `started`, or the Python client's `str()` of its enum,
/// `SandboxState.STARTED`.
fn state(s: &str) -> Result<SandboxState, ApiError> {
    let wire = s.strip_prefix("SandboxState.").unwrap_or(s).to_lowercase();
    SandboxState::parse(&wire).ok_or_else(|| {
        ApiError::bad_request(format!(
            "states must be sandbox states (one of {}), not {s:?}",
            SandboxState::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn range<T>(
    q: &impl QuerySource,
    min: &str,
    max: &str,
    parse: fn(&str, &str) -> Result<T, ApiError>,
) -> Result<Range<T>, ApiError> {
    let one = |name: &str| {
        q.one(name)
            .filter(|s| !s.trim().is_empty())
            .map(|v| parse(name, v.trim()))
            .transpose()
    };
    Ok(Range {
        min: one(min)?,
        max: one(max)?,
    })
}

fn int(name: &str, v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("{name} must be a non-negative integer")))
}

fn boolean(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{name} must be true or false"
        ))),
    }
}

/// A timestamp as the clients send it: RFC 3339, the Python client's `%Y-%m-%dT%H:%M:%S.%f%z`
/// (`+0000`, or no offset for a naive datetime: UTC), or `+` decoded as a space by the query.
pub fn instant(name: &str, v: &str) -> Result<OffsetDateTime, ApiError> {
    let v = v.replace(' ', "+");
    if let Some(t) = cove_api_types::time::parse_rfc3339(&v) {
        return Ok(t);
    }
    let with_offset = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]][offset_hour sign:mandatory][optional [:]][offset_minute]"
    );
    let naive = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    OffsetDateTime::parse(&v, with_offset)
        .or_else(|_| time::PrimitiveDateTime::parse(&v, naive).map(|t| t.assume_utc()))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{name} must be an ISO 8601 timestamp (e.g. 2026-01-01T00:00:00.000Z)"
            ))
        })
}

pub async fn list(call: &Call<'_>, q: ListQuery) -> Result<ListSandboxesResponse, ApiError> {
    match q.sort {
        None => in_index_order(call, &q).await,
        Some((field, desc)) => sorted(call, &q, field, desc).await,
    }
}

async fn in_index_order(call: &Call<'_>, q: &ListQuery) -> Result<ListSandboxesResponse, ApiError> {
    let repo = call.env.store.sandboxes();
    let mut cursor = match q.cursor.as_deref() {
        Some(c) => Some(Cursor::parse(c).api()?),
        None => None,
    };
    let proxy = call.proxy_url();
    for _ in 0..MAX_LIST_PAGES {
        let page = repo
            .list_by_org(call.org(), q.limit, cursor.as_ref())
            .await
            .api()?;
        let items: Vec<SandboxListItem> = page
            .items
            .iter()
            .filter(|r| q.matches(r))
            .map(|r| SandboxListItem::from(view::sandbox(r, &proxy)))
            .collect();
        cursor = page.next;
        if !items.is_empty() || cursor.is_none() {
            return Ok(ListSandboxesResponse {
                items,
                next_cursor: cursor.map(|c| c.as_str().to_owned()),
            });
        }
    }
    Ok(ListSandboxesResponse {
        items: Vec::new(),
        next_cursor: cursor.map(|c| c.as_str().to_owned()),
    })
}

async fn sorted(
    call: &Call<'_>,
    q: &ListQuery,
    field: SortField,
    desc: bool,
) -> Result<ListSandboxesResponse, ApiError> {
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut rows = scan(call, q, field).await?;
    let order = |a: (&SortValue, &str), b: (&SortValue, &str)| {
        let o = a.0.cmp(b.0).then_with(|| a.1.cmp(b.1));
        if desc { o.reverse() } else { o }
    };
    rows.sort_by(|a, b| order((&a.0, a.1.id.as_str()), (&b.0, b.1.id.as_str())));
    let start = after.as_ref().map_or(0, |c| {
        rows.partition_point(|(v, r)| {
            order((v, r.id.as_str()), (&c.sort_value, c.id.as_str())) != Ordering::Greater
        })
    });
    let proxy = call.proxy_url();
    let page = &rows[start..rows.len().min(start + q.limit)];
    let next_cursor = (start + page.len() < rows.len())
        .then(|| page.last())
        .flatten()
        .map(|(v, r)| encode_cursor(v, r.id.as_str()));
    Ok(ListSandboxesResponse {
        items: page
            .iter()
            .map(|(_, r)| SandboxListItem::from(view::sandbox(r, &proxy)))
            .collect(),
        next_cursor,
    })
}

/// Every live sandbox of the caller's organization that passes `q`, with its sort value: at
/// most [`MAX_SORTED_SCAN`] read.
async fn scan(
    call: &Call<'_>,
    q: &ListQuery,
    field: SortField,
) -> Result<Vec<(SortValue, SandboxRecord)>, ApiError> {
    let repo = call.env.store.sandboxes();
    let mut rows = Vec::new();
    let mut scanned = 0usize;
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = repo
            .list_by_org(call.org(), cove_store::sandboxes::MAX_PAGE, cursor.as_ref())
            .await
            .api()?;
        scanned += page.items.len();
        if scanned > MAX_SORTED_SCAN {
            return Err(ApiError::bad_request(format!(
                "The organization has more than {MAX_SORTED_SCAN} sandboxes: sort them in \
                 pages of the default order (no sort), or narrow the list"
            )));
        }
        rows.extend(
            page.items
                .into_iter()
                .filter(|r| q.matches(r))
                .map(|r| (SortValue::of(field, &r), r)),
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(rows),
        }
    }
}

fn encode_cursor(v: &SortValue, id: &str) -> String {
    let c = SortCursor {
        sort_value: v.clone(),
        id: id.to_owned(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap_or_default())
}

fn decode_cursor(s: &str) -> Result<SortCursor, ApiError> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ApiError::bad_request("Invalid cursor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Q(Vec<(&'static str, &'static str)>);

    impl QuerySource for Q {
        fn one(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
        fn all(&self, name: &str) -> Vec<String> {
            self.0
                .iter()
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
                .collect()
        }
    }

    fn parse(pairs: &[(&'static str, &'static str)]) -> Result<ListQuery, ApiError> {
        ListQuery::parse(&Q(pairs.to_vec()), 100, BTreeMap::new())
    }

    fn record(name: &str, cpu: i64, created: &str) -> SandboxRecord {
        let mut r = SandboxRecord::new(
            cove_api_types::ids::SandboxId::new_random(),
            cove_api_types::ids::OrganizationId::new_random(),
            name,
            "img:1",
            created,
        );
        r.cpu = cpu;
        r
    }

    #[test]
    fn timestamps_in_every_form_the_clients_send() {
        let want = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        for v in [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.000Z",
            "2026-01-01T00:00:00.000000+0000",
            "2026-01-01T01:00:00.000000+01:00",
            "2026-01-01T00:00:00.000000 0000",
            "2026-01-01T00:00:00.000000",
            "2026-01-01T00:00:00",
        ] {
            assert_eq!(instant("t", v).unwrap(), want, "{v}");
        }
        for bad in ["yesterday", "2026-13-01T00:00:00Z", "1767225600", ""] {
            assert_eq!(instant("t", bad).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn malformed_filters_are_400() {
        for pairs in [
            vec![("minCpu", "two")],
            vec![("maxMemoryGiB", "-1")],
            vec![("isPublic", "yes")],
            vec![("isRecoverable", "maybe")],
            vec![("createdAtAfter", "last week")],
            vec![("states", "running")],
            vec![("sort", "owner")],
            vec![("order", "up")],
        ] {
            let e = parse(&pairs).unwrap_err();
            assert_eq!(e.status, 400, "{pairs:?}");
        }
    }

    #[test]
    fn states_as_the_python_client_sends_them() {
        let q = parse(&[("states", "SandboxState.STARTED"), ("states", "stopped")]).unwrap();
        assert_eq!(q.states, [SandboxState::Started, SandboxState::Stopped]);
    }

    #[test]
    fn newest_first_is_the_index_order() {
        assert_eq!(parse(&[]).unwrap().sort, None);
        assert_eq!(parse(&[("sort", "createdAt")]).unwrap().sort, None);
        assert_eq!(
            parse(&[("sort", "createdAt"), ("order", "asc")])
                .unwrap()
                .sort,
            Some((SortField::CreatedAt, false))
        );
        assert_eq!(
            parse(&[("order", "asc")]).unwrap().sort,
            Some((SortField::LastActivityAt, false))
        );
    }

    #[test]
    fn ranges_are_inclusive_and_filters_combine() {
        let q = parse(&[
            ("minCpu", "2"),
            ("maxCpu", "3"),
            ("createdAtAfter", "2026-01-01T00:00:00Z"),
            ("name", "Web"),
        ])
        .unwrap();
        assert!(q.matches(&record("web-1", 2, "2026-01-01T00:00:00.000Z")));
        assert!(q.matches(&record("WEB-2", 3, "2026-02-01T00:00:00.000Z")));
        assert!(!q.matches(&record("web-3", 4, "2026-02-01T00:00:00.000Z")));
        assert!(!q.matches(&record("web-4", 2, "2025-12-31T23:59:59.000Z")));
        assert!(!q.matches(&record("db-1", 2, "2026-02-01T00:00:00.000Z")));
        // A bound on autoDestroyAt leaves out sandboxes without a TTL.
        let q = parse(&[("autoDestroyAtBefore", "2030-01-01T00:00:00Z")]).unwrap();
        let mut r = record("a", 1, "2026-01-01T00:00:00.000Z");
        assert!(!q.matches(&r));
        r.auto_destroy_at = Some("2029-01-01T00:00:00.000Z".into());
        assert!(q.matches(&r));
    }

    #[test]
    fn errored_deleted_sandboxes_only_on_request() {
        let mut r = record("a", 1, "2026-01-01T00:00:00.000Z");
        r.state = SandboxState::Error;
        r.desired_state = SandboxDesiredState::Destroyed;
        assert!(!parse(&[]).unwrap().matches(&r));
        assert!(
            parse(&[("includeErroredDeleted", "true")])
                .unwrap()
                .matches(&r)
        );
    }

    #[test]
    fn cursors_round_trip_and_forgeries_are_400() {
        let c = encode_cursor(&SortValue::Number(42), "abc");
        let d = decode_cursor(&c).unwrap();
        assert_eq!(
            (d.sort_value, d.id.as_str()),
            (SortValue::Number(42), "abc")
        );
        let c = encode_cursor(&SortValue::Text("web".into()), "x");
        assert_eq!(
            decode_cursor(&c).unwrap().sort_value,
            SortValue::Text("web".into())
        );
        assert_eq!(decode_cursor("!!not-base64").unwrap_err().status, 400);
        assert_eq!(
            decode_cursor(&URL_SAFE_NO_PAD.encode(b"{\"id\":1}"))
                .unwrap_err()
                .status,
            400
        );
    }
}
