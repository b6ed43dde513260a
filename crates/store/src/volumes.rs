//! Volumes: the row `VOLUME#<id>` / `#META` and, while the volume is not `deleted`, its name lock
//! `ORG#<orgId>` / `VOLUMENAME#<name>` (attr `volumeId`).
//!
//! Indexes (both sparse):
//! - GSI1 `ORG#<orgId>#VOLUMES` / `<createdAt>#<id>`: the listing (deleted volumes included, for
//!   `includeDeleted`);
//! - GSI2 `VOLUMES#<state>` / `<transitionAt>#<id>`, only in the states the lifecycle sweep drives
//!   (`pending_create`, `creating`, `pending_delete`, `deleting`): [`VolumeRepo::list_in_state`],
//!   oldest transition first, without a scan.
//!
//! Every state change is a conditional write on `version` ([`VolumeRepo::set_state`]), so two
//! sweeps (or a sweep and a request) never both apply one; `transitionAt` is when the current
//! state began (the sweep's deadlines count from it). Reaching `deleted` releases the name lock in
//! the same transaction, so the name can be used again. The lock lives in the organization's
//! partition and is taken with the organization's `live_check`; organization deletion sends the
//! volumes its locks name to `pending_delete` ([`VolumeRepo::doom`]) so the sweep empties their
//! storage.

use cove_api_types::ids::{OrganizationId, VolumeId};
use cove_api_types::volumes::VolumeState;
use serde::{Deserialize, Serialize};

use crate::item::{Item, META, key, n, s, to_item};
use crate::query::Query;
use crate::tx::{self, Cond, Fail, Tx};
use crate::{Conflict, Entity, Store, StoreError};

/// Sort-key prefix of the volume name locks in an organization's partition.
pub(crate) const NAME_LOCK_PREFIX: &str = "VOLUMENAME#";

/// The states whose volumes are in the state index (GSI2).
pub const INDEXED_STATES: &[VolumeState] = &[
    VolumeState::PendingCreate,
    VolumeState::Creating,
    VolumeState::PendingDelete,
    VolumeState::Deleting,
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRecord {
    pub id: VolumeId,
    pub org_id: OrganizationId,
    pub name: String,
    pub state: VolumeState,
    #[serde(default)]
    pub error_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub last_used_at: Option<String>,
    /// When the current state began (RFC 3339).
    pub transition_at: String,
    /// Optimistic concurrency; 0 before the first write.
    pub version: u64,
}

impl VolumeRecord {
    /// A new `pending_create` volume.
    pub fn new(org_id: OrganizationId, name: impl Into<String>, now: &str) -> Self {
        Self {
            id: VolumeId::new_random(),
            org_id,
            name: name.into(),
            state: VolumeState::PendingCreate,
            error_reason: None,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            last_used_at: None,
            transition_at: now.to_owned(),
            version: 0,
        }
    }
}

pub struct VolumeRepo<'a> {
    pub(crate) store: &'a Store,
}

pub(crate) fn pk(id: &VolumeId) -> String {
    format!("VOLUME#{id}")
}

fn name_sk(name: &str) -> String {
    format!("{NAME_LOCK_PREFIX}{name}")
}

fn list_pk(org: &OrganizationId) -> String {
    format!("ORG#{org}#VOLUMES")
}

fn state_pk(state: VolumeState) -> String {
    format!("VOLUMES#{}", state.as_str())
}

fn item(op: &'static str, rec: &VolumeRecord) -> Result<Item, StoreError> {
    let mut keys = vec![
        ("pk", pk(&rec.id)),
        ("sk", META.to_owned()),
        ("gsi1pk", list_pk(&rec.org_id)),
        ("gsi1sk", format!("{}#{}", rec.created_at, rec.id)),
    ];
    if INDEXED_STATES.contains(&rec.state) {
        keys.push(("gsi2pk", state_pk(rec.state)));
        keys.push(("gsi2sk", format!("{}#{}", rec.transition_at, rec.id)));
    }
    to_item(op, rec, &keys)
}

