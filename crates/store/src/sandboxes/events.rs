//! The sandboxes' event outbox: `ORG#<orgId>#EVENTS` / `<unix ms, 13 digits>#<sandboxId>#<version, 10 digits>`.
//!
//! Every sandbox transaction that creates a sandbox or changes its `state` or `desiredState`
//! puts one [`SandboxEventRecord`] into the same transaction ([`super::writes`]), so an event
//! exists exactly when its change committed. The real-time relay (CONTRACT §11) reads an
//! organization's events in sort-key order after a cursor ([`SandboxRepo::events_after`]); the
//! items carry `ttl` (epoch seconds, [`EVENT_TTL`] ahead) so that DynamoDB TTL drops them, and a
//! reader ignores an expired one that TTL has not removed yet. Organization deletion deletes the
//! partition with the organization's own ([`event_keys`]).
//!
//! The sort key starts with the writer's clock: a reader that must not miss events of a writer
//! whose clock lags reads again from a little before its cursor and drops what it saw.

use cove_api_types::ids::{OrganizationId, SandboxId};
use cove_api_types::sandbox::{SandboxDesiredState, SandboxState};
use serde::{Deserialize, Serialize};

use super::{SandboxRecord, SandboxRepo};
use crate::StoreError;
use crate::item::{from_item, to_item};
use crate::query::Query;

/// How long an event stays readable.
pub const EVENT_TTL: time::Duration = time::Duration::HOUR;

/// Largest number of events [`SandboxRepo::events_after`] reads at once.
pub const MAX_EVENTS: usize = 500;

/// Digits of the millisecond part of a cursor (enough until the year 2286).
const MS_DIGITS: usize = 13;
/// Digits of the version part of a sort key.
const VERSION_DIGITS: usize = 10;

/// What happened to a sandbox, by its Socket.IO event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SandboxEventKind {
    /// The sandbox was created (its first version).
    #[serde(rename = "sandbox.created")]
    Created,
    /// Its `state` changed.
    #[serde(rename = "sandbox.state.updated")]
    StateUpdated,
    /// Its `desiredState` changed.
    #[serde(rename = "sandbox.desired-state.updated")]
    DesiredStateUpdated,
}

impl SandboxEventKind {
    /// The Socket.IO event name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "sandbox.created",
            Self::StateUpdated => "sandbox.state.updated",
            Self::DesiredStateUpdated => "sandbox.desired-state.updated",
        }
    }
}

/// One outbox item: the changes of one committed write of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxEventRecord {
    /// The item's sort key: the event's cursor.
    pub sk: String,
    /// What the write did, in the order the events are emitted.
    pub kinds: Vec<SandboxEventKind>,
    pub sandbox_id: SandboxId,
    pub org_id: OrganizationId,
    /// The sandbox's version this write stored.
    pub version: u64,
    /// `None` on create.
    #[serde(default)]
    pub old_state: Option<SandboxState>,
    pub new_state: SandboxState,
    /// `None` on create.
    #[serde(default)]
    pub old_desired_state: Option<SandboxDesiredState>,
    pub new_desired_state: SandboxDesiredState,
    /// Epoch seconds after which DynamoDB TTL may drop the item.
    pub ttl: i64,
}

impl SandboxEventRecord {
    /// The event of the write `prev` → `next` (`prev = None`: the create of `next`) at `now`;
    /// `None` when neither `state` nor `desiredState` changed.
    pub fn of_write(
        prev: Option<&SandboxRecord>,
        next: &SandboxRecord,
        now: time::OffsetDateTime,
    ) -> Option<Self> {
        let kinds = match prev {
            None => vec![SandboxEventKind::Created],
            Some(p) => {
                let mut k = Vec::new();
                if p.state != next.state {
                    k.push(SandboxEventKind::StateUpdated);
                }
                if p.desired_state != next.desired_state {
                    k.push(SandboxEventKind::DesiredStateUpdated);
                }
                k
            }
        };
        if kinds.is_empty() {
            return None;
        }
        let ms = now.unix_timestamp_nanos() / 1_000_000;
        Some(Self {
            sk: format!(
                "{ms:0MS_DIGITS$}#{}#{:0VERSION_DIGITS$}",
                next.id, next.version
            ),
            kinds,
            sandbox_id: next.id.clone(),
            org_id: next.org_id.clone(),
            version: next.version,
            old_state: prev.map(|p| p.state),
            new_state: next.state,
            old_desired_state: prev.map(|p| p.desired_state),
            new_desired_state: next.desired_state,
            ttl: (now + EVENT_TTL).unix_timestamp(),
        })
    }

    /// Whether TTL may have dropped it already at `now` (then it counts as absent).
    pub fn is_expired(&self, now: time::OffsetDateTime) -> bool {
        self.ttl <= now.unix_timestamp()
    }
}

/// The partition of an organization's events.
pub(crate) fn events_pk(org: &OrganizationId) -> String {
    format!("ORG#{org}#EVENTS")
}

/// The outbox item of `ev`.
pub(crate) fn event_item(
    op: &'static str,
    ev: &SandboxEventRecord,
) -> Result<crate::item::Item, StoreError> {
    to_item(
        op,
        ev,
        &[("pk", events_pk(&ev.org_id)), ("sk", ev.sk.clone())],
    )
}

/// The keys of every event of `org` (organization deletion purges them).
pub(crate) async fn event_keys(
    store: &crate::Store,
    org: &OrganizationId,
) -> Result<Vec<crate::item::Item>, StoreError> {
    let items = store
        .query_items("ListSandboxEvents", &Query::partition(events_pk(org)))
        .await?;
    Ok(items
        .iter()
        .filter_map(|i| {
            let pk = crate::item::get_s(i, "pk")?;
            let sk = crate::item::get_s(i, "sk")?;
            Some(crate::item::key(pk, sk))
        })
        .collect())
}

/// A cursor of the events at `unix_ms`: it sorts before every event of that millisecond and
/// after every earlier one.
pub fn time_cursor(unix_ms: i64) -> String {
    format!("{:0MS_DIGITS$}", unix_ms.max(0))
}

/// The millisecond a cursor ([`time_cursor`] or an event's `sk`) stands for; `None` when it is
/// not one.
pub fn cursor_ms(cursor: &str) -> Option<i64> {
    let (ms, rest) = cursor.split_at_checked(MS_DIGITS)?;
    if !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !rest.is_empty() {
        let rest = rest.strip_prefix('#')?;
        let (id, version) = rest.rsplit_once('#')?;
        let id_ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let version_ok =
            version.len() == VERSION_DIGITS && version.bytes().all(|b| b.is_ascii_digit());
        if !id_ok || !version_ok {
            return None;
        }
    }
    ms.parse().ok()
}

impl SandboxRepo<'_> {
    /// The organization's events whose cursor sorts after `after`, oldest first, at most
    /// `limit` (1..=[`MAX_EVENTS`]); expired ones left out. One strongly consistent query of
    /// the base table.
    pub async fn events_after(
        &self,
        org: &OrganizationId,
        after: &str,
        limit: usize,
    ) -> Result<Vec<SandboxEventRecord>, StoreError> {
        const OP: &str = "ListSandboxEvents";
        let limit = i32::try_from(limit.clamp(1, MAX_EVENTS)).unwrap_or(1);
        let q = Query::after(events_pk(org), after);
        let page = self.store.query_page(OP, &q, Some(limit), None).await?;
        let now = time::OffsetDateTime::now_utc();
        let mut out = Vec::with_capacity(page.items.len());
        for i in page.items {
            let ev: SandboxEventRecord = from_item(OP, i)?;
            if !ev.is_expired(now) {
                out.push(ev);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_and_sort() {
        assert_eq!(cursor_ms("0001700000000000"), None, "16 digits");
        assert_eq!(
            cursor_ms(&time_cursor(1_700_000_000_000)),
            Some(1_700_000_000_000)
        );
        let sk = "1700000000000#abc-123#0000000002";
        assert_eq!(cursor_ms(sk), Some(1_700_000_000_000));
        for bad in [
            "",
            "17",
            "170000000000x",
            "1700000000000#",
            "1700000000000#a#12",
            "1700000000000#a b#0000000002",
        ] {
            assert_eq!(cursor_ms(bad), None, "{bad:?}");
        }
        assert!(
            time_cursor(1_700_000_000_000).as_str() < sk,
            "a time cursor sorts before its millisecond's events"
        );
        assert!(sk < time_cursor(1_700_000_000_001).as_str());
    }
}