fn name_lock(rec: &VolumeRecord) -> Item {
    let mut lock = key(crate::orgs::pk(&rec.org_id), name_sk(&rec.name));
    lock.insert("volumeId".into(), s(rec.id.to_string()));
    lock
}

fn at_version(v: u64) -> Cond {
    Cond::new("attribute_exists(pk) AND version = :v").value(":v", n(v))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lock {
    volume_id: VolumeId,
}

impl VolumeRepo<'_> {
    /// Writes a new volume (version 1) with its name lock, in one transaction that also needs the
    /// organization live: `Conflict { Exists }` when the name is taken in the organization,
    /// `Conflict { OrganizationDeleting }` when it is gone or being deleted.
    pub async fn create(&self, rec: &VolumeRecord) -> Result<VolumeRecord, StoreError> {
        const OP: &str = "CreateVolume";
        let mut stored = rec.clone();
        stored.version = 1;
        self.store
            .put_new_in_org(
                OP,
                &stored.org_id,
                vec![item(OP, &stored)?, name_lock(&stored)],
            )
            .await?;
        tracing::debug!(volume = %stored.id, org = %stored.org_id, "volume created");
        Ok(stored)
    }

    pub async fn get(&self, id: &VolumeId) -> Result<Option<VolumeRecord>, StoreError> {
        self.store.get_record("GetVolume", key(pk(id), META)).await
    }

    /// The organization's volume named `name` that is not deleted (strongly consistent, through
    /// its lock).
    pub async fn get_by_name(
        &self,
        org: &OrganizationId,
        name: &str,
    ) -> Result<Option<VolumeRecord>, StoreError> {
        let lock_key = key(crate::orgs::pk(org), name_sk(name));
        let Some(lock) = self
            .store
            .get_record::<Lock>("GetVolumeName", lock_key)
            .await?
        else {
            return Ok(None);
        };
        Ok(self
            .get(&lock.volume_id)
            .await?
            .filter(|r| r.org_id == *org && r.name == name))
    }

    /// The organization's volume by id (deleted ones included), else by name.
    pub async fn find(
        &self,
        org: &OrganizationId,
        id_or_name: &str,
    ) -> Result<Option<VolumeRecord>, StoreError> {
        if let Ok(id) = VolumeId::parse(id_or_name)
            && let Some(rec) = self.get(&id).await?
            && rec.org_id == *org
        {
            return Ok(Some(rec));
        }
        self.get_by_name(org, id_or_name).await
    }

    /// The organization's volumes, oldest first (GSI1), deleted ones included.
    pub async fn list_by_org(&self, org: &OrganizationId) -> Result<Vec<VolumeRecord>, StoreError> {
        self.store
            .query_all("ListVolumes", &Query::gsi1(list_pk(org)))
            .await
    }

    /// How many of the organization's volumes count against its quota: its name locks, read
    /// strongly consistently, then their rows.
    pub async fn count_usage(&self, org: &OrganizationId) -> Result<i64, StoreError> {
        let q = Query::prefix(crate::orgs::pk(org), NAME_LOCK_PREFIX);
        let locks: Vec<Lock> = self.store.query_all("ListVolumeNames", &q).await?;
        let mut count = 0;
        for lock in locks {
            if self
                .get(&lock.volume_id)
                .await?
                .is_some_and(|r| r.state.counts_against_quota())
            {
                count += 1;
            }
        }
        Ok(count)
    }

    /// At most `limit` volumes in `state` (one of [`INDEXED_STATES`], else empty), the oldest
    /// `transitionAt` first (GSI2, eventually consistent: act with [`Self::set_state`]'s version
    /// check).
    pub async fn list_in_state(
        &self,
        state: VolumeState,
        limit: usize,
    ) -> Result<Vec<VolumeRecord>, StoreError> {
        const OP: &str = "ListVolumesInState";
        if !INDEXED_STATES.contains(&state) || limit == 0 {
            return Ok(Vec::new());
        }
        let q = Query::gsi2(state_pk(state));
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let page = self.store.query_page(OP, &q, Some(want), start).await?;
            for i in page.items {
                out.push(crate::item::from_item::<VolumeRecord>(OP, i)?);
            }
            match page.next {
                Some(k) if out.len() < limit => start = Some(k),
                _ => return Ok(out.into_iter().filter(|r| r.state == state).collect()),
            }
        }
    }

    /// Moves volume `id`, still at `from_version`, to `new_state` (`errorReason` = `reason`,
    /// `transitionAt` = now when the state changes, version + 1). Reaching `deleted` releases the
    /// name lock in the same transaction. `NotFound` if it is gone, `Conflict { Changed }` if its
    /// version moved (another sweep or request got there first).
    pub async fn set_state(
        &self,
        id: &VolumeId,
        from_version: u64,
        new_state: VolumeState,
        reason: Option<String>,
    ) -> Result<VolumeRecord, StoreError> {
        const OP: &str = "SetVolumeState";
        let Some(prev) = self.get(id).await? else {
            return Err(StoreError::not_found(OP, Entity::Volume));
        };
        if prev.version != from_version {
            return Err(StoreError::conflict(OP, Conflict::Changed));
        }
        let now = cove_api_types::time::now_rfc3339();
        let mut next = prev.clone();
        if next.state != new_state {
            next.transition_at.clone_from(&now);
        }
        next.state = new_state;
        next.error_reason = reason;
        next.updated_at = now;
        next.version = prev.version + 1;
        let mut t = Tx::new(OP).with(
            Fail::Conflict(Conflict::Changed),
            tx::put(self.store, OP, item(OP, &next)?, at_version(prev.version))?,
        );
        if new_state == VolumeState::Deleted {
            let lock = key(crate::orgs::pk(&prev.org_id), name_sk(&prev.name));
            let mine = Cond::new("attribute_not_exists(pk) OR volumeId = :id")
                .value(":id", s(id.to_string()));
            t.push(
                Fail::Conflict(Conflict::Changed),
                tx::delete(self.store, OP, lock, Some(mine))?,
            );
        }
        t.commit(self.store).await?;
        Ok(next)
    }

    /// Sets `lastUsedAt = now` (no version bump, so it never makes a state change fail; a no-op
    /// when the volume is gone).
    pub async fn touch_last_used(&self, id: &VolumeId, now: &str) -> Result<(), StoreError> {
        let res = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .update_expression("SET lastUsedAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", s(now))
            .send()
            .await
            .map_err(|e| StoreError::backend("TouchVolumeLastUsed", e));
        match res {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Organization deletion: the volume goes to `pending_delete` whatever its state (unless it
    /// is already being or has been deleted), so the sweep empties its storage. Retries lost
    /// races; a volume that is gone is done.
    pub async fn doom(&self, id: &VolumeId) -> Result<(), StoreError> {
        for _ in 0..8 {
            let Some(rec) = self.get(id).await? else {
                return Ok(());
            };
            if matches!(
                rec.state,
                VolumeState::PendingDelete | VolumeState::Deleting | VolumeState::Deleted
            ) {
                return Ok(());
            }
            match self
                .set_state(id, rec.version, VolumeState::PendingDelete, None)
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::conflict("DoomVolume", Conflict::Changed))
    }
}

/// The volume a name lock item names (organization purge).
pub(crate) fn volume_of_lock(lock: &Item) -> Option<VolumeId> {
    let id = crate::item::get_s(lock, "volumeId")?;
    VolumeId::parse(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_index_only_for_driven_states() {
        for st in VolumeState::ALL {
            let mut r = VolumeRecord::new(
                OrganizationId::new_random(),
                "v",
                "2026-01-01T00:00:00.000Z",
            );
            r.state = *st;
            let i = item("T", &r).unwrap();
            assert_eq!(i.contains_key("gsi2pk"), st.is_transitional(), "{st}");
            assert!(i.contains_key("gsi1pk"));
        }
    }
}
